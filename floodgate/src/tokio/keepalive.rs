//! [`Keepalive`] on tokio: pings the server of an async buffered
//! connection on an interval and, with a timeout, declares the connection
//! dead when no pong follows a ping in time — the task twin of the
//! blocking [`crate::keepalive::Keepalive`], with the same rules.
//!
//! It is a task of its own, so a slow consumer delays neither the pings
//! nor their check; the pongs are counted by the connection's reader task
//! ([`Stats::pongs_received`](crate::buffer::Stats::pongs_received)) as soon
//! as they arrive. A dead connection is aborted: its reader task stops, the
//! transport is shut down and the consumer learns of the end at once (as
//! [`ErrorKind::AbnormalClosure`](crate::ErrorKind::AbnormalClosure));
//! [`Keepalive::stop`] then says that it was the keepalive's doing.
//!
//! ```
//! use std::time::Duration;
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> floodgate::Result<()> {
//! # let server = floodgate::server::Server::bind("127.0.0.1:0", floodgate::server::echo)?;
//! let ws = floodgate::Client::default().connect_buffered_async(&server.url()).await?;
//! let keepalive = ws.keepalive(Duration::from_millis(20), Some(Duration::from_secs(5)), b"");
//! tokio::time::sleep(Duration::from_millis(100)).await;
//! assert!(!keepalive.stop().await, "the echo server answers every ping");
//! assert!(ws.stats().pongs_received >= 1);
//! # Ok(())
//! # }
//! ```

use super::buffered::Killer;
use super::sender::Sender;
use crate::buffer::Buffer;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// A running keepalive task; [`stop`](Keepalive::stop) it when its
/// connection ends (dropping it stops it too, without the answer).
#[derive(Debug)]
pub struct Keepalive {
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<bool>>,
}

impl Keepalive {
    /// Spawns the task: pings through `sender` every `interval`; with
    /// `timeout`, aborts the connection when no pong came within `timeout`
    /// of a ping. `buffer` is the connection's (its stats count the pongs).
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub(crate) fn start(
        sender: Sender,
        buffer: Arc<Buffer>,
        killer: Killer,
        interval: Duration,
        timeout: Option<Duration>,
        payload: Vec<u8>,
    ) -> Keepalive {
        let (stop, stopped) = oneshot::channel();
        let task = ::tokio::spawn(keep_alive(
            sender, buffer, killer, interval, timeout, payload, stopped,
        ));
        Keepalive {
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Stops it; whether it found the connection dead (no pong in time).
    pub async fn stop(mut self) -> bool {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await.unwrap_or(false),
            None => false,
        }
    }
}

impl Drop for Keepalive {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn keep_alive(
    sender: Sender,
    buffer: Arc<Buffer>,
    killer: Killer,
    interval: Duration,
    timeout: Option<Duration>,
    payload: Vec<u8>,
    mut stopped: oneshot::Receiver<()>,
) -> bool {
    let mut next_ping = Instant::now() + interval;
    // The deadline of the oldest unanswered ping, and the pong count when
    // it was sent.
    let mut waiting: Option<(Instant, u64)> = None;
    loop {
        let wake = waiting.map_or(next_ping, |(deadline, _)| deadline.min(next_ping));
        ::tokio::select! {
            _ = &mut stopped => return false,
            () = ::tokio::time::sleep_until(wake) => {}
        }
        let now = Instant::now();
        if let Some((deadline, pongs_before)) = waiting {
            if buffer.stats().pongs_received > pongs_before {
                waiting = None;
            } else if now >= deadline {
                tracing::debug!(?timeout, "no pong in time: the connection is dead (async)");
                killer.kill().await;
                return true;
            }
        }
        if now >= next_ping {
            let pongs_before = buffer.stats().pongs_received;
            // A ping stuck behind a full socket is itself a sign of a dead
            // peer: the pong deadline keeps running while it waits.
            if let (None, Some(timeout)) = (waiting, timeout) {
                waiting = Some((now + timeout, pongs_before));
            }
            let ping = sender.ping(&payload);
            let deadline = waiting.map_or(now + interval, |(d, _)| d);
            ::tokio::select! {
                _ = &mut stopped => return false,
                sent = ::tokio::time::timeout_at(deadline, ping) => match sent {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => return false, // the connection is ending anyway
                    Err(_) => {} // checked against the deadline above, next turn
                },
            }
            next_ping = (next_ping + interval).max(now);
        }
    }
}
