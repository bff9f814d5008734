//! The opening handshake (RFC 6455 §4): the client's upgrade request, the
//! check of the server's answer, and (for floodgate's own test and demo
//! server) the server side of both.
//!
//! Parsing is `httparse`'s; this module adds the WebSocket rules on top and
//! a hard limit on how much of a response head is read, so a server that
//! answers with endless headers costs a bounded amount of memory.

use crate::deflate::{DeflateConfig, PerMessageDeflate};
use crate::error::HandshakeError;
use base64::Engine;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use sha1::{Digest, Sha1};

/// The GUID of RFC 6455 §1.3, appended to the key to derive the accept value.
const WEBSOCKET_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Default limit on the size of a handshake response head.
pub const DEFAULT_MAX_HEAD_SIZE: usize = 64 << 10;
/// Limit on the number of header lines in a handshake head.
pub const MAX_HEADERS: usize = 128;
/// How much of a non-101 response body is kept for the error.
pub const MAX_ERROR_BODY: usize = 4 << 10;

/// The `Sec-WebSocket-Accept` value for a `Sec-WebSocket-Key`.
///
/// ```
/// // The example of RFC 6455 §1.3.
/// assert_eq!(
///     floodgate_proto::handshake::accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
///     "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
/// );
/// ```
pub fn accept_key(key: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(key.as_bytes());
    sha.update(WEBSOCKET_GUID);
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}

/// A fresh `Sec-WebSocket-Key`: 16 bytes from the thread's CSPRNG, base64.
pub fn generate_key() -> String {
    let nonce: [u8; 16] = rand::random();
    base64::engine::general_purpose::STANDARD.encode(nonce)
}

/// What the client's upgrade request says, besides the fixed headers.
#[derive(Debug, Clone, Default)]
pub struct ClientRequest {
    /// The `Host` header value (host, and port when not the scheme's default).
    pub host: String,
    /// The request target: path and query, starting with `/`.
    pub path: String,
    /// The `Origin` header, if any.
    pub origin: Option<String>,
    /// Subprotocols offered, best first.
    pub subprotocols: Vec<String>,
    /// The `Cookie` header, if any.
    pub cookie: Option<String>,
    /// More headers, sent as given after the standard ones.
    pub headers: HeaderMap,
    /// Offer permessage-deflate with this configuration (`None`: offer no
    /// extension).
    pub deflate: Option<DeflateConfig>,
}

/// A handshake head as parsed: status, reason phrase and headers.
#[derive(Debug, Clone)]
pub struct ResponseHead {
    /// The status code.
    pub status: StatusCode,
    /// The reason phrase as the server sent it (`"Forbidden"`, or its own
    /// words; may be empty).
    pub reason: String,
    /// The headers.
    pub headers: HeaderMap,
}

impl ResponseHead {
    /// How many body bytes to wait for before reporting a non-101 answer:
    /// the `Content-Length`, capped at [`MAX_ERROR_BODY`] (0 if absent, so
    /// only what has already arrived is shown).
    pub fn error_body_wanted(&self) -> usize {
        self.headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<usize>().ok())
            .map_or(0, |n| n.min(MAX_ERROR_BODY))
    }
}

/// An accepted upgrade.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status (101).
    pub status: StatusCode,
    /// All response headers.
    pub headers: HeaderMap,
    /// The subprotocol the server selected, if any.
    pub subprotocol: Option<String>,
    /// permessage-deflate as negotiated, when offered and accepted: give it
    /// to [`Protocol::set_deflate`](crate::Protocol::set_deflate).
    pub deflate: Option<PerMessageDeflate>,
}

/// The client side of one opening handshake.
///
/// ```
/// use floodgate_proto::handshake::{accept_key, ClientHandshake, ClientRequest, parse_response_head};
///
/// let request = ClientRequest { host: "example.com".into(), path: "/chat".into(), ..Default::default() };
/// let (handshake, bytes) = ClientHandshake::new(&request).unwrap();
/// assert!(bytes.starts_with(b"GET /chat HTTP/1.1\r\n"));
///
/// let answer = format!(
///     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
///     accept_key(handshake.key()),
/// );
/// let (head, used) = parse_response_head(answer.as_bytes(), 64 << 10).unwrap().unwrap();
/// assert_eq!(used, answer.len());
/// let response = handshake.accept(head, &[]).unwrap();
/// assert_eq!(response.subprotocol, None);
/// ```
#[derive(Debug, Clone)]
pub struct ClientHandshake {
    key: String,
    subprotocols: Vec<String>,
    deflate: Option<DeflateConfig>,
}

impl ClientHandshake {
    /// Builds the request for `request` with a fresh key, and returns the
    /// handshake state and the bytes to send.
    ///
    /// # Errors
    ///
    /// [`HandshakeError::InvalidRequestHeader`] when the host, path, origin,
    /// cookie or a subprotocol contains characters that cannot go in an
    /// HTTP header (control characters, or separators in a subprotocol);
    /// [`HandshakeError::InvalidDeflateConfig`] for a deflate
    /// configuration out of range.
    pub fn new(request: &ClientRequest) -> Result<(ClientHandshake, Vec<u8>), HandshakeError> {
        Self::with_key(request, generate_key())
    }

    /// As [`new`](Self::new) with a chosen key: for tests.
    ///
    /// # Errors
    ///
    /// As for [`new`](Self::new).
    pub fn with_key(
        request: &ClientRequest,
        key: String,
    ) -> Result<(ClientHandshake, Vec<u8>), HandshakeError> {
        check_field("path", &request.path)?;
        check_field("Host", &request.host)?;
        if let Some(origin) = &request.origin {
            check_field("Origin", origin)?;
        }
        if let Some(cookie) = &request.cookie {
            check_field("Cookie", cookie)?;
        }
        for protocol in &request.subprotocols {
            if protocol.is_empty() || !protocol.bytes().all(is_token_byte) {
                return Err(HandshakeError::InvalidRequestHeader {
                    name: "Sec-WebSocket-Protocol".into(),
                    reason: format!("{protocol:?} is not an HTTP token"),
                });
            }
        }
        if let Some(deflate) = &request.deflate {
            deflate.validate()?;
        }
        let path = if request.path.is_empty() {
            "/"
        } else {
            &request.path
        };
        let mut out = Vec::with_capacity(256);
        let mut line = |name: &str, value: &[u8]| {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        };
        line("Host", request.host.as_bytes());
        line("Upgrade", b"websocket");
        line("Connection", b"Upgrade");
        line("Sec-WebSocket-Key", key.as_bytes());
        line("Sec-WebSocket-Version", b"13");
        if let Some(origin) = &request.origin {
            line("Origin", origin.as_bytes());
        }
        if !request.subprotocols.is_empty() {
            line(
                "Sec-WebSocket-Protocol",
                request.subprotocols.join(", ").as_bytes(),
            );
        }
        if let Some(cookie) = &request.cookie {
            line("Cookie", cookie.as_bytes());
        }
        if let Some(deflate) = &request.deflate {
            line("Sec-WebSocket-Extensions", deflate.offer().as_bytes());
        }
        for (name, value) in &request.headers {
            line(name.as_str(), value.as_bytes());
        }
        let mut bytes = format!("GET {path} HTTP/1.1\r\n").into_bytes();
        bytes.extend_from_slice(&out);
        bytes.extend_from_slice(b"\r\n");
        Ok((
            ClientHandshake {
                key,
                subprotocols: request.subprotocols.clone(),
                deflate: request.deflate.clone(),
            },
            bytes,
        ))
    }

    /// The `Sec-WebSocket-Key` sent.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Checks the server's answer. `body` is whatever followed the head (only
    /// used to report a non-101 answer).
    ///
    /// # Errors
    ///
    /// A status other than 101 (with status, headers and the start of the
    /// body), a missing or wrong `Upgrade`, `Connection` or
    /// `Sec-WebSocket-Accept`, a subprotocol that was not offered, an
    /// extension that was not offered ([`HandshakeError::UnofferedExtension`]),
    /// or a permessage-deflate answer that breaks RFC 7692 or fits no
    /// offer ([`HandshakeError::InvalidExtension`]).
    pub fn accept(&self, head: ResponseHead, body: &[u8]) -> Result<Response, HandshakeError> {
        if head.status != StatusCode::SWITCHING_PROTOCOLS {
            let body = &body[..body.len().min(MAX_ERROR_BODY)];
            return Err(HandshakeError::UnexpectedStatus {
                status: head.status,
                reason: head.reason,
                headers: Box::new(head.headers),
                body: Bytes::copy_from_slice(body),
            });
        }
        let headers = &head.headers;
        let upgrade = header_str(headers, http::header::UPGRADE);
        if !upgrade.is_some_and(|v| v.trim().eq_ignore_ascii_case("websocket")) {
            return Err(HandshakeError::BadUpgradeHeader(upgrade.map(str::to_owned)));
        }
        let connection = header_str(headers, http::header::CONNECTION);
        if !connection.is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
        }) {
            return Err(HandshakeError::BadConnectionHeader(
                connection.map(str::to_owned),
            ));
        }
        let got = header_str(headers, http::header::SEC_WEBSOCKET_ACCEPT)
            .ok_or(HandshakeError::MissingAccept)?;
        let expected = accept_key(&self.key);
        if got.trim() != expected {
            return Err(HandshakeError::WrongAccept {
                expected,
                got: got.to_owned(),
            });
        }
        let mut selected = headers.get_all(http::header::SEC_WEBSOCKET_PROTOCOL).iter();
        let subprotocol = match (selected.next(), selected.next()) {
            (None, _) => None,
            (Some(value), None) => {
                let value = value.to_str().unwrap_or("").trim();
                if !self.subprotocols.iter().any(|p| p == value) {
                    return Err(HandshakeError::UnofferedSubprotocol(value.to_owned()));
                }
                Some(value.to_owned())
            }
            (Some(_), Some(_)) => {
                return Err(HandshakeError::UnofferedSubprotocol(
                    "(more than one Sec-WebSocket-Protocol header)".into(),
                ))
            }
        };
        let mut extensions = headers
            .get_all(http::header::SEC_WEBSOCKET_EXTENSIONS)
            .iter();
        let deflate = match (&self.deflate, extensions.next()) {
            (_, None) => None,
            (None, Some(extension)) => {
                return Err(HandshakeError::UnofferedExtension(
                    String::from_utf8_lossy(extension.as_bytes()).into_owned(),
                ))
            }
            (Some(config), Some(_)) => {
                let values: Vec<&[u8]> = headers
                    .get_all(http::header::SEC_WEBSOCKET_EXTENSIONS)
                    .iter()
                    .map(HeaderValue::as_bytes)
                    .collect();
                let response = values
                    .iter()
                    .map(|v| String::from_utf8_lossy(v))
                    .collect::<Vec<_>>()
                    .join(", ");
                let invalid = |error| HandshakeError::InvalidExtension {
                    response: response.clone(),
                    error,
                };
                let texts = values
                    .iter()
                    .map(|v| std::str::from_utf8(v))
                    .collect::<Result<Vec<&str>, _>>()
                    .map_err(|_| {
                        invalid(crate::deflate::ExtensionError::Malformed(
                            "the header is not UTF-8".into(),
                        ))
                    })?;
                crate::deflate::negotiate(config, texts).map_err(|e| match e {
                    crate::deflate::ExtensionError::Unoffered(name) => {
                        HandshakeError::UnofferedExtension(name)
                    }
                    e => invalid(e),
                })?
            }
        };
        Ok(Response {
            status: head.status,
            headers: head.headers,
            subprotocol,
            deflate,
        })
    }
}

/// Parses a response head from the start of `buf`. `Ok(None)` means the
/// head is not complete yet.
///
/// # Errors
///
/// Malformed HTTP, more than [`MAX_HEADERS`] headers, or no end of the head
/// within `max_size` bytes.
pub fn parse_response_head(
    buf: &[u8],
    max_size: usize,
) -> Result<Option<(ResponseHead, usize)>, HandshakeError> {
    let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut storage);
    match response.parse(buf) {
        Ok(httparse::Status::Complete(len)) if len > max_size => {
            Err(HandshakeError::ResponseTooLarge { limit: max_size })
        }
        Ok(httparse::Status::Complete(len)) => {
            let code = response.code.unwrap_or(0);
            let status = StatusCode::from_u16(code).map_err(|_| {
                HandshakeError::MalformedResponse(format!("invalid status code {code}"))
            })?;
            let headers = to_header_map(response.headers)?;
            let reason = response.reason.unwrap_or("").to_owned();
            Ok(Some((
                ResponseHead {
                    status,
                    reason,
                    headers,
                },
                len,
            )))
        }
        Ok(httparse::Status::Partial) if buf.len() >= max_size => {
            Err(HandshakeError::ResponseTooLarge { limit: max_size })
        }
        Ok(httparse::Status::Partial) => Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            Err(HandshakeError::TooManyHeaders { limit: MAX_HEADERS })
        }
        Err(e) => Err(HandshakeError::MalformedResponse(e.to_string())),
    }
}

fn to_header_map(parsed: &[httparse::Header<'_>]) -> Result<HeaderMap, HandshakeError> {
    let mut headers = HeaderMap::with_capacity(parsed.len());
    for header in parsed {
        let name = HeaderName::from_bytes(header.name.as_bytes()).map_err(|_| {
            HandshakeError::MalformedResponse(format!("invalid header name {:?}", header.name))
        })?;
        let value = HeaderValue::from_bytes(header.value).map_err(|_| {
            HandshakeError::MalformedResponse(format!("invalid value for header {:?}", header.name))
        })?;
        headers.append(name, value);
    }
    Ok(headers)
}

fn header_str(headers: &HeaderMap, name: HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn check_field(name: &str, value: &str) -> Result<(), HandshakeError> {
    if value.bytes().any(|b| b.is_ascii_control()) {
        return Err(HandshakeError::InvalidRequestHeader {
            name: name.into(),
            reason: "contains control characters (CR, LF, ...)".into(),
        });
    }
    Ok(())
}

/// RFC 7230 `tchar`.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

// ----- server side ---------------------------------------------------------

/// A client's upgrade request, as seen by a server.
#[derive(Debug, Clone)]
pub struct RequestHead {
    /// The request target.
    pub path: String,
    /// The headers.
    pub headers: HeaderMap,
}

impl RequestHead {
    /// The `Sec-WebSocket-Key`, if the request is a valid upgrade.
    ///
    /// # Errors
    ///
    /// [`HandshakeError::MalformedResponse`] naming what is missing.
    pub fn websocket_key(&self) -> Result<&str, HandshakeError> {
        let bad = |what: &str| {
            HandshakeError::MalformedResponse(format!("not a WebSocket upgrade request: {what}"))
        };
        let upgrade = header_str(&self.headers, http::header::UPGRADE)
            .ok_or_else(|| bad("no Upgrade header"))?;
        if !upgrade.trim().eq_ignore_ascii_case("websocket") {
            return Err(bad("Upgrade is not websocket"));
        }
        if header_str(&self.headers, http::header::SEC_WEBSOCKET_VERSION) != Some("13") {
            return Err(bad("Sec-WebSocket-Version is not 13"));
        }
        header_str(&self.headers, http::header::SEC_WEBSOCKET_KEY)
            .ok_or_else(|| bad("no Sec-WebSocket-Key"))
    }

    /// The `Sec-WebSocket-Extensions` values of the request (for
    /// [`crate::deflate::accept_offers`]).
    pub fn extensions(&self) -> Vec<&str> {
        self.headers
            .get_all(http::header::SEC_WEBSOCKET_EXTENSIONS)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect()
    }

    /// The subprotocols the client offered, best first.
    pub fn subprotocols(&self) -> Vec<String> {
        self.headers
            .get_all(http::header::SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|p| p.trim().to_owned())
            .filter(|p| !p.is_empty())
            .collect()
    }
}

/// Parses an upgrade request head from the start of `buf` (server side).
///
/// # Errors
///
/// Malformed HTTP, too many headers, or a head over `max_size` bytes.
pub fn parse_request_head(
    buf: &[u8],
    max_size: usize,
) -> Result<Option<(RequestHead, usize)>, HandshakeError> {
    let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut storage);
    match request.parse(buf) {
        Ok(httparse::Status::Complete(len)) if len > max_size => {
            Err(HandshakeError::ResponseTooLarge { limit: max_size })
        }
        Ok(httparse::Status::Complete(len)) => {
            if request.method != Some("GET") {
                return Err(HandshakeError::MalformedResponse(
                    "upgrade request method is not GET".into(),
                ));
            }
            let path = request.path.unwrap_or("/").to_owned();
            let headers = to_header_map(request.headers)?;
            Ok(Some((RequestHead { path, headers }, len)))
        }
        Ok(httparse::Status::Partial) if buf.len() >= max_size => {
            Err(HandshakeError::ResponseTooLarge { limit: max_size })
        }
        Ok(httparse::Status::Partial) => Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            Err(HandshakeError::TooManyHeaders { limit: MAX_HEADERS })
        }
        Err(e) => Err(HandshakeError::MalformedResponse(e.to_string())),
    }
}

/// The `101 Switching Protocols` answer to a request with `key`, selecting
/// `subprotocol` if given.
pub fn server_accept_response(key: &str, subprotocol: Option<&str>) -> Vec<u8> {
    server_accept_response_with_extensions(key, subprotocol, None)
}

/// [`server_accept_response`] with a `Sec-WebSocket-Extensions` value
/// (e.g. the answer made by [`crate::deflate::accept_offers`]).
pub fn server_accept_response_with_extensions(
    key: &str,
    subprotocol: Option<&str>,
    extensions: Option<&str>,
) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n",
        accept_key(key)
    );
    if let Some(protocol) = subprotocol {
        out.push_str("Sec-WebSocket-Protocol: ");
        out.push_str(protocol);
        out.push_str("\r\n");
    }
    if let Some(extensions) = extensions {
        out.push_str("Sec-WebSocket-Extensions: ");
        out.push_str(extensions);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> ClientRequest {
        ClientRequest {
            host: "example.com:9001".into(),
            path: "/runCase?case=1".into(),
            origin: Some("http://example.com".into()),
            subprotocols: vec!["chat".into(), "superchat".into()],
            cookie: Some("a=1; b=2".into()),
            headers: {
                let mut h = HeaderMap::new();
                h.insert("x-token", HeaderValue::from_static("t0k"));
                h
            },
            deflate: None,
        }
    }

    fn ok_head(handshake: &ClientHandshake, extra: &str) -> String {
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Accept: {}\r\n{extra}\r\n",
            accept_key(handshake.key())
        )
    }

    fn parse(text: &str) -> ResponseHead {
        parse_response_head(text.as_bytes(), DEFAULT_MAX_HEAD_SIZE)
            .unwrap()
            .unwrap()
            .0
    }

    #[test]
    fn the_request_carries_every_required_and_optional_header() {
        let (hs, bytes) = ClientHandshake::new(&request()).unwrap();
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.starts_with("GET /runCase?case=1 HTTP/1.1\r\n"));
        for line in [
            "Host: example.com:9001",
            "Upgrade: websocket",
            "Connection: Upgrade",
            "Sec-WebSocket-Version: 13",
            "Origin: http://example.com",
            "Sec-WebSocket-Protocol: chat, superchat",
            "Cookie: a=1; b=2",
            "x-token: t0k",
        ] {
            assert!(text.contains(&format!("{line}\r\n")), "missing {line}");
        }
        assert!(text.contains(&format!("Sec-WebSocket-Key: {}\r\n", hs.key())));
        assert!(text.ends_with("\r\n\r\n"));
    }

    #[test]
    fn keys_are_fresh_16_byte_nonces() {
        let a = generate_key();
        let b = generate_key();
        assert_ne!(a, b);
        assert_eq!(
            base64::engine::general_purpose::STANDARD
                .decode(&a)
                .unwrap()
                .len(),
            16
        );
    }

    #[test]
    fn header_injection_is_refused() {
        let mut r = request();
        r.path = "/x\r\nEvil: 1".into();
        assert!(matches!(
            ClientHandshake::new(&r),
            Err(HandshakeError::InvalidRequestHeader { .. })
        ));
        let mut r = request();
        r.subprotocols = vec!["a b".into()];
        assert!(matches!(
            ClientHandshake::new(&r),
            Err(HandshakeError::InvalidRequestHeader { .. })
        ));
    }

    #[test]
    fn a_valid_answer_is_accepted_with_the_chosen_subprotocol() {
        let (hs, _) = ClientHandshake::new(&request()).unwrap();
        let response = hs
            .accept(
                parse(&ok_head(&hs, "Sec-WebSocket-Protocol: superchat\r\n")),
                &[],
            )
            .unwrap();
        assert_eq!(response.subprotocol.as_deref(), Some("superchat"));
    }

    #[test]
    fn a_wrong_accept_is_refused() {
        let (hs, _) = ClientHandshake::new(&request()).unwrap();
        let text = "HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n";
        assert!(matches!(
            hs.accept(parse(text), &[]),
            Err(HandshakeError::WrongAccept { .. })
        ));
        let text = "HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
        assert!(matches!(
            hs.accept(parse(text), &[]),
            Err(HandshakeError::MissingAccept)
        ));
    }

    #[test]
    fn missing_upgrade_or_connection_tokens_are_refused() {
        let (hs, _) = ClientHandshake::new(&request()).unwrap();
        let accept = accept_key(hs.key());
        let no_upgrade = format!(
            "HTTP/1.1 101 OK\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
        );
        assert!(matches!(
            hs.accept(parse(&no_upgrade), &[]),
            Err(HandshakeError::BadUpgradeHeader(None))
        ));
        let no_connection = format!("HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: close\r\nSec-WebSocket-Accept: {accept}\r\n\r\n");
        assert!(matches!(
            hs.accept(parse(&no_connection), &[]),
            Err(HandshakeError::BadConnectionHeader(Some(_)))
        ));
    }

    #[test]
    fn an_unoffered_subprotocol_is_refused() {
        let (hs, _) = ClientHandshake::new(&request()).unwrap();
        let head = parse(&ok_head(&hs, "Sec-WebSocket-Protocol: other\r\n"));
        assert!(
            matches!(hs.accept(head, &[]), Err(HandshakeError::UnofferedSubprotocol(p)) if p == "other")
        );
    }

    #[test]
    fn an_unoffered_extension_is_refused() {
        let (hs, _) = ClientHandshake::new(&request()).unwrap();
        let head = parse(&ok_head(
            &hs,
            "Sec-WebSocket-Extensions: permessage-deflate\r\n",
        ));
        assert!(matches!(
            hs.accept(head, &[]),
            Err(HandshakeError::UnofferedExtension(_))
        ));
    }

    #[test]
    fn an_offered_deflate_is_sent_and_its_answer_negotiated() {
        let mut r = request();
        r.deflate = Some(DeflateConfig::default());
        let (hs, bytes) = ClientHandshake::new(&r).unwrap();
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.contains(&format!(
            "Sec-WebSocket-Extensions: {}\r\n",
            DeflateConfig::default().offer()
        )));
        let head = parse(&ok_head(
            &hs,
            "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n",
        ));
        let deflate = hs.accept(head, &[]).unwrap().deflate.unwrap();
        assert!(deflate.server_no_context_takeover);
        // No extension in the answer: declined, not an error.
        let head = parse(&ok_head(&hs, ""));
        assert_eq!(hs.accept(head, &[]).unwrap().deflate, None);
    }

    #[test]
    fn a_bad_deflate_answer_fails_the_handshake_with_the_reason() {
        let mut r = request();
        r.deflate = Some(DeflateConfig::default());
        let (hs, _) = ClientHandshake::new(&r).unwrap();
        let head = parse(&ok_head(
            &hs,
            "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=16\r\n",
        ));
        let err = hs.accept(head, &[]).unwrap_err();
        assert!(
            matches!(
                &err,
                HandshakeError::InvalidExtension {
                    error: crate::deflate::ExtensionError::InvalidValue { .. },
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("server_max_window_bits"), "{err}");
        let head = parse(&ok_head(
            &hs,
            "Sec-WebSocket-Extensions: permessage-deflate\r\nSec-WebSocket-Extensions: x-other\r\n",
        ));
        assert!(matches!(
            hs.accept(head, &[]),
            Err(HandshakeError::UnofferedExtension(name)) if name == "x-other"
        ));
        let bad = DeflateConfig::default().server_max_window_bits(Some(20));
        r.deflate = Some(bad);
        assert!(matches!(
            ClientHandshake::new(&r),
            Err(HandshakeError::InvalidDeflateConfig(_))
        ));
    }

    #[test]
    fn a_non_101_answer_carries_status_headers_and_body() {
        let (hs, _) = ClientHandshake::new(&request()).unwrap();
        let text = "HTTP/1.1 403 Forbidden\r\nContent-Length: 9\r\nX-Why: token\r\n\r\n";
        let head = parse(text);
        assert_eq!(head.error_body_wanted(), 9);
        match hs.accept(head, b"go away!!") {
            Err(HandshakeError::UnexpectedStatus {
                status,
                reason,
                headers,
                body,
            }) => {
                assert_eq!(status, StatusCode::FORBIDDEN);
                assert_eq!(reason, "Forbidden");
                assert_eq!(headers.get("x-why").unwrap(), "token");
                assert_eq!(&body[..], b"go away!!");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn partial_heads_wait_and_endless_heads_are_cut_off() {
        let text = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n";
        assert!(parse_response_head(text.as_bytes(), 1024)
            .unwrap()
            .is_none());
        let mut endless = b"HTTP/1.1 101 Switching Protocols\r\n".to_vec();
        while endless.len() < 2048 {
            endless.extend_from_slice(format!("X: {}\r\n", "y".repeat(100)).as_bytes());
        }
        assert!(matches!(
            parse_response_head(&endless, 1024),
            Err(HandshakeError::ResponseTooLarge { limit: 1024 })
        ));
        let mut many = b"HTTP/1.1 101 Switching Protocols\r\n".to_vec();
        for i in 0..200 {
            many.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert!(matches!(
            parse_response_head(&many, 1 << 20),
            Err(HandshakeError::TooManyHeaders { .. })
        ));
    }

    #[test]
    fn garbage_is_a_malformed_response() {
        assert!(matches!(
            parse_response_head(b"SSH-2.0-OpenSSH\r\n\r\n", 1024),
            Err(HandshakeError::MalformedResponse(_))
        ));
    }

    #[test]
    fn the_server_side_round_trips_with_the_client_side() {
        let (hs, bytes) = ClientHandshake::new(&request()).unwrap();
        let (req, used) = parse_request_head(&bytes, DEFAULT_MAX_HEAD_SIZE)
            .unwrap()
            .unwrap();
        assert_eq!(used, bytes.len());
        assert_eq!(req.path, "/runCase?case=1");
        assert_eq!(req.subprotocols(), vec!["chat", "superchat"]);
        let answer = server_accept_response(req.websocket_key().unwrap(), Some("chat"));
        let (head, _) = parse_response_head(&answer, DEFAULT_MAX_HEAD_SIZE)
            .unwrap()
            .unwrap();
        assert_eq!(
            hs.accept(head, &[]).unwrap().subprotocol.as_deref(),
            Some("chat")
        );
    }
}
