//! HTTP `CONNECT` (RFC 9110 section 9.3.6): ask the proxy for a tunnel to
//! `host:port`, with `Proxy-Authorization: Basic` when credentials are
//! given, and read its answer head.
//!
//! The answer is read one byte at a time up to the blank line: after it
//! the bytes are the server's, so nothing past the head may be consumed,
//! and a head is a few hundred bytes, so the extra system calls cost
//! nothing that matters. The head is limited to `max_handshake_size`.

use super::{host_port, Handshake, Proxy};
use crate::connect::Target;
use crate::error::ProxyError;
use base64::Engine as _;

const PROTOCOL: &str = "HTTP";

pub(super) fn tunnel(
    io: &mut Handshake<'_>,
    proxy: &Proxy,
    target: &Target,
    limit: usize,
) -> Result<(), ProxyError> {
    let credentials = proxy
        .username()
        .map(|user| (user, proxy.password().unwrap_or("")));
    io.write_all(&connect_request(&target.host, target.port, credentials))?;
    let mut head = Vec::with_capacity(256);
    loop {
        if head.len() >= limit {
            return Err(ProxyError::HeadTooLarge { limit });
        }
        let mut byte = [0u8; 1];
        io.read_exact(&mut byte, PROTOCOL)?;
        head.push(byte[0]);
        if head.len() == 5 && !head.eq_ignore_ascii_case(b"HTTP/") {
            return Err(ProxyError::Malformed {
                protocol: PROTOCOL,
                detail: format!(
                    "the answer starts with {:?}, not HTTP/",
                    String::from_utf8_lossy(&head)
                ),
            });
        }
        if head.ends_with(b"\r\n\r\n") || head.ends_with(b"\n\n") {
            return check_response(&head);
        }
    }
}

/// `CONNECT host:port HTTP/1.1` with `Host` and, given credentials,
/// `Proxy-Authorization: Basic base64(user:password)`.
pub(super) fn connect_request(host: &str, port: u16, credentials: Option<(&str, &str)>) -> Vec<u8> {
    let authority = host_port(host, port);
    let mut request = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
    if let Some((user, password)) = credentials {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        request.push_str(&format!("Proxy-Authorization: Basic {token}\r\n"));
    }
    request.push_str("\r\n");
    request.into_bytes()
}

/// Checks a complete response head: 2xx opens the tunnel.
pub(super) fn check_response(head: &[u8]) -> Result<(), ProxyError> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => {
            return Err(ProxyError::Malformed {
                protocol: PROTOCOL,
                detail: "the response head is incomplete".into(),
            })
        }
        Err(e) => {
            return Err(ProxyError::Malformed {
                protocol: PROTOCOL,
                detail: format!("{e} in the response head"),
            })
        }
    }
    let status = response.code.unwrap_or(0);
    if (200..300).contains(&status) {
        Ok(())
    } else {
        let reason: String = response
            .reason
            .unwrap_or("")
            .chars()
            .filter(|c| !c.is_control())
            .take(100)
            .collect();
        Err(ProxyError::HttpStatus { status, reason })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_names_the_target_and_carries_basic_credentials() {
        assert_eq!(
            connect_request("example.com", 443, None),
            b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"
        );
        // "Aladdin:open sesame", RFC 7617's example.
        assert_eq!(
            String::from_utf8(connect_request(
                "::1",
                9001,
                Some(("Aladdin", "open sesame"))
            ))
            .unwrap(),
            "CONNECT [::1]:9001 HTTP/1.1\r\nHost: [::1]:9001\r\n\
             Proxy-Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\n\r\n"
        );
    }

    #[test]
    fn any_2xx_opens_the_tunnel_and_other_statuses_are_typed() {
        assert!(check_response(b"HTTP/1.0 200 Connection established\r\n\r\n").is_ok());
        assert!(check_response(b"HTTP/1.1 204 OK\r\nProxy-Agent: x\r\n\r\n").is_ok());
        let err = check_response(
            b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\n\r\n",
        )
        .unwrap_err();
        assert!(
            matches!(&err, ProxyError::HttpStatus { status: 407, reason } if reason == "Proxy Authentication Required")
        );
        assert_eq!(err.http_status(), Some(407));
        assert!(err.to_string().contains("credentials"), "{err}");
        let err = check_response(b"HTTP/1.1 403 Forbidden\r\n\r\n").unwrap_err();
        assert!(err.to_string().contains("ConnectPort"), "{err}");
    }

    #[test]
    fn garbage_heads_are_malformed_not_panics() {
        for head in [
            &b"HTTP/1.1 abc\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nbad header\r\n\r\n",
            b"\xff\xfe\r\n\r\n",
        ] {
            assert!(
                matches!(check_response(head), Err(ProxyError::Malformed { .. })),
                "{head:?}"
            );
        }
    }
}
