//! What the application tells [`Overflow::Spill`](crate::buffer::Overflow::Spill):
//! where to spill, how much disk it may take, what happens when the disk
//! cannot take more ([`SpillFallback`]), and whether the spill outlives the
//! process (durable) or not (ephemeral).

use std::path::{Path, PathBuf};
use std::time::Duration;

/// The default disk budget of a spill: 1 GiB.
pub const DEFAULT_MAX_DISK_BYTES: u64 = 1 << 30;

/// The default size at which a new segment file is started: 8 MiB (a
/// larger message gets a segment of its own).
pub const DEFAULT_SEGMENT_BYTES: u64 = 8 << 20;

/// The default bound of the hand-off from the reader to the spill's writer
/// thread: 8 MiB of messages waiting to be written.
pub const DEFAULT_WRITER_QUEUE_BYTES: usize = 8 << 20;

/// The default interval between two `fsync`s of a durable spill: 1 s.
pub const DEFAULT_FSYNC_INTERVAL: Duration = Duration::from_secs(1);

/// What the `Spill` policy does with a message the spill cannot take: the
/// disk budget is used up, the disk failed (a full disk: `ENOSPC`), the
/// writer thread is too far behind (a disk slower than the feed), or the
/// message is larger than the whole budget. Every such message is counted
/// in [`Stats::spill_refused`](crate::buffer::Stats::spill_refused).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum SpillFallback {
    /// The reader waits until the spill takes messages again (the
    /// consumer freed disk space, the writer caught up) or everything
    /// spilled was delivered: lossless, but the server is slowed and pings
    /// wait, as under [`Overflow::Block`](crate::buffer::Overflow::Block).
    Block,
    /// The message is dropped and counted in `dropped_newest` (a
    /// `CRITICAL` one waits, as under `Block`).
    DropNewest,
    /// The connection is closed with code 1008 and the consumer gets
    /// [`BufferError::SpillRefused`](crate::buffer::BufferError::SpillRefused)
    /// (after the messages buffered before it) saying why. The default:
    /// a spill that cannot keep its promise says so at once.
    #[default]
    Disconnect,
}

/// Where and how a buffer spills to disk; see
/// [`Overflow::Spill`](crate::buffer::Overflow::Spill) and the guide
/// `docs/backpressure.md`.
///
/// ```
/// use floodgate::buffer::{BufferConfig, Overflow, SpillConfig, SpillFallback};
/// use std::time::Duration;
///
/// // Ephemeral (the default): a private directory under /var/tmp, removed
/// // when the connection's buffer is dropped.
/// let ephemeral = BufferConfig::new()
///     .overflow(Overflow::Spill(SpillConfig::new("/var/tmp").max_disk_bytes(4 << 30)));
/// // Durable: spilled messages survive a restart (even a killed process)
/// // and are delivered first by the next connection on the directory.
/// let durable = BufferConfig::new().overflow(Overflow::Spill(
///     SpillConfig::new("/var/lib/feed/spill")
///         .durable()
///         .fsync_interval(Duration::from_millis(200))
///         .fallback(SpillFallback::Block),
/// ));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "a SpillConfig does nothing until given to Overflow::Spill"]
pub struct SpillConfig {
    pub(crate) dir: PathBuf,
    pub(crate) max_disk_bytes: u64,
    pub(crate) fallback: SpillFallback,
    pub(crate) durable: bool,
    pub(crate) fsync_interval: Duration,
    pub(crate) segment_bytes: u64,
    pub(crate) writer_queue_bytes: usize,
    /// The number of the first segment of an empty directory: the tests
    /// start near `u64::MAX` to cross the wrap.
    pub(crate) first_segment: u64,
}

impl SpillConfig {
    /// Spill under `dir` (created if missing), ephemeral, with a 1 GiB
    /// budget and the [`SpillFallback::Disconnect`] fallback.
    pub fn new(dir: impl Into<PathBuf>) -> SpillConfig {
        SpillConfig {
            dir: dir.into(),
            max_disk_bytes: DEFAULT_MAX_DISK_BYTES,
            fallback: SpillFallback::default(),
            durable: false,
            fsync_interval: DEFAULT_FSYNC_INTERVAL,
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            writer_queue_bytes: DEFAULT_WRITER_QUEUE_BYTES,
            first_segment: 0,
        }
    }

    /// At most this many bytes of segment files (headers included). A
    /// segment file is freed only once every message in it was delivered,
    /// so up to one segment more than the backlog is held.
    pub fn max_disk_bytes(mut self, bytes: u64) -> SpillConfig {
        self.max_disk_bytes = bytes;
        self
    }

    /// What happens to a message the spill cannot take.
    pub fn fallback(mut self, fallback: SpillFallback) -> SpillConfig {
        self.fallback = fallback;
        self
    }

    /// Durable mode: the directory itself holds the spill (no private
    /// subdirectory), every message joins the disk queue, not memory (so
    /// a killed process loses only what the writer had not written yet;
    /// the consumer may still take a message straight from the writer's
    /// queue when nothing is on disk), the files are synced every
    /// [`fsync_interval`](Self::fsync_interval), and a buffer started again
    /// on the directory first delivers what was spilled and not delivered.
    /// Only one buffer may use the directory at a time (a lock file
    /// enforces it).
    pub fn durable(mut self) -> SpillConfig {
        self.durable = true;
        self
    }

    /// How often a durable spill syncs its files to the disk (default 1 s):
    /// what a crash of the machine (not of the process) may lose, or
    /// deliver twice. `Duration::ZERO` syncs after every batch written.
    pub fn fsync_interval(mut self, interval: Duration) -> SpillConfig {
        self.fsync_interval = interval;
        self
    }

    /// A new segment file is started past this size (default 8 MiB): the
    /// unit in which disk space is freed.
    pub fn segment_bytes(mut self, bytes: u64) -> SpillConfig {
        self.segment_bytes = bytes;
        self
    }

    /// At most this many bytes of messages wait for the writer thread
    /// (default 8 MiB). When the disk is slower than the feed and they
    /// fill it, the fallback takes over: the reader never waits on the
    /// disk itself.
    pub fn writer_queue_bytes(mut self, bytes: usize) -> SpillConfig {
        self.writer_queue_bytes = bytes;
        self
    }

    /// The directory given to [`new`](Self::new).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the spill is durable.
    pub fn is_durable(&self) -> bool {
        self.durable
    }

    /// The fallback.
    pub fn get_fallback(&self) -> SpillFallback {
        self.fallback
    }

    /// The disk budget.
    pub fn get_max_disk_bytes(&self) -> u64 {
        self.max_disk_bytes
    }
}
