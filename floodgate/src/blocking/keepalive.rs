//! [`Keepalive`]: pings the server of a buffered connection on an
//! interval and, with a timeout, declares the connection dead when no pong
//! follows a ping in time.
//!
//! The pings and the pong deadline are the connection's own
//! ([`floodgate_proto::Connection`], run by the reader thread): a slow
//! consumer delays neither, a sender blocked on a full socket does not
//! stop the deadline, and pongs are matched to their ping by payload. A
//! dead connection is dropped, so its consumer learns of the end at once
//! (as a pong timeout ([`TimeoutKind::Pong`](crate::TimeoutKind::Pong)));
//! [`Keepalive::stop`] then says that it was the keepalive's doing. The
//! same can be set at connect with
//! [`ClientBuilder::ping_interval`](crate::ClientBuilder::ping_interval),
//! which is better where it can be: the reader then keeps the deadlines
//! from its first instant. Started on a running connection, the first
//! ping goes out at once (from the calling thread) and its pong wakes the
//! reader; if none comes, the reader, which may be asleep on a read with
//! no deadline of its own, notices within a second at the latest.
//!
//! ```
//! use std::time::Duration;
//! # let server = floodgate_server::Server::bind("127.0.0.1:0", floodgate_server::echo).unwrap();
//! let ws = floodgate::Client::default().connect_buffered(&server.url())?;
//! let keepalive = ws.keepalive(Duration::from_millis(20), Some(Duration::from_secs(5)), b"");
//! std::thread::sleep(Duration::from_millis(100));
//! assert!(!keepalive.stop(), "the echo server answers every ping");
//! assert!(ws.stats().pongs_received >= 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::blocking::buffered::Sender;
use crate::buffer::Buffer;
use crate::dial::stream::Transport;
use floodgate_proto::connection::End;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A running keepalive; [`stop`](Keepalive::stop) it when its connection
/// ends (dropping it stops the pings too).
pub struct Keepalive {
    /// Takes the timers off the connection; whether it died of no pong.
    stop: Option<Box<dyn FnOnce() -> bool + Send + Sync>>,
}

impl std::fmt::Debug for Keepalive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keepalive")
            .field("running", &self.stop.is_some())
            .finish()
    }
}

impl Keepalive {
    /// Pings through `sender`'s connection at once and then every
    /// `interval` (an empty `payload`: an 8-byte counter, so each pong
    /// answers its own ping);
    /// with `timeout`, ends the connection when no pong came within
    /// `timeout` of a ping. `buffer` is the connection's (its stats count
    /// the pongs). See also
    /// [`BufferedWebSocket::keepalive`](crate::BufferedWebSocket::keepalive).
    pub fn start<S: Transport + Send + 'static>(
        sender: Sender<S>,
        buffer: Arc<Buffer>,
        interval: Duration,
        timeout: Option<Duration>,
        payload: Vec<u8>,
    ) -> Keepalive {
        let _ = buffer;
        let payload = (!payload.is_empty()).then(|| bytes::Bytes::from(payload));
        {
            let now = Instant::now();
            let mut core = sender.shared.core();
            core.conn
                .set_keepalive(Some(interval), timeout, payload, now);
            // The reader may be asleep on a read with no deadline (up to
            // a second): the first ping goes now, from here, and its pong
            // wakes the reader, which then keeps the timers.
            core.conn.ping_now(now);
        }
        sender.shared.flush_queued(Duration::from_millis(10));
        let stop = move || {
            let mut core = sender.shared.core();
            let dead = matches!(core.conn.end(), Some(End::NoPong { .. }));
            core.conn.set_keepalive(None, None, None, Instant::now());
            dead
        };
        Keepalive {
            stop: Some(Box::new(stop)),
        }
    }

    /// Stops it; whether it found the connection dead (no pong in time).
    pub fn stop(mut self) -> bool {
        self.halt()
    }

    fn halt(&mut self) -> bool {
        self.stop.take().is_some_and(|stop| stop())
    }
}

impl Drop for Keepalive {
    fn drop(&mut self) {
        self.halt();
    }
}
