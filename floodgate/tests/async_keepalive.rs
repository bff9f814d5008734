//! The keepalive of the async buffered connection
//! (`floodgate::tokio::BufferedWebSocket::keepalive`): a live server's
//! pongs keep it quiet; a server that stops reading is found dead within
//! the timeout of the first ping (sent at once), and the consumer learns
//! it at once, as `NoPong`.
#![cfg(feature = "tokio")]

use floodgate::{ErrorKind, TimeoutKind};
use floodgate_server::{echo, Server};
use std::time::{Duration, Instant};

const MS: Duration = Duration::from_millis(1);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pongs_keep_a_live_connection_up_and_are_counted() {
    let server = Server::bind("127.0.0.1:0", echo).unwrap();
    let mut ws = floodgate::Client::default()
        .connect_buffered_async(&server.url())
        .await
        .unwrap();
    let keepalive = ws.keepalive(20 * MS, Some(Duration::from_secs(2)), b"are you there");
    tokio::time::sleep(200 * MS).await;
    ws.send_text("still here").await.unwrap();
    assert_eq!(ws.recv().await.unwrap().as_text(), Some("still here"));
    assert!(
        !keepalive.stop().await,
        "the echo server answers every ping"
    );
    let stats = ws.stats();
    assert!(stats.pongs_received >= 3, "{stats:?}");
    ws.close(1000, "").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_stops_reading_is_found_dead_and_the_consumer_told_at_once() {
    // The handler holds the connection and reads nothing: no pong ever.
    let server = Server::bind("127.0.0.1:0", |mut ws, _| {
        ws.send_text("one").unwrap();
        std::thread::sleep(Duration::from_secs(20));
    })
    .unwrap();
    let ws = floodgate::Client::default()
        .connect_buffered_async(&server.url())
        .await
        .unwrap();
    let started = Instant::now();
    let keepalive = ws.keepalive(50 * MS, Some(150 * MS), b"");
    // The message sent before is still delivered, then the end.
    assert_eq!(ws.recv().await.unwrap().as_text(), Some("one"));
    let end = tokio::time::timeout(Duration::from_secs(5), ws.recv())
        .await
        .expect("the consumer learns of the end without waiting for the server")
        .unwrap_err();
    let took = started.elapsed();
    assert!(
        matches!(end.kind(), ErrorKind::Timeout { kind: TimeoutKind::Pong, after: Some(t) } if *t == 150 * MS),
        "{end:?}"
    );
    assert!(
        keepalive.stop().await,
        "the keepalive says it ended the connection"
    );
    // The first ping goes at once, its pong is due 150 ms later; slack
    // for a loaded 2-core machine.
    assert!(took >= 150 * MS, "{took:?}");
    assert!(took < 150 * MS + Duration::from_secs(2), "{took:?}");
    assert!(
        ws.send_text("late").await.is_err(),
        "the transport was shut down"
    );
}
