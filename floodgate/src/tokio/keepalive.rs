//! [`Keepalive`] on tokio: pings the server of an async buffered
//! connection on an interval and, with a timeout, declares the connection
//! dead when no pong follows a ping in time — the same as the blocking
//! [`crate::keepalive::Keepalive`], over the same rules.
//!
//! The pings and the pong deadline are the connection's own
//! ([`floodgate_proto::Connection`], run by the reader task, which is
//! woken when they are set): a slow consumer delays neither, a sender
//! blocked on a full socket does not stop the deadline, and pongs are
//! matched to their ping by payload. A dead connection is dropped, so its
//! consumer learns of the end at once (as
//! a pong timeout ([`TimeoutKind::Pong`](crate::TimeoutKind::Pong))); [`Keepalive::stop`]
//! then says that it was the keepalive's doing.
//!
//! ```
//! use std::time::Duration;
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> floodgate::Result<()> {
//! # let server = floodgate_server::Server::bind("127.0.0.1:0", floodgate_server::echo).unwrap();
//! let ws = floodgate::Client::default().connect_buffered_async(&server.url()).await?;
//! let keepalive = ws.keepalive(Duration::from_millis(20), Some(Duration::from_secs(5)), b"");
//! tokio::time::sleep(Duration::from_millis(100)).await;
//! assert!(!keepalive.stop().await, "the echo server answers every ping");
//! assert!(ws.stats().pongs_received >= 1);
//! # Ok(())
//! # }
//! ```

use super::sender::Sender;
use floodgate_proto::connection::End;
use std::time::{Duration, Instant};

/// A running keepalive; [`stop`](Keepalive::stop) it when its connection
/// ends (dropping it stops the pings too).
#[derive(Debug)]
pub struct Keepalive {
    sender: Option<Sender>,
}

impl Keepalive {
    /// Sets the connection's keepalive: a ping at once and then every
    /// `interval` (an empty `payload`: an 8-byte counter), each awaited
    /// for `timeout`.
    pub(crate) fn start(
        sender: Sender,
        interval: Duration,
        timeout: Option<Duration>,
        payload: Vec<u8>,
    ) -> Keepalive {
        let payload = (!payload.is_empty()).then(|| bytes::Bytes::from(payload));
        {
            let now = Instant::now();
            let mut conn = sender.shared.conn();
            conn.set_keepalive(Some(interval), timeout, payload, now);
            conn.ping_now(now);
        }
        // The reader task writes the ping and keeps the deadline.
        sender.shared.timers_changed.notify_one();
        Keepalive {
            sender: Some(sender),
        }
    }

    /// Stops it; whether it found the connection dead (no pong in time).
    pub async fn stop(mut self) -> bool {
        self.halt()
    }

    fn halt(&mut self) -> bool {
        let Some(sender) = self.sender.take() else {
            return false;
        };
        let mut conn = sender.shared.conn();
        let dead = matches!(conn.end(), Some(End::NoPong { .. }));
        conn.set_keepalive(None, None, None, Instant::now());
        dead
    }
}

impl Drop for Keepalive {
    fn drop(&mut self) {
        self.halt();
    }
}
