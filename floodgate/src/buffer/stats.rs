//! The buffer's figures: [`Stats`], one consistent snapshot, and the
//! compact histogram behind its queue-wait percentiles.

use std::time::Duration;

/// A snapshot of a buffer's figures, taken under the buffer's lock, so the
/// counters always add up:
///
/// `received == delivered + buffered + dropped_oldest + dropped_newest +
/// conflated + filtered`
///
/// ```
/// # let stats = floodgate::buffer::Stats::default();
/// assert_eq!(
///     stats.received,
///     stats.delivered + stats.buffered + stats.dropped_oldest + stats.dropped_newest
///         + stats.conflated + stats.filtered
/// );
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Data messages the reader decoded and handed to the buffer (a message
    /// the reader is waiting to place is not counted until it is placed).
    pub received: u64,
    /// Messages taken by the consumer.
    pub delivered: u64,
    /// Messages in the buffer now: in memory and, under
    /// [`Overflow::Spill`](super::Overflow::Spill), spilled (on disk, or
    /// waiting for the spill's writer).
    pub buffered: u64,
    /// Of `buffered`, the messages on disk now (`Spill` only).
    pub buffered_disk: u64,
    /// Of `buffered`, the messages out in a [`Lease`](super::Lease): taken
    /// by the consumer, not yet committed (a message given back by a
    /// released lease is buffered, not in flight).
    pub in_flight: u64,
    /// Messages shed from the front (oldest first) to make room.
    pub dropped_oldest: u64,
    /// Messages shed from the back: usually the one arriving; under
    /// `Disconnect`, the message that did not fit; after `close`, the
    /// messages that found the buffer full.
    pub dropped_newest: u64,
    /// Messages replaced by a newer one with the same conflation key.
    pub conflated: u64,
    /// Messages the classifier discarded.
    pub filtered: u64,
    /// Payload bytes in memory now (with those waiting for the spill's
    /// writer; those on disk are in `disk_bytes`).
    pub buffered_bytes: u64,
    /// Bytes the spill's segment files take now (`Spill` only; a segment
    /// is freed once every message in it was delivered).
    pub disk_bytes: u64,
    /// Most bytes the spill's segment files ever took at once.
    pub high_water_disk_bytes: u64,
    /// Messages ever written to disk by this buffer.
    pub spilled: u64,
    /// Messages a durable spill found on disk when the buffer started,
    /// left undelivered by an earlier run: counted in `received` (and
    /// `buffered`) so that the counters still add up.
    pub recovered: u64,
    /// Times the spill could not take a message and its
    /// [`SpillFallback`](super::SpillFallback) acted: each message dropped
    /// (also in `dropped_newest`), the one that ended the connection, and
    /// each wait of the reader under `Block`.
    pub spill_refused: u64,
    /// Writes to the spill that the disk failed (a full disk, an I/O
    /// error); reads that failed are in `spill_corrupt_records`.
    pub spill_errors: u64,
    /// Damaged records the spill skipped (a torn tail after a crash,
    /// flipped bits, a segment the disk could no longer read): found when
    /// it opened, or while reading back.
    pub spill_corrupt_records: u64,
    /// Most messages ever buffered in memory at once.
    pub high_water_messages: u64,
    /// Most payload bytes ever buffered in memory at once.
    pub high_water_bytes: u64,
    /// Total time the reader spent waiting for room (including now).
    pub blocked: Duration,
    /// Queue wait of delivered messages (from decoding to delivery).
    pub queue_wait: WaitSummary,
    /// Pings the reader answered.
    pub pings_answered: u64,
    /// Longest time from decoding a ping to having written its pong. The
    /// time the ping spent in the kernel's buffer before the reader read it
    /// (long under `Block` when the buffer is full) is not included; only
    /// the peer can measure the whole round trip.
    pub max_ping_delay: Duration,
    /// Pongs received.
    pub pongs_received: u64,
    /// Of `pongs_received`, those that answered one of the keepalive's
    /// pings ([`ping_interval`](crate::ClientBuilder::ping_interval)): the
    /// round trips measured.
    pub ping_round_trips: u64,
    /// The round trip of the keepalive's last ping answered, from the
    /// moment the ping was queued to the reading of its pong (see
    /// [`Connection::take_ping_rtt`](floodgate_proto::connection::Connection::take_ping_rtt)):
    /// the network both ways, the server's own queue, and a pause of the
    /// reader under `Block` (a pong read late counts it). `None` until a
    /// pong answered one.
    pub last_ping_rtt: Option<Duration>,
    /// The longest of those round trips.
    pub max_ping_rtt: Duration,
}

/// Percentiles of the queue wait. Accurate to within 1/8 (12.5 %) of the
/// value (a log-linear histogram), except `max`, which is exact.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WaitSummary {
    /// Messages measured.
    pub count: u64,
    /// Median.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Longest.
    pub max: Duration,
}

/// Sub-buckets per power of two.
const SUB_BITS: u32 = 3;
const SUB: usize = 1 << SUB_BITS;
/// Powers of two covered in nanoseconds: up to 2^40 ns (about 18 min);
/// longer waits land in the last bucket.
const OCTAVES: usize = 41;
const BUCKETS: usize = OCTAVES * SUB;

/// A log-linear histogram of nanoseconds.
///
/// Written by hand rather than taken from `hdrhistogram` because it lives in
/// every connection: 2.6 KiB, allocated on the first delivery, so that an
/// idle connection holds none of it, and recording is a few instructions
/// under the buffer's lock.
#[derive(Debug, Default)]
pub(crate) struct WaitHistogram {
    counts: Option<Box<[u64; BUCKETS]>>,
    count: u64,
    max_ns: u64,
}

impl WaitHistogram {
    #[inline]
    pub(crate) fn record(&mut self, wait: Duration) {
        self.record_n(wait, 1);
    }

    /// Records `n` messages that waited the same time (a run offered
    /// together and taken together).
    #[inline]
    pub(crate) fn record_n(&mut self, wait: Duration, n: u64) {
        let ns = u64::try_from(wait.as_nanos()).unwrap_or(u64::MAX);
        let counts = self.counts.get_or_insert_with(|| Box::new([0; BUCKETS]));
        counts[bucket_of(ns)] += n;
        self.count += n;
        self.max_ns = self.max_ns.max(ns);
    }

    pub(crate) fn summary(&self) -> WaitSummary {
        WaitSummary {
            count: self.count,
            p50: self.quantile(0.50),
            p99: self.quantile(0.99),
            max: Duration::from_nanos(self.max_ns),
        }
    }

    fn quantile(&self, q: f64) -> Duration {
        let Some(counts) = &self.counts else {
            return Duration::ZERO;
        };
        // The rank of the wanted value, 1-based, rounded up.
        let rank = ((self.count as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (bucket, &n) in counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                // Report the bucket's upper bound, never above the true max.
                return Duration::from_nanos(upper_bound(bucket).min(self.max_ns));
            }
        }
        Duration::from_nanos(self.max_ns)
    }
}

/// Values below `SUB` get a bucket each; above, each power of two is split
/// into `SUB` equal parts.
#[inline]
fn bucket_of(ns: u64) -> usize {
    if ns < SUB as u64 {
        return ns as usize;
    }
    let octave = 63 - ns.leading_zeros(); // >= SUB_BITS
    let sub = (ns >> (octave - SUB_BITS)) as usize & (SUB - 1);
    let bucket = (octave - SUB_BITS + 1) as usize * SUB + sub;
    bucket.min(BUCKETS - 1)
}

fn upper_bound(bucket: usize) -> u64 {
    if bucket < SUB {
        return bucket as u64;
    }
    let octave = (bucket / SUB) as u32 + SUB_BITS - 1;
    let sub = (bucket % SUB) as u64;
    let width = 1u64 << (octave - SUB_BITS);
    (1u64 << octave) + (sub + 1) * width - 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn an_empty_histogram_reports_zero() {
        assert_eq!(WaitHistogram::default().summary(), WaitSummary::default());
    }

    #[test]
    fn percentiles_of_a_uniform_spread_are_within_an_eighth() {
        let mut h = WaitHistogram::default();
        for us in 1..=1000u64 {
            h.record(Duration::from_micros(us));
        }
        let s = h.summary();
        assert_eq!(s.count, 1000);
        assert_eq!(s.max, Duration::from_micros(1000));
        let p50 = s.p50.as_nanos() as f64;
        let p99 = s.p99.as_nanos() as f64;
        assert!((p50 / 500_000.0 - 1.0).abs() <= 0.125, "p50 {p50}");
        assert!((p99 / 990_000.0 - 1.0).abs() <= 0.125, "p99 {p99}");
    }

    proptest! {
        #[test]
        fn every_value_lands_in_a_bucket_that_contains_it(ns in 0u64..(1 << 40)) {
            let b = bucket_of(ns);
            prop_assert!(upper_bound(b) >= ns);
            if b > 0 {
                prop_assert!(upper_bound(b - 1) < ns);
            }
            // The bucket is at most an eighth of its values wide.
            let low = if b == 0 { 0 } else { upper_bound(b - 1) + 1 };
            prop_assert!((upper_bound(b) - low) as f64 <= (ns as f64) / 8.0 + 1.0);
        }
    }
}
