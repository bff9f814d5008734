//! 1,000 concurrent async connections to one local server, each receiving
//! its own numbered messages: all complete, all in order.
#![cfg(feature = "tokio")]

use floodgate_server::Server;
use std::sync::Arc;
use std::time::{Duration, Instant};

const CONNECTIONS: usize = 1000;
const MESSAGES: u32 = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_connections_each_get_all_their_messages_in_order() {
    // Thread per connection on the server: 1,000 threads on loopback. Each
    // waits for "go" with the connection's id, so that every connection
    // is open before any message flows.
    let server = Server::bind("127.0.0.1:0", |mut ws, _| {
        let Ok(go) = ws.recv() else { return };
        let id = go.as_text().unwrap_or_default().to_owned();
        for i in 0..MESSAGES {
            if ws.send_text(&format!("{id}:{i}")).is_err() {
                return;
            }
        }
        let _ = ws.close(1000, "done");
    })
    .unwrap();
    let url = server.url();
    let started = Instant::now();
    let all_open = Arc::new(tokio::sync::Barrier::new(CONNECTIONS));
    // The listen backlog is finite: connect in waves of 100 at a time.
    let connecting = Arc::new(tokio::sync::Semaphore::new(100));
    let tasks: Vec<_> = (0..CONNECTIONS)
        .map(|id| {
            let (url, all_open, connecting) = (url.clone(), all_open.clone(), connecting.clone());
            tokio::spawn(async move {
                let permit = connecting.acquire().await.unwrap();
                let mut ws = floodgate::Client::builder()
                    .connect_timeout(Some(Duration::from_secs(30)))
                    .connect_async(&url)
                    .await
                    .unwrap_or_else(|e| panic!("connection {id}: {e}"));
                drop(permit);
                all_open.wait().await;
                ws.send_text(&id.to_string()).await.unwrap();
                for i in 0..MESSAGES {
                    let message = ws.recv().await.unwrap_or_else(|e| panic!("{id}: {e}"));
                    assert_eq!(message.as_text(), Some(format!("{id}:{i}").as_str()));
                }
                let end = ws.recv().await.unwrap_err();
                assert!(end.is_closed(), "{id}: {end}");
                MESSAGES
            })
        })
        .collect();
    let mut total = 0;
    for task in tasks {
        total += task.await.expect("a connection task");
    }
    assert_eq!(total, CONNECTIONS as u32 * MESSAGES);
    eprintln!(
        "{CONNECTIONS} connections x {MESSAGES} messages in {:?}",
        started.elapsed()
    );
}
