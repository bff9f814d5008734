//! The echo server of the `conns` benchmark: [`crate::echo_server`]'s
//! design (`std::net`, a thread per connection, no WebSocket library),
//! except that it answers every frame that one `read` brought in with one
//! `write`.
//!
//! Why not `echo_server` itself: with many connections each holding a
//! window of messages in flight, the server must not be what every row
//! measures. `echo_server` writes each echo on its own, one syscall per
//! message, the same count as the client's; on a loopback machine where
//! client and server share the cores, that made every client, the raw TCP
//! ceiling included, run at the same rate. Batching the writes is what any
//! server under load does (the frames are already there), it treats every
//! client alike, and it keeps the server's share of each message small so
//! the differences between clients show. Measured on the 2-core machine
//! of issue 17 at 256 connections: the server's threads took 48% of the
//! CPU samples of a floodgate-async run with `echo_server` and 40% with
//! this one, and raw-tcp ran 3% to 8% faster. It is not more than that:
//! the clients flush every message, so most reads still bring one frame;
//! the kernel's loopback TCP path (a `sendto` delivers into the peer's
//! socket and wakes its reader) is most of every message's cost, on both
//! sides. `--server per-frame` runs the benchmark against `echo_server`.
//!
//! Why threads in this process and not a child process: the server has no
//! state the clients could disturb or share (no allocator traffic per
//! message, no runtime), the `echo` benchmark already runs its server
//! in-process, and the tests can start it directly. A profile of the
//! client alone is taken by filtering on the thread name (`perf report
//! --comm conns`): the server's threads are named `conns-conn`.
//!
//! Per connection: the upgrade ([`handshake::server_accept`]), then reads
//! of up to 256 KiB; every complete client frame in the buffer is unmasked
//! into one output buffer as an unmasked frame with the same opcode (a
//! ping gets a pong, a pong is dropped), and the output goes out in one
//! `write_all`; a close is echoed, then the server ends TCP first and
//! waits for the client's end, as RFC 6455 asks. Fragmented frames are
//! echoed frame by frame (the benchmark sends none). `TCP_NODELAY` is set.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use crate::handshake;
use crate::server::{frame_header, parse_header};
use crate::thread_server::ThreadServer;

/// How long a connection may stay silent before the server gives up.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// The largest frame the server accepts.
const MAX_FRAME: usize = 64 << 20;

/// Bytes asked of each `read`.
const READ_CHUNK: usize = 256 * 1024;

/// The running server: see [`ThreadServer`].
pub type ConnsServer = ThreadServer;

/// Binds `127.0.0.1:0` and starts accepting.
pub fn start() -> io::Result<ConnsServer> {
    ThreadServer::spawn(
        "conns",
        Some(128 * 1024), /* 256 connections are 256 threads */
        serve,
    )
}

/// What one pass over the input found.
enum Pass {
    /// Keep reading.
    More,
    /// A close was echoed: end the connection.
    Closed,
}

/// Echoes every complete frame of `input[..]` into `out`; returns how many
/// input bytes it consumed and whether a close was among them.
fn echo_frames(input: &mut [u8], out: &mut Vec<u8>) -> io::Result<(usize, Pass)> {
    let mut pos = 0;
    while let Some((opcode, hlen, len)) = parse_header(&input[pos..]) {
        if input[pos + 1] & 0x80 == 0 {
            return Err(io::Error::other("unmasked client frame"));
        }
        if len > MAX_FRAME {
            return Err(io::Error::other("frame too large"));
        }
        if input.len() - pos < hlen + len {
            break;
        }
        let fin = input[pos] & 0x80;
        let mask: [u8; 4] = input[pos + hlen - 4..pos + hlen].try_into().expect("4");
        let payload = &mut input[pos + hlen..pos + hlen + len];
        pos += hlen + len;
        let reply = match opcode {
            0x0..=0x2 | 0x8 => opcode,
            0x9 => 0xA,
            _ => continue, // a pong (or anything else): dropped
        };
        let mut chunks = payload.chunks_exact_mut(4);
        for c in &mut chunks {
            for (b, m) in c.iter_mut().zip(mask) {
                *b ^= m;
            }
        }
        for (b, m) in chunks.into_remainder().iter_mut().zip(mask) {
            *b ^= m;
        }
        let h = out.len();
        frame_header(reply, len, out);
        // frame_header sets FIN; keep the client's.
        out[h] = (out[h] & 0x0F) | fin;
        out.extend_from_slice(payload);
        if opcode == 0x8 {
            return Ok((pos, Pass::Closed));
        }
    }
    Ok((pos, Pass::More))
}

fn serve(mut stream: TcpStream) -> io::Result<()> {
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    stream.set_write_timeout(Some(READ_TIMEOUT))?;
    stream.set_nodelay(true)?;
    let early = handshake::server_accept(&mut stream)?;
    let mut buf = vec![0u8; READ_CHUNK.max(early.len())];
    buf[..early.len()].copy_from_slice(&early);
    let mut end = early.len();
    let mut out = Vec::with_capacity(READ_CHUNK + 1024);
    loop {
        if end > 0 {
            out.clear();
            let (used, pass) = echo_frames(&mut buf[..end], &mut out)?;
            if !out.is_empty() {
                stream.write_all(&out)?;
            }
            if let Pass::Closed = pass {
                // Our close answered theirs. The server ends TCP first (RFC
                // 6455, section 7.1.1), then waits for the client's end.
                stream.shutdown(Shutdown::Write)?;
                let mut sink = [0u8; 1024];
                while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
                return Ok(());
            }
            buf.copy_within(used..end, 0);
            end -= used;
        }
        if end == buf.len() {
            // One frame larger than the buffer: make room for all of it.
            let need = parse_header(&buf[..end]).map_or(0, |(_, h, l)| h + l);
            buf.resize(need.max(buf.len() * 2).min(MAX_FRAME + 14), 0);
        }
        let n = match stream.read(&mut buf[end..]) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Ok(()),
            Err(e) => return Err(e),
        };
        if n == 0 {
            // The client hung up without a close: that ends it too.
            return Ok(());
        }
        end += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(opcode: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
        let mut f = Vec::new();
        frame_header(opcode, payload.len(), &mut f);
        f[1] |= 0x80;
        f.extend_from_slice(&mask);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        f
    }

    #[test]
    fn every_complete_frame_of_a_read_is_echoed_in_order() {
        let mut input = masked(0x2, b"first", [1, 2, 3, 4]);
        input.extend(masked(0x9, b"ping", [5, 6, 7, 8]));
        input.extend(masked(0x1, &[b'x'; 300], [9, 9, 9, 9]));
        let whole = input.len();
        // Half a frame more: left for the next read.
        input.extend(&masked(0x2, b"later", [1, 1, 1, 1])[..4]);
        let mut out = Vec::new();
        let (used, pass) = echo_frames(&mut input, &mut out).unwrap();
        assert_eq!(used, whole);
        assert!(matches!(pass, Pass::More));
        let mut want = Vec::new();
        for (op, p) in [(0x2, &b"first"[..]), (0xA, b"ping"), (0x1, &[b'x'; 300])] {
            frame_header(op, p.len(), &mut want);
            want.extend_from_slice(p);
        }
        assert_eq!(out, want);
    }

    #[test]
    fn a_close_ends_the_pass() {
        let mut input = masked(0x8, &[0x03, 0xE8], [1, 2, 3, 4]);
        input.extend(masked(0x2, b"after", [1, 2, 3, 4]));
        let mut out = Vec::new();
        let (used, pass) = echo_frames(&mut input, &mut out).unwrap();
        assert_eq!(used, 8);
        assert!(matches!(pass, Pass::Closed));
        assert_eq!(out, [0x88, 0x02, 0x03, 0xE8]);
    }
}
