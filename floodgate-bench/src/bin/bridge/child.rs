//! A run of `floodgate bridge` as a child process: started, watched through
//! the broker until the target holds every message, measured (its peak
//! resident set), then stopped with SIGTERM as a user would.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tokio::runtime::Runtime;

use crate::broker_client::{Client, Target};
use crate::brokers::{dies_with_parent, Broker};

/// How often the broker is asked how many messages it holds.
pub(crate) const POLL: Duration = Duration::from_millis(2);

/// How long the bridge may take to end after SIGTERM (its drain deadline
/// is 10 s by default) before it is killed.
const STOP_WITHIN: Duration = Duration::from_secs(20);

/// What one run of the bridge gave.
pub(crate) struct BridgeRun {
    /// From just before the child's start until the broker held `n`
    /// messages.
    pub(crate) elapsed: Duration,
    /// From just before the child's start until the broker held its first
    /// message (as polled): the bridge's start-up, within `elapsed`.
    pub(crate) first: Duration,
    /// The child's VmHWM just before SIGTERM, in KiB.
    pub(crate) peak_kib: u64,
    /// How the child ended after SIGTERM, when not with success.
    pub(crate) exit: Option<String>,
}

/// The `floodgate` binary: `--floodgate PATH`, else `floodgate` beside this
/// bench in the target directory (`target/release/floodgate`).
pub(crate) fn default_floodgate() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("floodgate")))
        .unwrap_or_else(|| PathBuf::from("target/release/floodgate"))
}

/// Checks that `floodgate` runs and has the `bridge` command.
pub(crate) fn check_floodgate(floodgate: &Path) -> Result<(), String> {
    let build = "build it: cargo build --release -p floodgate-cli (or give --floodgate PATH; \
                 --only-limit runs the plain loops alone)";
    let out = Command::new(floodgate)
        .args(["bridge", "--help"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}; {build}", floodgate.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} bridge --help failed ({}): {}; {build}",
            floodgate.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

/// One run of the bridge: from `feed_url` into `target` at `broker`, until
/// the broker holds `n` messages, within `limit`.
pub(crate) struct Job<'a> {
    pub(crate) floodgate: &'a Path,
    pub(crate) broker: &'a Broker,
    pub(crate) feed_url: String,
    pub(crate) target: &'a Target,
    pub(crate) n: u64,
    pub(crate) limit: Duration,
}

/// Runs `job`, polling the broker through `client` every [`POLL`], then
/// stops the bridge. The caller checks the stored messages after.
pub(crate) fn run(rt: &Runtime, client: &mut Client, job: &Job) -> Result<BridgeRun, String> {
    let Job {
        floodgate,
        broker,
        ref feed_url,
        target,
        n,
        limit,
    } = *job;
    let log = tempfile::NamedTempFile::new().map_err(|e| format!("a log file: {e}"))?;
    let mut command = Command::new(floodgate);
    command
        .arg("bridge")
        .arg(feed_url)
        .args(target.bridge_args(broker))
        .stdin(Stdio::null())
        .stdout(log.reopen().map_err(|e| e.to_string())?)
        .stderr(log.reopen().map_err(|e| e.to_string())?);
    // Spawned from the main thread, which outlives it (PR_SET_PDEATHSIG
    // follows the thread that forked).
    let start = Instant::now();
    let mut child = dies_with_parent(&mut command)
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", floodgate.display()))?;
    let mut first = None;
    let reached = rt.block_on(async {
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "the bridge ended ({status}) before the broker held every message"
                ));
            }
            let count = client.count(target).await?.unwrap_or(0);
            if count > 0 && first.is_none() {
                first = Some(start.elapsed());
            }
            if count >= n {
                return Ok(start.elapsed());
            }
            if start.elapsed() > limit {
                return Err(format!(
                    "the broker held {count} of {n} messages after {limit:?}"
                ));
            }
            tokio::time::sleep(POLL).await;
        }
    });
    let peak_kib = floodgate_bench::child::vm_hwm_kib_of(&child.id().to_string());
    let exit = stop(&mut child);
    let tail = || {
        let text = std::fs::read_to_string(log.path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(5)..].join(" / ")
    };
    match (reached, exit) {
        (Ok(elapsed), Ok(status)) => Ok(BridgeRun {
            elapsed,
            first: first.unwrap_or(elapsed),
            peak_kib,
            exit: (!status.success()).then(|| format!("{status}: {}", tail())),
        }),
        (Err(e), _) | (_, Err(e)) => Err(format!("{e}; the bridge's last words: {}", tail())),
    }
}

/// SIGTERM, then SIGKILL after [`STOP_WITHIN`].
fn stop(child: &mut Child) -> Result<ExitStatus, String> {
    if let Ok(Some(status)) = child.try_wait() {
        return Ok(status);
    }
    // SAFETY: kill has no memory preconditions; the pid is our child's,
    // not reaped yet.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let deadline = Instant::now() + STOP_WITHIN;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "the bridge did not end within {STOP_WITHIN:?} of SIGTERM: killed"
                ));
            }
        }
    }
}
