//! Close codes and close frame payloads (RFC 6455 §5.5.1, §7.4).
//!
//! A close frame carries nothing, or a 2-byte code and a UTF-8 reason. Which
//! codes may appear on the wire is decided here, once, for both directions:
//! [`CloseCode::is_sendable`] is what a peer may put in a frame; 1005, 1006
//! and 1015 exist only to *report* a close that had no code, or none at all.

use crate::error::{ProtocolError, UsageError};
use std::fmt;

/// A close status code.
///
/// ```
/// use floodgate_proto::CloseCode;
/// assert!(CloseCode::NORMAL.is_sendable());
/// assert!(!CloseCode::NO_STATUS.is_sendable());
/// assert!(CloseCode(4000).is_sendable());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// 1000: normal closure.
    pub const NORMAL: CloseCode = CloseCode(1000);
    /// 1001: the endpoint is going away.
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    /// 1002: protocol error.
    pub const PROTOCOL_ERROR: CloseCode = CloseCode(1002);
    /// 1003: a data type the endpoint cannot accept.
    pub const UNSUPPORTED_DATA: CloseCode = CloseCode(1003);
    /// 1005: reported when a close frame had no code; never sent.
    pub const NO_STATUS: CloseCode = CloseCode(1005);
    /// 1006: reported when the connection dropped without a close frame;
    /// never sent.
    pub const ABNORMAL: CloseCode = CloseCode(1006);
    /// 1007: payload inconsistent with the message type (invalid UTF-8).
    pub const INVALID_PAYLOAD: CloseCode = CloseCode(1007);
    /// 1008: policy violation.
    pub const POLICY_VIOLATION: CloseCode = CloseCode(1008);
    /// 1009: message too big to process.
    pub const MESSAGE_TOO_BIG: CloseCode = CloseCode(1009);
    /// 1010: the client expected an extension the server did not negotiate.
    pub const MANDATORY_EXTENSION: CloseCode = CloseCode(1010);
    /// 1011: the server met an unexpected condition.
    pub const INTERNAL_ERROR: CloseCode = CloseCode(1011);
    /// 1012: the service is restarting (IANA registry).
    pub const SERVICE_RESTART: CloseCode = CloseCode(1012);
    /// 1013: try again later (IANA registry).
    pub const TRY_AGAIN_LATER: CloseCode = CloseCode(1013);
    /// 1014: bad gateway (IANA registry).
    pub const BAD_GATEWAY: CloseCode = CloseCode(1014);
    /// 1015: reported when the TLS handshake failed; never sent.
    pub const TLS_HANDSHAKE: CloseCode = CloseCode(1015);

    /// Whether this code may appear in a close frame on the wire: the
    /// registered codes 1000-1003, 1007-1014 and the application ranges
    /// 3000-4999. A received close with any other code is a protocol error.
    pub fn is_sendable(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }
}

impl From<u16> for CloseCode {
    fn from(code: u16) -> Self {
        CloseCode(code)
    }
}

impl From<CloseCode> for u16 {
    fn from(code: CloseCode) -> Self {
        code.0
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The code and reason of a close frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseFrame {
    /// The status code.
    pub code: CloseCode,
    /// The reason, at most 123 bytes of UTF-8 (may be empty).
    pub reason: String,
}

impl CloseFrame {
    /// A close frame with this code and reason.
    pub fn new(code: impl Into<CloseCode>, reason: impl Into<String>) -> Self {
        CloseFrame {
            code: code.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for CloseFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.reason.is_empty() {
            write!(f, "{}", self.code)
        } else {
            write!(f, "{} {:?}", self.code, self.reason)
        }
    }
}

/// The largest close reason that fits a control frame with its code.
pub const MAX_CLOSE_REASON: usize = 123;

/// Parses and validates a received close payload: empty (no code), or a
/// sendable code followed by a UTF-8 reason.
pub fn parse_close_payload(payload: &[u8]) -> Result<Option<CloseFrame>, ProtocolError> {
    match payload.len() {
        0 => Ok(None),
        1 => Err(ProtocolError::CloseFrameOneByte),
        _ => {
            let code = CloseCode(u16::from_be_bytes([payload[0], payload[1]]));
            if !code.is_sendable() {
                return Err(ProtocolError::InvalidCloseCode(code.0));
            }
            let reason = simdutf8::basic::from_utf8(&payload[2..])
                .map_err(|_| ProtocolError::InvalidCloseReason)?;
            Ok(Some(CloseFrame {
                code,
                reason: reason.to_owned(),
            }))
        }
    }
}

/// Checks that a close frame may be sent, and appends its payload to `out`.
pub fn encode_close_payload(
    frame: Option<&CloseFrame>,
    out: &mut Vec<u8>,
) -> Result<(), UsageError> {
    if let Some(frame) = frame {
        if !frame.code.is_sendable() {
            return Err(UsageError::UnsendableCloseCode(frame.code.0));
        }
        if frame.reason.len() > MAX_CLOSE_REASON {
            return Err(UsageError::CloseReasonTooLong(frame.reason.len()));
        }
        out.extend_from_slice(&frame.code.0.to_be_bytes());
        out.extend_from_slice(frame.reason.as_bytes());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_close_payload_has_no_code() {
        assert_eq!(parse_close_payload(&[]), Ok(None));
    }

    #[test]
    fn one_byte_close_payload_is_a_protocol_error() {
        let err = parse_close_payload(&[0x03]).unwrap_err();
        assert_eq!(err, ProtocolError::CloseFrameOneByte);
        assert_eq!(err.close_code(), CloseCode::PROTOCOL_ERROR);
    }

    #[test]
    fn codes_that_must_not_be_sent_are_protocol_errors() {
        for code in [
            0u16, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
        ] {
            let payload = code.to_be_bytes();
            assert_eq!(
                parse_close_payload(&payload),
                Err(ProtocolError::InvalidCloseCode(code)),
                "code {code}"
            );
        }
    }

    #[test]
    fn registered_and_application_codes_are_accepted() {
        for code in [
            1000u16, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999,
            4000, 4999,
        ] {
            let mut payload = code.to_be_bytes().to_vec();
            payload.extend_from_slice(b"why");
            let frame = parse_close_payload(&payload).unwrap().unwrap();
            assert_eq!(frame.code, CloseCode(code));
            assert_eq!(frame.reason, "why");
        }
    }

    #[test]
    fn invalid_utf8_close_reason_is_1007() {
        let err = parse_close_payload(&[
            0x03, 0xe8, 0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5, 0xed,
            0xa0, 0x80,
        ])
        .unwrap_err();
        assert_eq!(err, ProtocolError::InvalidCloseReason);
        assert_eq!(err.close_code(), CloseCode::INVALID_PAYLOAD);
    }

    #[test]
    fn sending_a_reserved_code_or_long_reason_is_refused() {
        let mut out = Vec::new();
        assert_eq!(
            encode_close_payload(Some(&CloseFrame::new(1005, "")), &mut out),
            Err(UsageError::UnsendableCloseCode(1005))
        );
        assert_eq!(
            encode_close_payload(Some(&CloseFrame::new(1000, "x".repeat(124))), &mut out),
            Err(UsageError::CloseReasonTooLong(124))
        );
        assert!(out.is_empty());
        encode_close_payload(Some(&CloseFrame::new(1000, "x".repeat(123))), &mut out).unwrap();
        assert_eq!(out.len(), 125);
    }
}
