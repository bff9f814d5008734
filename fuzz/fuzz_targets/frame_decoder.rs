//! The frame decoder of a client fed whatever a hostile server could send.
//!
//! The first input byte picks small limits and a read pattern; the rest is
//! the byte stream. The stream is decoded in messages (once whole, once in
//! chunks: both must agree exactly), then in raw frames, then skipped with
//! `discard_until_close`. Beyond "no panic", every read checks the
//! invariants a caller relies on (see `check_*`).

#![no_main]

use floodgate_proto::bytes::BytesMut;
use floodgate_proto::frame::{MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN};
use floodgate_proto::{Config, Frame, Message, OpCode, Protocol, ProtocolError, Role, State};
use libfuzzer_sys::fuzz_target;

const SEED: u64 = 0x5eed;

fn config(control: u8) -> Config {
    Config {
        max_frame_size: [None, Some(0), Some(125), Some(300)][usize::from(control & 0b11)],
        max_message_size: [None, Some(16), Some(200), Some(1000)]
            [usize::from((control >> 2) & 0b11)],
        auto_pong: control & 0b1_0000 != 0,
    }
}

fn chunk_size(control: u8) -> usize {
    [1, 2, 3, 5, 8, 13, 64, 1000][usize::from(control >> 5)]
}

/// What a read pass saw: every message, then the error it ended with.
#[derive(Debug, PartialEq)]
struct Outcome {
    messages: Vec<Message>,
    error: Option<ProtocolError>,
    output: Vec<u8>,
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, stream)) = data.split_first() else {
        return;
    };
    let config = config(control);

    let whole = read_messages(&config, stream, stream.len().max(1));
    let chunked = read_messages(&config, stream, chunk_size(control));
    // However the bytes are cut, the same messages, error and output.
    assert_eq!(whole, chunked);

    read_frames(&config, stream, chunk_size(control));
});

fn read_messages(config: &Config, stream: &[u8], chunk: usize) -> Outcome {
    let mut p = Protocol::with_seed(Role::Client, config.clone(), SEED);
    let mut buf = BytesMut::new();
    let mut messages = Vec::new();
    for piece in stream.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            let before = buf.len();
            let result = p.read_message(&mut buf);
            assert!(buf.len() <= before, "the read buffer grew");
            match result {
                Ok(Some(message)) => {
                    check_message(&p, config, &message);
                    messages.push(message);
                }
                Ok(None) => {
                    assert!(p.bytes_needed() > buf.len() || p.close_received().is_some());
                    break;
                }
                Err(err) => {
                    check_failed(&mut p, &err);
                    discard(&mut p, &mut buf);
                    return Outcome {
                        messages,
                        error: Some(err),
                        output: p.output().to_vec(),
                    };
                }
            }
        }
    }
    check_output(&p);
    Outcome {
        messages,
        error: None,
        output: p.output().to_vec(),
    }
}

fn check_message(p: &Protocol, config: &Config, message: &Message) {
    match message {
        Message::Text(text) => {
            assert!(std::str::from_utf8(text.as_bytes()).is_ok());
            assert!(config.max_message_size.is_none_or(|max| text.len() <= max));
        }
        Message::Binary(data) => {
            assert!(config.max_message_size.is_none_or(|max| data.len() <= max));
        }
        Message::Ping(payload) | Message::Pong(payload) => {
            assert!(payload.len() <= MAX_CONTROL_PAYLOAD);
        }
        Message::Close(frame) => {
            if let Some(frame) = frame {
                assert!(frame.code.is_sendable());
                assert!(frame.reason.len() <= MAX_CONTROL_PAYLOAD - 2);
            }
            // The close was answered at once: nothing is awaited.
            assert!(p.close_sent());
            assert_eq!(p.state(), State::Closed);
        }
    }
}

/// After an error: a close frame with the error's code is waiting to be
/// sent, the same error comes back from every read, and nothing more can be
/// sent.
fn check_failed(p: &mut Protocol, err: &ProtocolError) {
    assert!(
        p.has_output(),
        "an error left no close frame to send: {err:?}"
    );
    let frames = check_output(p);
    let close = frames.last().expect("a close frame");
    assert_eq!(
        close,
        &Message::Close(Some(floodgate_proto::CloseFrame::new(
            err.close_code(),
            close_reason(close)
        )))
    );
    assert_eq!(p.failure(), Some(err));
    assert_eq!(p.state(), State::Closing);
    assert_eq!(
        p.read_message(&mut BytesMut::from(&[0x81, 0][..])).as_ref(),
        Err(err)
    );
    assert_eq!(p.read_frame(&mut BytesMut::new()).as_ref(), Err(err));
    assert!(p.send_text("late").is_err());
}

fn close_reason(message: &Message) -> String {
    match message {
        Message::Close(Some(frame)) => frame.reason.clone(),
        other => panic!("the output ends with {other:?}, not a close with a code"),
    }
}

/// The output is a valid client stream: a server reads it without error as
/// pongs, then at most one close, last.
fn check_output(p: &Protocol) -> Vec<Message> {
    let mut server = Protocol::with_seed(Role::Server, Config::default(), 1);
    let mut out = BytesMut::from(p.output());
    let mut frames = Vec::new();
    while let Some(message) = server
        .read_message(&mut out)
        .expect("the client's output is valid")
    {
        frames.push(message);
    }
    assert!(out.is_empty(), "the output ends inside a frame");
    for (i, frame) in frames.iter().enumerate() {
        match frame {
            Message::Pong(_) => assert!(p.config().auto_pong),
            Message::Close(_) => assert_eq!(i, frames.len() - 1, "a frame after the close"),
            other => panic!("the client sent {other:?} by itself"),
        }
    }
    frames
}

/// Skipping to the peer's close after a failure must not panic, and must
/// drain what it skips.
fn discard(p: &mut Protocol, buf: &mut BytesMut) {
    let before = buf.len();
    match p.discard_until_close(buf) {
        Ok(true) => assert!(p.close_received().is_some()),
        // Waiting holds at most a partial header or one partial close.
        Ok(false) => assert!(buf.len() < MAX_HEADER_LEN + MAX_CONTROL_PAYLOAD),
        Err(_) => {}
    }
    assert!(buf.len() <= before);
}

fn read_frames(config: &Config, stream: &[u8], chunk: usize) {
    let mut p = Protocol::with_seed(Role::Client, config.clone(), SEED);
    let mut buf = BytesMut::new();
    let mut open: Option<OpCode> = None;
    let mut message_len = 0usize;
    for piece in stream.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match p.read_frame(&mut buf) {
                Ok(Some(frame)) => check_frame(config, &frame, &mut open, &mut message_len),
                Ok(None) => break,
                Err(err) => {
                    check_failed(&mut p, &err);
                    return;
                }
            }
        }
    }
}

/// Frames come out in a legal sequence and within the limits.
fn check_frame(config: &Config, frame: &Frame, open: &mut Option<OpCode>, message_len: &mut usize) {
    assert_eq!(frame.rsv, 0);
    assert!(config
        .max_frame_size
        .is_none_or(|max| frame.payload.len() <= max));
    if frame.opcode.is_control() {
        assert!(frame.fin && frame.payload.len() <= MAX_CONTROL_PAYLOAD);
        return;
    }
    match (frame.opcode, *open) {
        (OpCode::Continuation, Some(_)) => *message_len += frame.payload.len(),
        (OpCode::Text | OpCode::Binary, None) => *message_len = frame.payload.len(),
        (opcode, open) => panic!("{opcode:?} frame accepted with {open:?} open"),
    }
    assert!(config
        .max_message_size
        .is_none_or(|max| *message_len <= max));
    *open = if frame.fin {
        None
    } else if frame.opcode == OpCode::Continuation {
        *open
    } else {
        Some(frame.opcode)
    };
}
