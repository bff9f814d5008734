//! [`SpillState`]: the spill's part of the buffer's state, kept under the
//! buffer's one lock beside the memory queue so that every [`Stats`]
//! snapshot still adds up. No I/O here: the writer thread (`writer.rs`)
//! and the consumer do the disk work outside the lock and report back.
//!
//! The messages of a spilling buffer are, in arrival order: the memory
//! queue (filled before spilling began), the records on disk (oldest
//! first), then the hand-off to the writer (its first `in_flight` being
//! written now). While any of the last two holds a message, new arrivals
//! join the hand-off, so order is kept; once both are empty the buffer is
//! back to memory.
//!
//! [`Stats`]: crate::buffer::Stats

use super::format::{RECORD_HEADER, SEGMENT_HEADER};
use super::{Kind, Meta, SpillConfig, SpillFallback, SpillRefusal};
use crate::buffer::Priority;
use floodgate_proto::Message;
use std::collections::VecDeque;

/// A message waiting for the writer.
#[derive(Debug)]
pub(crate) struct Queued {
    pub(crate) message: Message,
    pub(crate) priority: Priority,
    /// When it was received, nanoseconds since the Unix epoch.
    pub(crate) stamp: u64,
}

impl Queued {
    /// What its record carries beside the payload.
    pub(crate) fn meta(&self) -> Meta {
        let kind = match self.message {
            Message::Text(_) => Kind::Text,
            _ => Kind::Binary,
        };
        Meta {
            kind,
            priority: self.priority.index() as u8,
            stamp: self.stamp,
        }
    }
}

/// Where the consumer's next spilled message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// Nothing is spilled.
    Empty,
    /// On disk: read it from the log (outside the lock).
    Disk,
    /// In the hand-off, not being written: take it from there.
    HandOff,
    /// Being written, or another consumer is reading the disk: wait to be
    /// woken.
    Wait,
}

/// The counters of a spill, for [`Stats`](crate::buffer::Stats).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SpillFigures {
    pub(crate) buffered_disk: u64,
    pub(crate) queued: u64,
    pub(crate) queued_bytes: u64,
    pub(crate) disk_bytes: u64,
    pub(crate) high_water_disk_bytes: u64,
    pub(crate) spilled: u64,
    pub(crate) recovered: u64,
    pub(crate) refused: u64,
    pub(crate) errors: u64,
    pub(crate) corrupt_records: u64,
}

#[derive(Debug)]
pub(crate) struct SpillState {
    pub(crate) fallback: SpillFallback,
    /// Durable: every message goes through the disk.
    pub(crate) durable: bool,
    max_disk_bytes: u64,
    segment_bytes: u64,
    writer_queue_bytes: usize,
    max_record: usize,
    handoff: VecDeque<Queued>,
    handoff_bytes: usize,
    /// The first `in_flight` messages of the hand-off are being written.
    in_flight: usize,
    /// A consumer is reading records from the log.
    pub(crate) reading: bool,
    /// Records on disk, not yet taken.
    disk_records: u64,
    /// The log's disk bytes and the version of the log they were read at
    /// (the writer and the consumer report them in any order).
    disk_bytes: u64,
    disk_version: u64,
    /// The writer's last failure, until one of its writes succeeds: the
    /// spill takes nothing meanwhile.
    pub(crate) failing: Option<SpillRefusal>,
    /// Something changed on disk that a durable spill has not synced.
    pub(crate) sync_due: bool,
    pub(crate) figures: SpillFigures,
}

impl SpillState {
    pub(crate) fn new(config: &SpillConfig, max_record: usize) -> SpillState {
        SpillState {
            fallback: config.fallback,
            durable: config.durable,
            max_disk_bytes: config.max_disk_bytes,
            segment_bytes: config.segment_bytes.max(1),
            writer_queue_bytes: config.writer_queue_bytes,
            max_record,
            handoff: VecDeque::new(),
            handoff_bytes: 0,
            in_flight: 0,
            reading: false,
            disk_records: 0,
            disk_bytes: 0,
            disk_version: 0,
            failing: None,
            sync_due: false,
            figures: SpillFigures::default(),
        }
    }

    /// Records found on disk when the buffer started (a durable spill
    /// resumed): buffered, and counted as received.
    pub(crate) fn recover(&mut self, records: u64, disk_bytes: u64) {
        self.disk_records = records;
        self.figures.recovered = records;
        self.note_disk_bytes(disk_bytes, 0);
    }

    /// Whether new arrivals must join the spill to keep the order.
    #[inline]
    pub(crate) fn is_active(&self) -> bool {
        self.durable || !self.handoff.is_empty() || self.disk_records > 0 || self.reading
    }

    /// Messages spilled and not yet delivered (on disk or waiting for the
    /// writer).
    pub(crate) fn len(&self) -> u64 {
        self.disk_records + self.handoff.len() as u64
    }

    /// Records on disk that the writer reported, not yet taken.
    pub(crate) fn disk_records(&self) -> u64 {
        self.disk_records
    }

    pub(crate) fn handoff_len(&self) -> usize {
        self.handoff.len()
    }

    /// Why a message of `size` bytes cannot be spilled now, if it cannot.
    pub(crate) fn refusal(&self, size: usize) -> Option<SpillRefusal> {
        if let Some(failing) = &self.failing {
            return Some(failing.clone());
        }
        if size > self.max_record {
            return Some(SpillRefusal::TooLarge {
                len: size,
                max: self.max_record,
            });
        }
        if !self.handoff.is_empty() && self.handoff_bytes + size > self.writer_queue_bytes {
            return Some(SpillRefusal::WriterBehind {
                queued: self.handoff_bytes,
                max: self.writer_queue_bytes,
            });
        }
        // What the hand-off will take on disk once written: its frames and
        // the headers of the segments they may start. A segment is closed
        // only when the next record does not fit, so any two consecutive
        // segments hold more than `segment_bytes` together: the frames
        // start at most `2 * frames / segment_bytes + 2` segments. (One
        // header per `segment_bytes` undercounted when records are large
        // against a segment, and the writer then met a full disk the
        // refusal had not foreseen: a durable spill dropped lost those.)
        let frames =
            (self.handoff_bytes + size) as u64 + (self.handoff.len() as u64 + 1) * RECORD_HEADER;
        let headers = (2 * frames / self.segment_bytes + 2) * SEGMENT_HEADER;
        if self.disk_bytes + frames + headers > self.max_disk_bytes {
            return Some(SpillRefusal::DiskBudget {
                used: self.disk_bytes + self.handoff_bytes as u64,
                max: self.max_disk_bytes,
            });
        }
        None
    }

    /// Queues a message for the writer (the buffer wakes it if it sleeps).
    pub(crate) fn push(&mut self, queued: Queued) {
        self.handoff_bytes += queued.message.len();
        self.handoff.push_back(queued);
    }

    /// Where the consumer's next spilled message is.
    pub(crate) fn next(&self) -> Next {
        if self.reading {
            Next::Wait
        } else if self.disk_records > 0 {
            Next::Disk
        } else if self.in_flight > 0 {
            Next::Wait
        } else if !self.handoff.is_empty() {
            Next::HandOff
        } else {
            Next::Empty
        }
    }

    /// Takes the front of the hand-off (only when [`next`](Self::next) is
    /// [`Next::HandOff`]).
    pub(crate) fn pop_handoff(&mut self) -> Option<Queued> {
        if self.in_flight > 0 || self.disk_records > 0 {
            return None;
        }
        let queued = self.handoff.pop_front()?;
        self.handoff_bytes -= queued.message.len();
        Some(queued)
    }

    // ----- the writer ------------------------------------------------------

    /// Marks the front of the hand-off as being written, up to about
    /// `max_bytes` (at least one message), and copies it into `out`
    /// (payloads are shared, not copied). Returns how many.
    pub(crate) fn begin_write(
        &mut self,
        out: &mut Vec<(Meta, Message)>,
        max_bytes: usize,
    ) -> usize {
        out.clear();
        let mut bytes = 0;
        for queued in &self.handoff {
            if !out.is_empty() && bytes + queued.message.len() > max_bytes {
                break;
            }
            bytes += queued.message.len();
            out.push((queued.meta(), queued.message.clone()));
        }
        self.in_flight = out.len();
        out.len()
    }

    /// The writer wrote the first `written` messages of its batch (and
    /// failed the next with `failure`, if set); the log's disk bytes are
    /// now `disk_bytes` (read at log version `version`).
    pub(crate) fn end_write(
        &mut self,
        written: usize,
        failure: Option<(SpillRefusal, bool)>,
        disk_bytes: u64,
        version: u64,
    ) {
        for _ in 0..written {
            let queued = self
                .handoff
                .pop_front()
                .expect("written messages were queued");
            self.handoff_bytes -= queued.message.len();
        }
        self.in_flight = 0;
        self.disk_records += written as u64;
        self.figures.spilled += written as u64;
        if written > 0 {
            self.sync_due = true;
        }
        match failure {
            Some((refusal, disk_error)) => {
                if disk_error {
                    self.figures.errors += 1;
                }
                self.failing = Some(refusal);
            }
            None => self.failing = None,
        }
        self.note_disk_bytes(disk_bytes, version);
    }

    /// The consumer removed `removed` records from the log (`lost` of them
    /// unreadable, the rest delivered).
    pub(crate) fn end_read(&mut self, removed: u64, disk_bytes: u64, version: u64) {
        self.reading = false;
        self.disk_records -= removed.min(self.disk_records);
        if removed > 0 {
            self.sync_due = true;
        }
        self.note_disk_bytes(disk_bytes, version);
    }

    pub(crate) fn note_disk_bytes(&mut self, disk_bytes: u64, version: u64) {
        if version >= self.disk_version {
            self.disk_version = version;
            self.disk_bytes = disk_bytes;
            self.figures.high_water_disk_bytes = self.figures.high_water_disk_bytes.max(disk_bytes);
        }
    }

    pub(crate) fn figures(&self) -> SpillFigures {
        SpillFigures {
            buffered_disk: self.disk_records,
            queued: self.handoff.len() as u64,
            queued_bytes: self.handoff_bytes as u64,
            disk_bytes: self.disk_bytes,
            ..self.figures
        }
    }
}
