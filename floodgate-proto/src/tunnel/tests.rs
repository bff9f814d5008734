//! Properties every tunnel keeps, whatever the proxy sends: no panic, a
//! bounded read, and the same outcome however the answer is split.

use super::*;
use proptest::prelude::*;

const HTTP_LIMIT: usize = 512;

/// The most a driver following `read_limit` may read, per protocol.
fn read_bound(tunnel: &Tunnel) -> usize {
    match tunnel {
        Tunnel::Http(_) => HTTP_LIMIT,
        Tunnel::Socks4(_) => 8,
        // Method answer, authentication status, longest reply.
        Tunnel::Socks5(_) => 2 + 2 + (4 + 1 + 255 + 2),
    }
}

fn credentials() -> Option<Credentials<'static>> {
    Some(Credentials {
        username: "alice",
        password: "s3cret",
    })
}

/// One of each kind, with and without credentials.
fn tunnels() -> Vec<Tunnel> {
    let name = Destination::Name("example.com".into());
    let ip = Destination::from_host("10.1.2.3");
    vec![
        HttpConnect::new(&name, 443, None, HTTP_LIMIT)
            .unwrap()
            .into(),
        HttpConnect::new(&ip, 80, credentials(), HTTP_LIMIT)
            .unwrap()
            .into(),
        Socks4Connect::new(&ip, 80, "user").unwrap().into(),
        Socks4Connect::new(&name, 80, "").unwrap().into(),
        Socks5Connect::new(&name, 443, None).unwrap().into(),
        Socks5Connect::new(&ip, 443, credentials()).unwrap().into(),
    ]
}

/// What a driver that follows `read_limit` gets from a proxy that sends
/// `from_proxy` and then closes: the outcome and how many bytes it read.
fn drive(tunnel: &mut Tunnel, from_proxy: &[u8]) -> (Result<Progress, TunnelError>, usize) {
    let mut buf = BytesMut::new();
    let mut read = 0;
    loop {
        tunnel.consume_output(tunnel.output().len());
        let want = tunnel.read_limit();
        assert!(want > 0, "read_limit is 0 while the handshake is under way");
        let n = want.min(from_proxy.len() - read);
        if n == 0 {
            return (Err(tunnel.closed()), read);
        }
        buf.extend_from_slice(&from_proxy[read..read + n]);
        read += n;
        match tunnel.receive(&mut buf) {
            Ok(Progress::NeedMore) => {}
            Ok(Progress::Done) => {
                assert!(buf.is_empty(), "a bounded driver left {buf:?} unread");
                return (Ok(Progress::Done), read);
            }
            Err(e) => return (Err(e), read),
        }
    }
}

/// A proxy's successful answers, per tunnel of [`tunnels`].
fn granting_answers() -> Vec<Vec<u8>> {
    let http = b"HTTP/1.1 200 Connection established\r\nVia: test\r\n\r\n".to_vec();
    let socks4 = vec![0, 90, 0, 0, 0, 0, 0, 0];
    let socks5_reply = [5, 0, 0, 3, 4, b'h', b'o', b's', b't', 0, 80];
    vec![
        http.clone(),
        http,
        socks4.clone(),
        socks4,
        [&[5, 0][..], &socks5_reply].concat(),
        [&[5, 2, 1, 0][..], &socks5_reply].concat(),
    ]
}

#[test]
fn every_tunnel_opens_on_its_granting_answer_and_reads_it_exactly() {
    for (mut tunnel, answer) in tunnels().into_iter().zip(granting_answers()) {
        let (outcome, read) = drive(&mut tunnel, &answer);
        assert_eq!(outcome, Ok(Progress::Done), "{tunnel:?}");
        assert_eq!(read, answer.len(), "{tunnel:?}");
        assert_eq!(tunnel.read_limit(), 0);
        assert!(tunnel.output().is_empty());
    }
}

#[test]
fn a_proxy_closing_early_is_reported_as_closed_for_its_protocol() {
    for mut tunnel in tunnels() {
        let protocol = tunnel.protocol();
        let (outcome, _) = drive(&mut tunnel, b"");
        assert_eq!(outcome, Err(TunnelError::Closed { protocol }));
        let text = tunnel.closed().to_string();
        assert!(
            text.contains(&format!("a {protocol} proxy")),
            "{protocol}: {text}"
        );
    }
}

/// What a greedy driver gets from `stream` fed in `chunk`-byte pieces
/// (everything it has, every time) before the proxy closes.
fn drive_greedy(tunnel: &mut Tunnel, stream: &[u8], chunk: usize) -> Result<Progress, TunnelError> {
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

proptest! {
    #[test]
    fn bounded_greedy_and_chunked_drivers_reach_the_same_verdict(
        prefix in 0usize..6,
        tail in proptest::collection::vec(any::<u8>(), 0..400),
        chunk in 1usize..40,
    ) {
        let prefixes: [&[u8]; 6] = [b"HTTP/1.1 200 OK\r\n", b"HTTP/1.1 407 ", &[0], &[0, 90, 0, 0], &[5, 0, 5, 0, 0], &[5, 2, 1, 0, 5, 0, 0, 3]];
        let stream = [prefixes[prefix], &tail[..]].concat();
        for i in 0..tunnels().len() {
            let bounded = drive(&mut tunnels().swap_remove(i), &stream).0;
            let whole = drive_greedy(&mut tunnels().swap_remove(i), &stream, stream.len());
            let chunked = drive_greedy(&mut tunnels().swap_remove(i), &stream, chunk);
            prop_assert_eq!(&bounded, &whole, "tunnel {}", i);
            prop_assert_eq!(&bounded, &chunked, "tunnel {}", i);
        }
    }

    #[test]
    fn no_answer_makes_a_tunnel_panic_or_read_past_its_bound(
        from_proxy in proptest::collection::vec(any::<u8>(), 0..1024),
    ) {
        for mut tunnel in tunnels() {
            let bound = read_bound(&tunnel);
            let (outcome, read) = drive(&mut tunnel, &from_proxy);
            prop_assert!(read <= bound, "{tunnel:?} read {read} > {bound}");
            // (A close is the driver's news: the tunnel still waits.)
            if matches!(outcome, Err(ref e) if !matches!(e, TunnelError::Closed { .. })) {
                prop_assert_eq!(tunnel.read_limit(), 0);
            }
        }
    }

    #[test]
    fn answers_starting_like_the_protocol_never_panic(
        tail in proptest::collection::vec(any::<u8>(), 0..600),
    ) {
        // Random bytes fail at the first byte mostly; these get further.
        let prefixes: [&[u8]; 6] = [b"HTTP/1.1 ", b"HTTP/1.1 200 OK\r\n", &[0, 90], &[0], &[5, 0, 5, 0, 0], &[5, 2, 1, 0, 5, 0, 0, 3]];
        for (mut tunnel, prefix) in tunnels().into_iter().zip(prefixes) {
            let bound = read_bound(&tunnel);
            let answer = [prefix, &tail[..]].concat();
            let (_, read) = drive(&mut tunnel, &answer);
            prop_assert!(read <= bound);
        }
    }

    #[test]
    fn a_greedy_driver_gets_the_same_outcome_in_any_chunks(
        cuts in proptest::collection::vec(0usize..100, 0..8),
        junk in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        for (i, (mut tunnel, answer)) in tunnels().into_iter().zip(granting_answers()).enumerate() {
            // The answer followed by the server's first bytes, split anywhere.
            let stream = [&answer[..], &junk].concat();
            let mut points: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
            points.push(stream.len());
            points.sort_unstable();
            let mut buf = BytesMut::new();
            let mut at = 0;
            let mut done = false;
            for p in points {
                tunnel.consume_output(usize::MAX);
                buf.extend_from_slice(&stream[at..p]);
                at = p;
                if tunnel.receive(&mut buf).unwrap() == Progress::Done {
                    done = true;
                }
            }
            // Feeding the rest after Done takes nothing from it.
            prop_assert!(done, "tunnel {} did not open", i);
            prop_assert_eq!(&buf[..], &junk[..]);
        }
    }

    #[test]
    fn random_chunks_of_random_bytes_never_panic(
        chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..6),
    ) {
        for mut tunnel in tunnels() {
            let mut buf = BytesMut::new();
            for chunk in &chunks {
                tunnel.consume_output(1);
                buf.extend_from_slice(chunk);
                let first = tunnel.receive(&mut buf);
                // Once decided, the outcome does not change.
                if first.is_err() || first == Ok(Progress::Done) {
                    prop_assert_eq!(tunnel.receive(&mut buf), first);
                }
            }
        }
    }
}
