//! The blocking front end: loops over the protocol core
//! ([`floodgate_proto::Connection`]) on `std` threads, with the socket's
//! own timeouts set to the core's next deadline.
//!
//! - `websocket.rs`: [`crate::WebSocket`], the direct connection, whose
//!   timers run while the caller is inside one of its calls;
//! - `buffered/`: [`crate::BufferedWebSocket`] and its [`crate::Sender`],
//!   a reader thread feeding the bounded [`crate::buffer::Buffer`];
//! - `keepalive.rs`: [`crate::keepalive::Keepalive`], pings on an
//!   interval for a buffered connection.
//!
//! They are one folder because they are one concept and name each other:
//! a `WebSocket` turns into a buffered connection
//! ([`WebSocket::into_buffered`](crate::WebSocket::into_buffered)), which
//! takes over its parts and starts keepalives on its reader. Nothing here
//! names the tokio front end, the App or the entry points of `client.rs`;
//! the blocking connect (URL, transport, handshake, redirects) is
//! `connect.rs`, over the transports of `dial/`. Python `websockets`'
//! `sync/` package is the model: only I/O loops over the protocol object.

pub(crate) mod buffered;
pub mod keepalive;
pub(crate) mod websocket;
