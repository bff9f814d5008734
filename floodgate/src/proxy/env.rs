//! Proxies from the environment, and the no-proxy list, as curl reads
//! them. Every function takes the variable lookup as an argument so tests
//! never have to change the process environment (which parallel tests
//! share).

use super::Proxy;
use crate::error::{ConfigError, ErrorKind, Result};
use std::net::IpAddr;

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

    /// `no_proxy`, else `NO_PROXY`, read through `lookup` (`None` when
    /// both are unset or empty).
    ///
    /// ```
    /// let env = |name: &str| (name == "NO_PROXY").then(|| ".corp.example".to_owned());
    /// let list = floodgate::NoProxy::from_env_with(env).unwrap();
    /// assert!(list.matches("ws.corp.example"));
    /// ```
    pub fn from_env_with(lookup: impl Fn(&str) -> Option<String>) -> Option<NoProxy> {
        first_set(&lookup, &["no_proxy", "NO_PROXY"]).map(|(_, value)| NoProxy::parse(&value))
    }

    /// [`from_env_with`](Self::from_env_with) on the process environment.
    pub fn from_env() -> Option<NoProxy> {
        NoProxy::from_env_with(|name| std::env::var(name).ok())
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

/// The first of `names` set to a non-empty value.
fn first_set(
    lookup: &dyn Fn(&str) -> Option<String>,
    names: &[&'static str],
) -> Option<(&'static str, String)> {
    names.iter().find_map(|name| {
        lookup(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .map(|v| (*name, v))
    })
}

impl Proxy {
    /// The proxy the environment names for a `ws://` (`secure == false`)
    /// or `wss://` server, read through `lookup`: `http_proxy` (lowercase
    /// only, as curl: `HTTP_PROXY` can be set by a request header in CGI
    /// programs) or `https_proxy` / `HTTPS_PROXY`, then `all_proxy` /
    /// `ALL_PROXY`. Empty values count as unset. A value without a scheme
    /// is an HTTP proxy. This does not look at `no_proxy`.
    ///
    /// ```
    /// use floodgate::{Proxy, ProxyKind};
    /// let env = |name: &str| match name {
    ///     "http_proxy" => Some("http://127.0.0.1:3128".to_owned()),
    ///     "ALL_PROXY" => Some("socks5h://127.0.0.1:1080".to_owned()),
    ///     _ => None,
    /// };
    /// assert_eq!(Proxy::from_env_with(false, env)?.unwrap().kind(), ProxyKind::Http);
    /// assert_eq!(Proxy::from_env_with(true, env)?.unwrap().kind(), ProxyKind::Socks5h);
    /// # Ok::<(), floodgate::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`] naming the variable when its value is not a
    /// usable proxy URL.
    pub fn from_env_with(
        secure: bool,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Proxy>> {
        let names: &[&'static str] = if secure {
            &["https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"]
        } else {
            &["http_proxy", "all_proxy", "ALL_PROXY"]
        };
        let Some((name, value)) = first_set(&lookup, names) else {
            return Ok(None);
        };
        match Proxy::parse(&value) {
            Ok(proxy) => Ok(Some(proxy)),
            Err(e) => match e.into_kind() {
                ErrorKind::Config(ConfigError::ProxyUrl { url, reason }) => {
                    Err(ErrorKind::Config(ConfigError::ProxyEnv {
                        variable: name,
                        url,
                        reason,
                    })
                    .into())
                }
                other => Err(other.into()),
            },
        }
    }

    /// [`from_env_with`](Self::from_env_with) on the process environment.
    ///
    /// # Errors
    ///
    /// As for [`from_env_with`](Self::from_env_with).
    pub fn from_env(secure: bool) -> Result<Option<Proxy>> {
        Proxy::from_env_with(secure, |name| std::env::var(name).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connect::parse_url;
    use crate::options::Options;
    use crate::proxy::{select, ProxyKind};

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        }
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

    #[test]
    fn ws_reads_lowercase_http_proxy_only_then_all_proxy() {
        let vars = [
            ("HTTP_PROXY", "http://upper:1"),
            ("ALL_PROXY", "socks5://all:2"),
        ];
        let p = Proxy::from_env_with(false, env(&vars)).unwrap().unwrap();
        assert_eq!((p.host(), p.kind()), ("all", ProxyKind::Socks5));
        let vars = [("http_proxy", "lower:3"), ("all_proxy", "socks5://all:2")];
        let p = Proxy::from_env_with(false, env(&vars)).unwrap().unwrap();
        assert_eq!(
            (p.host(), p.port(), p.kind()),
            ("lower", 3, ProxyKind::Http)
        );
        assert_eq!(
            Proxy::from_env_with(false, env(&[("HTTP_PROXY", "h:1")])).unwrap(),
            None
        );
    }

    #[test]
    fn wss_reads_https_proxy_in_either_case_then_all_proxy() {
        let p = Proxy::from_env_with(true, env(&[("HTTPS_PROXY", "s:1"), ("http_proxy", "h:2")]))
            .unwrap();
        assert_eq!(p.unwrap().host(), "s");
        let p = Proxy::from_env_with(true, env(&[("https_proxy", "a:1"), ("HTTPS_PROXY", "b:1")]))
            .unwrap();
        assert_eq!(p.unwrap().host(), "a");
        let p =
            Proxy::from_env_with(true, env(&[("https_proxy", " "), ("all_proxy", "c:1")])).unwrap();
        assert_eq!(p.unwrap().host(), "c");
        assert_eq!(
            Proxy::from_env_with(true, env(&[("http_proxy", "h:2")])).unwrap(),
            None
        );
    }

    #[test]
    fn a_bad_variable_is_a_config_error_naming_it() {
        let err = Proxy::from_env_with(false, env(&[("http_proxy", "ftp://u:pw@h")])).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("http_proxy") && !text.contains("pw@"),
            "{text}"
        );
    }

    #[test]
    fn selection_order_no_proxy_then_explicit_then_environment() {
        let ws = parse_url("ws://feed.example:9/").unwrap();
        let mut o = Options::default();
        let vars = [("http_proxy", "http://envproxy:1")];
        // From the environment by default.
        assert_eq!(
            select(&ws, &o, &env(&vars)).unwrap().unwrap().host(),
            "envproxy"
        );
        // The environment's no_proxy applies.
        let with_np = [("http_proxy", "http://envproxy:1"), ("NO_PROXY", "example")];
        assert_eq!(select(&ws, &o, &env(&with_np)).unwrap(), None);
        // An explicit proxy wins over the environment, still under no_proxy.
        o.proxy = Some(Proxy::parse("socks5://explicit:2").unwrap());
        assert_eq!(
            select(&ws, &o, &env(&vars)).unwrap().unwrap().host(),
            "explicit"
        );
        assert_eq!(select(&ws, &o, &env(&with_np)).unwrap(), None);
        // The builder's no_proxy replaces the environment's.
        o.no_proxy = Some(NoProxy::parse("other.example"));
        assert_eq!(
            select(&ws, &o, &env(&with_np)).unwrap().unwrap().host(),
            "explicit"
        );
        // proxy_from_env off: no env proxy, no env no_proxy.
        let mut o = Options {
            proxy_from_env: false,
            ..Options::default()
        };
        assert_eq!(select(&ws, &o, &env(&vars)).unwrap(), None);
        o.proxy = Some(Proxy::parse("socks5://explicit:2").unwrap());
        assert!(select(&ws, &o, &env(&with_np)).unwrap().is_some());
    }

    #[test]
    fn environment_proxies_skip_loopback_unless_a_list_is_set() {
        let vars = [("http_proxy", "http://envproxy:1")];
        let o = Options::default();
        for url in ["ws://localhost:9/", "ws://127.0.0.1:9/", "ws://[::1]:9/"] {
            assert_eq!(
                select(&parse_url(url).unwrap(), &o, &env(&vars)).unwrap(),
                None,
                "{url}"
            );
        }
        let listed = [("http_proxy", "http://envproxy:1"), ("no_proxy", "other")];
        assert!(
            select(&parse_url("ws://localhost:9/").unwrap(), &o, &env(&listed))
                .unwrap()
                .is_some()
        );
        // An explicit proxy is used for loopback servers too.
        let o = Options {
            proxy: Some(Proxy::parse("http://p:1").unwrap()),
            ..Options::default()
        };
        assert!(
            select(&parse_url("ws://127.0.0.1:9/").unwrap(), &o, &env(&[]))
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn wss_urls_select_the_https_variables() {
        let wss = parse_url("wss://feed.example/").unwrap();
        let vars = [
            ("http_proxy", "http://plain:1"),
            ("https_proxy", "http://secure:1"),
        ];
        assert_eq!(
            select(&wss, &Options::default(), &env(&vars))
                .unwrap()
                .unwrap()
                .host(),
            "secure"
        );
    }
}
