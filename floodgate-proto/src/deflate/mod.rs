//! permessage-deflate (RFC 7692): compression of whole messages.
//!
//! Three pieces, all without I/O:
//!
//! - [`DeflateConfig`]: what the client asks for. [`DeflateConfig::offer`]
//!   is the `Sec-WebSocket-Extensions` value of the upgrade request.
//! - [`negotiate`]: the check of the server's answer against the offer
//!   (RFC 7692 §7: unknown, repeated or out-of-range parameters, and
//!   answers the client did not offer, fail the handshake with an
//!   [`ExtensionError`]) and the parameters both sides then use, a
//!   [`PerMessageDeflate`].
//! - The codec, inside [`Protocol`](crate::Protocol) once
//!   [`Protocol::set_deflate`](crate::Protocol::set_deflate) gave it the
//!   negotiated parameters: outgoing data messages at or over the
//!   threshold are compressed (RSV1 on the first frame, the trailing
//!   `00 00 ff ff` removed), incoming messages with RSV1 are inflated in
//!   bounded steps against `max_message_size`, so a compression bomb fails
//!   with close code 1009 after at most the limit was produced.
//!
//! # Window bits and zlib
//!
//! The codec is zlib's, through `flate2` with the pure-Rust `zlib-rs`
//! backend: raw deflate with a chosen window needs one of `flate2`'s zlib
//! backends (its default, `miniz_oxide`, always uses 32 KiB), and zlib-rs
//! is the one that needs no C compiler and is at least as fast as C zlib.
//! zlib cannot *compress* raw deflate with an 8-bit (256-byte) window. When the server limits the client to
//! `client_max_window_bits=8`, the client compresses with 9 bits: zlib
//! never emits a match further back than the window size less
//! `MIN_LOOKAHEAD` (262 bytes), which for a 512-byte window is 250 bytes,
//! inside the 256-byte window the server keeps. Inflating has no such
//! limit in zlib, but `flate2` only takes 9 to 15; a larger inflate window
//! than the peer's decodes the same stream, so 8 is inflated with 9.
//!
//! # Not provided
//!
//! Other extensions (none is registered that servers use), and the
//! `x-webkit-deflate-frame` draft. Compression is per message; a message
//! is never split into frames by the compressor.

mod codec;
mod negotiate;

pub(crate) use codec::DeflateState;
pub use negotiate::{accept_offers, negotiate, ExtensionError};

use std::fmt;

/// The extension token.
pub const EXTENSION_NAME: &str = "permessage-deflate";

/// The reserved bit permessage-deflate owns (RSV1, in the three-bit `rsv`
/// of [`Frame`](crate::Frame) where RSV1 is the highest).
pub const RSV1: u8 = 0b100;

/// Default [`DeflateConfig::threshold`]: 64 bytes.
pub const DEFAULT_THRESHOLD: usize = 64;

/// Default [`DeflateConfig::level`]: zlib's default, 6.
pub const DEFAULT_LEVEL: u32 = 6;

/// What the client offers for permessage-deflate, and how it compresses.
///
/// The default offer is
/// `permessage-deflate; client_no_context_takeover; client_max_window_bits`
/// followed by the fallback `permessage-deflate; client_max_window_bits`:
/// the client compresses every message on its own (no context kept between
/// messages: less memory on the server, and the offer a server that wants
/// it may accept), lets the server limit the client's window, and lets the
/// server keep its own context and full window, which is what makes
/// incoming data small.
///
/// ```
/// use floodgate_proto::deflate::DeflateConfig;
///
/// assert_eq!(
///     DeflateConfig::default().offer(),
///     "permessage-deflate; client_no_context_takeover; client_max_window_bits, \
///      permessage-deflate; client_max_window_bits"
/// );
/// let small = DeflateConfig::default()
///     .server_max_window_bits(Some(10))
///     .client_no_context_takeover(false);
/// assert_eq!(
///     small.offer(),
///     "permessage-deflate; client_max_window_bits; server_max_window_bits=10, \
///      permessage-deflate; client_max_window_bits"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeflateConfig {
    /// The largest window the client compresses with, 8 to 15 (default
    /// 15). Below 15 it is offered as `client_max_window_bits=N`; at 15 as
    /// a bare `client_max_window_bits`, which lets the server choose.
    pub client_max_window_bits: u8,
    /// Asks the server to compress with at most this window, 8 to 15
    /// (default `None`: the server chooses). Saves memory on the client
    /// (the inflate window) at the cost of compression of what it receives.
    pub server_max_window_bits: Option<u8>,
    /// The client compresses each message on its own (default true).
    /// Offered as `client_no_context_takeover`; the client then keeps no
    /// context even when the server's answer leaves the parameter out.
    pub client_no_context_takeover: bool,
    /// Asks the server to compress each message on its own (default
    /// false: the server's context makes repetitive feeds much smaller).
    pub server_no_context_takeover: bool,
    /// Outgoing data messages shorter than this many bytes are sent
    /// uncompressed (default [`DEFAULT_THRESHOLD`]); 0 compresses all. For
    /// a message sent in fragments, the first fragment's length decides.
    pub threshold: usize,
    /// zlib compression level, 0 (store) to 9 (best); default
    /// [`DEFAULT_LEVEL`].
    pub level: u32,
}

impl Default for DeflateConfig {
    fn default() -> Self {
        DeflateConfig {
            client_max_window_bits: 15,
            server_max_window_bits: None,
            client_no_context_takeover: true,
            server_no_context_takeover: false,
            threshold: DEFAULT_THRESHOLD,
            level: DEFAULT_LEVEL,
        }
    }
}

impl DeflateConfig {
    /// The default configuration (see the type's documentation).
    pub fn new() -> DeflateConfig {
        DeflateConfig::default()
    }

    /// Sets [`client_max_window_bits`](Self::client_max_window_bits).
    pub fn client_max_window_bits(mut self, bits: u8) -> Self {
        self.client_max_window_bits = bits;
        self
    }

    /// Sets [`server_max_window_bits`](Self::server_max_window_bits).
    pub fn server_max_window_bits(mut self, bits: Option<u8>) -> Self {
        self.server_max_window_bits = bits;
        self
    }

    /// Sets [`client_no_context_takeover`](Self::client_no_context_takeover).
    pub fn client_no_context_takeover(mut self, on: bool) -> Self {
        self.client_no_context_takeover = on;
        self
    }

    /// Sets [`server_no_context_takeover`](Self::server_no_context_takeover).
    pub fn server_no_context_takeover(mut self, on: bool) -> Self {
        self.server_no_context_takeover = on;
        self
    }

    /// Sets [`threshold`](Self::threshold).
    pub fn threshold(mut self, bytes: usize) -> Self {
        self.threshold = bytes;
        self
    }

    /// Sets [`level`](Self::level).
    pub fn level(mut self, level: u32) -> Self {
        self.level = level;
        self
    }

    /// Checks the window sizes and the level.
    ///
    /// ```
    /// use floodgate_proto::deflate::DeflateConfig;
    /// assert!(DeflateConfig::default().validate().is_ok());
    /// assert!(DeflateConfig::default().client_max_window_bits(7).validate().is_err());
    /// assert!(DeflateConfig::default().level(10).validate().is_err());
    /// ```
    ///
    /// # Errors
    ///
    /// [`DeflateConfigError`] naming the value out of range.
    pub fn validate(&self) -> Result<(), DeflateConfigError> {
        let bits = [
            ("client_max_window_bits", Some(self.client_max_window_bits)),
            ("server_max_window_bits", self.server_max_window_bits),
        ];
        for (name, value) in bits {
            if let Some(value) = value {
                if !(8..=15).contains(&value) {
                    return Err(DeflateConfigError::WindowBits { name, value });
                }
            }
        }
        if self.level > 9 {
            return Err(DeflateConfigError::Level(self.level));
        }
        Ok(())
    }

    /// The `Sec-WebSocket-Extensions` value that offers this configuration:
    /// the offer with every parameter, then, when that one has more than
    /// `client_max_window_bits`, the plain fallback
    /// `permessage-deflate; client_max_window_bits` for servers that
    /// decline the first.
    pub fn offer(&self) -> String {
        let offers = self.offers();
        let mut out = String::new();
        for (i, offer) in offers.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            out.push_str(&offer.to_string());
        }
        out
    }

    /// The offers, best first.
    pub(crate) fn offers(&self) -> Vec<Offer> {
        let primary = Offer {
            client_no_context_takeover: self.client_no_context_takeover,
            server_no_context_takeover: self.server_no_context_takeover,
            client_max_window_bits: Some(self.client_max_window_bits),
            server_max_window_bits: self.server_max_window_bits,
        };
        let fallback = Offer {
            client_no_context_takeover: false,
            server_no_context_takeover: false,
            client_max_window_bits: Some(15),
            server_max_window_bits: None,
        };
        if primary == fallback {
            vec![primary]
        } else {
            vec![primary, fallback]
        }
    }
}

/// One offer in the request. `client_max_window_bits: Some(15)` is the
/// bare parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Offer {
    pub(crate) client_no_context_takeover: bool,
    pub(crate) server_no_context_takeover: bool,
    pub(crate) client_max_window_bits: Option<u8>,
    pub(crate) server_max_window_bits: Option<u8>,
}

impl fmt::Display for Offer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(EXTENSION_NAME)?;
        if self.client_no_context_takeover {
            f.write_str("; client_no_context_takeover")?;
        }
        if self.server_no_context_takeover {
            f.write_str("; server_no_context_takeover")?;
        }
        match self.client_max_window_bits {
            Some(15) => f.write_str("; client_max_window_bits")?,
            Some(bits) => write!(f, "; client_max_window_bits={bits}")?,
            None => {}
        }
        if let Some(bits) = self.server_max_window_bits {
            write!(f, "; server_max_window_bits={bits}")?;
        }
        Ok(())
    }
}

/// A [`DeflateConfig`] value out of range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeflateConfigError {
    /// A window size outside 8..=15.
    #[error("permessage-deflate {name} must be 8 to 15, got {value}")]
    WindowBits {
        /// The parameter.
        name: &'static str,
        /// The value given.
        value: u8,
    },
    /// A compression level over 9.
    #[error("permessage-deflate compression level must be 0 to 9, got {0}")]
    Level(u32),
}

/// permessage-deflate as negotiated: what each side compresses with.
///
/// Made by [`negotiate`] (client) or [`accept_offers`] (server); shown
/// with `Display` in the form of a response header.
///
/// ```
/// use floodgate_proto::deflate::{negotiate, DeflateConfig};
/// let config = DeflateConfig::default();
/// let pmd = negotiate(&config, ["permessage-deflate; server_max_window_bits=12"])
///     .unwrap()
///     .unwrap();
/// assert_eq!(pmd.server_max_window_bits, 12);
/// assert!(pmd.client_no_context_takeover); // the client's own choice
/// assert_eq!(
///     pmd.to_string(),
///     "permessage-deflate; client_no_context_takeover; server_max_window_bits=12"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PerMessageDeflate {
    /// The client resets its compressor after every message.
    pub client_no_context_takeover: bool,
    /// The server resets its compressor after every message.
    pub server_no_context_takeover: bool,
    /// The largest window the client compresses with (8 to 15).
    pub client_max_window_bits: u8,
    /// The largest window the server compresses with (8 to 15).
    pub server_max_window_bits: u8,
    /// This side's threshold: shorter outgoing messages go uncompressed.
    pub threshold: usize,
    /// This side's zlib compression level.
    pub level: u32,
}

impl Default for PerMessageDeflate {
    /// Both sides with full windows and context takeover, threshold and
    /// level at their defaults.
    fn default() -> Self {
        PerMessageDeflate {
            client_no_context_takeover: false,
            server_no_context_takeover: false,
            client_max_window_bits: 15,
            server_max_window_bits: 15,
            threshold: DEFAULT_THRESHOLD,
            level: DEFAULT_LEVEL,
        }
    }
}

impl fmt::Display for PerMessageDeflate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(EXTENSION_NAME)?;
        if self.client_no_context_takeover {
            f.write_str("; client_no_context_takeover")?;
        }
        if self.server_no_context_takeover {
            f.write_str("; server_no_context_takeover")?;
        }
        if self.client_max_window_bits < 15 {
            write!(
                f,
                "; client_max_window_bits={}",
                self.client_max_window_bits
            )?;
        }
        if self.server_max_window_bits < 15 {
            write!(
                f,
                "; server_max_window_bits={}",
                self.server_max_window_bits
            )?;
        }
        Ok(())
    }
}
