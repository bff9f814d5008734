//! What a proxy can answer instead of a tunnel, as data.
//!
//! Each message reads after the proxy's name, as floodgate prints it:
//! "SOCKS5 proxy 127.0.0.1:1080 refused: connection refused by destination
//! host (reply 5)".

use super::TunnelProtocol;
use std::fmt;
use std::net::Ipv6Addr;

/// The proxy did not open the tunnel, or the tunnel cannot be asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TunnelError {
    /// The HTTP proxy answered `CONNECT` with a status other than 2xx.
    #[error("answered CONNECT with {status} {reason}; {hint}", hint = http_status_hint(*status))]
    HttpStatus {
        /// The status code (407: the proxy wants credentials or refused
        /// the ones given).
        status: u16,
        /// The reason phrase the proxy sent (control characters removed,
        /// at most 100 characters).
        reason: String,
    },
    /// The HTTP proxy's response head was larger than the limit.
    #[error("sent a response head over {limit} bytes to CONNECT; it does not look like a working HTTP proxy")]
    HeadTooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The proxy answered something that is not its protocol.
    #[error("sent an answer that is not valid {protocol}: {detail}; check the proxy's scheme (http, socks4, socks4a, socks5, socks5h) and port")]
    Malformed {
        /// The protocol expected.
        protocol: TunnelProtocol,
        /// What was wrong with the answer.
        detail: Malformed,
    },
    /// The proxy closed the connection before its handshake was done.
    #[error("closed the connection in the middle of its handshake; check that it is a {protocol} proxy and that it allows this client and destination")]
    Closed {
        /// The protocol spoken.
        protocol: TunnelProtocol,
    },
    /// The SOCKS5 proxy accepts none of the authentication methods
    /// offered.
    #[error("accepts none of the authentication methods offered ({}); {}",
        if *.offered_credentials { "none, username/password" } else { "none" },
        if *.offered_credentials { "it wants a method floodgate does not speak (e.g. GSSAPI)" } else { "it probably wants a user name and password: put them in the proxy URL (socks5://user:password@host:port)" })]
    NoAcceptableAuth {
        /// Whether user name and password were offered besides "no
        /// authentication".
        offered_credentials: bool,
    },
    /// The SOCKS5 proxy refused the user name and password (RFC 1929).
    #[error("refused the user name and password (RFC 1929 status {status}); check the credentials in the proxy URL")]
    AuthFailed {
        /// The status byte of its answer (non-zero).
        status: u8,
    },
    /// The SOCKS5 proxy refused the `CONNECT` request.
    #[error("refused: {reply} (reply {code})", code = reply.code())]
    Socks5Refused {
        /// Its reply (RFC 1928 section 6).
        reply: Socks5Reply,
    },
    /// The SOCKS4 proxy refused the `CONNECT` request.
    #[error("refused: {reply} (reply {code})", code = reply.code())]
    Socks4Refused {
        /// Its reply.
        reply: Socks4Reply,
    },
    /// The request cannot be expressed in the proxy's protocol; nothing
    /// was sent.
    #[error("cannot carry this connection: {0}")]
    Unsupported(Unsupported),
}

impl TunnelError {
    /// The HTTP status, for [`TunnelError::HttpStatus`].
    pub fn http_status(&self) -> Option<u16> {
        match self {
            TunnelError::HttpStatus { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether the proxy wants credentials or refused the ones given:
    /// HTTP 407 (and 401, which tinyproxy sends for wrong credentials),
    /// or a SOCKS5 proxy that wants a user name and password or refused
    /// them.
    pub fn is_auth(&self) -> bool {
        matches!(
            self,
            TunnelError::HttpStatus {
                status: 401 | 407,
                ..
            } | TunnelError::NoAcceptableAuth { .. }
                | TunnelError::AuthFailed { .. }
        )
    }

    pub(super) fn malformed(protocol: TunnelProtocol, detail: Malformed) -> TunnelError {
        TunnelError::Malformed { protocol, detail }
    }
}

fn http_status_hint(status: u16) -> &'static str {
    match status {
        // tinyproxy answers 401 to wrong credentials.
        401 | 407 => "the proxy wants credentials, or refused the ones given: put them in the proxy URL (http://user:password@host:port)",
        403 => "the proxy does not allow this client or this destination port (tinyproxy, for example, allows CONNECT only to the ports listed by ConnectPort)",
        502 | 504 => "the proxy could not reach the server; check the server's host and port",
        _ => "the proxy did not open the tunnel",
    }
}

/// What was wrong with an answer, inside [`TunnelError::Malformed`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Malformed {
    /// The HTTP answer does not start with `HTTP/`.
    #[error("the answer starts with {:?}, not HTTP/", String::from_utf8_lossy(.start))]
    NotHttp {
        /// Its first bytes, up to the first that cannot begin `HTTP/`.
        start: Vec<u8>,
    },
    /// The HTTP response head does not parse.
    #[error("{0} in the response head")]
    HttpHead(httparse::Error),
    /// The HTTP response head ended (a blank line) before its status line
    /// and headers were complete.
    #[error("the response head is incomplete")]
    IncompleteHead,
    /// A SOCKS answer with the wrong version byte (a proxy of another
    /// protocol, or not a proxy).
    #[error("the {answer}'s version byte is {got} (expected {expected})")]
    Version {
        /// Which answer.
        answer: Answer,
        /// The byte received.
        got: u8,
        /// The byte the protocol prescribes.
        expected: u8,
    },
    /// The SOCKS5 proxy chose an authentication method that was not
    /// offered.
    #[error("the proxy chose method {method:#04x}, which was not offered ({})",
        if *.offered_credentials { "none, username/password" } else { "none" })]
    MethodNotOffered {
        /// The method it chose.
        method: u8,
        /// Whether user name and password were offered.
        offered_credentials: bool,
    },
    /// The SOCKS5 reply has an unknown address type.
    #[error("the reply's address type is {0} (expected 1, 3 or 4)")]
    AddressType(u8),
}

/// Which SOCKS answer, in [`Malformed::Version`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Answer {
    /// The SOCKS5 method selection.
    Method,
    /// The SOCKS5 user name and password status (RFC 1929).
    Authentication,
    /// The reply to `CONNECT` (SOCKS4 or SOCKS5).
    Reply,
}

impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Answer::Method => "method answer",
            Answer::Authentication => "authentication answer",
            Answer::Reply => "reply",
        })
    }
}

/// A request the proxy's protocol cannot carry, inside
/// [`TunnelError::Unsupported`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Unsupported {
    /// SOCKS4 carries IPv4 addresses only.
    #[error("SOCKS4 carries IPv4 addresses only, not {0}; use socks4a:// or socks5://")]
    Ipv6OverSocks4(Ipv6Addr),
    /// The host name is empty, or holds a byte the request cannot carry
    /// (NUL for SOCKS4a; NUL, CR, LF, space or `/` for HTTP).
    #[error("the host name {0:?} cannot be sent")]
    HostName(String),
    /// SOCKS5 carries host names of 1 to 255 bytes.
    #[error("SOCKS5 carries host names of 1 to 255 bytes; this one has {0}")]
    HostNameLength(usize),
    /// The SOCKS4 user id holds a NUL byte (its terminator).
    #[error("the SOCKS4 user id contains a NUL byte")]
    UserIdNul,
    /// SOCKS5 user names are 1 to 255 bytes, passwords 0 to 255 (RFC
    /// 1929).
    #[error("SOCKS5 user names must be 1 to 255 bytes and passwords at most 255 (RFC 1929)")]
    CredentialLength,
}

/// A SOCKS5 reply code (RFC 1928 section 6) other than success.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Socks5Reply {
    /// 1: general SOCKS server failure.
    GeneralFailure,
    /// 2: connection not allowed by ruleset.
    NotAllowed,
    /// 3: network unreachable.
    NetworkUnreachable,
    /// 4: host unreachable.
    HostUnreachable,
    /// 5: connection refused by the destination host.
    ConnectionRefused,
    /// 6: TTL expired.
    TtlExpired,
    /// 7: command not supported.
    CommandNotSupported,
    /// 8: address type not supported.
    AddressTypeNotSupported,
    /// A code RFC 1928 does not define.
    Other(u8),
}

impl Socks5Reply {
    /// The reply for a non-zero code.
    pub fn from_code(code: u8) -> Socks5Reply {
        match code {
            1 => Socks5Reply::GeneralFailure,
            2 => Socks5Reply::NotAllowed,
            3 => Socks5Reply::NetworkUnreachable,
            4 => Socks5Reply::HostUnreachable,
            5 => Socks5Reply::ConnectionRefused,
            6 => Socks5Reply::TtlExpired,
            7 => Socks5Reply::CommandNotSupported,
            8 => Socks5Reply::AddressTypeNotSupported,
            other => Socks5Reply::Other(other),
        }
    }

    /// The code on the wire.
    pub fn code(self) -> u8 {
        match self {
            Socks5Reply::GeneralFailure => 1,
            Socks5Reply::NotAllowed => 2,
            Socks5Reply::NetworkUnreachable => 3,
            Socks5Reply::HostUnreachable => 4,
            Socks5Reply::ConnectionRefused => 5,
            Socks5Reply::TtlExpired => 6,
            Socks5Reply::CommandNotSupported => 7,
            Socks5Reply::AddressTypeNotSupported => 8,
            Socks5Reply::Other(code) => code,
        }
    }
}

impl fmt::Display for Socks5Reply {
    /// RFC 1928's words for it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Socks5Reply::GeneralFailure => "general SOCKS server failure",
            Socks5Reply::NotAllowed => "connection not allowed by ruleset",
            Socks5Reply::NetworkUnreachable => "network unreachable",
            Socks5Reply::HostUnreachable => "host unreachable",
            Socks5Reply::ConnectionRefused => "connection refused by destination host",
            Socks5Reply::TtlExpired => "TTL expired",
            Socks5Reply::CommandNotSupported => "command not supported",
            Socks5Reply::AddressTypeNotSupported => "address type not supported",
            Socks5Reply::Other(_) => "unknown reply code",
        })
    }
}

/// A SOCKS4 reply code other than 90 (granted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Socks4Reply {
    /// 91: request rejected or failed.
    Rejected,
    /// 92: rejected because the proxy cannot reach the client's identd.
    IdentdUnreachable,
    /// 93: rejected because identd reported a different user id.
    IdentdMismatch,
    /// A code the protocol does not define.
    Other(u8),
}

impl Socks4Reply {
    /// The reply for a code other than 90.
    pub fn from_code(code: u8) -> Socks4Reply {
        match code {
            91 => Socks4Reply::Rejected,
            92 => Socks4Reply::IdentdUnreachable,
            93 => Socks4Reply::IdentdMismatch,
            other => Socks4Reply::Other(other),
        }
    }

    /// The code on the wire.
    pub fn code(self) -> u8 {
        match self {
            Socks4Reply::Rejected => 91,
            Socks4Reply::IdentdUnreachable => 92,
            Socks4Reply::IdentdMismatch => 93,
            Socks4Reply::Other(code) => code,
        }
    }
}

impl fmt::Display for Socks4Reply {
    /// The protocol description's words for it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Socks4Reply::Rejected => "request rejected or failed",
            Socks4Reply::IdentdUnreachable => {
                "request rejected because the proxy cannot reach the client's identd"
            }
            Socks4Reply::IdentdMismatch => {
                "request rejected because identd reported a different user id"
            }
            Socks4Reply::Other(_) => "unknown reply code",
        })
    }
}
