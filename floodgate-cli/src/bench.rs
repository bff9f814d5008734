//! `floodgate bench [URL]`: receive throughput and echo round-trip latency
//! against a server, with a progress bar and a result table.
//!
//! - `--mode echo` (the default with a URL): sends `--messages` messages of
//!   `--size` one at a time and waits for each echo; reports round trips
//!   per second and the latency percentiles.
//! - `--mode stream`: receives whatever the server sends for
//!   `--duration` (or until it closes) and reports messages and bytes per
//!   second. Point it at a server that streams, e.g. `floodgate serve`'s
//!   `/feed?rate=0&size=1024`.
//! - Without a URL, both run against the embedded server started in this
//!   process (its echo, and its feed at full speed). The embedded server
//!   writes one message per system call, so at small sizes it, not the
//!   client, sets the stream figure; the careful comparison with other
//!   clients is `floodgate-bench` (see BENCHMARKS.md).
//!
//! Both tests use the low-level `WebSocket`, the fastest path of the
//! library, on one connection each.

use crate::error::CliError;
use crate::table::Table;
use crate::units::{self, show, show_bytes, show_count};
use floodgate::{Client, Message};
use floodgate_server::feed::{Feed, FeedConfig};
use floodgate_server::{echo, Server};
use indicatif::{ProgressBar, ProgressStyle};
use std::time::{Duration, Instant};

/// Which tests to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Echo round trips (latency).
    Echo,
    /// Receive throughput.
    Stream,
    /// Both (only against the embedded server, or with --stream-url).
    Both,
}

/// Options of `floodgate bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// The server (default: the embedded server, started in this process).
    pub url: Option<String>,
    /// The tests to run (default: echo with a URL, both without).
    #[arg(long, value_enum)]
    pub mode: Option<Mode>,
    /// With --mode both and a URL: the URL of the stream test.
    #[arg(long, value_name = "URL")]
    pub stream_url: Option<String>,
    /// Message size (echo: what is sent; embedded stream: what the feed sends).
    #[arg(long, value_name = "SIZE", value_parser = units::size, default_value = "1KiB")]
    pub size: usize,
    /// Echo: round trips to time.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub messages: u64,
    /// Stream: how long to receive.
    #[arg(long, value_name = "DURATION", value_parser = units::duration, default_value = "3s")]
    pub duration: Duration,
    /// Offer permessage-deflate (and, on the embedded server, accept it):
    /// measures the cost of compression.
    #[arg(long)]
    pub compress: bool,
}

/// One test's result.
struct Outcome {
    test: &'static str,
    messages: u64,
    bytes: u64,
    elapsed: Duration,
    /// Sorted round trips (echo only).
    latencies: Vec<Duration>,
}

/// Runs `floodgate bench`.
pub fn run(args: BenchArgs) -> Result<(), CliError> {
    if args.messages == 0 || args.duration.is_zero() {
        return Err(CliError::Usage(
            "--messages and --duration must be above zero".into(),
        ));
    }
    let mode = args.mode.unwrap_or(if args.url.is_some() {
        Mode::Echo
    } else {
        Mode::Both
    });
    // Without a URL: the embedded server, echo at /echo, the feed at /feed.
    let embedded = match &args.url {
        Some(_) => None,
        None => {
            let feed = Feed::new(FeedConfig {
                rate: None,
                size: args.size,
                ping_interval: None,
                ..FeedConfig::default()
            });
            let options = floodgate_server::Options {
                compression: args.compress.then(floodgate::DeflateConfig::default),
                ..floodgate_server::Options::default()
            };
            Some(Server::bind_with(
                "127.0.0.1:0",
                options,
                move |ws, request| {
                    if request.path.starts_with("/feed") {
                        feed.serve(ws, &request);
                    } else {
                        echo(ws, request);
                    }
                },
            )?)
        }
    };
    let (echo_url, stream_url) = match (&embedded, &args.url) {
        (Some(server), _) => (
            format!("{}echo", server.url()),
            Some(format!("{}feed", server.url())),
        ),
        (None, Some(url)) => (
            url.clone(),
            match mode {
                Mode::Stream => Some(url.clone()),
                _ => args.stream_url.clone(),
            },
        ),
        (None, None) => unreachable!("a URL or the embedded server"),
    };
    if mode == Mode::Both && stream_url.is_none() {
        return Err(CliError::Usage(
            "--mode both with a URL needs --stream-url for the stream test (one server rarely \
             both echoes and streams)"
                .into(),
        ));
    }
    eprintln!(
        "floodgate bench against {}",
        args.url
            .as_deref()
            .unwrap_or("the embedded server (in this process)")
    );
    let mut outcomes = Vec::new();
    if matches!(mode, Mode::Echo | Mode::Both) {
        outcomes.push(echo_test(&echo_url, &args)?);
    }
    if let (Mode::Stream | Mode::Both, Some(url)) = (mode, &stream_url) {
        outcomes.push(stream_test(url, &args)?);
    }
    print!("{}", table(&outcomes).render());
    Ok(())
}

/// With `--compress`, says on stderr what the server accepted.
fn note_compression(args: &BenchArgs, ws: &floodgate::WebSocket) {
    if args.compress {
        match ws.deflate() {
            Some(negotiated) => eprintln!("compression: {negotiated}"),
            None => eprintln!("compression: the server declined permessage-deflate"),
        }
    }
}

fn client(args: &BenchArgs) -> Result<Client, CliError> {
    let mut builder = Client::builder();
    if args.compress {
        builder = builder.compression(floodgate::DeflateConfig::default());
    }
    Ok(builder.build()?)
}

fn echo_test(url: &str, args: &BenchArgs) -> Result<Outcome, CliError> {
    let mut ws = client(args)?.connect(url)?;
    note_compression(args, &ws);
    let payload = vec![b'x'; args.size];
    let bar = ProgressBar::new(args.messages);
    bar.set_style(
        ProgressStyle::with_template("echo   [{bar:40}] {pos}/{len} {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let mut latencies = Vec::with_capacity(args.messages as usize);
    let started = Instant::now();
    for i in 0..args.messages {
        let sent = Instant::now();
        ws.send_binary(&payload)?;
        let reply = loop {
            match ws.recv()? {
                Message::Binary(b) => break b,
                _ => continue,
            }
        };
        latencies.push(sent.elapsed());
        if reply.len() != payload.len() {
            return Err(CliError::Other(format!(
                "the server answered {} bytes to a {}-byte message: is it an echo server?",
                reply.len(),
                payload.len()
            )));
        }
        if i % 256 == 0 {
            bar.set_position(i);
        }
    }
    let elapsed = started.elapsed();
    bar.finish_and_clear();
    let _ = ws.close(1000, "bench done");
    latencies.sort_unstable();
    Ok(Outcome {
        test: "echo round trip",
        messages: args.messages,
        bytes: args.messages * args.size as u64,
        elapsed,
        latencies,
    })
}

fn stream_test(url: &str, args: &BenchArgs) -> Result<Outcome, CliError> {
    let mut ws = client(args)?.connect(url)?;
    note_compression(args, &ws);
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("stream {spinner} {elapsed} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    let started = Instant::now();
    let deadline = started + args.duration;
    let (mut messages, mut bytes) = (0u64, 0u64);
    ws.set_read_timeout(Some(Duration::from_millis(200)))?;
    let mut shown = started;
    let mut closed = false;
    while Instant::now() < deadline {
        match ws.recv() {
            Ok(message) => {
                messages += 1;
                bytes += message.len() as u64;
            }
            Err(e) if e.is_timeout() => {}
            Err(e) if e.is_closed() => {
                closed = true;
                break;
            }
            Err(e) => return Err(e.into()),
        }
        if messages % 1024 == 0 && shown.elapsed() >= Duration::from_millis(100) {
            shown = Instant::now();
            let secs = started.elapsed().as_secs_f64();
            bar.set_message(format!(
                "{} messages, {}/s",
                show_count(messages),
                show_count((messages as f64 / secs) as u64)
            ));
            bar.tick();
        }
    }
    let elapsed = started.elapsed();
    bar.finish_and_clear();
    if !closed {
        let _ = ws.close(1000, "bench done");
    }
    if messages == 0 {
        return Err(CliError::Other(format!(
            "the server sent nothing in {}: the stream test needs a server that streams \
             (e.g. floodgate serve's /feed?rate=0)",
            show(args.duration)
        )));
    }
    Ok(Outcome {
        test: "stream receive",
        messages,
        bytes,
        elapsed,
        latencies: Vec::new(),
    })
}

fn percentile(sorted: &[Duration], q: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

fn table(outcomes: &[Outcome]) -> Table {
    let mut t = Table::new([
        "test", "messages", "bytes", "seconds", "msgs/s", "MiB/s", "p50", "p99", "max",
    ]);
    for o in outcomes {
        let secs = o.elapsed.as_secs_f64().max(1e-9);
        let latency = |q| percentile(&o.latencies, q).map_or_else(|| "-".to_owned(), show);
        t.row([
            o.test.to_owned(),
            show_count(o.messages),
            show_bytes(o.bytes),
            format!("{secs:.2}"),
            show_count((o.messages as f64 / secs) as u64),
            format!("{:.1}", o.bytes as f64 / secs / (1024.0 * 1024.0)),
            latency(0.50),
            latency(0.99),
            latency(1.0),
        ]);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_the_rank_that_covers_the_share() {
        let ms: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&ms, 0.5), Some(Duration::from_millis(50)));
        assert_eq!(percentile(&ms, 0.99), Some(Duration::from_millis(99)));
        assert_eq!(percentile(&ms, 1.0), Some(Duration::from_millis(100)));
        assert_eq!(percentile(&[], 0.5), None);
    }
}
