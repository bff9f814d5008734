//! `conns`: many connections on one async runtime, each with a window of
//! echoes in flight; messages per second overall.
//!
//! ```text
//! cargo run --release -p floodgate-bench --bin conns -- \
//!     [--connections 1,16,256] [--window 16] [--size 1024] [--messages N] \
//!     [--threads N] [--runs K] [--only NAME[,NAME...]] [--no-latency] \
//!     [--server batched|per-frame]
//! ```
//!
//! For each connection count, every client runs K times against the same
//! in-process echo server (runs interleaved: client A, B, C, ... then
//! again). A run connects all C connections (not timed), then runs one
//! task per connection on one tokio runtime, each keeping W messages in
//! flight until M have come back checked, and is timed from the spawn of
//! the tasks to the last echo (`floodgate_bench::conns_clients`). The
//! table gives messages per second (echoes over wall time) of the best and
//! the median run, the ratios to the fastest async anchor and to the raw
//! TCP ceiling, the p50 and p99 round trip of the best run, and the
//! client's CPU time per message (current-thread runtime only), with a
//! summary line per floodgate client and connection count. Progress goes
//! to stderr, results to stdout.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use floodgate_bench::args::{command_line, or_exit, Parser};
use floodgate_bench::conns_clients::{self, Outcome, Plan, Role, SEQ_BYTES};
use floodgate_bench::table::{self, duration, group};
use floodgate_bench::{load_average, machine_line};

const USAGE: &str = "usage: conns [--connections 1,16,256] [--window 16] [--size 1024] \
[--messages N] [--threads N] [--runs K] [--only NAME[,NAME...]] [--no-latency] \
[--server batched|per-frame]

  --connections  connection counts, one table each (default 1,16,256)
  --window       messages in flight per connection (default 16)
  --size         payload bytes per message, at least 8 (default 1024)
  --messages     messages per connection (default: 300000 / connections, at least
                 1000: a run moves 300,000 echoes, 256,000 at 256 connections)
  --threads      a multi-thread runtime with N workers (default: current-thread)
  --runs         runs per client and connection count (default 3)
  --only         run only these clients (raw-tcp, tokio-tungstenite, fastwebsockets,
                 tokio-websockets, yawc, \"yawc (tuned buffers)\", sockudo-ws,
                 \"sockudo-ws (no heartbeat)\", floodgate-async, floodgate-async-buffered)
  --no-latency   do not record round trips (two clock reads per message less)
  --server       batched (default: conns_server, one write per read) or per-frame
                 (echo_server, one write per echo)";

/// Messages in a run at the default `--messages`, over all connections.
const TOTAL: u64 = 300_000;

/// The fewest messages a connection sends at the default `--messages`.
const MIN_PER_CONNECTION: u64 = 1_000;

/// Issue 17's target for floodgate-async against the fastest async anchor,
/// at these connection counts.
const TARGET: f64 = 1.1;
const TARGET_AT: &[usize] = &[16, 256];

fn default_messages(connections: usize) -> u64 {
    (TOTAL / connections.max(1) as u64).max(MIN_PER_CONNECTION)
}

struct Args {
    connections: Vec<usize>,
    window: usize,
    size: usize,
    messages: Option<u64>,
    threads: Option<usize>,
    runs: usize,
    only: Option<Vec<String>>,
    latency: bool,
    per_frame_server: bool,
}

fn parse_args(argv: &[String]) -> Result<Args, String> {
    let mut a = Args {
        connections: vec![1, 16, 256],
        window: 16,
        size: 1024,
        messages: None,
        threads: None,
        runs: 3,
        only: None,
        latency: true,
        per_frame_server: false,
    };
    let mut p = Parser::new(argv.iter().cloned(), USAGE);
    while let Some(flag) = p.next_flag() {
        match flag.as_str() {
            "--connections" => a.connections = p.sizes()?,
            "--window" => a.window = p.num()?,
            "--size" => a.size = p.num()?,
            "--messages" => a.messages = Some(p.num()?),
            "--threads" => a.threads = Some(p.num()?),
            "--runs" => a.runs = p.num::<usize>()?.max(1),
            "--only" => a.only = Some(p.list()?),
            "--server" => match p.value()?.as_str() {
                "batched" => a.per_frame_server = false,
                "per-frame" => a.per_frame_server = true,
                other => return Err(format!("--server: {other}? (batched or per-frame)")),
            },
            "--no-latency" => {
                p.no_value()?;
                a.latency = false;
            }
            _ => return Err(p.unknown()),
        }
    }
    if a.size < SEQ_BYTES {
        return Err(format!(
            "--size must be at least {SEQ_BYTES} (each payload carries its sequence number)"
        ));
    }
    if a.window == 0 || a.connections.contains(&0) || a.messages == Some(0) {
        return Err("--window, --connections and --messages must be at least 1".into());
    }
    if a.threads == Some(0) {
        return Err("--threads must be at least 1".into());
    }
    Ok(a)
}

/// All runs of one client at one connection count.
struct Series {
    name: &'static str,
    role: Role,
    runs: Vec<Outcome>,
    failure: Option<String>,
}

impl Series {
    fn best(&self) -> Option<&Outcome> {
        self.runs.iter().min_by_key(|o| o.elapsed)
    }

    /// The lowest client CPU time per message over the runs (the least
    /// disturbed), if measured.
    fn cpu_per_message(&self, total: u64) -> Option<Duration> {
        self.runs
            .iter()
            .filter_map(|o| o.cpu)
            .min()
            .map(|c| c / total.max(1) as u32)
    }

    /// The median run by time (the upper one for an even count).
    fn median(&self) -> Option<Duration> {
        let mut v: Vec<Duration> = self.runs.iter().map(|o| o.elapsed).collect();
        v.sort();
        v.get(v.len() / 2).copied()
    }
}

fn rate(messages: u64, d: Duration) -> f64 {
    messages as f64 / d.as_secs_f64()
}

fn render(plan: &Plan, runs: usize, series: &[Series]) -> String {
    let total = plan.total();
    let ok = || series.iter().filter(|s| s.failure.is_none());
    let best_of = |role: Role| {
        ok().filter(|s| s.role == role)
            .filter_map(|s| s.best().map(|b| (s.name, b.elapsed)))
            .min_by_key(|&(_, d)| d)
    };
    let anchor = best_of(Role::Anchor);
    let ceiling = best_of(Role::Ceiling);

    let mut md = String::new();
    let _ = writeln!(
        md,
        "### {} connection{} x {} messages each ({} in flight each, {} B; best of {runs})\n",
        plan.connections,
        if plan.connections == 1 { "" } else { "s" },
        group(plan.messages as f64),
        plan.window,
        plan.size,
    );
    md.push_str(
        "| client | msgs/s (best) | msgs/s (median) | vs fastest async anchor | vs raw-tcp \
         | p50 round trip | p99 round trip | client CPU per msg |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|\n",
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
        let (Some(best), Some(median)) = (s.best(), s.median()) else {
            continue;
        };
        let ratio = |other: Option<(&str, Duration)>| match other {
            Some((_, d)) => format!("{:.2}x", d.as_secs_f64() / best.elapsed.as_secs_f64()),
            None => "-".into(),
        };
        let name = match s.role {
            Role::Subject | Role::Variant => format!("**{}**", s.name),
            _ => s.name.to_string(),
        };
        let lat = |d: Option<Duration>| d.map_or("-".into(), duration);
        let _ = writeln!(
            md,
            "| {name} | {} | {} | {} | {} | {} | {} | {} |",
            group(rate(total, best.elapsed)),
            group(rate(total, median)),
            ratio(anchor),
            ratio(ceiling),
            lat(best.p50),
            lat(best.p99),
            lat(s.cpu_per_message(total)),
        );
    }
    md
}

/// `NAME / fastest async anchor = X at C connections (anchor: A; on
/// medians: Y)` for each floodgate client, with the target where it
/// applies.
fn summary(plan: &Plan, series: &[Series]) -> Vec<String> {
    let anchors = || {
        series
            .iter()
            .filter(|s| s.role == Role::Anchor && s.failure.is_none())
    };
    let Some((an, ab)) = anchors()
        .filter_map(|s| s.best().map(|b| (s.name, b.elapsed)))
        .min_by_key(|&(_, d)| d)
    else {
        return Vec::new();
    };
    let Some(am) = anchors().filter_map(Series::median).min() else {
        return Vec::new();
    };
    let c = plan.connections;
    let mut lines = Vec::new();
    for s in series
        .iter()
        .filter(|s| matches!(s.role, Role::Subject | Role::Variant))
    {
        if s.failure.is_some() {
            lines.push(format!(
                "{} / fastest async anchor at {c} connections: FAILED",
                s.name
            ));
            continue;
        }
        let (Some(b), Some(m)) = (s.best(), s.median()) else {
            continue;
        };
        let on_best = ab.as_secs_f64() / b.elapsed.as_secs_f64();
        let on_median = am.as_secs_f64() / m.as_secs_f64();
        let target = if s.role == Role::Subject && TARGET_AT.contains(&c) {
            format!(
                "; target >= {TARGET:.1}x: {}",
                match (on_best >= TARGET, on_median >= TARGET) {
                    (true, true) => "met",
                    (true, false) => "met on best runs only",
                    (false, true) => "met on medians only",
                    (false, false) => "MISSED",
                }
            )
        } else {
            String::new()
        };
        lines.push(format!(
            "{} / fastest async anchor = {on_best:.2}x at {c} connections (anchor: {an}; on \
             medians: {on_median:.2}x{target})",
            s.name
        ));
        let total = plan.total();
        let thriftiest = anchors()
            .filter_map(|a| a.cpu_per_message(total).map(|t| (a.name, t)))
            .min_by_key(|&(_, t)| t);
        if let (Some(mine), Some((tn, tc))) = (s.cpu_per_message(total), thriftiest) {
            lines.push(format!(
                "{}: client CPU per message {} at {c} connections, {:.2}x the least of an anchor \
                 ({} for {tn}; <1 = less CPU)",
                s.name,
                duration(mine),
                mine.as_secs_f64() / tc.as_secs_f64(),
                duration(tc),
            ));
        }
    }
    lines
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let args = or_exit(parse_args(&argv));
    let clients: Vec<_> = conns_clients::all()
        .into_iter()
        .filter(|c| {
            args.only
                .as_ref()
                .is_none_or(|o| o.iter().any(|n| n == c.name))
        })
        .collect();
    if clients.is_empty() {
        eprintln!("--only matched no client");
        return ExitCode::from(2);
    }
    // Either server, kept alive until the end.
    let started = if args.per_frame_server {
        floodgate_bench::echo_server::start()
            .map(|s| (s.url(), Box::new(s) as Box<dyn std::any::Any>))
    } else {
        floodgate_bench::conns_server::start()
            .map(|s| (s.url(), Box::new(s) as Box<dyn std::any::Any>))
    };
    let (url, server) = match started {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cannot start the echo server: {e}");
            return ExitCode::FAILURE;
        }
    };

    println!("## floodgate many connections (`conns`)\n");
    println!("{}", command_line("conns", &argv));
    println!("{}  ", machine_line());
    println!(
        "server: in-process on {url}, std::net, a thread per connection, no WebSocket library; \
         {}. It is neutral but not free: its threads share the machine's cores with the client, \
         so its cost is part of every row; raw-tcp (the same loop with no library) is the \
         ceiling it leaves.  ",
        if args.per_frame_server {
            "`echo_server` (--server per-frame): each frame read whole and echoed in a write of \
             its own"
        } else {
            "`conns_server`: every complete frame of a read echoed (unmasked) in one write"
        }
    );
    println!(
        "runtime: {}, one task per connection, the clients' connects and closes not timed; \
         TCP_NODELAY on every connection.  ",
        match args.threads {
            None => "one current-thread tokio runtime".to_string(),
            Some(n) => format!("one multi-thread tokio runtime with {n} workers"),
        }
    );
    println!(
        "A run: every connection sends {} binary messages of {} B, then one more per echo \
         received, each echo checked (length, sequence number, content), until all its messages \
         are back; msgs/s is the echoes of all connections over the time from the start of the \
         tasks to the last echo. {}  ",
        args.window,
        args.size,
        if args.latency {
            "A round trip is from just before a message's send to its echo reaching the loop \
             (two clock reads per message, in every row); the p50 and p99 are of the best run."
        } else {
            "Round trips not recorded (--no-latency)."
        }
    );
    println!(
        "Client CPU per msg: the CPU time (user and system, so the kernel's work for its \
         sends and reads too) of the thread running the tasks over the timed part, divided by \
         the messages, the lowest of the runs; it depends much less than msgs/s on what else \
         the machine runs. {}  ",
        if args.threads.is_some() {
            "Not measured on the multi-thread runtime (its workers are not told apart)."
        } else {
            "On one current-thread runtime it is the whole client."
        }
    );
    println!("\nThe clients:\n");
    for c in &clients {
        if let Some((_, note)) = conns_clients::CLIENT_NOTES
            .iter()
            .find(|(n, _)| *n == c.name)
        {
            println!("- {}: {note}", c.name);
        }
    }
    println!(
        "\nClients whose send takes an owned buffer (tokio-tungstenite, tokio-websockets, yawc, \
         sockudo-ws) get a fresh copy of the payload per message, as their users do; the others \
         send from one reused buffer. \"vs fastest async anchor\" compares with the fastest of \
         every anchor row, the tuned ones included (>1 = faster than it).\n"
    );

    let mut failures = Vec::new();
    for &connections in &args.connections {
        let plan = Plan {
            connections,
            window: args.window,
            size: args.size,
            messages: args
                .messages
                .unwrap_or_else(|| default_messages(connections)),
            threads: args.threads,
            latency: args.latency,
        };
        let mut series: Vec<Series> = clients
            .iter()
            .map(|c| Series {
                name: c.name,
                role: c.role,
                runs: Vec::new(),
                failure: None,
            })
            .collect();
        for run in 0..args.runs {
            for (client, s) in clients.iter().zip(series.iter_mut()) {
                if s.failure.is_some() {
                    continue;
                }
                let problem = match (client.run)(&url, &plan) {
                    Ok(o) if o.messages == plan.total() => {
                        eprintln!(
                            "{connections} conns run {}/{} {:<26} {:>11} msgs/s  p50 {:>9}  p99 \
                             {:>9}",
                            run + 1,
                            args.runs,
                            client.name,
                            group(rate(o.messages, o.elapsed)),
                            o.p50.map_or("-".into(), duration),
                            o.p99.map_or("-".into(), duration),
                        );
                        s.runs.push(o);
                        continue;
                    }
                    Ok(o) => format!("{} echoes, expected {}", o.messages, plan.total()),
                    Err(e) => format!("client error: {e}"),
                };
                eprintln!(
                    "FAIL {connections} conns run {} {}: {problem}",
                    run + 1,
                    client.name
                );
                failures.push(format!(
                    "{} at {connections} connections: {problem}",
                    client.name
                ));
                s.failure = Some(problem);
            }
        }
        println!("{}", render(&plan, args.runs, &series));
        for line in summary(&plan, &series) {
            println!("{line}  ");
        }
        println!();
    }
    drop(server);
    println!("load average at end: {}", load_average());
    table::exit_status(&failures)
}
