//! The client's error type: what went wrong, and in which phase.
//!
//! [`Error`] is a box around [`ErrorKind`] so that `Result<Message, Error>`
//! stays two words on the receive hot path. Match on [`Error::kind`] to tell
//! what happened; every kind carries data, not prose: the reasons are enums
//! of their own ([`ConfigError`], [`UrlError`], [`RedirectError`],
//! [`UnsupportedError`], [`TimeoutKind`], [`ProxyError`],
//! [`TlsFailure`], and from the other layers
//! [`HandshakeError`], [`ProtocolError`], [`UsageError`] and
//! [`crate::buffer::BufferError`]), so a caller matches rather than
//! searches a message. Each message says what happened and what to change.
//!
//! [`Error::phase`] sorts every error into one of three [`Phase`]s, for
//! callers that only need to know who to blame and whether to retry:
//!
//! - [`Phase::Dial`]: no connection was made. The options
//!   ([`ErrorKind::Config`]), the URL ([`ErrorKind::InvalidUrl`]), DNS
//!   ([`ErrorKind::Resolve`]), TCP ([`ErrorKind::Connect`]), the proxy
//!   ([`ErrorKind::Proxy`]), TLS ([`ErrorKind::Tls`]), the WebSocket
//!   handshake ([`ErrorKind::Handshake`], [`ErrorKind::Redirect`]) and their
//!   timeouts ([`TimeoutKind::Connect`], [`TimeoutKind::Handshake`]). Every
//!   error a `connect` call returns is in this phase, an I/O error during
//!   the handshake too.
//! - [`Phase::Connection`]: a live connection failed or ended: I/O
//!   ([`ErrorKind::Io`]), the server breaking the protocol
//!   ([`ErrorKind::Protocol`]), the close ([`ErrorKind::ConnectionClosed`],
//!   [`ErrorKind::AbnormalClosure`], [`ErrorKind::AlreadyClosed`]), the
//!   buffer's `Disconnect` policy ([`ErrorKind::Buffer`]), a misuse of the
//!   API ([`ErrorKind::Usage`]), a read, write, close or pong timeout, and a
//!   panic in a callback on the reader thread.
//! - [`Phase::App`]: the [`crate::App`] runner's own: reconnecting gave up
//!   ([`ErrorKind::GaveUp`]) or a handler panicked ([`ErrorKind::Panicked`]
//!   with a handler's [`Callback`]).
//!
//! ```
//! use floodgate::{ErrorKind, Phase, TimeoutKind};
//!
//! let err = floodgate::connect("ws://127.0.0.1:1/").unwrap_err();
//! assert_eq!(err.phase(), Phase::Dial);
//! match err.kind() {
//!     ErrorKind::Connect { .. } => println!("nothing listens there: {err}"),
//!     ErrorKind::Timeout { kind: TimeoutKind::Connect, .. } => println!("too slow: {err}"),
//!     other => println!("another failure: {other}"),
//! }
//! ```

mod config;
mod tls;

pub use config::{ConfigError, PemItem, ProxyConfigError, TlsConfigError};
pub use tls::TlsFailure;

use crate::buffer::{BufferConfigError, BufferError, RecvError, SpillError};
use floodgate_proto::tunnel::TunnelError;
use floodgate_proto::{CloseFrame, HandshakeError, ProtocolError, UsageError};
use std::fmt;
use std::io;
use std::time::Duration;

/// Where an error arose; see [`Error::phase`] and the [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Before a connection was open: options, URL, DNS, TCP, proxy, TLS,
    /// the WebSocket handshake and its redirects. Nothing was delivered.
    Dial,
    /// On a live connection: it failed, timed out or ended.
    Connection,
    /// In the [`crate::App`] runner around the connections: reconnecting
    /// gave up, or a handler panicked.
    App,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Dial => "dial",
            Phase::Connection => "connection",
            Phase::App => "app",
        })
    }
}

/// What went wrong; see [`Error::kind`]. [`Error::phase`] says in which
/// phase each kind arises.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    // ----- dialing ---------------------------------------------------------
    /// The URL could not be used (dial).
    #[error("invalid WebSocket URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// Why it cannot be used.
        reason: UrlError,
    },
    /// The options ask for something this build or platform cannot do
    /// (dial).
    #[error("{0}")]
    Unsupported(UnsupportedError),
    /// An option, or a combination of options, was invalid (dial: checked
    /// before any connection is made).
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    /// The server's host name did not resolve (dial).
    #[error("could not resolve {host}:{port}: {source}; check the host name and the DNS setup")]
    Resolve {
        /// The host name from the URL.
        host: String,
        /// The port from the URL.
        port: u16,
        /// The resolver's error (`NotFound` when the name resolved to no
        /// address).
        #[source]
        source: io::Error,
    },
    /// No TCP connection could be made (dial).
    #[error("could not connect to {target}: {source}; check the host, port and that a server is listening")]
    Connect {
        /// Host and port (and each address tried).
        target: String,
        /// The last error met.
        #[source]
        source: io::Error,
    },
    /// The proxy could not be reached, or did not open the tunnel to the
    /// server (dial; see [`ProxyError`] for what it answered).
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
    /// The TLS connection to the server failed; `failure` says which check
    /// (dial).
    #[error("TLS with {host} failed: {failure}")]
    Tls {
        /// The host name verified (the URL's host, or the configured
        /// server name).
        host: String,
        /// What failed.
        failure: TlsFailure,
    },
    /// The server did not accept the upgrade (dial).
    #[error("WebSocket handshake failed: {0}")]
    Handshake(#[from] HandshakeError),
    /// A redirect of the handshake was not followed (dial).
    #[error("the handshake with {from} was redirected to {to:?}, not followed: {reason}")]
    Redirect {
        /// The URL that answered with the redirect.
        from: String,
        /// Its `Location`.
        to: String,
        /// Why it was not followed.
        reason: RedirectError,
    },

    // ----- dialing or a live connection ---------------------------------------
    /// An operation did not finish within its timeout: `kind` says which
    /// (connect and handshake: dial; the others: connection). After a
    /// [`TimeoutKind::Read`] or [`TimeoutKind::Write`] the connection is
    /// still usable; see [`TimeoutKind`].
    #[error("{}", timeout_message(*kind, *after))]
    Timeout {
        /// Which timeout.
        kind: TimeoutKind,
        /// The timeout's length, when the code that saw it pass knew it.
        after: Option<Duration>,
    },

    // ----- a live connection ----------------------------------------------
    /// Reading or writing the transport failed (connection; dial when it
    /// happened during the handshake).
    #[error("I/O error on the WebSocket transport: {0}")]
    Io(#[from] io::Error),
    /// The server broke the WebSocket protocol; the connection was failed
    /// with the close code the error implies (connection).
    #[error("the server broke the WebSocket protocol, connection closed with code {code}: {0}", code = .0.close_code())]
    Protocol(#[from] ProtocolError),
    /// The application asked for something the protocol does not allow
    /// (connection).
    #[error("{0}")]
    Usage(#[from] UsageError),
    /// The close handshake happened: the peer closed (or answered our close)
    /// with this frame (`None`: a close without status code) (connection).
    #[error("the WebSocket connection was closed{}", closed_with(.0))]
    ConnectionClosed(Option<CloseFrame>),
    /// The transport ended without a close handshake (close code 1006)
    /// (connection).
    #[error("the server ended the connection without a WebSocket close (code 1006)")]
    AbnormalClosure,
    /// The connection was already closed by an earlier call (connection).
    #[error("the WebSocket connection is already closed; connect again to go on")]
    AlreadyClosed,
    /// The buffer's policy ended the connection (the `Disconnect` policy:
    /// the consumer fell behind) (connection).
    #[error("{0}")]
    Buffer(#[from] BufferError),
    /// The buffer's spill directory ([`Overflow::Spill`]) could not be
    /// opened when the buffered connection started, or is in use by
    /// another connection ([`SpillError::Locked`]) (connection).
    ///
    /// [`Overflow::Spill`]: crate::buffer::Overflow::Spill
    #[error("the buffered connection could not start its spill to disk: {0}")]
    Spill(#[from] SpillError),

    // ----- a live connection or the App -------------------------------------
    /// A function the application gave floodgate panicked; `callback` says
    /// which. On the reader thread ([`Callback::Reader`]: connection) the
    /// connection was closed with code 1011; in an App handler (App) the
    /// App went on.
    #[error("{}", panicked_message(*callback, message))]
    Panicked {
        /// Which function panicked.
        callback: Callback,
        /// What the panic said (its `&str` or `String` payload).
        message: String,
    },

    // ----- the App --------------------------------------------------------
    /// Reconnecting gave up after the maximum number of attempts in a row
    /// (App).
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
}

/// Which timeout passed, in [`ErrorKind::Timeout`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TimeoutKind {
    /// Opening the TCP connection (and the proxy's tunnel) took longer than
    /// `connect_timeout` (dial).
    Connect,
    /// The TLS or WebSocket handshake did not finish within
    /// `connect_timeout`, which covers the whole connect (dial).
    Handshake,
    /// No data (or, on a buffered connection, no message) came within
    /// `read_timeout` or the `recv_timeout` given. The connection is still
    /// usable: call again to keep waiting (connection).
    Read,
    /// A write took longer than `write_timeout`: the server is not reading.
    /// The connection is still usable; what was not written goes first with
    /// the next write (connection).
    Write,
    /// The server's close frame did not come within `close_timeout` of
    /// ours; the connection was dropped (connection).
    Close,
    /// No pong came within the ping timeout of a ping: the connection
    /// looked dead and was dropped (connection; the keepalive of
    /// [`crate::App`]).
    Pong,
    /// Nothing at all was received for `idle_timeout`; the connection was
    /// dropped (connection).
    Idle,
    /// One write did not finish within `send_timeout`: the server stopped
    /// reading, so the connection was dropped (connection; unlike
    /// [`Write`](Self::Write), the connection is not usable after).
    Send,
}

impl TimeoutKind {
    /// The option that sets this timeout, as the builders name it.
    pub fn option(self) -> &'static str {
        match self {
            TimeoutKind::Connect | TimeoutKind::Handshake => "connect_timeout",
            TimeoutKind::Read => "read_timeout",
            TimeoutKind::Write => "write_timeout",
            TimeoutKind::Close => "close_timeout",
            TimeoutKind::Pong => "ping_timeout",
            TimeoutKind::Idle => "idle_timeout",
            TimeoutKind::Send => "send_timeout",
        }
    }

    /// Whether the connection is still usable after this timeout (a read or
    /// write timeout).
    pub fn leaves_connection_usable(self) -> bool {
        matches!(self, TimeoutKind::Read | TimeoutKind::Write)
    }

    fn phase(self) -> Phase {
        match self {
            TimeoutKind::Connect | TimeoutKind::Handshake => Phase::Dial,
            TimeoutKind::Read
            | TimeoutKind::Write
            | TimeoutKind::Close
            | TimeoutKind::Pong
            | TimeoutKind::Idle
            | TimeoutKind::Send => Phase::Connection,
        }
    }
}

fn timeout_message(kind: TimeoutKind, after: Option<Duration>) -> String {
    let within = match after {
        Some(after) => format!("{} of {after:?}", kind.option()),
        None => kind.option().to_owned(),
    };
    match kind {
        TimeoutKind::Connect => format!(
            "timed out connecting ({within}); check that the server is reachable, or raise connect_timeout"
        ),
        TimeoutKind::Handshake => format!(
            "timed out during the handshake ({within}): the server took the connection but did not finish the TLS or WebSocket handshake; raise connect_timeout if it is only slow"
        ),
        TimeoutKind::Read => match after {
            Some(after) => format!(
                "timed out waiting for data (nothing within {after:?}); the connection is still usable, wait again"
            ),
            None => "timed out waiting for data (read_timeout); the connection is still usable, wait again".to_owned(),
        },
        TimeoutKind::Write => format!(
            "timed out writing ({within}): the server is not reading; the connection is still usable, and the rest goes out first with the next write"
        ),
        TimeoutKind::Close => format!(
            "timed out waiting for the server's close frame ({within}); the connection was dropped"
        ),
        TimeoutKind::Idle => format!(
            "nothing received from the server ({within}): the connection was dropped"
        ),
        TimeoutKind::Send => format!(
            "a write did not finish ({within}): the server stopped reading, so the connection was dropped"
        ),
        TimeoutKind::Pong => match after {
            Some(after) => format!(
                "no pong within {after:?} of a ping: the connection looked dead and was dropped (raise the ping timeout if the server is only slow)"
            ),
            None => "no pong within the ping timeout of a ping: the connection looked dead and was dropped (raise the ping timeout if the server is only slow)".to_owned(),
        },
    }
}

/// Which function of the application panicked, in [`ErrorKind::Panicked`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Callback {
    /// A function the buffered connection's reader calls: the classifier,
    /// the conflation key, the lag alarm or the control-frame observer
    /// (connection: the connection was closed with code 1011).
    Reader,
    /// The App's `on_open` handler (App).
    OnOpen,
    /// The App's `on_message` handler (App).
    OnMessage,
    /// The App's `on_data` handler (App).
    OnData,
    /// The App's `on_cont_message` handler (App).
    OnContMessage,
    /// The App's `on_ping` handler (App).
    OnPing,
    /// The App's `on_pong` handler (App).
    OnPong,
    /// The App's `on_close` handler (App).
    OnClose,
    /// The App's `on_error` handler (App).
    OnError,
    /// The App's `on_reconnect` handler (App).
    OnReconnect,
}

impl Callback {
    /// The handler's name as the App's builder spells it (`on_message`), or
    /// `reader callback`.
    pub fn name(self) -> &'static str {
        match self {
            Callback::Reader => "reader callback",
            Callback::OnOpen => "on_open",
            Callback::OnMessage => "on_message",
            Callback::OnData => "on_data",
            Callback::OnContMessage => "on_cont_message",
            Callback::OnPing => "on_ping",
            Callback::OnPong => "on_pong",
            Callback::OnClose => "on_close",
            Callback::OnError => "on_error",
            Callback::OnReconnect => "on_reconnect",
        }
    }
}

impl fmt::Display for Callback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

fn panicked_message(callback: Callback, message: &str) -> String {
    match callback {
        Callback::Reader => format!(
            "a callback panicked on the connection's reader thread ({message}); the connection was closed with code 1011"
        ),
        handler => format!(
            "the App's {handler} handler panicked ({message}); the App went on, fix the handler"
        ),
    }
}

/// Why a URL cannot be used, in [`ErrorKind::InvalidUrl`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UrlError {
    /// It is not a URL at all.
    #[error("{0}")]
    Parse(#[from] url::ParseError),
    /// It names no host after `//`.
    #[error("no host after \"//\"; write ws://host[:port]/path")]
    NoHost,
    /// The scheme is not `ws` or `wss`.
    #[error("scheme {scheme:?} is not ws or wss")]
    Scheme {
        /// The scheme given.
        scheme: String,
    },
}

/// Why a redirect of the handshake was not followed, in
/// [`ErrorKind::Redirect`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RedirectError {
    /// More redirects than `redirect_limit` in one connect.
    #[error("more than redirect_limit ({limit}) redirects")]
    TooMany {
        /// The limit.
        limit: u32,
    },
    /// The `Location` is not a URL.
    #[error("the Location is not a URL: {0}")]
    Location(url::ParseError),
    /// The `Location`'s scheme is not `ws`, `wss`, `http` or `https`.
    #[error("scheme {scheme:?} is not a WebSocket scheme")]
    Scheme {
        /// The scheme of the `Location`.
        scheme: String,
    },
    /// The `Location` resolves to a URL this client cannot connect to.
    #[error("the Location is not a usable WebSocket URL: {0}")]
    Url(UrlError),
    /// A `wss://` URL redirected to `ws://`.
    #[error("it would leave TLS (wss:// to ws://), which could expose the connection")]
    Downgrade,
}

/// What the options asked for that cannot be done, in
/// [`ErrorKind::Unsupported`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UnsupportedError {
    /// A `wss://` URL with a Unix socket.
    #[error("wss:// over a Unix socket is not supported; use a ws:// URL with unix_socket")]
    WssOverUnixSocket,
    /// A Unix socket on a platform without them.
    #[error("Unix sockets need a Unix platform; connect over TCP instead")]
    UnixSocketsNeedUnix,
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

impl ErrorKind {
    /// The phase this kind arises in when nothing else is known; an error
    /// made while dialing is marked [`Phase::Dial`] whatever its kind.
    fn phase(&self) -> Phase {
        match self {
            ErrorKind::InvalidUrl { .. }
            | ErrorKind::Unsupported(_)
            | ErrorKind::Config(_)
            | ErrorKind::Resolve { .. }
            | ErrorKind::Connect { .. }
            | ErrorKind::Proxy { .. }
            | ErrorKind::Tls { .. }
            | ErrorKind::Handshake(_)
            | ErrorKind::Redirect { .. } => Phase::Dial,
            ErrorKind::Timeout { kind, .. } => kind.phase(),
            ErrorKind::Io(_)
            | ErrorKind::Protocol(_)
            | ErrorKind::Usage(_)
            | ErrorKind::ConnectionClosed(_)
            | ErrorKind::AbnormalClosure
            | ErrorKind::AlreadyClosed
            | ErrorKind::Buffer(_)
            | ErrorKind::Spill(_) => Phase::Connection,
            ErrorKind::Panicked {
                callback: Callback::Reader,
                ..
            } => Phase::Connection,
            ErrorKind::Panicked { .. } | ErrorKind::GaveUp { .. } => Phase::App,
        }
    }
}

/// The error of every fallible floodgate call.
///
/// ```
/// # fn main() {
/// match floodgate::connect("ws://127.0.0.1:1/") {
///     Err(e) if matches!(e.kind(), floodgate::ErrorKind::Connect { .. }) => {
///         assert_eq!(e.phase(), floodgate::Phase::Dial);
///     }
///     other => panic!("expected a connect error, got {other:?}"),
/// }
/// # }
/// ```
pub struct Error(Box<Inner>);

struct Inner {
    kind: ErrorKind,
    phase: Phase,
}

impl Error {
    /// What went wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.0.kind
    }

    /// The error's kind, by value.
    pub fn into_kind(self) -> ErrorKind {
        self.0.kind
    }

    /// Where the error arose: dialing, a live connection, or the App (see
    /// the [module docs](self)).
    pub fn phase(&self) -> Phase {
        self.0.phase
    }

    /// Whether the connection ended with a close handshake (or was already
    /// closed): the normal end of a connection, not a failure.
    pub fn is_closed(&self) -> bool {
        matches!(
            self.0.kind,
            ErrorKind::ConnectionClosed(_) | ErrorKind::AlreadyClosed
        )
    }

    /// Whether a timeout passed ([`ErrorKind::Timeout`], of any
    /// [`TimeoutKind`]). After a read or write timeout the connection is
    /// still usable ([`TimeoutKind::leaves_connection_usable`]).
    pub fn is_timeout(&self) -> bool {
        matches!(self.0.kind, ErrorKind::Timeout { .. })
    }

    /// Which timeout passed, for [`ErrorKind::Timeout`].
    pub fn timeout_kind(&self) -> Option<TimeoutKind> {
        match self.0.kind {
            ErrorKind::Timeout { kind, .. } => Some(kind),
            _ => None,
        }
    }

    /// The close frame, if the connection was closed by a close handshake.
    pub fn close_frame(&self) -> Option<&CloseFrame> {
        match &self.0.kind {
            ErrorKind::ConnectionClosed(frame) => frame.as_ref(),
            _ => None,
        }
    }

    /// A timeout of `kind`, `after` its length when known.
    pub(crate) fn timeout(kind: TimeoutKind, after: Option<Duration>) -> Error {
        ErrorKind::Timeout { kind, after }.into()
    }

    /// Marks the error as met while dialing: what a connect returns.
    pub(crate) fn dialing(mut self) -> Error {
        self.0.phase = Phase::Dial;
        self
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0.kind, f)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.kind, f)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.0.kind)
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
        let phase = kind.phase();
        Error(Box::new(Inner { kind, phase }))
    }
}

/// A timeout whose length is not known here.
impl From<TimeoutKind> for Error {
    fn from(kind: TimeoutKind) -> Self {
        Error::timeout(kind, None)
    }
}

/// What the buffer's consumer side reports, as the front end's error: the
/// error the connection ended with (put in by the front end), a read
/// timeout, or `AlreadyClosed`.
impl From<RecvError> for Error {
    fn from(err: RecvError) -> Self {
        match err {
            RecvError::TimedOut(after) => Error::timeout(TimeoutKind::Read, Some(after)),
            RecvError::AlreadyEnded => ErrorKind::AlreadyClosed.into(),
            RecvError::Ended(end) => match end.downcast::<Error>() {
                Ok(err) => err,
                // Only floodgate's front ends end a buffer, with an `Error`
                // (an `ErrorKind` would do too); anything else is kept
                // whole as the source.
                Err(other) => match other.downcast::<ErrorKind>() {
                    Ok(kind) => kind.into(),
                    Err(other) => ErrorKind::Io(io::Error::other(other)).into(),
                },
            },
        }
    }
}

impl From<SpillError> for Error {
    fn from(err: SpillError) -> Self {
        ErrorKind::Spill(err).into()
    }
}

impl From<BufferConfigError> for Error {
    fn from(err: BufferConfigError) -> Self {
        ErrorKind::Config(ConfigError::Buffer(err)).into()
    }
}

impl From<TlsConfigError> for Error {
    fn from(err: TlsConfigError) -> Self {
        ErrorKind::Config(ConfigError::Tls(err)).into()
    }
}

macro_rules! error_from {
    ($($source:ty),*) => {$(
        impl From<$source> for Error {
            fn from(err: $source) -> Self {
                ErrorKind::from(err).into()
            }
        }
    )*};
}

error_from!(
    io::Error,
    HandshakeError,
    ProtocolError,
    UsageError,
    BufferError,
    ConfigError
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buffer::ConnectionEnd;
    use floodgate_proto::CloseCode;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn io_error() -> io::Error {
        io::Error::from(io::ErrorKind::ConnectionReset)
    }

    /// One error of every kind, with the phase the module docs give it.
    fn one_of_each() -> Vec<(Error, Phase)> {
        use Phase::*;
        let timeout = |kind| Error::timeout(kind, None);
        vec![
            (
                ErrorKind::InvalidUrl {
                    url: "http://x".into(),
                    reason: UrlError::Scheme {
                        scheme: "http".into(),
                    },
                }
                .into(),
                Dial,
            ),
            (
                ErrorKind::Unsupported(UnsupportedError::WssOverUnixSocket).into(),
                Dial,
            ),
            (ConfigError::ReadChunkSizeZero.into(), Dial),
            (
                ErrorKind::Resolve {
                    host: "nowhere.invalid".into(),
                    port: 80,
                    source: io::Error::from(io::ErrorKind::NotFound),
                }
                .into(),
                Dial,
            ),
            (
                ErrorKind::Connect {
                    target: "127.0.0.1:1".into(),
                    source: io::Error::from(io::ErrorKind::ConnectionRefused),
                }
                .into(),
                Dial,
            ),
            (
                ErrorKind::Proxy {
                    proxy: "HTTP proxy 127.0.0.1:3128".into(),
                    target: "example.com:80".into(),
                    reason: ProxyError::TimedOut,
                }
                .into(),
                Dial,
            ),
            (
                ErrorKind::Tls {
                    host: "example.com".into(),
                    failure: TlsFailure::Expired,
                }
                .into(),
                Dial,
            ),
            (
                HandshakeError::ResponseTooLarge { limit: 8192 }.into(),
                Dial,
            ),
            (
                ErrorKind::Redirect {
                    from: "wss://a/".into(),
                    to: "ws://b/".into(),
                    reason: RedirectError::Downgrade,
                }
                .into(),
                Dial,
            ),
            (timeout(TimeoutKind::Connect), Dial),
            (timeout(TimeoutKind::Handshake), Dial),
            (timeout(TimeoutKind::Read), Connection),
            (timeout(TimeoutKind::Write), Connection),
            (timeout(TimeoutKind::Close), Connection),
            (timeout(TimeoutKind::Pong), Connection),
            (io_error().into(), Connection),
            (ProtocolError::MaskedFrameFromServer.into(), Connection),
            (UsageError::ControlPayloadTooLong(126).into(), Connection),
            (ErrorKind::ConnectionClosed(None).into(), Connection),
            (ErrorKind::AbnormalClosure.into(), Connection),
            (ErrorKind::AlreadyClosed.into(), Connection),
            (
                BufferError::FellBehind {
                    buffered_messages: 1,
                    buffered_bytes: 1,
                    max_messages: 1,
                    max_bytes: 1,
                    received: 2,
                    delivered: 0,
                }
                .into(),
                Connection,
            ),
            (
                ErrorKind::Panicked {
                    callback: Callback::Reader,
                    message: "boom".into(),
                }
                .into(),
                Connection,
            ),
            (
                ErrorKind::Panicked {
                    callback: Callback::OnMessage,
                    message: "boom".into(),
                }
                .into(),
                App,
            ),
            (
                ErrorKind::GaveUp {
                    attempts: 3,
                    last: ErrorKind::AbnormalClosure.into(),
                }
                .into(),
                App,
            ),
        ]
    }

    #[test]
    fn every_kind_has_the_phase_the_docs_give_it() {
        for (error, phase) in one_of_each() {
            assert_eq!(error.phase(), phase, "{error:?}");
        }
    }

    #[test]
    fn an_error_met_while_dialing_is_in_the_dial_phase_whatever_its_kind() {
        let during_handshake = Error::from(io_error()).dialing();
        assert!(matches!(during_handshake.kind(), ErrorKind::Io(_)));
        assert_eq!(during_handshake.phase(), Phase::Dial);
        let read = Error::from(TimeoutKind::Read).dialing();
        assert_eq!(read.phase(), Phase::Dial);
    }

    #[test]
    fn is_timeout_is_true_for_every_timeout_and_only_for_timeouts() {
        for (error, _) in one_of_each() {
            let is_timeout = matches!(error.kind(), ErrorKind::Timeout { .. });
            assert_eq!(error.is_timeout(), is_timeout, "{error:?}");
            assert_eq!(error.timeout_kind().is_some(), is_timeout, "{error:?}");
        }
        assert_eq!(
            Error::from(TimeoutKind::Write).timeout_kind(),
            Some(TimeoutKind::Write)
        );
    }

    #[test]
    fn is_closed_means_a_close_handshake_or_an_earlier_close_not_a_failure() {
        let closed: Vec<String> = one_of_each()
            .into_iter()
            .filter(|(e, _)| e.is_closed())
            .map(|(e, _)| format!("{:?}", e.kind()))
            .collect();
        assert_eq!(closed, ["ConnectionClosed(None)", "AlreadyClosed"]);
        let frame = CloseFrame::new(CloseCode::NORMAL, "bye");
        let with_frame = Error::from(ErrorKind::ConnectionClosed(Some(frame.clone())));
        assert!(with_frame.is_closed());
        assert_eq!(with_frame.close_frame(), Some(&frame));
        assert_eq!(Error::from(ErrorKind::AlreadyClosed).close_frame(), None);
    }

    #[test]
    fn only_read_and_write_timeouts_leave_the_connection_usable() {
        use TimeoutKind::*;
        let usable: Vec<TimeoutKind> = [Connect, Handshake, Read, Write, Close, Pong]
            .into_iter()
            .filter(|k| k.leaves_connection_usable())
            .collect();
        assert_eq!(usable, [Read, Write]);
    }

    #[test]
    fn timeout_messages_name_the_option_and_the_length_when_known() {
        let cases = [
            (TimeoutKind::Connect, Some(ms(5000)), "timed out connecting (connect_timeout of 5s); check that the server is reachable, or raise connect_timeout"),
            (TimeoutKind::Handshake, None, "timed out during the handshake (connect_timeout): "),
            (TimeoutKind::Read, None, "timed out waiting for data (read_timeout); the connection is still usable"),
            (TimeoutKind::Read, Some(ms(100)), "timed out waiting for data (nothing within 100ms); the connection is still usable"),
            (TimeoutKind::Write, Some(ms(250)), "timed out writing (write_timeout of 250ms): the server is not reading"),
            (TimeoutKind::Close, Some(ms(5000)), "timed out waiting for the server's close frame (close_timeout of 5s); the connection was dropped"),
            (TimeoutKind::Pong, Some(ms(200)), "no pong within 200ms of a ping: the connection looked dead and was dropped (raise the ping timeout"),
        ];
        for (kind, after, start) in cases {
            let text = Error::timeout(kind, after).to_string();
            assert!(text.starts_with(start), "{kind:?}: {text}");
        }
    }

    #[test]
    fn config_messages_say_what_to_change() {
        let cases: [(ConfigError, &str); 6] = [
            (
                ConfigError::FrameLargerThanMessage {
                    max_frame_size: 2048,
                    max_message_size: 1024,
                },
                "invalid configuration: max_frame_size (2048) is larger than max_message_size (1024); lower max_frame_size too",
            ),
            (
                ConfigError::MaxHandshakeSizeTooSmall { size: 64 },
                "invalid configuration: max_handshake_size of 64 bytes cannot hold a handshake; give at least 128 bytes",
            ),
            (
                ConfigError::PingPayloadTooLong { len: 126 },
                "invalid configuration: a ping payload is limited to 125 bytes, this one has 126",
            ),
            (
                ConfigError::ProxyUrl {
                    url: "gopher://h".into(),
                    reason: ProxyConfigError::UnknownScheme {
                        scheme: "gopher".into(),
                    },
                },
                "invalid configuration: proxy URL \"gopher://h\": unknown scheme \"gopher\"; use http, socks4, socks4a, socks5 or socks5h",
            ),
            (
                ConfigError::ProxyEnv {
                    variable: "http_proxy",
                    url: "h:0".into(),
                    reason: ProxyConfigError::PortZero,
                },
                "invalid configuration: the environment variable http_proxy: proxy URL \"h:0\": port 0; fix or unset it, or turn proxy_from_env off",
            ),
            (
                ConfigError::Tls(TlsConfigError::NoCertificate {
                    item: PemItem::CaCertificates,
                }),
                "invalid configuration: TLS: CA certificates: no PEM \"CERTIFICATE\" block found",
            ),
        ];
        for (config, expected) in cases {
            assert_eq!(Error::from(config).to_string(), expected);
        }
        let buffer = Error::from(BufferConfigError::MaxBytesBelowMessageSize {
            max_bytes: 1024,
            max_message_size: 4096,
        });
        assert!(
            matches!(
                buffer.kind(),
                ErrorKind::Config(ConfigError::Buffer(
                    BufferConfigError::MaxBytesBelowMessageSize { .. }
                ))
            ),
            "{buffer:?}"
        );
        assert!(
            buffer
                .to_string()
                .ends_with("raise max_bytes or lower max_message_size"),
            "{buffer}"
        );
    }

    #[test]
    fn dial_messages_carry_their_typed_reasons() {
        let url = Error::from(ErrorKind::InvalidUrl {
            url: "ws://".into(),
            reason: UrlError::NoHost,
        });
        assert_eq!(
            url.to_string(),
            "invalid WebSocket URL \"ws://\": no host after \"//\"; write ws://host[:port]/path"
        );
        let redirect = Error::from(ErrorKind::Redirect {
            from: "ws://a/".into(),
            to: "ws://b/".into(),
            reason: RedirectError::TooMany { limit: 3 },
        });
        assert_eq!(
            redirect.to_string(),
            "the handshake with ws://a/ was redirected to \"ws://b/\", not followed: more than redirect_limit (3) redirects"
        );
        let resolve = Error::from(ErrorKind::Resolve {
            host: "nowhere.invalid".into(),
            port: 443,
            source: io::Error::new(io::ErrorKind::NotFound, "no such host"),
        });
        assert_eq!(
            resolve.to_string(),
            "could not resolve nowhere.invalid:443: no such host; check the host name and the DNS setup"
        );
    }

    #[test]
    fn a_panic_names_the_callback_and_what_became_of_the_connection() {
        let reader = Error::from(ErrorKind::Panicked {
            callback: Callback::Reader,
            message: "index out of bounds".into(),
        });
        assert_eq!(
            reader.to_string(),
            "a callback panicked on the connection's reader thread (index out of bounds); the connection was closed with code 1011"
        );
        let handler = Error::from(ErrorKind::Panicked {
            callback: Callback::OnMessage,
            message: "boom".into(),
        });
        assert_eq!(
            handler.to_string(),
            "the App's on_message handler panicked (boom); the App went on, fix the handler"
        );
    }

    #[test]
    fn what_the_buffer_hands_back_becomes_the_front_ends_error_again() {
        let timed_out = Error::from(RecvError::TimedOut(ms(50)));
        assert!(matches!(
            timed_out.kind(),
            ErrorKind::Timeout {
                kind: TimeoutKind::Read,
                after: Some(d)
            } if *d == ms(50)
        ));
        let again = Error::from(RecvError::AlreadyEnded);
        assert!(matches!(again.kind(), ErrorKind::AlreadyClosed));

        // The error the connection ended with comes back whole: kind and
        // phase.
        let ended = Error::from(io_error()).dialing();
        let back = Error::from(RecvError::Ended(ConnectionEnd::new(ended)));
        assert!(
            matches!(back.kind(), ErrorKind::Io(e) if e.kind() == io::ErrorKind::ConnectionReset),
            "{back:?}"
        );
        assert_eq!(back.phase(), Phase::Dial);
        let kind = Error::from(RecvError::Ended(ConnectionEnd::new(
            ErrorKind::AbnormalClosure,
        )));
        assert!(
            matches!(kind.kind(), ErrorKind::AbnormalClosure),
            "{kind:?}"
        );

        // Anything else is kept as the source of an I/O error.
        let foreign = Error::from(RecvError::Ended(ConnectionEnd::new(io::Error::other(
            "elsewhere",
        ))));
        assert!(matches!(foreign.kind(), ErrorKind::Io(_)), "{foreign:?}");
        assert!(foreign.to_string().contains("elsewhere"), "{foreign}");
    }

    #[test]
    fn an_error_is_one_pointer_wide() {
        assert_eq!(std::mem::size_of::<Error>(), std::mem::size_of::<usize>());
    }
}
