//! Proxy tunnels with no I/O: HTTP `CONNECT`, SOCKS4, SOCKS4a, SOCKS5 and
//! SOCKS5h, client side.
//!
//! A proxy only changes how the byte stream to the server is opened: the
//! client connects to the proxy, runs a short handshake that asks for a
//! tunnel to the server, and from then on the stream is the server's. This
//! module holds those handshakes as state machines that are given the
//! bytes the proxy sent and say what to send back, so the blocking and the
//! async front ends of floodgate (and the tests) drive the same code: each
//! front end keeps its own reads, writes, deadlines and cancellation, and
//! every rule and bound of the protocols is written, and tested with byte
//! slices, once.
//!
//! One type per protocol ([`HttpConnect`], [`Socks4Connect`],
//! [`Socks5Connect`]) and [`Tunnel`], which is any of them. They share one
//! shape:
//!
//! 1. write [`output`](Tunnel::output) to the proxy and report what was
//!    written with [`consume_output`](Tunnel::consume_output);
//! 2. read at most [`read_limit`](Tunnel::read_limit) bytes and append them
//!    to a [`BytesMut`];
//! 3. hand that buffer to [`receive`](Tunnel::receive): [`Progress::NeedMore`]
//!    (go back to 1: there may be a new request to send, as in SOCKS5's
//!    authentication step) or [`Progress::Done`] (the tunnel is open), or a
//!    [`TunnelError`] that carries what the proxy answered. If the proxy
//!    closes the connection first, [`closed`](Tunnel::closed) is the error
//!    to report.
//!
//! **Bounds.** [`read_limit`](Tunnel::read_limit) never lets a driver read
//! past the proxy's answer: SOCKS answers announce their sizes, and for
//! HTTP it is the fewest bytes that could end the head (1 or 2), so the
//! first byte of the server's stream is never taken from the socket and
//! no buffer has to be handed on to the next layer. A driver that reads
//! more anyway finds the extra bytes left in its buffer after
//! [`Progress::Done`]. An HTTP head is limited in size (a proxy that sends
//! an endless header gets [`TunnelError::HeadTooLarge`]), and a SOCKS
//! answer is at most 262 bytes, so no proxy can make a driver buffer
//! without limit; garbage is a [`TunnelError::Malformed`], never a panic.
//! Time is the driver's: the state machines own no clock, and the
//! front ends bound the whole exchange by the connect deadline.
//!
//! **Names.** For `socks4://` and `socks5://` the client resolves the
//! server's name and sends an address ([`Destination::Ip`]); for
//! `socks4a://`, `socks5h://` and HTTP the proxy does
//! ([`Destination::Name`]). Resolving is I/O, so it is the caller's: the
//! state machines send what they are given.
//!
//! # Example
//!
//! A SOCKS5 handshake with user name and password, with the proxy's
//! answers written by hand:
//!
//! ```
//! use bytes::BytesMut;
//! use floodgate_proto::tunnel::{Credentials, Destination, Progress, Socks5Connect, Tunnel};
//!
//! let target = Destination::Name("feed.example".into());
//! let credentials = Credentials { username: "alice", password: "s3cret" };
//! let mut tunnel = Tunnel::from(Socks5Connect::new(&target, 443, Some(credentials))?);
//! let mut from_proxy = BytesMut::new();
//!
//! // The greeting offers "no authentication" and "user name and password".
//! assert_eq!(tunnel.output(), [5, 2, 0, 2]);
//! tunnel.consume_output(4);
//! assert_eq!(tunnel.read_limit(), 2);
//!
//! // The proxy picks user name and password: the RFC 1929 request follows.
//! from_proxy.extend_from_slice(&[5, 2]);
//! assert_eq!(tunnel.receive(&mut from_proxy)?, Progress::NeedMore);
//! assert_eq!(tunnel.output(), b"\x01\x05alice\x06s3cret");
//! tunnel.consume_output(tunnel.output().len());
//!
//! // Accepted: then the CONNECT request for the name.
//! from_proxy.extend_from_slice(&[1, 0]);
//! assert_eq!(tunnel.receive(&mut from_proxy)?, Progress::NeedMore);
//! assert_eq!(tunnel.output(), b"\x05\x01\x00\x03\x0cfeed.example\x01\xbb");
//! tunnel.consume_output(tunnel.output().len());
//!
//! // Granted, with the address the proxy bound (IPv4): the tunnel is open.
//! from_proxy.extend_from_slice(&[5, 0, 0, 1, 10, 0, 0, 1, 0x1f, 0x90]);
//! assert_eq!(tunnel.receive(&mut from_proxy)?, Progress::Done);
//! assert!(from_proxy.is_empty());
//! # Ok::<(), floodgate_proto::tunnel::TunnelError>(())
//! ```
//!
//! # Not provided
//!
//! DNS (see above), TLS to the proxy itself (`https://` proxies), SOCKS
//! `BIND` and `UDP ASSOCIATE`, and authentication other than HTTP Basic
//! and SOCKS5 user name and password (no NTLM, Negotiate, Digest or
//! GSSAPI).

mod error;
mod http;
mod socks4;
mod socks5;

pub use error::{Answer, Malformed, Socks4Reply, Socks5Reply, TunnelError, Unsupported};
pub use http::HttpConnect;
pub use socks4::Socks4Connect;
pub use socks5::Socks5Connect;

use bytes::BytesMut;
use std::fmt;
use std::net::IpAddr;

/// Where the tunnel goes: an address, or a name for the proxy to resolve.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Destination {
    /// An address (written in the URL, or resolved by the client).
    Ip(IpAddr),
    /// A host name, resolved by the proxy (`socks4a`, `socks5h`, HTTP).
    Name(String),
}

impl Destination {
    /// An IP literal as [`Destination::Ip`] (IPv6 with or without
    /// brackets), anything else as [`Destination::Name`].
    ///
    /// ```
    /// use floodgate_proto::tunnel::Destination;
    /// assert_eq!(Destination::from_host("[::1]"), Destination::Ip("::1".parse().unwrap()));
    /// assert_eq!(Destination::from_host("example.com"), Destination::Name("example.com".into()));
    /// ```
    pub fn from_host(host: &str) -> Destination {
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        match bare.parse::<IpAddr>() {
            Ok(ip) => Destination::Ip(ip),
            Err(_) => Destination::Name(host.to_owned()),
        }
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Destination::Ip(ip) => write!(f, "{ip}"),
            Destination::Name(name) => f.write_str(name),
        }
    }
}

/// A user name and password for the proxy (HTTP Basic, SOCKS5 RFC 1929).
///
/// `Debug` does not show the password.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Credentials<'a> {
    /// The user name.
    pub username: &'a str,
    /// The password (may be empty).
    pub password: &'a str,
}

impl fmt::Debug for Credentials<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"***")
            .finish()
    }
}

/// What [`Tunnel::receive`] made of the bytes so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// The answer is not complete: write any new [`output`](Tunnel::output),
    /// read more, and call again with the same buffer (nothing of an
    /// incomplete answer is taken from it).
    NeedMore,
    /// The tunnel is open. The proxy's answer has been taken from the
    /// buffer; whatever is left in it came from the server.
    Done,
}

/// The protocol spoken to the proxy, as error messages name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TunnelProtocol {
    /// HTTP `CONNECT`.
    Http,
    /// SOCKS4 or SOCKS4a.
    Socks4,
    /// SOCKS5 or SOCKS5h.
    Socks5,
}

impl fmt::Display for TunnelProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TunnelProtocol::Http => "HTTP",
            TunnelProtocol::Socks4 => "SOCKS4",
            TunnelProtocol::Socks5 => "SOCKS5",
        })
    }
}

/// Any of the proxy handshakes, so that a driver needs one type; see the
/// [module docs](self) for the loop that drives it.
#[derive(Debug)]
pub enum Tunnel {
    /// HTTP `CONNECT`.
    Http(HttpConnect),
    /// SOCKS4 or SOCKS4a.
    Socks4(Socks4Connect),
    /// SOCKS5 or SOCKS5h.
    Socks5(Socks5Connect),
}

macro_rules! each {
    ($self:expr, $t:ident => $body:expr) => {
        match $self {
            Tunnel::Http($t) => $body,
            Tunnel::Socks4($t) => $body,
            Tunnel::Socks5($t) => $body,
        }
    };
}

impl Tunnel {
    /// The bytes to write to the proxy now (empty when there are none).
    pub fn output(&self) -> &[u8] {
        each!(self, t => t.output())
    }

    /// Reports that the first `n` bytes of [`output`](Self::output) were
    /// written (`n` larger than the output counts as all of it).
    pub fn consume_output(&mut self, n: usize) {
        each!(self, t => t.consume_output(n))
    }

    /// How many bytes the driver may read now without reading past the
    /// proxy's answer: at least 1 while the handshake is under way, 0 once
    /// it is done or has failed.
    pub fn read_limit(&self) -> usize {
        each!(self, t => t.read_limit())
    }

    /// Looks at what the proxy sent so far (`from_proxy`, everything
    /// received and not yet taken) and takes its answer once complete.
    ///
    /// # Errors
    ///
    /// A [`TunnelError`] when the proxy refused the tunnel or sent
    /// something that is not its protocol; every later call returns the
    /// same error.
    pub fn receive(&mut self, from_proxy: &mut BytesMut) -> Result<Progress, TunnelError> {
        each!(self, t => t.receive(from_proxy))
    }

    /// The error to report when the proxy closes the connection before
    /// the handshake is done ([`TunnelError::Closed`]).
    pub fn closed(&self) -> TunnelError {
        TunnelError::Closed {
            protocol: self.protocol(),
        }
    }

    /// The protocol spoken.
    pub fn protocol(&self) -> TunnelProtocol {
        match self {
            Tunnel::Http(_) => TunnelProtocol::Http,
            Tunnel::Socks4(_) => TunnelProtocol::Socks4,
            Tunnel::Socks5(_) => TunnelProtocol::Socks5,
        }
    }
}

impl From<HttpConnect> for Tunnel {
    fn from(t: HttpConnect) -> Tunnel {
        Tunnel::Http(t)
    }
}

impl From<Socks4Connect> for Tunnel {
    fn from(t: Socks4Connect) -> Tunnel {
        Tunnel::Socks4(t)
    }
}

impl From<Socks5Connect> for Tunnel {
    fn from(t: Socks5Connect) -> Tunnel {
        Tunnel::Socks5(t)
    }
}

/// Bytes waiting to be written, and how many of them were.
#[derive(Debug, Default)]
struct Outbox {
    bytes: Vec<u8>,
    written: usize,
}

impl Outbox {
    fn new(bytes: Vec<u8>) -> Outbox {
        Outbox { bytes, written: 0 }
    }

    fn pending(&self) -> &[u8] {
        &self.bytes[self.written..]
    }

    fn consume(&mut self, n: usize) {
        self.written = self.written.saturating_add(n).min(self.bytes.len());
    }

    fn replace(&mut self, bytes: Vec<u8>) {
        *self = Outbox::new(bytes);
    }
}

/// `host:port`, with brackets around an IPv6 address.
fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests;
