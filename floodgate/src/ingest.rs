//! What a buffered connection's reader does with the bytes it read: decode
//! them through the [`Connection`], stage the data messages for the
//! [`Buffer`] in runs, show control and data frames to the application's
//! observers, and say what stopped the decoding.
//!
//! It also sizes the reads ([`read_size`]), for the direct connections'
//! readers too.
//!
//! It is one piece of code for every reader (a thread, a task), so that
//! staging, compaction, batching and observing behave the same whatever
//! does the I/O; a reader only adds how it reads and how it waits.
//!
//! The reader decodes under the connection's lock, which its senders
//! need too. The application's code (a classifier, a conflation key, a
//! data-frame observer) never runs under it: it may be slow, or send on
//! the same connection. When the application gave any, the messages and
//! frames of a run are collected under the lock and staged and observed
//! after it is released; without, they are staged as they are decoded
//! (nothing of the application's runs then), which is the fast path.

use crate::buffer::{Batch, Buffer, ControlFn, DataFrameFn};
use bytes::BytesMut;
use floodgate_proto::connection::Connection;
use floodgate_proto::{Message, ProtocolError, Text};
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Decoded messages are pushed into the buffer in runs of at most this
/// many.
pub(crate) const DELIVER_EVERY: usize = 512;

/// A message shorter than this share of the read chunk is copied out of it
/// when `copy_small` is set (see [`compact`]).
const COPY_BELOW_CHUNK_FRACTION: usize = 8;

/// Why decoding stopped.
#[derive(Debug)]
pub(crate) enum Stop {
    /// The bytes read hold no complete message more: read again.
    NeedMore,
    /// A run of [`DELIVER_EVERY`] messages is staged: deliver it.
    BatchFull,
    /// A control frame (ping, pong, the peer's close), already handled by
    /// the connection: observe it ([`Ingest::observe`]), write what it
    /// queued.
    Control(Message),
}

/// The reader's side of the buffer: its staging batch and the
/// application's observers.
pub(crate) struct Ingest {
    pub(crate) buffer: Arc<Buffer>,
    pub(crate) batch: Batch,
    /// Copy small messages out of the read chunk they arrived in.
    copy_small: bool,
    chunk_size: usize,
    on_control: Option<ControlFn>,
    on_data_frame: Option<DataFrameFn>,
    /// Staging or observing runs the application's code: decode into
    /// `decoded` / `frames` under the lock, stage after.
    deferred: bool,
    decoded: Vec<Message>,
    frames: Vec<floodgate_proto::Frame>,
    /// The round trip of the keepalive ping answered by the pong that
    /// [`decode`](Self::decode) stopped at, taken from the connection
    /// while the reader holds it, until [`observe`](Self::observe) counts
    /// it with that pong.
    ping_rtt: Option<Duration>,
}

impl Ingest {
    pub(crate) fn new(
        buffer: Arc<Buffer>,
        copy_small: bool,
        chunk_size: usize,
        on_control: Option<ControlFn>,
        on_data_frame: Option<DataFrameFn>,
    ) -> Ingest {
        let deferred = buffer.stage_calls_user_code() || on_data_frame.is_some();
        Ingest {
            batch: buffer.new_batch(),
            buffer,
            copy_small,
            chunk_size,
            on_control,
            on_data_frame,
            deferred,
            decoded: Vec::new(),
            frames: Vec::new(),
            ping_rtt: None,
        }
    }

    /// Whether [`decode`](Self::decode) left messages (or frames) to stage
    /// with [`stage_deferred`](Self::stage_deferred), outside the lock.
    pub(crate) fn has_deferred(&self) -> bool {
        !self.decoded.is_empty() || !self.frames.is_empty()
    }

    /// Observes the data frames and stages the messages that
    /// [`decode`](Self::decode) collected under the connection's lock:
    /// the application's code runs here, with the lock released.
    pub(crate) fn stage_deferred(&mut self) {
        if let Some(observe) = &self.on_data_frame {
            for frame in self.frames.drain(..) {
                observe(&frame);
            }
        }
        let (copy_small, chunk_size) = (self.copy_small, self.chunk_size);
        for message in self.decoded.drain(..) {
            self.buffer
                .stage(&mut self.batch, compact(copy_small, chunk_size, message));
        }
    }

    /// Decodes from `buf` (read at `now`) into the batch until a control
    /// frame, a full run, or the end of what was read.
    ///
    /// With the application's code involved, messages are only collected:
    /// call [`stage_deferred`](Self::stage_deferred) once the lock is
    /// released.
    ///
    /// # Errors
    ///
    /// The server broke the protocol: the connection failed (see
    /// [`Connection::read`]); what was decoded before stays staged (or
    /// collected).
    #[inline]
    pub(crate) fn decode(
        &mut self,
        conn: &mut Connection,
        buf: &mut BytesMut,
        now: Instant,
    ) -> Result<Stop, ProtocolError> {
        let stop = if self.deferred {
            self.decode_deferred(conn, buf, now)?
        } else {
            self.decode_direct(conn, buf, now)?
        };
        // Decoding stops at every control message, so each pong's round
        // trip is taken here, once, with the connection still at hand.
        if let Stop::Control(Message::Pong(_)) = stop {
            self.ping_rtt = conn.take_ping_rtt();
        }
        Ok(stop)
    }

    /// [`decode`](Self::decode) when nothing of the application's runs:
    /// messages are staged as they are decoded.
    #[inline]
    fn decode_direct(
        &mut self,
        conn: &mut Connection,
        buf: &mut BytesMut,
        now: Instant,
    ) -> Result<Stop, ProtocolError> {
        let Ingest {
            buffer,
            batch,
            copy_small,
            chunk_size,
            ..
        } = self;
        let (copy_small, chunk_size) = (*copy_small, *chunk_size);
        let mut each = |message| match message {
            Message::Text(_) | Message::Binary(_) => {
                buffer.stage(batch, compact(copy_small, chunk_size, message));
                // A read chunk holds up to thousands of small messages;
                // handing them over in runs keeps the batch in cache.
                if batch.len() >= DELIVER_EVERY {
                    ControlFlow::Break(Stop::BatchFull)
                } else {
                    ControlFlow::Continue(())
                }
            }
            control => ControlFlow::Break(Stop::Control(control)),
        };
        let stopped = conn.read(buf, now, &mut each)?;
        Ok(stopped.unwrap_or(Stop::NeedMore))
    }

    /// [`decode`](Self::decode) when the application's code is involved:
    /// messages and frames are only collected here.
    #[inline(never)]
    fn decode_deferred(
        &mut self,
        conn: &mut Connection,
        buf: &mut BytesMut,
        now: Instant,
    ) -> Result<Stop, ProtocolError> {
        let Ingest {
            batch,
            decoded,
            frames,
            on_data_frame,
            ..
        } = self;
        let staged = batch.len();
        let mut each = |message| match message {
            Message::Text(_) | Message::Binary(_) => {
                decoded.push(message);
                if staged + decoded.len() >= DELIVER_EVERY {
                    ControlFlow::Break(Stop::BatchFull)
                } else {
                    ControlFlow::Continue(())
                }
            }
            control => ControlFlow::Break(Stop::Control(control)),
        };
        let stopped = if on_data_frame.is_some() {
            conn.read_observed(buf, now, &mut each, |f| frames.push(f.clone()))?
        } else {
            conn.read(buf, now, &mut each)?
        };
        Ok(stopped.unwrap_or(Stop::NeedMore))
    }

    /// Shows a control frame (the one [`decode`](Self::decode) stopped
    /// at) to the application's observer, and counts a pong with the
    /// round trip of the keepalive ping it answered.
    pub(crate) fn observe(&mut self, frame: &Message) {
        if let Message::Pong(_) = frame {
            self.buffer.record_pong(self.ping_rtt.take());
        }
        if let Some(observer) = &self.on_control {
            observer(frame);
        }
    }
}

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

/// How many bytes to ask of the transport next: a chunk, or more when the
/// frame in progress needs more. Growth towards a large announced frame
/// doubles with what has arrived rather than trusting the header at once,
/// so memory follows the bytes that actually arrive, not what a header
/// claims.
pub(crate) fn read_size(needed: usize, buffered: usize, chunk: usize) -> usize {
    let wanted = needed.saturating_sub(buffered);
    wanted.min(buffered.max(chunk)).max(chunk)
}
