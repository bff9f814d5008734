//! Proxies from the environment, and the no-proxy list, as curl reads
//! them. Every function takes the variable lookup as an argument so tests
//! never have to change the process environment (which parallel tests
//! share).

use super::{NoProxy, Proxy};
use crate::error::{ConfigError, ErrorKind, Result};

impl NoProxy {
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
