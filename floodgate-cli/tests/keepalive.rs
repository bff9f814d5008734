//! `floodgate connect` keeping a connection alive: pings and their
//! timeout, reconnecting after an abnormal end, and a protocol error that
//! ends the command at once.

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
    // Each pong answered one of the keepalive's pings: timed, on loopback
    // well under a second.
    assert!(stats["ping_round_trips"].as_u64().unwrap() >= 2, "{stats}");
    let max = stats["max_ping_rtt_us"].as_u64().unwrap();
    assert!(max > 0 && max < 1_000_000, "{stats}");
    assert!(
        stats["last_ping_rtt_us"].as_u64().unwrap() <= max,
        "{stats}"
    );
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

/// A server that, after the handshake, sends a masked frame (which a server
/// must never do), then reads nothing and answers nothing for 10 s.
fn masked_frame_then_silence() -> Server {
    Server::bind("127.0.0.1:0", |ws, _| {
        use std::io::Write;
        // FIN + text, masked, 2 bytes "hi" under the key 1 2 3 4.
        let _ = ws
            .get_ref()
            .tcp()
            .write_all(&[0x81, 0x82, 1, 2, 3, 4, b'h' ^ 1, b'i' ^ 2]);
        std::thread::sleep(Duration::from_secs(10));
    })
    .unwrap()
}

#[test]
fn a_protocol_error_ends_the_command_at_once_not_after_the_close_timeout() {
    let server = masked_frame_then_silence();
    // Receive only, with stdin held open: only the error can end it.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_floodgate"))
        .args(["connect", &server.url()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(4) {
            let _ = child.kill();
            panic!("still running after 4 s: the error waited for the close timeout");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let took = started.elapsed();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("masked"), "{stderr}");
    // Process start and connect included; the close timeout is 5 s (the
    // default), which is what it took before.
    assert!(took < Duration::from_secs(1), "took {took:?}");
}

#[test]
fn a_server_that_stops_reading_while_input_keeps_coming_is_found_dead_by_the_ping_timeout() {
    // The handler completes the handshake and never reads again: its
    // receive window closes, so the client's writes block.
    let server = Server::bind("127.0.0.1:0", |ws, _| {
        std::thread::sleep(Duration::from_secs(30));
        drop(ws);
    })
    .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_floodgate"))
        .args([
            "connect",
            &server.url(),
            "--ping-interval",
            "200ms",
            "--ping-timeout",
            "500ms",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // Input without end: 64 KiB lines, as fast as the client takes them.
    let feeder = std::thread::spawn(move || {
        use std::io::Write;
        let line = format!("{}\n", "x".repeat(64 << 10));
        while stdin.write_all(line.as_bytes()).is_ok() {}
    });
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("still running after 10 s: the blocked writes stalled the keepalive");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let took = started.elapsed();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(5), "{stderr}");
    assert!(stderr.contains("no pong within 500ms"), "{stderr}");
    // Process start, connect, the first ping after 200 ms and its 500 ms;
    // slack for a loaded machine.
    assert!(took < Duration::from_secs(3), "took {took:?}");
    feeder.join().unwrap();
}
