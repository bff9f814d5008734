//! The close handshake over loopback (RFC 6455 §7): the client closing,
//! the server closing, a server that never answers, one that just drops
//! TCP, and close calls that must be refused without sending anything.

mod support;

use floodgate::{Client, CloseFrame, ErrorKind, Message, State, UsageError};
use std::time::{Duration, Instant};
use support::ScriptedServer;

fn assert_already_closed(result: floodgate::Result<Message>) {
    match result {
        Err(e) if matches!(e.kind(), ErrorKind::AlreadyClosed) => assert!(e.is_closed()),
        other => panic!("expected AlreadyClosed, got {other:?}"),
    }
}

#[test]
fn a_client_close_sends_code_and_reason_and_returns_once_the_server_answers() {
    let server = ScriptedServer::start(|mut conn| {
        conn.accept_upgrade(None);
        assert_eq!(conn.answer_close(), Some((1000, "bye".to_owned())));
    });
    let mut ws = floodgate::connect(&server.url()).expect("connect");
    assert_eq!(ws.state(), State::Open);
    let started = Instant::now();
    ws.close(1000, "bye").expect("a clean close");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "close took {:?}: it should end when the server ends TCP",
        started.elapsed()
    );
    assert_eq!(ws.state(), State::Closed);
    assert!(!ws.is_open());
    assert_eq!(
        ws.protocol().close_received(),
        Some(&Some(CloseFrame::new(1000, "")))
    );
    server.join();
    assert_already_closed(ws.recv());
    assert!(matches!(
        ws.send_text("late").unwrap_err().kind(),
        ErrorKind::AlreadyClosed
    ));
}

#[test]
fn a_close_message_passed_to_send_runs_the_close_handshake() {
    let server = ScriptedServer::start(|mut conn| {
        conn.accept_upgrade(None);
        assert_eq!(conn.answer_close(), Some((4000, "via send".to_owned())));
    });
    let mut ws = floodgate::connect(&server.url()).expect("connect");
    ws.send(Message::Close(Some(CloseFrame::new(4000, "via send"))))
        .expect("a clean close");
    assert_eq!(ws.state(), State::Closed);
    server.join();
}

#[test]
fn messages_arriving_while_the_client_closes_are_skipped() {
    let server = ScriptedServer::start(|mut conn| {
        conn.accept_upgrade(None);
        assert_eq!(conn.expect_close(), Some((1000, String::new())));
        // Sent before the server saw the close, in a real race.
        conn.send_text("late 1");
        conn.send_frame(true, 0x2, &[9; 70_000], None);
        conn.send_close(1000, "");
        conn.shutdown_write();
        assert!(conn.read_to_eof().is_empty());
    });
    let mut ws = floodgate::connect(&server.url()).expect("connect");
    ws.close(1000, "")
        .expect("a clean close despite the late messages");
    assert_eq!(ws.state(), State::Closed);
    server.join();
}

#[test]
fn a_server_close_is_answered_and_returned_as_connection_closed() {
    let server = ScriptedServer::start(|mut conn| {
        conn.accept_upgrade(None);
        conn.send_close(4001, "going");
        assert_eq!(
            conn.expect_close(),
            Some((4001, String::new())),
            "the client echoes the code"
        );
        conn.shutdown_write();
        assert!(conn.read_to_eof().is_empty());
    });
    let mut ws = floodgate::connect(&server.url()).expect("connect");
    let err = ws.recv().expect_err("the server closed");
    assert!(err.is_closed());
    match err.kind() {
        ErrorKind::ConnectionClosed(Some(frame)) => {
            assert_eq!(frame, &CloseFrame::new(4001, "going"))
        }
        other => panic!("expected ConnectionClosed(4001), got {other:?}"),
    }
    assert_eq!(err.close_frame(), Some(&CloseFrame::new(4001, "going")));
    assert_eq!(ws.state(), State::Closed);
    server.join();
    assert_already_closed(ws.recv());
    assert!(matches!(
        ws.close(1000, "").unwrap_err().kind(),
        ErrorKind::AlreadyClosed
    ));
}

#[test]
fn with_control_frames_returned_a_server_close_is_a_close_message() {
    let server = ScriptedServer::start(|mut conn| {
        conn.accept_upgrade(None);
        conn.send_close(4001, "going");
        assert_eq!(conn.expect_close(), Some((4001, String::new())));
        conn.shutdown_write();
        conn.read_to_eof();
    });
    let mut ws = Client::builder()
        .return_control_frames(true)
        .connect(&server.url())
        .expect("connect");
    assert_eq!(
        ws.recv().expect("the close as a message"),
        Message::Close(Some(CloseFrame::new(4001, "going")))
    );
    assert_eq!(ws.state(), State::Closed);
    server.join();
    assert_already_closed(ws.recv());
}

#[test]
fn a_server_that_never_answers_the_close_makes_close_time_out() {
    let server = ScriptedServer::start(|mut conn| {
        conn.accept_upgrade(None);
        assert_eq!(conn.expect_close(), Some((1000, "anyone?".to_owned())));
        // No answer; the client must give up and end TCP itself.
        assert!(conn.read_to_eof().is_empty());
    });
    let mut ws = Client::builder()
        .close_timeout(Duration::from_millis(300))
        .connect(&server.url())
        .expect("connect");
    let started = Instant::now();
    let err = ws
        .close(1000, "anyone?")
        .expect_err("no answer must be an error");
    let elapsed = started.elapsed();
    assert!(err.is_timeout(), "{err:?}");
    assert!(
        elapsed >= Duration::from_millis(250),
        "gave up early, after {elapsed:?}"
    );
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
    assert!(!ws.is_open());
    assert_eq!(ws.state(), State::Closed);
    server.join();
}

#[test]
fn a_server_that_drops_tcp_without_a_close_is_an_abnormal_closure() {
    let server = ScriptedServer::start(|mut conn| {
        conn.accept_upgrade(None);
        conn.send_text("last words");
        // The connection is dropped here, with no close frame.
    });
    let mut ws = floodgate::connect(&server.url()).expect("connect");
    assert_eq!(
        ws.recv().expect("the message before the drop"),
        Message::text("last words")
    );
    let err = ws.recv().expect_err("the server is gone");
    assert!(matches!(err.kind(), ErrorKind::AbnormalClosure), "{err:?}");
    assert!(!err.is_closed(), "an abnormal closure is not a clean close");
    assert_eq!(ws.state(), State::Closed);
    server.join();
    assert_already_closed(ws.recv());
}

#[test]
fn an_unsendable_close_is_refused_without_sending_anything() {
    let server = ScriptedServer::start(|mut conn| {
        conn.accept_upgrade(None);
        // The refused closes sent nothing: the next frame is the text.
        let frame = conn.read_frame();
        assert_eq!(
            (frame.opcode, frame.payload.as_slice()),
            (0x1, &b"still open"[..])
        );
        conn.send_text("still open");
        assert_eq!(conn.answer_close(), Some((1000, String::new())));
    });
    let mut ws = floodgate::connect(&server.url()).expect("connect");
    for code in [1005u16, 1006, 1015] {
        let err = ws.close(code, "").expect_err("a reserved code");
        assert!(
            matches!(err.kind(), ErrorKind::Usage(UsageError::UnsendableCloseCode(c)) if *c == code),
            "{code}: {err:?}"
        );
    }
    let err = ws
        .close(1000, &"x".repeat(124))
        .expect_err("a reason over 123 bytes");
    assert!(
        matches!(
            err.kind(),
            ErrorKind::Usage(UsageError::CloseReasonTooLong(124))
        ),
        "{err:?}"
    );
    assert!(ws.is_open());
    assert_eq!(ws.state(), State::Open);
    ws.send_text("still open")
        .expect("the connection is still usable");
    assert_eq!(ws.recv().expect("echo"), Message::text("still open"));
    ws.close(1000, "").expect("a clean close");
    server.join();
}

#[test]
fn the_messages_iterator_ends_on_a_clean_close() {
    let server = ScriptedServer::start(|mut conn| {
        conn.accept_upgrade(None);
        conn.send_text("a");
        conn.send_text("b");
        conn.send_close(1000, "done");
        assert_eq!(conn.expect_close(), Some((1000, String::new())));
        conn.shutdown_write();
        conn.read_to_eof();
    });
    let mut ws = floodgate::connect(&server.url()).expect("connect");
    let mut messages = ws.messages();
    let got: Vec<Message> = messages.by_ref().map(|m| m.expect("no error")).collect();
    assert_eq!(got, [Message::text("a"), Message::text("b")]);
    assert!(messages.next().is_none(), "the iterator stays ended");
    assert_eq!(ws.state(), State::Closed);
    server.join();
}

#[test]
fn the_messages_iterator_yields_the_error_of_an_abnormal_closure_once() {
    let server = ScriptedServer::start(|mut conn| {
        conn.accept_upgrade(None);
        conn.send_text("a");
    });
    let mut ws = floodgate::connect(&server.url()).expect("connect");
    let mut messages = ws.messages();
    assert_eq!(
        messages.next().expect("a message").expect("no error"),
        Message::text("a")
    );
    let err = messages
        .next()
        .expect("the error")
        .expect_err("an abnormal closure");
    assert!(matches!(err.kind(), ErrorKind::AbnormalClosure), "{err:?}");
    assert!(
        messages.next().is_none(),
        "the error is yielded once, then the iterator ends"
    );
    server.join();
}
