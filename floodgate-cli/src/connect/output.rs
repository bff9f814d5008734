//! [`Printer`]: how received messages and notes reach the user.
//!
//! In a pipe, each text message is one line on stdout and each binary
//! message one line of hex (or its bytes as they are with `--raw`), and
//! notes ("reconnecting in 1s") go to stderr so that stdout holds only
//! messages. On a terminal, both go through the line editor's printer
//! ([`LinePrinter`]),
//! which prints above the line being typed without breaking it; received
//! messages are marked `< `.
//!
//! `--json` prints one object per message:
//! `{"type":"text","size":5,"time":1764582000.123456,"waited_us":12,"data":"hello"}`
//! (`"hex"` instead of `"data"` for binary messages; `time` is the Unix
//! time it was printed, `waited_us` how long it waited in the buffer).

use super::editor::LinePrinter;
use floodgate::buffer::Delivered;
use floodgate::Message;
use std::fmt::Write as _;
use std::io::{self, BufWriter, StdoutLock, Write};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// How messages are written.
#[derive(Debug, Clone, Copy)]
pub struct Format {
    /// Binary messages as their bytes.
    pub raw: bool,
    /// One JSON object per message.
    pub json: bool,
    /// Prefix with the time since `start`.
    pub timings: bool,
    /// When the command started.
    pub start: Instant,
}

enum Out {
    Stdout(BufWriter<StdoutLock<'static>>),
    Editor(LinePrinter),
}

/// Writes messages and notes; see the [module docs](self).
pub struct Printer {
    format: Format,
    out: Out,
    line: String,
}

impl Printer {
    /// Prints to stdout (a pipe or a file).
    pub fn stdout(format: Format) -> Printer {
        Printer {
            format,
            out: Out::Stdout(BufWriter::with_capacity(64 << 10, io::stdout().lock())),
            line: String::new(),
        }
    }

    /// Prints above the line editor's prompt.
    pub fn editor(format: Format, printer: LinePrinter) -> Printer {
        Printer {
            format,
            out: Out::Editor(printer),
            line: String::new(),
        }
    }

    /// Writes one received message.
    ///
    /// # Errors
    ///
    /// The output is gone (a closed pipe).
    pub fn message(&mut self, message: &Delivered) -> io::Result<()> {
        let interactive = matches!(self.out, Out::Editor(_));
        if let (Out::Stdout(out), true, Message::Binary(bytes)) =
            (&mut self.out, self.format.raw, message.message())
        {
            return out.write_all(bytes);
        }
        self.line.clear();
        if self.format.json {
            self.line.push_str(&json_line(message).to_string());
        } else {
            if self.format.timings {
                let _ = write!(
                    self.line,
                    "[{:>11.6}] ",
                    self.format.start.elapsed().as_secs_f64()
                );
            }
            if interactive {
                self.line.push_str("< ");
            }
            match message.message() {
                Message::Text(text) => self.line.push_str(text.as_str()),
                Message::Binary(bytes) => {
                    if interactive {
                        let _ = write!(self.line, "[binary, {} bytes] ", bytes.len());
                    }
                    push_hex(&mut self.line, bytes);
                }
                other => {
                    let _ = write!(self.line, "{other:?}");
                }
            }
        }
        let line = std::mem::take(&mut self.line);
        let result = self.write_line(&line);
        self.line = line;
        result
    }

    /// A note for the user (not a message): stderr in a pipe, above the
    /// prompt on a terminal.
    pub fn note(&mut self, text: &str) {
        match &mut self.out {
            Out::Stdout(out) => {
                let _ = out.flush();
                eprintln!("floodgate: {text}");
            }
            Out::Editor(printer) => {
                let _ = printer.print(format!("-- {text}"));
            }
        }
    }

    /// Pushes buffered output out.
    ///
    /// # Errors
    ///
    /// The output is gone.
    pub fn flush(&mut self) -> io::Result<()> {
        match &mut self.out {
            Out::Stdout(out) => out.flush(),
            Out::Editor(_) => Ok(()),
        }
    }

    /// At the end: flush what is left; on a terminal, give it back to the
    /// shell the way it was (see `terminal`).
    pub fn finish(&mut self) {
        let _ = self.flush();
        if let Out::Editor(printer) = &self.out {
            printer.finish();
            super::terminal::restore();
            // Clear the editor's prompt line.
            print!("\r\x1b[K");
            let _ = io::stdout().flush();
        }
    }

    fn write_line(&mut self, line: &str) -> io::Result<()> {
        match &mut self.out {
            Out::Stdout(out) => {
                out.write_all(line.as_bytes())?;
                out.write_all(b"\n")
            }
            Out::Editor(printer) => printer.print(line.to_owned()),
        }
    }
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    out.reserve(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
}

/// The `--json` object of one message.
pub fn json_line(message: &Delivered) -> serde_json::Value {
    let time = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let waited_us = u64::try_from(message.waited().as_micros()).unwrap_or(u64::MAX);
    match message.message() {
        Message::Text(text) => serde_json::json!({
            "type": "text",
            "size": text.as_str().len(),
            "time": time,
            "waited_us": waited_us,
            "data": text.as_str(),
        }),
        other => {
            let mut hex = String::new();
            push_hex(&mut hex, other.as_bytes());
            serde_json::json!({
                "type": "binary",
                "size": other.len(),
                "time": time,
                "waited_us": waited_us,
                "hex": hex,
            })
        }
    }
}

/// Parses the hex of a `/binary` command: pairs of hex digits, spaces
/// allowed between bytes, an optional `0x`.
pub fn parse_hex(text: &str) -> Result<Vec<u8>, String> {
    let text = text.trim();
    let text = text.strip_prefix("0x").unwrap_or(text);
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if digits.len() % 2 != 0 {
        return Err("hex needs two digits per byte".into());
    }
    digits
        .chunks(2)
        .map(|pair| {
            let s = std::str::from_utf8(pair).map_err(|_| "not hex".to_string())?;
            u8::from_str_radix(s, 16).map_err(|_| format!("{s:?} is not a hex byte"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_read_with_or_without_spaces_and_prefix() {
        assert_eq!(parse_hex("48656c6c6f"), Ok(b"Hello".to_vec()));
        assert_eq!(parse_hex("0x00 ff 10"), Ok(vec![0, 255, 16]));
        assert_eq!(parse_hex(""), Ok(vec![]));
        assert!(parse_hex("abc").is_err());
        assert!(parse_hex("zz").is_err());
    }

    #[test]
    fn hex_is_written_in_lower_case_pairs() {
        let mut s = String::new();
        push_hex(&mut s, &[0, 0xab, 7]);
        assert_eq!(s, "00ab07");
    }
}
