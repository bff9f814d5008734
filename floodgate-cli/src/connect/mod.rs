//! `floodgate connect URL`: the `wsdump` of this project.
//!
//! On a terminal it is an interactive client (a line editor with history;
//! see `interactive` and `editor`); otherwise each input line is sent as one text
//! message and each received message is printed as one line, so that it
//! works in pipes (see [`pipe`]).
//!
//! Either way the connection is a buffered one: its reader answers pings
//! at once, and received messages wait in a bounded buffer with the policy
//! of `--policy` until the printer takes them. `--slow` slows the printer
//! down (a slow consumer), never the answering of pings, and `--stats`
//! prints at exit what the buffer did. `--policy spill` puts what does not
//! fit in memory on disk instead (see `policy`); `--durable` keeps it for
//! the next run on the same directory.
//!
//! Three threads: the reader (in the library), the input (stdin or the
//! line editor, sending through a [`link::Link`]), and this module's
//! session on the main thread, which prints, keeps the connection alive
//! (`floodgate::keepalive`) and reconnects when asked to.

mod editor;
mod interactive;
mod link;
mod output;
mod pipe;
mod terminal;

use crate::error::CliError;
use crate::policy::BufferArgs;
use crate::report::Totals;
use crate::units;
use floodgate::buffer::Delivered;
use floodgate::reconnect::{Backoff, Retry};
use floodgate::{BufferedWebSocket, Client, ErrorKind};
use link::Link;
use output::{Format, Printer};
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Options of `floodgate connect`.
#[derive(Debug, clap::Args)]
pub struct ConnectArgs {
    /// The server's URL, ws://host:port/path or wss://host:port/path (the
    /// port defaults to 80 and 443).
    pub url: String,

    #[command(flatten)]
    pub dial: DialArgs,
    /// In a pipe: after the end of input, wait this long for replies,
    /// then close.
    #[arg(long, value_name = "DURATION", value_parser = units::duration, default_value = "0", help_heading = "Input and output")]
    pub eof_wait: Duration,
    /// Prefix each received message with the time since the start.
    #[arg(long, help_heading = "Input and output")]
    pub timings: bool,
    /// Write binary messages as they are (no hex, no newline).
    #[arg(long, conflicts_with = "json", help_heading = "Input and output")]
    pub raw: bool,
    /// One JSON object per received message: type, size, time, wait, data.
    #[arg(long, help_heading = "Input and output")]
    pub json: bool,
    /// Handle each received message this slowly (play a slow consumer).
    #[arg(long, value_name = "DURATION", value_parser = units::duration, help_heading = "Input and output")]
    pub slow: Option<Duration>,
    /// At exit, print the buffer's stats as one JSON object on stderr
    /// (with --policy spill, also the disk's: buffered_disk, disk_bytes,
    /// spilled, recovered, spill_refused, ...).
    #[arg(long, help_heading = "Input and output")]
    pub stats: bool,
    /// Serve the buffer's figures (the --stats counters, live) as
    /// Prometheus text at http://ADDR/metrics, names prefixed floodgate_,
    /// label feed=<URL>; ADDR is HOST:PORT (port 0: any free one, printed
    /// on stderr).
    #[arg(long, value_name = "ADDR", help_heading = "Input and output")]
    pub metrics: Option<String>,
    /// The line editor's history file (default ~/.floodgate_history).
    #[arg(long, value_name = "PATH", help_heading = "Input and output")]
    pub history: Option<std::path::PathBuf>,
    /// Keep no history file.
    #[arg(long, conflicts_with = "history", help_heading = "Input and output")]
    pub no_history: bool,

    #[command(flatten)]
    pub buffer: BufferArgs,
}

/// How to reach a server and keep the connection up: the options
/// `floodgate connect` and `floodgate bridge` share (flattened into each),
/// so that both read them, and build their [`Client`], the same way.
#[derive(Debug, Clone, clap::Args)]
pub struct DialArgs {
    /// An extra request header, "Name: value" (repeatable).
    #[arg(short = 'H', long = "header", value_name = "HEADER")]
    pub headers: Vec<String>,
    /// The Origin header (default: derived from the URL).
    #[arg(long)]
    pub origin: Option<String>,
    /// Offer this subprotocol (repeatable, best first).
    #[arg(long = "subprotocol", value_name = "NAME")]
    pub subprotocols: Vec<String>,
    /// Connect through this proxy: http://[user:pass@]host:port (CONNECT),
    /// socks4://, socks4a://, socks5:// or socks5h:// (the proxy resolves
    /// the name). Default: http_proxy (ws://) or https_proxy (wss://), then
    /// all_proxy, from the environment.
    #[arg(long, value_name = "URL")]
    pub proxy: Option<String>,
    /// Hosts to reach without the proxy, comma-separated (curl's rules:
    /// "example.com" also matches its subdomains, "10.0.0.0/8", "*" for
    /// all). Default: no_proxy from the environment.
    #[arg(long, value_name = "LIST")]
    pub no_proxy: Option<String>,
    /// wss://: accept any server certificate (expired, self-signed, for
    /// another host). For tests only: anyone on the path can read and
    /// change the traffic.
    #[arg(short = 'k', long, help_heading = "TLS")]
    pub insecure: bool,
    /// wss://: also trust the CA certificates in this PEM file.
    #[arg(long, value_name = "PATH", help_heading = "TLS")]
    pub ca_file: Option<std::path::PathBuf>,
    /// wss://: which root certificates to trust besides --ca-file: the
    /// platform's store, Mozilla's bundled in floodgate, or none.
    #[arg(
        long,
        value_name = "ROOTS",
        value_enum,
        default_value = "platform",
        help_heading = "TLS"
    )]
    pub tls_roots: TlsRoots,
    /// wss://: show this client certificate (PEM chain, leaf first) to a
    /// server that asks for one; needs --key.
    #[arg(long, value_name = "PATH", requires = "key", help_heading = "TLS")]
    pub cert: Option<std::path::PathBuf>,
    /// wss://: the private key (PEM) of --cert.
    #[arg(long, value_name = "PATH", requires = "cert", help_heading = "TLS")]
    pub key: Option<std::path::PathBuf>,
    /// wss://: verify the certificate for this name, and send it as SNI,
    /// instead of the URL's host.
    #[arg(long, value_name = "NAME", help_heading = "TLS")]
    pub server_name: Option<String>,
    /// Connect to this Unix domain socket; the URL still gives the Host
    /// header and the path.
    #[arg(long, value_name = "PATH")]
    pub unix_socket: Option<std::path::PathBuf>,
    /// Follow at most N redirects of the handshake (0: a redirect is an
    /// error). Authorization and cookies are not sent to another origin.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub redirect_limit: u32,
    /// Offer permessage-deflate (RFC 7692) compression; -v shows what the
    /// server accepted.
    #[arg(long)]
    pub compress: bool,
    /// Limit for the TCP connect and the handshake.
    #[arg(long, value_name = "DURATION", value_parser = units::duration, default_value = "30s")]
    pub timeout: Duration,
    /// Largest message accepted (default 64MiB, or --max-bytes if smaller).
    #[arg(long, value_name = "SIZE", value_parser = units::size)]
    pub max_message_size: Option<usize>,
    /// SO_RCVBUF: the kernel's receive buffer for the socket.
    #[arg(long, value_name = "SIZE", value_parser = units::size)]
    pub recv_buffer: Option<usize>,

    /// Send a ping this often.
    #[arg(long, value_name = "DURATION", value_parser = units::duration, help_heading = "Keepalive")]
    pub ping_interval: Option<Duration>,
    /// With --ping-interval: no pong this long after a ping means the
    /// connection is dead (exit 5, or reconnect with --reconnect).
    #[arg(long, value_name = "DURATION", value_parser = units::duration, help_heading = "Keepalive")]
    pub ping_timeout: Option<Duration>,
    /// The payload of the pings.
    #[arg(
        long,
        value_name = "TEXT",
        default_value = "",
        help_heading = "Keepalive"
    )]
    pub ping_payload: String,
    /// After an abnormal end (no close handshake, a close code other than
    /// 1000, a ping timeout), reconnect with exponential backoff and go on.
    #[arg(long, help_heading = "Keepalive")]
    pub reconnect: bool,
    /// With --reconnect: give up after N failed attempts in a row.
    #[arg(long, value_name = "N", help_heading = "Keepalive")]
    pub reconnect_attempts: Option<u32>,
    /// With --reconnect: the first delay (it doubles, up to 30s, with jitter).
    #[arg(long, value_name = "DURATION", value_parser = units::duration, default_value = "500ms", help_heading = "Keepalive")]
    pub reconnect_delay: Duration,

    /// Send this text message once connected (again after each
    /// reconnect, so that a subscription survives), then go on
    /// (repeatable).
    #[arg(
        short = 't',
        long = "text",
        value_name = "TEXT",
        help_heading = "Input and output"
    )]
    pub texts: Vec<String>,
}

/// Runs `floodgate connect`.
pub fn run(args: ConnectArgs) -> Result<(), CliError> {
    let client = build_client(&args.dial, &args.buffer)?;
    let interactive = std::io::stdin().is_terminal();
    let format = Format {
        raw: args.raw,
        json: args.json,
        timings: args.timings,
        start: Instant::now(),
    };
    // Before connecting: a metrics address that cannot be used ends the
    // command before anything is started.
    let live = Arc::new(Mutex::new(Live {
        totals: Totals::new(args.buffer.spills()),
        current: None,
    }));
    if let Some(addr) = &args.metrics {
        let figures = live.clone();
        let bound = crate::metrics::serve(
            addr,
            vec![("feed", args.url.clone())],
            Arc::new(move |reporter: &floodgate::metrics::Reporter| {
                let (stats, connections) = lock(&figures).now();
                reporter.report(&stats, connections);
            }),
        )?;
        eprintln!("floodgate: metrics at http://{bound}/metrics");
    }
    // The first connection must work: a wrong URL or a refused handshake
    // is reported at once, reconnecting or not.
    let conn = client.connect_buffered(&args.url)?;
    trace_compression(&args, &conn);
    let link = Arc::new(Link::default());
    let printer = if interactive {
        interactive::start(link.clone(), &args, &conn, format)?
    } else {
        pipe::start(link.clone(), args.eof_wait)?;
        Printer::stdout(format)
    };
    let mut session = Session {
        args: &args,
        client,
        link: link.clone(),
        printer,
        live,
    };
    let result = session.run(conn);
    link.end();
    session.printer.finish();
    if args.stats {
        eprintln!("{}", lock(&session.live).totals.to_json());
    }
    result
}

/// The client `dial` and `buffer` describe.
///
/// # Errors
///
/// [`CliError::Usage`] for options that do not go together or cannot be
/// read (a header without `:`); what [`floodgate::ClientBuilder::build`]
/// refuses.
pub fn build_client(args: &DialArgs, buffer: &BufferArgs) -> Result<Client, CliError> {
    if args.ping_timeout.is_some() && args.ping_interval.is_none() {
        return Err(CliError::Usage(
            "--ping-timeout needs --ping-interval (how often to ping)".into(),
        ));
    }
    if args.ping_interval.is_some_and(|i| i.is_zero()) {
        return Err(CliError::Usage("--ping-interval must be above zero".into()));
    }
    if args.ping_payload.len() > 125 {
        return Err(CliError::Usage(
            "--ping-payload is limited to 125 bytes by the protocol".into(),
        ));
    }
    if (args.reconnect_attempts.is_some()) && !args.reconnect {
        return Err(CliError::Usage(
            "--reconnect-attempts needs --reconnect".into(),
        ));
    }

    let mut builder = Client::builder()
        .connect_timeout(Some(args.timeout))
        .redirect_limit(args.redirect_limit)
        .tls_roots(args.tls_roots.into());
    // The keepalive is the connection's own from its first instant (its
    // reader sends the pings and keeps the pong deadline).
    builder = builder
        .ping_interval(args.ping_interval)
        .ping_timeout(args.ping_timeout);
    if !args.ping_payload.is_empty() {
        builder = builder.ping_payload(args.ping_payload.clone().into_bytes());
    }
    if args.insecure {
        builder = builder.dangerous_skip_certificate_verification();
    }
    if let Some(path) = &args.ca_file {
        builder = builder.ca_file(path);
    }
    if let (Some(cert), Some(key)) = (&args.cert, &args.key) {
        builder = builder.client_certificate_files(cert, key);
    }
    if let Some(name) = &args.server_name {
        builder = builder.tls_server_name(name.clone());
    }
    if let Some(path) = &args.unix_socket {
        builder = builder.unix_socket(path);
    }
    for header in &args.headers {
        let Some((name, value)) = header.split_once(':') else {
            return Err(CliError::Usage(format!(
                "--header {header:?}: write it as \"Name: value\""
            )));
        };
        builder = builder.header(name.trim(), value.trim());
    }
    if let Some(origin) = &args.origin {
        builder = builder.origin(origin.clone());
    }
    for protocol in &args.subprotocols {
        builder = builder.subprotocol(protocol.clone());
    }
    if let Some(bytes) = args.recv_buffer {
        builder = builder.recv_buffer_size(bytes);
    }
    if let Some(proxy) = &args.proxy {
        builder = builder.proxy(proxy.as_str());
    }
    if let Some(list) = &args.no_proxy {
        builder = builder.no_proxy(list.as_str());
    }
    // The buffer must hold any message the connection accepts: a small
    // --max-bytes lowers the message limit unless one was given.
    let message_limit = args.max_message_size.or(buffer
        .max_bytes
        .map(|b| b.min(floodgate::buffer::DEFAULT_MAX_BYTES)));
    if let Some(limit) = message_limit {
        builder = builder.max_message_size(Some(limit));
    }
    if args.compress {
        builder = builder.compression(floodgate::DeflateConfig::default());
    }
    Ok(builder.buffer(buffer.config()?).build()?)
}

/// With `--compress`, says (at -v) whether the server accepted it.
fn trace_compression(args: &ConnectArgs, conn: &BufferedWebSocket) {
    if !args.dial.compress {
        return;
    }
    match conn.deflate() {
        Some(negotiated) => tracing::debug!("compression: {negotiated}"),
        None => tracing::debug!("compression: the server declined permessage-deflate"),
    }
}

/// The error once `retry` allows no more attempts: the last attempt's
/// failure, or none made at all (`--reconnect-attempts 0`).
pub(crate) fn gave_up(retry: &Retry, last: Option<floodgate::Error>) -> CliError {
    match last {
        Some(last) => CliError::WebSocket(
            ErrorKind::GaveUp {
                attempts: retry.attempts(),
                last,
            }
            .into(),
        ),
        None => CliError::Other("--reconnect-attempts 0: not reconnecting".into()),
    }
}

/// `--tls-roots`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum TlsRoots {
    /// The platform's trust store.
    Platform,
    /// The Mozilla roots bundled in floodgate.
    Mozilla,
    /// None: only --ca-file.
    None,
}

impl From<TlsRoots> for floodgate::tls::RootCertificates {
    fn from(roots: TlsRoots) -> Self {
        match roots {
            TlsRoots::Platform => floodgate::tls::RootCertificates::Platform,
            TlsRoots::Mozilla => floodgate::tls::RootCertificates::Mozilla,
            TlsRoots::None => floodgate::tls::RootCertificates::None,
        }
    }
}

/// How one connection ended, as the command sees it.
enum Ending {
    /// A close handshake with 1000 (or no code), or a close we asked for:
    /// the command is done.
    Clean,
    /// Reconnecting may help (no close handshake, another close code, a
    /// protocol error, a ping timeout).
    Abnormal(CliError),
    /// Reconnecting would not help (the Disconnect policy, output gone).
    Fatal(CliError),
}

struct Session<'a> {
    args: &'a ConnectArgs,
    client: Client,
    link: Arc<Link>,
    printer: Printer,
    /// The totals so far (what `--stats` prints) and the running
    /// connection's buffer (what `--metrics` adds to them).
    live: Arc<Mutex<Live>>,
}

/// The figures `--metrics` reads at each scrape.
struct Live {
    /// The connections that ended.
    totals: Totals,
    /// The running connection's buffer.
    current: Option<Arc<floodgate::buffer::Buffer>>,
}

impl Live {
    /// The totals with the running connection's figures: what `--stats`
    /// would print if the command ended now, and how many connections.
    fn now(&self) -> (floodgate::buffer::Stats, u64) {
        let mut totals = self.totals.clone();
        if let Some(buffer) = &self.current {
            totals.add(&buffer.stats());
        }
        (totals.stats, totals.connections)
    }
}

fn lock(live: &Mutex<Live>) -> std::sync::MutexGuard<'_, Live> {
    live.lock().unwrap_or_else(|e| e.into_inner())
}

impl Session<'_> {
    fn run(&mut self, first: BufferedWebSocket) -> Result<(), CliError> {
        let backoff = Backoff::new()
            .initial(self.args.dial.reconnect_delay)
            .max_attempts(self.args.dial.reconnect_attempts);
        let mut retry = Retry::new(backoff);
        let mut conn = first;
        loop {
            let up_since = Instant::now();
            lock(&self.live).current = Some(conn.buffer().clone());
            let ending = self.serve(&conn);
            {
                let mut live = lock(&self.live);
                live.totals.add(&conn.stats());
                live.current = None;
            }
            drop(conn);
            let error = match ending {
                Ending::Clean => return Ok(()),
                Ending::Fatal(e) => return Err(e),
                Ending::Abnormal(e) if !self.args.dial.reconnect || self.link.closing() => {
                    return Err(e)
                }
                Ending::Abnormal(e) => e,
            };
            retry.connection_ended(up_since.elapsed());
            self.printer.note(&format!("connection lost: {error}"));
            match self.reconnect(&mut retry)? {
                Some(next) => conn = next,
                None => return Ok(()), // the user closed while we waited
            }
        }
    }

    /// Connects again after waits chosen by `retry`; `None` when the user
    /// closed in the meantime.
    fn reconnect(&mut self, retry: &mut Retry) -> Result<Option<BufferedWebSocket>, CliError> {
        let mut last = None;
        loop {
            let Some(delay) = retry.next_delay() else {
                return Err(gave_up(retry, last));
            };
            self.printer.note(&format!(
                "reconnecting in {} (attempt {})",
                units::show(delay),
                retry.attempts()
            ));
            if self.link.wait_closing(delay) {
                return Ok(None);
            }
            match self.client.connect_buffered(&self.args.url) {
                Ok(conn) => {
                    self.printer
                        .note(&format!("reconnected to {}", self.args.url));
                    trace_compression(self.args, &conn);
                    return Ok(Some(conn));
                }
                // A spill directory that cannot be opened (or is held by
                // another run) will not open by dialing again.
                Err(e) if matches!(e.kind(), ErrorKind::Spill(_)) => return Err(e.into()),
                Err(e) => {
                    self.printer.note(&format!("reconnect failed: {e}"));
                    last = Some(e);
                }
            }
        }
    }

    /// Prints what one connection delivers until it ends.
    fn serve(&mut self, conn: &BufferedWebSocket) -> Ending {
        // On every connection, so that a subscription sent with -t
        // survives a reconnect.
        for text in &self.args.dial.texts {
            if let Err(e) = conn.send_text(text) {
                return Ending::Abnormal(e.into());
            }
        }
        if let Some((code, reason)) = self.link.attach(conn.sender()) {
            // The input ended before this connection was attached.
            if let Err(e) = conn.sender().close(code, &reason) {
                tracing::debug!(error = %e, "closing as asked before the connection was attached");
            }
        }
        // A dead connection ends with the pong timeout from the reader.
        let end = self.consume(conn);
        self.link.detach();
        match end {
            ConsumeEnd::OutputClosed => {
                // Nobody reads what we print (`| head`): end quietly.
                let _ = conn.sender().close(1000, "");
                Ending::Clean
            }
            ConsumeEnd::Connection(e) => self.judge(e),
        }
    }

    fn judge(&self, e: floodgate::Error) -> Ending {
        let asked = self.link.closing();
        match e.into_kind() {
            ErrorKind::ConnectionClosed(frame) => {
                let code = frame.as_ref().map(|f| f.code.0);
                if asked || matches!(code, None | Some(1000)) {
                    Ending::Clean
                } else {
                    let frame = frame.unwrap_or_else(|| floodgate::CloseFrame::new(1000u16, ""));
                    Ending::Abnormal(CliError::ClosedWithError {
                        code: frame.code.0,
                        reason: frame.reason.to_string(),
                    })
                }
            }
            ErrorKind::AlreadyClosed if asked => Ending::Clean,
            // The consumer fell behind, or the spill refused a message:
            // the same would happen again.
            ErrorKind::Buffer(e) => Ending::Fatal(floodgate::Error::from(e).into()),
            kind => Ending::Abnormal(CliError::WebSocket(kind.into())),
        }
    }

    fn consume(&mut self, conn: &BufferedWebSocket) -> ConsumeEnd {
        // A durable spill counts a message delivered once it is taken (a
        // run started again begins after it): take one at a time and print
        // it at once, so that a killed command loses at most the message
        // in hand, not a batch of up to 1,024 and what the printer holds.
        let durable = self.args.buffer.durable;
        match self.args.slow {
            Some(delay) if durable && !delay.is_zero() => loop {
                let message = match conn.recv() {
                    Ok(message) => message,
                    Err(e) => return ConsumeEnd::Connection(e),
                };
                if self.show(&message).is_err() || self.printer.flush().is_err() {
                    return ConsumeEnd::OutputClosed;
                }
                std::thread::sleep(delay);
            },
            Some(delay) if !delay.is_zero() => loop {
                let message = match conn.recv() {
                    Ok(message) => message,
                    Err(e) => return ConsumeEnd::Connection(e),
                };
                std::thread::sleep(delay);
                if self.show(&message).is_err() {
                    return ConsumeEnd::OutputClosed;
                }
                if self.printer.flush().is_err() {
                    return ConsumeEnd::OutputClosed;
                }
            },
            _ => {
                // As fast as possible: take what is there in one lock and
                // flush once per batch.
                let max = if durable { 1 } else { 1024 };
                let mut batch = Vec::with_capacity(max);
                loop {
                    if let Err(e) = conn.recv_batch_into(&mut batch, max, Duration::from_secs(3600))
                    {
                        return ConsumeEnd::Connection(e);
                    }
                    for message in batch.drain(..) {
                        if self.show(&message).is_err() {
                            return ConsumeEnd::OutputClosed;
                        }
                    }
                    if self.printer.flush().is_err() {
                        return ConsumeEnd::OutputClosed;
                    }
                }
            }
        }
    }

    fn show(&mut self, message: &Delivered) -> std::io::Result<()> {
        tracing::trace!(
            len = message.len(),
            text = message.as_text().is_some(),
            waited_us = message.waited().as_micros() as u64,
            "received a message"
        );
        self.printer.message(message)
    }
}

enum ConsumeEnd {
    Connection(floodgate::Error),
    OutputClosed,
}
