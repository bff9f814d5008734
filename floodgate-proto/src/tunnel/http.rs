//! HTTP `CONNECT` (RFC 9110 section 9.3.6): ask the proxy for a tunnel to
//! `host:port`, with `Proxy-Authorization: Basic` (RFC 7617) when
//! credentials are given, and read its answer head.
//!
//! After the blank line that ends the head the bytes are the server's, so
//! [`HttpConnect::read_limit`] is the fewest bytes that could end the head
//! from what was seen (1 after a line feed or after `\r\n\r`, else 2):
//! a driver that follows it never takes a byte of the server's stream. A
//! head is a few hundred bytes, so the extra reads cost nothing that
//! matters, once per connection. The head is limited to the size given
//! to [`HttpConnect::new`].

use super::error::{Malformed, TunnelError, Unsupported};
use super::{host_port, Credentials, Destination, Outbox, Progress, TunnelProtocol};
use base64::Engine as _;
use bytes::{Buf, BytesMut};

const PROTOCOL: TunnelProtocol = TunnelProtocol::Http;

/// Headers the answer may have; more is a malformed answer (a proxy's
/// `CONNECT` answer has a handful).
const MAX_HEADERS: usize = 64;

/// The HTTP `CONNECT` handshake; see the [module docs](super) for the
/// loop that drives it.
///
/// ```
/// use bytes::BytesMut;
/// use floodgate_proto::tunnel::{Destination, HttpConnect, Progress, TunnelError};
///
/// let target = Destination::Name("example.com".into());
/// let mut connect = HttpConnect::new(&target, 443, None, 8192)?;
/// assert_eq!(connect.output(), b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n");
/// connect.consume_output(connect.output().len());
///
/// let mut from_proxy = BytesMut::from(&b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n"[..]);
/// let err = connect.receive(&mut from_proxy).unwrap_err();
/// assert_eq!(err.http_status(), Some(407));
/// assert!(err.is_auth());
/// # Ok::<(), TunnelError>(())
/// ```
#[derive(Debug)]
pub struct HttpConnect {
    out: Outbox,
    limit: usize,
    state: State,
}

#[derive(Debug)]
enum State {
    /// Waiting for the end of the head: `seen` bytes were looked at and
    /// none of them ends it; `tail` holds the last of them (up to 3).
    Reading {
        seen: usize,
        tail: Tail,
    },
    Done,
    Failed(TunnelError),
}

/// The last bytes seen, enough to tell how close the head is to its end.
#[derive(Debug, Default, Clone, Copy)]
struct Tail {
    bytes: [u8; 3],
    len: usize,
}

impl Tail {
    fn of(seen: &[u8]) -> Tail {
        let len = seen.len().min(3);
        let mut bytes = [0; 3];
        bytes[..len].copy_from_slice(&seen[seen.len() - len..]);
        Tail { bytes, len }
    }

    fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl HttpConnect {
    /// The request for a tunnel to `target:port` (a name is passed to
    /// the proxy as is, an IPv6 address in brackets), with
    /// `Proxy-Authorization: Basic` when `credentials` are given. The
    /// answer head may be at most `max_head` bytes.
    ///
    /// # Errors
    ///
    /// [`TunnelError::Unsupported`] for a name that is empty or holds a
    /// byte a request line cannot carry (NUL, CR, LF, space, tab, `/`).
    pub fn new(
        target: &Destination,
        port: u16,
        credentials: Option<Credentials<'_>>,
        max_head: usize,
    ) -> Result<HttpConnect, TunnelError> {
        let host = target.to_string();
        if host.is_empty() || host.bytes().any(|b| b"\0\r\n \t/".contains(&b)) {
            return Err(TunnelError::Unsupported(Unsupported::HostName(host)));
        }
        let authority = host_port(&host, port);
        let mut request = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
        if let Some(Credentials { username, password }) = credentials {
            let token =
                base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
            request.push_str(&format!("Proxy-Authorization: Basic {token}\r\n"));
        }
        request.push_str("\r\n");
        Ok(HttpConnect {
            out: Outbox::new(request.into_bytes()),
            limit: max_head,
            state: State::Reading {
                seen: 0,
                tail: Tail::default(),
            },
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

    /// See [`Tunnel::read_limit`](super::Tunnel::read_limit): 1 or 2 while
    /// the head is being read.
    pub fn read_limit(&self) -> usize {
        match &self.state {
            State::Reading { seen, tail } => {
                let tail = tail.as_slice();
                let fewest = if tail.ends_with(b"\n") || tail.ends_with(b"\r\n\r") {
                    1
                } else {
                    2
                };
                fewest.min(self.limit.saturating_sub(*seen)).max(1)
            }
            State::Done | State::Failed(_) => 0,
        }
    }

    /// See [`Tunnel::receive`](super::Tunnel::receive). Any 2xx status
    /// opens the tunnel.
    ///
    /// # Errors
    ///
    /// [`TunnelError::HttpStatus`] for another status,
    /// [`TunnelError::HeadTooLarge`] for a head over the limit,
    /// [`TunnelError::Malformed`] for an answer that is not HTTP.
    pub fn receive(&mut self, from_proxy: &mut BytesMut) -> Result<Progress, TunnelError> {
        let seen = match &self.state {
            State::Reading { seen, .. } => *seen,
            State::Done => return Ok(Progress::Done),
            State::Failed(e) => return Err(e.clone()),
        };
        match self.look_at(from_proxy, seen) {
            Ok(progress) => Ok(progress),
            Err(e) => {
                self.state = State::Failed(e.clone());
                Err(e)
            }
        }
    }

    fn look_at(&mut self, buf: &mut BytesMut, seen: usize) -> Result<Progress, TunnelError> {
        // Fail at the first byte that cannot start `HTTP/` (and report up
        // to it, so the verdict is the same however the bytes arrive).
        let mismatch = buf
            .iter()
            .zip(b"HTTP/")
            .position(|(got, want)| !got.eq_ignore_ascii_case(want));
        if let Some(at) = mismatch {
            return Err(TunnelError::malformed(
                PROTOCOL,
                Malformed::NotHttp {
                    start: buf[..=at].to_vec(),
                },
            ));
        }
        // Look only at bytes not looked at before (less the three that
        // may begin a terminator), and never past the limit.
        let window = buf.len().min(self.limit);
        let from = seen.saturating_sub(3).min(window);
        match find_head_end(&buf[..window], from) {
            Some(end) => {
                let used = check_head(&buf[..end])?;
                buf.advance(used);
                self.state = State::Done;
                Ok(Progress::Done)
            }
            None if buf.len() >= self.limit => Err(TunnelError::HeadTooLarge { limit: self.limit }),
            None => {
                self.state = State::Reading {
                    seen: buf.len(),
                    tail: Tail::of(buf),
                };
                Ok(Progress::NeedMore)
            }
        }
    }
}

/// The length of the head when `bytes` holds its end (`\r\n\r\n`, or
/// `\n\n` as httparse also accepts), searching from `from`.
fn find_head_end(bytes: &[u8], from: usize) -> Option<usize> {
    (from..bytes.len()).find_map(|i| {
        let upto = &bytes[..=i];
        (upto.ends_with(b"\r\n\r\n") || upto.ends_with(b"\n\n")).then_some(i + 1)
    })
}

/// Checks a complete response head: 2xx opens the tunnel. Returns the
/// length httparse read.
fn check_head(head: &[u8]) -> Result<usize, TunnelError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let used = match response.parse(head) {
        Ok(httparse::Status::Complete(used)) => used,
        Ok(httparse::Status::Partial) => {
            return Err(TunnelError::malformed(PROTOCOL, Malformed::IncompleteHead))
        }
        Err(e) => return Err(TunnelError::malformed(PROTOCOL, Malformed::HttpHead(e))),
    };
    let status = response.code.unwrap_or(0);
    if (200..300).contains(&status) {
        Ok(used)
    } else {
        let reason = response
            .reason
            .unwrap_or("")
            .chars()
            .filter(|c| !c.is_control())
            .take(100)
            .collect();
        Err(TunnelError::HttpStatus { status, reason })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connect(credentials: Option<Credentials<'_>>) -> HttpConnect {
        HttpConnect::new(&Destination::from_host("::1"), 9001, credentials, 4096).unwrap()
    }

    /// Feeds `answer` as a driver that follows `read_limit` would.
    fn drive(connect: &mut HttpConnect, answer: &[u8]) -> Result<BytesMut, TunnelError> {
        connect.consume_output(usize::MAX);
        let mut buf = BytesMut::new();
        let mut rest = answer;
        loop {
            let n = connect.read_limit().min(rest.len());
            assert!(n > 0, "the answer ended before the head did");
            buf.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
            if connect.receive(&mut buf)? == Progress::Done {
                assert_eq!(connect.read_limit(), 0);
                buf.extend_from_slice(rest);
                return Ok(buf);
            }
        }
    }

    #[test]
    fn the_request_names_the_target_and_carries_basic_credentials() {
        let plain =
            HttpConnect::new(&Destination::Name("example.com".into()), 443, None, 10).unwrap();
        assert_eq!(
            plain.output(),
            b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"
        );
        // "Aladdin:open sesame", RFC 7617's example.
        let with = connect(Some(Credentials {
            username: "Aladdin",
            password: "open sesame",
        }));
        assert_eq!(
            std::str::from_utf8(with.output()).unwrap(),
            "CONNECT [::1]:9001 HTTP/1.1\r\nHost: [::1]:9001\r\n\
             Proxy-Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\n\r\n"
        );
    }

    #[test]
    fn output_is_consumed_in_pieces() {
        let mut c = connect(None);
        let total = c.output().len();
        c.consume_output(5);
        assert_eq!(&c.output()[..4], b"CT [");
        assert_eq!(c.output().len(), total - 5);
        c.consume_output(total);
        assert!(c.output().is_empty());
    }

    #[test]
    fn names_that_would_break_the_request_line_are_refused() {
        for bad in ["", "a b", "a\r\nX: y", "a/b", "a\0"] {
            let err = HttpConnect::new(&Destination::Name(bad.into()), 1, None, 100).unwrap_err();
            assert!(
                matches!(err, TunnelError::Unsupported(Unsupported::HostName(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn any_2xx_opens_the_tunnel_and_leaves_the_servers_bytes() {
        let left = drive(
            &mut connect(None),
            b"HTTP/1.0 200 Connection established\r\n\r\nserver bytes",
        )
        .unwrap();
        assert_eq!(&left[..], b"server bytes");
        let left = drive(
            &mut connect(None),
            b"HTTP/1.1 204 OK\r\nProxy-Agent: x\r\n\r\n",
        )
        .unwrap();
        assert!(left.is_empty());
        // Bare line feeds, as httparse accepts them.
        assert!(drive(&mut connect(None), b"HTTP/1.1 200 OK\n\n").is_ok());
    }

    #[test]
    fn a_driver_following_read_limit_never_reads_past_the_head() {
        let mut c = connect(None);
        let answer = b"HTTP/1.1 200 OK\r\nA: b\r\n\r\nX";
        let mut buf = BytesMut::new();
        let mut read = 0;
        loop {
            let n = c.read_limit();
            assert!(
                read + n < answer.len(),
                "read_limit {n} at {read} would take the server's byte"
            );
            buf.extend_from_slice(&answer[read..read + n]);
            read += n;
            if c.receive(&mut buf).unwrap() == Progress::Done {
                break;
            }
        }
        assert_eq!(read, answer.len() - 1);
        assert!(buf.is_empty());
    }

    #[test]
    fn a_whole_answer_in_one_buffer_is_taken_at_once() {
        let mut c = connect(None);
        let mut buf = BytesMut::from(&b"HTTP/1.1 200 OK\r\n\r\n\x16\x03"[..]);
        assert_eq!(c.receive(&mut buf).unwrap(), Progress::Done);
        assert_eq!(&buf[..], b"\x16\x03");
        // And again: done stays done, and takes nothing more.
        assert_eq!(c.receive(&mut buf).unwrap(), Progress::Done);
        assert_eq!(buf.len(), 2);
    }

    #[test]
    fn other_statuses_are_typed_with_their_reason() {
        let err = drive(
            &mut connect(None),
            b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\n\r\n",
        )
        .unwrap_err();
        assert!(
            matches!(&err, TunnelError::HttpStatus { status: 407, reason } if reason == "Proxy Authentication Required")
        );
        assert_eq!(err.http_status(), Some(407));
        assert!(err.is_auth());
        assert!(err.to_string().contains("credentials"), "{err}");
        let err = drive(&mut connect(None), b"HTTP/1.1 403 Forbidden\r\n\r\n").unwrap_err();
        assert!(err.to_string().contains("ConnectPort"), "{err}");
        assert!(!err.is_auth());
        let err = drive(&mut connect(None), b"HTTP/1.1 504 Gateway Timeout\r\n\r\n").unwrap_err();
        assert!(
            err.to_string().contains("could not reach the server"),
            "{err}"
        );
    }

    #[test]
    fn an_answer_that_is_not_http_fails_at_its_first_byte() {
        let mut c = connect(None);
        let mut buf = BytesMut::from(&b"HTX/1.1 200"[..]);
        let err = c.receive(&mut buf).unwrap_err();
        assert!(
            matches!(&err, TunnelError::Malformed { protocol: TunnelProtocol::Http, detail: Malformed::NotHttp { start } } if start == b"HTX"),
            "{err}"
        );
        assert!(
            err.to_string().contains("starts with \"HTX\", not HTTP/"),
            "{err}"
        );
        assert_eq!(c.read_limit(), 0);
        // The error sticks.
        assert_eq!(c.receive(&mut buf).unwrap_err(), err);
    }

    #[test]
    fn garbage_heads_are_malformed() {
        for head in [
            &b"HTTP/1.1 abc\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nbad header\r\n\r\n",
            b"http/1.1 200 OK\r\n\xff: x\r\n\r\n",
        ] {
            let err = drive(&mut connect(None), head).unwrap_err();
            assert!(
                matches!(err, TunnelError::Malformed { .. }),
                "{head:?}: {err}"
            );
        }
    }

    #[test]
    fn a_head_over_the_limit_is_refused_without_reading_more() {
        let mut c = HttpConnect::new(&Destination::Name("h".into()), 1, None, 64).unwrap();
        let mut head = b"HTTP/1.1 200 OK\r\n".to_vec();
        while head.len() < 200 {
            head.extend_from_slice(b"X-Padding: aaaa\r\n");
        }
        let mut buf = BytesMut::new();
        let mut read = 0;
        let err = loop {
            let n = c.read_limit();
            buf.extend_from_slice(&head[read..read + n]);
            read += n;
            match c.receive(&mut buf) {
                Ok(Progress::NeedMore) => {}
                Ok(Progress::Done) => panic!("no end in the head"),
                Err(e) => break e,
            }
        };
        assert_eq!(err, TunnelError::HeadTooLarge { limit: 64 });
        assert_eq!(read, 64);
    }

    #[test]
    fn a_head_of_exactly_the_limit_is_accepted() {
        let head = b"HTTP/1.1 200 OK\r\n\r\n";
        let mut c = HttpConnect::new(&Destination::Name("h".into()), 1, None, head.len()).unwrap();
        assert!(drive(&mut c, head).is_ok());
        let mut c =
            HttpConnect::new(&Destination::Name("h".into()), 1, None, head.len() - 1).unwrap();
        assert_eq!(
            drive(&mut c, head).unwrap_err(),
            TunnelError::HeadTooLarge {
                limit: head.len() - 1
            }
        );
    }

    #[test]
    fn too_many_headers_are_malformed() {
        let mut head = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            head.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
        }
        head.extend_from_slice(b"\r\n");
        let err = drive(&mut connect(None), &head).unwrap_err();
        assert!(
            matches!(
                err,
                TunnelError::Malformed {
                    detail: Malformed::HttpHead(httparse::Error::TooManyHeaders),
                    ..
                }
            ),
            "{err}"
        );
    }
}
