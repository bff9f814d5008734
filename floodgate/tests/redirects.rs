//! Redirects of the handshake: a redirecting HTTP server (a raw
//! `TcpListener` that answers 3xx with a `Location`) in front of floodgate's
//! embedded echo server, on the same host and across hosts (`127.0.0.1`
//! and `localhost` are different hosts to the client).

use floodgate::{Client, ClientBuilder, ErrorKind, HandshakeError, RedirectError};
use floodgate_server::{RequestHead, Server};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::sync::Arc;

/// Answers every request with `status` and the `Location` that `location`
/// gives for the request's path; sends each request head (as text) to the
/// channel.
fn redirector(
    status: u16,
    location: impl Fn(&str) -> String + Send + Sync + 'static,
) -> (u16, mpsc::Receiver<String>) {
    redirector_in_front_of(None, status, location)
}

/// As [`redirector`], but requests for paths under `/final` are passed on
/// to `upstream` (bytes copied both ways), so that a redirect can stay on
/// the same origin.
fn redirector_in_front_of(
    upstream: Option<std::net::SocketAddr>,
    status: u16,
    location: impl Fn(&str) -> String + Send + Sync + 'static,
) -> (u16, mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let location = Arc::new(location);
    let (heads, received) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
                match stream.read(&mut byte) {
                    Ok(1) => head.push(byte[0]),
                    _ => break,
                }
            }
            let head = String::from_utf8_lossy(&head).into_owned();
            let path = head.split(' ').nth(1).unwrap_or("/").to_owned();
            let _ = heads.send(head.clone());
            if let (Some(upstream), true) = (upstream, path.starts_with("/final")) {
                let mut up = std::net::TcpStream::connect(upstream).unwrap();
                up.write_all(head.as_bytes()).unwrap();
                let (mut down_read, mut up_write) =
                    (stream.try_clone().unwrap(), up.try_clone().unwrap());
                std::thread::spawn(move || std::io::copy(&mut down_read, &mut up_write));
                std::thread::spawn(move || std::io::copy(&mut up, &mut stream));
                continue;
            }
            let answer = format!(
                "HTTP/1.1 {status} Moved\r\nLocation: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                location(&path)
            );
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    (port, received)
}

/// An echo server that reports each request head it accepts.
fn echo_server() -> (Server, mpsc::Receiver<RequestHead>) {
    let (heads, received) = mpsc::channel();
    let heads = std::sync::Mutex::new(heads);
    let server = Server::bind("127.0.0.1:0", move |ws, head: RequestHead| {
        let _ = heads.lock().unwrap().send(head.clone());
        floodgate_server::echo(ws, head);
    })
    .unwrap();
    (server, received)
}

fn with_credentials() -> ClientBuilder {
    Client::builder()
        .header("Authorization", "Bearer s3cr3t")
        .header("X-Trace", "kept")
        .cookie("session=abc")
}

#[test]
fn every_redirect_status_is_followed_on_the_same_host_with_credentials_kept() {
    let (echo, heads) = echo_server();
    for status in [301, 302, 303, 307, 308] {
        let (port, _) = redirector_in_front_of(Some(echo.local_addr()), status, move |path| {
            format!("/final{path}")
        });
        let mut ws = with_credentials()
            .connect(&format!("ws://127.0.0.1:{port}/start?x=1"))
            .unwrap_or_else(|e| panic!("{status}: {e}"));
        ws.send_text("after redirect").unwrap();
        assert_eq!(ws.recv().unwrap().as_text(), Some("after redirect"));
        let head = heads.recv().unwrap();
        assert_eq!(head.path, "/final/start?x=1", "{status}");
        assert_eq!(head.headers["authorization"], "Bearer s3cr3t");
        assert_eq!(head.headers["cookie"], "session=abc");
        assert_eq!(head.headers["host"], format!("127.0.0.1:{port}"));
    }
}

#[test]
fn a_relative_location_and_an_http_url_are_resolved_to_websocket_urls() {
    let (echo, heads) = echo_server();
    let echo_port = echo.local_addr().port();
    // An `http://` Location on another port (the same host): mapped to ws://.
    let (port, _) = redirector(302, move |_| {
        format!("http://127.0.0.1:{echo_port}/via-http")
    });
    let ws = Client::default().connect(&format!("ws://127.0.0.1:{port}/"));
    ws.expect("http:// Location");
    assert_eq!(heads.recv().unwrap().path, "/via-http");
    // A relative Location: a chain of two redirectors, the second sending a
    // path only, which stays on its own host and port.
    let (relative_port, relative_heads) = redirector(307, |path| {
        if path.starts_with("/moved") {
            "/never".into()
        } else {
            "/moved/here".into()
        }
    });
    let err = Client::builder()
        .redirect_limit(1)
        .connect(&format!("ws://127.0.0.1:{relative_port}/old"))
        .map(|_| ())
        .unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Redirect { .. }), "{err:?}");
    let first = relative_heads.recv().unwrap();
    let second = relative_heads.recv().unwrap();
    assert!(first.starts_with("GET /old "), "{first}");
    assert!(second.starts_with("GET /moved/here "), "{second}");
}

#[test]
fn a_redirect_to_another_host_drops_authorization_and_cookies() {
    let (echo, heads) = echo_server();
    let echo_port = echo.local_addr().port();
    let (port, _) = redirector(302, move |_| {
        format!("ws://localhost:{echo_port}/elsewhere")
    });
    let mut ws = with_credentials()
        .connect(&format!("ws://127.0.0.1:{port}/"))
        .expect("cross-host redirect");
    ws.send_text("x").unwrap();
    assert_eq!(ws.recv().unwrap().as_text(), Some("x"));
    let head = heads.recv().unwrap();
    assert_eq!(head.path, "/elsewhere");
    assert_eq!(head.headers["host"], format!("localhost:{echo_port}"));
    assert!(head.headers.get("authorization").is_none(), "{head:?}");
    assert!(head.headers.get("cookie").is_none(), "{head:?}");
    assert_eq!(head.headers["x-trace"], "kept");

    // Another port of the same host is another origin too (as for curl).
    let (port, _) = redirector(302, move |_| {
        format!("ws://127.0.0.1:{echo_port}/other-port")
    });
    with_credentials()
        .connect(&format!("ws://127.0.0.1:{port}/"))
        .expect("redirect to another port");
    let head = heads.recv().unwrap();
    assert_eq!(head.path, "/other-port");
    assert!(head.headers.get("authorization").is_none(), "{head:?}");
}

#[test]
fn a_redirect_loop_stops_at_the_limit() {
    let (port, heads) = redirector(302, |path| format!("{path}x"));
    let err = Client::default()
        .connect(&format!("ws://127.0.0.1:{port}/a"))
        .map(|_| ())
        .unwrap_err();
    assert!(err.to_string().contains("redirect_limit (3)"), "{err}");
    match err.into_kind() {
        ErrorKind::Redirect { from, to, .. } => {
            assert_eq!(from, format!("ws://127.0.0.1:{port}/axxx"));
            assert_eq!(to, "/axxxx");
        }
        other => panic!("{other:?}"),
    }
    // The first request and the three redirects followed.
    let seen: Vec<String> = heads.try_iter().collect();
    assert_eq!(seen.len(), 4, "{seen:?}");
}

#[test]
fn with_redirect_limit_zero_the_redirect_is_the_error() {
    let (port, heads) = redirector(301, |_| "ws://127.0.0.1:1/".into());
    let err = Client::builder()
        .redirect_limit(0)
        .connect(&format!("ws://127.0.0.1:{port}/"))
        .map(|_| ())
        .unwrap_err();
    match err.kind() {
        ErrorKind::Handshake(HandshakeError::UnexpectedStatus {
            status, headers, ..
        }) => {
            assert_eq!(status.as_u16(), 301);
            assert_eq!(headers["location"], "ws://127.0.0.1:1/");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(heads.try_iter().count(), 1);
}

#[test]
fn a_location_with_another_scheme_is_not_followed() {
    let (port, _) = redirector(302, |_| "ftp://127.0.0.1/file".into());
    let err = Client::default()
        .connect(&format!("ws://127.0.0.1:{port}/"))
        .map(|_| ())
        .unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::Redirect { reason: RedirectError::Scheme { scheme }, .. } if scheme == "ftp"),
        "{err:?}"
    );
}
