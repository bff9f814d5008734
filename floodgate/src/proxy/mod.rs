//! Connecting through a proxy: HTTP `CONNECT`, SOCKS4, SOCKS4a, SOCKS5 and
//! SOCKS5h, client side.
//!
//! A proxy only changes how the TCP connection is opened: `open` returns
//! a [`TcpStream`] that is either connected to the server directly or a
//! tunnel through the proxy to it, and everything after (TLS, the
//! WebSocket handshake, frames) runs over that stream unchanged.
//!
//! Which proxy is used, in order:
//!
//! 1. none when the server's host matches the no-proxy list
//!    ([`ClientBuilder::no_proxy`](crate::ClientBuilder::no_proxy), else
//!    `no_proxy`/`NO_PROXY` from the environment; see [`NoProxy`] for the
//!    matching rules, which are curl's);
//! 2. the proxy given to [`ClientBuilder::proxy`](crate::ClientBuilder::proxy);
//! 3. when [`proxy_from_env`](crate::ClientBuilder::proxy_from_env) is on
//!    (the default, as in websocket-client and curl): `http_proxy` for
//!    `ws://` (lowercase only: in CGI programs `HTTP_PROXY` can be set by a
//!    request's `Proxy:` header), `https_proxy` or `HTTPS_PROXY` for
//!    `wss://`, then `all_proxy` or `ALL_PROXY`. A proxy from the
//!    environment is not used for `localhost`, `127.0.0.1` and `::1` unless
//!    a no-proxy list is set (then that list decides).
//!
//! The protocols are written by hand rather than taken from a crate: each
//! is a few dozen bytes each way, the crates that exist either target
//! async runtimes or do their own connect without our socket options
//! (`SO_RCVBUF` must be set before `connect`) and deadline, and here every
//! read is bounded in size and time. The encoders and parsers are plain
//! functions over byte slices (unit-tested below each protocol); the I/O
//! is in `Handshake`.
//!
//! The guide is `docs/proxies.md`.

mod env;
mod http;
mod socks4;
mod socks5;

pub use env::NoProxy;

use crate::config::Options;
use crate::connect::Target;
use crate::error::{Error, ErrorKind, ProxyError, Result};
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::str::FromStr;
use std::time::{Duration, Instant};

/// The protocol spoken to a proxy, from the scheme of its URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProxyKind {
    /// `http://`: an HTTP proxy asked with `CONNECT host:port` (default
    /// port 80), with `Proxy-Authorization: Basic` when credentials are
    /// given.
    Http,
    /// `socks4://`: SOCKS4; the client resolves the server's name to an
    /// IPv4 address. A user name is sent as the SOCKS4 user id; SOCKS4 has
    /// no passwords.
    Socks4,
    /// `socks4a://`: SOCKS4a; the proxy resolves the server's name.
    Socks4a,
    /// `socks5://`: SOCKS5 (RFC 1928), no authentication or user name and
    /// password (RFC 1929); the client resolves the server's name.
    Socks5,
    /// `socks5h://`: SOCKS5 with the server's name resolved by the proxy
    /// (curl's name for it).
    Socks5h,
}

impl ProxyKind {
    /// The URL scheme: `http`, `socks4`, `socks4a`, `socks5` or `socks5h`.
    pub fn scheme(self) -> &'static str {
        match self {
            ProxyKind::Http => "http",
            ProxyKind::Socks4 => "socks4",
            ProxyKind::Socks4a => "socks4a",
            ProxyKind::Socks5 => "socks5",
            ProxyKind::Socks5h => "socks5h",
        }
    }

    /// The port used when the URL has none: 80 for HTTP (as in the URL
    /// standard and Python's `urllib`), 1080 for SOCKS.
    pub fn default_port(self) -> u16 {
        match self {
            ProxyKind::Http => 80,
            _ => 1080,
        }
    }

    /// The kind for a scheme (ASCII case-insensitive), as websocket-client's
    /// `proxy_type` names them.
    pub fn from_scheme(scheme: &str) -> Option<ProxyKind> {
        Some(match scheme.to_ascii_lowercase().as_str() {
            "http" => ProxyKind::Http,
            "socks4" => ProxyKind::Socks4,
            "socks4a" => ProxyKind::Socks4a,
            "socks5" => ProxyKind::Socks5,
            "socks5h" => ProxyKind::Socks5h,
            _ => return None,
        })
    }

    /// Whether the proxy resolves the server's name (`socks4a`, `socks5h`,
    /// and HTTP, which is always given the name).
    pub fn remote_dns(self) -> bool {
        matches!(
            self,
            ProxyKind::Http | ProxyKind::Socks4a | ProxyKind::Socks5h
        )
    }

    fn label(self) -> &'static str {
        match self {
            ProxyKind::Http => "HTTP",
            ProxyKind::Socks4 => "SOCKS4",
            ProxyKind::Socks4a => "SOCKS4a",
            ProxyKind::Socks5 => "SOCKS5",
            ProxyKind::Socks5h => "SOCKS5h",
        }
    }
}

impl fmt::Display for ProxyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.scheme())
    }
}

/// A proxy to connect through: its protocol, host, port and optional
/// credentials.
///
/// Parse one from a URL, `scheme://[user[:password]@]host[:port]`, where
/// the scheme is `http`, `socks4`, `socks4a`, `socks5` or `socks5h` (see
/// [`ProxyKind`]); percent-escapes in the user and password are decoded
/// (write `@` as `%40`). A URL without scheme is an HTTP proxy, as in
/// curl. `Display` and `Debug` never show the password.
///
/// ```
/// use floodgate::{Proxy, ProxyKind};
/// let proxy = Proxy::parse("socks5h://alice:s%40cret@127.0.0.1:1080")?;
/// assert_eq!(proxy.kind(), ProxyKind::Socks5h);
/// assert_eq!((proxy.host(), proxy.port()), ("127.0.0.1", 1080));
/// assert_eq!(proxy.username(), Some("alice"));
/// assert_eq!(proxy.password(), Some("s@cret"));
/// assert_eq!(proxy.to_string(), "socks5h://alice:***@127.0.0.1:1080");
///
/// // The same, piece by piece (websocket-client's http_proxy_host,
/// // http_proxy_port, http_proxy_auth and proxy_type):
/// let same = Proxy::new(ProxyKind::Socks5h, "127.0.0.1", 1080).credentials("alice", "s@cret");
/// assert_eq!(same, proxy);
///
/// let client = floodgate::Client::builder()
///     .proxy(proxy)
///     .no_proxy("localhost,.internal.example")
///     .build()?;
/// # Ok::<(), floodgate::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Proxy {
    kind: ProxyKind,
    /// Without IPv6 brackets.
    host: String,
    port: u16,
    username: Option<String>,
    password: Option<String>,
}

impl Proxy {
    /// A proxy without credentials.
    pub fn new(kind: ProxyKind, host: impl Into<String>, port: u16) -> Proxy {
        let host = host.into();
        let host = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            Some(inner) => inner.to_owned(),
            None => host,
        };
        Proxy {
            kind,
            host,
            port,
            username: None,
            password: None,
        }
    }

    /// Parses `scheme://[user[:password]@]host[:port]` (see the type's
    /// docs).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`] for an unknown scheme (`https://` proxies,
    /// TLS to the proxy itself, are not supported), a missing host, a path
    /// or query, port 0, a SOCKS4 password, or credentials over 255 bytes
    /// for SOCKS5.
    pub fn parse(url: &str) -> Result<Proxy> {
        let invalid = |reason: &str| -> Error {
            ErrorKind::Config(format!("proxy URL {:?}: {reason}", redact_url(url))).into()
        };
        let trimmed = url.trim();
        let (scheme, rest) = match trimmed.split_once("://") {
            Some((scheme, rest)) => (scheme, rest),
            None => ("http", trimmed),
        };
        let kind = match ProxyKind::from_scheme(scheme) {
            Some(kind) => kind,
            None if scheme.eq_ignore_ascii_case("https") => {
                return Err(invalid(
                    "https:// proxies (TLS to the proxy itself) are not supported; use http://, socks4://, socks4a://, socks5:// or socks5h://",
                ))
            }
            None => {
                return Err(invalid(&format!(
                    "unknown scheme {scheme:?}; use http, socks4, socks4a, socks5 or socks5h"
                )))
            }
        };
        // Parse with a scheme `url` treats as special so that it checks the
        // host the way browsers do; the port default is ours.
        let parsed =
            url::Url::parse(&format!("http://{rest}")).map_err(|e| invalid(&e.to_string()))?;
        if !matches!(parsed.path(), "" | "/")
            || parsed.query().is_some()
            || parsed.fragment().is_some()
        {
            return Err(invalid(
                "a proxy URL has no path or query: write scheme://host:port",
            ));
        }
        let host = match parsed.host() {
            Some(url::Host::Domain(d)) if !d.is_empty() => d.to_owned(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            _ => return Err(invalid("no host")),
        };
        // `url` drops the port when it is the scheme's default (80 for the
        // stand-in scheme), so look at what was written.
        let port = match parsed.port() {
            Some(port) => port,
            None if authority_has_port(rest) => 80,
            None => kind.default_port(),
        };
        if port == 0 {
            return Err(invalid("port 0"));
        }
        let decode = |s: &str| -> Result<String> {
            percent_decode(s)
                .ok_or_else(|| invalid("the user or password is not valid percent-encoded UTF-8"))
        };
        let mut proxy = Proxy::new(kind, host, port);
        if !parsed.username().is_empty() || parsed.password().is_some() {
            proxy.username = Some(decode(parsed.username())?);
            proxy.password = parsed.password().map(decode).transpose()?;
        }
        proxy.validate().map_err(|reason| invalid(&reason))?;
        Ok(proxy)
    }

    /// Sets the user name and password (websocket-client's
    /// `http_proxy_auth=(user, password)`). For SOCKS4 give the user id as
    /// `username` and an empty password.
    pub fn credentials(
        mut self,
        username: impl Into<String>,
        password: impl Into<String>,
    ) -> Proxy {
        self.username = Some(username.into());
        let password = password.into();
        self.password =
            if password.is_empty() && matches!(self.kind, ProxyKind::Socks4 | ProxyKind::Socks4a) {
                None
            } else {
                Some(password)
            };
        self
    }

    /// The protocol.
    pub fn kind(&self) -> ProxyKind {
        self.kind
    }

    /// The proxy's host name or address (IPv6 without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The proxy's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The user name, if credentials were given.
    pub fn username(&self) -> Option<&str> {
        self.username.as_deref()
    }

    /// The password, if one was given.
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// What the builder checks: limits of the protocols.
    pub(crate) fn validate(&self) -> std::result::Result<(), String> {
        if self.port == 0 {
            return Err("port 0".into());
        }
        match self.kind {
            ProxyKind::Socks4 | ProxyKind::Socks4a if self.password.is_some() => Err(
                "SOCKS4 has no passwords: give only a user id (socks4://userid@host:port), or use socks5://".into(),
            ),
            ProxyKind::Socks5 | ProxyKind::Socks5h => {
                let user = self.username.as_deref().unwrap_or("");
                let pass = self.password.as_deref().unwrap_or("");
                if user.len() > 255 || pass.len() > 255 {
                    Err("SOCKS5 user names and passwords are limited to 255 bytes (RFC 1929)".into())
                } else if self.username.is_some() && user.is_empty() {
                    Err("SOCKS5 user name is empty (RFC 1929 needs at least 1 byte)".into())
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        }
    }

    /// `HTTP proxy 127.0.0.1:3128`, for error messages.
    fn label(&self) -> String {
        format!(
            "{} proxy {}",
            self.kind.label(),
            host_port(&self.host, self.port)
        )
    }
}

impl fmt::Display for Proxy {
    /// `scheme://[user:***@]host:port`: the password is never shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://", self.kind.scheme())?;
        if let Some(user) = &self.username {
            write!(f, "{}", percent_encode_userinfo(user))?;
            if self.password.is_some() {
                f.write_str(":***")?;
            }
            f.write_str("@")?;
        }
        f.write_str(&host_port(&self.host, self.port))
    }
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy")
            .field("kind", &self.kind)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .finish()
    }
}

impl FromStr for Proxy {
    type Err = Error;
    fn from_str(s: &str) -> Result<Proxy> {
        Proxy::parse(s)
    }
}

impl TryFrom<&str> for Proxy {
    type Error = Error;
    fn try_from(s: &str) -> Result<Proxy> {
        Proxy::parse(s)
    }
}

impl TryFrom<String> for Proxy {
    type Error = Error;
    fn try_from(s: String) -> Result<Proxy> {
        Proxy::parse(&s)
    }
}

impl TryFrom<&String> for Proxy {
    type Error = Error;
    fn try_from(s: &String) -> Result<Proxy> {
        Proxy::parse(s)
    }
}

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
                ErrorKind::Connect { source, .. }
                    if source.kind() == io::ErrorKind::NotFound || is_resolve_error(&source) =>
                {
                    fail(ProxyError::Resolve {
                        host: proxy.host.clone(),
                        source,
                    })
                }
                ErrorKind::Connect { source, .. } => fail(ProxyError::Unreachable(source)),
                ErrorKind::Timeout(_) => fail(ProxyError::TimedOut),
                other => other.into(),
            }
        })?;
    let mut handshake = Handshake {
        stream: &stream,
        deadline,
    };
    let result = match proxy.kind {
        ProxyKind::Http => http::tunnel(&mut handshake, proxy, target, options.max_handshake_size),
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
enum Dest {
    Ip(IpAddr),
    Name(String),
}

/// The server's address for the request: an IP literal as is; a name
/// passed on when the proxy resolves, else resolved here (IPv4 first for
/// SOCKS4, which can carry nothing else).
fn dest_for(
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
pub(crate) struct Handshake<'a> {
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

    fn write_all(&mut self, mut bytes: &[u8]) -> std::result::Result<(), ProxyError> {
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
    fn read_exact(
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

/// `host:port`, with brackets around an IPv6 address.
fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Whether the authority of `rest` (what follows `scheme://`) writes a
/// port, e.g. `h:80` or `[::1]:80`.
fn authority_has_port(rest: &str) -> bool {
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    match host_port.rfind(']') {
        Some(close) => host_port[close..].contains(':'),
        None => host_port.contains(':'),
    }
}

/// The URL with its password replaced by `***`, for error messages.
fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (Some(s), r),
        None => (None, url),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let redacted = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => authority.to_owned(),
        },
        None => authority.to_owned(),
    };
    match scheme {
        Some(s) => format!("{s}://{redacted}{tail}"),
        None => format!("{redacted}{tail}"),
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn percent_encode_userinfo(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_of_every_scheme_parse_with_their_default_ports() {
        let cases = [
            (
                "http://proxy.example:3128",
                ProxyKind::Http,
                "proxy.example",
                3128,
            ),
            ("http://proxy.example", ProxyKind::Http, "proxy.example", 80),
            (
                "http://proxy.example:80",
                ProxyKind::Http,
                "proxy.example",
                80,
            ),
            ("proxy.example:8080", ProxyKind::Http, "proxy.example", 8080),
            ("socks4://10.0.0.1", ProxyKind::Socks4, "10.0.0.1", 1080),
            ("socks4a://h:1", ProxyKind::Socks4a, "h", 1),
            ("SOCKS5://h", ProxyKind::Socks5, "h", 1080),
            ("socks5h://[::1]:9050/", ProxyKind::Socks5h, "::1", 9050),
        ];
        for (url, kind, host, port) in cases {
            let p = Proxy::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
            assert_eq!((p.kind(), p.host(), p.port()), (kind, host, port), "{url}");
            assert_eq!(p.username(), None);
        }
    }

    #[test]
    fn credentials_are_percent_decoded_and_never_displayed() {
        let p = Proxy::parse("http://us%3Aer:p%40ss%20w@h:1").unwrap();
        assert_eq!(
            (p.username(), p.password()),
            (Some("us:er"), Some("p@ss w"))
        );
        assert_eq!(p.to_string(), "http://us%3Aer:***@h:1");
        assert!(!format!("{p:?}").contains("p@ss"));
        let p = Proxy::parse("socks4://alice@h").unwrap();
        assert_eq!((p.username(), p.password()), (Some("alice"), None));
        assert_eq!(p.to_string(), "socks4://alice@h:1080");
    }

    #[test]
    fn bad_proxy_urls_are_config_errors_that_hide_the_password() {
        for bad in [
            "https://h:443",
            "ftp://h",
            "http://",
            "http://h:0",
            "http://h/path",
            "http://h?q",
            "socks4://u:secret@h",
            "http://u:secret@h:99999",
        ] {
            let err = Proxy::parse(bad).unwrap_err();
            assert!(matches!(err.kind(), ErrorKind::Config(_)), "{bad}: {err}");
            assert!(!err.to_string().contains("secret"), "{bad}: {err}");
        }
        let long = "x".repeat(256);
        assert!(Proxy::parse(&format!("socks5://{long}:p@h")).is_err());
        assert!(Proxy::parse("https://h")
            .unwrap_err()
            .to_string()
            .contains("not supported"));
    }

    #[test]
    fn the_builder_form_matches_the_url_form() {
        let a = Proxy::new(ProxyKind::Http, "[::1]", 3128).credentials("u", "p");
        assert_eq!(a, Proxy::parse("http://u:p@[::1]:3128").unwrap());
        assert_eq!(a.to_string(), "http://u:***@[::1]:3128");
        assert_eq!(a.label(), "HTTP proxy [::1]:3128");
    }

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
