//! Input from a pipe or a file: each line is sent as one text message (the
//! line ending removed; an empty line is an empty message). After the end
//! of input the command waits `--eof-wait` for replies, then closes with
//! 1000.

use super::link::{Link, Unsent};
use crate::error::CliError;
use std::io::BufRead;
use std::sync::Arc;
use std::time::Duration;

/// Starts the thread that reads stdin.
pub fn start(link: Arc<Link>, eof_wait: Duration) -> Result<(), CliError> {
    std::thread::Builder::new()
        .name("floodgate-stdin".into())
        .spawn(move || read_stdin(&link, eof_wait))?;
    Ok(())
}

fn read_stdin(link: &Link, eof_wait: Duration) {
    let mut stdin = std::io::stdin().lock();
    let mut line = Vec::new();
    loop {
        line.clear();
        match stdin.read_until(b'\n', &mut line) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                eprintln!("floodgate: reading stdin failed ({e}); closing");
                break;
            }
        }
        if line.last() == Some(&b'\n') {
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
        }
        let Ok(text) = std::str::from_utf8(&line) else {
            eprintln!(
                "floodgate: skipped an input line that is not UTF-8 (a text message must be)"
            );
            continue;
        };
        match link.send(|sender| sender.send_text(text)) {
            Ok(()) => {}
            Err(Unsent::Over) => return,
            Err(Unsent::Failed(e)) => eprintln!("floodgate: could not send a line: {e}"),
        }
    }
    if !link.wait_ended(eof_wait) {
        if let Err(e) = link.close(1000, "") {
            tracing::debug!(error = %e, "closing after the end of input");
        }
    }
}
