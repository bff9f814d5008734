//! `floodgate::metrics` (feature `metrics`): what a connection's Stats
//! become, captured with metrics-util's debugging recorder.
#![cfg(feature = "metrics")]

use floodgate::buffer::Stats;
use floodgate::metrics::Reporter;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use std::collections::BTreeMap;
use std::time::Duration;

/// name{label=value,...} -> value, every series of one report.
fn report(stats: &Stats, connections: u64) -> BTreeMap<String, f64> {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        Reporter::new([("feed", "btc".to_string())]).report(stats, connections)
    });
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let (_, key) = key.into_parts();
            let labels: Vec<String> = key
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            let value = match value {
                DebugValue::Counter(v) => v as f64,
                DebugValue::Gauge(v) => v.into_inner(),
                DebugValue::Histogram(_) => panic!("no histogram is reported"),
            };
            (format!("{}{{{}}}", key.name(), labels.join(",")), value)
        })
        .collect()
}

#[test]
fn every_figure_is_reported_under_its_name_and_labels() {
    let mut s = Stats::default();
    s.received = 100;
    s.delivered = 60;
    s.buffered = 25;
    s.buffered_disk = 20;
    s.dropped_oldest = 7;
    s.dropped_newest = 5;
    s.conflated = 2;
    s.filtered = 1;
    s.buffered_bytes = 500;
    s.disk_bytes = 4096;
    s.spilled = 30;
    s.recovered = 3;
    s.blocked = Duration::from_millis(1500);
    s.queue_wait.p99 = Duration::from_millis(40);
    s.pings_answered = 9;
    s.ping_round_trips = 4;
    s.last_ping_rtt = Some(Duration::from_millis(12));
    s.max_ping_rtt = Duration::from_millis(250);
    let got = report(&s, 2);
    let at = |k: &str| {
        *got.get(k)
            .unwrap_or_else(|| panic!("{k} missing from {got:#?}"))
    };
    assert_eq!(at("floodgate_received_total{feed=btc}"), 100.0);
    assert_eq!(at("floodgate_delivered_total{feed=btc}"), 60.0);
    assert_eq!(at("floodgate_dropped_total{feed=btc,reason=oldest}"), 7.0);
    assert_eq!(at("floodgate_dropped_total{feed=btc,reason=newest}"), 5.0);
    assert_eq!(
        at("floodgate_dropped_total{feed=btc,reason=conflated}"),
        2.0
    );
    assert_eq!(at("floodgate_dropped_total{feed=btc,reason=filtered}"), 1.0);
    assert_eq!(
        at("floodgate_buffered_messages{feed=btc,where=memory}"),
        5.0
    );
    assert_eq!(at("floodgate_buffered_messages{feed=btc,where=disk}"), 20.0);
    assert_eq!(at("floodgate_buffered_bytes{feed=btc,where=disk}"), 4096.0);
    assert_eq!(at("floodgate_spilled_total{feed=btc}"), 30.0);
    assert_eq!(at("floodgate_recovered_total{feed=btc}"), 3.0);
    assert_eq!(at("floodgate_blocked_seconds{feed=btc}"), 1.5);
    assert_eq!(
        at("floodgate_queue_wait_seconds{feed=btc,quantile=0.99}"),
        0.04
    );
    assert_eq!(at("floodgate_pings_answered_total{feed=btc}"), 9.0);
    assert_eq!(at("floodgate_connections_total{feed=btc}"), 2.0);
    assert_eq!(at("floodgate_ping_round_trips_total{feed=btc}"), 4.0);
    assert_eq!(at("floodgate_ping_rtt_seconds{feed=btc}"), 0.012);
    assert_eq!(at("floodgate_max_ping_rtt_seconds{feed=btc}"), 0.25);
    // The sums add up once exported, as they do in Stats.
    let dropped: f64 = got
        .iter()
        .filter(|(k, _)| k.starts_with("floodgate_dropped_total"))
        .map(|(_, v)| v)
        .sum();
    let buffered: f64 = got
        .iter()
        .filter(|(k, _)| k.starts_with("floodgate_buffered_messages"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(
        at("floodgate_received_total{feed=btc}"),
        at("floodgate_delivered_total{feed=btc}") + buffered + dropped
    );
    // Every name is the crate's.
    assert!(got.keys().all(|k| k.starts_with("floodgate_")), "{got:#?}");
}

#[test]
fn the_ping_round_trip_gauge_is_absent_until_a_round_trip_was_measured() {
    let got = report(&Stats::default(), 1);
    assert!(
        !got.contains_key("floodgate_ping_rtt_seconds{feed=btc}"),
        "{got:#?}"
    );
    assert_eq!(got["floodgate_max_ping_rtt_seconds{feed=btc}"], 0.0);
    assert_eq!(got["floodgate_ping_round_trips_total{feed=btc}"], 0.0);
}
