//! [`Keepalive`]: pings the server of a buffered connection on an
//! interval and, with a timeout, declares the connection dead when no pong
//! follows a ping in time.
//!
//! It runs on its own thread, so a slow consumer delays neither the pings
//! nor their check; the pongs themselves are counted by the connection's
//! reader ([`Stats::pongs_received`](crate::buffer::Stats::pongs_received)),
//! which reads them as soon as they arrive, whatever the buffer holds. A
//! dead connection is shut down, so its consumer learns of the end at
//! once (as [`ErrorKind::AbnormalClosure`](crate::ErrorKind::AbnormalClosure));
//! [`Keepalive::stop`] then says that it was the keepalive's doing.
//!
//! ```
//! use std::time::Duration;
//! # let server = floodgate_server::Server::bind("127.0.0.1:0", floodgate_server::echo).unwrap();
//! let ws = floodgate::Client::default().connect_buffered(&server.url())?;
//! let keepalive = ws.keepalive(Duration::from_millis(20), Some(Duration::from_secs(5)), b"");
//! std::thread::sleep(Duration::from_millis(100));
//! assert!(!keepalive.stop(), "the echo server answers every ping");
//! assert!(ws.stats().pongs_received >= 1);
//! # Ok::<(), floodgate::Error>(())
//! ```

use crate::buffer::Buffer;
use crate::buffered::Sender;
use crate::stream::Transport;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A running keepalive; [`stop`](Keepalive::stop) it when its connection
/// ends (dropping it stops it too).
#[derive(Debug)]
pub struct Keepalive {
    stop: mpsc::Sender<()>,
    thread: Option<JoinHandle<bool>>,
}

impl Keepalive {
    /// Pings through `sender` every `interval`; with `timeout`, shuts the
    /// connection down when no pong came within `timeout` of a ping.
    /// `buffer` is the connection's (its stats count the pongs). See also
    /// [`BufferedWebSocket::keepalive`](crate::BufferedWebSocket::keepalive).
    ///
    /// # Panics
    ///
    /// If the thread cannot be started (the system is out of threads).
    pub fn start<S: Transport + Send + 'static>(
        sender: Sender<S>,
        buffer: Arc<Buffer>,
        interval: Duration,
        timeout: Option<Duration>,
        payload: Vec<u8>,
    ) -> Keepalive {
        let (stop, stopped) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("floodgate-keepalive".into())
            .spawn(move || keep_alive(&sender, &buffer, interval, timeout, &payload, &stopped))
            .expect("spawn the keepalive thread");
        Keepalive {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops it; whether it found the connection dead (no pong in time).
    pub fn stop(mut self) -> bool {
        self.halt()
    }

    fn halt(&mut self) -> bool {
        let _ = self.stop.send(());
        self.thread
            .take()
            .is_some_and(|thread| thread.join().unwrap_or(false))
    }
}

impl Drop for Keepalive {
    fn drop(&mut self) {
        self.halt();
    }
}

fn keep_alive<S: Transport>(
    sender: &Sender<S>,
    buffer: &Buffer,
    interval: Duration,
    timeout: Option<Duration>,
    payload: &[u8],
    stopped: &mpsc::Receiver<()>,
) -> bool {
    let mut next_ping = Instant::now() + interval;
    // The deadline of the oldest unanswered ping, and the pong count
    // when it was sent.
    let mut waiting: Option<(Instant, u64)> = None;
    loop {
        let wake = waiting.map_or(next_ping, |(deadline, _)| deadline.min(next_ping));
        match stopped.recv_timeout(wake.saturating_duration_since(Instant::now())) {
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            _ => return false,
        }
        let now = Instant::now();
        if let Some((deadline, pongs_before)) = waiting {
            if buffer.stats().pongs_received > pongs_before {
                waiting = None;
            } else if now >= deadline {
                tracing::debug!(?timeout, "no pong in time: the connection is dead");
                sender.shutdown();
                return true;
            }
        }
        if now >= next_ping {
            let pongs_before = buffer.stats().pongs_received;
            if sender.ping(payload).is_err() {
                return false; // the connection is ending anyway
            }
            if let (None, Some(timeout)) = (waiting, timeout) {
                waiting = Some((now + timeout, pongs_before));
            }
            next_ping = (next_ping + interval).max(now);
        }
    }
}
