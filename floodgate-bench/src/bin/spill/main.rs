//! `spill`: what `Overflow::Spill` costs and what it buys (issue 16). Not a
//! timed test: one run, two tables, ratios within the run.
//!
//! ```text
//! cargo run --release -p floodgate-bench --bin spill -- \
//!     [--quick] [--total BYTES] [--size B] [--runs K] [--slow-us U] [--far-us U] \
//!     [--work sleep|spin] [--max-messages N] [--max-bytes B] [--fallback F] \
//!     [--rcvbuf B] [--sndbuf B] [--ping-ms MS] [--dir DIR] [--tables 1,2] \
//!     [--only spill|block] [--check-empty]
//! ```
//!
//! A local server (plain `std::net`, in this process) sends `BYTES / B`
//! binary messages of `B` bytes (default 100 MB of 2 KiB messages) as
//! fast as its socket takes them, pinging every `MS` ms, and times its own
//! sending; the consumer runs in a child process (this binary re-executed
//! with a hidden flag), on a floodgate buffered connection with small
//! memory limits, takes the messages in batches, pays a fixed cost per
//! message, checks that every message comes once and in order, and closes
//! when it has them all. An idle child gives the memory baseline.
//!
//! Table 1, throughput: `Spill` and `Block` with a consumer that keeps up
//! (no cost) and with a slow one (`--slow-us` per message), best of `K`
//! runs (interleaved), beside the limit: a plain sequential write of the
//! same number of bytes to a file in the spill directory (`std::fs::File`,
//! `write_all` of 1 MiB chunks), without and with a final `sync_all`; and,
//! for reference, the same bytes written one record per message (the
//! spill writer's pattern until it batched its writes: what batching
//! saves).
//!
//! Table 2, issue 16's scenario: `Spill` (with `--fallback`, and with the
//! default fallback `Disconnect`) and `Block` against a consumer far slower
//! than the feed (`--far-us` per message), one run each: every message
//! delivered in order, the consumer process's peak memory (VmHWM), the
//! longest ping round trip the server saw over the whole connection, and
//! the server's send time, each beside the issue's target.
//!
//! Spill rows use `SpillFallback::Block` unless `--fallback` says
//! otherwise, so that a message the spill refuses waits rather than ends
//! the run; how often the fallback acted is printed beside the figures.

mod consumer;
mod server;

use std::fs::{self, File};
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use floodgate_bench::args::{command_line, or_exit, Parser};
use floodgate_bench::child::{unblock_server, vm_hwm_kib, wait_child, ChildReport};
use floodgate_bench::table::{bytes, duration as dur};
use floodgate_bench::{load_average, machine_line};

use server::{serve_one, Plan, ServerReport};

const USAGE: &str = "usage: spill [--quick] [--total BYTES] [--size B] [--runs K] [--slow-us U]
             [--far-us U] [--work sleep|spin] [--max-messages N] [--max-bytes B]
             [--fallback block|drop-newest|disconnect] [--rcvbuf B] [--sndbuf B]
             [--ping-ms MS] [--dir DIR] [--tables 1,2] [--only spill|block]
             [--check-empty]

Floods a floodgate buffered connection (consumer in a child process) under
Overflow::Spill and Overflow::Block and prints two tables: throughput (with a
plain file write as the limit) and issue 16's slow-consumer scenario against
its targets. Exits with status 1 if a run lost, repeated or reordered a
message, its child died, or the buffer's counters did not add up.

  --quick         a smoke run: 4 MB per case, 1 run; other flags still apply
  --total         payload bytes the server sends per case (default 100000000)
  --size          payload bytes per message, at least 16 (default 2048)
  --runs          runs of each case of table 1, best kept (default 3)
  --slow-us       table 1's slow consumer: microseconds per message (default 20)
  --far-us        table 2's far slower consumer: microseconds per message
                  (default 50)
  --work          how the consumer spends its cost: sleep (owed, slept in
                  steps of 1 ms or more; the CPU is free) or spin (busy on a
                  core) (default sleep)
  --max-messages  buffer memory limit in messages (default 1000)
  --max-bytes     buffer memory limit in payload bytes (default 1048576)
  --fallback      SpillFallback when the spill cannot take a message
                  (default block)
  --rcvbuf        client SO_RCVBUF in bytes, 0 = kernel default (default 65536)
  --sndbuf        server SO_SNDBUF in bytes, 0 = kernel default (default 65536)
  --ping-ms       the server's ping interval (default 10)
  --dir           where the spill directory and the limit's file go (default:
                  spill-bench/ in the target directory this binary is in); a
                  directory of this run is made under it and removed after
  --tables        which tables to run (default 1,2)
  --only          run only the rows of this policy (spill or block); the
                  file writes of table 1 always run
  --check-empty   after its last message, the consumer calls try_recv once
                  more and expects nothing (a check of the spill's count of
                  records on disk; before 74b6bc6 a count gone wrong made
                  that call overflow the stack)";

/// Longest a child may run before it is killed.
const CHILD_TIMEOUT: Duration = Duration::from_secs(600);

/// The issue's targets for table 2.
const TARGET_PEAK_KIB: u64 = 64 << 10;
const TARGET_PING: Duration = Duration::from_millis(50);
const TARGET_SEND_RATIO: f64 = 2.0;

/// How the consumer spends its cost per message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Work {
    Sleep,
    Spin,
}

#[derive(Clone, Debug)]
pub(crate) struct Args {
    quick: bool,
    total: u64,
    size: usize,
    /// `total / size`.
    pub(crate) messages: u64,
    runs: usize,
    slow_us: u64,
    far_us: u64,
    pub(crate) work: Work,
    pub(crate) max_messages: usize,
    pub(crate) max_bytes: usize,
    pub(crate) fallback: String,
    pub(crate) rcvbuf: usize,
    sndbuf: usize,
    ping_ms: u64,
    /// The spill directory (in a child: the run's own).
    pub(crate) dir: String,
    tables: Vec<u8>,
    /// The policies to run (`spill`, `block`), all if `None`.
    only: Option<Vec<String>>,
    /// After the last message, check with `try_recv` that the buffer is
    /// empty.
    pub(crate) check_empty: bool,
    /// Hidden: run the consumer of this policy, at this cost, against
    /// this URL.
    child: Option<(String, u64, String)>,
    /// Hidden: report the memory of an idle child.
    idle: bool,
}

fn parse_args(argv: &[String]) -> Result<Args, String> {
    let mut a = Args {
        quick: false,
        total: 100_000_000,
        size: 2048,
        messages: 0,
        runs: 3,
        slow_us: 20,
        far_us: 50,
        work: Work::Sleep,
        max_messages: 1000,
        max_bytes: 1 << 20,
        fallback: "block".into(),
        rcvbuf: 64 << 10,
        sndbuf: 64 << 10,
        ping_ms: 10,
        dir: String::new(),
        tables: vec![1, 2],
        only: None,
        check_empty: false,
        child: None,
        idle: false,
    };
    let (mut total, mut runs) = (None, None);
    let mut p = Parser::new(argv.iter().cloned(), USAGE);
    while let Some(flag) = p.next_flag() {
        match flag.as_str() {
            "--quick" => {
                p.no_value()?;
                a.quick = true;
            }
            "--total" => total = Some(p.num()?),
            "--size" => a.size = p.num()?,
            "--runs" => runs = Some(p.num::<usize>()?.max(1)),
            "--slow-us" => a.slow_us = p.num()?,
            "--far-us" => a.far_us = p.num()?,
            "--work" => {
                a.work = match p.value()?.as_str() {
                    "sleep" => Work::Sleep,
                    "spin" => Work::Spin,
                    other => return Err(format!("--work: sleep or spin, not {other}")),
                }
            }
            "--max-messages" => a.max_messages = p.num()?,
            "--max-bytes" => a.max_bytes = p.num()?,
            "--fallback" => {
                a.fallback = p.value()?;
                if !["block", "drop-newest", "disconnect"].contains(&a.fallback.as_str()) {
                    return Err(format!("--fallback: unknown fallback {}", a.fallback));
                }
            }
            "--rcvbuf" => a.rcvbuf = p.num()?,
            "--sndbuf" => a.sndbuf = p.num()?,
            "--ping-ms" => a.ping_ms = p.num()?,
            "--dir" => a.dir = p.value()?,
            "--tables" => {
                a.tables = p
                    .list()?
                    .iter()
                    .map(|t| match t.as_str() {
                        "1" => Ok(1),
                        "2" => Ok(2),
                        other => Err(format!("--tables: 1 or 2, not {other}")),
                    })
                    .collect::<Result<_, _>>()?
            }
            "--only" => {
                let names = p.list()?;
                if let Some(bad) = names
                    .iter()
                    .find(|n| !["spill", "block"].contains(&n.as_str()))
                {
                    return Err(format!("--only: spill or block, not {bad}"));
                }
                a.only = Some(names);
            }
            "--check-empty" => {
                p.no_value()?;
                a.check_empty = true;
            }
            "--child-idle" => {
                p.no_value()?;
                a.idle = true;
            }
            "--child-run" => {
                let spec = p.value()?;
                let err = || "--child-run POLICY,WORK_US@URL".to_string();
                let (what, url) = spec.split_once('@').ok_or_else(err)?;
                let (policy, work) = what.split_once(',').ok_or_else(err)?;
                let work = work.parse().map_err(|_| err())?;
                a.child = Some((policy.into(), work, url.into()));
            }
            _ => return Err(p.unknown()),
        }
    }
    a.total = total.unwrap_or(if a.quick { 4_000_000 } else { a.total });
    a.runs = runs.unwrap_or(if a.quick { 1 } else { a.runs });
    if a.size < 16 {
        return Err("--size must be at least 16 (two sequence numbers)".into());
    }
    if a.size > a.max_bytes {
        return Err("--size must not exceed --max-bytes".into());
    }
    a.messages = a.total / a.size as u64;
    if a.messages == 0 {
        return Err("--total must be at least --size".into());
    }
    if a.ping_ms == 0 {
        return Err("--ping-ms must be above 0".into());
    }
    Ok(a)
}

impl Args {
    /// Whether `--only` leaves `policy` in.
    fn selected(&self, policy: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|o| o.iter().any(|n| n == policy))
    }
}

/// The scenario's arguments, as passed on to a child.
fn child_argv(a: &Args, dir: &Path) -> Vec<String> {
    vec![
        format!("--total={}", a.total),
        format!("--size={}", a.size),
        format!(
            "--work={}",
            match a.work {
                Work::Sleep => "sleep",
                Work::Spin => "spin",
            }
        ),
        format!("--max-messages={}", a.max_messages),
        format!("--max-bytes={}", a.max_bytes),
        format!("--fallback={}", a.fallback),
        format!("--rcvbuf={}", a.rcvbuf),
        format!("--dir={}", dir.display()),
    ]
    .into_iter()
    .chain(a.check_empty.then(|| "--check-empty".to_string()))
    .collect()
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let args = or_exit(parse_args(&argv));
    if args.idle {
        println!("RESULT vmhwm_kib={}", vm_hwm_kib());
        return ExitCode::SUCCESS;
    }
    if let Some((policy, work_us, url)) = &args.child {
        return match consumer::consume(&args, policy, *work_us, url) {
            Ok(line) => {
                println!("{line}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("spill: {policy}: {e}");
                ExitCode::FAILURE
            }
        };
    }
    match run(&args, &argv) {
        Ok(failures) if failures.is_empty() => ExitCode::SUCCESS,
        Ok(failures) => {
            eprintln!("\n{} FAILURE(S):", failures.len());
            for f in &failures {
                eprintln!("  {f}");
            }
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("spill: {e}");
            ExitCode::FAILURE
        }
    }
}

// ----- the parent: server, children, tables --------------------------------

/// One case: a policy and a consumer's cost per message.
#[derive(Clone, Copy)]
struct Case {
    label: &'static str,
    policy: &'static str,
    work_us: u64,
    /// The spill's fallback, if not `--fallback`.
    fallback: Option<&'static str>,
}

/// One run of a case: the child's report and the server's, and what went
/// wrong if anything did.
struct Run {
    child: ChildReport,
    server: ServerReport,
    /// A message lost, repeated or out of order, or the server failed.
    problem: Option<String>,
    /// The buffer's state after the run was wrong ([`check_of`]).
    check: Option<String>,
}

impl Run {
    fn elapsed(&self) -> Duration {
        self.child.dur("elapsed_ns")
    }
}

/// Runs the cases: the server in a thread of this process, the consumer in
/// a child.
struct Runner<'a> {
    args: &'a Args,
    exe: PathBuf,
    listener: TcpListener,
    url: String,
    /// The run's spill directory.
    dir: PathBuf,
}

impl Runner<'_> {
    fn run(&self, case: Case) -> Result<Run, String> {
        eprintln!(
            "running {} ({} µs per message) ...",
            case.policy, case.work_us
        );
        let server = {
            let listener = self.listener.try_clone().map_err(|e| e.to_string())?;
            let plan = Plan {
                messages: self.args.messages,
                size: self.args.size,
                ping_every: Duration::from_millis(self.args.ping_ms),
                sndbuf: self.args.sndbuf,
            };
            thread::spawn(move || serve_one(&listener, &plan))
        };
        let child = Command::new(&self.exe)
            .args(child_argv(self.args, &self.dir))
            .args(case.fallback.map(|f| format!("--fallback={f}")))
            .arg(format!(
                "--child-run={},{}@{}",
                case.policy, case.work_us, self.url
            ))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        let outcome = match child {
            Ok(child) => wait_child(child, CHILD_TIMEOUT),
            Err(e) => Err(format!("cannot start the child: {e}")),
        };
        if outcome.is_err() {
            unblock_server(&server, &self.listener);
        }
        let server = server.join().unwrap_or_else(|_| ServerReport {
            error: Some("the server thread panicked".into()),
            ..ServerReport::default()
        });
        let child = outcome?;
        let mut run = Run {
            child,
            server,
            problem: None,
            check: None,
        };
        run.problem = problem_of(self.args, &run);
        run.check = check_of(&run);
        for p in run.problem.iter().chain(&run.check) {
            eprintln!("FAIL {}: {p}", case.label);
        }
        eprintln!(
            "  consumer {:.3} s, server send {:.3} s, spilled {}, peak memory {}",
            run.elapsed().as_secs_f64(),
            run.server.send_time.as_secs_f64(),
            group(run.child.num("spilled")),
            bytes(run.child.num("vmhwm_kib") * 1024),
        );
        Ok(run)
    }
}

/// What is wrong with a run, if anything: a lossless policy must deliver
/// every message, once, in order, with counters that add up.
fn problem_of(args: &Args, run: &Run) -> Option<String> {
    let c = &run.child;
    if let Some(e) = &run.server.error {
        return Some(format!("server: {e}"));
    }
    if c.get("in_order") != "true" {
        return Some(if c.num("taken") == args.messages {
            "a message came twice, out of order or damaged".into()
        } else {
            format!(
                "took {} of {} messages: {}",
                group(c.num("taken")),
                group(args.messages),
                c.get("end")
            )
        });
    }
    if run.server.sent != args.messages {
        return Some(format!(
            "the server sent {} of {}",
            run.server.sent, args.messages
        ));
    }
    None
}

/// What the buffer's state got wrong after a lossless run, if anything:
/// its counters must add up (`received = delivered + buffered + dropped
/// and the rest`) and, with `--check-empty`, nothing may be left to take.
fn check_of(run: &Run) -> Option<String> {
    let c = &run.child;
    let mut wrong = Vec::new();
    if c.get("adds_up") != "true" {
        wrong.push(format!(
            "the counters do not add up: received {} != delivered {} + buffered {} (on disk {}) \
             + dropped oldest {} + dropped newest {} + conflated {} + filtered {}",
            c.num("received"),
            c.num("delivered"),
            c.num("buffered"),
            c.num("buffered_disk"),
            c.num("dropped_oldest"),
            c.num("dropped_newest"),
            c.num("conflated"),
            c.num("filtered"),
        ));
    }
    if c.get("empty").starts_with("no") {
        wrong.push(format!(
            "after the last message, try_recv: {}",
            c.get("empty")
        ));
    }
    (!wrong.is_empty()).then(|| wrong.join("; "))
}

/// How the limit writes its bytes.
#[derive(Clone, Copy)]
enum Pattern {
    /// `write_all` of 1 MiB chunks.
    Chunks,
    /// `write_all` of one record per message: the spill's record header
    /// and the payload (without its CRC), one write each, as the spill's
    /// writer did before it batched its writes.
    Records { size: usize },
}

/// The spill's record header: length, CRC32, kind, priority, stamp
/// (`buffer/spill/format.rs`, format version 1).
const RECORD_HEADER: usize = 18;

/// The limit: `total` payload bytes written to a file in the spill
/// directory, then synced or not. Returns the time from creating the file
/// to the last write returning (or the sync).
fn file_write(dir: &Path, total: u64, pattern: Pattern, sync: bool) -> std::io::Result<Duration> {
    let path = dir.join("limit.bin");
    let (piece, payload) = match pattern {
        Pattern::Chunks => (1 << 20, 1 << 20),
        Pattern::Records { size } => (size + RECORD_HEADER, size),
    };
    let chunk: Vec<u8> = (0..piece).map(|i| b'a' + (i % 26) as u8).collect();
    let start = Instant::now();
    let mut file = File::create(&path)?;
    let mut left = total;
    while left > 0 {
        let n = left.min(payload as u64) as usize;
        file.write_all(&chunk[..n + piece - payload])?;
        left -= n as u64;
    }
    if sync {
        file.sync_all()?;
    }
    let took = start.elapsed();
    drop(file);
    fs::remove_file(&path)?;
    Ok(took)
}

/// The file system `path` is on, from `/proc/self/mountinfo`: its type,
/// its source and its mount point (the longest mount point that is a
/// prefix of `path`).
fn file_system_of(path: &Path) -> String {
    let Ok(path) = path.canonicalize() else {
        return "unknown".into();
    };
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return "unknown".into();
    };
    info.lines()
        .filter_map(|l| {
            // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS... - TYPE SOURCE SUPER
            let (left, right) = l.split_once(" - ")?;
            let mount = left.split(' ').nth(4)?;
            let mut r = right.split(' ');
            let (fstype, source) = (r.next()?, r.next()?);
            path.starts_with(mount).then(|| {
                (
                    mount.len(),
                    format!("{fstype} ({source}, mounted on {mount})"),
                )
            })
        })
        .max_by_key(|(len, _)| *len)
        .map_or("unknown".into(), |(_, s)| s)
}

/// The default root of the spill directories: `spill-bench/` in the
/// target directory (this binary is `target/<profile>/spill`).
fn default_root(exe: &Path) -> PathBuf {
    exe.parent()
        .and_then(Path::parent)
        .map_or_else(std::env::temp_dir, Path::to_path_buf)
        .join("spill-bench")
}

fn run(args: &Args, argv: &[String]) -> Result<Vec<String>, String> {
    let exe = std::env::current_exe()
        .map_err(|e| format!("cannot find this executable to re-run it: {e}"))?;
    let root = if args.dir.is_empty() {
        default_root(&exe)
    } else {
        PathBuf::from(&args.dir)
    };
    let made_root = !root.exists();
    let dir = root.join(format!("run-{}", std::process::id()));
    fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(|e| format!("cannot start the server: {e}"))?;
    let url = format!("ws://{}/", listener.local_addr().expect("bound"));
    let runner = Runner {
        args,
        exe: exe.clone(),
        listener,
        url,
        dir: dir.clone(),
    };
    let started = Instant::now();

    println!("## Spill to disk (`spill`, issue 16)\n");
    println!("{}", command_line("spill", argv));
    println!("{}  ", machine_line());
    println!(
        "spill directory: {} on {}; ephemeral spill (no fsync), default segment (8 MiB) and \
         writer queue (8 MiB) sizes, disk budget 1 GiB; fallback `{}`{}.  ",
        dir.display(),
        file_system_of(&dir),
        args.fallback,
        if args.fallback == "disconnect" {
            " (the default)"
        } else {
            " (this bench's choice, so that a message the spill refuses waits instead of \
             ending the run; table 2 has a row with the default, `disconnect`)"
        },
    );
    println!(
        "scenario: the server (std::net, in this process) sends {} binary messages of {} ({:.1} \
         MB in all) as fast as its socket takes them (64 KiB per write), pings every {} ms \
         while sending and afterwards until the client closes; the consumer (a child process, \
         floodgate's blocking buffered connection, `recv_batch_into` of up to 256) checks every \
         message's sequence number, pays its cost per message{}, and closes once it has every \
         message. Buffer memory limits {} messages / {}; client SO_RCVBUF {}, server SO_SNDBUF \
         {}.  ",
        group(args.messages),
        bytes(args.size as u64),
        args.messages as f64 * args.size as f64 / 1e6,
        args.ping_ms,
        match args.work {
            Work::Sleep => " (sleep: the cost is owed and slept once 1 ms is owed, the CPU free)",
            Work::Spin => " (spin: busy on a core)",
        },
        group(args.max_messages as u64),
        bytes(args.max_bytes as u64),
        kernel_buf(args.rcvbuf),
        kernel_buf(args.sndbuf),
    );
    let idle = Command::new(&exe)
        .arg("--child-idle")
        .stderr(Stdio::inherit())
        .output()
        .ok()
        .and_then(|o| ChildReport::parse(&String::from_utf8_lossy(&o.stdout)))
        .map(|r| r.num("vmhwm_kib"));

    let mut failures = Vec::new();
    if args.tables.contains(&1) {
        table_1(&runner, &mut failures);
    }
    if args.tables.contains(&2) {
        table_2(&runner, idle, &mut failures);
    }
    let _ = fs::remove_dir_all(&dir);
    if made_root {
        // Only if empty: another run may be using it.
        let _ = fs::remove_dir(&root);
    }
    println!(
        "\nwhole run: {:.1} s; load average at end: {}",
        started.elapsed().as_secs_f64(),
        load_average()
    );
    Ok(failures)
}

// ----- table 1 -------------------------------------------------------------

/// The runs of one row of table 1 (consumer time, server send time), or
/// why it failed.
struct Row {
    label: String,
    times: Vec<Duration>,
    sends: Vec<Duration>,
    spilled: Vec<u64>,
    refused: Vec<u64>,
    /// Per run, what the buffer's state got wrong ([`check_of`]).
    checks: Vec<Option<String>>,
    /// Why each failed run failed.
    failed: Vec<String>,
}

impl Row {
    fn new(label: String) -> Row {
        Row {
            label,
            times: Vec::new(),
            sends: Vec::new(),
            spilled: Vec::new(),
            refused: Vec::new(),
            checks: Vec::new(),
            failed: Vec::new(),
        }
    }
}

fn best(v: &[Duration]) -> Option<Duration> {
    v.iter().min().copied()
}

fn median(v: &[Duration]) -> Option<Duration> {
    let mut v = v.to_vec();
    v.sort();
    v.get(v.len() / 2).copied()
}

fn table_1(runner: &Runner, failures: &mut Vec<String>) {
    let args = runner.args;
    let case = |label, policy, work_us| Case {
        label,
        policy,
        work_us,
        fallback: None,
    };
    let cases = [
        case("(a) `Spill`, consumer keeps up", "spill", 0),
        case("(a') `Block`, consumer keeps up", "block", 0),
        case("(b) `Spill`, slow consumer", "spill", args.slow_us),
        case("(c) `Block`, slow consumer", "block", args.slow_us),
    ];
    let mut rows: Vec<Row> = cases
        .iter()
        .map(|c| {
            Row::new(if c.work_us > 0 {
                format!("{} ({} µs per message)", c.label, c.work_us)
            } else {
                format!("{} (no cost per message)", c.label)
            })
        })
        .collect();
    let mut file_rows = [
        (
            Row::new("(d) the limit: `File::write_all` of 1 MiB chunks, no sync".into()),
            Pattern::Chunks,
            false,
        ),
        (
            Row::new("(d') the same, then `sync_all`".into()),
            Pattern::Chunks,
            true,
        ),
        (
            Row::new(format!(
                "(e) for reference: one `write_all` per message ({} B header + {}; the spill's \
                 writer batches a segment's records into 1 MiB writes), no sync",
                RECORD_HEADER,
                bytes(args.size as u64)
            )),
            Pattern::Records { size: args.size },
            false,
        ),
    ];
    let total = args.messages * args.size as u64;
    for run in 0..args.runs {
        eprintln!("table 1, run {} of {}", run + 1, args.runs);
        for (case, row) in cases.iter().zip(rows.iter_mut()) {
            if !args.selected(case.policy) {
                continue;
            }
            // A failed run is counted and reported; the row's other runs
            // still run, so that a failure now and then does not hide the
            // figures (nor the failure the figures).
            match runner.run(*case) {
                Ok(Run {
                    problem: Some(p), ..
                })
                | Err(p) => {
                    failures.push(format!("table 1, {}: {p}", row.label));
                    row.failed.push(p);
                }
                Ok(r) => {
                    if let Some(check) = &r.check {
                        failures.push(format!("table 1, {}: {check}", row.label));
                    }
                    row.times.push(r.elapsed());
                    row.sends.push(r.server.send_time);
                    row.spilled.push(r.child.num("spilled"));
                    row.refused.push(r.child.num("spill_refused"));
                    row.checks.push(r.check);
                }
            }
        }
        for (row, pattern, sync) in file_rows.iter_mut() {
            match file_write(&runner.dir, total, *pattern, *sync) {
                Ok(d) => row.times.push(d),
                Err(e) => {
                    failures.push(format!("table 1, {}: {e}", row.label));
                    row.failed.push(e.to_string());
                }
            }
        }
    }

    println!("\n### Table 1: throughput of a flood through `Spill`\n");
    println!(
        "{:.1} MB of {} messages per row; best of {} run{} (median in brackets), the runs of \
         the rows interleaved. time: the consumer's, from the start of its connect to its last \
         message; MB/s: payload MB (10^6 B) over the best time. server send: the server's own, \
         from its first data write to the return of its last. Block ÷ Spill: the server's send \
         time under `Block` over that under `Spill` with the same consumer (best runs; medians \
         in brackets): how many times longer `Block` holds the server. spilled: messages \
         written to disk, fallback: times the spill refused a message and its fallback acted \
         (both for each run, in order). checks: every run delivered every message once and in \
         order (or the row fails); here, whether the buffer's counters added up after the \
         last message.  ",
        total as f64 / 1e6,
        bytes(args.size as u64),
        args.runs,
        if args.runs == 1 { "" } else { "s" },
    );
    println!(
        "The limit writes the same {:.1} MB to a file in the spill directory: without a sync \
         (what an ephemeral spill does: it never syncs, so the bytes may stay in the page \
         cache) and with `sync_all` before the clock stops.\n",
        total as f64 / 1e6
    );
    println!(
        "| row | time | MB/s | server send | server send, Block ÷ Spill | spilled | fallback \
         | checks |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---|");
    let fmt_time = |v: &[Duration]| match (best(v), median(v)) {
        (Some(b), Some(m)) => format!("{} ({})", dur(b), dur(m)),
        _ => "-".into(),
    };
    let mbps = |v: &[Duration]| {
        best(v).map_or("-".into(), |b| {
            format!("{:.0}", total as f64 / 1e6 / b.as_secs_f64())
        })
    };
    let ratio = |block: &Row, spill: &Row| match (
        best(&block.sends),
        best(&spill.sends),
        median(&block.sends),
        median(&spill.sends),
    ) {
        (Some(bb), Some(sb), Some(bm), Some(sm)) => format!(
            "{:.2}x ({:.2}x)",
            bb.as_secs_f64() / sb.as_secs_f64(),
            bm.as_secs_f64() / sm.as_secs_f64()
        ),
        _ => "-".into(),
    };
    let mut notes = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        for f in &row.failed {
            notes.push(format!("{}: a run failed: {f}", row.label));
        }
        if let Some(f) = row.failed.first().filter(|_| row.times.is_empty()) {
            println!(
                "| {} | FAILED: {} | | | | | | |",
                row.label,
                f.replace('|', "/")
            );
            continue;
        }
        if row.times.is_empty() {
            println!("| {} | not run (--only) | | | | | | |", row.label);
            continue;
        }
        let is_block = cases[i].policy == "block";
        let wrong: Vec<&String> = row.checks.iter().flatten().collect();
        for w in &wrong {
            notes.push(format!("{}: {w}", row.label));
        }
        let runs = row.times.len() + row.failed.len();
        let mut checks = Vec::new();
        if !row.failed.is_empty() {
            checks.push(format!(
                "**{} of {runs} runs failed** (below; figures of the others)",
                row.failed.len()
            ));
        }
        checks.push(if wrong.is_empty() {
            "counters add up".into()
        } else {
            format!(
                "**counters wrong in {} of {} runs** (below)",
                wrong.len(),
                row.checks.len()
            )
        });
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            row.label,
            fmt_time(&row.times),
            mbps(&row.times),
            fmt_time(&row.sends),
            if is_block {
                ratio(row, &rows[i - 1])
            } else {
                "1 (reference)".into()
            },
            if is_block {
                "-".into()
            } else {
                each(&row.spilled)
            },
            if is_block {
                "-".into()
            } else {
                each(&row.refused)
            },
            checks.join("; "),
        );
    }
    for (row, _, _) in &file_rows {
        if let Some(f) = row.failed.first() {
            println!(
                "| {} | FAILED: {} | | | | | | |",
                row.label,
                f.replace('|', "/")
            );
            continue;
        }
        println!(
            "| {} | {} | {} | - | - | - | - | - |",
            row.label,
            fmt_time(&row.times),
            mbps(&row.times),
        );
    }
    println!();
    // The ratios a reader wants first.
    let (spill_fast, block_fast, spill_slow) = (&rows[0], &rows[1], &rows[2]);
    let (file, records) = (&file_rows[0].0, &file_rows[2].0);
    let line = |what: &str, num: Option<Duration>, den: Option<Duration>| {
        if let (Some(n), Some(d)) = (num, den) {
            println!("- {what}: {:.2}x", n.as_secs_f64() / d.as_secs_f64());
        }
    };
    line(
        "throughput of (a) `Spill`, consumer keeps up / (d) the file write",
        best(&file.times),
        best(&spill_fast.times),
    );
    line(
        "throughput of (a) `Spill` / (a') `Block`, both with a consumer that keeps up",
        best(&block_fast.times),
        best(&spill_fast.times),
    );
    line(
        "the server's send rate under (b) `Spill` with the slow consumer / (d) the file write",
        best(&file.times),
        best(&spill_slow.sends),
    );
    line(
        "(e) one write per message / (d) 1 MiB writes, in throughput",
        best(&file.times),
        best(&records.times),
    );
    for n in notes {
        println!("- **{n}**");
    }
}

// ----- table 2 -------------------------------------------------------------

fn table_2(runner: &Runner, idle: Option<u64>, failures: &mut Vec<String>) {
    let args = runner.args;
    let spill_label = match args.fallback.as_str() {
        "block" => "`Spill`, fallback `Block`",
        "drop-newest" => "`Spill`, fallback `DropNewest`",
        _ => "`Spill`, fallback `Disconnect` (the default)",
    };
    let mut cases = vec![
        Case {
            label: spill_label,
            policy: "spill",
            work_us: args.far_us,
            fallback: None,
        },
        Case {
            label: "`Spill`, the default fallback (`Disconnect`)",
            policy: "spill",
            work_us: args.far_us,
            fallback: Some("disconnect"),
        },
        Case {
            label: "`Block`",
            policy: "block",
            work_us: args.far_us,
            fallback: None,
        },
    ];
    if args.fallback == "disconnect" {
        cases.remove(1);
    }
    cases.retain(|c| args.selected(c.policy));
    eprintln!("table 2");
    let mut runs = Vec::new();
    for case in cases {
        let run = runner.run(case);
        match &run {
            Ok(r) => {
                for p in r.problem.iter().chain(&r.check) {
                    failures.push(format!("table 2, {}: {p}", case.label));
                }
            }
            Err(e) => {
                eprintln!("FAIL {}: {e}", case.label);
                failures.push(format!("table 2, {}: {e}", case.label));
            }
        }
        runs.push((case, run));
    }
    let block_send = runs
        .iter()
        .find(|(c, _)| c.policy == "block")
        .and_then(|(_, r)| r.as_ref().ok())
        .filter(|r| r.problem.is_none())
        .map(|r| r.server.send_time);

    println!("\n### Table 2: against a consumer far slower than the feed\n");
    println!(
        "Issue 16's scenario: {:.1} MB of {} messages, the consumer paying {} µs per message \
         (at most {} messages/s, about {:.0} MB/s: far slower than the feed of table 1), one \
         run per policy, each consumer in its own child process.  ",
        args.messages as f64 * args.size as f64 / 1e6,
        bytes(args.size as u64),
        args.far_us,
        group(1_000_000 / args.far_us.max(1)),
        args.size as f64 / args.far_us.max(1) as f64,
    );
    println!(
        "in order: every message taken once, in the order sent, none missing (sequence numbers \
         checked). peak memory: the consumer process's VmHWM (an idle child of the same \
         binary: {}); the server is in the parent and kernel socket buffers are not counted. \
         ping round trip: the server writes a ping every {} ms (between two 64 KiB data \
         writes while sending, then on its own until the client closes) and times it from \
         writing it to reading its pong; the worst over the whole connection, then split \
         while sending / after. ping late: how long past its due time the server could write \
         a ping while sending (its data write was held by the client's backpressure); not in \
         the round trip. server send: from the first data write to the return of the last.  ",
        idle.map_or("?".into(), |k| bytes(k * 1024)),
        args.ping_ms,
    );
    println!(
        "Targets (issue 16, for `Spill`): every message in order; peak memory under {}; \
         every ping answered within {} ms; the server's send at least {}x as fast as under \
         `Block`.\n",
        bytes(TARGET_PEAK_KIB * 1024),
        TARGET_PING.as_millis(),
        TARGET_SEND_RATIO,
    );
    println!(
        "| policy | in order | peak memory (target < {}) | ping round trip, worst (target <= {} ms) \
         | … while sending / after | pongs / pings | ping late | server send (target: Spill \
         <= Block / {}) | consumer time | spilled / disk high water | fallback | counters |",
        bytes(TARGET_PEAK_KIB * 1024),
        TARGET_PING.as_millis(),
        TARGET_SEND_RATIO,
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    for (case, run) in &runs {
        let r = match run {
            Ok(r) => r,
            Err(e) => {
                println!(
                    "| {} | FAILED: {} | | | | | | | | | | |",
                    case.label,
                    e.replace('|', "/")
                );
                continue;
            }
        };
        let (c, s) = (&r.child, &r.server);
        let spill = case.policy == "spill";
        let verdict = |met: bool| {
            if !spill {
                ""
            } else if met {
                ": met"
            } else {
                ": **not met**"
            }
        };
        let peak = c.num("vmhwm_kib");
        let pings = s.pings[0] + s.pings[1];
        let pongs = s.pongs[0].count + s.pongs[1].count;
        // A ping written as the client's close crossed it may go
        // unanswered; any other missing pong fails the target.
        let ping_met = s.worst_round_trip() <= TARGET_PING && pongs + 1 >= pings;
        println!(
            "| {} | {} | {}{} | {}{} | {} / {} | {} / {} | {} | {}{} | {} | {} / {} | {} | {} |",
            case.label,
            match &r.problem {
                None => "yes".into(),
                Some(_) if c.num("taken") < args.messages => format!(
                    "**no**: the connection ended after {} of {} messages (see below)",
                    group(c.num("taken")),
                    group(args.messages)
                ),
                Some(p) => format!("**no**: {}", p.replace('|', "/")),
            },
            bytes(peak * 1024),
            verdict(peak < TARGET_PEAK_KIB),
            dur(s.worst_round_trip()),
            verdict(ping_met),
            worst_of(s.pongs[0]),
            worst_of(s.pongs[1]),
            pongs,
            pings,
            dur(s.worst_ping_late),
            dur(s.send_time),
            match (
                spill,
                block_send.map(|b| b.as_secs_f64() / s.send_time.as_secs_f64())
            ) {
                _ if r.problem.is_some() => format!(
                    " ({} of {} messages sent)",
                    group(s.sent),
                    group(args.messages)
                ),
                (true, Some(x)) => format!(
                    " (Block ÷ Spill = {x:.2}x{})",
                    verdict(x >= TARGET_SEND_RATIO)
                ),
                (true, None) => " (no Block run to compare)".into(),
                (false, _) => String::new(),
            },
            dur(r.elapsed()),
            group(c.num("spilled")),
            bytes(c.num("high_water_disk_bytes")),
            group(c.num("spill_refused")),
            if r.check.is_some() {
                "**wrong** (below)"
            } else if c.get("adds_up") == "true" {
                "add up"
            } else {
                "-"
            },
        );
    }
    println!();
    for (case, run) in &runs {
        if let Ok(r) = run {
            let c = &r.child;
            for p in r.problem.iter().chain(&r.check) {
                println!("- {}: **{p}**", case.label);
            }
            println!(
                "- {}: the reader was blocked {} in all; peak buffer in memory {}; the client's \
                 own ping delay (decode to pong written) at most {} over {} pings; spill write \
                 errors {}",
                case.label,
                dur(c.dur("blocked_ns")),
                bytes(c.num("high_water_bytes")),
                dur(c.dur("max_ping_delay_ns")),
                c.num("pings_answered"),
                c.num("spill_errors"),
            );
        }
    }
}

/// The worst round trip of a phase, `-` if no pong came in it.
fn worst_of(p: server::Pongs) -> String {
    if p.count == 0 {
        "-".into()
    } else {
        dur(p.worst)
    }
}

/// Figures of each run, in run order.
fn each(v: &[u64]) -> String {
    v.iter().map(|&n| group(n)).collect::<Vec<_>>().join(" · ")
}

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
