//! The brokers of a run: `nats-server -js` and `redis-server`, each a child
//! of this process on a free loopback port with a temporary directory of
//! its own, as floodgate's broker tests start them
//! (`floodgate/tests/brokers/`).
//!
//! A broker dies with the bench: killed (SIGKILL) on drop, and, through
//! `PR_SET_PDEATHSIG`, when the bench itself is killed and no drop runs.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// What to run when a broker's binary is missing.
pub(crate) const INSTALL_HINT: &str =
    "install the brokers: bash -c 'source scripts/common.sh && ensure_nats && ensure_redis'";

/// How long a broker may take to start listening.
const READY_WITHIN: Duration = Duration::from_secs(10);

/// Which broker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Nats,
    Redis,
}

impl Kind {
    pub(crate) fn parse(name: &str) -> Result<Kind, String> {
        match name {
            "nats" => Ok(Kind::Nats),
            "redis" => Ok(Kind::Redis),
            other => Err(format!("--brokers: nats or redis, not {other}")),
        }
    }

    /// The name in the table.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Kind::Nats => "NATS JetStream",
            Kind::Redis => "Redis Streams",
        }
    }

    fn program_name(self) -> &'static str {
        match self {
            Kind::Nats => "nats-server",
            Kind::Redis => "redis-server",
        }
    }

    /// The broker's binary: for NATS `$FLOODGATE_NATS_SERVER` if set (as
    /// the tests take it), else the first on PATH or in the sbin
    /// directories, where Debian puts nats-server and which are not on
    /// every PATH.
    pub(crate) fn program(self) -> Result<PathBuf, String> {
        if self == Kind::Nats {
            if let Some(path) = std::env::var_os("FLOODGATE_NATS_SERVER") {
                return Ok(path.into());
            }
        }
        std::env::var_os("PATH")
            .into_iter()
            .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
            .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
            .map(|dir| dir.join(self.program_name()))
            .find(|path| path.is_file())
            .ok_or_else(|| format!("{} not found; {INSTALL_HINT}", self.program_name()))
    }

    /// `nats-server: v2.9.10`, `Redis server v=7.0.15 ...`: the first line
    /// of the binary's `--version`.
    pub(crate) fn version(self) -> String {
        let Ok(program) = self.program() else {
            return "not installed".into();
        };
        Command::new(&program)
            .arg("--version")
            .stdin(Stdio::null())
            .output()
            .ok()
            .and_then(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .next()
                    .map(str::to_string)
            })
            // Redis goes on with its build's hash and allocator.
            .map(|line| line.split(" sha=").next().unwrap_or(&line).to_string())
            .unwrap_or_else(|| format!("{} (version unknown)", program.display()))
    }
}

/// A running broker (see the module docs).
pub(crate) struct Broker {
    pub(crate) kind: Kind,
    child: Child,
    pub(crate) port: u16,
    /// The broker's store and log; removed on drop.
    dir: tempfile::TempDir,
}

impl Broker {
    /// Starts `kind` on a free port and waits until it listens.
    pub(crate) fn start(kind: Kind) -> Result<Broker, String> {
        let program = kind.program()?;
        let dir = tempfile::Builder::new()
            .prefix(&format!("floodgate-bridge-bench-{}-", kind.program_name()))
            .tempdir()
            .map_err(|e| format!("cannot make a temporary directory: {e}"))?;
        let port = free_port()?;
        let log = std::fs::File::create(dir.path().join("broker.log"))
            .map_err(|e| format!("cannot create the broker's log: {e}"))?;
        let mut command = Command::new(&program);
        match kind {
            Kind::Nats => command
                .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
                .arg(dir.path().join("store")),
            // In memory only: no snapshot, no append-only file.
            Kind::Redis => command
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--daemonize", "no", "--save", "", "--appendonly", "no"])
                .arg("--dir")
                .arg(dir.path()),
        };
        let child = dies_with_parent(&mut command)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}; {INSTALL_HINT}", program.display()))?;
        let mut broker = Broker {
            kind,
            child,
            port,
            dir,
        };
        broker.wait_ready()?;
        Ok(broker)
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "{} exited ({status}) at start:\n{}",
                    self.kind.program_name(),
                    self.log()
                ));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{} not listening on {addr} after {READY_WITHIN:?}:\n{}",
                    self.kind.program_name(),
                    self.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The last lines of the broker's log, for an error.
    pub(crate) fn log(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("broker.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// `nats://127.0.0.1:PORT` or `redis://127.0.0.1:PORT`.
    pub(crate) fn url(&self) -> String {
        match self.kind {
            Kind::Nats => format!("nats://127.0.0.1:{}", self.port),
            Kind::Redis => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    /// Where its files are (NATS: the JetStream store).
    pub(crate) fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port that nothing listens on (just now).
fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free loopback port: {e}"))
}

/// Makes the process `command` starts die (SIGKILL) when the thread that
/// started it ends, even if the bench is killed and no `Drop` runs. Start
/// it from the main thread.
pub(crate) fn dies_with_parent(command: &mut Command) -> &mut Command {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: prctl is async-signal-safe; nothing else runs here.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    command
}
