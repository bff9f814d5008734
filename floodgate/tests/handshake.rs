//! The opening handshake over loopback, against a scripted server: what the
//! request carries, what an accepted response gives, and how every kind of
//! refusal, malformed answer or silent server is reported.

mod support;

use floodgate::{Client, ConfigError, ErrorKind, HandshakeError, Message, Phase, TimeoutKind};
use std::net::TcpListener;
use std::time::{Duration, Instant};
use support::{frame_bytes, RawConn, ScriptedServer};

/// A server that accepts the upgrade and then waits for the client to go.
fn accepting_server() -> ScriptedServer {
    ScriptedServer::start(|mut conn: RawConn| {
        conn.accept_upgrade(None);
        conn.read_to_eof();
    })
}

fn header<'a>(request: &'a floodgate_proto::handshake::RequestHead, name: &str) -> Option<&'a str> {
    request
        .headers
        .get(name)
        .map(|v| v.to_str().expect("an ASCII header value"))
}

fn handshake_error(err: &floodgate::Error) -> &HandshakeError {
    match err.kind() {
        ErrorKind::Handshake(e) => e,
        other => panic!("expected a handshake error, got {other:?}"),
    }
}

#[test]
fn the_request_carries_host_with_the_port_and_an_origin_from_the_url() {
    let server = accepting_server();
    let port = server.addr().port();
    let ws = floodgate::connect(&format!("ws://127.0.0.1:{port}/feed?x=1")).expect("connect");
    let request = server.request();
    assert_eq!(request.path, "/feed?x=1");
    assert_eq!(
        header(&request, "host"),
        Some(format!("127.0.0.1:{port}").as_str())
    );
    assert_eq!(
        header(&request, "origin"),
        Some(format!("http://127.0.0.1:{port}").as_str())
    );
    assert_eq!(header(&request, "upgrade"), Some("websocket"));
    assert_eq!(header(&request, "sec-websocket-version"), Some("13"));
    assert_eq!(
        header(&request, "sec-websocket-protocol"),
        None,
        "nothing offered, nothing sent"
    );
    assert_eq!(header(&request, "cookie"), None);
    drop(ws);
    server.join();
}

#[test]
fn a_custom_origin_replaces_the_derived_one() {
    let server = accepting_server();
    let ws = Client::builder()
        .origin("https://app.example")
        .connect(&server.url())
        .expect("connect");
    assert_eq!(
        header(&server.request(), "origin"),
        Some("https://app.example")
    );
    drop(ws);
    server.join();
}

#[test]
fn a_suppressed_origin_sends_no_origin_header() {
    let server = accepting_server();
    let ws = Client::builder()
        .suppress_origin()
        .connect(&server.url())
        .expect("connect");
    let request = server.request();
    assert!(
        !request.headers.contains_key("origin"),
        "{:?}",
        request.headers
    );
    drop(ws);
    server.join();
}

#[test]
fn a_host_header_override_is_sent_instead_of_the_url_host() {
    let server = accepting_server();
    let ws = Client::builder()
        .host_header("virtual.example:8080")
        .connect(&server.url())
        .expect("connect");
    let request = server.request();
    let hosts: Vec<_> = request.headers.get_all("host").iter().collect();
    assert_eq!(
        hosts,
        ["virtual.example:8080"],
        "exactly one Host header, the override"
    );
    drop(ws);
    server.join();
}

#[test]
fn cookies_custom_headers_and_subprotocols_are_sent_as_given() {
    let server = accepting_server();
    let ws = Client::builder()
        .cookie("session=abc; theme=dark")
        .header("Authorization", "Bearer t0k3n")
        .header("X-Tag", "one")
        .header("X-Tag", "two")
        .subprotocol("v2.chat")
        .subprotocol("v1.chat")
        .connect(&server.url())
        .expect("connect");
    let request = server.request();
    assert_eq!(header(&request, "cookie"), Some("session=abc; theme=dark"));
    assert_eq!(header(&request, "authorization"), Some("Bearer t0k3n"));
    let tags: Vec<_> = request.headers.get_all("x-tag").iter().collect();
    assert_eq!(
        tags,
        ["one", "two"],
        "a repeated header is sent twice, in order"
    );
    assert_eq!(
        request.subprotocols(),
        ["v2.chat", "v1.chat"],
        "offered best first"
    );
    assert_eq!(ws.subprotocol(), None, "the server selected none");
    drop(ws);
    server.join();
}

#[test]
fn the_selected_subprotocol_and_the_response_headers_are_exposed() {
    let server = ScriptedServer::start(|mut conn| {
        let key = conn.key();
        let accept = floodgate_proto::handshake::accept_key(&key);
        conn.write_raw(
            format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Protocol: v1.chat\r\nX-Server: scripted\r\n\r\n"
            )
            .as_bytes(),
        );
        conn.read_to_eof();
    });
    let ws = Client::builder()
        .subprotocol("v2.chat")
        .subprotocol("v1.chat")
        .connect(&server.url())
        .expect("connect");
    assert_eq!(ws.subprotocol(), Some("v1.chat"));
    assert_eq!(ws.status(), 101);
    assert_eq!(
        ws.headers().get("x-server").map(|v| v.as_bytes()),
        Some(&b"scripted"[..])
    );
    drop(ws);
    server.join();
}

#[test]
fn a_subprotocol_that_was_not_offered_is_refused() {
    let server = ScriptedServer::start(|mut conn| {
        conn.accept_upgrade(Some("mqtt"));
        conn.read_to_eof();
    });
    let err = Client::builder()
        .subprotocol("chat")
        .connect(&server.url())
        .expect_err("an unoffered subprotocol must fail the handshake");
    assert!(
        matches!(handshake_error(&err), HandshakeError::UnofferedSubprotocol(p) if p == "mqtt"),
        "{err:?}"
    );
    server.join();
}

#[test]
fn a_refusal_reports_status_headers_and_a_body_that_arrives_later() {
    let body = "forbidden: bad token";
    let server = ScriptedServer::start(move |mut conn| {
        conn.write_raw(
            format!(
                "HTTP/1.1 403 Token Refused\r\nContent-Type: text/plain\r\nX-Reason: token\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        );
        // The body comes in a second write, so the client must wait for it.
        std::thread::sleep(Duration::from_millis(50));
        conn.write_raw(body.as_bytes());
        conn.read_to_eof();
    });
    let err = floodgate::connect(&server.url()).expect_err("a 403 must fail the handshake");
    match handshake_error(&err) {
        HandshakeError::UnexpectedStatus {
            status,
            reason,
            headers,
            body: got,
        } => {
            assert_eq!(*status, 403);
            assert_eq!(reason, "Token Refused", "the server's own reason phrase");
            assert_eq!(
                headers.get("x-reason").map(|v| v.as_bytes()),
                Some(&b"token"[..])
            );
            assert_eq!(&got[..], body.as_bytes());
        }
        other => panic!("expected UnexpectedStatus, got {other:?}"),
    }
    assert!(err.to_string().contains("403"), "{err}");
    server.join();
}

#[test]
fn a_wrong_sec_websocket_accept_is_refused() {
    let server = ScriptedServer::start(|mut conn| {
        conn.write_raw(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
        );
        conn.read_to_eof();
    });
    let err = floodgate::connect(&server.url()).expect_err("a wrong accept value must fail");
    assert!(
        matches!(handshake_error(&err), HandshakeError::WrongAccept { got, .. } if got == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        "{err:?}"
    );
    server.join();
}

#[test]
fn endless_response_headers_stop_at_the_size_limit() {
    let limit = 16 << 10;
    let server = ScriptedServer::start(|mut conn| {
        conn.write_raw(b"HTTP/1.1 101 Switching Protocols\r\n");
        let line = format!("X-Padding: {}\r\n", "a".repeat(1000));
        let mut sent = 0usize;
        // Keep writing until the client gives up; a client that kept
        // reading would keep this loop going until the cap below.
        while sent < (64 << 20) && conn.try_write_raw(line.as_bytes()).is_ok() {
            sent += line.len();
        }
        assert!(
            sent < (64 << 20),
            "the client read 64 MiB of headers without giving up"
        );
    });
    let started = Instant::now();
    let err = Client::builder()
        .max_handshake_size(limit)
        .connect(&server.url())
        .expect_err("endless headers must fail");
    assert!(
        matches!(handshake_error(&err), HandshakeError::ResponseTooLarge { limit: l } if *l == limit),
        "{err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    server.join();
}

#[test]
fn an_extension_that_was_not_offered_is_refused() {
    let server = ScriptedServer::start(|mut conn| {
        let accept = floodgate_proto::handshake::accept_key(&conn.key());
        conn.write_raw(
            format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n"
            )
            .as_bytes(),
        );
        conn.read_to_eof();
    });
    let err = floodgate::connect(&server.url()).expect_err("an unoffered extension must fail");
    assert!(
        matches!(handshake_error(&err), HandshakeError::UnofferedExtension(e) if e == "permessage-deflate"),
        "{err:?}"
    );
    server.join();
}

#[test]
fn a_server_that_never_answers_times_out_within_the_connect_timeout() {
    let server = ScriptedServer::start(|mut conn| {
        // Accepts TCP, reads the request, says nothing.
        conn.read_to_eof();
    });
    let started = Instant::now();
    let err = Client::builder()
        .connect_timeout(Some(Duration::from_millis(300)))
        .connect(&server.url())
        .expect_err("a silent server must time out");
    let elapsed = started.elapsed();
    assert!(
        matches!(
            err.kind(),
            ErrorKind::Timeout {
                kind: TimeoutKind::Handshake,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_timeout());
    assert_eq!(err.phase(), Phase::Dial);
    assert!(
        elapsed >= Duration::from_millis(250),
        "gave up early, after {elapsed:?}"
    );
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
    server.join();
}

#[test]
fn connecting_to_a_closed_port_is_a_connect_error() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let err =
        floodgate::connect(&format!("ws://127.0.0.1:{port}/")).expect_err("nothing listens there");
    match err.kind() {
        ErrorKind::Connect { target, source } => {
            assert_eq!(target, &format!("127.0.0.1:{port}"));
            assert_eq!(source.kind(), std::io::ErrorKind::ConnectionRefused);
        }
        other => panic!("expected a connect error, got {other:?}"),
    }
}

#[test]
fn an_invalid_builder_header_is_a_config_error_from_build() {
    for (name, value) in [("X-Bad", "line\r\nbreak"), ("Bad Name", "v"), ("", "v")] {
        let err = Client::builder()
            .header(name, value)
            .build()
            .expect_err("an invalid header");
        assert!(
            matches!(
                err.kind(),
                ErrorKind::Config(ConfigError::InvalidHeader { name: n, .. }) if n == name
            ),
            "{name:?}: {value:?}: {err:?}"
        );
    }
}

#[test]
fn frames_sent_in_the_same_write_as_the_101_are_not_lost() {
    let server = ScriptedServer::start(|mut conn| {
        let mut frames = frame_bytes(0x81, b"first", None);
        frames.extend(frame_bytes(0x82, &[1, 2, 3], None));
        conn.accept_upgrade_with(None, &frames);
        conn.read_to_eof();
    });
    let mut ws = floodgate::connect(&server.url()).expect("connect");
    assert_eq!(ws.recv().expect("first message"), Message::text("first"));
    assert_eq!(
        ws.recv().expect("second message"),
        Message::binary(vec![1, 2, 3])
    );
    drop(ws);
    server.join();
}
