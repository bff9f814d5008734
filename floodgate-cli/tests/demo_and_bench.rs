//! `floodgate demo` and `floodgate bench`, run as a user would, with short
//! durations: what they print must be true of what happened.

mod support;

use support::{assert_counters_add_up, floodgate, row, text};

#[test]
fn demo_json_has_one_object_per_policy_whose_counters_add_up() {
    // The spill row's directory goes under TMPDIR: one of the test's own,
    // to see that nothing is left in it.
    let tmp = std::env::temp_dir().join(format!("floodgate-demo-test-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let out = floodgate()
        .env("TMPDIR", &tmp)
        .args([
            "demo",
            "--json",
            "--duration",
            "400ms",
            "--pause-every",
            "150ms",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let runs: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).expect("a JSON array");
    let policies: Vec<&str> = runs.iter().map(|r| r["policy"].as_str().unwrap()).collect();
    assert_eq!(
        policies,
        [
            "block",
            "block-for",
            "drop-oldest",
            "drop-newest",
            "conflate",
            "disconnect",
            "spill"
        ]
    );
    for run in &runs {
        let n = |k: &str| run[k].as_u64().unwrap_or_else(|| panic!("{k} in {run}"));
        assert!(n("received") > 0, "{run}");
        assert_counters_add_up(run);
        assert!(n("high_water_messages") <= 1000, "{run}");
    }
    let by = |p: &str| runs.iter().find(|r| r["policy"] == p).unwrap();
    let block = by("block");
    assert_eq!(block["dropped_oldest"], 0);
    assert_eq!(block["dropped_newest"], 0);
    assert!(by("drop-oldest")["dropped_oldest"].as_u64().unwrap() > 0);
    assert!(by("drop-newest")["dropped_newest"].as_u64().unwrap() > 0);
    let conflate = by("conflate");
    assert!(conflate["conflated"].as_u64().unwrap() > 0);
    assert!(
        conflate["high_water_messages"].as_u64().unwrap() <= 8,
        "8 channels: {conflate}"
    );
    assert!(by("disconnect")["end"].as_str().unwrap().contains("1008"));
    // Spill: nothing lost. During the run nothing was dropped; after it,
    // the consumer took what was left and every message the feed sent
    // came, in order.
    let spill = by("spill");
    let n = |k: &str| {
        spill[k]
            .as_u64()
            .unwrap_or_else(|| panic!("{k} in {spill}"))
    };
    assert_eq!(n("dropped_oldest") + n("dropped_newest"), 0, "{spill}");
    assert_eq!(n("spill_refused") + n("spill_errors"), 0, "{spill}");
    assert!(n("spilled") > 0, "the backlog went to disk: {spill}");
    assert!(n("buffered_disk") <= n("buffered"), "{spill}");
    assert_eq!(spill["in_order"], true, "{spill}");
    assert_eq!(n("drained_dropped"), 0, "{spill}");
    assert!(
        n("drained_delivered") >= n("feed_sent"),
        "every message the feed sent was delivered: {spill}"
    );
    assert_eq!(spill["end"], "closed (1000)", "{spill}");
    // The other rows show no spill counters.
    assert!(block.get("spilled").is_none(), "{block}");
    let left: Vec<_> = std::fs::read_dir(&tmp)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    std::fs::remove_dir_all(&tmp).unwrap();
    assert!(left.is_empty(), "the spill row left {left:?}");
}

#[test]
fn demo_prints_a_closing_table_with_a_row_per_policy() {
    let out = floodgate()
        .args([
            "demo",
            "--duration",
            "300ms",
            "--policies",
            "block,conflate,spill",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = text(&out.stdout);
    let rows: Vec<&str> = stdout.lines().collect();
    assert!(
        rows[0].starts_with("policy") && rows[0].contains("worst ping rtt"),
        "{stdout}"
    );
    assert!(rows[2].starts_with("block "), "{stdout}");
    assert!(rows[3].starts_with("conflate "), "{stdout}");
    assert!(rows[4].starts_with("spill "), "{stdout}");
    assert!(stdout.contains("- block: nothing lost"), "{stdout}");
    assert!(stdout.contains("- spill: "), "{stdout}");
    assert!(
        stdout.contains("every one in order, nothing lost"),
        "{stdout}"
    );
}

#[test]
fn bench_without_a_url_measures_echo_and_stream_against_the_embedded_server() {
    let out = floodgate()
        .args(["bench", "--messages", "300", "--duration", "300ms"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = text(&out.stdout);
    let echo = row(&stdout, "echo round trip");
    assert!(echo.contains(" 300 "), "all 300 round trips: {echo}");
    let stream = row(&stdout, "stream receive");
    assert!(!stream.contains(" 0 "), "{stream}");
}

#[test]
fn bench_stream_needs_a_server_that_streams() {
    let server = floodgate_server::Server::bind("127.0.0.1:0", floodgate_server::echo).unwrap();
    let out = floodgate()
        .args([
            "bench",
            &server.url(),
            "--mode",
            "stream",
            "--duration",
            "300ms",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(text(&out.stderr).contains("sent nothing"), "{out:?}");
}

#[test]
fn bench_against_a_url_times_echo_round_trips() {
    let server = floodgate_server::Server::bind("127.0.0.1:0", floodgate_server::echo).unwrap();
    let out = floodgate()
        .args(["bench", &server.url(), "--messages", "50", "--size", "16"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = text(&out.stdout);
    let echo = row(&stdout, "echo round trip");
    assert!(echo.contains(" 50 ") && echo.contains("800 B"), "{echo}");
    assert!(
        !stdout.contains("stream receive"),
        "a URL runs the echo test only"
    );
}
