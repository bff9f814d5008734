//! Sending and receiving over loopback: echoes through floodgate's own
//! server, control frames seen from both sides, raw frames, bursts, read
//! timeouts that split a frame, socket options, and a Unix socket
//! transport.

mod support;

use floodgate::{Client, ErrorKind, Frame, Message, OpCode};
use floodgate_server::{echo, Server};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use support::{frame_bytes, ScriptedServer};

/// Bytes that are not all alike, so a shifted or truncated echo shows.
fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i.wrapping_mul(31) ^ (i >> 8)) as u8)
        .collect()
}

fn echo_server() -> Server {
    Server::bind("127.0.0.1:0", echo).expect("bind the echo server")
}

#[test]
fn text_messages_are_echoed_intact_including_non_ascii() {
    let server = echo_server();
    let mut ws = floodgate::connect(&server.url()).expect("connect");
    let long = "ünï©ødé 🦀 ".repeat(20_000);
    for text in ["hello", "", "日本語のテキスト", "emoji 🦀🌊", long.as_str()] {
        ws.send_text(text).expect("send");
        assert_eq!(
            ws.recv().expect("echo").as_text(),
            Some(text),
            "a {}-byte text",
            text.len()
        );
    }
    ws.close(1000, "").expect("close");
}

#[test]
fn binary_messages_of_every_length_encoding_are_echoed_intact() {
    let server = echo_server();
    let mut ws = floodgate::connect(&server.url()).expect("connect");
    // 7-bit, 16-bit and 64-bit payload lengths, at their edges.
    for len in [0, 125, 126, 65_535, 65_536, 1 << 20] {
        let data = pattern(len);
        ws.send_binary(&data).expect("send");
        match ws.recv().expect("echo") {
            Message::Binary(got) => assert!(got[..] == data[..], "the echo of {len} bytes differs"),
            other => panic!("expected {len} bytes of binary, got {other:?}"),
        }
    }
    ws.close(1000, "").expect("close");
}

#[test]
fn every_message_variant_can_be_sent_with_send() {
    let server = echo_server();
    let mut ws = Client::builder()
        .return_control_frames(true)
        .connect(&server.url())
        .expect("connect");
    ws.send(Message::text("text")).expect("send text");
    assert_eq!(ws.recv().expect("echo"), Message::text("text"));
    ws.send(Message::binary(vec![0, 255])).expect("send binary");
    assert_eq!(ws.recv().expect("echo"), Message::binary(vec![0, 255]));
    // The server answers a ping with a pong carrying its payload.
    ws.send(Message::Ping("are you there".into()))
        .expect("send ping");
    assert_eq!(
        ws.recv().expect("pong"),
        Message::Pong("are you there".into())
    );
    // An unsolicited pong gets no answer: the next thing back is the echo.
    ws.send(Message::Pong("heartbeat".into()))
        .expect("send pong");
    ws.send("after").expect("send &str");
    assert_eq!(ws.recv().expect("echo"), Message::text("after"));
    ws.close(1000, "").expect("close");
}

#[test]
fn a_message_sent_as_raw_fragments_arrives_as_one_message() {
    let server = echo_server();
    let mut ws = floodgate::connect(&server.url()).expect("connect");
    ws.send_frame(OpCode::Text, "frag".as_bytes(), false)
        .expect("first");
    ws.ping(b"between").expect("a ping between fragments");
    ws.send_frame(OpCode::Continuation, "ment".as_bytes(), false)
        .expect("middle");
    ws.send_frame(OpCode::Continuation, "é!".as_bytes(), true)
        .expect("last");
    let pong = ws.recv_frame().expect("the pong");
    assert_eq!(
        (pong.opcode, &pong.payload[..]),
        (OpCode::Pong, &b"between"[..])
    );
    // The server assembled one message and echoes it as one frame.
    let frame = ws.recv_frame().expect("the echo");
    assert_eq!(
        (frame.fin, frame.opcode, &frame.payload[..]),
        (true, OpCode::Text, "fragmenté!".as_bytes())
    );
    ws.close(1000, "").expect("close");
}

#[test]
fn a_ping_is_answered_with_its_payload_while_the_client_waits_in_recv() {
    let server = ScriptedServer::start(|mut conn| {
        conn.accept_upgrade(None);
        conn.send_frame(true, 0x9, b"tick-42", None);
        // The text is only sent once the pong is in: a client that answers
        // pings only between recv calls would never get it.
        let pong = conn.read_frame();
        assert_eq!(
            (pong.fin, pong.opcode, pong.payload.as_slice()),
            (true, 0xA, &b"tick-42"[..])
        );
        conn.send_text("after the pong");
        assert_eq!(conn.answer_close(), Some((1000, String::new())));
    });
    let mut ws = floodgate::connect(&server.url()).expect("connect");
    assert_eq!(
        ws.recv().expect("the text"),
        Message::text("after the pong")
    );
    ws.close(1000, "").expect("close");
    server.join();
}

#[test]
fn with_control_frames_returned_pings_and_pongs_come_out_of_recv() {
    let server = ScriptedServer::start(|mut conn| {
        conn.accept_upgrade(None);
        conn.send_frame(true, 0x9, b"ping!", None);
        conn.send_frame(true, 0xA, b"pong!", None);
        conn.send_text("data");
        let pong = conn.read_frame();
        assert_eq!(
            (pong.opcode, pong.payload.as_slice()),
            (0xA, &b"ping!"[..]),
            "still answered"
        );
        assert_eq!(conn.answer_close(), Some((1000, String::new())));
    });
    let mut ws = Client::builder()
        .return_control_frames(true)
        .connect(&server.url())
        .expect("connect");
    assert_eq!(ws.recv().expect("ping"), Message::Ping("ping!".into()));
    assert_eq!(ws.recv().expect("pong"), Message::Pong("pong!".into()));
    assert_eq!(ws.recv().expect("text"), Message::text("data"));
    ws.close(1000, "").expect("close");
    server.join();
}

#[test]
fn recv_frame_returns_fragments_with_their_fin_flags() {
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
    let mut ws = floodgate::connect(&server.url()).expect("connect");
    let frames: Vec<Frame> = (0..4).map(|_| ws.recv_frame().expect("a frame")).collect();
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
    ws.close(1000, "").expect("close");
    server.join();
}

#[test]
fn ten_thousand_messages_in_one_write_are_all_received_in_order() {
    const COUNT: usize = 10_000;
    let server = ScriptedServer::start(|mut conn| {
        conn.accept_upgrade(None);
        let mut burst = Vec::new();
        for i in 0..COUNT {
            burst.extend(frame_bytes(0x81, format!("message {i}").as_bytes(), None));
        }
        conn.write_raw(&burst);
        assert_eq!(conn.answer_close(), Some((1000, String::new())));
    });
    let mut ws = floodgate::connect(&server.url()).expect("connect");
    for i in 0..COUNT {
        let message = ws.recv().unwrap_or_else(|e| panic!("message {i}: {e}"));
        assert_eq!(message.as_text(), Some(format!("message {i}").as_str()));
    }
    ws.close(1000, "").expect("close");
    server.join();
}

#[test]
fn a_read_timeout_keeps_a_half_received_frame_for_the_next_recv() {
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
    let mut ws = floodgate::connect(&server.url()).expect("connect");
    ws.set_read_timeout(Some(Duration::from_millis(100)))
        .expect("set the timeout");
    assert_eq!(ws.read_timeout().unwrap(), Some(Duration::from_millis(100)));

    let started = Instant::now();
    let err = ws.recv().expect_err("no data yet");
    assert!(err.is_timeout(), "{err:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(90),
        "timed out after {:?}",
        started.elapsed()
    );
    assert!(ws.is_open(), "a timeout leaves the connection usable");

    to_server.send(()).unwrap();
    from_server.recv().unwrap();
    let err = ws.recv().expect_err("only half a frame");
    assert!(err.is_timeout(), "{err:?}");

    to_server.send(()).unwrap();
    ws.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("set the timeout");
    match ws.recv().expect("the whole message") {
        Message::Binary(got) => assert!(
            got[..] == data[..],
            "the message was damaged by the timeout"
        ),
        other => panic!("expected the binary message, got {other:?}"),
    }
    ws.close(1000, "").expect("close");
    server.join();
}

#[test]
fn socket_options_from_the_builder_are_set_on_the_tcp_socket() {
    let server = echo_server();
    let ws = Client::builder()
        .recv_buffer_size(1 << 20)
        .nodelay(true)
        .connect(&server.url())
        .expect("connect");
    let tcp = ws.get_ref().tcp().unwrap();
    assert!(tcp.nodelay().unwrap());
    let got = socket2::SockRef::from(tcp).recv_buffer_size().unwrap();
    // Linux doubles the value asked for, capped by net.core.rmem_max.
    let rmem_max = std::fs::read_to_string("/proc/sys/net/core/rmem_max")
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .unwrap_or(usize::MAX);
    assert!(got >= (1 << 20).min(rmem_max), "SO_RCVBUF is {got}");

    let ws = Client::builder()
        .nodelay(false)
        .connect(&server.url())
        .expect("connect");
    assert!(!ws.get_ref().tcp().unwrap().nodelay().unwrap());
}

#[test]
fn after_shutdown_sends_and_receives_report_already_closed() {
    let server = echo_server();
    let mut ws = floodgate::connect(&server.url()).expect("connect");
    ws.send_text("before").expect("send");
    assert_eq!(ws.recv().expect("echo"), Message::text("before"));
    ws.shutdown();
    assert!(!ws.is_open());
    let already = |result: floodgate::Result<()>| {
        assert!(
            matches!(result, Err(ref e) if matches!(e.kind(), ErrorKind::AlreadyClosed)),
            "{result:?}"
        );
    };
    already(ws.send_text("after"));
    already(ws.send_binary(b"after"));
    already(ws.ping(b""));
    already(ws.close(1000, ""));
    already(ws.recv().map(drop));
}

#[cfg(unix)]
#[test]
fn connect_over_runs_a_websocket_over_a_unix_socket() {
    use std::os::unix::net::{UnixListener, UnixStream};

    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let dir = std::env::temp_dir().join(format!("floodgate-unix-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("make a socket directory");
    let path = dir.join("ws.sock");
    let listener = UnixListener::bind(&path).expect("bind the Unix socket");
    let server = std::thread::spawn(move || {
        let (stream, _) = listener.accept().expect("accept");
        let (mut ws, request) =
            floodgate_server::accept(stream, &floodgate_server::Options::default())
                .expect("server handshake");
        while let Ok(message) = ws.recv() {
            ws.send(message).expect("echo");
        }
        request
    });

    let stream = UnixStream::connect(&path).expect("connect to the Unix socket");
    let mut ws = Client::default()
        .connect_over(stream, "ws://localhost/feed")
        .expect("handshake over the Unix socket");
    ws.send_text("over unix").expect("send");
    assert_eq!(ws.recv().expect("echo"), Message::text("over unix"));
    ws.send_binary(&pattern(100_000)).expect("send");
    assert_eq!(ws.recv().expect("echo").as_bytes(), &pattern(100_000)[..]);
    ws.close(1000, "").expect("close");

    let request = server.join().expect("the server thread");
    assert_eq!(request.path, "/feed");
    assert_eq!(request.headers.get("host").unwrap(), "localhost");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_send_that_timed_out_loses_neither_a_received_message_nor_its_own_rest() {
    let (to_server, from_test) = mpsc::channel::<()>();
    let server = ScriptedServer::start(move |mut conn| {
        conn.accept_upgrade(None);
        // Read nothing until the client's send has timed out.
        from_test.recv().expect("go");
        conn.send_text("while you were writing");
        // Still reading nothing while the client receives.
        from_test.recv().expect("go on reading");
        let big = conn.read_frame();
        assert_eq!(
            (big.fin, big.opcode, big.payload.len()),
            (true, 0x2, 2 << 20)
        );
        assert!(
            big.payload.iter().all(|&b| b == 0),
            "the timed-out frame arrived damaged"
        );
        let next = conn.read_frame();
        assert_eq!((next.opcode, next.payload.as_slice()), (0x1, &b"next"[..]));
        assert_eq!(conn.answer_close(), Some((1000, String::new())));
    });
    let mut ws = Client::builder()
        .send_buffer_size(64 << 10)
        .write_timeout(Some(Duration::from_millis(200)))
        .connect(&server.url())
        .expect("connect");
    // Far more than the socket buffers hold, so the write times out with
    // the rest of the frame queued.
    let err = ws
        .send_binary(&vec![0u8; 2 << 20])
        .expect_err("the server reads nothing");
    assert!(err.is_timeout(), "{err:?}");
    assert!(
        ws.protocol().has_output(),
        "the rest of the frame stays queued"
    );

    to_server.send(()).unwrap();
    ws.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    match ws.recv() {
        Ok(message) => assert_eq!(message, Message::text("while you were writing")),
        Err(e) => panic!("the message was lost: {e:?}"),
    }
    // The rest of the timed-out frame goes out first with the next send.
    ws.set_write_timeout(None).unwrap();
    to_server.send(()).unwrap();
    ws.send_text("next").expect("send after the timeout");
    ws.close(1000, "").expect("close");
    server.join();
}

#[test]
fn recv_refuses_to_finish_a_message_begun_with_recv_frame() {
    let server = ScriptedServer::start(|mut conn| {
        conn.accept_upgrade(None);
        conn.send_frame(false, 0x1, "h\u{e9}".as_bytes(), None);
        conn.send_frame(true, 0x0, b"llo", None);
        assert_eq!(conn.answer_close(), Some((1000, String::new())));
    });
    let mut ws = floodgate::connect(&server.url()).expect("connect");
    let first = ws.recv_frame().expect("the first fragment");
    assert_eq!((first.fin, first.opcode), (false, OpCode::Text));
    let err = ws.recv().expect_err("recv cannot finish a raw message");
    assert!(
        matches!(err.kind(), floodgate::ErrorKind::Usage(_)),
        "{err:?}"
    );
    let last = ws.recv_frame().expect("recv_frame still finishes it");
    assert_eq!((last.fin, &last.payload[..]), (true, &b"llo"[..]));
    ws.close(1000, "").expect("close");
    server.join();
}

#[test]
fn the_messages_iterator_reports_a_read_timeout_and_goes_on() {
    let (to_server, from_test) = mpsc::channel::<()>();
    let server = ScriptedServer::start(move |mut conn| {
        conn.accept_upgrade(None);
        from_test.recv().expect("go");
        conn.send_frame(true, 0x1, b"late", None);
        conn.send_frame(true, 0x8, &1000u16.to_be_bytes(), None);
        let _ = conn.read_frame();
    });
    let mut ws = floodgate::connect(&server.url()).expect("connect");
    ws.set_read_timeout(Some(Duration::from_millis(100)))
        .expect("set the timeout");
    let mut messages = ws.messages();
    let first = messages.next().expect("an item");
    assert!(first.expect_err("a timeout").is_timeout());
    to_server.send(()).unwrap();
    let second = messages.next().expect("an item").expect("a message");
    assert_eq!(second.as_text(), Some("late"));
    assert!(messages.next().is_none(), "the close ends the iteration");
    server.join();
}

/// A TCP stream that counts the writes made to it.
struct CountingStream {
    inner: std::net::TcpStream,
    writes: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl std::io::Read for CountingStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(buf)
    }
}

impl std::io::Write for CountingStream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.writes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl floodgate::Transport for CountingStream {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> std::io::Result<()> {
        self.inner.set_read_timeout(timeout)
    }
    fn read_timeout(&self) -> std::io::Result<Option<Duration>> {
        self.inner.read_timeout()
    }
    fn set_write_timeout(&self, timeout: Option<Duration>) -> std::io::Result<()> {
        self.inner.set_write_timeout(timeout)
    }
    fn write_timeout(&self) -> std::io::Result<Option<Duration>> {
        self.inner.write_timeout()
    }
    fn shutdown(&self) -> std::io::Result<()> {
        self.inner.shutdown(std::net::Shutdown::Both)
    }
}

#[test]
fn send_all_writes_a_batch_with_one_write_and_keeps_its_order() {
    use std::sync::atomic::Ordering::Relaxed;
    let server = echo_server();
    let writes = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let stream = CountingStream {
        inner: std::net::TcpStream::connect(server.local_addr()).expect("connect"),
        writes: writes.clone(),
    };
    let mut ws = Client::default()
        .connect_over(stream, &server.url())
        .expect("handshake");
    let messages: Vec<Message> = (0..1000u32)
        .map(|i| Message::binary(i.to_be_bytes().repeat(4)))
        .collect();

    let before = writes.load(Relaxed);
    // Borrowed: encoded where they are.
    ws.send_all(&messages).expect("send_all");
    let batch_writes = writes.load(Relaxed) - before;
    // 1000 frames of 22 bytes: one write, a few if the socket took
    // them in parts; never one per message.
    assert!(batch_writes <= 3, "{batch_writes} writes for one batch");
    for expected in &messages {
        assert_eq!(&ws.recv().expect("echo"), expected);
    }

    // The contrast that makes the count mean something: one send each.
    let before = writes.load(Relaxed);
    for m in messages.iter().take(100) {
        ws.send(m.clone()).expect("send");
    }
    assert_eq!(writes.load(Relaxed) - before, 100);
    for expected in messages.iter().take(100) {
        assert_eq!(&ws.recv().expect("echo"), expected);
    }

    // A close ends the batch: what came before it goes, then the close.
    ws.send_all([
        Message::text("last"),
        Message::Close(None),
        Message::text("never"),
    ])
    .expect("send_all with a close");
    assert!(!ws.is_open(), "the close handshake ran");
}

#[test]
fn send_all_refuses_a_bad_control_frame_after_sending_what_came_before() {
    let server = echo_server();
    let mut ws = floodgate::connect(&server.url()).expect("connect");
    let err = ws
        .send_all([
            Message::text("one"),
            Message::Ping(vec![0; 126].into()),
            Message::text("two"),
        ])
        .expect_err("a 126-byte ping is refused");
    assert!(matches!(err.kind(), ErrorKind::Usage(_)), "{err}");
    assert_eq!(ws.recv().expect("echo").as_text(), Some("one"));
    ws.send_text("after")
        .expect("the connection is still usable");
    assert_eq!(ws.recv().expect("echo").as_text(), Some("after"));
}

/// `send_all` writes a large message among small ones in order, and
/// `send_text` a large text, each as one frame.
#[test]
fn large_messages_in_send_all_and_send_text_arrive_whole_and_in_order() {
    let server = echo_server();
    let mut ws = Client::builder()
        .max_message_size(Some(8 << 20))
        .connect(&server.url())
        .expect("connect");
    let big: Vec<u8> = (0..(1 << 20) + 3).map(|i| (i % 253) as u8).collect();
    let text = "é".repeat(100_000);
    let batch = [
        Message::text("before"),
        Message::binary(big.clone()),
        Message::text("after"),
    ];
    ws.send_all(&batch).expect("send_all");
    ws.send_text(&text).expect("send_text");
    for expected in &batch {
        assert_eq!(&ws.recv().expect("echo"), expected);
    }
    assert_eq!(ws.recv().expect("echo").as_text(), Some(text.as_str()));
}
