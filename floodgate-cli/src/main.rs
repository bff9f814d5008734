//! The `floodgate` command.
//!
//! This version only answers `--help` and `--version`: the interactive
//! client (`floodgate connect`), the embedded server, the demo and the
//! benchmark command are planned and not implemented yet. Until then the
//! examples of the `floodgate` crate are the way to try it (see README.md).

use clap::Parser;

/// A WebSocket client that stays correct, alive and bounded when messages
/// arrive faster than the application handles them.
///
/// The subcommands (connect, serve, demo, bench) are not implemented in this
/// version; try `cargo run --example echo` from the source tree meanwhile.
#[derive(Debug, Parser)]
#[command(name = "floodgate", version, about, long_about)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
    eprintln!(
        "floodgate {}: no subcommand is implemented yet; see `floodgate --help`.",
        env!("CARGO_PKG_VERSION")
    );
    std::process::exit(2);
}
