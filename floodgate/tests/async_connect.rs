//! How the async client connects: the blocking client's options (headers,
//! subprotocols, limits, permessage-deflate), `wss://` against a rustls
//! server with certificates made by rcgen, a Unix socket, a redirect, and
//! typed errors for what fails.
#![cfg(feature = "tokio")]

#[path = "support/tls_server.rs"]
mod tls_server;

use floodgate::tls::{RootCertificates, TlsFailure};
use floodgate::{Client, DeflateConfig, ErrorKind, Message};
use floodgate_server::Options;
use floodgate_server::{echo, RequestHead, Server};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{mpsc, Mutex};
use std::time::Duration;
use tls_server::{server_config, TestCa};

/// An echo server that reports each request head.
fn recording_server(options: Options) -> (Server, mpsc::Receiver<RequestHead>) {
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let server = Server::bind_with("127.0.0.1:0", options, move |ws, head| {
        let _ = tx.lock().unwrap().send(head.clone());
        echo(ws, head);
    })
    .unwrap();
    (server, rx)
}

#[tokio::test]
async fn headers_subprotocols_and_socket_options_are_those_of_the_blocking_client() {
    let (server, heads) = recording_server(Options {
        subprotocols: vec!["chat.v2".into()],
        ..Options::default()
    });
    let mut ws = Client::builder()
        .header("X-Token", "secret")
        .subprotocol("chat.v1")
        .subprotocol("chat.v2")
        .recv_buffer_size(1 << 20)
        .nodelay(true)
        .tcp_keepalive(Duration::from_secs(30))
        .connect_async(&format!("{}feed?x=1", server.url()))
        .await
        .unwrap();
    assert_eq!(ws.subprotocol(), Some("chat.v2"));
    ws.send_text("ok").await.unwrap();
    assert_eq!(ws.recv().await.unwrap().as_text(), Some("ok"));
    ws.close(1000, "").await.unwrap();
    let head = heads.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(head.headers["x-token"], "secret");
    assert!(head.path.ends_with("feed?x=1"), "{}", head.path);
}

#[tokio::test]
async fn a_message_over_max_message_size_fails_the_connection_with_1009() {
    let server = Server::bind("127.0.0.1:0", |mut ws, _| {
        let _ = ws.send_binary(&vec![7u8; 100_000]);
        let _ = ws.recv();
    })
    .unwrap();
    let mut ws = Client::builder()
        .max_message_size(Some(10_000))
        .max_frame_size(Some(10_000))
        .connect_async(&server.url())
        .await
        .unwrap();
    let err = ws.recv().await.unwrap_err();
    match err.kind() {
        ErrorKind::Protocol(e) => assert_eq!(e.close_code(), floodgate::CloseCode::from(1009)),
        other => panic!("expected a protocol error, got {other:?}"),
    }
}

#[tokio::test]
async fn permessage_deflate_is_negotiated_and_messages_round_trip() {
    let server = Server::bind_with(
        "127.0.0.1:0",
        Options {
            compression: Some(DeflateConfig::default().threshold(0)),
            ..Options::default()
        },
        echo,
    )
    .unwrap();
    let mut ws = Client::builder()
        .compression(DeflateConfig::default().threshold(0))
        .connect_async(&server.url())
        .await
        .unwrap();
    assert!(ws.deflate().is_some(), "permessage-deflate negotiated");
    let text = "compress me ".repeat(10_000);
    ws.send_text(&text).await.unwrap();
    assert_eq!(ws.recv().await.unwrap().as_text(), Some(text.as_str()));
    let noise: Vec<u8> = (0..200_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    ws.send_binary(&noise).await.unwrap();
    assert_eq!(ws.recv().await.unwrap(), Message::binary(noise));
    ws.close(1000, "").await.unwrap();
}

#[tokio::test]
async fn wss_reaches_a_server_signed_by_a_trusted_ca_and_refuses_a_wrong_name() {
    let ca = TestCa::new("floodgate async test CA");
    let tls = server_config(&ca.server_cert(&["localhost"]), None);
    let server = Server::bind_tls("127.0.0.1:0", Options::default(), tls, echo).unwrap();
    let port = server.local_addr().port();
    let trusting = || {
        Client::builder()
            .tls_roots(RootCertificates::None)
            .add_root_certificates_pem(ca.pem().as_bytes())
            .connect_timeout(Some(Duration::from_secs(10)))
    };
    let mut ws = trusting()
        .connect_async(&format!("wss://localhost:{port}/"))
        .await
        .unwrap();
    for size in [10, 100_000, 3 << 20] {
        let payload = vec![b'x'; size];
        ws.send_binary(&payload).await.unwrap();
        assert_eq!(ws.recv().await.unwrap().len(), size);
    }
    ws.close(1000, "").await.unwrap();

    // 127.0.0.1 is not among the certificate's names.
    let err = trusting()
        .connect_async(&format!("wss://127.0.0.1:{port}/"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err.kind(),
            ErrorKind::Tls {
                failure: TlsFailure::WrongHostname { .. },
                ..
            }
        ),
        "{err:?}"
    );
    // Trusting another CA only, the certificate is not trusted.
    let other = TestCa::new("another CA");
    let err = Client::builder()
        .tls_roots(RootCertificates::None)
        .add_root_certificates_pem(other.pem().as_bytes())
        .connect_async(&format!("wss://localhost:{port}/"))
        .await
        .unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Tls { .. }), "{err:?}");
}

#[cfg(unix)]
#[tokio::test]
async fn a_unix_socket_carries_the_connection_while_the_url_names_the_host() {
    use std::os::unix::net::UnixListener;
    let dir = std::env::temp_dir().join(format!("floodgate-async-unix-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ws.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let (tx, heads) = mpsc::channel();
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let (ws, head) = floodgate_server::accept(stream, &Options::default()).unwrap();
        tx.send(head.clone()).unwrap();
        echo(ws, head);
    });
    let mut ws = Client::builder()
        .unix_socket(&path)
        .connect_async("ws://events.internal/v1/stream")
        .await
        .unwrap();
    ws.send_text("over a Unix socket").await.unwrap();
    assert_eq!(
        ws.recv().await.unwrap().as_text(),
        Some("over a Unix socket")
    );
    ws.close(1000, "").await.unwrap();
    let head = heads.recv().unwrap();
    assert_eq!(head.headers["host"], "events.internal");
    assert_eq!(head.path, "/v1/stream");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A plain HTTP server that answers every request with `answer`.
fn answering(answer: String) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    port
}

#[tokio::test]
async fn redirects_are_followed_within_the_limit() {
    let server = Server::bind("127.0.0.1:0", echo).unwrap();
    let hop = answering(format!(
        "HTTP/1.1 307 Temporary Redirect\r\nLocation: {}\r\nContent-Length: 0\r\n\r\n",
        server.url()
    ));
    let mut ws = floodgate::tokio::connect(&format!("ws://127.0.0.1:{hop}/"))
        .await
        .unwrap();
    ws.send_text("arrived").await.unwrap();
    assert_eq!(ws.recv().await.unwrap().as_text(), Some("arrived"));

    let err = Client::builder()
        .redirect_limit(0)
        .connect_async(&format!("ws://127.0.0.1:{hop}/"))
        .await
        .unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Handshake(_)), "{err:?}");

    // A loop ends at the limit with a typed error.
    let looping =
        answering("HTTP/1.1 302 Found\r\nLocation: /again\r\nContent-Length: 0\r\n\r\n".to_owned());
    let err = floodgate::tokio::connect(&format!("ws://127.0.0.1:{looping}/"))
        .await
        .unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Redirect { .. }), "{err:?}");
}

#[tokio::test]
async fn a_refused_connection_and_a_bad_url_are_typed_errors() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let err = floodgate::tokio::connect(&format!("ws://127.0.0.1:{port}/"))
        .await
        .unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Connect { .. }), "{err:?}");
    let err = floodgate::tokio::connect("http://example.com/")
        .await
        .unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::InvalidUrl { .. }),
        "{err:?}"
    );
    // A server that never answers the handshake: the connect timeout.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let err = Client::builder()
        .connect_timeout(Some(Duration::from_millis(200)))
        .connect_async(&format!("ws://{}/", silent.local_addr().unwrap()))
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
}

/// A minimal HTTP CONNECT proxy on a thread; counts the tunnels it opened.
fn connect_proxy() -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let tunnels = std::sync::Arc::new(AtomicUsize::new(0));
    let counted = tunnels.clone();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(mut client) = client else { continue };
            let counted = counted.clone();
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if client.read(&mut byte).unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head);
                let target = head
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or_default()
                    .to_owned();
                let Ok(upstream) = std::net::TcpStream::connect(&target) else {
                    let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n");
                    return;
                };
                counted.fetch_add(1, Ordering::SeqCst);
                client
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .unwrap();
                let (mut c2, mut u2) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
                let (mut c1, mut u1) = (client, upstream);
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut u2, &mut c2);
                    let _ = c2.shutdown(std::net::Shutdown::Write);
                });
                let _ = std::io::copy(&mut c1, &mut u1);
                let _ = u1.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    (port, tunnels)
}

#[tokio::test]
async fn an_http_connect_proxy_carries_the_connection() {
    let server = Server::bind("127.0.0.1:0", echo).unwrap();
    let (proxy, tunnels) = connect_proxy();
    let mut ws = Client::builder()
        .proxy(format!("http://127.0.0.1:{proxy}").as_str())
        .no_proxy("")
        .connect_async(&server.url())
        .await
        .unwrap();
    ws.send_text("through the proxy").await.unwrap();
    assert_eq!(
        ws.recv().await.unwrap().as_text(),
        Some("through the proxy")
    );
    ws.close(1000, "").await.unwrap();
    assert_eq!(tunnels.load(std::sync::atomic::Ordering::SeqCst), 1);
}
