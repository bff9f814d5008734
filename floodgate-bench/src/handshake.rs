//! The few pieces of the RFC 6455 opening handshake the benchmark does by
//! hand: the server side (read the upgrade request, answer `101` with the
//! right `Sec-WebSocket-Accept`) shared by the streaming and the echo
//! servers, and a minimal client handshake for the runners that take an
//! already-upgraded stream (raw TCP, fastwebsockets).

use std::io::{self, Read, Write};
use std::net::TcpStream;

use base64::Engine as _;
use sha1::{Digest, Sha1};

/// The GUID appended to the key (RFC 6455, section 1.3).
pub const WS_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// A fixed client key. A real client must pick a random one; for a loopback
/// benchmark against our own server a constant is enough.
pub const CLIENT_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// `base64(sha1(key + GUID))`.
pub fn accept_key(key: &str) -> String {
    let mut h = Sha1::new();
    h.update(key.as_bytes());
    h.update(WS_GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(h.finalize())
}

/// Splits `ws://host:port/path` into (`host:port`, `/path`).
pub fn split_url(url: &str) -> io::Result<(&str, &str)> {
    let rest = url
        .strip_prefix("ws://")
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "only ws:// URLs"))?;
    Ok(match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    })
}

/// [`client_connect`], then the socket as a tokio `TcpStream` (call it
/// inside a runtime): for the async libraries that take a connected
/// stream after a handshake done elsewhere (fastwebsockets), and the
/// async raw TCP ceilings.
pub fn client_connect_tokio(url: &str) -> io::Result<tokio::net::TcpStream> {
    let stream = client_connect(url)?;
    stream.set_nonblocking(true)?;
    tokio::net::TcpStream::from_std(stream)
}

/// Connects and performs the client side of the opening handshake on a
/// blocking socket.
///
/// The response is consumed with `peek` + exact reads, so not one byte past
/// the header's `\r\n\r\n` is taken from the socket: the stream can be
/// handed as-is to a library that starts reading frames from it.
pub fn client_connect(url: &str) -> io::Result<TcpStream> {
    let (authority, path) = split_url(url)?;
    let mut stream = TcpStream::connect(authority)?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: {CLIENT_KEY}\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(request.as_bytes())?;

    let head = read_response_head(&mut stream)?;
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(&head) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return Err(bad("malformed handshake response")),
    }
    if resp.code != Some(101) {
        return Err(bad("server did not answer 101"));
    }
    let expected = accept_key(CLIENT_KEY);
    let ok = resp.headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case("sec-websocket-accept") && h.value == expected.as_bytes()
    });
    if !ok {
        return Err(bad("wrong Sec-WebSocket-Accept"));
    }
    Ok(stream)
}

/// Reads exactly the HTTP response head (through `\r\n\r\n`) and nothing more.
fn read_response_head(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(256);
    let mut peek = [0u8; 1024];
    loop {
        let n = stream.peek(&mut peek)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "EOF in handshake",
            ));
        }
        // Search the consumed bytes plus the peeked ones; the terminator may
        // straddle the boundary.
        let from = head.len().saturating_sub(3);
        let mut joined = head[from..].to_vec();
        joined.extend_from_slice(&peek[..n]);
        if let Some(pos) = find(&joined, b"\r\n\r\n") {
            let take = pos + 4 - (head.len() - from);
            let start = head.len();
            head.resize(start + take, 0);
            stream.read_exact(&mut head[start..])?;
            return Ok(head);
        }
        if head.len() + n > 16 * 1024 {
            return Err(bad("handshake response too long"));
        }
        let start = head.len();
        head.resize(start + n, 0);
        stream.read_exact(&mut head[start..])?;
    }
}

/// The server side: reads the upgrade request until `\r\n\r\n` (httparse)
/// and answers `101 Switching Protocols`. Returns the bytes read past the
/// request head (none from a client that waits for the answer, as every
/// client does).
pub fn server_accept(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut req = Vec::with_capacity(1024);
    let mut buf = [0u8; 4096];
    let head_end = loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "EOF before request end",
            ));
        }
        req.extend_from_slice(&buf[..n]);
        if let Some(p) = find(&req, b"\r\n\r\n") {
            break p + 4;
        }
        if req.len() > 64 * 1024 {
            return Err(bad("request too long"));
        }
    };
    let key = {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut parsed = httparse::Request::new(&mut headers);
        match parsed.parse(&req[..head_end]) {
            Ok(httparse::Status::Complete(_)) => {}
            _ => return Err(bad("bad request")),
        }
        let get = |name: &str| {
            parsed
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| String::from_utf8_lossy(h.value).trim().to_string())
        };
        if !get("upgrade").is_some_and(|v| v.eq_ignore_ascii_case("websocket")) {
            return Err(bad("not an upgrade"));
        }
        get("sec-websocket-key").ok_or_else(|| bad("no Sec-WebSocket-Key"))?
    };
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n\r\n",
        accept_key(&key)
    );
    stream.write_all(response.as_bytes())?;
    Ok(req.split_off(head_end))
}

pub(crate) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn bad(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc_example_accept() {
        assert_eq!(
            super::accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }
}
