//! `bridge`: messages per second from a WebSocket feed through `floodgate
//! bridge` into NATS JetStream and Redis Streams, beside a plain publish
//! loop with the same client crate (the limit). Issue 19's benchmark; not
//! a timed test: ratios within one run.
//!
//! ```text
//! cargo run --release -p floodgate-bench --bin bridge -- \
//!     [--quick] [--messages N] [--sizes 128,1024] [--runs R] \
//!     [--floodgate PATH] [--brokers nats,redis] [--batch N] \
//!     [--timeout SECS] [--only-limit]
//! ```
//!
//! The bench starts its own brokers ([`brokers`]: `nats-server -js` and
//! `redis-server`, children on free loopback ports with temporary
//! directories, dying with it) and the feed ([`feed`]: the embedded
//! server, in this process, sending `N` numbered binary messages of the
//! run's size as fast as its socket takes them, then holding the
//! connection open). Per broker and size, two rows, each the median of `R`
//! runs (interleaved), each run on a stream or key of its own:
//!
//! 1. the plain publish loop ([`broker_client`]): `N` messages built
//!    beforehand, published with the sink's client crate (NATS: at most
//!    1,024 PubAcks outstanding, the oldest awaited before the next
//!    publish; Redis: pipelines of 1,024 `XADD`s, one after the other);
//!    the time from the first publish to the last ack. No WebSocket.
//! 2. `floodgate bridge FEED --to BROKER/...` as a child ([`child`]): the
//!    time from its start until the broker holds `N` messages (polled every
//!    2 ms), and the part of it until the first message was stored (its
//!    start-up); its peak resident set (VmHWM) just before it is stopped
//!    with SIGTERM.
//!
//! A missing broker binary ends the bench at once with a line saying how
//! to install it; a `floodgate` without the `bridge` command too, unless
//! `--only-limit`.
//!
//! After every run the stream is read back: it must hold each message of
//! the run exactly once (a loss hidden by a duplicate is caught too), else
//! the row says so and the bench exits with status 1.

mod broker_client;
mod brokers;
mod child;
mod feed;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use floodgate_bench::args::{command_line, or_exit, Parser};
use floodgate_bench::machine_line;
use floodgate_bench::table::{bytes, duration as dur, group};

use broker_client::{Client, Target};
use brokers::{Broker, Kind};

const USAGE: &str = "usage: bridge [--quick] [--messages N] [--sizes 128,1024] [--runs R]
              [--floodgate PATH] [--brokers nats,redis] [--batch N]
              [--timeout SECS] [--only-limit]

Messages per second from the embedded feed through `floodgate bridge` into
NATS JetStream and Redis Streams, beside a plain publish loop with the same
client crate (the limit), median of R runs. Starts its own nats-server -js
and redis-server on free loopback ports. Exits with status 1 if a run failed
or a broker did not end up holding every message exactly once.

  --quick       a smoke run: 2,000 messages, 1 run; other flags still apply
  --messages    messages per run (default 200000)
  --sizes       payload sizes in bytes, at least 8 (default 128,1024)
  --runs        runs per row, the median kept (default 3)
  --floodgate   the floodgate binary (default: floodgate beside this bench,
                target/release/floodgate)
  --brokers     which brokers (default nats,redis)
  --batch       the plain loops' window: NATS PubAcks outstanding at most,
                Redis XADDs per pipeline (default 1024, the bridge's batch)
  --timeout     longest a run may take, in seconds (default 120)
  --only-limit  the plain loops only, no bridge (while floodgate has no
                bridge command)";

#[derive(Clone, Debug)]
struct Args {
    quick: bool,
    messages: u64,
    sizes: Vec<usize>,
    runs: usize,
    floodgate: PathBuf,
    brokers: Vec<Kind>,
    batch: usize,
    timeout: Duration,
    only_limit: bool,
}

fn parse_args(argv: &[String]) -> Result<Args, String> {
    let mut a = Args {
        quick: false,
        messages: 200_000,
        sizes: vec![128, 1024],
        runs: 3,
        floodgate: child::default_floodgate(),
        brokers: vec![Kind::Nats, Kind::Redis],
        batch: 1024,
        timeout: Duration::from_secs(120),
        only_limit: false,
    };
    let (mut messages, mut runs) = (None, None);
    let mut p = Parser::new(argv.iter().cloned(), USAGE);
    while let Some(flag) = p.next_flag() {
        match flag.as_str() {
            "--quick" => {
                p.no_value()?;
                a.quick = true;
            }
            "--messages" => messages = Some(p.num()?),
            "--sizes" => a.sizes = p.sizes()?,
            "--runs" => runs = Some(p.num::<usize>()?.max(1)),
            "--floodgate" => a.floodgate = p.value()?.into(),
            "--brokers" => {
                a.brokers = p
                    .list()?
                    .iter()
                    .map(|b| Kind::parse(b))
                    .collect::<Result<_, _>>()?
            }
            "--batch" => a.batch = p.num()?,
            "--timeout" => a.timeout = Duration::from_secs(p.num()?),
            "--only-limit" => {
                p.no_value()?;
                a.only_limit = true;
            }
            _ => return Err(p.unknown()),
        }
    }
    a.messages = messages.unwrap_or(if a.quick { 2_000 } else { a.messages });
    a.runs = runs.unwrap_or(if a.quick { 1 } else { a.runs });
    if a.messages == 0 {
        return Err("--messages must be above 0".into());
    }
    if let Some(s) = a.sizes.iter().find(|&&s| s < 8) {
        return Err(format!(
            "--sizes: {s} is below 8 (each message carries its number)"
        ));
    }
    if a.batch == 0 {
        return Err("--batch must be above 0".into());
    }
    if a.brokers.is_empty() {
        return Err("--brokers: name at least one".into());
    }
    Ok(a)
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let args = or_exit(parse_args(&argv));
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
            eprintln!("bridge: {e}");
            ExitCode::FAILURE
        }
    }
}

/// One row of the table: a broker, a size, the plain loop or the bridge.
struct Row {
    broker: Kind,
    size: usize,
    bridge: bool,
    /// Each good run's time.
    times: Vec<Duration>,
    /// The bridge's peak resident set of each good run, in KiB.
    peaks: Vec<u64>,
    /// The bridge's start-up (first message stored) of each good run.
    firsts: Vec<Duration>,
    /// What went wrong, per failed run.
    failed: Vec<String>,
    /// The bridge did not end with success after SIGTERM (not a failure
    /// of the run: the figures stand).
    exits: Vec<String>,
}

impl Row {
    fn median(&self) -> Option<Duration> {
        median(&self.times)
    }
}

fn median(v: &[Duration]) -> Option<Duration> {
    let mut v = v.to_vec();
    v.sort();
    v.get(v.len() / 2).copied()
}

fn run(args: &Args, argv: &[String]) -> Result<Vec<String>, String> {
    // Everything that can be missing, before anything starts.
    for kind in &args.brokers {
        kind.program()?;
    }
    if !args.only_limit {
        child::check_floodgate(&args.floodgate)?;
    }
    let started = Instant::now();
    let rt = tokio::runtime::Builder::new_multi_thread()
        // As the bridge's runtime: two workers.
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a tokio runtime: {e}"))?;
    let feed = feed::start()?;
    let mut brokers = Vec::new();
    for &kind in &args.brokers {
        let broker = Broker::start(kind)?;
        let client = rt.block_on(Client::connect(&broker))?;
        brokers.push((broker, client));
    }

    println!("## Bridge into brokers (`bridge`, issue 19)\n");
    println!("{}", command_line("bridge", argv));
    println!("{}  ", machine_line());
    println!(
        "brokers: {} (JetStream, store in {}); {} (in memory: no snapshot, no AOF); each on \
         loopback, started by the bench.  ",
        Kind::Nats.version(),
        brokers
            .iter()
            .find(|(b, _)| b.kind == Kind::Nats)
            .map_or("-".into(), |(b, _)| b.dir().display().to_string()),
        Kind::Redis.version(),
    );
    println!(
        "{} messages per run; sizes {}; median of {} run{} per row, rows interleaved; bridge: \
         {}.\n",
        group(args.messages as f64),
        args.sizes
            .iter()
            .map(|&s| bytes(s as u64))
            .collect::<Vec<_>>()
            .join(", "),
        args.runs,
        if args.runs == 1 { "" } else { "s" },
        if args.only_limit {
            "not run (--only-limit)".to_string()
        } else {
            format!("`{}`", args.floodgate.display())
        },
    );

    let mut rows: Vec<Row> = Vec::new();
    for (broker, _) in &brokers {
        for &size in &args.sizes {
            for bridge in [false, true] {
                if bridge && args.only_limit {
                    continue;
                }
                rows.push(Row {
                    broker: broker.kind,
                    size,
                    bridge,
                    times: Vec::new(),
                    peaks: Vec::new(),
                    firsts: Vec::new(),
                    failed: Vec::new(),
                    exits: Vec::new(),
                });
            }
        }
    }
    let n = args.messages;
    for run in 0..args.runs {
        for row in rows.iter_mut() {
            let (broker, client) = brokers
                .iter_mut()
                .find(|(b, _)| b.kind == row.broker)
                .expect("a row's broker runs");
            let what = if row.bridge { "bridge" } else { "limit" };
            let target = Target::new(broker.kind, what, row.size, run);
            eprint!(
                "run {}/{}: {} {} {} ... ",
                run + 1,
                args.runs,
                broker.kind.label(),
                bytes(row.size as u64),
                what
            );
            let outcome = if row.bridge {
                let job = child::Job {
                    floodgate: &args.floodgate,
                    broker,
                    feed_url: feed::url(&feed, row.size, n),
                    target: &target,
                    n,
                    limit: args.timeout,
                };
                child::run(&rt, client, &job).map(|b| {
                    row.peaks.push(b.peak_kib);
                    row.firsts.push(b.first);
                    row.exits.extend(b.exit);
                    b.elapsed
                })
            } else {
                rt.block_on(async {
                    tokio::time::timeout(
                        args.timeout,
                        client.plain_loop(&target, row.size, n, args.batch),
                    )
                    .await
                    .unwrap_or_else(|_| Err(format!("not done within {:?}", args.timeout)))
                })
            };
            // Whatever happened, what the broker holds must be the run's
            // messages, each once.
            let checked = outcome.and_then(|elapsed| {
                rt.block_on(client.check(&target, row.size, n, args.timeout))
                    .map(|()| elapsed)
            });
            match checked {
                Ok(elapsed) => {
                    eprintln!(
                        "{} ({} messages/s)",
                        dur(elapsed),
                        group(n as f64 / elapsed.as_secs_f64())
                    );
                    row.times.push(elapsed);
                }
                Err(e) => {
                    eprintln!("FAILED: {e}");
                    row.failed.push(e);
                }
            }
            if let Err(e) = rt.block_on(client.remove(&target)) {
                eprintln!("  (could not remove {}: {e})", target.name);
            }
        }
    }

    let mut failures = Vec::new();
    println!(
        "| broker | size | row | messages/s (median of {}) | time per run | bridge ÷ plain loop \
         | bridge start-up | bridge peak RSS | check |",
        args.runs
    );
    println!("|---|---:|---|---:|---|---:|---:|---:|---|");
    for row in &rows {
        let label = if row.bridge {
            "`floodgate bridge`"
        } else {
            "plain publish loop (the limit)"
        };
        for f in &row.failed {
            failures.push(format!(
                "{} {} {label}: {f}",
                row.broker.label(),
                bytes(row.size as u64)
            ));
        }
        let rate = |d: Duration| n as f64 / d.as_secs_f64();
        let limit = rows
            .iter()
            .find(|r| r.broker == row.broker && r.size == row.size && !r.bridge)
            .and_then(Row::median);
        let ratio = match (row.bridge, row.median(), limit) {
            (false, Some(_), _) => "1 (reference)".into(),
            (true, Some(m), Some(l)) => format!("{:.2}x", rate(m) / rate(l)),
            _ => "-".into(),
        };
        let check = if row.failed.is_empty() {
            format!(
                "{} stored, each once ({} of {} runs)",
                group(n as f64),
                row.times.len(),
                args.runs
            )
        } else {
            format!(
                "**{} of {} runs FAILED** (below)",
                row.failed.len(),
                args.runs
            )
        };
        println!(
            "| {} | {} | {label} | {} | {} | {ratio} | {} | {} | {check} |",
            row.broker.label(),
            bytes(row.size as u64),
            row.median().map_or("-".into(), |m| group(rate(m))),
            if row.times.is_empty() {
                "-".into()
            } else {
                row.times
                    .iter()
                    .map(|&t| dur(t))
                    .collect::<Vec<_>>()
                    .join(" · ")
            },
            match median(&row.firsts) {
                Some(f) if row.bridge => dur(f),
                _ => "-".into(),
            },
            match row.peaks.iter().max() {
                Some(&k) if row.bridge => bytes(k * 1024),
                _ => "-".into(),
            },
        );
    }
    println!();
    println!(
        "plain loop: {} pre-built messages (NATS: `send_publish` with a `Nats-Msg-Id` header \
         as the sink sends, at most {} PubAcks outstanding, the oldest awaited before the next \
         publish; Redis: pipelines of {} `XADD KEY * data PAYLOAD`, one after the other), from \
         the first publish to the last ack; the NATS stream \
         (file storage, as the bridge creates one) is made before the clock starts. bridge: \
         from the child's start (process start, broker connection, stream creation, WebSocket \
         handshake included) until the broker holds every message, polled every {} ms; start-up: \
         from the child's start until the broker held its first message (median; part of the \
         time); peak RSS: the child's VmHWM then, the largest of the runs. check: each run's stream read \
         back whole (NATS: a pull consumer; Redis: XRANGE): every message of the run exactly \
         once.",
        group(n as f64),
        group(args.batch as f64),
        group(args.batch as f64),
        child::POLL.as_millis(),
    );
    for row in &rows {
        for f in &row.failed {
            println!(
                "- {} {} {}: **{f}**",
                row.broker.label(),
                bytes(row.size as u64),
                if row.bridge { "bridge" } else { "plain loop" }
            );
        }
        for e in &row.exits {
            println!(
                "- {} {} bridge: after SIGTERM it ended with {e}",
                row.broker.label(),
                bytes(row.size as u64)
            );
        }
    }
    println!(
        "\nwhole run: {}; load average at end: {}",
        dur(started.elapsed()),
        floodgate_bench::load_average()
    );
    drop(brokers);
    Ok(failures)
}
