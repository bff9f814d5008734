//! A consumer much slower than the server must not starve the connection's
//! pings: the reader answers each ping as soon as it reads it, whatever the
//! consumer is doing. The [`FloodServer`] pings every 100 ms while it sends
//! and measures each round trip itself.
//!
//! Under `Block` the reader stops reading while the buffer is full, so a
//! ping sent after the data that filled it waits in the kernel with that
//! data: the last test pins down that behaviour (documented in
//! `docs/backpressure.md`) without timing it.

mod support;

use floodgate::buffer::{BufferConfig, Conflate, Key, Overflow, Stats};
use floodgate::{BufferedWebSocket, ErrorKind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;
use support::flood::{flood_client, FloodConfig, FloodReport, FloodServer, Numbered};

/// The longest ping round trip, measured by the server, that is accepted
/// while the consumer sleeps. Typical is well under 5 ms: the reader reads
/// the ping right behind the data before it and answers at once. The margin
/// is for a loaded 2-core CI machine running the test threads of several
/// files in parallel, where a thread may wait a few scheduler slices to run.
const PING_BOUND: Duration = Duration::from_millis(250);

const PING_EVERY: Duration = Duration::from_millis(100);
const SIZE: usize = 100;

/// Takes every message until the connection ends, sleeping `pause` after
/// each and counting them in `progress`.
fn consume(ws: &BufferedWebSocket, pause: Duration, progress: &AtomicU64) -> Vec<Numbered> {
    let mut got = Vec::new();
    loop {
        match ws.recv() {
            Ok(message) => {
                got.push(Numbered::of(&message));
                progress.fetch_add(1, Ordering::SeqCst);
                thread::sleep(pause);
            }
            Err(end) => {
                match end.kind() {
                    ErrorKind::ConnectionClosed(Some(frame)) => assert_eq!(frame.code.0, 1000),
                    other => panic!("expected the server's close (1000), got {other:?}"),
                }
                return got;
            }
        }
    }
}

/// Every ping the server sent was answered, once, and counted by the client.
fn assert_every_ping_answered(report: &FloodReport, stats: &Stats) {
    assert!(
        report.pings.len() >= 5,
        "the server sent only {} pings",
        report.pings.len()
    );
    for (id, ping) in report.pings.iter().enumerate() {
        assert!(ping.pong.is_some(), "ping {id} was never answered");
    }
    assert_eq!(report.unexpected_pongs, 0);
    assert_eq!(stats.pings_answered, report.pings.len() as u64, "{stats:?}");
}

fn assert_pings_within_bound(report: &FloodReport) {
    for (id, ping) in report.pings.iter().enumerate() {
        let rtt = ping.round_trip().expect("answered");
        assert!(
            rtt <= PING_BOUND,
            "ping {id} took {rtt:?} to be answered (bound {PING_BOUND:?}); all: {:?}",
            report
                .pings
                .iter()
                .map(|p| p.round_trip())
                .collect::<Vec<_>>()
        );
    }
}

/// A flood spread over one and a half seconds, one message a millisecond:
/// twenty times what a consumer sleeping 20 ms per message can take.
fn spread_flood(progress: &Arc<AtomicU64>) -> FloodConfig {
    FloodConfig {
        messages: 1500,
        channels: 4,
        size: SIZE,
        ping_every: Some(PING_EVERY),
        spread_over: Some(Duration::from_millis(1500)),
        progress: Some(progress.clone()),
        ..FloodConfig::default()
    }
}

#[test]
fn pings_are_answered_promptly_while_the_consumer_sleeps_under_drop_oldest() {
    const MAX_MESSAGES: usize = 16;
    let progress = Arc::new(AtomicU64::new(0));
    let config = spread_flood(&progress);
    let server = FloodServer::start(config.clone());
    let ws = flood_client(
        BufferConfig::new()
            .max_messages(MAX_MESSAGES)
            .overflow(Overflow::DropOldest),
    )
    .connect_buffered(&server.url())
    .expect("connect");
    let got = consume(&ws, Duration::from_millis(20), &progress);
    let report = server.finish();
    let stats = ws.stats();

    assert_eq!(report.sent, config.messages);
    assert_eq!(stats.received, config.messages);
    assert_eq!(stats.delivered, got.len() as u64);
    assert!(stats.dropped_oldest > 0, "the consumer kept up: {stats:?}");
    assert_eq!(stats.high_water_messages, MAX_MESSAGES as u64);
    assert_every_ping_answered(&report, &stats);
    assert_pings_within_bound(&report);
    // The pongs did not wait for the consumer: the last ping was answered
    // while the consumer had taken far fewer messages than were sent
    // before it (it takes at most one per 20 ms; the server sends one per
    // millisecond).
    let last = report.pings.last().expect("pings were sent");
    let taken = last.pong.expect("answered").progress;
    assert!(
        taken + (MAX_MESSAGES as u64) < last.after_messages,
        "the last ping came after {} messages and was answered when {taken} were taken",
        last.after_messages
    );
}

#[test]
fn pings_are_answered_promptly_while_the_consumer_sleeps_under_conflate() {
    const MAX_MESSAGES: usize = 8;
    let progress = Arc::new(AtomicU64::new(0));
    let config = spread_flood(&progress);
    let server = FloodServer::start(config.clone());
    let by_channel = |m: &floodgate::Message| Some(Key::from(Numbered::of(m).channel));
    let ws = flood_client(
        BufferConfig::new()
            .max_messages(MAX_MESSAGES)
            .overflow(Overflow::Conflate(Conflate::by(by_channel))),
    )
    .connect_buffered(&server.url())
    .expect("connect");
    let got = consume(&ws, Duration::from_millis(20), &progress);
    let report = server.finish();
    let stats = ws.stats();

    assert_eq!(report.sent, config.messages);
    assert_eq!(stats.received, config.messages);
    assert_eq!(stats.delivered, got.len() as u64);
    assert!(stats.conflated > 0, "the consumer kept up: {stats:?}");
    assert_every_ping_answered(&report, &stats);
    assert_pings_within_bound(&report);
}

#[test]
fn under_block_pings_wait_behind_the_data_until_the_consumer_catches_up() {
    const MAX_MESSAGES: usize = 16;
    // A small read chunk bounds how many messages the reader decodes ahead
    // of the buffer: at most this many bytes per read, plus one partial
    // frame left from the previous read.
    const READ_CHUNK: usize = 1024;
    const FRAME: usize = SIZE + 2; // 2-byte header below 126 bytes
                                   // Messages decoded but not yet taken by the consumer, at most: a full
                                   // buffer, one read's batch, and one taken but not yet counted.
    const AHEAD: u64 = MAX_MESSAGES as u64 + ((READ_CHUNK + FRAME) / FRAME) as u64 + 1;

    let progress = Arc::new(AtomicU64::new(0));
    let config = FloodConfig {
        messages: 300,
        channels: 4,
        size: SIZE,
        ping_every: Some(PING_EVERY),
        spread_over: None,
        progress: Some(progress.clone()),
        ..FloodConfig::default()
    };
    let server = FloodServer::start(config.clone());
    let ws = flood_client(
        BufferConfig::new()
            .max_messages(MAX_MESSAGES)
            .overflow(Overflow::Block),
    )
    .read_chunk_size(READ_CHUNK)
    .connect_buffered(&server.url())
    .expect("connect");
    let got = consume(&ws, Duration::from_millis(5), &progress);
    let report = server.finish();
    let stats = ws.stats();

    // Lossless, and every ping is answered in the end.
    assert_eq!(report.sent, config.messages);
    assert_eq!(got.len() as u64, config.messages);
    assert_every_ping_answered(&report, &stats);

    // A ping is read only after every message sent before it, and under
    // Block the reader holds at most AHEAD of those that the consumer has
    // not taken. So no pong can come before the consumer has taken all
    // but AHEAD of the messages sent before its ping: the ping waited
    // behind the data, for the consumer. (How long that is depends on the
    // consumer's speed; it is not asserted.)
    for (id, ping) in report.pings.iter().enumerate() {
        let taken = ping.pong.expect("answered").progress;
        assert!(
            taken + AHEAD >= ping.after_messages,
            "ping {id}, sent after {} messages, was answered when the consumer had taken only \
             {taken}: it overtook the data in front of it",
            ping.after_messages
        );
    }
    // And the waiting was real: the kernel buffers held enough data that
    // some ping could only be answered after the consumer took at least
    // 20 more messages.
    assert!(
        report.pings.iter().any(|p| p.after_messages >= AHEAD + 20),
        "no ping was sent behind a backlog: {:?}",
        report
            .pings
            .iter()
            .map(|p| p.after_messages)
            .collect::<Vec<_>>()
    );
}
