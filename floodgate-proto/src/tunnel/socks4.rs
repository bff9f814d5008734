//! SOCKS4 and SOCKS4a `CONNECT`.
//!
//! Request: `VN=4, CD=1, DSTPORT (2), DSTIP (4), USERID, NUL`, and for
//! SOCKS4a, when the proxy resolves, `DSTIP = 0.0.0.1` followed by the
//! host name and a NUL. Reply: 8 bytes, `VN=0, CD, port, ip`, where `CD`
//! 90 grants the request. (The protocol is described in "SOCKS: A protocol
//! for TCP proxy across firewalls" and "SOCKS 4A: A Simple Extension to
//! SOCKS 4 Protocol", both by Ying-Da Lee.)

use super::error::{Answer, Malformed, Socks4Reply, TunnelError, Unsupported};
use super::{Destination, Outbox, Progress, TunnelProtocol};
use bytes::{Buf, BytesMut};
use std::net::{IpAddr, Ipv4Addr};

const PROTOCOL: TunnelProtocol = TunnelProtocol::Socks4;

/// SOCKS4a marks "the proxy resolves" with the address 0.0.0.x, x != 0.
const SOCKS4A_MARKER: Ipv4Addr = Ipv4Addr::new(0, 0, 0, 1);

const REPLY_LEN: usize = 8;
const GRANTED: u8 = 90;

/// The SOCKS4 handshake, or SOCKS4a when given a name; see the
/// [module docs](super) for the loop that drives it.
///
/// ```
/// use bytes::BytesMut;
/// use floodgate_proto::tunnel::{Destination, Progress, Socks4Connect, TunnelError};
///
/// let mut connect = Socks4Connect::new(&Destination::Name("localhost".into()), 80, "")?;
/// assert_eq!(connect.output(), b"\x04\x01\x00\x50\x00\x00\x00\x01\x00localhost\x00");
/// connect.consume_output(connect.output().len());
/// assert_eq!(connect.read_limit(), 8);
/// let mut from_proxy = BytesMut::from(&[0, 90, 0, 0, 0, 0, 0, 0][..]);
/// assert_eq!(connect.receive(&mut from_proxy)?, Progress::Done);
/// # Ok::<(), TunnelError>(())
/// ```
#[derive(Debug)]
pub struct Socks4Connect {
    out: Outbox,
    state: State,
}

#[derive(Debug)]
enum State {
    /// `seen` bytes of the reply are in the driver's buffer.
    Reading {
        seen: usize,
    },
    Done,
    Failed(TunnelError),
}

impl Socks4Connect {
    /// The request for a tunnel to `target:port`: SOCKS4 for an IPv4
    /// address, SOCKS4a for a name. `user_id` may be empty.
    ///
    /// # Errors
    ///
    /// [`TunnelError::Unsupported`] for an IPv6 address, an empty name,
    /// or a NUL byte in the name or the user id.
    pub fn new(
        target: &Destination,
        port: u16,
        user_id: &str,
    ) -> Result<Socks4Connect, TunnelError> {
        let unsupported = |u| Err(TunnelError::Unsupported(u));
        if user_id.contains('\0') {
            return unsupported(Unsupported::UserIdNul);
        }
        let (ip, name) = match target {
            Destination::Ip(IpAddr::V4(ip)) => (*ip, None),
            Destination::Ip(IpAddr::V6(ip)) => {
                return unsupported(Unsupported::Ipv6OverSocks4(*ip))
            }
            Destination::Name(name) if name.contains('\0') || name.is_empty() => {
                return unsupported(Unsupported::HostName(name.clone()))
            }
            Destination::Name(name) => (SOCKS4A_MARKER, Some(name.as_str())),
        };
        let mut request = Vec::with_capacity(10 + user_id.len() + name.map_or(0, |n| n.len() + 1));
        request.extend_from_slice(&[4, 1]);
        request.extend_from_slice(&port.to_be_bytes());
        request.extend_from_slice(&ip.octets());
        request.extend_from_slice(user_id.as_bytes());
        request.push(0);
        if let Some(name) = name {
            request.extend_from_slice(name.as_bytes());
            request.push(0);
        }
        Ok(Socks4Connect {
            out: Outbox::new(request),
            state: State::Reading { seen: 0 },
        })
    }

    /// See [`Tunnel::output`](super::Tunnel::output).
    pub fn output(&self) -> &[u8] {
        self.out.pending()
    }

    /// See [`Tunnel::consume_output`](super::Tunnel::consume_output).
    pub fn consume_output(&mut self, n: usize) {
        self.out.consume(n);
    }

    /// See [`Tunnel::read_limit`](super::Tunnel::read_limit): what is
    /// missing of the 8-byte reply.
    pub fn read_limit(&self) -> usize {
        match self.state {
            State::Reading { seen } => REPLY_LEN.saturating_sub(seen),
            State::Done | State::Failed(_) => 0,
        }
    }

    /// See [`Tunnel::receive`](super::Tunnel::receive).
    ///
    /// # Errors
    ///
    /// [`TunnelError::Socks4Refused`] for a reply other than 90,
    /// [`TunnelError::Malformed`] for a version byte other than 0.
    pub fn receive(&mut self, from_proxy: &mut BytesMut) -> Result<Progress, TunnelError> {
        match &self.state {
            State::Reading { .. } => {}
            State::Done => return Ok(Progress::Done),
            State::Failed(e) => return Err(e.clone()),
        }
        let result = check_reply(from_proxy);
        self.state = match &result {
            Ok(Progress::Done) => {
                from_proxy.advance(REPLY_LEN);
                State::Done
            }
            Ok(Progress::NeedMore) => State::Reading {
                seen: from_proxy.len(),
            },
            Err(e) => State::Failed(e.clone()),
        };
        result
    }
}

/// Checks as much of the reply as has arrived, so that an answer of
/// another protocol fails at its first byte.
fn check_reply(reply: &[u8]) -> Result<Progress, TunnelError> {
    if let Some(&version) = reply.first() {
        if version != 0 {
            return Err(TunnelError::malformed(
                PROTOCOL,
                Malformed::Version {
                    answer: Answer::Reply,
                    got: version,
                    expected: 0,
                },
            ));
        }
    }
    match reply.get(1) {
        Some(&code) if code != GRANTED => Err(TunnelError::Socks4Refused {
            reply: Socks4Reply::from_code(code),
        }),
        _ if reply.len() < REPLY_LEN => Ok(Progress::NeedMore),
        _ => Ok(Progress::Done),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(dest: Destination, port: u16, user_id: &str) -> Result<Vec<u8>, TunnelError> {
        Socks4Connect::new(&dest, port, user_id).map(|c| c.output().to_vec())
    }

    #[test]
    fn socks4_requests_carry_the_ipv4_address_and_user_id() {
        let dest = || Destination::from_host("127.0.0.1");
        assert_eq!(
            request(dest(), 9001, "alice").unwrap(),
            [&[4, 1, 0x23, 0x29, 127, 0, 0, 1][..], b"alice", &[0]].concat()
        );
        assert_eq!(
            request(dest(), 80, "").unwrap(),
            [4, 1, 0, 80, 127, 0, 0, 1, 0]
        );
    }

    #[test]
    fn socks4a_requests_carry_the_name_after_the_marker_address() {
        assert_eq!(
            request(Destination::Name("localhost".into()), 443, "").unwrap(),
            [&[4, 1, 1, 0xbb, 0, 0, 0, 1, 0][..], b"localhost", &[0]].concat()
        );
    }

    #[test]
    fn ipv6_empty_names_and_nul_bytes_cannot_be_sent() {
        assert_eq!(
            request(Destination::from_host("::1"), 1, "").unwrap_err(),
            TunnelError::Unsupported(Unsupported::Ipv6OverSocks4("::1".parse().unwrap()))
        );
        let v4 = || Destination::from_host("1.2.3.4");
        assert_eq!(
            request(v4(), 1, "a\0b").unwrap_err(),
            TunnelError::Unsupported(Unsupported::UserIdNul)
        );
        for bad in ["", "a\0b"] {
            assert!(matches!(
                request(Destination::Name(bad.into()), 1, ""),
                Err(TunnelError::Unsupported(Unsupported::HostName(_)))
            ));
        }
    }

    #[test]
    fn a_granted_reply_opens_the_tunnel_in_any_chunks() {
        let reply = [0, 90, 0, 0, 0, 0, 0, 0, b'S'];
        let mut c = Socks4Connect::new(&Destination::from_host("10.0.0.1"), 80, "").unwrap();
        c.consume_output(usize::MAX);
        let mut buf = BytesMut::new();
        for (i, byte) in reply[..8].iter().enumerate() {
            assert_eq!(c.read_limit(), 8 - i);
            buf.extend_from_slice(&[*byte]);
            let expected = if i == 7 {
                Progress::Done
            } else {
                Progress::NeedMore
            };
            assert_eq!(c.receive(&mut buf).unwrap(), expected);
        }
        assert_eq!(c.read_limit(), 0);
        buf.extend_from_slice(&reply[8..]);
        assert_eq!(&buf[..], b"S");
    }

    #[test]
    fn each_refusal_is_typed_with_its_meaning() {
        for (code, reply, text) in [
            (91, Socks4Reply::Rejected, "request rejected or failed"),
            (
                92,
                Socks4Reply::IdentdUnreachable,
                "request rejected because the proxy cannot reach the client's identd",
            ),
            (
                93,
                Socks4Reply::IdentdMismatch,
                "request rejected because identd reported a different user id",
            ),
            (7, Socks4Reply::Other(7), "unknown reply code"),
        ] {
            let mut c = Socks4Connect::new(&Destination::from_host("10.0.0.1"), 80, "").unwrap();
            // Refused as soon as the code arrives.
            let err = c.receive(&mut BytesMut::from(&[0, code][..])).unwrap_err();
            assert_eq!(err, TunnelError::Socks4Refused { reply });
            assert_eq!(reply.code(), code);
            assert_eq!(err.to_string(), format!("refused: {text} (reply {code})"));
            assert_eq!(c.read_limit(), 0);
        }
    }

    #[test]
    fn answers_of_other_protocols_are_malformed_at_the_first_byte() {
        // A SOCKS5 proxy answering a SOCKS4 request, or an HTTP one.
        for answer in [&b"H"[..], &[5, 0xff]] {
            let mut c = Socks4Connect::new(&Destination::from_host("10.0.0.1"), 80, "").unwrap();
            let err = c.receive(&mut BytesMut::from(answer)).unwrap_err();
            assert!(
                matches!(
                    err,
                    TunnelError::Malformed {
                        protocol: TunnelProtocol::Socks4,
                        detail: Malformed::Version { expected: 0, .. }
                    }
                ),
                "{err}"
            );
            assert!(
                err.to_string().contains("the reply's version byte is"),
                "{err}"
            );
        }
    }
}
