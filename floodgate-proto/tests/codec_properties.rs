//! Properties of the codec: what one side encodes the other decodes to the
//! same messages, whatever the size, fragmentation, mask or read pattern;
//! and no input, however broken, makes the decoder or the handshake parser
//! panic.

mod support;

use floodgate_proto::bytes::BytesMut;
use floodgate_proto::frame::encode_frame;
use floodgate_proto::handshake::{parse_response_head, ClientHandshake, ClientRequest};
use floodgate_proto::{Config, Message, OpCode, Protocol, ProtocolError, Role};
use proptest::prelude::*;
use proptest::sample::Index;

// ----- strategies ----------------------------------------------------------

/// Payload sizes: mostly small, often exactly at a length-encoding boundary,
/// sometimes up to 70 000 bytes.
fn payload_len() -> impl Strategy<Value = usize> {
    prop_oneof![
        4 => 0usize..300,
        2 => prop::sample::select(vec![0usize, 1, 124, 125, 126, 127, 65535, 65536]),
        1 => 0usize..70_000,
    ]
}

/// A cheap deterministic generator: payloads are made from a seed rather
/// than drawn byte by byte, so 70 000-byte cases stay fast in debug builds.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Text of exactly `len` bytes with 1- to 4-byte code points.
fn text_of_len(len: usize, seed: u64) -> String {
    const CHARS: [char; 8] = ['a', 'Z', ' ', 'é', 'ж', '€', '한', '𝄞'];
    let mut rng = XorShift(seed | 1);
    let mut s = String::with_capacity(len);
    while s.len() < len {
        let c = CHARS[(rng.next() % CHARS.len() as u64) as usize];
        if s.len() + c.len_utf8() <= len {
            s.push(c);
        } else {
            s.push('.');
        }
    }
    s
}

fn bytes_of_len(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = XorShift(seed | 1);
    (0..len).map(|_| rng.next() as u8).collect()
}

/// A data message of some size.
fn data_message() -> impl Strategy<Value = Message> {
    (any::<bool>(), payload_len(), any::<u64>()).prop_map(|(text, len, seed)| {
        if text {
            Message::text(text_of_len(len, seed))
        } else {
            Message::binary(bytes_of_len(len, seed))
        }
    })
}

/// A small data message, for sequences of several.
fn small_message() -> impl Strategy<Value = Message> {
    prop_oneof![
        "\\PC{0,40}".prop_map(Message::text),
        prop::collection::vec(any::<u8>(), 0..200).prop_map(Message::binary),
    ]
}

/// Cut points into a payload (sorted; duplicates make empty fragments).
fn cuts() -> impl Strategy<Value = Vec<Index>> {
    prop::collection::vec(any::<Index>(), 0..8)
}

fn resolve_cuts(len: usize, cuts: &[Index]) -> Vec<usize> {
    let mut points: Vec<usize> = cuts.iter().map(|i| i.index(len + 1)).collect();
    points.sort_unstable();
    points
}

/// `payload` split at `cuts`: at least one piece, possibly empty ones.
fn split<'a>(payload: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut pieces = Vec::new();
    let mut start = 0;
    for &cut in cuts {
        pieces.push(&payload[start..cut]);
        start = cut;
    }
    pieces.push(&payload[start..]);
    pieces
}

fn opcode_of(message: &Message) -> OpCode {
    match message {
        Message::Text(_) => OpCode::Text,
        _ => OpCode::Binary,
    }
}

/// Sends `message` through `sender` as fragments cut at `cuts`. When `ping`
/// is set, a ping goes after the first fragment (or before an unfragmented
/// message), so it always arrives before the message is complete.
fn send_fragmented(sender: &mut Protocol, message: &Message, cuts: &[Index], ping: bool) {
    let payload = message.as_bytes();
    let cuts = resolve_cuts(payload.len(), cuts);
    let pieces = split(payload, &cuts);
    if ping && pieces.len() == 1 {
        sender.send_ping(b"between").unwrap();
    }
    for (i, piece) in pieces.iter().enumerate() {
        let opcode = if i == 0 {
            opcode_of(message)
        } else {
            OpCode::Continuation
        };
        sender
            .send_frame(opcode, piece, i == pieces.len() - 1)
            .unwrap();
        if ping && i == 0 && pieces.len() > 1 {
            sender.send_ping(b"between").unwrap();
        }
    }
}

/// Feeds `bytes` to `receiver` in pieces cut at `cuts`, collecting every
/// message; panics on a protocol error.
fn receive_in_pieces(receiver: &mut Protocol, bytes: &[u8], cuts: &[Index]) -> Vec<Message> {
    let cuts = resolve_cuts(bytes.len(), cuts);
    let mut buf = BytesMut::new();
    let mut messages = Vec::new();
    for piece in split(bytes, &cuts) {
        buf.extend_from_slice(piece);
        while let Some(message) = receiver.read_message(&mut buf).expect("a valid stream") {
            messages.push(message);
        }
    }
    assert!(buf.is_empty(), "{} bytes left undecoded", buf.len());
    messages
}

fn expected(message: &Message, ping: bool) -> Vec<Message> {
    let mut out = Vec::new();
    if ping {
        out.push(Message::Ping("between".into()));
    }
    out.push(message.clone());
    out
}

// ----- round trips ---------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn what_a_server_sends_a_client_reads_back(
        message in data_message(),
        fragment_cuts in cuts(),
        read_cuts in cuts(),
        ping in any::<bool>(),
    ) {
        let mut server = Protocol::with_seed(Role::Server, Config::default(), 1);
        send_fragmented(&mut server, &message, &fragment_cuts, ping);
        let mut client = Protocol::with_seed(Role::Client, Config::default(), 2);
        let got = receive_in_pieces(&mut client, server.output(), &read_cuts);
        prop_assert_eq!(got, expected(&message, ping));
        prop_assert!(client.failure().is_none());
    }

    #[test]
    fn what_a_client_sends_a_server_reads_back_unmasked(
        message in data_message(),
        fragment_cuts in cuts(),
        read_cuts in cuts(),
        ping in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let mut client = Protocol::with_seed(Role::Client, Config::default(), seed);
        send_fragmented(&mut client, &message, &fragment_cuts, ping);
        let mut server = Protocol::with_seed(Role::Server, Config::default(), 3);
        let got = receive_in_pieces(&mut server, client.output(), &read_cuts);
        prop_assert_eq!(got, expected(&message, ping));
    }

    #[test]
    fn frames_encoded_with_any_mask_decode_to_the_same_message(
        message in data_message(),
        fragment_cuts in cuts(),
        masks in prop::collection::vec(any::<[u8; 4]>(), 1..4),
    ) {
        let payload = message.as_bytes();
        let cuts = resolve_cuts(payload.len(), &fragment_cuts);
        let pieces = split(payload, &cuts);
        let mut masked = Vec::new();
        let mut unmasked = Vec::new();
        for (i, piece) in pieces.iter().enumerate() {
            let opcode = if i == 0 { opcode_of(&message) } else { OpCode::Continuation };
            let fin = i == pieces.len() - 1;
            encode_frame(&mut masked, fin, 0, opcode, Some(masks[i % masks.len()]), piece);
            encode_frame(&mut unmasked, fin, 0, opcode, None, piece);
        }
        let mut server = Protocol::with_seed(Role::Server, Config::default(), 3);
        prop_assert_eq!(receive_in_pieces(&mut server, &masked, &[]), vec![message.clone()]);
        let mut client = Protocol::with_seed(Role::Client, Config::default(), 4);
        prop_assert_eq!(receive_in_pieces(&mut client, &unmasked, &[]), vec![message]);
    }

    #[test]
    fn sequences_of_messages_survive_any_read_pattern(
        messages in prop::collection::vec((small_message(), cuts(), any::<bool>()), 1..6),
        read_cuts in prop::collection::vec(any::<Index>(), 0..20),
        seed in any::<u64>(),
    ) {
        let mut client = Protocol::with_seed(Role::Client, Config::default(), seed);
        let mut server = Protocol::with_seed(Role::Server, Config::default(), seed);
        let mut want = Vec::new();
        for (message, fragment_cuts, ping) in &messages {
            send_fragmented(&mut client, message, fragment_cuts, *ping);
            send_fragmented(&mut server, message, fragment_cuts, *ping);
            want.extend(expected(message, *ping));
        }
        let mut to_server = Protocol::with_seed(Role::Server, Config::default(), 5);
        let mut to_client = Protocol::with_seed(Role::Client, Config::default(), 6);
        prop_assert_eq!(&receive_in_pieces(&mut to_server, client.output(), &read_cuts), &want);
        prop_assert_eq!(&receive_in_pieces(&mut to_client, server.output(), &read_cuts), &want);
        // Every ping was answered with a pong carrying its payload.
        let pings = messages.iter().filter(|(_, _, ping)| *ping).count();
        let pongs = support::decode_all(to_client.output());
        prop_assert_eq!(pongs.len(), pings);
        prop_assert!(pongs.iter().all(|f| f.opcode == OpCode::Pong && f.masked && f.payload == b"between"));
    }
}

// ----- never panics --------------------------------------------------------

/// Drives `p` over `bytes` cut at `cuts` in message or frame mode. Panics
/// only if an invariant is broken.
fn drive(p: &mut Protocol, bytes: &[u8], cuts: &[Index], frames: bool) {
    let cuts = resolve_cuts(bytes.len(), cuts);
    let mut buf = BytesMut::new();
    for piece in split(bytes, &cuts) {
        buf.extend_from_slice(piece);
        loop {
            let before = buf.len();
            let result = if frames {
                p.read_frame(&mut buf).map(|f| f.map(|f| f.payload.len()))
            } else {
                p.read_message(&mut buf).map(|m| {
                    m.map(|m| {
                        if let Message::Text(t) = &m {
                            assert!(std::str::from_utf8(t.as_bytes()).is_ok());
                        }
                        m.len()
                    })
                })
            };
            assert!(buf.len() <= before, "the buffer grew");
            match result {
                Ok(Some(_)) => continue,
                Ok(None) => break,
                Err(err) => {
                    check_failed(p, &err);
                    return;
                }
            }
        }
    }
}

/// After an error: the same error again, and a close with its code queued.
fn check_failed(p: &mut Protocol, err: &ProtocolError) {
    assert_eq!(p.read_message(&mut BytesMut::new()).as_ref(), Err(err));
    assert_eq!(p.read_frame(&mut BytesMut::new()).as_ref(), Err(err));
    assert!(p.has_output(), "an error left no close frame to send");
    let out = support::decode_all(p.output());
    let last = out.last().expect("a close frame");
    assert_eq!(last.opcode, OpCode::Close);
    assert_eq!(last.masked, p.role() == Role::Client);
    assert_eq!(last.close().map(|f| f.code), Some(err.close_code()));
}

/// Bytes shaped like frames (any first byte, any mask bit, correct lengths
/// from 0 to 300), so random input reaches past the header checks.
fn frame_like() -> impl Strategy<Value = Vec<u8>> {
    let frame = (
        any::<u8>(),
        any::<Option<[u8; 4]>>(),
        prop::collection::vec(any::<u8>(), 0..300),
    );
    prop::collection::vec(frame, 0..8).prop_map(|frames| {
        let mut out = Vec::new();
        for (b0, mask, payload) in frames {
            let start = out.len();
            let opcode = OpCode::from_u8(b0 & 0x0F).unwrap_or(OpCode::Binary);
            encode_frame(
                &mut out,
                b0 & 0x80 != 0,
                (b0 >> 4) & 7,
                opcode,
                mask,
                &payload,
            );
            out[start] = b0; // keep reserved opcodes
        }
        out
    })
}

fn small_limits() -> impl Strategy<Value = Config> {
    (
        prop::option::of(0usize..400),
        prop::option::of(0usize..600),
        any::<bool>(),
    )
        .prop_map(|(max_frame_size, max_message_size, auto_pong)| Config {
            max_frame_size,
            max_message_size,
            auto_pong,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn decoding_arbitrary_bytes_never_panics(
        bytes in prop::collection::vec(any::<u8>(), 0..600),
        cuts in prop::collection::vec(any::<Index>(), 0..10),
        config in small_limits(),
    ) {
        for role in [Role::Client, Role::Server] {
            for frames in [false, true] {
                let mut p = Protocol::with_seed(role, config.clone(), 9);
                drive(&mut p, &bytes, &cuts, frames);
            }
        }
    }

    #[test]
    fn decoding_frame_shaped_bytes_never_panics(
        bytes in frame_like(),
        cuts in prop::collection::vec(any::<Index>(), 0..10),
        config in small_limits(),
    ) {
        for role in [Role::Client, Role::Server] {
            for frames in [false, true] {
                let mut p = Protocol::with_seed(role, config.clone(), 9);
                drive(&mut p, &bytes, &cuts, frames);
                let mut rest = BytesMut::from(&bytes[..]);
                let _ = p.discard_until_close(&mut rest);
            }
        }
    }

    #[test]
    fn parsing_arbitrary_response_heads_never_panics(
        bytes in prop::collection::vec(any::<u8>(), 0..400),
        max in 0usize..512,
    ) {
        if let Ok(Some((_, len))) = parse_response_head(&bytes, max) {
            prop_assert!(len <= bytes.len() && len <= max);
        }
    }

    #[test]
    fn parsing_and_accepting_header_shaped_responses_never_panics(
        status in "[0-9]{3}",
        headers in prop::collection::vec(
            (
                prop::sample::select(vec![
                    "Upgrade", "Connection", "Sec-WebSocket-Accept", "Sec-WebSocket-Protocol",
                    "Sec-WebSocket-Extensions", "Content-Length", "X-Other",
                ]),
                "[ -~\\t\\x80-\\xff]{0,40}",
            ),
            0..8,
        ),
        body in prop::collection::vec(any::<u8>(), 0..50),
    ) {
        let mut text = format!("HTTP/1.1 {status} Whatever\r\n");
        for (name, value) in &headers {
            text.push_str(&format!("{name}: {value}\r\n"));
        }
        text.push_str("\r\n");
        let mut bytes = text.into_bytes();
        bytes.extend_from_slice(&body);
        let request = ClientRequest { host: "h".into(), path: "/".into(), subprotocols: vec!["chat".into()], ..Default::default() };
        let (handshake, _) = ClientHandshake::with_key(&request, "dGhlIHNhbXBsZSBub25jZQ==".into()).unwrap();
        if let Ok(Some((head, len))) = parse_response_head(&bytes, 4096) {
            prop_assert!(len <= bytes.len());
            let status = head.status;
            if let Ok(response) = handshake.accept(head, &bytes[len..]) {
                prop_assert_eq!(status.as_u16(), 101);
                prop_assert!(response.subprotocol.as_deref().is_none_or(|p| p == "chat"));
            }
        }
    }
}
