//! [`Server`]: the accept loop; [`accept`]: the server's handshake;
//! [`echo`]: the simplest handler.
//!
//! One thread accepts, one thread per connection runs the TLS handshake
//! (for a TLS server), the WebSocket handshake and then the handler. That
//! is the whole concurrency model: simple to reason about in a test, and
//! wrong for a server that faces the internet (no connection limit, a
//! thread per client).

use crate::error::{Error, Result, Timeout};
use crate::options::Options;
use crate::socket::WebSocket;
use crate::tls::is_timeout;
use crate::transport::{Stream, Transport};
use bytes::{Buf, BytesMut};
use floodgate_proto::handshake::{
    parse_request_head, server_accept_response_with_extensions, RequestHead,
};
use floodgate_proto::{Protocol, Role};
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

const BAD_REQUEST: &[u8] =
    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

/// Runs the server side of the WebSocket handshake on a connected stream:
/// reads the upgrade request and answers 101, selecting the first
/// subprotocol the client offers among `options.subprotocols`, and
/// accepting the client's permessage-deflate offer when
/// `options.compression` is set. A request that is not a WebSocket
/// upgrade is answered with 400 Bad Request.
///
/// Use it to serve over a stream of your own (a Unix socket, a TLS
/// wrapper); [`Server`] calls it on every connection it accepts.
///
/// ```
/// use std::io::{Read, Write};
/// use std::net::{TcpListener, TcpStream};
/// let listener = TcpListener::bind("127.0.0.1:0")?;
/// let mut client = TcpStream::connect(listener.local_addr()?)?;
/// client.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")?; // no Upgrade
/// let (stream, _) = listener.accept()?;
/// let refused = floodgate_server::accept(stream, &floodgate_server::Options::default());
/// assert!(matches!(refused, Err(floodgate_server::Error::BadRequest(_))));
/// let mut answer = String::new();
/// client.read_to_string(&mut answer)?;
/// assert!(answer.starts_with("HTTP/1.1 400 Bad Request"));
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Errors
///
/// [`Error::BadRequest`] (answered with 400) for a request that is not an
/// upgrade or whose head is over `options.max_handshake_size`;
/// [`Error::ClientLeftDuringHandshake`]; [`Timeout::Handshake`] past
/// `options.handshake_timeout`; I/O errors.
pub fn accept<S: Transport>(
    mut stream: S,
    options: &Options,
) -> Result<(WebSocket<S>, RequestHead)> {
    let timed_out = || {
        Error::Timeout(Timeout::Handshake(
            options.handshake_timeout.unwrap_or_default(),
        ))
    };
    stream.set_read_timeout(options.handshake_timeout)?;
    stream.set_write_timeout(options.handshake_timeout)?;
    let mut buf = BytesMut::with_capacity(4096);
    let (request, head_len) = loop {
        match parse_request_head(&buf, options.max_handshake_size) {
            Ok(Some(parsed)) => break parsed,
            Ok(None) => {}
            Err(e) => {
                let _ = stream.write_all(BAD_REQUEST);
                return Err(Error::BadRequest(e));
            }
        }
        buf.reserve(4096);
        match stream.read_into(&mut buf, 4096) {
            Ok(0) => return Err(Error::ClientLeftDuringHandshake),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if is_timeout(&e) => return Err(timed_out()),
            Err(e) => return Err(e.into()),
        }
    };
    let key = match request.websocket_key() {
        Ok(key) => key.to_owned(),
        Err(e) => {
            let _ = stream.write_all(BAD_REQUEST);
            return Err(Error::BadRequest(e));
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
    let response = server_accept_response_with_extensions(
        &key,
        subprotocol.as_deref(),
        deflate.as_ref().map(|(answer, _)| answer.as_str()),
    );
    match stream.write_all(&response).and_then(|()| stream.flush()) {
        Ok(()) => {}
        Err(e) if is_timeout(&e) => return Err(timed_out()),
        Err(e) => return Err(e.into()),
    }
    stream.set_read_timeout(options.read_timeout)?;
    stream.set_write_timeout(options.write_timeout)?;
    buf.advance(head_len);
    let mut proto = Protocol::new(Role::Server, options.protocol_config());
    proto.set_deflate(deflate.map(|(_, negotiated)| negotiated));
    Ok((
        WebSocket::new(stream, proto, buf, subprotocol, options),
        request,
    ))
}

/// The TLS handshake (for a TLS server), then the WebSocket one.
fn accept_stream(
    tcp: TcpStream,
    tls: Option<Arc<rustls::ServerConfig>>,
    options: &Options,
) -> Result<(WebSocket<Stream>, RequestHead)> {
    let stream = match tls {
        None => Stream::Tcp(tcp),
        Some(config) => Stream::Tls(crate::tls::accept(tcp, config, options.handshake_timeout)?),
    };
    accept(stream, options)
}

/// A handler that echoes every message back until the client closes.
///
/// ```
/// let server = floodgate_server::Server::bind("127.0.0.1:0", floodgate_server::echo)?;
/// assert!(server.url().starts_with("ws://127.0.0.1:"));
/// # Ok::<(), floodgate_server::Error>(())
/// ```
pub fn echo<S: Transport>(mut ws: WebSocket<S>, _request: RequestHead) {
    while let Ok(message) = ws.recv() {
        if ws.send(message).is_err() {
            break;
        }
    }
}

/// A running server; stops accepting when dropped (connections already
/// accepted run on until their handlers return).
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    secure: bool,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Listens on `addr` (port 0: any free port) and runs `handler` on a
    /// thread of its own for each connection, once its handshake is done,
    /// with default [`Options`].
    ///
    /// ```
    /// use floodgate_server::{Server, WebSocket, RequestHead};
    /// let server = Server::bind("127.0.0.1:0", |mut ws: WebSocket, request: RequestHead| {
    ///     let _ = ws.send_text(&format!("you asked for {}", request.path));
    ///     let _ = ws.close(1000, "");
    /// })?;
    /// println!("listening on {}", server.url());
    /// # Ok::<(), floodgate_server::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Bind`] when the address cannot be bound; [`Error::Io`] when
    /// the accept thread cannot be started.
    pub fn bind<F>(addr: impl ToSocketAddrs, handler: F) -> Result<Server>
    where
        F: Fn(WebSocket<Stream>, RequestHead) + Send + Sync + 'static,
    {
        Server::bind_with(addr, Options::default(), handler)
    }

    /// As [`bind`](Self::bind), with options (subprotocols to select from,
    /// compression, limits, timeouts).
    ///
    /// # Errors
    ///
    /// As for [`bind`](Self::bind).
    pub fn bind_with<F>(addr: impl ToSocketAddrs, options: Options, handler: F) -> Result<Server>
    where
        F: Fn(WebSocket<Stream>, RequestHead) + Send + Sync + 'static,
    {
        Server::start(addr, options, None, handler)
    }

    /// As [`bind_with`](Self::bind_with), speaking TLS (`wss://`) with this
    /// rustls configuration (see
    /// [`tls::server_config_from_pem`](crate::tls::server_config_from_pem)).
    /// The TLS handshake runs on the connection's thread, bounded by
    /// `options.handshake_timeout`.
    ///
    /// # Errors
    ///
    /// As for [`bind`](Self::bind).
    pub fn bind_tls<F>(
        addr: impl ToSocketAddrs,
        options: Options,
        tls: Arc<rustls::ServerConfig>,
        handler: F,
    ) -> Result<Server>
    where
        F: Fn(WebSocket<Stream>, RequestHead) + Send + Sync + 'static,
    {
        Server::start(addr, options, Some(tls), handler)
    }

    fn start<F>(
        addr: impl ToSocketAddrs,
        options: Options,
        tls: Option<Arc<rustls::ServerConfig>>,
        handler: F,
    ) -> Result<Server>
    where
        F: Fn(WebSocket<Stream>, RequestHead) + Send + Sync + 'static,
    {
        let secure = tls.is_some();
        let listener = TcpListener::bind(addr).map_err(Error::Bind)?;
        let addr = listener.local_addr().map_err(Error::Bind)?;
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
            })?;
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
        // Wake the accept loop so that it sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
