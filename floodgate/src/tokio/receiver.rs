//! The read side of an async connection: the receiving state ([`Core`])
//! and the [`Receiver`].
//!
//! Cancel safety of `recv` is by construction: the receiving state (read
//! half, read buffer) moves into a boxed future that is kept in the
//! [`Receiver`] when the caller's future is dropped, and the next `recv`
//! polls that same future on. Nothing read is ever lost or read twice. A
//! message already in the read buffer is returned without that future (no
//! allocation on the fast path).

use super::sender::Shared;
use super::stream::AsyncStream;
use crate::error::{Error, ErrorKind, Result, TimeoutKind};
use crate::ingest::read_size;
use crate::lifecycle::{earliest, error_of};
use bytes::BytesMut;
use floodgate_proto::connection::End;
use floodgate_proto::{CloseFrame, Frame, Message, ProtocolError, State, UsageError};
use futures_core::Stream;
use std::fmt;
use std::future::Future;
use std::io;
use std::ops::ControlFlow;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncReadExt, ReadHalf};
use tokio::time::Instant;

/// The smallest read; an idle connection's read buffer shrinks to this.
pub(super) const MIN_READ: usize = 4096;

/// How one read of the transport ended.
pub(super) enum Read {
    /// Bytes arrived.
    Data,
    /// The transport ended (end of stream, or it failed: the error).
    Ended(Option<io::Error>),
    /// The deadline passed (or the reader was woken) first.
    Woken,
}

/// The receiving state: read half, read buffer, and what was decoded.
pub(super) struct Core {
    pub(super) shared: Arc<Shared>,
    pub(super) io: ReadHalf<AsyncStream>,
    pub(super) read_buf: BytesMut,
    /// The next read's size: grows while reads fill it, shrinks when
    /// they do not, between [`MIN_READ`] and `max_chunk`.
    pub(super) chunk: usize,
    pub(super) max_chunk: usize,
    pub(super) return_control_frames: bool,
    /// Bounds each read, as the blocking client's `SO_RCVTIMEO` does
    /// (`None` in the buffered connection's reader task).
    pub(super) read_timeout: Option<Duration>,
    /// A message begun with `recv_frame` is not finished.
    pub(super) raw_open: bool,
    /// Decoded on the fast path but not a data message: handled first.
    pub(super) staged: Option<std::result::Result<Option<Message>, ProtocolError>>,
    /// When the last read returned: the time of the bytes being decoded.
    pub(super) read_at: std::time::Instant,
    pub(super) finished: bool,
    /// The connection's end was reported: later calls get `AlreadyClosed`.
    pub(super) reported: bool,
}

/// What a receive in flight returns.
pub(super) enum Received {
    Message(Result<Message>),
    Frame(Result<Frame>),
}

pub(super) type RecvFuture = Pin<Box<dyn Future<Output = (Box<Core>, Received)> + Send>>;

/// A future kept in a half, reached only through `&mut` (`Mutex::get_mut`
/// takes no lock): the `Mutex` only makes the half `Sync`, so that
/// `&Sender` can be held across an `.await` in a spawned task.
pub(super) type Kept<F> = Mutex<Option<F>>;

pub(super) fn kept<F>(slot: &mut Kept<F>) -> &mut Option<F> {
    slot.get_mut().unwrap_or_else(|e| e.into_inner())
}

impl Core {
    pub(super) fn max_chunk(&self) -> usize {
        self.max_chunk
    }

    fn decode(&mut self) -> std::result::Result<Option<Message>, ProtocolError> {
        self.shared
            .conn()
            .read_message(&mut self.read_buf, self.read_at)
    }

    async fn recv(&mut self) -> Result<Message> {
        loop {
            let decoded = match self.staged.take() {
                Some(decoded) => decoded,
                None => self.decode(),
            };
            match decoded {
                Ok(Some(message)) => {
                    if message.is_control() {
                        // A pong or the close reply, queued by the protocol.
                        self.shared.flush().await?;
                    }
                    match message {
                        Message::Text(_) | Message::Binary(_) => return Ok(message),
                        Message::Close(frame) => {
                            let closed = self.on_peer_close(frame.clone()).await;
                            return if self.return_control_frames {
                                Ok(Message::Close(frame))
                            } else {
                                Err(closed)
                            };
                        }
                        _ if self.return_control_frames => return Ok(message),
                        _ => continue,
                    }
                }
                Ok(None) => self.fill().await?,
                Err(err) => return Err(self.fail(err).await),
            }
        }
    }

    /// Reads more bytes into the read buffer, waking for the connection's
    /// deadlines on the way (a keepalive ping to send, a pong that did not
    /// come).
    pub(super) async fn fill(&mut self) -> Result<()> {
        if self.finished || (self.reported && self.shared.conn().end().is_some()) {
            return Err(ErrorKind::AlreadyClosed.into());
        }
        let user_deadline = self.read_timeout.map(|t| Instant::now() + t);
        loop {
            let next = self.tick().await?;
            let deadline = earliest(next, user_deadline);
            match self.read_some(deadline, false).await {
                Read::Data => return Ok(()),
                Read::Ended(error) => {
                    self.shared.conn().receive_eof(self.read_at);
                    let end = self.end_error();
                    self.finish().await;
                    return Err(match error {
                        Some(e) if !self.shared.was_killed() => e.into(),
                        _ => end,
                    });
                }
                Read::Woken => {
                    if user_deadline.is_some_and(|d| Instant::now() >= d) {
                        return Err(Error::timeout(TimeoutKind::Read, self.read_timeout));
                    }
                }
            }
        }
    }

    /// Runs the deadlines that have passed and writes what they queued;
    /// the connection's next deadline, or the error of a connection they
    /// ended. One lock, and no clock read when there is no deadline: this
    /// runs before every read.
    async fn tick(&mut self) -> Result<Option<Instant>> {
        let (finished, queued, next) = {
            let mut conn = self.shared.conn();
            if let Some(due) = conn.poll_timeout() {
                let now = std::time::Instant::now();
                if now >= due {
                    conn.handle_timeout(now);
                }
            }
            let next = conn.poll_timeout().map(Instant::from_std);
            (conn.is_finished(), conn.has_output(), next)
        };
        if finished {
            let end = self.end_error();
            self.finish().await;
            return Err(end);
        }
        if queued {
            // A keepalive ping. A write error here is the transport's
            // end, which the next read sees.
            let _ = self.shared.flush().await;
        }
        Ok(next)
    }

    /// One read into the read buffer, until `deadline` at the latest
    /// (`None`: as long as it takes); `wake`: also stop when the
    /// connection's timers changed.
    pub(super) async fn read_some(&mut self, deadline: Option<Instant>, wake: bool) -> Read {
        let needed = self.shared.conn().bytes_needed();
        // The rest of a frame whose header has arrived is asked for in one
        // read, up to `max_chunk` (what a burst reserves anyway), rather
        // than in reads that double from `chunk`: a 64 KiB message after a
        // pause then takes two reads instead of five (each a syscall, and a
        // trip through the reactor when it finds the socket drained). What
        // a header can make us reserve stays bounded by `max_chunk`.
        let rest = needed
            .saturating_sub(self.read_buf.len())
            .min(self.max_chunk);
        let want = read_size(needed, self.read_buf.len(), self.chunk).max(rest);
        // An idle connection keeps no large buffer: once everything read
        // has been handed out and reads have become small, let it go.
        if self.read_buf.is_empty() && self.read_buf.capacity() > 2 * want {
            self.read_buf = BytesMut::new();
        }
        self.read_buf.reserve(want);
        let shared = self.shared.clone();
        let mut limited = (&mut self.io).take(want as u64);
        // `read_buf` is cancel-safe: a read cut short read nothing, and a
        // frame received in part stays in the read buffer.
        let read = limited.read_buf(&mut self.read_buf);
        let result = ::tokio::select! {
            biased;
            read = read => Some(read),
            () = sleep_until_some(deadline) => None,
            () = shared.timers_changed.notified(), if wake => None,
        };
        self.read_at = std::time::Instant::now();
        match result {
            None => Read::Woken,
            Some(Ok(0)) => Read::Ended(None),
            Some(Ok(n)) => {
                if n == want && self.chunk < self.max_chunk {
                    self.chunk = (self.chunk * 2).min(self.max_chunk);
                } else if n < self.chunk / 8 {
                    // A small read: the burst is over (or there was none).
                    // Start small again, so that the next `fill` with an
                    // empty buffer lets a large one go.
                    self.chunk = MIN_READ.min(self.max_chunk);
                }
                Read::Data
            }
            Some(Err(e)) if e.kind() == io::ErrorKind::Interrupted => Read::Woken,
            Some(Err(e)) => Read::Ended(Some(e)),
        }
    }

    /// The error for the connection's end, once; `AlreadyClosed` after.
    pub(super) fn end_error(&mut self) -> Error {
        if std::mem::replace(&mut self.reported, true) {
            return ErrorKind::AlreadyClosed.into();
        }
        match self.shared.conn().end() {
            Some(end) => error_of(end),
            None => ErrorKind::AbnormalClosure.into(),
        }
    }

    /// Reads (skipping what arrives) until the lifecycle is over: the
    /// peer's close and end of transport, or the deadline the connection
    /// set; then ends the transport.
    pub(super) async fn drive_to_end(&mut self) {
        while !self.finished {
            let (finished, queued, deadline) = {
                let mut conn = self.shared.conn();
                conn.handle_timeout(std::time::Instant::now());
                let deadline = conn.poll_timeout().map(Instant::from_std);
                (conn.is_finished(), conn.has_output(), deadline)
            };
            if finished {
                break;
            }
            if queued {
                let flushed = match deadline {
                    None => self.shared.flush().await,
                    Some(d) => ::tokio::time::timeout_at(d, self.shared.flush())
                        .await
                        .unwrap_or(Ok(())),
                };
                if flushed.is_err() {
                    self.shared.conn().receive_eof(self.read_at);
                    break;
                }
            }
            match self.read_some(deadline, false).await {
                Read::Data => {
                    let _ = self
                        .shared
                        .conn()
                        .read(&mut self.read_buf, self.read_at, |_| {
                            ControlFlow::<()>::Continue(())
                        });
                }
                Read::Ended(_) => self.shared.conn().receive_eof(self.read_at),
                Read::Woken => {}
            }
        }
        self.finish().await;
    }

    /// The peer closed and its close was answered: a client lets the
    /// server end TCP (within the close timeout), then ends its own.
    pub(super) async fn on_peer_close(&mut self, frame: Option<CloseFrame>) -> Error {
        tracing::debug!(?frame, "peer closed the WebSocket (async)");
        let _ = self.shared.flush().await;
        self.drive_to_end().await;
        self.reported = true;
        ErrorKind::ConnectionClosed(frame).into()
    }

    /// Fails the connection after a protocol error, as the blocking
    /// `WebSocket` does: the close the connection queued goes out, the
    /// server gets `fail_grace` to answer, the transport is dropped.
    pub(super) async fn fail(&mut self, err: ProtocolError) -> Error {
        if self.reported {
            return ErrorKind::AlreadyClosed.into();
        }
        self.drive_to_end().await;
        self.reported = true;
        ErrorKind::Protocol(err).into()
    }

    /// After our close was sent: wait for the server's close and its end
    /// of TCP (the connection's close deadline bounds both), then end ours.
    pub(super) async fn close_handshake(&mut self) -> Result<()> {
        self.drive_to_end().await;
        self.reported = true;
        match self.shared.conn().end() {
            Some(End::Closed { .. }) => Ok(()),
            Some(end) => Err(error_of(end)),
            None => Err(ErrorKind::AbnormalClosure.into()),
        }
    }

    /// Ends the transport for good.
    pub(super) async fn finish(&mut self) {
        if !self.finished {
            self.finished = true;
            {
                let mut conn = self.shared.conn();
                if !conn.is_finished() {
                    conn.shutdown();
                }
            }
            self.read_buf = BytesMut::new();
            self.shared.shutdown().await;
        }
    }
}

/// Sleeps until `deadline`, or for ever.
pub(super) async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => ::tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// `recv` and `recv_frame` mixed within one message (or one receive).
pub(super) fn mixed(what: &'static str) -> Error {
    ErrorKind::Usage(UsageError::BadFragmentSequence(what)).into()
}

// ----- the receive half ------------------------------------------------------

/// The receiving half of an async [`WebSocket`](super::WebSocket) (from
/// [`WebSocket::split`](super::WebSocket::split)); also a [`Stream`] of
/// messages.
///
/// Pings are answered and the peer's close is answered while this half
/// receives: keep calling [`recv`](Self::recv) (or polling the stream), or
/// use the buffered connection, whose reader task does it for you.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> floodgate::Result<()> {
/// # let server = floodgate_server::Server::bind("127.0.0.1:0", floodgate_server::echo).unwrap();
/// let ws = floodgate::tokio::connect(&server.url()).await?;
/// let (sender, mut receiver) = ws.split();
/// let writer = tokio::spawn(async move {
///     for i in 0..3 {
///         sender.send_text(&format!("message {i}")).await?;
///     }
///     sender.close(1000, "done").await
/// });
/// let mut got = Vec::new();
/// // Ends with the close handshake: the server echoes our close.
/// while let Ok(message) = receiver.recv().await {
///     got.push(message.as_text().unwrap_or_default().to_owned());
/// }
/// writer.await.expect("the task")?;
/// assert_eq!(got, ["message 0", "message 1", "message 2"]);
/// # Ok(())
/// # }
/// ```
pub struct Receiver {
    /// The connection this half belongs to (for `reunite`).
    pub(super) shared: Arc<Shared>,
    pub(super) core: Option<Box<Core>>,
    /// A receive that was started and not finished (its caller's future
    /// was dropped, or the stream is being polled).
    pub(super) in_flight: Kept<RecvFuture>,
    /// The receive in flight is a `recv_frame`.
    pub(super) in_flight_frames: bool,
    /// The [`Stream`] has ended.
    pub(super) ended: bool,
}

impl fmt::Debug for Receiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("core", &self.core.is_some())
            .field("buffered", &self.core.as_ref().map(|c| c.read_buf.len()))
            .finish_non_exhaustive()
    }
}

impl Receiver {
    /// Receives the next complete message.
    ///
    /// Pings are answered and skipped, pongs skipped, unless the client was
    /// built with `return_control_frames(true)`, in which case they (and
    /// the peer's close) are returned as messages.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: if the future is dropped before it completes (in a
    /// `tokio::select!` or under `tokio::time::timeout`), no message is
    /// lost and none is received twice; the next call goes on where this
    /// one stopped.
    ///
    /// # Errors
    ///
    /// As the blocking [`crate::WebSocket::recv`]:
    /// [`ErrorKind::ConnectionClosed`] when the peer closed (its close was
    /// answered), then [`ErrorKind::AlreadyClosed`];
    /// [`ErrorKind::Protocol`] when the server broke the protocol (the
    /// connection was failed with the matching close code);
    /// [`ErrorKind::AbnormalClosure`] or [`ErrorKind::Io`] when the
    /// transport ended or failed; [`ErrorKind::Timeout`] when no data came
    /// for [`read_timeout`](crate::ClientBuilder::read_timeout) (the
    /// connection stays usable: a partly received frame is kept);
    /// [`ErrorKind::Usage`] when a fragmented message was begun with
    /// [`recv_frame`](Self::recv_frame) and is not finished, or a
    /// `recv_frame` was cancelled and not finished.
    pub async fn recv(&mut self) -> Result<Message> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Polls for the next message: the poll form of [`recv`](Self::recv),
    /// with the same cancel safety.
    ///
    /// # Errors
    ///
    /// As for [`recv`](Self::recv).
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<Message>> {
        if kept(&mut self.in_flight).is_none() {
            let Some(core) = self.core.as_mut() else {
                return Poll::Ready(Err(ErrorKind::AlreadyClosed.into()));
            };
            if core.raw_open {
                return Poll::Ready(Err(mixed(
                    "a message begun with recv_frame must be finished with recv_frame",
                )));
            }
            // The fast path: a data message already in the read buffer.
            if core.staged.is_none() {
                match core.decode() {
                    Ok(Some(message @ (Message::Text(_) | Message::Binary(_)))) => {
                        return Poll::Ready(Ok(message));
                    }
                    other => core.staged = Some(other),
                }
            }
            let mut core = self.core.take().expect("checked above");
            *kept(&mut self.in_flight) = Some(Box::pin(async move {
                let result = core.recv().await;
                (core, Received::Message(result))
            }));
            self.in_flight_frames = false;
        } else if self.in_flight_frames {
            return Poll::Ready(Err(mixed(
                "a recv_frame that was cancelled must be finished with recv_frame",
            )));
        }
        match ready!(self.poll_in_flight(cx)) {
            Received::Message(result) => Poll::Ready(result),
            Received::Frame(_) => unreachable!("checked above: a recv is in flight"),
        }
    }

    /// Polls the receive in flight and takes the receiving state back
    /// once it is done.
    pub(super) fn poll_in_flight(&mut self, cx: &mut Context<'_>) -> Poll<Received> {
        let future = kept(&mut self.in_flight)
            .as_mut()
            .expect("a receive in flight");
        let (core, received) = ready!(future.as_mut().poll(cx));
        *kept(&mut self.in_flight) = None;
        self.core = Some(core);
        Poll::Ready(received)
    }

    /// Takes the receiving state back from a receive in flight (whose
    /// result is dropped) before `deadline`; `None` when it is gone.
    pub(super) async fn core_before(&mut self, deadline: Instant) -> Option<&mut Core> {
        if let Some(future) = kept(&mut self.in_flight).take() {
            match ::tokio::time::timeout_at(deadline, future).await {
                Ok((core, _)) => self.core = Some(core),
                Err(_) => return None,
            }
        }
        self.core.as_deref_mut()
    }

    /// Whether messages can still be received.
    pub fn is_open(&self) -> bool {
        match &self.core {
            Some(core) => !core.finished && core.shared.conn().state() == State::Open,
            // A receive in flight holds the state; it is open unless the
            // receive was given up by a close that timed out.
            None => self.in_flight.lock().map(|f| f.is_some()).unwrap_or(false),
        }
    }
}

impl Stream for Receiver {
    type Item = Result<Message>;

    /// Messages until the close handshake ends the stream; a read or
    /// write timeout is yielded and the stream goes on; any other error is
    /// yielded once, then the stream ends.
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.ended {
            return Poll::Ready(None);
        }
        match ready!(self.poll_recv(cx)) {
            Ok(message) => Poll::Ready(Some(Ok(message))),
            // A timeout leaves the connection usable, as in the blocking
            // `WebSocket::messages`.
            Err(e) if e.is_timeout() => Poll::Ready(Some(Err(e))),
            Err(e) => {
                self.ended = true;
                Poll::Ready(if e.is_closed() { None } else { Some(Err(e)) })
            }
        }
    }
}
