//! What can go wrong on the server's side of a connection.
//!
//! The server has its own error type rather than the client's: it is a
//! separate crate that does not depend on `floodgate`, and its failures are
//! told from the server's point of view ("the client closed", "the client
//! broke the protocol").

use floodgate_proto::{CloseFrame, HandshakeError, ProtocolError, UsageError};
use std::io;
use std::time::Duration;

/// An error of the embedded server, of its handshake or of one of its
/// connections.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The listening socket could not be bound.
    #[error(
        "cannot bind the server's address: {0} (is the port in use, or the address not local?)"
    )]
    Bind(#[source] io::Error),
    /// The request was not a valid WebSocket upgrade (or its head was over
    /// `max_handshake_size`); it was answered with 400 Bad Request.
    #[error("the client's upgrade request was refused with 400 Bad Request: {0}")]
    BadRequest(#[source] HandshakeError),
    /// The client went away before its upgrade request was complete.
    #[error("the client closed the connection during the handshake")]
    ClientLeftDuringHandshake,
    /// The TLS handshake with the client failed (not a TLS client, no
    /// common cipher suite, an alert from the client).
    #[error("the TLS handshake with the client failed: {0}")]
    Tls(#[source] io::Error),
    /// A deadline passed.
    #[error("timed out {0}")]
    Timeout(Timeout),
    /// The client broke the protocol; the connection was failed with the
    /// error's close code (see [`ProtocolError::close_code`]).
    #[error("the client broke the protocol: {0} (failed with close code {code})", code = .0.close_code())]
    Protocol(#[source] ProtocolError),
    /// The handler asked for something the protocol forbids (a close code
    /// that must not be sent, a control payload over 125 bytes, a frame
    /// out of sequence, a send after the close); nothing was sent.
    #[error("not allowed by the WebSocket protocol: {0}")]
    Usage(#[from] UsageError),
    /// The client closed the connection with this frame (its close was
    /// answered).
    #[error("the client closed the connection{}", closed_with(.0))]
    ConnectionClosed(Option<CloseFrame>),
    /// The connection ended before: a later call has nothing to act on.
    #[error("the connection is already closed")]
    AlreadyClosed,
    /// The client's end of the TCP connection closed without a close
    /// frame (close code 1006 on this side).
    #[error("the client's connection ended without a close frame (1006)")]
    AbnormalClosure,
    /// Any other I/O error of the socket.
    #[error("I/O error on the connection: {0}")]
    Io(#[from] io::Error),
}

fn closed_with(frame: &Option<CloseFrame>) -> String {
    match frame {
        Some(frame) => format!(" with {frame}"),
        None => " (no status code)".to_owned(),
    }
}

/// Which deadline passed, with the option that sets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Timeout {
    /// The TLS or WebSocket handshake took longer than
    /// [`Options::handshake_timeout`](crate::Options::handshake_timeout).
    Handshake(Duration),
    /// No data within the read timeout
    /// ([`Options::read_timeout`](crate::Options::read_timeout) or
    /// [`WebSocket::set_read_timeout`](crate::WebSocket::set_read_timeout));
    /// the connection stays usable.
    Read,
    /// A write did not complete within the write timeout; its unsent rest
    /// goes out first with the next send.
    Write,
    /// The client did not answer the server's close within
    /// [`Options::close_timeout`](crate::Options::close_timeout).
    Close(Duration),
}

impl std::fmt::Display for Timeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Timeout::Handshake(t) => write!(f, "in the handshake after {t:?} (handshake_timeout)"),
            Timeout::Read => f.write_str("waiting for data from the client (read timeout)"),
            Timeout::Write => f.write_str("writing to the client (write timeout)"),
            Timeout::Close(t) => {
                write!(
                    f,
                    "waiting {t:?} for the client's close frame (close_timeout)"
                )
            }
        }
    }
}

impl Error {
    /// The client's close frame, when the client closed the connection.
    pub fn close_frame(&self) -> Option<&CloseFrame> {
        match self {
            Error::ConnectionClosed(frame) => frame.as_ref(),
            _ => None,
        }
    }

    /// Whether a deadline passed.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout(_))
    }

    /// Whether the connection ended by a close handshake, from either
    /// side ([`ConnectionClosed`](Error::ConnectionClosed) or
    /// [`AlreadyClosed`](Error::AlreadyClosed)).
    pub fn is_closed(&self) -> bool {
        matches!(self, Error::ConnectionClosed(_) | Error::AlreadyClosed)
    }
}

/// A [`Result`](std::result::Result) with the server's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why [`server_config_from_pem`](crate::tls::server_config_from_pem)
/// could not make a TLS configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsConfigError {
    /// The certificate chain is not valid PEM.
    #[error("the server certificate is not valid PEM: {0}")]
    CertificatePem(#[source] rustls_pki_types::pem::Error),
    /// The PEM holds no `CERTIFICATE` block.
    #[error("no PEM \"CERTIFICATE\" block in the server certificate")]
    NoCertificate,
    /// No PKCS#8, PKCS#1 or SEC1 private key could be read.
    #[error("no usable PEM private key in the server key: {0}")]
    PrivateKey(#[source] rustls_pki_types::pem::Error),
    /// rustls refused the pair (e.g. the key does not match the
    /// certificate, or the key type is not supported).
    #[error("rustls refused the server certificate and key: {0}")]
    Rejected(#[source] rustls::Error),
}
