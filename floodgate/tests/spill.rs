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

/// A server that sends nothing and closes: for a connection that only
/// takes what a durable spill left.
fn empty_server() -> FloodServer {
    FloodServer::start(FloodConfig {
        messages: 0,
        ..FloodConfig::default()
    })
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
    let other = empty_server();
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
    let server = empty_server();
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

// ----- A killed process ------------------------------------------------------

/// The child of [`a_durable_spill_killed_with_sigkill_resumes_without_loss_or_duplicates`]:
/// connects with a durable spill, takes `TAKE` messages (printing each),
/// then only prints its stats until it is killed or the connection ends.
/// Does nothing when run as a test of its own.
#[test]
fn durable_spill_child() {
    let (Ok(url), Ok(dir), Ok(take)) = (
        std::env::var("SPILL_CHILD_URL"),
        std::env::var("SPILL_CHILD_DIR"),
        std::env::var("SPILL_CHILD_TAKE"),
    ) else {
        return;
    };
    use std::io::Write;
    let take: usize = take.parse().unwrap();
    let ws = connect_url(&url, spill_buffer(SpillConfig::new(dir).durable()));
    let mut out = std::io::stdout().lock();
    let mut taken = 0;
    let ended = loop {
        if taken == take {
            break false;
        }
        match ws.recv() {
            Ok(message) => {
                writeln!(out, "msg {}", Numbered::of(&message).global).unwrap();
                taken += 1;
            }
            Err(_) => break true,
        }
    };
    loop {
        let s = ws.stats();
        writeln!(
            out,
            "stats {} {} {} {} {}",
            s.received, s.buffered, s.buffered_disk, s.recovered, ended
        )
        .unwrap();
        out.flush().unwrap();
        if ended {
            return;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

fn connect_url(url: &str, buffer: BufferConfig) -> BufferedWebSocket {
    flood_client(buffer)
        .connect_buffered(url)
        .expect("connect to the flood server")
}

/// What one child printed: the messages it took, and its last stats.
struct ChildRun {
    taken: Vec<u64>,
    /// received, buffered, buffered_disk, recovered, ended.
    stats: (u64, u64, u64, u64, bool),
}

/// Runs the child against `server` until `stop` says its stats are far
/// enough (then kills it with SIGKILL) or it ends by itself.
fn run_child(
    server: &FloodServer,
    dir: &Path,
    take: usize,
    stop: impl Fn(&(u64, u64, u64, u64, bool)) -> bool,
) -> ChildRun {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "durable_spill_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("SPILL_CHILD_URL", server.url())
        .env("SPILL_CHILD_DIR", dir)
        .env("SPILL_CHILD_TAKE", take.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut run = ChildRun {
        taken: Vec::new(),
        stats: (0, 0, 0, 0, false),
    };
    for line in lines {
        let line = line.unwrap();
        // libtest writes "test durable_spill_child ... " before the
        // child's first line, on the same line.
        let line = match line.find("msg ").or_else(|| line.find("stats ")) {
            Some(at) => &line[at..],
            None => continue,
        };
        if let Some(n) = line.strip_prefix("msg ") {
            run.taken.push(n.parse().unwrap());
        } else if let Some(stats) = line.strip_prefix("stats ") {
            let f: Vec<&str> = stats.split(' ').collect();
            run.stats = (
                f[0].parse().unwrap(),
                f[1].parse().unwrap(),
                f[2].parse().unwrap(),
                f[3].parse().unwrap(),
                f[4] == "true",
            );
            if stop(&run.stats) {
                child.kill().unwrap(); // SIGKILL
                break;
            }
        }
    }
    child.wait().unwrap();
    run
}

#[test]
fn a_durable_spill_killed_with_sigkill_resumes_without_loss_or_duplicates() {
    const MESSAGES: u64 = 3000;
    let dir = tempfile::tempdir().unwrap();
    let server = FloodServer::start(FloodConfig {
        messages: MESSAGES,
        size: 200,
        ..FloodConfig::default()
    });
    // Killed once everything was received and written (nothing left in
    // the hand-off to the writer), after taking 700.
    let first = run_child(
        &server,
        dir.path(),
        700,
        |&(received, buffered, disk, ..)| received == MESSAGES && buffered == disk,
    );
    assert_eq!(first.taken.len(), 700);
    assert!(!first.stats.4, "killed, not ended");
    drop(server);

    let server = empty_server();
    let second = run_child(&server, dir.path(), usize::MAX, |s| s.4);
    server.finish();
    let (_, _, _, recovered, ended) = second.stats;
    assert!(ended);
    // Every message the consumer did not see, in order, none twice.
    assert_eq!(recovered, MESSAGES - 700);
    let all: Vec<u64> = first.taken.iter().chain(&second.taken).copied().collect();
    assert_eq!(all, (0..MESSAGES).collect::<Vec<_>>());
}

#[test]
fn a_durable_spill_killed_while_writing_loses_only_its_unwritten_tail() {
    const MESSAGES: u64 = 4000;
    let dir = tempfile::tempdir().unwrap();
    // Spread out, so that the kill lands while the writer is busy.
    let server = FloodServer::start(FloodConfig {
        messages: MESSAGES,
        size: 200,
        spread_over: Some(Duration::from_secs(2)),
        ..FloodConfig::default()
    });
    let first = run_child(&server, dir.path(), 300, |&(received, ..)| received >= 2000);
    drop(server);
    let server = empty_server();
    let second = run_child(&server, dir.path(), usize::MAX, |s| s.4);
    server.finish();
    let all: Vec<u64> = first.taken.iter().chain(&second.taken).copied().collect();
    // In order, none twice, no gap: what is missing is only the end of
    // the feed (what the writer had not written, or never arrived).
    assert_eq!(all, (0..all.len() as u64).collect::<Vec<_>>());
    assert!(all.len() >= 1900, "{} of at least 2000 received", all.len());
    assert_eq!(second.stats.3, all.len() as u64 - 300);
}

// ----- A full disk, for real --------------------------------------------------

/// A 4 MiB tmpfs mounted on a temporary directory, unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    /// `None` (with a note on stderr) where mounting is not allowed: the
    /// tests run as root on CI.
    fn mount() -> Option<SmallDisk> {
        let dir = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status();
        match status {
            Ok(s) if s.success() => Some(SmallDisk { dir }),
            _ => {
                eprintln!("skipped: cannot mount a tmpfs here (the test needs root)");
                None
            }
        }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.dir.path())
            .status();
    }
}

#[test]
fn a_full_disk_hands_over_to_the_fallback_with_the_systems_error() {
    let config = FloodConfig {
        messages: 8000,
        size: 1000,
        ..FloodConfig::default()
    };
    for fallback in [SpillFallback::Disconnect, SpillFallback::Block] {
        let Some(disk) = SmallDisk::mount() else {
            return;
        };
        let server = FloodServer::start(config.clone());
        let ws = connect(
            &server,
            spill_buffer(
                SpillConfig::new(disk.dir.path())
                    .segment_bytes(256 << 10)
                    .fallback(fallback),
            ),
        );
        thread::sleep(Duration::from_millis(500));
        let (got, end) = consume(&ws, 100, Duration::from_millis(1));
        let report = server.finish();
        let s = ws.stats();
        assert_adds_up(&s);
        assert!(s.spill_errors > 0, "{fallback:?}: {s:?}");
        assert!(s.spill_refused > 0, "{fallback:?}: {s:?}");
        match fallback {
            SpillFallback::Disconnect => {
                match end.kind() {
                    ErrorKind::Buffer(BufferError::SpillRefused(SpillRefusal::Disk {
                        kind,
                        os_error,
                        ..
                    })) => {
                        assert_eq!(*kind, std::io::ErrorKind::StorageFull);
                        assert_eq!(*os_error, Some(28));
                    }
                    other => panic!("expected SpillRefused(Disk), got {other:?}"),
                }
                assert!(end.to_string().contains("free space"), "{end}");
                assert_eq!(report.client_close, Some(Some(1008)));
                // What was accepted before is delivered, in order, no gap.
                assert_eq!(globals(&got), (0..got.len() as u64).collect::<Vec<_>>());
                assert!(got.len() > 3000, "{} delivered", got.len());
            }
            _ => {
                // Block: once the consumer frees space, the writer goes on.
                assert_server_closed(&end, &report, &config);
                assert_eq!(globals(&got), (0..config.messages).collect::<Vec<_>>());
            }
        }
        drop(ws);
        assert!(entries(disk.dir.path()).is_empty());
    }
}

// ----- The App ---------------------------------------------------------------

#[test]
fn an_app_started_on_a_durable_spill_handles_what_was_left_first() {
    use floodgate::app::{App, RunOptions};
    use std::sync::{Arc, Mutex};
    const MESSAGES: u64 = 1200;
    let dir = tempfile::tempdir().unwrap();
    let spill = || SpillConfig::new(dir.path()).durable();
    let server = FloodServer::start(FloodConfig {
        messages: MESSAGES,
        size: 150,
        ..FloodConfig::default()
    });
    let ws = connect(&server, spill_buffer(spill()));
    let mut first = Vec::new();
    for _ in 0..100 {
        first.push(Numbered::of(&ws.recv().unwrap()).global);
    }
    while ws.stats().received < MESSAGES {
        thread::sleep(Duration::from_millis(10));
    }
    drop(ws);
    server.finish();

    // The App, on the same directory, against a server with nothing new.
    let server = empty_server();
    let handled = Arc::new(Mutex::new(Vec::new()));
    let seen = handled.clone();
    let app = App::builder(server.url())
        .client(flood_client(BufferConfig::new()))
        .buffer(spill_buffer(spill()))
        .on_message(move |_, m| {
            seen.lock().unwrap().push(Numbered::of(m).global);
            // A slow handler: the rest waits on disk.
            if seen.lock().unwrap().len() % 200 == 0 {
                thread::sleep(Duration::from_millis(5));
            }
        })
        .build()
        .unwrap();
    // Err when the App could not open the directory (it was `Locked`
    // while the first connection's lock was being released: the bug this
    // caught).
    let summary = app
        .run_forever(&RunOptions::new())
        .expect("the App runs on the directory the first connection left");
    assert_eq!(summary.connections, 1);
    server.finish();
    let all: Vec<u64> = first
        .into_iter()
        .chain(handled.lock().unwrap().iter().copied())
        .collect();
    assert_eq!(all, (0..MESSAGES).collect::<Vec<_>>());
}

#[test]
fn a_close_that_waits_for_the_end_leaves_a_durable_spill_for_the_next_connection() {
    const MESSAGES: u64 = 1000;
    let dir = tempfile::tempdir().unwrap();
    let spill = || SpillConfig::new(dir.path()).durable();
    let server = FloodServer::start(FloodConfig {
        messages: MESSAGES,
        size: 100,
        ..FloodConfig::default()
    });
    let ws = connect(&server, spill_buffer(spill()));
    let first = Numbered::of(&ws.recv().unwrap()).global;
    // The server's close comes after its last message: the reader reads
    // everything into the spill and answers it; nothing is taken here.
    assert!(ws.buffer().wait_finished(Duration::from_secs(10)));
    assert!(!ws.buffer().is_empty());
    let left = ws.stats().buffered;
    drop(ws);
    server.finish();

    let server = empty_server();
    let ws = connect(&server, spill_buffer(spill()));
    let (rest, _) = consume(&ws, usize::MAX, Duration::ZERO);
    server.finish();
    assert_eq!(rest.len() as u64, left);
    let all: Vec<u64> = std::iter::once(first).chain(globals(&rest)).collect();
    assert_eq!(all, (0..MESSAGES).collect::<Vec<_>>());
    // A buffer that has not ended says so when the time is up.
    let server = FloodServer::start(FloodConfig {
        messages: 10,
        spread_over: Some(Duration::from_secs(2)),
        ..FloodConfig::default()
    });
    let other = tempfile::tempdir().unwrap();
    let ws = connect(&server, spill_buffer(SpillConfig::new(other.path())));
    assert!(!ws.buffer().wait_finished(Duration::from_millis(50)));
    ws.sender().shutdown();
    assert!(ws.buffer().wait_finished(Duration::from_secs(10)));
    drop(ws);
    let _ = server.finish();
}

#[test]
fn the_classifier_runs_first_and_priorities_survive_the_disk() {
    use floodgate::buffer::{Class, Priority};
    let dir = tempfile::tempdir().unwrap();
    let config = FloodConfig {
        messages: 4000,
        channels: 4,
        size: 200,
        ..FloodConfig::default()
    };
    let server = FloodServer::start(config.clone());
    let ws = connect(
        &server,
        spill_buffer(SpillConfig::new(dir.path())).classify(|m| {
            match Numbered::of(m).channel {
                // Channel 3 is never buffered, so never written.
                3 => Class::Discard,
                0 => Class::Keep(Priority::CRITICAL),
                1 => Class::Keep(Priority::LOW),
                _ => Class::Keep(Priority::NORMAL),
            }
        }),
    );
    thread::sleep(Duration::from_millis(300));
    let mut got = Vec::new();
    let end = loop {
        match ws.recv() {
            Ok(d) => {
                let n = Numbered::of(&d);
                let expected = match n.channel {
                    0 => Priority::CRITICAL,
                    1 => Priority::LOW,
                    _ => Priority::NORMAL,
                };
                assert_eq!(d.priority(), expected, "message {}", n.global);
                got.push(n);
            }
            Err(end) => break end,
        }
    };
    let report = server.finish();
    assert_server_closed(&end, &report, &config);
    let s = ws.stats();
    assert_adds_up(&s);
    assert_in_global_order(&got);
    assert!(got.iter().all(|n| n.channel != 3));
    assert_eq!(s.filtered, config.messages / 4);
    assert_eq!(got.len() as u64, config.messages - s.filtered);
    assert!(s.spilled > 0 && s.spilled <= got.len() as u64, "{s:?}");
}

#[test]
fn an_app_closing_without_draining_leaves_its_backlog_on_a_durable_spill() {
    use floodgate::app::{App, RunOptions};
    use std::sync::{Arc, Mutex};
    let dir = tempfile::tempdir().unwrap();
    let spill = || SpillConfig::new(dir.path()).durable();
    let server = FloodServer::start(FloodConfig {
        messages: 3000,
        size: 150,
        ..FloodConfig::default()
    });
    let handled = Arc::new(Mutex::new(Vec::new()));
    let seen = handled.clone();
    let app = App::builder(server.url())
        .client(flood_client(BufferConfig::new()))
        .buffer(spill_buffer(spill()))
        .drain_on_close(false)
        .on_message(move |ctx, m| {
            let mut seen = seen.lock().unwrap();
            seen.push(Numbered::of(m).global);
            if seen.len() == 100 {
                // Let the rest arrive on disk first.
                thread::sleep(Duration::from_millis(200));
                ctx.close();
            }
        })
        .build()
        .unwrap();
    let summary = app.run_forever(&RunOptions::new()).unwrap();
    let _ = server.finish();
    let handled = handled.lock().unwrap().clone();
    assert_eq!(handled, (0..100).collect::<Vec<_>>());
    assert!(summary.undelivered > 0, "{summary:?}");

    // The next connection on the directory gets what the App left in the
    // buffer: in order, right after the rest of the batch the App was
    // handling when it closed (counted in undelivered, not kept).
    let server = empty_server();
    let ws = connect(&server, spill_buffer(spill()));
    let (rest, _) = consume(&ws, usize::MAX, Duration::ZERO);
    server.finish();
    let s = ws.stats();
    assert_eq!(rest.len() as u64, s.recovered);
    assert!(
        s.recovered > 0 && s.recovered <= summary.undelivered,
        "{s:?} {summary:?}"
    );
    let start = rest[0].global;
    assert_eq!(
        start - 100,
        summary.undelivered - s.recovered,
        "{summary:?}"
    );
    assert_eq!(
        globals(&rest),
        (start..start + rest.len() as u64).collect::<Vec<_>>()
    );
}
