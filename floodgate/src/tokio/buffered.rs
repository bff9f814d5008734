//! The buffered connection on tokio: a reader task answers pings and the
//! close at once and feeds the same [`Buffer`] as the blocking
//! [`crate::BufferedWebSocket`], with the same policies, classifier and
//! [`Stats`]; consumers wait on it with wakers ([`Buffer::poll_recv`],
//! [`Buffer::poll_recv_batch`]), and the reader waits for room under
//! `Block` with the buffer's own waker-based push, so no thread is held.
//!
//! The reader task is the only reader of the socket; the sending half is
//! the [`Sender`] of the unbuffered connection, so a pong queued by the
//! reader and a message sent by the application never interleave.

use super::receiver::{Core, Read};
use super::sender::Sender;
use super::socket::{CoreParts, WebSocket};
use crate::buffer::{Buffer, BufferConfig, BufferError, Delivered, Pushed, RecvError, Stats};
use crate::error::{Error, ErrorKind, Result};
use crate::ingest::{Ingest, Stop};
use crate::lifecycle::earliest;
use floodgate_proto::connection::End;
use floodgate_proto::{CloseCode, CloseFrame, Message, UsageError};
use futures_core::Stream;
use http::{HeaderMap, StatusCode};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// An async connection whose reader task feeds a bounded
/// [`Buffer`]: see the blocking [`crate::BufferedWebSocket`] for the
/// semantics, which are the same, and `docs/backpressure.md` to choose a
/// policy.
///
/// Made by [`crate::Client::connect_buffered_async`] (the builder's
/// [`buffer`](crate::ClientBuilder::buffer) options) or
/// [`WebSocket::into_buffered`]. Must be used inside a tokio runtime: the
/// reader is a task. Dropping it stops the reader task.
///
/// Its methods have the blocking connection's names and contracts
/// (`recv_batch(max, wait)`, `close` that waits, `start_close` that does
/// not, `shutdown`, `deflate`, ...); where the blocking one has
/// [`messages`](crate::BufferedWebSocket::messages), this is a [`Stream`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> floodgate::Result<()> {
/// use floodgate::buffer::{BufferConfig, Overflow};
/// # let server = floodgate_server::Server::bind("127.0.0.1:0", floodgate_server::echo).unwrap();
/// let mut ws = floodgate::Client::builder()
///     .buffer(BufferConfig::new().max_messages(10_000).overflow(Overflow::DropOldest))
///     .connect_buffered_async(&server.url())
///     .await?;
/// ws.send_text("tick").await?;
/// let message = ws.recv().await?;
/// println!("{:?} waited {:?} in the buffer", message.message().as_text(), message.waited());
/// let stats = ws.stats();
/// assert_eq!(stats.received, stats.delivered + stats.buffered + stats.dropped_oldest);
/// ws.close(1000, "bye").await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct BufferedWebSocket {
    buffer: Arc<Buffer>,
    sender: Sender,
    reader: Option<JoinHandle<()>>,
    ended: bool,
}

impl WebSocket {
    /// Turns this connection into a [`BufferedWebSocket`]: a reader task
    /// takes over receiving and feeds a bounded buffer with `config`'s
    /// limits and policies. Bytes already read are kept, and so is the
    /// message of a `recv` that was cancelled.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`] when `config` does not fit the connection's
    /// limits (see [`BufferConfig::validate`]); [`ErrorKind::Usage`] when
    /// a fragmented message begun with [`WebSocket::recv_frame`] is not
    /// finished (the connection is dropped).
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime (the reader is spawned with
    /// `tokio::spawn`).
    pub async fn into_buffered(self, config: &BufferConfig) -> Result<BufferedWebSocket> {
        let max_message_size = self.shared().conn().protocol().config().max_message_size;
        config.validate(max_message_size)?;
        let CoreParts {
            mut core,
            first,
            sender,
        } = self.into_core().await;
        if core.as_ref().is_some_and(|core| core.raw_open) {
            return Err(ErrorKind::Usage(UsageError::BadFragmentSequence(
                "a message begun with recv_frame must be finished with recv_frame before into_buffered",
            ))
            .into());
        }
        if let Some(core) = &mut core {
            // The reader waits only on the buffer and the connection's
            // deadlines, never on a read timeout (as in the blocking
            // buffered connection).
            core.read_timeout = None;
        }
        let buffer = Arc::new(Buffer::try_new(config)?);
        let handle = match core {
            Some(core) => {
                let ingest = Ingest::new(
                    buffer.clone(),
                    config.retains_sparsely(),
                    core.max_chunk(),
                    config.on_control.clone(),
                    config.on_data_frame.clone(),
                );
                let reader = Reader {
                    core,
                    ingest,
                    reported: false,
                    abort_reason: None,
                    output_stuck: false,
                };
                Some(::tokio::spawn(reader.run(first)))
            }
            None => {
                buffer.finish(Error::from(ErrorKind::AlreadyClosed));
                None
            }
        };
        Ok(BufferedWebSocket {
            buffer,
            sender,
            reader: handle,
            ended: false,
        })
    }
}

/// Margin over the close timeout for a reader that should have ended by
/// itself.
const GUARD: std::time::Duration = std::time::Duration::from_millis(100);

/// The reader task: the async twin of the blocking reader thread
/// (`crate::blocking::buffered::reader`), with the same loop and the same
/// [`Ingest`]: decode, deliver, write what the connection queued, report
/// an end as soon as it is decided, drop the transport once the lifecycle
/// is over, otherwise read again until the connection's next deadline.
struct Reader {
    core: Box<Core>,
    ingest: Ingest,
    /// The end was handed to the buffer.
    reported: bool,
    /// Why this side aborted the connection, when it did.
    abort_reason: Option<Error>,
    /// Output the reader queued could not all be written yet.
    output_stuck: bool,
}

/// How long the reader waits on one write of its own (a pong, the answer
/// to a close) before it goes back to reading.
const READER_WRITE_WAIT: std::time::Duration = std::time::Duration::from_millis(10);

/// How soon the reader tries again to write what it could not.
const RETRY_WRITE: std::time::Duration = std::time::Duration::from_millis(50);

impl Reader {
    async fn run(mut self, first: Option<Result<Message>>) {
        match first {
            Some(Ok(message @ (Message::Text(_) | Message::Binary(_)))) => {
                self.ingest.buffer.stage(&mut self.ingest.batch, message);
            }
            Some(Err(e)) => {
                self.reported = true;
                self.ingest.buffer.finish(e);
            }
            _ => {}
        }
        if !self.reported {
            self.read_loop().await;
        }
        self.report_end();
        self.flush_before_end().await;
        self.core.finish().await;
    }

    async fn read_loop(&mut self) {
        loop {
            let stop = {
                let core = &mut *self.core;
                let mut conn = core.shared.conn();
                self.ingest
                    .decode(&mut conn, &mut core.read_buf, core.read_at)
            };
            if self.ingest.has_deferred() {
                // The application's classifier, key or observer: run with
                // the connection's lock released.
                self.ingest.stage_deferred();
            }
            let read_next = matches!(stop, Ok(Stop::NeedMore) | Err(_));
            let mut delivered = false;
            match stop {
                Err(_) => {
                    // The connection failed and queued its close; deliver
                    // what came before the bad frame, then report at once.
                    let _ = self.deliver().await;
                }
                Ok(Stop::Control(control)) => self.on_control(&control).await,
                Ok(Stop::BatchFull) => {
                    if let Err(err) = self.deliver().await {
                        self.disconnect(err);
                    }
                    continue;
                }
                Ok(Stop::NeedMore) => {
                    delivered = !self.ingest.batch.is_empty();
                    if let Err(err) = self.deliver().await {
                        self.disconnect(err);
                    }
                }
            }
            self.write_queued().await;
            let (decided, finished) = {
                let conn = self.core.shared.conn();
                (conn.end().is_some(), conn.is_finished())
            };
            if decided && !self.reported {
                // Known at once: the consumer need not wait for the close
                // frame to go out or the server's answer.
                let _ = self.deliver().await;
                self.report_end();
            }
            if finished {
                return;
            }
            if delivered {
                // Let the consumer take what this read brought before
                // reading more. Without it, on a current-thread runtime
                // the reader reads on until tokio's budget (128 reads,
                // 32 MiB of 256 KiB reads) or the buffer's limit stops it,
                // so every message is written to and read from cold,
                // freshly faulted memory; with it the buffer holds about
                // one read, as with the blocking reader thread.
                ::tokio::task::yield_now().await;
            }
            if read_next {
                self.fill().await;
            }
        }
    }

    /// A control frame the connection handled (its answer is queued).
    async fn on_control(&mut self, control: &Message) {
        match control {
            Message::Ping(payload) => {
                tracing::trace!(len = payload.len(), "received a ping (async)");
                let decoded = self.core.read_at;
                if self.write_queued().await {
                    self.ingest.buffer.record_ping(decoded.elapsed());
                }
            }
            Message::Close(frame) => tracing::debug!(?frame, "peer closed the WebSocket (async)"),
            _ => {}
        }
        if !matches!(control, Message::Close(_)) {
            self.ingest.observe(control);
        }
        if let Err(err) = self.deliver().await {
            self.disconnect(err);
        }
    }

    /// Writes what the connection queued, waiting at most a moment on a
    /// socket the server does not drain; whether everything went out.
    async fn write_queued(&mut self) -> bool {
        let shared = self.core.shared.clone();
        if !shared.conn().has_output() && !self.output_stuck {
            return true;
        }
        let done = matches!(
            ::tokio::time::timeout(READER_WRITE_WAIT, shared.flush()).await,
            Ok(Ok(()))
        ) && !shared.conn().has_output();
        self.output_stuck = !done;
        done
    }

    /// Reads the next chunk, or wakes at the connection's next deadline
    /// (or when one was added from outside) and runs it.
    async fn fill(&mut self) {
        let wake = {
            let mut conn = self.core.shared.conn();
            let now = std::time::Instant::now();
            if conn.poll_timeout().is_some_and(|t| now >= t) {
                conn.handle_timeout(now);
            }
            if conn.is_finished() {
                return;
            }
            conn.poll_timeout().map(Instant::from_std)
        };
        self.write_queued().await;
        let retry = self.output_stuck.then(|| Instant::now() + RETRY_WRITE);
        match self.core.read_some(earliest(wake, retry), true).await {
            Read::Data | Read::Woken => {}
            Read::Ended(error) => {
                let shared = self.core.shared.clone();
                let undecided = {
                    let mut conn = shared.conn();
                    let undecided = conn.end().is_none();
                    conn.receive_eof(self.core.read_at);
                    undecided
                };
                if let (Some(e), true) = (error, undecided && !shared.was_killed()) {
                    // The transport failed before any end was decided: the
                    // consumer gets the I/O error itself.
                    tracing::debug!(error = %e, "the transport failed (async)");
                    self.reported = true;
                    self.ingest.buffer.finish(Error::from(e));
                    shared.end_reported.notify_waiters();
                }
            }
        }
    }

    /// Hands the decoded batch to the buffer; under `Block` waits for room
    /// with the task's waker (and, for `BlockFor`, until the buffer's
    /// deadline), waking for the connection's deadlines too, with the pong
    /// clock paused meanwhile.
    async fn deliver(&mut self) -> std::result::Result<(), BufferError> {
        if self.ingest.batch.is_empty() {
            return Ok(());
        }
        let shared = self.core.shared.clone();
        let mut paused = false;
        let result = loop {
            let mut timer: Option<Pin<Box<::tokio::time::Sleep>>> = None;
            let buffer = self.ingest.buffer.clone();
            let batch = &mut self.ingest.batch;
            let pushed = std::future::poll_fn(|cx| {
                match buffer.push(batch, cx.waker(), true) {
                    Pushed::Done => Poll::Ready(Some(Ok(()))),
                    Pushed::FellBehind(err) => Poll::Ready(Some(Err(err))),
                    Pushed::Wait(deadline) => {
                        let wake = earliest(
                            deadline.map(Instant::from_std),
                            shared.conn().poll_timeout().map(Instant::from_std),
                        );
                        let Some(wake) = wake else {
                            return Poll::Pending;
                        };
                        let sleep =
                            timer.get_or_insert_with(|| Box::pin(::tokio::time::sleep_until(wake)));
                        if sleep.deadline() != wake {
                            sleep.as_mut().reset(wake);
                        }
                        // Ready: the buffer's deadline (push again) or the
                        // connection's (run it first).
                        sleep.as_mut().poll(cx).map(|()| None)
                    }
                }
            })
            .await;
            match pushed {
                Some(result) => break result,
                None => {
                    let shut_down = {
                        let mut conn = shared.conn();
                        let now = std::time::Instant::now();
                        if !paused {
                            conn.pause_reading(now);
                            paused = true;
                        }
                        if conn.poll_timeout().is_some_and(|t| now >= t) {
                            conn.handle_timeout(now);
                        }
                        shared.was_killed()
                    };
                    self.write_queued().await;
                    if shut_down {
                        // Never placed, so counted as dropped, not lost.
                        self.ingest.buffer.drop_batch(&mut self.ingest.batch);
                        break Ok(());
                    }
                }
            }
        };
        self.ingest.batch.clear();
        if paused {
            shared.conn().resume_reading(std::time::Instant::now());
        }
        result
    }

    /// The `Disconnect` policy: close with 1008; the consumer gets the
    /// buffer's error with its figures.
    fn disconnect(&mut self, err: BufferError) {
        tracing::debug!(error = %err, "consumer fell behind: disconnecting (async)");
        self.abort_reason = Some(ErrorKind::Buffer(err).into());
        let frame = CloseFrame::new(CloseCode::POLICY_VIOLATION, "consumer fell behind");
        self.core
            .shared
            .conn()
            .abort(frame, std::time::Instant::now());
    }

    /// Hands the connection's end to the buffer, once.
    fn report_end(&mut self) {
        if self.reported {
            return;
        }
        let end = self.core.shared.conn().end().cloned();
        let end = end.unwrap_or(End::Shutdown);
        self.reported = true;
        let error = match (&end, self.abort_reason.take()) {
            (End::Aborted(_), Some(reason)) => reason,
            (end, _) => crate::lifecycle::error_of(end),
        };
        self.ingest.buffer.finish(error);
        self.core.shared.end_reported.notify_waiters();
    }

    /// What the lifecycle queued last (the answer to a close, the close
    /// that fails the connection) goes out before the transport, within
    /// `fail_grace`.
    async fn flush_before_end(&mut self) {
        let shared = self.core.shared.clone();
        if !shared.conn().has_output() {
            return;
        }
        let grace = shared.conn().timeouts().fail_grace;
        let _ = ::tokio::time::timeout(grace, async {
            loop {
                let _ = shared.flush().await;
                if !shared.conn().has_output() {
                    return;
                }
                ::tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
        })
        .await;
    }
}

impl BufferedWebSocket {
    /// Receives the next message from the buffer, waiting for one.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: a message is taken from the buffer only when the call
    /// returns it.
    ///
    /// # Errors
    ///
    /// Once the buffer is empty and the connection has ended: what ended
    /// it ([`ErrorKind::ConnectionClosed`] after a close handshake,
    /// [`ErrorKind::Buffer`] under `Disconnect`, a protocol or I/O error),
    /// then [`ErrorKind::AlreadyClosed`].
    pub async fn recv(&self) -> Result<Delivered> {
        Ok(std::future::poll_fn(|cx| self.buffer.poll_recv(cx)).await?)
    }

    /// Waits at most `timeout` for the next message, as the blocking
    /// [`crate::BufferedWebSocket::recv_timeout`].
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe, as [`recv`](Self::recv).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Timeout`] when none came (the connection stays usable);
    /// otherwise as for [`recv`](Self::recv).
    pub async fn recv_timeout(&self, timeout: std::time::Duration) -> Result<Delivered> {
        let mut out = Vec::with_capacity(1);
        if self.recv_batch_into(&mut out, 1, timeout).await? == 0 {
            return Err(RecvError::TimedOut(timeout).into());
        }
        Ok(out.pop().expect("one message was taken"))
    }

    /// Takes every buffered message, up to `max`, waiting at most `wait`
    /// for the first; empty when none came in time. The same contract as
    /// the blocking [`crate::BufferedWebSocket::recv_batch`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> floodgate::Result<()> {
    /// use std::time::Duration;
    /// # let server = floodgate_server::Server::bind("127.0.0.1:0", floodgate_server::echo).unwrap();
    /// let ws = floodgate::Client::default().connect_buffered_async(&server.url()).await?;
    /// assert!(ws.recv_batch(100, Duration::from_millis(10)).await?.is_empty());
    /// ws.send_text("one").await?;
    /// let batch = ws.recv_batch(100, Duration::from_secs(5)).await?;
    /// assert_eq!(batch[0].as_text(), Some("one"));
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe, as [`recv`](Self::recv).
    ///
    /// # Errors
    ///
    /// As for [`recv`](Self::recv).
    pub async fn recv_batch(
        &self,
        max: usize,
        wait: std::time::Duration,
    ) -> Result<Vec<Delivered>> {
        let mut out = Vec::new();
        self.recv_batch_into(&mut out, max, wait).await?;
        Ok(out)
    }

    /// [`recv_batch`](Self::recv_batch) into a vector the caller reuses;
    /// returns how many messages were appended (0: none came in time).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe, as [`recv`](Self::recv).
    ///
    /// # Errors
    ///
    /// As for [`recv`](Self::recv).
    pub async fn recv_batch_into(
        &self,
        out: &mut Vec<Delivered>,
        max: usize,
        wait: std::time::Duration,
    ) -> Result<usize> {
        // A wait past the clock's range (`Duration::MAX`) needs no timer.
        let deadline = Instant::now().checked_add(wait);
        let mut sleep = std::pin::pin!(deadline.map(::tokio::time::sleep_until));
        std::future::poll_fn(|cx| match self.buffer.poll_recv_batch(cx, out, max) {
            Poll::Ready(taken) => Poll::Ready(taken.map_err(Error::from)),
            Poll::Pending => match sleep.as_mut().as_pin_mut().map(|s| s.poll(cx)) {
                Some(Poll::Ready(())) => {
                    // No message in time: the buffer need not wake us.
                    self.buffer.forget_consumer(cx.waker());
                    Poll::Ready(Ok(0))
                }
                _ => Poll::Pending,
            },
        })
        .await
    }

    /// Leases up to `max` messages, waiting at most `wait` for the first
    /// (an empty lease when none came), as the blocking
    /// [`crate::BufferedWebSocket::lease`]: they stay counted in the buffer
    /// until [`Lease::commit`](crate::buffer::Lease::commit), and go back
    /// to its head if the lease is released or dropped.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> floodgate::Result<()> {
    /// use std::time::Duration;
    /// # let server = floodgate_server::Server::bind("127.0.0.1:0", floodgate_server::echo).unwrap();
    /// let ws = floodgate::Client::default().connect_buffered_async(&server.url()).await?;
    /// ws.send_text("one").await?;
    /// let lease = ws.lease(100, Duration::from_secs(5)).await?;
    /// assert_eq!(lease.messages()[0].as_text(), Some("one"));
    /// assert_eq!(ws.stats().in_flight, 1);
    /// drop(lease); // not acknowledged: back at the head of the buffer
    /// let lease = ws.lease(100, Duration::from_secs(5)).await?;
    /// assert_eq!(lease.messages()[0].as_text(), Some("one"));
    /// lease.commit(); // acknowledged: it leaves the buffer
    /// assert_eq!((ws.stats().delivered, ws.stats().buffered), (1, 0));
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe, as [`recv`](Self::recv).
    ///
    /// # Errors
    ///
    /// As for [`recv`](Self::recv).
    pub async fn lease(
        &self,
        max: usize,
        wait: std::time::Duration,
    ) -> Result<crate::buffer::Lease> {
        let deadline = Instant::now().checked_add(wait);
        let mut sleep = std::pin::pin!(deadline.map(::tokio::time::sleep_until));
        std::future::poll_fn(|cx| match self.buffer.poll_lease(cx, max) {
            Poll::Ready(lease) => Poll::Ready(lease.map_err(Error::from)),
            Poll::Pending => match sleep.as_mut().as_pin_mut().map(|s| s.poll(cx)) {
                Some(Poll::Ready(())) => {
                    self.buffer.forget_consumer(cx.waker());
                    Poll::Ready(self.buffer.try_lease(max).map_err(Error::from))
                }
                _ => Poll::Pending,
            },
        })
        .await
    }

    /// A message if one is buffered, without waiting.
    ///
    /// # Errors
    ///
    /// As for [`recv`](Self::recv).
    pub fn try_recv(&self) -> Result<Option<Delivered>> {
        Ok(self.buffer.try_recv()?)
    }

    /// The buffer's counters, read at one instant.
    pub fn stats(&self) -> Stats {
        self.buffer.stats()
    }

    /// The buffer, shared with the reader task.
    pub fn buffer(&self) -> &Arc<Buffer> {
        &self.buffer
    }

    /// A sending half for other tasks.
    pub fn sender(&self) -> Sender {
        self.sender.clone()
    }

    /// Pings the server at once and then every `interval`; with
    /// `timeout`, ends the connection when no pong answers a ping within
    /// `timeout` (see [`super::keepalive`]). The consumer then gets
    /// a pong timeout ([`TimeoutKind::Pong`](crate::TimeoutKind::Pong)) after the buffered messages. The pings and the
    /// deadline are the reader task's, as with the builder's
    /// [`ping_interval`](crate::ClientBuilder::ping_interval).
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn keepalive(
        &self,
        interval: std::time::Duration,
        timeout: Option<std::time::Duration>,
        payload: &[u8],
    ) -> super::Keepalive {
        super::Keepalive::start(self.sender.clone(), interval, timeout, payload.to_vec())
    }

    /// What ends the connection from outside (the keepalive, the App's
    /// close deadline).
    pub(crate) fn killer(&self) -> Killer {
        Killer {
            sender: self.sender.clone(),
        }
    }

    super::delegate_sends!(send, send_text, send_binary, send_frame, ping, pong);

    /// Closes the connection: the buffer stops blocking the reader
    /// (messages that do not fit from now on are dropped and counted as
    /// `dropped_newest`), a close frame is sent, and this waits up to
    /// `close_timeout` for the reader to see the server's close. Messages
    /// still buffered stay readable until the end is reported.
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe (the close frame may be sent without the wait).
    ///
    /// # Errors
    ///
    /// As the blocking [`crate::BufferedWebSocket::close`]:
    /// [`ErrorKind::Usage`] for a code that must not be sent or a reason
    /// over 123 bytes (nothing is sent), or when a close was sent already;
    /// [`ErrorKind::Timeout`] when the server did not answer in time (the
    /// transport is shut down); [`ErrorKind::AbnormalClosure`] or another
    /// error when the connection ended otherwise;
    /// [`ErrorKind::AlreadyClosed`] once the connection has ended.
    pub async fn close(&mut self, code: impl Into<CloseCode>, reason: &str) -> Result<()> {
        self.close_with(Some(CloseFrame::new(code.into(), reason)))
            .await
    }

    /// [`close`](Self::close) with any close frame, or none.
    ///
    /// # Errors
    ///
    /// As for [`close`](Self::close).
    pub async fn close_with(&mut self, frame: Option<CloseFrame>) -> Result<()> {
        self.sender.start_close(frame).await?;
        self.buffer.set_closing();
        let Some(mut reader) = self.reader.take() else {
            return Ok(());
        };
        // The reader keeps the close deadline (it was woken for it) and
        // reports the end the moment it is decided; it may linger a
        // moment after that (the server's end of TCP), which this does not
        // wait for. The bound here only guards against a reader that
        // cannot run.
        let shared = self.sender.shared.clone();
        let guard = Instant::now() + shared.close_timeout + GUARD;
        loop {
            let reported = shared.end_reported.notified();
            if self.buffer.is_finished() || reader.is_finished() {
                break;
            }
            ::tokio::select! {
                () = reported => {}
                _ = &mut reader => break,
                () = ::tokio::time::sleep_until(guard) => {
                    shared.conn().handle_timeout(std::time::Instant::now());
                    shared.kill();
                    break;
                }
            }
        }
        self.reader = Some(reader);
        let end = shared.conn().end().cloned();
        match end {
            Some(End::Closed { .. }) => Ok(()),
            Some(end) => Err(crate::lifecycle::error_of(&end)),
            None => Err(ErrorKind::AbnormalClosure.into()),
        }
    }

    /// Starts the close handshake and returns at once: see
    /// [`Sender::start_close`]. The reader task completes the handshake;
    /// the consumer then gets [`ErrorKind::ConnectionClosed`] after the
    /// buffered messages.
    ///
    /// # Errors
    ///
    /// As for [`Sender::start_close`].
    pub async fn start_close(&self, frame: Option<CloseFrame>) -> Result<()> {
        self.buffer.set_closing();
        self.sender.start_close(frame).await
    }

    /// Drops the connection at once, without a close handshake, as the
    /// blocking [`crate::BufferedWebSocket::shutdown`]: the socket is shut
    /// down (a send blocked on it is freed), the reader stops waiting for
    /// room, messages already buffered stay readable, and the consumer
    /// then gets [`ErrorKind::AbnormalClosure`]. Waits for the reader task
    /// to stop (it drops the transport within `fail_grace`).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: the connection is dropped at the first poll; the rest
    /// only waits for the reader task.
    pub async fn shutdown(&mut self) {
        self.sender.shutdown();
        self.buffer.set_closing();
        if let Some(mut reader) = self.reader.take() {
            let guard = self.sender.shared.close_timeout + GUARD;
            if ::tokio::time::timeout(guard, &mut reader).await.is_err() {
                reader.abort();
            }
        }
    }

    /// Whether the connection is open (no close sent or received).
    pub fn is_open(&self) -> bool {
        self.sender.is_open()
    }

    /// The subprotocol the server selected.
    pub fn subprotocol(&self) -> Option<&str> {
        self.sender.shared.handshake.subprotocol.as_deref()
    }

    /// permessage-deflate as negotiated, or `None` (see the blocking
    /// [`crate::WebSocket::deflate`]).
    pub fn deflate(&self) -> Option<&floodgate_proto::deflate::PerMessageDeflate> {
        self.sender.shared.handshake.deflate.as_ref()
    }

    /// The handshake status (101).
    pub fn status(&self) -> StatusCode {
        self.sender.shared.handshake.status
    }

    /// The server's handshake response headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.sender.shared.handshake.headers
    }
}

/// Ends a connection at once, from another task: its reader task stops,
/// the consumer gets [`ErrorKind::AbnormalClosure`] after what is
/// buffered, and the transport is shut down (within `close_timeout`).
#[derive(Debug, Clone)]
pub(crate) struct Killer {
    sender: Sender,
}

impl Killer {
    pub(crate) async fn kill(&self) {
        // Cut off at the socket: the reader sees the end and reports it
        // (`AbnormalClosure`); a writer stuck on a full socket is freed.
        // The reader is not aborted: it ends by itself at once and
        // reports the end to the buffer.
        self.sender.shared.kill();
    }
}

impl Drop for BufferedWebSocket {
    fn drop(&mut self) {
        if let Some(reader) = self.reader.take() {
            reader.abort();
        }
    }
}

impl Stream for BufferedWebSocket {
    type Item = Result<Delivered>;

    /// Buffered messages until the close handshake ends the stream; any
    /// other end is yielded once as an error.
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.ended {
            return Poll::Ready(None);
        }
        match self.buffer.poll_recv(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(delivered)) => Poll::Ready(Some(Ok(delivered))),
            Poll::Ready(Err(e)) => {
                self.ended = true;
                let e = Error::from(e);
                Poll::Ready(if e.is_closed() { None } else { Some(Err(e)) })
            }
        }
    }
}
