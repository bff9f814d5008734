//! Drives the Autobahn TestSuite fuzzing server: asks for the case count,
//! runs every case by echoing each message back, then asks the server to
//! write its reports.
//!
//!     cargo run --release --example autobahn_client -- ws://127.0.0.1:9001 [AGENT]
//!
//! Protocol errors are not handled here: floodgate fails the connection
//! with the right close code by itself, which is what the cases check.
//!
//! Every connection offers permessage-deflate (the default offer, which
//! groups 12 and 13 need) and compresses every message, however short, so
//! the compressor is exercised by every case; the fuzzing server accepts
//! the offer only in those groups.

use floodgate::{Client, DeflateConfig, ErrorKind, Message};
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let base = args
        .next()
        .unwrap_or_else(|| "ws://127.0.0.1:9001".to_owned());
    let agent = args.next().unwrap_or_else(|| "floodgate".to_owned());
    let base = base.trim_end_matches('/').to_owned();
    match run(&base, &agent) {
        Ok(count) => {
            println!("ran {count} cases as agent {agent:?}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("autobahn_client: {e}");
            ExitCode::FAILURE
        }
    }
}

fn client() -> floodgate::Result<Client> {
    // Autobahn sends messages up to 16 MiB; allow them and no more.
    Client::builder()
        .max_frame_size(Some(16 << 20))
        .max_message_size(Some(16 << 20))
        .close_timeout(Duration::from_secs(3))
        .compression(DeflateConfig::default().threshold(0))
        .build()
}

fn run(base: &str, agent: &str) -> floodgate::Result<u32> {
    let client = client()?;
    let count = case_count(&client, base)?;
    for case in 1..=count {
        let url = format!("{base}/runCase?case={case}&agent={agent}");
        match run_case(&client, &url) {
            // Failing the connection is what many cases ask for.
            Err(e) if !matches!(e.kind(), ErrorKind::Protocol(_)) => eprintln!("case {case}: {e}"),
            _ => {}
        }
    }
    let mut ws = client.connect(&format!("{base}/updateReports?agent={agent}"))?;
    // The server closes once the reports are written.
    while ws.recv().is_ok() {}
    Ok(count)
}

fn case_count(client: &Client, base: &str) -> floodgate::Result<u32> {
    let mut ws = client.connect(&format!("{base}/getCaseCount"))?;
    let message = ws.recv()?;
    let count = message
        .as_text()
        .and_then(|t| t.trim().parse().ok())
        .ok_or_else(|| {
            floodgate::Error::from(ErrorKind::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("the fuzzing server sent a case count that is not a number: {message:?}"),
            )))
        })?;
    while ws.recv().is_ok() {}
    Ok(count)
}

fn run_case(client: &Client, url: &str) -> floodgate::Result<()> {
    let mut ws = client.connect(url)?;
    loop {
        match ws.recv() {
            Ok(message @ (Message::Text(_) | Message::Binary(_))) => ws.send(message)?,
            Ok(_) => {}
            Err(e) if e.is_closed() => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}
