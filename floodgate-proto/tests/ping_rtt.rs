//! The keepalive's ping round trip as a front end learns it from the
//! `Connection` (`take_ping_rtt`): once per pong that answers a keepalive
//! ping, through each way of reading, with a virtual clock.

use bytes::BytesMut;
use floodgate_proto::connection::{Connection, Timeouts};
use floodgate_proto::{Config, Message, Role};
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

const MS: Duration = Duration::from_millis(1);
const S: Duration = Duration::from_secs(1);

fn client(t0: Instant, timeouts: Timeouts) -> Connection {
    Connection::new(Role::Client, Config::default(), timeouts, t0)
}

fn server(t0: Instant) -> Connection {
    Connection::new(Role::Server, Config::default(), Timeouts::default(), t0)
}

/// What `from` queued, as bytes on the wire.
fn wire_of(from: &mut Connection) -> BytesMut {
    let mut out = Vec::new();
    from.take_output(&mut out);
    BytesMut::from(&out[..])
}

/// The client's queued pings reach the server at `now`, which answers
/// them; the wire holding the server's pongs.
fn answered(c: &mut Connection, s: &mut Connection, now: Instant) -> BytesMut {
    let mut wire = wire_of(c);
    s.read(&mut wire, now, |_| ControlFlow::<()>::Continue(()))
        .unwrap();
    wire_of(s)
}

/// Reads everything in `wire` with `Connection::read`.
fn read(c: &mut Connection, wire: &mut BytesMut, now: Instant) -> Vec<Message> {
    let mut got = Vec::new();
    c.read(wire, now, |m| {
        got.push(m);
        ControlFlow::<()>::Continue(())
    })
    .unwrap();
    got
}

#[test]
fn each_answered_ping_gives_its_round_trip_once() {
    let t0 = Instant::now();
    let mut c = client(t0, Timeouts::default().ping_interval(Some(S)));
    let mut s = server(t0);
    assert_eq!(c.take_ping_rtt(), None, "nothing measured yet");
    for (i, rtt) in [(1, 7 * MS), (2, 120 * MS), (3, MS)] {
        let sent = t0 + i * S;
        c.handle_timeout(sent);
        let mut pongs = answered(&mut c, &mut s, sent);
        let got = read(&mut c, &mut pongs, sent + rtt);
        assert!(matches!(got[..], [Message::Pong(_)]), "{got:?}");
        assert_eq!(c.take_ping_rtt(), Some(rtt), "ping {i}");
        assert_eq!(c.take_ping_rtt(), None, "taken once");
    }
    assert_eq!(c.end(), None);
}

#[test]
fn a_pong_of_the_applications_own_ping_or_unsolicited_gives_none() {
    let t0 = Instant::now();
    let mut c = client(t0, Timeouts::default().ping_interval(Some(S)));
    let mut s = server(t0);
    c.send_ping(b"mine").unwrap();
    let mut pong = answered(&mut c, &mut s, t0);
    read(&mut c, &mut pong, t0 + MS);
    assert_eq!(c.take_ping_rtt(), None, "the application's own ping");
    s.send_pong(b"heartbeat").unwrap();
    let mut pong = wire_of(&mut s);
    read(&mut c, &mut pong, t0 + 2 * MS);
    assert_eq!(c.take_ping_rtt(), None, "unsolicited");
}

#[test]
fn an_unsolicited_pong_after_a_measured_one_clears_the_figure_not_taken() {
    let t0 = Instant::now();
    let mut c = client(t0, Timeouts::default().ping_interval(Some(S)));
    let mut s = server(t0);
    c.handle_timeout(t0 + S);
    let mut wire = answered(&mut c, &mut s, t0 + S);
    s.send_pong(b"heartbeat").unwrap();
    wire.extend_from_slice(&wire_of(&mut s));
    // Both pongs in one read: the figure belongs to the last pong, which
    // answered nothing. (The buffered front ends stop at every control
    // message and take it then, so they see the first.)
    let got = read(&mut c, &mut wire, t0 + S + 4 * MS);
    assert_eq!(got.len(), 2);
    assert_eq!(c.take_ping_rtt(), None);
}

#[test]
fn read_message_and_read_frame_measure_too() {
    let t0 = Instant::now();
    let mut c = client(t0, Timeouts::default().ping_interval(Some(S)));
    let mut s = server(t0);
    c.handle_timeout(t0 + S);
    let mut pong = answered(&mut c, &mut s, t0 + S);
    let got = c.read_message(&mut pong, t0 + S + 9 * MS).unwrap();
    assert!(matches!(got, Some(Message::Pong(_))), "{got:?}");
    assert_eq!(c.take_ping_rtt(), Some(9 * MS));

    c.handle_timeout(t0 + 2 * S);
    let mut pong = answered(&mut c, &mut s, t0 + 2 * S);
    let frame = c.read_frame(&mut pong, t0 + 2 * S + 3 * MS).unwrap();
    assert!(frame.is_some());
    assert_eq!(c.take_ping_rtt(), Some(3 * MS));
}

#[test]
fn a_paused_reading_keeps_the_connection_and_counts_in_the_round_trip() {
    let t0 = Instant::now();
    let timeouts = Timeouts::default()
        .ping_interval(Some(10 * S))
        .ping_timeout(Some(S));
    let mut c = client(t0, timeouts);
    let mut s = server(t0);
    c.handle_timeout(t0 + 10 * S);
    let mut pong = answered(&mut c, &mut s, t0 + 10 * S);
    // The pong waits unread for 5 s: past its timeout, but paused.
    c.pause_reading(t0 + 10 * S);
    c.handle_timeout(t0 + 15 * S);
    c.resume_reading(t0 + 15 * S);
    read(&mut c, &mut pong, t0 + 15 * S);
    assert_eq!(c.end(), None, "the pause moved the deadline");
    assert_eq!(c.take_ping_rtt(), Some(5 * S), "the pause is in it");
}
