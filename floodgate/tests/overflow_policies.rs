//! Each overflow policy against a fast local server ([`FloodServer`]) that
//! sends numbered messages on several channels, with a consumer slowed on
//! purpose: what arrives, in what order, what is counted, and that the
//! buffer never holds more than its limits.

mod support;

use floodgate::buffer::{
    BufferConfig, BufferError, Class, Conflate, Overflow, Priority, Shed, Stats,
};
use floodgate::{BufferedWebSocket, Error, ErrorKind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};
use support::flood::{
    assert_adds_up, assert_in_global_order, assert_in_order_per_channel, assert_server_closed,
    assert_within_limits, channel_key, flood_client, globals, messages_in_channel, FloodConfig,
    FloodServer, Numbered,
};

/// Payload bytes of every flood message in these tests.
const SIZE: usize = 100;

fn connect(server: &FloodServer, buffer: BufferConfig) -> BufferedWebSocket {
    flood_client(buffer)
        .connect_buffered(&server.url())
        .expect("connect to the flood server")
}

/// Takes every message until the connection ends, sleeping `pause` after
/// each; returns their numbers and how the connection ended.
fn consume(ws: &BufferedWebSocket, pause: Duration) -> (Vec<Numbered>, Error) {
    let mut got = Vec::new();
    loop {
        match ws.recv() {
            Ok(message) => {
                got.push(Numbered::of(&message));
                if !pause.is_zero() {
                    thread::sleep(pause);
                }
            }
            Err(end) => return (got, end),
        }
    }
}

fn channel_of(message: &floodgate::Message) -> u64 {
    Numbered::of(message).channel
}

// ----- Block ----------------------------------------------------------------

#[test]
fn block_delivers_every_message_in_order_and_makes_the_server_wait() {
    const MAX_MESSAGES: usize = 32;
    const MAX_BYTES: usize = 64 << 10;
    // Each consumed message costs at least this.
    const PAUSE: Duration = Duration::from_millis(2);
    let config = FloodConfig {
        messages: 600,
        channels: 4,
        size: SIZE,
        ..FloodConfig::default()
    };
    let server = FloodServer::start(config.clone());
    let ws = connect(
        &server,
        BufferConfig::new()
            .max_messages(MAX_MESSAGES)
            .max_bytes(MAX_BYTES)
            .overflow(Overflow::Block),
    );
    let (got, end) = consume(&ws, PAUSE);
    let report = server.finish();
    assert_server_closed(&end, &report, &config);

    // Everything, in order, no gap: globally and so in every channel.
    assert_eq!(globals(&got), (0..config.messages).collect::<Vec<_>>());
    for n in &got {
        assert_eq!(n.channel, n.global % config.channels);
        assert_eq!(n.seq, n.global / config.channels);
    }

    let s = ws.stats();
    assert_adds_up(&s);
    assert_eq!(s.received, config.messages);
    assert_eq!(s.delivered, config.messages);
    assert_eq!(
        (s.dropped_oldest, s.dropped_newest, s.conflated, s.filtered),
        (0, 0, 0, 0)
    );
    assert_within_limits(&s, MAX_MESSAGES, MAX_BYTES);
    // The message limit was reached (so the limit above was tested), and
    // the reader then waited.
    assert_eq!(s.high_water_messages, MAX_MESSAGES as u64);
    assert!(s.blocked > Duration::ZERO, "the reader never waited: {s:?}");

    // The server felt it. Once the buffer is full, the reader reads the
    // socket again only after the whole batch of its last read (a few KiB:
    // the small receive buffer holds dozens of these messages) has found
    // room, and it is woken for room only every MAX_MESSAGES / 8 messages
    // taken; meanwhile the kernel buffers on both sides stay full and the
    // server's write cannot complete. So some write waits for several
    // consumer pauses; without backpressure a write takes microseconds.
    let floor = PAUSE * (MAX_MESSAGES as u32 / 8);
    assert!(
        report.longest_write >= floor,
        "the server's longest write took {:?}, under {floor:?}: its writes did not block",
        report.longest_write
    );
}

#[test]
fn block_keeps_the_buffer_within_its_byte_limit() {
    const MAX_BYTES: usize = 2048;
    const SIZE: usize = 200;
    let config = FloodConfig {
        messages: 300,
        channels: 3,
        size: SIZE,
        ..FloodConfig::default()
    };
    let server = FloodServer::start(config.clone());
    let ws = connect(
        &server,
        BufferConfig::new()
            .max_messages(1000)
            .max_bytes(MAX_BYTES)
            .overflow(Overflow::Block),
    );
    let (got, end) = consume(&ws, Duration::from_millis(1));
    let report = server.finish();
    assert_server_closed(&end, &report, &config);
    assert_eq!(globals(&got), (0..config.messages).collect::<Vec<_>>());

    let s = ws.stats();
    assert_adds_up(&s);
    assert_eq!(s.delivered, config.messages);
    assert_within_limits(&s, 1000, MAX_BYTES);
    // The byte limit is what stopped the reader: it filled up to within one
    // message of it.
    assert!(
        s.high_water_bytes > (MAX_BYTES - SIZE) as u64,
        "the buffer never came near its byte limit: {s:?}"
    );
    assert!(s.high_water_messages <= (MAX_BYTES / SIZE) as u64);
}

// ----- shedding policies ------------------------------------------------------

#[test]
fn drop_oldest_counts_every_message_and_keeps_the_newest() {
    const MAX_MESSAGES: usize = 16;
    const MAX_BYTES: usize = 64 << 10;
    let config = FloodConfig {
        messages: 1000,
        channels: 4,
        size: SIZE,
        ..FloodConfig::default()
    };
    let server = FloodServer::start(config.clone());
    let ws = connect(
        &server,
        BufferConfig::new()
            .max_messages(MAX_MESSAGES)
            .max_bytes(MAX_BYTES)
            .overflow(Overflow::DropOldest),
    );
    let (got, end) = consume(&ws, Duration::from_millis(1));
    let report = server.finish();
    assert_server_closed(&end, &report, &config);

    let s = ws.stats();
    assert_adds_up(&s);
    assert_eq!(s.received, config.messages, "{s:?}");
    assert_eq!(s.buffered, 0);
    assert_eq!(s.delivered, got.len() as u64);
    assert!(s.dropped_oldest > 0, "no pressure: {s:?}");
    assert_eq!((s.dropped_newest, s.conflated, s.filtered), (0, 0, 0));
    assert_eq!(s.delivered + s.dropped_oldest, config.messages);
    assert_within_limits(&s, MAX_MESSAGES, MAX_BYTES);
    assert_eq!(s.high_water_messages, MAX_MESSAGES as u64);

    assert_in_global_order(&got);
    assert_in_order_per_channel(&got);
    // Nothing arrives after the last MAX_MESSAGES messages to push them
    // out: every one of them is delivered.
    let newest: Vec<u64> = (config.messages - MAX_MESSAGES as u64..config.messages).collect();
    assert_eq!(globals(&got[got.len() - MAX_MESSAGES..]), newest);
}

#[test]
fn drop_newest_counts_every_message_and_keeps_the_oldest() {
    const MAX_MESSAGES: usize = 16;
    const MAX_BYTES: usize = 64 << 10;
    let config = FloodConfig {
        messages: 1000,
        channels: 4,
        size: SIZE,
        ..FloodConfig::default()
    };
    let server = FloodServer::start(config.clone());
    let ws = connect(
        &server,
        BufferConfig::new()
            .max_messages(MAX_MESSAGES)
            .max_bytes(MAX_BYTES)
            .overflow(Overflow::DropNewest),
    );
    let (got, end) = consume(&ws, Duration::from_millis(1));
    let report = server.finish();
    assert_server_closed(&end, &report, &config);

    let s = ws.stats();
    assert_adds_up(&s);
    assert_eq!(s.received, config.messages, "{s:?}");
    assert_eq!(s.buffered, 0);
    assert_eq!(s.delivered, got.len() as u64);
    assert!(s.dropped_newest > 0, "no pressure: {s:?}");
    assert_eq!((s.dropped_oldest, s.conflated, s.filtered), (0, 0, 0));
    assert_eq!(s.delivered + s.dropped_newest, config.messages);
    assert_within_limits(&s, MAX_MESSAGES, MAX_BYTES);
    assert_eq!(s.high_water_messages, MAX_MESSAGES as u64);

    assert_in_global_order(&got);
    assert_in_order_per_channel(&got);
    // What was buffered first is never shed.
    let oldest: Vec<u64> = (0..MAX_MESSAGES as u64).collect();
    assert_eq!(globals(&got[..MAX_MESSAGES]), oldest);
}

#[test]
fn conflate_by_channel_delivers_the_last_message_of_every_channel() {
    const CHANNELS: u64 = 8;
    // One slot per channel: conflation alone keeps the buffer within
    // bounds, so no message is dropped, only replaced.
    const MAX_MESSAGES: usize = CHANNELS as usize;
    const MAX_BYTES: usize = 64 << 10;
    let config = FloodConfig {
        messages: 2000,
        channels: CHANNELS,
        size: SIZE,
        ..FloodConfig::default()
    };
    let server = FloodServer::start(config.clone());
    let ws = connect(
        &server,
        BufferConfig::new()
            .max_messages(MAX_MESSAGES)
            .max_bytes(MAX_BYTES)
            .overflow(Overflow::Conflate(
                Conflate::by(channel_key).otherwise(Overflow::DropOldest),
            )),
    );
    let (got, end) = consume(&ws, Duration::from_millis(1));
    let report = server.finish();
    assert_server_closed(&end, &report, &config);

    let s = ws.stats();
    assert_adds_up(&s);
    assert_eq!(s.received, config.messages, "{s:?}");
    assert_eq!(s.buffered, 0);
    assert_eq!(s.delivered, got.len() as u64);
    assert!(s.conflated > 0, "no pressure: {s:?}");
    assert_eq!((s.dropped_oldest, s.dropped_newest, s.filtered), (0, 0, 0));
    assert_eq!(s.delivered + s.conflated, config.messages);
    assert_within_limits(&s, MAX_MESSAGES, MAX_BYTES);

    assert_in_order_per_channel(&got);
    for channel in 0..CHANNELS {
        let last = messages_in_channel(config.messages, CHANNELS, channel) - 1;
        let delivered_last = got
            .iter()
            .filter(|n| n.channel == channel)
            .map(|n| n.seq)
            .max();
        assert_eq!(
            delivered_last,
            Some(last),
            "channel {channel}: its last message ({last}) was not delivered"
        );
    }
}

// ----- priorities --------------------------------------------------------------

#[test]
fn drop_oldest_never_sheds_a_critical_message_and_filters_discarded_ones() {
    const MAX_MESSAGES: usize = 16;
    const MAX_BYTES: usize = 64 << 10;
    const CRITICAL: u64 = 0;
    const DISCARDED: u64 = 1;
    let config = FloodConfig {
        messages: 800,
        channels: 4,
        size: SIZE,
        ..FloodConfig::default()
    };
    let server = FloodServer::start(config.clone());
    let ws = connect(
        &server,
        BufferConfig::new()
            .max_messages(MAX_MESSAGES)
            .max_bytes(MAX_BYTES)
            .overflow(Overflow::DropOldest)
            .classify(|m| match channel_of(m) {
                CRITICAL => Class::Keep(Priority::CRITICAL),
                DISCARDED => Class::Discard,
                _ => Class::Keep(Priority::NORMAL),
            }),
    );
    let mut got = Vec::new();
    let end = loop {
        match ws.recv() {
            Ok(message) => {
                let n = Numbered::of(&message);
                let expected = if n.channel == CRITICAL {
                    Priority::CRITICAL
                } else {
                    Priority::NORMAL
                };
                assert_eq!(message.priority(), expected, "{n:?}");
                got.push(n);
                thread::sleep(Duration::from_millis(1));
            }
            Err(end) => break end,
        }
    };
    let report = server.finish();
    assert_server_closed(&end, &report, &config);

    let s = ws.stats();
    assert_adds_up(&s);
    assert_eq!(s.received, config.messages, "{s:?}");
    assert_eq!(s.delivered, got.len() as u64);
    assert!(s.dropped_oldest > 0, "no pressure: {s:?}");
    assert_within_limits(&s, MAX_MESSAGES, MAX_BYTES);
    assert_eq!(
        s.filtered,
        messages_in_channel(config.messages, config.channels, DISCARDED)
    );
    assert!(got.iter().all(|n| n.channel != DISCARDED));

    // Every critical message, in order, none missing.
    let critical: Vec<u64> = got
        .iter()
        .filter(|n| n.channel == CRITICAL)
        .map(|n| n.seq)
        .collect();
    let all = messages_in_channel(config.messages, config.channels, CRITICAL);
    assert_eq!(critical, (0..all).collect::<Vec<_>>());
    assert_in_global_order(&got);
}

// ----- Disconnect ---------------------------------------------------------------

#[test]
fn disconnect_ends_with_fell_behind_after_the_buffered_messages_and_closes_with_1008() {
    const MAX_MESSAGES: usize = 16;
    const MAX_BYTES: usize = 64 << 10;
    let config = FloodConfig {
        messages: 2000,
        channels: 4,
        size: SIZE,
        ..FloodConfig::default()
    };
    let server = FloodServer::start(config.clone());
    let ws = connect(
        &server,
        BufferConfig::new()
            .max_messages(MAX_MESSAGES)
            .max_bytes(MAX_BYTES)
            .overflow(Overflow::Disconnect),
    );
    let (got, end) = consume(&ws, Duration::from_millis(2));
    let report = server.finish();

    let ErrorKind::Buffer(BufferError::FellBehind {
        buffered_messages,
        buffered_bytes,
        max_messages,
        max_bytes,
        received,
        delivered,
    }) = *end.kind()
    else {
        panic!("expected FellBehind, got {end:?}");
    };
    assert_eq!((max_messages, max_bytes), (MAX_MESSAGES, MAX_BYTES));
    // The message limit was the one reached.
    assert_eq!(buffered_messages, MAX_MESSAGES);
    assert_eq!(buffered_bytes, MAX_MESSAGES * SIZE);
    // `received` counts the message that did not fit.
    assert_eq!(received, delivered + buffered_messages as u64 + 1);
    assert!(received < config.messages);
    // The consumer got every message buffered before the error, in order,
    // then the error.
    assert_eq!(globals(&got), (0..received - 1).collect::<Vec<_>>());
    assert!(matches!(
        ws.recv().unwrap_err().kind(),
        ErrorKind::AlreadyClosed
    ));

    let s = ws.stats();
    assert_adds_up(&s);
    // The error's figures are taken when the message did not fit; the
    // rest of the messages decoded from the same read are dropped too, and
    // counted, after it.
    assert!(s.received >= received);
    assert_eq!(s.delivered, received - 1);
    assert_eq!(
        s.dropped_newest,
        1 + (s.received - received),
        "the message that did not fit and the rest of its read"
    );
    assert_within_limits(&s, MAX_MESSAGES, MAX_BYTES);

    assert_eq!(report.client_close, Some(Some(1008)), "{report:?}");
    assert!(report.client_closed_first);
    assert!(
        report.sent < config.messages,
        "the server was stopped early"
    );
}

// ----- BlockFor ------------------------------------------------------------------

#[test]
fn block_for_waits_first_then_sheds_and_still_adds_up() {
    const MAX_MESSAGES: usize = 16;
    const MAX_BYTES: usize = 64 << 10;
    // Long enough that the test sees the reader waiting before it sheds,
    // even on a loaded machine.
    const LIMIT: Duration = Duration::from_millis(400);
    let config = FloodConfig {
        messages: 500,
        channels: 4,
        size: SIZE,
        ..FloodConfig::default()
    };
    let server = FloodServer::start(config.clone());
    let ws = connect(
        &server,
        BufferConfig::new()
            .max_messages(MAX_MESSAGES)
            .max_bytes(MAX_BYTES)
            .overflow(Overflow::BlockFor(LIMIT, Shed::DropNewest)),
    );
    // The consumer stalls. First the buffer fills and the reader waits
    // without shedding...
    let started = Instant::now();
    let full = loop {
        let s = ws.stats();
        if s.buffered == MAX_MESSAGES as u64 {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the buffer never filled: {s:?}"
        );
        thread::sleep(Duration::from_millis(1));
    };
    assert_eq!(
        (full.dropped_oldest, full.dropped_newest),
        (0, 0),
        "shed at once instead of waiting: {full:?}"
    );
    // ...then, once it has waited LIMIT, it sheds.
    let shedding = loop {
        let s = ws.stats();
        if s.dropped_newest > 0 {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "never shed: {s:?}"
        );
        thread::sleep(Duration::from_millis(5));
    };
    assert!(
        shedding.blocked >= LIMIT,
        "shed after waiting only {:?}",
        shedding.blocked
    );
    assert_adds_up(&shedding);

    let (got, end) = consume(&ws, Duration::ZERO);
    let report = server.finish();
    assert_server_closed(&end, &report, &config);

    let s = ws.stats();
    assert_adds_up(&s);
    assert_eq!(s.received, config.messages, "{s:?}");
    assert_eq!(s.buffered, 0);
    assert_eq!(s.delivered, got.len() as u64);
    assert!(s.dropped_newest > 0);
    assert_eq!((s.dropped_oldest, s.conflated, s.filtered), (0, 0, 0));
    assert_within_limits(&s, MAX_MESSAGES, MAX_BYTES);
    assert_in_global_order(&got);
    // What filled the buffer while it waited is all there.
    let first: Vec<u64> = (0..MAX_MESSAGES as u64).collect();
    assert_eq!(globals(&got[..MAX_MESSAGES]), first);
}

// ----- the invariant under concurrency ----------------------------------------------

#[test]
fn stats_read_while_messages_flow_always_add_up() {
    const MAX_MESSAGES: usize = 8;
    const MAX_BYTES: usize = 64 << 10;
    const DISCARDED: u64 = 5;
    let config = FloodConfig {
        messages: 3000,
        channels: 6,
        size: SIZE,
        ..FloodConfig::default()
    };
    let server = FloodServer::start(config.clone());
    // Every counter moves: channels 0 and 1 conflate, the others are shed
    // oldest first when full, channel 5 is filtered out.
    let ws = connect(
        &server,
        BufferConfig::new()
            .max_messages(MAX_MESSAGES)
            .max_bytes(MAX_BYTES)
            .classify(|m| match channel_of(m) {
                DISCARDED => Class::Discard,
                _ => Class::Keep(Priority::NORMAL),
            })
            .overflow(Overflow::Conflate(
                Conflate::by(|m| channel_key(m).filter(|_| channel_of(m) < 2))
                    .otherwise(Overflow::DropOldest),
            )),
    );

    let done = Arc::new(AtomicBool::new(false));
    let observer = {
        let buffer = ws.buffer().clone();
        let done = done.clone();
        let total = config.messages;
        thread::spawn(move || {
            let mut last = Stats::default();
            let (mut snapshots, mut in_flight) = (0u64, 0u64);
            while !done.load(Ordering::SeqCst) {
                let s = buffer.stats();
                assert_adds_up(&s);
                assert!(s.buffered <= MAX_MESSAGES as u64, "{s:?}");
                assert!(s.buffered_bytes <= MAX_BYTES as u64, "{s:?}");
                assert_within_limits(&s, MAX_MESSAGES, MAX_BYTES);
                for (name, now, before) in [
                    ("received", s.received, last.received),
                    ("delivered", s.delivered, last.delivered),
                    ("dropped_oldest", s.dropped_oldest, last.dropped_oldest),
                    ("dropped_newest", s.dropped_newest, last.dropped_newest),
                    ("conflated", s.conflated, last.conflated),
                    ("filtered", s.filtered, last.filtered),
                ] {
                    assert!(now >= before, "{name} went back from {before} to {now}");
                }
                snapshots += 1;
                if s.received > 0 && s.received < total {
                    in_flight += 1;
                }
                last = s;
                thread::yield_now();
            }
            (snapshots, in_flight)
        })
    };

    let mut got = Vec::new();
    let end = loop {
        match ws.recv_batch(4, Duration::from_secs(10)) {
            Ok(batch) => {
                got.extend(batch.iter().map(|m| Numbered::of(m)));
                thread::sleep(Duration::from_millis(1));
            }
            Err(end) => break end,
        }
    };
    done.store(true, Ordering::SeqCst);
    let (snapshots, in_flight) = observer.join().expect("the observer's checks failed");
    let report = server.finish();
    assert_server_closed(&end, &report, &config);

    assert!(
        in_flight > 0,
        "no snapshot was taken while messages flowed ({snapshots} in all)"
    );
    let s = ws.stats();
    assert_adds_up(&s);
    assert_eq!(s.received, config.messages, "{s:?}");
    assert_eq!(s.delivered, got.len() as u64);
    assert!(
        s.conflated > 0 && s.dropped_oldest > 0 && s.filtered > 0,
        "some counter never moved: {s:?}"
    );
    assert_eq!(
        s.filtered,
        messages_in_channel(config.messages, config.channels, DISCARDED)
    );
    assert_in_order_per_channel(&got);
}
