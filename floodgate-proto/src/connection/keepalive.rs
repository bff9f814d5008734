//! The pings a connection sends on an interval and the pongs it awaits,
//! matched by payload.
//!
//! Matching by payload, not by count, is what makes the deadline honest:
//! an unsolicited pong (some servers send them as heartbeats) or the
//! answer to a ping the application sent itself does not clear the
//! keepalive's ping. A pong answers the ping with its payload and every
//! older one (RFC 6455 §5.5.3 lets a peer answer only the latest ping).

use bytes::Bytes;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Pings outstanding at most; past this the oldest deadline is kept and
/// the newest payloads forgotten (a peer this far behind is dead anyway
/// unless the interval is far below the timeout).
const MAX_OUTSTANDING: usize = 32;

#[derive(Debug)]
pub(crate) struct Keepalive {
    interval: Option<Duration>,
    timeout: Option<Duration>,
    payload: Option<Bytes>,
    next_ping: Option<Instant>,
    counter: u64,
    /// Unanswered pings: their payload and pong deadline, oldest first.
    outstanding: VecDeque<(Bytes, Instant)>,
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
        self.outstanding.front().map(|(_, deadline)| *deadline)
    }

    /// The ping payload to send now, if one is due; it is recorded as
    /// outstanding (with its deadline) as of `now`.
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
        if let Some(timeout) = self.timeout {
            if self.outstanding.len() < MAX_OUTSTANDING {
                self.outstanding.push_back((payload.clone(), now + timeout));
            }
        }
        Some(payload)
    }

    /// Makes the next ping due at `now`.
    pub(crate) fn due_now(&mut self, now: Instant) {
        if self.interval.is_some() {
            self.next_ping = Some(now);
        }
    }

    /// A pong arrived: clears the ping it answers and every older one.
    /// Whether it answered one of ours.
    pub(crate) fn pong(&mut self, payload: &[u8]) -> bool {
        match self.outstanding.iter().rposition(|(p, _)| p == payload) {
            Some(i) => {
                self.outstanding.drain(..=i);
                true
            }
            None => false,
        }
    }

    /// Moves every pong deadline `by` later (time the reading was paused).
    pub(crate) fn postpone(&mut self, by: Duration) {
        for (_, deadline) in &mut self.outstanding {
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
        assert!(k.pong(&second));
        assert_eq!(
            k.pong_deadline(),
            Some(t0 + 13 * S),
            "only the third is left"
        );
        assert!(!k.pong(&first), "already answered");
        assert!(k.pong(&third));
        assert_eq!(k.pong_deadline(), None);
    }

    #[test]
    fn a_pong_with_another_payload_answers_nothing() {
        let t0 = Instant::now();
        let mut k = Keepalive::new(Some(S), Some(S), None, t0);
        k.ping_due(t0 + S).unwrap();
        assert!(!k.pong(b""));
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
}
