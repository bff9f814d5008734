//! What the command-line tests share: the binary as a user runs it, and
//! the servers it is pointed at (the embedded server, `floodgate-server`, with a
//! handler chosen per test, a plain TCP server that answers 404, and
//! `floodgate serve` itself as a child process).

#![allow(dead_code)] // each test file uses its own part

use floodgate::Message;
use floodgate_server::{RequestHead, Server, WebSocket};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// No command may take longer than this: a hang fails the test.
pub const LIMIT: Duration = Duration::from_secs(60);

/// The `floodgate` binary, with a time limit and no history file.
pub fn floodgate() -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::new(env!("CARGO_BIN_EXE_floodgate"));
    cmd.timeout(LIMIT).env_remove("RUST_LOG");
    cmd
}

/// Echoes `n` messages back, then closes with 1000.
pub fn echo_then_close(n: usize) -> Server {
    Server::bind("127.0.0.1:0", move |mut ws: WebSocket, _: RequestHead| {
        for _ in 0..n {
            let Ok(message) = ws.recv() else { return };
            if ws.send(message).is_err() {
                return;
            }
        }
        let _ = ws.close(1000, "done");
    })
    .expect("start the server")
}

/// Sends `messages`, then closes with `code`.
pub fn send_then_close(messages: Vec<Message>, code: u16) -> Server {
    Server::bind("127.0.0.1:0", move |mut ws: WebSocket, _: RequestHead| {
        for message in &messages {
            if ws.send(message.clone()).is_err() {
                return;
            }
        }
        let _ = ws.close(code, "test over");
    })
    .expect("start the server")
}

/// A server that sends `count` numbered text messages (`m00000 ...`,
/// padded to 100 bytes) on each connection, then keeps it open until the
/// client goes; `sent` counts the messages written.
pub fn numbered_then_wait(count: u64, sent: Arc<AtomicU64>) -> Server {
    Server::bind("127.0.0.1:0", move |mut ws: WebSocket, _: RequestHead| {
        for i in 0..count {
            if ws.send_text(&format!("m{i:05} {:.<93}", "")).is_err() {
                return;
            }
            sent.fetch_add(1, Ordering::SeqCst);
        }
        while ws.recv().is_ok() {}
    })
    .expect("start the server")
}

/// A plain TCP server that answers every request with 404 Not Found.
pub fn http_404() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}/missing", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
                head.push(byte[0]);
            }
            let _ = stream.write_all(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found",
            );
        }
    });
    url
}

/// `floodgate serve ...` running as a child process; killed when dropped.
pub struct ServeProcess {
    child: Child,
    /// `ws://127.0.0.1:PORT/`, from its first line.
    pub url: String,
}

impl ServeProcess {
    /// Starts `floodgate serve --bind 127.0.0.1:0 ARGS` and reads its URL.
    pub fn start(args: &[&str]) -> ServeProcess {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_floodgate"))
            .args(["serve", "--bind", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start floodgate serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("read the first line of floodgate serve");
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        ServeProcess { child, url }
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The output as UTF-8.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("UTF-8 output")
}

/// The JSON object `--stats` printed on the last line of stderr.
pub fn stats_of(out: &std::process::Output) -> serde_json::Value {
    let stderr = text(&out.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("no stats ({e}) in {stderr:?}"))
}

/// The row of a `bench` table that starts with `name`.
pub fn row<'a>(table: &'a str, name: &str) -> &'a str {
    table
        .lines()
        .find(|l| l.starts_with(name))
        .unwrap_or_else(|| panic!("no {name:?} row in {table}"))
}

/// Checks the invariant of the design on a stats object:
/// `received = delivered + buffered + dropped_oldest + dropped_newest +
/// conflated + filtered`.
pub fn assert_counters_add_up(stats: &serde_json::Value) {
    let n = |k: &str| {
        stats[k]
            .as_u64()
            .unwrap_or_else(|| panic!("{k} in {stats}"))
    };
    let accounted = n("delivered")
        + n("buffered")
        + n("dropped_oldest")
        + n("dropped_newest")
        + n("conflated")
        + n("filtered");
    assert_eq!(n("received"), accounted, "the counters add up: {stats}");
}

/// A message stored in a JetStream stream, as read back by nats-py.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JetStreamEntry {
    /// Its `Nats-Msg-Id` header.
    pub id: Option<String>,
    pub subject: String,
    pub body: Vec<u8>,
}

/// Every message of `stream` on the NATS server at `url`, in stream order,
/// read by an independent client: nats-py (`tests/read_jetstream.py`), not
/// the async-nats crate the bridge's sink uses. Its Python is
/// `$FLOODGATE_PYTHON`, or the project's `target/pyenv` (scripts/test's
/// `pyenv` step makes it, with nats-py from scripts/requirements-test.txt).
pub fn read_jetstream(url: &str, stream: &str) -> Vec<JetStreamEntry> {
    let python = std::env::var_os("FLOODGATE_PYTHON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/pyenv/bin/python")
        });
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/read_jetstream.py");
    let out = std::process::Command::new(&python)
        .arg(&script)
        .args([url, stream])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} ({e}): make the Python environment with \
                 `bash -c 'source scripts/common.sh && ensure_pyenv'` or set FLOODGATE_PYTHON",
                python.display()
            )
        });
    assert!(
        out.status.success(),
        "read_jetstream.py {url} {stream}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("JSON lines")
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
            let hex = v["body"].as_str().expect("a hex body");
            JetStreamEntry {
                id: v["id"].as_str().map(str::to_owned),
                subject: v["subject"].as_str().expect("a subject").to_owned(),
                body: (0..hex.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
                    .collect(),
            }
        })
        .collect()
}
