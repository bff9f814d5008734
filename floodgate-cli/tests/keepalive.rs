//! `floodgate connect` keeping a connection alive: pings and their
//! timeout, and reconnecting after an abnormal end.

mod support;

use floodgate_server::{accept, Server};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::{floodgate, stats_of, text};

#[test]
fn a_server_that_stops_answering_pings_is_detected_and_exits_5() {
    // The handler holds the connection and never reads: no pong comes.
    let server = Server::bind("127.0.0.1:0", |ws, _| {
        std::thread::sleep(Duration::from_secs(30));
        drop(ws);
    })
    .unwrap();
    let out = floodgate()
        .args([
            "connect",
            &server.url(),
            "--ping-interval",
            "100ms",
            "--ping-timeout",
            "300ms",
            "--eof-wait",
            "60s",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5), "{out:?}");
    assert!(
        text(&out.stderr).contains("no pong within 300ms"),
        "{out:?}"
    );
}

#[test]
fn pings_are_sent_on_the_interval_and_their_pongs_counted() {
    let server = Server::bind("127.0.0.1:0", floodgate_server::echo).unwrap();
    let out = floodgate()
        .args([
            "connect",
            &server.url(),
            "--ping-interval",
            "50ms",
            "--ping-timeout",
            "5s",
            "--eof-wait",
            "1s",
            "--stats",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stats: serde_json::Value = stats_of(&out);
    assert!(stats["pongs_received"].as_u64().unwrap() >= 2, "{stats}");
}

/// Serves connection `i` (0-based) with `script(i, ws)`.
fn scripted(script: impl Fn(usize, floodgate_server::WebSocket) + Send + Sync + 'static) -> Server {
    let count = Arc::new(AtomicUsize::new(0));
    Server::bind("127.0.0.1:0", move |ws, _| {
        script(count.fetch_add(1, Ordering::SeqCst), ws)
    })
    .unwrap()
}

#[test]
fn after_an_abnormal_end_it_reconnects_and_goes_on() {
    let server = scripted(|i, mut ws| {
        if i == 0 {
            ws.send_text("one").unwrap();
            ws.shutdown(); // no close handshake
        } else {
            ws.send_text("two").unwrap();
            let _ = ws.close(1000, "");
        }
    });
    let out = floodgate()
        .args([
            "connect",
            &server.url(),
            "--reconnect",
            "--reconnect-delay",
            "20ms",
            "--eof-wait",
            "60s",
            "--stats",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(text(&out.stdout), "one\ntwo\n");
    let stderr = text(&out.stderr);
    assert!(stderr.contains("reconnecting in"), "{stderr}");
    assert!(stderr.contains("\"connections\":2"), "{stderr}");
}

#[test]
fn without_reconnect_an_abnormal_end_exits_4() {
    let server = scripted(|_, mut ws| {
        ws.send_text("one").unwrap();
        ws.shutdown();
    });
    let out = floodgate()
        .args(["connect", &server.url(), "--eof-wait", "60s"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert_eq!(text(&out.stdout), "one\n");
    assert!(text(&out.stderr).contains("1006"), "{out:?}");
}

#[test]
fn reconnecting_gives_up_after_the_maximum_attempts() {
    // One connection, then the port is closed: every reconnect is refused.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    let server = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let (mut ws, _) = accept(stream, &floodgate_server::Options::default()).unwrap();
        ws.send_text("only").unwrap();
        ws.shutdown();
    });
    let out = floodgate()
        .args([
            "connect",
            &url,
            "--reconnect",
            "--reconnect-attempts",
            "3",
            "--reconnect-delay",
            "10ms",
            "--eof-wait",
            "60s",
        ])
        .output()
        .unwrap();
    server.join().unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("gave up reconnecting after 3 attempts"),
        "{stderr}"
    );
    assert_eq!(stderr.matches("reconnecting in").count(), 3, "{stderr}");
}
