//! `stream`: receive throughput of floodgate and the anchor libraries.
//!
//! ```text
//! cargo run --release -p floodgate-bench --bin stream -- \
//!     [--sizes 16,1024,65536] [--count-16 N] [--count-SIZE N] [--count N] \
//!     [--runs K] [--only NAME[,NAME...]]
//! ```
//!
//! For each payload size, every client runs K times against the same
//! in-process server (runs are interleaved: client A, B, C, ... then again),
//! the counts are checked, and a Markdown table is printed. See the crate
//! docs for what is measured. Progress goes to stderr, results to stdout.

use std::process::ExitCode;

use floodgate_bench::args::{command_line, or_exit, Parser, PerSize, Suite};
use floodgate_bench::clients::{self, RAW_TCP_NOTE, SOCKUDO_TUNED_NOTE, YAWC_TUNED_NOTE};
use floodgate_bench::server::{self, Job, Server};
use floodgate_bench::table::{self, Series};
use floodgate_bench::{load_average, machine_line};

const USAGE: &str = "usage: stream [--sizes 16,1024,65536] [--count-SIZE N]... [--count N] \
[--runs K] [--only NAME[,NAME...]]

  --sizes       payload sizes in bytes (default 16,1024,65536)
  --count-SIZE  messages for that size (e.g. --count-16 10000000)
  --count       messages for every size without its own --count-SIZE
  --runs        runs per client and size, best and median kept (default 3)
  --only        run only these clients (raw-tcp, tungstenite, tokio-tungstenite,
                fastwebsockets, sockudo-ws, sockudo-ws-tuned, yawc, yawc-tuned,
                tokio-websockets, floodgate, floodgate-buffered, floodgate-async,
                floodgate-async-buffered)";

/// Default message count: each run takes roughly 0.5-2 s on a small machine.
fn default_count(size: usize) -> u64 {
    match size {
        16 => 10_000_000,
        1024 => 2_000_000,
        65536 => 100_000,
        // Otherwise about 2 GB of payload, between 1,000 and 10M messages.
        s => (2_000_000_000 / s.max(1) as u64).clamp(1_000, 10_000_000),
    }
}

struct Args {
    suite: Suite,
    counts: PerSize<u64>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        suite: Suite::default(),
        counts: PerSize::default(),
    };
    let mut p = Parser::new(std::env::args().skip(1), USAGE);
    while let Some(flag) = p.next_flag() {
        if !a.suite.take(&flag, &mut p)? && !a.counts.take("--count", &flag, &mut p)? {
            return Err(p.unknown());
        }
    }
    Ok(a)
}

fn main() -> ExitCode {
    let args = or_exit(parse_args());
    let clients = or_exit(args.suite.select(clients::all(), |c| c.name));

    let mut server = match Server::start() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cannot start server: {e}");
            return ExitCode::FAILURE;
        }
    };
    let url = server.url();

    let argv: Vec<String> = std::env::args().skip(1).collect();
    println!("## floodgate receive benchmark (`stream`)\n");
    println!("{}", command_line("stream", &argv));
    println!("{}  ", machine_line());
    println!(
        "server: in-process, std::net on {url}, unmasked binary frames pre-encoded in ~1 MiB \
         blocks, one connection per run; client and server share the machine's cores  "
    );
    println!("{RAW_TCP_NOTE}.  ");
    println!(
        "The anchors are tungstenite (blocking), tokio-tungstenite, fastwebsockets, sockudo-ws, \
         yawc and tokio-websockets (async), each with its default configuration, plus a second \
         row each for sockudo-ws and yawc with a documented non-default setting that their \
         defaults pay for: {SOCKUDO_TUNED_NOTE}; {YAWC_TUNED_NOTE}. The tuned rows count as \
         anchors too.  "
    );
    println!(
        "Throughput from each client's best of {} runs (wall time from connect to the close \
         frame reaching the caller); ratios are throughput ratios of best runs, >1 = faster; \
         \"vs fastest anchor\" compares with the fastest anchor row of the same size. \
         floodgate-buffered is floodgate's buffered connection (reader thread, default buffer \
         of 4096 messages / 64 MiB under Overflow::Block, recv_batch_into of up to {} \
         messages): its \"vs floodgate\" column compares it with the direct client of the same \
         run. floodgate-async is floodgate's async client (`floodgate::tokio::connect`, `recv()` \
         until the close) and floodgate-async-buffered its async buffered connection (the same \
         default buffer, a reader task, `recv_batch` of up to {} messages); they and the async \
         anchors run on one current-thread tokio runtime with I/O and timers, and \"vs fastest \
         async anchor\" compares each of them with the fastest async anchor row (every anchor \
         but tungstenite).\n",
        args.suite.runs,
        clients::BUFFERED_BATCH,
        clients::BUFFERED_BATCH,
    );

    let mut failures = Vec::new();
    let mut summaries = Vec::new();
    for &size in &args.suite.sizes {
        let count = args.counts.get(size, default_count);
        let mut series: Vec<Series> = clients
            .iter()
            .map(|c| Series {
                name: c.name,
                role: c.role,
                asynchronous: c.asynchronous,
                runs: Vec::new(),
                failure: None,
            })
            .collect();
        for run in 0..args.suite.runs {
            for (client, s) in clients.iter().zip(series.iter_mut()) {
                if s.failure.is_some() {
                    continue;
                }
                server.submit(Job { size, count });
                let result = (client.run)(&url);
                let report = server.finish(result.is_err());
                let problem = match &result {
                    Err(e) => Some(format!("client error: {e}")),
                    Ok(o) if o.messages != count || o.bytes != count * size as u64 => {
                        Some(format!(
                            "counted {} messages / {} bytes, expected {} / {}",
                            o.messages,
                            o.bytes,
                            count,
                            count * size as u64
                        ))
                    }
                    Ok(_) if report.error.is_some() => {
                        Some(format!("server: {}", report.error.as_deref().unwrap_or("")))
                    }
                    Ok(_) if report.bytes != server::wire_bytes(size, count) => Some(format!(
                        "server wrote {} bytes, expected {}",
                        report.bytes,
                        server::wire_bytes(size, count)
                    )),
                    Ok(_) => None,
                };
                match (problem, result) {
                    (Some(p), _) => {
                        eprintln!(
                            "FAIL {size} B run {}/{} {}: {p}",
                            run + 1,
                            args.suite.runs,
                            client.name
                        );
                        failures.push(format!("{} at {size} B: {p}", client.name));
                        s.failure = Some(p);
                    }
                    (None, Ok(o)) => {
                        eprintln!(
                            "{size} B run {}/{} {:<24} {:>8.3} s  {:>12} msgs/s{}",
                            run + 1,
                            args.suite.runs,
                            client.name,
                            o.elapsed.as_secs_f64(),
                            table::group(count as f64 / o.elapsed.as_secs_f64()),
                            if report.client_close {
                                ""
                            } else {
                                "  (no close frame from client)"
                            },
                        );
                        s.runs.push(o);
                    }
                    (None, Err(_)) => unreachable!(),
                }
            }
        }
        let rendered = table::render(size, count, args.suite.runs, &series);
        println!("{}", rendered.markdown);
        for line in rendered.summary {
            println!("{line}\n");
            summaries.push(line);
        }
    }
    table::print_summary(&summaries);
    drop(server);
    println!("load average at end: {}", load_average());
    table::exit_status(&failures)
}
