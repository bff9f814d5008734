//! `recv_frame` on the async client (feature `tokio`): fragments with their
//! fin flags, pings answered and pongs returned, the close returned once,
//! `recv` refusing to finish a message begun with `recv_frame`, the frame
//! of a cancelled `recv_frame` kept for the buffered connection, and
//! `recv_frame` cancelled again and again while frames arrive in pieces
//! (none lost, none repeated).
#![cfg(feature = "tokio")]

mod support;

use floodgate::{ErrorKind, Frame, Message, OpCode};
use floodgate_server::{echo, Server};
use std::time::Duration;
use support::{frame_bytes, ScriptedServer};

#[tokio::test]
async fn recv_frame_returns_fragments_with_their_fin_flags() {
    let server = ScriptedServer::start(|mut conn| {
        conn.accept_upgrade(None);
        conn.send_frame(false, 0x2, b"one", None);
        conn.send_frame(true, 0x9, b"", None);
        conn.send_frame(false, 0x0, b"two", None);
        conn.send_frame(true, 0x0, b"three", None);
        let pong = conn.read_frame();
        assert_eq!(pong.opcode, 0xA, "the ping met by recv_frame is answered");
        assert_eq!(conn.answer_close(), Some((1000, String::new())));
    });
    let mut ws = floodgate::tokio::connect(&server.url()).await.unwrap();
    let mut frames: Vec<Frame> = Vec::new();
    for _ in 0..4 {
        frames.push(ws.recv_frame().await.expect("a frame"));
    }
    let seen: Vec<(bool, OpCode, &[u8])> = frames
        .iter()
        .map(|f| (f.fin, f.opcode, &f.payload[..]))
        .collect();
    assert_eq!(
        seen,
        [
            (false, OpCode::Binary, &b"one"[..]),
            (true, OpCode::Ping, &b""[..]),
            (false, OpCode::Continuation, &b"two"[..]),
            (true, OpCode::Continuation, &b"three"[..]),
        ]
    );
    ws.close(1000, "").await.expect("close");
    server.join();
}

#[tokio::test]
async fn fragments_sent_with_send_frame_come_back_as_one_frame_after_the_pong() {
    let server = Server::bind("127.0.0.1:0", echo).unwrap();
    let (sender, mut receiver) = floodgate::tokio::connect(&server.url())
        .await
        .unwrap()
        .split();
    sender
        .send_frame(OpCode::Text, b"frag", false)
        .await
        .unwrap();
    sender.ping(b"between").await.unwrap();
    sender
        .send_frame(OpCode::Continuation, "menté!".as_bytes(), true)
        .await
        .unwrap();
    let pong = receiver.recv_frame().await.expect("the pong");
    assert_eq!(
        (pong.opcode, &pong.payload[..]),
        (OpCode::Pong, &b"between"[..])
    );
    // The server assembled one message and echoes it as one frame.
    let frame = receiver.recv_frame().await.expect("the echo");
    assert_eq!(
        (frame.fin, frame.opcode, &frame.payload[..]),
        (true, OpCode::Text, "fragmenté!".as_bytes())
    );
    // The receiver reads the answer in this task: send the close and return.
    sender
        .start_close(Some(floodgate::CloseFrame::new(1000, "")))
        .await
        .unwrap();
    let close = receiver.recv_frame().await.expect("the server's close");
    assert_eq!(close.opcode, OpCode::Close);
    assert_eq!(&close.payload[..2], &1000u16.to_be_bytes());
}

#[tokio::test]
async fn the_peers_close_is_returned_as_a_frame_once_then_already_closed() {
    let server = ScriptedServer::start(|mut conn| {
        conn.accept_upgrade(None);
        conn.send_close(1001, "going away");
        // The client answers with the same code, then waits for our end.
        assert_eq!(conn.expect_close(), Some((1001, String::new())));
        conn.shutdown_write();
        assert!(conn.read_to_eof().is_empty());
    });
    let mut ws = floodgate::tokio::connect(&server.url()).await.unwrap();
    let close = ws.recv_frame().await.expect("the close frame");
    assert_eq!(close.opcode, OpCode::Close);
    assert_eq!(&close.payload[..2], &1001u16.to_be_bytes());
    assert_eq!(&close.payload[2..], b"going away");
    let err = ws.recv_frame().await.unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::AlreadyClosed), "{err:?}");
    assert!(!ws.is_open());
    server.join();
}

#[tokio::test]
async fn recv_refuses_to_finish_a_message_begun_with_recv_frame() {
    let server = ScriptedServer::start(|mut conn| {
        conn.accept_upgrade(None);
        conn.send_frame(false, 0x1, b"hel", None);
        conn.send_frame(true, 0x0, b"lo", None);
        conn.send_text("next");
        assert_eq!(conn.answer_close(), Some((1000, String::new())));
    });
    let mut ws = floodgate::tokio::connect(&server.url()).await.unwrap();
    let first = ws.recv_frame().await.unwrap();
    assert_eq!((first.fin, first.opcode), (false, OpCode::Text));
    let err = ws.recv().await.unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Usage(_)), "{err:?}");
    let last = ws.recv_frame().await.unwrap();
    assert_eq!(
        (last.fin, last.opcode, &last.payload[..]),
        (true, OpCode::Continuation, &b"lo"[..])
    );
    // Between messages, either way of receiving goes.
    assert_eq!(ws.recv().await.unwrap(), Message::text("next"));
    ws.close(1000, "").await.unwrap();
    server.join();
}

#[tokio::test]
async fn a_cancelled_recv_is_finished_by_recv_and_not_by_recv_frame() {
    let server = Server::bind("127.0.0.1:0", echo).unwrap();
    let mut ws = floodgate::tokio::connect(&server.url()).await.unwrap();
    let waited = tokio::time::timeout(Duration::from_millis(50), ws.recv()).await;
    assert!(waited.is_err(), "nothing was sent");
    let err = ws.recv_frame().await.unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Usage(_)), "{err:?}");
    ws.send_text("x").await.unwrap();
    assert_eq!(ws.recv().await.unwrap(), Message::text("x"));
    // And the other way round.
    let waited = tokio::time::timeout(Duration::from_millis(50), ws.recv_frame()).await;
    assert!(waited.is_err(), "nothing was sent");
    let err = ws.recv().await.unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Usage(_)), "{err:?}");
    ws.send_text("y").await.unwrap();
    let frame = ws.recv_frame().await.unwrap();
    assert_eq!(
        (frame.opcode, &frame.payload[..]),
        (OpCode::Text, &b"y"[..])
    );
    ws.close(1000, "").await.unwrap();
}

#[tokio::test]
async fn the_frame_of_a_cancelled_recv_frame_reaches_the_buffered_connection() {
    let server = Server::bind("127.0.0.1:0", echo).unwrap();
    let mut ws = floodgate::tokio::connect(&server.url()).await.unwrap();
    let waited = tokio::time::timeout(Duration::from_millis(50), ws.recv_frame()).await;
    assert!(waited.is_err(), "nothing was sent");
    ws.send_text("kept").await.unwrap();
    ws.send_text("next").await.unwrap();
    let mut ws = ws
        .into_buffered(&floodgate::buffer::BufferConfig::new())
        .await
        .unwrap();
    assert_eq!(ws.recv().await.unwrap().message().as_text(), Some("kept"));
    assert_eq!(ws.recv().await.unwrap().message().as_text(), Some("next"));
    ws.close(1000, "").await.unwrap();
}

#[tokio::test]
async fn recv_frame_cancelled_by_a_timeout_loses_and_repeats_nothing() {
    const FRAMES: u32 = 400;
    // Numbered fragments of every size, written in pieces with pauses, so
    // that the timeouts fire between frames and inside them.
    let server = ScriptedServer::start(|mut conn| {
        conn.accept_upgrade(None);
        let mut wire = Vec::new();
        for i in 0..FRAMES {
            let size = 4 + (i as usize * 997) % 20_000;
            let mut payload = vec![(i % 251) as u8; size];
            payload[..4].copy_from_slice(&i.to_be_bytes());
            // Messages of four fragments: binary, two continuations, the
            // last continuation with fin; a ping after every fifth frame.
            let opcode = if i % 4 == 0 { 0x2 } else { 0x0 };
            let fin = i % 4 == 3;
            wire.extend(frame_bytes(u8::from(fin) << 7 | opcode, &payload, None));
            if i % 5 == 0 {
                wire.extend(frame_bytes(0x89, &i.to_be_bytes(), None));
            }
        }
        for (n, piece) in wire.chunks(3001).enumerate() {
            conn.write_raw(piece);
            if n % 3 == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        // Every ping was answered, before the client's close.
        let mut pongs = 0;
        loop {
            let frame = conn.read_frame();
            match frame.opcode {
                0xA => pongs += 1,
                0x8 => break,
                other => panic!("unexpected opcode {other:#x} from the client"),
            }
        }
        assert_eq!(pongs, FRAMES / 5);
        conn.send_close(1000, "");
        conn.shutdown_write();
        assert!(conn.read_to_eof().is_empty());
    });
    let mut ws = floodgate::tokio::connect(&server.url()).await.unwrap();
    let (mut next, mut pings, mut timeouts) = (0u32, 0u32, 0u32);
    while next < FRAMES {
        match tokio::time::timeout(Duration::from_micros(300), ws.recv_frame()).await {
            Err(_) => timeouts += 1,
            Ok(frame) => {
                let frame = frame.expect("a frame");
                let i = u32::from_be_bytes(frame.payload[..4].try_into().unwrap());
                if frame.opcode == OpCode::Ping {
                    assert_eq!(i, next - 1, "a ping out of place");
                    pings += 1;
                    continue;
                }
                assert_eq!(i, next, "a frame lost or repeated");
                let size = 4 + (i as usize * 997) % 20_000;
                assert_eq!(frame.payload.len(), size, "frame {i} damaged");
                assert_eq!(frame.fin, i % 4 == 3);
                next += 1;
            }
        }
    }
    assert_eq!(pings, FRAMES / 5);
    assert!(timeouts > 0, "the test should have cancelled some receives");
    ws.close(1000, "").await.unwrap();
    server.join();
}
