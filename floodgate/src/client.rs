//! The entry points: [`ClientBuilder`] collects the options, [`Client`]
//! holds them validated and shared, and connects as many times as asked,
//! directly or buffered, blocking or on tokio.
//!
//! Invalid options (a header that is not valid HTTP, a zero-sized buffer)
//! are reported by [`ClientBuilder::build`], not in the middle of a
//! connect. This is the top of the crate's layers: it names the front
//! ends, and nothing below it names it.

use crate::blocking::buffered::BufferedWebSocket;
use crate::blocking::websocket::WebSocket;
use crate::buffer::BufferConfig;
use crate::dial::stream::Transport;
use crate::dial::tls::{ClientConfigCache, RootCertificates};
use crate::error::{ConfigError, Error, ErrorKind, PemItem, Result, UnsupportedError};
use crate::options::{Options, Origin};
use crate::proxy::{NoProxy, Proxy};
use floodgate_proto::deflate::DeflateConfig;
use floodgate_proto::protocol::DEFAULT_MAX_FRAME_SIZE;
use http::{HeaderName, HeaderValue};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Collects connection options; finish with [`build`](Self::build) or
/// [`connect`](Self::connect).
///
/// ```no_run
/// use std::time::Duration;
/// let ws = floodgate::Client::builder()
///     .header("Authorization", "Bearer s3cr3t")
///     .subprotocol("v2.chat")
///     .connect_timeout(Some(Duration::from_secs(5)))
///     .max_message_size(Some(1 << 20))
///     .connect("ws://127.0.0.1:9001/feed")?;
/// # Ok::<(), floodgate::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
#[must_use = "a builder does nothing until build() or connect()"]
pub struct ClientBuilder {
    options: Options,
    /// The first invalid option, reported by `build`.
    invalid: Option<Invalid>,
}

/// An option the builder refused, kept until `build`.
#[derive(Debug, Clone)]
enum Invalid {
    Config(ConfigError),
    /// What a [`Proxy`] conversion failed with when it was not a
    /// configuration error (floodgate's own conversions only give those);
    /// shared, since the builder is `Clone`.
    Other(Arc<Error>),
}

impl ClientBuilder {
    /// Adds a request header (may be called several times for one name).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            (Ok(name), Ok(value)) => {
                self.options.headers.append(name, value);
            }
            _ => {
                self.invalid_option(ConfigError::InvalidHeader {
                    name: name.to_owned(),
                    value: value.to_owned(),
                });
            }
        }
        self
    }

    /// Sends this `Origin` instead of the one derived from the URL.
    pub fn origin(mut self, origin: impl Into<String>) -> Self {
        self.options.origin = Origin::Custom(origin.into());
        self
    }

    /// Sends no `Origin` header.
    pub fn suppress_origin(mut self) -> Self {
        self.options.origin = Origin::Suppress;
        self
    }

    /// Sends this `Host` header instead of the URL's host (the TCP
    /// connection still goes to the URL's host).
    pub fn host_header(mut self, host: impl Into<String>) -> Self {
        self.options.host = Some(host.into());
        self
    }

    /// Offers a subprotocol (call again to offer more, best first).
    pub fn subprotocol(mut self, protocol: impl Into<String>) -> Self {
        self.options.subprotocols.push(protocol.into());
        self
    }

    /// Sends this `Cookie` header (`"a=1; b=2"`).
    pub fn cookie(mut self, cookie: impl Into<String>) -> Self {
        self.options.cookie = Some(cookie.into());
        self
    }

    /// Limits the whole connect (name lookup, proxy, TCP, TLS, the
    /// WebSocket handshake, redirects) together (`None`: no limit; the
    /// default is 30 s). Like every optional timeout here, it takes an
    /// `Option<Duration>`.
    pub fn connect_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.options.connect_timeout = timeout;
        self
    }

    /// Read timeout once connected (`None`: block): each wait for data in
    /// `recv` / `recv_frame` longer than this fails with
    /// [`ErrorKind::Timeout`](crate::ErrorKind::Timeout) and the
    /// connection stays usable, in the blocking and the async client alike
    /// (not in the buffered connections' readers, which wait as long as
    /// it takes).
    pub fn read_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.options.read_timeout = timeout;
        self
    }

    /// Write timeout once connected (`None`: block): a write to the
    /// transport that takes longer fails the send with
    /// [`ErrorKind::Timeout`](crate::ErrorKind::Timeout); the unsent rest of
    /// the frame goes out first with the next send (blocking and async).
    pub fn write_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.options.write_timeout = timeout;
        self
    }

    /// How long `close` waits for the server's answer (and a client for
    /// the server to end TCP after it). A `Duration`, not an `Option`: the
    /// close handshake is always bounded, since a connection whose server
    /// never answers must still end. Default 5 s.
    pub fn close_timeout(mut self, timeout: Duration) -> Self {
        self.options.close_timeout = timeout;
        self
    }

    /// How long a connection this side failed (a protocol error of the
    /// server's) waits for the server's close before the transport is
    /// dropped. Default 50 ms. See [`Options::fail_grace`]. A `Duration`,
    /// not an `Option`: a failed connection always lets its transport go.
    pub fn fail_grace(mut self, grace: Duration) -> Self {
        self.options.fail_grace = grace;
        self
    }

    /// Ping the server this often (`None`: never, the default). The pings
    /// are the connection's own: on the buffered connection its reader
    /// sends them however slow the consumer, on [`WebSocket`] they go out
    /// during its calls. Pair it with [`ping_timeout`](Self::ping_timeout)
    /// to detect a dead server.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// let ws = floodgate::Client::builder()
    ///     .ping_interval(Some(Duration::from_secs(20)))
    ///     .ping_timeout(Some(Duration::from_secs(10)))
    ///     .connect_buffered("ws://127.0.0.1:9001/feed")?;
    /// // A server that stops answering ends `recv` with a pong timeout (TimeoutKind::Pong)
    /// // within 10 s of the ping it did not answer.
    /// # Ok::<(), floodgate::Error>(())
    /// ```
    pub fn ping_interval(mut self, interval: Option<Duration>) -> Self {
        self.options.ping_interval = interval;
        self
    }

    /// End the connection (a pong timeout ([`TimeoutKind::Pong`](crate::TimeoutKind::Pong)))
    /// when no pong answers a ping within `timeout` (`None`: no limit).
    /// The time runs from when the ping is due, so a ping stuck behind a
    /// server that stopped reading counts too; time the buffered
    /// connection's reader spends waiting for room (the `Block` policy)
    /// does not.
    pub fn ping_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.options.ping_timeout = timeout;
        self
    }

    /// The payload of the pings [`ping_interval`](Self::ping_interval) sends
    /// (default: an 8-byte counter, so each pong answers its own ping).
    pub fn ping_payload(mut self, payload: impl Into<bytes::Bytes>) -> Self {
        self.options.ping_payload = Some(payload.into());
        self
    }

    /// End a connection that received nothing for `timeout` (`None`: no
    /// limit, the default).
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.options.idle_timeout = timeout;
        self
    }

    /// End the connection when one write has not finished after `timeout`
    /// (`None`: no limit, the default): the server stopped reading. See
    /// [`Options::send_timeout`].
    pub fn send_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.options.send_timeout = timeout;
        self
    }

    /// Largest accepted frame (`None`: no limit).
    pub fn max_frame_size(mut self, limit: Option<usize>) -> Self {
        self.options.max_frame_size = limit;
        self
    }

    /// Largest accepted message (`None`: no limit). A frame cannot be
    /// larger than a message, so a frame limit still at its default (16 MiB)
    /// is lowered to a smaller message limit.
    pub fn max_message_size(mut self, limit: Option<usize>) -> Self {
        self.options.max_message_size = limit;
        if let Some(limit) = limit {
            if self.options.max_frame_size == Some(DEFAULT_MAX_FRAME_SIZE)
                && limit < DEFAULT_MAX_FRAME_SIZE
            {
                self.options.max_frame_size = Some(limit);
            }
        }
        self
    }

    /// Largest accepted handshake response head.
    pub fn max_handshake_size(mut self, limit: usize) -> Self {
        self.options.max_handshake_size = limit;
        self
    }

    /// `TCP_NODELAY` (default on). On: each message is sent at once. Off:
    /// Nagle's algorithm holds small writes until the previous one is
    /// acknowledged, which saves packets for a client that sends many tiny
    /// messages and costs up to one round trip (or the peer's 40 ms delayed
    /// ACK) of latency.
    pub fn nodelay(mut self, on: bool) -> Self {
        self.options.nodelay = on;
        self
    }

    /// `SO_RCVBUF`: the kernel's receive buffer for this socket, which is
    /// where a backlog waits when the application does not read (and, for
    /// a buffered connection under `Block`, how much the server can still
    /// send after the floodgate buffer filled). It also caps the TCP
    /// window the server may use, so it bounds throughput over long
    /// round trips (window / RTT).
    ///
    /// Set before connecting so that TCP window scaling can use it. On
    /// Linux the kernel doubles the value asked (half is bookkeeping) and
    /// caps it at `net.core.rmem_max` (often 208 KiB; raise it with
    /// `sysctl -w net.core.rmem_max=...`); setting it turns off the
    /// kernel's receive-buffer auto-tuning, which otherwise grows the
    /// buffer up to the third figure of `net.ipv4.tcp_rmem`. Read the
    /// value in effect with [`crate::Stream::tcp`] and `socket2`.
    pub fn recv_buffer_size(mut self, bytes: usize) -> Self {
        self.options.recv_buffer_size = Some(bytes);
        self
    }

    /// `SO_SNDBUF`: how much sent data the kernel holds before a write
    /// blocks (or times out). Doubled and capped at `net.core.wmem_max` on
    /// Linux, like `SO_RCVBUF`; unset, the kernel auto-tunes it up to the
    /// third figure of `net.ipv4.tcp_wmem`.
    pub fn send_buffer_size(mut self, bytes: usize) -> Self {
        self.options.send_buffer_size = Some(bytes);
        self
    }

    /// TCP keepalive with this idle time: after `idle` without traffic
    /// the kernel probes the peer and ends a dead connection with an error
    /// (after `net.ipv4.tcp_keepalive_probes` unanswered probes,
    /// `tcp_keepalive_intvl` apart). It detects a vanished peer or a
    /// dropped NAT mapping on an idle connection; it does not detect a
    /// live server that stopped sending, which needs WebSocket pings.
    pub fn tcp_keepalive(mut self, idle: Duration) -> Self {
        self.options.tcp_keepalive = Some(idle);
        self
    }

    /// Bytes asked of the socket per read (default: 64 KiB for the direct
    /// connections and the async buffered one, 256 KiB for the blocking
    /// buffered one; see [`Options::read_chunk_size`](crate::Options::read_chunk_size)).
    pub fn read_chunk_size(mut self, bytes: usize) -> Self {
        self.options.read_chunk_size = Some(bytes);
        self
    }

    /// Return pings, pongs and the close frame from `recv`.
    pub fn return_control_frames(mut self, on: bool) -> Self {
        self.options.return_control_frames = on;
        self
    }

    /// Answer pings automatically (default on).
    pub fn auto_pong(mut self, on: bool) -> Self {
        self.options.auto_pong = on;
        self
    }

    /// The buffer limits and policies of connections made with
    /// [`Client::connect_buffered`] (default: [`BufferConfig::default`]).
    pub fn buffer(mut self, config: BufferConfig) -> Self {
        self.options.buffer = Some(config);
        self
    }

    /// Which root certificates verify `wss://` servers (default: the
    /// platform's trust store).
    pub fn tls_roots(mut self, roots: RootCertificates) -> Self {
        self.options.tls.roots = roots;
        self
    }

    /// Trusts the CA certificates in this PEM text (every `CERTIFICATE`
    /// block) beside the roots: for servers with a private CA.
    pub fn add_root_certificates_pem(mut self, pem: &[u8]) -> Self {
        match crate::dial::tls::certificates_from_pem(pem, PemItem::CaCertificates) {
            Ok(certs) => self.options.tls.extra_roots.extend(certs),
            Err(reason) => self.invalid_option(reason.into()),
        }
        self
    }

    /// Trusts the CA certificates of this PEM file beside the roots (read
    /// now; errors are reported by [`build`](Self::build)).
    pub fn ca_file(self, path: impl AsRef<Path>) -> Self {
        match crate::dial::tls::read_pem_file(path.as_ref(), PemItem::CaCertificates) {
            Ok(pem) => self.add_root_certificates_pem(&pem),
            Err(reason) => {
                let mut this = self;
                this.invalid_option(reason.into());
                this
            }
        }
    }

    /// Shows this certificate chain (PEM, leaf first) and private key (PEM:
    /// PKCS#8, PKCS#1 or SEC1) to servers that ask for a client
    /// certificate (mutual TLS).
    pub fn client_certificate_pem(mut self, chain_pem: &[u8], key_pem: &[u8]) -> Self {
        let chain = crate::dial::tls::certificates_from_pem(chain_pem, PemItem::ClientCertificate);
        let key = crate::dial::tls::private_key_from_pem(key_pem, PemItem::ClientKey);
        match (chain, key) {
            (Ok(chain), Ok(key)) => {
                self.options.tls.client_certificate = Some((chain, Arc::new(key)));
            }
            (Err(reason), _) | (_, Err(reason)) => self.invalid_option(reason.into()),
        }
        self
    }

    /// [`client_certificate_pem`](Self::client_certificate_pem) from files.
    pub fn client_certificate_files(
        mut self,
        chain: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Self {
        let chain = crate::dial::tls::read_pem_file(chain.as_ref(), PemItem::ClientCertificate);
        let key = crate::dial::tls::read_pem_file(key.as_ref(), PemItem::ClientKey);
        match (chain, key) {
            (Ok(chain), Ok(key)) => self.client_certificate_pem(&chain, &key),
            (Err(reason), _) | (_, Err(reason)) => {
                self.invalid_option(reason.into());
                self
            }
        }
    }

    /// Verifies the server's certificate for this name, and sends it as
    /// SNI, instead of the URL's host (websocket-client's
    /// `server_hostname`).
    pub fn tls_server_name(mut self, name: impl Into<String>) -> Self {
        self.options.tls.server_name = Some(name.into());
        self
    }

    /// Sends the server name (SNI) in the TLS handshake (default on).
    pub fn tls_sni(mut self, on: bool) -> Self {
        self.options.tls.sni = Some(on);
        self
    }

    /// Uses this rustls configuration as is for `wss://` (roots, client
    /// certificate, versions, ciphers, verifier: all yours). Remember ALPN
    /// `http/1.1` if the server may speak HTTP/2.
    pub fn tls_config(mut self, config: Arc<rustls::ClientConfig>) -> Self {
        self.options.tls.config = Some(config);
        self
    }

    /// **Accepts any server certificate**: expired, self-signed, for
    /// another host. For tests against throwaway certificates only: with
    /// it, anyone on the network path can read and change the traffic.
    /// The handshake signatures are still checked.
    pub fn dangerous_skip_certificate_verification(mut self) -> Self {
        self.options.tls.skip_verification = true;
        self
    }

    /// Connects to this Unix domain socket instead of the URL's host and
    /// port; the URL still gives the `Host` header and the path
    /// (`ws://localhost/v1/events`). `wss://` over a Unix socket is not
    /// supported.
    ///
    /// ```no_run
    /// let ws = floodgate::Client::builder()
    ///     .unix_socket("/run/app/ws.sock")
    ///     .connect("ws://localhost/events")?;
    /// # Ok::<(), floodgate::Error>(())
    /// ```
    pub fn unix_socket(mut self, path: impl Into<PathBuf>) -> Self {
        self.options.unix_socket = Some(path.into());
        self
    }

    /// Follows at most this many redirects of the handshake (default 3;
    /// 0: a redirect is an error). `Authorization`, `Cookie` and
    /// `Proxy-Authorization` headers are not sent to another origin.
    pub fn redirect_limit(mut self, limit: u32) -> Self {
        self.options.redirect_limit = limit;
        self
    }

    fn invalid_option(&mut self, reason: ConfigError) {
        self.invalid.get_or_insert(Invalid::Config(reason));
    }

    /// Connects through this proxy: a [`Proxy`], or its URL
    /// (`http://[user:password@]host:port`, `socks4://`, `socks4a://`,
    /// `socks5://`, `socks5h://`), checked by [`build`](Self::build). It
    /// replaces any proxy from the environment; hosts in the no-proxy list
    /// still bypass it. See [`crate::proxy`] and `docs/proxies.md`.
    ///
    /// ```no_run
    /// let ws = floodgate::Client::builder()
    ///     .proxy("socks5h://user:pw@127.0.0.1:1080")
    ///     .connect("ws://feed.example/ticks")?;
    /// # Ok::<(), floodgate::Error>(())
    /// ```
    pub fn proxy<P>(mut self, proxy: P) -> Self
    where
        P: TryInto<Proxy>,
        P::Error: Into<crate::Error>,
    {
        let invalid = match proxy.try_into() {
            Ok(proxy) => match proxy.validate() {
                Ok(()) => {
                    self.options.proxy = Some(proxy);
                    return self;
                }
                Err(reason) => Invalid::Config(ConfigError::Proxy {
                    proxy: proxy.to_string(),
                    reason,
                }),
            },
            Err(e) => match e.into().into_kind() {
                ErrorKind::Config(reason) => Invalid::Config(reason),
                other => Invalid::Other(Arc::new(other.into())),
            },
        };
        self.invalid.get_or_insert(invalid);
        self
    }

    /// Hosts to reach without a proxy: a comma-separated list with curl's
    /// rules (see [`NoProxy`]), or a [`NoProxy`]. It replaces
    /// `no_proxy`/`NO_PROXY` from the environment.
    pub fn no_proxy(mut self, hosts: impl Into<NoProxy>) -> Self {
        self.options.no_proxy = Some(hosts.into());
        self
    }

    /// Whether to read `http_proxy` (for `ws://`), `https_proxy` (for
    /// `wss://`), `all_proxy` and `no_proxy` from the environment (default
    /// on, as websocket-client and curl do). Off, only [`proxy`](Self::proxy)
    /// and [`no_proxy`](Self::no_proxy) count.
    pub fn proxy_from_env(mut self, on: bool) -> Self {
        self.options.proxy_from_env = on;
        self
    }

    /// Offers permessage-deflate (RFC 7692) with `config`. Off by default,
    /// as in most clients: compression costs CPU on both sides and memory
    /// per connection (up to about 300 KiB here with the default windows),
    /// and pays off for large or repetitive text such as JSON feeds.
    ///
    /// [`DeflateConfig::default`] offers
    /// `permessage-deflate; client_no_context_takeover; client_max_window_bits`
    /// (and a plain `permessage-deflate; client_max_window_bits` as a
    /// fallback): the server keeps its full window and context, which is
    /// what makes incoming data small; the client compresses each outgoing
    /// message of 64 bytes or more on its own. Incoming messages are
    /// inflated at most to `max_message_size`: a compression bomb fails the
    /// connection with close code 1009. Whether the server accepted is told
    /// by [`WebSocket::deflate`] (see `docs/compression.md`).
    ///
    /// ```
    /// # let server = floodgate_server::Server::bind_with(
    /// #     "127.0.0.1:0",
    /// #     floodgate_server::Options { compression: Some(Default::default()), ..Default::default() },
    /// #     floodgate_server::echo,
    /// # ).unwrap();
    /// # let url = server.url();
    /// use floodgate::DeflateConfig;
    ///
    /// let mut ws = floodgate::Client::builder()
    ///     .compression(DeflateConfig::default().threshold(0))
    ///     .connect(&url)?;
    /// let negotiated = ws.deflate().expect("the server accepted permessage-deflate");
    /// println!("negotiated {negotiated}");
    /// ws.send_text(&"compressible ".repeat(1000))?;
    /// assert_eq!(ws.recv()?.len(), 13_000);
    /// ws.close(1000, "")?;
    /// # Ok::<(), floodgate::Error>(())
    /// ```
    pub fn compression(mut self, config: DeflateConfig) -> Self {
        self.options.compression = Some(config);
        self
    }

    /// Checks the options and returns a [`Client`] that connects with them.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`] naming the first invalid option.
    pub fn build(self) -> Result<Client> {
        match self.invalid {
            Some(Invalid::Config(reason)) => return Err(reason.into()),
            Some(Invalid::Other(error)) => {
                return Err(Arc::try_unwrap(error)
                    .unwrap_or_else(|shared| ErrorKind::Io(std::io::Error::other(shared)).into()))
            }
            None => {}
        }
        let o = &self.options;
        if o.read_chunk_size == Some(0) {
            return Err(ConfigError::ReadChunkSizeZero.into());
        }
        if o.max_handshake_size < 128 {
            return Err(ConfigError::MaxHandshakeSizeTooSmall {
                size: o.max_handshake_size,
            }
            .into());
        }
        if let (Some(frame), Some(message)) = (o.max_frame_size, o.max_message_size) {
            if frame > message {
                return Err(ConfigError::FrameLargerThanMessage {
                    max_frame_size: frame,
                    max_message_size: message,
                }
                .into());
            }
        }
        if o.recv_buffer_size == Some(0) || o.send_buffer_size == Some(0) {
            return Err(ConfigError::SocketBufferSizeZero.into());
        }
        if let Some(buffer) = &o.buffer {
            buffer.validate(o.max_message_size)?;
        }
        if let Some(compression) = &o.compression {
            compression.validate().map_err(ConfigError::Compression)?;
        }
        if cfg!(not(unix)) && o.unix_socket.is_some() {
            return Err(ErrorKind::Unsupported(UnsupportedError::UnixSocketsNeedUnix).into());
        }
        Ok(Client {
            options: Arc::new(self.options),
            tls: Arc::default(),
        })
    }

    /// Builds and connects in one call.
    ///
    /// # Errors
    ///
    /// As for [`build`](Self::build) and [`Client::connect`].
    pub fn connect(self, url: &str) -> Result<WebSocket> {
        self.build()?.connect(url)
    }

    /// Builds and connects a buffered connection in one call.
    ///
    /// # Errors
    ///
    /// As for [`build`](Self::build) and [`Client::connect_buffered`].
    pub fn connect_buffered(self, url: &str) -> Result<BufferedWebSocket> {
        self.build()?.connect_buffered(url)
    }

    /// Builds and connects an async connection in one call (feature
    /// `tokio`): see [`Client::connect_async`].
    ///
    /// # Errors
    ///
    /// As for [`build`](Self::build) and [`Client::connect_async`].
    #[cfg(feature = "tokio")]
    pub async fn connect_async(self, url: &str) -> Result<crate::tokio::WebSocket> {
        self.build()?.connect_async(url).await
    }

    /// Builds and connects a buffered async connection in one call
    /// (feature `tokio`): see [`Client::connect_buffered_async`].
    ///
    /// # Errors
    ///
    /// As for [`build`](Self::build) and [`Client::connect_buffered_async`].
    #[cfg(feature = "tokio")]
    pub async fn connect_buffered_async(
        self,
        url: &str,
    ) -> Result<crate::tokio::BufferedWebSocket> {
        self.build()?.connect_buffered_async(url).await
    }
}

/// Validated options, cheap to clone and share; connects as often as asked.
///
/// ```no_run
/// let client = floodgate::Client::builder().subprotocol("chat").build()?;
/// let a = client.connect("ws://127.0.0.1:9001/a")?;
/// let b = client.connect("ws://127.0.0.1:9001/b")?;
/// # Ok::<(), floodgate::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Client {
    options: Arc<Options>,
    /// The rustls configuration, made on the first `wss://` connect and
    /// kept so that reconnects resume TLS sessions.
    tls: Arc<ClientConfigCache>,
}

impl Client {
    /// A builder with the default options.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// The rustls configuration of `wss://` connections, made once.
    fn tls_config(&self) -> Result<Arc<rustls::ClientConfig>> {
        self.tls.get(&self.options.tls)
    }

    /// The options this client connects with.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// This client with its keepalive options replaced (the TLS
    /// configuration, and so session resumption, still shared).
    pub(crate) fn with_keepalive(
        &self,
        interval: Option<Duration>,
        timeout: Option<Duration>,
        payload: Option<bytes::Bytes>,
    ) -> Client {
        if interval.is_none() {
            return self.clone();
        }
        let mut options = Options::clone(&self.options);
        options.ping_interval = interval;
        options.ping_timeout = timeout;
        options.ping_payload = payload;
        Client {
            options: Arc::new(options),
            tls: self.tls.clone(),
        }
    }

    /// Opens a connection to `url` (`ws://host[:port]/path?query`).
    ///
    /// # Errors
    ///
    /// An unusable URL, a failed or timed-out TCP connect, a TLS failure
    /// ([`ErrorKind::Tls`] says which check failed), a proxy that fails or
    /// refuses ([`ErrorKind::Proxy`]), a refused handshake, or too many
    /// redirects.
    pub fn connect(&self, url: &str) -> Result<WebSocket> {
        crate::connect::connect(url, &self.options, &|| self.tls_config()).map_err(Error::dialing)
    }

    /// Opens a connection to `url` with a reader thread and a bounded
    /// buffer (the builder's [`buffer`](ClientBuilder::buffer) options):
    /// see [`BufferedWebSocket`].
    ///
    /// ```
    /// # let server = floodgate_server::Server::bind("127.0.0.1:0", floodgate_server::echo).unwrap();
    /// let mut ws = floodgate::Client::default().connect_buffered(&server.url())?;
    /// ws.send_text("hello")?;
    /// assert_eq!(ws.recv()?.as_text(), Some("hello"));
    /// ws.close(1000, "")?;
    /// # Ok::<(), floodgate::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As for [`connect`](Self::connect); [`ErrorKind::Config`] when the
    /// buffer's limits do not fit `max_message_size` (checked before
    /// connecting).
    pub fn connect_buffered(&self, url: &str) -> Result<BufferedWebSocket> {
        let default = BufferConfig::default();
        let config = self.options.buffer.as_ref().unwrap_or(&default);
        config.validate(self.options.max_message_size)?;
        self.connect(url)?
            .into_buffered(config)
            .map_err(Error::dialing)
    }

    /// Opens an async connection to `url` on tokio (feature `tokio`), with
    /// every option of [`connect`](Self::connect): see
    /// [`crate::tokio::WebSocket`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> floodgate::Result<()> {
    /// # let server = floodgate_server::Server::bind("127.0.0.1:0", floodgate_server::echo).unwrap();
    /// let client = floodgate::Client::builder().max_message_size(Some(1 << 20)).build()?;
    /// let mut ws = client.connect_async(&server.url()).await?;
    /// ws.send_text("hello").await?;
    /// assert_eq!(ws.recv().await?.as_text(), Some("hello"));
    /// ws.close(1000, "").await?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// As for [`connect`](Self::connect).
    #[cfg(feature = "tokio")]
    pub async fn connect_async(&self, url: &str) -> Result<crate::tokio::WebSocket> {
        crate::tokio::connect_with(url, &self.options, &|| self.tls_config())
            .await
            .map_err(Error::dialing)
    }

    /// Opens an async connection to `url` with a reader task and a
    /// bounded buffer (the builder's [`buffer`](ClientBuilder::buffer)
    /// options; feature `tokio`): see [`crate::tokio::BufferedWebSocket`].
    ///
    /// # Errors
    ///
    /// As for [`connect_buffered`](Self::connect_buffered).
    #[cfg(feature = "tokio")]
    pub async fn connect_buffered_async(
        &self,
        url: &str,
    ) -> Result<crate::tokio::BufferedWebSocket> {
        let default = BufferConfig::default();
        let config = self.options.buffer.as_ref().unwrap_or(&default);
        config.validate(self.options.max_message_size)?;
        self.connect_async(url)
            .await?
            .into_buffered(config)
            .await
            .map_err(Error::dialing)
    }

    /// Runs the handshake for `url` over a transport the caller connected
    /// (a Unix socket, a tunnel, an in-memory pipe). The URL gives the
    /// `Host`, path and origin; no TCP connection is made.
    ///
    /// ```no_run
    /// # #[cfg(unix)] {
    /// let unix = std::os::unix::net::UnixStream::connect("/run/app.sock")?;
    /// let ws = floodgate::Client::default().connect_over(unix, "ws://localhost/feed")?;
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// An unusable URL, a refused or timed-out handshake.
    pub fn connect_over<S: Transport>(&self, stream: S, url: &str) -> Result<WebSocket<S>> {
        let target = crate::connect::parse_url(url)?;
        let request = crate::connect::client_request(&target, &self.options);
        let deadline = self.options.connect_timeout.map(|t| Instant::now() + t);
        WebSocket::client_handshake(stream, &request, &self.options, deadline)
            .map_err(Error::dialing)
    }
}
