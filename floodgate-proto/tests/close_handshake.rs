//! The close handshake (RFC 6455 §5.5.1, §7): who closes, what is echoed,
//! what can still be sent and read, and skipping to the peer's close.

mod support;

use floodgate_proto::bytes::BytesMut;
use floodgate_proto::{CloseFrame, Message, OpCode, ProtocolError, State, UsageError};
use support::*;

#[test]
fn a_client_initiated_close_goes_open_closing_closed() {
    let mut c = client();
    assert_eq!(c.state(), State::Open);
    c.send_close(Some(&CloseFrame::new(1000, "bye"))).unwrap();
    assert_eq!(c.state(), State::Closing);
    assert!(c.close_sent());
    assert_eq!(c.close_received(), None);
    let sent = client_output(&c);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].close(), Some(CloseFrame::new(1000, "bye")));
    c.consume_output(c.output().len());

    let mut buf = concat(&[server_close(1000, b"")]);
    assert_eq!(
        c.read_message(&mut buf),
        Ok(Some(Message::Close(Some(CloseFrame::new(1000, "")))))
    );
    assert_eq!(c.state(), State::Closed);
    assert_eq!(c.close_received(), Some(&Some(CloseFrame::new(1000, ""))));
    // Our close was already sent: the server's is not answered again.
    assert!(!c.has_output());
}

#[test]
fn a_server_initiated_close_is_echoed_and_ends_closed() {
    let mut c = client();
    let mut buf = concat(&[server_close(1001, "going away – bye".as_bytes())]);
    assert_eq!(c.state(), State::Open);
    assert_eq!(
        c.read_message(&mut buf),
        Ok(Some(Message::Close(Some(CloseFrame::new(
            1001,
            "going away – bye"
        )))))
    );
    // The reply is queued at once, so nothing is awaited any more.
    assert!(c.close_sent());
    assert_eq!(c.state(), State::Closed);
    let sent = client_output(&c);
    assert_eq!(sent.len(), 1);
    assert!(sent[0].fin);
    assert_eq!(sent[0].close(), Some(CloseFrame::new(1001, "")));
}

#[test]
fn a_server_close_in_the_closing_state_completes_the_handshake() {
    // Open -> Closing (we sent) -> Closed (theirs arrives), while data still
    // arrives between the two closes and is delivered.
    let mut c = client();
    c.send_close(None).unwrap();
    assert_eq!(c.state(), State::Closing);
    let mut buf = concat(&[
        server_frame(true, OpCode::Text, b"in flight"),
        server_close(1000, b""),
    ]);
    assert_eq!(
        c.read_message(&mut buf),
        Ok(Some(Message::text("in flight")))
    );
    assert_eq!(c.state(), State::Closing);
    assert!(matches!(
        c.read_message(&mut buf),
        Ok(Some(Message::Close(Some(_))))
    ));
    assert_eq!(c.state(), State::Closed);
}

#[test]
fn a_close_without_code_is_answered_by_a_close_without_code() {
    let mut c = client();
    let mut buf = concat(&[server_frame(true, OpCode::Close, b"")]);
    assert_eq!(c.read_message(&mut buf), Ok(Some(Message::Close(None))));
    assert_eq!(c.close_received(), Some(&None));
    let sent = client_output(&c);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].opcode, OpCode::Close);
    assert!(sent[0].payload.is_empty());
    assert_eq!(c.state(), State::Closed);
}

#[test]
fn send_close_without_code_sends_an_empty_close() {
    let mut c = client();
    c.send(&Message::Close(None)).unwrap();
    let sent = client_output(&c);
    assert_eq!((sent[0].opcode, sent[0].payload.len()), (OpCode::Close, 0));
}

#[test]
fn nothing_can_be_sent_after_this_side_closed() {
    let mut c = client();
    c.send_close(Some(&CloseFrame::new(1000, ""))).unwrap();
    let before = c.output().to_vec();
    assert_eq!(c.send_text("late"), Err(UsageError::Closed));
    assert_eq!(c.send_binary(b"late"), Err(UsageError::Closed));
    assert_eq!(c.send_ping(b""), Err(UsageError::Closed));
    assert_eq!(c.send_pong(b""), Err(UsageError::Closed));
    assert_eq!(
        c.send_frame(OpCode::Binary, b"x", true),
        Err(UsageError::Closed)
    );
    assert_eq!(c.send(&Message::text("late")), Err(UsageError::Closed));
    assert_eq!(c.send_close(None), Err(UsageError::Closed));
    assert_eq!(c.output(), &before[..]);
}

#[test]
fn nothing_can_be_sent_after_answering_the_servers_close() {
    let mut c = client();
    let mut buf = concat(&[server_close(1000, b"")]);
    c.read_message(&mut buf).unwrap();
    let before = c.output().to_vec();
    assert_eq!(c.send_text("late"), Err(UsageError::Closed));
    assert_eq!(
        c.send_close(Some(&CloseFrame::new(1000, ""))),
        Err(UsageError::Closed)
    );
    assert_eq!(c.output(), &before[..]);
}

#[test]
fn nothing_can_be_sent_after_a_protocol_error() {
    let mut c = client();
    let mut buf = concat(&[raw_frame(0x83, b"")]);
    assert!(c.read_message(&mut buf).is_err());
    assert_eq!(c.send_text("late"), Err(UsageError::Closed));
    assert_eq!(client_output(&c).len(), 1);
}

#[test]
fn an_unsendable_close_code_is_refused_and_nothing_is_queued() {
    let mut c = client();
    for code in [1005u16, 1006, 1015, 999, 5000] {
        assert_eq!(
            c.send_close(Some(&CloseFrame::new(code, ""))),
            Err(UsageError::UnsendableCloseCode(code))
        );
    }
    assert_eq!(
        c.send_close(Some(&CloseFrame::new(1000, "x".repeat(124)))),
        Err(UsageError::CloseReasonTooLong(124))
    );
    assert!(!c.has_output());
    assert_eq!(c.state(), State::Open);
    c.send_text("still open").unwrap();
}

#[test]
fn pings_after_this_side_closed_are_not_answered() {
    let mut c = client();
    c.send_close(None).unwrap();
    c.consume_output(c.output().len());
    let mut buf = concat(&[server_frame(true, OpCode::Ping, b"anyone?")]);
    assert_eq!(
        c.read_message(&mut buf),
        Ok(Some(Message::Ping("anyone?".into())))
    );
    assert!(!c.has_output());
}

#[test]
fn pings_before_close_are_answered_and_pongs_precede_the_close() {
    let mut c = client();
    let mut buf = concat(&[
        server_frame(true, OpCode::Ping, b"1"),
        server_close(1000, b""),
    ]);
    c.read_message(&mut buf).unwrap();
    c.read_message(&mut buf).unwrap();
    let ops: Vec<OpCode> = client_output(&c).iter().map(|f| f.opcode).collect();
    assert_eq!(ops, vec![OpCode::Pong, OpCode::Close]);
}

#[test]
fn after_the_servers_close_nothing_more_is_read() {
    let mut c = client();
    let mut buf = concat(&[
        server_close(1000, b""),
        server_frame(true, OpCode::Text, b"after close"),
        server_frame(true, OpCode::Ping, b""),
        raw_frame(0x83, b""), // even a broken frame is not looked at
    ]);
    assert!(matches!(
        c.read_message(&mut buf),
        Ok(Some(Message::Close(_)))
    ));
    let output_len = c.output().len();
    for _ in 0..2 {
        assert_eq!(c.read_message(&mut buf), Ok(None));
        assert_eq!(c.read_frame(&mut buf), Ok(None));
    }
    assert_eq!(c.output().len(), output_len);
    assert!(c.failure().is_none());
}

#[test]
fn discard_until_close_skips_data_frames_and_stops_at_the_close() {
    let mut c = client();
    c.send_close(Some(&CloseFrame::new(1000, ""))).unwrap();
    let mut buf = concat(&[
        server_frame(true, OpCode::Text, b"skipped"),
        server_frame(false, OpCode::Binary, &[1; 300]),
        server_frame(
            true,
            OpCode::Continuation,
            b"\xff not even utf-8 is checked",
        ),
        server_frame(true, OpCode::Ping, b"skipped too"),
        server_close(1000, b"bye"),
        server_frame(true, OpCode::Text, b"left alone"),
    ]);
    let output_len = c.output().len();
    assert_eq!(c.discard_until_close(&mut buf), Ok(true));
    assert_eq!(
        c.close_received(),
        Some(&Some(CloseFrame::new(1000, "bye")))
    );
    assert_eq!(c.state(), State::Closed);
    // The ping on the way was not answered; what follows the close is untouched.
    assert_eq!(c.output().len(), output_len);
    assert_eq!(
        &buf[..],
        &server_frame(true, OpCode::Text, b"left alone")[..]
    );
}

#[test]
fn discard_until_close_never_buffers_a_large_frame_arriving_in_pieces() {
    let mut c = client();
    let big = vec![0x5A; 1 << 20];
    let mut stream = server_frame(true, OpCode::Binary, &big);
    stream.extend_from_slice(&server_close(1000, b""));
    let close_len = server_close(1000, b"").len();
    let data_len = stream.len() - close_len;

    let mut buf = BytesMut::new();
    let mut fed = 0;
    for (i, piece) in stream[..data_len].chunks(4096 + 3).enumerate() {
        buf.extend_from_slice(piece);
        fed += piece.len();
        if i == 0 {
            // The reader saw the header of the big frame, then the
            // application decided to close.
            assert_eq!(c.read_message(&mut buf), Ok(None));
            assert_eq!(c.bytes_needed(), data_len);
            c.send_close(None).unwrap();
        }
        assert_eq!(
            c.discard_until_close(&mut buf),
            Ok(false),
            "after {fed} bytes"
        );
        // Every byte of the data frame is dropped as it arrives.
        assert!(buf.is_empty(), "{} bytes kept after {fed} fed", buf.len());
        // And a reader that trusts the hint never waits for bytes that
        // will not come.
        assert!(
            c.bytes_needed() <= stream.len() - fed,
            "asks for {}",
            c.bytes_needed()
        );
    }
    // The close arrives in two pieces.
    buf.extend_from_slice(&stream[data_len..data_len + 3]);
    assert_eq!(c.discard_until_close(&mut buf), Ok(false));
    assert!(c.bytes_needed() <= buf.len() + (close_len - 3));
    buf.extend_from_slice(&stream[data_len + 3..]);
    assert_eq!(c.discard_until_close(&mut buf), Ok(true));
    assert_eq!(c.close_received(), Some(&Some(CloseFrame::new(1000, ""))));
    assert!(buf.is_empty());
}

#[test]
fn discard_until_close_accepts_a_malformed_close_as_the_end() {
    let mut c = client();
    c.send_close(None).unwrap();
    let mut buf = concat(&[server_frame(true, OpCode::Close, &[0x03])]);
    assert_eq!(c.discard_until_close(&mut buf), Ok(true));
    assert_eq!(c.close_received(), Some(&None));
    assert_eq!(c.state(), State::Closed);
}

#[test]
fn discard_until_close_refuses_headers_it_cannot_skip() {
    let mut c = client();
    c.send_close(None).unwrap();
    let mut buf = concat(&[raw_frame(0x8B, b"")]);
    assert_eq!(
        c.discard_until_close(&mut buf),
        Err(ProtocolError::ReservedOpcode(0xB))
    );
    assert_eq!(c.close_received(), None);
}

#[test]
fn discard_until_close_works_after_a_protocol_error() {
    let mut c = client();
    let mut buf = concat(&[
        server_frame(true, OpCode::Text, b"\xc0"),
        server_frame(
            true,
            OpCode::Text,
            b"queued before the server saw our close",
        ),
        server_close(1007, b""),
    ]);
    assert_eq!(c.read_message(&mut buf), Err(ProtocolError::InvalidUtf8));
    assert_eq!(c.state(), State::Closing);
    assert_eq!(c.discard_until_close(&mut buf), Ok(true));
    assert_eq!(c.state(), State::Closed);
    assert_eq!(c.close_received(), Some(&Some(CloseFrame::new(1007, ""))));
}

#[test]
fn discard_until_close_returns_at_once_when_the_close_already_arrived() {
    let mut c = client();
    let mut buf = concat(&[server_close(1000, b"")]);
    c.read_message(&mut buf).unwrap();
    let mut more = concat(&[server_frame(true, OpCode::Text, b"x")]);
    assert_eq!(c.discard_until_close(&mut more), Ok(true));
    assert_eq!(more.len(), 3);
}

#[test]
fn receive_eof_closes_an_open_connection() {
    let mut c = client();
    c.receive_eof();
    assert_eq!(c.state(), State::Closed);
    assert_eq!(c.close_received(), None);
    assert!(!c.close_sent());
}

#[test]
fn receive_eof_closes_a_closing_connection() {
    let mut c = client();
    c.send_close(None).unwrap();
    assert_eq!(c.state(), State::Closing);
    c.receive_eof();
    assert_eq!(c.state(), State::Closed);
}
