//! Receives every message until the server closes, then prints
//! `N messages, B bytes`.
//!
//! The smallest useful floodgate program, and the receive loop the
//! benchmarks measure:
//!
//!     cargo run --release --example drain -- ws://127.0.0.1:9001/

use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(url) = std::env::args().nth(1) else {
        eprintln!("usage: drain URL");
        return ExitCode::from(2);
    };
    match drain(&url) {
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

fn drain(url: &str) -> floodgate::Result<(u64, u64)> {
    let mut ws = floodgate::connect(url)?;
    let (mut messages, mut bytes) = (0u64, 0u64);
    for message in ws.messages() {
        messages += 1;
        bytes += message?.len() as u64;
    }
    Ok((messages, bytes))
}
