//! What each overflow policy does to a consumer that cannot keep up.
//!
//! Starts an embedded server that sends numbered ticks on 8 channels as
//! fast as it can (pinging every 100 ms), and consumes them deliberately
//! slowly through a buffered connection, once per policy. Each run prints
//! what was delivered and what was shed, and why:
//!
//!     cargo run --release -p floodgate --example slow_consumer
//!     cargo run --release -p floodgate --example slow_consumer -- conflate 50000
//!
//! Arguments: a policy (`block`, `block-for`, `drop-oldest`,
//! `drop-newest`, `conflate`, `disconnect`; default: all of them) and the
//! number of messages (default 20000).

use floodgate::buffer::{BufferConfig, Conflate, Key, Overflow, Shed};
use floodgate::{Client, ErrorKind};
use floodgate_server::Server;
use std::time::{Duration, Instant};

const CHANNELS: u64 = 8;
/// How long the consumer spends on each message.
const WORK: Duration = Duration::from_micros(50);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let only = args.next();
    let count: u64 = args
        .next()
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(20_000);

    let server = Server::bind("127.0.0.1:0", move |mut ws, _request| {
        // Small kernel buffers on both ends (see the client's
        // `recv_buffer_size` below), so that the backlog is where the
        // policy can see it rather than hidden in megabytes of socket
        // buffers.
        let _ = socket2::SockRef::from(ws.get_ref().tcp()).set_send_buffer_size(64 << 10);
        let mut last_ping = Instant::now();
        for seq in 0..count {
            let tick = format!("{} {seq} {}", seq % CHANNELS, "x".repeat(64));
            if ws.send_text(&tick).is_err() {
                return; // the client left (Disconnect)
            }
            if last_ping.elapsed() >= Duration::from_millis(100) {
                last_ping = Instant::now();
                let _ = ws.ping(b"still there?");
            }
        }
        let _ = ws.close(1000, "that was all");
    })?;

    println!(
        "{count} messages on {CHANNELS} channels; the consumer spends {WORK:?} per message; \
         buffer: 1000 messages"
    );
    println!(
        "{:<12} {:>9} {:>8} {:>8} {:>9} {:>9} {:>10} {:>6}  end",
        "policy", "delivered", "dropped", "dropped", "conflated", "high", "wait p99", "pings"
    );
    println!(
        "{:<12} {:>9} {:>8} {:>8} {:>9} {:>9} {:>10} {:>6}",
        "", "", "oldest", "newest", "", "water", "", ""
    );
    for (name, overflow) in policies() {
        if only.as_deref().is_some_and(|only| only != name) {
            continue;
        }
        let ws = Client::builder()
            .recv_buffer_size(64 << 10)
            .buffer(BufferConfig::new().max_messages(1000).overflow(overflow))
            .connect_buffered(&server.url())?;
        let mut last_per_channel = [None; CHANNELS as usize];
        let end = loop {
            match ws.recv() {
                Ok(message) => {
                    let text = message.as_text().unwrap_or_default();
                    let mut fields = text.split(' ');
                    let channel: usize = fields.next().unwrap_or("0").parse()?;
                    let seq: u64 = fields.next().unwrap_or("0").parse()?;
                    // Whatever is shed, what arrives on a channel is in order.
                    assert!(last_per_channel[channel] < Some(seq), "out of order");
                    last_per_channel[channel] = Some(seq);
                    spin(WORK);
                }
                Err(e) if matches!(e.kind(), ErrorKind::ConnectionClosed(_)) => {
                    break "closed by the server".to_owned()
                }
                Err(e) if matches!(e.kind(), ErrorKind::Buffer(_)) => {
                    break "fell behind: disconnected (1008)".to_owned()
                }
                Err(e) => break format!("error: {e}"),
            }
        };
        let s = ws.stats();
        assert_eq!(
            s.received,
            s.delivered
                + s.buffered
                + s.dropped_oldest
                + s.dropped_newest
                + s.conflated
                + s.filtered
        );
        println!(
            "{name:<12} {:>9} {:>8} {:>8} {:>9} {:>9} {:>10.1?} {:>6}  {end}",
            s.delivered,
            s.dropped_oldest,
            s.dropped_newest,
            s.conflated,
            s.high_water_messages,
            s.queue_wait.p99,
            s.pings_answered,
        );
    }
    Ok(())
}

fn policies() -> Vec<(&'static str, Overflow)> {
    let channel = |m: &floodgate::Message| -> Option<Key> {
        let text = m.as_text()?;
        Some(Key::from(text.split(' ').next()?.parse::<u64>().ok()?))
    };
    vec![
        ("block", Overflow::Block),
        (
            "block-for",
            Overflow::BlockFor(Duration::from_millis(20), Shed::DropOldest),
        ),
        ("drop-oldest", Overflow::DropOldest),
        ("drop-newest", Overflow::DropNewest),
        ("conflate", Overflow::Conflate(Conflate::by(channel))),
        ("disconnect", Overflow::Disconnect),
    ]
}

/// Busy work, more even than `sleep` for short durations.
fn spin(d: Duration) {
    let start = Instant::now();
    while start.elapsed() < d {
        std::hint::spin_loop();
    }
}
