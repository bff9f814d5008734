//! The reader of a buffered connection: a thread that reads the socket,
//! decodes, answers control frames at once and feeds the [`Buffer`].
//!
//! It never waits for the consumer to answer a ping or a close: both are
//! handled as soon as they are decoded, before the data decoded with them
//! is pushed. The only thing that makes it wait is the buffer's policy
//! (`Block`), and then it stops reading the socket altogether, which is
//! what lets TCP flow control slow the server down.

use super::chunks::ChunkPool;
use super::{Ending, Shared};
use crate::buffer::{Batch, Buffer, BufferError, ControlFn, DataFrameFn};
use crate::error::{Callback, Error, ErrorKind};
use crate::socket::{read_before, read_size};
use crate::stream::Transport;
use bytes::BytesMut;
use floodgate_proto::{CloseCode, CloseFrame, Message, Protocol, ProtocolError, Text};
use std::io;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Instant;

pub(crate) struct Reader<S: Transport> {
    pub(crate) stream: S,
    pub(crate) proto: Protocol,
    pub(crate) read_buf: BytesMut,
    pub(crate) read_chunk_size: usize,
    pub(crate) auto_pong: bool,
    /// Copy small messages out of the read chunk they arrived in (see
    /// [`compact`]).
    pub(crate) copy_small: bool,
    pub(crate) shared: Arc<Shared<S>>,
    /// Bytes read since waiting consumers were last woken (see
    /// [`Reader::fill`]).
    pub(crate) unwoken_bytes: usize,
    /// Where the next read chunk comes from.
    pub(crate) chunks: ChunkPool,
    /// The application's observer of pings and pongs
    /// ([`BufferConfig::on_control_frame`](crate::buffer::BufferConfig::on_control_frame)).
    pub(crate) on_control: Option<ControlFn>,
    /// The application's observer of data frames
    /// ([`BufferConfig::on_data_frame`](crate::buffer::BufferConfig::on_data_frame)).
    pub(crate) on_data_frame: Option<DataFrameFn>,
}

/// Decoded messages are pushed into the buffer in runs of at most this
/// many.
const DELIVER_EVERY: usize = 512;

/// While the socket has more data ready, consumers are woken once per
/// this many bytes read rather than after every read: a wake-up costs the
/// reader a futex call and, on a small machine, the core it runs on.
const WAKE_EVERY_BYTES: usize = 1 << 20;

/// A message shorter than this share of the read chunk is copied out of it
/// when `copy_small` is set.
const COPY_BELOW_CHUNK_FRACTION: usize = 8;

impl<S: Transport> Reader<S> {
    fn buffer(&self) -> &Buffer {
        &self.shared.buffer
    }

    /// Runs until the connection ends, then reports the end to the buffer
    /// (for the consumer) and to a waiting `close`.
    pub(crate) fn run(mut self) {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.read_loop()));
        let end = match outcome {
            Ok(end) => end,
            Err(panic) => {
                let what = crate::error::panic_message(&*panic);
                self.shared.writer().close_once(Some(&CloseFrame::new(
                    CloseCode::INTERNAL_ERROR,
                    "client error",
                )));
                ErrorKind::Panicked {
                    callback: Callback::Reader,
                    message: what,
                }
                .into()
            }
        };
        let ending = match end.kind() {
            ErrorKind::ConnectionClosed(_) => Ending::Closed,
            ErrorKind::AbnormalClosure => Ending::Abnormal,
            _ => Ending::Failed,
        };
        self.shared.end_transport();
        self.shared.set_done(ending);
        self.shared.buffer.finish(end);
    }

    fn read_loop(&mut self) -> Error {
        let mut batch = self.buffer().new_batch();
        // The reader waits only on the buffer, never on a read timeout.
        let _ = self.stream.set_read_timeout(None);
        let (copy_small, chunk_size) = (self.copy_small, self.read_chunk_size);
        loop {
            let buffer = &self.shared.buffer;
            // Data messages go to the batch; decoding stops at a control
            // message (`Some(message)`) or a full batch (`None`).
            let mut each = |message| match message {
                Message::Text(_) | Message::Binary(_) => {
                    buffer.stage(&mut batch, compact(copy_small, chunk_size, message));
                    // A read chunk holds up to thousands of small messages;
                    // handing them over in runs keeps the batch in cache.
                    if batch.len() >= DELIVER_EVERY {
                        ControlFlow::Break(None)
                    } else {
                        ControlFlow::Continue(())
                    }
                }
                control => ControlFlow::Break(Some(control)),
            };
            // Two calls rather than one with an optional observer: the
            // check per frame cost a measurable share at 16-byte messages.
            let stopped = match &self.on_data_frame {
                None => self.proto.read_messages(&mut self.read_buf, &mut each),
                Some(observe) => {
                    self.proto
                        .read_messages_observed(&mut self.read_buf, &mut each, |f| observe(f))
                }
            };
            match stopped {
                Err(err) => {
                    // Deliver what came before the bad frame.
                    let _ = self.deliver(&mut batch);
                    return self.fail(err);
                }
                Ok(Some(Some(ping @ Message::Ping(_)))) => {
                    tracing::trace!(len = ping.len(), "received a ping");
                    self.answer_ping(ping.as_bytes());
                    // This protocol instance only decodes; the answer it
                    // queued itself was sent by the writer instead.
                    let queued = self.proto.output().len();
                    self.proto.consume_output(queued);
                    self.observe(&ping);
                }
                Ok(Some(Some(pong @ Message::Pong(_)))) => {
                    tracing::trace!(len = pong.len(), "received a pong");
                    self.buffer().record_pong();
                    self.observe(&pong);
                }
                Ok(Some(Some(Message::Close(frame)))) => {
                    let _ = self.deliver(&mut batch);
                    return self.on_peer_close(frame);
                }
                Ok(Some(_)) => {
                    if let Err(err) = self.deliver(&mut batch) {
                        return self.disconnect(err);
                    }
                }
                Ok(None) => {
                    if let Err(err) = self.deliver(&mut batch) {
                        return self.disconnect(err);
                    }
                    if let Err(end) = self.fill() {
                        return end;
                    }
                }
            }
        }
    }

    /// Shows a control frame to the application's observer, if any.
    fn observe(&self, frame: &Message) {
        if let Some(observer) = &self.on_control {
            observer(frame);
        }
    }

    /// Hands the decoded batch to the buffer; waits there under `Block`.
    fn deliver(&self, batch: &mut Batch) -> Result<(), BufferError> {
        if batch.is_empty() {
            return Ok(());
        }
        let result = self.buffer().push_blocking(batch, false);
        batch.clear();
        result
    }

    fn answer_ping(&self, payload: &[u8]) {
        let decoded = Instant::now();
        if !self.auto_pong {
            return;
        }
        let sent = {
            let mut writer = self.shared.writer();
            if writer.ended || writer.proto.close_sent() {
                return;
            }
            writer.send_with(|p| p.send_pong(payload))
        };
        match sent {
            Ok(()) => self.buffer().record_ping(decoded.elapsed()),
            Err(e) => tracing::debug!(error = %e, "could not answer a ping"),
        }
    }

    /// The peer's close: answer it (unless we closed first), let the server
    /// end TCP, and end.
    fn on_peer_close(&mut self, frame: Option<CloseFrame>) -> Error {
        tracing::debug!(?frame, "peer closed the WebSocket");
        let echo = frame.as_ref().map(|f| CloseFrame::new(f.code, ""));
        self.shared.writer().close_once(echo.as_ref());
        self.shared.set_done(Ending::Closed);
        if self.proto.role() == floodgate_proto::Role::Client {
            self.wait_for_eof(Instant::now() + self.shared.close_timeout);
        }
        ErrorKind::ConnectionClosed(frame).into()
    }

    /// The server broke the protocol: close with the error's code, wait
    /// briefly for its close, end.
    fn fail(&mut self, err: ProtocolError) -> Error {
        tracing::debug!(error = %err, code = %err.close_code(), "failing the WebSocket connection");
        self.end_with_close(&err.close_frame());
        ErrorKind::Protocol(err).into()
    }

    /// The `Disconnect` policy: close with 1008 (policy violation), wait
    /// briefly for the server's close, end.
    fn disconnect(&mut self, err: BufferError) -> Error {
        tracing::debug!(error = %err, "consumer fell behind: disconnecting");
        let frame = CloseFrame::new(CloseCode::POLICY_VIOLATION, "consumer fell behind");
        self.end_with_close(&frame);
        ErrorKind::Buffer(err).into()
    }

    fn end_with_close(&mut self, frame: &CloseFrame) {
        self.shared.writer().close_once(Some(frame));
        // What follows a bad frame cannot be trusted to be framed; wait for
        // the server's close in what it sends from now on.
        self.read_buf.clear();
        let deadline = Instant::now() + self.shared.close_timeout;
        while let Ok(false) = self.proto.discard_until_close(&mut self.read_buf) {
            if read_before(&mut self.stream, &mut self.read_buf, deadline).is_err() {
                return;
            }
        }
        self.wait_for_eof(deadline);
    }

    fn wait_for_eof(&mut self, deadline: Instant) {
        loop {
            self.read_buf.clear();
            if read_before(&mut self.stream, &mut self.read_buf, deadline).is_err() {
                return;
            }
        }
    }

    /// Reads the next chunk from the socket.
    ///
    /// What was pushed since the last wake-up is announced to waiting
    /// consumers before the reader could block: when the socket has
    /// nothing ready, or after [`WAKE_EVERY_BYTES`] so that a consumer is
    /// not kept waiting through a long burst. A message therefore waits
    /// for its wake-up at most as long as reading 1 MiB takes.
    fn fill(&mut self) -> Result<(), Error> {
        let chunk = read_size(
            self.proto.bytes_needed(),
            self.read_buf.len(),
            self.read_chunk_size,
        );
        // The rest of the frame in progress, or at least a useful read.
        let at_least = self
            .proto
            .bytes_needed()
            .saturating_sub(self.read_buf.len())
            .max(MIN_READ_ROOM)
            .min(chunk);
        self.chunks.make_room(&mut self.read_buf, at_least, chunk);
        let mut read = Err(io::ErrorKind::WouldBlock.into());
        if self.unwoken_bytes < WAKE_EVERY_BYTES {
            read = self.stream.read_available_into(&mut self.read_buf, chunk);
        }
        if matches!(&read, Err(e) if e.kind() == io::ErrorKind::WouldBlock) {
            self.buffer().wake_consumers();
            self.unwoken_bytes = 0;
            read = self.stream.read_into(&mut self.read_buf, chunk);
        }
        if let Ok(n) = read {
            self.unwoken_bytes += n;
        }
        match read {
            Ok(0) => Err(ErrorKind::AbnormalClosure.into()),
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::Interrupted
                        | io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                ) =>
            {
                Ok(())
            }
            Err(_) if self.shared.shut_down_locally() => Err(ErrorKind::AbnormalClosure.into()),
            Err(e) => Err(e.into()),
        }
    }
}

/// The least free room in the current read chunk worth reading into (see
/// `ChunkPool::make_room`); below it the reader moves to another chunk.
const MIN_READ_ROOM: usize = 16 * 1024;

/// Under conflation, `DropNewest` or priorities, a message may stay
/// buffered long after the messages around it were taken or dropped,
/// and as a slice of the read chunk it would keep the whole chunk
/// (256 KiB by default) alive: 1000 such messages could hold 64 MiB.
/// Small messages are copied out so that retained memory follows
/// retained payload. (`Block` and `DropOldest` keep runs of consecutive
/// messages and skip the copy, which costs an allocation per message.)
pub(crate) fn compact(copy_small: bool, chunk_size: usize, message: Message) -> Message {
    if !copy_small || message.len() * COPY_BELOW_CHUNK_FRACTION >= chunk_size {
        return message;
    }
    match message {
        Message::Text(t) => Message::Text(Text::from(t.as_str())),
        Message::Binary(b) => Message::Binary(bytes::Bytes::copy_from_slice(&b)),
        other => other,
    }
}
