//! `policies`: what each overflow policy of floodgate's buffered connection
//! does to a consumer that cannot keep up. Not a timed test: one run per
//! policy, one table.
//!
//! ```text
//! cargo run --release -p floodgate-bench --bin policies -- \
//!     [--messages N] [--size B] [--channels C] [--work-us U] \
//!     [--stall-ms MS] [--stall-every K] [--max-messages N] [--max-bytes B] \
//!     [--block-for-ms MS] [--ping-ms MS] [--linger-ms MS] [--rcvbuf B] \
//!     [--sndbuf B] [--only NAME[,NAME...]]
//! ```
//!
//! The scenario: a local server (plain `std::net`, in this process) sends
//! `N` numbered text messages (`"CH SEQ xxx..."`, channel `SEQ % C`) as fast
//! as its socket takes them, pings every 100 ms (the ping carries the time
//! it was due) and timestamps each pong; after its last message it goes on
//! pinging for 500 ms, then closes. The consumer runs in a child
//! process (this binary re-executed with a hidden flag) so that its peak
//! resident memory (`VmHWM` from `/proc/self/status`) is its own; it takes
//! messages one at a time with `recv()`, spins `U` µs on each and sleeps
//! `MS` ms after every `K`-th (a pause: a collection, a slow write), checks
//! the order of what it got, and reports the buffer's `Stats`. An idle child
//! (same binary, no connection) gives the memory baseline.
//!
//! Both kernel buffers are small by default (client `SO_RCVBUF` and server
//! `SO_SNDBUF` 64 KiB, doubled by Linux) so that the backlog sits where the
//! policy decides, not in megabytes of socket buffers.
//!
//! The ping-to-pong delay the server measures is the one a server's
//! keep-alive sees: under `Block` the reader stops reading while the buffer
//! is full, so a ping written behind data waits with that data; the
//! client's own `max_ping_delay` only covers decode to pong written.

mod consumer;
mod server;

use std::net::TcpListener;
use std::process::{Command, ExitCode, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use floodgate_bench::args::{command_line, or_exit, Parser};
use floodgate_bench::child::{unblock_server, vm_hwm_kib, wait_child, ChildReport};
use floodgate_bench::table::{bytes, duration as dur};
use floodgate_bench::{load_average, machine_line};

use consumer::consume;
use server::{serve_one, ServerReport};

const USAGE: &str = "usage: policies [--messages N] [--size B] [--channels C] [--work-us U]
                [--stall-ms MS] [--stall-every K] [--max-messages N] [--max-bytes B]
                [--block-for-ms MS] [--ping-ms MS] [--linger-ms MS] [--rcvbuf B]
                [--sndbuf B] [--only NAME[,NAME...]]

Runs one slow-consumer scenario per overflow policy of floodgate's buffered
connection (each consumer in its own child process) and prints one table.

  --messages      messages the server sends (default 200000)
  --size          payload bytes per message, at least 13 (default 100)
  --channels      channels the messages are spread over (default 16)
  --work-us       microseconds the consumer spins on each message (default 5)
  --stall-ms      milliseconds the consumer sleeps after every K-th message
                  (default 100)
  --stall-every   K, messages between two such pauses; 0 = never (default 5000)
  --max-messages  buffer limit in messages (default 1000)
  --max-bytes     buffer limit in payload bytes (default 1048576); also the
                  connection's max_message_size
  --block-for-ms  how long BlockFor waits before shedding (default 50)
  --ping-ms       the server's ping interval (default 100)
  --linger-ms     how long the server goes on pinging after its last message,
                  before it closes (default 500)
  --rcvbuf        client SO_RCVBUF in bytes, 0 = kernel default (default 65536)
  --sndbuf        server SO_SNDBUF in bytes, 0 = kernel default (default 65536)
  --only          run only these policies (block, block-for, drop-oldest,
                  drop-newest, conflate, disconnect, priorities)";

/// Every policy, in the order they run.
const POLICIES: [&str; 7] = [
    "block",
    "block-for",
    "drop-oldest",
    "drop-newest",
    "conflate",
    "disconnect",
    "priorities",
];

/// Longest a child may run before it is killed.
const CHILD_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Clone, Debug)]
struct Args {
    messages: u64,
    size: usize,
    channels: u64,
    work_us: u64,
    stall_ms: u64,
    stall_every: u64,
    max_messages: usize,
    max_bytes: usize,
    block_for_ms: u64,
    ping_ms: u64,
    linger_ms: u64,
    rcvbuf: usize,
    sndbuf: usize,
    only: Option<Vec<String>>,
    /// Hidden: run the consumer of this policy against this URL.
    child: Option<(String, String)>,
    /// Hidden: report the memory of an idle child.
    idle: bool,
}

/// The smallest payload that holds `"CC SSSSSSSSS "`.
const MIN_SIZE: usize = 13;

fn parse_args(argv: &[String]) -> Result<Args, String> {
    let mut a = Args {
        messages: 200_000,
        size: 100,
        channels: 16,
        work_us: 5,
        stall_ms: 100,
        stall_every: 5000,
        max_messages: 1000,
        max_bytes: 1 << 20,
        block_for_ms: 50,
        ping_ms: 100,
        linger_ms: 500,
        rcvbuf: 64 << 10,
        sndbuf: 64 << 10,
        only: None,
        child: None,
        idle: false,
    };
    let mut p = Parser::new(argv.iter().cloned(), USAGE);
    while let Some(flag) = p.next_flag() {
        match flag.as_str() {
            "--messages" => a.messages = p.num()?,
            "--size" => a.size = p.num()?,
            "--channels" => a.channels = p.num()?,
            "--work-us" => a.work_us = p.num()?,
            "--stall-ms" => a.stall_ms = p.num()?,
            "--stall-every" => a.stall_every = p.num()?,
            "--max-messages" => a.max_messages = p.num()?,
            "--max-bytes" => a.max_bytes = p.num()?,
            "--block-for-ms" => a.block_for_ms = p.num()?,
            "--ping-ms" => a.ping_ms = p.num()?,
            "--linger-ms" => a.linger_ms = p.num()?,
            "--rcvbuf" => a.rcvbuf = p.num()?,
            "--sndbuf" => a.sndbuf = p.num()?,
            "--only" => {
                let names = p.list()?;
                if let Some(bad) = names.iter().find(|n| !POLICIES.contains(&n.as_str())) {
                    return Err(format!("--only: unknown policy {bad}\n{USAGE}"));
                }
                a.only = Some(names);
            }
            "--child-idle" => {
                p.no_value()?;
                a.idle = true;
            }
            "--child-run" => {
                let spec = p.value()?;
                let (policy, url) = spec.split_once('@').ok_or("--child-run POLICY@URL")?;
                a.child = Some((policy.into(), url.into()));
            }
            _ => return Err(p.unknown()),
        }
    }
    if a.size < MIN_SIZE {
        return Err(format!("--size must be at least {MIN_SIZE}"));
    }
    if a.channels == 0 || a.channels > 99 {
        return Err("--channels must be between 1 and 99".into());
    }
    if a.messages >= 1_000_000_000 {
        return Err("--messages must be below 1000000000".into());
    }
    if a.ping_ms == 0 {
        return Err("--ping-ms must be above 0".into());
    }
    Ok(a)
}

/// The scenario's arguments, as passed on to a child.
fn child_argv(a: &Args) -> Vec<String> {
    vec![
        format!("--messages={}", a.messages),
        format!("--size={}", a.size),
        format!("--channels={}", a.channels),
        format!("--work-us={}", a.work_us),
        format!("--stall-ms={}", a.stall_ms),
        format!("--stall-every={}", a.stall_every),
        format!("--max-messages={}", a.max_messages),
        format!("--max-bytes={}", a.max_bytes),
        format!("--block-for-ms={}", a.block_for_ms),
        format!("--ping-ms={}", a.ping_ms),
        format!("--linger-ms={}", a.linger_ms),
        format!("--rcvbuf={}", a.rcvbuf),
        format!("--sndbuf={}", a.sndbuf),
    ]
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let args = or_exit(parse_args(&argv));
    if args.idle {
        println!("RESULT vmhwm_kib={}", vm_hwm_kib());
        return ExitCode::SUCCESS;
    }
    if let Some((policy, url)) = &args.child {
        return match consume(&args, policy, url) {
            Ok(line) => {
                println!("{line}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("policies: {policy}: {e}");
                ExitCode::FAILURE
            }
        };
    }
    run_all(&args, &argv)
}

// ----- the parent: server, children, table ---------------------------------

fn run_all(args: &Args, argv: &[String]) -> ExitCode {
    let exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("cannot find this executable to re-run it: {e}");
            return ExitCode::FAILURE;
        }
    };
    let listener = match TcpListener::bind("127.0.0.1:0") {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cannot start the server: {e}");
            return ExitCode::FAILURE;
        }
    };
    let url = format!("ws://{}/", listener.local_addr().expect("bound"));
    let started = Instant::now();

    println!("## floodgate overflow policies (`policies`)\n");
    println!("{}", command_line("policies", argv));
    println!("{}  ", machine_line());
    println!(
        "scenario: the server (std::net, in-process) sends {} text messages of {} B on {} \
         channels as fast as the socket takes them, pings every {} ms and, after its last \
         message, goes on pinging for {} ms before it closes; the consumer (a child \
         process, `recv()` one message at a time) spins {} µs per message{}; buffer limits {} \
         messages / {}; client SO_RCVBUF {}, server SO_SNDBUF {}; BlockFor waits {} ms, then \
         drops the oldest.  ",
        group(args.messages),
        args.size,
        args.channels,
        args.ping_ms,
        args.linger_ms,
        args.work_us,
        if args.stall_every > 0 && args.stall_ms > 0 {
            format!(
                " and sleeps {} ms after every {} messages",
                args.stall_ms,
                group(args.stall_every)
            )
        } else {
            String::new()
        },
        group(args.max_messages as u64),
        bytes(args.max_bytes as u64),
        kernel_buf(args.rcvbuf),
        kernel_buf(args.sndbuf),
        args.block_for_ms,
    );

    let idle = Command::new(&exe)
        .arg("--child-idle")
        .stderr(Stdio::inherit())
        .output()
        .ok()
        .and_then(|o| ChildReport::parse(&String::from_utf8_lossy(&o.stdout)))
        .map(|r| r.num("vmhwm_kib"));

    let mut rows = Vec::new();
    let mut failures = Vec::new();
    for &policy in POLICIES
        .iter()
        .filter(|p| args.only.as_ref().is_none_or(|o| o.iter().any(|n| n == *p)))
    {
        eprintln!("running {policy} ...");
        let server = {
            let listener = listener.try_clone().expect("listener clone");
            let a = args.clone();
            thread::spawn(move || serve_one(&listener, &a))
        };
        let child = Command::new(&exe)
            .args(child_argv(args))
            .arg(format!("--child-run={policy}@{url}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn();
        let outcome = match child {
            Ok(child) => wait_child(child, CHILD_TIMEOUT),
            Err(e) => Err(format!("cannot start the child: {e}")),
        };
        if outcome.is_err() {
            unblock_server(&server, &listener);
        }
        let report = server.join().unwrap_or_else(|_| ServerReport {
            error: Some("the server thread panicked".into()),
            ..ServerReport::default()
        });
        match outcome {
            Ok(child) => {
                if let Some(e) = &report.error {
                    failures.push(format!("{policy}: server: {e}"));
                }
                let check = check_of(&child, &report);
                if check.starts_with("FAIL") {
                    failures.push(format!("{policy}: {check}"));
                }
                rows.push((policy, child, report));
            }
            Err(e) => {
                eprintln!("FAIL {policy}: {e}");
                failures.push(format!("{policy}: {e}"));
            }
        }
    }
    print_table(args, idle, &rows);
    println!(
        "\nwhole run: {:.1} s; load average at end: {}",
        started.elapsed().as_secs_f64(),
        load_average()
    );
    floodgate_bench::table::exit_status(&failures)
}

fn print_table(args: &Args, idle: Option<u64>, rows: &[(&str, ChildReport, ServerReport)]) {
    println!(
        "peak memory: the consumer process's VmHWM (peak resident set); an idle child of the \
         same binary: {}. Kernel socket buffers are not part of it.  ",
        idle.map_or("?".into(), |k| bytes(k * 1024))
    );
    println!(
        "ping→pong (server): from the moment a ping was due (a server blocked in a write by \
         the client's backpressure sends it late) to reading its pong, worst of the run; \
         client: stats.max_ping_delay (from decoding the ping to writing the pong). \
         elapsed: the consumer's, from connect to the end of the connection (it includes \
         the server's linger).\n"
    );
    println!(
        "| policy | delivered | dropped oldest | dropped newest | conflated | filtered \
         | peak buffer | peak memory | queue wait p50 / p99 | ping→pong worst (server) \
         | ping delay max (client) | pongs / pings | elapsed | end | check |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|");
    for (policy, c, s) in rows {
        let peak_buffer = format!(
            "{} msgs / {}",
            group(c.num("high_water_messages")),
            bytes(c.num("high_water_bytes"))
        );
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} / {} | {} | {} | {} / {} | {} | {} | {} |",
            label(args, policy),
            group(c.num("delivered")),
            group(c.num("dropped_oldest")),
            group(c.num("dropped_newest")),
            group(c.num("conflated")),
            group(c.num("filtered")),
            peak_buffer,
            bytes(c.num("vmhwm_kib") * 1024),
            dur(c.dur("wait_p50_ns")),
            dur(c.dur("wait_p99_ns")),
            if s.pongs == 0 {
                "-".into()
            } else {
                dur(s.worst_pong)
            },
            if c.num("pings_answered") == 0 {
                "-".into()
            } else {
                dur(c.dur("max_ping_delay_ns"))
            },
            s.pongs,
            s.pings,
            dur(c.dur("elapsed_ns")),
            end_of(c, s),
            check_of(c, s),
        );
    }
    println!();
    for (policy, c, s) in rows {
        println!(
            "- {policy}: server sent {} of {} messages; its data writes took {} in all; \
             the reader was blocked {}; client received {}, answered {} pings",
            group(s.sent),
            group(args.messages),
            dur(s.write_time),
            dur(c.dur("blocked_ns")),
            group(c.num("received")),
            c.num("pings_answered"),
        );
    }
}

fn label(args: &Args, policy: &str) -> String {
    match policy {
        "block" => "Block".into(),
        "block-for" => format!("BlockFor({} ms, DropOldest)", args.block_for_ms),
        "drop-oldest" => "DropOldest".into(),
        "drop-newest" => "DropNewest".into(),
        "conflate" => "Conflate by channel (else DropOldest)".into(),
        "disconnect" => "Disconnect".into(),
        "priorities" => format!(
            "DropOldest + classifier (ch 0 CRITICAL, ch {} discarded)",
            args.channels - 1
        ),
        other => other.into(),
    }
}

fn end_of(c: &ChildReport, s: &ServerReport) -> String {
    match c.get("end") {
        "closed" => match s.client_close {
            Some(code) => format!("server closed; client answered {code}"),
            None => "server closed".into(),
        },
        "fell-behind" => format!(
            "**Disconnect**: client closed with {}",
            s.client_close.map_or("?".into(), |c| c.to_string())
        ),
        other => other.replace('|', "/"),
    }
}

fn check_of(c: &ChildReport, s: &ServerReport) -> String {
    let mut check = c.get("check").replace('|', "/");
    // Whatever the policy did, nothing the server sent was lost unseen:
    // every message it finished writing was received and counted (except
    // after a Disconnect, when the rest was never read).
    if c.get("end") == "closed" && c.num("received") != s.sent {
        check = format!(
            "FAIL: received {} of {} sent; {check}",
            c.num("received"),
            s.sent
        );
    }
    check
}

// ----- formatting ----------------------------------------------------------

fn group(n: u64) -> String {
    floodgate_bench::table::group(n as f64)
}

fn kernel_buf(n: usize) -> String {
    if n == 0 {
        "kernel default".into()
    } else {
        bytes(n as u64)
    }
}
