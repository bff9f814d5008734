//! The proxy settings, as data: [`Proxy`] (which proxy, parsed from its
//! URL), [`ProxyKind`] and the no-proxy list [`NoProxy`]. They are here,
//! with the other options, because [`Options`](crate::Options) holds them
//! and the proxy routing (`crate::proxy`) reads `Options`; kept in
//! `crate::proxy` they made the two modules name each other. They are
//! public as `floodgate::proxy::{Proxy, ProxyKind, NoProxy}` (and at the
//! crate root), re-exported from there; reading them from the environment
//! stays in `crate::proxy`.

use crate::error::{ConfigError, Error, ErrorKind, ProxyConfigError, Result};
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

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
    // `pub(crate)` for the routing in `crate::proxy`.
    pub(crate) kind: ProxyKind,
    /// Without IPv6 brackets.
    pub(crate) host: String,
    pub(crate) port: u16,
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
        let invalid = |reason: ProxyConfigError| -> Error {
            ErrorKind::Config(ConfigError::ProxyUrl {
                url: redact_url(url),
                reason,
            })
            .into()
        };
        let trimmed = url.trim();
        let (scheme, rest) = match trimmed.split_once("://") {
            Some((scheme, rest)) => (scheme, rest),
            None => ("http", trimmed),
        };
        let kind = match ProxyKind::from_scheme(scheme) {
            Some(kind) => kind,
            None if scheme.eq_ignore_ascii_case("https") => {
                return Err(invalid(ProxyConfigError::HttpsProxy))
            }
            None => {
                return Err(invalid(ProxyConfigError::UnknownScheme {
                    scheme: scheme.to_owned(),
                }))
            }
        };
        // Parse with a scheme `url` treats as special so that it checks the
        // host the way browsers do; the port default is ours.
        let parsed = url::Url::parse(&format!("http://{rest}")).map_err(|e| invalid(e.into()))?;
        if !matches!(parsed.path(), "" | "/")
            || parsed.query().is_some()
            || parsed.fragment().is_some()
        {
            return Err(invalid(ProxyConfigError::PathOrQuery));
        }
        let host = match parsed.host() {
            Some(url::Host::Domain(d)) if !d.is_empty() => d.to_owned(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            _ => return Err(invalid(ProxyConfigError::NoHost)),
        };
        // `url` drops the port when it is the scheme's default (80 for the
        // stand-in scheme), so look at what was written.
        let port = match parsed.port() {
            Some(port) => port,
            None if authority_has_port(rest) => 80,
            None => kind.default_port(),
        };
        if port == 0 {
            return Err(invalid(ProxyConfigError::PortZero));
        }
        let decode = |s: &str| -> Result<String> {
            percent_decode(s).ok_or_else(|| invalid(ProxyConfigError::Credentials))
        };
        let mut proxy = Proxy::new(kind, host, port);
        if !parsed.username().is_empty() || parsed.password().is_some() {
            proxy.username = Some(decode(parsed.username())?);
            proxy.password = parsed.password().map(decode).transpose()?;
        }
        proxy.validate().map_err(invalid)?;
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
    pub(crate) fn validate(&self) -> std::result::Result<(), ProxyConfigError> {
        if self.port == 0 {
            return Err(ProxyConfigError::PortZero);
        }
        match self.kind {
            ProxyKind::Socks4 | ProxyKind::Socks4a if self.password.is_some() => {
                Err(ProxyConfigError::Socks4Password)
            }
            ProxyKind::Socks5 | ProxyKind::Socks5h => {
                let user = self.username.as_deref().unwrap_or("");
                let pass = self.password.as_deref().unwrap_or("");
                if user.len() > 255 || pass.len() > 255 {
                    Err(ProxyConfigError::Socks5CredentialsTooLong)
                } else if self.username.is_some() && user.is_empty() {
                    Err(ProxyConfigError::Socks5EmptyUser)
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        }
    }

    /// `HTTP proxy 127.0.0.1:3128`, for error messages.
    pub(crate) fn label(&self) -> String {
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

/// `host:port`, with brackets around an IPv6 address.
pub(crate) fn host_port(host: &str, port: u16) -> String {
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

/// Hosts to reach without the proxy: the `no_proxy` list.
///
/// The rules are curl's (`CURLOPT_NOPROXY`), so one `no_proxy` variable
/// means the same to floodgate, curl and websocket-client in the usual
/// cases:
///
/// - entries are separated by commas (spaces around them are ignored);
/// - `*` matches every host;
/// - a name matches itself and every name below it, with or without a
///   leading dot: `example.com` and `.example.com` both match
///   `example.com` and `ws.example.com`, not `badexample.com`; names are
///   compared without ASCII case and without a trailing dot;
/// - an IP address matches the same address written in the URL (`::1`
///   or `[::1]`), and `addr/bits` a network (`10.0.0.0/8`, `fd00::/8`);
///   names are not resolved to be compared with addresses;
/// - an entry with a port (`host:8080`) matches nothing, as in curl: the
///   list is about hosts.
///
/// ```
/// let list = floodgate::NoProxy::parse("localhost, .internal.example,10.0.0.0/8");
/// assert!(list.matches("localhost"));
/// assert!(list.matches("feed.internal.example"));
/// assert!(list.matches("internal.example"));
/// assert!(list.matches("10.1.2.3"));
/// assert!(!list.matches("example.com"));
/// assert!(floodgate::NoProxy::parse("*").matches("anything"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NoProxy {
    entries: Vec<Entry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    All,
    /// Lowercase, without leading or trailing dots.
    Name(String),
    Net(IpAddr, u8),
}

impl NoProxy {
    /// Parses a comma-separated list (see the type's docs). Entries that
    /// cannot match anything are kept out silently, as curl does.
    pub fn parse(list: &str) -> NoProxy {
        list.split(',').collect()
    }

    /// An empty list: every host uses the proxy.
    pub fn none() -> NoProxy {
        NoProxy::default()
    }

    /// `localhost, 127.0.0.1, ::1`: the hosts a proxy from the environment
    /// is not used for when no list is set.
    pub(crate) fn loopback() -> NoProxy {
        NoProxy::parse("localhost,127.0.0.1,::1")
    }

    /// Whether `host` (a name, or an IP address with or without IPv6
    /// brackets) is reached without the proxy.
    pub fn matches(&self, host: &str) -> bool {
        let host = host.trim();
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let ip = host.parse::<IpAddr>().ok();
        let name = host.trim_end_matches('.').to_ascii_lowercase();
        self.entries.iter().any(|entry| match (entry, ip) {
            (Entry::All, _) => true,
            (Entry::Net(net, bits), Some(ip)) => in_network(ip, *net, *bits),
            (Entry::Name(entry), None) => {
                name == *entry
                    || (name.len() > entry.len()
                        && name.ends_with(entry.as_str())
                        && name.as_bytes()[name.len() - entry.len() - 1] == b'.')
            }
            _ => false,
        })
    }

    /// Whether the list has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl<S: AsRef<str>> FromIterator<S> for NoProxy {
    /// One entry per item (websocket-client's `http_no_proxy` list).
    fn from_iter<I: IntoIterator<Item = S>>(iter: I) -> NoProxy {
        NoProxy {
            entries: iter
                .into_iter()
                .filter_map(|e| parse_entry(e.as_ref()))
                .collect(),
        }
    }
}

impl From<&str> for NoProxy {
    fn from(list: &str) -> NoProxy {
        NoProxy::parse(list)
    }
}

impl From<String> for NoProxy {
    fn from(list: String) -> NoProxy {
        NoProxy::parse(&list)
    }
}

impl From<Vec<String>> for NoProxy {
    fn from(list: Vec<String>) -> NoProxy {
        list.into_iter().collect()
    }
}

fn parse_entry(raw: &str) -> Option<Entry> {
    let entry = raw.trim();
    if entry.is_empty() {
        return None;
    }
    if entry == "*" {
        return Some(Entry::All);
    }
    let unbracketed = entry
        .strip_prefix('[')
        .and_then(|e| e.strip_suffix(']'))
        .unwrap_or(entry);
    let (addr, bits) = match unbracketed.split_once('/') {
        Some((addr, bits)) => (addr, Some(bits)),
        None => (unbracketed, None),
    };
    if let Ok(ip) = addr.parse::<IpAddr>() {
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let bits = match bits {
            None => max,
            Some(bits) => bits.parse::<u8>().ok().filter(|b| *b <= max)?,
        };
        return Some(Entry::Net(ip, bits));
    }
    let name = entry.trim_start_matches('.').trim_end_matches('.');
    if name.is_empty() || name.contains([':', '/', ' ']) {
        return None;
    }
    Some(Entry::Name(name.to_ascii_lowercase()))
}

fn in_network(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        // ::ffff:10.0.0.1 is 10.0.0.1.
        (IpAddr::V6(ip), IpAddr::V4(_)) => ip
            .to_ipv4_mapped()
            .is_some_and(|v4| in_network(IpAddr::V4(v4), net, bits)),
        (IpAddr::V4(_), IpAddr::V6(_)) => false,
    }
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
    fn names_match_themselves_and_their_subdomains_with_or_without_a_dot() {
        for list in [
            "example.com",
            ".example.com",
            "example.com.",
            " other , EXAMPLE.com ",
        ] {
            let l = NoProxy::parse(list);
            assert!(l.matches("example.com"), "{list}");
            assert!(l.matches("ws.Example.com"), "{list}");
            assert!(l.matches("a.b.example.com."), "{list}");
            assert!(!l.matches("badexample.com"), "{list}");
            assert!(!l.matches("example.com.evil"), "{list}");
            assert!(!l.matches("com"), "{list}");
        }
    }

    #[test]
    fn addresses_and_networks_match_addresses_only() {
        let l = NoProxy::parse("127.0.0.1,10.0.0.0/8,[::1],fd00::/8");
        assert!(l.matches("127.0.0.1"));
        assert!(!l.matches("127.0.0.2"));
        assert!(l.matches("10.255.0.1"));
        assert!(!l.matches("11.0.0.1"));
        assert!(l.matches("::1"));
        assert!(l.matches("[::1]"));
        assert!(l.matches("fd12::5"));
        assert!(l.matches("::ffff:10.0.0.1"));
        assert!(!l.matches("localhost"), "names are not resolved");
        assert!(NoProxy::parse("0.0.0.0/0").matches("8.8.8.8"));
    }

    #[test]
    fn a_star_matches_all_and_junk_matches_nothing() {
        assert!(NoProxy::parse("a, *").matches("x.y"));
        let junk = NoProxy::parse(",, host:8080, 10.0.0.0/99, /, .");
        assert!(junk.is_empty(), "{junk:?}");
        assert!(!junk.matches("host"));
        let list: NoProxy = ["localhost", "127.0.0.1"].into_iter().collect();
        assert!(list.matches("localhost") && list.matches("127.0.0.1"));
    }
}
