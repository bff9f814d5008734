//! floodgate: a WebSocket client that stays correct, alive and bounded when
//! messages arrive faster than the application handles them.
//!
//! Two ways to receive, over the same sans-I/O protocol core
//! ([`floodgate_proto`]):
//!
//! - the low-level [`WebSocket`] ([`connect`], or [`Client::builder`] for
//!   options): `send`/`recv`/`ping`/`close` on the calling thread, like
//!   Python's `websocket-client`;
//! - the **buffered connection**, [`BufferedWebSocket`]
//!   ([`Client::connect_buffered`]): a reader thread answers pings and the
//!   close handshake at once and feeds a bounded [`buffer::Buffer`] with the
//!   overflow policy you choose (block, drop oldest or newest, conflate by
//!   key, disconnect), an optional classifier for priorities and filtering,
//!   and [`buffer::Stats`] that always add up. Read the guide,
//!   `docs/backpressure.md`, to choose a policy.
//!
//! # Example
//!
//! ```
//! # let server = floodgate_server::Server::bind("127.0.0.1:0", floodgate_server::echo).unwrap();
//! # let url = server.url();
//! let mut ws = floodgate::connect(&url)?;          // "ws://host:port/path"
//! ws.send_text("hello")?;
//! let reply = ws.recv()?;                           // pings are answered for you
//! assert_eq!(reply.as_text(), Some("hello"));
//! ws.close(1000, "bye")?;                           // waits for the server's close
//! # Ok::<(), floodgate::Error>(())
//! ```
//!
//! # Tour
//!
//! - [`connect`], [`Client`], [`ClientBuilder`], [`Options`]: how to connect
//!   and every option (headers, origin, subprotocols, cookies, timeouts,
//!   size limits, `TCP_NODELAY`, `SO_RCVBUF`/`SO_SNDBUF`, keepalive).
//! - [`WebSocket`]: the connection. [`WebSocket::recv`] returns complete
//!   messages; [`WebSocket::recv_frame`] raw frames;
//!   [`WebSocket::send_frame`] sends raw frames so a caller can fragment.
//! - [`BufferedWebSocket`] and [`Sender`]: the buffered connection
//!   ([`recv`](BufferedWebSocket::recv),
//!   [`recv_timeout`](BufferedWebSocket::recv_timeout),
//!   [`try_recv`](BufferedWebSocket::try_recv),
//!   [`recv_batch`](BufferedWebSocket::recv_batch),
//!   [`messages`](BufferedWebSocket::messages),
//!   [`stats`](BufferedWebSocket::stats)) and its cloneable, thread-safe
//!   sending half.
//! - [`buffer`]: [`buffer::BufferConfig`] (limits, [`buffer::Overflow`],
//!   classifier, lag alarm), [`buffer::Stats`], and the [`buffer::Buffer`]
//!   itself, whose waiters are wakers so that the same type will serve an
//!   async front end.
//!
//! ```
//! use floodgate::buffer::{BufferConfig, Overflow};
//! # let server = floodgate_server::Server::bind("127.0.0.1:0", floodgate_server::echo).unwrap();
//! # let url = server.url();
//! let mut ws = floodgate::Client::builder()
//!     .buffer(BufferConfig::new().max_messages(10_000).overflow(Overflow::DropOldest))
//!     .connect_buffered(&url)?;
//! ws.send_text("tick")?;
//! let message = ws.recv()?;
//! println!("{:?} waited {:?} in the buffer", message.as_text(), message.waited());
//! let stats = ws.stats();
//! assert_eq!(stats.received, stats.delivered + stats.buffered + stats.dropped_oldest);
//! ws.close(1000, "bye")?;
//! # Ok::<(), floodgate::Error>(())
//! ```
//!
//! - [`Sender::send_all`] writes many messages with one system call;
//!   [`buffer::BufferConfig::on_control_frame`] shows the application the
//!   pings and pongs the reader handles.
//! - [`proxy`]: connecting through HTTP `CONNECT`, SOCKS4/4a and SOCKS5/5h
//!   proxies ([`Proxy`], [`ClientBuilder::proxy`],
//!   [`ClientBuilder::no_proxy`], `http_proxy`/`https_proxy`/`all_proxy`/
//!   `no_proxy` from the environment as curl reads them). The guide is
//!   `docs/proxies.md`.
//! - [`DeflateConfig`] ([`ClientBuilder::compression`]): permessage-deflate
//!   (RFC 7692), off by default; [`WebSocket::deflate`] tells what was
//!   negotiated ([`PerMessageDeflate`]). Inflating is bounded by
//!   `max_message_size`. The guide is `docs/compression.md`.
//! - [`Error`] / [`ErrorKind`]: what went wrong, as data to match on
//!   (typed reasons such as [`ConfigError`] and [`TimeoutKind`], no
//!   strings), and [`Error::phase`]: dialing, a live connection, or the
//!   App ([`Phase`]). The [`error`] module docs list which kind arises
//!   where.
//! - [`App`] ([`app`]): the event-driven client — handlers for open,
//!   message, error, close, ping, pong, data and continuation frames and
//!   reconnect; `run_forever` with keepalive and reconnect; `on_message` on
//!   a worker pool, in order per key if asked. The guide is `docs/app.md`.
//! - [`reconnect`]: the backoff policy (exponential, jitter, limits) of
//!   the App and of `floodgate connect --reconnect`;
//!   [`keepalive`]: pings on an interval and a pong deadline for any
//!   buffered connection.
//! - [`tls`]: `wss://` with rustls — the platform's or Mozilla's roots,
//!   extra CAs, client certificates, errors that say which check failed.
//!   [`ClientBuilder::unix_socket`] connects to a Unix socket, and
//!   handshake redirects are followed up to
//!   [`ClientBuilder::redirect_limit`]. The guide is `docs/connecting.md`.
//!
//! floodgate is a client only: the server its examples, tests and demos
//! talk to (an echo, and a feed of numbered messages on several channels
//! at a chosen rate) is the separate crate `floodgate-server`.
//!
//! The `floodgate` command (crate `floodgate-cli`, guide `docs/cli.md`)
//! puts all of this in the shell: `floodgate demo` runs each overflow
//! policy against a fast feed, `floodgate connect` is an interactive and
//! scriptable client with the buffer's policies and stats.
//!
//! # Coming from websocket-client (Python)
//!
//! | websocket-client | floodgate |
//! |---|---|
//! | `create_connection(url, header=.., subprotocols=..)` | `Client::builder().header(..).subprotocol(..).connect(url)` |
//! | `ws.send(s)` / `send_binary(b)` | `ws.send_text(s)` / `ws.send_binary(b)` |
//! | `ws.send_frame(ABNF...)` | `ws.send_frame(OpCode, payload, fin)` |
//! | `ws.recv()` | `ws.recv()` returning [`Message`] |
//! | `ws.recv_data(control_frame=True)` | `return_control_frames(true)` then `recv()` |
//! | `ws.recv_frame()` / `recv_data_frame()` | `ws.recv_frame()` |
//! | `ws.ping()` / `ws.pong()` | `ws.ping(..)` / `ws.pong(..)` |
//! | `ws.close(status, reason, timeout)` | `ws.close(code, reason)` with `close_timeout` |
//! | `ws.abort()` / `shutdown()` | `ws.shutdown()` |
//! | `ws.settimeout(t)` | `ws.set_timeout(Some(t))` |
//! | `ws.getsubprotocol()`, `getstatus()`, `getheaders()` | `ws.subprotocol()`, `status()`, `headers()` |
//! | `ws.sock` | `ws.get_ref()` / `get_mut()` |
//! | `suppress_origin=True`, `host=`, `origin=`, `cookie=` | `suppress_origin()`, `host_header()`, `origin()`, `cookie()` |
//! | `sslopt={"cert_reqs": CERT_NONE}` | `dangerous_skip_certificate_verification()` |
//! | `sslopt={"ca_certs": path, "certfile": .., "keyfile": ..}` | `ca_file(path)`, `client_certificate_files(cert, key)` |
//! | `sslopt={"server_hostname": name}`, `check_hostname` | `tls_server_name(name)`; the host name is always checked unless verification is skipped |
//! | `redirect_limit=3` | `redirect_limit(3)` (the default) |
//! | `sockopt=((TCP_NODELAY,1),)` | `nodelay(true)` (default), `recv_buffer_size`, `send_buffer_size`, `tcp_keepalive` |
//! | `enable_multithread=True` (a lock around sends) | [`Sender`]: clone it, send from any thread |
//! | (no equivalent: the backlog waits in the kernel) | `connect_buffered` with a [`buffer::BufferConfig`]; `stats()`; `recv_batch` |
//! | `WebSocketApp(url, on_open=.., on_message=.., on_error=.., on_close=..)` | `App::builder(url).on_open(..).on_message(..).on_error(..).on_close(..).build()` |
//! | `app.run_forever(ping_interval=.., ping_timeout=.., reconnect=..)` | `app.run_forever(&RunOptions::new().ping_interval(..).ping_timeout(..).reconnect(Backoff::new()))` |
//! | `app.close()` | `app.handle().close()`, or `ctx.close()` in a handler |
//! | `http_proxy_host=, http_proxy_port=, http_proxy_auth=, proxy_type=` | `.proxy(Proxy::new(ProxyKind::Socks5h, host, port).credentials(user, pass))` or `.proxy("socks5h://user:pass@host:port")` |
//! | `http_no_proxy=[..]` | `.no_proxy("host1,host2")` (curl's matching rules) |
//! | env `http_proxy` / `https_proxy` / `no_proxy` | read by default too; `.proxy_from_env(false)` to ignore them |
//!
//! - `floodgate::tokio` (cargo feature `tokio`, off by default): the async client
//!   on tokio over the same protocol core, options and buffer —
//!   `floodgate::tokio::connect`, `Client::connect_async`,
//!   `Client::connect_buffered_async`, a `Stream`/`Sink` connection that
//!   splits into a cloneable sender and a receiver (and reunites), and the
//!   async App (`floodgate::tokio::app::App`: async handlers, keepalive
//!   and reconnect as tasks). The guide is `docs/async.md`.
//!
//! # Not yet provided
//!
//! `wss://` over a Unix socket is refused, and a Unix socket is never
//! reached through a proxy.
//! A buffered connection does not return control frames as messages
//! (`return_control_frames` applies to [`WebSocket`] only): its reader
//! answers them, counts them in [`buffer::Stats`] and shows them to
//! [`buffer::BufferConfig::on_control_frame`].

#![warn(missing_docs)]

// The App guide's examples compile as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../docs/app.md")]
struct AppGuide;

// So do the connecting guide's.
#[cfg(doctest)]
#[doc = include_str!("../../docs/connecting.md")]
struct ConnectingGuide;

// So do the proxy guide's.
#[cfg(doctest)]
#[doc = include_str!("../../docs/proxies.md")]
struct ProxyGuide;

// So do the compression guide's.
#[cfg(doctest)]
#[doc = include_str!("../../docs/compression.md")]
struct CompressionGuide;

// So do the async guide's, with the feature.
#[cfg(all(doctest, feature = "tokio"))]
#[doc = include_str!("../../docs/async.md")]
struct AsyncGuideTokio;

pub mod app;
mod blocking;
pub mod buffer;
mod client;
mod connect;
mod dial;
pub mod error;
mod ingest;
mod lifecycle;
#[cfg(feature = "metrics")]
pub mod metrics;
mod options;
pub mod proxy;
pub mod reconnect;
#[cfg(feature = "sink")]
pub mod sink;
#[cfg(feature = "tokio")]
pub mod tokio;

pub use app::App;
pub use blocking::buffered::{BufferedMessages, BufferedWebSocket, Sender};
pub use blocking::keepalive;
pub use blocking::websocket::{Messages, WebSocket};
pub use client::{Client, ClientBuilder};
pub use dial::stream::{Stream, Transport};
pub use dial::tls;
pub use error::{
    Callback, ConfigError, Error, ErrorKind, PemItem, Phase, ProxyConfigError, ProxyError,
    RedirectError, Result, TimeoutKind, TlsConfigError, UnsupportedError, UrlError,
};
pub use options::{Options, Origin, BUFFERED_READ_CHUNK, DIRECT_READ_CHUNK};
pub use proxy::{NoProxy, Proxy, ProxyKind};

/// permessage-deflate (RFC 7692): what to offer, what was negotiated.
pub use floodgate_proto::deflate::{
    DeflateConfig, DeflateConfigError, ExtensionError, PerMessageDeflate,
};
pub use floodgate_proto::{
    bytes, CloseCode, CloseFrame, Frame, HandshakeError, Message, OpCode, ProtocolError, State,
    Text, UsageError,
};

/// Connects to `url` with the default options.
///
/// ```no_run
/// let mut ws = floodgate::connect("ws://127.0.0.1:9001/")?;
/// # Ok::<(), floodgate::Error>(())
/// ```
///
/// # Errors
///
/// See [`Client::connect`].
pub fn connect(url: &str) -> Result<WebSocket> {
    Client::default().connect(url)
}
