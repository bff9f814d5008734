//! The event-driven App against real servers on loopback: reconnect with
//! backoff (a server that drops connections, one that refuses them), the
//! ping timeout, a slow handler under a pinging server, per-key order
//! under a worker pool, closing from another thread, and every handler.

mod support;

use floodgate::app::{App, AppHandle, Reconnecting, RunOptions};
use floodgate::buffer::Key;
use floodgate::reconnect::Backoff;
use floodgate::{CloseCode, ConfigError, ErrorKind, Message, OpCode, Phase, TimeoutKind};
use floodgate_server::feed::{Feed, FeedConfig, FeedMessage};
use floodgate_server::{accept, Server};
use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};
use support::{exact_backoff, Log};

const MS: Duration = Duration::from_millis(1);

#[test]
fn a_server_that_drops_connections_is_reconnected_and_on_open_resubscribes_each_time() {
    // Connection i: expect the subscription, send some messages, then
    // drop TCP without a close — after a whole message, or in the middle
    // of one; the last connection sends "bye".
    enum End {
        After(usize),
        MidFrame(usize),
    }
    let drops = [
        End::After(3),
        End::After(0),
        End::MidFrame(7),
        End::After(1),
    ];
    let subscriptions = Arc::new(AtomicUsize::new(0));
    let seen = subscriptions.clone();
    let connection = Arc::new(AtomicUsize::new(0));
    let server = Server::bind("127.0.0.1:0", move |mut ws, _| {
        let i = connection.fetch_add(1, Ordering::SeqCst);
        let first = ws.recv().expect("the subscription");
        assert_eq!(first.as_text(), Some("subscribe"));
        seen.fetch_add(1, Ordering::SeqCst);
        let send = |ws: &mut floodgate_server::WebSocket<_>, n: usize| {
            for k in 0..n {
                ws.send_text(&format!("c{i} m{k}")).unwrap();
            }
        };
        match drops.get(i) {
            Some(End::After(n)) => send(&mut ws, *n),
            Some(End::MidFrame(n)) => {
                send(&mut ws, *n);
                // A text frame that announces 100 bytes and brings 10.
                let mut half = vec![0x81, 100];
                half.extend_from_slice(b"0123456789");
                std::io::Write::write_all(ws.get_mut(), &half).unwrap();
            }
            None => {
                ws.send_text("bye").unwrap();
                while ws.recv().is_ok() {}
                return;
            }
        }
        ws.shutdown();
    })
    .unwrap();
    let log = Log::default();
    let (l1, l2, l3, l4) = (log.clone(), log.clone(), log.clone(), log.clone());
    let app = App::builder(server.url())
        .on_open(move |ctx| {
            l1.push(format!("open {}", ctx.connection()));
            ctx.send_text("subscribe").unwrap();
        })
        .on_message(move |ctx, m| {
            let text = m.as_text().unwrap().to_owned();
            if text == "bye" {
                ctx.close();
            }
            l2.push(format!("message {text}"));
        })
        .on_close(move |_, frame| l3.push(format!("close {:?}", frame.map(|f| f.code))))
        .on_reconnect(move |_, r: Reconnecting| {
            l4.push(format!("reconnect {} {:?}", r.attempt, r.delay))
        })
        .build()
        .unwrap();
    let summary = app
        .run_forever(&RunOptions::new().reconnect(exact_backoff(5 * MS, 10)))
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

#[test]
fn a_server_that_refuses_makes_the_delays_grow_until_the_app_gives_up() {
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
        .on_reconnect(move |_, r| d.lock().unwrap().push(r.delay))
        .on_error(move |_, _| {
            e.fetch_add(1, Ordering::SeqCst);
        })
        .build()
        .unwrap();
    let err = app
        .run_forever(&RunOptions::new().reconnect(exact_backoff(10 * MS, 4)))
        .unwrap_err();
    server.join().unwrap();
    match err.kind() {
        ErrorKind::GaveUp { attempts, last } => {
            assert_eq!(*attempts, 4);
            assert!(matches!(last.kind(), ErrorKind::Connect { .. }), "{last:?}");
        }
        other => panic!("expected GaveUp, got {other:?}"),
    }
    assert!(err
        .to_string()
        .contains("gave up reconnecting after 4 attempts"));
    assert_eq!(
        *delays.lock().unwrap(),
        [10 * MS, 20 * MS, 40 * MS, 80 * MS]
    );
    // The dropped connection, then four refused connects.
    assert_eq!(errors.load(Ordering::SeqCst), 5);
}

#[test]
fn a_server_that_refuses_for_a_while_is_reached_again() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let (mut ws, _) = accept(stream, &floodgate_server::Options::default()).unwrap();
        ws.shutdown();
        drop(listener);
        // Refused for a while, then back on the same port.
        std::thread::sleep(150 * MS);
        let listener = TcpListener::bind(addr).unwrap();
        let (stream, _) = listener.accept().unwrap();
        let (mut ws, _) = accept(stream, &floodgate_server::Options::default()).unwrap();
        ws.send_text("back").unwrap();
        while ws.recv().is_ok() {}
    });
    let opens = Arc::new(AtomicUsize::new(0));
    let o = opens.clone();
    let app = App::builder(format!("ws://{addr}/"))
        .on_open(move |_| {
            o.fetch_add(1, Ordering::SeqCst);
        })
        .on_message(|ctx, m| {
            assert_eq!(m.as_text(), Some("back"));
            ctx.close();
        })
        .build()
        .unwrap();
    let summary = app
        .run_forever(&RunOptions::new().reconnect(exact_backoff(20 * MS, 50).max_delay(40 * MS)))
        .unwrap();
    server.join().unwrap();
    assert_eq!(summary.connections, 2);
    assert_eq!(opens.load(Ordering::SeqCst), 2);
}

#[test]
fn a_server_that_stops_answering_pings_is_detected_within_interval_plus_timeout() {
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

#[test]
fn a_handler_that_sleeps_50ms_per_message_does_not_starve_the_servers_pings() {
    // The feed pings every 100 ms while sending 40 messages/s for 1 s.
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
            std::thread::sleep(50 * MS);
            h.fetch_add(1, Ordering::SeqCst);
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
    .unwrap();
    assert_eq!(handled.load(Ordering::SeqCst), 40, "every message handled");
    assert!(
        errors.entries().is_empty(),
        "no ping timeout, no disconnect: {:?}",
        errors.entries()
    );
    let report = reports.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(report.pings_sent >= 5, "{report:?}");
    assert_eq!(
        report.pongs, report.pings_sent,
        "every ping answered: {report:?}"
    );
    let worst = report.worst_ping_rtt.unwrap();
    // Answered by the reader, not after the 50 ms handler: the bound is
    // the one the slow-consumer tests state, for a loaded machine.
    assert!(worst < 250 * MS, "worst ping round trip {worst:?}");
}

#[test]
fn workers_by_key_handle_each_key_in_arrival_order() {
    let feed = Feed::new(FeedConfig {
        channels: 8,
        rate: None,
        count: Some(4000),
        ping_interval: None,
        ..FeedConfig::default()
    });
    let server = Server::bind("127.0.0.1:0", feed.handler()).unwrap();
    let per_channel: Arc<Mutex<HashMap<u32, Vec<u64>>>> = Arc::default();
    let threads: Arc<Mutex<HashMap<u32, std::collections::HashSet<String>>>> = Arc::default();
    let (p, t) = (per_channel.clone(), threads.clone());
    let app = App::builder(server.url())
        .workers_by_key(4, |m| {
            FeedMessage::parse(m.as_text()?).map(|f| Key::from(u64::from(f.channel)))
        })
        .on_message(move |_, m| {
            let f = FeedMessage::parse(m.as_text().unwrap()).unwrap();
            // Uneven work, so that workers would overtake each other if
            // one key could be on two of them.
            if f.n % 7 == 0 {
                std::thread::sleep(Duration::from_micros(200));
            }
            p.lock().unwrap().entry(f.channel).or_default().push(f.seq);
            let name = std::thread::current().name().unwrap_or("?").to_owned();
            t.lock().unwrap().entry(f.channel).or_default().insert(name);
        })
        .build()
        .unwrap();
    app.run_forever(&RunOptions::new()).unwrap();
    let per_channel = per_channel.lock().unwrap();
    assert_eq!(per_channel.len(), 8);
    for (channel, seqs) in per_channel.iter() {
        let expected: Vec<u64> = (0..500).collect();
        assert_eq!(seqs, &expected, "channel {channel} in arrival order");
    }
    let threads = threads.lock().unwrap();
    let all: std::collections::HashSet<&String> = threads.values().flatten().collect();
    assert!(all.len() > 1, "the work was spread over workers: {all:?}");
    for (channel, names) in threads.iter() {
        assert_eq!(
            names.len(),
            1,
            "channel {channel} stayed on one worker: {names:?}"
        );
    }
}

#[test]
fn a_plain_worker_pool_handles_every_message() {
    let feed = Feed::new(FeedConfig {
        rate: None,
        count: Some(3000),
        ping_interval: None,
        ..FeedConfig::default()
    });
    let server = Server::bind("127.0.0.1:0", feed.handler()).unwrap();
    let seen: Arc<Mutex<Vec<u64>>> = Arc::default();
    let s = seen.clone();
    let app = App::builder(server.url())
        .workers(3)
        .on_message(move |_, m| {
            s.lock()
                .unwrap()
                .push(FeedMessage::parse(m.as_text().unwrap()).unwrap().n);
        })
        .build()
        .unwrap();
    let summary = app.run_forever(&RunOptions::new()).unwrap();
    let mut seen = seen.lock().unwrap().clone();
    seen.sort_unstable();
    assert_eq!(seen, (0..3000).collect::<Vec<_>>());
    let stats = summary.last_stats.unwrap();
    assert_eq!(stats.received, 3000);
    assert_eq!(stats.delivered, 3000);
}

#[test]
fn closing_from_another_thread_does_a_clean_close_and_calls_on_close_once() {
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
        })
        .on_close(move |_, frame| c.push(format!("close {:?}", frame.map(|f| f.code))))
        .build()
        .unwrap();
    let handle: AppHandle = app.handle();
    assert!(handle.sender().is_none(), "no connection yet");
    let closer = std::thread::spawn(move || {
        opened.recv().unwrap();
        // Send from outside the handlers, then close.
        while handle.sender().is_none() {
            std::thread::sleep(MS);
        }
        handle.sender().unwrap().send_text("from outside").unwrap();
        handle.close();
        handle.close(); // a second close does nothing
    });
    let summary = app
        .run_forever(&RunOptions::new().reconnect(Backoff::new()))
        .unwrap();
    closer.join().unwrap();
    assert_eq!(
        summary.connections, 1,
        "no reconnect after the application's close"
    );
    assert_eq!(closes.entries(), ["close Some(CloseCode(1000))"]);
    let (texts, close) = client_close.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(texts, ["from outside"]);
    assert_eq!(
        close,
        Some((CloseCode::NORMAL, String::new())),
        "the server saw a clean close"
    );
}

#[test]
fn control_and_data_frame_handlers_see_pings_pongs_and_fragments() {
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
        .on_open(|ctx| ctx.sender().unwrap().ping(b"from app").unwrap())
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
        })
        .build()
        .unwrap();
    app.run_forever(&RunOptions::new()).unwrap();
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

#[test]
fn a_panicking_handler_is_reported_and_the_app_goes_on() {
    let server = Server::bind("127.0.0.1:0", |mut ws, _| {
        ws.send_text("boom").unwrap();
        ws.send_text("fine").unwrap();
        while ws.recv().is_ok() {}
    })
    .unwrap();
    let log = Log::default();
    let (l1, l2) = (log.clone(), log.clone());
    let app = App::builder(server.url())
        .on_message(move |ctx, m| {
            if m.as_text() == Some("boom") {
                panic!("the handler broke");
            }
            l1.push("handled fine");
            ctx.close();
        })
        .on_error(move |_, e| l2.push(format!("error {e}")))
        .build()
        .unwrap();
    app.run_forever(&RunOptions::new()).unwrap();
    let entries = log.entries();
    assert!(
        entries[0].contains("on_message handler panicked (the handler broke)"),
        "{entries:?}"
    );
    assert_eq!(entries[1], "handled fine");
}

#[test]
fn without_draining_the_messages_left_at_close_are_counted_not_handled() {
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
            if h.fetch_add(1, Ordering::SeqCst) == 0 {
                // Let the other 49 arrive in the buffer, then close.
                std::thread::sleep(200 * MS);
                ctx.close();
            }
        })
        .build()
        .unwrap();
    let summary = app.run_forever(&RunOptions::new()).unwrap();
    let handled = handled.load(Ordering::SeqCst) as u64;
    assert_eq!(handled + summary.undelivered, 50, "{summary:?}");
    assert!(summary.undelivered > 0, "{summary:?}");
}

#[test]
fn without_reconnect_the_app_ends_with_the_error_that_ended_the_connection() {
    let server = Server::bind("127.0.0.1:0", |mut ws, _| {
        ws.send_text("one").unwrap();
        ws.shutdown();
    })
    .unwrap();
    let app = App::builder(server.url()).build().unwrap();
    let err = app.run_forever(&RunOptions::new()).unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::AbnormalClosure), "{err:?}");

    let refused = App::builder("ws://127.0.0.1:1/").build().unwrap();
    let err = refused.run_forever(&RunOptions::new()).unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Connect { .. }), "{err:?}");

    let bad = RunOptions::new().ping_timeout(Duration::from_secs(1));
    let err = App::builder("ws://127.0.0.1:1/")
        .build()
        .unwrap()
        .run_forever(&bad)
        .unwrap_err();
    assert!(
        matches!(
            err.kind(),
            ErrorKind::Config(ConfigError::PingTimeoutWithoutInterval)
        ),
        "{err:?}"
    );
    let _ = Message::text("");
}

#[test]
fn after_a_protocol_error_the_app_reconnects_at_once_not_after_the_close_timeout() {
    // Connection 0 sends a masked frame (forbidden from a server) and then
    // neither reads nor answers for 10 s; connection 1 says "ok".
    let connection = Arc::new(AtomicUsize::new(0));
    let server = Server::bind("127.0.0.1:0", move |mut ws, _| {
        if connection.fetch_add(1, Ordering::SeqCst) == 0 {
            use std::io::Write;
            let masked = [0x81, 0x82, 1, 2, 3, 4, b'h' ^ 1, b'i' ^ 2];
            let _ = ws.get_ref().tcp().write_all(&masked);
            std::thread::sleep(Duration::from_secs(10));
        } else {
            let _ = ws.send_text("ok");
            let _ = ws.recv();
        }
    })
    .unwrap();
    let errors = Log::default();
    let e = errors.clone();
    let app = App::builder(server.url())
        .client(floodgate::Client::builder().close_timeout(Duration::from_secs(5)))
        .on_message(|ctx, message| {
            if message.as_text() == Some("ok") {
                ctx.close();
            }
        })
        .on_error(move |_, error| e.push(error.to_string()))
        .build()
        .unwrap();
    let started = Instant::now();
    let summary = app
        .run_forever(&RunOptions::new().reconnect(exact_backoff(10 * MS, 5)))
        .unwrap();
    let took = started.elapsed();
    assert_eq!(summary.connections, 2);
    assert_eq!(
        errors.count("the server broke the WebSocket protocol"),
        1,
        "{:?}",
        errors.entries()
    );
    assert!(
        took < Duration::from_secs(1),
        "took {took:?} (close timeout 5 s)"
    );
}
