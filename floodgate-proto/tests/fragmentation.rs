//! Messages put together from fragments, control frames between fragments,
//! and input arriving in arbitrarily small pieces.

mod support;

use floodgate_proto::bytes::{Bytes, BytesMut};
use floodgate_proto::{Frame, Message, OpCode, Protocol, ProtocolError};
use support::*;

/// Every message `client` can decode from `buf` right now.
fn read_all(client: &mut Protocol, buf: &mut BytesMut) -> Vec<Message> {
    let mut messages = Vec::new();
    while let Some(message) = client.read_message(buf).expect("valid input") {
        messages.push(message);
    }
    messages
}

/// `payload` as a fragmented message: the first frame with `opcode`, then
/// continuations, cut at `cuts`.
fn fragments(opcode: OpCode, payload: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut bounds = vec![0];
    bounds.extend_from_slice(cuts);
    bounds.push(payload.len());
    let pieces: Vec<&[u8]> = bounds.windows(2).map(|w| &payload[w[0]..w[1]]).collect();
    pieces
        .iter()
        .enumerate()
        .map(|(i, piece)| {
            let op = if i == 0 { opcode } else { OpCode::Continuation };
            server_frame(i == pieces.len() - 1, op, piece)
        })
        .collect()
}

#[test]
fn text_is_assembled_from_one_fragment_per_byte_even_inside_code_points() {
    let text = "héllo wörld € 𝄞 κόσμε";
    let cuts: Vec<usize> = (1..text.len()).collect();
    let frames = fragments(OpCode::Text, text.as_bytes(), &cuts);
    assert_eq!(frames.len(), text.len());
    let mut c = client();
    let mut buf = concat(&frames);
    assert_eq!(read_all(&mut c, &mut buf), vec![Message::text(text)]);
    assert!(buf.is_empty());
}

#[test]
fn binary_is_assembled_from_many_fragments_including_empty_ones() {
    let data: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
    // Empty first, middle and last fragments, and a 126-byte-length one.
    let cuts = [0, 0, 10, 10, 10, 500, 999, 1000, 1000];
    let frames = fragments(OpCode::Binary, &data, &cuts);
    assert_eq!(frames.len(), 10);
    let mut c = client();
    let mut buf = concat(&frames);
    assert_eq!(read_all(&mut c, &mut buf), vec![Message::binary(data)]);
}

#[test]
fn a_message_of_only_empty_fragments_is_an_empty_message() {
    for opcode in [OpCode::Text, OpCode::Binary] {
        let frames = fragments(opcode, b"", &[0, 0, 0]);
        let mut c = client();
        let mut buf = concat(&frames);
        let expected = match opcode {
            OpCode::Text => Message::text(""),
            _ => Message::binary(Vec::new()),
        };
        assert_eq!(read_all(&mut c, &mut buf), vec![expected]);
    }
}

#[test]
fn consecutive_fragmented_messages_do_not_mix() {
    let mut frames = fragments(OpCode::Text, b"first message", &[3, 7]);
    frames.extend(fragments(OpCode::Binary, b"second", &[1]));
    frames.push(server_frame(true, OpCode::Text, b"third"));
    frames.extend(fragments(OpCode::Text, b"fourth", &[2, 4]));
    let mut c = client();
    let mut buf = concat(&frames);
    assert_eq!(
        read_all(&mut c, &mut buf),
        vec![
            Message::text("first message"),
            Message::binary(&b"second"[..]),
            Message::text("third"),
            Message::text("fourth"),
        ]
    );
}

#[test]
fn control_frames_between_fragments_are_returned_and_pings_answered() {
    let mut c = client();
    let mut buf = concat(&[
        server_frame(false, OpCode::Text, b"Hel"),
        server_frame(true, OpCode::Ping, b"one"),
        server_frame(false, OpCode::Continuation, b"lo, "),
        server_frame(true, OpCode::Pong, b"unsolicited"),
        server_frame(true, OpCode::Ping, b""),
        server_frame(true, OpCode::Ping, b"three"),
        server_frame(true, OpCode::Continuation, b"world"),
    ]);
    assert_eq!(
        read_all(&mut c, &mut buf),
        vec![
            Message::Ping(Bytes::from_static(b"one")),
            Message::Pong(Bytes::from_static(b"unsolicited")),
            Message::Ping(Bytes::new()),
            Message::Ping(Bytes::from_static(b"three")),
            Message::text("Hello, world"),
        ]
    );
    let pongs = client_output(&c);
    let payloads: Vec<(OpCode, &[u8])> = pongs.iter().map(|f| (f.opcode, &f.payload[..])).collect();
    assert_eq!(
        payloads,
        vec![
            (OpCode::Pong, &b"one"[..]),
            (OpCode::Pong, b""),
            (OpCode::Pong, b"three")
        ]
    );
    assert!(pongs.iter().all(|f| f.fin));
}

#[test]
fn pings_are_answered_before_the_application_reads_the_message() {
    let mut c = client();
    let mut buf = concat(&[
        server_frame(false, OpCode::Binary, b"a"),
        server_frame(true, OpCode::Ping, b"now"),
    ]);
    assert!(matches!(
        c.read_message(&mut buf),
        Ok(Some(Message::Ping(_)))
    ));
    // The pong is already queued although the message is still incomplete.
    let out = client_output(&c);
    assert_eq!(
        (out[0].opcode, &out[0].payload[..]),
        (OpCode::Pong, &b"now"[..])
    );
}

#[test]
fn a_close_between_fragments_abandons_the_unfinished_message() {
    let mut c = client();
    let mut buf = concat(&[
        server_frame(false, OpCode::Text, b"never "),
        server_close(1001, b""),
        server_frame(true, OpCode::Continuation, b"finished"),
    ]);
    let messages = read_all(&mut c, &mut buf);
    assert_eq!(messages.len(), 1);
    assert!(matches!(&messages[0], Message::Close(Some(f)) if f.code.0 == 1001));
    assert_eq!(c.read_message(&mut buf), Ok(None));
}

/// A stream with every length form, fragments, control frames and a close.
fn varied_stream() -> Vec<Vec<u8>> {
    let long: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
    let mut frames = vec![
        server_frame(true, OpCode::Text, b"short"),
        server_frame(true, OpCode::Binary, &[9; 126]),
        server_frame(true, OpCode::Ping, b"ping-1"),
        server_frame(true, OpCode::Binary, &long),
        server_frame(true, OpCode::Text, b""),
    ];
    frames.extend(fragments(
        OpCode::Text,
        "ünïcödé split everywhere €𝄞".as_bytes(),
        &[1, 2, 3, 10, 30],
    ));
    frames.insert(7, server_frame(true, OpCode::Ping, b"ping-2"));
    frames.extend(fragments(OpCode::Binary, &long[..300], &[0, 125, 126, 300]));
    frames.push(server_close(1000, b"done"));
    frames
}

#[test]
fn feeding_one_byte_at_a_time_gives_the_same_messages_as_feeding_everything() {
    let stream = concat(&varied_stream());

    let mut whole = client();
    let mut buf = stream.clone();
    let expected = read_all(&mut whole, &mut buf);
    assert_eq!(expected.len(), 9);
    assert!(matches!(expected.last(), Some(Message::Close(Some(_)))));

    let mut trickled = client();
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    for &byte in stream.iter() {
        buf.extend_from_slice(&[byte]);
        got.extend(read_all(&mut trickled, &mut buf));
    }
    assert_eq!(got, expected);
    assert!(buf.is_empty());
    // Same seed, same pongs and close reply: byte-for-byte the same output.
    assert_eq!(trickled.output(), whole.output());
    assert_eq!(client_output(&trickled).len(), 3);
}

/// Feeds `stream` the way an I/O layer that trusts `bytes_needed()` would:
/// it reads exactly the missing bytes, never more, and stalls (fails the
/// test) if asked for bytes the peer will never send.
fn feed_as_asked(mut p: Protocol, stream: &[u8]) -> Vec<Message> {
    let mut buf = BytesMut::new();
    let mut rest = stream;
    let mut messages = read_all(&mut p, &mut buf);
    while !rest.is_empty() {
        let want = p.bytes_needed().saturating_sub(buf.len());
        assert!(
            want > 0,
            "bytes_needed() is satisfied but no progress was made"
        );
        assert!(
            want <= rest.len(),
            "asked for {want} more bytes but the stream only has {} left: a reader would stall",
            rest.len()
        );
        buf.extend_from_slice(&rest[..want]);
        rest = &rest[want..];
        messages.extend(read_all(&mut p, &mut buf));
    }
    assert!(buf.is_empty());
    messages
}

#[test]
fn bytes_needed_never_asks_for_more_than_the_next_frame_needs() {
    let frames = varied_stream();
    // Every frame is the last one once: the hint must not reach past it.
    for end in 1..=frames.len() {
        let stream = concat(&frames[..end]);
        let messages = feed_as_asked(client(), &stream);
        let mut whole = client();
        assert_eq!(
            messages,
            read_all(&mut whole, &mut stream.clone()),
            "first {end} frames"
        );
    }
}

#[test]
fn bytes_needed_never_asks_a_server_for_more_than_a_masked_frame_needs() {
    let key = [1, 2, 3, 4];
    // The shortest masked frames: 6 bytes of header, no payload.
    for frames in [
        vec![client_frame(true, OpCode::Ping, key, b"")],
        vec![
            client_frame(true, OpCode::Text, key, b"x"),
            client_frame(true, OpCode::Binary, key, b""),
        ],
    ] {
        let stream = concat(&frames);
        let server = floodgate_proto::Protocol::with_seed(
            floodgate_proto::Role::Server,
            Default::default(),
            1,
        );
        assert_eq!(feed_as_asked(server, &stream).len(), frames.len());
    }
}

#[test]
fn read_frame_returns_raw_fragments_with_their_fin_flags() {
    let mut c = client();
    let mut buf = concat(&[
        server_frame(false, OpCode::Text, b"he"),
        server_frame(true, OpCode::Ping, b"p"),
        server_frame(false, OpCode::Continuation, b""),
        server_frame(false, OpCode::Continuation, b"ll"),
        server_frame(true, OpCode::Continuation, b"o"),
        server_frame(true, OpCode::Binary, &[1, 2, 3]),
    ]);
    let mut frames = Vec::new();
    while let Some(frame) = c.read_frame(&mut buf).unwrap() {
        frames.push(frame);
    }
    let frame = |fin, opcode, payload: &'static [u8]| Frame {
        fin,
        rsv: 0,
        opcode,
        payload: Bytes::from_static(payload),
    };
    assert_eq!(
        frames,
        vec![
            frame(false, OpCode::Text, b"he"),
            frame(true, OpCode::Ping, b"p"),
            frame(false, OpCode::Continuation, b""),
            frame(false, OpCode::Continuation, b"ll"),
            frame(true, OpCode::Continuation, b"o"),
            frame(true, OpCode::Binary, &[1, 2, 3]),
        ]
    );
    // The ping was answered in frame mode too.
    assert_eq!(client_output(&c)[0].opcode, OpCode::Pong);
}

#[test]
fn read_frame_still_enforces_fragment_sequencing() {
    let mut c = client();
    let mut buf = concat(&[
        server_frame(false, OpCode::Binary, b"a"),
        server_frame(true, OpCode::Continuation, b"b"),
        server_frame(true, OpCode::Continuation, b"c"),
    ]);
    assert!(c.read_frame(&mut buf).unwrap().is_some());
    assert!(c.read_frame(&mut buf).unwrap().is_some());
    assert_eq!(
        c.read_frame(&mut buf),
        Err(ProtocolError::ContinuationWithoutStart)
    );
    assert_failing_close(&c, 1002);
}

#[test]
fn read_frame_still_checks_utf8_across_text_fragments() {
    let mut c = client();
    let mut buf = concat(&[
        server_frame(false, OpCode::Text, b"\xe2"),
        server_frame(false, OpCode::Continuation, b"\x82"),
        server_frame(true, OpCode::Continuation, b"\xac!"),
        server_frame(false, OpCode::Text, b"\xe2"),
        server_frame(true, OpCode::Continuation, b"\x28"),
    ]);
    for _ in 0..4 {
        assert!(c.read_frame(&mut buf).unwrap().is_some());
    }
    assert_eq!(c.read_frame(&mut buf), Err(ProtocolError::InvalidUtf8));
    assert_failing_close(&c, 1007);
}

#[test]
fn read_frame_counts_fragments_towards_max_message_size() {
    let mut c = client_with_limits(None, Some(5));
    let mut buf = concat(&[
        server_frame(false, OpCode::Binary, b"abc"),
        server_frame(true, OpCode::Continuation, b"def"),
    ]);
    assert!(c.read_frame(&mut buf).unwrap().is_some());
    assert_eq!(
        c.read_frame(&mut buf),
        Err(ProtocolError::MessageTooLarge { len: 6, max: 5 })
    );
}

#[test]
fn read_frame_and_read_message_can_alternate_between_messages() {
    let mut c = client();
    let mut buf = concat(&[
        server_frame(false, OpCode::Text, b"a"),
        server_frame(true, OpCode::Continuation, b"b"),
        server_frame(false, OpCode::Text, b"c"),
        server_frame(true, OpCode::Continuation, b"d"),
        server_frame(true, OpCode::Binary, b"e"),
    ]);
    assert!(!c.read_frame(&mut buf).unwrap().unwrap().fin);
    assert!(c.read_frame(&mut buf).unwrap().unwrap().fin);
    assert_eq!(c.read_message(&mut buf), Ok(Some(Message::text("cd"))));
    assert_eq!(
        c.read_frame(&mut buf).unwrap().unwrap().opcode,
        OpCode::Binary
    );
}

#[test]
#[should_panic(expected = "read_frame")]
fn read_message_refuses_to_finish_a_message_begun_with_read_frame() {
    // The first fragment went to the caller, so read_message could only
    // return the tail: here "\x82\xac", which is not UTF-8 on its own. A
    // `Text` holding it would break `Text::as_str`'s safety promise.
    let mut c = client();
    let mut buf = concat(&[
        server_frame(false, OpCode::Text, b"\xe2"),
        server_frame(true, OpCode::Continuation, b"\x82\xac"),
    ]);
    assert!(c.read_frame(&mut buf).unwrap().is_some());
    if let Ok(Some(Message::Text(text))) = c.read_message(&mut buf) {
        // Reached only without the check; in release builds this is where
        // the invalid `str` would escape.
        assert!(
            std::str::from_utf8(text.as_bytes()).is_ok(),
            "invalid UTF-8 in a Text"
        );
    }
}
