//! The buffer's stats as the command line shows them: one JSON object
//! with the counter names of the design (`received`, `delivered`,
//! `buffered`, `dropped_oldest`, `dropped_newest`, `conflated`,
//! `filtered`), the high-water marks, and the wait and ping figures in
//! microseconds (`last_ping_rtt_us`, the keepalive's last round trip, is
//! `null` until a pong answered one of its pings); under `--policy spill` also the disk's counters
//! (`buffered_disk`, `disk_bytes`, `high_water_disk_bytes`, `spilled`,
//! `recovered`, `spill_refused`, `spill_errors`, `spill_corrupt_records`);
//! and [`Totals`], which adds up the stats of successive connections
//! (after reconnects).

use floodgate::buffer::Stats;
use serde_json::{json, Map, Value};
use std::time::Duration;

/// A duration in whole microseconds, as the JSON figures give them.
pub fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// The stats as a JSON object; `spill` (the buffer spills to disk) adds
/// the disk's counters after the memory's. `buffered` counts memory and
/// disk together; `buffered_bytes` and the `high_water_*` marks without
/// `disk` in their name are the memory's.
pub fn stats_json(s: &Stats, spill: bool) -> Value {
    let mut map = Map::new();
    let mut put = |key: &str, value: Value| {
        map.insert(key.to_owned(), value);
    };
    put("received", json!(s.received));
    put("delivered", json!(s.delivered));
    put("buffered", json!(s.buffered));
    put("dropped_oldest", json!(s.dropped_oldest));
    put("dropped_newest", json!(s.dropped_newest));
    put("conflated", json!(s.conflated));
    put("filtered", json!(s.filtered));
    put("buffered_bytes", json!(s.buffered_bytes));
    put("high_water_messages", json!(s.high_water_messages));
    put("high_water_bytes", json!(s.high_water_bytes));
    if spill {
        put("buffered_disk", json!(s.buffered_disk));
        put("disk_bytes", json!(s.disk_bytes));
        put("high_water_disk_bytes", json!(s.high_water_disk_bytes));
        put("spilled", json!(s.spilled));
        put("recovered", json!(s.recovered));
        put("spill_refused", json!(s.spill_refused));
        put("spill_errors", json!(s.spill_errors));
        put("spill_corrupt_records", json!(s.spill_corrupt_records));
    }
    put("blocked_us", json!(micros(s.blocked)));
    put("queue_wait_p50_us", json!(micros(s.queue_wait.p50)));
    put("queue_wait_p99_us", json!(micros(s.queue_wait.p99)));
    put("queue_wait_max_us", json!(micros(s.queue_wait.max)));
    put("pings_answered", json!(s.pings_answered));
    put("max_ping_delay_us", json!(micros(s.max_ping_delay)));
    put("pongs_received", json!(s.pongs_received));
    put("ping_round_trips", json!(s.ping_round_trips));
    put("last_ping_rtt_us", json!(s.last_ping_rtt.map(micros)));
    put("max_ping_rtt_us", json!(micros(s.max_ping_rtt)));
    Value::Object(map)
}

/// Stats summed over the connections of one command.
///
/// Counters and the time blocked add up; high-water marks, the longest
/// ping delay and round trip and the queue-wait percentiles are the worst
/// connection's (percentiles of different connections cannot be merged
/// exactly); the last ping round trip is that of the last connection
/// added that measured one.
#[derive(Debug, Default, Clone)]
pub struct Totals {
    /// The running sum.
    pub stats: Stats,
    /// Connections counted.
    pub connections: u64,
    /// The buffer spills to disk: show the disk's counters.
    pub spill: bool,
}

impl Totals {
    /// No connection yet; `spill`: the buffer spills to disk.
    pub fn new(spill: bool) -> Totals {
        Totals {
            spill,
            ..Totals::default()
        }
    }

    /// Adds the final stats of one connection.
    pub fn add(&mut self, s: &Stats) {
        let t = &mut self.stats;
        t.received += s.received;
        t.delivered += s.delivered;
        t.buffered += s.buffered;
        t.in_flight += s.in_flight;
        t.dropped_oldest += s.dropped_oldest;
        t.dropped_newest += s.dropped_newest;
        t.conflated += s.conflated;
        t.filtered += s.filtered;
        t.buffered_bytes += s.buffered_bytes;
        // What a durable spill left on disk at the end of one connection
        // is recovered (received again) by the next: both are counted, as
        // each connection counted them, so the sums still add up.
        t.buffered_disk += s.buffered_disk;
        t.disk_bytes += s.disk_bytes;
        t.high_water_disk_bytes = t.high_water_disk_bytes.max(s.high_water_disk_bytes);
        t.spilled += s.spilled;
        t.recovered += s.recovered;
        t.spill_refused += s.spill_refused;
        t.spill_errors += s.spill_errors;
        t.spill_corrupt_records += s.spill_corrupt_records;
        t.high_water_messages = t.high_water_messages.max(s.high_water_messages);
        t.high_water_bytes = t.high_water_bytes.max(s.high_water_bytes);
        t.blocked += s.blocked;
        t.queue_wait.count += s.queue_wait.count;
        t.queue_wait.p50 = t.queue_wait.p50.max(s.queue_wait.p50);
        t.queue_wait.p99 = t.queue_wait.p99.max(s.queue_wait.p99);
        t.queue_wait.max = t.queue_wait.max.max(s.queue_wait.max);
        t.pings_answered += s.pings_answered;
        t.max_ping_delay = t.max_ping_delay.max(s.max_ping_delay);
        t.pongs_received += s.pongs_received;
        t.ping_round_trips += s.ping_round_trips;
        t.last_ping_rtt = s.last_ping_rtt.or(t.last_ping_rtt);
        t.max_ping_rtt = t.max_ping_rtt.max(s.max_ping_rtt);
        self.connections += 1;
    }

    /// The totals as JSON: [`stats_json`] plus `connections`.
    pub fn to_json(&self) -> Value {
        let mut value = stats_json(&self.stats, self.spill);
        value["connections"] = json!(self.connections);
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_add_counters_and_keep_the_worst_marks() {
        let mut a = Stats::default();
        a.received = 10;
        a.delivered = 7;
        a.dropped_oldest = 3;
        a.high_water_messages = 5;
        a.max_ping_delay = Duration::from_millis(2);
        let mut b = Stats::default();
        b.received = 4;
        b.delivered = 4;
        b.high_water_messages = 2;
        b.max_ping_delay = Duration::from_millis(9);
        let mut totals = Totals::default();
        totals.add(&a);
        totals.add(&b);
        let json = totals.to_json();
        assert_eq!(json["received"], 14);
        assert_eq!(json["delivered"], 11);
        assert_eq!(json["dropped_oldest"], 3);
        assert_eq!(json["high_water_messages"], 5);
        assert_eq!(json["max_ping_delay_us"], 9000);
        assert_eq!(json["connections"], 2);
        assert!(json.get("spilled").is_none(), "no spill counters: {json}");
    }

    #[test]
    fn the_spill_counters_are_shown_under_spill_only_and_add_up() {
        let mut a = Stats::default();
        a.received = 10;
        a.delivered = 4;
        a.buffered = 6;
        a.buffered_disk = 5;
        a.disk_bytes = 900;
        a.high_water_disk_bytes = 1200;
        a.spilled = 8;
        a.spill_errors = 1;
        let mut b = Stats::default();
        b.received = 6;
        b.delivered = 6;
        b.recovered = 5;
        b.high_water_disk_bytes = 700;
        b.spill_corrupt_records = 2;
        b.spill_refused = 3;
        let mut totals = Totals::new(true);
        totals.add(&a);
        totals.add(&b);
        let json = totals.to_json();
        assert_eq!(json["buffered_disk"], 5);
        assert_eq!(json["disk_bytes"], 900);
        assert_eq!(json["high_water_disk_bytes"], 1200);
        assert_eq!(json["spilled"], 8);
        assert_eq!(json["recovered"], 5);
        assert_eq!(json["spill_refused"], 3);
        assert_eq!(json["spill_errors"], 1);
        assert_eq!(json["spill_corrupt_records"], 2);
        // Without spill, the keys are those of before, in their order.
        let keys = |v: &Value| -> Vec<String> { v.as_object().unwrap().keys().cloned().collect() };
        assert_eq!(
            keys(&stats_json(&a, false)),
            [
                "received",
                "delivered",
                "buffered",
                "dropped_oldest",
                "dropped_newest",
                "conflated",
                "filtered",
                "buffered_bytes",
                "high_water_messages",
                "high_water_bytes",
                "blocked_us",
                "queue_wait_p50_us",
                "queue_wait_p99_us",
                "queue_wait_max_us",
                "pings_answered",
                "max_ping_delay_us",
                "pongs_received",
                "ping_round_trips",
                "last_ping_rtt_us",
                "max_ping_rtt_us",
            ]
        );
        assert_eq!(keys(&json).len(), 20 + 8 + 1);
    }

    #[test]
    fn totals_keep_the_longest_round_trip_and_the_last_one_measured() {
        let ms = Duration::from_millis;
        let mut a = Stats::default();
        a.pongs_received = 5;
        a.ping_round_trips = 4;
        a.last_ping_rtt = Some(ms(30));
        a.max_ping_rtt = ms(80);
        let mut totals = Totals::default();
        assert_eq!(totals.to_json()["last_ping_rtt_us"], Value::Null);
        totals.add(&a);
        let mut b = Stats::default();
        b.pongs_received = 2;
        b.ping_round_trips = 2;
        b.last_ping_rtt = Some(ms(7));
        b.max_ping_rtt = ms(9);
        totals.add(&b);
        let json = totals.to_json();
        assert_eq!(json["ping_round_trips"], 6);
        assert_eq!(json["last_ping_rtt_us"], 7000, "the latest connection's");
        assert_eq!(json["max_ping_rtt_us"], 80_000, "the worst connection's");
        // A connection that measured none keeps the last figure known.
        totals.add(&Stats::default());
        let json = totals.to_json();
        assert_eq!(json["last_ping_rtt_us"], 7000);
        assert_eq!(json["ping_round_trips"], 6);
    }
}
