//! One API across blocking and async (issue 15, item 8): the same name
//! means the same contract. Each contract is pinned here on both front
//! ends, side by side, against the same scripted servers.

mod support;

use floodgate::PerMessageDeflate;
use floodgate::{Client, ErrorKind, UsageError};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};
use support::{RawConn, ScriptedServer};

/// How long the server holds the client's close before it answers: long
/// enough that a `close` that does not wait returns well before.
const ANSWER_AFTER: Duration = Duration::from_millis(300);

/// A server that answers the client's close only after [`ANSWER_AFTER`],
/// setting the flag just before its close goes out.
fn slow_closing_server() -> (ScriptedServer, Arc<AtomicBool>) {
    let answered = Arc::new(AtomicBool::new(false));
    let flag = answered.clone();
    let server = ScriptedServer::start(move |mut conn: RawConn| {
        conn.accept_upgrade(None);
        let close = conn.expect_close();
        thread::sleep(ANSWER_AFTER);
        flag.store(true, Ordering::SeqCst);
        conn.send_close(close.map_or(1000, |(code, _)| code), "");
        conn.shutdown_write();
        conn.read_to_eof();
    });
    (server, answered)
}

/// A server that says nothing until the client closes, then answers.
fn silent_server() -> ScriptedServer {
    ScriptedServer::start(|mut conn: RawConn| {
        conn.accept_upgrade(None);
        conn.answer_close();
    })
}

/// A server that sends one message, then waits for the client to go
/// without a close: what it read until the end must be nothing.
fn one_message_then_no_close_server() -> ScriptedServer {
    ScriptedServer::start(|mut conn: RawConn| {
        conn.accept_upgrade(None);
        conn.send_text("before");
        let rest = conn.read_to_eof();
        assert!(rest.is_empty(), "the client sent {} bytes", rest.len());
    })
}

fn deflate_server() -> floodgate_server::Server {
    floodgate_server::Server::bind_with(
        "127.0.0.1:0",
        floodgate_server::Options {
            compression: Some(floodgate::DeflateConfig::default()),
            ..floodgate_server::Options::default()
        },
        floodgate_server::echo,
    )
    .unwrap()
}

// ----- blocking ----------------------------------------------------------------

#[test]
fn a_blocking_sender_close_returns_only_after_the_servers_close() {
    let (server, answered) = slow_closing_server();
    let ws = Client::default().connect_buffered(&server.url()).unwrap();
    ws.sender().close(1000, "bye").expect("a clean close");
    assert!(
        answered.load(Ordering::SeqCst),
        "close returned before the server's close was sent"
    );
    assert!(!ws.is_open());
    server.join();
}

#[test]
fn a_blocking_start_close_returns_before_the_servers_close_and_a_second_is_a_usage_error() {
    let (server, answered) = slow_closing_server();
    let ws = Client::default().connect_buffered(&server.url()).unwrap();
    let sender = ws.sender();
    sender.start_close(None).expect("the close frame goes out");
    assert!(
        !answered.load(Ordering::SeqCst),
        "start_close waited for the server"
    );
    let again = sender.start_close(None).unwrap_err();
    assert!(
        matches!(again.kind(), ErrorKind::Usage(UsageError::Closed)),
        "{again:?}"
    );
    let end = ws.recv().unwrap_err();
    assert!(
        matches!(end.kind(), ErrorKind::ConnectionClosed(_)),
        "{end:?}"
    );
    server.join();
}

#[test]
fn a_blocking_recv_batch_with_a_wait_returns_empty_after_the_wait() {
    let server = silent_server();
    let mut ws = Client::default().connect_buffered(&server.url()).unwrap();
    let wait = Duration::from_millis(50);
    let start = Instant::now();
    let batch = ws.recv_batch(10, wait).unwrap();
    assert!(batch.is_empty());
    assert!(start.elapsed() >= wait, "returned before the wait was over");
    let mut reused = Vec::new();
    assert_eq!(ws.recv_batch_into(&mut reused, 10, wait).unwrap(), 0);
    ws.close(1000, "").unwrap();
    server.join();
}

#[test]
fn a_blocking_buffered_shutdown_drops_at_once_and_keeps_what_is_buffered() {
    let server = one_message_then_no_close_server();
    let mut ws = Client::default().connect_buffered(&server.url()).unwrap();
    while ws.stats().buffered == 0 {
        thread::sleep(Duration::from_millis(1));
    }
    ws.shutdown();
    assert_eq!(ws.recv().unwrap().as_text(), Some("before"));
    let end = ws.recv().unwrap_err();
    assert!(matches!(end.kind(), ErrorKind::AbnormalClosure), "{end:?}");
    assert!(!ws.is_open());
    server.join();
}

#[test]
fn blocking_deflate_lends_the_negotiated_parameters() {
    let server = deflate_server();
    let client = Client::builder()
        .compression(floodgate::DeflateConfig::default())
        .build()
        .unwrap();
    let ws = client.connect(&server.url()).unwrap();
    let direct: Option<&PerMessageDeflate> = ws.deflate();
    let direct = direct.expect("negotiated").clone();
    let mut buffered = client.connect_buffered(&server.url()).unwrap();
    let lent: Option<&PerMessageDeflate> = buffered.deflate();
    assert_eq!(lent, Some(&direct));
    buffered.close(1000, "").unwrap();
}

// ----- async -------------------------------------------------------------------

#[cfg(feature = "tokio")]
mod on_tokio {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_async_buffered_sender_close_returns_only_after_the_servers_close() {
        let (server, answered) = slow_closing_server();
        let ws = Client::default()
            .connect_buffered_async(&server.url())
            .await
            .unwrap();
        ws.sender().close(1000, "bye").await.expect("a clean close");
        assert!(
            answered.load(Ordering::SeqCst),
            "close returned before the server's close was sent"
        );
        assert!(!ws.is_open());
        tokio::task::spawn_blocking(move || server.join())
            .await
            .unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_async_split_sender_close_returns_after_the_server_close_the_receiver_read() {
        let (server, answered) = slow_closing_server();
        let (sender, mut receiver) = floodgate::tokio::connect(&server.url())
            .await
            .unwrap()
            .split();
        let receiving = tokio::spawn(async move { receiver.recv().await });
        sender.close(1000, "bye").await.expect("a clean close");
        assert!(
            answered.load(Ordering::SeqCst),
            "close returned before the server's close was sent"
        );
        let end = receiving.await.unwrap().unwrap_err();
        assert!(
            matches!(end.kind(), ErrorKind::ConnectionClosed(_)),
            "{end:?}"
        );
        tokio::task::spawn_blocking(move || server.join())
            .await
            .unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_async_close_message_passed_to_send_runs_the_close_handshake() {
        let (server, answered) = slow_closing_server();
        let mut ws = floodgate::tokio::connect(&server.url()).await.unwrap();
        ws.send(floodgate::Message::Close(None))
            .await
            .expect("a clean close");
        assert!(
            answered.load(Ordering::SeqCst),
            "send returned before the handshake"
        );
        assert_eq!(ws.state(), floodgate::State::Closed);
        tokio::task::spawn_blocking(move || server.join())
            .await
            .unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_async_start_close_returns_before_the_servers_close_and_a_second_is_a_usage_error() {
        let (server, answered) = slow_closing_server();
        let ws = Client::default()
            .connect_buffered_async(&server.url())
            .await
            .unwrap();
        let sender = ws.sender();
        sender
            .start_close(None)
            .await
            .expect("the close frame goes out");
        assert!(
            !answered.load(Ordering::SeqCst),
            "start_close waited for the server"
        );
        let again = sender.start_close(None).await.unwrap_err();
        assert!(
            matches!(again.kind(), ErrorKind::Usage(UsageError::Closed)),
            "{again:?}"
        );
        let end = ws.recv().await.unwrap_err();
        assert!(
            matches!(end.kind(), ErrorKind::ConnectionClosed(_)),
            "{end:?}"
        );
        tokio::task::spawn_blocking(move || server.join())
            .await
            .unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_async_recv_batch_with_a_wait_returns_empty_after_the_wait() {
        let server = silent_server();
        let mut ws = Client::default()
            .connect_buffered_async(&server.url())
            .await
            .unwrap();
        let wait = Duration::from_millis(50);
        let start = Instant::now();
        let batch = ws.recv_batch(10, wait).await.unwrap();
        assert!(batch.is_empty());
        assert!(start.elapsed() >= wait, "returned before the wait was over");
        let mut reused = Vec::new();
        assert_eq!(ws.recv_batch_into(&mut reused, 10, wait).await.unwrap(), 0);
        let timed_out = ws.recv_timeout(wait).await.unwrap_err();
        assert!(timed_out.is_timeout(), "{timed_out:?}");
        assert!(ws.is_open(), "a wait that timed out leaves it open");
        ws.close(1000, "").await.unwrap();
        tokio::task::spawn_blocking(move || server.join())
            .await
            .unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_async_buffered_shutdown_drops_at_once_and_keeps_what_is_buffered() {
        let server = one_message_then_no_close_server();
        let mut ws = Client::default()
            .connect_buffered_async(&server.url())
            .await
            .unwrap();
        while ws.stats().buffered == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        ws.shutdown().await;
        assert_eq!(ws.recv().await.unwrap().as_text(), Some("before"));
        let end = ws.recv().await.unwrap_err();
        assert!(matches!(end.kind(), ErrorKind::AbnormalClosure), "{end:?}");
        assert!(!ws.is_open());
        let late = ws.send_text("late").await.unwrap_err();
        assert!(matches!(late.kind(), ErrorKind::AlreadyClosed), "{late:?}");
        tokio::task::spawn_blocking(move || server.join())
            .await
            .unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn async_deflate_lends_the_same_parameters_as_the_blocking_client() {
        let server = deflate_server();
        let client = Client::builder()
            .compression(floodgate::DeflateConfig::default())
            .build()
            .unwrap();
        let blocking = {
            let (client, url) = (client.clone(), server.url());
            tokio::task::spawn_blocking(move || client.connect(&url).unwrap())
                .await
                .unwrap()
        };
        let expected = blocking.deflate().expect("negotiated").clone();
        let direct = client.connect_async(&server.url()).await.unwrap();
        let lent: Option<&PerMessageDeflate> = direct.deflate();
        assert_eq!(lent, Some(&expected));
        let mut buffered = client.connect_buffered_async(&server.url()).await.unwrap();
        let lent: Option<&PerMessageDeflate> = buffered.deflate();
        assert_eq!(lent, Some(&expected));
        buffered.close(1000, "").await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_async_send_all_writes_the_messages_in_order_and_a_close_ends_the_batch() {
        let server = floodgate_server::Server::bind("127.0.0.1:0", floodgate_server::echo).unwrap();
        let ws = Client::default()
            .connect_buffered_async(&server.url())
            .await
            .unwrap();
        ws.sender()
            .send_all([
                floodgate::Message::text("one"),
                floodgate::Message::text("two"),
                floodgate::Message::Close(None),
                floodgate::Message::text("never"),
            ])
            .await
            .expect("sent, then closed");
        let mut got = Vec::new();
        loop {
            match ws.recv().await {
                Ok(message) => got.push(message.as_text().unwrap().to_owned()),
                Err(end) => {
                    assert!(
                        matches!(end.kind(), ErrorKind::ConnectionClosed(_)),
                        "{end:?}"
                    );
                    break;
                }
            }
        }
        assert_eq!(got, ["one", "two"]);
    }
}
