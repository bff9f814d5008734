//! The connection's lifecycle against real sockets on the async front end
//! (the direct `floodgate::tokio::WebSocket` and the buffered one): the
//! same checks as `tests/lifecycle.rs` for the blocking client.
#![cfg(feature = "tokio")]

mod support;

use floodgate::Client;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::lifecycle::*;

fn keepalive_client() -> floodgate::ClientBuilder {
    Client::builder()
        .ping_interval(Some(PING_INTERVAL))
        .ping_timeout(Some(PING_TIMEOUT))
        .send_buffer_size(64 << 10)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_protocol_error_reaches_the_async_caller_within_100_ms_with_1002_on_the_wire() {
    let (server, code) = masked_frame_server();
    let mut ws = Client::builder()
        .close_timeout(Duration::from_secs(5))
        .connect_async(&server.url())
        .await
        .unwrap();
    let start = Instant::now();
    let err = ws.recv().await.expect_err("a masked frame from a server");
    assert_failed_at_once(&err, start.elapsed(), &code);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_protocol_error_reaches_the_async_buffered_consumer_at_once() {
    let (server, code) = masked_frame_server();
    let ws = Client::builder()
        .close_timeout(Duration::from_secs(5))
        .connect_buffered_async(&server.url())
        .await
        .unwrap();
    let start = Instant::now();
    let err = ws.recv().await.expect_err("a masked frame from a server");
    assert_failed_at_once(&err, start.elapsed(), &code);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_async_sender_blocked_on_a_server_that_stopped_reading_ends_at_the_pong_deadline() {
    let server = deaf_server();
    let ws = keepalive_client()
        .connect_async(&server.url())
        .await
        .unwrap();
    let start = Instant::now();
    let payload = vec![7u8; 64 << 10];
    let err = loop {
        if let Err(e) = ws.send_binary(&payload).await {
            break e;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "sends never blocked"
        );
    };
    assert_found_dead(&err, start.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_async_buffered_connection_whose_server_stopped_reading_ends_at_the_pong_deadline() {
    let server = deaf_server();
    let ws = keepalive_client()
        .connect_buffered_async(&server.url())
        .await
        .unwrap();
    let start = Instant::now();
    let sender = ws.sender();
    let writer = tokio::spawn(async move {
        let payload = vec![7u8; 64 << 10];
        while sender.send_binary(&payload).await.is_ok() {}
        Instant::now()
    });
    let err = ws.recv().await.expect_err("the server sends nothing");
    assert_found_dead(&err, start.elapsed());
    let freed_at = writer.await.unwrap().duration_since(start);
    assert!(
        freed_at < DEAD_WITHIN + 100 * MS,
        "the blocked sender was freed after {freed_at:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_async_buffered_close_behind_a_blocked_sender_returns_within_the_close_timeout() {
    let server = deaf_server();
    let close_timeout = Duration::from_millis(300);
    let mut ws = Client::builder()
        .close_timeout(close_timeout)
        .send_buffer_size(64 << 10)
        .connect_buffered_async(&server.url())
        .await
        .unwrap();
    let sender = ws.sender();
    let sent = Arc::new(AtomicUsize::new(0));
    let counter = sent.clone();
    let writer = tokio::spawn(async move {
        let payload = vec![7u8; 64 << 10];
        while sender.send_binary(&payload).await.is_ok() {
            counter.fetch_add(1, Ordering::SeqCst);
        }
    });
    // Wait until the writer is stuck: no send completes for 200 ms.
    let mut last = usize::MAX;
    while sent.load(Ordering::SeqCst) != last {
        last = sent.load(Ordering::SeqCst);
        tokio::time::sleep(200 * MS).await;
    }
    let start = Instant::now();
    let result = ws.close(1000, "").await;
    let took = start.elapsed();
    assert!(result.is_err(), "the server never answers");
    assert!(took < close_timeout + 100 * MS, "close took {took:?}");
    tokio::time::timeout(Duration::from_secs(2), writer)
        .await
        .expect("the blocked sender was freed")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_async_direct_close_behind_a_full_socket_returns_within_the_close_timeout() {
    let server = deaf_server();
    let close_timeout = Duration::from_millis(300);
    let mut ws = Client::builder()
        .close_timeout(close_timeout)
        .write_timeout(Some(Duration::from_millis(100)))
        .send_buffer_size(64 << 10)
        .connect_async(&server.url())
        .await
        .unwrap();
    let payload = vec![7u8; 64 << 10];
    let err = loop {
        if let Err(e) = ws.send_binary(&payload).await {
            break e;
        }
    };
    assert!(err.is_timeout(), "the socket filled up: {err:?}");
    let start = Instant::now();
    let err = ws
        .close(1000, "")
        .await
        .expect_err("the server reads nothing");
    let took = start.elapsed();
    assert!(err.is_timeout(), "{err:?}");
    assert!(took < close_timeout + 100 * MS, "close took {took:?}");
}
