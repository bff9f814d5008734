//! The async connection, [`WebSocket`]: a [`Receiver`] and a [`Sender`]
//! over one protocol (see `receiver.rs` and `sender.rs` for how they
//! share it).

use super::receiver::{kept, wait_result, Core, Receiver, Wait, MIN_READ};
use super::sender::{Sender, Shared, Writer};
use super::stream::AsyncStream;
use crate::config::Options;
use crate::error::{Error, ErrorKind, Result};
use bytes::BytesMut;
use floodgate_proto::deflate::PerMessageDeflate;
use floodgate_proto::handshake::Response;
use floodgate_proto::{CloseCode, CloseFrame, Message, OpCode, Protocol, Role, State};
use futures_core::Stream;
use futures_sink::Sink;
use http::{HeaderMap, StatusCode};
use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::time::Instant;

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

    /// A sending half that stays valid after [`into_buffered`](Self::into_buffered)
    /// (the App's context is made before its reader starts).
    pub(crate) fn sender_clone(&self) -> Sender {
        self.sender.clone()
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
