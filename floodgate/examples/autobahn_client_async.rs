//! The Autobahn TestSuite driver of `autobahn_client.rs`, through the
//! async client (`floodgate::tokio`, feature `tokio`): asks for the case
//! count, runs every case by echoing each message back, then asks the
//! server to write its reports. Same arguments:
//!
//!     cargo run --release --features tokio --example autobahn_client_async -- ws://127.0.0.1:9001 [AGENT]
//!
//! As in the blocking driver, every connection offers permessage-deflate
//! and compresses every message, and protocol errors are left to the
//! client, which fails the connection with the right close code.

use floodgate::{Client, DeflateConfig, ErrorKind, Message};
use std::process::ExitCode;
use std::time::Duration;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let base = args
        .next()
        .unwrap_or_else(|| "ws://127.0.0.1:9001".to_owned());
    let agent = args.next().unwrap_or_else(|| "floodgate".to_owned());
    let base = base.trim_end_matches('/').to_owned();
    match run(&base, &agent).await {
        Ok(count) => {
            println!("ran {count} cases as agent {agent:?} (async client)");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("autobahn_client_async: {e}");
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

async fn run(base: &str, agent: &str) -> floodgate::Result<u32> {
    let client = client()?;
    let count = case_count(&client, base).await?;
    for case in 1..=count {
        let url = format!("{base}/runCase?case={case}&agent={agent}");
        match run_case(&client, &url).await {
            // Failing the connection is what many cases ask for.
            Err(e) if !matches!(e.kind(), ErrorKind::Protocol(_)) => eprintln!("case {case}: {e}"),
            _ => {}
        }
    }
    let mut ws = client
        .connect_async(&format!("{base}/updateReports?agent={agent}"))
        .await?;
    // The server closes once the reports are written.
    while ws.recv().await.is_ok() {}
    Ok(count)
}

async fn case_count(client: &Client, base: &str) -> floodgate::Result<u32> {
    let mut ws = client
        .connect_async(&format!("{base}/getCaseCount"))
        .await?;
    let message = ws.recv().await?;
    let count = message
        .as_text()
        .and_then(|t| t.trim().parse().ok())
        .ok_or_else(|| {
            floodgate::Error::from(ErrorKind::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("the fuzzing server sent a case count that is not a number: {message:?}"),
            )))
        })?;
    while ws.recv().await.is_ok() {}
    Ok(count)
}

async fn run_case(client: &Client, url: &str) -> floodgate::Result<()> {
    let mut ws = client.connect_async(url).await?;
    loop {
        match ws.recv().await {
            Ok(message @ (Message::Text(_) | Message::Binary(_))) => ws.send(message).await?,
            Ok(_) => {}
            Err(e) if e.is_closed() => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}
