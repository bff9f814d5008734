//! The async connection, [`WebSocket`]: a [`Receiver`] and a [`Sender`]
//! over one protocol (see `receiver.rs` and `sender.rs` for how they
//! share it).

use super::receiver::{kept, Core, Received, Receiver, MIN_READ};
use super::sender::{Handshake, Sender, Shared};
use super::stream::AsyncStream;
use crate::error::{Error, ErrorKind, Result};
use crate::options::Options;
use bytes::BytesMut;
use floodgate_proto::connection::Connection;
use floodgate_proto::deflate::PerMessageDeflate;
use floodgate_proto::handshake::Response;
use floodgate_proto::{CloseCode, CloseFrame, Frame, Message, OpCode, Role, State};
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
/// # let server = floodgate_server::Server::bind("127.0.0.1:0", floodgate_server::echo).unwrap();
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
/// Its methods have the blocking [`crate::WebSocket`]'s names and
/// contracts; where the blocking one has
/// [`messages`](crate::WebSocket::messages), this is a [`Stream`], and the
/// blocking-only timeout setters are left to the caller
/// (`tokio::time::timeout` around the cancel-safe [`recv`](Self::recv)).
///
/// Dropping it ends the connection without a close handshake.
pub struct WebSocket {
    receiver: Receiver,
    sender: Sender,
}

impl fmt::Debug for WebSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocket")
            .field("state", &self.state())
            .field("subprotocol", &self.subprotocol())
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
        let now = std::time::Instant::now();
        let mut conn = Connection::new(
            Role::Client,
            options.protocol_config(),
            options.timeouts(),
            now,
        );
        conn.set_deflate(response.deflate.clone());
        #[cfg(unix)]
        let fd = stream.raw_fd();
        let (read, write) = ::tokio::io::split(stream);
        let shared = Arc::new(Shared::new(
            conn,
            write,
            #[cfg(unix)]
            fd,
            options.close_timeout,
            options.write_timeout,
            Handshake {
                status: response.status,
                headers: response.headers,
                subprotocol: response.subprotocol,
                deflate: response.deflate,
            },
        ));
        let core = Core {
            shared: shared.clone(),
            io: read,
            read_buf,
            chunk: MIN_READ.min(
                options
                    .read_chunk_size
                    .unwrap_or(crate::options::DIRECT_READ_CHUNK),
            ),
            max_chunk: options
                .read_chunk_size
                .unwrap_or(crate::options::DIRECT_READ_CHUNK),
            return_control_frames: options.return_control_frames,
            read_timeout: options.read_timeout,
            raw_open: false,
            staged: None,
            read_at: now,
            finished: false,
            reported: false,
        };
        WebSocket {
            receiver: Receiver {
                shared: shared.clone(),
                core: Some(Box::new(core)),
                in_flight: Mutex::new(None),
                in_flight_frames: false,
                ended: false,
            },
            sender: Sender::new(shared),
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

    /// Receives the next frame as it came, without assembling fragments:
    /// see [`Receiver::recv_frame`].
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: no frame is lost or received twice when the future is
    /// dropped.
    ///
    /// # Errors
    ///
    /// As for [`Receiver::recv_frame`].
    pub async fn recv_frame(&mut self) -> Result<Frame> {
        self.receiver.recv_frame().await
    }

    /// Sends a message (text, binary, ping, pong; a `Close` message runs
    /// [`close_with`](Self::close_with), as the blocking
    /// [`crate::WebSocket::send`] does: hence `&mut self`, since the close
    /// handshake receives).
    ///
    /// # Errors
    ///
    /// As for [`Sender::send`]; for a `Close` message, as for
    /// [`close`](Self::close).
    pub async fn send(&mut self, message: impl Into<Message>) -> Result<()> {
        match message.into() {
            Message::Close(frame) => self.close_with(frame).await,
            message => self.sender.send(message).await,
        }
    }

    super::delegate_sends!(send_text, send_binary, send_all, send_frame, ping, pong);

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
    /// As the blocking [`crate::WebSocket::close`]:
    /// [`ErrorKind::Usage`] for a code that must not be sent or a reason
    /// over 123 bytes (nothing is sent), or when a close was sent already;
    /// [`ErrorKind::Timeout`] or [`ErrorKind::AbnormalClosure`] when the
    /// server did not answer with a close (the transport is shut down all
    /// the same); [`ErrorKind::AlreadyClosed`] once the connection has
    /// ended.
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
        {
            let conn = self.sender.shared.conn();
            if conn.is_finished() {
                return Err(ErrorKind::AlreadyClosed.into());
            }
            if !conn.can_send() {
                return Err(floodgate_proto::UsageError::Closed.into());
            }
        }
        let sent = self.sender.start_close(frame).await;
        if let Err(e) = &sent {
            if matches!(e.kind(), ErrorKind::Usage(_)) {
                return sent;
            }
        }
        let deadline = Instant::now() + self.sender.shared.close_timeout;
        let closed = match self.receiver.core_before(deadline).await {
            Some(core) => core.close_handshake().await,
            None => {
                // The receive in flight did not give the state back in
                // time: the close deadline is over.
                self.sender.shared.kill();
                Err(Error::timeout(
                    crate::error::TimeoutKind::Close,
                    Some(self.sender.shared.close_timeout),
                ))
            }
        };
        sent.and(closed)
    }

    /// Sends a close frame and returns at once, as the blocking
    /// [`crate::WebSocket::start_close`]: the close deadline starts; keep
    /// receiving to see the server's answer (`recv` then returns
    /// [`ErrorKind::ConnectionClosed`]).
    ///
    /// # Errors
    ///
    /// As for [`Sender::start_close`].
    pub async fn start_close(&mut self, frame: Option<CloseFrame>) -> Result<()> {
        self.sender.start_close(frame).await
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
            let (core, received) = future.await;
            first = match received {
                Received::Message(result) => Some(result),
                Received::Frame(result) => message_of(&core, result),
            };
            receiver.core = Some(core);
        }
        CoreParts {
            core: receiver.core.take(),
            first,
            sender: self.sender,
        }
    }

    pub(super) fn shared(&self) -> &Arc<Shared> {
        &self.sender.shared
    }

    /// Ends the connection at once, without a close handshake (the
    /// server sees the TCP connection end: close code 1006 on its side), as
    /// the blocking [`crate::WebSocket::shutdown`]. Later calls fail with
    /// [`ErrorKind::AlreadyClosed`].
    pub async fn shutdown(&mut self) {
        let deadline = Instant::now() + self.sender.shared.close_timeout;
        match self.receiver.core_before(deadline).await {
            Some(core) => core.finish().await,
            None => self.sender.shared.shutdown().await,
        }
    }

    /// Splits the connection into a cloneable sending half and the
    /// receiving half, for separate tasks. [`Receiver::reunite`] (or
    /// [`Sender::reunite`]) puts them back together.
    pub fn split(self) -> (Sender, Receiver) {
        (self.sender, self.receiver)
    }

    /// The connection state.
    pub fn state(&self) -> State {
        self.sender.shared.conn().state()
    }

    /// Whether messages can still be sent and received.
    pub fn is_open(&self) -> bool {
        self.receiver.is_open()
    }

    /// The subprotocol the server selected.
    pub fn subprotocol(&self) -> Option<&str> {
        self.sender.shared.handshake.subprotocol.as_deref()
    }

    /// permessage-deflate as negotiated, or `None` (see the blocking
    /// [`crate::WebSocket::deflate`]).
    pub fn deflate(&self) -> Option<&PerMessageDeflate> {
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

/// A cancelled `recv_frame`'s frame, for the buffered connection: a whole
/// data message goes on as a message; a control frame has been handled (a
/// close ends the connection); the fragment of a message begun with
/// `recv_frame` is refused later by `into_buffered`.
fn message_of(core: &Core, result: Result<Frame>) -> Option<Result<Message>> {
    let frame = match result {
        Ok(frame) => frame,
        Err(e) => return Some(Err(e)),
    };
    match frame.opcode {
        OpCode::Binary if frame.fin => Some(Ok(Message::Binary(frame.payload))),
        // Checked as UTF-8 by the protocol already.
        OpCode::Text if frame.fin => floodgate_proto::Text::try_from(frame.payload)
            .ok()
            .map(|text| Ok(Message::Text(text))),
        OpCode::Close => {
            let close = core
                .shared
                .conn()
                .protocol()
                .close_received()
                .cloned()
                .flatten();
            Some(Err(ErrorKind::ConnectionClosed(close).into()))
        }
        _ => None,
    }
}

// ----- reuniting the halves ---------------------------------------------------

/// The [`Sender`] and [`Receiver`] given to [`Receiver::reunite`] or
/// [`Sender::reunite`] belong to different connections; both are given
/// back, unchanged and usable.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> floodgate::Result<()> {
/// # let server = floodgate_server::Server::bind("127.0.0.1:0", floodgate_server::echo).unwrap();
/// let (sender_a, receiver_a) = floodgate::tokio::connect(&server.url()).await?.split();
/// let (sender_b, receiver_b) = floodgate::tokio::connect(&server.url()).await?.split();
/// let err = receiver_a.reunite(sender_b).unwrap_err();
/// // Take the halves back and pair them right.
/// let (receiver_a, sender_b) = (err.receiver, err.sender);
/// let mut a = receiver_a.reunite(sender_a).expect("one connection");
/// let mut b = receiver_b.reunite(sender_b).expect("one connection");
/// a.send_text("a").await?;
/// assert_eq!(a.recv().await?.as_text(), Some("a"));
/// # b.close(1000, "").await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
#[error(
    "the Sender and the Receiver are halves of different WebSocket connections: \
     reunite a Receiver with a Sender of the same split (both halves are in this error)"
)]
pub struct ReuniteError {
    /// The sending half, as it was given.
    pub sender: Sender,
    /// The receiving half, as it was given.
    pub receiver: Receiver,
}

impl Receiver {
    /// Puts the halves of one connection back together into a
    /// [`WebSocket`], like tokio's `OwnedReadHalf::reunite`.
    ///
    /// `sender` may be any clone of the connection's [`Sender`]. Other
    /// clones stay valid and go on sending on the same connection, in turn
    /// with the reunited `WebSocket` (frames never interleave); a close
    /// sent by any of them closes the connection for all. A receive that
    /// was cancelled stays in flight: the `WebSocket`'s next `recv` (or
    /// `recv_frame`) goes on with it, and so does a send in progress on
    /// the [`Sink`] of `sender`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> floodgate::Result<()> {
    /// # let server = floodgate_server::Server::bind("127.0.0.1:0", floodgate_server::echo).unwrap();
    /// let (sender, receiver) = floodgate::tokio::connect(&server.url()).await?.split();
    /// let mut ws = receiver.reunite(sender).expect("halves of one connection");
    /// ws.send_text("together").await?;
    /// assert_eq!(ws.recv().await?.as_text(), Some("together"));
    /// ws.close(1000, "").await?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`ReuniteError`], which holds both halves, when `sender` is not a
    /// sending half of this connection.
    pub fn reunite(self, sender: Sender) -> std::result::Result<WebSocket, ReuniteError> {
        if Arc::ptr_eq(&self.shared, &sender.shared) {
            Ok(WebSocket {
                receiver: self,
                sender,
            })
        } else {
            Err(ReuniteError {
                sender,
                receiver: self,
            })
        }
    }
}

impl Sender {
    /// Puts the halves of one connection back together: see
    /// [`Receiver::reunite`], which this calls.
    ///
    /// # Errors
    ///
    /// [`ReuniteError`], which holds both halves, when `receiver` is not
    /// the receiving half of this connection.
    pub fn reunite(self, receiver: Receiver) -> std::result::Result<WebSocket, ReuniteError> {
        receiver.reunite(self)
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
    use floodgate_server::{echo, Server};
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
