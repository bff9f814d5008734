//! `idle`: the memory an idle connection costs, per client library.
//!
//! ```text
//! cargo run --release -p floodgate-bench --bin idle -- [--connections N] [--only NAME,...]
//! ```
//!
//! A server child process (tokio, current thread) accepts WebSocket
//! upgrades and then only waits; on the path `/hello` it first sends one
//! 16-byte binary message. For each client, a child process of its own
//! opens N connections one after another and keeps them, and reports its
//! resident memory (`VmRSS`) before and after; a second child does the same
//! but reads the one message on each connection first, which shows whether
//! a read buffer stays allocated on a connection that went idle. Each child
//! is a fresh process, so no client inherits another's allocator state;
//! the server's memory is in its own process and not counted.
//!
//! Linux only (`/proc/self/status`).

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use floodgate_bench::args::Parser;
use floodgate_bench::handshake;
use floodgate_bench::machine_line;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const USAGE: &str = "usage: idle [--connections N] [--only NAME[,NAME...]]
  --connections  connections per client (default 10000)
  --only         run only these clients (tokio-tungstenite, fastwebsockets, sockudo-ws,
                 sockudo-ws-tuned, yawc, yawc-tuned, tokio-websockets, floodgate-async,
                 floodgate-async-buffered, floodgate, floodgate-buffered)";

/// The clients, in table order, and what each keeps per connection.
const CLIENTS: &[(&str, &str)] = &[
    (
        "tokio-tungstenite",
        "WebSocketStream on a current-thread runtime",
    ),
    (
        "fastwebsockets",
        "WebSocket after a hand-made handshake, current-thread runtime",
    ),
    (
        "sockudo-ws",
        "WebSocketStream (boxed socket, 64 KiB read buffer, 16 KiB cork buffer, heartbeat timer)",
    ),
    (
        "sockudo-ws-tuned",
        "the same, heartbeat and idle timeout off (no timer)",
    ),
    ("yawc", "WebSocket (8 KiB read and write buffers to start)"),
    ("yawc-tuned", "the same with a 128 KiB read buffer"),
    (
        "tokio-websockets",
        "WebSocketStream (tokio-util framed reader, 8 KiB to start)",
    ),
    (
        "floodgate-async",
        "floodgate::tokio::WebSocket on a current-thread runtime",
    ),
    (
        "floodgate-async-buffered",
        "floodgate::tokio::BufferedWebSocket: a reader task each",
    ),
    ("floodgate", "blocking WebSocket (no thread)"),
    (
        "floodgate-buffered",
        "blocking buffered connection: a reader thread each",
    ),
];

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    match argv.first().map(String::as_str) {
        Some("--serve") => return exit(serve()),
        Some("--client") => return exit(client_child(&argv[1..])),
        _ => {}
    }
    let mut connections = 10_000usize;
    let mut only: Option<Vec<String>> = None;
    let mut p = Parser::new(argv.iter().cloned(), USAGE);
    while let Some(flag) = p.next_flag() {
        let parsed = match flag.as_str() {
            "--connections" => p.num().map(|n| connections = n),
            "--only" => p.list().map(|l| only = Some(l)),
            _ => Err(p.unknown()),
        };
        if let Err(e) = parsed {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    }
    exit(run(connections, only))
}

fn exit(result: Result<(), BoxError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("idle: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(connections: usize, only: Option<Vec<String>>) -> Result<(), BoxError> {
    let exe = std::env::current_exe()?;
    let mut server = Command::new(&exe)
        .arg("--serve")
        .stdout(Stdio::piped())
        .spawn()?;
    let mut line = String::new();
    BufReader::new(server.stdout.take().ok_or("no server stdout")?).read_line(&mut line)?;
    let port: u16 = line
        .trim()
        .strip_prefix("listening on ")
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| format!("unexpected server line {line:?}"))?;

    println!("## Memory per idle connection (`idle`)\n");
    println!(
        "command: `cargo run --release -p floodgate-bench --bin idle -- --connections {connections}`  "
    );
    println!("{}  ", machine_line());
    println!(
        "Each client opens {connections} connections to a local server (its own process) and \
         keeps them; resident memory (VmRSS) of the client's process before and after, divided \
         by the number of connections. \"after a message\": each connection first received one \
         16-byte message, then went idle.\n"
    );
    println!(
        "| client | what is kept | per connection | per connection after a message \
         | vs tokio-tungstenite | vs fastwebsockets | vs lightest anchor |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|");
    let mut rows = Vec::new();
    for &(name, what) in CLIENTS {
        if only.as_ref().is_some_and(|o| !o.iter().any(|n| n == name)) {
            continue;
        }
        let mut per = [None, None];
        let (connections, what) = fitting(name, connections, what);
        for (i, path) in ["/", "/hello"].iter().enumerate() {
            let url = format!("ws://127.0.0.1:{port}{path}");
            let out = Command::new(&exe)
                .args(["--client", name, &url, &connections.to_string()])
                .stderr(Stdio::inherit())
                .output()?;
            let text = String::from_utf8_lossy(&out.stdout);
            match text.lines().find_map(|l| l.strip_prefix("RESULT ")) {
                Some(r) => {
                    let v: Vec<u64> = r.split(' ').filter_map(|x| x.parse().ok()).collect();
                    if let [before, after] = v[..] {
                        per[i] = Some(after.saturating_sub(before) as f64 / connections as f64);
                        eprintln!(
                            "{name} {path}: {before} -> {after} bytes RSS, {:.0} per connection",
                            per[i].unwrap_or(0.0)
                        );
                    }
                }
                None => eprintln!("{name} {path}: failed ({})", out.status),
            }
        }
        rows.push((name, what, per));
    }
    let anchor = |n: &str, i: usize| {
        rows.iter()
            .find(|r| r.0 == n)
            .and_then(|r| r.2[i])
            .filter(|v| *v > 0.0)
    };
    // Every library but floodgate is an anchor, its tuned rows included.
    let lightest = rows
        .iter()
        .filter(|r| !r.0.starts_with("floodgate"))
        .filter_map(|r| r.2[1].filter(|v| *v > 0.0).map(|v| (r.0, v)))
        .min_by(|a, b| a.1.total_cmp(&b.1));
    let show = |v: Option<f64>| v.map_or("failed".to_owned(), |b| format!("{:.1} KiB", b / 1024.0));
    for (name, what, per) in &rows {
        // Ratios of the "after a message" figures: what an idle, used
        // connection costs. >1 means more memory than the anchor.
        let ratio = |anchor: Option<f64>| match (per[1], anchor) {
            (Some(v), Some(a)) => format!("{:.2}x", v / a),
            _ => "-".into(),
        };
        println!(
            "| {name} | {what} | {} | {} | {} | {} | {} |",
            show(per[0]),
            show(per[1]),
            ratio(anchor("tokio-tungstenite", 1)),
            ratio(anchor("fastwebsockets", 1)),
            ratio(lightest.map(|l| l.1)),
        );
    }
    println!(
        "\nRatios compare the \"after a message\" column; below 1 = less memory than the anchor.{}",
        lightest.map_or(String::new(), |(n, _)| format!(" Lightest anchor: {n}."))
    );
    let _ = server.kill();
    let _ = server.wait();
    Ok(())
}

/// The blocking buffered connection holds three descriptors per
/// connection (the reader's socket, and `dup`s for the writers and for
/// cutting the connection off from any thread), which at the default
/// 10,000 connections is over this machine's descriptor limit (20,000).
/// That row opens as many as fit, and says so.
fn fitting(name: &str, connections: usize, what: &str) -> (usize, String) {
    if name != "floodgate-buffered" {
        return (connections, what.to_owned());
    }
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct it is given.
    let known = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
    let fit = if known {
        (limit.rlim_cur as usize).saturating_sub(100) / 3
    } else {
        connections
    };
    if fit >= connections {
        return (connections, what.to_owned());
    }
    (
        fit,
        format!(
            "{what} ({fit} connections: three descriptors each, and the limit is {})",
            limit.rlim_cur
        ),
    )
}

/// Resident memory of this process, in bytes.
fn rss() -> Result<u64, BoxError> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or("no VmRSS in /proc/self/status")?;
    Ok(kib * 1024)
}

fn runtime() -> Result<tokio::runtime::Runtime, BoxError> {
    // Timers too: floodgate's async client bounds its connect and close
    // with tokio's timers.
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// A child: opens the connections with one client, prints `RESULT before
/// after`, and exits (which closes them).
fn client_child(args: &[String]) -> Result<(), BoxError> {
    let [name, url, n] = args else {
        return Err("--client NAME URL N".into());
    };
    let n: usize = n.parse()?;
    let hello = url.ends_with("/hello");
    let rt = runtime()?;
    // One connection first, closed again, so that code, TLS-free
    // libraries' statics and the runtime are warm before the first reading.
    open(name, url, 1, hello, &rt)?;
    let before = rss()?;
    let kept = open(name, url, n, hello, &rt)?;
    std::thread::sleep(Duration::from_millis(300));
    let after = rss()?;
    println!("RESULT {before} {after}");
    std::io::stdout().flush()?;
    drop(kept);
    Ok(())
}

/// Opens `n` connections and returns them (boxed, whatever their type).
fn open(
    name: &str,
    url: &str,
    n: usize,
    hello: bool,
    rt: &tokio::runtime::Runtime,
) -> Result<Vec<Box<dyn std::any::Any>>, BoxError> {
    let mut kept: Vec<Box<dyn std::any::Any>> = Vec::with_capacity(n);
    match name {
        "tokio-tungstenite" => rt.block_on(async {
            use futures_util::StreamExt;
            for _ in 0..n {
                let (mut ws, _) = tokio_tungstenite::connect_async(url).await?;
                if hello {
                    ws.next().await.ok_or("closed before the message")??;
                }
                kept.push(Box::new(ws));
            }
            Ok::<_, BoxError>(())
        })?,
        "sockudo-ws" | "sockudo-ws-tuned" => {
            use futures_util::StreamExt;
            let config = if name == "sockudo-ws" {
                sockudo_ws::Config::default()
            } else {
                floodgate_bench::clients::sockudo_tuned_config()
            };
            let client = sockudo_ws::client::WebSocketClient::<sockudo_ws::Http1>::new(config);
            rt.block_on(async {
                for _ in 0..n {
                    let (mut ws, _) = client.connect_to_url(url, None).await?;
                    if hello {
                        ws.next().await.ok_or("closed before the message")??;
                    }
                    kept.push(Box::new(ws));
                }
                Ok::<_, BoxError>(())
            })?
        }
        "yawc" | "yawc-tuned" => {
            let options = if name == "yawc" {
                yawc::Options::default()
            } else {
                floodgate_bench::clients::yawc_tuned_options()
            };
            rt.block_on(async {
                for _ in 0..n {
                    let mut ws = yawc::WebSocket::connect(url.parse()?)
                        .with_options(options.clone())
                        .await?;
                    if hello {
                        ws.next_frame().await?;
                    }
                    kept.push(Box::new(ws));
                }
                Ok::<_, BoxError>(())
            })?
        }
        "tokio-websockets" => rt.block_on(async {
            use futures_util::StreamExt;
            let builder = tokio_websockets::ClientBuilder::new().uri(url)?;
            for _ in 0..n {
                let (mut ws, _) = builder.connect().await?;
                if hello {
                    ws.next().await.ok_or("closed before the message")??;
                }
                kept.push(Box::new(ws));
            }
            Ok::<_, BoxError>(())
        })?,
        "fastwebsockets" => rt.block_on(async {
            for _ in 0..n {
                let stream = handshake::client_connect_tokio(url)?;
                let mut ws = fastwebsockets::WebSocket::after_handshake(
                    stream,
                    fastwebsockets::Role::Client,
                );
                if hello {
                    ws.read_frame().await?;
                }
                kept.push(Box::new(ws));
            }
            Ok::<_, BoxError>(())
        })?,
        #[cfg(feature = "floodgate-client")]
        "floodgate-async" => rt.block_on(async {
            for _ in 0..n {
                let mut ws = floodgate::tokio::connect(url).await?;
                if hello {
                    ws.recv().await?;
                }
                kept.push(Box::new(ws));
            }
            Ok::<_, BoxError>(())
        })?,
        #[cfg(feature = "floodgate-client")]
        "floodgate-async-buffered" => {
            let client = floodgate::Client::default();
            let held = rt.block_on(async {
                let mut held = Vec::with_capacity(n);
                for _ in 0..n {
                    let ws = client.connect_buffered_async(url).await?;
                    if hello {
                        ws.recv().await?;
                    }
                    held.push(ws);
                }
                Ok::<_, BoxError>(held)
            })?;
            for ws in held {
                kept.push(Box::new(ws));
            }
        }
        #[cfg(feature = "floodgate-client")]
        "floodgate" => {
            for _ in 0..n {
                let mut ws = floodgate::connect(url)?;
                if hello {
                    ws.recv()?;
                }
                kept.push(Box::new(ws));
            }
        }
        #[cfg(feature = "floodgate-client")]
        "floodgate-buffered" => {
            let client = floodgate::Client::default();
            for _ in 0..n {
                let ws = client.connect_buffered(url)?;
                if hello {
                    ws.recv()?;
                }
                kept.push(Box::new(ws));
            }
        }
        other => return Err(format!("unknown client {other}").into()),
    }
    Ok(kept)
}

/// The server child: accepts upgrades on a free loopback port (printed as
/// `listening on PORT`), sends one 16-byte binary message on `/hello`, then
/// reads until the client goes.
fn serve() -> Result<(), BoxError> {
    let rt = runtime()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        println!("listening on {}", listener.local_addr()?.port());
        std::io::stdout().flush()?;
        loop {
            let (stream, _) = listener.accept().await?;
            tokio::spawn(async move {
                let _ = serve_one(stream).await;
            });
        }
    })
}

async fn serve_one(mut stream: tokio::net::TcpStream) -> Result<(), BoxError> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut head = Vec::with_capacity(512);
    let mut byte = [0u8; 256];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut byte).await?;
        if n == 0 || head.len() > 8192 {
            return Ok(());
        }
        head.extend_from_slice(&byte[..n]);
    }
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut request = httparse::Request::new(&mut headers);
    request.parse(&head)?;
    let key = request
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("sec-websocket-key"))
        .map(|h| String::from_utf8_lossy(h.value).into_owned())
        .ok_or("no key")?;
    let hello = request.path == Some("/hello");
    let mut answer = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n\r\n",
        handshake::accept_key(&key)
    )
    .into_bytes();
    if hello {
        answer.extend_from_slice(&[0x82, 16]);
        answer.extend_from_slice(b"0123456789abcdef");
    }
    stream.write_all(&answer).await?;
    let mut sink = [0u8; 64];
    while stream.read(&mut sink).await? > 0 {}
    Ok(())
}
