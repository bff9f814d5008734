//! Why a configuration was refused: [`ConfigError`], inside
//! [`ErrorKind::Config`](super::ErrorKind::Config).
//!
//! One variant per invalid option or combination, with the values given,
//! so that a program (or a test) can tell which option to change without
//! reading the message, and the message can say what to change. Options
//! are checked when a client or App is built, before any connection is
//! made.

use crate::buffer::BufferConfigError;
use floodgate_proto::deflate::DeflateConfigError;
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

/// An invalid option or combination of options.
///
/// `Clone`, so that a [`crate::ClientBuilder`] holding one stays `Clone`
/// (the sources that are not `Clone` are shared behind an [`Arc`]).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A request header whose name or value is not valid HTTP.
    #[error("header {name:?}: {value:?} is not a valid HTTP header; header names are tokens and values visible ASCII")]
    InvalidHeader {
        /// The name given.
        name: String,
        /// The value given.
        value: String,
    },
    /// `read_chunk_size` is 0.
    #[error("read_chunk_size must be at least 1 byte")]
    ReadChunkSizeZero,
    /// `max_handshake_size` is below 128 bytes.
    #[error("max_handshake_size of {size} bytes cannot hold a handshake; give at least 128 bytes")]
    MaxHandshakeSizeTooSmall {
        /// The size given.
        size: usize,
    },
    /// `max_frame_size` is larger than `max_message_size`.
    #[error("max_frame_size ({max_frame_size}) is larger than max_message_size ({max_message_size}); lower max_frame_size too")]
    FrameLargerThanMessage {
        /// The frame size limit given.
        max_frame_size: usize,
        /// The message size limit given.
        max_message_size: usize,
    },
    /// `recv_buffer_size` or `send_buffer_size` is 0.
    #[error("socket buffer sizes (recv_buffer_size, send_buffer_size) must be above 0; leave them unset for the system's default")]
    SocketBufferSizeZero,
    /// The buffer's limits or policies cannot work.
    #[error("{0}")]
    Buffer(#[from] BufferConfigError),
    /// The permessage-deflate options are out of range.
    #[error("{0}")]
    Compression(#[from] DeflateConfigError),
    /// A proxy URL cannot be used.
    #[error("proxy URL {url:?}: {reason}")]
    ProxyUrl {
        /// The URL, with any password replaced.
        url: String,
        /// What is wrong with it.
        reason: ProxyConfigError,
    },
    /// A proxy (given as a [`crate::Proxy`]) cannot be used.
    #[error("proxy {proxy}: {reason}")]
    Proxy {
        /// The proxy, without its credentials.
        proxy: String,
        /// What is wrong with it.
        reason: ProxyConfigError,
    },
    /// A proxy variable of the environment (`http_proxy`, ...) holds a
    /// proxy URL that cannot be used.
    #[error("the environment variable {variable}: proxy URL {url:?}: {reason}; fix or unset it, or turn proxy_from_env off")]
    ProxyEnv {
        /// The variable.
        variable: &'static str,
        /// Its value, with any password replaced.
        url: String,
        /// What is wrong with it.
        reason: ProxyConfigError,
    },
    /// A TLS option cannot be used.
    #[error("TLS: {0}")]
    Tls(#[from] TlsConfigError),
    /// An App's `ping_timeout` without a `ping_interval`.
    #[error("ping_timeout needs a ping_interval")]
    PingTimeoutWithoutInterval,
    /// An App's `ping_interval` of zero.
    #[error("ping_interval must be above zero")]
    PingIntervalZero,
    /// An App's ping payload over 125 bytes (a control frame's limit).
    #[error("a ping payload is limited to 125 bytes, this one has {len}")]
    PingPayloadTooLong {
        /// The payload's length.
        len: usize,
    },
    /// An App's `workers_by_key` with no worker.
    #[error("workers_by_key needs at least 1 worker; set workers(n) too")]
    WorkersByKeyWithoutWorkers,
}

/// Why a proxy URL or [`crate::Proxy`] cannot be used, in
/// [`ConfigError::ProxyUrl`], [`ConfigError::Proxy`] and
/// [`ConfigError::ProxyEnv`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyConfigError {
    /// An `https://` proxy: TLS to the proxy itself.
    #[error("https:// proxies (TLS to the proxy itself) are not supported; use http://, socks4://, socks4a://, socks5:// or socks5h://")]
    HttpsProxy,
    /// A scheme that names no proxy protocol.
    #[error("unknown scheme {scheme:?}; use http, socks4, socks4a, socks5 or socks5h")]
    UnknownScheme {
        /// The scheme given.
        scheme: String,
    },
    /// Not a URL.
    #[error("{0}")]
    Url(#[from] url::ParseError),
    /// A path, query or fragment after the host.
    #[error("a proxy URL has no path or query: write scheme://host:port")]
    PathOrQuery,
    /// No host.
    #[error("no host")]
    NoHost,
    /// Port 0.
    #[error("port 0")]
    PortZero,
    /// User or password not valid percent-encoded UTF-8.
    #[error("the user or password is not valid percent-encoded UTF-8")]
    Credentials,
    /// A password for SOCKS4, which has none.
    #[error("SOCKS4 has no passwords: give only a user id (socks4://userid@host:port), or use socks5://")]
    Socks4Password,
    /// SOCKS5 credentials over 255 bytes.
    #[error("SOCKS5 user names and passwords are limited to 255 bytes (RFC 1929)")]
    Socks5CredentialsTooLong,
    /// An empty SOCKS5 user name.
    #[error("SOCKS5 user name is empty (RFC 1929 needs at least 1 byte)")]
    Socks5EmptyUser,
}

/// Why a TLS option cannot be used, in [`ConfigError::Tls`].
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum TlsConfigError {
    /// A PEM file could not be read.
    #[error("{item} file {}: {source}", path.display())]
    ReadFile {
        /// What the file was to hold.
        item: PemItem,
        /// The path given.
        path: PathBuf,
        /// The error reading it.
        #[source]
        source: Arc<io::Error>,
    },
    /// PEM text that does not parse as certificates.
    #[error("{item}: not valid PEM certificates: {source}")]
    Certificates {
        /// What the PEM was to hold.
        item: PemItem,
        /// The parser's error.
        #[source]
        source: Arc<rustls_pki_types::pem::Error>,
    },
    /// PEM text without a `CERTIFICATE` block.
    #[error("{item}: no PEM \"CERTIFICATE\" block found")]
    NoCertificate {
        /// What the PEM was to hold.
        item: PemItem,
    },
    /// PEM text without a usable private key (PKCS#8, PKCS#1 or SEC1).
    #[error("{item}: no usable PEM private key: {source}")]
    PrivateKey {
        /// What the PEM was to hold.
        item: PemItem,
        /// The parser's error.
        #[source]
        source: Arc<rustls_pki_types::pem::Error>,
    },
    /// The platform's trust store gave no root certificate.
    #[error(
        "no root certificate could be loaded from the platform's trust store{}; install the \
         ca-certificates package, set SSL_CERT_FILE, or use RootCertificates::Mozilla \
         (--tls-roots mozilla)",
        if errors.is_empty() { String::new() } else { format!(" ({})", errors.join("; ")) }
    )]
    NoPlatformRoots {
        /// What the loader reported, one entry per problem.
        errors: Vec<String>,
    },
    /// No root certificate at all: `RootCertificates::None` and no CA.
    #[error("no root certificate to verify servers with (RootCertificates::None and no CA added); add a CA or choose other roots")]
    NoRoots,
    /// A CA certificate that rustls cannot use as a trust anchor.
    #[error("a CA certificate cannot be used as a root: {0}")]
    BadRoot(#[source] rustls::Error),
    /// The client certificate and key do not fit together, or rustls
    /// cannot use them.
    #[error("the client certificate cannot be used: {0}")]
    ClientCertificate(#[source] rustls::Error),
    /// The embedded server's certificate and key do not fit together, or
    /// rustls cannot use them.
    #[error("the server certificate cannot be used: {0}")]
    ServerCertificate(#[source] rustls::Error),
    /// The name to verify the server for is not a DNS name or IP address.
    #[error("{name:?} is not a valid DNS name or IP address to verify; set tls_server_name to the name in the server's certificate")]
    InvalidServerName {
        /// The name (the URL's host or the configured server name).
        name: String,
    },
    /// rustls refused the protocol versions of its crypto provider.
    #[error("{0}")]
    Rustls(#[source] rustls::Error),
}

/// What a PEM file or text was to hold, in [`TlsConfigError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PemItem {
    /// CA certificates to trust beside the roots.
    CaCertificates,
    /// The client certificate chain (mutual TLS).
    ClientCertificate,
    /// The client's private key (mutual TLS).
    ClientKey,
    /// The embedded server's certificate chain.
    ServerCertificate,
    /// The embedded server's private key.
    ServerKey,
}

impl fmt::Display for PemItem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PemItem::CaCertificates => "CA certificates",
            PemItem::ClientCertificate => "client certificate",
            PemItem::ClientKey => "client key",
            PemItem::ServerCertificate => "server certificate",
            PemItem::ServerKey => "server key",
        })
    }
}
