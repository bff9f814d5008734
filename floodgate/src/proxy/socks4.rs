//! SOCKS4 and SOCKS4a `CONNECT`.
//!
//! Request: `VN=4, CD=1, DSTPORT (2), DSTIP (4), USERID, NUL`, and for
//! SOCKS4a, when the proxy resolves, `DSTIP = 0.0.0.1` followed by the
//! host name and a NUL. Reply: 8 bytes, `VN=0, CD, port, ip`, where `CD`
//! 90 grants the request. (The protocol is described in "SOCKS: A protocol
//! for TCP proxy across firewalls" and "SOCKS 4A: A Simple Extension to
//! SOCKS 4 Protocol", both by Ying-Da Lee.)

use super::{dest_for, Dest, Handshake, Proxy, ProxyKind};
use crate::connect::Target;
use crate::error::ProxyError;
use std::net::{IpAddr, Ipv4Addr};

const PROTOCOL: &str = "SOCKS4";

/// SOCKS4a marks "the proxy resolves" with the address 0.0.0.x, x != 0.
const SOCKS4A_MARKER: Ipv4Addr = Ipv4Addr::new(0, 0, 0, 1);

pub(super) fn tunnel(
    io: &mut Handshake<'_>,
    proxy: &Proxy,
    target: &Target,
) -> Result<(), ProxyError> {
    let dest = dest_for(target, proxy.kind() == ProxyKind::Socks4a, true)?;
    let request = connect_request(&dest, target.port, proxy.username().unwrap_or(""))?;
    io.write_all(&request)?;
    let mut reply = [0u8; 8];
    io.read_exact(&mut reply, PROTOCOL)?;
    check_reply(&reply)
}

pub(super) fn connect_request(
    dest: &Dest,
    port: u16,
    user_id: &str,
) -> Result<Vec<u8>, ProxyError> {
    if user_id.contains('\0') {
        return Err(ProxyError::Unsupported(
            "the SOCKS4 user id contains a NUL byte".into(),
        ));
    }
    let (ip, name) = match dest {
        Dest::Ip(IpAddr::V4(ip)) => (*ip, None),
        Dest::Ip(IpAddr::V6(ip)) => {
            return Err(ProxyError::Unsupported(format!(
                "SOCKS4 carries IPv4 addresses only, not {ip}; use socks5://"
            )))
        }
        Dest::Name(name) if name.contains('\0') || name.is_empty() => {
            return Err(ProxyError::Unsupported(format!(
                "the host name {name:?} cannot be sent"
            )))
        }
        Dest::Name(name) => (SOCKS4A_MARKER, Some(name.as_str())),
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
    Ok(request)
}

pub(super) fn check_reply(reply: &[u8; 8]) -> Result<(), ProxyError> {
    if reply[0] != 0 {
        return Err(ProxyError::Malformed {
            protocol: PROTOCOL,
            detail: format!("the reply's version byte is {} (expected 0)", reply[0]),
        });
    }
    match reply[1] {
        90 => Ok(()),
        code => Err(ProxyError::Socks4Refused { code }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socks4_requests_carry_the_ipv4_address_and_user_id() {
        let dest = Dest::Ip("127.0.0.1".parse().unwrap());
        assert_eq!(
            connect_request(&dest, 9001, "alice").unwrap(),
            [&[4, 1, 0x23, 0x29, 127, 0, 0, 1][..], b"alice", &[0]].concat()
        );
        assert_eq!(
            connect_request(&dest, 80, "").unwrap(),
            [4, 1, 0, 80, 127, 0, 0, 1, 0]
        );
    }

    #[test]
    fn socks4a_requests_carry_the_name_after_the_marker_address() {
        let dest = Dest::Name("localhost".into());
        assert_eq!(
            connect_request(&dest, 443, "").unwrap(),
            [&[4, 1, 1, 0xbb, 0, 0, 0, 1, 0][..], b"localhost", &[0]].concat()
        );
    }

    #[test]
    fn ipv6_and_nul_bytes_cannot_be_sent() {
        let v6 = Dest::Ip("::1".parse().unwrap());
        assert!(matches!(
            connect_request(&v6, 1, ""),
            Err(ProxyError::Unsupported(_))
        ));
        let dest = Dest::Ip("1.2.3.4".parse().unwrap());
        assert!(connect_request(&dest, 1, "a\0b").is_err());
    }

    #[test]
    fn replies_are_granted_refused_or_malformed() {
        assert!(check_reply(&[0, 90, 0, 0, 0, 0, 0, 0]).is_ok());
        let err = check_reply(&[0, 91, 0, 0, 0, 0, 0, 0]).unwrap_err();
        assert!(matches!(err, ProxyError::Socks4Refused { code: 91 }));
        assert_eq!(
            err.to_string(),
            "refused: request rejected or failed (reply 91)"
        );
        // A SOCKS5 proxy answering a SOCKS4 request, or an HTTP one.
        assert!(matches!(
            check_reply(b"HTTP/1.1"),
            Err(ProxyError::Malformed { .. })
        ));
        assert!(matches!(
            check_reply(&[5, 0xff, 0, 0, 0, 0, 0, 0]),
            Err(ProxyError::Malformed { .. })
        ));
    }
}
