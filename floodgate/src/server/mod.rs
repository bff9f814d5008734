//! A minimal blocking WebSocket server, on the same protocol core as the
//! client.
//!
//! It exists so that examples, tests and the `floodgate` command can run
//! with no server of their own: one thread accepts, one thread per
//! connection runs a handler, over TCP or TLS ([`Server::bind_tls`]). It is
//! not meant to face the internet (no connection limit, thread per
//! connection).
//!
//! Two handlers come with it: [`echo`], and the [`feed`] of numbered
//! messages on several channels that the demo, the command line and the
//! tests use as a fast server.
//!
//! ```
//! let server = floodgate::server::Server::bind("127.0.0.1:0", floodgate::server::echo)?;
//! let mut ws = floodgate::connect(&server.url())?;
//! ws.send_text("ping?")?;
//! assert_eq!(ws.recv()?.as_text(), Some("ping?"));
//! ws.close(1000, "")?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod feed;

use crate::config::Options;
use crate::error::{Error, ErrorKind, Result};
use crate::socket::WebSocket;
use crate::stream::{Stream, Transport};
use bytes::{Buf, BytesMut};
/// The client's upgrade request, as a handler receives it.
pub use floodgate_proto::handshake::RequestHead;
use floodgate_proto::handshake::{parse_request_head, server_accept_response_with_extensions};
use floodgate_proto::Role;
use http::StatusCode;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Runs the server side of the handshake on a connected stream: reads the
/// upgrade request and answers 101, selecting the first subprotocol the
/// client offers among `options.subprotocols`, and accepting the client's
/// permessage-deflate offer when `options.compression` is set.
///
/// # Errors
///
/// A request that is not a WebSocket upgrade (it is answered with 400), a
/// request head over `options.max_handshake_size`, I/O errors.
pub fn accept<S: Transport>(
    mut stream: S,
    options: &Options,
) -> Result<(WebSocket<S>, RequestHead)> {
    stream.set_read_timeout(options.connect_timeout)?;
    let mut buf = BytesMut::with_capacity(4096);
    let (request, head_len) = loop {
        match parse_request_head(&buf, options.max_handshake_size) {
            Ok(Some(parsed)) => break parsed,
            Ok(None) => {}
            Err(e) => {
                let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
                return Err(e.into());
            }
        }
        buf.reserve(4096);
        if stream.read_into(&mut buf, 4096)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the client left during the handshake",
            )
            .into());
        }
    };
    let key = match request.websocket_key() {
        Ok(key) => key.to_owned(),
        Err(e) => {
            let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
            return Err(e.into());
        }
    };
    let subprotocol = request
        .subprotocols()
        .into_iter()
        .find(|offered| options.subprotocols.contains(offered));
    let deflate = options
        .compression
        .as_ref()
        .and_then(|config| floodgate_proto::deflate::accept_offers(config, request.extensions()));
    stream.write_all(&server_accept_response_with_extensions(
        &key,
        subprotocol.as_deref(),
        deflate.as_ref().map(|(answer, _)| answer.as_str()),
    ))?;
    stream.flush()?;
    stream.set_read_timeout(options.read_timeout)?;
    buf.advance(head_len);
    let mut ws = WebSocket::from_parts(
        stream,
        Role::Server,
        options,
        buf,
        StatusCode::SWITCHING_PROTOCOLS,
        request.headers.clone(),
        subprotocol,
    );
    ws.set_deflate(deflate.map(|(_, negotiated)| negotiated));
    Ok((ws, request))
}

/// The TLS handshake (for a TLS server), then the WebSocket one.
fn accept_stream(
    tcp: TcpStream,
    tls: Option<Arc<rustls::ServerConfig>>,
    options: &Options,
) -> Result<(WebSocket<Stream>, RequestHead)> {
    let stream = match tls {
        None => Stream::Tcp(tcp),
        Some(config) => {
            tcp.set_read_timeout(options.connect_timeout)?;
            tcp.set_write_timeout(options.connect_timeout)?;
            Stream::Tls(crate::tls::accept(tcp, config)?)
        }
    };
    accept(stream, options)
}

/// A handler that echoes every message back until the client closes.
pub fn echo<S: Transport>(mut ws: WebSocket<S>, _request: RequestHead) {
    while let Ok(message) = ws.recv() {
        if ws.send(message).is_err() {
            break;
        }
    }
}

/// A running server; stops accepting when dropped.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    secure: bool,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Listens on `addr` (use port 0 for any free port) and runs `handler`
    /// on a thread for each accepted connection, with default options.
    ///
    /// # Errors
    ///
    /// The address cannot be bound.
    pub fn bind<F>(addr: impl ToSocketAddrs, handler: F) -> Result<Server>
    where
        F: Fn(WebSocket<Stream>, RequestHead) + Send + Sync + 'static,
    {
        Server::bind_with(addr, Options::default(), handler)
    }

    /// As [`bind`](Self::bind), with options (subprotocols to select from,
    /// limits, timeouts).
    ///
    /// # Errors
    ///
    /// The address cannot be bound.
    pub fn bind_with<F>(addr: impl ToSocketAddrs, options: Options, handler: F) -> Result<Server>
    where
        F: Fn(WebSocket<Stream>, RequestHead) + Send + Sync + 'static,
    {
        Server::bind_inner(addr, options, None, handler)
    }

    /// As [`bind_with`](Self::bind_with), speaking TLS (`wss://`) with this
    /// rustls configuration (see [`crate::tls::server_config_from_pem`]).
    /// The TLS handshake runs on the connection's thread, bounded by
    /// `options.connect_timeout`.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// // A self-signed certificate, made here with rcgen.
    /// let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])?;
    /// let (cert_pem, key_pem) = (made.cert.pem(), made.key_pair.serialize_pem());
    /// let tls = floodgate::tls::server_config_from_pem(cert_pem.as_bytes(), key_pem.as_bytes())?;
    /// let server = floodgate::server::Server::bind_tls(
    ///     "127.0.0.1:0",
    ///     floodgate::Options::default(),
    ///     tls,
    ///     floodgate::server::echo,
    /// )?;
    /// let url = format!("wss://localhost:{}/", server.local_addr().port());
    /// let mut ws = floodgate::Client::builder()
    ///     .tls_roots(floodgate::tls::RootCertificates::None)
    ///     .add_root_certificates_pem(cert_pem.as_bytes())
    ///     .connect(&url)?;
    /// ws.send_text("secret")?;
    /// assert_eq!(ws.recv()?.as_text(), Some("secret"));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// The address cannot be bound.
    pub fn bind_tls<F>(
        addr: impl ToSocketAddrs,
        options: Options,
        tls: Arc<rustls::ServerConfig>,
        handler: F,
    ) -> Result<Server>
    where
        F: Fn(WebSocket<Stream>, RequestHead) + Send + Sync + 'static,
    {
        Server::bind_inner(addr, options, Some(tls), handler)
    }

    fn bind_inner<F>(
        addr: impl ToSocketAddrs,
        options: Options,
        tls: Option<Arc<rustls::ServerConfig>>,
        handler: F,
    ) -> Result<Server>
    where
        F: Fn(WebSocket<Stream>, RequestHead) + Send + Sync + 'static,
    {
        let secure = tls.is_some();
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let handler = Arc::new(handler);
        let options = Arc::new(options);
        let stop_flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("floodgate-server".into())
            .spawn(move || {
                for stream in listener.incoming() {
                    if stop_flag.load(Ordering::Acquire) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let _ = stream.set_nodelay(true);
                    let handler = Arc::clone(&handler);
                    let options = Arc::clone(&options);
                    let tls = tls.clone();
                    let _ = std::thread::Builder::new()
                        .name("floodgate-conn".into())
                        .spawn(move || match accept_stream(stream, tls, &options) {
                            Ok((ws, request)) => handler(ws, request),
                            Err(e) => tracing::debug!(error = %e, "server handshake failed"),
                        });
                }
            })
            .map_err(|e| Error::from(ErrorKind::Io(e)))?;
        Ok(Server {
            addr,
            secure,
            stop,
            thread: Some(thread),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `ws://ADDR/`, or `wss://ADDR/` for a TLS server.
    pub fn url(&self) -> String {
        let scheme = if self.secure { "wss" } else { "ws" };
        format!("{scheme}://{}/", self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
