//! What the blocking and the async dial share: which proxy a target goes
//! through ([`select`]), and, for one connection through one proxy
//! ([`Route`]), the request its handshake carries and how its failures
//! read. The I/O (resolving, connecting, driving the handshake within the
//! deadline) is each front end's: `blocking.rs` here, `tokio/dial.rs`.

use super::{host_port, NoProxy, Proxy, ProxyKind};
use crate::dial::{no_address, Target};
use crate::error::{Error, ErrorKind, ProxyError, Result};
use crate::options::Options;
use floodgate_proto::tunnel::{
    Credentials, Destination, HttpConnect, Socks4Connect, Socks5Connect, Tunnel,
};
use std::io;
use std::net::SocketAddr;

/// The proxy for `target`, if any, with the environment read from the
/// process.
pub(crate) fn select_from_env(target: &Target, options: &Options) -> Result<Option<Proxy>> {
    select(target, options, &|name| std::env::var(name).ok())
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

/// One connection to `target` through `proxy`.
pub(crate) struct Route<'a> {
    pub(crate) proxy: &'a Proxy,
    pub(crate) target: &'a Target,
}

impl<'a> Route<'a> {
    pub(crate) fn new(proxy: &'a Proxy, target: &'a Target) -> Route<'a> {
        Route { proxy, target }
    }

    /// `host:port` of the proxy, as a connect error names it.
    pub(crate) fn proxy_address(&self) -> String {
        format!("{}:{}", self.proxy.host, self.proxy.port)
    }

    /// The server's name and port when the client must resolve it
    /// (`socks4://` and `socks5://` with a name in the URL); `None` when
    /// the request carries the host as it is.
    pub(crate) fn to_resolve(&self) -> Option<(&str, u16)> {
        let local = matches!(self.proxy.kind, ProxyKind::Socks4 | ProxyKind::Socks5);
        match Destination::from_host(&self.target.host) {
            Destination::Name(_) if local => Some((&self.target.host, self.target.port)),
            _ => None,
        }
    }

    /// The destination the request carries: the host as it is, or (after
    /// [`to_resolve`](Self::to_resolve)) the first address of the
    /// lookup, the first IPv4 one for SOCKS4, which carries nothing else.
    pub(crate) fn destination(
        &self,
        resolved: Option<io::Result<Vec<SocketAddr>>>,
    ) -> std::result::Result<Destination, ProxyError> {
        let Some(resolved) = resolved else {
            return Ok(Destination::from_host(&self.target.host));
        };
        let resolve_error = |source| ProxyError::Resolve {
            host: self.target.host.clone(),
            source,
        };
        let addrs = resolved.map_err(resolve_error)?;
        let ipv4_only = matches!(self.proxy.kind, ProxyKind::Socks4 | ProxyKind::Socks4a);
        let pick = if ipv4_only {
            // An IPv6-only name is then refused by the SOCKS4 request, with
            // the advice to use socks4a:// or socks5://.
            addrs.iter().find(|a| a.is_ipv4()).or(addrs.first())
        } else {
            addrs.first()
        };
        match pick {
            Some(addr) => Ok(Destination::Ip(addr.ip())),
            None => Err(resolve_error(no_address())),
        }
    }

    /// The proxy's handshake for a tunnel to `destination`; errors for
    /// requests the protocol cannot carry come before anything is sent.
    pub(crate) fn handshake(
        &self,
        destination: &Destination,
        options: &Options,
    ) -> std::result::Result<Tunnel, ProxyError> {
        let port = self.target.port;
        let credentials = self.proxy.username().map(|username| Credentials {
            username,
            password: self.proxy.password().unwrap_or(""),
        });
        Ok(match self.proxy.kind {
            ProxyKind::Http => {
                HttpConnect::new(destination, port, credentials, options.max_handshake_size)?.into()
            }
            ProxyKind::Socks4 | ProxyKind::Socks4a => {
                Socks4Connect::new(destination, port, self.proxy.username().unwrap_or(""))?.into()
            }
            ProxyKind::Socks5 | ProxyKind::Socks5h => {
                Socks5Connect::new(destination, port, credentials)?.into()
            }
        })
    }

    /// `reason` as the error of this connection: naming the proxy (never
    /// its credentials) and the target.
    pub(crate) fn error(&self, reason: ProxyError) -> Error {
        ErrorKind::Proxy {
            proxy: self.proxy.label(),
            target: host_port(&self.target.host, self.target.port),
            reason,
        }
        .into()
    }

    /// An error of the TCP connect to the proxy (from
    /// `connect_addrs`) as this connection's.
    pub(crate) fn connect_error(&self, e: Error) -> Error {
        match e.into_kind() {
            ErrorKind::Connect { source, .. } => self.error(ProxyError::Unreachable(source)),
            ErrorKind::Timeout { .. } => self.error(ProxyError::TimedOut),
            other => other.into(),
        }
    }

    /// A failed lookup of the proxy's own name.
    pub(crate) fn proxy_resolve_error(&self, source: io::Error) -> Error {
        self.error(ProxyError::Resolve {
            host: self.proxy.host.clone(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connect::parse_url;
    use floodgate_proto::tunnel::{TunnelError, Unsupported};

    fn route_for(proxy: &str, url: &str, check: impl FnOnce(Route<'_>)) {
        let proxy = Proxy::parse(proxy).unwrap();
        let target = parse_url(url).unwrap();
        check(Route::new(&proxy, &target));
    }

    #[test]
    fn names_are_resolved_here_only_for_socks4_and_socks5() {
        for (proxy, local) in [
            ("socks4://p", true),
            ("socks5://p", true),
            ("socks4a://p", false),
            ("socks5h://p", false),
            ("http://p", false),
        ] {
            route_for(proxy, "ws://localhost:9/", |r| {
                assert_eq!(r.to_resolve().is_some(), local, "{proxy}");
                if !local {
                    assert_eq!(
                        r.destination(None).unwrap(),
                        Destination::Name("localhost".into())
                    );
                }
            });
            // An address is sent as it is by every kind.
            route_for(proxy, "ws://[::1]:9/", |r| {
                assert_eq!(r.to_resolve(), None);
                assert_eq!(
                    r.destination(None).unwrap(),
                    Destination::Ip("::1".parse().unwrap())
                );
            });
        }
    }

    #[test]
    fn socks4_sends_the_first_ipv4_address_and_refuses_ipv6_only_names() {
        let addrs = |list: &[&str]| -> Vec<SocketAddr> {
            list.iter().map(|a| a.parse().unwrap()).collect()
        };
        route_for("socks4://p", "ws://name.example/", |r| {
            let dest = r
                .destination(Some(Ok(addrs(&["[::1]:80", "10.0.0.2:80"]))))
                .unwrap();
            assert_eq!(dest, Destination::Ip("10.0.0.2".parse().unwrap()));
            let dest = r.destination(Some(Ok(addrs(&["[::1]:80"])))).unwrap();
            let options = Options::default();
            assert!(matches!(
                r.handshake(&dest, &options),
                Err(ProxyError::Tunnel(TunnelError::Unsupported(
                    Unsupported::Ipv6OverSocks4(_)
                )))
            ));
            assert!(matches!(
                r.destination(Some(Ok(Vec::new()))),
                Err(ProxyError::Resolve { host, .. }) if host == "name.example"
            ));
        });
        route_for("socks5://p", "ws://name.example/", |r| {
            let dest = r
                .destination(Some(Ok(addrs(&["[::1]:80", "10.0.0.2:80"]))))
                .unwrap();
            assert_eq!(dest, Destination::Ip("::1".parse().unwrap()));
        });
    }

    #[test]
    fn errors_name_the_proxy_and_the_target_but_not_the_password() {
        route_for("socks5://alice:secret@p:1080", "ws://[::1]:9/", |r| {
            let text = r.error(ProxyError::TimedOut).to_string();
            assert!(
                text.starts_with("SOCKS5 proxy p:1080 did not finish"),
                "{text}"
            );
            assert!(text.ends_with("(tunnel to [::1]:9)"), "{text}");
            assert!(!text.contains("secret"), "{text}");
        });
    }
}
