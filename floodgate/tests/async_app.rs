//! The async App (`floodgate::tokio::app`) against real servers on
//! loopback: the scenarios of `app.rs` (reconnect with backoff, giving
//! up, the ping timeout, a slow handler under a pinging server, per-key
//! order, closing from elsewhere, every handler, panics, draining, how it
//! ends), run with async handlers; plus what only the async App has:
//! handlers that await, a bound on concurrent `on_message` calls, and a
//! close that ends a connect or a reconnect wait at once.
#![cfg(feature = "tokio")]

mod support;

use floodgate::buffer::Key;
use floodgate::reconnect::Backoff;
use floodgate::tokio::app::{App, AppHandle, Reconnecting, RunOptions};
use floodgate::{CloseCode, ConfigError, ErrorKind, OpCode, Phase, TimeoutKind};
use floodgate_server::feed::{Feed, FeedConfig, FeedMessage};
use floodgate_server::{accept, Server};
use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};
use support::{exact_backoff, Log};

const MS: Duration = Duration::from_millis(1);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_drops_connections_is_reconnected_and_on_open_resubscribes_each_time() {
    // Connection i: expect the subscription, send n messages, then drop
    // TCP without a close (the third in the middle of a frame); the last
    // connection sends "bye".
    let drops: [(usize, bool); 4] = [(3, false), (0, false), (7, true), (1, false)];
    let subscriptions = Arc::new(AtomicUsize::new(0));
    let seen = subscriptions.clone();
    let connection = Arc::new(AtomicUsize::new(0));
    let server = Server::bind("127.0.0.1:0", move |mut ws, _| {
        let i = connection.fetch_add(1, Ordering::SeqCst);
        let first = ws.recv().expect("the subscription");
        assert_eq!(first.as_text(), Some("subscribe"));
        seen.fetch_add(1, Ordering::SeqCst);
        let Some(&(n, mid_frame)) = drops.get(i) else {
            ws.send_text("bye").unwrap();
            while ws.recv().is_ok() {}
            return;
        };
        for k in 0..n {
            ws.send_text(&format!("c{i} m{k}")).unwrap();
        }
        if mid_frame {
            // A text frame that announces 100 bytes and brings 10.
            let mut half = vec![0x81, 100];
            half.extend_from_slice(b"0123456789");
            std::io::Write::write_all(ws.get_mut(), &half).unwrap();
        }
        ws.shutdown();
    })
    .unwrap();
    let log = Log::default();
    let (l1, l2, l3, l4) = (log.clone(), log.clone(), log.clone(), log.clone());
    let app = App::builder(server.url())
        .on_open(move |ctx| {
            let log = l1.clone();
            async move {
                log.push(format!("open {}", ctx.connection()));
                // An await inside the handler: the send itself.
                ctx.send_text("subscribe").await.unwrap();
            }
        })
        .on_message(move |ctx, m| {
            let log = l2.clone();
            async move {
                let text = m.as_text().unwrap().to_owned();
                if text == "bye" {
                    ctx.close();
                }
                log.push(format!("message {text}"));
            }
        })
        .on_close(move |_, frame| {
            l3.push(format!("close {:?}", frame.map(|f| f.code)));
            async {}
        })
        .on_reconnect(move |_, r: Reconnecting| {
            l4.push(format!("reconnect {} {:?}", r.attempt, r.delay));
            std::future::ready(())
        })
        .build()
        .unwrap();
    let summary = app
        .run_forever(&RunOptions::new().reconnect(exact_backoff(5 * MS, 10)))
        .await
        .unwrap();
    assert_eq!(summary.connections, 5);
    assert_eq!(
        subscriptions.load(Ordering::SeqCst),
        5,
        "on_open resubscribed every time"
    );
    let entries = log.entries();
    let opens: Vec<&String> = entries.iter().filter(|e| e.starts_with("open")).collect();
    assert_eq!(opens, ["open 1", "open 2", "open 3", "open 4", "open 5"]);
    assert_eq!(log.count("message c"), 3 + 7 + 1);
    assert_eq!(log.count("message bye"), 1);
    assert_eq!(
        log.count("close None"),
        4,
        "four ended without a close: {entries:?}"
    );
    assert_eq!(log.count("close Some"), 1);
    assert_eq!(log.count("reconnect"), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_refuses_makes_the_delays_grow_until_the_app_gives_up() {
    // One connection, dropped; then nothing listens on the port.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    let server = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let (mut ws, _) = accept(stream, &floodgate_server::Options::default()).unwrap();
        ws.shutdown();
    });
    let delays = Arc::new(Mutex::new(Vec::new()));
    let errors = Arc::new(AtomicUsize::new(0));
    let (d, e) = (delays.clone(), errors.clone());
    let app = App::builder(&url)
        .on_reconnect(move |_, r| {
            d.lock().unwrap().push(r.delay);
            async {}
        })
        .on_error(move |_, _| {
            e.fetch_add(1, Ordering::SeqCst);
        })
        .build()
        .unwrap();
    let err = app
        .run_forever(&RunOptions::new().reconnect(exact_backoff(10 * MS, 4)))
        .await
        .unwrap_err();
    server.join().unwrap();
    match err.kind() {
        ErrorKind::GaveUp { attempts, last } => {
            assert_eq!(*attempts, 4);
            assert!(matches!(last.kind(), ErrorKind::Connect { .. }), "{last:?}");
        }
        other => panic!("expected GaveUp, got {other:?}"),
    }
    assert_eq!(
        *delays.lock().unwrap(),
        [10 * MS, 20 * MS, 40 * MS, 80 * MS]
    );
    // The dropped connection, then four refused connects.
    assert_eq!(errors.load(Ordering::SeqCst), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_stops_answering_pings_is_detected_within_interval_plus_timeout() {
    // The handler holds the connection and reads nothing: no pong.
    let server = Server::bind("127.0.0.1:0", |ws, _| {
        std::thread::sleep(Duration::from_secs(20));
        drop(ws);
    })
    .unwrap();
    let errors = Log::default();
    let e = errors.clone();
    let app = App::builder(server.url())
        .on_error(move |_, error| e.push(error.to_string()))
        .build()
        .unwrap();
    let started = Instant::now();
    let err = app
        .run_forever(
            &RunOptions::new()
                .ping_interval(100 * MS)
                .ping_timeout(200 * MS),
        )
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert!(
        matches!(
            err.kind(),
            ErrorKind::Timeout { kind: TimeoutKind::Pong, after: Some(t) } if *t == 200 * MS
        ) && err.phase() == Phase::Connection,
        "{err:?}"
    );
    // The first ping goes out after 100 ms and waits 200 ms for its pong;
    // the slack is for a loaded 2-core machine.
    assert!(took >= 300 * MS, "{took:?}");
    assert!(took < 300 * MS + Duration::from_secs(2), "{took:?}");
    assert_eq!(
        errors.count("no pong within 200ms"),
        1,
        "{:?}",
        errors.entries()
    );
}

/// The feed pings every 100 ms while sending 40 messages/s for 1 s, and
/// the handler takes 50 ms per message; returns the feed's report.
async fn slow_handler_under_a_pinging_feed(
    flavour: &str,
) -> (usize, Vec<String>, floodgate_server::feed::FeedReport) {
    let (tx, reports) = mpsc::channel();
    let feed = Feed::new(FeedConfig {
        rate: Some(40.0),
        count: Some(40),
        ping_interval: Some(100 * MS),
        ..FeedConfig::default()
    })
    .on_report(move |r| {
        let _ = tx.send(r);
    });
    let server = Server::bind("127.0.0.1:0", feed.handler()).unwrap();
    let handled = Arc::new(AtomicUsize::new(0));
    let errors = Log::default();
    let (h, e) = (handled.clone(), errors.clone());
    let app = App::builder(server.url())
        .on_message(move |_, _| {
            let handled = h.clone();
            async move {
                tokio::time::sleep(50 * MS).await;
                handled.fetch_add(1, Ordering::SeqCst);
            }
        })
        .on_error(move |_, error| e.push(error.to_string()))
        .build()
        .unwrap();
    // The App pings too, with a timeout it must never hit.
    app.run_forever(
        &RunOptions::new()
            .ping_interval(100 * MS)
            .ping_timeout(Duration::from_secs(1)),
    )
    .await
    .unwrap_or_else(|e| panic!("{flavour}: {e}"));
    let report = tokio::task::spawn_blocking(move || reports.recv_timeout(Duration::from_secs(10)))
        .await
        .unwrap()
        .unwrap();
    (handled.load(Ordering::SeqCst), errors.entries(), report)
}

fn assert_pings_not_starved(
    flavour: &str,
    (handled, errors, report): (usize, Vec<String>, floodgate_server::feed::FeedReport),
) {
    assert_eq!(handled, 40, "{flavour}: every message handled");
    assert!(errors.is_empty(), "{flavour}: no ping timeout: {errors:?}");
    assert!(report.pings_sent >= 5, "{flavour}: {report:?}");
    assert_eq!(
        report.pongs, report.pings_sent,
        "{flavour}: every ping answered: {report:?}"
    );
    let worst = report.worst_ping_rtt.unwrap();
    // Answered by the reader task, not after the 50 ms handler: the bound
    // the slow-consumer tests state, for a loaded machine.
    assert!(
        worst < 250 * MS,
        "{flavour}: worst ping round trip {worst:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_that_awaits_50ms_per_message_does_not_starve_the_servers_pings() {
    let outcome = slow_handler_under_a_pinging_feed("multi-thread").await;
    assert_pings_not_starved("multi-thread", outcome);
}

#[tokio::test(flavor = "current_thread")]
async fn on_one_thread_too_the_reader_task_answers_pings_while_the_handler_awaits() {
    let outcome = slow_handler_under_a_pinging_feed("current-thread").await;
    assert_pings_not_starved("current-thread", outcome);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_by_key_handle_each_key_in_arrival_order() {
    let feed = Feed::new(FeedConfig {
        channels: 8,
        rate: None,
        count: Some(4000),
        ping_interval: None,
        ..FeedConfig::default()
    });
    let server = Server::bind("127.0.0.1:0", feed.handler()).unwrap();
    let per_channel: Arc<Mutex<HashMap<u32, Vec<u64>>>> = Arc::default();
    let p = per_channel.clone();
    let in_flight = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let (f, mo) = (in_flight.clone(), most.clone());
    let app = App::builder(server.url())
        .workers_by_key(4, |m| {
            FeedMessage::parse(m.as_text()?).map(|f| Key::from(u64::from(f.channel)))
        })
        .on_message(move |_, m| {
            let (p, in_flight, most) = (p.clone(), f.clone(), mo.clone());
            async move {
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                let f = FeedMessage::parse(m.as_text().unwrap()).unwrap();
                // Uneven work that yields, so that lanes would overtake
                // each other if one key could be on two of them.
                if f.n % 7 == 0 {
                    tokio::time::sleep(Duration::from_micros(200)).await;
                } else {
                    tokio::task::yield_now().await;
                }
                p.lock().unwrap().entry(f.channel).or_default().push(f.seq);
                in_flight.fetch_sub(1, Ordering::SeqCst);
            }
        })
        .build()
        .unwrap();
    app.run_forever(&RunOptions::new()).await.unwrap();
    let per_channel = per_channel.lock().unwrap();
    assert_eq!(per_channel.len(), 8);
    for (channel, seqs) in per_channel.iter() {
        let expected: Vec<u64> = (0..500).collect();
        assert_eq!(seqs, &expected, "channel {channel} in arrival order");
    }
    let most = most.load(Ordering::SeqCst);
    assert!(
        (2..=4).contains(&most),
        "lanes ran at once, never more than 4: {most}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_pool_handles_every_message_with_at_most_n_at_once() {
    let feed = Feed::new(FeedConfig {
        rate: None,
        count: Some(3000),
        ping_interval: None,
        ..FeedConfig::default()
    });
    let server = Server::bind("127.0.0.1:0", feed.handler()).unwrap();
    let seen: Arc<Mutex<Vec<u64>>> = Arc::default();
    let in_flight = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let (s, f, m) = (seen.clone(), in_flight.clone(), most.clone());
    let app = App::builder(server.url())
        .workers(3)
        .on_message(move |_, message| {
            let (seen, in_flight, most) = (s.clone(), f.clone(), m.clone());
            async move {
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                let n = FeedMessage::parse(message.as_text().unwrap()).unwrap().n;
                if n % 100 == 0 {
                    tokio::time::sleep(MS).await;
                }
                seen.lock().unwrap().push(n);
                in_flight.fetch_sub(1, Ordering::SeqCst);
            }
        })
        .build()
        .unwrap();
    let summary = app.run_forever(&RunOptions::new()).await.unwrap();
    // run_forever returned: every handler task has finished.
    assert_eq!(in_flight.load(Ordering::SeqCst), 0);
    let mut seen = seen.lock().unwrap().clone();
    seen.sort_unstable();
    assert_eq!(seen, (0..3000).collect::<Vec<_>>());
    let most = most.load(Ordering::SeqCst);
    assert!(
        (2..=3).contains(&most),
        "at most 3 at once, and more than 1: {most}"
    );
    let stats = summary.last_stats.unwrap();
    assert_eq!(stats.received, 3000);
    assert_eq!(stats.delivered, 3000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_from_another_thread_does_a_clean_close_and_calls_on_close_once() {
    let (tx, client_close) = mpsc::channel();
    let server = Server::bind("127.0.0.1:0", move |mut ws, _| {
        let mut texts = Vec::new();
        loop {
            match ws.recv() {
                Ok(m) => texts.push(m.as_text().unwrap_or("").to_owned()),
                Err(e) => {
                    let close = e.close_frame().map(|f| (f.code, f.reason.to_string()));
                    let _ = tx.send((texts, close));
                    return;
                }
            }
        }
    })
    .unwrap();
    let closes = Log::default();
    let c = closes.clone();
    let (opened_tx, opened) = mpsc::channel();
    let app = App::builder(server.url())
        .on_open(move |_| {
            let _ = opened_tx.send(());
            async {}
        })
        .on_close(move |_, frame| {
            c.push(format!("close {:?}", frame.map(|f| f.code)));
            async {}
        })
        .build()
        .unwrap();
    let handle: AppHandle = app.handle();
    assert!(handle.sender().is_none(), "no connection yet");
    // A plain thread, outside the runtime: AppHandle::close is not async.
    let closer = std::thread::spawn(move || {
        opened.recv().unwrap();
        while handle.sender().is_none() {
            std::thread::sleep(MS);
        }
        let sender = handle.sender().unwrap();
        futures_executor_block_on(sender.send_text("from outside")).unwrap();
        handle.close();
        handle.close(); // a second close does nothing
    });
    let summary = app
        .run_forever(&RunOptions::new().reconnect(Backoff::new()))
        .await
        .unwrap();
    closer.join().unwrap();
    assert_eq!(
        summary.connections, 1,
        "no reconnect after the application's close"
    );
    assert_eq!(closes.entries(), ["close Some(CloseCode(1000))"]);
    let (texts, close) =
        tokio::task::spawn_blocking(move || client_close.recv_timeout(Duration::from_secs(10)))
            .await
            .unwrap()
            .unwrap();
    assert_eq!(texts, ["from outside"]);
    assert_eq!(
        close,
        Some((CloseCode::NORMAL, String::new())),
        "the server saw a clean close"
    );
}

/// Runs a future to its end on a runtime of its own (the thread that
/// calls it is not in one).
fn futures_executor_block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_ends_the_wait_between_reconnects_at_once() {
    // Nothing listens: the connect fails at once, then the App waits 30 s
    // before the next attempt — unless it is closed.
    let app = App::builder("ws://127.0.0.1:1/")
        .on_error(|ctx, _| {
            let handle = ctx.handle().clone();
            tokio::spawn(async move {
                tokio::time::sleep(20 * MS).await;
                handle.close();
            });
        })
        .build()
        .unwrap();
    let started = Instant::now();
    let summary = app
        .run_forever(&RunOptions::new().reconnect(exact_backoff(Duration::from_secs(30), 5)))
        .await
        .unwrap();
    assert_eq!(summary.connections, 0);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_while_the_server_never_answers_the_close_is_bounded_by_close_timeout() {
    // The server reads nothing after the handshake: the close frame is
    // never answered.
    let server = Server::bind("127.0.0.1:0", |ws, _| {
        std::thread::sleep(Duration::from_secs(20));
        drop(ws);
    })
    .unwrap();
    let app = App::builder(server.url())
        .client(floodgate::Client::builder().close_timeout(300 * MS))
        .on_open(|ctx| async move { ctx.close() })
        .build()
        .unwrap();
    let started = Instant::now();
    let summary =
        tokio::time::timeout(Duration::from_secs(10), app.run_forever(&RunOptions::new()))
            .await
            .expect("run_forever ends")
            .expect("a close the application asked for ends the App with Ok");
    let took = started.elapsed();
    assert_eq!(summary.connections, 1);
    assert!(took >= 300 * MS, "waited for the close_timeout: {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_and_data_frame_handlers_see_pings_pongs_and_fragments() {
    let server = Server::bind("127.0.0.1:0", |mut ws, _| {
        ws.ping(b"from server").unwrap();
        ws.send_frame(OpCode::Text, b"frag", false).unwrap();
        ws.send_frame(OpCode::Continuation, b"men", false).unwrap();
        ws.send_frame(OpCode::Continuation, b"ted", true).unwrap();
        while ws.recv().is_ok() {}
    })
    .unwrap();
    let log = Log::default();
    let (l1, l2, l3, l4, l5) = (
        log.clone(),
        log.clone(),
        log.clone(),
        log.clone(),
        log.clone(),
    );
    let app = App::builder(server.url())
        .on_open(|ctx| async move { ctx.sender().unwrap().ping(b"from app").await.unwrap() })
        .on_ping(move |_, p| l1.push(format!("ping {}", String::from_utf8_lossy(p))))
        .on_pong(move |_, p| l2.push(format!("pong {}", String::from_utf8_lossy(p))))
        .on_data(move |_, f| {
            l3.push(format!(
                "data {:?} {} {}",
                f.opcode,
                f.fin,
                String::from_utf8_lossy(&f.payload)
            ))
        })
        .on_cont_message(move |_, f| {
            l4.push(format!(
                "cont {} {}",
                f.fin,
                String::from_utf8_lossy(&f.payload)
            ))
        })
        .on_message(move |ctx, m| {
            l5.push(format!("message {}", m.as_text().unwrap()));
            ctx.close();
            async {}
        })
        .build()
        .unwrap();
    app.run_forever(&RunOptions::new()).await.unwrap();
    let entries = log.entries();
    for want in [
        "ping from server",
        "pong from app",
        "data Text false frag",
        "data Continuation false men",
        "data Continuation true ted",
        "cont false men",
        "cont true ted",
        "message fragmented",
    ] {
        assert!(entries.iter().any(|e| e == want), "{want:?} in {entries:?}");
    }
    let data: Vec<&String> = entries.iter().filter(|e| e.starts_with("data")).collect();
    assert_eq!(data.len(), 3, "{entries:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_that_panics_before_or_after_an_await_is_reported_and_the_app_goes_on() {
    let server = Server::bind("127.0.0.1:0", |mut ws, _| {
        ws.send_text("boom now").unwrap();
        ws.send_text("boom later").unwrap();
        ws.send_text("fine").unwrap();
        while ws.recv().is_ok() {}
    })
    .unwrap();
    let log = Log::default();
    let (l1, l2) = (log.clone(), log.clone());
    let app = App::builder(server.url())
        .on_message(move |ctx, m| {
            let text = m.as_text().unwrap().to_owned();
            if text == "boom now" {
                panic!("the handler broke at once");
            }
            let log = l1.clone();
            async move {
                tokio::task::yield_now().await;
                if text == "boom later" {
                    panic!("the handler broke after an await");
                }
                log.push("handled fine");
                ctx.close();
            }
        })
        .on_error(move |_, e| l2.push(format!("error {e}")))
        .build()
        .unwrap();
    app.run_forever(&RunOptions::new()).await.unwrap();
    let entries = log.entries();
    assert_eq!(entries.len(), 3, "{entries:?}");
    assert!(
        entries[0].contains("on_message handler panicked (the handler broke at once)"),
        "{entries:?}"
    );
    assert!(
        entries[1].contains("on_message handler panicked (the handler broke after an await)"),
        "{entries:?}"
    );
    assert_eq!(entries[2], "handled fine");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_draining_the_messages_left_at_close_are_counted_not_handled() {
    let server = Server::bind("127.0.0.1:0", |mut ws, _| {
        for i in 0..50 {
            ws.send_text(&i.to_string()).unwrap();
        }
        while ws.recv().is_ok() {}
    })
    .unwrap();
    let handled = Arc::new(AtomicUsize::new(0));
    let h = handled.clone();
    let app = App::builder(server.url())
        .drain_on_close(false)
        .on_message(move |ctx, _| {
            let first = h.fetch_add(1, Ordering::SeqCst) == 0;
            async move {
                if first {
                    // Let the other 49 arrive in the buffer, then close.
                    tokio::time::sleep(200 * MS).await;
                    ctx.close();
                }
            }
        })
        .build()
        .unwrap();
    let summary = app.run_forever(&RunOptions::new()).await.unwrap();
    let handled = handled.load(Ordering::SeqCst) as u64;
    assert_eq!(handled + summary.undelivered, 50, "{summary:?}");
    assert!(summary.undelivered > 0, "{summary:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_reconnect_the_app_ends_with_the_error_that_ended_the_connection() {
    let server = Server::bind("127.0.0.1:0", |mut ws, _| {
        ws.send_text("one").unwrap();
        ws.shutdown();
    })
    .unwrap();
    let app = App::builder(server.url()).build().unwrap();
    let err = app.run_forever(&RunOptions::new()).await.unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::AbnormalClosure), "{err:?}");

    let refused = App::builder("ws://127.0.0.1:1/").build().unwrap();
    let err = refused.run_forever(&RunOptions::new()).await.unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Connect { .. }), "{err:?}");

    let bad = RunOptions::new().ping_timeout(Duration::from_secs(1));
    let err = App::builder("ws://127.0.0.1:1/")
        .build()
        .unwrap()
        .run_forever(&bad)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err.kind(),
            ErrorKind::Config(ConfigError::PingTimeoutWithoutInterval)
        ),
        "{err:?}"
    );

    let err = App::builder("ws://127.0.0.1:1/")
        .workers_by_key(0, |_| None)
        .build()
        .unwrap_err();
    assert!(
        matches!(
            err.kind(),
            ErrorKind::Config(ConfigError::WorkersByKeyWithoutWorkers)
        ),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_run_forever_future_can_be_spawned() {
    let server = Server::bind("127.0.0.1:0", |mut ws, _| {
        ws.send_text("hi").unwrap();
        while ws.recv().is_ok() {}
    })
    .unwrap();
    let got = Log::default();
    let g = got.clone();
    let app = Arc::new(
        App::builder(server.url())
            .on_message(move |ctx, m| {
                g.push(m.as_text().unwrap());
                ctx.close();
                async {}
            })
            .build()
            .unwrap(),
    );
    let task = tokio::spawn({
        let app = app.clone();
        async move { app.run_forever(&RunOptions::new()).await }
    });
    let summary = task.await.unwrap().unwrap();
    assert_eq!(summary.connections, 1);
    assert_eq!(got.entries(), ["hi"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_async_handler_behind_a_spill_gets_every_message_in_order() {
    use floodgate::buffer::{BufferConfig, Overflow, SpillConfig};
    let dir = tempfile::tempdir().unwrap();
    const MESSAGES: usize = 3000;
    let server = Server::bind("127.0.0.1:0", |mut ws, _| {
        let pad = "x".repeat(200);
        for i in 0..MESSAGES {
            if ws.send_text(&format!("{i} {pad}")).is_err() {
                return;
            }
        }
        ws.close(1000, "done").ok();
        while ws.recv().is_ok() {}
    })
    .unwrap();
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    let app = App::builder(server.url())
        .client(
            floodgate::Client::builder()
                .max_frame_size(Some(1024))
                .max_message_size(Some(1024))
                .recv_buffer_size(4096),
        )
        .buffer(
            BufferConfig::new()
                .max_messages(16)
                .max_bytes(1 << 16)
                .overflow(Overflow::Spill(SpillConfig::new(dir.path()))),
        )
        .on_message(move |_, m| {
            let got = g.clone();
            async move {
                let n: usize = m
                    .as_text()
                    .unwrap()
                    .split(' ')
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap();
                let len = {
                    let mut got = got.lock().unwrap();
                    got.push(n);
                    got.len()
                };
                if len % 100 == 0 {
                    tokio::time::sleep(2 * MS).await;
                }
            }
        })
        .build()
        .unwrap();
    let summary = app.run_forever(&RunOptions::new()).await.unwrap();
    let got = got.lock().unwrap().clone();
    assert_eq!(got, (0..MESSAGES).collect::<Vec<_>>(), "{summary:?}");
    let stats = summary.last_stats.unwrap();
    assert!(stats.spilled > 0, "the handler kept up: {stats:?}");
    assert_eq!(stats.delivered, MESSAGES as u64);
    // The ephemeral spill went with the connection.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}
