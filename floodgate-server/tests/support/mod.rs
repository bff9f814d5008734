//! A minimal blocking WebSocket client on `floodgate-proto`, so that the
//! server's tests need no client library (the `floodgate` crate depends on
//! this one for its own tests, not the other way round).
//!
//! It hides nothing: every frame the server sends comes back from
//! [`RawClient::recv`], pings included (the protocol has queued their pong,
//! which the next call writes).

#![allow(dead_code)] // each test file uses its own part

use floodgate_proto::bytes::BytesMut;
use floodgate_proto::deflate::DeflateConfig;
use floodgate_proto::handshake::{parse_response_head, ClientHandshake, ClientRequest, Response};
use floodgate_proto::{CloseFrame, Config, Message, Protocol, Role};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

pub struct RawClient<S: Read + Write = TcpStream> {
    pub stream: S,
    pub proto: Protocol,
    buf: BytesMut,
    pub response: Response,
}

/// What the upgrade request offers.
#[derive(Default)]
pub struct Offer {
    pub subprotocols: Vec<String>,
    pub deflate: Option<DeflateConfig>,
}

impl RawClient<TcpStream> {
    /// Connects to `addr` and runs the handshake for `path`.
    pub fn connect(addr: SocketAddr, path: &str) -> RawClient {
        RawClient::connect_with(addr, path, Offer::default())
    }

    pub fn connect_with(addr: SocketAddr, path: &str, offer: Offer) -> RawClient {
        let tcp = TcpStream::connect(addr).expect("connect to the server");
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        RawClient::handshake(tcp, path, offer)
    }
}

impl<S: Read + Write> RawClient<S> {
    /// The client's handshake over a connected stream.
    pub fn handshake(mut stream: S, path: &str, offer: Offer) -> RawClient<S> {
        let request = ClientRequest {
            host: "localhost".into(),
            path: path.into(),
            subprotocols: offer.subprotocols,
            deflate: offer.deflate,
            ..ClientRequest::default()
        };
        let (handshake, bytes) = ClientHandshake::new(&request).unwrap();
        stream.write_all(&bytes).unwrap();
        stream.flush().unwrap();
        let mut buf = BytesMut::new();
        let (head, len) = loop {
            if let Some(parsed) = parse_response_head(&buf, 64 << 10).unwrap() {
                break parsed;
            }
            read_some(&mut stream, &mut buf).expect("the server's handshake response");
        };
        let response = handshake.accept(head, &[]).expect("a 101 response");
        let _ = buf.split_to(len);
        let mut proto = Protocol::new(Role::Client, Config::default());
        proto.set_deflate(response.deflate.clone());
        RawClient {
            stream,
            proto,
            buf,
            response,
        }
    }

    pub fn send(&mut self, message: &Message) {
        self.proto.send(message).unwrap();
        self.flush();
    }

    pub fn send_text(&mut self, text: &str) {
        self.send(&Message::text(text.to_owned()));
    }

    pub fn close(&mut self, code: u16, reason: &str) {
        self.proto
            .send_close(Some(&CloseFrame::new(code, reason)))
            .unwrap();
        self.flush();
    }

    /// Writes what the protocol queued (sends, pongs, the close's answer).
    pub fn flush(&mut self) {
        while self.proto.has_output() {
            let n = self.stream.write(self.proto.output()).unwrap();
            self.proto.consume_output(n);
        }
        self.stream.flush().unwrap();
    }

    /// The next message or control frame, `None` when the stream ended.
    pub fn recv(&mut self) -> Option<Message> {
        loop {
            if let Some(message) = self.proto.read_message(&mut self.buf).unwrap() {
                self.flush();
                return Some(message);
            }
            if read_some(&mut self.stream, &mut self.buf).ok()? == 0 {
                return None;
            }
        }
    }

    /// The next data message, answering pings on the way; `Err` with the
    /// server's close frame when it closed.
    pub fn recv_data(&mut self) -> Result<Message, Option<CloseFrame>> {
        loop {
            match self.recv() {
                Some(Message::Close(frame)) => return Err(frame),
                Some(message) if message.is_data() => return Ok(message),
                Some(_) => {}
                None => panic!("the connection ended without a close frame"),
            }
        }
    }

    /// Whether the server ended the stream (after its close), within the
    /// read timeout.
    pub fn ends(&mut self) -> bool {
        let mut rest = [0u8; 256];
        loop {
            match self.stream.read(&mut rest) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
    }
}

fn read_some(stream: &mut impl Read, buf: &mut BytesMut) -> std::io::Result<usize> {
    let mut chunk = [0u8; 16 << 10];
    let n = stream.read(&mut chunk)?;
    buf.extend_from_slice(&chunk[..n]);
    Ok(n)
}
