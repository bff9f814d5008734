//! `wss://` against a real TLS server: rustls on the server side, with a CA
//! and certificates made in each test by `rcgen` (see
//! `support/tls_server.rs`). Covers success (by name and by IP address),
//! an unknown CA, a wrong host name, an expired certificate, a server that
//! requires a client certificate, the server-name override, the switch that
//! skips verification, a server that does not speak TLS, and the buffered
//! connection (reader thread and writers sharing one TLS session).

#[path = "support/tls_server.rs"]
mod tls_server;

use floodgate::tls::{RootCertificates, TlsFailure};
use floodgate::{
    Client, ClientBuilder, ConfigError, ErrorKind, Message, PemItem, RedirectError, TlsConfigError,
};
use std::time::Duration;
use tls_server::{server_config, TestCa, TlsEchoServer};

fn trusting(ca: &TestCa) -> ClientBuilder {
    Client::builder()
        .tls_roots(RootCertificates::None)
        .add_root_certificates_pem(ca.pem().as_bytes())
        .connect_timeout(Some(Duration::from_secs(10)))
}

fn tls_failure(result: floodgate::Result<floodgate::WebSocket>) -> TlsFailure {
    match result.map(|_| ()).unwrap_err().into_kind() {
        ErrorKind::Tls { failure, .. } => failure,
        other => panic!("expected a TLS error, got {other:?}"),
    }
}

#[test]
fn a_server_signed_by_a_trusted_ca_is_reached_by_name_and_by_ip() {
    let ca = TestCa::new("floodgate test CA");
    let server = TlsEchoServer::start(server_config(
        &ca.server_cert(&["localhost", "127.0.0.1"]),
        None,
    ));
    for host in ["localhost", "127.0.0.1"] {
        let mut ws = trusting(&ca).connect(&server.url(host)).expect(host);
        let tls = ws.get_ref().tls().expect("a TLS stream");
        assert_eq!(tls.alpn_protocol().as_deref(), Some(&b"http/1.1"[..]));
        assert_eq!(tls.protocol_version().as_deref(), Some("TLSv1_3"));
        assert_eq!(tls.peer_certificates().len(), 1);
        ws.send_text("héllo over TLS").unwrap();
        assert_eq!(ws.recv().unwrap().as_text(), Some("héllo over TLS"));
        // Larger than one TLS record (16 KiB): split and joined again.
        let big: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        ws.send_binary(&big).unwrap();
        assert_eq!(ws.recv().unwrap().as_bytes(), &big[..]);
        ws.close(1000, "").unwrap();
    }
}

#[test]
fn the_platform_roots_plus_a_ca_file_verify_the_server() {
    let ca = TestCa::new("floodgate file CA");
    let dir = std::env::temp_dir().join(format!("floodgate-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let server = TlsEchoServer::start(server_config(&ca.server_cert(&["localhost"]), None));
    let mut ws = Client::builder()
        .ca_file(&ca_file)
        .connect(&server.url("localhost"))
        .expect("connect with the platform roots and the CA file");
    ws.send_text("x").unwrap();
    assert_eq!(ws.recv().unwrap().as_text(), Some("x"));
    ws.close(1000, "").unwrap();
}

#[test]
fn a_certificate_from_an_unknown_ca_is_refused_as_unknown_issuer() {
    let ca = TestCa::new("floodgate test CA");
    let server = TlsEchoServer::start(server_config(&ca.server_cert(&["localhost"]), None));
    let other = TestCa::new("another CA");
    for client in [
        trusting(&other),
        Client::builder().tls_roots(RootCertificates::Mozilla),
    ] {
        let err = client.connect(&server.url("localhost")).unwrap_err();
        assert!(
            err.to_string()
                .contains("not signed by a trusted certificate authority"),
            "{err}"
        );
        match err.into_kind() {
            ErrorKind::Tls { host, failure } => {
                assert_eq!(host, "localhost");
                assert_eq!(failure, TlsFailure::UnknownIssuer);
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn a_certificate_for_another_host_is_refused_and_the_error_names_both() {
    let ca = TestCa::new("floodgate test CA");
    let server = TlsEchoServer::start(server_config(&ca.server_cert(&["other.example"]), None));
    match tls_failure(trusting(&ca).connect(&server.url("localhost"))) {
        TlsFailure::WrongHostname {
            expected,
            presented,
        } => {
            assert_eq!(expected, "localhost");
            assert!(
                presented.iter().any(|n| n.contains("other.example")),
                "{presented:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    // The IP address is checked as well: the certificate has no IP name.
    assert!(matches!(
        tls_failure(trusting(&ca).connect(&server.url("127.0.0.1"))),
        TlsFailure::WrongHostname { .. }
    ));
    // Verifying the name the certificate holds (and sending it as SNI)
    // while connecting to the address works.
    let mut ws = trusting(&ca)
        .tls_server_name("other.example")
        .connect(&server.url("127.0.0.1"))
        .expect("server name override");
    ws.send_text("sni").unwrap();
    assert_eq!(ws.recv().unwrap().as_text(), Some("sni"));
}

#[test]
fn an_expired_certificate_is_refused_as_expired() {
    let ca = TestCa::new("floodgate test CA");
    let server = TlsEchoServer::start(server_config(&ca.expired_server_cert(&["localhost"]), None));
    let err = trusting(&ca)
        .connect(&server.url("localhost"))
        .map(|_| ())
        .unwrap_err();
    assert!(err.to_string().contains("expired"), "{err}");
    assert!(matches!(
        err.into_kind(),
        ErrorKind::Tls {
            failure: TlsFailure::Expired,
            ..
        }
    ));
}

#[test]
fn a_server_that_requires_a_client_certificate_gets_one_or_refuses() {
    let ca = TestCa::new("floodgate test CA");
    let server = TlsEchoServer::start(server_config(&ca.server_cert(&["localhost"]), Some(&ca)));
    // Without a certificate: TLS 1.3 finishes the client's side of the
    // handshake first, so the refusal arrives as an alert on the first
    // read; it is still reported as a TLS error about the certificate.
    let err = trusting(&ca)
        .connect(&server.url("localhost"))
        .map(|_| ())
        .unwrap_err();
    assert!(
        err.to_string().contains("requires a client certificate"),
        "{err}"
    );
    assert!(
        matches!(
            err.kind(),
            ErrorKind::Tls {
                failure: TlsFailure::ClientCertificateRejected(_),
                ..
            }
        ),
        "{err:?}"
    );
    // A certificate from another CA is refused too.
    let stranger = TestCa::new("stranger").client_cert("mallory");
    let err = trusting(&ca)
        .client_certificate_pem(stranger.pem.as_bytes(), stranger.key_pem.as_bytes())
        .connect(&server.url("localhost"))
        .map(|_| ())
        .unwrap_err();
    assert!(
        matches!(
            err.kind(),
            ErrorKind::Tls {
                failure: TlsFailure::ClientCertificateRejected(_),
                ..
            }
        ),
        "{err:?}"
    );
    // With the right one: connected.
    let client = ca.client_cert("floodgate-client");
    let mut ws = trusting(&ca)
        .client_certificate_pem(client.pem.as_bytes(), client.key_pem.as_bytes())
        .connect(&server.url("localhost"))
        .expect("mutual TLS");
    ws.send_text("mtls").unwrap();
    assert_eq!(ws.recv().unwrap().as_text(), Some("mtls"));
}

#[test]
fn skipping_verification_accepts_a_bad_certificate() {
    let ca = TestCa::new("floodgate test CA");
    let server = TlsEchoServer::start(server_config(
        &ca.expired_server_cert(&["other.example"]),
        None,
    ));
    let mut ws = Client::builder()
        .tls_roots(RootCertificates::Mozilla)
        .dangerous_skip_certificate_verification()
        .connect(&server.url("127.0.0.1"))
        .expect("verification off");
    ws.send_text("insecure").unwrap();
    assert_eq!(ws.recv().unwrap().as_text(), Some("insecure"));
}

#[test]
fn a_server_that_does_not_speak_tls_gives_a_handshake_failure() {
    let plain = floodgate_server::Server::bind("127.0.0.1:0", floodgate_server::echo).unwrap();
    let url = format!("wss://127.0.0.1:{}/", plain.local_addr().port());
    let err = Client::builder()
        .tls_roots(RootCertificates::Mozilla)
        .connect_timeout(Some(Duration::from_secs(5)))
        .connect(&url)
        .map(|_| ())
        .unwrap_err();
    assert!(
        matches!(
            err.kind(),
            ErrorKind::Tls {
                failure: TlsFailure::Handshake(_),
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn invalid_pem_is_reported_by_build() {
    let err = Client::builder()
        .add_root_certificates_pem(b"not a certificate")
        .build()
        .unwrap_err();
    assert!(
        matches!(
            err.kind(),
            ErrorKind::Config(ConfigError::Tls(TlsConfigError::NoCertificate {
                item: PemItem::CaCertificates
            }))
        ),
        "{err}"
    );
    let err = Client::builder()
        .ca_file("/nonexistent/ca.pem")
        .build()
        .unwrap_err();
    assert!(
        matches!(
            err.kind(),
            ErrorKind::Config(ConfigError::Tls(TlsConfigError::ReadFile { item: PemItem::CaCertificates, path, .. }))
                if path.as_os_str() == "/nonexistent/ca.pem"
        ),
        "{err}"
    );
}

#[test]
fn a_buffered_connection_reads_and_writes_one_tls_session_from_several_threads() {
    let ca = TestCa::new("floodgate test CA");
    let server = TlsEchoServer::start(server_config(&ca.server_cert(&["localhost"]), None));
    let mut ws = trusting(&ca)
        .connect_buffered(&server.url("localhost"))
        .expect("buffered over TLS");
    const EACH: usize = 2_000;
    // Two writer threads while this thread reads: every message comes back
    // intact, in each writer's order.
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let sender = ws.sender();
            std::thread::spawn(move || {
                for i in 0..EACH {
                    let pad = "p".repeat(i % 700);
                    sender.send_text(&format!("{w}:{i}:{pad}")).unwrap();
                }
            })
        })
        .collect();
    let mut next = [0usize; 2];
    while next.iter().sum::<usize>() < 2 * EACH {
        let delivered = ws.recv().expect("echo");
        let Message::Text(text) = delivered.message() else {
            panic!("not text")
        };
        let mut parts = text.as_str().splitn(3, ':');
        let w: usize = parts.next().unwrap().parse().unwrap();
        let i: usize = parts.next().unwrap().parse().unwrap();
        assert_eq!(i, next[w], "writer {w} out of order");
        assert_eq!(parts.next().unwrap().len(), i % 700);
        next[w] += 1;
    }
    for w in writers {
        w.join().unwrap();
    }
    ws.close(1000, "").unwrap();
}

#[test]
fn a_redirect_from_wss_to_ws_is_refused() {
    fn redirect_to_plain(mut stream: tls_server::ServerTls) {
        use std::io::{Read, Write};
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
            head.push(byte[0]);
        }
        let _ = stream.write_all(
            b"HTTP/1.1 302 Found\r\nLocation: ws://127.0.0.1:1/plain\r\nContent-Length: 0\r\n\r\n",
        );
        let _ = stream.flush();
    }
    let ca = TestCa::new("floodgate test CA");
    let server = TlsEchoServer::start_with(
        server_config(&ca.server_cert(&["localhost"]), None),
        redirect_to_plain,
    );
    let err = trusting(&ca)
        .connect(&server.url("localhost"))
        .map(|_| ())
        .unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::Redirect { to, reason: RedirectError::Downgrade, .. }
            if to == "ws://127.0.0.1:1/plain"),
        "{err:?}"
    );
}

#[test]
fn the_embedded_server_serves_the_feed_over_tls_to_a_buffered_client() {
    use floodgate_server::feed::{Feed, FeedConfig, FeedMessage};
    let ca = TestCa::new("floodgate test CA");
    let cert = ca.server_cert(&["localhost"]);
    let tls =
        floodgate_server::tls::server_config_from_pem(cert.pem.as_bytes(), cert.key_pem.as_bytes())
            .unwrap();
    let feed = Feed::new(FeedConfig {
        rate: None,
        count: Some(20_000),
        size: 300,
        ping_interval: Some(Duration::from_millis(5)),
        ..FeedConfig::default()
    });
    let server = floodgate_server::Server::bind_tls(
        "127.0.0.1:0",
        floodgate_server::Options::default(),
        tls,
        feed.handler(),
    )
    .unwrap();
    assert!(server.url().starts_with("wss://"));
    let ws = trusting(&ca)
        .connect_buffered(&format!("wss://localhost:{}/", server.local_addr().port()))
        .unwrap();
    let mut n = 0u64;
    loop {
        match ws.recv() {
            Ok(delivered) => {
                let message = FeedMessage::parse(delivered.message().as_text().unwrap()).unwrap();
                assert_eq!(message.n, n, "in order, none lost");
                n += 1;
            }
            Err(e) if e.is_closed() => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(n, 20_000);
    assert!(
        ws.stats().pings_answered > 0,
        "the server's pings went through TLS"
    );
}
