//! The consumer and sender API of a buffered connection, against the
//! embedded echo server (and a scripted server where the test needs to
//! choose the bytes): receiving in every form, how long messages waited,
//! senders on several threads, every way the connection ends, the lag
//! alarm, configuration errors, and polling the buffer with a waker that
//! is not a thread.

mod support;

use floodgate::buffer::{
    BufferConfig, BufferConfigError, Conflate, LagEvent, LagReason, LagThreshold, Overflow,
    RecvError, Stats,
};
use floodgate::{BufferedWebSocket, Client, ConfigError, ErrorKind, Message};
use floodgate_server::{echo, Server};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::{Duration, Instant};
use support::{frame_bytes, ScriptedServer};

/// How long a test waits for something that should happen at once before
/// failing (never reached when the code works).
const PATIENCE: Duration = Duration::from_secs(10);

fn echo_server() -> Server {
    Server::bind("127.0.0.1:0", echo).expect("start the echo server")
}

fn connect(server: &Server, buffer: BufferConfig) -> BufferedWebSocket {
    Client::builder()
        .buffer(buffer)
        .connect_buffered(&server.url())
        .expect("connect")
}

/// Waits until `condition` holds for the buffer's stats.
fn wait_for_stats(ws: &BufferedWebSocket, what: &str, condition: impl Fn(&Stats) -> bool) -> Stats {
    let started = Instant::now();
    loop {
        let stats = ws.stats();
        if condition(&stats) {
            return stats;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "waited {PATIENCE:?} for {what}: {stats:?}"
        );
        thread::sleep(Duration::from_millis(1));
    }
}

fn wait_for_buffered(ws: &BufferedWebSocket, n: u64) {
    wait_for_stats(ws, &format!("{n} buffered messages"), |s| s.buffered == n);
}

fn text(message: &Message) -> &str {
    message.as_text().expect("a text message")
}

fn assert_kind(result: floodgate::Result<impl std::fmt::Debug>, expected: &str) -> ErrorKind {
    let err = result.expect_err(&format!("expected {expected}"));
    err.into_kind()
}

// ----- receiving ------------------------------------------------------------

#[test]
fn try_recv_returns_none_until_a_message_is_buffered() {
    let server = echo_server();
    let mut ws = connect(&server, BufferConfig::new());
    assert!(ws.try_recv().expect("open").is_none());
    ws.send_text("one").unwrap();
    wait_for_buffered(&ws, 1);
    let got = ws.try_recv().expect("open").expect("a message");
    assert_eq!(text(&got), "one");
    assert!(ws.try_recv().expect("open").is_none());
    ws.close(1000, "").expect("close");
}

#[test]
fn recv_timeout_times_out_and_the_connection_stays_usable() {
    let server = echo_server();
    let mut ws = connect(&server, BufferConfig::new());
    let started = Instant::now();
    let err = ws
        .recv_timeout(Duration::from_millis(50))
        .expect_err("nothing was sent");
    assert!(err.is_timeout(), "{err:?}");
    assert!(started.elapsed() >= Duration::from_millis(50));
    assert!(ws.is_open());

    ws.send_text("after the timeout").unwrap();
    let got = ws.recv_timeout(PATIENCE).expect("the echo");
    assert_eq!(text(&got), "after the timeout");
    ws.send_text("and recv").unwrap();
    assert_eq!(text(&ws.recv().expect("the echo")), "and recv");
    ws.close(1000, "").expect("close");
}

#[test]
fn recv_batch_takes_at_most_max_and_returns_empty_on_timeout() {
    let server = echo_server();
    let mut ws = connect(&server, BufferConfig::new());
    for i in 0..10 {
        ws.send_text(&i.to_string()).unwrap();
    }
    wait_for_buffered(&ws, 10);

    let first = ws.recv_batch(4, PATIENCE).expect("open");
    let first: Vec<&str> = first.iter().map(|m| text(m)).collect();
    assert_eq!(first, ["0", "1", "2", "3"]);

    let mut rest = Vec::new();
    let n = ws.recv_batch_into(&mut rest, 100, PATIENCE).expect("open");
    assert_eq!(n, 6);
    let rest: Vec<&str> = rest.iter().map(|m| text(m)).collect();
    assert_eq!(rest, ["4", "5", "6", "7", "8", "9"]);

    let started = Instant::now();
    let none = ws
        .recv_batch(4, Duration::from_millis(50))
        .expect("a timeout is not an error");
    assert!(none.is_empty());
    assert!(started.elapsed() >= Duration::from_millis(50));
    assert_eq!(ws.stats().delivered, 10);
    ws.close(1000, "").expect("close");
}

#[test]
fn delivered_messages_report_how_long_they_waited_in_the_buffer() {
    const HELD: Duration = Duration::from_millis(100);
    let server = echo_server();
    let mut ws = connect(&server, BufferConfig::new());
    ws.send_text("held").unwrap();
    wait_for_buffered(&ws, 1);
    thread::sleep(HELD);
    let got = ws.recv().expect("the echo");
    assert_eq!(text(&got), "held");
    assert!(
        got.waited() >= HELD,
        "waited() says {:?}, but it sat in the buffer for at least {HELD:?}",
        got.waited()
    );
    let stats = ws.stats();
    assert_eq!(stats.queue_wait.count, 1);
    assert!(stats.queue_wait.max >= HELD, "{stats:?}");
    ws.close(1000, "").expect("close");
}

#[test]
fn the_messages_iterator_ends_after_the_close_handshake() {
    let server = Server::bind("127.0.0.1:0", |mut ws: floodgate_server::WebSocket, _| {
        for i in 0..3 {
            ws.send_text(&format!("m{i}")).unwrap();
        }
        let _ = ws.close(1000, "");
    })
    .expect("start the server");
    let ws = connect(&server, BufferConfig::new());
    let got: Vec<String> = ws
        .messages()
        .map(|m| text(&m.expect("no error")).to_owned())
        .collect();
    assert_eq!(got, ["m0", "m1", "m2"]);
}

/// The reader wakes a waiting consumer once per run of reads, when the
/// socket has nothing more ready. A burst that ends exactly at a read
/// boundary, after which the server waits for an answer, must still reach
/// the consumer at once.
#[test]
fn a_burst_ending_on_a_read_boundary_reaches_a_waiting_consumer() {
    const READ_CHUNK: usize = 1024;
    const FRAME: usize = 64; // 2-byte header + 62-byte payload
    const PER_ROUND: usize = 4 * READ_CHUNK / FRAME;
    const ROUNDS: usize = 5;
    let server = ScriptedServer::start(|mut conn| {
        conn.accept_upgrade(None);
        for round in 0..ROUNDS {
            let mut burst = Vec::new();
            for i in 0..PER_ROUND {
                let payload = format!("{round:02}:{i:03}:{}", "x".repeat(FRAME - 2 - 7));
                burst.extend(frame_bytes(0x81, payload.as_bytes(), None));
            }
            assert_eq!(burst.len(), PER_ROUND * FRAME);
            conn.write_raw(&burst);
            let answer = conn.read_frame();
            assert_eq!(answer.payload, format!("got {round}").as_bytes());
        }
        assert_eq!(conn.answer_close(), Some((1000, String::new())));
    });
    let mut ws = Client::builder()
        .read_chunk_size(READ_CHUNK)
        .buffer(BufferConfig::new())
        .connect_buffered(&server.url())
        .expect("connect");
    for round in 0..ROUNDS {
        let started = Instant::now();
        for i in 0..PER_ROUND {
            let got = ws
                .recv_timeout(PATIENCE)
                .unwrap_or_else(|e| panic!("round {round}, message {i}: {e}"));
            assert!(text(&got).starts_with(&format!("{round:02}:{i:03}:")));
        }
        // Without the wake-up the consumer would sleep out its whole
        // timeout (and find the messages then): far more than this.
        assert!(
            started.elapsed() < PATIENCE / 2,
            "round {round} reached the consumer only after {:?}",
            started.elapsed()
        );
        ws.send_text(&format!("got {round}")).unwrap();
    }
    ws.close(1000, "").expect("close");
    server.join();
}

// ----- sending ----------------------------------------------------------------

#[test]
fn senders_cloned_to_four_threads_deliver_every_message_intact() {
    const THREADS: usize = 4;
    const EACH: usize = 100;
    // Small, medium (16-bit length) and large (64-bit length, several
    // writes) frames, so that interleaved frames would be noticed.
    fn body(thread: usize, i: usize) -> String {
        let len = match i % 10 {
            0 => 70_000,
            1 | 2 => 300,
            _ => 7,
        };
        let fill = char::from(b'a' + thread as u8);
        format!("{thread} {i} {}", fill.to_string().repeat(len))
    }

    let server = echo_server();
    let mut ws = connect(&server, BufferConfig::new());
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let sender = ws.sender();
            thread::spawn(move || {
                for i in 0..EACH {
                    sender.send_text(&body(t, i)).expect("send");
                }
            })
        })
        .collect();

    let mut next = [0usize; THREADS];
    for _ in 0..THREADS * EACH {
        let got = ws.recv_timeout(PATIENCE).expect("an echo");
        let got = text(&got);
        let mut parts = got.splitn(3, ' ');
        let t: usize = parts.next().unwrap().parse().expect("a thread number");
        let i: usize = parts.next().unwrap().parse().expect("a message number");
        assert_eq!(i, next[t], "thread {t}'s messages out of order");
        assert!(got == body(t, i), "message {i} of thread {t} was damaged");
        next[t] += 1;
    }
    for worker in workers {
        worker.join().expect("a sender thread failed");
    }
    assert_eq!(next, [EACH; THREADS]);
    assert!(ws.try_recv().expect("open").is_none());
    ws.close(1000, "").expect("close");
}

// ----- how the connection ends ---------------------------------------------------

#[test]
fn after_close_recv_drains_the_buffer_then_reports_the_close_then_already_closed() {
    let server = echo_server();
    let mut ws = connect(&server, BufferConfig::new());
    let sender = ws.sender();
    for i in 0..3 {
        ws.send_text(&format!("m{i}")).unwrap();
    }
    wait_for_buffered(&ws, 3);
    ws.close(1000, "bye").expect("a clean close");
    assert!(!ws.is_open());

    for i in 0..3 {
        assert_eq!(text(&ws.recv().expect("still buffered")), format!("m{i}"));
    }
    match assert_kind(ws.recv(), "the close") {
        ErrorKind::ConnectionClosed(Some(frame)) => assert_eq!(frame.code.0, 1000),
        other => panic!("expected ConnectionClosed, got {other:?}"),
    }
    assert!(matches!(
        assert_kind(ws.recv(), "AlreadyClosed"),
        ErrorKind::AlreadyClosed
    ));
    assert!(matches!(
        assert_kind(ws.try_recv(), "AlreadyClosed"),
        ErrorKind::AlreadyClosed
    ));
    assert!(matches!(
        assert_kind(sender.send_text("late"), "AlreadyClosed"),
        ErrorKind::AlreadyClosed
    ));
    assert!(matches!(
        assert_kind(ws.close(1000, ""), "AlreadyClosed"),
        ErrorKind::AlreadyClosed
    ));
}

/// A Block buffer of `MAX` messages, full, its reader waiting for room with
/// more echoes behind it.
fn full_block_buffer(server: &Server, close_timeout: Duration) -> BufferedWebSocket {
    const MAX: usize = 4;
    let ws = Client::builder()
        .close_timeout(close_timeout)
        .buffer(
            BufferConfig::new()
                .max_messages(MAX)
                .overflow(Overflow::Block),
        )
        .connect_buffered(&server.url())
        .expect("connect");
    for i in 0..20 {
        ws.send_text(&format!("m{i}")).unwrap();
    }
    wait_for_stats(&ws, "a full buffer and a waiting reader", |s| {
        s.buffered == MAX as u64 && s.blocked > Duration::ZERO
    });
    ws
}

#[test]
fn close_with_a_full_block_buffer_completes_and_counts_what_it_dropped() {
    const CLOSE_TIMEOUT: Duration = Duration::from_secs(3);
    let server = echo_server();
    let mut ws = full_block_buffer(&server, CLOSE_TIMEOUT);
    // Without the reader giving up on room, the server's close could not
    // be read and this would end with a Timeout after CLOSE_TIMEOUT.
    ws.close(1000, "").expect("the close handshake completes");

    let stats = ws.stats();
    // The echo server sent all 20 before answering the close: 4 fit, the
    // others found the buffer full once the client was closing.
    assert_eq!(stats.received, 20, "{stats:?}");
    assert_eq!(stats.buffered, 4);
    assert_eq!(stats.dropped_newest, 16);
    assert_eq!(stats.delivered, 0);
    for i in 0..4 {
        assert_eq!(text(&ws.recv().expect("still buffered")), format!("m{i}"));
    }
    assert!(ws.recv().unwrap_err().is_closed());
}

#[test]
fn dropping_a_connection_with_a_full_block_buffer_ends_its_reader() {
    let server = echo_server();
    let ws = full_block_buffer(&server, Duration::from_secs(5));
    let buffer = ws.buffer().clone();
    let sender = ws.sender();
    drop(ws);

    // The reader stops waiting for room, reads to the end and reports it.
    let started = Instant::now();
    while !buffer.is_finished() {
        assert!(
            started.elapsed() < PATIENCE,
            "the reader is still running after the drop: {:?}",
            buffer.stats()
        );
        thread::sleep(Duration::from_millis(2));
    }
    for i in 0..4 {
        assert_eq!(
            text(&buffer.recv().expect("still buffered")),
            format!("m{i}")
        );
    }
    // The buffer hands back the front end's own error, once.
    let end = match buffer.recv().expect_err("the end of the connection") {
        RecvError::Ended(end) => end
            .downcast::<floodgate::Error>()
            .expect("the front end ends its buffer with a floodgate::Error"),
        other => panic!("expected the end of the connection, got {other:?}"),
    };
    assert!(
        matches!(end.kind(), ErrorKind::AbnormalClosure),
        "a drop ends without a close handshake: {end:?}"
    );
    assert!(matches!(
        buffer.recv().unwrap_err(),
        RecvError::AlreadyEnded
    ));
    // A sender that outlived the connection is refused.
    assert!(matches!(
        sender.send_text("late").unwrap_err().kind(),
        ErrorKind::AlreadyClosed
    ));
    let stats = buffer.stats();
    assert_eq!(
        stats.received,
        stats.delivered + stats.buffered + stats.dropped_newest,
        "{stats:?}"
    );
}

#[test]
fn a_server_close_is_reported_after_the_messages_buffered_before_it() {
    let server = Server::bind("127.0.0.1:0", |mut ws: floodgate_server::WebSocket, _| {
        for i in 0..5 {
            ws.send_text(&format!("m{i}")).unwrap();
        }
        let _ = ws.close(4000, "done");
    })
    .expect("start the server");
    let ws = connect(&server, BufferConfig::new());
    // The close handshake completes while nothing has been taken.
    let started = Instant::now();
    while !ws.buffer().is_finished() {
        assert!(
            started.elapsed() < PATIENCE,
            "the server's close never came"
        );
        thread::sleep(Duration::from_millis(2));
    }
    assert!(!ws.is_open());
    assert_eq!(ws.stats().buffered, 5);

    for i in 0..5 {
        assert_eq!(text(&ws.recv().expect("still buffered")), format!("m{i}"));
    }
    match assert_kind(ws.recv(), "the server's close") {
        ErrorKind::ConnectionClosed(Some(frame)) => {
            assert_eq!((frame.code.0, frame.reason.as_str()), (4000, "done"))
        }
        other => panic!("expected ConnectionClosed, got {other:?}"),
    }
    assert!(matches!(
        assert_kind(ws.recv(), "AlreadyClosed"),
        ErrorKind::AlreadyClosed
    ));
}

// ----- the lag alarm ----------------------------------------------------------------

#[test]
fn the_lag_callback_fires_once_per_crossing_of_the_depth_threshold() {
    const DEPTH: usize = 6;
    let events: Arc<Mutex<Vec<LagEvent>>> = Arc::default();
    let seen = events.clone();
    let server = echo_server();
    let mut ws = connect(
        &server,
        BufferConfig::new().on_lag(
            LagThreshold {
                depth: Some(DEPTH),
                wait: None,
            },
            move |e| seen.lock().unwrap().push(*e),
        ),
    );
    let wait_for_events = |n: usize| {
        let started = Instant::now();
        while events.lock().unwrap().len() < n {
            assert!(started.elapsed() < PATIENCE, "the alarm did not fire");
            thread::sleep(Duration::from_millis(1));
        }
    };

    for round in 1..=2 {
        for i in 0..10 {
            ws.send_text(&format!("r{round} m{i}")).unwrap();
        }
        wait_for_buffered(&ws, 10);
        wait_for_events(round);
        // Draining re-arms it.
        assert_eq!(ws.recv_batch(100, PATIENCE).unwrap().len(), 10);
    }
    let events = events.lock().unwrap().clone();
    assert_eq!(events.len(), 2, "once per crossing: {events:?}");
    for event in &events {
        assert_eq!(event.reason, LagReason::Depth);
        assert_eq!(event.depth, DEPTH);
        assert_eq!(event.bytes, DEPTH * "r1 m0".len());
    }
    ws.close(1000, "").expect("close");
}

#[test]
fn the_lag_callback_fires_when_a_message_waited_too_long() {
    const WAIT: Duration = Duration::from_millis(50);
    let events: Arc<Mutex<Vec<LagEvent>>> = Arc::default();
    let seen = events.clone();
    let server = echo_server();
    let mut ws = connect(
        &server,
        BufferConfig::new().on_lag(
            LagThreshold {
                depth: None,
                wait: Some(WAIT),
            },
            move |e| seen.lock().unwrap().push(*e),
        ),
    );
    ws.send_text("slow").unwrap();
    wait_for_buffered(&ws, 1);
    thread::sleep(WAIT * 2);
    ws.recv().unwrap();
    // It runs on the consumer's thread, within recv: no waiting needed.
    let events = events.lock().unwrap().clone();
    assert_eq!(events.len(), 1, "{events:?}");
    let last = events[0];
    assert_eq!(last.reason, LagReason::Wait);
    assert!(last.wait >= WAIT * 2, "{last:?}");
    ws.close(1000, "").expect("close");
}

// ----- from a plain connection ---------------------------------------------------------

#[test]
fn into_buffered_keeps_the_bytes_already_read() {
    let server = ScriptedServer::start(|mut conn| {
        // Three messages in the same write as the 101: the client reads
        // them with the response or with the first message.
        let mut early = Vec::new();
        for i in 1..=3 {
            early.extend(frame_bytes(0x81, format!("early {i}").as_bytes(), None));
        }
        conn.accept_upgrade_with(None, &early);
        assert_eq!(conn.answer_close(), Some((1000, String::new())));
    });
    let mut plain = floodgate::connect(&server.url()).expect("connect");
    assert_eq!(text(&plain.recv().expect("the first message")), "early 1");
    let mut ws = plain
        .into_buffered(&BufferConfig::new())
        .expect("into_buffered");
    for i in 2..=3 {
        let got = ws.recv_timeout(PATIENCE).expect("a message read before");
        assert_eq!(text(&got), format!("early {i}"));
    }
    ws.close(1000, "").expect("close");
    server.join();
}

// ----- configuration ----------------------------------------------------------------------

fn assert_buffer_config_error(
    result: floodgate::Result<impl std::fmt::Debug>,
    expected: impl Fn(&BufferConfigError) -> bool,
) {
    match assert_kind(result, "a configuration error") {
        ErrorKind::Config(ConfigError::Buffer(reason)) => {
            assert!(expected(&reason), "unexpected reason {reason:?}")
        }
        other => panic!("expected ErrorKind::Config(ConfigError::Buffer(..)), got {other:?}"),
    }
}

#[test]
fn invalid_buffer_configurations_are_refused_before_connecting() {
    // A message the connection accepts could never fit.
    assert_buffer_config_error(
        Client::builder()
            .max_frame_size(Some(1 << 20))
            .max_message_size(Some(1 << 20))
            .buffer(BufferConfig::new().max_bytes(1024))
            .build(),
        |e| {
            *e == BufferConfigError::MaxBytesBelowMessageSize {
                max_bytes: 1024,
                max_message_size: 1 << 20,
            }
        },
    );
    assert_buffer_config_error(
        Client::builder()
            .max_frame_size(None)
            .max_message_size(None)
            .buffer(BufferConfig::new())
            .build(),
        |e| matches!(e, BufferConfigError::NoMaxMessageSize { .. }),
    );
    assert_buffer_config_error(
        Client::builder()
            .buffer(BufferConfig::new().max_messages(0))
            .build(),
        |e| {
            matches!(
                e,
                BufferConfigError::ZeroLimit {
                    max_messages: 0,
                    ..
                }
            )
        },
    );
    let nested = Conflate::by(|_| None).otherwise(Overflow::Conflate(Conflate::by(|_| None)));
    assert_buffer_config_error(
        Client::builder()
            .buffer(BufferConfig::new().overflow(Overflow::Conflate(nested)))
            .build(),
        |e| *e == BufferConfigError::ConflateInConflate,
    );
    assert_buffer_config_error(
        Client::builder()
            .buffer(BufferConfig::new().on_lag(
                LagThreshold {
                    depth: Some(0),
                    wait: None,
                },
                |_| {},
            ))
            .build(),
        |e| *e == BufferConfigError::ZeroLagThreshold,
    );
    // A valid one passes.
    Client::builder()
        .max_frame_size(Some(1024))
        .max_message_size(Some(1024))
        .buffer(BufferConfig::new().max_bytes(1024))
        .build()
        .expect("max_bytes equal to max_message_size is enough");

    // into_buffered checks against the connection's own limit.
    let server = echo_server();
    let plain = floodgate::connect(&server.url()).expect("connect");
    assert_buffer_config_error(
        plain.into_buffered(&BufferConfig::new().max_bytes(1024)),
        |e| {
            matches!(
                e,
                BufferConfigError::MaxBytesBelowMessageSize {
                    max_bytes: 1024,
                    ..
                }
            )
        },
    );
}

// ----- a waker that is not a thread ----------------------------------------------------------

/// A waker that only records that it was woken: nothing parks, nothing
/// unparks, as with an async runtime's task.
#[derive(Default)]
struct Flag {
    woken: AtomicBool,
    count: AtomicUsize,
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.count.fetch_add(1, Ordering::SeqCst);
        self.woken.store(true, Ordering::SeqCst);
    }
}

impl Flag {
    /// Waits (by polling the flag, not by parking) until woken; clears it.
    fn wait(&self) {
        let started = Instant::now();
        while !self.woken.swap(false, Ordering::SeqCst) {
            assert!(started.elapsed() < PATIENCE, "never woken");
            thread::sleep(Duration::from_millis(1));
        }
    }
}

#[test]
fn poll_recv_wakes_a_hand_made_waker_when_a_message_arrives() {
    let server = echo_server();
    let mut ws = connect(&server, BufferConfig::new());
    let buffer = ws.buffer().clone();
    let flag = Arc::new(Flag::default());
    let waker = Waker::from(flag.clone());
    let mut cx = Context::from_waker(&waker);

    assert!(buffer.poll_recv(&mut cx).is_pending());
    assert_eq!(flag.count.load(Ordering::SeqCst), 0);
    ws.send_text("hello").unwrap();
    flag.wait();
    match buffer.poll_recv(&mut cx) {
        Poll::Ready(Ok(message)) => assert_eq!(text(&message), "hello"),
        other => panic!("expected the message, got {other:?}"),
    }

    // A batch: pending, woken, then everything that arrived.
    let mut out = Vec::new();
    assert!(buffer.poll_recv_batch(&mut cx, &mut out, 10).is_pending());
    for i in 0..3 {
        ws.send_text(&format!("b{i}")).unwrap();
    }
    // The waker registered by the pending poll is woken by the first one.
    flag.wait();
    while out.len() < 3 {
        match buffer.poll_recv_batch(&mut cx, &mut out, 10) {
            Poll::Ready(Ok(n)) => assert!(n >= 1),
            Poll::Ready(Err(e)) => panic!("{e:?}"),
            // Only a pending poll registers the waker: wait for the rest.
            Poll::Pending => flag.wait(),
        }
    }
    let got: Vec<&str> = out.iter().map(|m| text(m)).collect();
    assert_eq!(got, ["b0", "b1", "b2"]);

    // The end of the connection wakes it too.
    assert!(buffer.poll_recv(&mut cx).is_pending());
    ws.close(1000, "").expect("close");
    flag.wait();
    match buffer.poll_recv(&mut cx) {
        Poll::Ready(Err(e)) => {
            let e = floodgate::Error::from(e);
            assert!(e.is_closed(), "{e:?}");
        }
        other => panic!("expected the close, got {other:?}"),
    }
}

#[test]
fn the_control_frame_observer_sees_each_pong_with_its_payload() {
    let server = echo_server();
    let seen: Arc<Mutex<Vec<Message>>> = Arc::default();
    let observed = seen.clone();
    let mut ws = connect(
        &server,
        BufferConfig::new()
            .on_control_frame(move |frame| observed.lock().unwrap().push(frame.clone())),
    );
    ws.ping(b"first").unwrap();
    ws.ping(b"second").unwrap();
    wait_for_stats(&ws, "two pongs", |s| s.pongs_received == 2);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        [
            Message::Pong(b"first"[..].into()),
            Message::Pong(b"second"[..].into())
        ]
    );
    ws.close(1000, "").unwrap();
}

#[test]
fn the_control_frame_observer_sees_a_ping_after_it_was_answered() {
    // The server pings; the observer runs once the pong is written, so
    // the server has its pong by the time it reads the next frame.
    let server = ScriptedServer::start(|mut conn| {
        conn.accept_upgrade(None);
        conn.send_frame(true, 0x9, b"are you there", None);
        let pong = conn.read_frame();
        assert_eq!(
            (pong.opcode, &pong.payload[..]),
            (0xA, &b"are you there"[..])
        );
        conn.send_close(1000, "");
        conn.expect_close();
    });
    let seen: Arc<Mutex<Vec<Message>>> = Arc::default();
    let observed = seen.clone();
    let ws = Client::builder()
        .buffer(
            BufferConfig::new()
                .on_control_frame(move |frame| observed.lock().unwrap().push(frame.clone())),
        )
        .connect_buffered(&server.url())
        .unwrap();
    let end = ws.recv().unwrap_err();
    assert!(end.is_closed(), "{end:?}");
    assert_eq!(
        *seen.lock().unwrap(),
        [Message::Ping(b"are you there"[..].into())]
    );
    assert_eq!(ws.stats().pings_answered, 1);
    server.join();
}

#[test]
fn a_sender_shuts_the_connection_down_from_another_thread() {
    let server = echo_server();
    let ws = connect(&server, BufferConfig::new());
    ws.send_text("before").unwrap();
    wait_for_buffered(&ws, 1);
    let sender = ws.sender();
    thread::spawn(move || sender.shutdown()).join().unwrap();
    assert_eq!(
        text(&ws.recv().unwrap()),
        "before",
        "buffered messages stay readable"
    );
    let end = ws.recv_timeout(PATIENCE).unwrap_err();
    assert!(matches!(end.kind(), ErrorKind::AbnormalClosure), "{end:?}");
    assert!(!ws.is_open());
    assert!(matches!(
        ws.send_text("after").unwrap_err().kind(),
        ErrorKind::AlreadyClosed
    ));
}

#[test]
fn the_applications_classifier_and_frame_observer_may_send_on_the_same_connection() {
    // They run on the reader thread, but never under the lock that the
    // connection's senders need: sending from them must not deadlock.
    let server = Server::bind("127.0.0.1:0", echo).unwrap();
    let sender: Arc<std::sync::OnceLock<floodgate::Sender>> = Arc::default();
    let (from_classifier, from_observer) = (sender.clone(), sender.clone());
    let config = floodgate::buffer::BufferConfig::new()
        .classify(move |m| {
            if m.as_text() == Some("classify me") {
                from_classifier
                    .get()
                    .unwrap()
                    .send_text("from the classifier")
                    .unwrap();
            }
            floodgate::buffer::Class::Keep(floodgate::buffer::Priority::NORMAL)
        })
        .on_data_frame(move |f| {
            if &f.payload[..] == b"observe me" {
                from_observer
                    .get()
                    .unwrap()
                    .send_text("from the observer")
                    .unwrap();
            }
        });
    let ws = Client::builder()
        .buffer(config)
        .connect_buffered(&server.url())
        .unwrap();
    sender.set(ws.sender()).unwrap();
    ws.send_text("classify me").unwrap();
    ws.send_text("observe me").unwrap();
    let mut got = Vec::new();
    while got.len() < 4 {
        let m = ws
            .recv_timeout(Duration::from_secs(5))
            .expect("no deadlock");
        got.push(m.as_text().unwrap().to_owned());
    }
    for expected in ["from the classifier", "from the observer"] {
        assert!(got.iter().any(|g| g == expected), "{got:?}");
    }
}
