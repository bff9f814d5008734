//! Connection options: [`Options`], every setting of a connection with the
//! default chosen for a long-lived client that must not hang or grow
//! without bound (a connect timeout, frame and message size limits,
//! `TCP_NODELAY` on). [`ClientBuilder`](crate::ClientBuilder) fills them in
//! and checks them; dialing and the front ends read them.
//!
//! This module holds data only and names no front end: the entry points
//! that connect are in `client.rs`. The settings of the proxy
//! (`proxy.rs`: [`Proxy`], [`ProxyKind`], [`NoProxy`]) and of TLS
//! (`tls.rs`: [`TlsOptions`], [`RootCertificates`]) are data that
//! [`Options`] holds, so they are defined here, below dialing, and
//! re-exported from the public modules [`crate::proxy`] and
//! [`crate::tls`] that use them.

pub(crate) mod proxy;
pub(crate) mod tls;

pub use proxy::{NoProxy, Proxy, ProxyKind};
pub use tls::{RootCertificates, TlsOptions};

use crate::buffer::BufferConfig;
use floodgate_proto::deflate::DeflateConfig;
use floodgate_proto::protocol::{DEFAULT_MAX_FRAME_SIZE, DEFAULT_MAX_MESSAGE_SIZE};
use http::HeaderMap;
use std::path::PathBuf;
use std::time::Duration;

/// What to send as `Origin`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// `http://host[:port]` (or `https://` for `wss://`), as
    /// websocket-client sends by default.
    FromUrl,
    /// This value.
    Custom(String),
    /// No `Origin` header.
    Suppress,
}

/// The read size of the direct connections (and of the async buffered
/// connection's reader task) unless one is chosen. Measured with the
/// `stream` benchmark against 256 KiB (the default before): the same at
/// 16 B, about a fifth more messages per second at 1 KiB and a quarter
/// more at 64 KiB, where a read that stays within the L2 cache is copied
/// out of the kernel faster.
pub const DIRECT_READ_CHUNK: usize = 64 << 10;

/// The read size of the blocking buffered connection's reader thread
/// unless one is chosen. Its messages stay in the chunk they were read
/// into until the consumer drops them, and a 64 KiB message does not fit
/// in a 64 KiB chunk with its header: each would straddle two and be
/// copied (measured: a fifth slower at 64 KiB than with 256 KiB chunks).
pub const BUFFERED_READ_CHUNK: usize = 256 << 10;

/// Every option of a connection. Built by [`ClientBuilder`](crate::ClientBuilder); read it back
/// with [`Client::options`](crate::Client::options).
#[derive(Debug, Clone)]
pub struct Options {
    /// Extra request headers.
    pub headers: HeaderMap,
    /// The `Origin` header.
    pub origin: Origin,
    /// Overrides the `Host` header (the TCP connection still goes to the
    /// URL's host).
    pub host: Option<String>,
    /// Subprotocols offered, best first.
    pub subprotocols: Vec<String>,
    /// The `Cookie` header.
    pub cookie: Option<String>,
    /// Limit for the TCP connect and the handshake together (`None`:
    /// none). Default 30 s.
    pub connect_timeout: Option<Duration>,
    /// Read timeout once connected (`None`: block). Default none.
    pub read_timeout: Option<Duration>,
    /// Write timeout once connected (`None`: block). Default none.
    pub write_timeout: Option<Duration>,
    /// How long `close` waits for the server's close and end of stream.
    /// Default 5 s.
    pub close_timeout: Duration,
    /// How long a connection failed by this side (a protocol error of the
    /// server's, the `Disconnect` policy) waits for the server's close
    /// before its transport is dropped; the error reaches the caller
    /// before that wait on the buffered connections, after it on the
    /// direct ones. Default 50 ms.
    pub fail_grace: Duration,
    /// Send a ping this often (`None`: never, the default). On the
    /// buffered connection the reader sends them; on [`WebSocket`](crate::WebSocket) they go
    /// out while the application is in one of its calls.
    pub ping_interval: Option<Duration>,
    /// End the connection with a pong timeout ([`TimeoutKind::Pong`](crate::TimeoutKind::Pong))
    /// when no pong answers a ping within this long (`None`: pongs are not
    /// awaited, the default). See [`floodgate_proto::Timeouts::ping_timeout`].
    pub ping_timeout: Option<Duration>,
    /// The payload of those pings (`None`: a counter, so that each pong is
    /// matched to its ping).
    pub ping_payload: Option<bytes::Bytes>,
    /// End a connection on which nothing was received for this long
    /// (`None`: no limit, the default).
    pub idle_timeout: Option<Duration>,
    /// End a connection when one write has not finished after this long:
    /// the server stopped reading (`None`: no limit, the default; a ping
    /// timeout ends such a connection too). Unlike
    /// [`write_timeout`](Self::write_timeout), which fails one send and
    /// keeps the connection, this ends it.
    pub send_timeout: Option<Duration>,
    /// Largest accepted frame (`None`: no limit). Default 16 MiB.
    pub max_frame_size: Option<usize>,
    /// Largest accepted message (`None`: no limit). Default 64 MiB.
    pub max_message_size: Option<usize>,
    /// Largest accepted handshake response head. Default 64 KiB.
    pub max_handshake_size: usize,
    /// `TCP_NODELAY`. Default on: WebSocket messages are small writes that
    /// Nagle's algorithm would delay.
    pub nodelay: bool,
    /// `SO_RCVBUF` in bytes (`None`: the OS default).
    pub recv_buffer_size: Option<usize>,
    /// `SO_SNDBUF` in bytes (`None`: the OS default).
    pub send_buffer_size: Option<usize>,
    /// TCP keepalive idle time (`None`: off).
    pub tcp_keepalive: Option<Duration>,
    /// Bytes asked of the socket per read (more when a frame in progress
    /// needs more). `None` (the default): [`DIRECT_READ_CHUNK`] (64 KiB)
    /// for the direct connections and the async buffered one,
    /// [`BUFFERED_READ_CHUNK`] (256 KiB) for the blocking buffered one.
    pub read_chunk_size: Option<usize>,
    /// Return pings, pongs and the close frame from `recv` as messages.
    /// Default off (they are still answered).
    pub return_control_frames: bool,
    /// Answer pings automatically. Default on.
    pub auto_pong: bool,
    /// The buffer of connections made by [`Client::connect_buffered`](crate::Client::connect_buffered)
    /// (`None`: [`BufferConfig::default`](crate::buffer::BufferConfig::default)).
    pub buffer: Option<BufferConfig>,
    /// TLS options of `wss://` connections.
    pub tls: TlsOptions,
    /// Connect to this Unix domain socket instead of the URL's host and
    /// port (the handshake still names the URL's host and path).
    pub unix_socket: Option<PathBuf>,
    /// Redirects (301, 302, 303, 307, 308) of the handshake followed before
    /// giving up; 0 turns following off. Default 3, as websocket-client.
    pub redirect_limit: u32,
    /// Connect through this proxy (`None`: the environment's, if
    /// [`proxy_from_env`](Self::proxy_from_env)). See [`crate::proxy`].
    pub proxy: Option<Proxy>,
    /// Hosts reached without a proxy (`None`: `no_proxy`/`NO_PROXY` from
    /// the environment, if [`proxy_from_env`](Self::proxy_from_env)).
    pub no_proxy: Option<NoProxy>,
    /// Read `http_proxy`, `https_proxy`, `all_proxy` and `no_proxy` from
    /// the environment. Default on, as websocket-client and curl do.
    pub proxy_from_env: bool,
    /// Offer permessage-deflate (RFC 7692) with this configuration
    /// (`None`, the default: offer no compression). On the embedded
    /// server, accept a client's offer.
    pub compression: Option<DeflateConfig>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            headers: HeaderMap::new(),
            origin: Origin::FromUrl,
            host: None,
            subprotocols: Vec::new(),
            cookie: None,
            connect_timeout: Some(Duration::from_secs(30)),
            read_timeout: None,
            write_timeout: None,
            close_timeout: floodgate_proto::connection::DEFAULT_CLOSE_TIMEOUT,
            fail_grace: floodgate_proto::connection::DEFAULT_FAIL_GRACE,
            ping_interval: None,
            ping_timeout: None,
            ping_payload: None,
            idle_timeout: None,
            send_timeout: None,
            max_frame_size: Some(DEFAULT_MAX_FRAME_SIZE),
            max_message_size: Some(DEFAULT_MAX_MESSAGE_SIZE),
            max_handshake_size: floodgate_proto::handshake::DEFAULT_MAX_HEAD_SIZE,
            nodelay: true,
            recv_buffer_size: None,
            send_buffer_size: None,
            tcp_keepalive: None,
            read_chunk_size: None,
            return_control_frames: false,
            auto_pong: true,
            buffer: None,
            tls: TlsOptions::default(),
            unix_socket: None,
            redirect_limit: 3,
            proxy: None,
            no_proxy: None,
            proxy_from_env: true,
            compression: None,
        }
    }
}

impl Options {
    pub(crate) fn protocol_config(&self) -> floodgate_proto::Config {
        floodgate_proto::Config {
            max_frame_size: self.max_frame_size,
            max_message_size: self.max_message_size,
            auto_pong: self.auto_pong,
        }
    }

    /// The deadlines of a connection's life, for its [`Connection`](floodgate_proto::Connection).
    pub(crate) fn timeouts(&self) -> floodgate_proto::Timeouts {
        floodgate_proto::Timeouts {
            close: self.close_timeout,
            fail_grace: self.fail_grace,
            ping_interval: self.ping_interval,
            ping_timeout: self.ping_timeout,
            ping_payload: self.ping_payload.clone(),
            idle: self.idle_timeout,
            send: self.send_timeout,
        }
    }
}
