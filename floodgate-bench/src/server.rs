//! The streaming server: hand-written on `std::net`, shared by every client.
//!
//! One thread, one listener on `127.0.0.1:0`. For each [`Job`] it accepts
//! exactly one connection and serves it:
//!
//! 1. reads the upgrade request until `\r\n\r\n` (httparse) and answers
//!    `101 Switching Protocols` with the right `Sec-WebSocket-Accept`;
//! 2. writes `count` unmasked, final, binary frames of `size` payload bytes.
//!    The frames are encoded once into a block of about 1 MiB, which is
//!    written again and again with `write_all`, then the remainder; so the
//!    server costs almost nothing per message and the client is the
//!    bottleneck;
//! 3. writes a close frame with code 1000;
//! 4. reads (and discards) until the client's close frame or EOF, then drops
//!    the connection.
//!
//! The socket keeps the kernel's defaults (Nagle on, default buffers): the
//! same for every client.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use crate::handshake;
use crate::job_server::{Failure, JobServer};

/// Target size of the pre-encoded block of frames.
pub const BLOCK_TARGET: usize = 1 << 20;

/// How long the server waits on a silent client before giving up.
const READ_TIMEOUT: Duration = Duration::from_secs(20);

/// What to stream on the next connection.
#[derive(Clone, Copy, Debug)]
pub struct Job {
    /// Payload bytes per message.
    pub size: usize,
    /// Number of messages.
    pub count: u64,
}

/// What the server did on one connection.
#[derive(Debug, Default)]
pub struct Report {
    /// Data frames written (not counting the close frame).
    pub frames: u64,
    /// Bytes written after the handshake, close frame included.
    pub bytes: u64,
    /// From the end of the handshake to the last byte of the close frame
    /// handed to the kernel.
    pub write_time: Duration,
    /// Whether the client's close frame arrived (otherwise: EOF).
    pub client_close: bool,
    /// Set when serving failed.
    pub error: Option<String>,
}

/// A running server thread: see [`JobServer`].
pub type Server = JobServer<Job, Report>;

impl Server {
    /// Binds `127.0.0.1:0` and starts the server thread.
    pub fn start() -> io::Result<Server> {
        JobServer::spawn("bench-server", serve)
    }
}

impl Failure for Report {
    fn failure(reason: String) -> Report {
        Report {
            error: Some(reason),
            ..Report::default()
        }
    }
}

/// Encodes the header of a final, unmasked frame.
pub fn frame_header(opcode: u8, len: usize, out: &mut Vec<u8>) {
    out.push(0x80 | opcode);
    if len < 126 {
        out.push(len as u8);
    } else if len <= u16::MAX as usize {
        out.push(126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
}

/// One encoded binary frame with a `size`-byte payload.
pub fn encode_frame(size: usize) -> Vec<u8> {
    let mut f = Vec::with_capacity(size + 14);
    frame_header(0x2, size, &mut f);
    // Printable ASCII so it is valid UTF-8 too; the content does not matter.
    f.extend((0..size).map(|i| b'a' + (i % 26) as u8));
    f
}

/// Bytes on the wire for `count` frames of `size` plus the close frame.
pub fn wire_bytes(size: usize, count: u64) -> u64 {
    frame_len(size) as u64 * count + 4
}

/// Length of one encoded frame with a `size`-byte payload.
pub fn frame_len(size: usize) -> usize {
    size + match size {
        0..=125 => 2,
        126..=65535 => 4,
        _ => 10,
    }
}

fn serve(stream: TcpStream, job: Job) -> Report {
    let mut report = Report::default();
    if let Err(e) = serve_inner(stream, job, &mut report) {
        report.error = Some(e.to_string());
    }
    report
}

fn serve_inner(mut stream: TcpStream, job: Job, report: &mut Report) -> io::Result<()> {
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    stream.set_write_timeout(Some(READ_TIMEOUT))?;

    // 1. Handshake. The client sends nothing before our answer, so no
    // byte past the request is read.
    handshake::server_accept(&mut stream)?;

    // 2. The frames, from a pre-encoded block.
    let frame = encode_frame(job.size);
    let per_block = (BLOCK_TARGET / frame.len()).max(1);
    let block: Vec<u8> = frame
        .iter()
        .copied()
        .cycle()
        .take(frame.len() * per_block)
        .collect();
    let start = Instant::now();
    let full_blocks = job.count / per_block as u64;
    let rest = (job.count % per_block as u64) as usize;
    for _ in 0..full_blocks {
        stream.write_all(&block)?;
        report.frames += per_block as u64;
        report.bytes += block.len() as u64;
    }
    stream.write_all(&block[..rest * frame.len()])?;
    report.frames += rest as u64;
    report.bytes += (rest * frame.len()) as u64;

    // 3. Close, code 1000.
    let close = [0x88, 0x02, 0x03, 0xE8];
    stream.write_all(&close)?;
    report.bytes += close.len() as u64;
    report.write_time = start.elapsed();

    // 4. Wait for the client's close frame (masked) or EOF.
    report.client_close = wait_for_close(&mut stream)?;
    Ok(())
}

/// Reads client frames until a close frame or EOF. Returns whether a close
/// frame was seen.
fn wait_for_close(stream: &mut TcpStream) -> io::Result<bool> {
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        // Walk whole frames in `buf`.
        let mut pos = 0;
        while let Some((opcode, hlen, plen)) = parse_header(&buf[pos..]) {
            if opcode == 0x8 {
                return Ok(true);
            }
            if buf.len() - pos < hlen + plen {
                break;
            }
            pos += hlen + plen;
        }
        buf.drain(..pos);
        match stream.read(&mut chunk) {
            Ok(0) => return Ok(false),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Ok(false),
            Err(e) => return Err(e),
        }
    }
}

/// `SO_SNDBUF` on a server's socket (std has no setter); 0 keeps the
/// kernel's auto-tuning. Linux doubles the value asked and caps it at
/// `net.core.wmem_max`.
#[cfg(target_os = "linux")]
pub fn set_send_buffer(stream: &TcpStream, bytes: usize) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    const SOL_SOCKET: i32 = 1;
    const SO_SNDBUF: i32 = 7;
    extern "C" {
        fn setsockopt(fd: i32, level: i32, name: i32, value: *const i32, len: u32) -> i32;
    }
    if bytes == 0 {
        return Ok(());
    }
    let value = i32::try_from(bytes).unwrap_or(i32::MAX);
    // SAFETY: a valid descriptor and a pointer to a live i32 of the given
    // length, as setsockopt(2) requires.
    let rc = unsafe {
        setsockopt(
            stream.as_raw_fd(),
            SOL_SOCKET,
            SO_SNDBUF,
            &value,
            std::mem::size_of::<i32>() as u32,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `SO_SNDBUF` on a server's socket: not set off Linux.
#[cfg(not(target_os = "linux"))]
pub fn set_send_buffer(_stream: &TcpStream, _bytes: usize) -> io::Result<()> {
    Ok(())
}

/// Parses a frame header: (opcode, header length, payload length).
pub fn parse_header(b: &[u8]) -> Option<(u8, usize, usize)> {
    if b.len() < 2 {
        return None;
    }
    let opcode = b[0] & 0x0F;
    let masked = b[1] & 0x80 != 0;
    let (ext, len7) = match b[1] & 0x7F {
        126 => (2, None),
        127 => (8, None),
        n => (0, Some(n as usize)),
    };
    let hlen = 2 + ext + if masked { 4 } else { 0 };
    if b.len() < hlen {
        return None;
    }
    let plen = match (len7, ext) {
        (Some(n), _) => n,
        (None, 2) => u16::from_be_bytes([b[2], b[3]]) as usize,
        _ => u64::from_be_bytes(b[2..10].try_into().unwrap()) as usize,
    };
    Some((opcode, hlen, plen))
}

/// Ends a benchmark server's connection: answers the client's close with
/// its code when `client_closed` (its reader has seen it), or closes with
/// 1000; waits for the reader and shuts the socket down. Returns what the
/// reader saw; `close_of` says which close code it saw.
pub fn end_connection<T: Default>(
    stream: &mut TcpStream,
    client_closed: bool,
    reader: thread::JoinHandle<T>,
    close_of: impl Fn(&T) -> Option<u16>,
) -> T {
    let seen = if client_closed {
        let seen = reader.join().unwrap_or_default();
        let code = close_of(&seen).unwrap_or(1000).to_be_bytes();
        let _ = stream.write_all(&[0x88, 0x02, code[0], code[1]]);
        seen
    } else {
        let _ = stream.write_all(&[0x88, 0x02, 0x03, 0xE8]);
        reader.join().unwrap_or_default()
    };
    let _ = stream.shutdown(std::net::Shutdown::Both);
    seen
}

/// Reads the client's frames until its close or the end of the stream,
/// unmasking each payload and handing every other frame to `on_frame`
/// (opcode, payload). Returns the close's code, if a close with one came.
/// For the benchmark servers that time pongs while they write.
pub fn read_client_frames(
    stream: &mut TcpStream,
    mut on_frame: impl FnMut(u8, &[u8]),
) -> Option<u16> {
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let mut pos = 0;
        while let Some((opcode, hlen, plen)) = parse_header(&buf[pos..]) {
            if buf.len() - pos < hlen + plen {
                break;
            }
            let masked = buf[pos + 1] & 0x80 != 0;
            let mut payload = buf[pos + hlen..pos + hlen + plen].to_vec();
            if masked {
                let key = &buf[pos + hlen - 4..pos + hlen];
                for (i, b) in payload.iter_mut().enumerate() {
                    *b ^= key[i % 4];
                }
            }
            pos += hlen + plen;
            if opcode == 0x8 {
                return payload.get(..2).map(|c| u16::from_be_bytes([c[0], c[1]]));
            }
            on_frame(opcode, &payload);
        }
        buf.drain(..pos);
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_lengths() {
        for size in [0, 16, 125, 126, 1024, 65535, 65536, 100_000] {
            let f = encode_frame(size);
            assert_eq!(f.len(), frame_len(size), "size {size}");
            let (op, hlen, plen) = parse_header(&f).unwrap();
            assert_eq!((op, hlen + plen, plen), (2, f.len(), size));
        }
    }
}
