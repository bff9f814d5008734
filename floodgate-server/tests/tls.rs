//! `wss://`: a TLS server made from an rcgen certificate accepts a rustls
//! client; the echo and the feed (whose reader thread shares the TLS
//! session with its writer) run over it; bad PEM is a typed error.

mod support;

use floodgate_proto::Message;
use floodgate_server::feed::{Feed, FeedConfig, FeedEnd};
use floodgate_server::tls::server_config_from_pem;
use floodgate_server::{echo, Options, Server, TlsConfigError};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use std::net::TcpStream;
use std::sync::{mpsc, Arc};
use std::time::Duration;
use support::{Offer, RawClient};

type TlsClient = RawClient<StreamOwned<ClientConnection, TcpStream>>;

/// A TLS server with a fresh self-signed certificate for `localhost`, and
/// a client configuration that trusts it.
fn tls_server(
    handler: impl Fn(floodgate_server::WebSocket, floodgate_server::RequestHead) + Send + Sync + 'static,
) -> (Server, Arc<ClientConfig>) {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let config = server_config_from_pem(
        made.cert.pem().as_bytes(),
        made.key_pair.serialize_pem().as_bytes(),
    )
    .unwrap();
    let server = Server::bind_tls("127.0.0.1:0", Options::default(), config, handler).unwrap();
    let mut roots = RootCertStore::empty();
    roots.add(made.cert.der().clone()).unwrap();
    let mut client =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    client.alpn_protocols = vec![b"http/1.1".to_vec()];
    (server, Arc::new(client))
}

fn connect(server: &Server, config: Arc<ClientConfig>, path: &str) -> TlsClient {
    let tcp = TcpStream::connect(server.local_addr()).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let conn = ClientConnection::new(config, name).unwrap();
    RawClient::handshake(StreamOwned::new(conn, tcp), path, Offer::default())
}

#[test]
fn a_tls_server_accepts_a_client_that_trusts_its_certificate_and_echoes() {
    let (server, client_config) = tls_server(echo);
    assert!(
        server.url().starts_with("wss://127.0.0.1:"),
        "{}",
        server.url()
    );
    let mut client = connect(&server, client_config, "/");
    assert_eq!(client.stream.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
    for message in [Message::text("secret"), Message::binary(vec![7u8; 3 << 20])] {
        client.send(&message);
        assert_eq!(client.recv_data(), Ok(message));
    }
    client.close(1000, "");
    assert!(matches!(client.recv(), Some(Message::Close(_))));
}

#[test]
fn the_feed_runs_over_tls_and_its_pings_are_answered() {
    let (tx, reports) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let feed = Feed::new(FeedConfig {
        rate: Some(2_000.0),
        count: Some(400),
        ping_interval: Some(Duration::from_millis(20)),
        ..FeedConfig::default()
    })
    .on_report(move |r| {
        let _ = tx.lock().unwrap().send(r);
    });
    let (server, client_config) = tls_server(feed.handler());
    let mut client = connect(&server, client_config, "/");
    let (mut data, mut pings) = (0, 0);
    loop {
        match client.recv().unwrap() {
            Message::Ping(_) => pings += 1,
            Message::Close(frame) => {
                assert_eq!(frame.unwrap().code.0, 1000);
                break;
            }
            _ => data += 1,
        }
    }
    client.flush();
    let report = reports.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(matches!(report.end, FeedEnd::Completed), "{report:?}");
    assert_eq!((data, report.sent), (400, 400));
    assert!(pings >= 2, "{pings} pings in about 200 ms");
    assert_eq!(report.pongs, pings, "{report:?}");
}

#[test]
fn pem_without_a_certificate_or_a_key_is_a_typed_error() {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (cert, key) = (made.cert.pem(), made.key_pair.serialize_pem());
    assert!(matches!(
        server_config_from_pem(b"", key.as_bytes()),
        Err(TlsConfigError::NoCertificate)
    ));
    assert!(matches!(
        server_config_from_pem(cert.as_bytes(), cert.as_bytes()),
        Err(TlsConfigError::PrivateKey(_))
    ));
    let other = rcgen::generate_simple_self_signed(vec!["other".to_string()]).unwrap();
    let err = server_config_from_pem(cert.as_bytes(), other.key_pair.serialize_pem().as_bytes())
        .unwrap_err();
    assert!(matches!(err, TlsConfigError::Rejected(_)), "{err}");
}
