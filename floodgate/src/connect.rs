//! From a URL to an open [`WebSocket`]: parse the URL, resolve the host,
//! open the TCP connection with the socket options (or the Unix socket),
//! run the TLS handshake for `wss://`, run the WebSocket handshake, and
//! follow its redirects.
//!
//! Redirects: 301, 302, 303, 307 and 308 with a `Location` are followed up
//! to `redirect_limit`, within the one connect deadline. A redirect to
//! another origin (scheme, host or port) drops `Authorization`, `Cookie`
//! and `Proxy-Authorization` for the rest of the chain, as curl does, so a
//! credential never reaches a host it was not meant for; a redirect from
//! `wss://` to `ws://` is refused.
//!
//! The connect timeout covers every address tried (see [`crate::dial`])
//! and the handshake, so a black-holed server cannot hold a caller longer
//! than asked.
//!
//! The URL, the request and the redirect rules (`parse_url`,
//! `client_request`, `next_hop`) are shared with the tokio front end's
//! `tokio/connect.rs`; the rest, the blocking opening handshake
//! (`WebSocket::client_handshake`) included, is the blocking client's. It
//! sits above the blocking front end (it makes a [`WebSocket`]) and below
//! `client.rs`.

use crate::blocking::websocket::{is_timeout, WebSocket};
use crate::dial::stream::{Stream, Transport};
pub(crate) use crate::dial::{tls_name, Target};
use crate::error::{
    Error, ErrorKind, RedirectError, Result, TimeoutKind, UnsupportedError, UrlError,
};
use crate::options::{Options, Origin};
use bytes::{Buf, BytesMut};
use floodgate_proto::handshake::{parse_response_head, ClientHandshake, ClientRequest};
use floodgate_proto::{HandshakeError, Role};
use http::StatusCode;
use std::borrow::Cow;
use std::io;
use std::sync::Arc;
use std::time::Instant;

pub(crate) fn parse_url(raw: &str) -> Result<Target> {
    let invalid = |reason: UrlError| -> Error {
        ErrorKind::InvalidUrl {
            url: raw.to_owned(),
            reason,
        }
        .into()
    };
    let url = url::Url::parse(raw).map_err(|e| invalid(UrlError::Parse(e)))?;
    // WHATWG parsing forgives a missing authority for special schemes
    // ("ws:///path" and "ws:path" both get the host "path"); a WebSocket URL
    // must name its host after "//".
    let authority = raw
        .split_once(':')
        .and_then(|(_, rest)| rest.strip_prefix("//"));
    if !authority.is_some_and(|a| !a.is_empty() && !a.starts_with(['/', '\\'])) {
        return Err(invalid(UrlError::NoHost));
    }
    let secure = match url.scheme() {
        "ws" => false,
        "wss" => true,
        other => {
            return Err(invalid(UrlError::Scheme {
                scheme: other.to_owned(),
            }))
        }
    };
    let (host, bracketed) = match url.host() {
        Some(url::Host::Domain(d)) => (d.to_owned(), d.to_owned()),
        Some(url::Host::Ipv4(ip)) => (ip.to_string(), ip.to_string()),
        Some(url::Host::Ipv6(ip)) => (ip.to_string(), format!("[{ip}]")),
        None => return Err(invalid(UrlError::NoHost)),
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

/// Connects to `url`, following redirects of the handshake. `tls_config`
/// gives the rustls configuration (made once per [`crate::Client`]).
pub(crate) fn connect(
    url: &str,
    options: &Options,
    tls_config: &dyn Fn() -> Result<Arc<rustls::ClientConfig>>,
) -> Result<WebSocket> {
    // One deadline for the whole connect, redirects included.
    let deadline = options.connect_timeout.map(|t| Instant::now() + t);
    let mut url = url.to_owned();
    let mut options = Cow::Borrowed(options);
    let mut redirects = 0;
    loop {
        let target = parse_url(&url)?;
        let stream = open_stream(&target, &options, deadline, tls_config)?;
        let request = client_request(&target, &options);
        tracing::debug!(host = %target.host, port = target.port, path = %target.resource, "connected, sending upgrade");
        let error = match WebSocket::client_handshake(stream, &request, &options, deadline) {
            Ok(ws) => return Ok(ws),
            Err(e) => e,
        };
        url = next_hop(&url, &target, &mut options, error, &mut redirects)?;
    }
}

/// What follows a failed handshake at `url`: the URL of the redirect to
/// follow (with credentials dropped from `options` when it leaves the
/// origin), or the error to return. Shared by the blocking and the async
/// connect so that both follow the same rules.
pub(crate) fn next_hop(
    url: &str,
    target: &Target,
    options: &mut Cow<'_, Options>,
    error: Error,
    redirects: &mut u32,
) -> Result<String> {
    let Some(location) = redirect_location(&error) else {
        return Err(if target.secure {
            crate::dial::tls::classify(error, tls_name(target, options))
        } else {
            error
        });
    };
    if options.redirect_limit == 0 {
        return Err(error);
    }
    let refuse = |reason: RedirectError| -> Error {
        ErrorKind::Redirect {
            from: url.to_owned(),
            to: location.to_owned(),
            reason,
        }
        .into()
    };
    if *redirects >= options.redirect_limit {
        return Err(refuse(RedirectError::TooMany {
            limit: options.redirect_limit,
        }));
    }
    let next = redirect_target(url, location).map_err(refuse)?;
    let next_target = parse_url(&next).map_err(|e| match e.into_kind() {
        ErrorKind::InvalidUrl { reason, .. } => refuse(RedirectError::Url(reason)),
        other => other.into(),
    })?;
    if target.secure && !next_target.secure {
        return Err(refuse(RedirectError::Downgrade));
    }
    if !same_origin(target, &next_target) && carries_credentials(options) {
        tracing::debug!(to = %next, "redirect to another origin: dropping Authorization and cookies");
        let stripped = options.to_mut();
        for name in [
            http::header::AUTHORIZATION,
            http::header::COOKIE,
            http::header::PROXY_AUTHORIZATION,
        ] {
            stripped.headers.remove(name);
        }
        stripped.cookie = None;
    }
    tracing::debug!(from = %url, to = %next, "following a redirect of the handshake");
    *redirects += 1;
    Ok(next)
}

/// Opens the transport for one handshake: a Unix socket, TCP, or TLS over
/// TCP.
fn open_stream(
    target: &Target,
    options: &Options,
    deadline: Option<Instant>,
    tls_config: &dyn Fn() -> Result<Arc<rustls::ClientConfig>>,
) -> Result<Stream> {
    if let Some(path) = &options.unix_socket {
        return connect_unix(path, target);
    }
    let tcp = crate::proxy::open(target, options, deadline)?;
    if !target.secure {
        return Ok(Stream::Tcp(tcp));
    }
    let config = tls_config()?;
    set_deadline(&tcp, deadline)?;
    let tls = crate::dial::tls::handshake(tcp, config, tls_name(target, options))?;
    Ok(Stream::Tls(tls))
}

#[cfg(unix)]
fn connect_unix(path: &std::path::Path, target: &Target) -> Result<Stream> {
    if target.secure {
        return Err(ErrorKind::Unsupported(UnsupportedError::WssOverUnixSocket).into());
    }
    // A local connect does not wait on the network: it succeeds or fails at
    // once, so the connect timeout needs no part here.
    let stream =
        std::os::unix::net::UnixStream::connect(path).map_err(|source| ErrorKind::Connect {
            target: format!("Unix socket {}", path.display()),
            source,
        })?;
    tracing::debug!(path = %path.display(), "connected to the Unix socket");
    Ok(Stream::Unix(stream))
}

#[cfg(not(unix))]
fn connect_unix(_path: &std::path::Path, _target: &Target) -> Result<Stream> {
    Err(ErrorKind::Unsupported(UnsupportedError::UnixSocketsNeedUnix).into())
}

/// The `Location` of a redirect answer to the handshake.
fn redirect_location(error: &Error) -> Option<&str> {
    match error.kind() {
        ErrorKind::Handshake(HandshakeError::UnexpectedStatus {
            status, headers, ..
        }) if matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308) => {
            headers.get(http::header::LOCATION)?.to_str().ok()
        }
        _ => None,
    }
}

/// Resolves a `Location` against the URL that answered, mapping `http`
/// to `ws` and `https` to `wss` (servers redirect with the HTTP names).
fn redirect_target(base: &str, location: &str) -> std::result::Result<String, RedirectError> {
    // `base` is the URL just connected to, so it parses.
    let base = url::Url::parse(base).map_err(RedirectError::Location)?;
    let mut next = base.join(location).map_err(RedirectError::Location)?;
    let not_websocket = |next: &url::Url| RedirectError::Scheme {
        scheme: next.scheme().to_owned(),
    };
    let scheme = match next.scheme() {
        "ws" | "http" => "ws",
        "wss" | "https" => "wss",
        _ => return Err(not_websocket(&next)),
    };
    if next.scheme() != scheme {
        // `set_scheme` refuses to change between special schemes only when
        // one side is `file`; http<->ws and https<->wss are allowed.
        next.set_scheme(scheme).map_err(|()| not_websocket(&next))?;
    }
    next.set_fragment(None);
    Ok(next.into())
}

fn same_origin(a: &Target, b: &Target) -> bool {
    a.secure == b.secure && a.host.eq_ignore_ascii_case(&b.host) && a.port == b.port
}

fn carries_credentials(options: &Options) -> bool {
    options.cookie.is_some()
        || options.headers.contains_key(http::header::AUTHORIZATION)
        || options.headers.contains_key(http::header::COOKIE)
        || options
            .headers
            .contains_key(http::header::PROXY_AUTHORIZATION)
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
        deflate: options.compression.clone(),
    }
}

/// The opening handshake of the blocking client, over a connected
/// transport (`open_stream`'s, or the caller's for
/// [`Client::connect_over`](crate::Client::connect_over)).
/// The bytes that came after the response head (the server may send its
/// first frames at once), in a buffer of their own size: the 4 KiB the
/// handshake read into would otherwise stay with the connection for good,
/// most of an idle connection's memory. The connection's reads size its
/// buffer from then on.
pub(crate) fn after_head(mut buf: BytesMut, head_len: usize) -> BytesMut {
    if buf.len() == head_len {
        return BytesMut::new();
    }
    buf.advance(head_len);
    BytesMut::from(&buf[..])
}

impl<S: Transport> WebSocket<S> {
    /// Runs the client handshake over a connected transport.
    pub(crate) fn client_handshake(
        mut stream: S,
        request: &ClientRequest,
        options: &Options,
        deadline: Option<Instant>,
    ) -> Result<WebSocket<S>> {
        let (handshake, bytes) = ClientHandshake::new(request)?;
        tracing::debug!(
            request = %String::from_utf8_lossy(&bytes).trim_end(),
            "sending the opening handshake"
        );
        set_deadline(&stream, deadline)?;
        write_all(&mut stream, &bytes, TimeoutKind::Handshake)?;
        let mut buf = BytesMut::with_capacity(4096);
        let (head, head_len) = loop {
            if let Some(parsed) = parse_response_head(&buf, options.max_handshake_size)? {
                break parsed;
            }
            read_more(&mut stream, &mut buf, 4096, TimeoutKind::Handshake)?;
        };
        tracing::debug!(
            response = %String::from_utf8_lossy(&buf[..head_len]).trim_end(),
            "received the handshake response"
        );
        if head.status != StatusCode::SWITCHING_PROTOCOLS {
            // Show the start of the body with the error: wait (within the
            // same deadline) for what Content-Length announces, at most 4 KiB.
            let wanted = head_len + head.error_body_wanted();
            while buf.len() < wanted {
                let missing = wanted - buf.len();
                if read_more(&mut stream, &mut buf, missing, TimeoutKind::Handshake).is_err() {
                    break;
                }
            }
        }
        let response = handshake.accept(head, &buf[head_len..])?;
        let buf = after_head(buf, head_len);
        // The connection sets the socket's timeouts itself from now on.
        stream.set_read_timeout(None)?;
        stream.set_write_timeout(None)?;
        tracing::debug!(subprotocol = ?response.subprotocol, "WebSocket handshake accepted");
        if let Some(deflate) = &response.deflate {
            tracing::debug!(%deflate, "permessage-deflate negotiated");
        }
        let mut ws = WebSocket::from_parts(
            stream,
            Role::Client,
            options,
            buf,
            response.status,
            response.headers,
            response.subprotocol,
        );
        ws.conn.set_deflate(response.deflate);
        Ok(ws)
    }
}

pub(crate) fn set_deadline<S: Transport>(stream: &S, deadline: Option<Instant>) -> Result<()> {
    let left = match deadline {
        None => None,
        Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
            Some(left) if !left.is_zero() => Some(left),
            _ => return Err(TimeoutKind::Handshake.into()),
        },
    };
    stream.set_read_timeout(left)?;
    stream.set_write_timeout(left)?;
    Ok(())
}

fn write_all<S: Transport>(stream: &mut S, mut bytes: &[u8], during: TimeoutKind) -> Result<()> {
    while !bytes.is_empty() {
        match stream.write(bytes) {
            Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero).into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if is_timeout(&e) => return Err(during.into()),
            Err(e) => return Err(e.into()),
        }
    }
    stream.flush().map_err(Error::from)
}

/// One read of up to `at_most` more bytes during the handshake.
fn read_more<S: Transport>(
    stream: &mut S,
    buf: &mut BytesMut,
    at_most: usize,
    during: TimeoutKind,
) -> Result<()> {
    buf.reserve(at_most.max(1));
    loop {
        match stream.read_into(buf, at_most.max(1)) {
            Ok(0) => {
                return Err(ErrorKind::Io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the server closed the connection during the handshake",
                ))
                .into())
            }
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if is_timeout(&e) => return Err(during.into()),
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_the_head_only_the_early_bytes_are_kept_in_a_buffer_their_size() {
        let mut buf = BytesMut::with_capacity(4096);
        buf.extend_from_slice(b"HTTP/1.1 101 Switching Protocols\r\n\r\n");
        let head = buf.len();
        assert_eq!(after_head(buf.clone(), head).capacity(), 0);
        buf.extend_from_slice(b"\x82\x02hi");
        let early = after_head(buf, head);
        assert_eq!(&early[..], b"\x82\x02hi");
        assert!(early.capacity() < 64, "{}", early.capacity());
    }

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

    #[test]
    fn redirect_locations_resolve_to_websocket_urls() {
        let base = "wss://example.com:8443/a/b?q=1";
        assert_eq!(
            redirect_target(base, "/c").unwrap(),
            "wss://example.com:8443/c"
        );
        assert_eq!(
            redirect_target(base, "d").unwrap(),
            "wss://example.com:8443/a/d"
        );
        assert_eq!(
            redirect_target(base, "https://other.example/x#frag").unwrap(),
            "wss://other.example/x"
        );
        assert_eq!(
            redirect_target("ws://h/", "http://h:81/y").unwrap(),
            "ws://h:81/y"
        );
        assert!(redirect_target(base, "mailto:a@b").is_err());
    }

    #[test]
    fn origins_differ_by_scheme_host_or_port_but_not_by_case() {
        let a = parse_url("ws://Example.com/x").unwrap();
        assert!(same_origin(&a, &parse_url("ws://example.COM/y").unwrap()));
        assert!(!same_origin(
            &a,
            &parse_url("ws://example.com:81/").unwrap()
        ));
        assert!(!same_origin(
            &a,
            &parse_url("wss://example.com:80/").unwrap()
        ));
        assert!(!same_origin(
            &a,
            &parse_url("ws://www.example.com/").unwrap()
        ));
    }
}
