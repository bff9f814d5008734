//! The server's side of the opening handshake: what is not a WebSocket
//! upgrade is answered with 400 and never reaches the handler; limits and
//! a client that leaves are typed errors of `accept`.

mod support;

use floodgate_server::{accept, echo, Error, Options, Server};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Sends `request` and returns the whole answer (the server closes).
fn answer_to(addr: std::net::SocketAddr, request: &[u8]) -> String {
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    tcp.write_all(request).unwrap();
    let mut answer = Vec::new();
    let _ = tcp.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn requests_that_are_not_upgrades_get_400_and_never_reach_the_handler() {
    let handled = Arc::new(AtomicUsize::new(0));
    let h = handled.clone();
    let server = Server::bind("127.0.0.1:0", move |ws, request| {
        h.fetch_add(1, Ordering::SeqCst);
        echo(ws, request);
    })
    .unwrap();
    for request in [
        &b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"[..],
        b"POST / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Version: 13\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        b"\x16\x03\x01\x02\x00 this is a TLS hello\r\n\r\n",
    ] {
        let answer = answer_to(server.local_addr(), request);
        assert!(
            answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
            "{:?}: {answer:?}",
            String::from_utf8_lossy(request)
        );
    }
    // A valid upgrade still works, and only it was handled.
    let mut client = support::RawClient::connect(server.local_addr(), "/");
    client.send_text("ok");
    assert!(client.recv_data().is_ok());
    assert_eq!(handled.load(Ordering::SeqCst), 1);
}

#[test]
fn a_valid_upgrade_is_answered_101_with_the_accept_key() {
    let server = Server::bind("127.0.0.1:0", echo).unwrap();
    let mut tcp = TcpStream::connect(server.local_addr()).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    tcp.write_all(
        b"GET /chat HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .unwrap();
    let mut head = vec![0u8; 1024];
    let n = tcp.read(&mut head).unwrap();
    let head = String::from_utf8_lossy(&head[..n]);
    assert!(
        head.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
        "{head}"
    );
    // RFC 6455 §1.3's example key and its answer.
    assert!(
        head.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"),
        "{head}"
    );
}

#[test]
fn a_request_head_over_the_limit_is_refused() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let client = std::thread::spawn(move || {
        let mut request = b"GET / HTTP/1.1\r\nHost: localhost\r\n".to_vec();
        request.extend_from_slice(format!("X-Padding: {}\r\n\r\n", "x".repeat(4096)).as_bytes());
        answer_to(addr, &request)
    });
    let (stream, _) = listener.accept().unwrap();
    let options = Options {
        max_handshake_size: 1024,
        ..Options::default()
    };
    let err = accept(stream, &options).unwrap_err();
    assert!(matches!(err, Error::BadRequest(_)), "{err}");
    assert!(client.join().unwrap().starts_with("HTTP/1.1 400"));
}

#[test]
fn a_client_that_leaves_during_the_handshake_is_told_apart() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut tcp = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: loc").unwrap();
    drop(tcp);
    let (stream, _) = listener.accept().unwrap();
    let err = accept(stream, &Options::default()).unwrap_err();
    assert!(matches!(err, Error::ClientLeftDuringHandshake), "{err}");
}

#[test]
fn a_silent_client_times_out_at_the_handshake_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let _silent = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (stream, _) = listener.accept().unwrap();
    let options = Options {
        handshake_timeout: Some(Duration::from_millis(100)),
        ..Options::default()
    };
    let err = accept(stream, &options).unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert!(err.to_string().contains("handshake_timeout"), "{err}");
}
