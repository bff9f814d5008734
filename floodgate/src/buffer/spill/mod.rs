//! The `Spill` overflow policy: the buffer's memory overflows to disk.
//!
//! Its configuration (`config.rs`), errors (`error.rs`), its part of the
//! buffer's state, kept under the buffer's lock (`state.rs`), the writer
//! thread and the directory's setup (`writer.rs`), and below them the
//! on-disk segment log (`log.rs`, `format.rs`) that most of this page
//! describes. The buffer (`buffer/mod.rs`) ties them together: the reader
//! pushes into the hand-off under the buffer's lock and never touches a
//! file; the writer thread appends; the consumer takes records from the
//! log outside the buffer's lock.
//!
//! # Why it exists
//!
//! `Block` slows the server and the other policies lose messages. Spilling
//! past the memory limits to disk loses nothing and keeps reading at full
//! rate, if the disk part is done with the care log shippers learned the
//! hard way (Vector's disk buffer, Fluent Bit's filesystem storage, WALs):
//! corruption after a crash must not block start-up or loop; the backlog
//! must never be loaded into memory whole; a full disk must be an error
//! the caller sees, not a silent stall; an oversized record must be
//! refused loudly; order must be kept across segments and across the
//! wrap-around of their numbers.
//!
//! # Shape
//!
//! A [`SegmentLog`] owns one directory. Records are appended to the newest
//! segment file and taken from the oldest, in order; a new segment is
//! started when the current one would pass
//! [`LogConfig::segment_bytes`] (a larger record gets an empty segment of
//! its own), and at every open (old segments are never
//! appended to again, so a torn tail never needs truncating before new
//! records go behind it). The log is single-threaded (`&mut self`), with
//! no clock and no thread: its owner (the spill's writer thread) calls
//! [`SegmentLog::sync`] on the [`Fsync`] interval.
//!
//! Reading pages: the reader holds one open segment and a read chunk of
//! `READ_CHUNK` (64 KiB) bytes, plus the record it returns; opening a directory
//! scans every segment with the same bounded memory.
//!
//! **Deletion:** a segment file is removed as soon as the last record in
//! it is taken by [`SegmentLog::take`]. The segment being appended to is
//! removed when appends move on to a new one, or at once when its last
//! record was the log's last (the next append starts a new segment), so
//! a drained log holds no disk space. Disk space is therefore freed a segment at a time, and
//! [`SegmentLog::disk_bytes`] counts a partly taken segment whole. While
//! the log is *held* (a lease is out, see below) spent segments from the
//! held position on stay on disk, and in `disk_bytes` and the budget,
//! until [`SegmentLog::commit`] removes them.
//!
//! # On-disk format (version 1)
//!
//! A directory holds segment files named by a `u64` sequence number in 20
//! decimal digits, `00000000000000000042.seg`, at most the read cursor
//! `read.cursor`, and for a durable spill the lock file `spill.lock`.
//! Every other file is not ours: counted in `SpillCounts::foreign_files`
//! and never touched. (An ephemeral spill makes a private directory
//! `floodgate-spill-<pid>-<n>` under the one given, and removes it.)
//!
//! A segment file is a 20-byte header, then records back to back:
//!
//! ```text
//! header:  "FGSPILL1" (8 bytes) | version = 1 (u32 LE) | this segment's number (u64 LE)
//! record:  payload length (u32 LE) | CRC32 (u32 LE) | kind (u8: 1 text, 2 binary)
//!          | priority (u8: 0 low to 3 critical) | received at (u64 LE, ns since the Unix epoch)
//!          | payload
//! ```
//!
//! The CRC32 (IEEE, `crc32fast`) covers kind, priority and stamp followed
//! by the payload. The stamp lets a resumed spill still report how long
//! each message waited. A file named like a segment whose header differs (another
//! magic, another version, another number) is not ours. One that is
//! shorter than a header and holds the start of ours was being created
//! when the process stopped: it is removed.
//!
//! The cursor file is `"FGCURSR1"` | segment number (u64 LE) | offset of
//! the next record to take in it (u64 LE) | CRC32 of those 24 bytes
//! (u32 LE), rewritten in place (one `pwrite`) by a durable spill after
//! every take, by [`SegmentLog::sync`] and when the log is dropped. A
//! cursor whose CRC fails (a write torn by a power cut) is ignored: the
//! oldest segment is read from its start.
//!
//! # Damage, on open
//!
//! Opening scans the segments oldest first (numbers compared from the
//! oldest live one, across the wrap: the oldest is the one after the
//! widest gap) and checks every record's length and CRC. The first record
//! that is cut short, claims more bytes than its file has, has no known
//! kind or a wrong CRC ends that segment: the bytes from it to the end of
//! the file are skipped (one `SpillCounts::corrupt_records`, its bytes in
//! `SpillCounts::skipped_bytes`), since without a sync marker nothing
//! after a bad length can be trusted; the next segment is read as usual.
//! This covers a torn tail after a crash and flipped bits in the middle.
//! A number missing in the sequence counts in
//! `SpillCounts::missing_segments`. None of these stops the open, and
//! the scan reads each byte once, so it cannot loop.
//!
//! # Crashes and duplicates
//!
//! **The guarantee, in one sentence:** after the process is killed, a
//! durable spill started again on its directory delivers every message
//! the killed one had written and not delivered, in order, none twice;
//! only the messages still waiting for the writer (at most
//! `writer_queue_bytes`, normally a few milliseconds of the feed) are lost.
//!
//! The cursor is rewritten after every take, before the messages are
//! handed out, and the page cache outlives a killed process: nothing comes
//! twice (`tests/spill.rs` kills a child with SIGKILL, at rest and while it
//! writes). A crash of the machine loses what was not synced: records
//! appended since the last sync (at most `fsync_interval` of the feed),
//! and cursor updates since then, so up to `fsync_interval` of delivered
//! messages come again (never more than one segment's records: a cursor
//! naming a removed segment is ignored, and earlier segments are gone).
//! Records the process had not synced can come back torn: counted and
//! skipped as below. Duplicates cannot be counted (nothing on disk says
//! what was delivered after the last sync); the bound above is what holds.
//!
//! **Leases** (`buffer/lease.rs`) change "delivered" to "committed": while
//! a lease holds records read from disk the log is held
//! ([`SegmentLog::hold`]), its cursor file names the position before them,
//! and a process killed before [`SegmentLog::commit`] delivers them again
//! (at least once). A kill inside `commit` itself, between removing the
//! kept segments and writing the cursor, can bring again at most one
//! segment's records.

mod config;
mod error;
mod format;
mod log;
pub(crate) mod state;
mod writer;

#[cfg(test)]
mod buffer_tests;
#[cfg(test)]
mod tests;

pub use config::{
    SpillConfig, SpillFallback, DEFAULT_FSYNC_INTERVAL, DEFAULT_MAX_DISK_BYTES,
    DEFAULT_SEGMENT_BYTES, DEFAULT_WRITER_QUEUE_BYTES,
};
pub use error::{SpillError, SpillLimit, SpillOp, SpillRefusal};
pub(crate) use format::{Kind, Meta};
pub(crate) use log::SegmentLog;
pub(crate) use writer::{
    lock_log, open, run, DirLock, Durable, Logged, Round, SharedLog, WriterHost, RETRY_AFTER,
};

use std::time::Duration;

/// When the log asks the kernel to put its writes on the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fsync {
    /// Never (an ephemeral spill: nothing is meant to outlive the
    /// process). [`SegmentLog::sync`] still syncs when called.
    Never,
    /// A durable spill: its owner calls [`SegmentLog::sync`] this often
    /// (the writer thread does, outside any append, so that an append
    /// either wrote its record or failed without it); the log itself syncs
    /// a segment when appends move past it.
    Every(Duration),
}

/// How a [`SegmentLog`] is laid out and bounded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LogConfig {
    /// A new segment is started when a record would take the current one
    /// past this many bytes (header included). It also bounds one
    /// record.
    pub(crate) segment_bytes: u64,
    /// Bytes all segment files may take together; an append past it is
    /// [`SpillError::DiskFull`].
    pub(crate) max_disk_bytes: u64,
    /// When writes are synced to the disk.
    pub(crate) fsync: Fsync,
    /// The number of the first segment of an empty directory (tests start
    /// near `u64::MAX` to cross the wrap).
    pub(crate) first_segment: u64,
}

impl Default for LogConfig {
    fn default() -> LogConfig {
        LogConfig {
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            max_disk_bytes: DEFAULT_MAX_DISK_BYTES,
            fsync: Fsync::Never,
            first_segment: 0,
        }
    }
}
