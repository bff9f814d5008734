//! Large messages (128 KiB and up) are masked and written a piece at a time
//! by every sender that can (`Connection::write_piece`), yet each is one
//! frame on the wire: messages other threads or tasks send meanwhile, and
//! the close, come before or after it, never inside; an async send
//! cancelled half-way completes its frame in the output, so the next send
//! goes out after it; keepalive pings due during the write follow it.
//!
//! Each server here stops reading for a while, so that the large write
//! blocks on a full socket while the other sends happen.

mod support;

use floodgate::Client;
use std::sync::mpsc;
use std::time::Duration;
use support::{ClientFrame, ScriptedServer};

/// Not a multiple of the piece or of 4: the masking key's phase moves
/// from piece to piece.
const BIG: usize = (8 << 20) + 3;

fn big_payload() -> Vec<u8> {
    (0..BIG).map(|i| (i * 7 % 253) as u8).collect()
}

/// A server that reads nothing for `pause`, then every frame up to the
/// client's close (answered), and hands them over.
fn slow_server(pause: Duration) -> (ScriptedServer, mpsc::Receiver<Vec<ClientFrame>>) {
    let (tx, rx) = mpsc::channel();
    let server = ScriptedServer::start(move |mut conn| {
        conn.accept_upgrade(None);
        std::thread::sleep(pause);
        let mut frames = Vec::new();
        loop {
            let frame = conn.read_frame();
            if frame.opcode == 0x8 {
                conn.send_close(1000, "");
                break;
            }
            frames.push(frame);
        }
        tx.send(frames).unwrap();
    });
    (server, rx)
}

/// The big message arrived whole as one final binary frame, and the small
/// ones (text) all arrived, in their order, none inside it; returns how
/// many pings came too (nothing else did).
fn assert_big_whole_and_small_in_order(frames: &[ClientFrame], small: &[String]) -> usize {
    let big = big_payload();
    let bigs: Vec<&ClientFrame> = frames.iter().filter(|f| f.opcode == 0x2).collect();
    assert_eq!(bigs.len(), 1, "one binary frame");
    assert!(bigs[0].fin, "the big message is one final frame");
    assert!(bigs[0].payload == big, "the big message's bytes differ");
    let texts: Vec<String> = frames
        .iter()
        .filter(|f| f.opcode == 0x1)
        .map(|f| String::from_utf8(f.payload.clone()).unwrap())
        .collect();
    assert_eq!(texts, small);
    let pings = frames.iter().filter(|f| f.opcode == 0x9).count();
    assert_eq!(frames.len(), 1 + small.len() + pings, "nothing else");
    pings
}

fn small_messages() -> Vec<String> {
    (0..200).map(|i| format!("small {i}")).collect()
}

/// The blocking `WebSocket`, with keepalive pings falling due while its
/// write is blocked: they go out after the frame, never inside it.
#[test]
fn a_direct_websocket_writes_a_large_message_whole_and_pings_after_it() {
    let (server, frames) = slow_server(Duration::from_millis(400));
    let mut ws = Client::builder()
        .ping_interval(Some(Duration::from_millis(50)))
        .ping_timeout(Some(Duration::from_secs(10)))
        .send_buffer_size(64 << 10)
        .connect(&server.url())
        .expect("connect");
    ws.send_binary(&big_payload()).expect("send_binary");
    ws.send_text("after").expect("send");
    ws.close(1000, "").expect("close");
    let frames = frames.recv_timeout(Duration::from_secs(20)).unwrap();
    let pings = assert_big_whole_and_small_in_order(&frames, &["after".to_string()]);
    assert!(
        pings > 0,
        "no ping fell due during a write blocked for 400 ms"
    );
}

#[test]
fn a_buffered_sender_writes_a_large_message_whole_while_another_thread_sends() {
    let (server, frames) = slow_server(Duration::from_millis(300));
    let mut ws = Client::builder()
        .send_buffer_size(64 << 10)
        .connect_buffered(&server.url())
        .expect("connect");
    let big_sender = ws.sender();
    let big = std::thread::spawn(move || big_sender.send_binary(&big_payload()));
    let small = small_messages();
    for text in &small {
        ws.sender().send_text(text).expect("a small send");
    }
    big.join().unwrap().expect("the big send");
    ws.close(1000, "").expect("close");
    let frames = frames.recv_timeout(Duration::from_secs(20)).unwrap();
    assert_big_whole_and_small_in_order(&frames, &small);
}

#[cfg(feature = "tokio")]
mod async_senders {
    use super::*;
    use futures_util::SinkExt;

    /// A small send buffer, so that the large write blocks soon.
    async fn connect_small_send_buffer(server: &ScriptedServer) -> floodgate::tokio::WebSocket {
        Client::builder()
            .send_buffer_size(64 << 10)
            .connect_async(&server.url())
            .await
            .expect("connect")
    }

    /// What the slow server read, once it has answered the close.
    async fn frames_seen(frames: mpsc::Receiver<Vec<ClientFrame>>) -> Vec<ClientFrame> {
        tokio::task::spawn_blocking(move || frames.recv_timeout(Duration::from_secs(20)).unwrap())
            .await
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_large_message_is_whole_while_a_sink_of_another_task_sends() {
        let (server, frames) = slow_server(Duration::from_millis(300));
        let ws = connect_small_send_buffer(&server).await;
        let (sender, receiver) = ws.split();
        let big_sender = sender.clone();
        let big = tokio::spawn(async move { big_sender.send_binary(&big_payload()).await });
        // Let the big send start and block on the socket.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let small = small_messages();
        let mut sink = sender.clone();
        for text in &small {
            sink.feed(floodgate::Message::text(text.as_str()))
                .await
                .expect("feed");
        }
        sink.flush().await.expect("flush");
        big.await.unwrap().expect("the big send");
        drop(receiver);
        sender.start_close(None).await.expect("close");
        let frames = frames_seen(frames).await;
        assert_big_whole_and_small_in_order(&frames, &small);
    }

    #[tokio::test]
    async fn an_async_send_cancelled_half_way_completes_its_frame_first() {
        let (server, frames) = slow_server(Duration::from_millis(400));
        let mut ws = connect_small_send_buffer(&server).await;
        let payload = big_payload();
        let cut = tokio::time::timeout(Duration::from_millis(100), ws.send_binary(&payload)).await;
        assert!(cut.is_err(), "the send was cut short by the timeout");
        let small = vec!["after".to_string()];
        ws.send_text("after").await.expect("the next send");
        ws.close(1000, "").await.expect("close");
        let frames = frames_seen(frames).await;
        assert_big_whole_and_small_in_order(&frames, &small);
    }

    #[tokio::test]
    async fn a_sink_writes_a_large_message_in_its_place_among_small_ones() {
        let (server, frames) = slow_server(Duration::from_millis(200));
        let mut ws = connect_small_send_buffer(&server).await;
        let before: Vec<String> = (0..3).map(|i| format!("before {i}")).collect();
        let after: Vec<String> = (0..3).map(|i| format!("after {i}")).collect();
        for text in &before {
            ws.feed(floodgate::Message::text(text.as_str()))
                .await
                .expect("feed");
        }
        ws.feed(floodgate::Message::binary(big_payload()))
            .await
            .expect("feed the big one");
        for text in &after {
            ws.feed(floodgate::Message::text(text.as_str()))
                .await
                .expect("feed");
        }
        ws.flush().await.expect("flush");
        ws.close(1000, "").await.expect("close");
        let frames = frames_seen(frames).await;
        let small: Vec<String> = before.iter().chain(&after).cloned().collect();
        assert_big_whole_and_small_in_order(&frames, &small);
        let big_at = frames.iter().position(|f| f.opcode == 0x2).unwrap();
        let texts_before = frames[..big_at].iter().filter(|f| f.opcode == 0x1).count();
        assert_eq!(
            texts_before,
            before.len(),
            "the big message went out of its place"
        );
    }

    #[tokio::test]
    async fn a_sink_dropped_while_writing_a_large_message_completes_its_frame_first() {
        let (server, frames) = slow_server(Duration::from_millis(400));
        let ws = connect_small_send_buffer(&server).await;
        let (sender, receiver) = ws.split();
        let mut sink = sender.clone();
        sink.feed(floodgate::Message::binary(big_payload()))
            .await
            .expect("feed");
        let cut = tokio::time::timeout(Duration::from_millis(100), sink.flush()).await;
        assert!(cut.is_err(), "the flush was cut short by the timeout");
        drop(sink);
        sender.send_text("after").await.expect("the next send");
        drop(receiver);
        sender.start_close(None).await.expect("close");
        let frames = frames_seen(frames).await;
        assert_big_whole_and_small_in_order(&frames, &["after".to_string()]);
    }

    #[tokio::test]
    async fn a_large_message_fed_goes_before_the_senders_next_send_without_a_flush() {
        let (server, frames) = slow_server(Duration::from_millis(400));
        let (mut sink, receiver) = connect_small_send_buffer(&server).await.split();
        // A flush cancelled mid-write (the server is not reading yet),
        // then the same sender's next send: it finishes the sink's write
        // first rather than wait for the writer that write holds.
        sink.feed(floodgate::Message::binary(big_payload()))
            .await
            .expect("feed");
        let cut = tokio::time::timeout(Duration::from_millis(50), sink.flush()).await;
        assert!(cut.is_err(), "the flush was cut short by the timeout");
        tokio::time::timeout(Duration::from_secs(10), sink.send_text("after"))
            .await
            .expect("the send after a cancelled flush did not hang")
            .expect("the send after a cancelled flush");
        // No flush at all: the sender's own next send still comes after.
        sink.feed(floodgate::Message::binary(big_payload()))
            .await
            .expect("feed");
        sink.send_text("last").await.expect("the next send");
        drop(receiver);
        sink.start_close(None).await.expect("close");
        let frames = frames_seen(frames).await;
        let kinds: Vec<u8> = frames
            .iter()
            .map(|f| f.opcode)
            .filter(|&o| o != 0x9)
            .collect();
        assert_eq!(kinds, [0x2, 0x1, 0x2, 0x1], "big, after, big, last");
        let big = big_payload();
        for frame in frames.iter().filter(|f| f.opcode == 0x2) {
            assert!(frame.fin && frame.payload == big, "a big message differs");
        }
    }

    #[tokio::test]
    async fn a_sender_dropped_before_writing_a_large_message_fed_still_sends_it() {
        let (server, frames) = slow_server(Duration::from_millis(100));
        let (sender, receiver) = connect_small_send_buffer(&server).await.split();
        let mut sink = sender.clone();
        sink.feed(floodgate::Message::binary(big_payload()))
            .await
            .expect("feed");
        drop(sink);
        sender.send_text("after").await.expect("the next send");
        drop(receiver);
        sender.start_close(None).await.expect("close");
        assert_big_whole_and_small_in_order(&frames_seen(frames).await, &["after".to_string()]);
    }
}
