//! Unix domain sockets: a real `UnixListener` with floodgate's embedded
//! server's handshake on it; the client connects to the socket path while
//! the handshake names the URL's host and path.
#![cfg(unix)]

use floodgate::{Client, ErrorKind, UnsupportedError};
use floodgate_server::RequestHead;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::mpsc;

/// A Unix-socket echo server in a fresh directory; sends each request head
/// it accepts to the returned channel.
fn unix_echo_server(name: &str) -> (PathBuf, mpsc::Receiver<RequestHead>) {
    let dir = std::env::temp_dir().join(format!("floodgate-unix-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ws.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let (heads, received) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let heads = heads.clone();
            std::thread::spawn(move || {
                let options = floodgate_server::Options::default();
                if let Ok((ws, head)) = floodgate_server::accept(stream, &options) {
                    let _ = heads.send(head.clone());
                    floodgate_server::echo(ws, head);
                }
            });
        }
    });
    (path, received)
}

#[test]
fn the_handshake_names_the_url_while_the_bytes_go_to_the_socket() {
    let (path, heads) = unix_echo_server("plain");
    let mut ws = Client::builder()
        .unix_socket(&path)
        .connect("ws://events.internal/v1/stream?since=42")
        .expect("connect over the Unix socket");
    assert!(ws.get_ref().tcp().is_none());
    ws.send_text("over a Unix socket").unwrap();
    assert_eq!(ws.recv().unwrap().as_text(), Some("over a Unix socket"));
    ws.close(1000, "").unwrap();
    let head = heads.recv().unwrap();
    assert_eq!(head.path, "/v1/stream?since=42");
    assert_eq!(head.headers["host"], "events.internal");
}

#[test]
fn a_buffered_connection_runs_over_a_unix_socket() {
    let (path, _heads) = unix_echo_server("buffered");
    let mut ws = Client::builder()
        .unix_socket(&path)
        .connect_buffered("ws://localhost/")
        .expect("buffered over the Unix socket");
    let sender = ws.sender();
    let writer = std::thread::spawn(move || {
        for i in 0..5_000 {
            sender.send_text(&i.to_string()).unwrap();
        }
    });
    for i in 0..5_000 {
        assert_eq!(
            ws.recv().unwrap().message().as_text(),
            Some(&*i.to_string())
        );
    }
    writer.join().unwrap();
    ws.close(1000, "").unwrap();
}

#[test]
fn a_missing_socket_is_a_connect_error_naming_the_path() {
    let err = Client::builder()
        .unix_socket("/nonexistent/floodgate.sock")
        .connect("ws://localhost/")
        .map(|_| ())
        .unwrap_err();
    assert!(
        err.to_string().contains("/nonexistent/floodgate.sock"),
        "{err}"
    );
    assert!(matches!(err.kind(), ErrorKind::Connect { .. }), "{err:?}");
}

#[test]
fn wss_over_a_unix_socket_is_refused_as_unsupported() {
    let (path, _heads) = unix_echo_server("wss");
    let err = Client::builder()
        .unix_socket(&path)
        .connect("wss://localhost/")
        .map(|_| ())
        .unwrap_err();
    assert!(
        matches!(
            err.kind(),
            ErrorKind::Unsupported(UnsupportedError::WssOverUnixSocket)
        ),
        "{err:?}"
    );
}
