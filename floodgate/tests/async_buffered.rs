//! The buffered connection on tokio (`floodgate::tokio::BufferedWebSocket`)
//! under a slow consumer, against the flood server of the blocking tests
//! (`support/flood.rs`): every overflow policy with the same assertions as
//! `overflow_policies.rs` (counters add up, limits hold, order kept, what
//! each policy keeps), and pings answered while the consumer sleeps, as in
//! `slow_consumer.rs`.
#![cfg(feature = "tokio")]

mod support;

use floodgate::buffer::{BufferConfig, BufferError, Conflate, Overflow, Shed, SpillConfig};
use floodgate::tokio::BufferedWebSocket;
use floodgate::{Error, ErrorKind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::flood::{
    assert_adds_up, assert_in_global_order, assert_in_order_per_channel, assert_server_closed,
    assert_within_limits, channel_key, flood_client, globals, messages_in_channel, FloodConfig,
    FloodReport, FloodServer, Numbered,
};

const SIZE: usize = 100;

async fn connect(server: &FloodServer, buffer: BufferConfig) -> BufferedWebSocket {
    flood_client(buffer)
        .connect_buffered_async(&server.url())
        .await
        .expect("connect to the flood server")
}

/// Takes every message until the connection ends, sleeping `pause` after
/// each; returns their numbers and how the connection ended.
async fn consume(
    ws: &BufferedWebSocket,
    pause: Duration,
    progress: Option<&AtomicU64>,
) -> (Vec<Numbered>, Error) {
    let mut got = Vec::new();
    loop {
        match ws.recv().await {
            Ok(message) => {
                got.push(Numbered::of(message.message()));
                if let Some(progress) = progress {
                    progress.fetch_add(1, Ordering::SeqCst);
                }
                if !pause.is_zero() {
                    tokio::time::sleep(pause).await;
                }
            }
            Err(end) => return (got, end),
        }
    }
}

/// `FloodServer::finish` joins the server's thread: off the runtime.
async fn finish(server: FloodServer) -> FloodReport {
    tokio::task::spawn_blocking(move || server.finish())
        .await
        .unwrap()
}

fn flood(messages: u64, channels: u64) -> FloodConfig {
    FloodConfig {
        messages,
        channels,
        size: SIZE,
        ..FloodConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_delivers_every_message_in_order_and_makes_the_server_wait() {
    const MAX_MESSAGES: usize = 32;
    const MAX_BYTES: usize = 64 << 10;
    const PAUSE: Duration = Duration::from_millis(2);
    let config = flood(600, 4);
    let server = FloodServer::start(config.clone());
    let ws = connect(
        &server,
        BufferConfig::new()
            .max_messages(MAX_MESSAGES)
            .max_bytes(MAX_BYTES)
            .overflow(Overflow::Block),
    )
    .await;
    let (got, end) = consume(&ws, PAUSE, None).await;
    let report = finish(server).await;
    assert_server_closed(&end, &report, &config);
    assert_eq!(globals(&got), (0..config.messages).collect::<Vec<_>>());
    let s = ws.stats();
    assert_adds_up(&s);
    assert_eq!(
        (s.received, s.delivered),
        (config.messages, config.messages)
    );
    assert_eq!(
        (s.dropped_oldest, s.dropped_newest, s.conflated, s.filtered),
        (0, 0, 0, 0)
    );
    assert_within_limits(&s, MAX_MESSAGES, MAX_BYTES);
    assert_eq!(s.high_water_messages, MAX_MESSAGES as u64);
    assert!(s.blocked > Duration::ZERO, "the reader never waited: {s:?}");
    // The reader task stopped reading while the buffer was full, so the
    // server's writes blocked (see overflow_policies.rs for the floor).
    let floor = PAUSE * (MAX_MESSAGES as u32 / 8);
    assert!(
        report.longest_write >= floor,
        "{:?} < {floor:?}",
        report.longest_write
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_oldest_counts_every_message_and_keeps_the_newest() {
    const MAX_MESSAGES: usize = 16;
    const MAX_BYTES: usize = 64 << 10;
    let config = flood(2000, 4);
    let server = FloodServer::start(config.clone());
    let ws = connect(
        &server,
        BufferConfig::new()
            .max_messages(MAX_MESSAGES)
            .max_bytes(MAX_BYTES)
            .overflow(Overflow::DropOldest),
    )
    .await;
    let (got, end) = consume(&ws, Duration::from_millis(2), None).await;
    let report = finish(server).await;
    assert_server_closed(&end, &report, &config);
    let s = ws.stats();
    assert_adds_up(&s);
    assert_eq!(s.received, config.messages, "{s:?}");
    assert_eq!((s.buffered, s.delivered), (0, got.len() as u64));
    assert!(s.dropped_oldest > 0, "no pressure: {s:?}");
    assert_eq!((s.dropped_newest, s.conflated, s.filtered), (0, 0, 0));
    assert_within_limits(&s, MAX_MESSAGES, MAX_BYTES);
    assert_in_global_order(&got);
    let newest: Vec<u64> = (config.messages - MAX_MESSAGES as u64..config.messages).collect();
    assert_eq!(globals(&got[got.len() - MAX_MESSAGES..]), newest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_newest_counts_every_message_and_keeps_the_oldest() {
    const MAX_MESSAGES: usize = 16;
    const MAX_BYTES: usize = 64 << 10;
    let config = flood(2000, 4);
    let server = FloodServer::start(config.clone());
    let ws = connect(
        &server,
        BufferConfig::new()
            .max_messages(MAX_MESSAGES)
            .max_bytes(MAX_BYTES)
            .overflow(Overflow::DropNewest),
    )
    .await;
    // Stall first, so the first MAX_MESSAGES fill the buffer.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (got, end) = consume(&ws, Duration::from_millis(2), None).await;
    let report = finish(server).await;
    assert_server_closed(&end, &report, &config);
    let s = ws.stats();
    assert_adds_up(&s);
    assert_eq!(s.received, config.messages, "{s:?}");
    assert_eq!((s.buffered, s.delivered), (0, got.len() as u64));
    assert!(s.dropped_newest > 0, "no pressure: {s:?}");
    assert_eq!((s.dropped_oldest, s.conflated, s.filtered), (0, 0, 0));
    assert_eq!(s.delivered + s.dropped_newest, config.messages);
    assert_within_limits(&s, MAX_MESSAGES, MAX_BYTES);
    assert_in_global_order(&got);
    let oldest: Vec<u64> = (0..MAX_MESSAGES as u64).collect();
    assert_eq!(globals(&got[..MAX_MESSAGES]), oldest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflate_by_channel_delivers_the_last_message_of_every_channel() {
    const CHANNELS: u64 = 8;
    const MAX_MESSAGES: usize = CHANNELS as usize;
    const MAX_BYTES: usize = 64 << 10;
    let config = flood(2000, CHANNELS);
    let server = FloodServer::start(config.clone());
    let ws = connect(
        &server,
        BufferConfig::new()
            .max_messages(MAX_MESSAGES)
            .max_bytes(MAX_BYTES)
            .overflow(Overflow::Conflate(
                Conflate::by(channel_key).otherwise(Overflow::DropOldest),
            )),
    )
    .await;
    let (got, end) = consume(&ws, Duration::from_millis(1), None).await;
    let report = finish(server).await;
    assert_server_closed(&end, &report, &config);
    let s = ws.stats();
    assert_adds_up(&s);
    assert_eq!(s.received, config.messages, "{s:?}");
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
        assert_eq!(delivered_last, Some(last), "channel {channel}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_ends_with_fell_behind_after_the_buffered_messages_and_closes_with_1008() {
    const MAX_MESSAGES: usize = 16;
    const MAX_BYTES: usize = 64 << 10;
    let config = flood(2000, 4);
    let server = FloodServer::start(config.clone());
    let ws = connect(
        &server,
        BufferConfig::new()
            .max_messages(MAX_MESSAGES)
            .max_bytes(MAX_BYTES)
            .overflow(Overflow::Disconnect),
    )
    .await;
    let (got, end) = consume(&ws, Duration::from_millis(2), None).await;
    let report = finish(server).await;
    let ErrorKind::Buffer(BufferError::FellBehind {
        buffered_messages,
        received,
        delivered,
        ..
    }) = *end.kind()
    else {
        panic!("expected FellBehind, got {end:?}");
    };
    assert_eq!(buffered_messages, MAX_MESSAGES);
    assert_eq!(received, delivered + buffered_messages as u64 + 1);
    assert_eq!(globals(&got), (0..received - 1).collect::<Vec<_>>());
    assert!(matches!(
        ws.recv().await.unwrap_err().kind(),
        ErrorKind::AlreadyClosed
    ));
    let s = ws.stats();
    assert_adds_up(&s);
    assert_eq!(s.delivered, received - 1);
    assert_eq!(s.dropped_newest, 1 + (s.received - received));
    assert_eq!(report.client_close, Some(Some(1008)), "{report:?}");
    assert!(report.client_closed_first);
    assert!(report.sent < config.messages);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_for_waits_first_then_sheds_and_still_adds_up() {
    const MAX_MESSAGES: usize = 16;
    const MAX_BYTES: usize = 64 << 10;
    const LIMIT: Duration = Duration::from_millis(400);
    let config = flood(500, 4);
    let server = FloodServer::start(config.clone());
    let ws = connect(
        &server,
        BufferConfig::new()
            .max_messages(MAX_MESSAGES)
            .max_bytes(MAX_BYTES)
            .overflow(Overflow::BlockFor(LIMIT, Shed::DropNewest)),
    )
    .await;
    let started = Instant::now();
    let full = loop {
        let s = ws.stats();
        if s.buffered == MAX_MESSAGES as u64 {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "never filled: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    assert_eq!(
        (full.dropped_oldest, full.dropped_newest),
        (0, 0),
        "{full:?}"
    );
    let shedding = loop {
        let s = ws.stats();
        if s.dropped_newest > 0 {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "never shed: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert!(
        shedding.blocked >= LIMIT,
        "shed after {:?}",
        shedding.blocked
    );
    assert_adds_up(&shedding);
    let (got, end) = consume(&ws, Duration::ZERO, None).await;
    let report = finish(server).await;
    assert_server_closed(&end, &report, &config);
    let s = ws.stats();
    assert_adds_up(&s);
    assert_eq!(s.received, config.messages, "{s:?}");
    assert_eq!((s.buffered, s.delivered), (0, got.len() as u64));
    assert!(s.dropped_newest > 0);
    assert_in_global_order(&got);
    let first: Vec<u64> = (0..MAX_MESSAGES as u64).collect();
    assert_eq!(globals(&got[..MAX_MESSAGES]), first);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pings_are_answered_promptly_while_the_consumer_sleeps_under_drop_oldest() {
    const MAX_MESSAGES: usize = 16;
    const PING_BOUND: Duration = Duration::from_millis(250);
    let progress = Arc::new(AtomicU64::new(0));
    let config = FloodConfig {
        messages: 1500,
        channels: 4,
        size: SIZE,
        ping_every: Some(Duration::from_millis(100)),
        spread_over: Some(Duration::from_millis(1500)),
        progress: Some(progress.clone()),
        ..FloodConfig::default()
    };
    let server = FloodServer::start(config.clone());
    let ws = connect(
        &server,
        BufferConfig::new()
            .max_messages(MAX_MESSAGES)
            .overflow(Overflow::DropOldest),
    )
    .await;
    let (got, end) = consume(&ws, Duration::from_millis(20), Some(&progress)).await;
    let report = finish(server).await;
    assert_server_closed(&end, &report, &config);
    let s = ws.stats();
    assert_eq!(s.received, config.messages);
    assert_eq!(s.delivered, got.len() as u64);
    assert!(s.dropped_oldest > 0, "the consumer kept up: {s:?}");
    assert!(report.pings.len() >= 5, "only {} pings", report.pings.len());
    for (id, ping) in report.pings.iter().enumerate() {
        let rtt = ping
            .round_trip()
            .unwrap_or_else(|| panic!("ping {id} never answered"));
        assert!(rtt <= PING_BOUND, "ping {id} took {rtt:?}");
    }
    assert_eq!(report.unexpected_pongs, 0);
    assert_eq!(s.pings_answered, report.pings.len() as u64, "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spill_delivers_everything_in_order_and_answers_every_ping() {
    let dir = tempfile::tempdir().unwrap();
    let config = FloodConfig {
        messages: 3000,
        channels: 4,
        size: 300,
        ping_every: Some(Duration::from_millis(50)),
        spread_over: Some(Duration::from_millis(600)),
        ..FloodConfig::default()
    };
    let server = FloodServer::start(config.clone());
    let ws = connect(
        &server,
        BufferConfig::new()
            .max_messages(16)
            .max_bytes(8 << 10)
            .overflow(Overflow::Spill(SpillConfig::new(dir.path()))),
    )
    .await;
    // Slower than the feed: the backlog goes to disk.
    let mut got = Vec::new();
    let end = loop {
        match ws.recv().await {
            Ok(message) => {
                got.push(Numbered::of(message.message()));
                if got.len() % 10 == 0 {
                    tokio::time::sleep(Duration::from_millis(3)).await;
                }
            }
            Err(end) => break end,
        }
    };
    let report = finish(server).await;
    assert_server_closed(&end, &report, &config);
    assert_eq!(globals(&got), (0..config.messages).collect::<Vec<_>>());
    let s = ws.stats();
    assert_adds_up(&s);
    assert!(s.spilled > 0, "nothing spilled: {s:?}");
    assert_eq!(s.blocked, Duration::ZERO, "{s:?}");
    assert!(report.pings.len() >= 5, "only {} pings", report.pings.len());
    for (id, ping) in report.pings.iter().enumerate() {
        assert!(ping.round_trip().is_some(), "ping {id} never answered");
    }
    drop(ws);
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "the spill is removed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_stream_and_close_of_a_buffered_connection() {
    use futures_util::StreamExt;
    let server = floodgate_server::Server::bind("127.0.0.1:0", floodgate_server::echo).unwrap();
    let mut ws = floodgate::Client::builder()
        .connect_buffered_async(&server.url())
        .await
        .unwrap();
    for i in 0..50 {
        ws.send_text(&format!("m{i}")).await.unwrap();
    }
    let mut got = Vec::new();
    while got.len() < 50 {
        let batch = ws.recv_batch(64, Duration::from_secs(10)).await.unwrap();
        assert!(!batch.is_empty() && batch.len() <= 64);
        got.extend(batch.into_iter().map(|d| d.into_message()));
    }
    let expected: Vec<_> = (0..50)
        .map(|i| floodgate::Message::text(format!("m{i}")))
        .collect();
    assert_eq!(got, expected);
    ws.send_text("last").await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap().message().as_text(),
        Some("last")
    );
    ws.close(1000, "").await.unwrap();
    assert!(ws.next().await.is_none(), "the stream ends after the close");
    let s = ws.stats();
    assert_eq!((s.received, s.delivered), (51, 51));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_oldest_never_sheds_a_critical_message_and_filters_discarded_ones() {
    use floodgate::buffer::{Class, Priority};
    const MAX_MESSAGES: usize = 16;
    const MAX_BYTES: usize = 64 << 10;
    const CRITICAL: u64 = 0;
    const DISCARDED: u64 = 1;
    let config = flood(800, 4);
    let server = FloodServer::start(config.clone());
    let ws = connect(
        &server,
        BufferConfig::new()
            .max_messages(MAX_MESSAGES)
            .max_bytes(MAX_BYTES)
            .overflow(Overflow::DropOldest)
            .classify(|m| match Numbered::of(m).channel {
                CRITICAL => Class::Keep(Priority::CRITICAL),
                DISCARDED => Class::Discard,
                _ => Class::Keep(Priority::NORMAL),
            }),
    )
    .await;
    let mut got = Vec::new();
    let end = loop {
        match ws.recv().await {
            Ok(message) => {
                let n = Numbered::of(message.message());
                let expected = if n.channel == CRITICAL {
                    Priority::CRITICAL
                } else {
                    Priority::NORMAL
                };
                assert_eq!(message.priority(), expected, "{n:?}");
                got.push(n);
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Err(end) => break end,
        }
    };
    let report = finish(server).await;
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
    let critical: Vec<u64> = got
        .iter()
        .filter(|n| n.channel == CRITICAL)
        .map(|n| n.seq)
        .collect();
    let all = messages_in_channel(config.messages, config.channels, CRITICAL);
    assert_eq!(critical, (0..all).collect::<Vec<_>>());
    assert_in_global_order(&got);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_applications_classifier_and_frame_observer_may_send_from_the_reader_task() {
    // They run on the reader task, but never under the lock that the
    // connection's senders need: sending from them must not deadlock.
    let server = floodgate_server::Server::bind("127.0.0.1:0", floodgate_server::echo).unwrap();
    let sender: Arc<std::sync::OnceLock<floodgate::tokio::Sender>> = Arc::default();
    let (from_classifier, from_observer) = (sender.clone(), sender.clone());
    let sent = |slot: &std::sync::OnceLock<floodgate::tokio::Sender>, text: &'static str| {
        let sender = slot.get().unwrap().clone();
        tokio::spawn(async move { sender.send_text(text).await.unwrap() });
    };
    let config = BufferConfig::new()
        .classify(move |m| {
            if m.as_text() == Some("classify me") {
                sent(&from_classifier, "from the classifier");
            }
            floodgate::buffer::Class::Keep(floodgate::buffer::Priority::NORMAL)
        })
        .on_data_frame(move |f| {
            if &f.payload[..] == b"observe me" {
                sent(&from_observer, "from the observer");
            }
        });
    let ws = floodgate::Client::builder()
        .buffer(config)
        .connect_buffered_async(&server.url())
        .await
        .unwrap();
    sender.set(ws.sender()).unwrap();
    ws.send_text("classify me").await.unwrap();
    ws.send_text("observe me").await.unwrap();
    let mut got = Vec::new();
    while got.len() < 4 {
        let m = tokio::time::timeout(Duration::from_secs(5), ws.recv())
            .await
            .expect("no deadlock")
            .unwrap();
        got.push(m.as_text().unwrap().to_owned());
    }
    for expected in ["from the classifier", "from the observer"] {
        assert!(got.iter().any(|g| g == expected), "{got:?}");
    }
}
