//! Why spilling failed: [`SpillError`] (the spill directory could not be
//! opened or used; a connection reports it as
//! [`crate::ErrorKind::Spill`]), and [`SpillRefusal`] (why one message
//! could not be spilled, which is what the fallback acts on and what
//! [`BufferError::SpillRefused`](crate::buffer::BufferError::SpillRefused)
//! carries).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// The [`SpillError::Io`] of `op` on `path`, for `map_err`.
pub(crate) fn io_error(op: SpillOp, path: &Path) -> impl FnOnce(io::Error) -> SpillError + '_ {
    move |source| SpillError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// What the spill was doing when the file system failed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SpillOp {
    /// Creating the spill directory.
    CreateDir,
    /// Listing it.
    ReadDir,
    /// Opening a file.
    Open,
    /// Creating a file.
    Create,
    /// Reading a file.
    Read,
    /// Writing to a file.
    Write,
    /// Cutting a torn record off a file.
    Truncate,
    /// Syncing a file or the directory.
    Sync,
    /// Removing a file or the directory.
    Remove,
    /// Renaming a file.
    Rename,
    /// Locking the directory against a second user.
    Lock,
    /// Starting the writer thread.
    StartWriter,
}

impl fmt::Display for SpillOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SpillOp::CreateDir => "create the directory",
            SpillOp::ReadDir => "list the directory",
            SpillOp::Open => "open",
            SpillOp::Create => "create",
            SpillOp::Read => "read",
            SpillOp::Write => "write to",
            SpillOp::Truncate => "truncate",
            SpillOp::Sync => "sync",
            SpillOp::Remove => "remove",
            SpillOp::Rename => "rename",
            SpillOp::Lock => "lock",
            SpillOp::StartWriter => "start the writer thread for",
        })
    }
}

/// Which size of a [`SpillConfig`](super::SpillConfig) cannot work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SpillLimit {
    /// `segment_bytes`.
    SegmentBytes,
    /// `max_disk_bytes`.
    MaxDiskBytes,
}

impl fmt::Display for SpillLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SpillLimit::SegmentBytes => "segment_bytes",
            SpillLimit::MaxDiskBytes => "max_disk_bytes",
        })
    }
}

/// The spill directory could not be opened or used. After any failure of
/// an append the log is consistent: the record is not in it (its partial
/// bytes were truncated away, or the segment was closed at its last whole
/// record).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpillError {
    /// The file system failed (a full disk is `ENOSPC` here).
    #[error("spill: could not {op} {}: {source}", path.display())]
    Io {
        /// What the spill was doing.
        op: SpillOp,
        /// The file or directory.
        path: PathBuf,
        /// The system's error.
        #[source]
        source: io::Error,
    },
    /// A record larger than the disk budget can hold.
    #[error(
        "spill: a record of {len} bytes cannot be spilled: at most {max} bytes fit in the disk \
         budget; raise max_disk_bytes"
    )]
    TooLarge {
        /// Its payload's length.
        len: usize,
        /// The largest payload the budget holds.
        max: usize,
    },
    /// The record would take the spill past its disk budget.
    #[error("spill: the disk budget is used up ({used} of {max} bytes)")]
    DiskFull {
        /// Bytes the segment files take.
        used: u64,
        /// The budget.
        max: u64,
    },
    /// A size too small for even one empty record.
    #[error("spill: {limit} = {value} is too small; give at least {min} bytes")]
    LimitTooSmall {
        /// Which size.
        limit: SpillLimit,
        /// The size given.
        value: u64,
        /// The least that works.
        min: u64,
    },
    /// Another buffer (in this process or another) holds the durable
    /// spill directory.
    #[error(
        "spill: the directory {} is in use by another connection (its lock file is held); \
         give each durable connection a directory of its own",
        dir.display()
    )]
    Locked {
        /// The directory.
        dir: PathBuf,
    },
}

impl SpillError {
    /// What the fallback is told: the same failure, without the
    /// `io::Error` (which cannot be cloned) but with its kind and code.
    pub(crate) fn refusal(&self) -> SpillRefusal {
        match self {
            SpillError::Io { op, path, source } => SpillRefusal::Disk {
                op: *op,
                path: path.clone(),
                kind: source.kind(),
                os_error: source.raw_os_error(),
            },
            SpillError::TooLarge { len, max } => SpillRefusal::TooLarge {
                len: *len,
                max: *max,
            },
            SpillError::DiskFull { used, max } => SpillRefusal::DiskBudget {
                used: *used,
                max: *max,
            },
            // Found when the buffer opens, never while spilling.
            SpillError::LimitTooSmall { .. } | SpillError::Locked { .. } => SpillRefusal::Disk {
                op: SpillOp::Open,
                path: PathBuf::new(),
                kind: io::ErrorKind::Other,
                os_error: None,
            },
        }
    }
}

/// Why the spill could not take a message; the
/// [`SpillFallback`](super::SpillFallback) decided what became of it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpillRefusal {
    /// The segment files take the whole disk budget: the consumer is that
    /// far behind.
    #[error(
        "the disk budget is used up ({used} of {max} bytes spilled and not yet delivered); \
         consume faster or raise max_disk_bytes"
    )]
    DiskBudget {
        /// Bytes the segment files take, with what waits to be written.
        used: u64,
        /// `max_disk_bytes`.
        max: u64,
    },
    /// The message alone is larger than the disk budget.
    #[error(
        "a message of {len} bytes is larger than the disk budget can hold ({max} bytes); raise \
         max_disk_bytes"
    )]
    TooLarge {
        /// The message's length.
        len: usize,
        /// The largest message the budget holds.
        max: usize,
    },
    /// The disk is slower than the feed: the writer thread's queue is full.
    #[error(
        "the disk is slower than the feed: {queued} bytes already wait for the spill's writer \
         (writer_queue_bytes is {max}); use a faster disk or raise writer_queue_bytes"
    )]
    WriterBehind {
        /// Bytes waiting to be written.
        queued: usize,
        /// `writer_queue_bytes`.
        max: usize,
    },
    /// The file system failed a write (a full disk is
    /// [`io::ErrorKind::StorageFull`], `ENOSPC`, os error 28 on Linux).
    /// The writer tries again every 100 ms, and at once when the consumer
    /// frees disk space.
    #[error(
        "the spill could not {op} {}: {kind}{}; free space on that disk or give another spill \
         directory",
        path.display(),
        os_error.map(|code| format!(" (os error {code})")).unwrap_or_default()
    )]
    Disk {
        /// What the spill was doing.
        op: SpillOp,
        /// The file.
        path: PathBuf,
        /// The error's kind.
        kind: io::ErrorKind,
        /// The system's error code, if there was one.
        os_error: Option<i32>,
    },
}
