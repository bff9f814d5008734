//! The flood server: plain `std::net`, one connection per case, in the
//! parent process (so its memory is not the consumer's).
//!
//! It answers the upgrade, then writes `N` binary messages of `size` bytes
//! as fast as the socket takes them: frames encoded once into a block of
//! about 64 KiB, whose sequence numbers (the first and the last 8 bytes of
//! each payload, big-endian) are rewritten before each `write_all`. A ping
//! goes out between two blocks whenever one is due (every `--ping-ms`);
//! after the last message it goes on pinging at the same interval until
//! the client, having taken every message, sends its close, which the
//! server answers. A second thread reads the client's frames and times
//! each pong.
//!
//! The send time is the server's own: from just before the first data
//! write to the return of the last one.

use std::io::{self, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use floodgate_bench::handshake;
use floodgate_bench::server::{end_connection, frame_header, read_client_frames, set_send_buffer};

use crate::CHILD_TIMEOUT;

/// Bytes of frames per data write.
const BLOCK_BYTES: usize = 64 << 10;

/// Ping payload: a phase byte, then the nanoseconds from the connection's
/// epoch to the moment the ping was written.
const WHILE_SENDING: u8 = 0;
const AFTER_SENDING: u8 = 1;

/// What the server sends on one connection.
#[derive(Clone, Debug)]
pub(crate) struct Plan {
    pub(crate) messages: u64,
    pub(crate) size: usize,
    pub(crate) ping_every: Duration,
    /// `SO_SNDBUF`, 0 for the kernel's default.
    pub(crate) sndbuf: usize,
}

/// Worst and count of the pongs of one phase.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Pongs {
    /// Pongs read.
    pub(crate) count: u64,
    /// Longest time from writing a ping to reading its pong.
    pub(crate) worst: Duration,
}

/// What the server saw on one connection.
#[derive(Debug, Default)]
pub(crate) struct ServerReport {
    /// Data messages written in full.
    pub(crate) sent: u64,
    /// From just before the first data write to the return of the last.
    pub(crate) send_time: Duration,
    /// Pings written while sending, and after.
    pub(crate) pings: [u64; 2],
    /// Their pongs, while sending and after.
    pub(crate) pongs: [Pongs; 2],
    /// Longest time a ping waited, past its due time, for the data write
    /// before it to return (the client's backpressure holds the server).
    pub(crate) worst_ping_late: Duration,
    /// The close code the client sent, if it sent a close.
    pub(crate) client_close: Option<u16>,
    /// Set when serving failed.
    pub(crate) error: Option<String>,
}

impl ServerReport {
    /// Longest ping round trip of the whole connection.
    pub(crate) fn worst_round_trip(&self) -> Duration {
        self.pongs[0].worst.max(self.pongs[1].worst)
    }
}

/// Accepts one connection and serves `plan` on it.
pub(crate) fn serve_one(listener: &TcpListener, plan: &Plan) -> ServerReport {
    let mut report = ServerReport::default();
    match listener.accept() {
        Ok((stream, _)) => {
            if let Err(e) = serve(stream, plan, &mut report) {
                report.error = Some(e.to_string());
            }
        }
        Err(e) => report.error = Some(format!("accept: {e}")),
    }
    report
}

/// What the server's reader thread learns from the client.
#[derive(Default)]
struct FromClient {
    pongs: [Pongs; 2],
    close: Option<u16>,
}

fn serve(mut stream: TcpStream, plan: &Plan, report: &mut ServerReport) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.set_write_timeout(Some(CHILD_TIMEOUT))?;
    set_send_buffer(&stream, plan.sndbuf)?;
    handshake::server_accept(&mut stream)?;
    stream.set_nodelay(true)?;

    let epoch = Instant::now();
    let closed = Arc::new(AtomicBool::new(false));
    let reader = {
        let mut read_half = stream.try_clone()?;
        let closed = closed.clone();
        read_half.set_read_timeout(Some(CHILD_TIMEOUT))?;
        thread::spawn(move || read_client(&mut read_half, epoch, &closed))
    };

    let mut next_ping = epoch + plan.ping_every;
    let mut ping = |stream: &mut TcpStream, phase: u8, report: &mut ServerReport| {
        let now = Instant::now();
        if now < next_ping {
            return Ok(());
        }
        if phase == WHILE_SENDING {
            report.worst_ping_late = report.worst_ping_late.max(now - next_ping);
        }
        next_ping = now + plan.ping_every;
        let mut frame = Vec::with_capacity(11);
        frame_header(0x9, 9, &mut frame);
        frame.push(phase);
        let written = epoch.elapsed().as_nanos() as u64;
        frame.extend_from_slice(&written.to_be_bytes());
        stream.write_all(&frame)?;
        report.pings[phase as usize] += 1;
        Ok::<_, io::Error>(())
    };

    // The block of frames, encoded once; only the sequence numbers change.
    let mut frame = Vec::with_capacity(plan.size + 14);
    frame_header(0x2, plan.size, &mut frame);
    let header = frame.len();
    frame.extend((0..plan.size).map(|i| b'a' + (i % 26) as u8));
    let per_block = (BLOCK_BYTES / frame.len()).max(1);
    let mut block: Vec<u8> = frame.repeat(per_block);
    let mut seq = 0u64;
    let mut gone = false;
    let start = Instant::now();
    while seq < plan.messages && !closed.load(Ordering::Relaxed) {
        let n = per_block.min((plan.messages - seq) as usize);
        for (i, f) in block.chunks_exact_mut(frame.len()).take(n).enumerate() {
            let s = (seq + i as u64).to_be_bytes();
            f[header..header + 8].copy_from_slice(&s);
            let tail = f.len() - 8;
            f[tail..].copy_from_slice(&s);
        }
        if stream.write_all(&block[..n * frame.len()]).is_err() {
            gone = true; // the client left (its child reports why)
            break;
        }
        seq += n as u64;
        report.sent = seq;
        report.send_time = start.elapsed();
        if ping(&mut stream, WHILE_SENDING, report).is_err() {
            gone = true;
            break;
        }
    }
    drop(block);

    // Ping on until the client's close (it closes once it has every
    // message), so that the pings cover its whole backlog.
    let give_up = Instant::now() + CHILD_TIMEOUT;
    while !gone && !closed.load(Ordering::Relaxed) && Instant::now() < give_up {
        thread::sleep(Duration::from_millis(1));
        if ping(&mut stream, AFTER_SENDING, report).is_err() {
            break;
        }
    }
    let from_client = end_connection(
        &mut stream,
        closed.load(Ordering::Relaxed),
        reader,
        |seen: &FromClient| seen.close,
    );
    report.pongs = from_client.pongs;
    report.client_close = from_client.close;
    Ok(())
}

/// Reads the client's frames until its close or EOF: times pongs and notes
/// the close.
fn read_client(stream: &mut TcpStream, epoch: Instant, closed: &AtomicBool) -> FromClient {
    let mut seen = FromClient::default();
    seen.close = read_client_frames(stream, |opcode, payload| {
        if opcode == 0xA && payload.len() == 9 && payload[0] <= AFTER_SENDING {
            let written = u64::from_be_bytes(payload[1..].try_into().expect("8 bytes"));
            let rtt = epoch
                .elapsed()
                .saturating_sub(Duration::from_nanos(written));
            let p = &mut seen.pongs[payload[0] as usize];
            p.count += 1;
            p.worst = p.worst.max(rtt);
        }
    });
    closed.store(true, Ordering::Relaxed);
    seen
}
