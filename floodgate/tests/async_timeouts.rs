//! `read_timeout` and `write_timeout` on the async client (feature
//! `tokio`), with the blocking client's meaning: a read that waits longer
//! than `read_timeout` for data, or a write to the transport that takes
//! longer than `write_timeout`, fails with `ErrorKind::Timeout` and the
//! connection stays usable, losing nothing (a half-received frame is kept,
//! the unsent rest of a frame goes out first with the next send).
#![cfg(feature = "tokio")]

mod support;

use floodgate::{Client, ErrorKind, Message, Phase, TimeoutKind};
use futures_util::StreamExt;
use std::sync::mpsc;
use std::time::{Duration, Instant};
use support::{frame_bytes, ScriptedServer};

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

#[tokio::test]
async fn a_read_timeout_keeps_a_half_received_frame_for_the_next_recv() {
    let data = pattern(1000);
    let frame = frame_bytes(0x82, &data, None);
    let (to_server, from_test) = mpsc::channel::<()>();
    let (to_test, from_server) = mpsc::channel::<()>();
    let server = ScriptedServer::start(move |mut conn| {
        conn.accept_upgrade(None);
        from_test.recv().expect("go for the first half");
        conn.write_raw(&frame[..500]);
        to_test.send(()).unwrap();
        from_test.recv().expect("go for the rest");
        conn.write_raw(&frame[500..]);
        assert_eq!(conn.answer_close(), Some((1000, String::new())));
    });
    let mut ws = Client::builder()
        .read_timeout(Some(Duration::from_millis(100)))
        .connect_async(&server.url())
        .await
        .expect("connect");

    let started = Instant::now();
    let err = ws.recv().await.expect_err("no data yet");
    assert!(err.is_timeout(), "{err:?}");
    assert!(matches!(
        err.kind(),
        ErrorKind::Timeout {
            kind: TimeoutKind::Read,
            ..
        }
    ));
    assert_eq!(err.phase(), Phase::Connection);
    assert!(
        started.elapsed() >= Duration::from_millis(90),
        "timed out after {:?}",
        started.elapsed()
    );
    assert!(ws.is_open(), "a timeout leaves the connection usable");

    to_server.send(()).unwrap();
    from_server.recv().unwrap();
    let err = ws.recv().await.expect_err("only half a frame");
    assert!(err.is_timeout(), "{err:?}");
    // recv_frame times out the same way, and keeps the half frame too.
    let err = ws.recv_frame().await.expect_err("only half a frame");
    assert!(err.is_timeout(), "{err:?}");

    to_server.send(()).unwrap();
    let whole = loop {
        match ws.recv().await {
            Err(e) if e.is_timeout() => continue,
            other => break other.expect("the whole message"),
        }
    };
    match whole {
        Message::Binary(got) => assert!(
            got[..] == data[..],
            "the message was damaged by the timeout"
        ),
        other => panic!("expected the binary message, got {other:?}"),
    }
    ws.close(1000, "").await.expect("close");
    server.join();
}

#[tokio::test]
async fn the_stream_yields_a_read_timeout_and_goes_on() {
    let (to_server, from_test) = mpsc::channel::<()>();
    let server = ScriptedServer::start(move |mut conn| {
        conn.accept_upgrade(None);
        from_test.recv().expect("go");
        conn.send_text("late");
        assert_eq!(conn.answer_close(), Some((1000, String::new())));
    });
    let mut ws = Client::builder()
        .read_timeout(Some(Duration::from_millis(50)))
        .connect_async(&server.url())
        .await
        .unwrap();
    let err = ws.next().await.expect("an item").unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    to_server.send(()).unwrap();
    let message = loop {
        match ws.next().await.expect("the stream goes on") {
            Err(e) if e.is_timeout() => continue,
            other => break other.unwrap(),
        }
    };
    assert_eq!(message, Message::text("late"));
    ws.close(1000, "").await.unwrap();
    server.join();
}

#[tokio::test]
async fn the_buffered_reader_does_not_time_out() {
    let (to_server, from_test) = mpsc::channel::<()>();
    let server = ScriptedServer::start(move |mut conn| {
        conn.accept_upgrade(None);
        from_test.recv().expect("go");
        conn.send_text("after a silence");
        assert_eq!(conn.answer_close(), Some((1000, String::new())));
    });
    let mut ws = Client::builder()
        .read_timeout(Some(Duration::from_millis(20)))
        .connect_buffered_async(&server.url())
        .await
        .unwrap();
    // As in the blocking buffered connection, the reader task waits on
    // the socket for as long as it takes.
    tokio::time::sleep(Duration::from_millis(200)).await;
    to_server.send(()).unwrap();
    let got = ws.recv().await.expect("the message, not a timeout");
    assert_eq!(got.message().as_text(), Some("after a silence"));
    ws.close(1000, "").await.unwrap();
    server.join();
}

#[tokio::test]
async fn a_write_timeout_keeps_the_rest_of_the_frame_for_the_next_send() {
    const SIZE: usize = 1 << 20;
    let (to_server, from_test) = mpsc::channel::<()>();
    let server = ScriptedServer::start(move |mut conn| {
        conn.accept_upgrade(None);
        // Read nothing until the client has timed out.
        from_test.recv().expect("go");
        let mut whole = 0;
        loop {
            let frame = conn.read_frame();
            match frame.opcode {
                0x2 => {
                    assert_eq!(frame.payload.len(), SIZE, "a frame damaged");
                    assert!(frame.payload == pattern(SIZE), "a frame damaged");
                    whole += 1;
                }
                0x1 => {
                    assert_eq!(frame.payload, b"after the timeout");
                    break;
                }
                other => panic!("unexpected opcode {other:#x}"),
            }
        }
        assert!(whole > 0);
        assert_eq!(conn.answer_close(), Some((1000, String::new())));
    });
    let ws = Client::builder()
        .write_timeout(Some(Duration::from_millis(200)))
        .send_buffer_size(64 * 1024)
        .connect_async(&server.url())
        .await
        .unwrap();
    let data = pattern(SIZE);
    let started = Instant::now();
    let err = loop {
        if let Err(e) = ws.send_binary(&data).await {
            break e;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the server reads nothing, yet sends never time out"
        );
    };
    assert!(err.is_timeout(), "{err:?}");
    assert!(ws.is_open(), "a timeout leaves the connection usable");
    to_server.send(()).unwrap();
    // The rest of the frame cut short goes out first, then this.
    ws.send_text("after the timeout").await.unwrap();
    let mut ws = ws;
    ws.close(1000, "").await.unwrap();
    server.join();
}
