//! The reader of a buffered connection: a thread that reads the socket,
//! decodes through the connection, answers control frames at once, feeds
//! the [`Buffer`](crate::buffer::Buffer), and keeps the connection's
//! timers.
//!
//! It never waits for the consumer to answer a ping or a close: both are
//! handled as soon as they are decoded, before the data decoded with them
//! is pushed. It never waits for a sender either: a sender blocked on a
//! full socket holds the wire, not the connection. The only thing that
//! makes it stop reading is the buffer's policy (`Block`), which is what
//! lets TCP flow control slow the server down; even then it wakes for the
//! connection's deadlines (the pong deadline is paused meanwhile, since
//! the pongs wait unread behind the data).
//!
//! The loop: decode what was read ([`Ingest::decode`]), deliver, write what
//! the connection queued, report an end as soon as it is decided (the
//! consumer learns of a protocol error at once, while the close goes out
//! and the server gets its grace), drop the transport once the lifecycle
//! is over, otherwise read again, waking at the connection's next deadline.

use super::chunks::ChunkPool;
use super::{Shared, READER_WRITE_WAIT};
use crate::buffer::{BufferError, Pushed};
use crate::dial::stream::Transport;
use crate::error::{Callback, Error, ErrorKind};
use crate::ingest::read_size;
use crate::ingest::{Ingest, Stop};
use crate::lifecycle::{earliest, ArmedTimeout};
use bytes::BytesMut;
use floodgate_proto::connection::End;
use floodgate_proto::{CloseCode, CloseFrame, Message};
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(crate) struct Reader<S: Transport> {
    stream: S,
    read_buf: BytesMut,
    read_chunk_size: usize,
    shared: Arc<Shared<S>>,
    ingest: Ingest,
    /// Bytes read since waiting consumers were last woken (see
    /// [`Reader::fill`]).
    unwoken_bytes: usize,
    /// Where the next read chunk comes from.
    chunks: ChunkPool,
    armed: ArmedTimeout,
    /// When the last read returned.
    read_at: Instant,
    /// The end was handed to the buffer (the consumer's error).
    reported: bool,
    /// Why this side aborted the connection, when it did: the consumer's
    /// error instead of the close code.
    abort_reason: Option<Error>,
    /// Output the reader queued could not all be written yet.
    output_stuck: bool,
}

/// While the socket has more data ready, consumers are woken once per
/// this many bytes read rather than after every read: a wake-up costs the
/// reader a futex call and, on a small machine, the core it runs on.
const WAKE_EVERY_BYTES: usize = 1 << 20;

/// The longest the reader sleeps without a deadline of the connection's:
/// a keepalive started later ([`BufferedWebSocket::keepalive`](super::BufferedWebSocket::keepalive))
/// is picked up within this. One wake-up a second costs nothing next to
/// the thread itself.
const MAX_SLEEP: Duration = Duration::from_secs(1);

/// How soon the reader tries again to write output it could not (the
/// server is not reading).
const RETRY_WRITE: Duration = Duration::from_millis(50);

/// The least free room in the current read chunk worth reading into (see
/// `ChunkPool::make_room`); below it the reader moves to another chunk.
const MIN_READ_ROOM: usize = 16 * 1024;

impl<S: Transport> Reader<S> {
    pub(crate) fn new(
        stream: S,
        read_buf: BytesMut,
        read_chunk_size: usize,
        shared: Arc<Shared<S>>,
        ingest: Ingest,
        chunks: ChunkPool,
    ) -> Reader<S> {
        Reader {
            stream,
            read_buf,
            read_chunk_size,
            shared,
            ingest,
            unwoken_bytes: 0,
            chunks,
            armed: ArmedTimeout::default(),
            read_at: Instant::now(),
            reported: false,
            abort_reason: None,
            output_stuck: false,
        }
    }

    /// Runs until the connection's lifecycle is over, then ends the
    /// transport and reports the end to the buffer (for the consumer) and
    /// to a waiting `close`.
    pub(crate) fn run(mut self) {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.read_loop()));
        if let Err(panic) = outcome {
            let what = crate::error::panic_message(&*panic);
            self.abort_reason = Some(
                ErrorKind::Panicked {
                    callback: Callback::Reader,
                    message: what,
                }
                .into(),
            );
            let now = Instant::now();
            self.shared.core().conn.abort(
                CloseFrame::new(CloseCode::INTERNAL_ERROR, "client error"),
                now,
            );
            self.shared.flush_queued(READER_WRITE_WAIT);
        }
        self.report_end();
        self.flush_before_end();
        self.shared.end_transport();
    }

    /// The lifecycle is over, but what it queued last (the answer to a
    /// close, the close that fails the connection) must reach the socket
    /// before the transport goes. A sender holding the wire writes it after
    /// its own bytes; this waits for that at most `fail_grace`, since a
    /// sender blocked on a full socket may never let go.
    fn flush_before_end(&mut self) {
        let grace = self.shared.core().conn.timeouts().fail_grace;
        let give_up = Instant::now() + grace;
        while !self.shared.flush_queued(READER_WRITE_WAIT) {
            if Instant::now() >= give_up {
                tracing::debug!("the last frames could not be written before the end");
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn read_loop(&mut self) {
        loop {
            let stop = {
                let mut core = self.shared.core();
                self.ingest
                    .decode(&mut core.conn, &mut self.read_buf, self.read_at)
            };
            if self.ingest.has_deferred() {
                // The application's classifier, key or observer: run with
                // the connection's lock released.
                self.ingest.stage_deferred();
            }
            let read_next = matches!(stop, Ok(Stop::NeedMore) | Err(_));
            match stop {
                Err(_) => {
                    // The connection failed and queued its close; deliver
                    // what came before the bad frame, then report at once.
                    let _ = self.deliver();
                }
                Ok(Stop::Control(control)) => self.on_control(&control),
                Ok(Stop::BatchFull) => {
                    if let Err(err) = self.deliver() {
                        self.disconnect(err);
                    }
                    continue;
                }
                Ok(Stop::NeedMore) => {
                    if let Err(err) = self.deliver() {
                        self.disconnect(err);
                    }
                }
            }
            self.write_queued();
            let (decided, finished) = {
                let core = self.shared.core();
                (core.conn.end().is_some(), core.conn.is_finished())
            };
            if decided && !self.reported {
                // Known at once: the consumer need not wait for the
                // close frame to go out or the server's answer.
                let _ = self.deliver();
                self.report_end();
            }
            if finished {
                return;
            }
            if read_next {
                self.fill();
            }
        }
    }

    /// A control frame the connection handled (its answer is queued).
    fn on_control(&mut self, control: &Message) {
        match control {
            Message::Ping(payload) => {
                tracing::trace!(len = payload.len(), "received a ping");
                let decoded = self.read_at;
                if self.write_queued() {
                    self.ingest.buffer.record_ping(decoded.elapsed());
                }
            }
            Message::Pong(payload) => tracing::trace!(len = payload.len(), "received a pong"),
            Message::Close(frame) => tracing::debug!(?frame, "peer closed the WebSocket"),
            _ => {}
        }
        if !matches!(control, Message::Close(_)) {
            self.ingest.observe(control);
        }
        // Data decoded before the control frame is delivered before the
        // next read; a close ends the loop after delivery.
        if let Err(err) = self.deliver() {
            self.disconnect(err);
        }
    }

    /// Writes what the connection queued, without waiting for a sender
    /// holding the wire; whether everything went out.
    fn write_queued(&mut self) -> bool {
        if !self.shared.core().conn.has_output() && !self.output_stuck {
            return true;
        }
        let done = self.shared.flush_queued(READER_WRITE_WAIT);
        self.output_stuck = !done;
        done
    }

    /// Hands the decoded batch to the buffer; under `Block` waits there
    /// for room, waking for the connection's deadlines.
    fn deliver(&mut self) -> Result<(), BufferError> {
        if self.ingest.batch.is_empty() {
            return Ok(());
        }
        let waker = crate::buffer::thread_waker();
        let mut paused = false;
        let result = loop {
            match self
                .ingest
                .buffer
                .push(&mut self.ingest.batch, &waker, false)
            {
                Pushed::Done => break Ok(()),
                Pushed::FellBehind(err) => break Err(err),
                Pushed::Wait(deadline) => {
                    let now = Instant::now();
                    let mut core = self.shared.core();
                    if !paused {
                        core.conn.pause_reading(now);
                        paused = true;
                    }
                    if core.conn.poll_timeout().is_some_and(|t| now >= t) {
                        core.conn.handle_timeout(now);
                    }
                    let wake = earliest(deadline, core.conn.poll_timeout());
                    // Shut down here (`Sender::shutdown`, a drop): the
                    // consumer may be gone. (Otherwise messages already
                    // decoded wait for room even after the connection's
                    // end was decided: it is the consumer's to take them.)
                    let shut_down = core.ended;
                    drop(core);
                    self.write_queued();
                    if shut_down {
                        // Never placed, so counted as dropped, not lost.
                        self.ingest.buffer.drop_batch(&mut self.ingest.batch);
                        break Ok(());
                    }
                    match wake {
                        None => std::thread::park_timeout(MAX_SLEEP),
                        Some(wake) => {
                            let left = wake.saturating_duration_since(Instant::now());
                            if !left.is_zero() {
                                std::thread::park_timeout(left.min(MAX_SLEEP));
                            }
                        }
                    }
                }
            }
        };
        self.ingest.batch.clear();
        if paused {
            self.shared.core().conn.resume_reading(Instant::now());
        }
        result
    }

    /// The `Disconnect` policy: close with 1008 (policy violation); the
    /// consumer gets the buffer's error with its figures.
    fn disconnect(&mut self, err: BufferError) {
        tracing::debug!(error = %err, "consumer fell behind: disconnecting");
        self.abort_reason = Some(ErrorKind::Buffer(err).into());
        let frame = CloseFrame::new(CloseCode::POLICY_VIOLATION, "consumer fell behind");
        self.shared.core().conn.abort(frame, Instant::now());
    }

    /// Hands the connection's end to the buffer, once: the consumer gets
    /// it after the buffered messages.
    fn report_end(&mut self) {
        if self.reported {
            return;
        }
        let end = self.shared.core().conn.end().cloned();
        let Some(end) = end else { return };
        self.reported = true;
        self.shared.set_done();
        let error = match (&end, self.abort_reason.take()) {
            (End::Aborted(_), Some(reason)) => reason,
            (end, _) => crate::lifecycle::error_of(end),
        };
        self.ingest.buffer.finish(error);
    }

    /// Reads the next chunk from the socket, or wakes at the connection's
    /// next deadline and runs it.
    ///
    /// What was pushed since the last wake-up is announced to waiting
    /// consumers before the reader could block: when the socket has
    /// nothing ready, or after [`WAKE_EVERY_BYTES`] so that a consumer is
    /// not kept waiting through a long burst. A message therefore waits
    /// for its wake-up at most as long as reading 1 MiB takes.
    fn fill(&mut self) {
        let now = Instant::now();
        let (wake, discarding, needed, queued) = {
            let mut core = self.shared.core();
            if core.conn.poll_timeout().is_some_and(|t| now >= t) {
                core.conn.handle_timeout(now);
            }
            if core.conn.is_finished() {
                return;
            }
            let c = &core.conn;
            (
                c.poll_timeout(),
                c.is_discarding(),
                c.bytes_needed(),
                c.has_output(),
            )
        };
        if queued {
            // A keepalive ping the timers just queued.
            self.write_queued();
        }
        let cap = if self.output_stuck {
            RETRY_WRITE
        } else {
            MAX_SLEEP
        };
        let deadline = earliest(wake, Some(now + cap));
        let chunk = if discarding {
            4096
        } else {
            read_size(needed, self.read_buf.len(), self.read_chunk_size)
        };
        // The rest of the frame in progress, or at least a useful read.
        let at_least = needed
            .saturating_sub(self.read_buf.len())
            .max(MIN_READ_ROOM)
            .min(chunk);
        self.chunks.make_room(&mut self.read_buf, at_least, chunk);
        let mut read = Err(io::ErrorKind::WouldBlock.into());
        if self.unwoken_bytes < WAKE_EVERY_BYTES {
            read = self.stream.read_available_into(&mut self.read_buf, chunk);
        }
        if matches!(&read, Err(e) if e.kind() == io::ErrorKind::WouldBlock) {
            self.ingest.buffer.wake_consumers();
            self.unwoken_bytes = 0;
            if let Some(timeout) = self.armed.update(deadline, now) {
                let _ = self.stream.set_read_timeout(timeout);
            }
            read = self.stream.read_into(&mut self.read_buf, chunk);
        }
        self.read_at = Instant::now();
        match read {
            Ok(0) => self.shared.core().conn.receive_eof(self.read_at),
            Ok(n) => self.unwoken_bytes += n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::Interrupted
                        | io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                ) => {}
            Err(e) => {
                let undecided = {
                    let mut core = self.shared.core();
                    let undecided = core.conn.end().is_none() && !core.ended;
                    core.conn.receive_eof(self.read_at);
                    undecided
                };
                if undecided {
                    tracing::debug!(error = %e, "the transport failed");
                    self.report_io_error(e);
                }
            }
        }
    }

    /// The transport failed before any end was decided: the consumer gets
    /// the I/O error itself.
    fn report_io_error(&mut self, e: io::Error) {
        self.reported = true;
        self.shared.set_done();
        self.ingest.buffer.finish(Error::from(e));
    }
}
