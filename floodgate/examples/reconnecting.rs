//! A client that survives a flaky server: the App reconnects with
//! exponential backoff and jitter, and `on_open` subscribes again on
//! every new connection.
//!
//!     cargo run --release -p floodgate --example reconnecting
//!
//! The example starts its own flaky server: it drops each connection
//! without a close after a few messages, refuses connections for a moment
//! after the second drop, and on the fifth connection says goodbye; the
//! client closes then. Ctrl-C closes it at any time.

use floodgate::app::{App, RunOptions};
use floodgate::reconnect::Backoff;
use floodgate_server::{RequestHead, Server};
use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

type Handler = Arc<dyn Fn(floodgate_server::WebSocket, RequestHead) + Send + Sync>;

/// Serves connection `n` (from 1): answers the subscription, sends a few
/// ticks, drops the connection; says "bye" on the fifth.
fn flaky(mut ws: floodgate_server::WebSocket, n: u64) {
    let Ok(subscription) = ws.recv() else { return };
    let topic = subscription.as_text().unwrap_or("").to_owned();
    if n == 5 {
        let _ = ws.send_text("bye");
        while ws.recv().is_ok() {}
        return;
    }
    for i in 0..3 {
        let _ = ws.send_text(&format!("{topic}: tick {i} of connection {n}"));
        std::thread::sleep(Duration::from_millis(50));
    }
    ws.shutdown(); // no close handshake: an abnormal end
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Reserve a port, then serve on it, with a gap after the second drop.
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let addr = format!("127.0.0.1:{port}");
    let url = format!("ws://{addr}/");
    let serving = Arc::new(AtomicU64::new(0));
    let handler: Handler = {
        let serving = serving.clone();
        Arc::new(move |ws, _| flaky(ws, serving.fetch_add(1, Ordering::SeqCst) + 1))
    };
    let bind = move |handler: Handler| Server::bind(addr.as_str(), move |ws, r| handler(ws, r));
    let first = bind(handler.clone())?;
    let server_thread = std::thread::spawn(move || -> floodgate_server::Result<()> {
        // Connections 1 and 2, then 300 ms of refused connections.
        while serving.load(Ordering::SeqCst) < 2 {
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_millis(200));
        drop(first);
        println!("server: refusing connections for 300 ms");
        std::thread::sleep(Duration::from_millis(300));
        let _second = bind(handler)?;
        println!("server: accepting again");
        std::thread::sleep(Duration::from_secs(30));
        Ok(())
    });
    std::thread::sleep(Duration::from_millis(50));

    let app = App::builder(&url)
        .on_open(|ctx| {
            println!("open: connection {}, subscribing", ctx.connection());
            ctx.send_text("prices").expect("subscribe");
        })
        .on_message(|ctx, message| {
            let text = message.as_text().unwrap_or("<binary>");
            println!("message: {text}");
            if text == "bye" {
                ctx.close();
            }
        })
        .on_error(|_ctx, error| println!("error: {error}"))
        .on_close(|_ctx, frame| println!("close: {frame:?}"))
        .on_reconnect(|_ctx, r| println!("reconnect: attempt {} in {:?}", r.attempt, r.delay))
        .build()?;
    let handle = app.handle();
    ctrlc::set_handler(move || handle.close())?;
    let summary = app.run_forever(
        &RunOptions::new()
            .ping_interval(Duration::from_secs(1))
            .ping_timeout(Duration::from_secs(2))
            .reconnect(
                Backoff::new()
                    .initial(Duration::from_millis(50))
                    .max_delay(Duration::from_secs(1))
                    .max_attempts(Some(20)),
            ),
    )?;
    println!("done after {} connections", summary.connections);
    drop(server_thread);
    Ok(())
}
