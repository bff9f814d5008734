//! The write side of an async connection: the state the halves share
//! ([`Shared`]: the protocol and the writer) and the cloneable [`Sender`].
//!
//! One [`Protocol`] per connection, behind a `std::sync::Mutex` that is
//! held only while bytes are decoded or a frame is encoded, never across
//! an `.await`. Writes go through one `tokio::sync::Mutex` around the
//! write half and a queue of encoded bytes: whoever holds it writes out
//! everything queued, in order, so frames from concurrent senders (and
//! the pongs the receiver queues) never interleave, and a write cancelled
//! half-way leaves its rest at the front of the queue for the next writer,
//! not a torn frame.

use super::receiver::{kept, Kept};
use super::stream::AsyncStream;
use crate::error::{Error, ErrorKind, Result, TimeoutKind};
use bytes::{Buf, BytesMut};
use floodgate_proto::{CloseCode, CloseFrame, Message, OpCode, Protocol, State};
use futures_sink::Sink;
use http::{HeaderMap, StatusCode};
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncWriteExt, WriteHalf};

/// A write queue larger than this is freed once it has been written out.
const KEEP_WRITE_QUEUE: usize = 64 * 1024;

/// What the halves share: the protocol, the writer, and what the
/// handshake said (so that halves put back together by
/// [`Receiver::reunite`](super::Receiver::reunite) still know it).
pub(super) struct Shared {
    pub(super) proto: Mutex<Protocol>,
    pub(super) writer: ::tokio::sync::Mutex<Writer>,
    pub(super) close_timeout: Duration,
    /// Bounds each write to the transport, as the blocking client's
    /// `SO_SNDTIMEO` does.
    pub(super) write_timeout: Option<Duration>,
    pub(super) handshake: Handshake,
}

/// The server's answer to the opening handshake.
pub(super) struct Handshake {
    pub(super) status: StatusCode,
    pub(super) headers: HeaderMap,
    pub(super) subprotocol: Option<String>,
}

pub(super) struct Writer {
    pub(super) io: WriteHalf<AsyncStream>,
    /// Encoded bytes not yet written, complete frames in order.
    pub(super) queue: BytesMut,
    pub(super) shut_down: bool,
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

    pub(super) async fn send_message(&self, message: Message) -> Result<()> {
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
            // tells what is still to go, also after a write timeout (the
            // rest goes out first with the next write, as in the
            // blocking client).
            match within(shared.write_timeout, self.io.write(&self.queue)).await? {
                Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero).into()),
                Ok(n) => self.queue.advance(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        within(shared.write_timeout, self.io.flush()).await??;
        if self.queue.capacity() > KEEP_WRITE_QUEUE {
            self.queue = BytesMut::new();
        }
        Ok(())
    }
}

/// Runs one write, bounded by `write_timeout`.
async fn within<F: Future>(write_timeout: Option<Duration>, write: F) -> Result<F::Output> {
    match write_timeout {
        None => Ok(write.await),
        Some(limit) => ::tokio::time::timeout(limit, write)
            .await
            .map_err(|_| Error::timeout(TimeoutKind::Write, Some(limit))),
    }
}

// ----- the send half ---------------------------------------------------------

type SendFuture = Pin<Box<dyn Future<Output = Result<()>> + Send>>;

/// The sending half of an async [`WebSocket`](super::WebSocket): clone it and send from any
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
    pub(super) sink: Kept<SendFuture>,
    pub(super) sink_closed: bool,
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
    /// errors; [`ErrorKind::Timeout`] when a write to the transport took
    /// longer than [`write_timeout`](crate::ClientBuilder::write_timeout)
    /// (the connection stays usable: the unsent rest of the frame goes
    /// out first with the next send).
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

    /// Sends a close frame with `code` and `reason`. The
    /// [`Receiver`](super::Receiver) then sees the server's close: its
    /// `recv` returns [`ErrorKind::ConnectionClosed`] (the stream ends) and
    /// it ends the transport. To close and wait in one call, use
    /// [`WebSocket::close`](super::WebSocket::close).
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
    /// [`Receiver`](super::Receiver) sees the server's answer.
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
