//! The async dial, natively on tokio: a Unix socket, or TCP (to the
//! server, or to a proxy and then through its tunnel), then TLS for
//! `wss://`. The same steps and rules as the blocking dial
//! (`crate::connect::open_stream` and `crate::proxy`), with the waits on
//! tokio:
//!
//! - names resolve with `tokio::net::lookup_host` (getaddrinfo on tokio's
//!   blocking pool: a lookup that outlives a cancelled connect holds no
//!   socket, and the deadline stops the wait for it);
//! - each address is tried in turn with a socket made by the blocking
//!   connect's own `crate::connect::tcp_socket`, so `SO_RCVBUF`,
//!   `SO_SNDBUF`, `TCP_NODELAY` and keepalive are set before `connect`
//!   exactly as there, then made non-blocking and connected through
//!   `tokio::net::TcpSocket`;
//! - the proxy handshakes are the state machines of
//!   [`floodgate_proto::tunnel`] driven with tokio reads and writes, and
//!   the choices around them (which proxy, who resolves the server's
//!   name, the error messages) are `crate::proxy::Route`'s, shared with
//!   the blocking dial;
//! - TLS runs on `tokio-rustls` with the very rustls `ClientConfig` the
//!   blocking client builds ([`crate::Client`] keeps it, so session
//!   resumption is shared).
//!
//! Every step is bounded by the connect deadline with
//! `tokio::time::timeout_at`, and nothing runs outside the future: a
//! connect that is dropped (cancelled, or raced against something else)
//! closes its socket there and then, whatever step it was in.

use super::stream::AsyncStream;
use crate::dial::{connect_timed_out, no_address, tcp_socket, tls_name, Target};
use crate::error::{ErrorKind, ProxyError, Result, TlsConfigError, UnsupportedError};
use crate::options::Options;
use crate::proxy::{select_from_env, Route};
use bytes::BytesMut;
use floodgate_proto::tunnel::{Progress, Tunnel};
use rustls_pki_types::ServerName;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// The transport for one handshake: a Unix socket, TCP, or TLS over TCP.
pub(crate) async fn open_stream(
    target: &Target,
    options: &Options,
    deadline: Option<Instant>,
    tls_config: &(dyn Fn() -> Result<Arc<rustls::ClientConfig>> + Sync),
) -> Result<AsyncStream> {
    if let Some(path) = &options.unix_socket {
        return connect_unix(path, target).await;
    }
    let tcp = open_tcp(target, options, deadline).await?;
    if !target.secure {
        return Ok(AsyncStream::Tcp(tcp));
    }
    let config = tls_config()?;
    let name = tls_name(target, options);
    let server_name =
        ServerName::try_from(name.to_owned()).map_err(|_| TlsConfigError::InvalidServerName {
            name: name.to_owned(),
        })?;
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(server_name, tcp)
        .await
        .map_err(|e| crate::dial::tls::classify(e.into(), name))?;
    Ok(AsyncStream::Tls(Box::new(tls)))
}

#[cfg(unix)]
async fn connect_unix(path: &std::path::Path, target: &Target) -> Result<AsyncStream> {
    if target.secure {
        return Err(ErrorKind::Unsupported(UnsupportedError::WssOverUnixSocket).into());
    }
    let stream = ::tokio::net::UnixStream::connect(path)
        .await
        .map_err(|source| ErrorKind::Connect {
            target: format!("Unix socket {}", path.display()),
            source,
        })?;
    Ok(AsyncStream::Unix(stream))
}

#[cfg(not(unix))]
async fn connect_unix(_path: &std::path::Path, _target: &Target) -> Result<AsyncStream> {
    Err(ErrorKind::Unsupported(UnsupportedError::UnixSocketsNeedUnix).into())
}

/// The TCP connection for `target`: through the proxy the options and the
/// environment select, or directly.
async fn open_tcp(
    target: &Target,
    options: &Options,
    deadline: Option<Instant>,
) -> Result<TcpStream> {
    match select_from_env(target, options)? {
        None => connect_tcp(target, options, deadline).await,
        Some(proxy) => connect_via(&Route::new(&proxy, target), options, deadline).await,
    }
}

/// `crate::connect::connect_tcp` on tokio.
async fn connect_tcp(
    target: &Target,
    options: &Options,
    deadline: Option<Instant>,
) -> Result<TcpStream> {
    let where_ = format!("{}:{}", target.host, target.port);
    let addrs = within(deadline, resolve(&target.host, target.port))
        .await
        .ok_or_else(connect_timed_out)?
        .map_err(|source| ErrorKind::Connect {
            target: where_.clone(),
            source,
        })?;
    connect_addrs(&where_, &addrs, options, deadline).await
}

async fn resolve(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    Ok(::tokio::net::lookup_host((host, port)).await?.collect())
}

/// `crate::connect::connect_addrs` on tokio: each address in turn, the
/// socket options set before `connect`, all within `deadline`.
async fn connect_addrs(
    where_: &str,
    addrs: &[SocketAddr],
    options: &Options,
    deadline: Option<Instant>,
) -> Result<TcpStream> {
    let mut last_error = no_address();
    for &addr in addrs {
        let attempt = async {
            let socket = tcp_socket(addr, options)?;
            socket.set_nonblocking(true)?;
            TcpSocket::from_std_stream(socket.into())
                .connect(addr)
                .await
        };
        match within(deadline, attempt).await {
            None => return Err(connect_timed_out()),
            Some(Ok(stream)) => return Ok(stream),
            Some(Err(e)) if e.kind() == io::ErrorKind::TimedOut => return Err(connect_timed_out()),
            Some(Err(e)) => {
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

/// The blocking `connect_via` (`crate::proxy`) on tokio.
async fn connect_via(
    route: &Route<'_>,
    options: &Options,
    deadline: Option<Instant>,
) -> Result<TcpStream> {
    tracing::debug!(proxy = %route.proxy, host = %route.target.host, port = route.target.port, "connecting through a proxy (async)");
    let timed_out = || route.error(ProxyError::TimedOut);
    let proxy_addrs = within(deadline, resolve(route.proxy.host(), route.proxy.port()))
        .await
        .ok_or_else(timed_out)?
        .map_err(|source| route.proxy_resolve_error(source))?;
    let mut stream = connect_addrs(&route.proxy_address(), &proxy_addrs, options, deadline)
        .await
        .map_err(|e| route.connect_error(e))?;
    // As the blocking dial: the server's name only once the proxy answers.
    let resolved = match route.to_resolve() {
        Some((host, port)) => Some(
            within(deadline, resolve(host, port))
                .await
                .ok_or_else(timed_out)?,
        ),
        None => None,
    };
    let mut tunnel = route
        .destination(resolved)
        .and_then(|destination| route.handshake(&destination, options))
        .map_err(|reason| route.error(reason))?;
    within(deadline, drive(&mut stream, &mut tunnel))
        .await
        .ok_or_else(timed_out)?
        .map_err(|reason| route.error(reason))?;
    tracing::debug!(proxy = %route.proxy, "proxy tunnel open (async)");
    Ok(stream)
}

/// Runs the handshake over `stream`, reading no more than the tunnel
/// allows (so nothing of the server's stream is taken). The caller bounds
/// it in time.
async fn drive(stream: &mut TcpStream, tunnel: &mut Tunnel) -> std::result::Result<(), ProxyError> {
    let mut from_proxy = BytesMut::with_capacity(256);
    let mut chunk = [0u8; 512];
    loop {
        while !tunnel.output().is_empty() {
            match stream.write(tunnel.output()).await {
                Ok(0) => return Err(ProxyError::Io(io::ErrorKind::WriteZero.into())),
                Ok(n) => tunnel.consume_output(n),
                Err(e) => return Err(ProxyError::Io(e)),
            }
        }
        let want = tunnel.read_limit().min(chunk.len());
        match stream.read(&mut chunk[..want]).await {
            Ok(0) => return Err(tunnel.closed().into()),
            Ok(n) => from_proxy.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(ProxyError::Io(e)),
        }
        if tunnel.receive(&mut from_proxy)? == Progress::Done {
            // read_limit kept every read within the proxy's answer.
            debug_assert!(from_proxy.is_empty());
            return Ok(());
        }
    }
}

/// `future`'s output, or `None` if `deadline` came first.
async fn within<F: Future>(deadline: Option<Instant>, future: F) -> Option<F::Output> {
    match deadline {
        None => Some(future.await),
        Some(deadline) => ::tokio::time::timeout_at(deadline.into(), future)
            .await
            .ok(),
    }
}
