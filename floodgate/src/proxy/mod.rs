//! Connecting through a proxy: HTTP `CONNECT`, SOCKS4, SOCKS4a, SOCKS5 and
//! SOCKS5h, client side.
//!
//! Dialing is a chain: a TCP connection (to the server, or to the proxy),
//! then the proxy's tunnel, then TLS for `wss://`, then the WebSocket
//! handshake, which all run over the tunnel unchanged. A Unix socket
//! ([`ClientBuilder::unix_socket`](crate::ClientBuilder::unix_socket)) is
//! never reached through a proxy.
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
//! The handshakes themselves are state machines with no I/O in
//! [`floodgate_proto::tunnel`] (bytes in, bytes out, every read bounded,
//! typed errors that carry what the proxy answered), so the blocking dial
//! (`blocking.rs`, over `std::net`) and the async one
//! (`crate::tokio`'s `dial.rs`, on tokio) are two short loops over the
//! same code, and each keeps its own deadline and cancellation. The
//! choices both need (which proxy, whether the client resolves the
//! server's name, what the errors say) are in `route.rs`. They are written
//! here rather than taken from a crate: the crates that exist either
//! target one runtime or do their own connect without our socket options
//! (`SO_RCVBUF` must be set before `connect`) and deadline.
//!
//! The guide is `docs/proxies.md`.

mod blocking;
mod env;
mod route;

pub(crate) use blocking::open;
#[cfg(test)]
pub(crate) use route::select;
#[cfg(feature = "tokio")]
pub(crate) use route::{select_from_env, Route};

// The proxy settings are defined with the other options (`Options` holds
// them), and public here.
pub use crate::options::{NoProxy, Proxy, ProxyKind};
/// What a proxy answered instead of a tunnel, from the protocol core
/// (inside [`ProxyError::Tunnel`](crate::ProxyError::Tunnel)).
pub use floodgate_proto::tunnel::{
    Answer, Malformed, Socks4Reply, Socks5Reply, TunnelError, TunnelProtocol, Unsupported,
};

use crate::options::proxy::host_port;
