//! `floodgate bridge`, run as a user would: a feed into a file arrives whole,
//! once and in order, with `--stats` that add up; `--to -` prints JSON
//! lines; bad input (an unknown scheme, a config file with a wrong type, an
//! unknown field, duplicate names) ends the command before anything
//! connects; a broker that cannot be reached ends it within 10 s with one
//! line; SIGTERM drains what is buffered and prints a line per feed;
//! `--metrics` labels each feed.
//!
//! With real brokers (`#[ignore]`, run by scripts/test's `brokers` step):
//! N messages on K channels into NATS JetStream and into Redis Streams,
//! read back with their own clients, once each and in order per channel;
//! SIGTERM mid-feed into a broker drains.

mod support;

#[path = "../../floodgate/tests/brokers/common.rs"]
mod common;
#[path = "../../floodgate/tests/brokers/nats.rs"]
mod nats_server;
#[path = "../../floodgate/tests/brokers/redis.rs"]
mod redis_server;

use floodgate::Message;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{
    assert_counters_add_up, floodgate, numbered_then_wait, send_then_close, text, ServeProcess,
    LIMIT,
};

/// `n` numbered text messages.
fn numbered(n: usize) -> Vec<Message> {
    (0..n).map(|i| Message::text(format!("m{i:05}"))).collect()
}

/// The JSON lines of a JSON-lines sink's output, parsed.
fn json_lines(out: &str) -> Vec<serde_json::Value> {
    out.lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"))
        })
        .collect()
}

/// The `--stats` objects on stderr (one line each, with "feed").
fn stats_lines(stderr: &str) -> Vec<serde_json::Value> {
    stderr
        .lines()
        .filter(|line| line.starts_with('{'))
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// The stats add up for a bridge: what was received was published,
/// is still buffered, or was dropped under a reason; and what left the
/// buffer was published.
fn assert_bridge_counters_add_up(stats: &serde_json::Value) {
    assert_counters_add_up(stats);
    assert_eq!(stats["delivered"], stats["published"], "{stats}");
}

/// A TCP listener that counts the connections made to it, and never
/// answers: for commands that must not connect at all.
fn counting_listener() -> (String, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}/feed", listener.local_addr().unwrap());
    let count = Arc::new(AtomicU64::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            seen.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    (url, count)
}

/// A temporary directory with `name` in it, as a path and its string.
fn temp_file(dir: &tempfile::TempDir, name: &str) -> (std::path::PathBuf, String) {
    let path = dir.path().join(name);
    let arg = path.to_str().unwrap().to_owned();
    (path, arg)
}

#[test]
fn a_feed_into_a_file_arrives_once_in_order_and_the_stats_add_up() {
    let n = 3000;
    let server = send_then_close(numbered(n), 1000);
    let dir = tempfile::tempdir().unwrap();
    let (path, arg) = temp_file(&dir, "out.jsonl");
    let out = floodgate()
        .args([
            "bridge",
            &server.url(),
            "--to",
            &format!("file:{arg}"),
            "--stats",
        ])
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let lines = json_lines(&std::fs::read_to_string(&path).unwrap());
    assert_eq!(lines.len(), n, "every message, once");
    let mut run = None;
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["text"], format!("m{i:05}"), "in order");
        let id = line["id"].as_str().unwrap();
        let (r, seq) = id.split_once('-').unwrap();
        assert_eq!(seq, i.to_string(), "ids number the messages: {id}");
        assert_eq!(*run.get_or_insert(r.to_owned()), r, "one run");
    }
    let url = server.url();
    assert!(
        stderr.contains(&format!("feed {url}: published {n}, remaining 0")),
        "{stderr}"
    );
    let stats = stats_lines(&stderr);
    assert_eq!(stats.len(), 1, "{stderr}");
    assert_eq!(stats[0]["feed"], url);
    assert_eq!(stats[0]["received"], n);
    assert_eq!(stats[0]["published"], n);
    assert_eq!(stats[0]["sink_errors"], 0);
    assert_bridge_counters_add_up(&stats[0]);
}

#[test]
fn stdout_gets_json_lines_and_is_the_default() {
    for to in [Some("-"), None] {
        let server = send_then_close(
            vec![
                Message::text("a \"quoted\"\nline"),
                Message::binary(vec![0u8, 255, 7]),
            ],
            1000,
        );
        let mut cmd = floodgate();
        cmd.args(["bridge", &server.url()]);
        if let Some(to) = to {
            cmd.args(["--to", to]);
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        let lines = json_lines(&text(&out.stdout));
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert_eq!(lines[0]["text"], "a \"quoted\"\nline");
        assert_eq!(lines[1]["binary"], "AP8H", "base64 of 00 ff 07");
        assert!(lines[1]["id"].as_str().unwrap().ends_with("-1"));
    }
}

/// Runs `floodgate bridge ARGS` against a listener that counts connections;
/// returns the output and how many connections it saw.
fn refused(args: &[&str]) -> (Output, u64) {
    let (url, seen) = counting_listener();
    let args: Vec<String> = args.iter().map(|a| a.replace("URL", &url)).collect();
    let out = floodgate().arg("bridge").args(&args).output().unwrap();
    // A connection the command made would have been counted by now.
    std::thread::sleep(Duration::from_millis(100));
    (out, seen.load(Ordering::SeqCst))
}

fn one_line_error(out: &Output) -> String {
    let stderr = text(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr:?}");
    stderr
}

#[test]
fn an_unknown_scheme_is_refused_before_anything_connects() {
    let (out, seen) = refused(&["URL", "--to", "kafka://127.0.0.1:9092/trades"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = one_line_error(&out);
    assert!(
        stderr.contains("kafka://") && stderr.contains("redis://HOST:PORT/KEY"),
        "{stderr}"
    );
    assert_eq!(seen, 0, "nothing connected");
    let (out, seen) = refused(&["URL", "--to", "file:/tmp/x", "--stream", "S"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(one_line_error(&out).contains("--stream is for nats://"));
    assert_eq!(seen, 0);
}

#[test]
fn a_bad_config_file_names_the_feed_and_the_field_and_starts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "[[feed]]\nname = \"a\"\nurl = \"URL\"\n\n[[feed]]\nname = \"b\"\nurl = \"URL\"\nmax_messages = \"many\"\n",
            "line 8, feed 2 (\"b\"), field max_messages: invalid type",
        ),
        (
            "[[feed]]\nname = \"a\"\nurl = \"URL\"\nmax_mesages = 10\n",
            "feed 1 (\"a\")",
        ),
        (
            "[[feed]]\nname = \"a\"\nurl = \"URL\"\n[[feed]]\nname = \"a\"\nurl = \"URL\"\n",
            "feed 2 (\"a\"), field name: the name \"a\" is taken by feed 1",
        ),
        (
            "[[feed]]\nurl = \"URL\"\nto = \"kafka://k:9092/t\"\n",
            "feed 1, field to: the scheme kafka://",
        ),
        (
            "[[feed]]\nurl = \"URL\"\nconflate_key = \"/channel\"\n",
            "feed 1: conflate_key needs policy conflate",
        ),
    ];
    for (i, (toml, expected)) in cases.iter().enumerate() {
        let (url, seen) = counting_listener();
        let (path, arg) = temp_file(&dir, &format!("bad{i}.toml"));
        std::fs::write(&path, toml.replace("URL", &url)).unwrap();
        let out = floodgate()
            .args(["bridge", "--config", &arg])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{toml}");
        let stderr = one_line_error(&out);
        assert!(
            stderr.starts_with(&format!("floodgate: {arg}, "))
                || stderr.starts_with(&format!("floodgate: {arg}: ")),
            "names the file: {stderr}"
        );
        assert!(stderr.contains(expected), "{expected:?} in {stderr}");
        if i == 1 {
            assert!(
                stderr.contains("max_mesages"),
                "names the unknown field: {stderr}"
            );
        }
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(seen.load(Ordering::SeqCst), 0, "nothing connected: {toml}");
    }
}

/// `bridge URL --to DEST` with a broker that cannot be used: the command
/// ends within 10 s, non-zero, with one line naming the broker (`named`),
/// and the feed was never connected. Returns the exit code and the line.
fn a_broker_failure_ends_the_command(dest: &str, named: &str) -> (Option<i32>, String) {
    let (url, seen) = counting_listener();
    let started = Instant::now();
    let out = floodgate()
        .args(["bridge", &url, "--to", dest])
        .output()
        .unwrap();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert!(!out.status.success(), "{out:?}");
    let stderr = one_line_error(&out);
    assert!(stderr.contains(named), "{named:?} in {stderr}");
    // A connection the command made would have been counted by now.
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(seen.load(Ordering::SeqCst), 0, "the feed was not connected");
    (out.status.code(), stderr)
}

/// Against a `DEST` where nothing listens: exit 3, "cannot reach".
fn unreachable_broker_ends_the_command(dest: &str, named: &str) {
    let (code, stderr) = a_broker_failure_ends_the_command(dest, named);
    assert_eq!(code, Some(3), "{stderr}");
    assert!(stderr.contains("cannot reach"), "{stderr}");
}

#[test]
fn a_redis_that_cannot_be_reached_ends_the_command_within_10s() {
    let port = common::free_port();
    unreachable_broker_ends_the_command(
        &format!("redis://127.0.0.1:{port}/k"),
        &format!("redis://127.0.0.1:{port}"),
    );
}

#[test]
fn a_nats_that_cannot_be_reached_ends_the_command_within_10s() {
    let port = common::free_port();
    unreachable_broker_ends_the_command(
        &format!("nats://127.0.0.1:{port}/feeds.x"),
        &format!("nats://127.0.0.1:{port}"),
    );
}

/// `bridge URL --to DEST` where the broker is up and refuses the
/// credentials: exits within 10 s, non-zero, with one line naming the
/// broker (never the password) and saying it refused; the feed was never
/// connected.
fn refused_credentials_end_the_command(dest: &str, named: &str, secret: &str) {
    let (_, stderr) = a_broker_failure_ends_the_command(dest, named);
    assert!(
        !stderr.contains(secret),
        "the password is not printed: {stderr}"
    );
    let lower = stderr.to_lowercase();
    assert!(
        lower.contains("refused") || lower.contains("auth") || lower.contains("password"),
        "says why: {stderr}"
    );
}

#[test]
#[ignore = "needs redis-server (scripts/test's brokers step)"]
fn a_redis_that_refuses_the_credentials_ends_the_command_and_starts_nothing() {
    let redis = redis_server::RedisServer::start_with(&[
        "--save",
        "",
        "--appendonly",
        "no",
        "--requirepass",
        "right-one",
    ]);
    refused_credentials_end_the_command(
        &format!("redis://:wrong-one@127.0.0.1:{}/k", redis.port),
        &format!("redis://127.0.0.1:{}", redis.port),
        "wrong-one",
    );
}

#[test]
#[ignore = "needs nats-server (scripts/test's brokers step)"]
fn a_nats_that_refuses_the_credentials_ends_the_command_and_starts_nothing() {
    let nats =
        nats_server::NatsServer::start_with(&["-js", "--user", "feeder", "--pass", "right-one"]);
    let port = nats.url().rsplit(':').next().unwrap().to_owned();
    refused_credentials_end_the_command(
        &format!("nats://feeder:wrong-one@127.0.0.1:{port}/feeds.x"),
        &format!("nats://127.0.0.1:{port}"),
        "wrong-one",
    );
}

/// Sends SIGTERM to `child`.
fn terminate(child: &Child) {
    // SAFETY: kill has no memory preconditions; the pid is our child's.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
}

/// Waits for `child` to exit (at most LIMIT) and collects its output.
fn wait_output(child: Child) -> Output {
    let pid = child.id();
    let watchdog = std::thread::spawn(move || {
        let until = Instant::now() + LIMIT;
        while Instant::now() < until {
            std::thread::sleep(Duration::from_millis(100));
            // SAFETY: signal 0 only checks that the process exists.
            if unsafe { libc::kill(pid as i32, 0) } != 0 {
                return;
            }
        }
        // SAFETY: as above; the test failed by then.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    });
    let out = child.wait_with_output().unwrap();
    let _ = watchdog.join();
    out
}

/// Waits until `path` holds at least `lines` lines.
fn wait_for_lines(path: &Path, lines: usize) {
    let until = Instant::now() + LIMIT;
    loop {
        let have = std::fs::read_to_string(path)
            .map(|s| s.lines().count())
            .unwrap_or(0);
        if have >= lines {
            return;
        }
        assert!(
            Instant::now() < until,
            "{have} lines of {lines} after {LIMIT:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigterm_stops_reading_drains_and_prints_a_line_per_feed() {
    let sent = Arc::new(AtomicU64::new(0));
    let server = numbered_then_wait(200_000, sent.clone());
    let dir = tempfile::tempdir().unwrap();
    let (path, arg) = temp_file(&dir, "out.jsonl");
    let child = Command::new(env!("CARGO_BIN_EXE_floodgate"))
        .args(["bridge", &server.url(), "--to", &format!("file:{arg}")])
        .args(["--name", "numbers", "--stats", "--max-messages", "100"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_lines(&path, 1000);
    terminate(&child);
    let out = wait_output(child);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "a clean drain: {stderr}");
    let lines = json_lines(&std::fs::read_to_string(&path).unwrap());
    let stats = stats_lines(&stderr);
    assert_eq!(stats.len(), 1, "{stderr}");
    let published = stats[0]["published"].as_u64().unwrap();
    assert_eq!(lines.len() as u64, published, "{stderr}");
    // What the server sent after the close is not read into the buffer:
    // counted as dropped_newest, the rest published.
    let dropped = stats[0]["dropped_newest"].as_u64().unwrap();
    assert_eq!(
        stats[0]["received"].as_u64().unwrap(),
        published + dropped,
        "{stderr}"
    );
    for (i, line) in lines.iter().enumerate() {
        let expected = format!("m{i:05} ");
        assert!(
            line["text"].as_str().unwrap().starts_with(&expected),
            "in order at {i}: {line}"
        );
    }
    assert!(
        stderr.contains(&format!("feed numbers: published {published}, remaining 0"))
            || stderr.contains(&format!(
                "feed numbers: published {published}, dropped {dropped}, remaining 0"
            )),
        "{stderr}"
    );
    assert_bridge_counters_add_up(&stats[0]);
}

#[test]
fn a_drain_that_cannot_finish_exits_1_and_says_what_was_lost() {
    // The sink is a pipe nobody reads: the first batches fill it and the
    // publish never completes.
    let sent = Arc::new(AtomicU64::new(0));
    let server = numbered_then_wait(50_000, sent.clone());
    let mut child = Command::new(env!("CARGO_BIN_EXE_floodgate"))
        .args([
            "bridge",
            &server.url(),
            "--name",
            "stuck",
            "--drain-timeout",
            "500ms",
        ])
        .args([
            "--max-messages",
            "1000",
            "--policy",
            "drop-oldest",
            "--stats",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    // Wait until the server has sent more than the pipe and the buffer
    // hold.
    let until = Instant::now() + LIMIT;
    while sent.load(Ordering::SeqCst) < 20_000 {
        assert!(Instant::now() < until, "the server did not send");
        std::thread::sleep(Duration::from_millis(20));
    }
    let started = Instant::now();
    terminate(&child);
    let out = wait_output(child);
    drop(stdout);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the drain was bounded"
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.starts_with("floodgate: feed stuck: published"))
        .unwrap_or_else(|| panic!("a line for the feed: {stderr}"));
    assert!(line.ends_with("(in memory: lost)"), "{line}");
    assert!(
        stderr.contains("the drain did not finish within --drain-timeout"),
        "{stderr}"
    );
    let stats = &stats_lines(&stderr)[0];
    assert_counters_add_up(stats);
}

/// GET /metrics from `addr`: the body.
fn scrape(addr: &str) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect to the metrics address");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(stream, "GET /metrics HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (_, body) = response.split_once("\r\n\r\n").expect("a response head");
    body.to_owned()
}

/// The value of the sample `series` (name and labels as printed).
fn sample(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

#[test]
fn a_config_file_runs_many_feeds_each_labelled_in_the_metrics() {
    let n = 500;
    let a = send_then_close(numbered(n), 1000);
    let sent = Arc::new(AtomicU64::new(0));
    let b = numbered_then_wait(n as u64, sent.clone());
    let dir = tempfile::tempdir().unwrap();
    let (out_path, out_arg) = temp_file(&dir, "both.jsonl");
    let (config, config_arg) = temp_file(&dir, "bridge.toml");
    std::fs::write(
        &config,
        format!(
            "metrics = \"127.0.0.1:0\"\nstats = true\ndrain_timeout = \"5s\"\n\n\
             [[feed]]\nname = \"a\"\nurl = \"{}\"\nto = \"file:{out_arg}\"\n\n\
             [[feed]]\nname = \"b\"\nurl = \"{}\"\nto = \"file:{out_arg}\"\n\
             policy = \"drop-oldest\"\nmax_messages = 100000\n",
            a.url(),
            b.url()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_floodgate"))
        .args(["bridge", "--config", &config_arg])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let mut first = Vec::new();
    let mut byte = [0u8; 1];
    while !first.ends_with(b"\n") && stderr.read(&mut byte).unwrap() == 1 {
        first.push(byte[0]);
    }
    let first = String::from_utf8(first).unwrap();
    let addr = first
        .trim()
        .strip_prefix("floodgate: metrics at http://")
        .and_then(|rest| rest.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("the metrics address first: {first:?}"))
        .to_owned();
    // Feed a ends after its n messages; b stays open: wait for both.
    wait_for_lines(&out_path, 2 * n);
    // A batch is counted published just after it is written: scrape until
    // the counters caught up with the file.
    let until = Instant::now() + LIMIT;
    let body = loop {
        let body = scrape(&addr);
        let published = |feed: &str| {
            sample(
                &body,
                &format!("floodgate_sink_published_total{{feed=\"{feed}\"}}"),
            )
        };
        if published("a") == Some(n as f64) && published("b") == Some(n as f64) {
            break body;
        }
        assert!(Instant::now() < until, "{body}");
        std::thread::sleep(Duration::from_millis(50));
    };
    for feed in ["a", "b"] {
        assert_eq!(
            sample(
                &body,
                &format!("floodgate_received_total{{feed=\"{feed}\"}}")
            ),
            Some(n as f64),
            "{body}"
        );
        assert_eq!(
            sample(
                &body,
                &format!("floodgate_sink_published_total{{feed=\"{feed}\"}}")
            ),
            Some(n as f64),
            "{body}"
        );
    }
    assert!(
        body.contains("# TYPE floodgate_sink_publish_seconds"),
        "{body}"
    );
    assert!(
        body.contains("floodgate_sink_errors_total{feed=\"b\"} 0"),
        "{body}"
    );
    terminate(&child);
    let out = wait_output(child);
    let mut rest = String::new();
    // wait_output took stdout/stderr handles that remain: read ours.
    stderr.read_to_string(&mut rest).unwrap();
    assert!(out.status.success(), "{rest}");
    assert!(
        rest.contains(&format!("feed a: published {n}, remaining 0")),
        "{rest}"
    );
    assert!(
        rest.contains(&format!("feed b: published {n}, remaining 0")),
        "{rest}"
    );
    let stats = stats_lines(&rest);
    assert_eq!(stats.len(), 2, "{rest}");
    for s in &stats {
        assert_bridge_counters_add_up(s);
        // The last scrape (nothing arrived after it) and --stats agree.
        let feed = s["feed"].as_str().unwrap();
        for (series, key) in [
            ("floodgate_received_total", "received"),
            ("floodgate_delivered_total", "delivered"),
            ("floodgate_sink_published_total", "published"),
            ("floodgate_sink_errors_total", "sink_errors"),
            ("floodgate_dropped_total", "dropped_oldest"),
        ] {
            let name = match key {
                "dropped_oldest" => format!("{series}{{feed=\"{feed}\",reason=\"oldest\"}}"),
                _ => format!("{series}{{feed=\"{feed}\"}}"),
            };
            assert_eq!(
                sample(&body, &name),
                s[key].as_u64().map(|v| v as f64),
                "{name} against --stats {key}: {body}\n{s}"
            );
        }
    }
    // One writer for the shared file: every line whole, each message of
    // each feed once.
    let lines = json_lines(&std::fs::read_to_string(&out_path).unwrap());
    assert_eq!(lines.len(), 2 * n);
    let mut count: HashMap<String, usize> = HashMap::new();
    for line in &lines {
        let t = line["text"].as_str().unwrap();
        *count.entry(t[..6].to_owned()).or_default() += 1;
    }
    assert_eq!(count.len(), n, "n distinct numbers");
    assert!(count.values().all(|&c| c == 2), "each number once per feed");
}

// ----- with real brokers ------------------------------------------------

/// The feed server's messages as (channel, seq), in the order given.
fn channel_and_seq(bodies: impl IntoIterator<Item = Vec<u8>>) -> Vec<(u64, u64)> {
    bodies
        .into_iter()
        .map(|body| {
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            (v["channel"].as_u64().unwrap(), v["seq"].as_u64().unwrap())
        })
        .collect()
}

/// Every message of a feed of `n` on `k` channels exactly once, in order
/// per channel.
fn assert_once_in_order(got: &[(u64, u64)], n: usize, k: u64) {
    assert_eq!(got.len(), n, "every message, once");
    let mut next: HashMap<u64, u64> = HashMap::new();
    for &(channel, seq) in got {
        assert!(channel < k, "channel {channel}");
        let expected = next.entry(channel).or_insert(0);
        assert_eq!(seq, *expected, "channel {channel} in order");
        *expected += 1;
    }
    assert_eq!(next.len() as u64, k, "every channel");
}

/// `floodgate serve --feed`: `n` messages on `k` channels as fast as taken,
/// then a close.
fn feed_of(n: usize, k: u64) -> ServeProcess {
    ServeProcess::start(&[
        "--feed",
        "--count",
        &n.to_string(),
        "--channels",
        &k.to_string(),
        "--rate",
        "0",
    ])
}

/// `floodgate bridge FEED ARGS --stats` until the feed closes: it ends
/// well, published all `n` messages, and its counters add up.
fn bridge_publishes_all(feed: &ServeProcess, args: &[&str], n: usize) {
    let out = floodgate()
        .args(["bridge", &feed.url])
        .args(args)
        .arg("--stats")
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let stats = &stats_lines(&stderr)[0];
    assert_eq!(stats["published"], n, "{stderr}");
    assert_bridge_counters_add_up(stats);
}

#[test]
#[ignore = "needs nats-server (scripts/test's brokers step)"]
fn a_feed_into_nats_is_stored_once_in_order_per_channel() {
    let (n, k) = (20_000, 8);
    let nats = nats_server::NatsServer::start();
    let feed = feed_of(n, k);
    let to = format!("{}/feeds.test", nats.url());
    bridge_publishes_all(&feed, &["--to", &to, "--stream", "FEEDS"], n);
    // Read back by nats-py: an independent client.
    let stored = support::read_jetstream(&nats.url(), "FEEDS");
    let ids: std::collections::HashSet<_> = stored.iter().map(|s| s.id.clone()).collect();
    assert_eq!(ids.len(), n, "a Nats-Msg-Id each, distinct");
    assert!(stored.iter().all(|s| s.subject == "feeds.test"));
    assert_once_in_order(&channel_and_seq(stored.into_iter().map(|s| s.body)), n, k);
}

#[test]
#[ignore = "needs redis-server (scripts/test's brokers step)"]
fn a_feed_into_redis_is_stored_once_in_order_per_channel() {
    let (n, k) = (20_000, 8);
    let redis = redis_server::RedisServer::start();
    let feed = feed_of(n, k);
    bridge_publishes_all(&feed, &["--to", &redis.url("feeds/test")], n);
    let entries = redis.xrange("feeds/test");
    assert!(
        entries.iter().all(|e| e.fields.len() == 1),
        "one field, data"
    );
    let bodies = entries.iter().map(|e| e.get("data").unwrap().to_vec());
    assert_once_in_order(&channel_and_seq(bodies), n, k);
}

#[test]
#[ignore = "needs nats-server (scripts/test's brokers step)"]
fn sigterm_mid_feed_into_nats_drains_and_prints_the_line() {
    let nats = nats_server::NatsServer::start();
    let feed = ServeProcess::start(&["--feed", "--channels", "4", "--rate", "5000"]);
    let child = Command::new(env!("CARGO_BIN_EXE_floodgate"))
        .args([
            "bridge",
            &feed.url,
            "--to",
            &format!("{}/feeds.live", nats.url()),
        ])
        .args(["--stream", "LIVE", "--name", "live", "--stats"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    terminate(&child);
    let out = wait_output(child);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let stats = &stats_lines(&stderr)[0];
    let published = stats["published"].as_u64().unwrap();
    assert!(published > 1000, "{stderr}");
    assert!(
        stderr.contains(&format!("feed live: published {published}, remaining 0")),
        "{stderr}"
    );
    assert_bridge_counters_add_up(stats);
    let stored = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(nats_server::read_stream(&nats.url(), "LIVE"));
    assert_eq!(stored.len() as u64, published);
    let got = channel_and_seq(stored.into_iter().map(|s| s.body));
    assert_once_in_order(&got, published as usize, 4);
}

#[test]
#[ignore = "needs nats-server (scripts/test's brokers step)"]
fn nats_killed_and_restarted_mid_feed_loses_nothing_with_spill() {
    let (n, k) = (20_000, 4);
    let mut nats = nats_server::NatsServer::start();
    let feed = ServeProcess::start(&[
        "--feed",
        "--count",
        &n.to_string(),
        "--channels",
        &k.to_string(),
        "--rate",
        "5000",
    ]);
    let spill = tempfile::tempdir().unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_floodgate"))
        .args([
            "bridge",
            &feed.url,
            "--to",
            &format!("{}/feeds.spill", nats.url()),
        ])
        .args(["--stream", "SPILL", "--name", "spill", "--stats"])
        .args(["--policy", "spill", "--max-messages", "200", "--spill-dir"])
        .arg(spill.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    nats.kill();
    // Down for two seconds: about 10,000 messages arrive meanwhile, far
    // more than the 200 the memory holds.
    std::thread::sleep(Duration::from_secs(2));
    nats.restart();
    let out = wait_output(child);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let stats = &stats_lines(&stderr)[0];
    assert_eq!(stats["received"], n, "{stderr}");
    assert_eq!(stats["published"], n, "{stderr}");
    assert!(
        stats["spilled"].as_u64().unwrap() > 0,
        "the outage spilled: {stderr}"
    );
    // Whether the outage shows as failed publishes depends on timing: a
    // publish in flight at the kill fails (counted, and said once with
    // "retrying"), while a publish that starts after the loss waits for a
    // new connection within the ack timeout (5 s, longer than the outage)
    // and fails nothing. Either way, what was counted was said.
    assert_eq!(
        stats["sink_errors"].as_u64().unwrap() > 0,
        stderr.contains("retrying"),
        "every failed publish is counted and reported: {stderr}"
    );
    assert_bridge_counters_add_up(stats);
    let stored = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(nats_server::read_stream(&nats.url(), "SPILL"));
    assert_once_in_order(&channel_and_seq(stored.into_iter().map(|s| s.body)), n, k);
}

#[test]
#[ignore = "needs redis-server (scripts/test's brokers step)"]
fn a_broker_that_refuses_the_messages_ends_the_feed_with_its_words() {
    let redis = redis_server::RedisServer::start();
    // A key of another type: every XADD to it is refused (WRONGTYPE), and
    // retrying cannot help.
    redis.cli(&["SET", "taken", "a string"]);
    let sent = Arc::new(AtomicU64::new(0));
    let server = numbered_then_wait(100, sent);
    let out = floodgate()
        .args([
            "bridge",
            &server.url(),
            "--to",
            &redis.url("taken"),
            "--name",
            "t",
        ])
        .args(["--stats"])
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("floodgate: feed t: redis://127.0.0.1:") && stderr.contains("refused"),
        "{stderr}"
    );
    assert!(stderr.contains("WRONGTYPE"), "the broker's words: {stderr}");
    assert!(
        stderr.ends_with("floodgate: feed t ended with an error (see above)\n"),
        "{stderr}"
    );
    let stats = &stats_lines(&stderr)[0];
    assert_eq!(stats["published"], 0);
    assert_eq!(stats["sink_errors"], 1, "not retried: {stderr}");
    assert_counters_add_up(stats);
    assert_eq!(redis.cli(&["GET", "taken"]), "a string");
}

/// How many messages the JetStream `stream` holds (0 when it does not
/// exist yet or the server does not answer).
async fn stream_len(url: &str, stream: &str) -> u64 {
    let attempt = async {
        let client = async_nats::connect(url).await.ok()?;
        let js = async_nats::jetstream::new(client);
        let mut stream = js.get_stream(stream).await.ok()?;
        Some(stream.info().await.ok()?.state.messages)
    };
    tokio::time::timeout(Duration::from_secs(2), attempt)
        .await
        .ok()
        .flatten()
        .unwrap_or(0)
}

#[test]
#[ignore = "needs nats-server (scripts/test's brokers step)"]
fn a_durable_feed_reconnects_at_once_while_the_broker_is_away() {
    use std::sync::atomic::AtomicUsize;
    // The first connection sends m00000..m00999, then (phase 1, the broker
    // killed) m01000..m01499, then (phase 2) ends without a close; the
    // next sends m01500..m01999 and stays.
    let phase = Arc::new(AtomicUsize::new(0));
    let connections = Arc::new(AtomicUsize::new(0));
    let server = {
        let (phase, connections) = (phase.clone(), connections.clone());
        floodgate_server::Server::bind(
            "127.0.0.1:0",
            move |mut ws: floodgate_server::WebSocket, _: floodgate_server::RequestHead| {
                let send = |ws: &mut floodgate_server::WebSocket, range: std::ops::Range<u32>| {
                    range
                        .into_iter()
                        .all(|i| ws.send_text(&format!("m{i:05}")).is_ok())
                };
                let wait_for = |n: usize| {
                    while phase.load(Ordering::SeqCst) < n {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                };
                if connections.fetch_add(1, Ordering::SeqCst) == 0 {
                    if !send(&mut ws, 0..1000) {
                        return;
                    }
                    wait_for(1);
                    if !send(&mut ws, 1000..1500) {
                        return;
                    }
                    wait_for(2);
                    // Dropped without a close: an abnormal end.
                } else if send(&mut ws, 1500..2000) {
                    while ws.recv().is_ok() {}
                }
            },
        )
        .unwrap()
    };
    let mut nats = nats_server::NatsServer::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let spill = tempfile::tempdir().unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_floodgate"))
        .args([
            "bridge",
            &server.url(),
            "--to",
            &format!("{}/feeds.durable", nats.url()),
        ])
        .args(["--stream", "DURABLE", "--name", "d", "--stats"])
        .args(["--policy", "spill", "--durable", "--spill-dir"])
        .arg(spill.path())
        .args(["--reconnect", "--reconnect-delay", "100ms"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let nats_url = nats.url();
    let wait_stored = |n: u64| {
        let until = Instant::now() + LIMIT;
        while rt.block_on(stream_len(&nats_url, "DURABLE")) < n {
            assert!(Instant::now() < until, "the stream never held {n}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait_stored(1000);
    nats.kill();
    phase.store(1, Ordering::SeqCst);
    // The bridge leases m01000.. and fails to publish them.
    std::thread::sleep(Duration::from_secs(1));
    phase.store(2, Ordering::SeqCst);
    let until = Instant::now() + Duration::from_secs(10);
    while connections.load(Ordering::SeqCst) < 2 {
        assert!(
            Instant::now() < until,
            "the feed did not reconnect while the broker was away"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Reconnected while the broker is still down; now it comes back.
    std::thread::sleep(Duration::from_millis(500));
    nats.restart();
    wait_stored(2000);
    terminate(&child);
    let out = wait_output(child);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("feed d: connection lost"), "{stderr}");
    let stored = rt.block_on(nats_server::read_stream(&nats.url(), "DURABLE"));
    let texts: Vec<String> = stored
        .iter()
        .map(|s| String::from_utf8(s.body.clone()).unwrap())
        .collect();
    let expected: Vec<String> = (0..2000).map(|i| format!("m{i:05}")).collect();
    assert_eq!(texts, expected, "every message once, in order: {stderr}");
    assert!(
        stderr.contains("feed d: published 2000, remaining 0"),
        "{stderr}"
    );
}
