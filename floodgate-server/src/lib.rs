//! The embedded WebSocket server of the floodgate workspace: an echo, a
//! fast feed of numbered messages, and TLS, for tests, demos and
//! benchmarks.
//!
//! # Why it exists
//!
//! floodgate is a client. Its tests, its examples, the `floodgate serve`,
//! `demo` and `bench` commands and the benchmarks all need a server that
//! is in the same process, starts in a millisecond on a free port, and
//! behaves the same every time. This crate is that server, kept out of the
//! client library so that `floodgate` holds nothing but the client, and
//! built on the same protocol core ([`floodgate_proto`], in
//! [`Role::Server`](floodgate_proto::Role::Server)) with its own small
//! blocking I/O over `std::net` and rustls. It does not depend on the
//! client, so the client's tests can use it as a dev-dependency.
//!
//! It is **not** a server for the internet: one thread per connection, no
//! connection limit, no HTTP beyond the upgrade.
//!
//! # Tour
//!
//! - [`Server`]: binds (port 0 for any free port), accepts on a thread of
//!   its own and runs a handler on a thread per connection, over TCP or TLS
//!   ([`Server::bind_tls`], configured by [`tls::server_config_from_pem`]).
//!   Dropping it stops accepting.
//! - A handler is any `Fn(WebSocket<Stream>, RequestHead)`: [`echo`], the
//!   [`feed`] (numbered messages on channels at a chosen rate, pings, a
//!   report per connection), or a closure of the test's own.
//! - [`WebSocket`]: the server's side of a connection (`recv`, `send*`,
//!   `ping`, `close`, `shutdown`), the same calls as the client's.
//! - [`accept`]: the handshake alone, over any [`Transport`] (a Unix
//!   socket, a test's own TLS stream).
//! - [`Options`]: subprotocols, permessage-deflate, limits, timeouts.
//! - [`Error`]: what failed, from the server's side.
//!
//! # Example
//!
//! An echo server, and a client written with nothing but
//! [`floodgate_proto`] (floodgate's tests use `floodgate::connect`):
//!
//! ```
//! use floodgate_proto::bytes::BytesMut;
//! use floodgate_proto::handshake::{parse_response_head, ClientHandshake, ClientRequest};
//! use floodgate_proto::{Config, Message, Protocol, Role};
//! use std::io::{Read, Write};
//!
//! let server = floodgate_server::Server::bind("127.0.0.1:0", floodgate_server::echo)?;
//! let mut tcp = std::net::TcpStream::connect(server.local_addr())?;
//! let request = ClientRequest { host: "localhost".into(), path: "/".into(), ..Default::default() };
//! let (handshake, bytes) = ClientHandshake::new(&request)?;
//! tcp.write_all(&bytes)?;
//!
//! let (mut buf, mut chunk) = (BytesMut::new(), [0u8; 4096]);
//! let (head, len) = loop {
//!     if let Some(parsed) = parse_response_head(&buf, 64 << 10)? {
//!         break parsed;
//!     }
//!     let n = tcp.read(&mut chunk)?;
//!     buf.extend_from_slice(&chunk[..n]);
//! };
//! handshake.accept(head, &[])?;
//! let _ = buf.split_to(len);
//!
//! let mut client = Protocol::new(Role::Client, Config::default());
//! client.send_text("hello")?;
//! tcp.write_all(client.output())?;
//! let n = client.output().len();
//! client.consume_output(n);
//! let echoed = loop {
//!     if let Some(message) = client.read_message(&mut buf)? {
//!         break message;
//!     }
//!     let n = tcp.read(&mut chunk)?;
//!     buf.extend_from_slice(&chunk[..n]);
//! };
//! assert_eq!(echoed, Message::text("hello"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]

mod error;
pub mod feed;
mod options;
mod server;
mod socket;
pub mod tls;
mod transport;

pub use error::{Error, Result, Timeout, TlsConfigError};
/// The client's upgrade request, as a handler receives it.
pub use floodgate_proto::handshake::RequestHead;
pub use options::Options;
pub use server::{accept, echo, Server};
pub use socket::{Messages, WebSocket};
pub use transport::{Stream, Transport};
