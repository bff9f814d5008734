//! [`WebSocket`]: the server's side of one connection, with blocking calls.
//!
//! One struct drives one [`Protocol`] (in [`Role::Server`]) over one
//! [`Transport`], on the connection's thread. Control frames are handled
//! where they are decoded: pings are answered and the client's close is
//! answered before [`recv`](WebSocket::recv) returns. Closing follows
//! RFC 6455 §7 from the server's side: after the close handshake the
//! server ends the TCP connection first, so it never waits for the client
//! to do so.

use crate::error::{Error, Result, Timeout};
use crate::tls::is_timeout;
use crate::transport::{Stream, Transport};
use bytes::BytesMut;
use floodgate_proto::deflate::PerMessageDeflate;
use floodgate_proto::{
    CloseCode, CloseFrame, Frame, Message, OpCode, Protocol, ProtocolError, State, UsageError,
};
use std::io;
use std::time::{Duration, Instant};

/// The server's side of a WebSocket connection, as a handler receives it
/// (see [`Server::bind`](crate::Server::bind) and [`accept`](crate::accept)).
///
/// Its calls mirror the client's `floodgate::WebSocket`: `recv`, `send*`,
/// `ping`, `close`, `shutdown`. Dropping it ends the TCP connection
/// without a close handshake; call [`close`](Self::close) to end it
/// cleanly.
#[derive(Debug)]
pub struct WebSocket<S = Stream> {
    stream: S,
    proto: Protocol,
    read_buf: BytesMut,
    subprotocol: Option<String>,
    read_chunk_size: usize,
    close_timeout: Duration,
    return_control_frames: bool,
    /// The transport has ended (EOF, shut down, or failed).
    finished: bool,
}

/// A [`WebSocket`] taken apart, for the feed's reader and writer.
pub(crate) struct Parts<S> {
    pub(crate) stream: S,
    pub(crate) proto: Protocol,
    pub(crate) read_buf: BytesMut,
    pub(crate) close_timeout: Duration,
}

/// Why a wait for the client's close stopped.
#[derive(Debug, PartialEq, Eq)]
enum Wait {
    Done,
    Eof,
    TimedOut,
    Failed,
}

impl<S: Transport> WebSocket<S> {
    /// A connection whose handshake is done (`read_buf`: bytes that came
    /// after the upgrade request).
    pub(crate) fn new(
        stream: S,
        proto: Protocol,
        read_buf: BytesMut,
        subprotocol: Option<String>,
        options: &crate::Options,
    ) -> WebSocket<S> {
        WebSocket {
            stream,
            proto,
            read_buf,
            subprotocol,
            read_chunk_size: options.read_chunk_size.max(1),
            close_timeout: options.close_timeout,
            return_control_frames: options.return_control_frames,
            finished: false,
        }
    }

    pub(crate) fn into_parts(self) -> Parts<S> {
        Parts {
            stream: self.stream,
            proto: self.proto,
            read_buf: self.read_buf,
            close_timeout: self.close_timeout,
        }
    }

    // ----- receiving -------------------------------------------------------

    /// Receives the next complete message.
    ///
    /// Pings are answered and skipped, pongs skipped, unless
    /// [`Options::return_control_frames`](crate::Options::return_control_frames)
    /// is set, in which case they (and the client's close) are returned.
    ///
    /// # Errors
    ///
    /// - [`Error::ConnectionClosed`] when the client closed (its close was
    ///   answered and the TCP connection ended), then
    ///   [`Error::AlreadyClosed`];
    /// - [`Error::Timeout`] ([`Timeout::Read`]) when the read timeout
    ///   passed (the connection stays usable);
    /// - [`Error::Protocol`] when the client broke the protocol (the
    ///   connection was failed with the matching close code);
    /// - [`Error::AbnormalClosure`] or [`Error::Io`] when the transport
    ///   ended or failed;
    /// - [`Error::Usage`] when a message begun with
    ///   [`recv_frame`](Self::recv_frame) is not finished.
    pub fn recv(&mut self) -> Result<Message> {
        if self.proto.raw_message_open() {
            return Err(UsageError::BadFragmentSequence(
                "a message begun with recv_frame must be finished with recv_frame",
            )
            .into());
        }
        loop {
            match self.proto.read_message(&mut self.read_buf) {
                Ok(Some(message)) => {
                    // Only control frames queue output (a pong, the answer
                    // to a close): a write error must not cost the data
                    // message just decoded.
                    if message.is_control() && self.proto.has_output() {
                        self.flush_output()?;
                    }
                    match message {
                        Message::Text(_) | Message::Binary(_) => return Ok(message),
                        Message::Close(frame) => {
                            return self.on_client_close(frame).map(Message::Close)
                        }
                        _ if self.return_control_frames => return Ok(message),
                        _ => continue,
                    }
                }
                Ok(None) => self.fill()?,
                Err(err) => return Err(self.fail(err)),
            }
        }
    }

    /// Receives the next frame as it came, without assembling fragments.
    /// Pings are still answered and the close handshake still run.
    ///
    /// # Errors
    ///
    /// As for [`recv`](Self::recv); the client's close is returned as a
    /// frame once, then [`Error::AlreadyClosed`].
    pub fn recv_frame(&mut self) -> Result<Frame> {
        loop {
            match self.proto.read_frame(&mut self.read_buf) {
                Ok(Some(frame)) => {
                    if frame.opcode.is_control() && self.proto.has_output() {
                        self.flush_output()?;
                    }
                    if frame.opcode == OpCode::Close {
                        let close = self.proto.close_received().cloned().flatten();
                        // The frame is returned either way; the close
                        // handshake is complete by now.
                        let _ = self.on_client_close(close);
                    }
                    return Ok(frame);
                }
                Ok(None) => self.fill()?,
                Err(err) => return Err(self.fail(err)),
            }
        }
    }

    /// An iterator over received messages that ends when the connection is
    /// closed by a close handshake, and yields any other error once (a
    /// read timeout leaves it going).
    pub fn messages(&mut self) -> Messages<'_, S> {
        Messages {
            socket: self,
            done: false,
        }
    }

    /// Reads more bytes into the receive buffer.
    fn fill(&mut self) -> Result<()> {
        if self.finished || self.proto.close_received().is_some() {
            return Err(Error::AlreadyClosed);
        }
        let chunk = read_size(
            self.proto.bytes_needed(),
            self.read_buf.len(),
            self.read_chunk_size,
        );
        self.read_buf.reserve(chunk);
        match self.stream.read_into(&mut self.read_buf, chunk) {
            Ok(0) => {
                self.finish();
                Err(Error::AbnormalClosure)
            }
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
            Err(e) if is_timeout(&e) => Err(Error::Timeout(Timeout::Read)),
            Err(e) => {
                self.finish();
                Err(e.into())
            }
        }
    }

    /// The client closed and the protocol answered: end TCP (the server's
    /// part after a close handshake) and report.
    fn on_client_close(&mut self, frame: Option<CloseFrame>) -> Result<Option<CloseFrame>> {
        tracing::debug!(?frame, "the client closed the WebSocket");
        self.finish();
        if self.return_control_frames {
            Ok(frame)
        } else {
            Err(Error::ConnectionClosed(frame))
        }
    }

    /// Fails the connection after a protocol error: send the close the
    /// protocol queued with the error's code, wait briefly for the
    /// client's, and end TCP.
    fn fail(&mut self, err: ProtocolError) -> Error {
        if self.finished {
            // The protocol repeats its error on every call.
            return Error::AlreadyClosed;
        }
        tracing::debug!(error = %err, code = %err.close_code(), "failing the WebSocket connection");
        // What follows a bad frame cannot be trusted to be framed: look for
        // the client's close only in what it sends from now on.
        self.read_buf.clear();
        if self.flush_output().is_ok() {
            let deadline = Instant::now() + self.close_timeout;
            self.wait_for_close(deadline);
        }
        self.finish();
        Error::Protocol(err)
    }

    /// Reads, skipping data, until the client's close frame or `deadline`.
    fn wait_for_close(&mut self, deadline: Instant) -> Wait {
        loop {
            match self.proto.discard_until_close(&mut self.read_buf) {
                Ok(true) => return Wait::Done,
                Ok(false) => {}
                Err(_) => return Wait::Failed,
            }
            if self.finished {
                return Wait::Eof;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || self.stream.set_read_timeout(Some(left)).is_err() {
                return Wait::TimedOut;
            }
            self.read_buf.reserve(4096);
            match self.stream.read_into(&mut self.read_buf, 4096) {
                Ok(0) => return Wait::Eof,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_timeout(&e) => return Wait::TimedOut,
                Err(_) => return Wait::Failed,
            }
        }
    }

    /// Ends the transport for good.
    fn finish(&mut self) {
        if !self.finished {
            self.finished = true;
            self.proto.receive_eof();
            let _ = self.stream.shutdown();
        }
    }

    // ----- sending ---------------------------------------------------------

    /// Sends a message (text, binary, ping, pong; a `Close` message runs
    /// [`close_with`](Self::close_with)).
    ///
    /// # Errors
    ///
    /// [`Error::Usage`] when the protocol forbids it (e.g. after the
    /// close); [`Error::AlreadyClosed`]; I/O errors and
    /// [`Timeout::Write`] (the unsent rest of the frame then goes out first
    /// with the next send).
    pub fn send(&mut self, message: impl Into<Message>) -> Result<()> {
        let message = message.into();
        if let Message::Close(frame) = message {
            return self.close_with(frame);
        }
        self.check_open()?;
        self.proto.send(&message)?;
        self.flush_output()
    }

    /// Sends a text message.
    ///
    /// # Errors
    ///
    /// As for [`send`](Self::send).
    pub fn send_text(&mut self, text: &str) -> Result<()> {
        self.check_open()?;
        self.proto.send_text(text)?;
        self.flush_output()
    }

    /// Sends a binary message.
    ///
    /// # Errors
    ///
    /// As for [`send`](Self::send).
    pub fn send_binary(&mut self, data: &[u8]) -> Result<()> {
        self.check_open()?;
        self.proto.send_binary(data)?;
        self.flush_output()
    }

    /// Sends one raw frame: a `Text` or `Binary` frame with `fin = false`,
    /// then `Continuation` frames, the last with `fin = true`, fragment a
    /// message.
    ///
    /// # Errors
    ///
    /// [`Error::Usage`] for a frame out of sequence or a malformed control
    /// frame; as for [`send`](Self::send).
    pub fn send_frame(&mut self, opcode: OpCode, payload: &[u8], fin: bool) -> Result<()> {
        self.check_open()?;
        self.proto.send_frame(opcode, payload, fin)?;
        self.flush_output()
    }

    /// Sends a ping (payload at most 125 bytes).
    ///
    /// # Errors
    ///
    /// As for [`send`](Self::send).
    pub fn ping(&mut self, payload: &[u8]) -> Result<()> {
        self.check_open()?;
        self.proto.send_ping(payload)?;
        self.flush_output()
    }

    /// Sends a pong (payload at most 125 bytes).
    ///
    /// # Errors
    ///
    /// As for [`send`](Self::send).
    pub fn pong(&mut self, payload: &[u8]) -> Result<()> {
        self.check_open()?;
        self.proto.send_pong(payload)?;
        self.flush_output()
    }

    /// Closes the connection: sends a close frame with `code` and
    /// `reason`, waits up to `close_timeout` for the client's close
    /// (messages that arrive meanwhile are discarded), then ends TCP.
    ///
    /// # Errors
    ///
    /// [`Error::Usage`] for a code that must not be sent or a reason over
    /// 123 bytes (nothing is sent); [`Timeout::Close`] or
    /// [`Error::AbnormalClosure`] when the client did not answer with a
    /// close (the connection is ended all the same);
    /// [`Error::AlreadyClosed`].
    pub fn close(&mut self, code: impl Into<CloseCode>, reason: &str) -> Result<()> {
        self.close_with(Some(CloseFrame::new(code.into(), reason)))
    }

    /// [`close`](Self::close) with any close frame, or none (a close
    /// without status code).
    ///
    /// # Errors
    ///
    /// As for [`close`](Self::close).
    pub fn close_with(&mut self, frame: Option<CloseFrame>) -> Result<()> {
        self.check_open()?;
        self.proto.send_close(frame.as_ref())?;
        let deadline = Instant::now() + self.close_timeout;
        let flushed = self.flush_output();
        let wait = if flushed.is_ok() {
            self.wait_for_close(deadline)
        } else {
            Wait::Failed
        };
        self.finish();
        flushed?;
        match wait {
            Wait::Done => Ok(()),
            Wait::Eof => Err(Error::AbnormalClosure),
            Wait::TimedOut => Err(Error::Timeout(Timeout::Close(self.close_timeout))),
            Wait::Failed => Err(Error::Io(io::Error::other(
                "the connection failed during the close handshake",
            ))),
        }
    }

    /// Drops the connection at once, without a close handshake (the client
    /// sees the TCP connection end: close code 1006 on its side).
    pub fn shutdown(&mut self) {
        self.finish();
    }

    fn check_open(&self) -> Result<()> {
        if self.finished {
            Err(Error::AlreadyClosed)
        } else {
            Ok(())
        }
    }

    /// Writes out everything the protocol has queued; after a write
    /// timeout the unsent rest stays queued for the next write.
    fn flush_output(&mut self) -> Result<()> {
        while self.proto.has_output() {
            match self.stream.write(self.proto.output()) {
                Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero).into()),
                Ok(n) => self.proto.consume_output(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_timeout(&e) => return Err(Error::Timeout(Timeout::Write)),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(self.stream.flush()?)
    }

    // ----- state and parts -------------------------------------------------

    /// The connection state.
    pub fn state(&self) -> State {
        self.proto.state()
    }

    /// Whether messages can still be sent and received.
    pub fn is_open(&self) -> bool {
        !self.finished && self.proto.state() == State::Open
    }

    /// The subprotocol the server selected among the client's offers.
    pub fn subprotocol(&self) -> Option<&str> {
        self.subprotocol.as_deref()
    }

    /// permessage-deflate as accepted, or `None` when the client did not
    /// offer it or [`Options::compression`](crate::Options::compression)
    /// is off.
    pub fn deflate(&self) -> Option<&PerMessageDeflate> {
        self.proto.deflate()
    }

    /// Sets the read timeout (`None`: block).
    ///
    /// # Errors
    ///
    /// An I/O error from the socket (e.g. a zero duration).
    pub fn set_read_timeout(&mut self, timeout: Option<Duration>) -> Result<()> {
        Ok(self.stream.set_read_timeout(timeout)?)
    }

    /// Sets the write timeout (`None`: block).
    ///
    /// # Errors
    ///
    /// An I/O error from the socket (e.g. a zero duration).
    pub fn set_write_timeout(&mut self, timeout: Option<Duration>) -> Result<()> {
        Ok(self.stream.set_write_timeout(timeout)?)
    }

    /// The read timeout.
    ///
    /// # Errors
    ///
    /// An I/O error from the socket.
    pub fn read_timeout(&self) -> Result<Option<Duration>> {
        Ok(self.stream.read_timeout()?)
    }

    /// The transport.
    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    /// The transport, mutably. Reading or writing it directly bypasses the
    /// protocol: tests use it to send what a correct server never would.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.stream
    }

    /// The protocol state machine (for inspection).
    pub fn protocol(&self) -> &Protocol {
        &self.proto
    }
}

/// Iterator returned by [`WebSocket::messages`].
#[derive(Debug)]
pub struct Messages<'a, S: Transport> {
    socket: &'a mut WebSocket<S>,
    done: bool,
}

impl<S: Transport> Iterator for Messages<'_, S> {
    type Item = Result<Message>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.socket.recv() {
            Ok(message) => Some(Ok(message)),
            Err(e) if e.is_timeout() => Some(Err(e)),
            Err(e) => {
                self.done = true;
                if e.is_closed() {
                    None
                } else {
                    Some(Err(e))
                }
            }
        }
    }
}

/// How many bytes to ask of the transport next: a chunk, or more when the
/// frame in progress needs more. Growth towards a large announced frame
/// doubles with what has arrived rather than trusting the header, so
/// memory follows the bytes that arrive, not what a header claims.
pub(crate) fn read_size(needed: usize, buffered: usize, chunk: usize) -> usize {
    let wanted = needed.saturating_sub(buffered);
    wanted.min(buffered.max(chunk)).max(chunk)
}

#[cfg(test)]
mod tests {
    use super::read_size;

    #[test]
    fn reads_grow_with_what_arrived_not_with_what_a_header_announces() {
        let chunk = 64 << 10;
        assert_eq!(read_size(0, 0, chunk), chunk);
        // A header announcing 1 GiB gets a chunk, not a gigabyte.
        assert_eq!(read_size(1 << 30, 10, chunk), chunk);
        // With 1 MiB in, the next read may double it.
        assert_eq!(read_size(1 << 30, 1 << 20, chunk), 1 << 20);
    }
}
