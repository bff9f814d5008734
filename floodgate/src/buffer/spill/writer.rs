//! The spill's disk side: opening the directory ([`open`]: a private
//! subdirectory when ephemeral, a locked one when durable), the log shared
//! by the writer thread and the consumer ([`SharedLog`]), and the writer
//! thread itself ([`run`]), which takes messages from the hand-off and
//! appends them, so that the connection's reader never waits on the disk.
//!
//! The writer knows nothing of the buffer's lock or wakers: it talks to
//! the buffer through [`WriterHost`], which the buffer implements.

use super::error::io_error;
use super::format::LOCK_FILE;
use super::{Fsync, LogConfig, Meta, SegmentLog, SpillConfig, SpillError, SpillOp, SpillRefusal};
use floodgate_proto::Message;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long a failing writer waits before it tries again (it tries at
/// once when the consumer frees disk space).
pub(crate) const RETRY_AFTER: Duration = Duration::from_millis(100);

/// How many bytes of messages the writer appends per batch: the consumer
/// waits at most one batch for the log.
const BATCH_BYTES: usize = 1 << 20;

/// The prefix of an ephemeral spill's private directory.
const EPHEMERAL_PREFIX: &str = "floodgate-spill-";

/// The log and a version bumped by every holder of its lock, so the
/// figures reported from it can be ordered.
#[derive(Debug)]
pub(crate) struct Logged {
    pub(crate) log: SegmentLog,
    pub(crate) version: u64,
}

pub(crate) type SharedLog = Arc<Mutex<Logged>>;

pub(crate) fn lock_log(log: &SharedLog) -> MutexGuard<'_, Logged> {
    // Nothing panics under this lock but the log itself, whose state is
    // consistent after every operation.
    log.lock().unwrap_or_else(|e| e.into_inner())
}

/// A spill directory opened for a buffer: the log, and what to undo at
/// the end.
#[derive(Debug)]
pub(crate) struct Opened {
    pub(crate) log: SharedLog,
    /// The ephemeral private directory, removed at the end.
    pub(crate) remove: Option<PathBuf>,
    /// The durable directory's lock, held until the end.
    pub(crate) lock: Option<DirLock>,
}

/// A durable directory held by a buffer of this process (and, through the
/// lock file, against other processes). Released when dropped.
#[derive(Debug)]
pub(crate) struct DirLock {
    /// The `flock`ed lock file; `None` only while dropping.
    file: Option<File>,
    dir: PathBuf,
}

/// The durable directories held by buffers of this process, and whether
/// each is being released (its buffer is dropping: its writer is writing
/// and syncing what is left). A connection that ends and one that starts
/// on the same directory (the App reconnecting, a program opening it
/// again) overlap by the moment the old reader thread takes to drop its
/// buffer, and then by the old writer's last sync: the new one waits for
/// that hand-over rather than failing.
static HELD: Mutex<Vec<(PathBuf, bool)>> = Mutex::new(Vec::new());
static RELEASED: std::sync::Condvar = std::sync::Condvar::new();

/// How long a buffer waits for a buffer of this process that still holds
/// a durable directory and is not dropping yet (its reader thread may be
/// about to drop it).
const HANDOVER_WAIT: Duration = Duration::from_secs(5);

/// How long it waits once that buffer is dropping: its last write and
/// `fsync` can take seconds on a busy disk.
const RELEASE_WAIT: Duration = Duration::from_secs(60);

fn held() -> MutexGuard<'static, Vec<(PathBuf, bool)>> {
    HELD.lock().unwrap_or_else(|e| e.into_inner())
}

impl DirLock {
    /// The buffer holding the directory is dropping: a buffer waiting for
    /// it may wait for its last write and sync.
    pub(crate) fn releasing(&self) {
        for (dir, releasing) in held().iter_mut() {
            if *dir == self.dir {
                *releasing = true;
            }
        }
        RELEASED.notify_all();
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        // The file first: a buffer waiting in `lock_dir` takes the flock as
        // soon as the directory leaves `HELD`, and must find it released
        // (a field would be closed only after this body, too late).
        drop(self.file.take());
        held().retain(|(d, _)| *d != self.dir);
        RELEASED.notify_all();
    }
}

/// Opens the spill `config` describes.
///
/// # Errors
///
/// The [`SpillError`] of the directory, its lock or its log.
pub(crate) fn open(config: &SpillConfig) -> Result<Opened, SpillError> {
    fs::create_dir_all(&config.dir).map_err(io_error(SpillOp::CreateDir, &config.dir))?;
    let log_config = LogConfig {
        segment_bytes: config.segment_bytes,
        max_disk_bytes: config.max_disk_bytes,
        fsync: if config.durable {
            Fsync::Every(config.fsync_interval)
        } else {
            Fsync::Never
        },
        first_segment: config.first_segment,
    };
    if config.durable {
        let lock = lock_dir(&config.dir)?;
        let log = SegmentLog::open(&config.dir, log_config)?;
        return Ok(Opened {
            log: Arc::new(Mutex::new(Logged { log, version: 0 })),
            remove: None,
            lock: Some(lock),
        });
    }
    remove_orphans(&config.dir);
    let private = make_private_dir(&config.dir)?;
    match SegmentLog::open(&private, log_config) {
        Ok(log) => Ok(Opened {
            log: Arc::new(Mutex::new(Logged { log, version: 0 })),
            remove: Some(private),
            lock: None,
        }),
        Err(e) => {
            let _ = fs::remove_dir_all(&private);
            Err(e)
        }
    }
}

/// Creates `dir/floodgate-spill-<pid>-<n>`, readable by its owner only.
fn make_private_dir(dir: &Path) -> Result<PathBuf, SpillError> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!("{EPHEMERAL_PREFIX}{}-{n}", std::process::id()));
        let mut builder = fs::DirBuilder::new();
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        match builder.create(&path) {
            Ok(()) => return Ok(path),
            // Left by an earlier process with our pid: try the next name.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_error(SpillOp::CreateDir, &path)(e)),
        }
    }
}

/// Removes the private directories of ephemeral spills whose process is
/// gone (killed before it could remove its own): an ephemeral spill
/// leaves nothing behind for longer than the next start on its directory.
fn remove_orphans(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(EPHEMERAL_PREFIX))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !process_exists(pid) {
            tracing::info!(dir = %entry.path().display(), "removing the spill of a process that is gone");
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

#[cfg(unix)]
fn process_exists(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return true;
    };
    // SAFETY: kill with signal 0 only checks that the process exists.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

#[cfg(not(unix))]
fn process_exists(_pid: u32) -> bool {
    true
}

/// Takes the durable directory's lock (`flock`, released by the kernel
/// when the process ends, however it ends).
fn lock_dir(dir: &Path) -> Result<DirLock, SpillError> {
    let canonical = fs::canonicalize(dir).map_err(io_error(SpillOp::Open, dir))?;
    {
        let start = Instant::now();
        let mut held = held();
        while let Some(&(_, releasing)) = held.iter().find(|(d, _)| *d == canonical) {
            let wait = if releasing {
                RELEASE_WAIT
            } else {
                HANDOVER_WAIT
            };
            let left = (start + wait).saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(SpillError::Locked {
                    dir: dir.to_path_buf(),
                });
            }
            held = RELEASED
                .wait_timeout(held, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        held.push((canonical.clone(), false));
    }
    // From here, dropping the claim releases the directory on every path.
    let claim = DirLock {
        file: match lock_file(dir) {
            Ok(file) => Some(file),
            Err(e) => {
                held().retain(|(d, _)| *d != canonical);
                RELEASED.notify_all();
                return Err(e);
            }
        },
        dir: canonical,
    };
    Ok(claim)
}

/// Opens and `flock`s the directory's lock file: another process holding
/// it is [`SpillError::Locked`] at once.
fn lock_file(dir: &Path) -> Result<File, SpillError> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io_error(SpillOp::Create, &path))?;
    #[cfg(unix)]
    {
        use std::os::unix::io::AsRawFd;
        // SAFETY: flock on a descriptor we own.
        let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if r != 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                return Err(SpillError::Locked {
                    dir: dir.to_path_buf(),
                });
            }
            return Err(io_error(SpillOp::Lock, &path)(err));
        }
    }
    Ok(file)
}

/// What the writer is told at the start of a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Round {
    /// Write the batch given.
    Write,
    /// Nothing to write: sleep until woken, or for this long.
    Idle(Option<Duration>),
    /// The buffer is gone: stop.
    Stop,
}

/// What the buffer does for its writer, under its own lock.
pub(crate) trait WriterHost: Send + Sync {
    /// Starts a round: fills `batch` from the hand-off (marking it being
    /// written) or says why not. Before idling, the host notes that the
    /// writer sleeps, so that the next message wakes it.
    fn begin(&self, batch: &mut Vec<(Meta, Message)>, max_bytes: usize, durable: Durable) -> Round;
    /// Ends a round: `written` messages of the batch are on disk; the next
    /// failed with `failure` (`true`: a disk error).
    fn end(
        &self,
        written: usize,
        failure: Option<(SpillRefusal, bool)>,
        disk_bytes: u64,
        version: u64,
    );
    /// Whether a durable spill changed since it last synced.
    fn sync_due(&self) -> bool;
    /// A durable spill synced: nothing is due until the next change.
    fn synced(&self);
    /// The writer has nothing left to retry: let the spill take messages
    /// again (the next failure sets it back).
    fn clear_failing(&self);
}

/// The writer's view of syncing, for [`WriterHost::begin`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Durable {
    /// When the next sync is due, if the spill is durable and changed.
    pub(crate) sync_at: Option<Instant>,
    /// When a failing writer tries again.
    pub(crate) retry_at: Option<Instant>,
}

/// The writer thread: until the host says stop, writes what the hand-off
/// holds, in batches, and syncs a durable spill on its interval.
pub(crate) fn run(host: Arc<dyn WriterHost>, log: SharedLog, durable: Option<Duration>) {
    let mut batch: Vec<(Meta, Message)> = Vec::new();
    let mut last_sync = Instant::now();
    let mut retry_at: Option<Instant> = None;
    loop {
        let now = Instant::now();
        if let Some(interval) = durable {
            if now >= last_sync + interval && host.sync_due() {
                sync(&*host, &log);
                last_sync = now;
            }
        }
        let round = host.begin(
            &mut batch,
            BATCH_BYTES,
            Durable {
                sync_at: durable.map(|interval| last_sync + interval),
                retry_at,
            },
        );
        match round {
            Round::Stop => break,
            Round::Idle(timeout) => {
                match timeout {
                    Some(t) => std::thread::park_timeout(t),
                    None => std::thread::park(),
                }
                if retry_at.is_some_and(|at| Instant::now() >= at) {
                    // Woken by the consumer or the retry interval: try again.
                    retry_at = None;
                    host.clear_failing();
                }
                continue;
            }
            Round::Write => {}
        }
        let mut failure = None;
        let (written, disk_bytes, version) = {
            let mut guard = lock_log(&log);
            let (written, error) = guard.log.append_batch(
                batch
                    .iter()
                    .map(|(meta, message)| (*meta, message.as_bytes())),
            );
            if let Some(e) = error {
                let disk_error = matches!(e, SpillError::Io { .. });
                if disk_error {
                    tracing::warn!(error = %e, "spill: a write failed; the fallback takes over until one succeeds");
                }
                failure = Some((e.refusal(), disk_error));
            }
            if durable == Some(Duration::ZERO) && written > 0 {
                if let Err(e) = guard.log.sync() {
                    tracing::warn!(error = %e, "spill: a sync failed");
                }
            }
            guard.version += 1;
            (written, guard.log.disk_bytes(), guard.version)
        };
        retry_at = failure.as_ref().map(|_| Instant::now() + RETRY_AFTER);
        host.end(written, failure, disk_bytes, version);
    }
    if durable.is_some() {
        sync(&*host, &log);
    }
}

fn sync(host: &dyn WriterHost, log: &SharedLog) {
    let mut guard = lock_log(log);
    match guard.log.sync() {
        Ok(()) => host.synced(),
        Err(e) => {
            tracing::warn!(error = %e, "spill: a sync failed; trying again at the next interval")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A buffer waiting for a durable directory that another buffer of
    /// this process releases must get it: the lock file is closed before
    /// the directory leaves `HELD`, so the waiter never finds the flock
    /// still taken (which CI saw as `Locked` on an App reconnecting on its
    /// directory).
    #[test]
    fn a_released_directory_is_taken_by_the_waiter_every_time() {
        let dir = tempfile::tempdir().unwrap();
        for round in 0..300 {
            let first = lock_dir(dir.path()).expect("the first lock");
            let path = dir.path().to_path_buf();
            let waiter = std::thread::spawn(move || lock_dir(&path).map(drop));
            // Let the waiter reach the wait on HELD most rounds.
            if round % 2 == 0 {
                std::thread::sleep(Duration::from_micros(200));
            }
            drop(first);
            waiter
                .join()
                .unwrap()
                .unwrap_or_else(|e| panic!("round {round}: the waiter got {e:?}"));
        }
    }
}
