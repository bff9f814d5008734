//! `floodgate demo`: the high-load scenario of the design, needing nothing
//! else. A feed server in this process publishes numbered messages on
//! several channels faster than a deliberately slow consumer handles them
//! (it sleeps `--work` per message and stalls `--pause` every
//! `--pause-every`, like a handler with occasional hiccups), and it runs for a few
//! seconds under each overflow policy in turn, on a fresh connection each
//! time. A live line shows the rate, the buffer's depth and bytes, the
//! drops by reason and the worst ping round trip while it runs; a closing
//! table compares the policies (`--json`: the same as a JSON array, one
//! object per policy with the buffer's stats under the design's counter
//! names).
//!
//! What it shows (the guide, `docs/backpressure.md`, explains why):
//! `block` loses nothing but slows the feed down to the consumer's pace,
//! and the server's pings wait behind the data; the shedding policies keep
//! up with the feed, bound the buffer and answer pings at once, each
//! losing a different part; `disconnect` ends the connection with 1008 as
//! soon as the consumer falls behind; `spill` keeps the same memory limit
//! and puts the rest on disk (an ephemeral spill in a directory of its own
//! under the system's temporary directory, removed after the run), so it
//! loses nothing without slowing the feed. Its row is the one row whose
//! claim is checked to the end: when the time is up the consumer closes
//! and then takes everything still spilled, checking the feed's numbers
//! (every message, in order, none missing).

use crate::error::CliError;
use crate::memory;
use crate::report::{micros, stats_json};
use crate::table::Table;
use crate::units::{self, show, show_bytes, show_count};
use floodgate::buffer::{BufferConfig, Conflate, Key, Overflow, Shed, SpillConfig, Stats};
use floodgate::{BufferedWebSocket, Client, ErrorKind};
use floodgate_server::feed::{Feed, FeedConfig, FeedLive, FeedMessage, FeedReport};
use floodgate_server::Server;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The policies the demo compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DemoPolicy {
    /// Block: lossless, TCP slows the feed.
    Block,
    /// Block for at most 50 ms, then drop the oldest.
    BlockFor,
    /// Drop the oldest buffered message.
    DropOldest,
    /// Drop the arriving message.
    DropNewest,
    /// Keep the latest message of each channel.
    Conflate,
    /// Close with 1008 when the buffer is full.
    Disconnect,
    /// Past the buffer's limits, spill to disk (a temporary directory).
    Spill,
}

impl DemoPolicy {
    const ALL: [DemoPolicy; 7] = [
        DemoPolicy::Block,
        DemoPolicy::BlockFor,
        DemoPolicy::DropOldest,
        DemoPolicy::DropNewest,
        DemoPolicy::Conflate,
        DemoPolicy::Disconnect,
        DemoPolicy::Spill,
    ];

    fn name(self) -> &'static str {
        match self {
            DemoPolicy::Block => "block",
            DemoPolicy::BlockFor => "block-for",
            DemoPolicy::DropOldest => "drop-oldest",
            DemoPolicy::DropNewest => "drop-newest",
            DemoPolicy::Conflate => "conflate",
            DemoPolicy::Disconnect => "disconnect",
            DemoPolicy::Spill => "spill",
        }
    }

    /// The policy's `Overflow`; `spill_dir` is where `Spill` spills.
    fn overflow(self, spill_dir: &Path) -> Overflow {
        match self {
            DemoPolicy::Block => Overflow::Block,
            DemoPolicy::BlockFor => Overflow::BlockFor(Duration::from_millis(50), Shed::DropOldest),
            DemoPolicy::DropOldest => Overflow::DropOldest,
            DemoPolicy::DropNewest => Overflow::DropNewest,
            DemoPolicy::Conflate => Overflow::Conflate(Conflate::by(|m| {
                // The feed's `/channel`, read without a JSON parse: the key
                // function runs on the reader thread for every message.
                FeedMessage::parse(m.as_text()?).map(|f| Key::from(u64::from(f.channel)))
            })),
            DemoPolicy::Disconnect => Overflow::Disconnect,
            // Ephemeral, the default budget (1 GiB) and fallback
            // (disconnect): a 3 s run of the default feed takes ~8 MiB.
            DemoPolicy::Spill => Overflow::Spill(SpillConfig::new(spill_dir)),
        }
    }
}

/// The spill row's directory: made for the run under the system's
/// temporary directory, removed with everything in it when dropped (the
/// spill itself, ephemeral, removes its own private directory in it).
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<TempDir, CliError> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path =
            std::env::temp_dir().join(format!("floodgate-demo-{}-{nanos:09}", std::process::id()));
        std::fs::create_dir(&path).map_err(|e| {
            CliError::Other(format!(
                "the spill row could not create its directory {}: {e}",
                path.display()
            ))
        })?;
        Ok(TempDir(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            tracing::warn!(dir = %self.0.display(), error = %e, "the demo's spill directory could not be removed");
        }
    }
}

/// The feed's message numbers as the consumer saw them: every message
/// once, in order, from 0.
#[derive(Debug, Default)]
struct Order {
    /// The number the next message should carry.
    next: u64,
    /// Messages whose number was not the next one (a gap or a
    /// reordering), or that were not feed messages.
    wrong: u64,
}

impl Order {
    fn see(&mut self, message: &floodgate::buffer::Delivered) {
        match message.as_text().and_then(FeedMessage::parse) {
            Some(m) if m.n == self.next => self.next += 1,
            Some(m) => {
                self.wrong += 1;
                self.next = m.n + 1;
            }
            None => self.wrong += 1,
        }
    }
}

/// The spill row after its time: the consumer closed, then took what was
/// still buffered (on disk) at full speed.
struct Drain {
    /// The stats once everything was taken.
    stats: Stats,
    /// How long taking the rest took.
    took: Duration,
    /// Every message the consumer took, during the run and the drain,
    /// carried the next number of the feed (nothing missing, nothing out
    /// of order).
    in_order: bool,
}

/// Options of `floodgate demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// How long each policy runs.
    #[arg(long, value_name = "DURATION", value_parser = units::duration, default_value = "3s")]
    pub duration: Duration,
    /// The feed's rate, in messages per second.
    #[arg(long, value_name = "N", default_value_t = 20_000.0)]
    pub rate: f64,
    /// The feed's channels.
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub channels: u32,
    /// The size of each message.
    #[arg(long, value_name = "SIZE", value_parser = units::size, default_value = "128")]
    pub size: usize,
    /// How long the consumer takes per message (the slow handler).
    #[arg(long, value_name = "DURATION", value_parser = units::duration, default_value = "200us")]
    pub work: Duration,
    /// The consumer also stalls this long (a pause in the handler) ...
    #[arg(long, value_name = "DURATION", value_parser = units::duration, default_value = "100ms")]
    pub pause: Duration,
    /// ... this often (0: never).
    #[arg(long, value_name = "DURATION", value_parser = units::duration, default_value = "1s")]
    pub pause_every: Duration,
    /// The buffer's message limit.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub max_messages: usize,
    /// How often the feed pings the consumer.
    #[arg(long, value_name = "DURATION", value_parser = units::duration, default_value = "100ms")]
    pub ping_interval: Duration,
    /// Run only these policies (comma-separated; default: all).
    #[arg(long, value_enum, value_delimiter = ',', value_name = "POLICY")]
    pub policies: Vec<DemoPolicy>,
    /// Print the closing table as JSON (one object per policy) on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Kernel socket buffers of both ends, kept small so that the backlog
/// shows in floodgate's buffer and in the feed's writes rather than
/// hiding in the kernel (the point of the demo).
const SOCKET_BUFFER: usize = 64 << 10;

/// What one policy's run gave.
struct Run {
    policy: DemoPolicy,
    ran: Duration,
    stats: Stats,
    feed: Option<FeedReport>,
    peak_memory: Option<u64>,
    end: String,
    /// `spill` only.
    drain: Option<Drain>,
}

/// Runs `floodgate demo`.
pub fn run(args: DemoArgs) -> Result<(), CliError> {
    if !(args.rate > 0.0 && args.rate.is_finite()) {
        return Err(CliError::Usage(
            "--rate must be above 0 messages per second".into(),
        ));
    }
    if args.channels == 0 || args.max_messages == 0 || args.duration.is_zero() {
        return Err(CliError::Usage(
            "--channels, --max-messages and --duration must be above zero".into(),
        ));
    }
    let policies = if args.policies.is_empty() {
        DemoPolicy::ALL.to_vec()
    } else {
        args.policies.clone()
    };
    let peak_per_run = memory::reset_peak();
    if !args.json {
        eprintln!(
            "floodgate demo: a feed of {} messages/s ({} B, {} channels) against a consumer \
             that takes {} per message (at most ~{}/s) and stalls {} every {}, {} per policy, \
             buffer of {} messages",
            show_count(args.rate as u64),
            args.size,
            args.channels,
            show(args.work),
            show_count((1.0 / args.work.as_secs_f64().max(1e-9)) as u64),
            show(args.pause),
            show(args.pause_every),
            show(args.duration),
            show_count(args.max_messages as u64),
        );
    }
    let mut runs = Vec::new();
    for policy in policies {
        runs.push(run_policy(policy, &args)?);
    }
    if args.json {
        let array: Vec<_> = runs.iter().map(run_json).collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&array).unwrap_or_default()
        );
    } else {
        print!("{}", table(&runs, peak_per_run).render());
        println!();
        for line in reading(&runs, &args) {
            println!("{line}");
        }
    }
    Ok(())
}

fn run_policy(policy: DemoPolicy, args: &DemoArgs) -> Result<Run, CliError> {
    let (reports, report) = mpsc::channel();
    let feed = Feed::new(FeedConfig {
        channels: args.channels,
        rate: Some(args.rate),
        size: args.size,
        count: None,
        ping_interval: Some(args.ping_interval),
        send_buffer_size: Some(SOCKET_BUFFER),
    })
    .on_report(move |r| {
        let _ = reports.send(r);
    });
    let live = feed.live();
    let server = Server::bind("127.0.0.1:0", feed.handler())?;
    let spill_dir = match policy {
        DemoPolicy::Spill => Some(TempDir::new()?),
        _ => None,
    };
    memory::reset_peak();
    let buffer = BufferConfig::new()
        .max_messages(args.max_messages)
        .max_bytes(64 << 20)
        .overflow(policy.overflow(spill_dir.as_ref().map_or(Path::new(""), |d| &d.0)));
    let mut conn = Client::builder()
        .recv_buffer_size(SOCKET_BUFFER)
        .buffer(buffer)
        .connect_buffered(&server.url())?;

    let bar = progress_bar(policy, args);
    let started = Instant::now();
    let deadline = started + args.duration;
    let mut shown = started;
    let mut next_pause = (!args.pause_every.is_zero()).then(|| started + args.pause_every);
    let mut ended = None;
    let mut order = (policy == DemoPolicy::Spill).then(Order::default);
    while Instant::now() < deadline {
        if let Some(at) = next_pause.filter(|at| Instant::now() >= *at) {
            std::thread::sleep(args.pause);
            next_pause = Some(at + args.pause_every);
        }
        match conn.recv_timeout(Duration::from_millis(50)) {
            Ok(message) => {
                if let Some(order) = &mut order {
                    order.see(&message);
                }
                std::hint::black_box(&message);
                std::thread::sleep(args.work);
            }
            Err(e) if e.is_timeout() => {}
            Err(e) => {
                ended = Some(e);
                break;
            }
        }
        if shown.elapsed() >= Duration::from_millis(100) {
            shown = Instant::now();
            bar.set_message(live_line(&conn, &live, args, started));
        }
    }
    let ran = started.elapsed();
    // The figures of the run itself: once the consumer closes, the reader
    // stops waiting for room and drops what is still arriving (counted as
    // dropped_newest), which would blur the comparison.
    let running = conn.stats();
    let end = match ended {
        Some(e) => describe_end(&e),
        None if conn.is_open() => match conn.close(1000, "demo over") {
            Ok(()) => "closed (1000)".to_owned(),
            Err(e) => format!("close failed: {e}"),
        },
        // It ended while the consumer was still working through what was
        // buffered before the end: the end is behind those messages.
        None => loop {
            match conn.try_recv() {
                Ok(Some(message)) => {
                    if let Some(order) = &mut order {
                        order.see(&message);
                    }
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(1)),
                Err(e) => break describe_end(&e),
            }
        },
    };
    let stats = running;
    // Spill: everything the feed sent is in the buffer, most of it on
    // disk; take it all and check it.
    let drain = order.map(|mut order| {
        let start = Instant::now();
        // Until the end (the close above was answered) or an error.
        while let Ok(message) = conn.recv_timeout(Duration::from_secs(10)) {
            order.see(&message);
        }
        let stats = conn.stats();
        Drain {
            in_order: order.wrong == 0 && order.next == stats.delivered,
            stats,
            took: start.elapsed(),
        }
    });
    drop(conn);
    drop(spill_dir);
    let feed = report.recv_timeout(Duration::from_secs(10)).ok();
    let peak_memory = memory::peak_rss();
    bar.finish_and_clear();
    drop(server);
    if !args.json && bar.is_hidden() {
        eprintln!(
            "  {:<12} done: {} delivered, {end}",
            policy.name(),
            show_count(stats.delivered)
        );
    }
    Ok(Run {
        policy,
        ran,
        stats,
        feed,
        peak_memory,
        end,
        drain,
    })
}

fn describe_end(e: &floodgate::Error) -> String {
    match e.kind() {
        ErrorKind::Buffer(_) => "fell behind: closed (1008)".to_owned(),
        ErrorKind::ConnectionClosed(Some(frame)) => format!("server closed ({frame})"),
        _ => format!("ended: {e}"),
    }
}

fn progress_bar(policy: DemoPolicy, args: &DemoArgs) -> ProgressBar {
    if args.json {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {prefix:<12} {elapsed:>3} {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_prefix(policy.name());
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

fn live_line(
    conn: &BufferedWebSocket,
    live: &FeedLive,
    args: &DemoArgs,
    started: Instant,
) -> String {
    let s = conn.stats();
    let secs = started.elapsed().as_secs_f64().max(1e-3);
    if s.spilled > 0 || s.buffered_disk > 0 {
        return format!(
            "{}/s delivered | memory {}/{} msgs | disk {} msgs {} | dropped {} | ping rtt worst {} | feed {}/s",
            show_count((s.delivered as f64 / secs) as u64),
            show_count(s.buffered - s.buffered_disk),
            show_count(args.max_messages as u64),
            show_count(s.buffered_disk),
            show_bytes(s.disk_bytes),
            show_count(s.dropped_oldest + s.dropped_newest),
            show(live.worst_ping_rtt()),
            show_count((live.sent() as f64 / secs) as u64),
        );
    }
    format!(
        "{}/s delivered | buffer {}/{} msgs {} | dropped {} old {} new | conflated {} | ping rtt worst {} | feed {}/s",
        show_count((s.delivered as f64 / secs) as u64),
        show_count(s.buffered),
        show_count(args.max_messages as u64),
        show_bytes(s.buffered_bytes),
        show_count(s.dropped_oldest),
        show_count(s.dropped_newest),
        show_count(s.conflated),
        show(live.worst_ping_rtt()),
        show_count((live.sent() as f64 / secs) as u64),
    )
}

fn run_json(run: &Run) -> serde_json::Value {
    let mut object = json!({ "policy": run.policy.name(), "seconds": run.ran.as_secs_f64() });
    let spill = run.policy == DemoPolicy::Spill;
    if let (Some(map), serde_json::Value::Object(stats)) =
        (object.as_object_mut(), stats_json(&run.stats, spill))
    {
        map.extend(stats);
    }
    object["peak_memory_bytes"] = json!(run.peak_memory);
    if let Some(feed) = &run.feed {
        object["feed_sent"] = json!(feed.sent);
        object["feed_write_time_us"] = json!(micros(feed.write_time));
        object["feed_max_behind_us"] = json!(micros(feed.max_behind));
        object["pings_sent"] = json!(feed.pings_sent);
        object["pongs"] = json!(feed.pongs);
        object["worst_ping_rtt_us"] = json!(feed.worst_ping_rtt.map(micros));
    }
    object["end"] = json!(run.end);
    if let Some(drain) = &run.drain {
        let d = &drain.stats;
        object["drained_delivered"] = json!(d.delivered);
        object["drained_dropped"] = json!(d.dropped_oldest + d.dropped_newest);
        object["drained_spilled"] = json!(d.spilled);
        object["drained_spill_refused"] = json!(d.spill_refused);
        object["drain_seconds"] = json!(drain.took.as_secs_f64());
        object["in_order"] = json!(drain.in_order);
    }
    object
}

fn table(runs: &[Run], peak_per_run: bool) -> Table {
    let memory = if peak_per_run {
        "peak memory"
    } else {
        "peak memory (process)"
    };
    let mut t = Table::new([
        "policy",
        "delivered",
        "dropped old/new",
        "conflated",
        "peak buffer",
        memory,
        "wait p50 / p99",
        "worst ping rtt",
        "feed sent/s",
        "end",
    ]);
    for run in runs {
        let s = &run.stats;
        let (rtt, feed_rate) = match &run.feed {
            Some(feed) => (
                feed.worst_ping_rtt.map_or_else(|| "-".to_owned(), show),
                show_count((feed.sent as f64 / run.ran.as_secs_f64().max(1e-3)) as u64),
            ),
            None => ("-".to_owned(), "-".to_owned()),
        };
        t.row([
            run.policy.name().to_owned(),
            show_count(s.delivered),
            format!(
                "{} / {}",
                show_count(s.dropped_oldest),
                show_count(s.dropped_newest)
            ),
            show_count(s.conflated),
            if run.policy == DemoPolicy::Spill {
                format!(
                    "{} msgs / {} + {} disk",
                    show_count(s.high_water_messages),
                    show_bytes(s.high_water_bytes),
                    show_bytes(s.high_water_disk_bytes)
                )
            } else {
                format!(
                    "{} msgs / {}",
                    show_count(s.high_water_messages),
                    show_bytes(s.high_water_bytes)
                )
            },
            run.peak_memory.map_or_else(|| "-".to_owned(), show_bytes),
            format!("{} / {}", show(s.queue_wait.p50), show(s.queue_wait.p99)),
            rtt,
            feed_rate,
            run.end.clone(),
        ]);
    }
    t
}

/// The spill row's line: what its figures say, whatever they are.
fn spill_reading(run: &Run, args: &DemoArgs, feed_rate: u64, rtt: &str) -> String {
    let s = &run.stats;
    let dropped = s.dropped_oldest + s.dropped_newest;
    let mut line = format!(
        "- spill: the feed ran at {}/s (of the {}/s offered) and pings were answered while the \
         consumer lagged (worst {rtt}); memory held at most {} messages, {} went to disk (at \
         most {} on disk at once), {} dropped, {} refused by the spill",
        show_count(feed_rate),
        show_count(args.rate as u64),
        show_count(s.high_water_messages),
        show_count(s.spilled),
        show_bytes(s.high_water_disk_bytes),
        show_count(dropped),
        show_count(s.spill_refused),
    );
    match &run.drain {
        Some(d) => {
            let sent = run.feed.as_ref().map(|f| f.sent);
            let all = d.stats.dropped_oldest + d.stats.dropped_newest == 0
                && d.in_order
                && sent.is_some_and(|sent| d.stats.delivered >= sent);
            line.push_str(&format!(
                ". When its time was up the consumer closed and took the rest at full speed in {}: \
                 {} delivered in all{}, {}.",
                show(d.took),
                show_count(d.stats.delivered),
                sent.map_or_else(String::new, |sent| format!(
                    " of the {} the feed sent",
                    show_count(sent)
                )),
                if all {
                    "every one in order, nothing lost".to_owned()
                } else if d.in_order {
                    format!(
                        "in order, but {} dropped",
                        show_count(d.stats.dropped_oldest + d.stats.dropped_newest)
                    )
                } else {
                    "NOT all in order: a gap or a reordering was seen".to_owned()
                }
            ));
        }
        None => line.push('.'),
    }
    line
}

/// A few lines that read the table for the user, from its own figures.
fn reading(runs: &[Run], args: &DemoArgs) -> Vec<String> {
    let mut lines = vec![format!(
        "The feed offered {}/s; every row is one connection of {}. Counters add up: \
         received = delivered + buffered + dropped + conflated + filtered.",
        show_count(args.rate as u64),
        show(args.duration)
    )];
    for run in runs {
        let s = &run.stats;
        let rtt = run
            .feed
            .as_ref()
            .and_then(|f| f.worst_ping_rtt)
            .map_or_else(|| "-".to_owned(), show);
        let feed_rate = run.feed.as_ref().map_or(0, |f| {
            (f.sent as f64 / run.ran.as_secs_f64().max(1e-3)) as u64
        });
        let line = match run.policy {
            DemoPolicy::Block => format!(
                "- block: nothing lost ({} received, {} delivered, {} still buffered); the feed was \
                 slowed to {}/s and its pings waited behind the data (worst {rtt}).",
                show_count(s.received),
                show_count(s.delivered),
                show_count(s.buffered),
                show_count(feed_rate)
            ),
            DemoPolicy::BlockFor => format!(
                "- block-for: like block while the consumer makes room within 50 ms (blocked {} \
                 in all); during its {} stalls it dropped the oldest ({}).",
                show(s.blocked),
                show(args.pause),
                show_count(s.dropped_oldest)
            ),
            DemoPolicy::DropOldest => format!(
                "- drop-oldest: kept up with the feed ({}/s) and kept the freshest messages; \
                 {} old ones dropped; pings answered at once (worst {rtt}).",
                show_count(feed_rate),
                show_count(s.dropped_oldest)
            ),
            DemoPolicy::DropNewest => format!(
                "- drop-newest: kept what it had and dropped {} arrivals; what it delivers \
                 is old (wait p50 {}).",
                show_count(s.dropped_newest),
                show(s.queue_wait.p50)
            ),
            DemoPolicy::Conflate => format!(
                "- conflate: at most one message per channel waited ({} at most), {} replaced by \
                 newer ones: the latest value of every channel, with little lag (wait p99 {}).",
                show_count(s.high_water_messages),
                show_count(s.conflated),
                show(s.queue_wait.p99)
            ),
            DemoPolicy::Disconnect => format!(
                "- disconnect: the buffer filled after {} messages and the connection was closed \
                 with 1008; the consumer still got the {} it had buffered, then the error, {} \
                 after the start.",
                show_count(s.received),
                show_count(s.delivered),
                show(run.ran)
            ),
            DemoPolicy::Spill => spill_reading(run, args, feed_rate, &rtt),
        };
        lines.push(line);
    }
    lines
}
