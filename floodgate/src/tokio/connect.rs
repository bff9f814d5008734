//! From a URL to an open async [`WebSocket`]: the same steps and rules as
//! the blocking connect (`crate::connect`), with the waits on tokio.
//!
//! The TCP connect and the proxy handshakes run in
//! `tokio::task::spawn_blocking` over the blocking code, and the socket is
//! then handed to tokio (`set_nonblocking` + `TcpStream::from_std`). Why:
//! the socket options that shape the TCP window (`SO_RCVBUF`) must be set
//! before `connect`, which `socket2` does and tokio's `TcpSocket` only
//! partly covers; and the HTTP CONNECT, SOCKS4 and SOCKS5 handshakes are a
//! few hundred tested lines each. Running them once per connect on the
//! blocking pool costs one thread hop per connection, not per message, and
//! keeps one implementation of every rule (no_proxy, credentials, error
//! kinds). Making the proxy handshakes generic over async I/O would save
//! that hop; it is not worth a second copy of the code today.
//!
//! TLS runs on tokio (`tokio-rustls`) with the very rustls `ClientConfig`
//! the blocking client builds ([`crate::Client`] keeps it, so session
//! resumption is shared), the WebSocket handshake on tokio with the
//! sans-I/O handshake of `floodgate-proto`, and redirects follow
//! `crate::connect::next_hop`, the blocking client's rules.

use super::socket::WebSocket;
use super::stream::AsyncStream;
use crate::config::Options;
use crate::connect::{client_request, next_hop, parse_url, tls_name, Target};
use crate::error::{Error, ErrorKind, Result, TimeoutKind, TlsConfigError, UnsupportedError};
use bytes::{Buf, BytesMut};
use floodgate_proto::handshake::{parse_response_head, ClientHandshake, ClientRequest};
use http::StatusCode;
use rustls_pki_types::ServerName;
use std::borrow::Cow;
use std::io;
use std::sync::Arc;
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Connects to `url` with `options`, bounded by `connect_timeout` for the
/// whole chain of redirects.
pub(crate) async fn connect(
    url: &str,
    options: &Options,
    tls_config: &(dyn Fn() -> Result<Arc<rustls::ClientConfig>> + Sync),
) -> Result<WebSocket> {
    let deadline = options.connect_timeout.map(|t| Instant::now() + t);
    let run = connect_following(url, options, deadline, tls_config);
    match options.connect_timeout {
        None => run.await,
        Some(timeout) => match ::tokio::time::timeout(timeout, run).await {
            Ok(result) => result,
            Err(_) => Err(Error::timeout(TimeoutKind::Handshake, Some(timeout))),
        },
    }
}

async fn connect_following(
    url: &str,
    options: &Options,
    deadline: Option<Instant>,
    tls_config: &(dyn Fn() -> Result<Arc<rustls::ClientConfig>> + Sync),
) -> Result<WebSocket> {
    let mut url = url.to_owned();
    let mut options = Cow::Borrowed(options);
    let mut redirects = 0;
    loop {
        let target = parse_url(&url)?;
        let stream = open_stream(&target, &options, deadline, tls_config).await?;
        let request = client_request(&target, &options);
        tracing::debug!(host = %target.host, port = target.port, path = %target.resource, "connected (async), sending upgrade");
        let error = match handshake(stream, &request, &options).await {
            Ok(ws) => return Ok(ws),
            Err(e) => e,
        };
        url = next_hop(&url, &target, &mut options, error, &mut redirects)?;
    }
}

/// The transport for one handshake: a Unix socket, TCP, or TLS over TCP.
async fn open_stream(
    target: &Target,
    options: &Options,
    deadline: Option<Instant>,
    tls_config: &(dyn Fn() -> Result<Arc<rustls::ClientConfig>> + Sync),
) -> Result<AsyncStream> {
    if let Some(path) = &options.unix_socket {
        return connect_unix(path, target).await;
    }
    // See the module docs: the blocking connect and proxy tunnel, once,
    // on the blocking pool.
    let (t, o) = (target.clone(), options.clone());
    let tcp = ::tokio::task::spawn_blocking(move || crate::proxy::open(&t, &o, deadline))
        .await
        .map_err(|e| ErrorKind::Io(io::Error::other(format!("the connect task failed: {e}"))))??;
    // The blocking connect may have set timeouts on the socket; tokio
    // ignores them once the socket is non-blocking.
    tcp.set_nonblocking(true)?;
    let tcp = ::tokio::net::TcpStream::from_std(tcp)?;
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
        .map_err(|e| crate::tls::classify(e.into(), name))?;
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

/// The opening handshake over a connected transport (the caller bounds
/// it in time).
async fn handshake(
    mut stream: AsyncStream,
    request: &ClientRequest,
    options: &Options,
) -> Result<WebSocket> {
    let (handshake, bytes) = ClientHandshake::new(request)?;
    stream.write_all(&bytes).await?;
    stream.flush().await?;
    let mut buf = BytesMut::new();
    let (head, head_len) = loop {
        if let Some(parsed) = parse_response_head(&buf, options.max_handshake_size)? {
            break parsed;
        }
        if read_some(&mut stream, &mut buf, 4096).await? == 0 {
            return Err(ErrorKind::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection during the handshake",
            ))
            .into());
        }
    };
    if head.status != StatusCode::SWITCHING_PROTOCOLS {
        // As the blocking client: show the start of the body (at most 4 KiB).
        let wanted = head_len + head.error_body_wanted();
        while buf.len() < wanted {
            let missing = wanted - buf.len();
            match read_some(&mut stream, &mut buf, missing).await {
                Ok(n) if n > 0 => {}
                _ => break,
            }
        }
    }
    let response = handshake.accept(head, &buf[head_len..])?;
    buf.advance(head_len);
    tracing::debug!(subprotocol = ?response.subprotocol, "WebSocket handshake accepted (async)");
    Ok(WebSocket::new(stream, options, buf, response))
}

/// One read of at most `at_most` bytes into `buf`.
async fn read_some(stream: &mut AsyncStream, buf: &mut BytesMut, at_most: usize) -> Result<usize> {
    buf.reserve(at_most.max(1));
    Ok((&mut *stream)
        .take(at_most.max(1) as u64)
        .read_buf(buf)
        .await?)
}
