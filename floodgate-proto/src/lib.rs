//! The WebSocket protocol (RFC 6455) with no I/O.
//!
//! `floodgate-proto` is the core of the [floodgate] client: bytes in,
//! messages out; calls in, bytes to send out; told the time, it says when
//! it next needs to be woken. It owns no socket, thread, clock or runtime,
//! so the blocking client, the tokio client and the tests all drive the
//! same code, and every protocol and lifecycle rule can be checked with
//! byte slices and chosen instants.
//!
//! # Tour
//!
//! - [`handshake`]: the opening handshake. [`handshake::ClientHandshake`]
//!   builds the upgrade request and checks the answer (status 101, tokens,
//!   `Sec-WebSocket-Accept`, subprotocol, extensions), with a bound on the
//!   size of the answer.
//! - [`Connection`]: one open connection's whole life, the type a front
//!   end drives: [`Protocol`] plus every rule that takes time (close and
//!   end-of-transport deadlines, the grace of a failed connection,
//!   keepalive pings with pongs matched by payload, idle and send limits:
//!   [`Timeouts`]), with `handle_timeout(now)` / `poll_timeout()` as in
//!   quinn-proto, and [`End`]: how the connection ended, known as soon as
//!   it is decided.
//! - [`Protocol`]: the frame codec of one open connection. Feed it a [`bytes::BytesMut`] of
//!   received bytes with [`Protocol::read_message`] (or
//!   [`Protocol::read_frame`]), send with `send_*`, and write out
//!   [`Protocol::output`]. Pings are answered and the close handshake is
//!   run as frames are decoded.
//! - [`deflate`]: permessage-deflate (RFC 7692): the client's offer
//!   ([`deflate::DeflateConfig`]), the check of the server's answer
//!   ([`deflate::negotiate`]), and, once [`Protocol::set_deflate`] is
//!   given the result, compression of what is sent and inflation of what
//!   is received, bounded by `max_message_size`.
//! - [`frame`]: headers and their encoding; [`mask`]: word-at-a-time
//!   masking; [`utf8`]: incremental validation of fragmented text;
//!   [`close`]: close codes and payloads; [`message`]: [`Message`] and
//!   [`Text`].
//! - [`tunnel`]: the proxy handshakes a client runs before any of the
//!   above, as state machines: HTTP `CONNECT` ([`tunnel::HttpConnect`]),
//!   SOCKS4/4a ([`tunnel::Socks4Connect`]) and SOCKS5/5h
//!   ([`tunnel::Socks5Connect`]), bytes in and bytes out, each read
//!   bounded, with a typed [`tunnel::TunnelError`] that carries what the
//!   proxy answered.
//! - Errors, split by blame: [`ProtocolError`] (the peer broke the
//!   protocol; each knows its close code), [`HandshakeError`] (the upgrade
//!   was refused or malformed), [`UsageError`] (the application asked for
//!   something the protocol forbids).
//!
//! # Example
//!
//! A client reading a fragmented text message and answering a ping that
//! arrived between its fragments:
//!
//! ```
//! use bytes::BytesMut;
//! use floodgate_proto::{Config, Message, Protocol, Role};
//!
//! let mut client = Protocol::new(Role::Client, Config::default());
//! let mut received = BytesMut::new();
//! received.extend_from_slice(&[0x01, 0x03, b'f', b'o', b'o']); // text, not FIN
//! received.extend_from_slice(&[0x89, 0x00]);                   // ping
//! received.extend_from_slice(&[0x80, 0x03, b'b', b'a', b'r']); // continuation, FIN
//!
//! assert_eq!(client.read_message(&mut received).unwrap(), Some(Message::Ping(Default::default())));
//! assert_eq!(client.read_message(&mut received).unwrap(), Some(Message::text("foobar")));
//! assert_eq!(client.read_message(&mut received).unwrap(), None); // needs more bytes
//!
//! // The pong is waiting to be written: FIN + pong, masked, empty.
//! assert_eq!(&client.output()[..2], &[0x8A, 0x80]);
//! ```
//!
//! # Not provided
//!
//! No I/O, no clocks (timeouts are the I/O layer's), no DNS (the I/O layer
//! resolves names for the proxies that want addresses), no extension but
//! permessage-deflate, and no HTTP beyond the upgrade and the proxy's
//! `CONNECT`.
//!
//! [floodgate]: https://docs.rs/floodgate

#![warn(missing_docs)]

pub mod close;
pub mod connection;
pub mod deflate;
pub mod error;
pub mod frame;
pub mod handshake;
pub mod mask;
pub mod message;
pub mod protocol;
pub mod tunnel;
pub mod utf8;

pub use close::{CloseCode, CloseFrame};
pub use connection::{Connection, End, Timeouts};
pub use error::{HandshakeError, ProtocolError, UsageError};
pub use frame::{Frame, OpCode};
pub use message::{Message, Text};
pub use protocol::{Config, Protocol, Role, State};

/// Re-exported so that users of the protocol need not depend on `bytes`.
pub use bytes;
