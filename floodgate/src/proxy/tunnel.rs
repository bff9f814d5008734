//! Opening the TCP connection, through the selected proxy or directly,
//! and the bounded I/O of the proxy handshakes.

use super::{host_port, socks4, socks5, NoProxy, Proxy, ProxyKind};
use crate::config::Options;
use crate::connect::Target;
use crate::error::{Error, ErrorKind, ProxyError, Result};
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// Opens the TCP connection for `target`: through the proxy the options
/// and the environment select, or directly. `deadline` bounds the connect
/// to the proxy and its handshake together.
pub(crate) fn open(
    target: &Target,
    options: &Options,
    deadline: Option<Instant>,
) -> Result<TcpStream> {
    let selected = select(target, options, &|name| std::env::var(name).ok())?;
    match selected {
        None => crate::connect::connect_tcp(target, options, deadline),
        Some(proxy) => connect_via(&proxy, target, options, deadline),
    }
}

/// The proxy for `target`, if any (the rules of the module docs), with
/// environment variables read through `lookup`.
pub(crate) fn select(
    target: &Target,
    options: &Options,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Proxy>> {
    let env_no_proxy = if options.proxy_from_env {
        NoProxy::from_env_with(lookup)
    } else {
        None
    };
    let no_proxy = options.no_proxy.as_ref().or(env_no_proxy.as_ref());
    if no_proxy.is_some_and(|list| list.matches(&target.host)) {
        tracing::debug!(host = %target.host, "host in no_proxy: connecting directly");
        return Ok(None);
    }
    if let Some(proxy) = &options.proxy {
        return Ok(Some(proxy.clone()));
    }
    if !options.proxy_from_env {
        return Ok(None);
    }
    let Some(proxy) = Proxy::from_env_with(target.secure, lookup)? else {
        return Ok(None);
    };
    if no_proxy.is_none() && NoProxy::loopback().matches(&target.host) {
        return Ok(None);
    }
    Ok(Some(proxy))
}

fn connect_via(
    proxy: &Proxy,
    target: &Target,
    options: &Options,
    deadline: Option<Instant>,
) -> Result<TcpStream> {
    let target_name = host_port(&target.host, target.port);
    let fail = |reason: ProxyError| -> Error {
        ErrorKind::Proxy {
            proxy: proxy.label(),
            target: target_name.clone(),
            reason,
        }
        .into()
    };
    tracing::debug!(proxy = %proxy, target = %target_name, "connecting through a proxy");
    let proxy_target = Target {
        secure: false,
        host: proxy.host.clone(),
        port: proxy.port,
        host_header: String::new(),
        resource: String::new(),
    };
    let stream =
        crate::connect::connect_tcp(&proxy_target, options, deadline).map_err(|e| {
            match e.into_kind() {
                ErrorKind::Resolve { source, .. } => fail(ProxyError::Resolve {
                    host: proxy.host.clone(),
                    source,
                }),
                ErrorKind::Connect { source, .. }
                    if source.kind() == io::ErrorKind::NotFound || is_resolve_error(&source) =>
                {
                    fail(ProxyError::Resolve {
                        host: proxy.host.clone(),
                        source,
                    })
                }
                ErrorKind::Connect { source, .. } => fail(ProxyError::Unreachable(source)),
                ErrorKind::Timeout { .. } => fail(ProxyError::TimedOut),
                other => other.into(),
            }
        })?;
    let mut handshake = Handshake {
        stream: &stream,
        deadline,
    };
    let result = match proxy.kind {
        ProxyKind::Http => {
            super::http::tunnel(&mut handshake, proxy, target, options.max_handshake_size)
        }
        ProxyKind::Socks4 | ProxyKind::Socks4a => socks4::tunnel(&mut handshake, proxy, target),
        ProxyKind::Socks5 | ProxyKind::Socks5h => socks5::tunnel(&mut handshake, proxy, target),
    };
    result.map_err(fail)?;
    // The WebSocket handshake sets its own timeouts; leave none behind.
    stream
        .set_read_timeout(None)
        .map_err(|e| fail(ProxyError::Io(e)))?;
    stream
        .set_write_timeout(None)
        .map_err(|e| fail(ProxyError::Io(e)))?;
    tracing::debug!(proxy = %proxy, target = %target_name, "proxy tunnel open");
    Ok(stream)
}

/// Whether a lookup error came from the resolver (std reports them as
/// `Uncategorized`/`Other` with a "failed to lookup address" message).
fn is_resolve_error(e: &io::Error) -> bool {
    e.to_string().contains("failed to lookup address")
}

/// The destination as a SOCKS request carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Dest {
    Ip(IpAddr),
    Name(String),
}

/// The server's address for the request: an IP literal as is; a name
/// passed on when the proxy resolves, else resolved here (IPv4 first for
/// SOCKS4, which can carry nothing else).
pub(super) fn dest_for(
    target: &Target,
    proxy_resolves: bool,
    ipv4_only: bool,
) -> std::result::Result<Dest, ProxyError> {
    if let Ok(ip) = target.host.parse::<IpAddr>() {
        return Ok(Dest::Ip(ip));
    }
    if proxy_resolves {
        return Ok(Dest::Name(target.host.clone()));
    }
    let addrs: Vec<SocketAddr> = (target.host.as_str(), target.port)
        .to_socket_addrs()
        .map_err(|source| ProxyError::Resolve {
            host: target.host.clone(),
            source,
        })?
        .collect();
    let pick = if ipv4_only {
        addrs.iter().find(|a| a.is_ipv4())
    } else {
        addrs.first()
    };
    match pick {
        Some(addr) => Ok(Dest::Ip(addr.ip())),
        None if ipv4_only && !addrs.is_empty() => Err(ProxyError::Unsupported(format!(
            "{} has only IPv6 addresses and SOCKS4 carries IPv4 only; use socks4a:// or socks5://",
            target.host
        ))),
        None => Err(ProxyError::Resolve {
            host: target.host.clone(),
            source: io::Error::new(io::ErrorKind::NotFound, "no address"),
        }),
    }
}

/// The proxy connection during the proxy handshake: every read and write
/// bounded by the connect deadline, and reads only of sizes the protocol
/// announces (or one byte at a time for HTTP), so a hostile proxy can
/// neither hold us past the deadline nor make us buffer without limit.
pub(super) struct Handshake<'a> {
    stream: &'a TcpStream,
    deadline: Option<Instant>,
}

impl Handshake<'_> {
    fn time_left(&self) -> std::result::Result<Option<Duration>, ProxyError> {
        match self.deadline {
            None => Ok(None),
            Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => Ok(Some(left)),
                _ => Err(ProxyError::TimedOut),
            },
        }
    }

    pub(super) fn write_all(&mut self, mut bytes: &[u8]) -> std::result::Result<(), ProxyError> {
        while !bytes.is_empty() {
            let left = self.time_left()?;
            self.stream
                .set_write_timeout(left)
                .map_err(ProxyError::Io)?;
            match self.stream.write(bytes) {
                Ok(0) => return Err(ProxyError::Io(io::ErrorKind::WriteZero.into())),
                Ok(n) => bytes = &bytes[n..],
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_error(e)),
            }
        }
        Ok(())
    }

    /// Reads exactly `buf.len()` bytes; the proxy closing first is
    /// [`ProxyError::Closed`].
    pub(super) fn read_exact(
        &mut self,
        mut buf: &mut [u8],
        protocol: &'static str,
    ) -> std::result::Result<(), ProxyError> {
        while !buf.is_empty() {
            let left = self.time_left()?;
            self.stream.set_read_timeout(left).map_err(ProxyError::Io)?;
            match self.stream.read(buf) {
                Ok(0) => return Err(ProxyError::Closed { protocol }),
                Ok(n) => buf = &mut buf[n..],
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_error(e)),
            }
        }
        Ok(())
    }
}

fn io_error(e: io::Error) -> ProxyError {
    match e.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => ProxyError::TimedOut,
        _ => ProxyError::Io(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_resolved_only_where_the_kind_says() {
        let t = crate::connect::parse_url("ws://localhost:9/").unwrap();
        assert_eq!(
            dest_for(&t, true, false).unwrap(),
            Dest::Name("localhost".into())
        );
        match dest_for(&t, false, true).unwrap() {
            Dest::Ip(ip) => assert!(ip.is_ipv4() && ip.is_loopback()),
            other => panic!("{other:?}"),
        }
        let t = crate::connect::parse_url("ws://[::1]:9/").unwrap();
        assert_eq!(
            dest_for(&t, true, false).unwrap(),
            Dest::Ip("::1".parse().unwrap())
        );
    }
}
