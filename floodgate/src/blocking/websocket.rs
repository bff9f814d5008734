//! [`WebSocket`]: the low-level blocking connection.
//!
//! One struct drives one [`Protocol`] over one [`Transport`]. The receive
//! path reads large chunks (256 KiB by default) into a single `BytesMut`
//! and decodes as many frames as each read holds; a message that arrived in
//! one frame is handed out as a slice of that buffer, not a copy. The send
//! path encodes header and masked payload into one buffer and writes it
//! with one `write` call in the common case.
//!
//! Control frames are handled where they are decoded: pings are answered
//! and the peer's close is answered before `recv` returns, whatever the
//! caller does next.
//!
//! The lifecycle (closing, failing, keepalive, deadlines) is the core's:
//! one [`Connection`] of `floodgate-proto` decides, and this is the loop
//! that reads, feeds it, writes what it queued, and sets the socket's
//! timeouts so that a blocking read or write wakes at its next deadline
//! ([`Connection::poll_timeout`]).

use crate::blocking::buffered::BufferedWebSocket;
use crate::buffer::BufferConfig;
use crate::dial::stream::{Stream, Transport};
use crate::error::{Error, ErrorKind, Result, TimeoutKind};
use crate::ingest::read_size;
use crate::lifecycle::{self, earliest, ArmedTimeout};
use crate::options::Options;
use bytes::BytesMut;
use floodgate_proto::connection::{Connection, End};
use floodgate_proto::deflate::PerMessageDeflate;
use floodgate_proto::{
    CloseCode, CloseFrame, Frame, Message, OpCode, Protocol, ProtocolError, Role, State, UsageError,
};
use http::{HeaderMap, StatusCode};
use std::borrow::Borrow;
use std::io;
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

/// A WebSocket connection with blocking calls.
///
/// Made by [`crate::connect`] or [`crate::Client::connect`]. `S` is the
/// transport; the default, [`Stream`], is what `connect` returns.
///
/// ```no_run
/// let mut ws = floodgate::connect("ws://127.0.0.1:9001/echo")?;
/// ws.send_text("hello")?;
/// let reply = ws.recv()?;
/// println!("{}", reply.as_text().unwrap_or("<binary>"));
/// ws.close(1000, "done")?;
/// # Ok::<(), floodgate::Error>(())
/// ```
///
/// Its timers (keepalive pings and their pong deadline, the close and
/// idle deadlines, see [`ClientBuilder::ping_interval`](crate::ClientBuilder::ping_interval))
/// run while the application is inside one of its calls: `recv` wakes for
/// them, and a send blocked on a full socket still ends the connection
/// when the pong deadline passes. Between calls nothing runs; the
/// buffered connection ([`crate::BufferedWebSocket`]) keeps them on its
/// reader thread instead.
///
/// Dropping a `WebSocket` closes the socket without a close handshake; call
/// [`close`](Self::close) to end it cleanly.
#[derive(Debug)]
pub struct WebSocket<S = Stream> {
    stream: S,
    /// `pub(crate)` for the handshake in `connect.rs`, which sets the
    /// negotiated permessage-deflate.
    pub(crate) conn: Connection,
    read_buf: BytesMut,
    status: StatusCode,
    headers: HeaderMap,
    subprotocol: Option<String>,
    /// The read size chosen in the options, if any (`None`: the direct
    /// connection's default; a buffered connection made from this one has
    /// its own).
    read_chunk_size: Option<usize>,
    return_control_frames: bool,
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
    /// `SO_RCVTIMEO` / `SO_SNDTIMEO` as last set.
    armed_read: ArmedTimeout,
    armed_write: ArmedTimeout,
    /// When the last read returned: the time of the bytes being decoded.
    read_at: Instant,
    /// The transport has been shut down.
    finished: bool,
    /// The connection's end was reported to the caller: later calls get
    /// `AlreadyClosed`.
    reported: bool,
}

/// A [`WebSocket`] taken apart (see [`WebSocket::into_parts`]).
#[derive(Debug)]
pub(crate) struct Parts<S> {
    pub(crate) stream: S,
    pub(crate) conn: Connection,
    pub(crate) read_buf: BytesMut,
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) subprotocol: Option<String>,
    /// As chosen in the options (`None`: the default of what is built).
    pub(crate) read_chunk_size: Option<usize>,
    pub(crate) write_timeout: Option<Duration>,
    pub(crate) finished: bool,
}

impl<S: Transport> WebSocket<S> {
    /// A connection whose handshake is done (`buf`: bytes already read past
    /// the handshake).
    pub(crate) fn from_parts(
        stream: S,
        role: Role,
        options: &Options,
        buf: BytesMut,
        status: StatusCode,
        headers: HeaderMap,
        subprotocol: Option<String>,
    ) -> WebSocket<S> {
        let now = Instant::now();
        WebSocket {
            stream,
            conn: Connection::new(role, options.protocol_config(), options.timeouts(), now),
            read_buf: buf,
            status,
            headers,
            subprotocol,
            read_chunk_size: options.read_chunk_size,
            return_control_frames: options.return_control_frames,
            read_timeout: options.read_timeout,
            write_timeout: options.write_timeout,
            armed_read: ArmedTimeout::default(),
            armed_write: ArmedTimeout::default(),
            read_at: now,
            finished: false,
            reported: false,
        }
    }

    /// Takes the connection apart, for the buffered connection's reader
    /// and writers.
    pub(crate) fn into_parts(self) -> Parts<S> {
        Parts {
            stream: self.stream,
            conn: self.conn,
            read_buf: self.read_buf,
            status: self.status,
            headers: self.headers,
            subprotocol: self.subprotocol,
            read_chunk_size: self.read_chunk_size,
            write_timeout: self.write_timeout,
            finished: self.finished,
        }
    }

    // ----- receiving -------------------------------------------------------

    /// Receives the next complete message.
    ///
    /// Pings are answered and skipped, pongs skipped, unless the connection
    /// was built with `return_control_frames(true)`, in which case they (and
    /// the peer's close) are returned as messages.
    ///
    /// # Errors
    ///
    /// - [`ErrorKind::ConnectionClosed`] when the peer closed (its close was
    ///   answered; the frame is in the error), then
    ///   [`ErrorKind::AlreadyClosed`] on later calls;
    /// - [`ErrorKind::Timeout`] when the read timeout passed (the connection
    ///   stays usable: a partly received frame is kept);
    /// - [`ErrorKind::Protocol`] when the server broke the protocol: the
    ///   connection was failed with the matching close code, and the error
    ///   comes as soon as the server answered that close, or after
    ///   [`fail_grace`](crate::ClientBuilder::fail_grace) (50 ms) at most;
    /// - a pong timeout ([`TimeoutKind::Pong`](crate::TimeoutKind::Pong)) when a keepalive ping went unanswered;
    /// - [`ErrorKind::AbnormalClosure`] or [`ErrorKind::Io`] when the
    ///   transport ended or failed;
    /// - [`ErrorKind::Usage`] when a fragmented message was begun with
    ///   [`recv_frame`](Self::recv_frame) and is not finished.
    #[inline]
    pub fn recv(&mut self) -> Result<Message> {
        if self.conn.raw_message_open() {
            return Err(UsageError::BadFragmentSequence(
                "a message begun with recv_frame must be finished with recv_frame",
            )
            .into());
        }
        loop {
            match self.conn.read_message(&mut self.read_buf, self.read_at) {
                Ok(Some(message)) => {
                    // Only control frames queue output (a pong, the answer
                    // to a close). The rest of a send that timed out waits
                    // for the next send: a write error here must not cost
                    // the data message just decoded.
                    if message.is_control() && self.conn.has_output() {
                        self.flush_output()?;
                    }
                    match message {
                        Message::Text(_) | Message::Binary(_) => return Ok(message),
                        Message::Close(frame) => {
                            return self.on_peer_close(frame).map(Message::Close)
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

    /// Receives the next frame as it came, without assembling fragments:
    /// data fragments, pings, pongs and the close. Pings are still answered
    /// and the close handshake still run.
    ///
    /// # Errors
    ///
    /// As for [`recv`](Self::recv); the peer's close is returned as a frame
    /// once, then [`ErrorKind::AlreadyClosed`].
    pub fn recv_frame(&mut self) -> Result<Frame> {
        loop {
            match self.conn.read_frame(&mut self.read_buf, self.read_at) {
                Ok(Some(frame)) => {
                    // As in `recv`: a data frame is never lost to a write error.
                    if frame.opcode.is_control() && self.conn.has_output() {
                        self.flush_output()?;
                    }
                    if frame.opcode == OpCode::Close {
                        let close = self.conn.protocol().close_received().cloned().flatten();
                        // The frame is returned either way; the close
                        // handshake has been completed by now.
                        let _ = self.on_peer_close(close);
                        self.reported = true;
                    }
                    return Ok(frame);
                }
                Ok(None) => self.fill()?,
                Err(err) => return Err(self.fail(err)),
            }
        }
    }

    /// An iterator over received messages that ends when the connection is
    /// closed by a close handshake, and yields any other error once.
    ///
    /// ```no_run
    /// let mut ws = floodgate::connect("ws://127.0.0.1:9001/feed")?;
    /// let mut total = 0;
    /// for message in ws.messages() {
    ///     total += message?.len();
    /// }
    /// println!("{total} bytes until the server closed");
    /// # Ok::<(), floodgate::Error>(())
    /// ```
    pub fn messages(&mut self) -> Messages<'_, S> {
        Messages {
            socket: self,
            done: false,
        }
    }

    /// Reads more bytes into the receive buffer, waking for the
    /// connection's deadlines on the way.
    fn fill(&mut self) -> Result<()> {
        if self.finished || self.conn.is_discarding() && self.conn.end().is_some() && self.reported
        {
            return Err(ErrorKind::AlreadyClosed.into());
        }
        let user_deadline = self.read_timeout.map(|t| Instant::now() + t);
        loop {
            let now = self.tick()?;
            let deadline = earliest(self.conn.poll_timeout(), user_deadline);
            if user_deadline.is_some_and(|d| now >= d) {
                return Err(Error::timeout(TimeoutKind::Read, self.read_timeout));
            }
            if let Some(timeout) = self.armed_read.update(deadline, now) {
                self.stream.set_read_timeout(timeout)?;
            }
            let chunk = read_size(
                self.conn.bytes_needed(),
                self.read_buf.len(),
                self.read_chunk_size
                    .unwrap_or(crate::options::DIRECT_READ_CHUNK),
            );
            self.read_buf.reserve(chunk);
            // Read at most one chunk even when `reserve` left more room:
            // reads that stay within the CPU's L2 cache are measurably
            // faster for large messages than reads of the whole spare
            // capacity.
            let read = self.stream.read_into(&mut self.read_buf, chunk);
            self.read_at = Instant::now();
            match read {
                Ok(0) => {
                    self.conn.receive_eof(self.read_at);
                    return Err(self.end_error());
                }
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // A deadline (the core's or the read timeout): next turn.
                Err(e) if is_timeout(&e) => {}
                Err(e) => {
                    self.conn.receive_eof(self.read_at);
                    self.finish();
                    self.reported = true;
                    return Err(e.into());
                }
            }
        }
    }

    /// Runs the deadlines that have passed and writes what they queued (a
    /// keepalive ping); the error of a connection they ended.
    fn tick(&mut self) -> Result<Instant> {
        let now = Instant::now();
        if self.conn.poll_timeout().is_some_and(|t| now >= t) {
            self.conn.handle_timeout(now);
            // A ping may have been queued. Output that was there already
            // (the rest of a send that timed out) waits for the next send
            // as documented; a ping goes behind it either way, and a write
            // timeout here must not cost the caller its `recv`.
            if self.conn.has_output() && !self.conn.is_finished() {
                if let Err(e) = self.flush_output() {
                    if !e.is_timeout() {
                        return Err(e);
                    }
                }
            }
        }
        if self.conn.is_finished() {
            return Err(self.end_error());
        }
        Ok(now)
    }

    /// The error for the connection's end, once; `AlreadyClosed` after.
    fn end_error(&mut self) -> Error {
        self.finish();
        if std::mem::replace(&mut self.reported, true) {
            return ErrorKind::AlreadyClosed.into();
        }
        match self.conn.end() {
            Some(end) => lifecycle::error_of(end),
            None => ErrorKind::AbnormalClosure.into(),
        }
    }

    /// Reads (skipping what arrives) until the lifecycle is over: the
    /// peer's close and end of transport, or the deadline the core set.
    fn drive_to_end(&mut self) {
        while !self.finished {
            let now = Instant::now();
            self.conn.handle_timeout(now);
            if self.conn.has_output() && !self.conn.is_finished() && self.flush_output().is_err() {
                break;
            }
            if self.conn.is_finished() {
                break;
            }
            if let Some(timeout) = self.armed_read.update(self.conn.poll_timeout(), now) {
                if self.stream.set_read_timeout(timeout).is_err() {
                    break;
                }
            }
            self.read_buf.reserve(4096);
            let read = self.stream.read_into(&mut self.read_buf, 4096);
            self.read_at = Instant::now();
            match read {
                Ok(0) => self.conn.receive_eof(self.read_at),
                Ok(_) => {
                    let skipped = self.conn.read(&mut self.read_buf, self.read_at, |_| {
                        ControlFlow::<()>::Continue(())
                    });
                    // A protocol error while closing fails the connection:
                    // the core lingers for its grace, this loop with it.
                    let _ = skipped;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted || is_timeout(&e) => {}
                Err(_) => self.conn.receive_eof(self.read_at),
            }
        }
        self.finish();
    }

    /// The peer closed: its close was answered by the protocol; end the
    /// transport the RFC way (a client lets the server end TCP, within the
    /// close timeout) and report.
    fn on_peer_close(&mut self, frame: Option<CloseFrame>) -> Result<Option<CloseFrame>> {
        tracing::debug!(?frame, "peer closed the WebSocket");
        self.drive_to_end();
        self.reported = true;
        if self.return_control_frames {
            Ok(frame)
        } else {
            Err(ErrorKind::ConnectionClosed(frame).into())
        }
    }

    /// Fails the connection after a protocol error: the core queued a
    /// close with the error's code; send it, give the server
    /// `fail_grace` to answer, drop the transport.
    fn fail(&mut self, err: ProtocolError) -> Error {
        if self.reported {
            // The protocol repeats its error on every call; the connection
            // was failed (or ended) already, and says so from then on.
            return ErrorKind::AlreadyClosed.into();
        }
        self.drive_to_end();
        self.reported = true;
        ErrorKind::Protocol(err).into()
    }

    /// Ends the transport for good.
    fn finish(&mut self) {
        if !self.finished {
            self.finished = true;
            if !self.conn.is_finished() {
                self.conn.shutdown();
            }
            let _ = self.stream.shutdown();
        }
    }

    // ----- sending ---------------------------------------------------------

    /// Sends a message (text, binary, ping, pong; a `Close` message runs
    /// [`close_with`](Self::close_with)).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Usage`] when the protocol forbids it (e.g. after close);
    /// I/O errors and write timeouts. After a write timeout the unsent rest
    /// of the frame stays queued and goes out first with the next send.
    pub fn send(&mut self, message: impl Into<Message>) -> Result<()> {
        let message = message.into();
        if let Message::Close(frame) = message {
            return self.close_with(frame);
        }
        self.check_open()?;
        self.queue(&message)?;
        self.flush_output()
    }

    /// Queues one message for the next flush; a large data message is
    /// written now, in pieces (see [`send_in_pieces`](Self::send_in_pieces)),
    /// with whatever was queued before it.
    fn queue(&mut self, message: &Message) -> Result<()> {
        let (opcode, payload) = match message {
            Message::Text(t) => (OpCode::Text, t.as_bytes()),
            Message::Binary(b) => (OpCode::Binary, &b[..]),
            _ => return Ok(self.conn.send(message)?),
        };
        if let Some(piece) = self.conn.write_piece(payload.len()) {
            return self.send_in_pieces(opcode, payload, piece);
        }
        Ok(self.conn.send_frame(opcode, payload, true)?)
    }

    /// Sends a large data message as one frame masked and written `piece`
    /// bytes at a time (see [`Connection::write_piece`]): each piece is
    /// still in the cache when the kernel copies it. A keepalive ping due
    /// meanwhile goes out right after the frame.
    fn send_in_pieces(&mut self, opcode: OpCode, payload: &[u8], piece: usize) -> Result<()> {
        self.conn.start_frame(opcode, payload.len(), true)?;
        let mut given = 0;
        while given < payload.len() {
            let end = (given + piece).min(payload.len());
            self.conn.frame_data(&payload[given..end])?;
            given = end;
            if let Err(e) = self.flush_output() {
                // The frame is made whole in the output whatever happened:
                // after a write timeout its unsent rest goes out first with
                // the next send, as for any message.
                self.conn.frame_data(&payload[given..])?;
                return Err(e);
            }
        }
        Ok(())
    }

    /// Sends several messages with one write: each is encoded after the
    /// other, then the lot is written together, so a run of small messages
    /// costs one system call instead of one per message. The same as the
    /// buffered connection's [`Sender::send_all`](crate::Sender::send_all).
    /// A `Close` message ends the batch: what came before it is written,
    /// then the connection is closed as by [`close_with`](Self::close_with).
    ///
    /// Messages are taken owned or borrowed: `send_all(&batch)` encodes a
    /// slice of messages where they are, without cloning them (sending the
    /// same messages to many connections, or again).
    ///
    /// ```
    /// # let server = floodgate_server::Server::bind("127.0.0.1:0", floodgate_server::echo).unwrap();
    /// use floodgate::Message;
    /// let mut ws = floodgate::connect(&server.url())?;
    /// ws.send_all((0..3).map(|i| Message::binary(vec![i; 16])))?;
    /// for i in 0..3 {
    ///     assert_eq!(ws.recv()?.as_bytes(), &[i; 16]);
    /// }
    /// let batch = vec![Message::text("kept"), Message::binary(&b"too"[..])];
    /// ws.send_all(&batch)?;
    /// assert_eq!(ws.recv()?, batch[0]);
    /// # Ok::<(), floodgate::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As for [`send`](Self::send); when a message is refused (a control
    /// payload over 125 bytes), the messages before it are still written.
    pub fn send_all<I>(&mut self, messages: I) -> Result<()>
    where
        I: IntoIterator,
        I::Item: Borrow<Message>,
    {
        self.check_open()?;
        let mut close = None;
        let mut refused = None;
        for message in messages {
            match message.borrow() {
                Message::Close(frame) => {
                    close = Some(frame.clone());
                    break;
                }
                message => match self.queue(message) {
                    Ok(()) => {}
                    // Refused: what came before it is still written.
                    Err(e) if matches!(e.kind(), ErrorKind::Usage(_)) => {
                        refused = Some(e);
                        break;
                    }
                    // A large message written in pieces failed to write.
                    Err(e) => return Err(e),
                },
            }
        }
        self.flush_output()?;
        if let Some(e) = refused {
            return Err(e);
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
    pub fn send_text(&mut self, text: &str) -> Result<()> {
        self.check_open()?;
        if let Some(piece) = self.conn.write_piece(text.len()) {
            return self.send_in_pieces(OpCode::Text, text.as_bytes(), piece);
        }
        self.conn.send_text(text)?;
        self.flush_output()
    }

    /// Sends a binary message.
    ///
    /// # Errors
    ///
    /// As for [`send`](Self::send).
    pub fn send_binary(&mut self, data: &[u8]) -> Result<()> {
        self.check_open()?;
        if let Some(piece) = self.conn.write_piece(data.len()) {
            return self.send_in_pieces(OpCode::Binary, data, piece);
        }
        self.conn.send_binary(data)?;
        self.flush_output()
    }

    /// Sends one raw frame, so a caller can fragment a message: a `Text` or
    /// `Binary` frame with `fin = false`, then `Continuation` frames, the
    /// last with `fin = true`.
    ///
    /// ```no_run
    /// use floodgate::OpCode;
    /// let mut ws = floodgate::connect("ws://127.0.0.1:9001/")?;
    /// ws.send_frame(OpCode::Text, b"hel", false)?;
    /// ws.send_frame(OpCode::Continuation, b"lo", true)?;
    /// # Ok::<(), floodgate::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Usage`] for a frame out of sequence or a malformed
    /// control frame; I/O errors.
    pub fn send_frame(&mut self, opcode: OpCode, payload: &[u8], fin: bool) -> Result<()> {
        self.check_open()?;
        self.conn.send_frame(opcode, payload, fin)?;
        self.flush_output()
    }

    /// Sends a ping (payload at most 125 bytes).
    ///
    /// # Errors
    ///
    /// As for [`send`](Self::send).
    pub fn ping(&mut self, payload: &[u8]) -> Result<()> {
        self.check_open()?;
        self.conn.send_ping(payload)?;
        self.flush_output()
    }

    /// Sends a pong (payload at most 125 bytes); unsolicited pongs serve as
    /// one-way heartbeats.
    ///
    /// # Errors
    ///
    /// As for [`send`](Self::send).
    pub fn pong(&mut self, payload: &[u8]) -> Result<()> {
        self.check_open()?;
        self.conn.send_pong(payload)?;
        self.flush_output()
    }

    /// Closes the connection: sends a close frame with `code` and `reason`,
    /// waits up to `close_timeout` for the server's close (messages that
    /// arrive meanwhile are discarded) and for the server to end the TCP
    /// connection, then shuts the socket down.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Usage`] for a code that must not be sent or a reason
    /// over 123 bytes (nothing is sent), or when a close was sent already;
    /// [`ErrorKind::Timeout`] or [`ErrorKind::AbnormalClosure`] when the
    /// server did not answer with a close (the socket is shut down all the
    /// same); [`ErrorKind::AlreadyClosed`] once the connection has ended.
    pub fn close(&mut self, code: impl Into<CloseCode>, reason: &str) -> Result<()> {
        self.close_with(Some(CloseFrame::new(code.into(), reason)))
    }

    /// [`close`](Self::close) with any close frame, or none (a close without
    /// status code).
    ///
    /// # Errors
    ///
    /// As for [`close`](Self::close).
    pub fn close_with(&mut self, frame: Option<CloseFrame>) -> Result<()> {
        self.check_open()?;
        if !self.conn.can_send() {
            return Err(UsageError::Closed.into());
        }
        self.conn.close(frame.as_ref(), Instant::now())?;
        let flushed = self.flush_output();
        self.drive_to_end();
        self.reported = true;
        flushed?;
        match self.conn.end() {
            Some(End::Closed { .. }) => Ok(()),
            Some(end) => Err(lifecycle::error_of(end)),
            None => Err(ErrorKind::AbnormalClosure.into()),
        }
    }

    /// Sends a close frame and returns at once, without waiting for the
    /// server's answer: the close deadline starts; keep receiving to see the
    /// answer ([`recv`](Self::recv) then returns
    /// [`ErrorKind::ConnectionClosed`]). The same contract as
    /// [`Sender::start_close`](crate::Sender::start_close) and the async
    /// `start_close`s; [`close`](Self::close) sends and waits.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Usage`] for a code or reason that must not be sent
    /// (nothing is sent), or when a close was sent already;
    /// [`ErrorKind::AlreadyClosed`] once the connection has ended; I/O
    /// errors and write timeouts.
    pub fn start_close(&mut self, frame: Option<CloseFrame>) -> Result<()> {
        self.check_open()?;
        if !self.conn.can_send() {
            return Err(UsageError::Closed.into());
        }
        self.conn.close(frame.as_ref(), Instant::now())?;
        self.flush_output()
    }

    /// Drops the connection at once, without a close handshake (the server
    /// sees the TCP connection end: close code 1006 on its side).
    pub fn shutdown(&mut self) {
        self.finish();
    }

    fn check_open(&self) -> Result<()> {
        if self.finished || self.conn.is_finished() {
            Err(ErrorKind::AlreadyClosed.into())
        } else {
            Ok(())
        }
    }

    /// Writes out everything the connection has queued. The write wakes for
    /// the connection's deadlines: a server that stopped reading is caught
    /// by the pong (or send) deadline even while this waits. After a write
    /// timeout the unsent rest stays queued and goes first with the next
    /// write.
    fn flush_output(&mut self) -> Result<()> {
        if !self.conn.has_output() {
            return Ok(());
        }
        let start = Instant::now();
        let user_deadline = self.write_timeout.map(|t| start + t);
        self.conn.write_started(start);
        let result = self.write_queued(user_deadline, start);
        self.conn.write_finished();
        result
    }

    fn write_queued(&mut self, user_deadline: Option<Instant>, mut now: Instant) -> Result<()> {
        while self.conn.has_output() {
            let deadline = earliest(self.conn.poll_timeout(), user_deadline);
            if let Some(timeout) = self.armed_write.update(deadline, now) {
                self.stream.set_write_timeout(timeout)?;
            }
            let written = self.stream.write(self.conn.output());
            match written {
                Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero).into()),
                Ok(n) => self.conn.consume_output(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted || is_timeout(&e) => {}
                Err(e) => {
                    self.conn.receive_eof(now);
                    self.finish();
                    return Err(e.into());
                }
            }
            // A write that timed out, and one that made a little progress
            // (a socket timeout returns what was written by then), both
            // may have reached a deadline.
            now = Instant::now();
            if self.conn.poll_timeout().is_some_and(|t| now >= t) {
                self.conn.handle_timeout(now);
                if self.conn.is_finished() {
                    return Err(self.end_error());
                }
            }
            if self.conn.has_output() && user_deadline.is_some_and(|d| now >= d) {
                return Err(Error::timeout(TimeoutKind::Write, self.write_timeout));
            }
        }
        self.stream.flush().map_err(Error::from)
    }

    // ----- state and parts -------------------------------------------------

    /// The connection state.
    pub fn state(&self) -> State {
        if self.finished {
            State::Closed
        } else {
            self.conn.state()
        }
    }

    /// Whether messages can still be sent and received.
    pub fn is_open(&self) -> bool {
        !self.finished && self.conn.state() == State::Open
    }

    /// The subprotocol the server selected.
    pub fn subprotocol(&self) -> Option<&str> {
        self.subprotocol.as_deref()
    }

    /// permessage-deflate as negotiated, or `None` when it was not offered
    /// (see [`ClientBuilder::compression`](crate::ClientBuilder::compression))
    /// or the server declined it.
    pub fn deflate(&self) -> Option<&PerMessageDeflate> {
        self.conn.deflate()
    }

    /// The handshake status (101).
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The handshake headers: the server's response headers for a client.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// Sets the read timeout (`None`: block): a wait for data in
    /// [`recv`](Self::recv) longer than this fails with
    /// [`ErrorKind::Timeout`] and the connection stays usable.
    ///
    /// Blocking only, as are [`set_write_timeout`](Self::set_write_timeout),
    /// [`set_timeout`](Self::set_timeout) and
    /// [`read_timeout`](Self::read_timeout): a blocking call can be bounded
    /// only by the connection, while an async one is bounded by its caller
    /// (`tokio::time::timeout` around a cancel-safe `recv`); the async
    /// connection keeps the builder's
    /// [`read_timeout`](crate::ClientBuilder::read_timeout) and
    /// [`write_timeout`](crate::ClientBuilder::write_timeout).
    ///
    /// # Errors
    ///
    /// None today; the `Result` is kept for transports that may refuse.
    pub fn set_read_timeout(&mut self, timeout: Option<Duration>) -> Result<()> {
        self.read_timeout = timeout.filter(|t| !t.is_zero());
        Ok(())
    }

    /// Sets the write timeout (`None`: block).
    ///
    /// # Errors
    ///
    /// None today; the `Result` is kept for transports that may refuse.
    pub fn set_write_timeout(&mut self, timeout: Option<Duration>) -> Result<()> {
        self.write_timeout = timeout.filter(|t| !t.is_zero());
        Ok(())
    }

    /// Sets both read and write timeouts, like websocket-client's
    /// `settimeout`.
    ///
    /// # Errors
    ///
    /// As for [`set_read_timeout`](Self::set_read_timeout).
    pub fn set_timeout(&mut self, timeout: Option<Duration>) -> Result<()> {
        self.set_read_timeout(timeout)?;
        self.set_write_timeout(timeout)
    }

    /// The read timeout.
    ///
    /// # Errors
    ///
    /// None today; the `Result` is kept for transports that may refuse.
    pub fn read_timeout(&self) -> Result<Option<Duration>> {
        Ok(self.read_timeout)
    }

    /// The transport.
    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    /// The transport, mutably. Reading or writing it directly corrupts the
    /// WebSocket stream; use it for socket options (the connection sets
    /// the socket's read and write timeouts itself, to wake for its
    /// deadlines).
    pub fn get_mut(&mut self) -> &mut S {
        self.armed_read.forget();
        self.armed_write.forget();
        &mut self.stream
    }

    /// The protocol state machine (for inspection).
    pub fn protocol(&self) -> &Protocol {
        self.conn.protocol()
    }

    /// The connection's lifecycle: its deadlines and how it ended
    /// ([`Connection::end`]).
    pub fn connection(&self) -> &Connection {
        &self.conn
    }
}

impl<S: Transport + Send + 'static> WebSocket<S> {
    /// Turns this connection into a [`BufferedWebSocket`]: a reader thread
    /// takes over the socket and feeds a bounded buffer with `config`'s
    /// limits and policies. Bytes already read are kept.
    ///
    /// ```
    /// # let server = floodgate_server::Server::bind("127.0.0.1:0", floodgate_server::echo).unwrap();
    /// use floodgate::buffer::{BufferConfig, Overflow};
    /// let ws = floodgate::connect(&server.url())?;
    /// let mut ws = ws.into_buffered(&BufferConfig::new().overflow(Overflow::DropNewest))?;
    /// ws.send_text("hi")?;
    /// assert_eq!(ws.recv()?.as_text(), Some("hi"));
    /// ws.close(1000, "")?;
    /// # Ok::<(), floodgate::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`] when `config` does not fit the connection's
    /// limits (see [`BufferConfig::validate`]); [`ErrorKind::AlreadyClosed`]
    /// when the connection is not open; an I/O error when the transport
    /// cannot be split ([`Transport::try_clone`]) or the thread not started.
    pub fn into_buffered(self, config: &BufferConfig) -> Result<BufferedWebSocket<S>> {
        BufferedWebSocket::start(self, config)
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

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.socket.recv() {
            Ok(message) => Some(Ok(message)),
            // A read timeout leaves the connection usable: report it and
            // let the caller go on iterating.
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

pub(crate) fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}
