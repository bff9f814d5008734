//! The scenario's server: plain `std::net`, one connection per policy.
//!
//! It answers the upgrade, then writes the numbered text messages
//! (`"CH SEQ xxx..."`, channel `SEQ % C`) in blocks of about 16 KiB as fast
//! as the socket takes them, with a ping between blocks whenever one is due
//! (every `--ping-ms`; its payload is the time it was due), lingers, pinging
//! on, for `--linger-ms`, and closes with 1000, or answers the client's
//! close with its code. A second thread reads the client's frames: it
//! timestamps pongs and notes the client's close, which stops the writer.

use std::io::{self, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use floodgate_bench::handshake;
use floodgate_bench::server::{end_connection, frame_header, read_client_frames, set_send_buffer};

use crate::{Args, CHILD_TIMEOUT};

/// What the server saw on one connection.
#[derive(Debug, Default)]
pub(crate) struct ServerReport {
    /// Data messages written in full.
    pub(crate) sent: u64,
    /// Pings written.
    pub(crate) pings: u64,
    /// Pongs read (each answers one of the pings).
    pub(crate) pongs: u64,
    /// Worst time from a ping being due to reading its pong.
    pub(crate) worst_pong: Duration,
    /// Time spent in writes of data (blocked when the client pushes back).
    pub(crate) write_time: Duration,
    /// The close code the client sent, if it sent a close.
    pub(crate) client_close: Option<u16>,
    /// Set when serving failed.
    pub(crate) error: Option<String>,
}

/// Accepts one connection and runs the scenario on it.
pub(crate) fn serve_one(listener: &TcpListener, args: &Args) -> ServerReport {
    let mut report = ServerReport::default();
    match listener.accept() {
        Ok((stream, _)) => {
            if let Err(e) = serve(stream, args, &mut report) {
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
    pongs: u64,
    worst_pong: Duration,
    close: Option<u16>,
}

fn serve(mut stream: TcpStream, args: &Args, report: &mut ServerReport) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.set_write_timeout(Some(CHILD_TIMEOUT))?;
    set_send_buffer(&stream, args.sndbuf)?;
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

    // The messages, written in blocks of about 16 KiB; a ping goes out
    // between blocks once it is due. Its payload is the time it was due,
    // so a ping that the server could only write late (its own write was
    // blocked by the client's backpressure) counts from when it was due:
    // what a keep-alive timer on the server would see.
    let ping_every = Duration::from_millis(args.ping_ms);
    let mut next_ping = epoch + ping_every;
    let mut ping_if_due = |stream: &mut TcpStream, report: &mut ServerReport| {
        let now = Instant::now();
        if now < next_ping {
            return Ok(());
        }
        let due = next_ping.duration_since(epoch).as_nanos() as u64;
        next_ping = now + ping_every;
        let mut ping = Vec::with_capacity(10);
        frame_header(0x9, 8, &mut ping);
        ping.extend_from_slice(&due.to_be_bytes());
        stream.write_all(&ping)?;
        report.pings += 1;
        Ok::<_, io::Error>(())
    };
    let mut block = Vec::with_capacity(32 << 10);
    let mut in_block = 0u64;
    let mut frame = Vec::with_capacity(args.size + 14);
    let mut gone = false;
    for seq in 0..args.messages {
        if closed.load(Ordering::Relaxed) {
            break;
        }
        frame.clear();
        let _ = write!(frame, "{:02} {:09} ", seq % args.channels, seq);
        frame.resize(args.size, b'x');
        frame_header(0x1, frame.len(), &mut block);
        block.extend_from_slice(&frame);
        in_block += 1;
        if block.len() >= 16 << 10 || seq + 1 == args.messages {
            let t = Instant::now();
            let written = stream.write_all(&block);
            report.write_time += t.elapsed();
            if written.is_err() {
                gone = true; // the client left (its child reports why)
                break;
            }
            report.sent += in_block;
            block.clear();
            in_block = 0;
        }
        if ping_if_due(&mut stream, report).is_err() {
            gone = true;
            break;
        }
    }
    // Linger: go on pinging for a while before closing, so that the
    // consumer is pinged while it works through what it buffered.
    let linger_until = Instant::now() + Duration::from_millis(args.linger_ms);
    while !gone && !closed.load(Ordering::Relaxed) {
        let now = Instant::now();
        if now >= linger_until {
            break;
        }
        thread::sleep((linger_until - now).min(Duration::from_millis(1)));
        if ping_if_due(&mut stream, report).is_err() {
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
    report.worst_pong = from_client.worst_pong;
    report.client_close = from_client.close;
    Ok(())
}

/// Reads the client's frames until its close or EOF: timestamps pongs and
/// notes the close.
fn read_client(stream: &mut TcpStream, epoch: Instant, closed: &AtomicBool) -> FromClient {
    let mut seen = FromClient::default();
    seen.close = read_client_frames(stream, |opcode, payload| {
        if opcode == 0xA && payload.len() == 8 {
            let sent = u64::from_be_bytes(payload.try_into().expect("8 bytes"));
            let delay = epoch.elapsed().saturating_sub(Duration::from_nanos(sent));
            seen.pongs += 1;
            seen.worst_pong = seen.worst_pong.max(delay);
        }
    });
    closed.store(true, Ordering::Relaxed);
    seen
}
