//! Interoperability with a server written by others: the Python `websockets`
//! library, through `scripts/echo_server.py`.
//!
//! These tests need that Python environment, so they are `#[ignore]`d in a
//! plain `cargo test`; `scripts/test` creates it and runs them with
//!
//! ```text
//! FLOODGATE_PYTHON=target/pyenv/bin/python \
//!     cargo test -p floodgate --test interop_python -- --ignored
//! ```
//!
//! Each test starts its own echo server on a free loopback port.

mod support;

use floodgate::{Client, ErrorKind, Message, OpCode};
use support::EchoServer;

/// Bytes that are not all alike, so a shifted or truncated echo shows.
fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i.wrapping_mul(31) ^ (i >> 8)) as u8)
        .collect()
}

#[test]
#[ignore = "needs Python websockets; run by scripts/test"]
fn text_messages_are_echoed_intact_including_non_ascii() {
    let server = EchoServer::start();
    let mut ws = floodgate::connect(&server.url()).expect("connect");
    let long: String = "ünï©ødé 🦀 ".repeat(10_000);
    for text in ["héllo", "", "日本語のテキスト", "emoji 🦀🌊", long.as_str()] {
        ws.send_text(text).expect("send text");
        let reply = ws.recv().expect("recv");
        assert_eq!(
            reply.as_text(),
            Some(text),
            "echo of a {}-byte text",
            text.len()
        );
    }
    ws.close(1000, "").expect("close");
}

#[test]
#[ignore = "needs Python websockets; run by scripts/test"]
fn binary_messages_of_every_length_form_echo_intact() {
    let server = EchoServer::start();
    let mut ws = floodgate::connect(&server.url()).expect("connect");
    // 7-bit, 16-bit and 64-bit payload lengths, at their edges.
    for len in [0, 1, 125, 126, 127, 65_535, 65_536, 1 << 20] {
        let data = pattern(len);
        ws.send_binary(&data).expect("send binary");
        match ws.recv().expect("recv") {
            Message::Binary(got) => {
                assert_eq!(got.len(), len, "echo length");
                assert!(got[..] == data[..], "echo of {len} bytes differs");
            }
            other => panic!("expected a binary echo of {len} bytes, got {other:?}"),
        }
    }
    ws.close(1000, "").expect("close");
}

#[test]
#[ignore = "needs Python websockets; run by scripts/test"]
fn a_sixteen_mebibyte_message_round_trips() {
    let server = EchoServer::start();
    let mut ws = floodgate::connect(&server.url()).expect("connect");
    let data = pattern(16 << 20);
    ws.send(Message::binary(data.clone())).expect("send 16 MiB");
    let reply = ws.recv().expect("recv 16 MiB");
    assert_eq!(reply.len(), data.len());
    assert!(reply.as_bytes() == &data[..], "16 MiB echo differs");
    ws.close(1000, "").expect("close");
}

#[test]
#[ignore = "needs Python websockets; run by scripts/test"]
fn a_text_message_sent_as_raw_fragments_is_echoed_whole() {
    let server = EchoServer::start();
    let mut ws = floodgate::connect(&server.url()).expect("connect");
    // "fragé" + "ments": the é (c3 a9) is split across two frames, and a
    // ping sits between fragments, as RFC 6455 allows.
    ws.send_frame(OpCode::Text, b"frag\xc3", false)
        .expect("first fragment");
    ws.ping(b"between").expect("ping between fragments");
    ws.send_frame(OpCode::Continuation, b"\xa9", false)
        .expect("middle fragment");
    ws.send_frame(OpCode::Continuation, b"ments", true)
        .expect("last fragment");
    let reply = ws.recv().expect("recv");
    assert_eq!(reply.as_text(), Some("fragéments"));
    ws.close(1000, "").expect("close");
}

#[test]
#[ignore = "needs Python websockets; run by scripts/test"]
fn many_messages_sent_back_to_back_come_back_in_order() {
    let server = EchoServer::start();
    let mut ws = floodgate::connect(&server.url()).expect("connect");
    for i in 0..500 {
        if i % 2 == 0 {
            ws.send_text(&format!("message {i}")).expect("send");
        } else {
            ws.send_binary(&(i as u32).to_be_bytes()).expect("send");
        }
    }
    for i in 0..500u32 {
        let reply = ws.recv().expect("recv");
        if i % 2 == 0 {
            assert_eq!(reply.as_text(), Some(format!("message {i}").as_str()));
        } else {
            assert_eq!(reply, Message::binary(i.to_be_bytes().to_vec()));
        }
    }
    ws.close(1000, "").expect("close");
}

#[test]
#[ignore = "needs Python websockets; run by scripts/test"]
fn the_subprotocol_the_server_selects_is_reported() {
    let server = EchoServer::start();

    let ws = Client::builder()
        .subprotocol("chat")
        .connect(&server.url())
        .expect("connect");
    assert_eq!(ws.subprotocol(), Some("chat"));

    // The server takes the first of the client's offers that it knows.
    let ws = Client::builder()
        .subprotocol("x-unknown")
        .subprotocol("superchat")
        .subprotocol("chat")
        .connect(&server.url())
        .expect("connect");
    assert_eq!(ws.subprotocol(), Some("superchat"));

    let ws = floodgate::connect(&server.url()).expect("connect");
    assert_eq!(ws.subprotocol(), None);
}

#[test]
#[ignore = "needs Python websockets; run by scripts/test"]
fn a_ping_is_answered_with_a_pong_carrying_its_payload() {
    let server = EchoServer::start();
    let mut ws = Client::builder()
        .return_control_frames(true)
        .connect(&server.url())
        .expect("connect");
    ws.ping(b"are you there").expect("ping");
    match ws.recv().expect("recv") {
        Message::Pong(payload) => assert_eq!(&payload[..], b"are you there"),
        other => panic!("expected a pong, got {other:?}"),
    }

    // Without control frames returned, the pong is absorbed and data still flows.
    let mut ws = floodgate::connect(&server.url()).expect("connect");
    ws.ping(b"p").expect("ping");
    ws.send_text("after ping").expect("send");
    assert_eq!(ws.recv().expect("recv").as_text(), Some("after ping"));
    ws.close(1000, "").expect("close");
}

#[test]
#[ignore = "needs Python websockets; run by scripts/test"]
fn a_close_from_the_server_surfaces_its_code_and_reason() {
    let server = EchoServer::start();
    let mut ws = floodgate::connect(&server.url()).expect("connect");
    ws.send_text("close:4001:done: for now").expect("send");
    let err = ws.recv().expect_err("the server closed the connection");
    match err.kind() {
        ErrorKind::ConnectionClosed(Some(frame)) => {
            assert_eq!(frame.code.0, 4001);
            assert_eq!(frame.reason, "done: for now");
        }
        other => panic!("expected ConnectionClosed with code 4001, got {other:?}"),
    }
    assert!(err.is_closed());
    // The connection stays closed.
    let again = ws.recv().expect_err("still closed");
    assert!(again.is_closed(), "second recv after close: {again:?}");
    assert!(
        ws.send_text("too late").is_err(),
        "send after close must fail"
    );
}

#[test]
#[ignore = "needs Python websockets; run by scripts/test"]
fn a_close_from_the_client_completes_cleanly() {
    let server = EchoServer::start();
    let mut ws = floodgate::connect(&server.url()).expect("connect");
    ws.send_text("last words").expect("send");
    assert_eq!(ws.recv().expect("recv").as_text(), Some("last words"));
    ws.close(1000, "bye").expect("close handshake completes");
    let err = ws.recv().expect_err("closed");
    assert!(err.is_closed(), "recv after close: {err:?}");
}
