//! The `floodgate` command: a WebSocket client for the shell
//! (`floodgate connect`, the `wsdump` of this project), an embedded server
//! (`serve`), a demonstration of the overflow policies that needs nothing
//! else (`demo`), a benchmark against a server (`bench`), and feeds into a
//! broker (`bridge`).
//!
//! One module per subcommand; [`units`] parses durations and sizes the same
//! way for every option, and [`error`] maps every failure to one line on
//! stderr and an exit code.

mod bench;
mod bridge;
mod connect;
mod demo;
mod error;
mod memory;
mod metrics;
mod policy;
mod report;
mod serve;
mod table;
mod units;

use clap::{Parser, Subcommand};
use error::CliError;
use std::process::ExitCode;

/// A WebSocket client that stays correct, alive and bounded when messages
/// arrive faster than the application handles them.
///
/// Start with `floodgate demo`: it runs a fast server and a slow consumer
/// in this process and shows what each overflow policy does.
#[derive(Debug, Parser)]
#[command(name = "floodgate", version, about, long_about)]
struct Cli {
    /// Trace what happens through `tracing` on stderr: -v the handshake
    /// and connection events, -vv every frame and message.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

/// Sends `tracing` events to stderr at the level `-v` asked for
/// (`RUST_LOG`, when set, decides instead).
fn init_tracing(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.is_empty() => EnvFilter::new(spec),
        _ => EnvFilter::new(match verbose {
            // async-nats logs its connection troubles itself, at ERROR; the
            // bridge reports each one once, in its own words (naming the
            // feed and the broker), so by default its lines are noise.
            0 => "warn,async_nats=off",
            1 => "warn,floodgate=debug,floodgate_cli=debug",
            _ => "warn,floodgate=trace,floodgate_cli=trace",
        }),
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Connect to a WebSocket server: an interactive client on a terminal,
    /// one message per line in a pipe.
    Connect(Box<connect::ConnectArgs>),
    /// Run the embedded server on loopback: echo, or a feed of numbered
    /// messages.
    Serve(serve::ServeArgs),
    /// Run a fast feed and a slow consumer in this process under each
    /// overflow policy, and compare them.
    Demo(demo::DemoArgs),
    /// Measure receive throughput and echo latency against a server.
    Bench(bench::BenchArgs),
    /// Publish feeds into a broker (NATS JetStream, Redis Streams) or
    /// JSON lines: a message leaves the buffer once the sink acknowledged
    /// it.
    Bridge(Box<bridge::BridgeArgs>),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    let result: Result<(), CliError> = match cli.command {
        Command::Connect(args) => connect::run(*args),
        Command::Serve(args) => serve::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Bench(args) => bench::run(args),
        // Its errors have codes of their own (a broker, a config file).
        Command::Bridge(args) => {
            return match bridge::run(*args) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    eprintln!("floodgate: {err}");
                    drain_terminal_output();
                    ExitCode::from(err.exit_code())
                }
            }
        }
    };
    let code = match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("floodgate: {err}");
            ExitCode::from(err.exit_code())
        }
    };
    drain_terminal_output();
    code
}

/// Waits until a terminal has taken everything written to it: a pseudo
/// terminal may drop what is still queued when the process exits, and the
/// last line is often the one that says why the command ended.
fn drain_terminal_output() {
    use std::io::IsTerminal;
    for fd in [libc::STDOUT_FILENO, libc::STDERR_FILENO] {
        let is_tty = if fd == libc::STDOUT_FILENO {
            std::io::stdout().is_terminal()
        } else {
            std::io::stderr().is_terminal()
        };
        if is_tty {
            // SAFETY: tcdrain on a descriptor that is a terminal.
            unsafe {
                libc::tcdrain(fd);
            }
        }
    }
}
