//! `wss://`: TLS with rustls, its options, and a TLS transport that a
//! buffered connection's reader thread and its writers can share.
//!
//! What is checked by default: the server's certificate chain against the
//! platform's root certificates (`rustls-native-certs`), the host name of
//! the URL against the certificate (DNS names and IP addresses), and the
//! validity dates. SNI names the host; ALPN offers `http/1.1`, the only
//! protocol a WebSocket upgrade runs over. [`TlsOptions`] adds CA
//! certificates, a client certificate (mutual TLS), the bundled Mozilla
//! roots (`webpki-roots`) instead of the platform's, or a whole rustls
//! `ClientConfig`; and, for tests only, a loudly named switch that turns
//! verification off.
//!
//! Why the transport is written here rather than taken from
//! `rustls::StreamOwned`: a buffered connection reads on one thread while
//! any thread writes, and `StreamOwned` needs `&mut` for both. [`TlsStream`]
//! keeps the TLS session behind a mutex that is never held while waiting on
//! the socket: the reader waits for bytes without the lock, then decrypts
//! under it; a writer encrypts under it, then writes the records with only
//! the writers' lock held. So a writer blocked on a full socket never stops
//! the reader from draining the connection, which is what keeps pings
//! answered under load, as on plain TCP.

use crate::error::{ErrorKind, PemItem, Result, TimeoutKind, TlsConfigError};
use bytes::BytesMut;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, Connection, RootCertStore};
use std::fmt;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

// The TLS settings are defined with the other options (`Options` holds
// them), and public here.
pub use crate::options::{RootCertificates, TlsOptions};

/// Parses the PEM certificates in `pem` (every `CERTIFICATE` block).
pub(crate) fn certificates_from_pem(
    pem: &[u8],
    item: PemItem,
) -> std::result::Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| TlsConfigError::Certificates {
            item,
            source: Arc::new(e),
        })?;
    if certs.is_empty() {
        return Err(TlsConfigError::NoCertificate { item });
    }
    Ok(certs)
}

/// Parses the private key in `pem` (PKCS#8, PKCS#1 or SEC1).
pub(crate) fn private_key_from_pem(
    pem: &[u8],
    item: PemItem,
) -> std::result::Result<PrivateKeyDer<'static>, TlsConfigError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| TlsConfigError::PrivateKey {
        item,
        source: Arc::new(e),
    })
}

/// Reads a file for a TLS option, with the path in the error.
pub(crate) fn read_pem_file(
    path: &Path,
    item: PemItem,
) -> std::result::Result<Vec<u8>, TlsConfigError> {
    std::fs::read(path).map_err(|e| TlsConfigError::ReadFile {
        item,
        path: path.to_owned(),
        source: Arc::new(e),
    })
}

/// The platform's roots, loaded once per process (reading the system
/// bundle takes milliseconds and does not change under a running client).
fn platform_roots() -> Result<Arc<RootCertStore>> {
    // The loader's errors are kept as text: they are not `Clone`, and the
    // outcome is shared by every later call.
    static ROOTS: OnceLock<std::result::Result<Arc<RootCertStore>, Vec<String>>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let loaded = rustls_native_certs::load_native_certs();
            let mut store = RootCertStore::empty();
            let (added, _ignored) = store.add_parsable_certificates(loaded.certs);
            if added == 0 {
                return Err(loaded.errors.iter().map(|e| e.to_string()).collect());
            }
            Ok(Arc::new(store))
        })
        .clone()
        .map_err(|errors| TlsConfigError::NoPlatformRoots { errors }.into())
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    static PROVIDER: OnceLock<Arc<rustls::crypto::CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

/// The rustls configuration made on first use and kept, so that every
/// `wss://` connect through one holder (a [`Client`](crate::Client)'s
/// reconnects, the hops of one redirect chain) resumes TLS sessions.
#[derive(Debug, Default)]
pub(crate) struct ClientConfigCache(Mutex<Option<Arc<ClientConfig>>>);

impl ClientConfigCache {
    /// The configuration for `options`, made once.
    pub(crate) fn get(&self, options: &TlsOptions) -> Result<Arc<ClientConfig>> {
        let mut cached = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(config) = &*cached {
            return Ok(config.clone());
        }
        let config = client_config(options)?;
        *cached = Some(config.clone());
        Ok(config)
    }
}

/// Builds the rustls configuration for these options.
pub(crate) fn client_config(options: &TlsOptions) -> Result<Arc<ClientConfig>> {
    if let Some(config) = &options.config {
        return Ok(config.clone());
    }
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(TlsConfigError::Rustls)?;
    let builder = if options.skip_verification {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider())))
    } else {
        let mut roots = match options.roots {
            RootCertificates::Platform => (*platform_roots()?).clone(),
            RootCertificates::Mozilla => RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            },
            RootCertificates::None => RootCertStore::empty(),
        };
        for cert in &options.extra_roots {
            roots.add(cert.clone()).map_err(TlsConfigError::BadRoot)?;
        }
        if roots.is_empty() {
            return Err(TlsConfigError::NoRoots.into());
        }
        builder.with_root_certificates(roots)
    };
    let mut config = match &options.client_certificate {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain.clone(), key.clone_key())
            .map_err(TlsConfigError::ClientCertificate)?,
        None => builder.with_no_client_auth(),
    };
    // A WebSocket upgrade is HTTP/1.1; a server that would pick h2 for this
    // connection must be told so (RFC 8441 WebSockets over h2 is another
    // protocol).
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.enable_sni = options.sni.unwrap_or(true);
    Ok(Arc::new(config))
}

/// Accepts every certificate, but still checks the handshake signatures
/// (so the peer holds the key of the certificate it showed).
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> std::result::Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Which TLS check failed (defined with the errors, re-exported here).
pub use crate::error::TlsFailure;

impl TlsFailure {
    fn from_rustls(error: &rustls::Error) -> TlsFailure {
        use rustls::{AlertDescription as Alert, CertificateError as Cert, Error as E};
        match error {
            E::InvalidCertificate(cert) => match cert {
                Cert::UnknownIssuer => TlsFailure::UnknownIssuer,
                Cert::NotValidForName => TlsFailure::WrongHostname {
                    expected: String::new(),
                    presented: Vec::new(),
                },
                Cert::NotValidForNameContext {
                    expected,
                    presented,
                } => TlsFailure::WrongHostname {
                    expected: server_name_string(expected),
                    presented: presented.clone(),
                },
                Cert::Expired | Cert::ExpiredContext { .. } => TlsFailure::Expired,
                Cert::NotValidYet | Cert::NotValidYetContext { .. } => TlsFailure::NotYetValid,
                Cert::Revoked => TlsFailure::Revoked,
                other => TlsFailure::BadCertificate(other.clone()),
            },
            E::AlertReceived(
                alert @ (Alert::CertificateRequired
                | Alert::BadCertificate
                | Alert::UnknownCA
                | Alert::CertificateUnknown
                | Alert::AccessDenied),
            ) => TlsFailure::ClientCertificateRejected(*alert),
            E::NoCertificatesPresented => TlsFailure::NoCertificate,
            other => TlsFailure::Handshake(other.clone()),
        }
    }
}

fn server_name_string(name: &ServerName<'_>) -> String {
    match name {
        ServerName::DnsName(d) => d.as_ref().to_owned(),
        ServerName::IpAddress(ip) => std::net::IpAddr::from(*ip).to_string(),
        other => format!("{other:?}"),
    }
}

/// The TLS error inside an I/O error, if the I/O error came from rustls.
pub(crate) fn tls_error_in(error: &io::Error) -> Option<TlsFailure> {
    let inner = error.get_ref()?;
    let rustls_error = inner.downcast_ref::<rustls::Error>()?;
    Some(TlsFailure::from_rustls(rustls_error))
}

/// Fills in the expected name when rustls did not report it.
fn with_host(failure: TlsFailure, host: &str) -> TlsFailure {
    match failure {
        TlsFailure::WrongHostname {
            expected,
            presented,
        } if expected.is_empty() => TlsFailure::WrongHostname {
            expected: host.to_owned(),
            presented,
        },
        other => other,
    }
}

/// Converts an error of the TLS handshake (or of the first reads after
/// it, where TLS 1.3 reports a refused client certificate) into
/// [`ErrorKind::Tls`]; other errors pass through.
pub(crate) fn classify(error: crate::Error, host: &str) -> crate::Error {
    let failure = match error.kind() {
        ErrorKind::Io(io) => tls_error_in(io),
        _ => None,
    };
    match failure {
        Some(failure) => ErrorKind::Tls {
            host: host.to_owned(),
            failure: with_host(failure, host),
        }
        .into(),
        None => error,
    }
}

/// Runs the TLS handshake on a connected socket (its timeouts bound it).
pub(crate) fn handshake(
    tcp: TcpStream,
    config: Arc<ClientConfig>,
    name: &str,
) -> Result<TlsStream> {
    let server_name =
        ServerName::try_from(name.to_owned()).map_err(|_| TlsConfigError::InvalidServerName {
            name: name.to_owned(),
        })?;
    let conn = ClientConnection::new(config, server_name).map_err(|e| ErrorKind::Tls {
        host: name.to_owned(),
        failure: TlsFailure::Handshake(e),
    })?;
    complete_handshake(Connection::Client(conn), tcp, name)
}

fn complete_handshake(mut conn: Connection, mut tcp: TcpStream, name: &str) -> Result<TlsStream> {
    // Writers encrypt whole messages at once and the records go out right
    // after, so rustls's own send limit would only split writes.
    conn.set_buffer_limit(None);
    while conn.is_handshaking() {
        match conn.complete_io(&mut tcp) {
            Ok((0, 0)) if conn.is_handshaking() => {
                return Err(ErrorKind::Tls {
                    host: name.to_owned(),
                    failure: TlsFailure::ClosedInHandshake,
                }
                .into())
            }
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(TimeoutKind::Handshake.into())
            }
            Err(e) => {
                return Err(match tls_error_in(&e) {
                    Some(failure) => ErrorKind::Tls {
                        host: name.to_owned(),
                        failure: with_host(failure, name),
                    }
                    .into(),
                    None => ErrorKind::Io(e).into(),
                })
            }
        }
    }
    tracing::debug!(
        version = ?conn.protocol_version(),
        cipher = ?conn.negotiated_cipher_suite().map(|s| s.suite()),
        alpn = ?conn.alpn_protocol().map(String::from_utf8_lossy),
        "TLS handshake done"
    );
    Ok(TlsStream {
        shared: Arc::new(Shared {
            session: Mutex::new(Session {
                conn,
                incoming: Vec::new(),
                consumed: 0,
                eof: false,
            }),
            records: Mutex::new(Vec::new()),
        }),
        tcp,
        raw: Vec::new(),
    })
}

/// A TLS connection over TCP that several handles share (see the module
/// docs): [`Stream::Tls`](crate::Stream::Tls).
pub struct TlsStream {
    shared: Arc<Shared>,
    tcp: TcpStream,
    /// This handle's socket read buffer (allocated on the first read).
    raw: Vec<u8>,
}

struct Shared {
    session: Mutex<Session>,
    /// Held by one writer at a time, from encryption to the end of the
    /// socket write, so records go out in the order they were made; it
    /// holds that writer's encrypted bytes.
    records: Mutex<Vec<u8>>,
}

struct Session {
    conn: Connection,
    /// TLS bytes read from the socket that rustls has not taken yet.
    incoming: Vec<u8>,
    consumed: usize,
    /// The socket reached end of stream.
    eof: bool,
}

/// A socket read per TLS record, at most: 16 KiB of data and its overhead.
const RAW_READ: usize = 16 * 1024 + 512;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere while holding the lock leaves the session as it
    // was between two calls; going on is safe.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Session {
    /// Plaintext into `out`: `Some(n)` (0 at the end of the TLS stream),
    /// or `None` when more bytes from the socket are needed.
    fn read_plaintext(&mut self, out: &mut [u8]) -> io::Result<Option<usize>> {
        loop {
            match self.conn.reader().read(out) {
                Ok(n) => return Ok(Some(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            if self.consumed < self.incoming.len() {
                let mut pending = &self.incoming[self.consumed..];
                let took = self.conn.read_tls(&mut pending)?;
                self.consumed += took;
                if self.consumed == self.incoming.len() {
                    self.incoming.clear();
                    self.consumed = 0;
                }
                self.conn
                    .process_new_packets()
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            } else if self.eof {
                // Tell rustls the stream ended: the reader then says
                // whether it ended cleanly (close_notify) or was cut.
                self.eof = false;
                self.conn.read_tls(&mut &[][..])?;
                self.conn
                    .process_new_packets()
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                match self.conn.reader().read(out) {
                    Ok(n) => return Ok(Some(n)),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Some(0)),
                    Err(e) => return Err(e),
                }
            } else {
                return Ok(None);
            }
        }
    }

    fn received(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            self.eof = true;
        } else {
            self.incoming.extend_from_slice(bytes);
        }
    }
}

impl TlsStream {
    /// The TCP socket underneath.
    pub fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    /// The ALPN protocol the server chose, if any.
    pub fn alpn_protocol(&self) -> Option<Vec<u8>> {
        lock(&self.shared.session)
            .conn
            .alpn_protocol()
            .map(<[u8]>::to_vec)
    }

    /// The negotiated TLS version (`"TLSv1_3"`, `"TLSv1_2"`).
    pub fn protocol_version(&self) -> Option<String> {
        lock(&self.shared.session)
            .conn
            .protocol_version()
            .map(|v| format!("{v:?}"))
    }

    /// The server's certificate chain (DER), leaf first.
    pub fn peer_certificates(&self) -> Vec<Vec<u8>> {
        lock(&self.shared.session)
            .conn
            .peer_certificates()
            .map(|certs| certs.iter().map(|c| c.as_ref().to_vec()).collect())
            .unwrap_or_default()
    }

    /// Sends what rustls wants to send on its own (alerts, key update
    /// answers) when no writer is busy; otherwise the next writer does.
    fn flush_from_reader(&self, session: &mut Session) {
        if !session.conn.wants_write() {
            return;
        }
        if let Ok(mut records) = self.shared.records.try_lock() {
            records.clear();
            while session.conn.wants_write() {
                if session.conn.write_tls(&mut *records).is_err() {
                    break;
                }
            }
            let _ = (&self.tcp).write_all(&records);
            records.clear();
        }
    }

    fn read_with(&mut self, out: &mut [u8], dont_wait: bool) -> io::Result<usize> {
        loop {
            {
                let mut session = lock(&self.shared.session);
                let got = session.read_plaintext(out);
                self.flush_from_reader(&mut session);
                if let Some(n) = got? {
                    return Ok(n);
                }
            }
            // Wait for the socket without the session lock, so writers
            // go on meanwhile.
            if self.raw.is_empty() {
                self.raw = vec![0; RAW_READ];
            }
            let n = if dont_wait {
                recv_dont_wait(&self.tcp, &mut self.raw)?
            } else {
                loop {
                    match (&self.tcp).read(&mut self.raw) {
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        other => break other?,
                    }
                }
            };
            let mut session = lock(&self.shared.session);
            session.received(&self.raw[..n]);
        }
    }
}

#[cfg(unix)]
fn recv_dont_wait(tcp: &TcpStream, raw: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: `raw` is valid for writes of its length.
        let n = unsafe {
            libc::recv(
                std::os::fd::AsRawFd::as_raw_fd(tcp),
                raw.as_mut_ptr().cast(),
                raw.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

#[cfg(not(unix))]
fn recv_dont_wait(_tcp: &TcpStream, _raw: &mut [u8]) -> io::Result<usize> {
    Err(io::ErrorKind::WouldBlock.into())
}

impl fmt::Debug for TlsStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsStream")
            .field("tcp", &self.tcp)
            .finish_non_exhaustive()
    }
}

impl Read for TlsStream {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        self.read_with(out, false)
    }
}

impl Write for TlsStream {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let mut records = lock(&self.shared.records);
        records.clear();
        {
            let mut session = lock(&self.shared.session);
            session.conn.writer().write_all(data)?;
            while session.conn.wants_write() {
                session.conn.write_tls(&mut *records)?;
            }
        }
        let result = (&self.tcp).write_all(&records);
        // Keep the buffer for the next write unless one huge message grew it.
        if records.capacity() > 1 << 20 {
            *records = Vec::new();
        } else {
            records.clear();
        }
        result.map(|()| data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The most plaintext one `read_into` asks for: the zero-filling of the
/// default `read_into` costs per byte offered, and one call rarely has more
/// than a few records' worth ready.
const PLAINTEXT_READ: usize = 64 * 1024;

impl crate::dial::stream::Transport for TlsStream {
    fn read_into(&mut self, buf: &mut BytesMut, max: usize) -> io::Result<usize> {
        let start = buf.len();
        let room = (buf.capacity() - start).min(max.max(1)).min(PLAINTEXT_READ);
        buf.resize(start + room, 0);
        let result = self.read_with(&mut buf[start..], false);
        buf.truncate(start + *result.as_ref().unwrap_or(&0));
        result
    }

    fn read_available_into(&mut self, buf: &mut BytesMut, max: usize) -> io::Result<usize> {
        let start = buf.len();
        let room = (buf.capacity() - start).min(max.max(1)).min(PLAINTEXT_READ);
        buf.resize(start + room, 0);
        let result = self.read_with(&mut buf[start..], true);
        buf.truncate(start + *result.as_ref().unwrap_or(&0));
        result
    }

    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.tcp.set_read_timeout(timeout)
    }
    fn read_timeout(&self) -> io::Result<Option<Duration>> {
        self.tcp.read_timeout()
    }
    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.tcp.set_write_timeout(timeout)
    }
    fn write_timeout(&self) -> io::Result<Option<Duration>> {
        self.tcp.write_timeout()
    }
    fn shutdown(&self) -> io::Result<()> {
        self.tcp.shutdown(std::net::Shutdown::Both)
    }
    #[cfg(unix)]
    fn socket_fd(&self) -> Option<std::os::fd::RawFd> {
        Some(std::os::fd::AsRawFd::as_raw_fd(&self.tcp))
    }
    fn try_clone(&self) -> io::Result<Self> {
        Ok(TlsStream {
            shared: self.shared.clone(),
            tcp: self.tcp.try_clone()?,
            raw: Vec::new(),
        })
    }
}
