//! `wss://`: the server's TLS (rustls), its configuration from PEM, and a
//! TLS stream that a reader thread and a writer can share.
//!
//! Why the stream is written here rather than taken from
//! `rustls::StreamOwned`: the [feed](crate::feed) reads its client's pings,
//! pongs and close on one thread while it writes on another, and
//! `StreamOwned` needs `&mut` for both. [`TlsStream`] keeps the session
//! behind a mutex that is never held while waiting on the socket: the
//! reader waits for bytes without it, then decrypts under it; a writer
//! encrypts under it, then writes the records holding only the writers'
//! lock. A writer blocked on a full socket never stops the reader.

use crate::error::{Error, Result, Timeout, TlsConfigError};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, ServerConnection};
use std::fmt;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

/// A server configuration from a PEM certificate chain (leaf first) and
/// its PEM private key (PKCS#8, PKCS#1 or SEC1), with ALPN `http/1.1`, for
/// [`Server::bind_tls`](crate::Server::bind_tls).
///
/// ```
/// // A self-signed certificate, made here with rcgen.
/// let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])?;
/// let config = floodgate_server::tls::server_config_from_pem(
///     made.cert.pem().as_bytes(),
///     made.key_pair.serialize_pem().as_bytes(),
/// )?;
/// assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
///
/// [`TlsConfigError`]: the PEM holds no usable certificate or key, or
/// rustls refuses the pair (a key that does not fit the certificate).
pub fn server_config_from_pem(
    chain_pem: &[u8],
    key_pem: &[u8],
) -> Result<Arc<ServerConfig>, TlsConfigError> {
    let chain = CertificateDer::pem_slice_iter(chain_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(TlsConfigError::CertificatePem)?;
    if chain.is_empty() {
        return Err(TlsConfigError::NoCertificate);
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(TlsConfigError::PrivateKey)?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(TlsConfigError::Rejected)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(TlsConfigError::Rejected)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// ring, as in the rest of the workspace (aws-lc-rs, rustls' default,
/// needs cmake and a long C build).
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    static PROVIDER: OnceLock<Arc<rustls::crypto::CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

/// Runs the server side of the TLS handshake on an accepted socket,
/// within `timeout`.
pub(crate) fn accept(
    mut tcp: TcpStream,
    config: Arc<ServerConfig>,
    timeout: Option<Duration>,
) -> Result<TlsStream> {
    tcp.set_read_timeout(timeout)?;
    tcp.set_write_timeout(timeout)?;
    let mut conn = ServerConnection::new(config).map_err(|e| Error::Tls(io::Error::other(e)))?;
    // Writers hand whole batches of frames to rustls at once and send the
    // records right after; rustls' own limit would only split them.
    conn.set_buffer_limit(None);
    while conn.is_handshaking() {
        match conn.complete_io(&mut tcp) {
            Ok((0, 0)) if conn.is_handshaking() => {
                return Err(Error::Tls(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the client closed the connection during the TLS handshake \
                     (is it a TLS client?)",
                )))
            }
            Ok(_) => {}
            Err(e) if is_timeout(&e) => {
                return Err(Error::Timeout(Timeout::Handshake(
                    timeout.unwrap_or_default(),
                )))
            }
            Err(e) => return Err(Error::Tls(e)),
        }
    }
    tracing::debug!(version = ?conn.protocol_version(), "TLS handshake with the client done");
    Ok(TlsStream {
        shared: Arc::new(Shared {
            conn: Mutex::new(conn),
            records: Mutex::new(Vec::new()),
        }),
        tcp,
        raw: Vec::new(),
        raw_pos: 0,
        eof: false,
    })
}

pub(crate) fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// The server's side of a TLS connection: [`Stream::Tls`](crate::Stream::Tls).
///
/// Handles made by cloning share the session; one of them reads at a time
/// (bytes it took from the socket and rustls has not yet taken stay with
/// it), any of them writes.
pub struct TlsStream {
    shared: Arc<Shared>,
    tcp: TcpStream,
    /// TLS bytes this handle read from the socket, from `raw_pos` on not
    /// yet taken by rustls (allocated on the first read).
    raw: Vec<u8>,
    raw_pos: usize,
    /// The socket reached end of stream and rustls was told.
    eof: bool,
}

struct Shared {
    conn: Mutex<ServerConnection>,
    /// Held by one writer from encryption to the end of its socket write,
    /// so records go out in the order they were made; holds its records.
    records: Mutex<Vec<u8>>,
}

/// A socket read per TLS record, at most: 16 KiB of data and its overhead.
const RAW_READ: usize = 16 * 1024 + 512;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere while holding the lock leaves the session between
    // two calls; going on is safe.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl TlsStream {
    /// The TCP socket underneath.
    pub fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    /// The negotiated TLS version (`"TLSv1_3"`, `"TLSv1_2"`).
    pub fn protocol_version(&self) -> Option<String> {
        lock(&self.shared.conn)
            .protocol_version()
            .map(|v| format!("{v:?}"))
    }

    pub(crate) fn try_clone(&self) -> io::Result<TlsStream> {
        Ok(TlsStream {
            shared: self.shared.clone(),
            tcp: self.tcp.try_clone()?,
            raw: Vec::new(),
            raw_pos: 0,
            eof: false,
        })
    }

    /// Sends what rustls wants to send on its own (alerts, key update
    /// answers) unless a writer is busy, who then sends it with its records.
    fn flush_from_reader(&self, conn: &mut ServerConnection) {
        if !conn.wants_write() {
            return;
        }
        if let Ok(mut records) = self.shared.records.try_lock() {
            records.clear();
            while conn.wants_write() {
                if conn.write_tls(&mut *records).is_err() {
                    break;
                }
            }
            let _ = (&self.tcp).write_all(&records);
            records.clear();
        }
    }
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
        loop {
            {
                let mut conn = lock(&self.shared.conn);
                match conn.reader().read(out) {
                    Ok(n) => return Ok(n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    // The client ended TCP without close_notify: for a
                    // WebSocket, whose frames say where they end, that is
                    // an end of stream like another.
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                    Err(e) => return Err(e),
                }
                if self.raw_pos < self.raw.len() {
                    let mut pending = &self.raw[self.raw_pos..];
                    self.raw_pos += conn.read_tls(&mut pending)?;
                    let processed = conn.process_new_packets();
                    self.flush_from_reader(&mut conn);
                    processed.map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                    continue;
                }
                if self.eof {
                    return Ok(0);
                }
            }
            // Wait for the socket without the session lock, so that
            // writers go on meanwhile.
            self.raw.resize(RAW_READ, 0);
            let n = loop {
                match (&self.tcp).read(&mut self.raw) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        self.raw.clear();
                        return Err(e);
                    }
                    Ok(n) => break n,
                }
            };
            self.raw.truncate(n);
            self.raw_pos = 0;
            if n == 0 {
                self.eof = true;
                let mut conn = lock(&self.shared.conn);
                conn.read_tls(&mut &[][..])?;
                conn.process_new_packets()
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            }
        }
    }
}

impl Write for TlsStream {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let mut records = lock(&self.shared.records);
        records.clear();
        {
            let mut conn = lock(&self.shared.conn);
            conn.writer().write_all(data)?;
            while conn.wants_write() {
                conn.write_tls(&mut *records)?;
            }
        }
        let written = (&self.tcp).write_all(&records);
        // Keep the buffer for the next write unless one huge message grew it.
        if records.capacity() > 1 << 20 {
            *records = Vec::new();
        }
        written.map(|()| data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The most plaintext one `read_into` asks for: its zero-filling costs per
/// byte offered, and one read brings at most a record (16 KiB).
const PLAINTEXT_READ: usize = 64 * 1024;

impl crate::Transport for TlsStream {
    fn read_into(&mut self, buf: &mut bytes::BytesMut, max: usize) -> io::Result<usize> {
        let start = buf.len();
        let room = (buf.capacity() - start).min(max.max(1)).min(PLAINTEXT_READ);
        buf.resize(start + room, 0);
        let result = self.read(&mut buf[start..]);
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
}
