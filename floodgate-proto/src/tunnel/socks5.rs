//! SOCKS5 `CONNECT` (RFC 1928) with no authentication or user name and
//! password (RFC 1929).
//!
//! Greeting `05 N METHODS...` (method 00, and 02 when credentials are
//! given), answer `05 METHOD`; for method 02 the sub-negotiation
//! `01 ULEN USER PLEN PASS`, answer `01 STATUS`; then the request
//! `05 01 00 ATYP ADDR PORT` (ATYP 1 IPv4, 3 name, 4 IPv6), answer
//! `05 REP 00 ATYP ADDR PORT`, whose length its first five bytes announce.
//! Each step waits for the previous answer (some proxies do not accept
//! pipelined requests), and each answer has a known size of at most 262
//! bytes, which [`Socks5Connect::read_limit`] gives.

use super::error::{Answer, Malformed, Socks5Reply, TunnelError, Unsupported};
use super::{Credentials, Destination, Outbox, Progress, TunnelProtocol};
use bytes::{Buf, BytesMut};
use std::net::IpAddr;

const PROTOCOL: TunnelProtocol = TunnelProtocol::Socks5;
const NO_AUTH: u8 = 0x00;
const USERNAME_PASSWORD: u8 = 0x02;
const NO_ACCEPTABLE: u8 = 0xff;

/// Every reply is at least this long (a name of 0 bytes), so reading this
/// much never reads past it; by then its length is known.
const REPLY_PREFIX: usize = 5;

/// The SOCKS5 handshake; see the [module docs](super) for the loop that
/// drives it and an example with credentials.
#[derive(Debug)]
pub struct Socks5Connect {
    out: Outbox,
    /// The RFC 1929 request, sent if the proxy picks method 02.
    auth: Option<Vec<u8>>,
    /// The `CONNECT` request, sent once authentication is done.
    request: Vec<u8>,
    state: State,
}

#[derive(Debug)]
enum State {
    /// Waiting for the method answer (2 bytes); `seen` are in the buffer.
    Method {
        seen: usize,
    },
    /// Waiting for the RFC 1929 status (2 bytes).
    Auth {
        seen: usize,
    },
    /// Waiting for the reply to `CONNECT`; `len` is its length once its
    /// first five bytes were seen, else 0.
    Reply {
        seen: usize,
        len: usize,
    },
    Done,
    Failed(TunnelError),
}

impl Socks5Connect {
    /// The handshake for a tunnel to `target:port` (a name for the proxy
    /// to resolve: SOCKS5h), offering user name and password
    /// authentication when `credentials` are given.
    ///
    /// # Errors
    ///
    /// [`TunnelError::Unsupported`] for a name that is empty or over 255
    /// bytes, an empty user name, or a user name or password over 255
    /// bytes. Nothing has been sent then.
    pub fn new(
        target: &Destination,
        port: u16,
        credentials: Option<Credentials<'_>>,
    ) -> Result<Socks5Connect, TunnelError> {
        let auth = credentials.map(auth_request).transpose()?;
        let request = connect_request(target, port)?;
        let greeting = if auth.is_some() {
            vec![5, 2, NO_AUTH, USERNAME_PASSWORD]
        } else {
            vec![5, 1, NO_AUTH]
        };
        Ok(Socks5Connect {
            out: Outbox::new(greeting),
            auth,
            request,
            state: State::Method { seen: 0 },
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
    /// missing of the answer awaited.
    pub fn read_limit(&self) -> usize {
        match self.state {
            State::Method { seen } | State::Auth { seen } => 2usize.saturating_sub(seen),
            State::Reply { seen, len } => REPLY_PREFIX.max(len).saturating_sub(seen),
            State::Done | State::Failed(_) => 0,
        }
    }

    /// See [`Tunnel::receive`](super::Tunnel::receive). New output (the
    /// authentication or the `CONNECT` request) follows each answer.
    ///
    /// # Errors
    ///
    /// [`TunnelError::NoAcceptableAuth`], [`TunnelError::AuthFailed`],
    /// [`TunnelError::Socks5Refused`] for refusals,
    /// [`TunnelError::Malformed`] for answers that are not SOCKS5.
    pub fn receive(&mut self, from_proxy: &mut BytesMut) -> Result<Progress, TunnelError> {
        if let State::Failed(e) = &self.state {
            return Err(e.clone());
        }
        match self.step(from_proxy) {
            Ok(progress) => Ok(progress),
            Err(e) => {
                self.state = State::Failed(e.clone());
                Err(e)
            }
        }
    }

    fn step(&mut self, buf: &mut BytesMut) -> Result<Progress, TunnelError> {
        loop {
            match self.state {
                State::Method { .. } => {
                    let Some(method) = check_method(buf, self.auth.is_some())? else {
                        self.state = State::Method { seen: buf.len() };
                        return Ok(Progress::NeedMore);
                    };
                    buf.advance(2);
                    match (method, self.auth.take()) {
                        (USERNAME_PASSWORD, Some(auth)) => {
                            self.out.replace(auth);
                            self.state = State::Auth { seen: 0 };
                        }
                        _ => self.send_request(),
                    }
                }
                State::Auth { .. } => {
                    if !check_auth_reply(buf)? {
                        self.state = State::Auth { seen: buf.len() };
                        return Ok(Progress::NeedMore);
                    }
                    buf.advance(2);
                    self.send_request();
                }
                State::Reply { .. } => {
                    let Some(len) = check_reply(buf)? else {
                        self.state = State::Reply {
                            seen: buf.len(),
                            len: 0,
                        };
                        return Ok(Progress::NeedMore);
                    };
                    if buf.len() < len {
                        self.state = State::Reply {
                            seen: buf.len(),
                            len,
                        };
                        return Ok(Progress::NeedMore);
                    }
                    buf.advance(len);
                    self.state = State::Done;
                }
                State::Done => return Ok(Progress::Done),
                State::Failed(ref e) => return Err(e.clone()),
            }
        }
    }

    fn send_request(&mut self) {
        self.out.replace(std::mem::take(&mut self.request));
        self.state = State::Reply { seen: 0, len: 0 };
    }
}

fn auth_request(credentials: Credentials<'_>) -> Result<Vec<u8>, TunnelError> {
    let Credentials { username, password } = credentials;
    let (Ok(ulen), Ok(plen)) = (u8::try_from(username.len()), u8::try_from(password.len())) else {
        return Err(TunnelError::Unsupported(Unsupported::CredentialLength));
    };
    if ulen == 0 {
        return Err(TunnelError::Unsupported(Unsupported::CredentialLength));
    }
    let mut request = Vec::with_capacity(3 + username.len() + password.len());
    request.extend_from_slice(&[1, ulen]);
    request.extend_from_slice(username.as_bytes());
    request.push(plen);
    request.extend_from_slice(password.as_bytes());
    Ok(request)
}

fn connect_request(target: &Destination, port: u16) -> Result<Vec<u8>, TunnelError> {
    let mut request = vec![5, 1, 0];
    match target {
        Destination::Ip(IpAddr::V4(ip)) => {
            request.push(1);
            request.extend_from_slice(&ip.octets());
        }
        Destination::Ip(IpAddr::V6(ip)) => {
            request.push(4);
            request.extend_from_slice(&ip.octets());
        }
        Destination::Name(name) => {
            let len = u8::try_from(name.len()).ok().filter(|l| *l > 0).ok_or(
                TunnelError::Unsupported(Unsupported::HostNameLength(name.len())),
            )?;
            request.push(3);
            request.push(len);
            request.extend_from_slice(name.as_bytes());
        }
    }
    request.extend_from_slice(&port.to_be_bytes());
    Ok(request)
}

fn version(answer: Answer, got: u8, expected: u8) -> Result<(), TunnelError> {
    if got == expected {
        Ok(())
    } else {
        Err(TunnelError::malformed(
            PROTOCOL,
            Malformed::Version {
                answer,
                got,
                expected,
            },
        ))
    }
}

/// The method the proxy chose, once its answer is complete, if it is one
/// that was offered.
fn check_method(answer: &[u8], offered_credentials: bool) -> Result<Option<u8>, TunnelError> {
    if let Some(&v) = answer.first() {
        version(Answer::Method, v, 5)?;
    }
    match answer.get(1) {
        None => Ok(None),
        Some(&NO_AUTH) => Ok(Some(NO_AUTH)),
        Some(&USERNAME_PASSWORD) if offered_credentials => Ok(Some(USERNAME_PASSWORD)),
        Some(&NO_ACCEPTABLE) => Err(TunnelError::NoAcceptableAuth {
            offered_credentials,
        }),
        Some(&method) => Err(TunnelError::malformed(
            PROTOCOL,
            Malformed::MethodNotOffered {
                method,
                offered_credentials,
            },
        )),
    }
}

/// Whether the RFC 1929 answer is complete and accepts the credentials.
fn check_auth_reply(answer: &[u8]) -> Result<bool, TunnelError> {
    if let Some(&v) = answer.first() {
        // Some servers answer with version 5; RFC 1929 says 1.
        version(Answer::Authentication, v, 1)?;
    }
    match answer.get(1) {
        None => Ok(false),
        Some(0) => Ok(true),
        Some(&status) => Err(TunnelError::AuthFailed { status }),
    }
}

/// Checks `VER REP RSV ATYP [LEN]` as far as it has arrived; returns the
/// whole reply's length once its first five bytes are there.
fn check_reply(reply: &[u8]) -> Result<Option<usize>, TunnelError> {
    if let Some(&v) = reply.first() {
        version(Answer::Reply, v, 5)?;
    }
    if let Some(&code) = reply.get(1) {
        if code != 0 {
            return Err(TunnelError::Socks5Refused {
                reply: Socks5Reply::from_code(code),
            });
        }
    }
    let address = match reply.get(3) {
        None => return Ok(None),
        Some(1) => 4,
        Some(4) => 16,
        Some(3) => match reply.get(4) {
            Some(&len) => 1 + usize::from(len),
            None => return Ok(None),
        },
        Some(&other) => {
            return Err(TunnelError::malformed(
                PROTOCOL,
                Malformed::AddressType(other),
            ))
        }
    };
    if reply.len() < REPLY_PREFIX {
        return Ok(None);
    }
    Ok(Some(4 + address + 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: Credentials<'static> = Credentials {
        username: "bob",
        password: "pw",
    };

    fn v4() -> Destination {
        Destination::from_host("127.0.0.1")
    }

    /// Writes all output and feeds `answer` in one piece.
    fn feed(c: &mut Socks5Connect, answer: &[u8]) -> Result<Progress, TunnelError> {
        c.consume_output(usize::MAX);
        c.receive(&mut BytesMut::from(answer))
    }

    #[test]
    fn the_greeting_offers_username_password_only_with_credentials() {
        assert_eq!(
            Socks5Connect::new(&v4(), 1, None).unwrap().output(),
            [5, 1, 0]
        );
        assert_eq!(
            Socks5Connect::new(&v4(), 1, Some(ALICE)).unwrap().output(),
            [5, 2, 0, 2]
        );
    }

    #[test]
    fn requests_for_ipv4_ipv6_and_names() {
        let request = |dest: Destination, port| {
            let mut c = Socks5Connect::new(&dest, port, None).unwrap();
            assert_eq!(feed(&mut c, &[5, 0]).unwrap(), Progress::NeedMore);
            c.output().to_vec()
        };
        assert_eq!(request(v4(), 9001), [5, 1, 0, 1, 127, 0, 0, 1, 0x23, 0x29]);
        let mut expected = vec![5, 1, 0, 4];
        expected.extend_from_slice(&[0; 15]);
        expected.extend_from_slice(&[1, 0, 80]);
        assert_eq!(request(Destination::from_host("::1"), 80), expected);
        assert_eq!(
            request(Destination::Name("localhost".into()), 443),
            [&[5, 1, 0, 3, 9][..], b"localhost", &[1, 0xbb]].concat()
        );
    }

    #[test]
    fn names_and_credentials_over_255_bytes_or_empty_are_refused_before_sending() {
        for name in ["a".repeat(256), String::new()] {
            let len = name.len();
            assert_eq!(
                Socks5Connect::new(&Destination::Name(name), 1, None).unwrap_err(),
                TunnelError::Unsupported(Unsupported::HostNameLength(len))
            );
        }
        let long = "u".repeat(256);
        for (username, password) in [(long.as_str(), "p"), ("u", long.as_str()), ("", "p")] {
            assert_eq!(
                Socks5Connect::new(&v4(), 1, Some(Credentials { username, password })).unwrap_err(),
                TunnelError::Unsupported(Unsupported::CredentialLength)
            );
        }
    }

    #[test]
    fn method_answers_are_checked_against_what_was_offered() {
        let mut c = Socks5Connect::new(&v4(), 1, None).unwrap();
        assert_eq!(
            feed(&mut c, &[5, 2]).unwrap_err(),
            TunnelError::Malformed {
                protocol: TunnelProtocol::Socks5,
                detail: Malformed::MethodNotOffered {
                    method: 2,
                    offered_credentials: false
                }
            }
        );
        let mut c = Socks5Connect::new(&v4(), 1, None).unwrap();
        let err = feed(&mut c, &[5, 0xff]).unwrap_err();
        assert_eq!(
            err,
            TunnelError::NoAcceptableAuth {
                offered_credentials: false
            }
        );
        assert!(err.is_auth());
        assert!(err.to_string().contains("user name and password"), "{err}");
        let mut c = Socks5Connect::new(&v4(), 1, Some(ALICE)).unwrap();
        let err = feed(&mut c, &[5, 0xff]).unwrap_err();
        assert!(err.to_string().contains("GSSAPI"), "{err}");
        for garbage in [&[4u8, 0][..], b"HT"] {
            let mut c = Socks5Connect::new(&v4(), 1, None).unwrap();
            assert!(matches!(
                feed(&mut c, garbage),
                Err(TunnelError::Malformed {
                    detail: Malformed::Version {
                        answer: Answer::Method,
                        expected: 5,
                        ..
                    },
                    ..
                })
            ));
        }
    }

    #[test]
    fn no_authentication_is_accepted_even_when_credentials_were_offered() {
        let mut c = Socks5Connect::new(&v4(), 9, Some(ALICE)).unwrap();
        assert_eq!(feed(&mut c, &[5, 0]).unwrap(), Progress::NeedMore);
        assert_eq!(c.output(), [5, 1, 0, 1, 127, 0, 0, 1, 0, 9]);
    }

    #[test]
    fn the_rfc_1929_request_and_its_answers() {
        let mut c = Socks5Connect::new(&v4(), 1, Some(ALICE)).unwrap();
        assert_eq!(feed(&mut c, &[5, 2]).unwrap(), Progress::NeedMore);
        assert_eq!(c.output(), [1, 3, b'b', b'o', b'b', 2, b'p', b'w']);
        assert_eq!(c.read_limit(), 2);
        assert_eq!(feed(&mut c, &[1, 0]).unwrap(), Progress::NeedMore);
        assert_eq!(c.output()[..2], [5, 1]);

        let empty_password = Credentials {
            username: "u",
            password: "",
        };
        let mut c = Socks5Connect::new(&v4(), 1, Some(empty_password)).unwrap();
        feed(&mut c, &[5, 2]).unwrap();
        assert_eq!(c.output(), [1, 1, b'u', 0]);

        let mut c = Socks5Connect::new(&v4(), 1, Some(ALICE)).unwrap();
        feed(&mut c, &[5, 2]).unwrap();
        let err = feed(&mut c, &[1, 1]).unwrap_err();
        assert_eq!(err, TunnelError::AuthFailed { status: 1 });
        assert!(err.is_auth());

        let mut c = Socks5Connect::new(&v4(), 1, Some(ALICE)).unwrap();
        feed(&mut c, &[5, 2]).unwrap();
        assert!(matches!(
            feed(&mut c, &[5, 0]),
            Err(TunnelError::Malformed {
                detail: Malformed::Version {
                    answer: Answer::Authentication,
                    ..
                },
                ..
            })
        ));
    }

    #[test]
    fn replies_of_each_address_type_are_read_to_their_end_and_no_further() {
        for (bound, len) in [
            (&[1u8, 10, 0, 0, 1][..], 10),
            (&[4; 17][..], 22),
            (
                &[3, 9, b'l', b'o', b'c', b'a', b'l', b'h', b'o', b's', b't'][..],
                16,
            ),
            (&[3, 0][..], 7),
        ] {
            let mut reply = vec![5, 0, 0];
            reply.extend_from_slice(bound);
            reply.extend_from_slice(&[0x1f, 0x90]);
            assert_eq!(reply.len(), len);
            reply.extend_from_slice(b"server");
            let mut c = Socks5Connect::new(&v4(), 1, None).unwrap();
            feed(&mut c, &[5, 0]).unwrap();
            c.consume_output(usize::MAX);
            let mut buf = BytesMut::new();
            let mut read = 0;
            loop {
                let n = c.read_limit();
                assert!(n > 0 && read + n <= len, "limit {n} at {read} of {len}");
                buf.extend_from_slice(&reply[read..read + n]);
                read += n;
                if c.receive(&mut buf).unwrap() == Progress::Done {
                    break;
                }
            }
            assert_eq!(read, len);
            assert!(buf.is_empty());
            assert_eq!(c.read_limit(), 0);
        }
    }

    #[test]
    fn each_refusal_is_typed_with_its_meaning() {
        for (code, reply, text) in [
            (
                1,
                Socks5Reply::GeneralFailure,
                "general SOCKS server failure",
            ),
            (
                2,
                Socks5Reply::NotAllowed,
                "connection not allowed by ruleset",
            ),
            (3, Socks5Reply::NetworkUnreachable, "network unreachable"),
            (4, Socks5Reply::HostUnreachable, "host unreachable"),
            (
                5,
                Socks5Reply::ConnectionRefused,
                "connection refused by destination host",
            ),
            (6, Socks5Reply::TtlExpired, "TTL expired"),
            (7, Socks5Reply::CommandNotSupported, "command not supported"),
            (
                8,
                Socks5Reply::AddressTypeNotSupported,
                "address type not supported",
            ),
            (0xee, Socks5Reply::Other(0xee), "unknown reply code"),
        ] {
            let mut c = Socks5Connect::new(&v4(), 1, None).unwrap();
            feed(&mut c, &[5, 0]).unwrap();
            // Refused as soon as the code arrives.
            let err = feed(&mut c, &[5, code]).unwrap_err();
            assert_eq!(err, TunnelError::Socks5Refused { reply });
            assert_eq!(reply.code(), code);
            assert_eq!(err.to_string(), format!("refused: {text} (reply {code})"));
        }
    }

    #[test]
    fn malformed_replies_are_typed() {
        for (reply, detail) in [
            (&[5u8, 0, 0, 9][..], Malformed::AddressType(9)),
            (
                &[0, 90, 0, 0][..],
                Malformed::Version {
                    answer: Answer::Reply,
                    got: 0,
                    expected: 5,
                },
            ),
        ] {
            let mut c = Socks5Connect::new(&v4(), 1, None).unwrap();
            feed(&mut c, &[5, 0]).unwrap();
            assert_eq!(
                feed(&mut c, reply).unwrap_err(),
                TunnelError::Malformed {
                    protocol: TunnelProtocol::Socks5,
                    detail
                }
            );
            // The error sticks, and nothing more is to be read.
            assert_eq!(c.read_limit(), 0);
            assert!(c.receive(&mut BytesMut::new()).is_err());
        }
    }
}
