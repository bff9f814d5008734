//! permessage-deflate end to end over loopback: negotiation with the
//! embedded server, round trips through the low-level and the buffered
//! connection (several senders), over TLS, the inflate limit, and the
//! refusal of answers the client did not offer.

mod support;
#[path = "support/tls_server.rs"]
mod tls_server;

use floodgate::{
    Client, ConfigError, DeflateConfig, DeflateConfigError, ErrorKind, ExtensionError,
    HandshakeError, Message,
};
use floodgate_server::{echo, Options, Server};
use std::time::Duration;
use support::{RawConn, ScriptedServer};

fn compressing_server() -> Server {
    let options = Options {
        compression: Some(DeflateConfig::default().threshold(0)),
        ..Options::default()
    };
    Server::bind_with("127.0.0.1:0", options, echo).unwrap()
}

fn client() -> Client {
    Client::builder()
        .compression(DeflateConfig::default().threshold(0))
        .build()
        .unwrap()
}

/// Text that compresses, and bytes that do not.
fn payloads() -> Vec<Message> {
    let mut out = Vec::new();
    for len in [0, 1, 100, 5_000, 70_000, 1 << 20] {
        let text: String = "{\"bid\":1.25,\"ask\":1.26} "
            .chars()
            .cycle()
            .take(len)
            .collect();
        out.push(Message::text(text));
        let mut x = len as u64 | 1;
        let noise: Vec<u8> = (0..len)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (x >> 56) as u8
            })
            .collect();
        out.push(Message::binary(noise));
    }
    out
}

#[test]
fn the_embedded_server_negotiates_and_messages_round_trip() {
    let server = compressing_server();
    let mut ws = client().connect(&server.url()).unwrap();
    let negotiated = ws.deflate().expect("negotiated").clone();
    assert!(negotiated.client_no_context_takeover);
    assert!(!negotiated.server_no_context_takeover);
    for message in payloads() {
        ws.send(message.clone()).unwrap();
        assert_eq!(ws.recv().unwrap(), message);
    }
    // Many in a row: the server's context is carried from one to the next.
    for i in 0..500 {
        let text = format!("message {i}: {}", "same old words ".repeat(i % 20));
        ws.send_text(&text).unwrap();
        assert_eq!(ws.recv().unwrap().as_text(), Some(text.as_str()));
    }
    ws.close(1000, "").unwrap();
}

#[test]
fn the_buffered_connection_compresses_from_every_sender_and_inflates() {
    let server = compressing_server();
    let mut ws = client().connect_buffered(&server.url()).unwrap();
    assert!(ws.deflate().is_some());
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let sender = ws.sender();
            std::thread::spawn(move || {
                for i in 0..200 {
                    sender
                        .send_text(&format!("thread {t} message {i} {}", "x".repeat(i)))
                        .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let mut next = [0usize; 4];
    for _ in 0..800 {
        let message = ws.recv_timeout(Duration::from_secs(10)).unwrap();
        let text = message.as_text().unwrap();
        let mut words = text.split(' ');
        let t: usize = words.nth(1).unwrap().parse().unwrap();
        let i: usize = words.nth(1).unwrap().parse().unwrap();
        assert_eq!(i, next[t], "messages of one sender arrive in order");
        assert_eq!(text.len(), format!("thread {t} message {i} ").len() + i);
        next[t] += 1;
    }
    for message in payloads() {
        ws.sender().send(message.clone()).unwrap();
        assert_eq!(
            ws.recv_timeout(Duration::from_secs(10))
                .unwrap()
                .into_message(),
            message
        );
    }
    ws.close(1000, "").unwrap();
}

#[test]
fn a_server_that_declines_leaves_the_connection_uncompressed() {
    let server = Server::bind("127.0.0.1:0", echo).unwrap();
    let mut ws = client().connect(&server.url()).unwrap();
    assert_eq!(ws.deflate(), None);
    ws.send_text("plain").unwrap();
    assert_eq!(ws.recv().unwrap().as_text(), Some("plain"));
    ws.close(1000, "").unwrap();
}

#[test]
fn an_inflated_message_over_the_limit_fails_with_1009() {
    let options = Options {
        compression: Some(DeflateConfig::default()),
        ..Options::default()
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let server = Server::bind_with("127.0.0.1:0", options, move |mut ws, _| {
        // 8 MiB of zeros: a few KiB on the wire.
        ws.send_binary(&vec![0u8; 8 << 20]).unwrap();
        let _ = tx.send(ws.recv().map_err(|e| e.to_string()));
    })
    .unwrap();
    let mut ws = Client::builder()
        .compression(DeflateConfig::default())
        .max_message_size(Some(1 << 20))
        .build()
        .unwrap()
        .connect(&server.url())
        .unwrap();
    let err = ws.recv().unwrap_err();
    match err.kind() {
        ErrorKind::Protocol(floodgate::ProtocolError::MessageTooLarge { len, max }) => {
            assert_eq!(*max, 1 << 20);
            assert!(*len <= (1 << 20) + 1, "inflated {len} bytes");
        }
        other => panic!("expected MessageTooLarge, got {other:?}"),
    }
    let server_saw = rx
        .recv_timeout(Duration::from_secs(10))
        .unwrap()
        .unwrap_err();
    assert!(server_saw.contains("1009"), "{server_saw}");
}

fn answer_with_extensions(extensions: &'static str) -> ScriptedServer {
    ScriptedServer::start(move |mut conn: RawConn| {
        let accept = floodgate_proto::handshake::accept_key(&conn.key());
        conn.write_raw(
            format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Extensions: {extensions}\r\n\r\n"
            )
            .as_bytes(),
        );
        conn.read_to_eof();
    })
}

fn handshake_error(err: &floodgate::Error) -> &HandshakeError {
    match err.kind() {
        ErrorKind::Handshake(e) => e,
        other => panic!("expected a handshake error, got {other:?}"),
    }
}

#[test]
fn the_offer_is_sent_in_the_request() {
    let server = answer_with_extensions("permessage-deflate");
    let ws = client().connect(&server.url()).unwrap();
    let request = server.request();
    let offer = request.headers.get("sec-websocket-extensions").unwrap();
    assert_eq!(offer.to_str().unwrap(), DeflateConfig::default().offer());
    drop(ws);
    server.join();
}

#[test]
fn answers_that_break_rfc_7692_fail_the_handshake_with_the_reason() {
    type Check = fn(&ExtensionError) -> bool;
    let cases: [(&str, Check); 4] = [
        ("permessage-deflate; server_max_window_bits=16", |e| {
            matches!(e, ExtensionError::InvalidValue { .. })
        }),
        ("permessage-deflate; client_max_window_bits=7", |e| {
            matches!(e, ExtensionError::InvalidValue { .. })
        }),
        (
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            |e| matches!(e, ExtensionError::DuplicateParameter(_)),
        ),
        (
            "permessage-deflate; window=9",
            |e| matches!(e, ExtensionError::UnknownParameter(p) if p == "window"),
        ),
    ];
    for (answer, expected) in cases {
        let server = answer_with_extensions(answer);
        let err = client().connect(&server.url()).expect_err(answer);
        match handshake_error(&err) {
            HandshakeError::InvalidExtension { error, .. } => {
                assert!(expected(error), "{answer}: {error:?}")
            }
            other => panic!("{answer}: {other:?}"),
        }
        assert!(err.to_string().contains(answer), "{err}");
        server.join();
    }
}

#[test]
fn an_extension_the_client_did_not_offer_fails_the_handshake() {
    let server = answer_with_extensions("x-webkit-deflate-frame");
    let err = client().connect(&server.url()).unwrap_err();
    assert!(
        matches!(handshake_error(&err), HandshakeError::UnofferedExtension(e) if e == "x-webkit-deflate-frame"),
        "{err:?}"
    );
    server.join();
}

#[test]
fn an_invalid_deflate_config_is_refused_by_build() {
    let err = Client::builder()
        .compression(DeflateConfig::default().client_max_window_bits(16))
        .build()
        .unwrap_err();
    assert!(
        matches!(
            err.kind(),
            ErrorKind::Config(ConfigError::Compression(DeflateConfigError::WindowBits {
                value: 16,
                ..
            }))
        ),
        "{err:?}"
    );
}

#[test]
fn compression_runs_over_tls_on_both_paths() {
    let ca = tls_server::TestCa::new("floodgate test CA");
    let cert = ca.server_cert(&["localhost"]);
    let tls =
        floodgate_server::tls::server_config_from_pem(cert.pem.as_bytes(), cert.key_pem.as_bytes())
            .unwrap();
    let options = Options {
        compression: Some(DeflateConfig::default().threshold(0)),
        ..Options::default()
    };
    let server = Server::bind_tls("127.0.0.1:0", options, tls, echo).unwrap();
    let url = format!("wss://localhost:{}/", server.local_addr().port());
    let client = Client::builder()
        .tls_roots(floodgate::tls::RootCertificates::None)
        .add_root_certificates_pem(ca.pem().as_bytes())
        .compression(DeflateConfig::default().threshold(0))
        .build()
        .unwrap();
    let mut ws = client.connect(&url).unwrap();
    assert!(ws.deflate().is_some());
    for message in payloads() {
        ws.send(message.clone()).unwrap();
        assert_eq!(ws.recv().unwrap(), message);
    }
    ws.close(1000, "").unwrap();
    let mut ws = client.connect_buffered(&url).unwrap();
    assert!(ws.deflate().is_some());
    for message in payloads() {
        ws.sender().send(message.clone()).unwrap();
        assert_eq!(
            ws.recv_timeout(Duration::from_secs(10))
                .unwrap()
                .into_message(),
            message
        );
    }
    ws.close(1000, "").unwrap();
}

#[test]
fn an_app_built_on_a_compressing_client_compresses_and_inflates() {
    use floodgate::app::{App, RunOptions};
    let options = Options {
        compression: Some(DeflateConfig::default()),
        ..Options::default()
    };
    // Echoes with a prefix that says whether the server side negotiated.
    let server = Server::bind_with("127.0.0.1:0", options, |mut ws, _| {
        let negotiated = ws.deflate().is_some();
        while let Ok(m) = ws.recv() {
            let reply = format!("deflate={negotiated} {}", m.as_text().unwrap_or(""));
            if ws.send_text(&reply).is_err() {
                break;
            }
        }
    })
    .unwrap();
    let text = "{\"op\":\"subscribe\",\"channel\":\"trades\"} ".repeat(200);
    let (sent, expected) = (text.clone(), format!("deflate=true {text}"));
    let got = std::sync::Arc::new(std::sync::Mutex::new(None));
    let got_in_handler = got.clone();
    let app = App::builder(server.url())
        .client(Client::builder().compression(DeflateConfig::default()))
        .on_open(move |ctx| ctx.send_text(&sent).unwrap())
        .on_message(move |ctx, m| {
            *got_in_handler.lock().unwrap() = m.as_text().map(str::to_owned);
            ctx.close();
        })
        .build()
        .unwrap();
    let summary = app.run_forever(&RunOptions::new()).unwrap();
    assert_eq!(summary.connections, 1);
    assert_eq!(got.lock().unwrap().as_deref(), Some(expected.as_str()));
}
