//! What can end a `floodgate` command, and the exit code for each.
//!
//! The command prints one line, `floodgate: <the error>`, on stderr and
//! exits with [`CliError::exit_code`]:
//!
//! | code | meaning |
//! |---:|---|
//! | 0 | clean close (or the command finished) |
//! | 1 | any other error (I/O, the consumer fell behind under `--policy disconnect`, the spill directory could not be opened or the disk refused a message under `--policy spill`, ...) |
//! | 2 | bad command line (clap's own code), an invalid URL, an option not supported yet, or a `--max-disk` too small for one record |
//! | 3 | could not connect: refused, unresolvable, the proxy refused or failed, or the handshake failed (e.g. 404) |
//! | 4 | the connection broke: protocol error (with its close code), closed without a close frame, or closed by the server with a code other than 1000 |
//! | 5 | timeout: connect/read timeout (also through a proxy) or no pong within `--ping-timeout` |

use floodgate::buffer::{BufferError, SpillError, SpillLimit, SpillRefusal};
use floodgate::ErrorKind;
use std::io;

/// An error that ends a command.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A WebSocket error from the library.
    #[error(transparent)]
    WebSocket(floodgate::Error),
    /// `--policy spill`: the spill directory could not be opened
    /// ([`ErrorKind::Spill`]), or the disk refused a message under
    /// `--spill-fallback disconnect` ([`BufferError::SpillRefused`]);
    /// worded with the command's own options.
    #[error("{}", spill_line(.0))]
    Spill(floodgate::Error),
    /// The embedded server (of `serve`, `demo`, `bench`) failed.
    #[error(transparent)]
    Server(#[from] floodgate_server::Error),
    /// An I/O error outside the connection (stdin, stdout, a file).
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// An option that makes no sense as given, or that this build cannot
    /// honour yet.
    #[error("{0}")]
    Usage(String),
    /// The server closed with a code other than 1000 (normal closure).
    #[error("the server closed the connection with code {code}{}", reason_suffix(.reason))]
    ClosedWithError { code: u16, reason: String },
    /// Anything else, already worded for the user.
    #[error("{0}")]
    Other(String),
}

impl From<floodgate::Error> for CliError {
    fn from(e: floodgate::Error) -> Self {
        match e.kind() {
            ErrorKind::Spill(_) | ErrorKind::Buffer(BufferError::SpillRefused(_)) => {
                CliError::Spill(e)
            }
            _ => CliError::WebSocket(e),
        }
    }
}

/// The one line of a [`CliError::Spill`]: what failed, then what to do,
/// in terms of the command's options.
fn spill_line(e: &floodgate::Error) -> String {
    match e.kind() {
        ErrorKind::Spill(spill) => spill_open_line(spill),
        ErrorKind::Buffer(BufferError::SpillRefused(refusal)) => spill_refused_line(refusal),
        _ => e.to_string(),
    }
}

fn spill_open_line(e: &SpillError) -> String {
    match e {
        SpillError::Io { op, path, source } => {
            let advice = match source.kind() {
                io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => {
                    "give --spill-dir a directory you can write to"
                }
                io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => {
                    "free space on that disk or give --spill-dir a directory on another one"
                }
                io::ErrorKind::NotADirectory | io::ErrorKind::AlreadyExists => {
                    "--spill-dir must name a directory (or a path where one can be created)"
                }
                _ => "check that directory, or give --spill-dir another one",
            };
            format!(
                "the spill to disk could not start: could not {op} {}: {source}; {advice}",
                path.display()
            )
        }
        SpillError::LimitTooSmall {
            limit: SpillLimit::MaxDiskBytes,
            value,
            min,
        } => format!("--max-disk {value} is too small for the spill: give at least {min} bytes"),
        SpillError::Locked { dir } => format!(
            "the spill directory {} is in use by another connection (another floodgate \
             --durable on it?); give each durable run a --spill-dir of its own",
            dir.display()
        ),
        other => format!("the spill to disk could not start: {other}"),
    }
}

fn spill_refused_line(refusal: &SpillRefusal) -> String {
    let (what, remedy) = match refusal {
        SpillRefusal::DiskBudget { used, max } => (
            format!(
                "the spill's disk budget is used up ({used} of the {max} bytes of --max-disk hold \
                 messages not yet printed)"
            ),
            "raise --max-disk, or consume faster",
        ),
        SpillRefusal::TooLarge { len, max } => (
            format!("a message of {len} bytes is larger than --max-disk can hold ({max} bytes)"),
            "raise --max-disk",
        ),
        SpillRefusal::WriterBehind { queued, .. } => (
            format!(
                "the disk is slower than the feed ({queued} bytes already waited for the \
                 spill's writer)"
            ),
            "give --spill-dir a directory on a faster disk",
        ),
        SpillRefusal::Disk {
            op,
            path,
            kind,
            os_error,
        } => (
            format!(
                "the spill could not {op} {}: {kind}{}",
                path.display(),
                os_error
                    .map(|code| format!(" (os error {code})"))
                    .unwrap_or_default()
            ),
            "free space on that disk or give --spill-dir another one",
        ),
        other => (other.to_string(), "see --spill-fallback"),
    };
    format!(
        "{what}, so the connection was closed with code 1008 (--spill-fallback disconnect, the \
         default); {remedy}, or choose --spill-fallback block (wait, slowing the server) or \
         drop-newest (drop and count)"
    )
}

fn reason_suffix(reason: &str) -> String {
    if reason.is_empty() {
        String::new()
    } else {
        format!(": {reason}")
    }
}

impl CliError {
    /// The process exit code (see the [module docs](self)).
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::WebSocket(e) => websocket_exit_code(e),
            CliError::Spill(e) => match e.kind() {
                ErrorKind::Spill(SpillError::LimitTooSmall { .. }) => 2,
                _ => 1,
            },
            CliError::Io(_) | CliError::Server(_) | CliError::Other(_) => 1,
            CliError::Usage(_) => 2,
            CliError::ClosedWithError { .. } => 4,
        }
    }
}

fn websocket_exit_code(e: &floodgate::Error) -> u8 {
    match e.kind() {
        ErrorKind::Proxy {
            reason: floodgate::ProxyError::TimedOut,
            ..
        } => 5,
        ErrorKind::Resolve { .. }
        | ErrorKind::Connect { .. }
        | ErrorKind::Handshake(_)
        | ErrorKind::Tls { .. }
        | ErrorKind::Redirect { .. }
        | ErrorKind::Proxy { .. } => 3,
        ErrorKind::InvalidUrl { .. } | ErrorKind::Unsupported(_) | ErrorKind::Config(_) => 2,
        ErrorKind::Protocol(_) | ErrorKind::AbnormalClosure | ErrorKind::ConnectionClosed(_) => 4,
        ErrorKind::Timeout { .. } => 5,
        // Reconnecting gave up: the code of what the last attempt met.
        ErrorKind::GaveUp { last, .. } => websocket_exit_code(last),
        ErrorKind::Io(io) if is_timeout(io) => 5,
        _ => 1,
    }
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
    )
}
