//! The buffer's stats as the command line shows them: one JSON object
//! with the counter names of the design (`received`, `delivered`,
//! `buffered`, `dropped_oldest`, `dropped_newest`, `conflated`,
//! `filtered`), the high-water marks, and the wait and ping figures in
//! microseconds; and [`Totals`], which adds up the stats of successive
//! connections (after reconnects).

use floodgate::buffer::Stats;
use serde_json::{json, Value};
use std::time::Duration;

/// A duration in whole microseconds, as the JSON figures give them.
pub fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// The stats as a JSON object.
pub fn stats_json(s: &Stats) -> Value {
    json!({
        "received": s.received,
        "delivered": s.delivered,
        "buffered": s.buffered,
        "dropped_oldest": s.dropped_oldest,
        "dropped_newest": s.dropped_newest,
        "conflated": s.conflated,
        "filtered": s.filtered,
        "buffered_bytes": s.buffered_bytes,
        "high_water_messages": s.high_water_messages,
        "high_water_bytes": s.high_water_bytes,
        "blocked_us": micros(s.blocked),
        "queue_wait_p50_us": micros(s.queue_wait.p50),
        "queue_wait_p99_us": micros(s.queue_wait.p99),
        "queue_wait_max_us": micros(s.queue_wait.max),
        "pings_answered": s.pings_answered,
        "max_ping_delay_us": micros(s.max_ping_delay),
        "pongs_received": s.pongs_received,
    })
}

/// Stats summed over the connections of one command.
///
/// Counters and the time blocked add up; high-water marks, the longest
/// ping delay and the queue-wait percentiles are the worst connection's
/// (percentiles of different connections cannot be merged exactly).
#[derive(Debug, Default, Clone)]
pub struct Totals {
    /// The running sum.
    pub stats: Stats,
    /// Connections counted.
    pub connections: u64,
}

impl Totals {
    /// Adds the final stats of one connection.
    pub fn add(&mut self, s: &Stats) {
        let t = &mut self.stats;
        t.received += s.received;
        t.delivered += s.delivered;
        t.buffered += s.buffered;
        t.dropped_oldest += s.dropped_oldest;
        t.dropped_newest += s.dropped_newest;
        t.conflated += s.conflated;
        t.filtered += s.filtered;
        t.buffered_bytes += s.buffered_bytes;
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
        self.connections += 1;
    }

    /// The totals as JSON: [`stats_json`] plus `connections`.
    pub fn to_json(&self) -> Value {
        let mut value = stats_json(&self.stats);
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
    }
}
