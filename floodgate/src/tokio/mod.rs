//! The async client on tokio (cargo feature `tokio`, off by default).
//!
//! The same protocol core ([`floodgate_proto::Protocol`]: framing,
//! masking, permessage-deflate, UTF-8, limits, the close handshake) and the
//! same options ([`crate::Client`], [`crate::ClientBuilder`]: headers,
//! subprotocols, limits, socket options, `wss://`, Unix sockets, redirects,
//! proxies, compression) as the blocking client, with the waits on tokio.
//! Like Python `websockets`' `sync/` and `asyncio/` packages, the two
//! front ends are only I/O loops over one protocol object.
//!
//! The module is named after the runtime, as the feature is: what it needs
//! is a tokio reactor (`tokio::net`, `tokio::time`), and a name like
//! `aio` would hide that it does not run on another executor.
//!
//! - [`connect`], [`crate::Client::connect_async`],
//!   [`crate::ClientBuilder::connect_async`]: open a [`WebSocket`].
//! - [`WebSocket`]: `recv`, `recv_frame`, `send`/`send_text`/`send_binary`,
//!   `send_frame`, `ping`, `pong`, `close`, as async methods; a `futures`
//!   `Stream` of messages and `Sink` of messages; [`WebSocket::split`]
//!   into a [`Receiver`] and a cloneable [`Sender`], and
//!   [`Receiver::reunite`] back into a [`WebSocket`].
//! - [`BufferedWebSocket`]: a reader task feeding a
//!   [`crate::buffer::Buffer`], with the blocking buffered connection's
//!   policies and stats.
//! - [`app`] ([`App`]): the event-driven App on tokio (async handlers,
//!   keepalive and reconnect as tasks), the blocking [`crate::App`]'s
//!   twin.
//!
//! The guide is `docs/async.md`.
//!
//! Every timeout of [`crate::ClientBuilder`] applies, with the blocking
//! client's meaning: `connect_timeout` bounds the connect, `close_timeout`
//! the close handshake, `read_timeout` each wait for data in `recv` and
//! `recv_frame` and `write_timeout` each write to the transport; a read or
//! write timeout fails the call with [`crate::ErrorKind::Timeout`] and
//! leaves the connection usable, losing nothing. (The buffered
//! connection's reader task never times out, as in the blocking client.)
//!
//! # Cancel safety
//!
//! [`WebSocket::recv`], [`Receiver::recv`] and their `recv_frame` are
//! cancel-safe: use them in `tokio::select!` or under
//! `tokio::time::timeout` without losing or repeating a message or frame.
//! Sends never tear a frame when dropped, but a dropped send may or may
//! not have sent its message. `close` is not cancel-safe.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> floodgate::Result<()> {
//! use futures_util::{SinkExt, StreamExt};
//! use floodgate::Message;
//! # let server = floodgate_server::Server::bind("127.0.0.1:0", floodgate_server::echo).unwrap();
//! let mut ws = floodgate::Client::builder()
//!     .subprotocol("chat")
//!     .connect_async(&server.url())
//!     .await?;
//! ws.send(Message::text("one")).await?;                // SinkExt::send
//! let reply = ws.next().await.expect("a message")?;     // StreamExt::next
//! assert_eq!(reply.as_text(), Some("one"));
//! # Ok(())
//! # }
//! ```

/// The send methods of a connection type that holds a [`Sender`] in
/// `self.sender`, delegating to it: one definition, with its docs, for
/// [`WebSocket`] and [`BufferedWebSocket`]. Name the methods to generate,
/// in order.
macro_rules! delegate_sends {
    ($($method:ident),* $(,)?) => {
        $( $crate::tokio::delegate_sends!(@one $method); )*
    };
    (@one send) => {
        /// Sends a message: see [`Sender::send`](crate::tokio::Sender::send).
        ///
        /// # Errors
        ///
        /// As for [`Sender::send`](crate::tokio::Sender::send).
        pub async fn send(&self, message: impl Into<$crate::Message>) -> $crate::Result<()> {
            self.sender.send(message).await
        }
    };
    (@one send_all) => {
        /// Sends several messages with one write: see
        /// [`Sender::send_all`](crate::tokio::Sender::send_all).
        ///
        /// # Errors
        ///
        /// As for [`Sender::send_all`](crate::tokio::Sender::send_all).
        pub async fn send_all<I>(&self, messages: I) -> $crate::Result<()>
        where
            I: IntoIterator,
            I::Item: ::std::borrow::Borrow<$crate::Message>,
        {
            self.sender.send_all(messages).await
        }
    };
    (@one send_text) => {
        /// Sends a text message.
        ///
        /// # Errors
        ///
        /// As for [`Sender::send`](crate::tokio::Sender::send).
        pub async fn send_text(&self, text: &str) -> $crate::Result<()> {
            self.sender.send_text(text).await
        }
    };
    (@one send_binary) => {
        /// Sends a binary message.
        ///
        /// # Errors
        ///
        /// As for [`Sender::send`](crate::tokio::Sender::send).
        pub async fn send_binary(&self, data: &[u8]) -> $crate::Result<()> {
            self.sender.send_binary(data).await
        }
    };
    (@one send_frame) => {
        /// Sends one raw frame: see
        /// [`Sender::send_frame`](crate::tokio::Sender::send_frame).
        ///
        /// # Errors
        ///
        /// As for [`Sender::send_frame`](crate::tokio::Sender::send_frame).
        pub async fn send_frame(
            &self,
            opcode: $crate::OpCode,
            payload: &[u8],
            fin: bool,
        ) -> $crate::Result<()> {
            self.sender.send_frame(opcode, payload, fin).await
        }
    };
    (@one ping) => {
        /// Sends a ping (payload at most 125 bytes).
        ///
        /// # Errors
        ///
        /// As for [`Sender::send`](crate::tokio::Sender::send).
        pub async fn ping(&self, payload: &[u8]) -> $crate::Result<()> {
            self.sender.ping(payload).await
        }
    };
    (@one pong) => {
        /// Sends a pong (payload at most 125 bytes).
        ///
        /// # Errors
        ///
        /// As for [`Sender::send`](crate::tokio::Sender::send).
        pub async fn pong(&self, payload: &[u8]) -> $crate::Result<()> {
            self.sender.pong(payload).await
        }
    };
}
pub(crate) use delegate_sends;

mod buffered;
mod connect;
mod dial;
mod frames;
pub mod keepalive;
mod receiver;
mod sender;
mod socket;
mod stream;

// The async App lives beside the blocking one, in `app/tokio/`: it
// connects with a `Client`, which names this front end, so it cannot be
// inside it. Its public paths stay `floodgate::tokio::app` and
// `floodgate::tokio::App`.
#[doc(inline)]
pub use crate::app::tokio as app;
#[doc(inline)]
pub use crate::app::tokio::App;
pub use buffered::BufferedWebSocket;
pub use keepalive::Keepalive;
pub use receiver::Receiver;
pub use sender::Sender;
pub use socket::{ReuniteError, WebSocket};

/// Connects to `url` with the default options.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> floodgate::Result<()> {
/// # let server = floodgate_server::Server::bind("127.0.0.1:0", floodgate_server::echo).unwrap();
/// let mut ws = floodgate::tokio::connect(&server.url()).await?;
/// ws.send_binary(b"\x01\x02").await?;
/// assert_eq!(ws.recv().await?.as_bytes(), b"\x01\x02");
/// # Ok(())
/// # }
/// ```
///
/// # Errors
///
/// See [`crate::Client::connect_async`].
pub async fn connect(url: &str) -> crate::Result<WebSocket> {
    // What `Client::default().connect_async(url)` does, without naming
    // `client.rs`, which sits above this front end.
    let options = crate::Options::default();
    let tls = crate::dial::tls::ClientConfigCache::default();
    connect_with(url, &options, &|| tls.get(&options.tls)).await
}

pub(crate) use connect::connect as connect_with;
