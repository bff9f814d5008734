//! A TLS WebSocket echo server for the tests, with certificates made in the
//! test by `rcgen`: a CA, and server and client certificates it signs.
//!
//! The server is rustls (`ServerConnection` in a `StreamOwned`) around
//! the embedded server's handshake (`floodgate_server::accept`),
//! one thread per connection, on a free loopback port. Include it with
//! `#[path = "support/tls_server.rs"] mod tls_server;`.

#![allow(dead_code)]

use floodgate_server::Transport;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

/// A certificate authority made for one test.
pub struct TestCa {
    pub cert: rcgen::Certificate,
    pub key: KeyPair,
}

/// A certificate and its key, in DER and PEM.
pub struct Issued {
    pub der: CertificateDer<'static>,
    pub pem: String,
    pub key_der: PrivateKeyDer<'static>,
    pub key_pem: String,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).unwrap();
        TestCa { cert, key }
    }

    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// A server certificate for these names (DNS names or IP addresses).
    pub fn server_cert(&self, names: &[&str]) -> Issued {
        self.issue(names, ExtendedKeyUsagePurpose::ServerAuth, false)
    }

    /// A server certificate whose validity ended in 2020.
    pub fn expired_server_cert(&self, names: &[&str]) -> Issued {
        self.issue(names, ExtendedKeyUsagePurpose::ServerAuth, true)
    }

    /// A client certificate (for mutual TLS).
    pub fn client_cert(&self, name: &str) -> Issued {
        self.issue(&[name], ExtendedKeyUsagePurpose::ClientAuth, false)
    }

    fn issue(&self, names: &[&str], usage: ExtendedKeyUsagePurpose, expired: bool) -> Issued {
        let key = KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(names.clone()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, names[0].clone());
        params.extended_key_usages = vec![usage];
        if expired {
            params.not_before = rcgen::date_time_ymd(2019, 1, 1);
            params.not_after = rcgen::date_time_ymd(2020, 1, 1);
        }
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        Issued {
            der: cert.der().clone(),
            pem: cert.pem(),
            key_der: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            key_pem: key.serialize_pem(),
        }
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A server configuration presenting `cert`; with `client_ca`, a client
/// certificate signed by it is required.
pub fn server_config(cert: &Issued, client_ca: Option<&TestCa>) -> Arc<ServerConfig> {
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(ca.cert.der().clone()).unwrap();
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider(),
            )
            .build()
            .unwrap();
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(vec![cert.der.clone()], cert.key_der.clone_key())
        .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// The server side of one TLS connection, as a `floodgate_server` transport.
pub struct ServerTls(StreamOwned<ServerConnection, TcpStream>);

impl Read for ServerTls {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for ServerTls {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl Transport for ServerTls {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.0.sock.set_read_timeout(timeout)
    }
    fn read_timeout(&self) -> io::Result<Option<Duration>> {
        self.0.sock.read_timeout()
    }
    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.0.sock.set_write_timeout(timeout)
    }
    fn write_timeout(&self) -> io::Result<Option<Duration>> {
        self.0.sock.write_timeout()
    }
    fn shutdown(&self) -> io::Result<()> {
        self.0.sock.shutdown(std::net::Shutdown::Both)
    }
}

/// A TLS echo server on a free loopback port; runs until the test ends.
pub struct TlsEchoServer {
    pub addr: SocketAddr,
}

impl TlsEchoServer {
    pub fn start(config: Arc<ServerConfig>) -> TlsEchoServer {
        TlsEchoServer::start_with(config, echo)
    }

    /// A TLS server that runs `handler` on each connection once the TLS
    /// handshake is done (it starts when the handler first reads).
    pub fn start_with(config: Arc<ServerConfig>, handler: fn(ServerTls)) -> TlsEchoServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for tcp in listener.incoming() {
                let Ok(tcp) = tcp else { continue };
                let config = config.clone();
                std::thread::spawn(move || {
                    tcp.set_read_timeout(Some(Duration::from_secs(30))).ok();
                    if let Ok(conn) = ServerConnection::new(config) {
                        handler(ServerTls(StreamOwned::new(conn, tcp)));
                    }
                });
            }
        });
        TlsEchoServer { addr }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `wss://HOST:PORT/` for this server.
    pub fn url(&self, host: &str) -> String {
        format!("wss://{host}:{}/", self.addr.port())
    }
}

/// The WebSocket echo handler.
pub fn echo(stream: ServerTls) {
    let options = floodgate_server::Options::default();
    let Ok((mut ws, _request)) = floodgate_server::accept(stream, &options) else {
        return;
    };
    ws.set_read_timeout(None).ok();
    while let Ok(message) = ws.recv() {
        if ws.send(message).is_err() {
            break;
        }
    }
}
