//! [`TlsFailure`]: which TLS check failed, inside
//! [`ErrorKind::Tls`](crate::ErrorKind::Tls). It lives with the errors (and
//! is re-exported as `floodgate::tls::TlsFailure`) so that the error types
//! do not depend on the TLS module that produces them.

use std::fmt;

/// Which TLS check failed, for [`ErrorKind::Tls`](crate::ErrorKind::Tls).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum TlsFailure {
    /// The server's certificate chain does not lead to a trusted root.
    UnknownIssuer,
    /// The certificate does not name the host connected to.
    WrongHostname {
        /// The name checked.
        expected: String,
        /// The names the certificate holds (may be empty when rustls did
        /// not report them).
        presented: Vec<String>,
    },
    /// The certificate's validity ended.
    Expired,
    /// The certificate is not valid yet (or the local clock is wrong).
    NotYetValid,
    /// The certificate was revoked.
    Revoked,
    /// The certificate or its chain is malformed, badly signed, or not for
    /// a TLS server.
    BadCertificate(rustls::CertificateError),
    /// The server showed no certificate.
    NoCertificate,
    /// The server asked for a client certificate and none was configured,
    /// or it rejected the one shown: the alert it sent.
    ClientCertificateRejected(rustls::AlertDescription),
    /// The server closed the connection in the middle of the TLS handshake
    /// (it may not be a TLS server).
    ClosedInHandshake,
    /// Another handshake failure (no common protocol version or cipher,
    /// a TLS alert, a peer that does not speak TLS).
    Handshake(rustls::Error),
}

impl fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsFailure::UnknownIssuer => f.write_str(
                "the server's certificate is not signed by a trusted certificate authority \
                 (add its CA with ClientBuilder::ca_file / --ca-file)",
            ),
            TlsFailure::WrongHostname {
                expected,
                presented,
            } => {
                write!(f, "the server's certificate is not valid for {expected:?}")?;
                if !presented.is_empty() {
                    write!(f, " (it names {})", presented.join(", "))?;
                }
                f.write_str("; connect with the name the certificate holds")
            }
            TlsFailure::Expired => f.write_str("the server's certificate has expired"),
            TlsFailure::NotYetValid => {
                f.write_str("the server's certificate is not valid yet (check the system clock)")
            }
            TlsFailure::Revoked => f.write_str("the server's certificate was revoked"),
            TlsFailure::BadCertificate(why) => {
                write!(f, "the server's certificate was rejected: invalid peer certificate: {why}")
            }
            TlsFailure::NoCertificate => {
                f.write_str("the server's certificate was rejected: no certificate")
            }
            TlsFailure::ClientCertificateRejected(alert) => write!(
                f,
                "the server requires a client certificate and did not accept ours (alert {alert:?}); \
                 set one with ClientBuilder::client_certificate_files / --cert"
            ),
            TlsFailure::ClosedInHandshake => f.write_str(
                "the TLS handshake failed: the server closed the connection during the TLS \
                 handshake (is it a TLS server?)",
            ),
            TlsFailure::Handshake(why) => write!(f, "the TLS handshake failed: {why}"),
        }
    }
}
