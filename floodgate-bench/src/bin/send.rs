//! `send`: send throughput of floodgate and the anchor libraries, where
//! the client must mask every byte.
//!
//! ```text
//! cargo run --release -p floodgate-bench --bin send -- \
//!     [--sizes 16,1024,65536,1048576] [--count-16 N] [--count-SIZE N] \
//!     [--count N] [--runs K] [--only NAME[,NAME...]]
//! ```
//!
//! For each payload size, every client runs K times against the same
//! in-process counting server (runs are interleaved: client A, B, C, ...
//! then again); the server checks every byte of every message, and a
//! Markdown table is printed. See the crate docs and
//! `floodgate_bench::send_clients` for what is measured. Progress goes to
//! stderr, results to stdout.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use floodgate_bench::args::{command_line, or_exit, Parser, PerSize, Suite};
use floodgate_bench::clients::{BoxError, Outcome, Role};
use floodgate_bench::send_clients::{self, Plan, RAW_TCP_NOTE, SEND_ALL_BYTES, SEND_ALL_MAX};
use floodgate_bench::send_server::{cpu_time, Job, Report, SendServer, READ_CHUNK};
use floodgate_bench::table;
use floodgate_bench::{load_average, machine_line};

const USAGE: &str = "usage: send [--sizes 16,1024,65536,1048576] [--count-SIZE N]... [--count N] \
[--runs K] [--only NAME[,NAME...]]

  --sizes       payload sizes in bytes (default 16,1024,65536,1048576)
  --count-SIZE  messages for that size (e.g. --count-16 5000000)
  --count       messages for every size without its own --count-SIZE
  --runs        runs per client and size, best and median kept (default 3)
  --only        run only these clients (raw-tcp, tungstenite, tokio-tungstenite,
                fastwebsockets, tokio-websockets, yawc, sockudo-ws, floodgate,
                floodgate-owned, floodgate-async, floodgate-each,
                floodgate-async-each)";

/// Default message count: on 2 cores, about a second per run for the
/// fastest clients at 1 KiB and up, 0.2 s at 16 B (where the clients that
/// write every message at once take several seconds).
fn default_count(size: usize) -> u64 {
    match size {
        16 => 5_000_000,
        1024 => 1_000_000,
        65536 => 40_000,
        1_048_576 => 2_500,
        // Otherwise about 2.5 GB of payload, between 1,000 and 5M messages.
        s => (2_500_000_000 / s.max(1) as u64).clamp(1_000, 5_000_000),
    }
}

struct Args {
    suite: Suite,
    counts: PerSize<u64>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        suite: Suite {
            sizes: vec![16, 1024, 65536, 1 << 20],
            ..Suite::default()
        },
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

/// What is wrong with one run, if anything: the client's error, or the
/// server's, or counts that differ from what was sent.
fn problem(
    result: &Result<Outcome, BoxError>,
    report: &Report,
    size: usize,
    count: u64,
) -> Option<String> {
    match (result, &report.error) {
        // The client's error is often the result of the server's refusal
        // (a reset): both are shown.
        (Err(e), Some(s)) => Some(format!("client error: {e}; server: {s}")),
        (Err(e), None) => Some(format!("client error: {e}")),
        (Ok(_), Some(s)) => Some(format!("server: {s}")),
        _ if report.messages != count || report.bytes != count * size as u64 => Some(format!(
            "server checked {} messages / {} bytes, expected {} / {}",
            report.messages,
            report.bytes,
            count,
            count * size as u64
        )),
        _ if !report.client_close => Some("no close frame from the client".into()),
        _ => None,
    }
}

/// One run that passed its checks.
#[derive(Clone, Copy)]
struct Run {
    /// Connect to the server's close reply.
    elapsed: Duration,
    /// CPU time of the client's threads (the process's, less the server
    /// thread's) over the run.
    cpu: Duration,
}

/// All runs of one client at one size.
struct Row {
    name: &'static str,
    role: Role,
    asynchronous: bool,
    runs: Vec<Run>,
    failure: Option<String>,
}

impl Row {
    fn best(&self) -> Option<Run> {
        self.runs.iter().copied().min_by_key(|r| r.elapsed)
    }

    /// The median run's time (the upper one for an even count).
    fn median(&self) -> Option<Duration> {
        let mut v: Vec<Duration> = self.runs.iter().map(|r| r.elapsed).collect();
        v.sort();
        v.get(v.len() / 2).copied()
    }

    /// The least CPU time of a run: the least disturbed measure of the
    /// client's own cost.
    fn cpu(&self) -> Option<Duration> {
        self.runs.iter().map(|r| r.cpu).min()
    }

    fn ok(&self) -> bool {
        self.failure.is_none() && !self.runs.is_empty()
    }
}

/// The fastest row among `rows` that `keep` selects, by `by` (the smaller
/// the better): its name and value.
fn leader(
    rows: &[Row],
    keep: impl Fn(&Row) -> bool,
    by: impl Fn(&Row) -> Option<Duration>,
) -> Option<(&str, Duration)> {
    rows.iter()
        .filter(|r| r.ok() && keep(r))
        .filter_map(|r| by(r).map(|d| (r.name, d)))
        .min_by_key(|&(_, d)| d)
}

/// `theirs / ours` as `1.23x` (>1: this row is faster or leaner), or `-`.
fn ratio(theirs: Option<(&str, Duration)>, ours: Duration) -> String {
    match theirs {
        Some((_, d)) if !ours.is_zero() => format!("{:.2}x", d.as_secs_f64() / ours.as_secs_f64()),
        _ => "-".into(),
    }
}

/// The table of one size and its summary lines.
fn render(size: usize, count: u64, runs: usize, rows: &[Row]) -> (String, Vec<String>) {
    let anchor = |r: &Row| r.role == Role::Anchor;
    let async_anchor = |r: &Row| r.role == Role::Anchor && r.asynchronous;
    let best = |r: &Row| r.best().map(|b| b.elapsed);
    let fastest = leader(rows, anchor, best);
    let fastest_async = leader(rows, async_anchor, best);
    let ceiling = leader(rows, |r| r.role == Role::Ceiling, best);
    let leanest = leader(rows, anchor, Row::cpu);
    let per_msg = |d: Duration| Duration::from_secs_f64(d.as_secs_f64() / count.max(1) as f64);

    let mut md = format!(
        "### {size} B payloads x {} messages (best of {runs})\n\n\
         | client | msgs/s (best) | MiB/s (best) | msgs/s (median) | vs fastest anchor \
         | vs raw-tcp | vs fastest async anchor | client CPU per msg | client busy \
         | CPU vs leanest anchor |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        table::group(count as f64)
    );
    for r in rows {
        let name = match r.role {
            Role::Subject | Role::Variant => format!("**{}**", r.name),
            _ => r.name.to_string(),
        };
        if let Some(f) = &r.failure {
            let _ = writeln!(
                md,
                "| {name} | FAILED: {} | | | | | | | | |",
                f.replace('|', "/")
            );
            continue;
        }
        let (Some(b), Some(median), Some(cpu)) = (r.best(), r.median(), r.cpu()) else {
            continue;
        };
        let rate = |d: Duration| count as f64 / d.as_secs_f64();
        let _ = writeln!(
            md,
            "| {name} | {} | {:.0} | {} | {} | {} | {} | {} | {:.0}% | {} |",
            table::group(rate(b.elapsed)),
            rate(b.elapsed) * size as f64 / (1024.0 * 1024.0),
            table::group(rate(median)),
            ratio(fastest, b.elapsed),
            ratio(ceiling, b.elapsed),
            if r.asynchronous {
                ratio(fastest_async, b.elapsed)
            } else {
                "-".into()
            },
            table::duration(per_msg(cpu)),
            100.0 * b.cpu.as_secs_f64() / b.elapsed.as_secs_f64(),
            ratio(leanest, cpu),
        );
    }

    // Each floodgate row against the fastest anchor of its kind (async
    // rows against the async anchors), on best runs and on medians (the
    // anchor with the best median, not necessarily the same one), and its
    // CPU per message against the leanest anchor's.
    let mut summary = Vec::new();
    for r in rows
        .iter()
        .filter(|r| matches!(r.role, Role::Subject | Role::Variant) && r.ok())
    {
        let kind = if r.asynchronous { async_anchor } else { anchor };
        let (Some((an, ab)), Some((_, am)), Some((ln, lc))) = (
            leader(rows, kind, best),
            leader(rows, kind, Row::median),
            leader(rows, kind, Row::cpu),
        ) else {
            continue;
        };
        let (Some(b), Some(m), Some(c)) = (r.best(), r.median(), r.cpu()) else {
            continue;
        };
        summary.push(format!(
            "{size} B: {} / fastest {}anchor = {} (anchor: {an}; on medians: {}); client CPU \
             per message, leanest {}anchor / {} = {} (anchor: {ln})",
            r.name,
            if r.asynchronous { "async " } else { "" },
            ratio(Some((an, ab)), b.elapsed),
            ratio(Some((an, am)), m),
            if r.asynchronous { "async " } else { "" },
            r.name,
            ratio(Some((ln, lc)), c),
        ));
    }
    (md, summary)
}

fn main() -> ExitCode {
    let args = or_exit(parse_args());
    let clients = or_exit(args.suite.select(send_clients::all(), |c| c.name));

    let mut server = match SendServer::start() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cannot start server: {e}");
            return ExitCode::FAILURE;
        }
    };
    let url = server.url();

    let argv: Vec<String> = std::env::args().skip(1).collect();
    println!("## floodgate send benchmark (`send`)\n");
    println!("{}", command_line("send", &argv));
    println!("{}  ", machine_line());
    println!(
        "server: in-process, std::net on {url}, one connection per run, {} KiB reads; it \
         requires the mask bit on every frame, unmasks every payload byte and compares it with \
         the expected payload (word-wise, in place), checks every message's length, counts, \
         and answers the client's close only after all of that; client and server share the \
         machine's cores  ",
        READ_CHUNK / 1024
    );
    println!("{RAW_TCP_NOTE}.  ");
    println!(
        "Throughput from each client's best of {} runs (wall time from connect to the \
         server's close reply reaching the client: every byte was received and checked by \
         then); ratios are throughput ratios of best runs, >1 = faster. Each library sends \
         binary messages its documented way to send many, with its default configuration: \
         the Sinks of tokio-tungstenite, tokio-websockets, yawc and sockudo-ws get \
         `SinkExt::feed` per message and one `flush`; tungstenite `write` per message and one \
         `flush`; fastwebsockets `write_frame` per message (it writes each at once); \
         floodgate `WebSocket::send_all`, about {} KiB of payload per call (at most {} \
         messages); floodgate-async its `Sink` (`feed` per message, one `flush`), as the \
         other async libraries. floodgate-each and floodgate-async-each send with \
         `send_binary`, which writes every message at once: the cost of one system call per \
         message, for comparison. The libraries that take ownership of a payload get a clone of one \
         `Bytes` (those that then copy it to mask it pay for the copy), floodgate's `Sink` \
         included; floodgate's `send_all` borrows one `Message` (it takes `&Message`; \
         floodgate-owned is the same given a clone of one `Bytes` per message, as the \
         others), \
         floodgate's `send_binary` and fastwebsockets borrow a slice. Socket options are each library's (tungstenite, \
         floodgate and sockudo-ws set TCP_NODELAY; tokio-tungstenite, tokio-websockets, yawc, \
         and the hand-connected fastwebsockets and raw-tcp keep Nagle's algorithm; the server \
         acknowledges at once after a short read, so no client waits for a delayed ACK at the \
         end of its run). sockudo-ws keeps its \
         default Config: its heartbeat reads the clock for received messages, not sent ones, \
         so on this path its defaults cost nothing (the same CPU per message with auto_ping \
         off and no idle timeout), and there is no second row; its clock's one-time \
         calibration (init_clock) runs before the timer. The async clients run on one current-thread tokio \
         runtime with I/O and timers; \"vs fastest async anchor\" compares them with the \
         fastest of tokio-tungstenite, fastwebsockets, tokio-websockets, yawc and \
         sockudo-ws. Where the server or the loopback is the limit (raw-tcp close to the \
         others), wall time hides what a client costs: \"client CPU per msg\" is the CPU \
         time of the client's threads (the process's less the server thread's, system time \
         included, the least of the runs) per message, \"client busy\" the best run's \
         client CPU time as a share of its wall time (near 100%: the client is the limit), and \
         \"CPU vs leanest anchor\" the anchor with the least CPU per message over this row's \
         (>1: this row costs less).\n",
        args.suite.runs,
        SEND_ALL_BYTES / 1024,
        SEND_ALL_MAX,
    );

    let mut failures = Vec::new();
    let mut summaries = Vec::new();
    for &size in &args.suite.sizes {
        let count = args.counts.get(size, default_count);
        let plan = Plan { size, count };
        let mut rows: Vec<Row> = clients
            .iter()
            .map(|c| Row {
                name: c.name,
                role: c.role,
                asynchronous: c.asynchronous,
                runs: Vec::new(),
                failure: None,
            })
            .collect();
        // Per client: the most frames, zero keys and repeated keys of a run.
        let mut keys = vec![(0u64, 0u64, 0u64); clients.len()];
        for run in 0..args.suite.runs {
            for ((client, s), k) in clients.iter().zip(rows.iter_mut()).zip(keys.iter_mut()) {
                if s.failure.is_some() {
                    continue;
                }
                server.submit(Job { size });
                let cpu = cpu_time(false);
                let result = (client.run)(&url, plan);
                let report = server.finish(result.is_err());
                let cpu = cpu_time(false)
                    .saturating_sub(cpu)
                    .saturating_sub(report.cpu);
                k.0 = k.0.max(report.frames);
                k.1 = k.1.max(report.zero_keys);
                k.2 = k.2.max(report.repeated_keys);
                match (problem(&result, &report, size, count), result) {
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
                            "{size} B run {}/{} {:<24} {:>8.3} s  {:>12} msgs/s  client CPU \
                             {:>7.3} s, server CPU {:>7.3} s",
                            run + 1,
                            args.suite.runs,
                            client.name,
                            o.elapsed.as_secs_f64(),
                            table::group(count as f64 / o.elapsed.as_secs_f64()),
                            cpu.as_secs_f64(),
                            report.cpu.as_secs_f64(),
                        );
                        s.runs.push(Run {
                            elapsed: o.elapsed,
                            cpu,
                        });
                    }
                    (None, Err(_)) => unreachable!("a client error is a problem"),
                }
            }
        }
        let (markdown, summary) = render(size, count, args.suite.runs, &rows);
        println!("{markdown}");
        for (client, &(frames, zero, repeated)) in clients.iter().zip(&keys) {
            if frames > count {
                println!(
                    "{size} B: {} sent {} frames for {} messages (it fragments).\n",
                    client.name,
                    table::group(frames as f64),
                    table::group(count as f64)
                );
            }
            if zero > 0 || repeated > 0 {
                println!(
                    "{size} B: {} masked {zero} frames with a zero key and {repeated} with the \
                     key of the frame before (a random key repeats once in 2^32 frames).\n",
                    client.name
                );
            }
        }
        for line in summary {
            println!("{line}\n");
            summaries.push(line);
        }
    }
    table::print_summary(&summaries);
    drop(server);
    println!("load average at end: {}", load_average());
    table::exit_status(&failures)
}
