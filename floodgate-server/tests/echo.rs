//! The echo handler and the connection a handler gets, driven by a raw
//! client on floodgate-proto: messages come back as sent, pings are
//! answered, the close handshake runs from either side, subprotocols and
//! permessage-deflate are negotiated from the server's options.

mod support;

use floodgate_proto::deflate::DeflateConfig;
use floodgate_proto::{CloseFrame, Message};
use floodgate_server::{echo, Error, Options, Server};
use std::sync::mpsc;
use std::time::Duration;
use support::{Offer, RawClient};

#[test]
fn text_and_binary_messages_come_back_as_sent() {
    let server = Server::bind("127.0.0.1:0", echo).unwrap();
    assert_eq!(server.url(), format!("ws://{}/", server.local_addr()));
    let mut client = RawClient::connect(server.local_addr(), "/");
    let big: Vec<u8> = (0..(1u32 << 20)).map(|i| (i % 251) as u8).collect();
    for message in [
        Message::text("héllo"),
        Message::text(""),
        Message::binary(vec![0u8, 1, 2, 255]),
        Message::binary(big),
    ] {
        client.send(&message);
        assert_eq!(client.recv_data(), Ok(message));
    }
    client.close(1000, "done");
    // The answer repeats the code (RFC 6455 §5.5.1), not the reason.
    assert_eq!(
        client.recv(),
        Some(Message::Close(Some(CloseFrame::new(1000, ""))))
    );
    assert!(
        client.ends(),
        "the server ends TCP after the close handshake"
    );
}

#[test]
fn a_ping_is_answered_with_its_payload() {
    let server = Server::bind("127.0.0.1:0", echo).unwrap();
    let mut client = RawClient::connect(server.local_addr(), "/");
    client.send(&Message::Ping(b"are you there".to_vec().into()));
    assert_eq!(
        client.recv(),
        Some(Message::Pong(b"are you there".to_vec().into()))
    );
}

#[test]
fn a_handler_sees_the_request_and_the_clients_close() {
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let server = Server::bind("127.0.0.1:0", move |mut ws, request| {
        let end = ws.recv().unwrap_err();
        let _ = tx.lock().unwrap().send((request.path, end));
    })
    .unwrap();
    let mut client = RawClient::connect(server.local_addr(), "/chat?room=1");
    client.close(4001, "going");
    assert!(matches!(client.recv(), Some(Message::Close(Some(f))) if f.code.0 == 4001));
    let (path, end) = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(path, "/chat?room=1");
    assert_eq!(end.close_frame(), Some(&CloseFrame::new(4001, "going")));
    assert!(matches!(end, Error::ConnectionClosed(_)), "{end}");
}

#[test]
fn the_servers_close_waits_for_the_clients_answer() {
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let server = Server::bind("127.0.0.1:0", move |mut ws, _| {
        ws.send_text("bye soon").unwrap();
        let _ = tx
            .lock()
            .unwrap()
            .send(ws.close(1001, "restarting").map_err(|e| e.to_string()));
    })
    .unwrap();
    let mut client = RawClient::connect(server.local_addr(), "/");
    assert_eq!(client.recv_data(), Ok(Message::text("bye soon")));
    let close = client.recv_data().unwrap_err();
    assert_eq!(close, Some(CloseFrame::new(1001, "restarting")));
    // The protocol queued the answer to the close: send it.
    client.flush();
    assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), Ok(()));
    assert!(client.ends());
}

#[test]
fn a_client_that_vanishes_is_an_abnormal_closure() {
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let server = Server::bind("127.0.0.1:0", move |mut ws, _| {
        let _ = tx.lock().unwrap().send(ws.recv().unwrap_err());
    })
    .unwrap();
    drop(RawClient::connect(server.local_addr(), "/"));
    let end = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert!(matches!(end, Error::AbnormalClosure), "{end}");
}

#[test]
fn a_masked_frame_breaks_the_protocol_and_fails_with_1002() {
    use std::io::Write;
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let server = Server::bind("127.0.0.1:0", move |mut ws, _| {
        let _ = tx.lock().unwrap().send(ws.recv().unwrap_err());
    })
    .unwrap();
    let mut client = RawClient::connect(server.local_addr(), "/");
    // An unmasked text frame: a client must mask.
    client.stream.write_all(&[0x81, 0x02, b'h', b'i']).unwrap();
    // The server's close with the code; the client's answer ends its wait.
    assert!(matches!(client.recv(), Some(Message::Close(Some(f))) if f.code.0 == 1002));
    let end = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    match &end {
        Error::Protocol(e) => assert_eq!(e.close_code().0, 1002),
        other => panic!("expected a protocol error, got {other}"),
    }
    assert!(end.to_string().contains("1002"), "{end}");
}

#[test]
fn the_first_offered_subprotocol_the_server_speaks_is_selected() {
    let options = Options {
        subprotocols: vec!["chat.v2".into(), "chat.v1".into()],
        ..Options::default()
    };
    let server = Server::bind_with("127.0.0.1:0", options, echo).unwrap();
    let offer = Offer {
        subprotocols: vec!["chat.v3".into(), "chat.v1".into(), "chat.v2".into()],
        ..Offer::default()
    };
    let client = RawClient::connect_with(server.local_addr(), "/", offer);
    assert_eq!(client.response.subprotocol.as_deref(), Some("chat.v1"));
}

#[test]
fn permessage_deflate_is_accepted_only_when_the_options_say_so() {
    let offer = || Offer {
        deflate: Some(DeflateConfig::default().threshold(0)),
        ..Offer::default()
    };
    let plain = Server::bind("127.0.0.1:0", echo).unwrap();
    let client = RawClient::connect_with(plain.local_addr(), "/", offer());
    assert!(client.response.deflate.is_none(), "declined by default");

    let options = Options {
        compression: Some(DeflateConfig::default()),
        ..Options::default()
    };
    let compressing = Server::bind_with("127.0.0.1:0", options, echo).unwrap();
    let mut client = RawClient::connect_with(compressing.local_addr(), "/", offer());
    assert!(client.response.deflate.is_some(), "accepted");
    let text = "compress me ".repeat(10_000);
    client.send_text(&text);
    assert_eq!(client.recv_data(), Ok(Message::text(text)));
}

#[test]
fn a_dropped_server_accepts_no_more_connections() {
    let server = Server::bind("127.0.0.1:0", echo).unwrap();
    let addr = server.local_addr();
    drop(server);
    assert!(std::net::TcpStream::connect(addr).is_err());
}

#[test]
fn binding_a_taken_address_is_a_bind_error() {
    let server = Server::bind("127.0.0.1:0", echo).unwrap();
    let err = Server::bind(server.local_addr(), echo).unwrap_err();
    assert!(matches!(err, Error::Bind(_)), "{err}");
}
