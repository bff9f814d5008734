//! floodgate: a WebSocket client that stays correct, alive and bounded when
//! messages arrive faster than the application handles them.
//!
//! This version provides the low-level blocking client: [`connect`] (or
//! [`Client::builder`] for options) returns a [`WebSocket`] with
//! `send`/`recv`/`ping`/`close`, over the sans-I/O protocol core of
//! [`floodgate_proto`]. The buffered receive path (bounded buffer, overflow
//! policies, stats), the event-driven `App`, TLS, proxies and compression
//! are planned and not in this version.
//!
//! # Example
//!
//! ```
//! # let server = floodgate::server::Server::bind("127.0.0.1:0", floodgate::server::echo)?;
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
//! - [`Error`] / [`ErrorKind`]: what went wrong, split by blame.
//! - [`server`]: a minimal server for tests, examples and demos.
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
//! | `sockopt=((TCP_NODELAY,1),)` | `nodelay(true)` (default), `recv_buffer_size`, `send_buffer_size` |
//!
//! # Not yet provided
//!
//! `wss://` returns [`ErrorKind::Unsupported`]; proxies, Unix sockets
//! (other than through [`Client::connect_over`]), redirects and
//! permessage-deflate are not implemented yet.

#![warn(missing_docs)]

pub mod buffer;
mod buffered;
mod config;
mod connect;
mod error;
pub mod server;
mod socket;
mod stream;

pub use buffered::{BufferedMessages, BufferedWebSocket, Sender};
pub use config::{Client, ClientBuilder, Options, Origin};
pub use error::{Error, ErrorKind, Result};
pub use socket::{Messages, WebSocket};
pub use stream::{Stream, Transport};

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
