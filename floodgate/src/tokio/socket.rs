//! The async connection: [`WebSocket`], and its halves [`Receiver`] and
//! [`Sender`].
//!
//! One [`Protocol`] per connection, shared by the halves behind a
//! `std::sync::Mutex` that is held only while bytes are decoded or a frame
//! is encoded, never across an `.await`. Writes go through one
//! `tokio::sync::Mutex` around the write half and a queue of encoded
//! bytes: whoever holds it writes out everything queued, in order, so
//! frames from concurrent senders (and the pongs the receiver queues)
//! never interleave, and a write cancelled half-way leaves its rest at the
//! front of the queue for the next writer, not a torn frame.
//!
//! Cancel safety of `recv` is by construction: the receiving state (read
//! half, read buffer) moves into a boxed future that is kept in the
//! [`Receiver`] when the caller's future is dropped, and the next `recv`
//! polls that same future on. Nothing read is ever lost or read twice. A
//! message already in the read buffer is returned without that future (no
//! allocation on the fast path).

use crate::config::Options;
use crate::error::{Error, ErrorKind, Result};
use crate::socket::read_size;
use crate::tokio::stream::AsyncStream;
use bytes::{Buf, BytesMut};
use floodgate_proto::deflate::PerMessageDeflate;
use floodgate_proto::handshake::Response;
use floodgate_proto::{
    CloseCode, CloseFrame, Message, OpCode, Protocol, ProtocolError, Role, State,
};
use futures_core::Stream;
use futures_sink::Sink;
use http::{HeaderMap, StatusCode};
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::time::Instant;

/// The smallest read; an idle connection's read buffer shrinks to this.
const MIN_READ: usize = 4096;
/// A write queue larger than this is freed once it has been written out.
const KEEP_WRITE_QUEUE: usize = 64 * 1024;

/// What the halves share: the protocol and the writer.
pub(super) struct Shared {
    proto: Mutex<Protocol>,
    writer: ::tokio::sync::Mutex<Writer>,
    pub(super) close_timeout: Duration,
}

struct Writer {
    io: WriteHalf<AsyncStream>,
    /// Encoded bytes not yet written, complete frames in order.
    queue: BytesMut,
    shut_down: bool,
}

impl Shared {
    pub(super) fn proto(&self) -> MutexGuard<'_, Protocol> {
        // A panic while holding the lock cannot leave the protocol half
        // updated in a way that matters more than the panic itself.
        self.proto.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Encodes with `encode` and writes out everything queued.
    pub(super) async fn send_with<F>(&self, encode: F) -> Result<()>
    where
        F: FnOnce(&mut Protocol) -> std::result::Result<(), floodgate_proto::UsageError>,
    {
        let mut writer = self.writer.lock().await;
        if writer.shut_down {
            return Err(ErrorKind::AlreadyClosed.into());
        }
        encode(&mut self.proto())?;
        writer.write_out(self).await
    }

    async fn send_message(&self, message: Message) -> Result<()> {
        match message {
            Message::Close(frame) => self.send_with(|p| p.send_close(frame.as_ref())).await,
            message => self.send_with(|p| p.send(&message)).await,
        }
    }

    /// Writes out what the protocol queued (a pong, a close reply).
    pub(super) async fn flush(&self) -> Result<()> {
        if !self.proto().has_output() {
            return Ok(());
        }
        let mut writer = self.writer.lock().await;
        if writer.shut_down {
            return Ok(());
        }
        writer.write_out(self).await
    }

    /// Writes out what is queued and ends the write side (TLS sends its
    /// close_notify), within `close_timeout`.
    pub(super) async fn shutdown(&self) {
        let mut writer = self.writer.lock().await;
        if writer.shut_down {
            return;
        }
        writer.shut_down = true;
        let _ = ::tokio::time::timeout(self.close_timeout, async {
            let _ = writer.write_out(self).await;
            let _ = writer.io.shutdown().await;
        })
        .await;
    }
}

impl Writer {
    async fn write_out(&mut self, shared: &Shared) -> Result<()> {
        loop {
            {
                let mut proto = shared.proto();
                if proto.has_output() {
                    let out = proto.output();
                    let n = out.len();
                    self.queue.extend_from_slice(out);
                    proto.consume_output(n);
                }
            }
            if self.queue.is_empty() {
                break;
            }
            // `write` (not `write_all`): cancel-safe, so the queue always
            // tells what is still to go.
            match self.io.write(&self.queue).await {
                Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero).into()),
                Ok(n) => self.queue.advance(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.io.flush().await?;
        if self.queue.capacity() > KEEP_WRITE_QUEUE {
            self.queue = BytesMut::new();
        }
        Ok(())
    }
}

/// Why a wait at the end of a connection stopped.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Wait {
    Done,
    Eof,
    TimedOut,
    Failed,
}

/// The receiving state: read half, read buffer, and what was decoded.
pub(super) struct Core {
    pub(super) shared: Arc<Shared>,
    io: ReadHalf<AsyncStream>,
    pub(super) read_buf: BytesMut,
    /// The next read's size: grows while reads fill it, shrinks when
    /// they do not, between [`MIN_READ`] and `max_chunk`.
    chunk: usize,
    max_chunk: usize,
    return_control_frames: bool,
    /// Decoded on the fast path but not a data message: handled first.
    staged: Option<std::result::Result<Option<Message>, ProtocolError>>,
    finished: bool,
}

type RecvFuture = Pin<Box<dyn Future<Output = (Box<Core>, Result<Message>)> + Send>>;

/// A future kept in a half, reached only through `&mut` (`Mutex::get_mut`
/// takes no lock): the `Mutex` only makes the half `Sync`, so that
/// `&Sender` can be held across an `.await` in a spawned task.
type Kept<F> = Mutex<Option<F>>;

fn kept<F>(slot: &mut Kept<F>) -> &mut Option<F> {
    slot.get_mut().unwrap_or_else(|e| e.into_inner())
}

impl Core {
    pub(super) fn max_chunk(&self) -> usize {
        self.max_chunk
    }

    fn decode(&mut self) -> std::result::Result<Option<Message>, ProtocolError> {
        self.shared.proto().read_message(&mut self.read_buf)
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

    /// Reads more bytes into the read buffer.
    pub(super) async fn fill(&mut self) -> Result<()> {
        let needed = {
            let proto = self.shared.proto();
            if self.finished || proto.close_received().is_some() {
                return Err(ErrorKind::AlreadyClosed.into());
            }
            proto.bytes_needed()
        };
        let want = read_size(needed, self.read_buf.len(), self.chunk);
        // An idle connection keeps no large buffer: once everything read
        // has been handed out and reads have become small, let it go.
        if self.read_buf.is_empty() && self.read_buf.capacity() > 2 * want {
            self.read_buf = BytesMut::new();
        }
        self.read_buf.reserve(want);
        match (&mut self.io)
            .take(want as u64)
            .read_buf(&mut self.read_buf)
            .await
        {
            Ok(0) => {
                self.finish().await;
                Err(ErrorKind::AbnormalClosure.into())
            }
            Ok(n) => {
                if n == want && self.chunk < self.max_chunk {
                    self.chunk = (self.chunk * 2).min(self.max_chunk);
                } else if n < self.chunk / 8 {
                    // A small read: the burst is over (or there was none).
                    // Start small again, so that the next `fill` with an
                    // empty buffer lets a large one go.
                    self.chunk = MIN_READ.min(self.max_chunk);
                }
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
            Err(e) => {
                self.finish().await;
                Err(e.into())
            }
        }
    }

    /// The peer closed and its close was answered: wait for the server to
    /// end TCP, then end ours.
    pub(super) async fn on_peer_close(&mut self, frame: Option<CloseFrame>) -> Error {
        tracing::debug!(?frame, "peer closed the WebSocket (async)");
        let deadline = Instant::now() + self.shared.close_timeout;
        let _ = self.shared.flush().await;
        self.wait_for_eof(deadline).await;
        self.finish().await;
        ErrorKind::ConnectionClosed(frame).into()
    }

    /// Fails the connection after a protocol error, as the blocking
    /// `WebSocket` does: send the close the protocol queued, wait briefly
    /// for the server's, end the transport.
    pub(super) async fn fail(&mut self, err: ProtocolError) -> Error {
        if self.finished {
            return ErrorKind::AlreadyClosed.into();
        }
        tracing::debug!(error = %err, code = %err.close_code(), "failing the WebSocket connection (async)");
        self.read_buf.clear();
        if self.shared.flush().await.is_ok() {
            let deadline = Instant::now() + self.shared.close_timeout;
            if self.wait_for_close(deadline).await == Wait::Done {
                self.wait_for_eof(deadline).await;
            }
        }
        self.finish().await;
        ErrorKind::Protocol(err).into()
    }

    /// After our close was sent: wait for the server's close and its end
    /// of TCP, then end ours.
    async fn close_handshake(&mut self, deadline: Instant) -> Result<()> {
        let wait = if self.finished {
            if self.shared.proto().close_received().is_some() {
                Wait::Done
            } else {
                Wait::Eof
            }
        } else {
            let wait = self.wait_for_close(deadline).await;
            if wait == Wait::Done {
                self.wait_for_eof(deadline).await;
            }
            wait
        };
        self.finish().await;
        wait_result(wait)
    }

    /// Reads, skipping data, until the peer's close frame or `deadline`.
    pub(super) async fn wait_for_close(&mut self, deadline: Instant) -> Wait {
        loop {
            match self.shared.proto().discard_until_close(&mut self.read_buf) {
                Ok(true) => return Wait::Done,
                Ok(false) => {}
                Err(_) => return Wait::Failed,
            }
            if let Err(wait) = self.read_before(deadline).await {
                return wait;
            }
        }
    }

    /// Reads and discards until the peer ends the stream or `deadline`.
    pub(super) async fn wait_for_eof(&mut self, deadline: Instant) -> Wait {
        loop {
            self.read_buf.clear();
            if let Err(wait) = self.read_before(deadline).await {
                return wait;
            }
        }
    }

    async fn read_before(&mut self, deadline: Instant) -> std::result::Result<(), Wait> {
        if self.finished {
            return Err(Wait::Eof);
        }
        self.read_buf.reserve(MIN_READ);
        let mut limited = (&mut self.io).take(MIN_READ as u64);
        let read = limited.read_buf(&mut self.read_buf);
        match ::tokio::time::timeout_at(deadline, read).await {
            Err(_) => Err(Wait::TimedOut),
            Ok(Ok(0)) => Err(Wait::Eof),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
            Ok(Err(_)) => Err(Wait::Failed),
        }
    }

    /// Ends the transport for good.
    pub(super) async fn finish(&mut self) {
        if !self.finished {
            self.finished = true;
            self.shared.proto().receive_eof();
            self.read_buf = BytesMut::new();
            self.shared.shutdown().await;
        }
    }
}

fn wait_result(wait: Wait) -> Result<()> {
    match wait {
        Wait::Done => Ok(()),
        Wait::Eof => Err(ErrorKind::AbnormalClosure.into()),
        Wait::TimedOut => {
            Err(ErrorKind::Timeout("waiting for the server's close frame (close_timeout)").into())
        }
        Wait::Failed => Err(ErrorKind::Io(io::Error::other(
            "the transport failed during the close handshake",
        ))
        .into()),
    }
}

// ----- the receive half ------------------------------------------------------

/// The receiving half of an async [`WebSocket`] (from
/// [`WebSocket::split`]); also a [`Stream`] of messages.
///
/// Pings are answered and the peer's close is answered while this half
/// receives: keep calling [`recv`](Self::recv) (or polling the stream), or
/// use the buffered connection, whose reader task does it for you.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> floodgate::Result<()> {
/// # let server = floodgate::server::Server::bind("127.0.0.1:0", floodgate::server::echo)?;
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
    core: Option<Box<Core>>,
    /// A receive that was started and not finished (its caller's future
    /// was dropped, or the stream is being polled).
    in_flight: Kept<RecvFuture>,
    /// The [`Stream`] has ended.
    ended: bool,
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
    /// transport ended or failed. There is no read timeout: wrap the call
    /// in `tokio::time::timeout`.
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
                (core, result)
            }));
        }
        let future = kept(&mut self.in_flight).as_mut().expect("set above");
        let (core, result) = ready!(future.as_mut().poll(cx));
        *kept(&mut self.in_flight) = None;
        self.core = Some(core);
        Poll::Ready(result)
    }

    /// Takes the receiving state back from a receive in flight (whose
    /// result is dropped) before `deadline`; `None` when it is gone.
    async fn core_before(&mut self, deadline: Instant) -> Option<&mut Core> {
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
            Some(core) => !core.finished && core.shared.proto().state() == State::Open,
            // A receive in flight holds the state; it is open unless the
            // receive was given up by a close that timed out.
            None => self.in_flight.lock().map(|f| f.is_some()).unwrap_or(false),
        }
    }
}

impl Stream for Receiver {
    type Item = Result<Message>;

    /// Messages until the close handshake ends the stream; any other error
    /// is yielded once, then the stream ends.
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.ended {
            return Poll::Ready(None);
        }
        match ready!(self.poll_recv(cx)) {
            Ok(message) => Poll::Ready(Some(Ok(message))),
            Err(e) => {
                self.ended = true;
                Poll::Ready(if e.is_closed() { None } else { Some(Err(e)) })
            }
        }
    }
}

// ----- the send half ---------------------------------------------------------

type SendFuture = Pin<Box<dyn Future<Output = Result<()>> + Send>>;

/// The sending half of an async [`WebSocket`]: clone it and send from any
/// task. Frames are written under one lock, in the order their sends took
/// it, so concurrent sends never interleave frames. Also a [`Sink`] of
/// messages.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> floodgate::Result<()> {
/// # let server = floodgate::server::Server::bind("127.0.0.1:0", floodgate::server::echo)?;
/// let (sender, mut receiver) = floodgate::tokio::connect(&server.url()).await?.split();
/// let tasks: Vec<_> = (0..4)
///     .map(|i| {
///         let sender = sender.clone();
///         tokio::spawn(async move { sender.send_binary(&[i; 1000]).await })
///     })
///     .collect();
/// for task in tasks {
///     task.await.expect("the task")?;
/// }
/// for _ in 0..4 {
///     assert_eq!(receiver.recv().await?.len(), 1000);
/// }
/// # Ok(())
/// # }
/// ```
///
/// # Cancel safety
///
/// The send methods are not cancel-safe in the sense that a dropped send
/// may or may not have sent its message; they never corrupt the stream:
/// a frame whose write was cut short is finished by the next send.
pub struct Sender {
    pub(super) shared: Arc<Shared>,
    /// The [`Sink`]'s send in progress.
    sink: Kept<SendFuture>,
    sink_closed: bool,
}

impl Clone for Sender {
    fn clone(&self) -> Sender {
        Sender {
            shared: self.shared.clone(),
            sink: Mutex::new(None),
            sink_closed: false,
        }
    }
}

impl fmt::Debug for Sender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("state", &self.shared.proto().state())
            .finish_non_exhaustive()
    }
}

impl Sender {
    /// Sends a message (text, binary, ping, pong; a `Close` message sends
    /// a close frame, as [`close_with`](Self::close_with)).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Usage`] when the protocol forbids it (e.g. after
    /// close); [`ErrorKind::AlreadyClosed`] once the transport ended; I/O
    /// errors. There is no write timeout: wrap the call in
    /// `tokio::time::timeout`.
    pub async fn send(&self, message: impl Into<Message>) -> Result<()> {
        self.shared.send_message(message.into()).await
    }

    /// Sends a text message.
    ///
    /// # Errors
    ///
    /// As for [`send`](Self::send).
    pub async fn send_text(&self, text: &str) -> Result<()> {
        self.shared.send_with(|p| p.send_text(text)).await
    }

    /// Sends a binary message.
    ///
    /// # Errors
    ///
    /// As for [`send`](Self::send).
    pub async fn send_binary(&self, data: &[u8]) -> Result<()> {
        self.shared.send_with(|p| p.send_binary(data)).await
    }

    /// Sends one raw frame, so a caller can fragment a message (see the
    /// blocking [`crate::WebSocket::send_frame`]). Fragments of one
    /// message must come from one task: another task's message would be
    /// refused in between.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Usage`] for a frame out of sequence or a malformed
    /// control frame; I/O errors.
    pub async fn send_frame(&self, opcode: OpCode, payload: &[u8], fin: bool) -> Result<()> {
        self.shared
            .send_with(|p| p.send_frame(opcode, payload, fin))
            .await
    }

    /// Sends a ping (payload at most 125 bytes).
    ///
    /// # Errors
    ///
    /// As for [`send`](Self::send).
    pub async fn ping(&self, payload: &[u8]) -> Result<()> {
        self.shared.send_with(|p| p.send_ping(payload)).await
    }

    /// Sends a pong (payload at most 125 bytes).
    ///
    /// # Errors
    ///
    /// As for [`send`](Self::send).
    pub async fn pong(&self, payload: &[u8]) -> Result<()> {
        self.shared.send_with(|p| p.send_pong(payload)).await
    }

    /// Sends a close frame with `code` and `reason`. The [`Receiver`]
    /// then sees the server's close: its `recv` returns
    /// [`ErrorKind::ConnectionClosed`] (the stream ends) and it ends the
    /// transport. To close and wait in one call, use
    /// [`WebSocket::close`].
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Usage`] for a code that must not be sent, a reason over
    /// 123 bytes, or a close already sent; I/O errors.
    pub async fn close(&self, code: impl Into<CloseCode>, reason: &str) -> Result<()> {
        self.close_with(Some(CloseFrame::new(code.into(), reason)))
            .await
    }

    /// [`close`](Self::close) with any close frame, or none.
    ///
    /// # Errors
    ///
    /// As for [`close`](Self::close).
    pub async fn close_with(&self, frame: Option<CloseFrame>) -> Result<()> {
        self.shared
            .send_with(|p| p.send_close(frame.as_ref()))
            .await
    }

    /// Whether messages can still be sent.
    pub fn is_open(&self) -> bool {
        self.shared.proto().state() == State::Open
    }

    fn poll_sink(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        if let Some(future) = kept(&mut self.sink).as_mut() {
            let result = ready!(future.as_mut().poll(cx));
            *kept(&mut self.sink) = None;
            result?;
        }
        Poll::Ready(Ok(()))
    }
}

impl Sink<Message> for Sender {
    type Error = Error;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.poll_sink(cx)
    }

    fn start_send(mut self: Pin<&mut Self>, message: Message) -> Result<()> {
        let shared = self.shared.clone();
        *kept(&mut self.sink) = Some(Box::pin(async move { shared.send_message(message).await }));
        Ok(())
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.poll_sink(cx)
    }

    /// Sends a normal close (1000) unless a close was sent already; the
    /// [`Receiver`] sees the server's answer.
    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        ready!(self.poll_sink(cx))?;
        if !self.sink_closed {
            self.sink_closed = true;
            if !self.shared.proto().close_sent() {
                let shared = self.shared.clone();
                *kept(&mut self.sink) = Some(Box::pin(async move {
                    shared
                        .send_with(|p| p.send_close(Some(&CloseFrame::new(CloseCode::NORMAL, ""))))
                        .await
                }));
                return self.poll_sink(cx);
            }
        }
        Poll::Ready(Ok(()))
    }
}

/// A [`WebSocket`] taken apart for the buffered connection.
pub(super) struct CoreParts {
    /// `None` when a close that timed out gave the receive up.
    pub(super) core: Option<Box<Core>>,
    /// The result of a receive that was in flight.
    pub(super) first: Option<Result<Message>>,
    pub(super) sender: Sender,
    pub(super) status: StatusCode,
    pub(super) headers: HeaderMap,
    pub(super) subprotocol: Option<String>,
}

// ----- the connection ---------------------------------------------------------

/// An async WebSocket connection on tokio.
///
/// Made by [`crate::tokio::connect`], [`crate::Client::connect_async`] or
/// [`crate::ClientBuilder::connect_async`], with every option of the
/// blocking client. A [`Stream`] of received messages and a [`Sink`] of
/// messages to send; [`split`](Self::split) gives a [`Receiver`] and a
/// cloneable [`Sender`] for separate tasks.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> floodgate::Result<()> {
/// # let server = floodgate::server::Server::bind("127.0.0.1:0", floodgate::server::echo)?;
/// # let url = server.url();
/// let mut ws = floodgate::tokio::connect(&url).await?;   // "ws://host:port/path"
/// ws.send_text("hello").await?;
/// let reply = ws.recv().await?;                          // pings are answered for you
/// assert_eq!(reply.as_text(), Some("hello"));
/// ws.close(1000, "bye").await?;                          // waits for the server's close
/// # Ok(())
/// # }
/// ```
///
/// Dropping it ends the connection without a close handshake.
pub struct WebSocket {
    receiver: Receiver,
    sender: Sender,
    status: StatusCode,
    headers: HeaderMap,
    subprotocol: Option<String>,
}

impl fmt::Debug for WebSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocket")
            .field("state", &self.state())
            .field("subprotocol", &self.subprotocol)
            .finish_non_exhaustive()
    }
}

impl WebSocket {
    pub(crate) fn new(
        stream: AsyncStream,
        options: &Options,
        read_buf: BytesMut,
        response: Response,
    ) -> WebSocket {
        let mut proto = Protocol::new(Role::Client, options.protocol_config());
        proto.set_deflate(response.deflate);
        let (read, write) = ::tokio::io::split(stream);
        let shared = Arc::new(Shared {
            proto: Mutex::new(proto),
            writer: ::tokio::sync::Mutex::new(Writer {
                io: write,
                queue: BytesMut::new(),
                shut_down: false,
            }),
            close_timeout: options.close_timeout,
        });
        let core = Core {
            shared: shared.clone(),
            io: read,
            read_buf,
            chunk: MIN_READ.min(options.read_chunk_size),
            max_chunk: options.read_chunk_size,
            return_control_frames: options.return_control_frames,
            staged: None,
            finished: false,
        };
        WebSocket {
            receiver: Receiver {
                core: Some(Box::new(core)),
                in_flight: Mutex::new(None),
                ended: false,
            },
            sender: Sender {
                shared,
                sink: Mutex::new(None),
                sink_closed: false,
            },
            status: response.status,
            headers: response.headers,
            subprotocol: response.subprotocol,
        }
    }

    /// Receives the next complete message: see [`Receiver::recv`].
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: no message is lost or received twice when the future
    /// is dropped.
    ///
    /// # Errors
    ///
    /// As for [`Receiver::recv`].
    pub async fn recv(&mut self) -> Result<Message> {
        self.receiver.recv().await
    }

    /// Sends a message: see [`Sender::send`].
    ///
    /// # Errors
    ///
    /// As for [`Sender::send`].
    pub async fn send(&self, message: impl Into<Message>) -> Result<()> {
        self.sender.send(message).await
    }

    /// Sends a text message.
    ///
    /// # Errors
    ///
    /// As for [`Sender::send`].
    pub async fn send_text(&self, text: &str) -> Result<()> {
        self.sender.send_text(text).await
    }

    /// Sends a binary message.
    ///
    /// # Errors
    ///
    /// As for [`Sender::send`].
    pub async fn send_binary(&self, data: &[u8]) -> Result<()> {
        self.sender.send_binary(data).await
    }

    /// Sends one raw frame: see [`Sender::send_frame`].
    ///
    /// # Errors
    ///
    /// As for [`Sender::send_frame`].
    pub async fn send_frame(&self, opcode: OpCode, payload: &[u8], fin: bool) -> Result<()> {
        self.sender.send_frame(opcode, payload, fin).await
    }

    /// Sends a ping (payload at most 125 bytes).
    ///
    /// # Errors
    ///
    /// As for [`Sender::send`].
    pub async fn ping(&self, payload: &[u8]) -> Result<()> {
        self.sender.ping(payload).await
    }

    /// Sends a pong (payload at most 125 bytes).
    ///
    /// # Errors
    ///
    /// As for [`Sender::send`].
    pub async fn pong(&self, payload: &[u8]) -> Result<()> {
        self.sender.pong(payload).await
    }

    /// Closes the connection: sends a close frame with `code` and
    /// `reason`, waits up to `close_timeout` for the server's close
    /// (messages that arrive meanwhile are discarded) and for the server
    /// to end the TCP connection, then shuts the transport down.
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe: dropped half-way, the close frame may be sent with
    /// the wait for the server's answer cut short.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Usage`] for a code that must not be sent or a reason
    /// over 123 bytes (nothing is sent); [`ErrorKind::Timeout`] or
    /// [`ErrorKind::AbnormalClosure`] when the server did not answer with
    /// a close (the transport is shut down all the same);
    /// [`ErrorKind::AlreadyClosed`].
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
        if self.sender.shared.writer.lock().await.shut_down {
            return Err(ErrorKind::AlreadyClosed.into());
        }
        self.sender.close_with(frame).await?;
        let deadline = Instant::now() + self.sender.shared.close_timeout;
        match self.receiver.core_before(deadline).await {
            Some(core) => core.close_handshake(deadline).await,
            None => {
                self.sender.shared.shutdown().await;
                wait_result(Wait::TimedOut)
            }
        }
    }

    /// Takes the receiving state and the sender, for the buffered
    /// connection's reader task.
    ///
    /// A receive that was cancelled is finished first; its message (or
    /// error) is returned with the parts so that nothing is lost.
    pub(super) async fn into_core(self) -> CoreParts {
        let mut receiver = self.receiver;
        let mut first = None;
        if let Some(future) = kept(&mut receiver.in_flight).take() {
            let (core, result) = future.await;
            receiver.core = Some(core);
            first = Some(result);
        }
        CoreParts {
            core: receiver.core.take(),
            first,
            sender: self.sender,
            status: self.status,
            headers: self.headers,
            subprotocol: self.subprotocol,
        }
    }

    pub(super) fn shared(&self) -> &Arc<Shared> {
        &self.sender.shared
    }

    /// Ends the connection at once, without a close handshake (the
    /// server sees the TCP connection end: close code 1006 on its side).
    /// Later calls fail with [`ErrorKind::AlreadyClosed`].
    pub async fn shutdown(&mut self) {
        let deadline = Instant::now() + self.sender.shared.close_timeout;
        match self.receiver.core_before(deadline).await {
            Some(core) => core.finish().await,
            None => self.sender.shared.shutdown().await,
        }
    }

    /// Splits the connection into a cloneable sending half and the
    /// receiving half, for separate tasks.
    pub fn split(self) -> (Sender, Receiver) {
        (self.sender, self.receiver)
    }

    /// The connection state.
    pub fn state(&self) -> State {
        self.sender.shared.proto().state()
    }

    /// Whether messages can still be sent and received.
    pub fn is_open(&self) -> bool {
        self.receiver.is_open()
    }

    /// The subprotocol the server selected.
    pub fn subprotocol(&self) -> Option<&str> {
        self.subprotocol.as_deref()
    }

    /// permessage-deflate as negotiated, or `None`.
    pub fn deflate(&self) -> Option<PerMessageDeflate> {
        self.sender.shared.proto().deflate().cloned()
    }

    /// The handshake status (101).
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The server's handshake response headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }
}

impl Stream for WebSocket {
    type Item = Result<Message>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.receiver).poll_next(cx)
    }
}

impl Sink<Message> for WebSocket {
    type Error = Error;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        Pin::new(&mut self.sender).poll_ready(cx)
    }

    fn start_send(mut self: Pin<&mut Self>, message: Message) -> Result<()> {
        Pin::new(&mut self.sender).start_send(message)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        Pin::new(&mut self.sender).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        Pin::new(&mut self.sender).poll_close(cx)
    }
}

#[cfg(test)]
mod tests {
    use crate::server::{echo, Server};
    use std::time::Duration;

    impl super::Receiver {
        fn read_capacity(&self) -> usize {
            self.core.as_ref().map_or(0, |c| c.read_buf.capacity())
        }
    }

    #[tokio::test]
    async fn an_idle_connection_lets_its_large_read_buffer_go() {
        let server = Server::bind("127.0.0.1:0", echo).unwrap();
        let (sender, mut receiver) = crate::tokio::connect(&server.url()).await.unwrap().split();
        let large = vec![1u8; 4 << 20];
        sender.send_binary(&large).await.unwrap();
        assert_eq!(receiver.recv().await.unwrap().len(), large.len());
        // A small message after the burst, then nothing: the receive that
        // waits holds no more than a small read's room.
        sender.send_text("small").await.unwrap();
        assert_eq!(receiver.recv().await.unwrap().as_text(), Some("small"));
        let waiting = tokio::time::timeout(Duration::from_millis(50), receiver.recv()).await;
        assert!(waiting.is_err(), "nothing was sent");
        // The receive in flight holds the state: finish it with a message.
        sender.send_text("wake").await.unwrap();
        assert_eq!(receiver.recv().await.unwrap().as_text(), Some("wake"));
        assert!(
            receiver.read_capacity() <= 2 * super::MIN_READ,
            "an idle connection holds a {} byte read buffer",
            receiver.read_capacity()
        );
    }
}
