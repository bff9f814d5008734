//! [`Timeouts`]: every deadline of a connection's life, in one plain value.
//!
//! They live in the core, not in the I/O layers, so that each rule (how
//! long a close may take, when a silent peer is dead, how long a failed
//! connection lingers) is written once and tested with a virtual clock.

use bytes::Bytes;
use std::time::Duration;

/// Default [`Timeouts::close`]: 5 s.
pub const DEFAULT_CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Default [`Timeouts::fail_grace`]: 50 ms.
pub const DEFAULT_FAIL_GRACE: Duration = Duration::from_millis(50);

/// The deadlines a [`Connection`](super::Connection) keeps.
///
/// ```
/// use floodgate_proto::connection::Timeouts;
/// use std::time::Duration;
///
/// let timeouts = Timeouts::default()
///     .ping_interval(Some(Duration::from_secs(20)))
///     .ping_timeout(Some(Duration::from_secs(10)));
/// assert_eq!(timeouts.close, Duration::from_secs(5));
/// assert_eq!(timeouts.fail_grace, Duration::from_millis(50));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeouts {
    /// From this side's close frame to the peer's, and then (a client) to
    /// the server's end of the transport. When it passes, the transport is
    /// dropped and the connection ends with [`End::CloseTimeout`] (no
    /// close frame came) or as closed (the close frames were exchanged).
    /// Default 5 s.
    ///
    /// [`End::CloseTimeout`]: super::End::CloseTimeout
    pub close: Duration,
    /// How long a connection that was *failed* (a protocol error, or
    /// [`Connection::abort`](super::Connection::abort)) waits for the
    /// peer's close and end of transport before the transport is dropped.
    /// The failure itself is known at once ([`Connection::end`]); this only
    /// bounds the courtesy to the peer. Default 50 ms.
    ///
    /// [`Connection::end`]: super::Connection::end
    pub fail_grace: Duration,
    /// Send a ping this often while the connection is open. `None` (the
    /// default): no pings.
    pub ping_interval: Option<Duration>,
    /// End the connection ([`End::NoPong`](super::End::NoPong)) when no
    /// pong answers a ping within this long of its being queued. The
    /// clock runs from the moment the ping is due, not from when it
    /// reached the socket: a ping stuck behind a full socket is itself a
    /// sign of a peer that stopped reading. Time during which the
    /// application paused reading
    /// ([`pause_reading`](super::Connection::pause_reading)) does not
    /// count. `None` (the default): pongs are not awaited.
    pub ping_timeout: Option<Duration>,
    /// The payload of the pings sent on [`ping_interval`](Self::ping_interval).
    /// `None` (the default): an 8-byte counter, so each ping is matched to
    /// its own pong. With a fixed payload, any pong carrying it answers
    /// every ping outstanding.
    pub ping_payload: Option<Bytes>,
    /// End the connection ([`End::Idle`](super::End::Idle)) when nothing
    /// at all was received for this long while open (paused time does not
    /// count). `None` (the default): no idle limit.
    pub idle: Option<Duration>,
    /// End the connection ([`End::SendStalled`](super::End::SendStalled))
    /// when one write to the transport has been in progress this long
    /// without finishing: the peer has stopped reading. `None` (the
    /// default): writes may wait for ever (a ping timeout still ends such
    /// a connection).
    pub send: Option<Duration>,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            close: DEFAULT_CLOSE_TIMEOUT,
            fail_grace: DEFAULT_FAIL_GRACE,
            ping_interval: None,
            ping_timeout: None,
            ping_payload: None,
            idle: None,
            send: None,
        }
    }
}

impl Timeouts {
    /// Sets [`close`](Self::close).
    #[must_use]
    pub fn close(mut self, timeout: Duration) -> Self {
        self.close = timeout;
        self
    }

    /// Sets [`fail_grace`](Self::fail_grace).
    #[must_use]
    pub fn fail_grace(mut self, grace: Duration) -> Self {
        self.fail_grace = grace;
        self
    }

    /// Sets [`ping_interval`](Self::ping_interval).
    #[must_use]
    pub fn ping_interval(mut self, interval: Option<Duration>) -> Self {
        self.ping_interval = interval;
        self
    }

    /// Sets [`ping_timeout`](Self::ping_timeout).
    #[must_use]
    pub fn ping_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.ping_timeout = timeout;
        self
    }

    /// Sets [`ping_payload`](Self::ping_payload).
    #[must_use]
    pub fn ping_payload(mut self, payload: Option<Bytes>) -> Self {
        self.ping_payload = payload;
        self
    }

    /// Sets [`idle`](Self::idle).
    #[must_use]
    pub fn idle(mut self, timeout: Option<Duration>) -> Self {
        self.idle = timeout;
        self
    }

    /// Sets [`send`](Self::send).
    #[must_use]
    pub fn send(mut self, timeout: Option<Duration>) -> Self {
        self.send = timeout;
        self
    }
}
