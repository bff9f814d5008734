//! The echo server of the `echo` benchmark: hand-written on `std::net`, no
//! WebSocket library on the server side, so it favours none of the clients.
//!
//! One listener on `127.0.0.1:0`, a thread per connection. Each connection
//! is upgraded with [`handshake::server_accept`], then every client frame
//! is read whole (through a 256 KiB `BufReader`, so a small frame costs one
//! `read`), unmasked, and written back as one unmasked frame of the same
//! opcode with a single `write_all` (header and payload together). A ping
//! gets a pong, a close gets a close with the same payload, after which the
//! server ends TCP first (as RFC 6455 asks of a server). `TCP_NODELAY` is set on every connection; the clients set
//! it too, so no round trip waits on Nagle's algorithm.

use std::io::{self, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use crate::handshake;
use crate::server::frame_header;
use crate::thread_server::ThreadServer;

/// How long a connection may stay silent before the server gives up.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// The largest frame the server accepts.
const MAX_FRAME: usize = 64 << 20;

/// The running server: see [`ThreadServer`].
pub type EchoServer = ThreadServer;

/// Binds `127.0.0.1:0` and starts accepting.
pub fn start() -> io::Result<EchoServer> {
    ThreadServer::spawn("echo", None, serve)
}

fn serve(mut stream: TcpStream) -> io::Result<()> {
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    stream.set_write_timeout(Some(READ_TIMEOUT))?;
    stream.set_nodelay(true)?;
    let early = handshake::server_accept(&mut stream)?;
    let mut reader =
        BufReader::with_capacity(256 * 1024, early.as_slice().chain(stream.try_clone()?));
    let mut out = Vec::new();
    loop {
        let mut head = [0u8; 2];
        match reader.read_exact(&mut head) {
            Ok(()) => {}
            // The client hung up without a close: that ends it too.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Ok(()),
            Err(e) => return Err(e),
        }
        let opcode = head[0] & 0x0F;
        if head[0] & 0x80 == 0 {
            return Err(io::Error::other("fragmented frames are not echoed"));
        }
        if head[1] & 0x80 == 0 {
            return Err(io::Error::other("unmasked client frame"));
        }
        let len = match head[1] & 0x7F {
            126 => {
                let mut b = [0u8; 2];
                reader.read_exact(&mut b)?;
                u16::from_be_bytes(b) as usize
            }
            127 => {
                let mut b = [0u8; 8];
                reader.read_exact(&mut b)?;
                u64::from_be_bytes(b) as usize
            }
            n => n as usize,
        };
        if len > MAX_FRAME {
            return Err(io::Error::other("frame too large"));
        }
        let mut mask = [0u8; 4];
        reader.read_exact(&mut mask)?;
        let reply = match opcode {
            0x1 | 0x2 | 0x8 => opcode,
            0x9 => 0xA,
            _ => 0, // a pong (or anything else): read and dropped
        };
        // The payload is read straight behind the reply's header, unmasked
        // in place, and the frame goes out in one write.
        out.clear();
        frame_header(reply, len, &mut out);
        let h = out.len();
        out.resize(h + len, 0);
        reader.read_exact(&mut out[h..])?;
        if reply == 0 {
            continue;
        }
        let mut chunks = out[h..].chunks_exact_mut(4);
        for c in &mut chunks {
            for (b, m) in c.iter_mut().zip(mask) {
                *b ^= m;
            }
        }
        for (b, m) in chunks.into_remainder().iter_mut().zip(mask) {
            *b ^= m;
        }
        stream.write_all(&out)?;
        if opcode == 0x8 {
            // Our close answered theirs. The server ends TCP first (RFC
            // 6455, section 7.1.1), then waits for the client's end.
            stream.shutdown(Shutdown::Write)?;
            let mut sink = [0u8; 1024];
            while matches!(reader.read(&mut sink), Ok(n) if n > 0) {}
            return Ok(());
        }
    }
}
