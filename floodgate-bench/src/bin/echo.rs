//! `echo`: echo round-trip latency of floodgate and the anchor libraries.
//!
//! ```text
//! cargo run --release -p floodgate-bench --bin echo -- \
//!     [--sizes 16,1024,65536] [--rounds-SIZE N] [--rounds N] [--warmup N] \
//!     [--runs K] [--only NAME[,NAME...]]
//! ```
//!
//! For each payload size, every client runs K times against the same
//! in-process echo server (runs interleaved: client A, B, C, ... then
//! again). A run is one connection: a warm-up, then N sequential round
//! trips, each timed on its own (send one binary message, wait for its
//! echo, check the echoed length). Of each client's K runs the one with
//! the lowest median is kept, and a Markdown table per size gives its
//! percentiles and the p50 and p99 ratios to the best async anchor
//! (tokio-tungstenite, fastwebsockets, sockudo-ws, sockudo-ws-tuned, yawc,
//! tokio-websockets). Progress goes to stderr, results to stdout.

use std::fmt::Write as _;
use std::process::ExitCode;

use floodgate_bench::args::{command_line, or_exit, Parser, PerSize, Suite};
use floodgate_bench::clients::SOCKUDO_TUNED_NOTE;
use floodgate_bench::echo_clients::{self, Latencies, Plan};
use floodgate_bench::table::{self, group};
use floodgate_bench::{load_average, machine_line};

const USAGE: &str = "usage: echo [--sizes 16,1024,65536] [--rounds-SIZE N]... [--rounds N] \
[--warmup N] [--runs K] [--only NAME[,NAME...]]

  --sizes        payload sizes in bytes (default 16,1024,65536)
  --rounds-SIZE  recorded round trips for that size (default 20000, 5000 at 64 KiB)
  --rounds       recorded round trips for every size without its own --rounds-SIZE
  --warmup       unrecorded round trips first, on the same connection
                 (default: a tenth of the recorded ones, at least 100)
  --runs         runs per client and size, the best-median run kept (default 3)
  --only         run only these clients (tungstenite, tokio-tungstenite,
                 fastwebsockets, sockudo-ws, sockudo-ws-tuned, yawc,
                 tokio-websockets, floodgate, floodgate-async,
                 floodgate-async-buffered)";

fn default_rounds(size: usize) -> usize {
    if size >= 65536 {
        5_000
    } else {
        20_000
    }
}

struct Args {
    suite: Suite,
    rounds: PerSize<usize>,
    warmup: Option<usize>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        suite: Suite::default(),
        rounds: PerSize::default(),
        warmup: None,
    };
    let mut p = Parser::new(std::env::args().skip(1), USAGE);
    while let Some(flag) = p.next_flag() {
        if flag == "--warmup" {
            a.warmup = Some(p.num()?);
        } else if !a.suite.take(&flag, &mut p)? && !a.rounds.take("--rounds", &flag, &mut p)? {
            return Err(p.unknown());
        }
    }
    Ok(a)
}

/// The percentiles of one run, in nanoseconds.
#[derive(Clone, Copy, Debug)]
struct Summary {
    p50: u64,
    p90: u64,
    p99: u64,
    p999: u64,
    max: u64,
}

/// Nearest-rank percentile of a sorted, non-empty slice.
fn percentile(sorted: &[u64], q: f64) -> u64 {
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn summarize(mut v: Latencies) -> Summary {
    v.sort_unstable();
    Summary {
        p50: percentile(&v, 0.50),
        p90: percentile(&v, 0.90),
        p99: percentile(&v, 0.99),
        p999: percentile(&v, 0.999),
        max: *v.last().expect("at least one round trip"),
    }
}

fn us(ns: u64) -> String {
    format!("{:.1}", ns as f64 / 1000.0)
}

struct Series {
    name: &'static str,
    async_anchor: bool,
    floodgate: bool,
    /// The run with the lowest median so far.
    best: Option<Summary>,
    failure: Option<String>,
}

fn render(size: usize, plan: Plan, runs: usize, series: &[Series]) -> String {
    let anchors = || {
        series
            .iter()
            .filter(|s| s.async_anchor && s.failure.is_none())
            .filter_map(|s| s.best.map(|b| (s.name, b)))
    };
    let p50_anchor = anchors().min_by_key(|(_, b)| b.p50);
    let p99_anchor = anchors().min_by_key(|(_, b)| b.p99);
    let mut md = String::new();
    let _ = writeln!(
        md,
        "### {size} B payloads x {} round trips (after {} warm-up; best-median run of {runs})\n",
        group(plan.rounds as f64),
        group(plan.warmup as f64),
    );
    md.push_str(
        "| client | p50 µs | p90 µs | p99 µs | p99.9 µs | max µs | p50 vs best async anchor \
         | p99 vs best async anchor |\n|---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for s in series {
        if let Some(f) = &s.failure {
            let _ = writeln!(
                md,
                "| {} | FAILED: {} | | | | | | |",
                s.name,
                f.replace('|', "/")
            );
            continue;
        }
        let Some(b) = s.best else { continue };
        let ratio = |anchor: Option<(&str, Summary)>, pick: fn(&Summary) -> u64| match anchor {
            Some((_, a)) => format!("{:.2}x", pick(&a) as f64 / pick(&b).max(1) as f64),
            None => "-".into(),
        };
        let name = if s.floodgate {
            format!("**{}**", s.name)
        } else {
            s.name.to_string()
        };
        let _ = writeln!(
            md,
            "| {name} | {} | {} | {} | {} | {} | {} | {} |",
            us(b.p50),
            us(b.p90),
            us(b.p99),
            us(b.p999),
            us(b.max),
            ratio(p50_anchor, |x| x.p50),
            ratio(p99_anchor, |x| x.p99),
        );
    }
    if let (Some((n50, a50)), Some((n99, a99))) = (p50_anchor, p99_anchor) {
        let _ = writeln!(
            md,
            "\nbest async anchor: p50 {} µs ({n50}), p99 {} µs ({n99}); ratios are the \
             anchor's latency over the client's, >1 = lower latency than the anchor.",
            us(a50.p50),
            us(a99.p99),
        );
    }
    md
}

fn main() -> ExitCode {
    let args = or_exit(parse_args());
    let clients = or_exit(args.suite.select(echo_clients::all(), |c| c.name));
    let server = match floodgate_bench::echo_server::start() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cannot start the echo server: {e}");
            return ExitCode::FAILURE;
        }
    };
    let url = server.url();

    let argv: Vec<String> = std::env::args().skip(1).collect();
    println!("## floodgate echo round-trip latency (`echo`)\n");
    println!("{}", command_line("echo", &argv));
    println!("{}  ", machine_line());
    println!(
        "server: in-process, std::net on {url}, a thread per connection, each frame read whole \
         and written back unmasked in one write; TCP_NODELAY on both ends; client and server \
         share the machine's cores  "
    );
    println!(
        "A round trip is timed from just before the send to the echo reaching the caller, one \
         message in flight at a time, on one connection per run; each client's run with the \
         lowest median of {} is shown. The async clients (tokio-tungstenite, fastwebsockets, \
         sockudo-ws, sockudo-ws-tuned, yawc, tokio-websockets, floodgate-async, \
         floodgate-async-buffered) run on one current-thread tokio runtime with I/O and \
         timers; tungstenite and floodgate are blocking. Each anchor runs with its default \
         configuration (and TCP_NODELAY); {SOCKUDO_TUNED_NOTE}. The best async anchor is the \
         best of the async anchor rows, sockudo-ws-tuned included.\n",
        args.suite.runs
    );

    let mut failures = Vec::new();
    for &size in &args.suite.sizes {
        // At least one round trip, whatever --rounds[-SIZE] said.
        let rounds = args.rounds.get(size, default_rounds).max(1);
        let plan = Plan {
            size,
            warmup: args.warmup.unwrap_or((rounds / 10).max(100)),
            rounds,
        };
        let mut series: Vec<Series> = clients
            .iter()
            .map(|c| Series {
                name: c.name,
                async_anchor: c.async_anchor,
                floodgate: c.floodgate,
                best: None,
                failure: None,
            })
            .collect();
        for run in 0..args.suite.runs {
            for (client, s) in clients.iter().zip(series.iter_mut()) {
                if s.failure.is_some() {
                    continue;
                }
                match (client.run)(&url, plan) {
                    Ok(lat) if lat.len() == plan.rounds => {
                        let sum = summarize(lat);
                        eprintln!(
                            "{size} B run {}/{} {:<24} p50 {:>8} µs  p99 {:>8} µs  max {:>9} µs",
                            run + 1,
                            args.suite.runs,
                            client.name,
                            us(sum.p50),
                            us(sum.p99),
                            us(sum.max),
                        );
                        if s.best.is_none_or(|b| sum.p50 < b.p50) {
                            s.best = Some(sum);
                        }
                    }
                    Ok(lat) => {
                        let p = format!(
                            "{} round trips recorded, expected {}",
                            lat.len(),
                            plan.rounds
                        );
                        eprintln!("FAIL {size} B run {} {}: {p}", run + 1, client.name);
                        failures.push(format!("{} at {size} B: {p}", client.name));
                        s.failure = Some(p);
                    }
                    Err(e) => {
                        let p = format!("client error: {e}");
                        eprintln!("FAIL {size} B run {} {}: {p}", run + 1, client.name);
                        failures.push(format!("{} at {size} B: {p}", client.name));
                        s.failure = Some(p);
                    }
                }
            }
        }
        println!("{}", render(size, plan, args.suite.runs, &series));
    }
    drop(server);
    println!("load average at end: {}", load_average());
    table::exit_status(&failures)
}
