//! Every RFC 6455 rule a client enforces on what a server sends: the exact
//! error, its close code, and the masked close frame queued to fail the
//! connection (§7.1.7).

mod support;

use floodgate_proto::bytes::BytesMut;
use floodgate_proto::{Config, Message, OpCode, Protocol, ProtocolError, Role};
use support::*;

const PROTOCOL_ERROR: u16 = 1002;
const INVALID_PAYLOAD: u16 = 1007;
const MESSAGE_TOO_BIG: u16 = 1009;

// ----- reserved bits and opcodes -------------------------------------------

#[test]
fn rsv1_without_a_negotiated_extension_fails_with_1002() {
    let bytes = raw_frame(0x80 | 0x40 | 0x1, b"hi");
    assert_client_fails(
        client(),
        &bytes,
        ProtocolError::ReservedBits { bits: 0b100 },
        PROTOCOL_ERROR,
    );
}

#[test]
fn rsv2_fails_with_1002() {
    let bytes = raw_frame(0x80 | 0x20 | 0x2, b"hi");
    assert_client_fails(
        client(),
        &bytes,
        ProtocolError::ReservedBits { bits: 0b010 },
        PROTOCOL_ERROR,
    );
}

#[test]
fn rsv3_fails_with_1002() {
    let bytes = raw_frame(0x80 | 0x10 | 0x1, b"hi");
    assert_client_fails(
        client(),
        &bytes,
        ProtocolError::ReservedBits { bits: 0b001 },
        PROTOCOL_ERROR,
    );
}

#[test]
fn reserved_bits_on_a_control_frame_fail_with_1002() {
    let bytes = raw_frame(0x80 | 0x70 | 0x9, b"");
    assert_client_fails(
        client(),
        &bytes,
        ProtocolError::ReservedBits { bits: 0b111 },
        PROTOCOL_ERROR,
    );
}

#[test]
fn every_reserved_opcode_fails_with_1002() {
    for opcode in [0x3u8, 0x4, 0x5, 0x6, 0x7, 0xB, 0xC, 0xD, 0xE, 0xF] {
        for fin in [0x80u8, 0x00] {
            let bytes = raw_frame(fin | opcode, b"payload");
            assert_client_fails(
                client(),
                &bytes,
                ProtocolError::ReservedOpcode(opcode),
                PROTOCOL_ERROR,
            );
        }
    }
}

#[test]
fn a_reserved_opcode_fails_from_the_first_two_bytes() {
    let mut c = client();
    let mut buf = BytesMut::from(&[0x83u8, 0x7E][..]); // 16-bit length still missing
    assert_eq!(
        c.read_message(&mut buf),
        Err(ProtocolError::ReservedOpcode(3))
    );
    assert_failing_close(&c, PROTOCOL_ERROR);
}

// ----- control frames ------------------------------------------------------

#[test]
fn a_fragmented_ping_fails_with_1002() {
    let bytes = server_frame(false, OpCode::Ping, b"p");
    assert_client_fails(
        client(),
        &bytes,
        ProtocolError::FragmentedControlFrame,
        PROTOCOL_ERROR,
    );
}

#[test]
fn a_fragmented_pong_fails_with_1002() {
    let bytes = server_frame(false, OpCode::Pong, b"p");
    assert_client_fails(
        client(),
        &bytes,
        ProtocolError::FragmentedControlFrame,
        PROTOCOL_ERROR,
    );
}

#[test]
fn a_fragmented_close_fails_with_1002() {
    let bytes = server_frame(false, OpCode::Close, &1000u16.to_be_bytes());
    assert_client_fails(
        client(),
        &bytes,
        ProtocolError::FragmentedControlFrame,
        PROTOCOL_ERROR,
    );
}

#[test]
fn a_control_frame_of_126_bytes_fails_with_1002() {
    for opcode in [OpCode::Ping, OpCode::Pong, OpCode::Close] {
        let mut payload = vec![b'x'; 126];
        payload[..2].copy_from_slice(&1000u16.to_be_bytes());
        let bytes = server_frame(true, opcode, &payload);
        assert_client_fails(
            client(),
            &bytes,
            ProtocolError::ControlFrameTooLong(126),
            PROTOCOL_ERROR,
        );
    }
}

#[test]
fn a_control_frame_of_125_bytes_is_accepted() {
    let mut c = client();
    let mut buf = concat(&[server_frame(true, OpCode::Ping, &[b'x'; 125])]);
    assert_eq!(
        c.read_message(&mut buf),
        Ok(Some(Message::Ping(vec![b'x'; 125].into())))
    );
    let pong = &client_output(&c)[0];
    assert_eq!((pong.opcode, pong.payload.len()), (OpCode::Pong, 125));
}

// ----- masking -------------------------------------------------------------

#[test]
fn a_masked_frame_from_the_server_fails_with_1002() {
    let bytes = client_frame(true, OpCode::Text, [1, 2, 3, 4], b"hello");
    assert_client_fails(
        client(),
        &bytes,
        ProtocolError::MaskedFrameFromServer,
        PROTOCOL_ERROR,
    );
}

#[test]
fn a_masked_control_frame_from_the_server_fails_with_1002() {
    let bytes = client_frame(true, OpCode::Ping, [0, 0, 0, 0], b"");
    assert_client_fails(
        client(),
        &bytes,
        ProtocolError::MaskedFrameFromServer,
        PROTOCOL_ERROR,
    );
}

#[test]
fn an_unmasked_frame_from_a_client_fails_a_server_with_1002() {
    let mut server = Protocol::with_seed(Role::Server, Config::default(), 1);
    let mut buf = concat(&[server_frame(true, OpCode::Text, b"hello")]);
    assert_eq!(
        server.read_message(&mut buf),
        Err(ProtocolError::UnmaskedFrameFromClient)
    );
    // A server's close is not masked.
    let frames = decode_all(server.output());
    assert_eq!(frames.len(), 1);
    assert!(!frames[0].masked);
    assert_eq!(frames[0].close().unwrap().code.0, PROTOCOL_ERROR);
}

// ----- fragment sequencing -------------------------------------------------

#[test]
fn a_continuation_with_no_message_open_fails_with_1002() {
    for fin in [true, false] {
        let bytes = server_frame(fin, OpCode::Continuation, b"orphan");
        assert_client_fails(
            client(),
            &bytes,
            ProtocolError::ContinuationWithoutStart,
            PROTOCOL_ERROR,
        );
    }
}

#[test]
fn a_continuation_after_a_finished_message_fails_with_1002() {
    let bytes = concat(&[
        server_frame(false, OpCode::Text, b"a"),
        server_frame(true, OpCode::Continuation, b"b"),
        server_frame(true, OpCode::Continuation, b"c"),
    ]);
    assert_client_fails(
        client(),
        &bytes,
        ProtocolError::ContinuationWithoutStart,
        PROTOCOL_ERROR,
    );
}

#[test]
fn a_text_frame_inside_an_open_fragmented_message_fails_with_1002() {
    for first in [OpCode::Text, OpCode::Binary] {
        let bytes = concat(&[
            server_frame(false, first, b"a"),
            server_frame(true, OpCode::Text, b"b"),
        ]);
        assert_client_fails(
            client(),
            &bytes,
            ProtocolError::DataFrameInsideFragmentedMessage,
            PROTOCOL_ERROR,
        );
    }
}

#[test]
fn a_binary_frame_inside_an_open_fragmented_message_fails_with_1002() {
    for first in [OpCode::Text, OpCode::Binary] {
        for fin in [true, false] {
            let bytes = concat(&[
                server_frame(false, first, b"a"),
                server_frame(false, OpCode::Continuation, b"b"),
                server_frame(fin, OpCode::Binary, b"c"),
            ]);
            assert_client_fails(
                client(),
                &bytes,
                ProtocolError::DataFrameInsideFragmentedMessage,
                PROTOCOL_ERROR,
            );
        }
    }
}

// ----- lengths -------------------------------------------------------------

#[test]
fn a_64_bit_length_with_the_top_bit_set_fails_with_1002() {
    let mut bytes = vec![0x82, 127];
    bytes.extend_from_slice(&(1u64 << 63 | 5).to_be_bytes());
    assert_client_fails(
        client(),
        &bytes,
        ProtocolError::LengthTopBitSet,
        PROTOCOL_ERROR,
    );
    // Also without limits, where nothing else would refuse the length.
    assert_client_fails(
        client_with_limits(None, None),
        &bytes,
        ProtocolError::LengthTopBitSet,
        PROTOCOL_ERROR,
    );
}

// ----- close frames --------------------------------------------------------

#[test]
fn a_close_payload_of_one_byte_fails_with_1002() {
    let bytes = server_frame(true, OpCode::Close, &[0x03]);
    assert_client_fails(
        client(),
        &bytes,
        ProtocolError::CloseFrameOneByte,
        PROTOCOL_ERROR,
    );
}

#[test]
fn close_codes_that_must_not_be_sent_fail_with_1002() {
    for code in [0u16, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000] {
        let bytes = server_close(code, b"");
        assert_client_fails(
            client(),
            &bytes,
            ProtocolError::InvalidCloseCode(code),
            PROTOCOL_ERROR,
        );
    }
}

#[test]
fn close_codes_that_may_be_sent_are_echoed_not_refused() {
    for code in [1000u16, 1001, 1002, 1003, 1007, 1011, 1014, 3000, 4999] {
        let mut c = client();
        let mut buf = concat(&[server_close(code, b"bye")]);
        let Ok(Some(Message::Close(Some(frame)))) = c.read_message(&mut buf) else {
            panic!("close code {code} was refused");
        };
        assert_eq!((frame.code.0, frame.reason.as_str()), (code, "bye"));
        assert_eq!(client_output(&c)[0].close().unwrap().code.0, code);
    }
}

#[test]
fn a_close_reason_that_is_not_utf8_fails_with_1007() {
    // A UTF-16 surrogate (ED A0 80) after valid text.
    let bytes = server_close(1000, b"ok \xed\xa0\x80");
    assert_client_fails(
        client(),
        &bytes,
        ProtocolError::InvalidCloseReason,
        INVALID_PAYLOAD,
    );
}

// ----- UTF-8 of text messages ----------------------------------------------

#[test]
fn a_single_frame_text_that_is_not_utf8_fails_with_1007() {
    for bad in [
        &b"\xff"[..],
        b"caf\xc3",
        b"\xed\xa0\x80",
        b"\xc0\xaf",
        b"ok\xf4\x90\x80\x80",
    ] {
        let bytes = server_frame(true, OpCode::Text, bad);
        assert_client_fails(
            client(),
            &bytes,
            ProtocolError::InvalidUtf8,
            INVALID_PAYLOAD,
        );
    }
}

#[test]
fn an_invalid_text_fragment_fails_before_the_final_fragment_arrives() {
    let mut c = client();
    let mut buf = concat(&[server_frame(false, OpCode::Text, "κόσμε".as_bytes())]);
    assert_eq!(c.read_message(&mut buf), Ok(None));
    assert!(!c.has_output());
    // The second fragment is not final and holds a byte that can never be UTF-8.
    buf.extend_from_slice(&server_frame(false, OpCode::Continuation, b"ok\xff"));
    assert_eq!(c.read_message(&mut buf), Err(ProtocolError::InvalidUtf8));
    assert_failing_close(&c, INVALID_PAYLOAD);
    buf.extend_from_slice(&server_frame(true, OpCode::Continuation, b"end"));
    assert_eq!(c.read_message(&mut buf), Err(ProtocolError::InvalidUtf8));
}

#[test]
fn an_invalid_sequence_split_across_fragments_fails_at_the_fragment_that_completes_it() {
    let mut c = client();
    // ED | A0 80: a surrogate, invalid once the A0 is seen.
    let mut buf = concat(&[server_frame(false, OpCode::Text, b"a\xed")]);
    assert_eq!(c.read_message(&mut buf), Ok(None));
    buf.extend_from_slice(&server_frame(false, OpCode::Continuation, b"\xa0\x80"));
    assert_eq!(c.read_message(&mut buf), Err(ProtocolError::InvalidUtf8));
    assert_failing_close(&c, INVALID_PAYLOAD);
}

#[test]
fn a_fragment_ending_in_a_prefix_no_code_point_has_fails_at_once() {
    // Each is cut at the end of a non-final fragment, but already impossible:
    // a surrogate, an overlong form, a code point above U+10FFFF.
    for bad in [&b"a\xed\xa0"[..], b"a\xe0\x80", b"a\xf4\x90", b"a\xf5"] {
        let mut c = client();
        let mut buf = concat(&[server_frame(false, OpCode::Text, bad)]);
        assert_eq!(
            c.read_message(&mut buf),
            Err(ProtocolError::InvalidUtf8),
            "{bad:x?}"
        );
        assert_failing_close(&c, INVALID_PAYLOAD);
    }
}

#[test]
fn an_invalid_first_fragment_fails_at_once() {
    let bytes = server_frame(false, OpCode::Text, b"\xfe");
    assert_client_fails(
        client(),
        &bytes,
        ProtocolError::InvalidUtf8,
        INVALID_PAYLOAD,
    );
}

#[test]
fn a_text_message_ending_inside_a_code_point_fails_with_1007() {
    let bytes = concat(&[
        server_frame(false, OpCode::Text, b"price: "),
        server_frame(true, OpCode::Continuation, b"\xe2\x82"), // first 2 bytes of a 3-byte euro sign
    ]);
    assert_client_fails(
        client(),
        &bytes,
        ProtocolError::InvalidUtf8,
        INVALID_PAYLOAD,
    );
}

#[test]
fn binary_messages_are_not_checked_for_utf8() {
    let mut c = client();
    let mut buf = concat(&[
        server_frame(true, OpCode::Binary, b"\xff\xfe"),
        server_frame(false, OpCode::Binary, b"\xed"),
        server_frame(true, OpCode::Continuation, b"\xa0"),
    ]);
    assert_eq!(
        c.read_message(&mut buf),
        Ok(Some(Message::binary(&b"\xff\xfe"[..])))
    );
    assert_eq!(
        c.read_message(&mut buf),
        Ok(Some(Message::binary(&b"\xed\xa0"[..])))
    );
}

// ----- size limits ---------------------------------------------------------

#[test]
fn a_frame_over_max_frame_size_fails_with_1009_from_its_header_alone() {
    let mut c = client_with_limits(Some(1000), None);
    // Only the header of a 1001-byte binary frame: no payload byte has arrived.
    let mut buf = BytesMut::from(&[0x82u8, 126, 0x03, 0xE9][..]);
    let err = c.read_message(&mut buf).unwrap_err();
    assert_eq!(
        err,
        ProtocolError::FrameTooLarge {
            len: 1001,
            max: 1000
        }
    );
    assert_eq!(err.close_code().0, MESSAGE_TOO_BIG);
    assert_failing_close(&c, MESSAGE_TOO_BIG);
    // The payload arriving later changes nothing.
    buf.extend_from_slice(&[0u8; 1001]);
    assert_eq!(c.read_message(&mut buf), Err(err));
}

#[test]
fn a_huge_declared_length_fails_with_1009_before_anything_is_buffered() {
    let mut c = client();
    let mut header = vec![0x81, 127];
    header.extend_from_slice(&(1u64 << 40).to_be_bytes());
    let mut buf = BytesMut::from(&header[..]);
    assert!(matches!(
        c.read_message(&mut buf),
        Err(ProtocolError::FrameTooLarge { len, .. }) if len == 1 << 40
    ));
    assert_failing_close(&c, MESSAGE_TOO_BIG);
}

#[test]
fn a_frame_of_exactly_max_frame_size_is_accepted() {
    let mut c = client_with_limits(Some(1000), None);
    let mut buf = concat(&[server_frame(true, OpCode::Binary, &[7; 1000])]);
    assert_eq!(
        c.read_message(&mut buf),
        Ok(Some(Message::binary(vec![7; 1000])))
    );
}

#[test]
fn a_fragmented_message_over_max_message_size_fails_with_1009_at_the_crossing_header() {
    let mut c = client_with_limits(None, Some(100));
    let mut buf = concat(&[
        server_frame(false, OpCode::Binary, &[1; 60]),
        server_frame(false, OpCode::Continuation, &[2; 40]), // exactly 100 so far
    ]);
    assert_eq!(c.read_message(&mut buf), Ok(None));
    assert!(!c.has_output());
    // Only the header of the continuation that crosses the limit.
    buf.extend_from_slice(&[0x80, 1]);
    let err = c.read_message(&mut buf).unwrap_err();
    assert_eq!(err, ProtocolError::MessageTooLarge { len: 101, max: 100 });
    assert_eq!(err.close_code().0, MESSAGE_TOO_BIG);
    assert_failing_close(&c, MESSAGE_TOO_BIG);
}

#[test]
fn a_single_frame_over_max_message_size_fails_with_1009() {
    let mut c = client_with_limits(Some(1 << 20), Some(10));
    let mut buf = BytesMut::from(&[0x81u8, 11][..]);
    assert_eq!(
        c.read_message(&mut buf),
        Err(ProtocolError::MessageTooLarge { len: 11, max: 10 })
    );
    assert_failing_close(&c, MESSAGE_TOO_BIG);
}

#[test]
fn control_frames_do_not_count_towards_max_message_size() {
    let mut c = client_with_limits(None, Some(4));
    let mut buf = concat(&[
        server_frame(false, OpCode::Text, b"ab"),
        server_frame(true, OpCode::Ping, b"a long ping payload"),
        server_frame(true, OpCode::Continuation, b"cd"),
    ]);
    assert!(matches!(
        c.read_message(&mut buf),
        Ok(Some(Message::Ping(_)))
    ));
    assert_eq!(c.read_message(&mut buf), Ok(Some(Message::text("abcd"))));
}

#[test]
fn no_limits_allow_frames_and_messages_beyond_the_defaults() {
    let big = floodgate_proto::protocol::DEFAULT_MAX_FRAME_SIZE + 1;
    let frame = server_frame(true, OpCode::Binary, &vec![0xAB; big]);

    let mut limited = client();
    let mut buf = BytesMut::from(&frame[..10]);
    assert!(matches!(
        limited.read_message(&mut buf),
        Err(ProtocolError::FrameTooLarge { .. })
    ));

    let mut unlimited = client_with_limits(None, None);
    let mut buf = BytesMut::from(&frame[..]);
    let Ok(Some(Message::Binary(payload))) = unlimited.read_message(&mut buf) else {
        panic!("a frame over the default limit was refused without limits");
    };
    assert_eq!(payload.len(), big);
    assert!(payload.iter().all(|&b| b == 0xAB));
    assert!(!unlimited.has_output());

    // A declared length far beyond any default just waits for its bytes.
    let mut header = vec![0x82, 127];
    header.extend_from_slice(&(1u64 << 40).to_be_bytes());
    let mut buf = BytesMut::from(&header[..]);
    assert_eq!(unlimited.read_message(&mut buf), Ok(None));
    assert!(unlimited.failure().is_none());
}

// ----- after an error ------------------------------------------------------

#[test]
fn after_an_error_every_later_read_returns_the_same_error() {
    let mut c = client();
    let mut buf = concat(&[
        server_frame(true, OpCode::Text, b"fine"),
        raw_frame(0x85, b""),
    ]);
    assert_eq!(c.read_message(&mut buf), Ok(Some(Message::text("fine"))));
    let err = c.read_message(&mut buf).unwrap_err();
    assert_eq!(err, ProtocolError::ReservedOpcode(5));
    let output_len = c.output().len();
    for _ in 0..3 {
        // Valid frames after the error are not decoded.
        buf.extend_from_slice(&server_frame(true, OpCode::Ping, b"p"));
        buf.extend_from_slice(&server_frame(true, OpCode::Text, b"more"));
        assert_eq!(c.read_message(&mut buf), Err(err.clone()));
        assert_eq!(c.read_frame(&mut buf), Err(err.clone()));
    }
    // No pong and no second close were queued.
    assert_eq!(c.output().len(), output_len);
    assert_failing_close(&c, PROTOCOL_ERROR);
    assert_eq!(c.failure(), Some(&err));
}

#[test]
fn an_error_after_this_side_sent_its_close_queues_no_second_close() {
    let mut c = client();
    c.send_close(Some(&floodgate_proto::CloseFrame::new(1000, "done")))
        .unwrap();
    let before = c.output().to_vec();
    let mut buf = concat(&[server_frame(true, OpCode::Text, b"\xff")]);
    assert_eq!(c.read_message(&mut buf), Err(ProtocolError::InvalidUtf8));
    assert_eq!(c.output(), &before[..]);
    let close = client_output(&c)[0].close().unwrap();
    assert_eq!((close.code.0, close.reason.as_str()), (1000, "done"));
}

#[test]
fn the_failing_close_reason_is_readable_and_fits_a_control_frame() {
    let mut c = client_with_limits(Some(10), None);
    let mut buf = BytesMut::from(&[0x82u8, 127, 0, 0, 0, 0, 0x7F, 0xFF, 0xFF, 0xFF][..]);
    assert!(c.read_message(&mut buf).is_err());
    let frames = client_output(&c);
    let close = frames[0].close().unwrap();
    assert_eq!(close.code.0, MESSAGE_TOO_BIG);
    assert!(!close.reason.is_empty());
    assert!(close.reason.len() <= 123);
}
