//! A multi-channel subscriber on the event-driven App: the latest price
//! per channel wins (conflation), four workers handle the messages with
//! the order kept per channel, and every second it prints where each
//! channel is and what the buffer did. Ctrl-C closes it cleanly.
//!
//!     cargo run --release -p floodgate --example subscriber
//!     cargo run --release -p floodgate --example subscriber -- --seconds 10
//!     cargo run --release -p floodgate --example subscriber -- ws://HOST:PORT/feed
//!
//! Without a URL it starts the embedded feed server (20,000 messages/s on
//! 8 channels), so it runs with nothing else. With a URL, the server is
//! expected to send JSON text messages with a `channel` field (like
//! `floodgate serve`'s `/feed`). It runs until Ctrl-C, or for
//! `--seconds N`.

use floodgate::app::{App, RunOptions};
use floodgate::buffer::{BufferConfig, Conflate, Key, Overflow};
use floodgate::reconnect::Backoff;
use floodgate_server::feed::{Feed, FeedConfig, FeedMessage};
use floodgate_server::Server;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn channel_of(message: &floodgate::Message) -> Option<Key> {
    let feed = FeedMessage::parse(message.as_text()?)?;
    Some(Key::from(u64::from(feed.channel)))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut url = None;
    let mut seconds = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => seconds = Some(args.next().ok_or("--seconds N")?.parse::<f64>()?),
            _ => url = Some(arg),
        }
    }
    // The embedded feed, unless a URL was given.
    let server = match url {
        Some(_) => None,
        None => Some(Server::bind(
            "127.0.0.1:0",
            Feed::new(FeedConfig {
                rate: Some(20_000.0),
                ping_interval: Some(Duration::from_millis(500)),
                ..FeedConfig::default()
            })
            .handler(),
        )?),
    };
    let url = url.unwrap_or_else(|| server.as_ref().map(|s| s.url()).unwrap_or_default());

    // channel -> (latest sequence number handled, messages handled)
    let board: Arc<Mutex<BTreeMap<u32, (u64, u64)>>> = Arc::default();
    let handled_by = board.clone();
    let app = App::builder(&url)
        .buffer(
            BufferConfig::new()
                .max_messages(1000)
                .overflow(Overflow::Conflate(Conflate::by(channel_of))),
        )
        .workers_by_key(4, channel_of)
        .on_open(|ctx| {
            println!(
                "connected to {} (connection {})",
                ctx.url(),
                ctx.connection()
            )
        })
        .on_message(move |_ctx, message| {
            let Some(feed) = message.as_text().and_then(FeedMessage::parse) else {
                return;
            };
            // A slow handler: 200 µs per message, on four workers.
            std::thread::sleep(Duration::from_micros(200));
            let mut board = handled_by.lock().unwrap();
            let entry = board.entry(feed.channel).or_default();
            assert!(feed.seq >= entry.0, "order per channel is kept");
            *entry = (feed.seq, entry.1 + 1);
        })
        .on_error(|_ctx, error| eprintln!("error: {error}"))
        .on_close(|_ctx, frame| println!("closed: {frame:?}"))
        .build()?;

    // Ctrl-C (or the time limit) closes the App: close handshake, workers
    // finish, the rest of the buffer is handled.
    let handle = app.handle();
    ctrlc::set_handler({
        let handle = handle.clone();
        move || handle.close()
    })?;
    let reporter = {
        let (handle, board) = (handle.clone(), board.clone());
        std::thread::spawn(move || {
            let started = Instant::now();
            loop {
                std::thread::sleep(Duration::from_secs(1));
                if handle.is_closing() {
                    return;
                }
                let board = board.lock().unwrap();
                let line: Vec<String> = board
                    .iter()
                    .map(|(ch, (seq, n))| format!("ch{ch}: #{seq} ({n})"))
                    .collect();
                println!(
                    "[{:>4.1}s] {}",
                    started.elapsed().as_secs_f64(),
                    line.join("  ")
                );
                if seconds.is_some_and(|s| started.elapsed().as_secs_f64() >= s) {
                    handle.close();
                    return;
                }
            }
        })
    };

    let summary = app.run_forever(
        &RunOptions::new()
            .ping_interval(Duration::from_secs(5))
            .ping_timeout(Duration::from_secs(5))
            .reconnect(Backoff::new()),
    )?;
    let _ = reporter.join();
    if let Some(stats) = summary.last_stats {
        println!(
            "received {}, handled {}, conflated {} (latest value per channel kept), dropped {}",
            stats.received,
            stats.delivered,
            stats.conflated,
            stats.dropped_oldest + stats.dropped_newest
        );
        assert_eq!(
            stats.received,
            stats.delivered
                + stats.buffered
                + stats.dropped_oldest
                + stats.dropped_newest
                + stats.conflated
                + stats.filtered
        );
    }
    Ok(())
}
