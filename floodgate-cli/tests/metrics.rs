//! `floodgate connect --metrics ADDR`: Prometheus text at /metrics while
//! the command runs, whose figures match what `--stats` prints at the end;
//! an address that cannot be used ends the command before it connects.
//!
//! The command only receives: its stdin is a pipe the test holds open.

mod support;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{assert_counters_add_up, floodgate, numbered_then_wait};

/// GET `path` from `addr`: the status line and the body.
fn get(addr: &str, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(addr).expect("connect to the metrics address");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("a response head");
    let status = head.lines().next().unwrap_or_default().to_owned();
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    (status, body.to_owned())
}

/// `name{labels}` -> value of every sample of a Prometheus text body; the
/// names of the `# TYPE` lines.
fn samples(body: &str) -> (HashMap<String, f64>, HashMap<String, String>) {
    let mut values = HashMap::new();
    let mut types = HashMap::new();
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            types.insert(name.to_owned(), kind.to_owned());
        } else if !line.is_empty() && !line.starts_with('#') {
            let (series, value) = line.rsplit_once(' ').unwrap();
            // Drop the feed label (the URL), keep the others.
            let series = series
                .split_once('{')
                .map(|(name, labels)| {
                    let kept: Vec<&str> = labels
                        .trim_end_matches('}')
                        .split(',')
                        .filter(|l| !l.starts_with("feed="))
                        .collect();
                    if kept.is_empty() {
                        name.to_owned()
                    } else {
                        format!("{name}{{{}}}", kept.join(","))
                    }
                })
                .unwrap_or_else(|| series.to_owned());
            values.insert(series, value.parse::<f64>().unwrap());
        }
    }
    (values, types)
}

#[test]
fn the_metrics_served_during_the_run_match_the_stats_at_the_end() {
    // 2 MB: more than a pipe holds (64 KiB here, at most 1 MiB), so with
    // stdout unread until the end, drops are certain.
    const COUNT: u64 = 20_000;
    let sent = Arc::new(AtomicU64::new(0));
    let server = numbered_then_wait(COUNT, sent.clone());
    let url = format!("ws://{}/", server.local_addr());
    // The messages come faster than the command prints them: the buffer
    // (50 messages) fills and drop-newest sheds, so the drop counters move
    // too. (`received` counts every message, the dropped ones included.)
    let mut child = Command::new(env!("CARGO_BIN_EXE_floodgate"))
        .args([
            "connect",
            &url,
            "--policy",
            "drop-newest",
            "--max-messages",
            "50",
            "--metrics",
            "127.0.0.1:0",
            "--stats",
        ])
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start floodgate");
    let stdin = child.stdin.take();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut first = String::new();
    stderr.read_line(&mut first).unwrap();
    let addr = first
        .trim()
        .strip_prefix("floodgate: metrics at http://")
        .and_then(|rest| rest.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("no metrics address in {first:?}"))
        .to_owned();

    // Until the server has sent everything and the figures stand still.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = None;
    let scraped = loop {
        assert!(
            Instant::now() < deadline,
            "the figures never settled: {last:?}"
        );
        let (status, body) = get(&addr, "/metrics");
        assert_eq!(status, "HTTP/1.1 200 OK");
        let (values, types) = samples(&body);
        assert_eq!(types["floodgate_received_total"], "counter");
        assert_eq!(types["floodgate_buffered_messages"], "gauge");
        let settled = sent.load(Ordering::SeqCst) == COUNT
            && last.as_ref() == Some(&values)
            && values["floodgate_received_total"] == COUNT as f64;
        if settled {
            break values;
        }
        last = Some(values);
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        scraped["floodgate_dropped_total{reason=\"newest\"}"] > 0.0,
        "{scraped:?}"
    );
    assert_eq!(scraped["floodgate_connections_total"], 1.0);
    let (status, _) = get(&addr, "/other");
    assert_eq!(status, "HTTP/1.1 404 Not Found");

    // Now read what was printed, let the command end, and compare.
    let mut out = String::new();
    let mut stdout = child.stdout.take().unwrap();
    drop(stdin);
    stdout.read_to_string(&mut out).unwrap();
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{rest}");
    let stats: serde_json::Value = serde_json::from_str(rest.lines().last().unwrap())
        .unwrap_or_else(|e| panic!("no stats ({e}) in {rest:?}"));
    assert_counters_add_up(&stats);
    let at = |k: &str| stats[k].as_u64().unwrap() as f64;
    assert_eq!(scraped["floodgate_received_total"], at("received"));
    assert_eq!(
        scraped["floodgate_dropped_total{reason=\"newest\"}"],
        at("dropped_newest")
    );
    assert_eq!(
        scraped["floodgate_dropped_total{reason=\"oldest\"}"],
        at("dropped_oldest")
    );
    // What was buffered at the scrape was delivered at the end.
    assert_eq!(
        scraped["floodgate_delivered_total"]
            + scraped["floodgate_buffered_messages{where=\"memory\"}"],
        at("delivered")
    );
    assert_eq!(out.lines().count() as f64, at("delivered"));
}

#[test]
fn an_address_that_cannot_be_used_ends_the_command_before_it_connects() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    // No server at all: the metrics address is refused first.
    let out = floodgate()
        .args(["connect", "ws://127.0.0.1:9/", "--metrics", &addr])
        .write_stdin("")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("--metrics {addr}: cannot listen there")),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}
