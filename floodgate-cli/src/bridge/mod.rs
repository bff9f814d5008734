//! `floodgate bridge`: feeds into a broker (NATS JetStream, Redis Streams)
//! or JSON lines (a file, stdout), with backpressure from end to end.
//!
//! Why a command of its own: when handling cannot keep up with a feed on
//! one machine, the answer that scales is to receive in one small process
//! that never falls behind and to hand the messages to a broker that many
//! consumers share. This is that process: each feed is a buffered
//! connection (the reader answers pings and applies the feed's overflow
//! policy, `--policy spill` included) and a task that publishes batches to
//! the sink and lets a batch go only once the sink acknowledged it (see
//! [`feed`]).
//!
//! Start-up is all or nothing: the options and the config file are checked,
//! then every sink is made (a broker that cannot be reached ends the
//! command within [`START_LIMIT`] with one line naming it), then every feed
//! connects once (as `connect`, a first connection that fails ends the
//! command). Only then does anything get published.
//!
//! Shutdown (SIGTERM, Ctrl-C): a close is sent on every connection, what
//! is buffered (and what the server sent before answering the close) is
//! published within `--drain-timeout`, and one line per feed says what was
//! published and what remained (and where). A second signal stops the
//! drain at once.

mod carry;
mod config;
mod dest;
mod error;
mod feed;

pub use error::BridgeError;

use crate::connect::{build_client, DialArgs};
use crate::policy::BufferArgs;
use crate::units;
use config::FeedSpec;
use dest::{Dest, SharedSink};
use feed::{Feed, Figures};
use floodgate::reconnect::Backoff;
use floodgate::sink::RunId;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Every sink is made (every broker reached) within this, or the command
/// ends.
pub const START_LIMIT: Duration = Duration::from_secs(10);

/// `--drain-timeout` when none is given.
const DEFAULT_DRAIN: Duration = Duration::from_secs(10);

/// Options of `floodgate bridge`.
#[derive(Debug, clap::Args)]
pub struct BridgeArgs {
    /// The feed's URL, ws://host:port/path or wss://host:port/path (or
    /// --config FILE for many feeds).
    #[arg(required_unless_present = "config")]
    pub url: Option<String>,
    /// Where the messages go: nats://[USER:PASS@]HOST:PORT/SUBJECT (a
    /// JetStream stream), redis://[USER:PASS@]HOST:PORT/KEY (a Redis
    /// stream), file:PATH or - (JSON lines, one per message; - is stdout,
    /// the default).
    #[arg(
        long,
        value_name = "DEST",
        conflicts_with = "config",
        help_heading = "Bridge"
    )]
    pub to: Option<String>,
    /// nats://: publish into this stream (created if missing). Default:
    /// the stream that captures the subject, or one created and named
    /// after it.
    #[arg(
        long,
        value_name = "NAME",
        conflicts_with = "config",
        help_heading = "Bridge"
    )]
    pub stream: Option<String>,
    /// redis://: trim the stream to about N entries (XADD MAXLEN ~ N).
    #[arg(
        long,
        value_name = "N",
        conflicts_with = "config",
        help_heading = "Bridge"
    )]
    pub maxlen: Option<u64>,
    /// The feed's name in the lines printed and the metrics' feed label
    /// (default: the URL).
    #[arg(
        long,
        value_name = "NAME",
        conflicts_with = "config",
        help_heading = "Bridge"
    )]
    pub name: Option<String>,
    /// Many feeds from a TOML file, one [[feed]] table each (url, to,
    /// headers, subscribe, policy, ...; see docs/cli.md); the options
    /// given here are every feed's defaults.
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with = "url",
        help_heading = "Bridge"
    )]
    pub config: Option<PathBuf>,
    /// At SIGTERM or Ctrl-C: how long to go on publishing what is
    /// buffered before giving up on it [default: 10s].
    #[arg(long, value_name = "DURATION", value_parser = units::duration, help_heading = "Bridge")]
    pub drain_timeout: Option<Duration>,
    /// At the end, print per feed the --stats object of connect, with
    /// feed, published and sink_errors, one JSON line each on stderr.
    #[arg(long, help_heading = "Bridge")]
    pub stats: bool,
    /// Serve every feed's figures, and the sinks' (published, errors,
    /// publish latency), as Prometheus text at http://ADDR/metrics, label
    /// feed=<name>; port 0: any free one, printed on stderr.
    #[arg(long, value_name = "ADDR", help_heading = "Bridge")]
    pub metrics: Option<String>,

    #[command(flatten)]
    pub dial: DialArgs,
    #[command(flatten)]
    pub buffer: BufferArgs,
}

/// The checked plan: what will run.
struct Plan {
    feeds: Vec<FeedSpec>,
    stats: bool,
    metrics: Option<String>,
    drain_timeout: Duration,
}

/// Runs `floodgate bridge`.
///
/// # Errors
///
/// See [`BridgeError`]; every error is one line.
pub fn run(args: BridgeArgs) -> Result<(), BridgeError> {
    let plan = plan(args)?;
    // Built after the checks: nothing runs for a bad command line.
    let clients = plan
        .feeds
        .iter()
        .map(client_for)
        .collect::<Result<Vec<_>, _>>()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let result = runtime.block_on(bridge(plan, clients));
    // A task stuck in a write to a broker must not hold the exit.
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

fn plan(args: BridgeArgs) -> Result<Plan, BridgeError> {
    if let Some(path) = &args.config {
        let config = config::load(path, &args.dial, &args.buffer)?;
        return Ok(Plan {
            feeds: config.feeds,
            stats: args.stats || config.stats,
            metrics: args.metrics.or(config.metrics),
            drain_timeout: args
                .drain_timeout
                .or(config.drain_timeout)
                .unwrap_or(DEFAULT_DRAIN),
        });
    }
    // clap requires the URL without --config.
    let url = args.url.unwrap_or_default();
    let name = args.name.unwrap_or_else(|| url.clone());
    let to = args.to.unwrap_or_else(|| "-".into());
    let dest = Dest::parse(&to, args.stream.as_deref(), args.maxlen).map_err(|reason| {
        BridgeError::Dest {
            feed: name.clone(),
            dest: to.clone(),
            reason,
        }
    })?;
    Ok(Plan {
        feeds: vec![FeedSpec {
            name,
            url,
            dial: args.dial,
            buffer: args.buffer,
            dest,
            origin: None,
        }],
        stats: args.stats,
        metrics: args.metrics,
        drain_timeout: args.drain_timeout.unwrap_or(DEFAULT_DRAIN),
    })
}

/// The feed's client; an option that does not fit is reported where it
/// was given (the flag, or the file's feed and field).
fn client_for(feed: &FeedSpec) -> Result<floodgate::Client, BridgeError> {
    build_client(&feed.dial, &feed.buffer).map_err(|e| match &feed.origin {
        Some((file, place)) => BridgeError::Config {
            file: file.clone(),
            place: place.clone(),
            message: config::as_fields(&e.to_string()),
        },
        None => BridgeError::Cli(e),
    })
}

async fn bridge(plan: Plan, clients: Vec<floodgate::Client>) -> Result<(), BridgeError> {
    let mut signals = Signals::new()?;
    let figures: Vec<Arc<Figures>> = plan
        .feeds
        .iter()
        .map(|feed| {
            let durable = feed
                .buffer
                .durable
                .then(|| feed.buffer.spill_dir.clone())
                .flatten();
            Arc::new(Figures::new(
                feed.name.clone(),
                feed.buffer.spills(),
                durable,
            ))
        })
        .collect();
    if let Some(addr) = &plan.metrics {
        let bound = serve_metrics(addr, figures.clone())?;
        eprintln!("floodgate: metrics at http://{bound}/metrics");
    }

    // Every sink first: nothing is received for a broker that is not
    // there.
    let sinks = tokio::select! {
        sinks = make_sinks(&plan.feeds) => sinks?,
        () = signals.recv() => return Ok(()),
    };

    // Then every feed's first connection.
    let mut firsts = Vec::with_capacity(plan.feeds.len());
    for (feed, client) in plan.feeds.iter().zip(&clients) {
        let conn = tokio::select! {
            conn = client.connect_buffered_async(&feed.url) => conn,
            () = signals.recv() => return Ok(()),
        };
        let conn = conn.map_err(|e| BridgeError::Connect {
            feed: feed.name.clone(),
            source: e.into(),
        })?;
        firsts.push(conn);
    }

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    let mut names: HashMap<tokio::task::Id, String> = HashMap::new();
    for (((spec, client), conn), figures) in
        plan.feeds.iter().zip(clients).zip(firsts).zip(&figures)
    {
        let feed = Feed {
            name: spec.name.clone(),
            url: spec.url.clone(),
            client,
            texts: spec.dial.texts.clone(),
            reconnect: spec.dial.reconnect,
            durable: spec.buffer.durable,
            backoff: Backoff::new()
                .initial(spec.dial.reconnect_delay)
                .max_attempts(spec.dial.reconnect_attempts),
            sink: sinks[&spec.dest.share_key()].clone(),
            // One run id per feed: feeds that publish into one stream must
            // not take each other's messages for duplicates.
            run: RunId::random(),
            figures: figures.clone(),
        };
        let handle = tasks.spawn(feed.run(conn, stop_rx.clone()));
        names.insert(handle.id(), spec.name.clone());
    }

    let mut failed: Vec<(String, u8)> = Vec::new();
    let mut deadline: Option<tokio::time::Instant> = None;
    let mut cut_short = false;
    loop {
        let drain_over = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            joined = tasks.join_next_with_id() => match joined {
                None => break,
                Some(Ok((id, result))) => {
                    if let Err(e) = result {
                        eprintln!("floodgate: {e}");
                        failed.push((names[&id].clone(), e.exit_code()));
                    }
                }
                Some(Err(e)) => {
                    let name = names.get(&e.id()).cloned().unwrap_or_default();
                    eprintln!("floodgate: feed {name}: its task failed: {e}");
                    failed.push((name, 1));
                }
            },
            () = signals.recv() => {
                if deadline.is_none() {
                    eprintln!(
                        "floodgate: stopping: closing the feeds and publishing what is buffered \
                         (at most {}; a second signal stops at once)",
                        units::show(plan.drain_timeout)
                    );
                    let _ = stop_tx.send(true);
                    deadline = Some(tokio::time::Instant::now() + plan.drain_timeout);
                } else {
                    eprintln!("floodgate: stopping at once");
                    cut_short = true;
                    break;
                }
            }
            () = drain_over => {
                cut_short = true;
                break;
            }
        }
    }
    if cut_short {
        tasks.abort_all();
        // The tasks' connections and buffers are dropped before the
        // report (a durable spill's files are then complete).
        while tasks.join_next().await.is_some() {}
    }

    for figures in &figures {
        eprintln!("floodgate: {}", figures.summary());
    }
    if plan.stats {
        for figures in &figures {
            eprintln!("{}", figures.stats_json());
        }
    }
    if let Some((_, code)) = failed.first() {
        return Err(BridgeError::FeedsFailed {
            feeds: failed.iter().map(|(name, _)| name.clone()).collect(),
            code: *code,
        });
    }
    let remaining: u64 = figures.iter().map(|f| f.remaining()).sum();
    if cut_short && remaining > 0 {
        return Err(BridgeError::DrainIncomplete {
            remaining,
            timeout: plan.drain_timeout,
        });
    }
    Ok(())
}

/// One sink per destination, shared by the feeds that write there; all
/// made within [`START_LIMIT`].
async fn make_sinks(feeds: &[FeedSpec]) -> Result<HashMap<String, SharedSink>, BridgeError> {
    let mut sinks: HashMap<String, SharedSink> = HashMap::new();
    let started = tokio::time::Instant::now();
    for feed in feeds {
        let key = feed.dest.share_key();
        if sinks.contains_key(&key) {
            continue;
        }
        // The sinks' own connect timeout is the bound left, less a margin
        // for the stream lookup that follows a connection.
        let left = START_LIMIT.saturating_sub(started.elapsed());
        let own = Duration::from_millis(
            (left.saturating_sub(Duration::from_millis(500)).as_millis() / 100 * 100) as u64,
        );
        let attempt = tokio::time::timeout(left, feed.dest.connect(own)).await;
        let sink = match attempt {
            Ok(Ok(sink)) => sink,
            Ok(Err(source)) => {
                return Err(BridgeError::Sink {
                    feed: feed.name.clone(),
                    source,
                })
            }
            Err(_) => {
                return Err(BridgeError::StartTimeout {
                    sink: feed.dest.describe(),
                    after: START_LIMIT,
                })
            }
        };
        sinks.insert(key, Arc::new(tokio::sync::Mutex::new(sink)));
    }
    Ok(sinks)
}

/// `--metrics`: each feed's stats under `feed=<name>`, and the sinks'
/// counters; the publish latency is recorded as it happens (feed.rs).
fn serve_metrics(
    addr: &str,
    figures: Vec<Arc<Figures>>,
) -> Result<std::net::SocketAddr, BridgeError> {
    let reporters: Vec<(Arc<Figures>, floodgate::metrics::Reporter)> = figures
        .into_iter()
        .map(|f| {
            let reporter = floodgate::metrics::Reporter::new([("feed", f.name.clone())]);
            (f, reporter)
        })
        .collect();
    let bound = crate::metrics::serve(
        addr,
        Vec::new(),
        Arc::new(move |_: &floodgate::metrics::Reporter| {
            for (figures, reporter) in &reporters {
                let totals = figures.totals();
                reporter.report(&totals.stats, totals.connections);
                let feed = figures.name.clone();
                metrics::counter!("floodgate_sink_published_total", "feed" => feed.clone())
                    .absolute(figures.published.load(Ordering::SeqCst));
                metrics::counter!("floodgate_sink_errors_total", "feed" => feed)
                    .absolute(figures.sink_errors.load(Ordering::SeqCst));
            }
        }),
    )?;
    Ok(bound)
}

/// SIGTERM and Ctrl-C (SIGINT), as one stream of "stop" requests.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> std::io::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    async fn recv(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}
