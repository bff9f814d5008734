//! The connection's lifecycle against real sockets, on the blocking direct
//! connection (`WebSocket`) and the buffered one: a protocol error reaches
//! the caller at once with the right close code on the wire, a server that
//! stops reading while the client sends is caught by the pong deadline,
//! and `close` keeps to its timeout even behind a full socket.
//!
//! The rules themselves are tested with a virtual clock in
//! `floodgate-proto/tests/lifecycle.rs`; these check that each front end
//! wakes for them. `tests/async_lifecycle.rs` has the same for tokio.

mod support;

use floodgate::Client;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};
use support::lifecycle::*;
use support::{RawConn, ScriptedServer};

#[test]
fn a_protocol_error_reaches_the_direct_caller_within_100_ms_with_1002_on_the_wire() {
    let (server, code) = masked_frame_server();
    let mut ws = Client::builder()
        .close_timeout(Duration::from_secs(5))
        .connect(&server.url())
        .unwrap();
    let start = Instant::now();
    let err = ws.recv().expect_err("a masked frame from a server");
    assert_failed_at_once(&err, start.elapsed(), &code);
    assert!(
        ws.recv().unwrap_err().is_closed(),
        "then it is closed for good"
    );
}

#[test]
fn a_protocol_error_reaches_the_buffered_consumer_at_once_with_1002_on_the_wire() {
    let (server, code) = masked_frame_server();
    let ws = Client::builder()
        .close_timeout(Duration::from_secs(5))
        .connect_buffered(&server.url())
        .unwrap();
    let start = Instant::now();
    let err = ws.recv().expect_err("a masked frame from a server");
    assert_failed_at_once(&err, start.elapsed(), &code);
}

fn keepalive_client() -> floodgate::ClientBuilder {
    Client::builder()
        .ping_interval(Some(PING_INTERVAL))
        .ping_timeout(Some(PING_TIMEOUT))
        .send_buffer_size(64 << 10)
}

#[test]
fn a_direct_sender_blocked_on_a_server_that_stopped_reading_ends_at_the_pong_deadline() {
    let server = deaf_server();
    let mut ws = keepalive_client().connect(&server.url()).unwrap();
    let start = Instant::now();
    let payload = vec![7u8; 64 << 10];
    let err = loop {
        if let Err(e) = ws.send_binary(&payload) {
            break e;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "sends never blocked"
        );
    };
    assert_found_dead(&err, start.elapsed());
}

#[test]
fn a_buffered_connection_whose_server_stopped_reading_ends_at_the_pong_deadline() {
    let server = deaf_server();
    let ws = keepalive_client().connect_buffered(&server.url()).unwrap();
    let start = Instant::now();
    let sender = ws.sender();
    // Another thread sends until its write blocks, and is freed by the end.
    let writer = thread::spawn(move || {
        let payload = vec![7u8; 64 << 10];
        while sender.send_binary(&payload).is_ok() {}
        Instant::now()
    });
    let err = ws.recv().expect_err("the server sends nothing");
    assert_found_dead(&err, start.elapsed());
    let freed_at = writer.join().unwrap().duration_since(start);
    assert!(
        freed_at < DEAD_WITHIN + 100 * MS,
        "the blocked sender was freed after {freed_at:?}"
    );
}

#[test]
fn a_direct_close_behind_a_full_socket_returns_within_the_close_timeout() {
    let server = deaf_server();
    let close_timeout = Duration::from_millis(300);
    let mut ws = Client::builder()
        .close_timeout(close_timeout)
        .write_timeout(Some(Duration::from_millis(100)))
        .send_buffer_size(64 << 10)
        .connect(&server.url())
        .unwrap();
    let payload = vec![7u8; 64 << 10];
    let err = loop {
        if let Err(e) = ws.send_binary(&payload) {
            break e;
        }
    };
    assert!(err.is_timeout(), "the socket filled up: {err:?}");
    let start = Instant::now();
    let err = ws.close(1000, "").expect_err("the server reads nothing");
    let took = start.elapsed();
    assert!(err.is_timeout(), "{err:?}");
    assert!(took < close_timeout + 100 * MS, "close took {took:?}");
}

#[test]
fn a_buffered_close_behind_a_blocked_sender_returns_within_the_close_timeout() {
    let server = deaf_server();
    let close_timeout = Duration::from_millis(300);
    let mut ws = Client::builder()
        .close_timeout(close_timeout)
        .send_buffer_size(64 << 10)
        .connect_buffered(&server.url())
        .unwrap();
    let sender = ws.sender();
    let sent = Arc::new(AtomicUsize::new(0));
    let counter = sent.clone();
    let writer = thread::spawn(move || {
        let payload = vec![7u8; 64 << 10];
        while sender.send_binary(&payload).is_ok() {
            counter.fetch_add(1, Ordering::SeqCst);
        }
    });
    // Wait until the writer is stuck: no send completes for 200 ms.
    let mut last = usize::MAX;
    while sent.load(Ordering::SeqCst) != last {
        last = sent.load(Ordering::SeqCst);
        thread::sleep(200 * MS);
    }
    let start = Instant::now();
    let result = ws.close(1000, "");
    let took = start.elapsed();
    assert!(result.is_err(), "the server never answers");
    assert!(took < close_timeout + 100 * MS, "close took {took:?}");
    writer.join().unwrap();
}

#[test]
fn a_peer_close_is_delivered_at_once_to_the_buffered_consumer() {
    // The server closes and then keeps TCP open: the consumer learns of
    // the close as soon as it arrives, while the reader waits for the
    // server's end of TCP within the close timeout.
    let server = ScriptedServer::start(|mut conn: RawConn| {
        conn.accept_upgrade(None);
        conn.send_close(1001, "going");
        let _ = conn.expect_close();
        thread::sleep(Duration::from_secs(2));
    });
    let ws = Client::builder()
        .close_timeout(Duration::from_secs(5))
        .connect_buffered(&server.url())
        .unwrap();
    let start = Instant::now();
    let err = ws.recv().expect_err("the server closed");
    assert!(err.is_closed(), "{err:?}");
    assert!(start.elapsed() < 100 * MS, "took {:?}", start.elapsed());
}
