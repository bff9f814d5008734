//! Reaching a host: the [`Target`] a URL names, and the TCP connection to
//! it, resolved and tried address by address within the connect deadline,
//! with the socket options that must be set before `connect`.
//!
//! Socket options that shape the TCP window (`SO_RCVBUF`) must be set
//! before `connect`, so the socket is made with `socket2` rather than
//! `TcpStream::connect`; [`tcp_socket`] makes it for the blocking and the
//! async dial alike. The proxies (`crate::proxy`) reach their proxy with
//! the same functions, and the URL and redirect layer (`crate::connect`)
//! sits above both.
//!
//! The folder holds the blocking transports too, because they are one
//! concept with the dial and name each other: `stream.rs`
//! ([`Transport`](crate::Transport), the blocking
//! [`Stream`](crate::Stream): TCP, TLS or a Unix socket) and `tls.rs`
//! (`wss://` with rustls, whose [`TlsStream`](tls::TlsStream) is a
//! `Transport` that `Stream::Tls` holds). The front ends read and write
//! through them; nothing here names a front end. Public as
//! [`crate::tls`], [`crate::Stream`] and [`crate::Transport`].

pub(crate) mod stream;
pub mod tls;

use crate::error::{Error, ErrorKind, Result, TimeoutKind};
use crate::options::Options;
use socket2::{Domain, Protocol, SockAddr, Socket, TcpKeepalive, Type};
use std::io;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// A parsed `ws://` URL: where to connect and what to ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub secure: bool,
    /// Host as written in the URL, without IPv6 brackets.
    pub host: String,
    pub port: u16,
    /// `Host` header value: host, and port when not the default.
    pub host_header: String,
    /// Path and query.
    pub resource: String,
}

/// The name TLS verifies: the configured server name, or the URL's host.
pub(crate) fn tls_name<'a>(target: &'a Target, options: &'a Options) -> &'a str {
    options.tls.server_name.as_deref().unwrap_or(&target.host)
}

/// Resolves `target` and connects to the first of its addresses that
/// answers, with the socket options set before `connect`.
pub(crate) fn connect_tcp(
    target: &Target,
    options: &Options,
    deadline: Option<Instant>,
) -> Result<TcpStream> {
    let where_ = format!("{}:{}", target.host, target.port);
    let unresolved = |source| ErrorKind::Resolve {
        host: target.host.clone(),
        port: target.port,
        source,
    };
    let addrs = resolve(&target.host, target.port).map_err(unresolved)?;
    if addrs.is_empty() {
        return Err(unresolved(no_address()).into());
    }
    connect_addrs(&where_, &addrs, options, deadline)
}

/// The addresses of `host` (an IP literal without a lookup).
pub(crate) fn resolve(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    Ok((host, port).to_socket_addrs()?.collect())
}

/// Tries each address in turn until one connects, all within `deadline`.
/// `where_` names the host in the error.
pub(crate) fn connect_addrs(
    where_: &str,
    addrs: &[SocketAddr],
    options: &Options,
    deadline: Option<Instant>,
) -> Result<TcpStream> {
    let mut last_error = no_address();
    for &addr in addrs {
        let remaining = match deadline {
            Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => Some(left),
                _ => return Err(connect_timed_out()),
            },
            None => None,
        };
        match connect_addr(addr, options, remaining) {
            Ok(stream) => return Ok(stream),
            Err(e)
                if e.kind() == io::ErrorKind::TimedOut || e.kind() == io::ErrorKind::WouldBlock =>
            {
                return Err(connect_timed_out())
            }
            Err(e) => {
                tracing::debug!(%addr, error = %e, "TCP connect failed");
                last_error = e;
            }
        }
    }
    Err(ErrorKind::Connect {
        target: where_.to_owned(),
        source: last_error,
    }
    .into())
}

/// The error of a name that resolved to nothing (before any address was
/// tried).
pub(crate) fn no_address() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        "the host name resolved to no address",
    )
}

/// The error of a TCP connect that ran into the connect deadline.
pub(crate) fn connect_timed_out() -> Error {
    Error::timeout(TimeoutKind::Connect, None)
}

fn connect_addr(
    addr: SocketAddr,
    options: &Options,
    timeout: Option<Duration>,
) -> io::Result<TcpStream> {
    let socket = tcp_socket(addr, options)?;
    let addr = SockAddr::from(addr);
    match timeout {
        Some(timeout) => socket.connect_timeout(&addr, timeout)?,
        None => socket.connect(&addr)?,
    }
    Ok(socket.into())
}

/// A TCP socket for `addr` with the options that must be set before
/// `connect` (`SO_RCVBUF` shapes the window offered in the SYN), shared by
/// the blocking and the async connect so that both set the same ones.
pub(crate) fn tcp_socket(addr: SocketAddr, options: &Options) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if let Some(size) = options.recv_buffer_size {
        socket.set_recv_buffer_size(size)?;
    }
    if let Some(size) = options.send_buffer_size {
        socket.set_send_buffer_size(size)?;
    }
    socket.set_tcp_nodelay(options.nodelay)?;
    if let Some(idle) = options.tcp_keepalive {
        socket.set_tcp_keepalive(&TcpKeepalive::new().with_time(idle))?;
    }
    Ok(socket)
}
