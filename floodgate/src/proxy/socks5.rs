//! SOCKS5 `CONNECT` (RFC 1928) with no authentication or user name and
//! password (RFC 1929).
//!
//! Greeting `05 N METHODS...` (method 00, and 02 when credentials are
//! given), answer `05 METHOD`; for method 02 the sub-negotiation
//! `01 ULEN USER PLEN PASS`, answer `01 STATUS`; then the request
//! `05 01 00 ATYP ADDR PORT` (ATYP 1 IPv4, 3 name, 4 IPv6), answer
//! `05 REP 00 ATYP ADDR PORT`, whose length the ATYP announces, so every
//! read has a known, small size.

use super::{dest_for, Dest, Handshake, Proxy, ProxyKind};
use crate::connect::Target;
use crate::error::ProxyError;
use std::net::IpAddr;

const PROTOCOL: &str = "SOCKS5";
const NO_AUTH: u8 = 0x00;
const USERNAME_PASSWORD: u8 = 0x02;
const NO_ACCEPTABLE: u8 = 0xff;

pub(super) fn tunnel(
    io: &mut Handshake<'_>,
    proxy: &Proxy,
    target: &Target,
) -> Result<(), ProxyError> {
    let credentials = proxy
        .username()
        .map(|user| (user, proxy.password().unwrap_or("")));
    // Check what can be sent before sending anything.
    let dest = dest_for(target, proxy.kind() == ProxyKind::Socks5h, false)?;
    let request = connect_request(&dest, target.port)?;
    let auth = credentials.map(|(u, p)| auth_request(u, p)).transpose()?;

    io.write_all(&greeting(credentials.is_some()))?;
    let mut answer = [0u8; 2];
    io.read_exact(&mut answer, PROTOCOL)?;
    if check_method(&answer, credentials.is_some())? == USERNAME_PASSWORD {
        // check_method accepts 02 only when credentials were offered.
        let auth = auth.unwrap_or_default();
        io.write_all(&auth)?;
        let mut status = [0u8; 2];
        io.read_exact(&mut status, PROTOCOL)?;
        check_auth_reply(&status)?;
    }
    io.write_all(&request)?;
    let mut head = [0u8; 4];
    io.read_exact(&mut head, PROTOCOL)?;
    let rest = check_reply_head(&head)?;
    let mut bound = [0u8; 1 + 255 + 2];
    if head[3] == 3 {
        // A name: its length comes first.
        io.read_exact(&mut bound[..1], PROTOCOL)?;
        let len = usize::from(bound[0]);
        io.read_exact(&mut bound[1..1 + len + 2], PROTOCOL)?;
    } else {
        io.read_exact(&mut bound[..rest], PROTOCOL)?;
    }
    Ok(())
}

pub(super) fn greeting(with_credentials: bool) -> Vec<u8> {
    if with_credentials {
        vec![5, 2, NO_AUTH, USERNAME_PASSWORD]
    } else {
        vec![5, 1, NO_AUTH]
    }
}

/// The method the proxy chose, if it is one we offered.
pub(super) fn check_method(answer: &[u8; 2], offered_credentials: bool) -> Result<u8, ProxyError> {
    if answer[0] != 5 {
        return Err(ProxyError::Malformed {
            protocol: PROTOCOL,
            detail: format!(
                "the method answer's version byte is {} (expected 5)",
                answer[0]
            ),
        });
    }
    let offered = if offered_credentials {
        "none, username/password"
    } else {
        "none"
    };
    match answer[1] {
        NO_AUTH => Ok(NO_AUTH),
        USERNAME_PASSWORD if offered_credentials => Ok(USERNAME_PASSWORD),
        NO_ACCEPTABLE => Err(ProxyError::NoAcceptableAuth { offered }),
        other => Err(ProxyError::Malformed {
            protocol: PROTOCOL,
            detail: format!(
                "the proxy chose method {other:#04x}, which was not offered ({offered})"
            ),
        }),
    }
}

pub(super) fn auth_request(user: &str, password: &str) -> Result<Vec<u8>, ProxyError> {
    let (Ok(ulen), Ok(plen)) = (u8::try_from(user.len()), u8::try_from(password.len())) else {
        return Err(ProxyError::Unsupported(
            "SOCKS5 user names and passwords are limited to 255 bytes".into(),
        ));
    };
    let mut request = Vec::with_capacity(3 + user.len() + password.len());
    request.extend_from_slice(&[1, ulen]);
    request.extend_from_slice(user.as_bytes());
    request.push(plen);
    request.extend_from_slice(password.as_bytes());
    Ok(request)
}

pub(super) fn check_auth_reply(reply: &[u8; 2]) -> Result<(), ProxyError> {
    if reply[0] != 1 {
        return Err(ProxyError::Malformed {
            protocol: PROTOCOL,
            detail: format!(
                "the authentication answer's version byte is {} (expected 1)",
                reply[0]
            ),
        });
    }
    match reply[1] {
        0 => Ok(()),
        status => Err(ProxyError::AuthFailed { status }),
    }
}

pub(super) fn connect_request(dest: &Dest, port: u16) -> Result<Vec<u8>, ProxyError> {
    let mut request = vec![5, 1, 0];
    match dest {
        Dest::Ip(IpAddr::V4(ip)) => {
            request.push(1);
            request.extend_from_slice(&ip.octets());
        }
        Dest::Ip(IpAddr::V6(ip)) => {
            request.push(4);
            request.extend_from_slice(&ip.octets());
        }
        Dest::Name(name) => {
            let len = u8::try_from(name.len())
                .ok()
                .filter(|l| *l > 0)
                .ok_or_else(|| {
                    ProxyError::Unsupported(format!(
                        "SOCKS5 carries host names of 1 to 255 bytes; {:?} has {}",
                        name,
                        name.len()
                    ))
                })?;
            request.push(3);
            request.push(len);
            request.extend_from_slice(name.as_bytes());
        }
    }
    request.extend_from_slice(&port.to_be_bytes());
    Ok(request)
}

/// Checks `VER REP RSV ATYP`; returns how many bytes of the bound address
/// and port follow for ATYP 1 and 4 (for a name, the caller reads the
/// length byte first).
pub(super) fn check_reply_head(head: &[u8; 4]) -> Result<usize, ProxyError> {
    if head[0] != 5 {
        return Err(ProxyError::Malformed {
            protocol: PROTOCOL,
            detail: format!("the reply's version byte is {} (expected 5)", head[0]),
        });
    }
    if head[1] != 0 {
        return Err(ProxyError::Socks5Refused { code: head[1] });
    }
    match head[3] {
        1 => Ok(4 + 2),
        3 => Ok(0),
        4 => Ok(16 + 2),
        other => Err(ProxyError::Malformed {
            protocol: PROTOCOL,
            detail: format!("the reply's address type is {other} (expected 1, 3 or 4)"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_greeting_offers_username_password_only_with_credentials() {
        assert_eq!(greeting(false), [5, 1, 0]);
        assert_eq!(greeting(true), [5, 2, 0, 2]);
    }

    #[test]
    fn method_answers_are_checked_against_what_was_offered() {
        assert_eq!(check_method(&[5, 0], false).unwrap(), 0);
        assert_eq!(check_method(&[5, 2], true).unwrap(), 2);
        assert!(matches!(
            check_method(&[5, 2], false),
            Err(ProxyError::Malformed { .. })
        ));
        let err = check_method(&[5, 0xff], false).unwrap_err();
        assert!(matches!(
            err,
            ProxyError::NoAcceptableAuth { offered: "none" }
        ));
        assert!(err.to_string().contains("user name and password"), "{err}");
        assert!(matches!(
            check_method(&[4, 0], false),
            Err(ProxyError::Malformed { .. })
        ));
        assert!(matches!(
            check_method(b"HT", false),
            Err(ProxyError::Malformed { .. })
        ));
    }

    #[test]
    fn the_rfc_1929_request_and_its_answers() {
        assert_eq!(
            auth_request("bob", "pw").unwrap(),
            [1, 3, b'b', b'o', b'b', 2, b'p', b'w']
        );
        assert_eq!(auth_request("u", "").unwrap(), [1, 1, b'u', 0]);
        assert!(auth_request(&"u".repeat(256), "p").is_err());
        assert!(check_auth_reply(&[1, 0]).is_ok());
        assert!(matches!(
            check_auth_reply(&[1, 1]),
            Err(ProxyError::AuthFailed { status: 1 })
        ));
        // Some servers answer with version 5; RFC 1929 says 1.
        assert!(matches!(
            check_auth_reply(&[5, 0]),
            Err(ProxyError::Malformed { .. })
        ));
    }

    #[test]
    fn requests_for_ipv4_ipv6_and_names() {
        let v4 = Dest::Ip("127.0.0.1".parse().unwrap());
        assert_eq!(
            connect_request(&v4, 9001).unwrap(),
            [5, 1, 0, 1, 127, 0, 0, 1, 0x23, 0x29]
        );
        let v6 = Dest::Ip("::1".parse().unwrap());
        let mut expected = vec![5, 1, 0, 4];
        expected.extend_from_slice(&[0; 15]);
        expected.extend_from_slice(&[1, 0, 80]);
        assert_eq!(connect_request(&v6, 80).unwrap(), expected);
        let name = Dest::Name("localhost".into());
        assert_eq!(
            connect_request(&name, 443).unwrap(),
            [&[5, 1, 0, 3, 9][..], b"localhost", &[1, 0xbb]].concat()
        );
        assert!(connect_request(&Dest::Name("a".repeat(256)), 1).is_err());
    }

    #[test]
    fn reply_heads_give_the_remaining_length_or_a_typed_refusal() {
        assert_eq!(check_reply_head(&[5, 0, 0, 1]).unwrap(), 6);
        assert_eq!(check_reply_head(&[5, 0, 0, 4]).unwrap(), 18);
        assert_eq!(check_reply_head(&[5, 0, 0, 3]).unwrap(), 0);
        let err = check_reply_head(&[5, 5, 0, 1]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "refused: connection refused by destination host (reply 5)"
        );
        assert!(matches!(
            check_reply_head(&[5, 0, 0, 9]),
            Err(ProxyError::Malformed { .. })
        ));
        assert!(matches!(
            check_reply_head(&[0, 90, 0, 0]),
            Err(ProxyError::Malformed { .. })
        ));
        assert!(check_reply_head(&[5, 0xee, 0, 1])
            .unwrap_err()
            .to_string()
            .contains("unknown"));
    }
}
