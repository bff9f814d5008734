//! The feed: the embedded server (`floodgate-server`) with a handler of
//! this bench's own, in this process. Each connection asks for its run in
//! the query string (`/?size=S&count=N`) and gets `N` binary messages of
//! `S` bytes as fast as its socket takes them, numbered (see [`payload`]),
//! then nothing: the connection stays open until the client leaves, so
//! that the bridge ends only when the bench stops it (a close from the
//! feed would start its reconnects or its end).

use std::time::{Duration, Instant};

use floodgate_server::{RequestHead, Server, WebSocket};

/// How long a connection may stay open after its last message: longer
/// than any run; a bridge left over is not served for ever.
const KEEP_OPEN: Duration = Duration::from_secs(900);

/// Message `seq` of a run at `size` bytes (at least 8): the number,
/// big-endian, in the first 8 bytes, then `a..z` repeated. The bench reads
/// the numbers back from the broker to check that each came exactly once.
pub(crate) fn payload(seq: u64, size: usize, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend((8..size).map(|i| b'a' + (i % 26) as u8));
}

/// The number in a stored message, if it has the run's size.
pub(crate) fn number_of(body: &[u8], size: usize) -> Option<u64> {
    if body.len() != size {
        return None;
    }
    Some(u64::from_be_bytes(body.get(..8)?.try_into().ok()?))
}

/// Starts the feed on a free loopback port.
pub(crate) fn start() -> Result<Server, String> {
    Server::bind("127.0.0.1:0", serve).map_err(|e| format!("cannot start the feed: {e}"))
}

/// The URL of a run's feed.
pub(crate) fn url(server: &Server, size: usize, count: u64) -> String {
    format!("{}?size={size}&count={count}", server.url())
}

fn serve(mut ws: WebSocket, request: RequestHead) {
    let Some((size, count)) = plan_of(&request.path) else {
        let _ = ws.close(1008, "expected /?size=S&count=N");
        return;
    };
    let mut body = Vec::with_capacity(size);
    for seq in 0..count {
        payload(seq, size, &mut body);
        if ws.send_binary(&body).is_err() {
            // The client left; the bench's count at the broker says so.
            return;
        }
    }
    // Open until the client's close (answered by recv) or its end; recv
    // also answers its pings meanwhile.
    let _ = ws.set_read_timeout(Some(Duration::from_secs(1)));
    let give_up = Instant::now() + KEEP_OPEN;
    while Instant::now() < give_up {
        match ws.recv() {
            Ok(_) => {}
            Err(e) if e.is_timeout() => {}
            // Closed, or gone.
            Err(_) => return,
        }
    }
    ws.shutdown();
}

/// `(size, count)` from `/?size=S&count=N`.
fn plan_of(path: &str) -> Option<(usize, u64)> {
    let (_, query) = path.split_once('?')?;
    let (mut size, mut count) = (None, None);
    for pair in query.split('&') {
        match pair.split_once('=')? {
            ("size", v) => size = v.parse().ok(),
            ("count", v) => count = v.parse().ok(),
            _ => return None,
        }
    }
    Some((size.filter(|&s| s >= 8)?, count?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_reads_back_its_number() {
        let mut body = Vec::new();
        payload(123_456, 128, &mut body);
        assert_eq!(body.len(), 128);
        assert_eq!(number_of(&body, 128), Some(123_456));
        assert_eq!(number_of(&body, 1024), None);
        assert_eq!(plan_of("/?size=128&count=2000"), Some((128, 2000)));
        assert_eq!(plan_of("/?size=4&count=2000"), None);
        assert_eq!(plan_of("/"), None);
    }
}
