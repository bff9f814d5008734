//! [`Sender`]: the sending half of a buffered connection, cloneable and
//! usable from any thread.
//!
//! Every frame, whether sent by the application or by the reader (pongs,
//! the answer to a close, the close that fails a connection), is encoded
//! by the connection's one [`Connection`] and written in the order it was
//! encoded (see the [module docs](super) for the two locks), so frames
//! never interleave on the wire and a close is always the last frame sent.

use super::Shared;
use crate::dial::stream::{Stream, Transport};
#[cfg(doc)]
use crate::error::ErrorKind;
use crate::error::Result;
use floodgate_proto::connection::Connection;
use floodgate_proto::{CloseCode, CloseFrame, Message, OpCode, UsageError};
use std::borrow::Borrow;
use std::sync::Arc;

/// Sends on a buffered connection from any thread; cheap to clone.
///
/// ```
/// # let server = floodgate_server::Server::bind("127.0.0.1:0", floodgate_server::echo).unwrap();
/// let mut ws = floodgate::Client::default().connect_buffered(&server.url())?;
/// let sender = ws.sender();
/// let worker = std::thread::spawn(move || sender.send_text("from another thread"));
/// worker.join().unwrap()?;
/// assert_eq!(ws.recv()?.as_text(), Some("from another thread"));
/// ws.close(1000, "")?;
/// # Ok::<(), floodgate::Error>(())
/// ```
///
/// Frames from different threads never interleave. A fragmented message
/// sent with [`send_frame`](Self::send_frame) must come from one thread at a
/// time: a data frame from another thread in the middle is refused with
/// [`ErrorKind::Usage`](crate::ErrorKind::Usage).
#[derive(Debug)]
pub struct Sender<S: Transport = Stream> {
    pub(crate) shared: Arc<Shared<S>>,
}

impl<S: Transport> Clone for Sender<S> {
    fn clone(&self) -> Self {
        Sender {
            shared: self.shared.clone(),
        }
    }
}

impl<S: Transport> Sender<S> {
    fn with_writer(
        &self,
        encode: impl FnOnce(&mut Connection) -> std::result::Result<(), UsageError>,
    ) -> Result<()> {
        self.shared.send_with(encode)
    }

    /// Sends a message (a `Close` message runs [`close_with`](Self::close_with)).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::AlreadyClosed`] once the connection has ended;
    /// [`ErrorKind::Usage`] after a close was sent; I/O errors and write
    /// timeouts. For a `Close` message, as for [`close`](Self::close).
    pub fn send(&self, message: impl Into<Message>) -> Result<()> {
        let message = message.into();
        if let Message::Close(frame) = message {
            return self.close_with(frame);
        }
        tracing::trace!(
            len = message.len(),
            text = message.as_text().is_some(),
            "sending a message"
        );
        match &message {
            Message::Text(text) => self.shared.send_data(OpCode::Text, text.as_bytes()),
            Message::Binary(data) => self.shared.send_data(OpCode::Binary, data),
            message => self.with_writer(|p| p.send(message)),
        }
    }

    /// Sends several messages with one write: each is encoded after the
    /// other under the writer's lock and the lot is written together, so
    /// they reach the peer in order, with nothing from another thread in
    /// between, for one system call instead of one per message. A `Close`
    /// message ends the batch: what came before it is written, then the
    /// connection is closed as by [`close_with`](Self::close_with).
    /// Messages are taken owned or borrowed: `send_all(&batch)` encodes a
    /// slice of messages where they are, without cloning them.
    ///
    /// ```
    /// # let server = floodgate_server::Server::bind("127.0.0.1:0", floodgate_server::echo).unwrap();
    /// use floodgate::Message;
    /// let mut ws = floodgate::Client::default().connect_buffered(&server.url())?;
    /// ws.sender().send_all(["one", "two", "three"].map(Message::text))?;
    /// let batch = ws.recv_batch(3, std::time::Duration::from_secs(5))?;
    /// # let mut batch = batch; while batch.len() < 3 { batch.push(ws.recv()?); }
    /// assert_eq!(batch[2].as_text(), Some("three"));
    /// ws.close(1000, "")?;
    /// # Ok::<(), floodgate::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As for [`send`](Self::send); when a message is refused (a control
    /// payload over 125 bytes), the messages before it are still written.
    pub fn send_all<I>(&self, messages: I) -> Result<()>
    where
        I: IntoIterator,
        I::Item: Borrow<Message>,
    {
        let mut close = None;
        let mut refused = None;
        let mut count = 0usize;
        let written = self.shared.send_with(|conn| {
            for message in messages {
                let message = message.borrow();
                if let Message::Close(frame) = message {
                    close = Some(frame.clone());
                    break;
                }
                if let Err(e) = conn.send(message) {
                    refused = Some(e);
                    break;
                }
                count += 1;
            }
            Ok(())
        });
        tracing::trace!(count, "sent a batch of messages");
        written?;
        if let Some(e) = refused {
            return Err(e.into());
        }
        match close {
            Some(frame) => self.close_with(frame),
            None => Ok(()),
        }
    }

    /// Sends a text message.
    ///
    /// # Errors
    ///
    /// As for [`send`](Self::send).
    pub fn send_text(&self, text: &str) -> Result<()> {
        tracing::trace!(len = text.len(), "sending a text message");
        self.shared.send_data(OpCode::Text, text.as_bytes())
    }

    /// Sends a binary message.
    ///
    /// # Errors
    ///
    /// As for [`send`](Self::send).
    pub fn send_binary(&self, data: &[u8]) -> Result<()> {
        tracing::trace!(len = data.len(), "sending a binary message");
        self.shared.send_data(OpCode::Binary, data)
    }

    /// Sends one raw frame (see [`crate::WebSocket::send_frame`]).
    ///
    /// # Errors
    ///
    /// As for [`send`](Self::send); [`ErrorKind::Usage`](crate::ErrorKind::Usage) for a frame out of
    /// sequence.
    pub fn send_frame(&self, opcode: OpCode, payload: &[u8], fin: bool) -> Result<()> {
        tracing::trace!(?opcode, len = payload.len(), fin, "sending a frame");
        self.with_writer(|p| p.send_frame(opcode, payload, fin))
    }

    /// Sends a ping (payload at most 125 bytes).
    ///
    /// # Errors
    ///
    /// As for [`send`](Self::send).
    pub fn ping(&self, payload: &[u8]) -> Result<()> {
        tracing::trace!(len = payload.len(), "sending a ping");
        self.with_writer(|p| p.send_ping(payload))
    }

    /// Sends a pong (payload at most 125 bytes).
    ///
    /// # Errors
    ///
    /// As for [`send`](Self::send).
    pub fn pong(&self, payload: &[u8]) -> Result<()> {
        tracing::trace!(len = payload.len(), "sending a pong");
        self.with_writer(|p| p.send_pong(payload))
    }

    /// Closes the connection: sends a close frame with `code` and `reason`
    /// and waits up to `close_timeout` for the server's close (read by the
    /// reader thread); see [`crate::BufferedWebSocket::close`]. The same
    /// contract as the async `floodgate::tokio::Sender::close`;
    /// [`start_close`](Self::start_close) sends and returns.
    ///
    /// # Errors
    ///
    /// As for [`crate::BufferedWebSocket::close`].
    pub fn close(&self, code: impl Into<CloseCode>, reason: &str) -> Result<()> {
        self.close_with(Some(CloseFrame::new(code.into(), reason)))
    }

    /// [`close`](Self::close) with any close frame, or none.
    ///
    /// # Errors
    ///
    /// As for [`crate::BufferedWebSocket::close`].
    pub fn close_with(&self, frame: Option<CloseFrame>) -> Result<()> {
        self.shared.close(frame)
    }

    /// Starts the close handshake and returns at once: the close frame is
    /// sent, the reader stops waiting for room, and it completes the
    /// handshake when the server answers; the consumer then gets
    /// [`ErrorKind::ConnectionClosed`](crate::ErrorKind::ConnectionClosed) after the buffered messages. Unlike
    /// [`close_with`](Self::close_with) it never waits, so it may be called
    /// from any thread, the reader's callbacks included. The connection's
    /// close deadline (`close_timeout`) still bounds the server's answer:
    /// the reader ends the connection when it passes. The same contract as
    /// the async `floodgate::tokio::Sender::start_close`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Usage`] for a code or reason that must not be sent
    /// (nothing is sent), or when a close was sent already;
    /// [`ErrorKind::AlreadyClosed`] once the connection has ended.
    pub fn start_close(&self, frame: Option<CloseFrame>) -> Result<()> {
        self.shared.send_close(frame)
    }

    /// Drops the connection at once, without a close handshake (what to do
    /// with a connection found dead, e.g. no pong in time): the reader
    /// stops, messages already buffered stay readable, and the consumer
    /// then gets [`ErrorKind::AbnormalClosure`]. It never waits.
    pub fn shutdown(&self) {
        tracing::debug!("shutting the connection down without a close handshake");
        self.shared.end_transport();
    }

    /// Whether the connection is open: no close sent or received, and the
    /// transport alive.
    pub fn is_open(&self) -> bool {
        let core = self.shared.core();
        !core.ended && core.conn.can_send() && !self.shared.buffer.is_finished()
    }
}
