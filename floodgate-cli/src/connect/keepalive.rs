//! [`Keepalive`]: pings the server on an interval and, with a timeout,
//! declares the connection dead when no pong follows a ping in time.
//!
//! It runs on its own thread, so a slow printer delays neither the pings
//! nor their check; the pongs themselves are counted by the connection's
//! reader (`Stats::pongs_received`), which reads them as soon as they
//! arrive, whatever the buffer holds.

use floodgate::buffer::Buffer;
use floodgate::Sender;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A running keepalive; [`stop`](Keepalive::stop) it when its connection
/// ends.
pub struct Keepalive {
    stop: mpsc::Sender<()>,
    thread: JoinHandle<bool>,
}

impl Keepalive {
    /// Pings through `sender` every `interval`; with `timeout`, shuts the
    /// connection down when no pong came within `timeout` of a ping.
    pub fn start(
        sender: Sender,
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
        Keepalive { stop, thread }
    }

    /// Stops it; whether it found the connection dead.
    pub fn stop(self) -> bool {
        let _ = self.stop.send(());
        self.thread.join().unwrap_or(false)
    }
}

fn keep_alive(
    sender: &Sender,
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
