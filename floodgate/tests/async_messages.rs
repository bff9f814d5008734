//! The async client (feature `tokio`) against the embedded echo server:
//! round trips of text, binary, large and many messages; the `Stream` and
//! `Sink` impls; split halves in two tasks; `recv` cancelled again and
//! again under a timeout while messages arrive (none lost, none
//! repeated); close codes both ways; pings answered.
#![cfg(feature = "tokio")]

use floodgate::{CloseFrame, ErrorKind, Message};
use floodgate_server::{echo, Server};
use futures_util::{SinkExt, StreamExt};
use std::sync::mpsc;
use std::time::Duration;

fn echo_server() -> Server {
    Server::bind("127.0.0.1:0", echo).expect("bind the echo server")
}

#[tokio::test]
async fn text_and_binary_messages_come_back_as_sent() {
    let server = echo_server();
    let mut ws = floodgate::tokio::connect(&server.url()).await.unwrap();
    assert_eq!(ws.status(), 101);
    ws.send_text("héllo").await.unwrap();
    assert_eq!(ws.recv().await.unwrap(), Message::text("héllo"));
    ws.send_binary(&[0, 1, 2, 255]).await.unwrap();
    assert_eq!(
        ws.recv().await.unwrap(),
        Message::binary(vec![0u8, 1, 2, 255])
    );
    ws.send_text("").await.unwrap();
    assert_eq!(ws.recv().await.unwrap().as_text(), Some(""));
    ws.close(1000, "bye").await.unwrap();
    assert!(!ws.is_open());
    let err = ws.recv().await.unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::AlreadyClosed), "{err}");
}

#[tokio::test]
async fn large_messages_arrive_whole() {
    let server = echo_server();
    let mut ws = floodgate::tokio::connect(&server.url()).await.unwrap();
    for size in [125, 126, 65_535, 65_536, 1 << 20, 5 << 20] {
        let payload: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        ws.send_binary(&payload).await.unwrap();
        let back = ws.recv().await.unwrap();
        assert_eq!(back.len(), size);
        assert!(back.as_bytes() == payload.as_slice(), "{size} bytes differ");
    }
    ws.close(1000, "").await.unwrap();
}

#[tokio::test]
async fn many_messages_keep_their_order() {
    let server = echo_server();
    let mut ws = floodgate::tokio::connect(&server.url()).await.unwrap();
    // Sends run ahead of receives: the echo goes through both kernels'
    // buffers while we write.
    let (sender, mut receiver) = {
        let ws2 = std::mem::replace(
            &mut ws,
            floodgate::tokio::connect(&server.url()).await.unwrap(),
        );
        ws2.split()
    };
    let writer = tokio::spawn(async move {
        for i in 0..10_000u32 {
            sender.send_text(&i.to_string()).await.unwrap();
        }
        sender
    });
    for i in 0..10_000u32 {
        let message = receiver.recv().await.unwrap();
        assert_eq!(message.as_text(), Some(i.to_string().as_str()));
    }
    let sender = writer.await.unwrap();
    // This task receives the answer: send the close and return.
    sender.start_close(None).await.unwrap();
    let err = receiver.recv().await.unwrap_err();
    assert!(err.is_closed(), "{err}");
    ws.close(1000, "").await.unwrap();
}

#[tokio::test]
async fn the_connection_is_a_stream_and_a_sink() {
    let server = echo_server();
    let mut ws = floodgate::tokio::connect(&server.url()).await.unwrap();
    let outgoing: Vec<Message> = (0..100).map(|i| Message::text(format!("n{i}"))).collect();
    for message in &outgoing {
        ws.feed(message.clone()).await.unwrap();
    }
    ws.flush().await.unwrap();
    let got: Vec<Message> = (&mut ws).take(100).map(|m| m.unwrap()).collect().await;
    assert_eq!(got, outgoing);
    // SinkExt::close sends a normal close; the stream then ends.
    SinkExt::close(&mut ws).await.unwrap();
    assert!(ws.next().await.is_none(), "the stream ends after the close");
    assert!(ws.next().await.is_none());
}

#[tokio::test]
async fn split_halves_work_from_two_tasks_and_senders_clone() {
    let server = echo_server();
    let (sender, receiver) = floodgate::tokio::connect(&server.url())
        .await
        .unwrap()
        .split();
    let writers: Vec<_> = (0..8u8)
        .map(|w| {
            let sender = sender.clone();
            tokio::spawn(async move {
                for i in 0..200u32 {
                    // Large enough that writes are cut into pieces: frames
                    // from the tasks must still not interleave.
                    let mut payload = vec![w; 20_000];
                    payload[..4].copy_from_slice(&i.to_be_bytes());
                    sender.send_binary(&payload).await.unwrap();
                }
            })
        })
        .collect();
    let reader = tokio::spawn(async move {
        let mut receiver = receiver;
        let mut next = [0u32; 8];
        for _ in 0..8 * 200 {
            let message = receiver.recv().await.unwrap();
            let bytes = message.as_bytes();
            assert_eq!(bytes.len(), 20_000);
            let w = bytes[4] as usize;
            assert!(bytes[4..].iter().all(|&b| b as usize == w), "a torn frame");
            let i = u32::from_be_bytes(bytes[..4].try_into().unwrap());
            assert_eq!(i, next[w], "writer {w}'s messages out of order");
            next[w] += 1;
        }
        receiver
    });
    for writer in writers {
        writer.await.unwrap();
    }
    let mut receiver = reader.await.unwrap();
    // This task receives the answer: send the close and return.
    sender
        .start_close(Some(CloseFrame::new(4000, "done")))
        .await
        .unwrap();
    // The server's answer echoes the code (without the reason).
    let err = receiver.recv().await.unwrap_err();
    assert_eq!(err.close_frame(), Some(&CloseFrame::new(4000, "")));
    assert!(!receiver.is_open());
}

#[tokio::test]
async fn recv_cancelled_by_a_timeout_loses_and_repeats_nothing() {
    // A server that sends numbered messages with small pauses, in pieces
    // of every size, so timeouts fire both between and inside messages.
    let server = Server::bind("127.0.0.1:0", |mut ws, _| {
        for i in 0..300u32 {
            let size = 1 + (i as usize * 997) % 70_000;
            let mut payload = vec![(i % 256) as u8; size];
            payload[..4.min(size)].copy_from_slice(&i.to_be_bytes()[..4.min(size)]);
            if size < 4 {
                payload = i.to_be_bytes().to_vec();
            }
            if ws.send_binary(&payload).is_err() {
                return;
            }
            if i % 7 == 0 {
                std::thread::sleep(Duration::from_millis(3));
            }
        }
        let _ = ws.close(1000, "all sent");
    })
    .unwrap();
    let mut ws = floodgate::tokio::connect(&server.url()).await.unwrap();
    let mut next = 0u32;
    let mut timeouts = 0;
    loop {
        match tokio::time::timeout(Duration::from_micros(300), ws.recv()).await {
            Err(_) => timeouts += 1,
            Ok(Ok(message)) => {
                let i = u32::from_be_bytes(message.as_bytes()[..4].try_into().unwrap());
                assert_eq!(i, next, "a message lost or repeated");
                next += 1;
            }
            Ok(Err(e)) => {
                assert_eq!(e.close_frame(), Some(&CloseFrame::new(1000, "all sent")));
                break;
            }
        }
    }
    assert_eq!(next, 300);
    assert!(timeouts > 0, "the test should have cancelled some receives");
}

#[tokio::test]
async fn a_server_close_code_reaches_the_client_and_ours_reaches_the_server() {
    let server = Server::bind("127.0.0.1:0", |mut ws, _| {
        let _ = ws.send_text("before");
        let _ = ws.close(4001, "going");
    })
    .unwrap();
    let mut ws = floodgate::tokio::connect(&server.url()).await.unwrap();
    assert_eq!(ws.recv().await.unwrap().as_text(), Some("before"));
    let err = ws.recv().await.unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::ConnectionClosed(_)));
    assert_eq!(err.close_frame(), Some(&CloseFrame::new(4001, "going")));
    assert!(matches!(
        ws.recv().await.unwrap_err().kind(),
        ErrorKind::AlreadyClosed
    ));

    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let server = Server::bind("127.0.0.1:0", move |mut ws, _| {
        let got = ws.recv().map_err(|e| e.close_frame().cloned());
        let _ = tx.lock().unwrap().send(got);
    })
    .unwrap();
    let mut ws = floodgate::tokio::connect(&server.url()).await.unwrap();
    ws.close(4002, "from the client").await.unwrap();
    let seen = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(
        seen.unwrap_err(),
        Some(CloseFrame::new(4002, "from the client"))
    );
    // Codes that must not be sent are refused without sending.
    let mut ws = floodgate::tokio::connect(&echo_server().url())
        .await
        .unwrap();
    let err = ws.close(1005, "").await.unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Usage(_)), "{err}");
}

#[tokio::test]
async fn pings_from_the_server_are_answered_while_receiving() {
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let server = Server::bind("127.0.0.1:0", move |mut ws, _| {
        ws.ping(b"are you there").unwrap();
        ws.send_text("after the ping").unwrap();
        // The pong comes before the close reply.
        let _ = ws.close(1000, "");
        let pong = ws.protocol().state();
        let _ = tx.lock().unwrap().send(format!("{pong:?}"));
    })
    .unwrap();
    let mut ws = floodgate::Client::builder()
        .return_control_frames(true)
        .connect_async(&server.url())
        .await
        .unwrap();
    assert_eq!(
        ws.recv().await.unwrap(),
        Message::Ping(b"are you there".to_vec().into())
    );
    assert_eq!(ws.recv().await.unwrap().as_text(), Some("after the ping"));
    assert!(matches!(ws.recv().await.unwrap(), Message::Close(_)));
    rx.recv_timeout(Duration::from_secs(5)).unwrap();
}

#[tokio::test]
async fn a_close_the_server_never_answers_ends_at_close_timeout() {
    // A server that completes the handshake and then reads nothing.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let (_ws, _) =
            floodgate_server::accept(stream, &floodgate_server::Options::default()).unwrap();
        std::thread::sleep(Duration::from_secs(5));
    });
    let mut ws = floodgate::Client::builder()
        .close_timeout(Duration::from_millis(300))
        .connect_async(&url)
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let err = ws.close(1000, "").await.unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(!ws.is_open());
    let err = ws.send_text("after").await.unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::AlreadyClosed | ErrorKind::Usage(_)),
        "{err:?}"
    );
}

#[tokio::test]
async fn shutdown_ends_the_connection_without_a_handshake() {
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let server = Server::bind("127.0.0.1:0", move |mut ws, _| {
        let end = ws.recv().unwrap_err();
        let _ = tx
            .lock()
            .unwrap()
            .send(matches!(end, floodgate_server::Error::AbnormalClosure));
    })
    .unwrap();
    let mut ws = floodgate::tokio::connect(&server.url()).await.unwrap();
    ws.shutdown().await;
    assert!(
        rx.recv_timeout(Duration::from_secs(5)).unwrap(),
        "the server saw 1006"
    );
    assert!(matches!(
        ws.send_text("x").await.unwrap_err().kind(),
        ErrorKind::AlreadyClosed
    ));
    assert!(matches!(
        ws.recv().await.unwrap_err().kind(),
        ErrorKind::AlreadyClosed
    ));
}

#[tokio::test]
async fn reunited_halves_go_on_receiving_and_sending() {
    let server = echo_server();
    let (sender, mut receiver) = floodgate::tokio::connect(&server.url())
        .await
        .unwrap()
        .split();
    let other = sender.clone();
    sender.send_text("one").await.unwrap();
    assert_eq!(receiver.recv().await.unwrap().as_text(), Some("one"));
    // A receive cancelled before the reunion goes on in the WebSocket.
    let waited = tokio::time::timeout(Duration::from_millis(50), receiver.recv()).await;
    assert!(waited.is_err(), "nothing was sent");
    let mut ws = receiver.reunite(sender).expect("halves of one connection");
    assert!(ws.is_open());
    assert_eq!(ws.status(), 101);
    ws.send_text("two").await.unwrap();
    assert_eq!(ws.recv().await.unwrap().as_text(), Some("two"));
    // Other clones of the sender stay valid, on the same connection.
    other.send_binary(b"three").await.unwrap();
    assert_eq!(ws.recv().await.unwrap().as_bytes(), b"three");
    // And the halves split again and come back together by the sender.
    let (sender, receiver) = ws.split();
    let mut ws = sender.reunite(receiver).expect("halves of one connection");
    ws.close(1000, "").await.unwrap();
    assert!(
        !other.is_open(),
        "the close is the connection's, for every clone"
    );
    assert!(other.send_text("after").await.is_err());
}

#[tokio::test]
async fn halves_of_different_connections_are_given_back_in_the_error() {
    let server = echo_server();
    let (sender_a, receiver_a) = floodgate::tokio::connect(&server.url())
        .await
        .unwrap()
        .split();
    let (sender_b, receiver_b) = floodgate::tokio::connect(&server.url())
        .await
        .unwrap()
        .split();
    let err = receiver_a.reunite(sender_b).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("different WebSocket connections"), "{text}");
    assert!(text.contains("same split"), "{text}");
    let floodgate::tokio::ReuniteError {
        sender: sender_b,
        receiver: mut receiver_a,
    } = err;
    // Both halves came back unharmed.
    sender_b.send_text("to b").await.unwrap();
    sender_a.send_text("to a").await.unwrap();
    assert_eq!(receiver_a.recv().await.unwrap().as_text(), Some("to a"));
    let err = sender_a.reunite(receiver_b).unwrap_err();
    let (sender_a, mut receiver_b) = (err.sender, err.receiver);
    assert_eq!(receiver_b.recv().await.unwrap().as_text(), Some("to b"));
    let mut a = receiver_a.reunite(sender_a).expect("connection a");
    let mut b = receiver_b.reunite(sender_b).expect("connection b");
    a.close(1000, "").await.unwrap();
    b.close(1000, "").await.unwrap();
}

#[tokio::test]
async fn the_sink_writes_fed_messages_at_flush_and_send_all_in_one_go() {
    // An echo server that also reports each message as it arrives, so the
    // test can see what was written without reading (a read would write
    // what is queued).
    let (tx, rx) = mpsc::channel::<Message>();
    let tx = std::sync::Mutex::new(tx);
    let server = Server::bind("127.0.0.1:0", move |mut ws, _| {
        let tx = tx.lock().unwrap().clone();
        while let Ok(message) = ws.recv() {
            let _ = tx.send(message.clone());
            if ws.send(message).is_err() {
                break;
            }
        }
    })
    .unwrap();
    let mut ws = floodgate::tokio::connect(&server.url()).await.unwrap();
    let arrived = |n: usize| -> Vec<Message> {
        (0..n)
            .map(|_| {
                rx.recv_timeout(Duration::from_secs(5))
                    .expect("a message at the server")
            })
            .collect()
    };

    // Fed, not flushed, and far below the sink's write threshold: nothing
    // is written yet. (The sink of an earlier version wrote each message
    // as it was fed.)
    let fed: Vec<Message> = (0..100)
        .map(|i| Message::binary(vec![i as u8; 10]))
        .collect();
    for m in &fed {
        ws.feed(m.clone()).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        rx.try_recv().is_err(),
        "a message was written before the flush"
    );
    ws.flush().await.unwrap();
    assert_eq!(arrived(fed.len()), fed);

    // Fed past the threshold (64 KiB), the sink writes without a flush.
    let big: Vec<Message> = (0..40)
        .map(|i| Message::binary(vec![i as u8; 4096]))
        .collect();
    for m in &big {
        ws.feed(m.clone()).await.unwrap();
    }
    let first = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("the first messages were written before any flush");
    assert_eq!(first, big[0]);
    ws.flush().await.unwrap();
    assert_eq!(arrived(big.len() - 1), big[1..]);
    for expected in fed.iter().chain(&big) {
        assert_eq!(&ws.next().await.unwrap().unwrap(), expected);
    }

    // send_all on the direct connection: the same order.
    ws.send_all((0..50u8).map(|i| Message::binary(vec![i; 3])))
        .await
        .unwrap();
    for i in 0..50u8 {
        assert_eq!(ws.recv().await.unwrap().as_bytes(), &[i; 3]);
    }
    // A message the protocol refuses fails at once, in `feed`.
    let refused = ws.feed(Message::Ping(vec![0; 126].into())).await;
    assert!(
        matches!(refused, Err(ref e) if matches!(e.kind(), ErrorKind::Usage(_))),
        "{refused:?}"
    );
    ws.close(1000, "").await.unwrap();
    let after = ws.feed(Message::text("late")).await;
    assert!(
        matches!(after, Err(ref e) if matches!(e.kind(), ErrorKind::AlreadyClosed)),
        "{after:?}"
    );
}

#[tokio::test]
async fn messages_fed_to_a_sink_go_before_later_sends_and_survive_its_drop() {
    let server = echo_server();
    let (mut sender, mut receiver) = floodgate::tokio::connect(&server.url())
        .await
        .unwrap()
        .split();
    // Fewer than the sink encodes at a time, not flushed: the sender's
    // own `send_text` must still come after them.
    for i in 0..10u8 {
        sender.feed(Message::binary(vec![i; 5])).await.unwrap();
    }
    sender.send_text("after the fed ones").await.unwrap();
    for i in 0..10u8 {
        assert_eq!(receiver.recv().await.unwrap().as_bytes(), &[i; 5]);
    }
    assert_eq!(
        receiver.recv().await.unwrap().as_text(),
        Some("after the fed ones")
    );

    // A clone fed and dropped without a flush: what it fed goes out with
    // the next write of another sender, before that sender's message.
    let mut clone = sender.clone();
    for i in 0..3u8 {
        clone.feed(Message::text(format!("fed {i}"))).await.unwrap();
    }
    drop(clone);
    sender.send_text("next").await.unwrap();
    for i in 0..3u8 {
        assert_eq!(
            receiver.recv().await.unwrap().as_text(),
            Some(format!("fed {i}").as_str())
        );
    }
    assert_eq!(receiver.recv().await.unwrap().as_text(), Some("next"));

    // Messages waiting to be encoded when another sender closes: the
    // flush that would encode them says why they cannot go, and a feed
    // after the close fails at once.
    let mut fed = sender.clone();
    fed.feed(Message::text("too late")).await.unwrap();
    sender.start_close(None).await.unwrap();
    let flushed = fed.flush().await;
    assert!(
        matches!(flushed, Err(ref e) if matches!(e.kind(), ErrorKind::Usage(_))),
        "{flushed:?}"
    );
    let refused = fed.feed(Message::text("later still")).await;
    assert!(
        matches!(refused, Err(ref e) if matches!(e.kind(), ErrorKind::Usage(_))),
        "{refused:?}"
    );
    let end = receiver.recv().await.unwrap_err();
    assert!(
        matches!(end.kind(), ErrorKind::ConnectionClosed(_)),
        "{end}"
    );
}
