//! `floodgate serve`: the embedded server on loopback, for tests and demos.
//!
//! `--echo` echoes every message back; `--feed` publishes numbered JSON
//! messages on several channels at a chosen rate and size and pings each
//! client on an interval (the `floodgate-server` crate's feed, whose
//! docs describe the messages). With neither, the path decides: `/feed`
//! (and below) gets the feed, every other path the echo. A feed client may
//! choose its own feed in the query string:
//! `ws://127.0.0.1:9001/feed?rate=0&size=1024&count=100000`.
//!
//! With `--tls-cert` and `--tls-key` it speaks TLS (`wss://`).
//!
//! The first line on stdout is `listening on ws://ADDR/`, so that a script
//! that asked for port 0 learns the port. Each connection's end is logged
//! on stderr. It runs until interrupted.

use crate::error::CliError;
use crate::units;
use floodgate_server::feed::{Feed, FeedConfig, FeedEnd, FeedReport};
use floodgate_server::{echo, Options, Server};
use std::io::Write;
use std::time::Duration;

/// Options of `floodgate serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0: any free port).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9001")]
    pub bind: String,
    /// Echo every message back, on every path.
    #[arg(long, conflicts_with = "feed")]
    pub echo: bool,
    /// Publish the feed on every path.
    #[arg(long)]
    pub feed: bool,
    /// Accept this subprotocol when a client offers it (repeatable).
    #[arg(long = "subprotocol", value_name = "NAME")]
    pub subprotocols: Vec<String>,
    /// Speak TLS (wss://) with this certificate chain (PEM, leaf first);
    /// needs --tls-key.
    #[arg(long, value_name = "PATH", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, value_name = "PATH", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
    /// Accept permessage-deflate (RFC 7692) when a client offers it.
    #[arg(long)]
    pub compress: bool,
    #[command(flatten)]
    pub feed_options: FeedArgs,
}

/// What the feed sends.
#[derive(Debug, Clone, clap::Args)]
pub struct FeedArgs {
    /// Feed: channels the messages are spread over.
    #[arg(long, value_name = "N", default_value_t = 8, help_heading = "Feed")]
    pub channels: u32,
    /// Feed: messages per second in all (0: as fast as the client takes them).
    #[arg(
        long,
        value_name = "N",
        default_value_t = 1000.0,
        help_heading = "Feed"
    )]
    pub rate: f64,
    /// Feed: the size of each message (at least ~70 bytes of JSON).
    #[arg(long, value_name = "SIZE", value_parser = units::size, default_value = "128", help_heading = "Feed")]
    pub size: usize,
    /// Feed: send this many messages, then close with 1000 (default: no end).
    #[arg(long, value_name = "N", help_heading = "Feed")]
    pub count: Option<u64>,
    /// Feed: ping each client this often (0: never).
    #[arg(long, value_name = "DURATION", value_parser = units::duration, default_value = "1s", help_heading = "Feed")]
    pub ping_interval: Duration,
    /// Feed: SO_SNDBUF of each connection (small: backpressure shows at once).
    #[arg(long, value_name = "SIZE", value_parser = units::size, help_heading = "Feed")]
    pub send_buffer: Option<usize>,
}

impl FeedArgs {
    /// The feed configuration these options describe.
    ///
    /// # Errors
    ///
    /// A rate that is negative or not a number, zero channels.
    pub fn config(&self) -> Result<FeedConfig, CliError> {
        if !(self.rate >= 0.0 && self.rate.is_finite()) {
            return Err(CliError::Usage(format!(
                "--rate {}: give messages per second, or 0 for as fast as possible",
                self.rate
            )));
        }
        if self.channels == 0 {
            return Err(CliError::Usage("--channels must be at least 1".into()));
        }
        Ok(FeedConfig {
            channels: self.channels,
            rate: (self.rate > 0.0).then_some(self.rate),
            size: self.size,
            count: self.count,
            ping_interval: (!self.ping_interval.is_zero()).then_some(self.ping_interval),
            send_buffer_size: self.send_buffer,
        })
    }
}

/// One line about a feed connection that ended.
pub fn describe(report: &FeedReport) -> String {
    let peer = report
        .peer
        .map_or_else(|| "a client".to_owned(), |p| p.to_string());
    let end = match &report.end {
        FeedEnd::Completed => "completed".to_owned(),
        FeedEnd::ClientClosed(Some(frame)) => format!("client closed with {frame}"),
        FeedEnd::ClientClosed(None) => "client closed".to_owned(),
        FeedEnd::Failed(why) => format!("failed: {why}"),
    };
    let rtt = report
        .worst_ping_rtt
        .map_or_else(|| "-".to_owned(), units::show);
    format!(
        "feed to {peer} ({}): {end}; sent {} messages in {}, {} blocked in writes, fell behind by up to {}; {} of {} pings answered, worst round trip {rtt}",
        report.path,
        units::show_count(report.sent),
        units::show(report.elapsed),
        units::show(report.write_time),
        units::show(report.max_behind),
        report.pongs,
        report.pings_sent,
    )
}

/// Runs `floodgate serve` until interrupted.
pub fn run(args: ServeArgs) -> Result<(), CliError> {
    let feed = Feed::new(args.feed_options.config()?);
    let options = Options {
        subprotocols: args.subprotocols.clone(),
        compression: args.compress.then(floodgate::DeflateConfig::default),
        ..Options::default()
    };
    let (echo_all, feed_all) = (args.echo, args.feed);
    let what = match (echo_all, feed_all) {
        (true, _) => "echo on every path",
        (_, true) => "the feed on every path",
        _ => "the feed at /feed, echo on every other path",
    };
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            let read = |path: &std::path::Path| {
                std::fs::read(path)
                    .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", path.display())))
            };
            Some(
                floodgate_server::tls::server_config_from_pem(&read(cert)?, &read(key)?)
                    .map_err(|e| CliError::Usage(format!("--tls-cert/--tls-key: {e}")))?,
            )
        }
        _ => None,
    };
    let handler = move |ws, request: floodgate_server::RequestHead| {
        let is_feed_path = request.path == "/feed"
            || request.path.starts_with("/feed?")
            || request.path.starts_with("/feed/");
        if feed_all || (!echo_all && is_feed_path) {
            let report = feed.serve(ws, &request);
            eprintln!("floodgate: {}", describe(&report));
        } else {
            echo(ws, request);
        }
    };
    let server = match tls {
        Some(tls) => Server::bind_tls(args.bind.as_str(), options, tls, handler),
        None => Server::bind_with(args.bind.as_str(), options, handler),
    }
    .map_err(|e| CliError::Other(format!("cannot listen on {}: {e}", args.bind)))?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on {}", server.url())?;
    stdout.flush()?;
    eprintln!("floodgate: serving {what}; Ctrl-C to stop");
    loop {
        std::thread::park();
    }
}
