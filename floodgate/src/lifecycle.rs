//! What the front ends make of the core's lifecycle: the error a
//! [`End`] becomes, and the socket timeouts that let a blocking loop wake
//! at the core's next deadline.
//!
//! The rules themselves (when a close times out, when a silent peer is
//! dead, how long a failed connection lingers) are
//! [`floodgate_proto::Connection`]'s; this module only translates, so that
//! every front end reports the same end with the same error.

use crate::error::{Error, ErrorKind, TimeoutKind};
use floodgate_proto::connection::End;
use std::time::{Duration, Instant};

/// The error the application gets for a connection that ended with `end`.
/// `Aborted` ends carry the front end's own reason (the `Disconnect`
/// policy, a callback's panic), which it reports itself; here they read as
/// the close code sent.
pub(crate) fn error_of(end: &End) -> Error {
    match end {
        End::Closed { frame, .. } => ErrorKind::ConnectionClosed(frame.clone()).into(),
        End::Abnormal | End::Shutdown => ErrorKind::AbnormalClosure.into(),
        End::Failed(err) => ErrorKind::Protocol(err.clone()).into(),
        End::Aborted(frame) => ErrorKind::ConnectionClosed(Some(frame.clone())).into(),
        End::CloseTimeout { timeout } => Error::timeout(TimeoutKind::Close, Some(*timeout)),
        End::NoPong { timeout } => Error::timeout(TimeoutKind::Pong, Some(*timeout)),
        End::Idle { timeout } => Error::timeout(TimeoutKind::Idle, Some(*timeout)),
        End::SendStalled { timeout } => Error::timeout(TimeoutKind::Send, Some(*timeout)),
        // `End` is non-exhaustive: a new end reads as the transport's.
        _ => ErrorKind::AbnormalClosure.into(),
    }
}

/// The shortest socket timeout set: a zero timeout means "block" to the
/// socket API, and a deadline already passed still needs one wait-free
/// turn of the loop.
const MIN_SOCKET_TIMEOUT: Duration = Duration::from_millis(1);

/// A socket timeout (`SO_RCVTIMEO` or `SO_SNDTIMEO`) kept in step with a
/// deadline with few system calls: it is set again only when the time
/// left is shorter than what is set (the wait would overrun the deadline)
/// or much longer (the loop would wake for nothing, often). Waking early is
/// harmless: the loop checks the time and waits again.
#[derive(Debug, Default)]
pub(crate) struct ArmedTimeout {
    set: Option<Option<Duration>>,
}

impl ArmedTimeout {
    /// The timeout to set for a wait until `deadline` (`None`: block) at
    /// `now`, or `None` when the one set will do.
    pub(crate) fn update(
        &mut self,
        deadline: Option<Instant>,
        now: Instant,
    ) -> Option<Option<Duration>> {
        let wanted = deadline.map(|d| d.saturating_duration_since(now).max(MIN_SOCKET_TIMEOUT));
        let keep = match (self.set, wanted) {
            (Some(None), None) => true,
            (Some(Some(set)), Some(wanted)) => set <= wanted && set * 2 >= wanted,
            _ => false,
        };
        if keep {
            None
        } else {
            self.set = Some(wanted);
            Some(wanted)
        }
    }

    /// Forget what was set (someone else may have changed it).
    pub(crate) fn forget(&mut self) {
        self.set = None;
    }
}

/// The earlier of two optional instants (std's or tokio's).
pub(crate) fn earliest<T: Ord>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn the_socket_timeout_is_set_again_only_when_it_would_overrun_or_wake_far_too_early() {
        let t0 = Instant::now();
        let mut armed = ArmedTimeout::default();
        assert_eq!(armed.update(None, t0), Some(None), "first use sets it");
        assert_eq!(armed.update(None, t0), None);
        assert_eq!(armed.update(Some(t0 + 100 * MS), t0), Some(Some(100 * MS)));
        assert_eq!(
            armed.update(Some(t0 + 150 * MS), t0),
            None,
            "wakes early: fine"
        );
        assert_eq!(
            armed.update(Some(t0 + 90 * MS), t0),
            Some(Some(90 * MS)),
            "would overrun"
        );
        assert_eq!(
            armed.update(Some(t0 + 500 * MS), t0),
            Some(Some(500 * MS)),
            "far too early"
        );
        assert_eq!(
            armed.update(Some(t0), t0 + MS),
            Some(Some(MS)),
            "passed: the shortest wait"
        );
        assert_eq!(armed.update(None, t0), Some(None));
    }

    #[test]
    fn each_end_becomes_the_error_the_application_matches_on() {
        use floodgate_proto::{CloseCode, CloseFrame, ProtocolError};
        let closed = error_of(&End::Closed {
            frame: Some(CloseFrame::new(CloseCode::NORMAL, "")),
            initiated_by: floodgate_proto::connection::Side::Peer,
        });
        assert!(closed.is_closed());
        assert!(matches!(
            error_of(&End::Abnormal).kind(),
            ErrorKind::AbnormalClosure
        ));
        assert!(matches!(
            error_of(&End::Failed(ProtocolError::MaskedFrameFromServer)).kind(),
            ErrorKind::Protocol(ProtocolError::MaskedFrameFromServer)
        ));
        assert_eq!(
            error_of(&End::NoPong { timeout: MS }).timeout_kind(),
            Some(TimeoutKind::Pong)
        );
        assert_eq!(
            error_of(&End::CloseTimeout { timeout: MS }).timeout_kind(),
            Some(TimeoutKind::Close)
        );
        assert_eq!(
            error_of(&End::SendStalled { timeout: MS }).timeout_kind(),
            Some(TimeoutKind::Send)
        );
        assert_eq!(
            error_of(&End::Idle { timeout: MS }).timeout_kind(),
            Some(TimeoutKind::Idle)
        );
    }
}
