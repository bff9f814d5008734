//! The async App on tokio: a slow async handler under a fast feed, with a
//! bounded buffer that sheds the oldest messages, keepalive pings, and
//! `on_message` running on 4 lanes, in order per channel.
//!
//!     cargo run --release -p floodgate --features tokio --example app_async
//!
//! The example starts the embedded feed server (4,000 messages a second
//! over 8 channels, a ping every 100 ms). Each message takes the handler
//! 5 ms of awaiting, so 4 lanes handle about 800 a second: the buffer
//! holds the newest 500, the rest is shed and counted, and the server's
//! pings are still answered at once by the reader task. After 3 seconds a
//! timer task closes the App through its handle, and the stats are
//! printed; they add up.

use floodgate::buffer::{BufferConfig, Key, Overflow};
use floodgate::tokio::app::{App, RunOptions};
use floodgate_server::feed::{Feed, FeedConfig, FeedMessage};
use floodgate_server::Server;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let feed = Feed::new(FeedConfig {
        channels: 8,
        rate: Some(4000.0),
        ping_interval: Some(Duration::from_millis(100)),
        ..FeedConfig::default()
    });
    let server = Server::bind("127.0.0.1:0", feed.handler())?;

    let handled = Arc::new(AtomicU64::new(0));
    let counter = handled.clone();
    let app = App::builder(server.url())
        .buffer(
            BufferConfig::new()
                .max_messages(500)
                .overflow(Overflow::DropOldest),
        )
        .workers_by_key(4, |message| {
            FeedMessage::parse(message.as_text()?).map(|f| Key::from(u64::from(f.channel)))
        })
        .on_open(|ctx| async move {
            println!("open: connection {} to {}", ctx.connection(), ctx.url());
        })
        .on_message(move |_ctx, message| {
            let handled = counter.clone();
            async move {
                // The slow part of the application: a database write, a
                // call to another service...
                tokio::time::sleep(Duration::from_millis(5)).await;
                if handled.fetch_add(1, Ordering::Relaxed) % 500 == 0 {
                    println!("handled: {}", message.as_text().unwrap_or("<binary>"));
                }
            }
        })
        .on_error(|_ctx, error| eprintln!("error: {error}"))
        .on_close(|_ctx, frame| async move { println!("close: {frame:?}") })
        .build()?;

    let handle = app.handle();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(3)).await;
        handle.close();
    });
    let summary = app
        .run_forever(
            &RunOptions::new()
                .ping_interval(Duration::from_secs(1))
                .ping_timeout(Duration::from_secs(5)),
        )
        .await?;

    let stats = summary.last_stats.expect("one connection");
    println!(
        "received {}, delivered {}, shed {} (oldest first), left {}; handled {}",
        stats.received,
        stats.delivered,
        stats.dropped_oldest,
        stats.buffered,
        handled.load(Ordering::Relaxed)
    );
    println!(
        "pings answered {}, slowest answer {:?}; longest wait in the buffer {:?}",
        stats.pings_answered, stats.max_ping_delay, stats.queue_wait.max
    );
    assert_eq!(
        stats.received,
        stats.delivered + stats.buffered + stats.dropped_oldest + stats.dropped_newest,
        "the counters add up"
    );
    Ok(())
}
