//! The client's error type, split by blame.
//!
//! [`Error`] is a box around [`ErrorKind`] so that `Result<Message, Error>`
//! stays two words on the receive hot path. Match on [`Error::kind`] to tell
//! what happened: the network ([`ErrorKind::Io`], [`ErrorKind::Connect`]), a
//! timeout, the server refusing the upgrade ([`ErrorKind::Handshake`]), the
//! server breaking the protocol ([`ErrorKind::Protocol`]), the application
//! misusing the API ([`ErrorKind::Usage`]), or the connection having ended
//! ([`ErrorKind::ConnectionClosed`], [`ErrorKind::AbnormalClosure`],
//! [`ErrorKind::AlreadyClosed`]).

use floodgate_proto::tunnel::TunnelError;
use floodgate_proto::{CloseFrame, HandshakeError, ProtocolError, UsageError};
use std::fmt;
use std::io;

/// What went wrong; see [`Error::kind`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The URL could not be used.
    #[error("invalid WebSocket URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// The feature is not implemented in this version.
    #[error("{0}")]
    Unsupported(String),
    /// A builder option was invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// No TCP connection could be made.
    #[error("could not connect to {target}: {source}; check the host, port and that a server is listening")]
    Connect {
        /// Host and port (and each address tried).
        target: String,
        /// The last error met.
        #[source]
        source: io::Error,
    },
    /// The TLS connection to the server failed; `failure` says which check.
    #[error("TLS with {host} failed: {failure}")]
    Tls {
        /// The host name verified (the URL's host, or the configured
        /// server name).
        host: String,
        /// What failed.
        failure: crate::tls::TlsFailure,
    },
    /// A redirect of the handshake was not followed: too many of them, a
    /// `Location` that is not a WebSocket URL, or a `wss://` to `ws://`
    /// downgrade.
    #[error("the handshake with {from} was redirected to {to:?}, not followed: {reason}")]
    Redirect {
        /// The URL that answered with the redirect.
        from: String,
        /// Its `Location`.
        to: String,
        /// Why it was not followed.
        reason: String,
    },
    /// An operation did not finish within its timeout. The connection is
    /// still usable after a read or write timeout.
    #[error("timed out {0}")]
    Timeout(&'static str),
    /// Reading or writing the transport failed.
    #[error("I/O error on the WebSocket transport: {0}")]
    Io(#[from] io::Error),
    /// The server did not accept the upgrade.
    #[error("WebSocket handshake failed: {0}")]
    Handshake(#[from] HandshakeError),
    /// The server broke the WebSocket protocol; the connection was failed
    /// with the close code the error implies.
    #[error("the server broke the WebSocket protocol, connection closed with code {code}: {0}", code = .0.close_code())]
    Protocol(#[from] ProtocolError),
    /// The application asked for something the protocol does not allow.
    #[error("{0}")]
    Usage(#[from] UsageError),
    /// The close handshake happened: the peer closed (or answered our close)
    /// with this frame (`None`: a close without status code).
    #[error("the WebSocket connection was closed{}", closed_with(.0))]
    ConnectionClosed(Option<CloseFrame>),
    /// The transport ended without a close handshake (close code 1006).
    #[error("the server ended the connection without a WebSocket close (code 1006)")]
    AbnormalClosure,
    /// The buffer's policy ended the connection (the `Disconnect` policy:
    /// the consumer fell behind).
    #[error("{0}")]
    Buffer(#[from] crate::buffer::BufferError),
    /// A function the application gave the connection (classifier,
    /// conflation key, lag callback) panicked on the reader thread; the
    /// connection was closed with code 1011.
    #[error("a callback panicked on the connection's reader thread ({0}); the connection was closed with code 1011")]
    Panicked(String),
    /// No pong came back within the ping timeout of a ping: the
    /// connection looked dead and was shut down (the keepalive of
    /// [`crate::App::run_forever`]).
    #[error("no pong within {0:?} of a ping: the connection looked dead and was dropped (raise the ping timeout if the server is only slow)")]
    NoPong(std::time::Duration),
    /// Reconnecting gave up after the maximum number of attempts in a row.
    #[error(
        "gave up reconnecting after {attempts} attempts in a row; the last one failed: {last}"
    )]
    GaveUp {
        /// Attempts made.
        attempts: u32,
        /// The last attempt's error.
        #[source]
        last: Error,
    },
    /// The connection was already closed by an earlier call.
    #[error("the WebSocket connection is already closed; connect again to go on")]
    AlreadyClosed,
    /// The proxy could not be reached, or did not open the tunnel to the
    /// server (see [`ProxyError`] for what it answered).
    #[error("{proxy} {reason} (tunnel to {target})")]
    Proxy {
        /// The proxy, e.g. `SOCKS5 proxy 127.0.0.1:1080` (never its
        /// credentials).
        proxy: String,
        /// The `host:port` the tunnel was asked for.
        target: String,
        /// What went wrong.
        #[source]
        reason: ProxyError,
    },
}

/// What went wrong while connecting through a proxy, inside
/// [`ErrorKind::Proxy`]. Each message reads after the proxy's name:
/// "SOCKS5 proxy 127.0.0.1:1080 refused: connection refused by destination
/// host (reply 5)".
///
/// Reaching the proxy is this type's ([`Unreachable`](Self::Unreachable),
/// [`Resolve`](Self::Resolve), [`TimedOut`](Self::TimedOut),
/// [`Io`](Self::Io)); what the proxy answered is the protocol core's
/// [`TunnelError`], in [`ProxyError::Tunnel`].
///
/// ```
/// use floodgate::proxy::{Socks5Reply, TunnelError};
/// use floodgate::{ErrorKind, ProxyError};
///
/// fn refused_by_destination(e: &floodgate::Error) -> bool {
///     matches!(
///         e.kind(),
///         ErrorKind::Proxy {
///             reason: ProxyError::Tunnel(TunnelError::Socks5Refused {
///                 reply: Socks5Reply::ConnectionRefused
///             }),
///             ..
///         }
///     )
/// }
/// # let _ = refused_by_destination;
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// No TCP connection to the proxy itself could be made.
    #[error("could not be reached: {0}; check the proxy's host and port and that it is running")]
    Unreachable(#[source] io::Error),
    /// The proxy's host name did not resolve, or (SOCKS4, SOCKS5 with
    /// local resolution) the server's host name did not.
    #[error("could not be used: the name {host:?} did not resolve: {source}")]
    Resolve {
        /// The name that did not resolve.
        host: String,
        /// The resolver's error.
        #[source]
        source: io::Error,
    },
    /// Connecting to the proxy and its handshake took longer than
    /// `connect_timeout`.
    #[error("did not finish its handshake within connect_timeout; the proxy or the path to the server is too slow, or it is not a proxy of this kind")]
    TimedOut,
    /// Reading from or writing to the proxy failed during the handshake.
    #[error("failed during its handshake: {0}")]
    Io(#[source] io::Error),
    /// The proxy refused the tunnel, closed the connection during its
    /// handshake, or answered something that is not its protocol (or the
    /// request cannot be expressed in it); the variant carries what it
    /// answered.
    #[error(transparent)]
    Tunnel(#[from] TunnelError),
}

impl ProxyError {
    /// The HTTP status, for an HTTP proxy that answered `CONNECT` with
    /// one other than 2xx ([`TunnelError::HttpStatus`]).
    pub fn http_status(&self) -> Option<u16> {
        match self {
            ProxyError::Tunnel(e) => e.http_status(),
            _ => None,
        }
    }

    /// Whether the proxy wants credentials or refused the ones given:
    /// HTTP 407 (and 401, which tinyproxy sends for wrong credentials),
    /// or a SOCKS5 proxy that wants a user name and password or refused
    /// them ([`TunnelError::is_auth`]).
    pub fn is_auth(&self) -> bool {
        matches!(self, ProxyError::Tunnel(e) if e.is_auth())
    }
}

fn closed_with(frame: &Option<CloseFrame>) -> String {
    match frame {
        Some(frame) => format!(" with code {frame}"),
        None => " without status code".to_owned(),
    }
}

/// The error of every fallible floodgate call.
///
/// ```
/// # fn main() {
/// match floodgate::connect("ws://127.0.0.1:1/") {
///     Err(e) if matches!(e.kind(), floodgate::ErrorKind::Connect { .. }) => {}
///     other => panic!("expected a connect error, got {other:?}"),
/// }
/// # }
/// ```
pub struct Error(Box<ErrorKind>);

impl Error {
    /// What went wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.0
    }

    /// The error's kind, by value.
    pub fn into_kind(self) -> ErrorKind {
        *self.0
    }

    /// Whether the connection ended with a close handshake (or was already
    /// closed): the normal end of a connection, not a failure.
    pub fn is_closed(&self) -> bool {
        matches!(
            *self.0,
            ErrorKind::ConnectionClosed(_) | ErrorKind::AlreadyClosed
        )
    }

    /// Whether a read or write timed out (the connection is still usable).
    pub fn is_timeout(&self) -> bool {
        matches!(*self.0, ErrorKind::Timeout(_))
    }

    /// The close frame, if the connection was closed by a close handshake.
    pub fn close_frame(&self) -> Option<&CloseFrame> {
        match &*self.0 {
            ErrorKind::ConnectionClosed(frame) => frame.as_ref(),
            _ => None,
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&*self.0)
    }
}

/// For conversions that cannot fail (`Proxy` into `Proxy` in
/// [`ClientBuilder::proxy`](crate::ClientBuilder::proxy)).
impl From<std::convert::Infallible> for Error {
    fn from(never: std::convert::Infallible) -> Self {
        match never {}
    }
}

impl From<ErrorKind> for Error {
    fn from(kind: ErrorKind) -> Self {
        Error(Box::new(kind))
    }
}

macro_rules! error_from {
    ($($source:ty),*) => {$(
        impl From<$source> for Error {
            fn from(err: $source) -> Self {
                Error(Box::new(ErrorKind::from(err)))
            }
        }
    )*};
}

error_from!(
    io::Error,
    HandshakeError,
    ProtocolError,
    UsageError,
    crate::buffer::BufferError
);

/// What a caught panic said (its `&str` or `String` payload), for
/// [`ErrorKind::Panicked`].
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".into())
}

/// The result of floodgate calls.
pub type Result<T, E = Error> = std::result::Result<T, E>;
