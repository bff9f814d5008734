//! `floodgate bridge` through broker outages, against real brokers: a
//! broker killed (SIGKILL) and started again mid-feed, and a broker that
//! stalls (SIGSTOP) for seconds. The feed is the embedded server's
//! numbered feed (`floodgate_server::feed`), which also pings the bridge
//! and times its pongs, so a test sees whether the bridge kept answering
//! while its broker was away.
//!
//! What must hold (issue 19): with `--policy spill` nothing is lost and
//! the order per channel holds; without a spill the counters add up (what
//! was received is published or counted as dropped); pings are answered
//! all along; memory stays within the buffer's limits.
//!
//! Every test needs a broker, so they are `#[ignore]`d here and run by the
//! `brokers` step of `scripts/test` (which installs the brokers).

mod support;

#[path = "../../floodgate/tests/brokers/common.rs"]
mod common;
#[path = "../../floodgate/tests/brokers/nats.rs"]
mod nats_server;
#[path = "../../floodgate/tests/brokers/redis.rs"]
mod redis_server;

use floodgate_server::feed::{Feed, FeedConfig, FeedLive, FeedMessage};
use floodgate_server::Server;
use nats_server::NatsServer;
use redis_server::RedisServer;
use std::collections::HashMap;
use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A feed of `count` numbered messages on 4 channels at `rate` per second,
/// pinging every 100 ms; then a close with 1000.
fn feed(count: u64, rate: f64) -> (Server, Arc<FeedLive>) {
    let feed = Feed::new(FeedConfig {
        channels: 4,
        rate: Some(rate),
        size: 128,
        count: Some(count),
        ping_interval: Some(Duration::from_millis(100)),
        send_buffer_size: None,
    });
    let live = feed.live();
    let server = Server::bind("127.0.0.1:0", feed.handler()).expect("start the feed");
    (server, live)
}

/// `floodgate bridge ARGS` as a child, its output captured.
struct Bridge {
    child: Child,
}

impl Bridge {
    fn start(args: &[&str]) -> Bridge {
        let child = common::dies_with_parent(&mut Command::new(env!("CARGO_BIN_EXE_floodgate")))
            .arg("bridge")
            .args(args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start floodgate bridge");
        Bridge { child }
    }

    /// Waits for it to end by itself (the feed closed), at most `limit`.
    fn wait(mut self, limit: Duration) -> (std::process::ExitStatus, String) {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let mut stderr = String::new();
                self.child
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut stderr)
                    .unwrap();
                return (status, stderr);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let mut stderr = String::new();
                let _ = self
                    .child
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut stderr);
                panic!("the bridge did not end within {limit:?}; stderr:\n{stderr}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `--stats` object of the bridge's one feed (the JSON line on stderr
/// that has `published`).
fn feed_stats(stderr: &str) -> serde_json::Value {
    stderr
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|v| v.get("published").is_some())
        .unwrap_or_else(|| panic!("no --stats line with `published` on stderr:\n{stderr}"))
}

fn num(stats: &serde_json::Value, key: &str) -> u64 {
    stats
        .get(key)
        .and_then(serde_json::Value::as_u64)
        .unwrap_or_else(|| panic!("no {key} in {stats}"))
}

/// Every message of the feed exactly once after removing duplicates (a
/// retried batch may be stored twice), and in order per channel: the
/// stored bodies, in broker order.
fn assert_each_once_in_order(bodies: &[Vec<u8>], count: u64) {
    let mut seen = vec![false; count as usize];
    let mut last_seq: HashMap<u32, u64> = HashMap::new();
    let mut duplicates = 0;
    for body in bodies {
        let text = std::str::from_utf8(body).expect("the feed's messages are text");
        let m = FeedMessage::parse(text).unwrap_or_else(|| panic!("not a feed message: {text}"));
        if seen[m.n as usize] {
            duplicates += 1;
            continue;
        }
        seen[m.n as usize] = true;
        if let Some(last) = last_seq.insert(m.channel, m.seq) {
            assert!(
                m.seq > last,
                "channel {}: seq {} stored after {last}",
                m.channel,
                m.seq
            );
        }
    }
    let missing: Vec<usize> = (0..seen.len()).filter(|i| !seen[*i]).collect();
    assert!(
        missing.is_empty(),
        "{} of {count} messages missing (first: {:?}); {duplicates} duplicates",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
}

/// Pings were answered all along: every ping but the last got its pong,
/// none waited a second.
fn assert_pings_answered(live: &FeedLive) {
    assert!(live.pings_sent() >= 10, "{} pings", live.pings_sent());
    assert!(
        live.pongs() + 1 >= live.pings_sent(),
        "{} pongs to {} pings",
        live.pongs(),
        live.pings_sent()
    );
    assert!(
        live.worst_ping_rtt() < Duration::from_secs(1),
        "a pong took {:?}",
        live.worst_ping_rtt()
    );
}

fn wait_until(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A feed of `COUNT` messages through `floodgate bridge POLICY...` into
/// Redis (an append-only file synced at every write: it keeps what it
/// acknowledged), Redis killed (SIGKILL) once a third is stored and started
/// again two seconds later, while the feed goes on. Returns Redis, the
/// feed's figures and the bridge's `--stats` object, once the bridge ended
/// by itself after the feed's close.
fn through_a_redis_killed_mid_feed(
    policy: &[&str],
) -> (RedisServer, Arc<FeedLive>, serde_json::Value) {
    let mut redis = RedisServer::start_with(&["--appendonly", "yes", "--appendfsync", "always"]);
    let (server, live) = feed(COUNT, 4_000.0);
    let url = redis.url("feed");
    let mut args = vec![server.url(), "--to".into(), url];
    args.extend(policy.iter().map(|a| a.to_string()));
    args.extend(["--max-messages".into(), "500".into(), "--stats".into()]);
    let bridge = Bridge::start(&args.iter().map(String::as_str).collect::<Vec<_>>());
    wait_until(Duration::from_secs(30), "a third stored", || {
        redis.xlen("feed") >= (COUNT / 3) as usize
    });
    redis.kill();
    let sent_before = live.sent();
    std::thread::sleep(Duration::from_secs(2));
    // The feed went on while the broker was away.
    assert!(live.sent() > sent_before + 1_000, "the feed stalled");
    redis.restart();
    let (status, stderr) = bridge.wait(Duration::from_secs(60));
    assert!(status.success(), "{status}: {stderr}");
    (redis, live, feed_stats(&stderr))
}

/// Messages per feed in the outage tests: five seconds at 4,000/s.
const COUNT: u64 = 20_000;

/// Redis killed mid-feed and started again: with a durable spill the
/// bridge loses nothing, and the order per channel holds.
#[test]
#[ignore = "needs redis-server (scripts/common.sh: ensure_redis)"]
fn redis_killed_and_restarted_loses_nothing_with_a_spill() {
    let spill = tempfile::tempdir().unwrap();
    let dir = spill.path().to_str().unwrap();
    let (redis, live, stats) =
        through_a_redis_killed_mid_feed(&["--policy", "spill", "--spill-dir", dir, "--durable"]);
    let bodies: Vec<Vec<u8>> = redis
        .xrange("feed")
        .iter()
        .map(|e| e.get("data").expect("a data field").to_vec())
        .collect();
    assert_each_once_in_order(&bodies, COUNT);
    assert_eq!(num(&stats, "received"), COUNT, "{stats}");
    assert_eq!(num(&stats, "published"), COUNT, "{stats}");
    assert!(num(&stats, "spilled") > 0, "nothing went to disk: {stats}");
    assert_pings_answered(&live);
}

/// The same outage without a spill: a small in-memory buffer that drops
/// the oldest. Messages are lost, and every one is accounted for: what was
/// received was published or counted as dropped, and the broker holds
/// exactly what was published.
#[test]
#[ignore = "needs redis-server (scripts/common.sh: ensure_redis)"]
fn redis_killed_without_a_spill_the_counters_add_up() {
    let (redis, live, stats) = through_a_redis_killed_mid_feed(&["--policy", "drop-oldest"]);
    let received = num(&stats, "received");
    let published = num(&stats, "published");
    let dropped = num(&stats, "dropped_oldest") + num(&stats, "dropped_newest");
    assert_eq!(received, COUNT, "{stats}");
    assert!(
        dropped > 0,
        "two seconds at 4,000/s must overflow 500: {stats}"
    );
    assert_eq!(
        published + dropped + num(&stats, "buffered"),
        received,
        "{stats}"
    );
    let mut distinct: Vec<u64> = redis
        .xrange("feed")
        .iter()
        .map(|e| {
            let text = std::str::from_utf8(e.get("data").unwrap()).unwrap();
            FeedMessage::parse(text).unwrap().n
        })
        .collect();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len() as u64, published, "{stats}");
    assert_pings_answered(&live);
}

/// NATS stopped (SIGSTOP) for three seconds mid-feed, then continued: the
/// bridge's memory stays within its limits (the rest goes to the spill),
/// it answers the feed's pings all along, and once the broker is back the
/// backlog drains: every message once in the stream (JetStream drops the
/// retried ones by their ids), in order per channel.
#[test]
#[ignore = "needs nats-server (scripts/common.sh: ensure_nats)"]
fn nats_stalled_the_backlog_spills_and_drains_after() {
    const MAX_MESSAGES: u64 = 500;
    let nats = NatsServer::start();
    let (server, live) = feed(COUNT, 4_000.0);
    let spill = tempfile::tempdir().unwrap();
    let to = format!("{}/feeds.stalled", nats.url());
    let bridge = Bridge::start(&[
        &server.url(),
        "--to",
        &to,
        "--stream",
        "STALLED",
        "--policy",
        "spill",
        "--spill-dir",
        spill.path().to_str().unwrap(),
        "--max-messages",
        &MAX_MESSAGES.to_string(),
        "--stats",
    ]);
    wait_until(Duration::from_secs(30), "a quarter sent", || {
        live.sent() >= COUNT / 4
    });
    stop(nats.pid(), true);
    let pongs = live.pongs();
    std::thread::sleep(Duration::from_secs(3));
    // Answered while the broker was stopped.
    assert!(
        live.pongs() >= pongs + 20,
        "{} pongs in 3 s",
        live.pongs() - pongs
    );
    stop(nats.pid(), false);
    let (status, stderr) = bridge.wait(Duration::from_secs(60));
    assert!(status.success(), "{status}: {stderr}");

    let stats = feed_stats(&stderr);
    assert_eq!(num(&stats, "received"), COUNT, "{stats}");
    assert_eq!(num(&stats, "published"), COUNT, "{stats}");
    assert!(num(&stats, "spilled") > 0, "nothing went to disk: {stats}");
    assert!(
        num(&stats, "high_water_messages") <= MAX_MESSAGES,
        "memory past its limit: {stats}"
    );
    // Read back by nats-py: an independent client.
    let stored = support::read_jetstream(&nats.url(), "STALLED");
    let bodies: Vec<Vec<u8>> = stored.into_iter().map(|s| s.body).collect();
    assert_eq!(bodies.len() as u64, COUNT, "JetStream kept a duplicate");
    assert_each_once_in_order(&bodies, COUNT);
    assert_pings_answered(&live);
}

/// SIGSTOP (`stop`) or SIGCONT.
fn stop(pid: u32, stop: bool) {
    let signal = if stop { libc::SIGSTOP } else { libc::SIGCONT };
    // SAFETY: kill(2) has no memory preconditions; the pid is our child's.
    assert_eq!(unsafe { libc::kill(pid as libc::pid_t, signal) }, 0);
}

/// A feed whose first connection gets `count` numbered messages
/// (`m000000`, ...), 500 every 20 ms, and later connections none: they
/// are closed with 1000 after half a second (what the first one's bridge
/// left in its spill is all there is to publish).
fn once_then_closing(count: u64) -> Server {
    let connections = Arc::new(std::sync::atomic::AtomicU64::new(0));
    Server::bind(
        "127.0.0.1:0",
        move |mut ws: floodgate_server::WebSocket, _: floodgate_server::RequestHead| {
            if connections.fetch_add(1, std::sync::atomic::Ordering::SeqCst) > 0 {
                std::thread::sleep(Duration::from_millis(500));
                let _ = ws.close(1000, "");
                while ws.recv().is_ok() {}
                return;
            }
            for n in 0..count {
                if ws.send_text(&format!("m{n:06}")).is_err() {
                    return;
                }
                if n % 500 == 499 {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            while ws.recv().is_ok() {}
        },
    )
    .expect("start the feed")
}

/// The bridge killed (SIGKILL) while a batch was on its way to JetStream,
/// and started again on its durable spill: the batch comes again first and
/// is published with the ids the dead process gave it, so JetStream drops
/// the part that had already been stored, and the stream holds every
/// message at most once. (With new ids, that part would be stored twice.)
#[test]
#[ignore = "needs nats-server (scripts/common.sh: ensure_nats)"]
fn a_bridge_killed_mid_batch_publishes_it_again_with_the_same_ids() {
    const COUNT: u64 = 20_000;
    let nats = NatsServer::start();
    let server = once_then_closing(COUNT);
    let spill = tempfile::tempdir().unwrap();
    let to = format!("{}/feeds.killed", nats.url());
    let args = [
        server.url(),
        "--to".into(),
        to,
        "--stream".into(),
        "KILLED".into(),
        "--policy".into(),
        "spill".into(),
        "--spill-dir".into(),
        spill.path().to_str().unwrap().into(),
        "--durable".into(),
        "--stats".into(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut first = Bridge::start(&args);
    // Some batches through; then NATS stops reading, with the bridge's
    // next batch written into its socket or about to be, and the bridge
    // dies. Resumed, NATS stores what it had received of that batch.
    wait_until(Duration::from_secs(30), "a few batches stored", || {
        tokio_stream_len(&nats.url(), "KILLED") >= 3_000
    });
    stop(nats.pid(), true);
    std::thread::sleep(Duration::from_millis(300));
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    stop(nats.pid(), false);

    let again = Bridge::start(&args);
    let (status, stderr) = again.wait(Duration::from_secs(60));
    assert!(status.success(), "{status}: {stderr}");
    assert!(
        stderr.contains("published again with the same ids"),
        "the killed run's batch was carried: {stderr}"
    );
    let stored = support::read_jetstream(&nats.url(), "KILLED");
    let mut seen = std::collections::HashSet::new();
    for entry in &stored {
        let text = String::from_utf8(entry.body.clone()).unwrap();
        assert!(seen.insert(text.clone()), "{text} stored twice");
    }
    // In order, without a gap up to what the spill had: the messages lost
    // with the process (not yet written to the spill) are the last ones.
    let numbers: Vec<u64> = stored
        .iter()
        .map(|e| std::str::from_utf8(&e.body[1..]).unwrap().parse().unwrap())
        .collect();
    assert!(
        numbers.windows(2).all(|w| w[1] == w[0] + 1),
        "in order, no gap"
    );
    assert!(numbers.len() >= 3_000, "{} stored", numbers.len());
}

/// Messages in a JetStream stream now (0 while it does not exist).
fn tokio_stream_len(url: &str, stream: &str) -> u64 {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let Ok(client) = async_nats::connect(url).await else {
                return 0;
            };
            let js = async_nats::jetstream::new(client);
            match js.get_stream(stream).await {
                Ok(mut s) => s.info().await.map(|i| i.state.messages).unwrap_or(0),
                Err(_) => 0,
            }
        })
}
