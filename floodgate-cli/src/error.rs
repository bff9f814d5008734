//! What can end a `floodgate` command, and the exit code for each.
//!
//! The command prints one line, `floodgate: <the error>`, on stderr and
//! exits with [`CliError::exit_code`]:
//!
//! | code | meaning |
//! |---:|---|
//! | 0 | clean close (or the command finished) |
//! | 1 | any other error (I/O, the consumer fell behind under `--policy disconnect`, ...) |
//! | 2 | bad command line (clap's own code), an invalid URL, or an option not supported yet |
//! | 3 | could not connect: refused, unresolvable, the proxy refused or failed, or the handshake failed (e.g. 404) |
//! | 4 | the connection broke: protocol error (with its close code), closed without a close frame, or closed by the server with a code other than 1000 |
//! | 5 | timeout: connect/read timeout (also through a proxy) or no pong within `--ping-timeout` |

use floodgate::ErrorKind;

/// An error that ends a command.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A WebSocket error from the library.
    #[error(transparent)]
    WebSocket(#[from] floodgate::Error),
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
