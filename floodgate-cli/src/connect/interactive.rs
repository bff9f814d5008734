//! The interactive client, on a terminal: a line editor ([`super::editor`])
//! with history; each line is sent as a text message, and received
//! messages are printed above the line being typed (marked `< `) without
//! breaking it.
//!
//! Commands start with `/` (`//` sends a line that starts with `/`):
//!
//! | command | does |
//! |---|---|
//! | `/binary HEX` (`/bin`) | send a binary message (`/bin 48 65 6c 6c 6f`) |
//! | `/ping [TEXT]` | send a ping |
//! | `/close [CODE [REASON]]` | close (default 1000) and exit |
//! | `/stats` | print the buffer's stats |
//! | `/help` | list the commands |
//!
//! Ctrl-D or Ctrl-C closes with 1000 and exits.

use super::editor::{Editor, Input};
use super::link::{Link, Unsent};
use super::output::{parse_hex, Format, Printer};
use super::ConnectArgs;
use crate::error::CliError;
use floodgate::buffer::Buffer;
use floodgate::BufferedWebSocket;
use std::path::PathBuf;
use std::sync::Arc;

const HELP: &str = "\
commands:
  /binary HEX        send a binary message (/bin 48 65 6c 6c 6f)
  /ping [TEXT]       send a ping
  /close [CODE [REASON]]  close (default 1000) and exit
  /stats             the buffer's stats
  /help              this list
  //text            send \"/text\"
Ctrl-D or Ctrl-C closes and exits.";

/// Starts the line editor on its own thread; returns the printer that
/// writes above its prompt.
pub fn start(
    link: Arc<Link>,
    args: &ConnectArgs,
    conn: &BufferedWebSocket,
    format: Format,
) -> Result<Printer, CliError> {
    // Binary messages are shown as hex on a terminal, --raw or not.
    let format = Format {
        raw: false,
        ..format
    };
    super::terminal::save();
    // Before the editor draws its prompt (a line printed through the
    // editor's printer before the first prompt would be overwritten).
    let subprotocol = conn
        .subprotocol()
        .map(|p| format!(", subprotocol {p}"))
        .unwrap_or_default();
    let compression = conn
        .deflate()
        .map(|_| ", compressed (permessage-deflate)")
        .unwrap_or_default();
    println!(
        "-- connected to {}{subprotocol}{compression}; type a message, /help for commands, Ctrl-D to close",
        args.url
    );
    let (editor, printer) = Editor::new("> ", history_path(args))
        .map_err(|e| CliError::Other(format!("cannot start the line editor: {e}")))?;
    let buffer = conn.buffer().clone();
    let spill = args.buffer.spills();
    std::thread::Builder::new()
        .name("floodgate-editor".into())
        .spawn(move || edit(&link, &buffer, spill, editor))?;
    Ok(Printer::editor(format, printer))
}

fn history_path(args: &ConnectArgs) -> Option<PathBuf> {
    if args.no_history {
        return None;
    }
    match &args.history {
        Some(path) => Some(path.clone()),
        None => std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".floodgate_history")),
    }
}

/// `spill`: `--policy spill` (`/stats` shows the disk's counters too).
fn edit(link: &Link, buffer: &Buffer, spill: bool, mut editor: Editor) {
    loop {
        match editor.read_line() {
            Ok(Input::Line(line)) => {
                if let Flow::Stop = run_line(link, buffer, spill, &line) {
                    return;
                }
            }
            Ok(Input::Eof | Input::Interrupted) => {
                close(link, 1000, "");
                return;
            }
            Err(e) => {
                eprintln!("floodgate: the line editor failed ({e}); closing");
                close(link, 1000, "");
                return;
            }
        }
    }
}

enum Flow {
    Go,
    Stop,
}

fn run_line(link: &Link, buffer: &Buffer, spill: bool, line: &str) -> Flow {
    let Some(command) = line.strip_prefix('/').filter(|c| !c.starts_with('/')) else {
        // A message; `//x` sends `/x`.
        let text = line.strip_prefix('/').unwrap_or(line);
        return send(link, |s| s.send_text(text));
    };
    let (name, rest) = command.split_once(' ').unwrap_or((command, ""));
    match name {
        "binary" | "bin" => match parse_hex(rest) {
            Ok(bytes) => send(link, |s| s.send_binary(&bytes)),
            Err(e) => {
                println!("-- /binary: {e}");
                Flow::Go
            }
        },
        "ping" => send(link, |s| s.ping(rest.as_bytes())),
        "close" | "quit" | "exit" => {
            let mut parts = rest.trim().splitn(2, ' ');
            let code = match parts.next().filter(|c| !c.is_empty()) {
                None => 1000,
                Some(code) => match code.parse::<u16>() {
                    Ok(code) => code,
                    Err(_) => {
                        println!("-- /close: {code:?} is not a close code (e.g. 1000)");
                        return Flow::Go;
                    }
                },
            };
            close(link, code, parts.next().unwrap_or(""));
            Flow::Stop
        }
        "stats" => {
            println!("-- {}", crate::report::stats_json(&buffer.stats(), spill));
            Flow::Go
        }
        "help" | "?" => {
            println!("{HELP}");
            Flow::Go
        }
        other => {
            println!(
                "-- unknown command /{other}; /help lists them (// sends a line starting with /)"
            );
            Flow::Go
        }
    }
}

fn send(link: &Link, f: impl FnOnce(&floodgate::Sender) -> floodgate::Result<()>) -> Flow {
    match link.send(f) {
        Ok(()) => Flow::Go,
        Err(Unsent::Over) => Flow::Stop,
        Err(Unsent::Failed(e)) => {
            println!("-- not sent: {e}");
            Flow::Go
        }
    }
}

fn close(link: &Link, code: u16, reason: &str) {
    if let Err(e) = link.close(code, reason) {
        println!("-- close: {e}");
    }
}
