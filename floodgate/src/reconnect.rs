//! Reconnecting: how long to wait before each new attempt.
//!
//! [`Backoff`] is the policy (exponential growth, a cap, jitter, a limit on
//! attempts, and when to start over); [`Retry`] is one client's count of
//! attempts under it. The `floodgate connect --reconnect` command uses them
//! today and the event-driven App will reuse them, so that every part of
//! floodgate backs off the same way.
//!
//! Jitter matters when many clients lose the same server at once: without
//! it they all come back at the same instants and knock it over again.
//! Each delay is drawn from `[d * (1 - jitter), d]`, where `d` is the
//! exponential delay ("equal jitter"): the wait still grows, never exceeds
//! the cap, and clients spread out.
//!
//! ```
//! use floodgate::reconnect::{Backoff, Retry};
//! use std::time::Duration;
//!
//! let backoff = Backoff::new()
//!     .initial(Duration::from_millis(100))
//!     .max_delay(Duration::from_secs(5))
//!     .max_attempts(Some(3));
//! let mut retry = Retry::new(backoff);
//! let mut waits = Vec::new();
//! while let Some(wait) = retry.next_delay() {
//!     waits.push(wait); // sleep(wait), then try to connect
//! }
//! assert_eq!(waits.len(), 3);
//! assert!(waits[0] <= Duration::from_millis(100));
//! assert!(waits[2] <= Duration::from_millis(400));
//! ```

use rand::Rng;
use std::time::Duration;

/// A reconnect policy: exponential backoff with jitter, a maximum delay,
/// an optional maximum number of attempts, and a reset of the backoff
/// after a connection that stayed up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    initial: Duration,
    max_delay: Duration,
    factor: f64,
    jitter: f64,
    max_attempts: Option<u32>,
    reset_after: Duration,
}

impl Default for Backoff {
    /// 500 ms, doubling, at most 30 s, jitter 0.5, no limit on attempts,
    /// reset after a connection that stayed up 30 s.
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            factor: 2.0,
            jitter: 0.5,
            max_attempts: None,
            reset_after: Duration::from_secs(30),
        }
    }
}

impl Backoff {
    /// The defaults (see [`Backoff::default`]).
    pub fn new() -> Backoff {
        Backoff::default()
    }

    /// The delay before the first attempt (before jitter).
    pub fn initial(mut self, delay: Duration) -> Self {
        self.initial = delay;
        self
    }

    /// No delay grows past this.
    pub fn max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self
    }

    /// Each delay is this many times the previous one (at least 1).
    pub fn factor(mut self, factor: f64) -> Self {
        self.factor = if factor.is_finite() {
            factor.max(1.0)
        } else {
            1.0
        };
        self
    }

    /// The share of each delay that is random, from 0 (none) to 1 (any
    /// wait from zero to the delay).
    pub fn jitter(mut self, jitter: f64) -> Self {
        self.jitter = if jitter.is_nan() {
            0.0
        } else {
            jitter.clamp(0.0, 1.0)
        };
        self
    }

    /// Give up after this many attempts in a row (`None`: never).
    pub fn max_attempts(mut self, attempts: Option<u32>) -> Self {
        self.max_attempts = attempts;
        self
    }

    /// A connection that stayed up at least this long starts the backoff
    /// over: the next failure waits the initial delay again.
    pub fn reset_after(mut self, up: Duration) -> Self {
        self.reset_after = up;
        self
    }

    /// The limit on attempts in a row.
    pub fn attempt_limit(&self) -> Option<u32> {
        self.max_attempts
    }

    /// The delay before attempt `attempt` (0-based), with `unit` (in
    /// `[0, 1)`) choosing where it falls within the jitter.
    pub fn delay(&self, attempt: u32, unit: f64) -> Duration {
        let grown = self.initial.as_secs_f64() * self.factor.powi(attempt.min(1000) as i32);
        let capped = grown.min(self.max_delay.as_secs_f64());
        let jittered = capped * (1.0 - self.jitter * unit.clamp(0.0, 1.0));
        Duration::try_from_secs_f64(jittered).unwrap_or(self.max_delay)
    }
}

/// One client's attempts under a [`Backoff`].
#[derive(Debug, Clone)]
pub struct Retry {
    backoff: Backoff,
    attempt: u32,
}

impl Retry {
    /// No attempt made yet.
    pub fn new(backoff: Backoff) -> Retry {
        Retry {
            backoff,
            attempt: 0,
        }
    }

    /// The wait before the next attempt, counting it; `None` once the
    /// maximum number of attempts in a row has been made.
    pub fn next_delay(&mut self) -> Option<Duration> {
        if self
            .backoff
            .max_attempts
            .is_some_and(|max| self.attempt >= max)
        {
            return None;
        }
        let delay = self
            .backoff
            .delay(self.attempt, rand::rng().random::<f64>());
        self.attempt += 1;
        Some(delay)
    }

    /// A connection that was up for `up` has ended: if that was long
    /// enough, the backoff starts over.
    pub fn connection_ended(&mut self, up: Duration) {
        if up >= self.backoff.reset_after {
            self.attempt = 0;
        }
    }

    /// Attempts made in a row so far.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// The policy.
    pub fn backoff(&self) -> &Backoff {
        &self.backoff
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn delays_double_up_to_the_cap() {
        let b = Backoff::new()
            .initial(100 * MS)
            .max_delay(1000 * MS)
            .jitter(0.0);
        let delays: Vec<_> = (0..6).map(|a| b.delay(a, 0.5)).collect();
        assert_eq!(
            delays,
            [100 * MS, 200 * MS, 400 * MS, 800 * MS, 1000 * MS, 1000 * MS]
        );
    }

    #[test]
    fn jitter_shortens_a_delay_by_at_most_its_share() {
        let b = Backoff::new().initial(1000 * MS).jitter(0.25);
        assert_eq!(b.delay(0, 0.0), 1000 * MS);
        assert_eq!(b.delay(0, 1.0), 750 * MS);
        let mut retry = Retry::new(b);
        for attempt in 0..20 {
            let d = retry.next_delay().unwrap();
            let full = b.jitter(0.0).delay(attempt, 0.0);
            assert!(d <= full && d >= full.mul_f64(0.75), "{d:?} vs {full:?}");
        }
    }

    #[test]
    fn attempts_stop_at_the_limit_and_restart_after_a_long_connection() {
        let b = Backoff::new()
            .max_attempts(Some(2))
            .reset_after(Duration::from_secs(10));
        let mut retry = Retry::new(b);
        assert!(retry.next_delay().is_some());
        assert!(retry.next_delay().is_some());
        assert_eq!(retry.next_delay(), None);
        retry.connection_ended(Duration::from_secs(1));
        assert_eq!(
            retry.next_delay(),
            None,
            "a short connection resets nothing"
        );
        retry.connection_ended(Duration::from_secs(10));
        assert_eq!(retry.attempts(), 0);
        assert!(retry.next_delay().is_some());
    }

    #[test]
    fn absurd_settings_are_tamed() {
        let b = Backoff::new().factor(f64::NAN).jitter(7.0);
        assert_eq!(b.delay(50, 1.0), Duration::ZERO, "jitter 1 at unit 1");
        let huge = Backoff::new()
            .factor(10.0)
            .max_delay(Duration::from_secs(3));
        assert_eq!(
            huge.jitter(0.0).delay(u32::MAX, 0.0),
            Duration::from_secs(3)
        );
    }
}
