//! The pings a connection sends on an interval and the pongs it awaits,
//! matched by payload; and the round trip of each ping answered.
//!
//! Matching by payload, not by count, is what makes the deadline honest:
//! an unsolicited pong (some servers send them as heartbeats) or the
//! answer to a ping the application sent itself does not clear the
//! keepalive's ping. A pong answers the ping with its payload and every
//! older one (RFC 6455 §5.5.3 lets a peer answer only the latest ping).
//!
//! The same match gives the round trip: each ping's send time is kept
//! (with or without a pong deadline), so a pong that answers one is
//! measured from it. It is the only round trip a client can measure
//! without the server's help, and it covers the whole path: both
//! directions of the network, and the server's queue before it answered.

use bytes::Bytes;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Pings outstanding at most; past this the oldest deadline is kept and
/// the newest payloads forgotten (a peer this far behind is dead anyway
/// unless the interval is far below the timeout). A forgotten ping's pong
/// is not measured (it answers nothing), unless it also answers an older
/// ping still kept.
const MAX_OUTSTANDING: usize = 32;

/// A ping sent and not answered yet.
#[derive(Debug)]
struct Outstanding {
    payload: Bytes,
    /// When [`Keepalive::ping_due`] handed it out.
    sent: Instant,
    /// When its pong is due (`None`: no ping timeout, none is awaited).
    deadline: Option<Instant>,
}

#[derive(Debug)]
pub(crate) struct Keepalive {
    interval: Option<Duration>,
    timeout: Option<Duration>,
    payload: Option<Bytes>,
    next_ping: Option<Instant>,
    counter: u64,
    /// Unanswered pings, oldest first: kept with or without a timeout,
    /// for their round trip.
    outstanding: VecDeque<Outstanding>,
}

impl Keepalive {
    pub(crate) fn new(
        interval: Option<Duration>,
        timeout: Option<Duration>,
        payload: Option<Bytes>,
        now: Instant,
    ) -> Keepalive {
        Keepalive {
            interval,
            timeout,
            payload,
            next_ping: interval.map(|i| now + i),
            counter: 0,
            outstanding: VecDeque::new(),
        }
    }

    /// When the next ping is due.
    pub(crate) fn next_ping(&self) -> Option<Instant> {
        self.next_ping
    }

    /// The deadline of the oldest unanswered ping.
    pub(crate) fn pong_deadline(&self) -> Option<Instant> {
        self.outstanding.front().and_then(|o| o.deadline)
    }

    /// The ping payload to send now, if one is due; it is recorded as
    /// outstanding (with its deadline, if there is a timeout) as of `now`.
    ///
    /// `now` is also its send time for the round trip: the I/O layer
    /// writes the ping a little later (after the call that queued it, and
    /// after whatever output was queued before it), so a round trip
    /// includes that wait too, as the deadline does.
    pub(crate) fn ping_due(&mut self, now: Instant) -> Option<Bytes> {
        let (next, interval) = (self.next_ping?, self.interval?);
        if now < next {
            return None;
        }
        // On time, the cadence is kept; after a late wake-up one ping is
        // sent and the interval starts again (not one ping per interval
        // missed).
        let after = next + interval;
        self.next_ping = Some(if after > now { after } else { now + interval });
        self.counter = self.counter.wrapping_add(1);
        let payload = match &self.payload {
            Some(p) => p.clone(),
            None => Bytes::copy_from_slice(&self.counter.to_be_bytes()),
        };
        if self.outstanding.len() < MAX_OUTSTANDING {
            self.outstanding.push_back(Outstanding {
                payload: payload.clone(),
                sent: now,
                deadline: self.timeout.map(|timeout| now + timeout),
            });
        }
        Some(payload)
    }

    /// Makes the next ping due at `now`.
    pub(crate) fn due_now(&mut self, now: Instant) {
        if self.interval.is_some() {
            self.next_ping = Some(now);
        }
    }

    /// A pong arrived at `now`: clears the ping it answers and every older
    /// one. The round trip of the ping it answers (the newest with its
    /// payload, from its send time to `now`), or `None` when it answers
    /// none of ours (unsolicited, the answer to the application's own
    /// ping, or to a ping already answered).
    ///
    /// With a fixed payload every ping looks the same, so the newest one
    /// outstanding is taken: if the peer answers each ping in turn, the
    /// round trip is then that of the newest, a lower bound (and the
    /// peer's later pongs answer nothing).
    ///
    /// A pong read late because reading was paused
    /// ([`postpone`](Self::postpone)) counts the pause in its round trip:
    /// the figure is what the application saw, and a long one is the sign
    /// of a pause as much as of a slow network.
    pub(crate) fn pong(&mut self, payload: &[u8], now: Instant) -> Option<Duration> {
        let i = self
            .outstanding
            .iter()
            .rposition(|o| o.payload == payload)?;
        let sent = self.outstanding[i].sent;
        self.outstanding.drain(..=i);
        Some(now.saturating_duration_since(sent))
    }

    /// Moves every pong deadline `by` later (time the reading was paused).
    /// The send times stay: the round trip includes the pause.
    pub(crate) fn postpone(&mut self, by: Duration) {
        for deadline in self
            .outstanding
            .iter_mut()
            .filter_map(|o| o.deadline.as_mut())
        {
            *deadline += by;
        }
    }

    /// No more pings (the connection is closing).
    pub(crate) fn stop(&mut self) {
        self.next_ping = None;
        self.outstanding.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn a_pong_answers_its_own_ping_and_every_older_one() {
        let t0 = Instant::now();
        let mut k = Keepalive::new(Some(S), Some(10 * S), None, t0);
        let first = k.ping_due(t0 + S).unwrap();
        let second = k.ping_due(t0 + 2 * S).unwrap();
        let third = k.ping_due(t0 + 3 * S).unwrap();
        assert_ne!(first, second);
        assert!(k.pong(&second, t0 + 4 * S).is_some());
        assert_eq!(
            k.pong_deadline(),
            Some(t0 + 13 * S),
            "only the third is left"
        );
        assert_eq!(k.pong(&first, t0 + 4 * S), None, "already answered");
        assert!(k.pong(&third, t0 + 4 * S).is_some());
        assert_eq!(k.pong_deadline(), None);
    }

    #[test]
    fn a_pong_with_another_payload_answers_nothing() {
        let t0 = Instant::now();
        let mut k = Keepalive::new(Some(S), Some(S), None, t0);
        k.ping_due(t0 + S).unwrap();
        assert_eq!(k.pong(b"", t0 + S), None);
        assert_eq!(k.pong_deadline(), Some(t0 + 2 * S));
    }

    #[test]
    fn a_late_wake_up_sends_one_ping_not_one_per_missed_interval() {
        let t0 = Instant::now();
        let mut k = Keepalive::new(Some(S), None, None, t0);
        assert!(k.ping_due(t0 + 10 * S).is_some());
        assert!(k.ping_due(t0 + 10 * S).is_none());
        assert_eq!(k.next_ping(), Some(t0 + 11 * S));
        k.ping_due(t0 + 11 * S).unwrap();
        assert_eq!(
            k.next_ping(),
            Some(t0 + 12 * S),
            "on time, the cadence is kept"
        );
    }

    #[test]
    fn outstanding_pings_are_bounded() {
        let t0 = Instant::now();
        let mut k = Keepalive::new(Some(S), Some(1000 * S), None, t0);
        for i in 1..=100 {
            k.ping_due(t0 + i * S).unwrap();
        }
        assert_eq!(k.outstanding.len(), MAX_OUTSTANDING);
        assert_eq!(
            k.pong_deadline(),
            Some(t0 + 1001 * S),
            "the oldest deadline is kept"
        );
    }

    #[test]
    fn a_pong_gives_the_round_trip_of_the_ping_it_answers() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut k = Keepalive::new(Some(S), Some(10 * S), None, t0);
        let first = k.ping_due(t0 + S).unwrap();
        assert_eq!(k.pong(&first, t0 + S + ms(37)), Some(ms(37)));
        let second = k.ping_due(t0 + 2 * S).unwrap();
        assert_eq!(k.pong(&second, t0 + 2 * S + ms(5)), Some(ms(5)));
    }

    #[test]
    fn a_pong_answering_older_pings_too_gives_the_round_trip_of_its_own() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut k = Keepalive::new(Some(S), Some(10 * S), None, t0);
        let _first = k.ping_due(t0 + S).unwrap();
        let second = k.ping_due(t0 + 2 * S).unwrap();
        let third = k.ping_due(t0 + 3 * S).unwrap();
        // It answers the first two: measured from the second, not the first.
        assert_eq!(k.pong(&second, t0 + 2 * S + ms(400)), Some(ms(400)));
        assert_eq!(k.pong(&third, t0 + 3 * S + ms(20)), Some(ms(20)));
        assert_eq!(k.pong(&third, t0 + 3 * S + ms(30)), None, "answered");
    }

    #[test]
    fn an_unsolicited_pong_gives_no_round_trip_and_clears_nothing() {
        let t0 = Instant::now();
        let mut k = Keepalive::new(Some(S), Some(10 * S), None, t0);
        let ping = k.ping_due(t0 + S).unwrap();
        assert_eq!(k.pong(b"heartbeat", t0 + 2 * S), None);
        assert_eq!(k.pong(b"", t0 + 2 * S), None);
        assert_eq!(k.pong_deadline(), Some(t0 + 11 * S), "still awaited");
        assert_eq!(k.pong(&ping, t0 + 3 * S), Some(2 * S));
    }

    #[test]
    fn without_a_timeout_the_round_trip_is_measured_and_nothing_is_awaited() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut k = Keepalive::new(Some(S), None, None, t0);
        let first = k.ping_due(t0 + S).unwrap();
        assert_eq!(k.pong_deadline(), None, "no deadline without a timeout");
        assert_eq!(k.pong(&first, t0 + S + ms(12)), Some(ms(12)));
        // Still bounded: a peer that never answers costs 32 pings at most.
        for i in 2..=100 {
            k.ping_due(t0 + i * S).unwrap();
        }
        assert_eq!(k.outstanding.len(), MAX_OUTSTANDING);
        assert_eq!(k.pong_deadline(), None);
    }

    #[test]
    fn a_pause_moves_the_deadline_and_counts_in_the_round_trip() {
        let t0 = Instant::now();
        let mut k = Keepalive::new(Some(S), Some(2 * S), None, t0);
        let ping = k.ping_due(t0 + S).unwrap();
        k.postpone(5 * S);
        assert_eq!(k.pong_deadline(), Some(t0 + 8 * S));
        assert_eq!(k.pong(&ping, t0 + 7 * S), Some(6 * S));
    }

    #[test]
    fn with_a_fixed_payload_the_newest_ping_is_measured() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let payload = Bytes::from_static(b"hb");
        let mut k = Keepalive::new(Some(S), None, Some(payload.clone()), t0);
        k.ping_due(t0 + S).unwrap();
        k.ping_due(t0 + 2 * S).unwrap();
        assert_eq!(k.pong(&payload, t0 + 2 * S + ms(3)), Some(ms(3)));
        assert_eq!(k.pong(&payload, t0 + 2 * S + ms(4)), None, "all answered");
    }

    #[test]
    fn a_stopped_keepalive_measures_nothing() {
        let t0 = Instant::now();
        let mut k = Keepalive::new(Some(S), None, None, t0);
        let ping = k.ping_due(t0 + S).unwrap();
        k.stop();
        assert_eq!(k.pong(&ping, t0 + 2 * S), None);
    }
}
