//! Receives every message until the server closes, then prints
//! `N messages, B bytes`.
//!
//! The smallest useful floodgate program, and the receive loops the
//! benchmark (`floodgate-bench`, bin `stream`) measures:
//!
//!     cargo run --release --example drain -- ws://127.0.0.1:9001/
//!     cargo run --release --example drain -- --buffered ws://127.0.0.1:9001/
//!
//! Without flags it uses the direct connection: `ws.messages()` reads and
//! decodes on the calling thread. With `--buffered` it uses the buffered
//! path: `connect_buffered` starts a reader thread that decodes into a
//! bounded buffer with the default policy, `Overflow::Block` (lossless:
//! when the buffer is full the reader stops reading and TCP flow control
//! slows the server), and this thread takes messages in batches with
//! `recv_batch_into`, reusing one vector, so that one lock and at most one
//! wake-up are paid per batch rather than per message.

use floodgate::buffer::{BufferConfig, Overflow};
use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str = "usage: drain [--buffered] URL

Receives every message from URL until the server closes the connection,
then prints `N messages, B bytes`.

  --buffered  use the buffered path: a reader thread, Overflow::Block and
              recv_batch_into (default: the direct connection)";

/// Most messages taken per `recv_batch_into` call.
const BATCH: usize = 1024;

fn main() -> ExitCode {
    let mut buffered = false;
    let mut url = None;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            "--buffered" => buffered = true,
            flag if flag.starts_with('-') => {
                eprintln!("drain: unknown option {flag}\n{USAGE}");
                return ExitCode::from(2);
            }
            _ if url.is_some() => {
                eprintln!("drain: more than one URL\n{USAGE}");
                return ExitCode::from(2);
            }
            _ => url = Some(arg),
        }
    }
    let Some(url) = url else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let counted = if buffered {
        drain_buffered(&url)
    } else {
        drain(&url)
    };
    match counted {
        Ok((messages, bytes)) => {
            println!("{messages} messages, {bytes} bytes");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("drain: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The direct path: read and decode on this thread.
fn drain(url: &str) -> floodgate::Result<(u64, u64)> {
    let mut ws = floodgate::connect(url)?;
    let (mut messages, mut bytes) = (0u64, 0u64);
    for message in ws.messages() {
        messages += 1;
        bytes += message?.len() as u64;
    }
    Ok((messages, bytes))
}

/// The buffered path: a reader thread fills the buffer, this thread takes
/// up to `BATCH` messages at a time until the close is reported.
fn drain_buffered(url: &str) -> floodgate::Result<(u64, u64)> {
    let ws = floodgate::Client::builder()
        .buffer(BufferConfig::new().overflow(Overflow::Block))
        .connect_buffered(url)?;
    let (mut messages, mut bytes) = (0u64, 0u64);
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        batch.clear();
        match ws.recv_batch_into(&mut batch, BATCH, Duration::MAX) {
            Ok(_) => {
                for message in &batch {
                    messages += 1;
                    bytes += message.len() as u64;
                }
            }
            // The close handshake, after every buffered message was taken.
            Err(e) if e.is_closed() => return Ok((messages, bytes)),
            Err(e) => return Err(e),
        }
    }
}
