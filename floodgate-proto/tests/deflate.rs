//! permessage-deflate in the protocol: compression and inflation round
//! trips for every window and context mode, the RSV1 rules, and the
//! inflate limit against compression bombs.

mod support;

use floodgate_proto::bytes::BytesMut;
use floodgate_proto::deflate::PerMessageDeflate;
use floodgate_proto::frame::encode_frame;
use floodgate_proto::{Config, Message, OpCode, Protocol, ProtocolError, Role};
use proptest::prelude::*;
use support::{assert_client_fails, raw_frame, server_frame};

fn params(window: u8, no_context: bool) -> PerMessageDeflate {
    let mut p = PerMessageDeflate::default();
    p.client_max_window_bits = window;
    p.server_max_window_bits = window;
    p.client_no_context_takeover = no_context;
    p.server_no_context_takeover = no_context;
    p.threshold = 0;
    p
}

fn pair(p: &PerMessageDeflate, config: Config) -> (Protocol, Protocol) {
    let mut client = Protocol::with_seed(Role::Client, config.clone(), 1);
    let mut server = Protocol::with_seed(Role::Server, config, 2);
    client.set_deflate(Some(p.clone()));
    server.set_deflate(Some(p.clone()));
    (client, server)
}

/// Moves `from`'s output into `to` and reads every message out.
fn deliver(from: &mut Protocol, to: &mut Protocol) -> Result<Vec<Message>, ProtocolError> {
    let mut wire = BytesMut::from(from.output());
    from.consume_output(from.output().len());
    let mut got = Vec::new();
    while let Some(m) = to.read_message(&mut wire)? {
        got.push(m);
    }
    assert!(wire.is_empty());
    Ok(got)
}

/// Compressible text: words from a small vocabulary.
fn wordy(seed: u64, len: usize) -> String {
    const WORDS: [&str; 8] = ["price", "bid", "ask", "BTC-USD", "12.5", "qty", "{", "}"];
    let mut s = String::with_capacity(len + 8);
    let mut x = seed | 1;
    while s.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.push_str(WORDS[(x % 8) as usize]);
        s.push(' ');
    }
    s.truncate(len);
    s
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn messages_round_trip_both_ways_for_every_window_and_context_mode(
        window in 8u8..=15,
        no_context in any::<bool>(),
        messages in prop::collection::vec((any::<bool>(), 0usize..70_000, any::<u64>()), 1..5),
    ) {
        let (mut client, mut server) = pair(&params(window, no_context), Config::default());
        for &(text, len, seed) in &messages {
            let message = if text {
                Message::text(wordy(seed, len))
            } else {
                // Half compressible, half noise.
                let mut data = wordy(seed, len / 2).into_bytes();
                let mut x = seed | 1;
                while data.len() < len {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    data.push((x >> 56) as u8);
                }
                Message::binary(data)
            };
            client.send(&message).unwrap();
            server.send(&message).unwrap();
            prop_assert_eq!(deliver(&mut client, &mut server).unwrap(), vec![message.clone()]);
            prop_assert_eq!(deliver(&mut server, &mut client).unwrap(), vec![message]);
        }
    }

    #[test]
    fn fragmented_compressed_messages_round_trip(
        window in 9u8..=15,
        no_context in any::<bool>(),
        cuts in prop::collection::vec(0usize..5000, 1..6),
        seed in any::<u64>(),
    ) {
        let (mut client, mut server) = pair(&params(window, no_context), Config::default());
        let total: usize = cuts.iter().sum();
        let text = wordy(seed, total);
        for _ in 0..2 {
            let mut at = 0;
            for (i, &cut) in cuts.iter().enumerate() {
                let opcode = if i == 0 { OpCode::Text } else { OpCode::Continuation };
                client.send_frame(opcode, &text.as_bytes()[at..at + cut], i + 1 == cuts.len()).unwrap();
                at += cut;
            }
            prop_assert_eq!(
                deliver(&mut client, &mut server).unwrap(),
                vec![Message::text(text.clone())]
            );
        }
    }
}

#[test]
fn compressed_frames_carry_rsv1_on_the_first_frame_only() {
    let (mut client, _) = pair(&params(15, false), Config::default());
    client.send_frame(OpCode::Binary, &[7; 300], false).unwrap();
    client.send_frame(OpCode::Ping, b"", true).unwrap();
    client
        .send_frame(OpCode::Continuation, &[7; 300], true)
        .unwrap();
    let sent = support::decode_all(client.output());
    assert_eq!(sent[0].rsv, 0b100);
    assert_eq!(sent[1].rsv, 0);
    assert_eq!(sent[2].rsv, 0);
    assert!(sent[0].payload.len() < 50);
}

#[test]
fn the_trailing_empty_block_is_stripped() {
    let (mut client, _) = pair(&params(15, false), Config::default());
    client.send_text("hello hello hello").unwrap();
    let sent = support::decode_all(client.output());
    assert!(!sent[0].payload.ends_with(&[0, 0, 0xff, 0xff]));
}

#[test]
fn messages_under_the_threshold_go_uncompressed() {
    let mut p = params(15, false);
    p.threshold = 100;
    let (mut client, mut server) = pair(&p, Config::default());
    client.send_text(&"a".repeat(99)).unwrap();
    client.send_text(&"a".repeat(100)).unwrap();
    let sent = support::decode_all(client.output());
    assert_eq!(sent[0].rsv, 0);
    assert_eq!(sent[1].rsv, 0b100);
    let got = deliver(&mut client, &mut server).unwrap();
    assert_eq!(got[0].len(), 99);
    assert_eq!(got[1].len(), 100);
}

#[test]
fn context_takeover_shrinks_repeats_and_no_context_takeover_does_not() {
    let text = wordy(3, 2000);
    for (no_context, smaller) in [(false, true), (true, false)] {
        let (mut client, mut server) = pair(&params(15, no_context), Config::default());
        client.send_text(&text).unwrap();
        let first = client.output().len();
        deliver(&mut client, &mut server).unwrap();
        client.send_text(&text).unwrap();
        let second = client.output().len();
        assert_eq!(
            deliver(&mut client, &mut server).unwrap(),
            [Message::text(text.clone())]
        );
        assert_eq!(second < first / 4, smaller, "{first} then {second}");
    }
}

#[test]
fn an_8_bit_window_never_reaches_further_back_than_256_bytes() {
    // A 300-byte block of noise repeated: matches are 300 bytes back.
    let mut block = Vec::new();
    let mut x = 99u64;
    for _ in 0..300 {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        block.push((x >> 56) as u8);
    }
    let data = block.repeat(20);
    let size = |window| {
        let (mut client, _) = pair(&params(window, false), Config::default());
        client.send_binary(&data).unwrap();
        client.output().len()
    };
    // Compressed with 9 bits, but no match at distance 300 is used.
    assert!(size(8) > data.len() * 9 / 10, "{}", size(8));
    assert!(size(10) < data.len() / 5, "{}", size(10));
}

#[test]
fn rsv1_on_a_control_or_continuation_frame_is_a_protocol_error() {
    let mut client = support::client();
    client.set_deflate(Some(params(15, false)));
    // 0xC9: FIN + RSV1 + ping.
    assert_client_fails(
        client,
        &raw_frame(0xC9, b""),
        ProtocolError::MisplacedRsv1(OpCode::Ping),
        1002,
    );
    let mut client = support::client();
    client.set_deflate(Some(params(15, false)));
    let mut bytes = raw_frame(0x01, b"ab"); // text, not FIN, uncompressed
    bytes.extend(raw_frame(0xC0, b"cd")); // FIN + RSV1 + continuation
    assert_client_fails(
        client,
        &bytes,
        ProtocolError::MisplacedRsv1(OpCode::Continuation),
        1002,
    );
}

#[test]
fn rsv1_without_negotiated_deflate_is_a_reserved_bit_error() {
    assert_client_fails(
        support::client(),
        &raw_frame(0xC1, b"\x00"),
        ProtocolError::ReservedBits { bits: 0b100 },
        1002,
    );
}

#[test]
fn uncompressed_messages_still_pass_when_deflate_is_on() {
    let mut client = support::client();
    client.set_deflate(Some(params(15, false)));
    let mut wire = BytesMut::from(&server_frame(true, OpCode::Text, b"plain")[..]);
    assert_eq!(
        client.read_message(&mut wire).unwrap(),
        Some(Message::text("plain"))
    );
}

/// Deflate data as a peer would send it, tail stripped.
fn compressed(data: &[u8], finish: bool) -> Vec<u8> {
    let mut c = flate2::Compress::new(flate2::Compression::default(), false);
    let mut out = Vec::with_capacity(data.len() / 2 + 1024);
    let mut input = data;
    let flush = if finish {
        flate2::FlushCompress::Finish
    } else {
        flate2::FlushCompress::Sync
    };
    loop {
        let before = c.total_in();
        let status = c.compress_vec(input, &mut out, flush).unwrap();
        input = &input[(c.total_in() - before) as usize..];
        if status == flate2::Status::StreamEnd
            || (!finish && input.is_empty() && out.len() < out.capacity())
        {
            break;
        }
        out.reserve(out.capacity().max(1024));
    }
    if out.ends_with(&[0, 0, 0xff, 0xff]) {
        out.truncate(out.len() - 4);
    }
    out
}

fn compressed_frame(opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(&mut out, true, 0b100, opcode, None, payload);
    out
}

#[test]
fn a_compression_bomb_fails_with_1009_having_inflated_at_most_the_limit() {
    const LIMIT: usize = 1 << 20;
    let bomb = compressed(&vec![0u8; 100 << 20], false);
    assert!(bomb.len() < 200 << 10, "{} bytes", bomb.len());
    let mut client = support::client_with_limits(Some(16 << 20), Some(LIMIT));
    client.set_deflate(Some(params(15, false)));
    let mut wire = BytesMut::from(&compressed_frame(OpCode::Binary, &bomb)[..]);
    let err = client.read_message(&mut wire).unwrap_err();
    match err {
        ProtocolError::MessageTooLarge { len, max } => {
            assert_eq!(max, LIMIT);
            assert!(
                len > LIMIT as u64 && len <= LIMIT as u64 + 1,
                "inflated {len}"
            );
        }
        other => panic!("expected MessageTooLarge, got {other:?}"),
    }
    support::assert_failing_close(&client, 1009);
}

#[test]
fn a_fragmented_bomb_is_stopped_across_fragments() {
    const LIMIT: usize = 1 << 20;
    let bomb = compressed(&vec![b'z'; 8 << 20], false);
    let mut client = support::client_with_limits(Some(16 << 20), Some(LIMIT));
    client.set_deflate(Some(params(15, false)));
    let (a, b) = bomb.split_at(bomb.len() / 2);
    let mut bytes = Vec::new();
    encode_frame(&mut bytes, false, 0b100, OpCode::Binary, None, a);
    encode_frame(&mut bytes, true, 0, OpCode::Continuation, None, b);
    let mut wire = BytesMut::from(&bytes[..]);
    let err = client.read_message(&mut wire).unwrap_err();
    assert!(
        matches!(err, ProtocolError::MessageTooLarge { len, .. } if len <= LIMIT as u64 + 1),
        "{err:?}"
    );
}

#[test]
fn a_message_of_exactly_the_limit_inflates() {
    let mut client = support::client_with_limits(None, Some(10_000));
    client.set_deflate(Some(params(15, false)));
    let data = vec![b'q'; 10_000];
    let mut wire = BytesMut::from(&compressed_frame(OpCode::Binary, &compressed(&data, false))[..]);
    assert_eq!(
        client.read_message(&mut wire).unwrap(),
        Some(Message::binary(data))
    );
}

#[test]
fn invalid_deflate_data_fails_with_1007() {
    let mut client = support::client();
    client.set_deflate(Some(params(15, false)));
    // BTYPE 11 (reserved) in the first block header.
    assert_client_fails(
        client,
        &compressed_frame(OpCode::Binary, &[0xff, 0xff, 0xff]),
        ProtocolError::InvalidCompressedData,
        1007,
    );
}

#[test]
fn utf8_is_checked_on_the_inflated_text() {
    let mut client = support::client();
    client.set_deflate(Some(params(15, false)));
    assert_client_fails(
        client,
        &compressed_frame(OpCode::Text, &compressed(b"ok \xff\xfe not", false)),
        ProtocolError::InvalidUtf8,
        1007,
    );
}

#[test]
fn a_message_ending_its_deflate_stream_with_bfinal_is_accepted() {
    let mut client = support::client();
    client.set_deflate(Some(params(15, false)));
    let mut bytes = compressed_frame(OpCode::Text, &compressed(b"first", true));
    bytes.extend(compressed_frame(
        OpCode::Text,
        &compressed(b"second", false),
    ));
    let mut wire = BytesMut::from(&bytes[..]);
    assert_eq!(
        client.read_message(&mut wire).unwrap(),
        Some(Message::text("first"))
    );
    assert_eq!(
        client.read_message(&mut wire).unwrap(),
        Some(Message::text("second"))
    );
}

#[test]
fn read_frame_returns_inflated_fragments() {
    let mut client = support::client();
    client.set_deflate(Some(params(15, false)));
    let data = compressed(b"hello fragmented world", false);
    let (a, b) = data.split_at(data.len() / 2);
    let mut bytes = Vec::new();
    encode_frame(&mut bytes, false, 0b100, OpCode::Text, None, a);
    encode_frame(&mut bytes, true, 0, OpCode::Continuation, None, b);
    let mut wire = BytesMut::from(&bytes[..]);
    let mut text = Vec::new();
    while let Some(frame) = client.read_frame(&mut wire).unwrap() {
        text.extend_from_slice(&frame.payload);
    }
    assert_eq!(text, b"hello fragmented world");
}

#[test]
fn empty_messages_round_trip_after_others_with_and_without_context() {
    for no_context in [false, true] {
        let (mut client, mut server) = pair(&params(15, no_context), Config::default());
        for text in ["", "", "abc abc abc", "", "x"] {
            client.send_text(text).unwrap();
            server.send_text(text).unwrap();
            assert_eq!(
                deliver(&mut client, &mut server).unwrap(),
                [Message::text(text)]
            );
            assert_eq!(
                deliver(&mut server, &mut client).unwrap(),
                [Message::text(text)]
            );
        }
        // An empty last fragment after data, and an empty first one.
        client
            .send_frame(OpCode::Binary, b"data data", false)
            .unwrap();
        client.send_frame(OpCode::Continuation, b"", true).unwrap();
        client.send_frame(OpCode::Binary, b"", false).unwrap();
        client
            .send_frame(OpCode::Continuation, b"more", true)
            .unwrap();
        assert_eq!(
            deliver(&mut client, &mut server).unwrap(),
            [
                Message::binary(&b"data data"[..]),
                Message::binary(&b"more"[..])
            ]
        );
    }
}
