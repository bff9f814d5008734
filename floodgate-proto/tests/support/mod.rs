//! Helpers shared by the integration tests: building the frames a server
//! (or a client) puts on the wire, and reading back what a `Protocol` wrote.

#![allow(dead_code)] // each test crate uses a different subset

use floodgate_proto::bytes::BytesMut;
use floodgate_proto::close::parse_close_payload;
use floodgate_proto::frame::{encode_frame, FrameHeader};
use floodgate_proto::mask::apply_mask;
use floodgate_proto::{CloseFrame, Config, OpCode, Protocol, ProtocolError, Role};

/// A client with a seeded generator, so its output is reproducible.
pub fn client() -> Protocol {
    Protocol::with_seed(Role::Client, Config::default(), 7)
}

/// A client with these limits.
pub fn client_with_limits(
    max_frame_size: Option<usize>,
    max_message_size: Option<usize>,
) -> Protocol {
    let config = Config {
        max_frame_size,
        max_message_size,
        ..Config::default()
    };
    Protocol::with_seed(Role::Client, config, 7)
}

/// A frame as a server sends it: unmasked.
pub fn server_frame(fin: bool, opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(&mut out, fin, 0, opcode, None, payload);
    out
}

/// A frame as a client sends it: masked with `key`.
pub fn client_frame(fin: bool, opcode: OpCode, key: [u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(&mut out, fin, 0, opcode, Some(key), payload);
    out
}

/// A frame with a raw first byte (FIN, RSV1-3 and any 4-bit opcode, reserved
/// or not), unmasked, with a correctly encoded length.
pub fn raw_frame(b0: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![b0];
    match payload.len() {
        n if n < 126 => out.push(n as u8),
        n if n <= 0xFFFF => {
            out.push(126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
    out
}

/// A close frame from the server with this code and reason bytes.
pub fn server_close(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(reason);
    server_frame(true, OpCode::Close, &payload)
}

/// Concatenates frames.
pub fn concat(frames: &[Vec<u8>]) -> BytesMut {
    let mut buf = BytesMut::new();
    for frame in frames {
        buf.extend_from_slice(frame);
    }
    buf
}

/// One frame read back from a protocol's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub fin: bool,
    pub rsv: u8,
    pub opcode: OpCode,
    pub masked: bool,
    pub payload: Vec<u8>,
}

impl Sent {
    /// The close frame this is (panics if it is not a valid close).
    pub fn close(&self) -> Option<CloseFrame> {
        assert_eq!(self.opcode, OpCode::Close, "not a close frame: {self:?}");
        parse_close_payload(&self.payload).expect("a valid close payload")
    }
}

/// Splits `bytes` into the frames it holds, unmasking payloads. Panics on
/// anything that is not a sequence of complete, well-formed frames.
pub fn decode_all(mut bytes: &[u8]) -> Vec<Sent> {
    let mut frames = Vec::new();
    while !bytes.is_empty() {
        let (header, header_len) = FrameHeader::decode(bytes)
            .expect("output frames are well formed")
            .expect("output holds whole frames");
        let end = header_len + header.payload_len as usize;
        let mut payload = bytes[header_len..end].to_vec();
        if let Some(key) = header.mask {
            apply_mask(&mut payload, key);
        }
        frames.push(Sent {
            fin: header.fin,
            rsv: header.rsv,
            opcode: header.opcode,
            masked: header.mask.is_some(),
            payload,
        });
        bytes = &bytes[end..];
    }
    frames
}

/// The frames a client wrote: each must be masked (RFC 6455 §5.1).
pub fn client_output(client: &Protocol) -> Vec<Sent> {
    let frames = decode_all(client.output());
    for frame in &frames {
        assert!(frame.masked, "a client frame went out unmasked: {frame:?}");
        assert_eq!(
            frame.rsv, 0,
            "a client frame has reserved bits set: {frame:?}"
        );
    }
    frames
}

/// Feeds `bytes` to a fresh client with `client` and checks that the
/// connection fails with exactly `expected`: the error, its close code, the
/// error again on every later read, and one masked close frame carrying
/// that code as the whole output.
pub fn assert_client_fails(mut client: Protocol, bytes: &[u8], expected: ProtocolError, code: u16) {
    let mut buf = BytesMut::from(bytes);
    let err = loop {
        match client.read_message(&mut buf) {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("no error; expected {expected:?}"),
            Err(err) => break err,
        }
    };
    assert_eq!(err, expected);
    assert_eq!(err.close_code().0, code, "close code of {err:?}");
    assert_eq!(client.failure(), Some(&expected));
    assert_failing_close(&client, code);
    // Later reads, in either mode, return the same error.
    assert_eq!(client.read_message(&mut buf), Err(expected.clone()));
    assert_eq!(client.read_frame(&mut buf), Err(expected.clone()));
    assert_failing_close(&client, code);
}

/// The client's whole output is one masked close frame with `code` and a
/// UTF-8 reason that fits a control frame.
pub fn assert_failing_close(client: &Protocol, code: u16) {
    let frames = client_output(client);
    assert_eq!(frames.len(), 1, "expected one close frame, got {frames:?}");
    let close = frames[0].close().expect("the failing close carries a code");
    assert_eq!(close.code.0, code);
    assert!(frames[0].payload.len() <= 125);
}
