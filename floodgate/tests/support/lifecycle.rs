//! The servers and checks the lifecycle tests of both front ends share
//! (`tests/lifecycle.rs`, `tests/async_lifecycle.rs`).

use super::{frame_bytes, RawConn, ScriptedServer};
use floodgate::{Error, ErrorKind, ProtocolError, TimeoutKind};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

pub const MS: Duration = Duration::from_millis(1);
pub const PING_INTERVAL: Duration = Duration::from_millis(200);
pub const PING_TIMEOUT: Duration = Duration::from_millis(500);
/// How long after the connect a deaf server's connection must be found
/// dead: the first ping at the interval, its pong due a timeout later,
/// and 100 ms for the loops to see it.
pub const DEAD_WITHIN: Duration = Duration::from_millis(200 + 500 + 100);

/// A server that sends a masked frame (forbidden from a server), reads the
/// client's close, reports its code, and then neither answers nor ends
/// the connection for a second.
pub fn masked_frame_server() -> (ScriptedServer, mpsc::Receiver<Option<u16>>) {
    let (codes, code) = mpsc::channel();
    let server = ScriptedServer::start(move |mut conn: RawConn| {
        conn.accept_upgrade(None);
        conn.write_raw(&frame_bytes(0x81, b"hi", Some([1, 2, 3, 4])));
        let close = conn.expect_close();
        let _ = codes.send(close.map(|(code, _)| code));
        thread::sleep(Duration::from_secs(1));
    });
    (server, code)
}

/// A server that completes the handshake and then reads nothing (its
/// receive window closes, so the client's writes block) for 3 s.
pub fn deaf_server() -> ScriptedServer {
    ScriptedServer::start(move |mut conn: RawConn| {
        conn.accept_upgrade(None);
        thread::sleep(Duration::from_secs(3));
    })
}

/// The masked frame's error reached the caller within 100 ms and the
/// server read a close with 1002.
pub fn assert_failed_at_once(err: &Error, took: Duration, code: &mpsc::Receiver<Option<u16>>) {
    assert!(
        matches!(
            err.kind(),
            ErrorKind::Protocol(ProtocolError::MaskedFrameFromServer)
        ),
        "{err:?}"
    );
    assert!(
        took < 100 * MS,
        "the error took {took:?} (close timeout 5 s)"
    );
    assert_eq!(
        code.recv_timeout(Duration::from_secs(5)).unwrap(),
        Some(1002)
    );
}

/// The deaf server's connection ended with a pong timeout, within
/// [`DEAD_WITHIN`] and not before the first pong was due.
pub fn assert_found_dead(err: &Error, took: Duration) {
    assert!(
        matches!(
            err.kind(),
            ErrorKind::Timeout { kind: TimeoutKind::Pong, after: Some(t) } if *t == PING_TIMEOUT
        ),
        "{err:?}"
    );
    assert!(
        took < DEAD_WITHIN,
        "detected after {took:?}, bound {DEAD_WITHIN:?}"
    );
    assert!(
        took >= PING_INTERVAL + PING_TIMEOUT - 10 * MS,
        "too early: {took:?}"
    );
}
