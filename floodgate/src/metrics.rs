//! A connection's [`Stats`] through the [`metrics`](https://docs.rs/metrics)
//! facade (feature `metrics`), for whatever exporter the program installs
//! (Prometheus, StatsD, ...).
//!
//! Why a module of its own: the counters are only useful if every program
//! names them the same way, and if the sums still add up once exported.
//! Every name starts with `floodgate_`; every series carries the
//! [`Reporter`]'s labels (say `feed="btc-usd"`), so one process can
//! report many connections.
//!
//! | metric | kind | from [`Stats`] |
//! |---|---|---|
//! | `floodgate_received_total` | counter | `received` |
//! | `floodgate_delivered_total` | counter | `delivered` |
//! | `floodgate_dropped_total{reason}` | counter | `reason` = `oldest`, `newest`, `conflated`, `filtered` |
//! | `floodgate_buffered_messages{where}` | gauge | `where` = `memory`, `disk` (`buffered` = their sum) |
//! | `floodgate_in_flight_messages` | gauge | `in_flight`: out in a [`Lease`](crate::buffer::Lease), part of `buffered` |
//! | `floodgate_buffered_bytes{where}` | gauge | `buffered_bytes`, `disk_bytes` |
//! | `floodgate_high_water_messages`, `floodgate_high_water_bytes` | gauge | the memory's high-water marks |
//! | `floodgate_spilled_total`, `floodgate_recovered_total`, `floodgate_spill_refused_total`, `floodgate_spill_errors_total`, `floodgate_spill_corrupt_records_total` | counter | the spill's |
//! | `floodgate_blocked_seconds` | gauge (only grows) | `blocked`: the reader's time waiting for room |
//! | `floodgate_queue_wait_seconds{quantile}` | gauge | `queue_wait` p50 (`0.5`), p99 (`0.99`), max (`1`) |
//! | `floodgate_pings_answered_total`, `floodgate_pongs_received_total` | counter | |
//! | `floodgate_max_ping_delay_seconds` | gauge | `max_ping_delay`: the reader's time to answer the server's pings |
//! | `floodgate_ping_round_trips_total` | counter | `ping_round_trips`: the keepalive's pings answered |
//! | `floodgate_ping_rtt_seconds` | gauge | `last_ping_rtt`: the round trip of the keepalive's last ping answered (absent until one was) |
//! | `floodgate_max_ping_rtt_seconds` | gauge | `max_ping_rtt`: the longest of those round trips |
//! | `floodgate_connections_total` | counter | connections made (reconnects + 1) |
//!
//! The figures are given whole ([`Reporter::report`] sets absolute
//! values), so pass figures that only grow: for a program that reconnects,
//! the sum over its connections (the `floodgate` command's `--stats`
//! totals), not the last connection's alone, which start again from zero.

use crate::buffer::Stats;
use metrics::Label;

/// Reports [`Stats`] under fixed labels (see the module docs).
///
/// ```
/// use floodgate::metrics::Reporter;
/// # let stats = floodgate::buffer::Stats::default();
/// let reporter = Reporter::new([("feed", "btc-usd".to_string())]);
/// // With an exporter installed (metrics-exporter-prometheus, ...), each
/// // call updates floodgate_received_total{feed="btc-usd"} and the rest.
/// reporter.report(&stats, 1);
/// ```
#[derive(Debug, Clone)]
pub struct Reporter {
    labels: Vec<Label>,
}

impl Reporter {
    /// A reporter whose series all carry `labels`.
    pub fn new(labels: impl IntoIterator<Item = (&'static str, String)>) -> Reporter {
        Reporter {
            labels: labels.into_iter().map(|(k, v)| Label::new(k, v)).collect(),
        }
    }

    fn with(&self, key: &'static str, value: &'static str) -> Vec<Label> {
        let mut labels = self.labels.clone();
        labels.push(Label::new(key, value));
        labels
    }

    /// Sets every metric from `stats` and `connections` (how many
    /// connections the figures cover). Cheap enough to call at every
    /// scrape.
    pub fn report(&self, stats: &Stats, connections: u64) {
        let l = &self.labels;
        let counter = |name: &'static str, labels: Vec<Label>, value: u64| {
            metrics::counter!(name, labels).absolute(value);
        };
        let gauge = |name: &'static str, labels: Vec<Label>, value: f64| {
            metrics::gauge!(name, labels).set(value);
        };
        counter("floodgate_received_total", l.clone(), stats.received);
        counter("floodgate_delivered_total", l.clone(), stats.delivered);
        for (reason, value) in [
            ("oldest", stats.dropped_oldest),
            ("newest", stats.dropped_newest),
            ("conflated", stats.conflated),
            ("filtered", stats.filtered),
        ] {
            counter(
                "floodgate_dropped_total",
                self.with("reason", reason),
                value,
            );
        }
        let memory = stats.buffered.saturating_sub(stats.buffered_disk);
        gauge(
            "floodgate_buffered_messages",
            self.with("where", "memory"),
            memory as f64,
        );
        gauge(
            "floodgate_buffered_messages",
            self.with("where", "disk"),
            stats.buffered_disk as f64,
        );
        gauge(
            "floodgate_in_flight_messages",
            l.clone(),
            stats.in_flight as f64,
        );
        gauge(
            "floodgate_buffered_bytes",
            self.with("where", "memory"),
            stats.buffered_bytes as f64,
        );
        gauge(
            "floodgate_buffered_bytes",
            self.with("where", "disk"),
            stats.disk_bytes as f64,
        );
        gauge(
            "floodgate_high_water_messages",
            l.clone(),
            stats.high_water_messages as f64,
        );
        gauge(
            "floodgate_high_water_bytes",
            l.clone(),
            stats.high_water_bytes as f64,
        );
        counter("floodgate_spilled_total", l.clone(), stats.spilled);
        counter("floodgate_recovered_total", l.clone(), stats.recovered);
        counter(
            "floodgate_spill_refused_total",
            l.clone(),
            stats.spill_refused,
        );
        counter(
            "floodgate_spill_errors_total",
            l.clone(),
            stats.spill_errors,
        );
        counter(
            "floodgate_spill_corrupt_records_total",
            l.clone(),
            stats.spill_corrupt_records,
        );
        gauge(
            "floodgate_blocked_seconds",
            l.clone(),
            stats.blocked.as_secs_f64(),
        );
        for (quantile, value) in [
            ("0.5", stats.queue_wait.p50),
            ("0.99", stats.queue_wait.p99),
            ("1", stats.queue_wait.max),
        ] {
            gauge(
                "floodgate_queue_wait_seconds",
                self.with("quantile", quantile),
                value.as_secs_f64(),
            );
        }
        counter(
            "floodgate_pings_answered_total",
            l.clone(),
            stats.pings_answered,
        );
        counter(
            "floodgate_pongs_received_total",
            l.clone(),
            stats.pongs_received,
        );
        gauge(
            "floodgate_max_ping_delay_seconds",
            l.clone(),
            stats.max_ping_delay.as_secs_f64(),
        );
        counter(
            "floodgate_ping_round_trips_total",
            l.clone(),
            stats.ping_round_trips,
        );
        // Absent rather than 0 before the first answer: a round trip of
        // zero would read as a perfect network, not as no measure.
        if let Some(rtt) = stats.last_ping_rtt {
            gauge("floodgate_ping_rtt_seconds", l.clone(), rtt.as_secs_f64());
        }
        gauge(
            "floodgate_max_ping_rtt_seconds",
            l.clone(),
            stats.max_ping_rtt.as_secs_f64(),
        );
        counter("floodgate_connections_total", l.clone(), connections);
    }
}
