//! The connection's lifecycle and timers, with a virtual clock and a
//! client and a server connected in memory: every deadline, pong matching
//! by payload, close from either side, failure, and end of transport in
//! each state. No sockets, no sleeps: each instant is chosen.

use bytes::{Bytes, BytesMut};
use floodgate_proto::connection::{Connection, End, Side, Timeouts};
use floodgate_proto::{CloseCode, CloseFrame, Config, Message, ProtocolError, Role, State};
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

const MS: Duration = Duration::from_millis(1);
const S: Duration = Duration::from_secs(1);

fn client(t0: Instant, timeouts: Timeouts) -> Connection {
    Connection::new(Role::Client, Config::default(), timeouts, t0)
}

/// A ping every second, each awaited for half a second.
fn pings_every_second() -> Timeouts {
    Timeouts::default()
        .ping_interval(Some(S))
        .ping_timeout(Some(S / 2))
}

fn server(t0: Instant) -> Connection {
    Connection::new(Role::Server, Config::default(), Timeouts::default(), t0)
}

/// Moves everything `from` queued to `to`, read at `now`; the messages
/// `to` decoded.
fn pump(from: &mut Connection, to: &mut Connection, now: Instant) -> Vec<Message> {
    let mut wire = BytesMut::new();
    let mut out = Vec::new();
    from.take_output(&mut out);
    wire.extend_from_slice(&out);
    read_all(to, &mut wire, now).expect("a valid stream")
}

fn read_all(
    to: &mut Connection,
    wire: &mut BytesMut,
    now: Instant,
) -> Result<Vec<Message>, ProtocolError> {
    let mut got = Vec::new();
    to.read(wire, now, |m| {
        got.push(m);
        ControlFlow::<()>::Continue(())
    })?;
    Ok(got)
}

fn close_code_of(output: &[u8]) -> u16 {
    // A client's close frame: 0x88, masked length, 4-byte key, payload.
    assert_eq!(output[0], 0x88, "a close frame");
    let key = &output[2..6];
    u16::from_be_bytes([output[6] ^ key[0], output[7] ^ key[1]])
}

// ----- keepalive -------------------------------------------------------------

#[test]
fn pings_go_out_on_the_interval_and_poll_timeout_says_when() {
    let t0 = Instant::now();
    let mut c = client(t0, Timeouts::default().ping_interval(Some(S)));
    let mut s = server(t0);
    assert_eq!(c.poll_timeout(), Some(t0 + S));
    c.handle_timeout(t0 + S / 2);
    assert!(!c.has_output(), "not due yet");
    c.handle_timeout(t0 + S);
    let got = pump(&mut c, &mut s, t0 + S);
    assert!(matches!(&got[..], [Message::Ping(_)]), "{got:?}");
    assert_eq!(c.poll_timeout(), Some(t0 + 2 * S));
}

#[test]
fn the_answered_ping_keeps_the_connection_and_its_pong_is_matched_by_payload() {
    let t0 = Instant::now();
    let mut c = client(t0, pings_every_second());
    let mut s = server(t0);
    for i in 1..=5 {
        let now = t0 + i * S;
        c.handle_timeout(now);
        pump(&mut c, &mut s, now); // the server answers with a pong
        let got = pump(&mut s, &mut c, now + 10 * MS);
        assert!(matches!(&got[..], [Message::Pong(_)]));
        c.handle_timeout(now + 900 * MS);
        assert_eq!(c.end(), None, "ping {i} was answered");
    }
}

#[test]
fn no_pong_ends_the_connection_at_the_ping_timeout() {
    let t0 = Instant::now();
    let mut c = client(t0, pings_every_second());
    c.handle_timeout(t0 + S);
    assert_eq!(c.poll_timeout(), Some(t0 + S + S / 2));
    c.handle_timeout(t0 + S + S / 2 - MS);
    assert_eq!(c.end(), None);
    c.handle_timeout(t0 + S + S / 2);
    assert_eq!(c.end(), Some(&End::NoPong { timeout: S / 2 }));
    assert!(c.is_finished());
    assert_eq!(c.poll_timeout(), None);
}

#[test]
fn a_pong_with_another_payload_does_not_answer_the_keepalive_ping() {
    let t0 = Instant::now();
    let mut c = client(t0, pings_every_second());
    let mut s = server(t0);
    c.handle_timeout(t0 + S);
    // An unsolicited heartbeat pong, empty, instead of the answer.
    s.send_pong(b"").unwrap();
    let got = pump(&mut s, &mut c, t0 + S + 10 * MS);
    assert_eq!(got, [Message::Pong(Bytes::new())]);
    c.handle_timeout(t0 + S + S / 2);
    assert_eq!(c.end(), Some(&End::NoPong { timeout: S / 2 }));
}

#[test]
fn with_a_fixed_payload_any_pong_carrying_it_answers() {
    let t0 = Instant::now();
    let timeouts = Timeouts::default()
        .ping_interval(Some(S))
        .ping_timeout(Some(S / 2))
        .ping_payload(Some(Bytes::from_static(b"hb")));
    let mut c = client(t0, timeouts);
    let mut s = server(t0);
    c.handle_timeout(t0 + S);
    let got = pump(&mut c, &mut s, t0 + S);
    assert_eq!(got, [Message::Ping(Bytes::from_static(b"hb"))]);
    s.send_pong(b"hb").unwrap();
    pump(&mut s, &mut c, t0 + S + MS);
    c.handle_timeout(t0 + S + S / 2);
    assert_eq!(c.end(), None);
}

#[test]
fn paused_reading_stops_the_pong_clock_and_resuming_moves_the_deadline() {
    let t0 = Instant::now();
    let timeouts = Timeouts::default()
        .ping_interval(Some(10 * S))
        .ping_timeout(Some(S));
    let mut c = client(t0, timeouts);
    c.handle_timeout(t0 + 10 * S); // ping out, pong due at 11 s
    c.pause_reading(t0 + 10 * S + S / 2);
    assert_eq!(c.poll_timeout(), Some(t0 + 20 * S), "only the next ping");
    c.handle_timeout(t0 + 15 * S);
    assert_eq!(c.end(), None, "the consumer's pause is not a dead peer");
    c.resume_reading(t0 + 15 * S + S / 2); // paused 5 s
    assert_eq!(c.poll_timeout(), Some(t0 + 16 * S));
    c.handle_timeout(t0 + 16 * S);
    assert_eq!(c.end(), Some(&End::NoPong { timeout: S }));
}

#[test]
fn idle_ends_a_connection_that_received_nothing() {
    let t0 = Instant::now();
    let mut c = client(t0, Timeouts::default().idle(Some(S)));
    let mut s = server(t0);
    s.send_text("still here").unwrap();
    pump(&mut s, &mut c, t0 + S / 2);
    c.handle_timeout(t0 + S);
    assert_eq!(c.end(), None, "a message arrived at 0.5 s");
    assert_eq!(c.poll_timeout(), Some(t0 + S + S / 2));
    c.handle_timeout(t0 + S + S / 2);
    assert_eq!(c.end(), Some(&End::Idle { timeout: S }));
    assert!(c.is_finished());
}

#[test]
fn a_write_that_does_not_finish_in_time_ends_the_connection() {
    let t0 = Instant::now();
    let mut c = client(t0, Timeouts::default().send(Some(2 * S)));
    c.send_text("x").unwrap();
    c.write_started(t0);
    c.handle_timeout(t0 + S);
    c.write_finished();
    assert_eq!(c.poll_timeout(), None, "no write in progress, no deadline");
    c.write_started(t0 + 3 * S);
    assert_eq!(c.poll_timeout(), Some(t0 + 5 * S));
    c.handle_timeout(t0 + 5 * S);
    assert_eq!(c.end(), Some(&End::SendStalled { timeout: 2 * S }));
    assert!(c.is_finished());
}

#[test]
fn a_stalled_write_ends_a_closing_connection_too() {
    let t0 = Instant::now();
    let mut c = client(t0, Timeouts::default().send(Some(S)).close(10 * S));
    c.close(Some(&CloseFrame::new(CloseCode::NORMAL, "")), t0)
        .unwrap();
    c.write_started(t0);
    assert_eq!(c.poll_timeout(), Some(t0 + S));
    c.handle_timeout(t0 + S);
    assert_eq!(c.end(), Some(&End::SendStalled { timeout: S }));
}

// ----- closing -----------------------------------------------------------------

#[test]
fn a_close_from_the_client_completes_and_the_client_waits_for_the_servers_eof() {
    let t0 = Instant::now();
    let mut c = client(t0, Timeouts::default().close(5 * S));
    let mut s = server(t0);
    c.close(Some(&CloseFrame::new(CloseCode::NORMAL, "bye")), t0)
        .unwrap();
    assert!(c.send_text("late").is_err(), "nothing after the close");
    assert_eq!(c.poll_timeout(), Some(t0 + 5 * S));
    let got = pump(&mut c, &mut s, t0 + MS);
    assert_eq!(
        got,
        [Message::Close(Some(CloseFrame::new(
            CloseCode::NORMAL,
            "bye"
        )))]
    );
    assert_eq!(
        s.end(),
        Some(&End::Closed {
            frame: Some(CloseFrame::new(CloseCode::NORMAL, "bye")),
            initiated_by: Side::Peer
        })
    );
    assert!(
        s.is_finished(),
        "a server ends the transport after the handshake"
    );
    pump(&mut s, &mut c, t0 + 2 * MS);
    assert_eq!(
        c.end(),
        Some(&End::Closed {
            frame: Some(CloseFrame::new(CloseCode::NORMAL, "")),
            initiated_by: Side::Local
        })
    );
    assert!(!c.is_finished(), "the client waits for the server's EOF");
    assert!(c.is_discarding());
    assert_eq!(
        c.poll_timeout(),
        Some(t0 + 5 * S),
        "within the same close deadline"
    );
    c.receive_eof(t0 + 3 * MS);
    assert!(c.is_finished());
    assert!(
        c.end().unwrap().is_clean(),
        "EOF after the handshake is clean"
    );
}

#[test]
fn a_client_that_never_sees_the_servers_eof_drops_the_transport_at_the_close_deadline() {
    let t0 = Instant::now();
    let mut c = client(t0, Timeouts::default().close(S));
    let mut s = server(t0);
    s.close(Some(&CloseFrame::new(CloseCode::GOING_AWAY, "")), t0)
        .unwrap();
    let got = pump(&mut s, &mut c, t0);
    assert_eq!(
        got,
        [Message::Close(Some(CloseFrame::new(
            CloseCode::GOING_AWAY,
            ""
        )))]
    );
    assert!(c.has_output(), "the close was echoed");
    assert_eq!(
        c.end(),
        Some(&End::Closed {
            frame: Some(CloseFrame::new(CloseCode::GOING_AWAY, "")),
            initiated_by: Side::Peer
        })
    );
    assert_eq!(c.poll_timeout(), Some(t0 + S));
    c.handle_timeout(t0 + S);
    assert!(c.is_finished());
    assert!(c.end().unwrap().is_clean());
}

#[test]
fn an_unanswered_close_times_out() {
    let t0 = Instant::now();
    let mut c = client(t0, Timeouts::default().close(2 * S));
    c.close(None, t0).unwrap();
    c.handle_timeout(t0 + S);
    assert_eq!(c.end(), None);
    c.handle_timeout(t0 + 2 * S);
    assert_eq!(c.end(), Some(&End::CloseTimeout { timeout: 2 * S }));
    assert!(c.is_finished());
}

#[test]
fn messages_sent_before_the_peers_close_still_arrive_while_closing() {
    let t0 = Instant::now();
    let mut c = client(t0, Timeouts::default());
    let mut s = server(t0);
    s.send_text("in flight").unwrap();
    c.close(None, t0).unwrap();
    let got = pump(&mut s, &mut c, t0);
    assert_eq!(got, [Message::text("in flight")]);
    assert_eq!(c.state(), State::Closing);
}

#[test]
fn a_second_close_is_refused() {
    let t0 = Instant::now();
    let mut c = client(t0, Timeouts::default());
    c.close(None, t0).unwrap();
    assert!(c.close(None, t0).is_err());
}

// ----- failing -------------------------------------------------------------------

#[test]
fn a_protocol_error_is_known_at_once_and_the_close_goes_out_with_its_code() {
    let t0 = Instant::now();
    let mut c = client(t0, Timeouts::default().fail_grace(50 * MS));
    // A masked frame from a server.
    let mut wire = BytesMut::from(&b"\x81\x82abcd\x09\x0b"[..]);
    let err = read_all(&mut c, &mut wire, t0).unwrap_err();
    assert_eq!(err, ProtocolError::MaskedFrameFromServer);
    assert_eq!(
        c.end(),
        Some(&End::Failed(ProtocolError::MaskedFrameFromServer))
    );
    assert_eq!(close_code_of(c.output()), 1002);
    assert!(c.is_discarding());
    assert!(!c.is_finished(), "the peer gets the grace to answer");
    assert_eq!(c.poll_timeout(), Some(t0 + 50 * MS));
    c.handle_timeout(t0 + 50 * MS);
    assert!(c.is_finished());
    assert_eq!(
        c.end(),
        Some(&End::Failed(ProtocolError::MaskedFrameFromServer))
    );
}

#[test]
fn a_failed_client_whose_server_answers_waits_only_for_its_eof() {
    let t0 = Instant::now();
    let mut c = client(t0, Timeouts::default());
    let mut s = server(t0);
    let mut wire = BytesMut::from(&b"\xff\x00"[..]); // reserved bits and opcode
    assert!(read_all(&mut c, &mut wire, t0).is_err());
    let got = pump(&mut c, &mut s, t0 + MS);
    assert!(matches!(&got[..], [Message::Close(Some(f))] if f.code == CloseCode::PROTOCOL_ERROR));
    // Data the server sent before seeing our close is skipped, then its close.
    let mut wire = BytesMut::from(&b"\x81\x05hello\x88\x02\x03\xea"[..]);
    assert_eq!(read_all(&mut c, &mut wire, t0 + 2 * MS).unwrap(), []);
    assert!(!c.is_finished());
    c.receive_eof(t0 + 3 * MS);
    assert!(c.is_finished());
    assert!(matches!(c.end(), Some(End::Failed(_))), "still a failure");
}

#[test]
fn abort_sends_the_given_close_and_ends_as_aborted() {
    let t0 = Instant::now();
    let mut c = client(t0, Timeouts::default().fail_grace(10 * MS));
    let frame = CloseFrame::new(CloseCode::POLICY_VIOLATION, "consumer fell behind");
    c.abort(frame.clone(), t0);
    assert_eq!(close_code_of(c.output()), 1008);
    assert_eq!(c.end(), Some(&End::Aborted(frame)));
    assert!(c.send_text("x").is_err());
    c.handle_timeout(t0 + 10 * MS);
    assert!(c.is_finished());
}

#[test]
fn a_failure_stops_the_keepalive() {
    let t0 = Instant::now();
    let timeouts = Timeouts::default()
        .ping_interval(Some(S))
        .ping_timeout(Some(S));
    let mut c = client(t0, timeouts);
    c.handle_timeout(t0 + S);
    let mut wire = BytesMut::from(&b"\x8a\x7e\x00\x80"[..]); // a 128-byte pong: too long
    assert!(read_all(&mut c, &mut wire, t0 + S).is_err());
    c.handle_timeout(t0 + 2 * S + S / 2);
    assert!(
        matches!(c.end(), Some(End::Failed(_))),
        "not NoPong: {:?}",
        c.end()
    );
}

// ----- end of transport ------------------------------------------------------------

#[test]
fn eof_while_open_is_abnormal() {
    let t0 = Instant::now();
    let mut c = client(t0, Timeouts::default());
    c.receive_eof(t0);
    assert_eq!(c.end(), Some(&End::Abnormal));
    assert!(c.is_finished());
    assert_eq!(c.state(), State::Closed);
}

#[test]
fn eof_while_waiting_for_the_close_frame_is_abnormal() {
    let t0 = Instant::now();
    let mut c = client(t0, Timeouts::default());
    c.close(None, t0).unwrap();
    c.receive_eof(t0 + MS);
    assert_eq!(c.end(), Some(&End::Abnormal));
    assert!(c.is_finished());
}

#[test]
fn eof_while_failing_keeps_the_failure() {
    let t0 = Instant::now();
    let mut c = client(t0, Timeouts::default());
    let mut wire = BytesMut::from(&b"\x80\x00"[..]); // continuation without a start
    assert!(read_all(&mut c, &mut wire, t0).is_err());
    c.receive_eof(t0 + MS);
    assert_eq!(
        c.end(),
        Some(&End::Failed(ProtocolError::ContinuationWithoutStart))
    );
    assert!(c.is_finished());
}

#[test]
fn shutdown_ends_at_once_and_keeps_an_end_already_decided() {
    let t0 = Instant::now();
    let mut c = client(t0, Timeouts::default());
    c.shutdown();
    assert_eq!(c.end(), Some(&End::Shutdown));
    assert!(c.is_finished());
    let mut c = client(t0, Timeouts::default());
    c.receive_eof(t0);
    c.shutdown();
    assert_eq!(c.end(), Some(&End::Abnormal));
}

#[test]
fn output_taken_by_a_writer_is_the_same_bytes_in_order() {
    let t0 = Instant::now();
    let mut c = client(t0, Timeouts::default());
    let mut s = server(t0);
    c.send_text("one").unwrap();
    let mut taken = Vec::new();
    c.take_output(&mut taken);
    c.send_text("two").unwrap();
    c.take_output(&mut taken);
    assert!(!c.has_output());
    let mut wire = BytesMut::from(&taken[..]);
    let got = read_all(&mut s, &mut wire, t0).unwrap();
    assert_eq!(got, [Message::text("one"), Message::text("two")]);
}

// ----- one message or one frame at a time ----------------------------------------
//
// The direct connections decode with `read_message` (and `recv_frame` with
// `read_frame`), which reach the lifecycle by another way than `read`: the
// same rules must hold through them.

/// What `from` queued, as bytes on the wire.
fn wire_of(from: &mut Connection) -> BytesMut {
    let mut out = Vec::new();
    from.take_output(&mut out);
    BytesMut::from(&out[..])
}

#[test]
fn read_message_matches_the_pong_and_keeps_the_connection() {
    let t0 = Instant::now();
    let mut c = client(t0, pings_every_second());
    let mut s = server(t0);
    c.handle_timeout(t0 + S);
    pump(&mut c, &mut s, t0 + S); // the server queues its pong
    let mut wire = wire_of(&mut s);
    s.send_text("after").unwrap();
    wire.extend_from_slice(&wire_of(&mut s));
    let pong = c.read_message(&mut wire, t0 + S + MS).unwrap();
    assert!(matches!(pong, Some(Message::Pong(_))), "{pong:?}");
    let text = c.read_message(&mut wire, t0 + S + MS).unwrap();
    assert_eq!(text, Some(Message::text("after")));
    assert_eq!(c.read_message(&mut wire, t0 + S + MS).unwrap(), None);
    c.handle_timeout(t0 + S + S / 2);
    assert_eq!(c.end(), None, "the pong answered the ping");
    assert_eq!(c.poll_timeout(), Some(t0 + 2 * S), "the next ping is due");
}

#[test]
fn read_message_runs_the_peers_close() {
    let t0 = Instant::now();
    let mut c = client(t0, Timeouts::default().close(S));
    let mut s = server(t0);
    s.close(Some(&CloseFrame::new(CloseCode::GOING_AWAY, "bye")), t0)
        .unwrap();
    let mut wire = wire_of(&mut s);
    let got = c.read_message(&mut wire, t0 + MS).unwrap();
    let frame = CloseFrame::new(CloseCode::GOING_AWAY, "bye");
    assert_eq!(got, Some(Message::Close(Some(frame.clone()))));
    assert_eq!(
        c.end(),
        Some(&End::Closed {
            frame: Some(frame),
            initiated_by: Side::Peer
        })
    );
    assert!(c.is_discarding(), "the client waits for the server's EOF");
    assert_eq!(close_code_of(c.output()), 1001, "the close is echoed");
    assert_eq!(c.poll_timeout(), Some(t0 + MS + S));
}

#[test]
fn read_message_fails_the_connection_on_a_protocol_error() {
    let t0 = Instant::now();
    let mut c = client(t0, Timeouts::default().fail_grace(50 * MS));
    // A good message, then a masked frame from a server, then more bytes.
    let mut wire = BytesMut::from(&b"\x81\x02ok\x81\x82abcd\x09\x0b\x81\x01x"[..]);
    assert_eq!(
        c.read_message(&mut wire, t0).unwrap(),
        Some(Message::text("ok"))
    );
    let err = c.read_message(&mut wire, t0).unwrap_err();
    assert_eq!(err, ProtocolError::MaskedFrameFromServer);
    assert_eq!(
        c.end(),
        Some(&End::Failed(ProtocolError::MaskedFrameFromServer))
    );
    assert!(wire.is_empty(), "what follows a bad frame is not trusted");
    assert_eq!(close_code_of(c.output()), 1002);
    assert!(c.is_discarding());
    assert_eq!(c.poll_timeout(), Some(t0 + 50 * MS));
    c.handle_timeout(t0 + 50 * MS);
    assert!(c.is_finished());
}

#[test]
fn read_frame_matches_the_pong_and_runs_the_peers_close() {
    let t0 = Instant::now();
    let mut c = client(t0, pings_every_second());
    let mut s = server(t0);
    c.handle_timeout(t0 + S);
    pump(&mut c, &mut s, t0 + S);
    s.close(Some(&CloseFrame::new(CloseCode::NORMAL, "")), t0 + S)
        .unwrap();
    let mut wire = wire_of(&mut s);
    let pong = c.read_frame(&mut wire, t0 + S + MS).unwrap().unwrap();
    assert_eq!(pong.opcode, floodgate_proto::OpCode::Pong);
    c.handle_timeout(t0 + S + S / 2);
    assert_eq!(c.end(), None, "the pong answered the ping");
    let close = c.read_frame(&mut wire, t0 + S + S / 2).unwrap().unwrap();
    assert_eq!(close.opcode, floodgate_proto::OpCode::Close);
    assert!(matches!(
        c.end(),
        Some(End::Closed {
            initiated_by: Side::Peer,
            ..
        })
    ));
}
