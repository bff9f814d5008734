//! From a URL to an open [`WebSocket`]: parse the URL, resolve the host,
//! open the TCP connection with the socket options, run the handshake.
//!
//! Socket options that shape the TCP window (`SO_RCVBUF`) must be set
//! before `connect`, so the socket is made with `socket2` rather than
//! `TcpStream::connect`. The connect timeout covers every address tried and
//! the handshake, so a black-holed server cannot hold a caller longer than
//! asked.

use crate::config::{Options, Origin};
use crate::error::{Error, ErrorKind, Result};
use crate::socket::WebSocket;
use crate::stream::Stream;
use floodgate_proto::handshake::ClientRequest;
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

pub(crate) fn parse_url(raw: &str) -> Result<Target> {
    let invalid = |reason: &str| -> Error {
        ErrorKind::InvalidUrl {
            url: raw.to_owned(),
            reason: reason.to_owned(),
        }
        .into()
    };
    let url = url::Url::parse(raw).map_err(|e| invalid(&e.to_string()))?;
    // WHATWG parsing forgives a missing authority for special schemes
    // ("ws:///path" and "ws:path" both get the host "path"); a WebSocket URL
    // must name its host after "//".
    let authority = raw
        .split_once(':')
        .and_then(|(_, rest)| rest.strip_prefix("//"));
    if !authority.is_some_and(|a| !a.is_empty() && !a.starts_with(['/', '\\'])) {
        return Err(invalid("no host after \"//\""));
    }
    let secure = match url.scheme() {
        "ws" => false,
        "wss" => true,
        other => return Err(invalid(&format!("scheme {other:?} is not ws or wss"))),
    };
    let (host, bracketed) = match url.host() {
        Some(url::Host::Domain(d)) => (d.to_owned(), d.to_owned()),
        Some(url::Host::Ipv4(ip)) => (ip.to_string(), ip.to_string()),
        Some(url::Host::Ipv6(ip)) => (ip.to_string(), format!("[{ip}]")),
        None => return Err(invalid("no host")),
    };
    let default_port = if secure { 443 } else { 80 };
    let port = url.port().unwrap_or(default_port);
    let host_header = if port == default_port {
        bracketed
    } else {
        format!("{bracketed}:{port}")
    };
    let mut resource = url.path().to_owned();
    if let Some(query) = url.query() {
        resource.push('?');
        resource.push_str(query);
    }
    Ok(Target {
        secure,
        host,
        port,
        host_header,
        resource,
    })
}

pub(crate) fn connect(url: &str, options: &Options) -> Result<WebSocket> {
    let target = parse_url(url)?;
    if target.secure {
        return Err(ErrorKind::Unsupported(format!(
            "wss:// (TLS) is not supported yet by this version of floodgate; cannot connect to {url}"
        ))
        .into());
    }
    let deadline = options.connect_timeout.map(|t| Instant::now() + t);
    let tcp = crate::proxy::open(&target, options, deadline)?;
    let request = client_request(&target, options);
    tracing::debug!(host = %target.host, port = target.port, path = %target.resource, "connected TCP, sending upgrade");
    WebSocket::client_handshake(Stream::Tcp(tcp), &request, options, deadline)
}

pub(crate) fn client_request(target: &Target, options: &Options) -> ClientRequest {
    let origin = match &options.origin {
        Origin::FromUrl => Some(format!(
            "{}://{}",
            if target.secure { "https" } else { "http" },
            target.host_header
        )),
        Origin::Custom(origin) => Some(origin.clone()),
        Origin::Suppress => None,
    };
    ClientRequest {
        host: options
            .host
            .clone()
            .unwrap_or_else(|| target.host_header.clone()),
        path: target.resource.clone(),
        origin,
        subprotocols: options.subprotocols.clone(),
        cookie: options.cookie.clone(),
        headers: options.headers.clone(),
    }
}

pub(crate) fn connect_tcp(
    target: &Target,
    options: &Options,
    deadline: Option<Instant>,
) -> Result<TcpStream> {
    let where_ = format!("{}:{}", target.host, target.port);
    let addrs: Vec<SocketAddr> = (target.host.as_str(), target.port)
        .to_socket_addrs()
        .map_err(|source| ErrorKind::Connect {
            target: where_.clone(),
            source,
        })?
        .collect();
    let mut last_error = io::Error::new(
        io::ErrorKind::NotFound,
        "the host name resolved to no address",
    );
    for addr in addrs {
        let remaining = match deadline {
            Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => Some(left),
                _ => return Err(ErrorKind::Timeout("connecting (connect_timeout)").into()),
            },
            None => None,
        };
        match connect_addr(addr, options, remaining) {
            Ok(stream) => return Ok(stream),
            Err(e)
                if e.kind() == io::ErrorKind::TimedOut || e.kind() == io::ErrorKind::WouldBlock =>
            {
                return Err(ErrorKind::Timeout("connecting (connect_timeout)").into())
            }
            Err(e) => {
                tracing::debug!(%addr, error = %e, "TCP connect failed");
                last_error = e;
            }
        }
    }
    Err(ErrorKind::Connect {
        target: where_,
        source: last_error,
    }
    .into())
}

fn connect_addr(
    addr: SocketAddr,
    options: &Options,
    timeout: Option<Duration>,
) -> io::Result<TcpStream> {
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
    let addr = SockAddr::from(addr);
    match timeout {
        Some(timeout) => socket.connect_timeout(&addr, timeout)?,
        None => socket.connect(&addr)?,
    }
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_give_host_port_and_resource() {
        let t = parse_url("ws://example.com/chat?room=1").unwrap();
        assert_eq!(
            (
                t.host.as_str(),
                t.port,
                t.host_header.as_str(),
                t.resource.as_str()
            ),
            ("example.com", 80, "example.com", "/chat?room=1")
        );
        let t = parse_url("ws://127.0.0.1:9001").unwrap();
        assert_eq!(
            (t.port, t.host_header.as_str(), t.resource.as_str()),
            (9001, "127.0.0.1:9001", "/")
        );
        let t = parse_url("wss://[::1]:8443/x").unwrap();
        assert!(t.secure);
        assert_eq!(
            (t.host.as_str(), t.host_header.as_str()),
            ("::1", "[::1]:8443")
        );
        let t = parse_url("wss://example.com:443/").unwrap();
        assert_eq!(t.host_header, "example.com");
    }

    #[test]
    fn other_schemes_and_garbage_are_invalid_urls() {
        // (`ws:///path` is not here: the URL standard reads it as host "path".)
        for bad in ["http://example.com/", "example.com", "ws://", "ws://:80/"] {
            let err = parse_url(bad).unwrap_err();
            assert!(
                matches!(err.kind(), ErrorKind::InvalidUrl { .. }),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn wss_is_reported_as_not_yet_supported() {
        let err = connect("wss://127.0.0.1:1/", &Options::default()).unwrap_err();
        assert!(
            matches!(err.kind(), ErrorKind::Unsupported(m) if m.contains("not supported yet")),
            "{err}"
        );
    }

    #[test]
    fn the_origin_follows_the_url_unless_overridden_or_suppressed() {
        let target = parse_url("ws://example.com:8080/").unwrap();
        let mut options = Options::default();
        assert_eq!(
            client_request(&target, &options).origin.as_deref(),
            Some("http://example.com:8080")
        );
        options.origin = Origin::Custom("https://app.example".into());
        assert_eq!(
            client_request(&target, &options).origin.as_deref(),
            Some("https://app.example")
        );
        options.origin = Origin::Suppress;
        assert_eq!(client_request(&target, &options).origin, None);
        options.host = Some("virtual.example".into());
        assert_eq!(client_request(&target, &options).host, "virtual.example");
    }
}
