//! `Overflow::Spill` against a fast local server ([`FloodServer`]) and a
//! consumer slowed on purpose: every message arrives, in order, the reader
//! never waits, the counters add up; the disk budget and a real full disk
//! hand over to the fallback; a durable spill resumes where a closed (or
//! killed) process stopped.

mod support;

use floodgate::buffer::{
    BufferConfig, BufferError, Overflow, SpillConfig, SpillError, SpillFallback, SpillRefusal,
    Stats,
};
use floodgate::{BufferedWebSocket, Error, ErrorKind};
use std::path::Path;
use std::thread;
use std::time::Duration;
use support::flood::{
    assert_adds_up, assert_in_global_order, assert_server_closed, flood_client, globals,
    FloodConfig, FloodServer, Numbered,
};

/// Memory limits small enough that almost everything spills.
const MAX_MESSAGES: usize = 32;
const MAX_BYTES: usize = 16 << 10;

fn spill_buffer(spill: SpillConfig) -> BufferConfig {
    BufferConfig::new()
        .max_messages(MAX_MESSAGES)
        .max_bytes(MAX_BYTES)
        .overflow(Overflow::Spill(spill))
}

fn connect(server: &FloodServer, buffer: BufferConfig) -> BufferedWebSocket {
    flood_client(buffer)
        .connect_buffered(&server.url())
        .expect("connect to the flood server")
}

/// Takes every message until the connection ends, sleeping `pause` every
/// `every` messages.
fn consume(ws: &BufferedWebSocket, every: usize, pause: Duration) -> (Vec<Numbered>, Error) {
    let mut got = Vec::new();
    loop {
        match ws.recv() {
            Ok(message) => {
                got.push(Numbered::of(&message));
                if got.len() % every == 0 {
                    thread::sleep(pause);
                }
            }
            Err(end) => return (got, end),
        }
    }
}

/// The entries of `dir` (the spill's files, or its private directories).
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn spill_delivers_every_message_in_order_without_making_the_server_wait() {
    let dir = tempfile::tempdir().unwrap();
    let config = FloodConfig {
        messages: 3000,
        size: 200,
        ..FloodConfig::default()
    };
    let server = FloodServer::start(config.clone());
    let ws = connect(&server, spill_buffer(SpillConfig::new(dir.path())));
    // The server sends everything before the consumer has taken much: the
    // rest waits on disk.
    let first = ws.recv().unwrap();
    thread::sleep(Duration::from_millis(300));
    let mid = ws.stats();
    let (mut got, end) = consume(&ws, 100, Duration::from_millis(1));
    got.insert(0, Numbered::of(&first));
    let report = server.finish();
    assert_server_closed(&end, &report, &config);

    assert_eq!(globals(&got), (0..config.messages).collect::<Vec<_>>());
    assert_eq!(
        mid.received, config.messages,
        "the reader read everything at once: {mid:?}"
    );
    assert!(mid.buffered_disk > 0 && mid.disk_bytes > 0, "{mid:?}");
    assert!(mid.high_water_messages <= MAX_MESSAGES as u64, "{mid:?}");
    assert_adds_up(&mid);

    let s = ws.stats();
    assert_adds_up(&s);
    assert_eq!(s.delivered, config.messages);
    assert_eq!((s.buffered, s.buffered_disk), (0, 0));
    assert!(s.spilled > 0 && s.spilled < config.messages, "{s:?}");
    assert_eq!(s.blocked, Duration::ZERO, "the reader never waited: {s:?}");
    assert_eq!(
        (s.dropped_newest, s.spill_refused, s.spill_errors),
        (0, 0, 0)
    );
    assert!(s.high_water_disk_bytes >= mid.disk_bytes);
    // Ephemeral: a private directory, removed with the connection.
    assert_eq!(entries(dir.path()).len(), 1, "{:?}", entries(dir.path()));
    drop(ws);
    assert!(entries(dir.path()).is_empty(), "{:?}", entries(dir.path()));
}

#[test]
fn a_fast_consumer_takes_straight_from_the_hand_off_and_memory() {
    let dir = tempfile::tempdir().unwrap();
    let config = FloodConfig {
        messages: 5000,
        size: 100,
        ..FloodConfig::default()
    };
    let server = FloodServer::start(config.clone());
    let ws = connect(&server, spill_buffer(SpillConfig::new(dir.path())));
    let (got, end) = consume(&ws, usize::MAX, Duration::ZERO);
    let report = server.finish();
    assert_server_closed(&end, &report, &config);
    assert_eq!(globals(&got), (0..config.messages).collect::<Vec<_>>());
    let s = ws.stats();
    assert_adds_up(&s);
    assert_eq!(s.buffered, 0);
}

#[test]
fn the_disk_budget_hands_over_to_each_fallback() {
    let config = FloodConfig {
        messages: 2000,
        size: 200,
        ..FloodConfig::default()
    };
    // About 100 records of 218 bytes fit in 24 KiB.
    let budget = 24 << 10;
    for fallback in [
        SpillFallback::DropNewest,
        SpillFallback::Disconnect,
        SpillFallback::Block,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let server = FloodServer::start(config.clone());
        let ws = connect(
            &server,
            spill_buffer(
                SpillConfig::new(dir.path())
                    .max_disk_bytes(budget)
                    .segment_bytes(4 << 10)
                    .fallback(fallback),
            ),
        );
        // Let the disk fill before consuming.
        thread::sleep(Duration::from_millis(300));
        let (got, end) = consume(&ws, 50, Duration::from_millis(1));
        let report = server.finish();
        let s: Stats = ws.stats();
        assert_adds_up(&s);
        assert_in_global_order(&got);
        assert!(
            s.disk_bytes <= budget && s.high_water_disk_bytes <= budget,
            "{s:?}"
        );
        assert!(s.spill_refused > 0, "{fallback:?}: {s:?}");
        match fallback {
            SpillFallback::DropNewest => {
                assert_server_closed(&end, &report, &config);
                assert_eq!(s.received, config.messages);
                assert!(s.dropped_newest > 0);
                assert_eq!(s.delivered + s.dropped_newest, config.messages, "{s:?}");
                assert!(s.spill_refused >= s.dropped_newest);
            }
            SpillFallback::Disconnect => {
                match end.kind() {
                    ErrorKind::Buffer(BufferError::SpillRefused(SpillRefusal::DiskBudget {
                        max,
                        ..
                    })) => assert_eq!(*max, budget),
                    other => panic!("expected SpillRefused(DiskBudget), got {other:?}"),
                }
                assert!(end.to_string().contains("max_disk_bytes"), "{end}");
                assert_eq!(report.client_close, Some(Some(1008)));
                // What was buffered before the end is still delivered.
                assert_eq!(globals(&got), (0..got.len() as u64).collect::<Vec<_>>());
                assert_eq!(s.spill_refused, 1);
            }
            SpillFallback::Block => {
                assert_server_closed(&end, &report, &config);
                assert_eq!(globals(&got), (0..config.messages).collect::<Vec<_>>());
                assert!(s.blocked > Duration::ZERO, "{s:?}");
            }
        }
    }
}

#[test]
fn a_message_larger_than_the_whole_budget_is_refused_loudly() {
    let dir = tempfile::tempdir().unwrap();
    let config = FloodConfig {
        messages: 200,
        size: 1000,
        ..FloodConfig::default()
    };
    let server = FloodServer::start(config.clone());
    let ws = connect(
        &server,
        BufferConfig::new()
            .max_messages(1)
            .max_bytes(1024)
            .overflow(Overflow::Spill(
                SpillConfig::new(dir.path()).max_disk_bytes(512),
            )),
    );
    thread::sleep(Duration::from_millis(200));
    let (_, end) = consume(&ws, usize::MAX, Duration::ZERO);
    server.finish();
    match end.kind() {
        ErrorKind::Buffer(BufferError::SpillRefused(SpillRefusal::TooLarge { len, .. })) => {
            assert_eq!(*len, 1000)
        }
        other => panic!("expected SpillRefused(TooLarge), got {other:?}"),
    }
}

#[test]
fn a_durable_spill_delivers_what_the_last_connection_left_first() {
    let dir = tempfile::tempdir().unwrap();
    let spill = || SpillConfig::new(dir.path()).durable();
    let config = FloodConfig {
        messages: 1500,
        size: 150,
        ..FloodConfig::default()
    };
    let server = FloodServer::start(config.clone());
    let ws = connect(&server, spill_buffer(spill()));
    let mut first = Vec::new();
    for _ in 0..400 {
        first.push(Numbered::of(&ws.recv().unwrap()));
    }
    // Everything received (the server closed), most of it on disk.
    let s = loop {
        let s = ws.stats();
        if s.received == config.messages {
            break s;
        }
        thread::sleep(Duration::from_millis(10));
    };
    assert_adds_up(&s);
    // A second buffer on the directory while this one lives is refused
    // (after waiting a moment for a hand-over).
    let other = FloodServer::start(FloodConfig {
        messages: 0,
        ..FloodConfig::default()
    });
    match flood_client(spill_buffer(spill())).connect_buffered(&other.url()) {
        Err(e) => match e.kind() {
            ErrorKind::Spill(SpillError::Locked { dir: locked }) => assert_eq!(locked, dir.path()),
            other => panic!("expected Spill(Locked), got {other:?}"),
        },
        Ok(_) => panic!("two durable buffers on one directory"),
    }
    drop(other);
    drop(ws);
    server.finish();
    assert!(
        entries(dir.path()).iter().any(|n| n.ends_with(".seg")),
        "the spill stays on disk: {:?}",
        entries(dir.path())
    );

    // Started again on the directory: the rest, in order, nothing twice.
    let server = FloodServer::start(FloodConfig {
        messages: 0,
        ..FloodConfig::default()
    });
    let ws = connect(&server, spill_buffer(spill()));
    let (rest, end) = consume(&ws, usize::MAX, Duration::ZERO);
    assert!(
        matches!(end.kind(), ErrorKind::ConnectionClosed(_)),
        "{end}"
    );
    let s = ws.stats();
    assert_eq!(s.recovered, config.messages - first.len() as u64, "{s:?}");
    assert_eq!(s.received, s.recovered);
    assert_adds_up(&s);
    let all: Vec<u64> = globals(&first).into_iter().chain(globals(&rest)).collect();
    assert_eq!(all, (0..config.messages).collect::<Vec<_>>());
    drop(ws);
    server.finish();
    // Everything delivered: no segment left.
    assert!(
        !entries(dir.path()).iter().any(|n| n.ends_with(".seg")),
        "{:?}",
        entries(dir.path())
    );
}
