//! A server that breaks RFC 6455: every violation fails the connection with
//! the close code it implies, the close handshake still runs (the client
//! sends that code and takes the server's answer), and the connection is
//! closed for good afterwards.

mod support;

use floodgate::{Client, ClientBuilder, CloseFrame, ErrorKind, Message, ProtocolError, State};
use std::time::{Duration, Instant};
use support::{close_frame_bytes, frame_bytes, RawConn, ScriptedServer};

const PROTOCOL_ERROR: u16 = 1002;
const INVALID_PAYLOAD: u16 = 1007;
const MESSAGE_TOO_BIG: u16 = 1009;

/// Connects with `client`, lets the server `misbehave` after the upgrade,
/// and checks that `recv` fails with `expected`, that the server receives a
/// close with `expected`'s code and that, once the server has answered it
/// and ended TCP, the connection stays closed.
fn fails_the_connection(
    client: ClientBuilder,
    expected: ProtocolError,
    misbehave: impl FnOnce(&mut RawConn) + Send + 'static,
) {
    let code = expected.close_code().0;
    let server = ScriptedServer::start(move |mut conn| {
        conn.accept_upgrade(None);
        misbehave(&mut conn);
        let close = conn.answer_close();
        let (got, reason) = close.expect("the client's close carries a code");
        assert_eq!(
            got, code,
            "the client failed the connection with close code {got} ({reason:?})"
        );
    });
    let mut ws = client.connect(&server.url()).expect("connect");
    let started = Instant::now();
    let err = ws.recv().expect_err("the violation must fail recv");
    match err.kind() {
        ErrorKind::Protocol(e) => {
            assert_eq!(e, &expected);
            assert_eq!(e.close_code().0, code);
        }
        other => panic!("expected {expected:?}, got {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "failing took {:?}: the client waited for something it should not have",
        started.elapsed()
    );
    assert_eq!(
        ws.protocol().close_received(),
        Some(&Some(CloseFrame::new(code, ""))),
        "the client read the server's answer to its close"
    );
    assert_eq!(ws.state(), State::Closed);
    assert!(!ws.is_open());
    server.join();
    assert_closed_for_good(&mut ws);
}

/// Every call on a connection that has ended says so.
fn assert_closed_for_good(ws: &mut floodgate::WebSocket) {
    let already = |what: &str, result: floodgate::Result<()>| match result {
        Err(e) if matches!(e.kind(), ErrorKind::AlreadyClosed) => {}
        other => panic!("{what} after the end: expected AlreadyClosed, got {other:?}"),
    };
    already("recv", ws.recv().map(drop));
    already("recv again", ws.recv().map(drop));
    already("recv_frame", ws.recv_frame().map(drop));
    already("send_text", ws.send_text("late"));
    already("send_binary", ws.send_binary(b"late"));
    already("send", ws.send(Message::text("late")));
    already("ping", ws.ping(b""));
    already("close", ws.close(1000, ""));
}

#[test]
fn a_masked_frame_from_the_server_is_a_protocol_error() {
    fails_the_connection(
        Client::builder(),
        ProtocolError::MaskedFrameFromServer,
        |conn| {
            conn.send_frame(true, 0x1, b"masked", Some([1, 2, 3, 4]));
        },
    );
}

#[test]
fn a_reserved_opcode_is_a_protocol_error() {
    fails_the_connection(
        Client::builder(),
        ProtocolError::ReservedOpcode(0x3),
        |conn| {
            conn.send_frame(true, 0x3, b"what", None);
        },
    );
}

#[test]
fn rsv1_without_an_extension_is_a_protocol_error() {
    fails_the_connection(
        Client::builder(),
        ProtocolError::ReservedBits { bits: 0b100 },
        |conn| {
            conn.write_raw(&frame_bytes(0x80 | 0x40 | 0x1, b"compressed?", None));
        },
    );
}

#[test]
fn a_ping_of_126_bytes_is_a_protocol_error() {
    fails_the_connection(
        Client::builder(),
        ProtocolError::ControlFrameTooLong(126),
        |conn| {
            conn.send_frame(true, 0x9, &[b'p'; 126], None);
        },
    );
}

#[test]
fn a_continuation_without_a_start_is_a_protocol_error() {
    fails_the_connection(
        Client::builder(),
        ProtocolError::ContinuationWithoutStart,
        |conn| {
            conn.send_frame(true, 0x0, b"orphan", None);
        },
    );
}

#[test]
fn invalid_utf8_in_a_text_message_is_invalid_payload() {
    let expected = ProtocolError::InvalidUtf8;
    assert_eq!(expected.close_code().0, INVALID_PAYLOAD);
    fails_the_connection(Client::builder(), expected, |conn| {
        conn.send_frame(true, 0x1, b"caf\xc3", None);
    });
}

#[test]
fn invalid_utf8_in_a_second_fragment_fails_before_the_message_ends() {
    fails_the_connection(Client::builder(), ProtocolError::InvalidUtf8, |conn| {
        conn.send_frame(false, 0x1, "κόσμε ".as_bytes(), None);
        // An encoded UTF-16 surrogate: never valid UTF-8, whatever follows.
        conn.send_frame(false, 0x0, b"\xed\xa0\x80", None);
        // Nothing more is sent until the client's close is read.
    });
}

#[test]
fn a_close_with_code_1005_is_a_protocol_error() {
    server_close_fails_the_connection(
        ProtocolError::InvalidCloseCode(1005),
        close_frame_bytes(1005, ""),
    );
}

#[test]
fn a_close_with_a_one_byte_payload_is_a_protocol_error() {
    server_close_fails_the_connection(
        ProtocolError::CloseFrameOneByte,
        frame_bytes(0x88, &[0x03], None),
    );
}

/// A malformed close from the server: the client fails the connection with
/// 1002; the server has closed already, so it only ends TCP.
fn server_close_fails_the_connection(expected: ProtocolError, close: Vec<u8>) {
    assert_eq!(expected.close_code().0, PROTOCOL_ERROR);
    let server = ScriptedServer::start(move |mut conn| {
        conn.accept_upgrade(None);
        conn.write_raw(&close);
        let got = conn.expect_close().map(|(code, _)| code);
        assert_eq!(got, Some(PROTOCOL_ERROR), "the client's close code");
        conn.shutdown_write();
        assert!(
            conn.read_to_eof().is_empty(),
            "nothing after the client's close"
        );
    });
    let mut ws = floodgate::connect(&server.url()).expect("connect");
    let started = Instant::now();
    match ws.recv() {
        Err(e) => assert!(
            matches!(e.kind(), ErrorKind::Protocol(p) if *p == expected),
            "{e:?}"
        ),
        Ok(m) => panic!("expected {expected:?}, got {m:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(ws.state(), State::Closed);
    server.join();
    assert_closed_for_good(&mut ws);
}

#[test]
fn a_frame_over_max_frame_size_fails_from_its_header_alone() {
    let gib = 1u64 << 30;
    let max = 16 << 20;
    let expected = ProtocolError::FrameTooLarge { len: gib, max };
    assert_eq!(expected.close_code().0, MESSAGE_TOO_BIG);
    fails_the_connection(
        Client::builder().max_frame_size(Some(max)),
        expected,
        move |conn| {
            // Only the header of a 1 GiB binary frame: the client must not wait
            // for (or make room for) its payload.
            let mut header = vec![0x82, 127];
            header.extend_from_slice(&gib.to_be_bytes());
            conn.write_raw(&header);
        },
    );
}

#[test]
fn a_fragmented_message_over_max_message_size_is_message_too_big() {
    let client = Client::builder()
        .max_frame_size(Some(1000))
        .max_message_size(Some(1000));
    let expected = ProtocolError::MessageTooLarge {
        len: 1200,
        max: 1000,
    };
    assert_eq!(expected.close_code().0, MESSAGE_TOO_BIG);
    fails_the_connection(client, expected, |conn| {
        conn.send_frame(false, 0x2, &[7; 600], None);
        conn.send_frame(false, 0x0, &[7; 600], None);
    });
}
