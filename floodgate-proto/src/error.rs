//! Errors of the protocol core, split by blame.
//!
//! - [`ProtocolError`]: the peer broke RFC 6455. Each variant knows the close
//!   code the connection must be failed with ([`ProtocolError::close_code`]).
//! - [`HandshakeError`]: the server's answer to the opening handshake was not
//!   an acceptable WebSocket upgrade; carries what the server said.
//! - [`UsageError`]: the application asked for something the protocol does
//!   not allow (a 200-byte ping, a close code that must not be sent, data
//!   after close). Nothing was sent.

use crate::close::{CloseCode, CloseFrame, MAX_CLOSE_REASON};
use crate::deflate::{DeflateConfigError, ExtensionError};
use crate::frame::OpCode;
use bytes::Bytes;
use http::{HeaderMap, StatusCode};

/// The peer violated the WebSocket protocol. The connection is failed with
/// the close code given by [`close_code`](Self::close_code).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// RSV1, RSV2 or RSV3 was set but no negotiated extension defines it.
    #[error(
        "the peer set reserved bits {bits:#05b} (RSV1-3) that no negotiated extension defines"
    )]
    ReservedBits {
        /// The three reserved bits, RSV1 as the highest.
        bits: u8,
    },
    /// An opcode reserved for future use (3-7, 0xB-0xF).
    #[error("the peer used reserved opcode {0:#x}")]
    ReservedOpcode(u8),
    /// A ping, pong or close frame without the FIN bit.
    #[error("the peer sent a fragmented control frame (control frames must have FIN set)")]
    FragmentedControlFrame,
    /// A control frame whose payload is over 125 bytes.
    #[error("the peer sent a control frame with a {0}-byte payload (at most 125 allowed)")]
    ControlFrameTooLong(u64),
    /// A server masked a frame (only clients mask).
    #[error("the server sent a masked frame (servers must not mask)")]
    MaskedFrameFromServer,
    /// A client sent an unmasked frame (clients must mask).
    #[error("the client sent an unmasked frame (clients must mask)")]
    UnmaskedFrameFromClient,
    /// A continuation frame arrived while no fragmented message was open.
    #[error("the peer sent a continuation frame with no fragmented message open")]
    ContinuationWithoutStart,
    /// A text or binary frame arrived while a fragmented message was open.
    #[error("the peer started a new data message before finishing the fragmented one")]
    DataFrameInsideFragmentedMessage,
    /// The 64-bit payload length had its most significant bit set.
    #[error("the peer sent a 64-bit payload length with the most significant bit set")]
    LengthTopBitSet,
    /// A close frame with exactly one byte of payload.
    #[error("the peer sent a close frame with a 1-byte payload (a close code needs 2)")]
    CloseFrameOneByte,
    /// A close code that must not appear on the wire.
    #[error("the peer sent close code {0}, which must not be sent in a close frame")]
    InvalidCloseCode(u16),
    /// The reason in a close frame was not valid UTF-8.
    #[error("the peer sent a close reason that is not valid UTF-8")]
    InvalidCloseReason,
    /// A text message (or a fragment of one) was not valid UTF-8.
    #[error("the peer sent a text message that is not valid UTF-8")]
    InvalidUtf8,
    /// A frame's declared length exceeds `max_frame_size`.
    #[error("the peer sent a {len}-byte frame, over the {max}-byte max_frame_size limit (raise it in the config if such frames are expected)")]
    FrameTooLarge {
        /// The length the frame header declared.
        len: u64,
        /// The configured limit.
        max: usize,
    },
    /// A message's total length exceeds `max_message_size`.
    #[error("the peer sent a message of at least {len} bytes, over the {max}-byte max_message_size limit (raise it in the config if such messages are expected)")]
    MessageTooLarge {
        /// The size the message reached (or announced) when it was refused.
        len: u64,
        /// The configured limit.
        max: usize,
    },
    /// RSV1 (compressed) on a control frame or a continuation frame:
    /// permessage-deflate allows it on the first frame of a data message
    /// only (RFC 7692 §6.1).
    #[error("the peer set RSV1 (compressed) on a {0:?} frame; permessage-deflate allows it only on the first frame of a data message")]
    MisplacedRsv1(OpCode),
    /// A compressed message that does not inflate.
    #[error("the peer sent a compressed message that is not valid deflate data")]
    InvalidCompressedData,
}

impl ProtocolError {
    /// The close code to fail the connection with (RFC 6455 §7.4.1).
    ///
    /// ```
    /// use floodgate_proto::{ProtocolError, CloseCode};
    /// assert_eq!(ProtocolError::InvalidUtf8.close_code(), CloseCode::INVALID_PAYLOAD);
    /// assert_eq!(ProtocolError::ReservedOpcode(3).close_code(), CloseCode::PROTOCOL_ERROR);
    /// ```
    pub fn close_code(&self) -> CloseCode {
        match self {
            ProtocolError::InvalidUtf8
            | ProtocolError::InvalidCloseReason
            | ProtocolError::InvalidCompressedData => CloseCode::INVALID_PAYLOAD,
            ProtocolError::FrameTooLarge { .. } | ProtocolError::MessageTooLarge { .. } => {
                CloseCode::MESSAGE_TOO_BIG
            }
            _ => CloseCode::PROTOCOL_ERROR,
        }
    }

    /// The close frame that fails a connection with this error: its code,
    /// and its text as the reason, cut to the 123 bytes a close frame
    /// allows (at a character boundary).
    ///
    /// ```
    /// use floodgate_proto::{CloseCode, ProtocolError};
    /// let frame = ProtocolError::InvalidUtf8.close_frame();
    /// assert_eq!(frame.code, CloseCode::INVALID_PAYLOAD);
    /// assert!(frame.reason.len() <= 123);
    /// ```
    pub fn close_frame(&self) -> CloseFrame {
        let mut reason = self.to_string();
        if reason.len() > MAX_CLOSE_REASON {
            let mut end = MAX_CLOSE_REASON;
            while !reason.is_char_boundary(end) {
                end -= 1;
            }
            reason.truncate(end);
        }
        CloseFrame::new(self.close_code(), reason)
    }
}

/// The server's answer to the opening handshake was not an acceptable
/// WebSocket upgrade.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The response head grew past the configured limit without ending.
    #[error("the handshake response head exceeds {limit} bytes; the server is not answering like a WebSocket server")]
    ResponseTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The response head has more header lines than the parser accepts.
    #[error("the handshake response has more than {limit} headers")]
    TooManyHeaders {
        /// The limit on header lines.
        limit: usize,
    },
    /// The response is not valid HTTP/1.1.
    #[error("the handshake response is not valid HTTP: {0}; is this a WebSocket server?")]
    MalformedResponse(String),
    /// The server answered with another status than 101.
    #[error("the server answered the upgrade with HTTP {status} instead of 101 Switching Protocols{}", body_hint(.body))]
    UnexpectedStatus {
        /// The status the server sent.
        status: StatusCode,
        /// The reason phrase the server sent with it (may be empty).
        reason: String,
        /// The response headers.
        headers: Box<HeaderMap>,
        /// The start of the response body (at most a few KiB).
        body: Bytes,
    },
    /// `Upgrade: websocket` missing or wrong.
    #[error("the 101 response lacks `Upgrade: websocket` (got {0:?})")]
    BadUpgradeHeader(Option<String>),
    /// `Connection: Upgrade` missing or wrong.
    #[error("the 101 response lacks `Connection: Upgrade` (got {0:?})")]
    BadConnectionHeader(Option<String>),
    /// `Sec-WebSocket-Accept` missing.
    #[error("the 101 response lacks Sec-WebSocket-Accept")]
    MissingAccept,
    /// `Sec-WebSocket-Accept` does not match the key that was sent.
    #[error("Sec-WebSocket-Accept is {got:?} but the key sent requires {expected:?}; a proxy or server is mangling the handshake")]
    WrongAccept {
        /// The value derived from the key sent.
        expected: String,
        /// The value received.
        got: String,
    },
    /// The server selected a subprotocol the client did not offer.
    #[error("the server selected subprotocol {0:?}, which the client did not offer")]
    UnofferedSubprotocol(String),
    /// The server accepted an extension the client did not offer.
    #[error("the server accepted extension {0:?}, which the client did not offer")]
    UnofferedExtension(String),
    /// The server's permessage-deflate answer breaks RFC 7692 or does not
    /// fit the client's offer.
    #[error("the server's Sec-WebSocket-Extensions {response:?} is not an acceptable answer to the client's permessage-deflate offer: {error}; connect without compression if the server cannot negotiate it")]
    InvalidExtension {
        /// The server's `Sec-WebSocket-Extensions` value(s).
        response: String,
        /// What is wrong with it.
        #[source]
        error: ExtensionError,
    },
    /// The permessage-deflate configuration has a value out of range.
    #[error("invalid permessage-deflate configuration: {0}")]
    InvalidDeflateConfig(#[from] DeflateConfigError),
    /// A header value in the request could not be encoded.
    #[error("request header {name:?} has an invalid value: {reason}")]
    InvalidRequestHeader {
        /// The header name.
        name: String,
        /// Why it is invalid.
        reason: String,
    },
}

fn body_hint(body: &Bytes) -> String {
    if body.is_empty() {
        return String::new();
    }
    let shown = &body[..body.len().min(200)];
    format!("; body starts: {:?}", String::from_utf8_lossy(shown))
}

/// The application asked for something the protocol does not allow. Nothing
/// was sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UsageError {
    /// Control frame payloads are limited to 125 bytes.
    #[error("a control frame payload is limited to 125 bytes, got {0}")]
    ControlPayloadTooLong(usize),
    /// Control frames cannot be fragmented.
    #[error("control frames cannot be fragmented (fin must be true)")]
    FragmentedControlFrame,
    /// This close code must not be sent (1005, 1006, 1015, reserved ranges).
    #[error("close code {0} must not be sent; use 1000-1003, 1007-1014 or 3000-4999")]
    UnsendableCloseCode(u16),
    /// Close reasons are limited to 123 bytes.
    #[error("a close reason is limited to 123 bytes, got {0}")]
    CloseReasonTooLong(usize),
    /// The close handshake has started: no more data can be sent.
    #[error("the connection is closing or closed: no more messages can be sent")]
    Closed,
    /// A continuation frame was sent with no fragmented message open, a
    /// new message was started inside one, or a frame given in pieces
    /// ([`Protocol::start_frame`](crate::Protocol::start_frame)) was
    /// misused.
    #[error("frame sequence error: {0}")]
    BadFragmentSequence(&'static str),
    /// The compressor failed (a bug: zlib refuses only misuse).
    #[error("compressing the message failed: {0}")]
    CompressionFailed(String),
}
