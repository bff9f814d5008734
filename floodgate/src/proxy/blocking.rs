//! The blocking dial through a proxy: connect to the proxy over
//! `std::net` with the socket options, then drive the proxy's handshake
//! (the state machines of [`floodgate_proto::tunnel`]) with every read
//! and write bounded by the connect deadline.

use super::route::{select_from_env, Route};
use crate::dial::{connect_addrs, connect_tcp, resolve, Target};
use crate::error::{ProxyError, Result};
use crate::options::Options;
use bytes::BytesMut;
use floodgate_proto::tunnel::{Progress, Tunnel};
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Opens the TCP connection for `target`: through the proxy the options
/// and the environment select, or directly. `deadline` bounds the connect
/// to the proxy and its handshake together.
pub(crate) fn open(
    target: &Target,
    options: &Options,
    deadline: Option<Instant>,
) -> Result<TcpStream> {
    match select_from_env(target, options)? {
        None => connect_tcp(target, options, deadline),
        Some(proxy) => connect_via(&Route::new(&proxy, target), options, deadline),
    }
}

fn connect_via(
    route: &Route<'_>,
    options: &Options,
    deadline: Option<Instant>,
) -> Result<TcpStream> {
    tracing::debug!(proxy = %route.proxy, host = %route.target.host, port = route.target.port, "connecting through a proxy");
    let proxy_addrs = resolve(route.proxy.host(), route.proxy.port())
        .map_err(|source| route.proxy_resolve_error(source))?;
    let stream = connect_addrs(&route.proxy_address(), &proxy_addrs, options, deadline)
        .map_err(|e| route.connect_error(e))?;
    // The server's name, when resolved here, only once the proxy answers
    // (a proxy that is down is reported as such, not as a DNS failure).
    let resolved = route.to_resolve().map(|(host, port)| resolve(host, port));
    let mut tunnel = route
        .destination(resolved)
        .and_then(|destination| route.handshake(&destination, options))
        .map_err(|reason| route.error(reason))?;
    drive(&stream, &mut tunnel, deadline).map_err(|reason| route.error(reason))?;
    // The WebSocket handshake sets its own timeouts; leave none behind.
    let clear = stream
        .set_read_timeout(None)
        .and_then(|()| stream.set_write_timeout(None));
    clear.map_err(|e| route.error(ProxyError::Io(e)))?;
    tracing::debug!(proxy = %route.proxy, "proxy tunnel open");
    Ok(stream)
}

/// Runs the handshake over `stream`: writes what the tunnel has to send,
/// reads no more than it allows (so nothing of the server's stream is
/// taken), each call bounded by the time left before `deadline`.
fn drive(
    stream: &TcpStream,
    tunnel: &mut Tunnel,
    deadline: Option<Instant>,
) -> std::result::Result<(), ProxyError> {
    let mut stream = stream;
    let mut from_proxy = BytesMut::with_capacity(256);
    let mut chunk = [0u8; 512];
    loop {
        while !tunnel.output().is_empty() {
            stream
                .set_write_timeout(time_left(deadline)?)
                .map_err(ProxyError::Io)?;
            match stream.write(tunnel.output()) {
                Ok(0) => return Err(ProxyError::Io(io::ErrorKind::WriteZero.into())),
                Ok(n) => tunnel.consume_output(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_error(e)),
            }
        }
        let want = tunnel.read_limit().min(chunk.len());
        stream
            .set_read_timeout(time_left(deadline)?)
            .map_err(ProxyError::Io)?;
        match stream.read(&mut chunk[..want]) {
            Ok(0) => return Err(tunnel.closed().into()),
            Ok(n) => from_proxy.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_error(e)),
        }
        if tunnel.receive(&mut from_proxy)? == Progress::Done {
            // read_limit kept every read within the proxy's answer.
            debug_assert!(from_proxy.is_empty());
            return Ok(());
        }
    }
}

/// What is left before `deadline` as a socket timeout (`None`: no
/// deadline); past it, [`ProxyError::TimedOut`].
fn time_left(deadline: Option<Instant>) -> std::result::Result<Option<Duration>, ProxyError> {
    match deadline {
        None => Ok(None),
        Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
            Some(left) if !left.is_zero() => Ok(Some(left)),
            _ => Err(ProxyError::TimedOut),
        },
    }
}

fn io_error(e: io::Error) -> ProxyError {
    match e.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => ProxyError::TimedOut,
        _ => ProxyError::Io(e),
    }
}
