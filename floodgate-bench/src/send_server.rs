//! The counting server of the `send` benchmark: hand-written on `std::net`,
//! no WebSocket library, so it favours none of the clients.
//!
//! The streaming [`server`](crate::server) only skims what a client sends
//! and the [`echo_server`](crate::echo_server) answers every frame; to
//! measure how fast a client *sends*, the server must take bytes as fast
//! as the kernel hands them over, do the same small amount of work per
//! byte for every client, and still refuse whatever a correct client would
//! not send. One thread, one listener on `127.0.0.1:0`; for each [`Job`] it
//! accepts one connection and:
//!
//! 1. answers the upgrade ([`handshake::server_accept`]);
//! 2. reads with 256 KiB reads into one reused buffer and walks the frames
//!    as they come, a payload possibly spread over many reads: every frame
//!    must be masked (RFC 6455, section 5.1), without RSV bits, binary or a
//!    continuation of a binary message (or a ping, pong or close); every
//!    payload byte is unmasked and compared with the benchmark's payload
//!    ([`payload`], known to both sides) eight bytes at a time, in place,
//!    without a copy; every complete message must be exactly the job's
//!    size. Messages, payload bytes, frames and masking keys are counted;
//! 3. on the client's close frame, answers with a close of the same code,
//!    ends TCP first (as RFC 6455, section 7.1.1, asks of a server) and
//!    reports.
//!
//! The first error ends the connection at once: the client then fails on
//! a broken pipe or a missing close reply, so a row that lost, merged, did
//! not mask or masked wrongly fails instead of looking fast.
//!
//! The check costs the same for every client (a load, two XORs and an OR
//! per eight bytes, which the compiler vectorises) and is far cheaper than
//! the read that precedes it; the `raw-tcp` row, which does no work per
//! message at all, shows what this server can take.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use crate::handshake;
use crate::job_server::{Failure, JobServer};

/// Bytes asked of each `read`: large enough that a read costs little per
/// byte, small enough that what was read is still in cache when checked.
pub const READ_CHUNK: usize = 256 * 1024;

/// How long the server waits on a silent client before giving up.
const READ_TIMEOUT: Duration = Duration::from_secs(20);

/// The payload every client sends for messages of `size` bytes: byte `i`
/// is `(i * 31 + size) as u8`. Not constant, so a byte in the wrong place
/// (or unmasked with the wrong key phase) shows; it depends on `size`, so a
/// message of one size is no valid message of another.
pub fn payload(size: usize) -> Vec<u8> {
    pattern(size, size)
}

/// `len` bytes of the payload of messages of `size` bytes, from its start
/// (and past its end, for the server's table).
fn pattern(size: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i.wrapping_mul(31).wrapping_add(size)) as u8)
        .collect()
}

/// The payload's period: byte `i` depends on `i mod 256` only, so the
/// server compares against a small table that stays in the L1 cache
/// instead of a copy of the whole message.
const PERIOD: usize = 256;

/// Bytes compared against the table per step (a multiple of the period,
/// of 8 and of the key's 4).
const PIECE: usize = 4096;

/// Appends one final, masked client frame: `opcode`, `data` masked with
/// `key`. For the raw TCP ceiling and the tests' stand-in clients.
pub fn masked_frame(opcode: u8, data: &[u8], key: [u8; 4], out: &mut Vec<u8>) {
    out.push(0x80 | opcode);
    let len = data.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= u16::MAX as usize {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&key);
    out.extend(data.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
}

/// Wire length of one masked frame with a `size`-byte payload.
pub fn masked_frame_len(size: usize) -> usize {
    size + match size {
        0..=125 => 6,
        126..=65535 => 8,
        _ => 14,
    }
}

/// What the next connection must send.
#[derive(Clone, Copy, Debug)]
pub struct Job {
    /// Payload bytes per message.
    pub size: usize,
}

/// What the server saw on one connection.
#[derive(Debug, Default)]
pub struct Report {
    /// Complete messages, each checked byte for byte.
    pub messages: u64,
    /// Their payload bytes.
    pub bytes: u64,
    /// Data frames (more than `messages` if a client fragments).
    pub frames: u64,
    /// Bytes read after the handshake, the close frame included.
    pub wire_bytes: u64,
    /// Data frames masked with the key `00 00 00 00`, which makes masking
    /// free: a client that always did so would save work the others do.
    pub zero_keys: u64,
    /// Data frames masked with the same key as the frame before: RFC 6455
    /// asks for a fresh, unpredictable key per frame.
    pub repeated_keys: u64,
    /// Whether the client's close frame arrived (and was answered).
    pub client_close: bool,
    /// CPU time of the server thread on this connection, from the accept
    /// to the end: what to subtract from the process's CPU time to get the
    /// client's.
    pub cpu: Duration,
    /// The first thing that was wrong; the connection ended there.
    pub error: Option<String>,
}

/// A running server thread: see [`JobServer`].
pub type SendServer = JobServer<Job, Report>;

impl SendServer {
    /// Binds `127.0.0.1:0` and starts the server thread.
    pub fn start() -> io::Result<SendServer> {
        JobServer::spawn("send-server", serve)
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

/// CPU time (user and system) of the calling thread, or of the whole
/// process; zero where it cannot be read (the thread's off Linux).
pub fn cpu_time(thread: bool) -> Duration {
    #[cfg(target_os = "linux")]
    let who = if thread {
        libc::RUSAGE_THREAD
    } else {
        libc::RUSAGE_SELF
    };
    #[cfg(not(target_os = "linux"))]
    let who = if thread {
        return Duration::ZERO;
    } else {
        libc::RUSAGE_SELF
    };
    // SAFETY: getrusage(2) fills the zeroed struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        if libc::getrusage(who, &mut usage) != 0 {
            return Duration::ZERO;
        }
        usage
    };
    let time = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    time(usage.ru_utime) + time(usage.ru_stime)
}

fn serve(mut stream: TcpStream, job: Job) -> Report {
    let cpu = cpu_time(true);
    let mut walk = Walk::new(job.size);
    if let Err(e) = serve_inner(&mut stream, &mut walk) {
        walk.report.error = Some(e);
        // Reset rather than a clean end, so the client sees at once that
        // its run failed.
        let _ = stream.shutdown(Shutdown::Both);
    }
    walk.report.cpu = cpu_time(true).saturating_sub(cpu);
    walk.report
}

fn serve_inner(stream: &mut TcpStream, walk: &mut Walk) -> Result<(), String> {
    let fail = |what: &str, e: io::Error| format!("{what}: {e}");
    stream
        .set_read_timeout(Some(READ_TIMEOUT))
        .map_err(|e| fail("set_read_timeout", e))?;
    stream
        .set_write_timeout(Some(READ_TIMEOUT))
        .map_err(|e| fail("set_write_timeout", e))?;
    let early = handshake::server_accept(stream).map_err(|e| fail("handshake", e))?;

    let mut buf = vec![0u8; READ_CHUNK + MAX_HEADER];
    // Only an incomplete frame header is ever kept between reads (payloads
    // are checked as they come), so `have` stays below MAX_HEADER. Bytes
    // read with the upgrade request (no client sends any) come first.
    let mut early = early.as_slice();
    let mut have = 0usize;
    loop {
        let n = if early.is_empty() {
            match stream.read(&mut buf[have..]) {
                Ok(0) => return Err("EOF before the client's close frame".into()),
                Ok(n) => {
                    // A short read: the server has caught up, the client
                    // may be at the end of a burst (see `quick_ack`). Full
                    // reads (the server is the limit) keep the kernel's
                    // delayed ACKs, whose work would otherwise land on
                    // the server's thread.
                    if n < buf.len() - have {
                        quick_ack(stream);
                    }
                    n
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(fail("read", e)),
            }
        } else {
            let n = early.len().min(buf.len() - have);
            buf[have..have + n].copy_from_slice(&early[..n]);
            early = &early[n..];
            n
        };
        walk.report.wire_bytes += n as u64;
        let end = have + n;
        let mut start = 0;
        loop {
            match walk.step(&buf[start..end])? {
                Step::More(pos) => {
                    buf.copy_within(start + pos..end, 0);
                    have = end - start - pos;
                    break;
                }
                Step::Pong(pos, data) => {
                    let mut pong = vec![0x8A, data.len() as u8];
                    pong.extend_from_slice(&data);
                    stream.write_all(&pong).map_err(|e| fail("pong", e))?;
                    start += pos;
                }
                Step::Closed(code) => {
                    let reply: &[u8] = match code {
                        Some(c) => &[0x88, 0x02, (c >> 8) as u8, c as u8],
                        None => &[0x88, 0x00],
                    };
                    stream
                        .write_all(reply)
                        .map_err(|e| fail("close reply", e))?;
                    walk.report.client_close = true;
                    // The server ends TCP first, then waits for the
                    // client's end (its errors no longer matter).
                    let _ = stream.shutdown(Shutdown::Write);
                    let mut sink = [0u8; 4096];
                    while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
                    return Ok(());
                }
            }
        }
    }
}

/// Asks the kernel to acknowledge what arrives at once (Linux keeps
/// `TCP_QUICKACK` only for a while, hence once per short read). Without
/// it, a client that keeps Nagle's algorithm (the default of several
/// libraries) holds its last small segment, the close frame, until the
/// server's delayed ACK, up to 40 ms: a stall at the end of a burst, not a
/// cost of sending, and a large share of a short run.
#[cfg(target_os = "linux")]
fn quick_ack(stream: &TcpStream) {
    use std::os::fd::AsRawFd;
    let on: libc::c_int = 1;
    // SAFETY: a valid socket and a pointer to a live c_int of the given
    // length, as setsockopt(2) requires. A failure only loses the hint.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_QUICKACK,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// `TCP_QUICKACK` is Linux's.
#[cfg(not(target_os = "linux"))]
fn quick_ack(_stream: &TcpStream) {}

/// Longest frame header: 2 bytes, 8 of length, 4 of key.
const MAX_HEADER: usize = 14;

/// Longest control payload (RFC 6455, section 5.5).
const MAX_CONTROL: usize = 125;

/// What [`Walk::step`] leaves to the I/O loop.
enum Step {
    /// Everything before this position is done; read more.
    More(usize),
    /// A ping ended at this position: answer it with this payload.
    Pong(usize, Vec<u8>),
    /// The client's close frame, with its code if it had one.
    Closed(Option<u16>),
}

/// The frame being read.
struct FrameState {
    opcode: u8,
    fin: bool,
    key: [u8; 4],
    /// Payload bytes not seen yet.
    remaining: u64,
    /// Payload bytes seen so far (the key's phase is this mod 4).
    seen: usize,
}

/// The frame walker and checker of one connection.
struct Walk {
    size: usize,
    /// The payload from its start, `PIECE + PERIOD` bytes: the expected
    /// bytes of a piece that starts at message offset `o` are
    /// `table[o % PERIOD..]`.
    table: Vec<u8>,
    frame: Option<FrameState>,
    /// A data message is open (its first frame came, its final one not yet).
    in_message: bool,
    /// Payload bytes of the open message seen so far.
    offset: usize,
    /// The unmasked payload of the control frame being read.
    control: Vec<u8>,
    last_key: Option<[u8; 4]>,
    report: Report,
}

impl Walk {
    fn new(size: usize) -> Walk {
        Walk {
            size,
            table: pattern(size, PIECE + PERIOD),
            frame: None,
            in_message: false,
            offset: 0,
            control: Vec::new(),
            last_key: None,
            report: Report::default(),
        }
    }

    /// Walks as much of `buf` as it can: whole headers, and every payload
    /// byte there is.
    fn step(&mut self, buf: &[u8]) -> Result<Step, String> {
        let mut pos = 0;
        loop {
            if self.frame.is_none() {
                match self.header(&buf[pos..])? {
                    Some(hlen) => pos += hlen,
                    None => return Ok(Step::More(pos)),
                }
            }
            let f = self.frame.as_mut().expect("a frame");
            let take = f.remaining.min((buf.len() - pos) as u64) as usize;
            let chunk = &buf[pos..pos + take];
            let (key, seen) = (f.key, f.seen);
            f.remaining -= take as u64;
            f.seen += take;
            pos += take;
            if f.opcode & 0x8 != 0 {
                self.control.extend(
                    chunk
                        .iter()
                        .enumerate()
                        .map(|(i, b)| b ^ key[(seen + i) % 4]),
                );
            } else {
                self.check(chunk, key, seen)?;
            }
            if self.frame.as_ref().is_some_and(|f| f.remaining > 0) {
                return Ok(Step::More(pos));
            }
            let f = self.frame.take().expect("a frame");
            match f.opcode {
                0x0 | 0x2 if f.fin => {
                    if self.offset != self.size {
                        return Err(format!(
                            "message {} has {} bytes, expected {}",
                            self.report.messages, self.offset, self.size
                        ));
                    }
                    self.report.messages += 1;
                    self.report.bytes += self.size as u64;
                    self.in_message = false;
                    self.offset = 0;
                }
                0x0 | 0x2 => {}
                0x8 => {
                    let code = match self.control.len() {
                        0 => None,
                        1 => return Err("close frame with a 1-byte payload".into()),
                        _ => Some(u16::from_be_bytes([self.control[0], self.control[1]])),
                    };
                    if self.in_message {
                        return Err(format!(
                            "close in the middle of message {}",
                            self.report.messages
                        ));
                    }
                    return Ok(Step::Closed(code));
                }
                0x9 => return Ok(Step::Pong(pos, std::mem::take(&mut self.control))),
                _ => self.control.clear(), // a pong: nothing to do
            }
        }
    }

    /// Parses and validates the header at the start of `b`; `None` if it
    /// is not complete yet, else its length.
    fn header(&mut self, b: &[u8]) -> Result<Option<usize>, String> {
        if b.len() < 2 {
            return Ok(None);
        }
        let (fin, rsv, opcode) = (b[0] & 0x80 != 0, b[0] & 0x70, b[0] & 0x0F);
        let masked = b[1] & 0x80 != 0;
        let ext = match b[1] & 0x7F {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let hlen = 2 + ext + 4;
        let n = self.report.messages;
        if !masked {
            return Err(format!(
                "unmasked frame (opcode {opcode:#x}) at message {n}: a client must mask every frame"
            ));
        }
        if b.len() < hlen {
            return Ok(None);
        }
        let len = match ext {
            0 => (b[1] & 0x7F) as u64,
            2 => u16::from_be_bytes([b[2], b[3]]) as u64,
            _ => u64::from_be_bytes(b[2..10].try_into().expect("8 bytes")),
        };
        let key: [u8; 4] = b[2 + ext..hlen].try_into().expect("4 bytes");
        if rsv != 0 {
            return Err(format!(
                "RSV bits {rsv:#x} set at message {n} (no extension was agreed)"
            ));
        }
        match opcode {
            0x2 if self.in_message => {
                return Err(format!("new message before the end of message {n}"))
            }
            0x2 => {
                self.in_message = true;
                self.offset = 0;
            }
            0x0 if !self.in_message => {
                return Err(format!(
                    "continuation frame outside a message, at message {n}"
                ))
            }
            0x0 => {}
            0x1 => {
                return Err(format!(
                    "text frame at message {n}: the benchmark sends binary"
                ))
            }
            0x8..=0xA => {
                if !fin || len > MAX_CONTROL as u64 {
                    return Err(format!("malformed control frame (opcode {opcode:#x})"));
                }
                self.control.clear();
            }
            _ => return Err(format!("reserved opcode {opcode:#x} at message {n}")),
        }
        if opcode <= 0x2 {
            // Checked before any payload byte: an absurd length never
            // makes the server wait for bytes that will not come.
            if len > (self.size - self.offset) as u64 {
                return Err(format!(
                    "message {n} is longer than {} bytes (a frame of {len} after {})",
                    self.size, self.offset
                ));
            }
            self.report.frames += 1;
            if key == [0; 4] {
                self.report.zero_keys += 1;
            }
            if self.last_key == Some(key) {
                self.report.repeated_keys += 1;
            }
            self.last_key = Some(key);
        }
        self.frame = Some(FrameState {
            opcode,
            fin,
            key,
            remaining: len,
            seen: 0,
        });
        Ok(Some(hlen))
    }

    /// Checks a piece of a data frame's payload that starts `seen` bytes
    /// into the frame, against the expected payload where the message is.
    fn check(&mut self, chunk: &[u8], key: [u8; 4], seen: usize) -> Result<(), String> {
        for (i, piece) in chunk.chunks(PIECE).enumerate() {
            // Each piece but the last is a multiple of 8 bytes long, so
            // the next one starts at the same key phase plus its offset.
            let at = i * PIECE;
            let start = (self.offset + at) % PERIOD;
            let expected = &self.table[start..start + piece.len()];
            if !masked_equal(piece, expected, key, seen + at) {
                let j = (0..piece.len())
                    .find(|&j| piece[j] ^ key[(seen + at + j) % 4] != expected[j])
                    .expect("a differing byte");
                return Err(format!(
                    "message {}, byte {}: {:#04x} after unmasking, expected {:#04x} \
                     (masked wrongly, or the payload was corrupted)",
                    self.report.messages,
                    self.offset + at + j,
                    piece[j] ^ key[(seen + at + j) % 4],
                    expected[j]
                ));
            }
        }
        self.offset += chunk.len();
        Ok(())
    }
}

/// Whether `masked`, unmasked with `key` from phase `seen % 4`, equals
/// `expected`: [`masked_diff`] with AVX2 where the CPU has it (the build
/// targets baseline x86-64, SSE2, which takes twice the instructions).
fn masked_equal(masked: &[u8], expected: &[u8], key: [u8; 4], seen: usize) -> bool {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        return unsafe { masked_diff_avx2(masked, expected, key, seen) } == 0;
    }
    masked_diff(masked, expected, key, seen) == 0
}

/// [`masked_diff`] compiled for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn masked_diff_avx2(masked: &[u8], expected: &[u8], key: [u8; 4], seen: usize) -> u64 {
    masked_diff(masked, expected, key, seen)
}

/// Zero if `masked`, unmasked with `key` from phase `seen % 4`, equals
/// `expected`. Word-wise without branches: the XOR of the masked word, the
/// expected word and the key word is zero for every word of a correct
/// payload, and the ORed differences are tested once by the caller; the
/// compiler vectorises the loop.
#[inline(always)]
fn masked_diff(masked: &[u8], expected: &[u8], key: [u8; 4], seen: usize) -> u64 {
    let k: [u8; 4] = std::array::from_fn(|i| key[(seen + i) % 4]);
    let word = u64::from_ne_bytes([k[0], k[1], k[2], k[3], k[0], k[1], k[2], k[3]]);
    let (m_words, m_tail) = masked.as_chunks::<8>();
    let (e_words, e_tail) = expected.as_chunks::<8>();
    let mut diff = m_words.iter().zip(e_words).fold(0u64, |d, (m, e)| {
        d | (u64::from_ne_bytes(*m) ^ u64::from_ne_bytes(*e) ^ word)
    });
    // The tail starts at a multiple of 8, so its phase is `k`'s.
    for (i, (m, e)) in m_tail.iter().zip(e_tail).enumerate() {
        diff |= u64::from(m ^ e ^ k[i % 4]);
    }
    diff
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_compare_at_every_phase_and_length() {
        let key = [0x12, 0x34, 0x56, 0x78];
        for size in [0, 1, 7, 8, 9, 63, 64, 65, 1000] {
            let expected = payload(size);
            let mut frame = Vec::new();
            masked_frame(0x2, &expected, key, &mut frame);
            let masked = &frame[frame.len() - size..];
            for start in 0..size.min(9) {
                assert!(
                    masked_equal(&masked[start..], &expected[start..], key, start),
                    "size {size} from {start}"
                );
                if size > start {
                    // One flipped bit anywhere is seen.
                    for flip in [start, (start + size) / 2, size - 1] {
                        let mut bad = masked.to_vec();
                        bad[flip] ^= 0x01;
                        assert!(
                            !masked_equal(&bad[start..], &expected[start..], key, start),
                            "size {size} from {start}, flip {flip}"
                        );
                    }
                    // The right key at the wrong phase is refused.
                    assert!(
                        !masked_equal(&masked[start..], &expected[start..], key, start + 1)
                            || size - start < 2,
                        "size {size} from {start}, wrong phase"
                    );
                }
            }
        }
    }

    #[test]
    fn frame_lengths() {
        for size in [0, 125, 126, 65535, 65536] {
            let mut f = Vec::new();
            masked_frame(0x2, &payload(size), [1, 2, 3, 4], &mut f);
            assert_eq!(f.len(), masked_frame_len(size), "size {size}");
        }
    }

    /// A stream cut anywhere (between reads) is walked the same as whole,
    /// messages shorter than the key's period and longer than a piece.
    #[test]
    fn split_reads_walk_the_same() {
        for size in [3, 300, PIECE + 1000] {
            let mut wire = Vec::new();
            for i in 0..5u8 {
                masked_frame(0x2, &payload(size), [i, 7, 9, 11], &mut wire);
            }
            masked_frame(0x8, &1000u16.to_be_bytes(), [5, 6, 7, 8], &mut wire);
            for cut in [1, 2, 3, 7, 13, 64, 301, 700, 4099] {
                let mut walk = Walk::new(size);
                let mut pending: Vec<u8> = Vec::new();
                let mut closed = None;
                for piece in wire.chunks(cut) {
                    pending.extend_from_slice(piece);
                    match walk.step(&pending).unwrap() {
                        Step::More(pos) => {
                            pending.drain(..pos);
                        }
                        Step::Closed(code) => closed = Some(code),
                        Step::Pong(..) => unreachable!(),
                    }
                }
                assert_eq!(closed, Some(Some(1000)), "size {size}, cut {cut}");
                let r = &walk.report;
                assert_eq!((r.messages, r.bytes), (5, 5 * size as u64));
                assert_eq!((r.frames, r.repeated_keys, r.zero_keys), (5, 0, 0));
            }
        }
    }
}
