//! The feed: a server handler that publishes numbered messages on several
//! channels at a chosen rate and size, pings its client on an interval, and
//! reports what it saw — the high-load scenario of the design, with no
//! server of your own.
//!
//! `floodgate serve --feed`, `floodgate demo`, the examples and the tests
//! all use this one handler, so what a demo shows is what the tests check.
//!
//! Each message is a small JSON object, padded to the configured size:
//!
//! ```text
//! {"channel":3,"seq":15,"n":123,"sent_us":1764582000123456,"pad":"........"}
//! ```
//!
//! `n` numbers messages from 0 across the connection, message `n` goes to
//! channel `n % channels` as that channel's message `seq = n / channels`,
//! and `sent_us` is the sender's wall clock (microseconds since the Unix
//! epoch) when it was encoded. A consumer can check for gaps per channel,
//! conflate by `/channel`, and see how old a message is when handled.
//! [`FeedMessage::parse`] reads one back.
//!
//! The writer runs on the connection's thread; a reader thread of the
//! feed's own answers the client's pings and close, discards what else
//! the client sends, and times the pongs to the feed's pings, so a writer
//! blocked on a full socket neither delays those timings nor holds the
//! client's close. When the client pushes back (a full buffer under
//! `Block`), the feed's writes block and it falls behind its schedule:
//! [`FeedReport::write_time`] and [`FeedReport::max_behind`] show by how
//! much.
//!
//! ```
//! use floodgate_server::feed::{Feed, FeedConfig};
//! use floodgate_server::Server;
//! use std::sync::mpsc;
//!
//! let (reports, report) = mpsc::channel();
//! let feed = Feed::new(FeedConfig { count: Some(100), rate: None, ..FeedConfig::default() })
//!     .on_report(move |r| reports.send(r).unwrap());
//! let server = Server::bind("127.0.0.1:0", feed.handler())?;
//! // A client reads `server.url()`: 100 messages, then a close with 1000
//! // (floodgate's examples/subscriber.rs is one); each connection's
//! // report then comes to `on_report`.
//! # drop(report);
//! # Ok::<(), floodgate_server::Error>(())
//! ```

mod split;

use crate::error::{Error, Timeout};
use crate::socket::WebSocket;
use crate::transport::Stream;
use floodgate_proto::handshake::RequestHead;
use floodgate_proto::{CloseCode, CloseFrame};
use split::{ReaderEnd, Split};
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// What a feed sends to each client.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedConfig {
    /// Channels the messages are spread over, round robin (at least 1).
    pub channels: u32,
    /// Messages per second in all channels together; `None`: as fast as
    /// the client's socket takes them.
    pub rate: Option<f64>,
    /// Length of each message in bytes (messages are never shorter than
    /// their JSON needs, about 70 bytes).
    pub size: usize,
    /// Send this many messages, then close with 1000; `None`: until the
    /// client leaves.
    pub count: Option<u64>,
    /// Ping the client this often (`None`: never).
    pub ping_interval: Option<Duration>,
    /// The server socket's `SO_SNDBUF` (`None`: the OS default). Small
    /// values make the client's backpressure show in the feed's writes at
    /// once instead of after the kernel's buffer fills.
    pub send_buffer_size: Option<usize>,
}

impl Default for FeedConfig {
    /// 8 channels, 1000 messages/s, 128 bytes, no end, a ping every
    /// second.
    fn default() -> Self {
        FeedConfig {
            channels: 8,
            rate: Some(1000.0),
            size: 128,
            count: None,
            ping_interval: Some(Duration::from_secs(1)),
            send_buffer_size: None,
        }
    }
}

impl FeedConfig {
    /// This configuration with the overrides of a request's query string,
    /// so that one server can give each client its own feed:
    /// `?channels=4&rate=5000&size=256&count=100000&ping_ms=100`
    /// (`rate=0`: as fast as possible; `ping_ms=0`: no pings).
    ///
    /// ```
    /// use floodgate_server::feed::{FeedConfig, QueryError};
    /// let config = FeedConfig::default().with_query("rate=0&count=10").unwrap();
    /// assert_eq!((config.rate, config.count), (None, Some(10)));
    /// assert!(matches!(
    ///     FeedConfig::default().with_query("rate=fast"),
    ///     Err(QueryError::NotANumber { .. })
    /// ));
    /// ```
    ///
    /// # Errors
    ///
    /// [`QueryError`]: an unknown key, a value that is not a number, no
    /// channels.
    pub fn with_query(&self, query: &str) -> Result<FeedConfig, QueryError> {
        let mut config = self.clone();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let bad = || QueryError::NotANumber {
                key: key.to_owned(),
                value: value.to_owned(),
            };
            let number = || value.parse::<f64>().map_err(|_| bad());
            match key {
                "channels" => {
                    config.channels = value.parse().map_err(|_| bad())?;
                    if config.channels == 0 {
                        return Err(QueryError::NoChannels);
                    }
                }
                "rate" => {
                    let rate = number()?;
                    if !(rate >= 0.0 && rate.is_finite()) {
                        return Err(bad());
                    }
                    config.rate = (rate > 0.0).then_some(rate);
                }
                "size" => config.size = value.parse().map_err(|_| bad())?,
                "count" => config.count = Some(value.parse().map_err(|_| bad())?),
                "ping_ms" => {
                    let ms: u64 = value.parse().map_err(|_| bad())?;
                    config.ping_interval = (ms > 0).then(|| Duration::from_millis(ms));
                }
                _ => return Err(QueryError::UnknownKey(key.to_owned())),
            }
        }
        Ok(config)
    }
}

/// Why a request's query string does not describe a feed (see
/// [`FeedConfig::with_query`]); the feed closes such a connection with
/// 1008 (policy violation) and this message as the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    /// A value that is not a number in range.
    #[error("feed query: {key}={value:?} is not a valid number")]
    NotANumber {
        /// The key.
        key: String,
        /// Its value as given.
        value: String,
    },
    /// `channels=0`.
    #[error("feed query: channels must be at least 1")]
    NoChannels,
    /// A key the feed does not know.
    #[error("feed query: unknown key {0:?} (known: channels, rate, size, count, ping_ms)")]
    UnknownKey(String),
}

/// The numbers one feed message carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedMessage {
    /// The channel, `n % channels`.
    pub channel: u32,
    /// The message's number within its channel, `n / channels`.
    pub seq: u64,
    /// The message's number on the connection, from 0.
    pub n: u64,
    /// The sender's wall clock when it was encoded, in microseconds since
    /// the Unix epoch.
    pub sent_us: u64,
}

impl FeedMessage {
    /// Message `n` of a feed over `channels` channels, stamped `sent_us`.
    pub fn numbered(n: u64, channels: u32, sent_us: u64) -> FeedMessage {
        let channels = u64::from(channels.max(1));
        FeedMessage {
            channel: (n % channels) as u32,
            seq: n / channels,
            n,
            sent_us,
        }
    }

    /// Writes the message as JSON padded to `size` bytes into `out`
    /// (cleared first).
    pub fn encode_into(&self, size: usize, out: &mut String) {
        out.clear();
        let _ = write!(
            out,
            "{{\"channel\":{},\"seq\":{},\"n\":{},\"sent_us\":{},\"pad\":\"",
            self.channel, self.seq, self.n, self.sent_us
        );
        let closing = 2; // `"}`
        if out.len() + closing < size {
            out.extend(std::iter::repeat_n('.', size - out.len() - closing));
        }
        out.push_str("\"}");
    }

    /// Reads the numbers back from a feed message's text; `None` if it is
    /// not one.
    ///
    /// ```
    /// use floodgate_server::feed::FeedMessage;
    /// let message = FeedMessage::numbered(9, 4, 1_000);
    /// let mut text = String::new();
    /// message.encode_into(100, &mut text);
    /// assert_eq!(text.len(), 100);
    /// assert_eq!(FeedMessage::parse(&text), Some(message));
    /// assert_eq!(FeedMessage::parse("hello"), None);
    /// ```
    pub fn parse(text: &str) -> Option<FeedMessage> {
        // The feed's own fixed layout, read without a JSON parser: the
        // clients' tests that read it need not depend on one either.
        let rest = text.strip_prefix("{\"channel\":")?;
        let (channel, rest) = number(rest)?;
        let rest = rest.strip_prefix(",\"seq\":")?;
        let (seq, rest) = number(rest)?;
        let rest = rest.strip_prefix(",\"n\":")?;
        let (n, rest) = number(rest)?;
        let rest = rest.strip_prefix(",\"sent_us\":")?;
        let (sent_us, rest) = number(rest)?;
        rest.starts_with(",\"pad\":\"").then_some(())?;
        Some(FeedMessage {
            channel: u32::try_from(channel).ok()?,
            seq,
            n,
            sent_us,
        })
    }
}

fn number(text: &str) -> Option<(u64, &str)> {
    let end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    Some((text[..end].parse().ok()?, &text[end..]))
}

/// Microseconds since the Unix epoch, now.
pub fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// How a feed connection ended.
#[derive(Debug, Clone)]
pub enum FeedEnd {
    /// It sent its `count` messages and closed with 1000.
    Completed,
    /// The client closed the connection, with this frame.
    ClientClosed(Option<CloseFrame>),
    /// The connection failed: the client vanished, broke the protocol, or
    /// asked for an invalid feed.
    Failed(FeedError),
}

/// Why a feed connection failed ([`FeedEnd::Failed`]).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum FeedError {
    /// The request's query string does not describe a feed.
    #[error(transparent)]
    Query(#[from] QueryError),
    /// The connection failed while the feed sent (the client left without
    /// a close, broke the protocol, or the socket failed).
    #[error(transparent)]
    Connection(Arc<Error>),
    /// A write failed and the connection did not end within `waited`.
    #[error("a write failed ({write}) and the connection did not end within {waited:?}")]
    NoEnd {
        /// The write's error.
        #[source]
        write: Arc<Error>,
        /// How long the feed waited for the end.
        waited: Duration,
    },
    /// The close after the last message was not answered.
    #[error("closing after the last message: {0}")]
    Closing(#[source] Arc<Error>),
}

/// What a feed saw on one connection, once it ended.
#[derive(Debug, Clone)]
pub struct FeedReport {
    /// The client's address.
    pub peer: Option<SocketAddr>,
    /// The request path (with its query).
    pub path: String,
    /// Messages written in full.
    pub sent: u64,
    /// Payload bytes written.
    pub bytes: u64,
    /// From the handshake to the end.
    pub elapsed: Duration,
    /// Time spent inside writes of data: long when the client pushed back
    /// (its buffer full under `Block`, so TCP flow control stopped us).
    pub write_time: Duration,
    /// The longest single write (of up to 64 messages, sent together
    /// when the feed is behind its schedule or unpaced).
    pub longest_write: Duration,
    /// How far behind its schedule the feed fell at worst (zero when it
    /// sends as fast as possible).
    pub max_behind: Duration,
    /// Pings sent.
    pub pings_sent: u64,
    /// Pongs received that answered them.
    pub pongs: u64,
    /// The longest time from writing a ping to reading its pong.
    pub worst_ping_rtt: Option<Duration>,
    /// How it ended.
    pub end: FeedEnd,
}

/// Figures of a running feed, summed over its connections; read them
/// while it runs (a live display) through [`Feed::live`].
#[derive(Debug, Default)]
pub struct FeedLive {
    connections: AtomicU64,
    sent: AtomicU64,
    pings_sent: AtomicU64,
    pongs: AtomicU64,
    worst_ping_rtt_us: AtomicU64,
}

impl FeedLive {
    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }

    /// Messages written so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Pings sent so far.
    pub fn pings_sent(&self) -> u64 {
        self.pings_sent.load(Ordering::Relaxed)
    }

    /// Pongs received so far.
    pub fn pongs(&self) -> u64 {
        self.pongs.load(Ordering::Relaxed)
    }

    /// The longest ping round trip so far.
    pub fn worst_ping_rtt(&self) -> Duration {
        Duration::from_micros(self.worst_ping_rtt_us.load(Ordering::Relaxed))
    }
}

type ReportFn = Arc<dyn Fn(FeedReport) + Send + Sync>;

/// A feed: build it, take its [`handler`](Feed::handler) to a
/// [`Server`](crate::Server), keep its [`live`](Feed::live) figures.
#[derive(Clone)]
pub struct Feed {
    config: Arc<FeedConfig>,
    live: Arc<FeedLive>,
    on_report: Option<ReportFn>,
}

impl std::fmt::Debug for Feed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feed")
            .field("config", &self.config)
            .field("live", &self.live)
            .finish()
    }
}

impl Feed {
    /// A feed with this configuration (each client may override it in its
    /// query string, see [`FeedConfig::with_query`]).
    pub fn new(config: FeedConfig) -> Feed {
        Feed {
            config: Arc::new(config),
            live: Arc::default(),
            on_report: None,
        }
    }

    /// Calls `f` with the report of each connection when it ends (on that
    /// connection's thread).
    pub fn on_report(mut self, f: impl Fn(FeedReport) + Send + Sync + 'static) -> Feed {
        self.on_report = Some(Arc::new(f));
        self
    }

    /// The live figures, summed over connections.
    pub fn live(&self) -> Arc<FeedLive> {
        self.live.clone()
    }

    /// The handler to give [`Server::bind`](crate::Server::bind).
    pub fn handler(self) -> impl Fn(WebSocket<Stream>, RequestHead) + Send + Sync + 'static {
        move |ws, request| {
            let report = self.serve(ws, &request);
            tracing::debug!(?report, "feed connection ended");
            if let Some(on_report) = &self.on_report {
                on_report(report);
            }
        }
    }

    /// Runs the feed on one connection.
    pub fn serve(&self, ws: WebSocket<Stream>, request: &RequestHead) -> FeedReport {
        self.live.connections.fetch_add(1, Ordering::Relaxed);
        let mut report = FeedReport {
            peer: ws.get_ref().tcp().peer_addr().ok(),
            path: request.path.clone(),
            sent: 0,
            bytes: 0,
            elapsed: Duration::ZERO,
            write_time: Duration::ZERO,
            longest_write: Duration::ZERO,
            max_behind: Duration::ZERO,
            pings_sent: 0,
            pongs: 0,
            worst_ping_rtt: None,
            end: FeedEnd::Completed,
        };
        let started = Instant::now();
        report.end = self.run(ws, request, &mut report);
        report.elapsed = started.elapsed();
        report
    }

    fn run(
        &self,
        mut ws: WebSocket<Stream>,
        request: &RequestHead,
        report: &mut FeedReport,
    ) -> FeedEnd {
        let config = match request.path.split_once('?') {
            Some((_, query)) => match self.config.with_query(query) {
                Ok(config) => config,
                Err(e) => {
                    let reason = e.to_string();
                    let _ = ws.close(CloseCode::POLICY_VIOLATION, truncate(&reason, 120));
                    return FeedEnd::Failed(e.into());
                }
            },
            None => (*self.config).clone(),
        };
        if let Some(size) = config.send_buffer_size {
            let _ = socket2::SockRef::from(ws.get_ref().tcp()).set_send_buffer_size(size);
        }
        let pings = Arc::new(Mutex::new(PingLog::default()));
        let on_pong = {
            let (pings, live) = (pings.clone(), self.live.clone());
            move |payload: &[u8]| {
                let rtt = pings
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .answered(payload, Instant::now());
                if let Some(rtt) = rtt {
                    live.pongs.fetch_add(1, Ordering::Relaxed);
                    let us = u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX);
                    live.worst_ping_rtt_us.fetch_max(us, Ordering::Relaxed);
                }
            }
        };
        let conn = match Split::start(ws, on_pong) {
            Ok(conn) => conn,
            Err(e) => return FeedEnd::Failed(FeedError::Connection(Arc::new(e))),
        };

        let start = Instant::now();
        let mut next_ping = config.ping_interval.map(|every| start + every);
        let per_batch = ((BATCH_BYTES / config.size.max(1)) as u64).clamp(1, BATCH_MESSAGES);
        let mut text = String::with_capacity(config.size + 96);
        let stopped = loop {
            let remaining = config
                .count
                .map_or(u64::MAX, |c| c.saturating_sub(report.sent));
            if remaining == 0 {
                break Stop::Completed;
            }
            let now = Instant::now();
            if let (Some(at), Some(every)) = (next_ping, config.ping_interval) {
                if now >= at {
                    let id = report.pings_sent;
                    pings
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .sent(id, Instant::now());
                    if let Err(e) = conn.send(|proto| proto.send_ping(id.to_string().as_bytes())) {
                        break Stop::WriteFailed(e);
                    }
                    report.pings_sent += 1;
                    self.live.pings_sent.fetch_add(1, Ordering::Relaxed);
                    next_ping = Some((at + every).max(now));
                }
            }
            // Message k is due at start + k / rate: send every message due
            // by now (in batches), or wait until the next one is, waking
            // at once if the reader sees the connection end.
            let due = match config.rate {
                None => u64::MAX,
                Some(rate) => {
                    let next_due = start + Duration::from_secs_f64(report.sent as f64 / rate);
                    if now < next_due {
                        let until = next_ping.map_or(next_due, |p| p.min(next_due));
                        if let Some(end) = conn.wait_end(until.saturating_duration_since(now)) {
                            break Stop::Ended(end);
                        }
                        continue;
                    }
                    report.max_behind = report.max_behind.max(now - next_due);
                    let due_by_now = ((now - start).as_secs_f64() * rate) as u64 + 1;
                    due_by_now.saturating_sub(report.sent).max(1)
                }
            };
            let n = due.min(remaining).min(per_batch);
            let mut bytes = 0;
            let first = report.sent;
            let write_start = Instant::now();
            let sent = conn.send(|proto| {
                for i in 0..n {
                    FeedMessage::numbered(first + i, config.channels, unix_micros())
                        .encode_into(config.size, &mut text);
                    bytes += text.len() as u64;
                    proto.send_text(&text)?;
                }
                Ok(())
            });
            if let Err(e) = sent {
                break Stop::WriteFailed(e);
            }
            let took = write_start.elapsed();
            report.write_time += took;
            report.longest_write = report.longest_write.max(took);
            report.sent += n;
            report.bytes += bytes;
            self.live.sent.fetch_add(n, Ordering::Relaxed);
        };
        let end = finish(&conn, stopped);
        drop(conn);
        // Read after the end: a pong that answers the last ping arrives
        // before the client's close, which the end waited for.
        let log = pings.lock().unwrap_or_else(|e| e.into_inner());
        report.pongs = log.answered;
        report.worst_ping_rtt = log.worst;
        end
    }
}

/// Why the feed's writer stopped.
enum Stop {
    /// `count` messages sent.
    Completed,
    /// A send failed: the client closed, or the connection broke.
    WriteFailed(Error),
    /// The reader saw the connection end while the writer waited.
    Ended(ReaderEnd),
}

/// Ends the connection: closes it after the last message, or learns from
/// the reader why the writer stopped.
fn finish(conn: &Split, stopped: Stop) -> FeedEnd {
    match stopped {
        Stop::Completed => {
            // Close and wait for the client's answer.
            let waited = conn.close_timeout();
            let answer = match conn.send(|proto| {
                proto.send_close(Some(&CloseFrame::new(CloseCode::NORMAL, "feed complete")))
            }) {
                Ok(()) => conn.wait_end(waited),
                Err(e) => return FeedEnd::Failed(FeedError::Closing(Arc::new(e))),
            };
            match answer {
                Some(ReaderEnd::Closed(_)) => FeedEnd::Completed,
                Some(ReaderEnd::Failed(e)) => FeedEnd::Failed(FeedError::Closing(Arc::new(e))),
                None => FeedEnd::Failed(FeedError::Closing(Arc::new(Error::Timeout(
                    Timeout::Close(waited),
                )))),
            }
        }
        Stop::Ended(end) => reader_end(end),
        Stop::WriteFailed(write) => {
            // The reader knows whether the client closed or the
            // connection broke.
            let waited = Duration::from_secs(5);
            match conn.wait_end(waited) {
                Some(end) => reader_end(end),
                None => FeedEnd::Failed(FeedError::NoEnd {
                    write: Arc::new(write),
                    waited,
                }),
            }
        }
    }
}

fn reader_end(end: ReaderEnd) -> FeedEnd {
    match end {
        ReaderEnd::Closed(frame) => FeedEnd::ClientClosed(frame),
        ReaderEnd::Failed(e) => FeedEnd::Failed(FeedError::Connection(Arc::new(e))),
    }
}

/// At most this many messages, and about this many bytes, go out in one
/// write when the feed is behind its schedule or unpaced: one system call
/// per message would make the feed, not the client, the bottleneck.
const BATCH_MESSAGES: u64 = 64;
const BATCH_BYTES: usize = 64 << 10;

fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Pings not yet answered, and the round trips of those that were.
#[derive(Debug, Default)]
struct PingLog {
    /// `(id, written at)`, oldest first; a client that never answers
    /// cannot make it grow past [`PingLog::OUTSTANDING`].
    outstanding: VecDeque<(u64, Instant)>,
    answered: u64,
    worst: Option<Duration>,
}

impl PingLog {
    const OUTSTANDING: usize = 64;

    fn sent(&mut self, id: u64, at: Instant) {
        if self.outstanding.len() == Self::OUTSTANDING {
            self.outstanding.pop_front();
        }
        self.outstanding.push_back((id, at));
    }

    /// The round trip of the ping this pong answers, if it answers one.
    fn answered(&mut self, payload: &[u8], at: Instant) -> Option<Duration> {
        let id: u64 = std::str::from_utf8(payload).ok()?.parse().ok()?;
        let index = self.outstanding.iter().position(|&(i, _)| i == id)?;
        let (_, sent) = self.outstanding.remove(index)?;
        let rtt = at.saturating_duration_since(sent);
        self.answered += 1;
        self.worst = Some(self.worst.map_or(rtt, |w| w.max(rtt)));
        Some(rtt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_through_their_text_at_any_size() {
        for size in [0, 10, 70, 71, 128, 4096] {
            let message = FeedMessage::numbered(12_345, 7, 1_764_582_000_123_456);
            let mut text = String::new();
            message.encode_into(size, &mut text);
            assert!(text.len() >= size, "{size}: {text}");
            if size > 80 {
                assert_eq!(text.len(), size);
            }
            assert_eq!(FeedMessage::parse(&text), Some(message));
        }
    }

    #[test]
    fn message_numbers_follow_the_channels_round_robin() {
        let m = FeedMessage::numbered(10, 4, 0);
        assert_eq!((m.channel, m.seq, m.n), (2, 2, 10));
    }

    #[test]
    fn parse_refuses_what_is_not_a_feed_message() {
        for text in [
            "",
            "{}",
            "{\"channel\":x",
            "{\"channel\":1,\"seq\":2,\"n\":3}",
        ] {
            assert_eq!(FeedMessage::parse(text), None, "{text:?}");
        }
    }

    #[test]
    fn a_query_overrides_the_configuration_and_rejects_unknown_keys() {
        let base = FeedConfig::default();
        let c = base
            .with_query("channels=3&rate=250.5&size=64&count=9&ping_ms=0")
            .unwrap();
        assert_eq!(c.channels, 3);
        assert_eq!(c.rate, Some(250.5));
        assert_eq!(c.size, 64);
        assert_eq!(c.count, Some(9));
        assert_eq!(c.ping_interval, None);
        assert_eq!(base.with_query("channels=0"), Err(QueryError::NoChannels));
        assert!(matches!(
            base.with_query("rate=-1"),
            Err(QueryError::NotANumber { key, .. }) if key == "rate"
        ));
        assert_eq!(
            base.with_query("colour=blue"),
            Err(QueryError::UnknownKey("colour".into()))
        );
    }

    #[test]
    fn the_ping_log_matches_pongs_to_pings_and_stays_bounded() {
        let mut log = PingLog::default();
        let t0 = Instant::now();
        for id in 0..100 {
            log.sent(id, t0);
        }
        assert_eq!(log.outstanding.len(), PingLog::OUTSTANDING);
        // Ping 0 was forgotten; 99 is known.
        assert_eq!(log.answered(b"0", t0), None);
        let rtt = log.answered(b"99", t0 + Duration::from_millis(5));
        assert_eq!(rtt, Some(Duration::from_millis(5)));
        assert_eq!(log.answered(b"99", t0), None, "answered once only");
        assert_eq!(log.answered(b"junk", t0), None);
        assert_eq!(
            (log.answered, log.worst),
            (1, Some(Duration::from_millis(5)))
        );
    }
}
