//! The TLS settings of `wss://` connections, as data: [`TlsOptions`] and
//! [`RootCertificates`]. They are here, with the other options, because
//! [`Options`](crate::Options) holds them and the TLS code (`crate::tls`,
//! in `dial/`) reads `Options`; public as `floodgate::tls::{TlsOptions,
//! RootCertificates}`, re-exported from there.

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ClientConfig;
use std::fmt;
use std::sync::Arc;

/// Which root certificates verify the server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum RootCertificates {
    /// The platform's trust store (on Linux, the CA bundle of the
    /// distribution, e.g. `/etc/ssl/certs`; `SSL_CERT_FILE` and
    /// `SSL_CERT_DIR` are honoured). The default.
    #[default]
    Platform,
    /// The Mozilla root program's certificates compiled into the binary
    /// (`webpki-roots`): the same trust everywhere, updated with floodgate.
    Mozilla,
    /// None: only the CA certificates added with
    /// [`ClientBuilder::add_root_certificates_pem`](crate::ClientBuilder::add_root_certificates_pem).
    None,
}

/// TLS options of `wss://` connections; set them through
/// [`crate::ClientBuilder`] (`tls_roots`, `add_root_certificates_pem`,
/// `ca_file`, `client_certificate_pem`, `tls_server_name`, `tls_config`,
/// `dangerous_skip_certificate_verification`).
///
/// ```no_run
/// let ws = floodgate::Client::builder()
///     .ca_file("/etc/myapp/internal-ca.pem")
///     .client_certificate_files("/etc/myapp/client.pem", "/etc/myapp/client.key")
///     .connect("wss://internal.example:8443/feed")?;
/// # Ok::<(), floodgate::Error>(())
/// ```
#[derive(Clone, Default)]
pub struct TlsOptions {
    /// The root certificates that verify the server.
    pub roots: RootCertificates,
    /// CA certificates trusted beside the roots (DER).
    pub extra_roots: Vec<CertificateDer<'static>>,
    /// The certificate chain and key shown to a server that asks for one.
    pub client_certificate: Option<(Vec<CertificateDer<'static>>, Arc<PrivateKeyDer<'static>>)>,
    /// The name to verify and send as SNI instead of the URL's host.
    pub server_name: Option<String>,
    /// Send SNI. Default on (`None` means on).
    pub sni: Option<bool>,
    /// Accept any certificate. For tests against throwaway certificates
    /// only: anyone on the path can read and change the traffic.
    pub skip_verification: bool,
    /// A rustls configuration to use as is; every other field but
    /// `server_name` is then ignored.
    pub config: Option<Arc<ClientConfig>>,
}

impl fmt::Debug for TlsOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsOptions")
            .field("roots", &self.roots)
            .field("extra_roots", &self.extra_roots.len())
            .field(
                "client_certificate",
                &self
                    .client_certificate
                    .as_ref()
                    .map(|(chain, _)| chain.len()),
            )
            .field("server_name", &self.server_name)
            .field("sni", &self.sni)
            .field("skip_verification", &self.skip_verification)
            .field("config", &self.config.is_some())
            .finish()
    }
}
