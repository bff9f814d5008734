//! The proxy handshakes of `floodgate_proto::tunnel` fed whatever a
//! hostile proxy could send.
//!
//! The first input byte picks the tunnel (bits 0-2: HTTP, HTTP with
//! credentials, SOCKS4, SOCKS4a, SOCKS5, SOCKS5 with credentials) and the
//! chunk size (bits 3-5); the rest is the proxy's byte stream. Three
//! drivers run it: one that follows `read_limit`, one that hands over the
//! whole stream at once, one in chunks. Beyond "no panic": all three reach
//! the same verdict, the bounded one never reads past the tunnel's bound
//! nor leaves a byte unread when the tunnel opens, and a verdict sticks.

#![no_main]

use floodgate_proto::bytes::BytesMut;
use floodgate_proto::tunnel::{
    Credentials, Destination, HttpConnect, Progress, Socks4Connect, Socks5Connect, Tunnel,
    TunnelError,
};
use libfuzzer_sys::fuzz_target;

const HTTP_LIMIT: usize = 1024;

fn tunnel(kind: u8) -> (Tunnel, usize) {
    let name = Destination::Name("example.com".into());
    let ip = Destination::from_host("10.1.2.3");
    let credentials = Some(Credentials {
        username: "alice",
        password: "s3cret",
    });
    let socks5_bound = 2 + 2 + 4 + 1 + 255 + 2;
    match kind % 6 {
        0 => (
            HttpConnect::new(&name, 443, None, HTTP_LIMIT)
                .unwrap()
                .into(),
            HTTP_LIMIT,
        ),
        1 => (
            HttpConnect::new(&ip, 80, credentials, HTTP_LIMIT)
                .unwrap()
                .into(),
            HTTP_LIMIT,
        ),
        2 => (Socks4Connect::new(&ip, 80, "user").unwrap().into(), 8),
        3 => (Socks4Connect::new(&name, 80, "").unwrap().into(), 8),
        4 => (
            Socks5Connect::new(&name, 443, None).unwrap().into(),
            socks5_bound,
        ),
        _ => (
            Socks5Connect::new(&ip, 443, credentials).unwrap().into(),
            socks5_bound,
        ),
    }
}

fn bounded(tunnel: &mut Tunnel, bound: usize, stream: &[u8]) -> Result<Progress, TunnelError> {
    let mut buf = BytesMut::new();
    let mut read = 0;
    loop {
        tunnel.consume_output(tunnel.output().len());
        let want = tunnel.read_limit();
        assert!(want > 0);
        let n = want.min(stream.len() - read);
        if n == 0 {
            return Err(tunnel.closed());
        }
        buf.extend_from_slice(&stream[read..read + n]);
        read += n;
        assert!(read <= bound, "read {read} > {bound}");
        match tunnel.receive(&mut buf) {
            Ok(Progress::NeedMore) => {}
            Ok(Progress::Done) => {
                assert!(buf.is_empty());
                assert_eq!(tunnel.read_limit(), 0);
                return Ok(Progress::Done);
            }
            Err(e) => {
                assert_eq!(tunnel.read_limit(), 0);
                assert_eq!(tunnel.receive(&mut buf).as_ref(), Err(&e));
                return Err(e);
            }
        }
    }
}

fn greedy(tunnel: &mut Tunnel, stream: &[u8], chunk: usize) -> Result<Progress, TunnelError> {
    let mut buf = BytesMut::new();
    for piece in stream.chunks(chunk.max(1)) {
        tunnel.consume_output(usize::MAX);
        buf.extend_from_slice(piece);
        if tunnel.receive(&mut buf)? == Progress::Done {
            return Ok(Progress::Done);
        }
    }
    Err(tunnel.closed())
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, stream)) = data.split_first() else {
        return;
    };
    let chunk = [1, 2, 3, 5, 8, 13, 64, 1000][usize::from((control >> 3) & 0b111)];
    let (mut t, bound) = tunnel(control);
    let verdict = bounded(&mut t, bound, stream);
    assert_eq!(
        verdict,
        greedy(&mut tunnel(control).0, stream, stream.len())
    );
    assert_eq!(verdict, greedy(&mut tunnel(control).0, stream, chunk));
});
