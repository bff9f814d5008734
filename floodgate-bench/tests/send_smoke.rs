//! The `send` benchmark's server checks what it claims to: every client's
//! messages arrive whole, masked and intact at each frame length form
//! (7-bit, 16-bit and 64-bit), and a client that does not mask, masks
//! wrongly or merges messages is caught.

use std::io::{Read, Write};

use floodgate_bench::handshake;
use floodgate_bench::send_clients::{self, Plan};
use floodgate_bench::send_server::{masked_frame, payload, Job, Report, SendServer};

#[test]
fn every_client_sends_exactly_what_the_server_checks() {
    let mut server = SendServer::start().unwrap();
    let url = server.url();
    for (size, count) in [
        (0, 300),
        (16, 3_000),
        (125, 1_000),
        (126, 1_000),
        (65_535, 20),
        (65_536, 20),
        (70_000, 10),
        ((1 << 20) + 3, 3),
    ] {
        for client in send_clients::all() {
            server.submit(Job { size });
            let result = (client.run)(&url, Plan { size, count });
            let report = server.finish(result.is_err());
            let at = format!("{} at {size} B", client.name);
            let o = result.unwrap_or_else(|e| panic!("{at}: {e}; server: {:?}", report.error));
            assert!(report.error.is_none(), "{at}: server: {:?}", report.error);
            assert_eq!(report.messages, count, "{at}: messages checked");
            assert_eq!(report.bytes, count * size as u64, "{at}: bytes checked");
            assert_eq!(o.messages, count, "{at}: messages sent");
            assert!(report.frames >= count, "{at}: {} frames", report.frames);
            assert!(report.client_close, "{at}: no close frame");
            assert!(
                report.zero_keys <= 1 && report.repeated_keys <= 1,
                "{at}: {} zero and {} repeated masking keys",
                report.zero_keys,
                report.repeated_keys
            );
        }
    }
}

/// Connects by hand, writes `wire` (frames, then a close, or not), ends
/// its sending side, reads until the server ends the connection, and
/// returns the server's report.
fn stand_in(server: &mut SendServer, size: usize, wire: &[u8]) -> Report {
    server.submit(Job { size });
    let mut s = handshake::client_connect(&server.url()).unwrap();
    // The server may refuse before reading everything: a failed write is
    // part of what is tested.
    let _ = s.write_all(wire);
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut sink = [0u8; 1024];
    while matches!(s.read(&mut sink), Ok(n) if n > 0) {}
    server.finish(false)
}

fn close() -> Vec<u8> {
    let mut f = Vec::new();
    masked_frame(0x8, &1000u16.to_be_bytes(), [9, 8, 7, 6], &mut f);
    f
}

#[test]
fn the_server_catches_a_wrong_client() {
    let mut server = SendServer::start().unwrap();
    let size = 1000;
    let data = payload(size);

    // A correct stand-in passes: the check is not failing by itself.
    let mut good = Vec::new();
    for i in 0..3u8 {
        masked_frame(0x2, &data, [i, 1, 2, 3], &mut good);
    }
    good.extend(close());
    let r = stand_in(&mut server, size, &good);
    assert!(r.error.is_none(), "{:?}", r.error);
    assert_eq!((r.messages, r.bytes, r.client_close), (3, 3000, true));

    // The second frame unmasked.
    let mut wire = Vec::new();
    masked_frame(0x2, &data, [1, 2, 3, 4], &mut wire);
    wire.extend_from_slice(&[0x82, 126, (size >> 8) as u8, size as u8]);
    wire.extend_from_slice(&data);
    wire.extend(close());
    let r = stand_in(&mut server, size, &wire);
    let e = r.error.expect("an unmasked frame is refused");
    assert!(e.contains("unmasked frame"), "{e}");
    assert_eq!(r.messages, 1);

    // The header's key is not the one the payload was masked with: one
    // byte of the first word and one of the tail are off.
    for flip in [5, size - 1] {
        let mut wire = Vec::new();
        masked_frame(0x2, &data, [1, 2, 3, 4], &mut wire);
        let header = wire.len() - size;
        wire[header + flip] ^= 0x40;
        wire.extend(close());
        let r = stand_in(&mut server, size, &wire);
        let e = r.error.expect("a wrongly masked payload is refused");
        assert!(e.contains(&format!("message 0, byte {flip}:")), "{e}");
        assert_eq!(r.messages, 0);
    }

    // Masked with the right key but from the wrong phase (the key rotated
    // by one byte, as a client that lost its place in the key would).
    let mut wire = Vec::new();
    masked_frame(0x2, &data, [2, 3, 4, 1], &mut wire);
    let header = wire.len() - size - 4;
    wire[header..header + 4].copy_from_slice(&[1, 2, 3, 4]);
    wire.extend(close());
    let e = stand_in(&mut server, size, &wire)
        .error
        .expect("a wrong phase is refused");
    assert!(e.contains("after unmasking"), "{e}");

    // Two messages merged into one.
    let mut merged = data.clone();
    merged.extend_from_slice(&data);
    let mut wire = Vec::new();
    masked_frame(0x2, &merged, [1, 2, 3, 4], &mut wire);
    wire.extend(close());
    let e = stand_in(&mut server, size, &wire)
        .error
        .expect("a merged message is refused");
    assert!(e.contains("longer than 1000 bytes"), "{e}");

    // A message cut short (a lost tail): its final frame ends early.
    let mut wire = Vec::new();
    masked_frame(0x2, &data[..size - 1], [1, 2, 3, 4], &mut wire);
    wire.extend(close());
    let e = stand_in(&mut server, size, &wire)
        .error
        .expect("a short message is refused");
    assert!(e.contains("has 999 bytes, expected 1000"), "{e}");

    // No close frame: the connection just ends.
    let mut wire = Vec::new();
    masked_frame(0x2, &data, [1, 2, 3, 4], &mut wire);
    let r = stand_in(&mut server, size, &wire);
    assert!(!r.client_close);
    assert!(r.error.expect("EOF is an error").contains("EOF"));
}

/// A message in fragments is one message; the check follows it across
/// frames and key changes.
#[test]
fn fragments_are_checked_across_frames() {
    let mut server = SendServer::start().unwrap();
    let size = 10_000;
    let data = payload(size);
    let mut wire = Vec::new();
    let mut frame = Vec::new();
    masked_frame(0x2, &data[..4097], [1, 2, 3, 4], &mut frame);
    frame[0] &= 0x7F; // not final
    wire.extend(&frame);
    frame.clear();
    masked_frame(0x0, &data[4097..9000], [5, 6, 7, 8], &mut frame);
    frame[0] &= 0x7F;
    wire.extend(&frame);
    masked_frame(0x0, &data[9000..], [9, 10, 11, 12], &mut wire);
    wire.extend(close());
    let r = stand_in(&mut server, size, &wire);
    assert!(r.error.is_none(), "{:?}", r.error);
    assert_eq!((r.messages, r.frames, r.bytes), (1, 3, size as u64));
}
