//! [`Redis`]: each message appended to a Redis stream (feature
//! `sink-redis`).
//!
//! Why Redis Streams: many deployments already run a Redis, and a stream
//! is a durable, ordered log that any number of consumers (or consumer
//! groups, `XREADGROUP`) read at their own pace, so the bridge never waits
//! for the slowest of them.
//!
//! # What is stored
//!
//! One stream entry per message: `XADD KEY * data PAYLOAD`, one field,
//! `data`, holding the WebSocket message's bytes unchanged (a text
//! message's UTF-8, a binary message's bytes; a consumer cannot tell the
//! two apart). The entry id is Redis's own (`*`: milliseconds-sequence).
//! With [`with_id_field(true)`](RedisBuilder::with_id_field) each entry
//! also has a second field, `id`, the record's [`MessageId`](super::MessageId)
//! (see "Guarantee" for why one would want it). With
//! [`maxlen(n)`](RedisBuilder::maxlen) each `XADD` also trims the stream
//! (`MAXLEN ~ n`, see there).
//!
//! A batch is one pipeline: every `XADD` is sent at once, and
//! [`publish`](super::Sink::publish) resolves once every reply has come.
//!
//! One connection (the `redis` crate's multiplexed connection, on tokio).
//! When it is lost, or replies do not come in time, it is dropped: the
//! publish that finds out fails with a retryable error, and the next one
//! connects again (bounded by the connect timeout). So after a server
//! restart the first publish fails even if the sink was idle meanwhile;
//! the caller's retry goes through.
//!
//! # Guarantee: at least once
//!
//! When `publish` returns `Ok`, every record of the batch is in the stream
//! (as durable as the server's persistence settings make it: a server
//! that is killed without `appendonly yes` loses what it held in memory).
//!
//! When it fails with a retryable error ([`SinkError::Timeout`], or
//! [`SinkError::Unreachable`] after the pipeline was sent: the connection
//! was lost, the server killed), the server may have appended none, some
//! or all of the batch's records before its replies were lost. Publishing
//! the batch again, as the caller should, then appends those records a
//! second time: **a stream may hold duplicates, only of records of a batch
//! whose publish failed and was retried**, never of a batch that was
//! acknowledged. Redis cannot drop the copies for us: an `XADD` with an
//! explicit entry id would be refused when not above the stream's last
//! one, but our ids are not ordered across runs (each run starts its
//! sequence again under a new random run id), so the entry ids are
//! Redis's. Consumers that must not see a message twice turn on
//! [`with_id_field(true)`](RedisBuilder::with_id_field) and skip an entry
//! whose `id` they have seen (duplicates are at most one batch apart).
//! It is opt-in because the issue this sink was built for fixes the format
//! at one field, `data`, and consumers may rely on that.
//!
//! A refused batch ([`SinkError::Refused`]: the key holds another type,
//! the server is out of memory) may have been stored in part (Redis runs
//! each `XADD` on its own); the error says how many records were.
//!
//! # Not here
//!
//! TLS (`rediss://`), Unix sockets, Sentinel and Cluster: the URL is
//! refused with [`SinkError::Config`].

use super::{Record, Sink, SinkError};
use percent_encoding::percent_decode_str;
use redis::aio::MultiplexedConnection;
use redis::{
    AsyncConnectionConfig, ConnectionAddr, ErrorKind, IntoConnectionInfo, RedisConnectionInfo,
    RedisError, ServerErrorKind, Value,
};
use std::time::Duration;

/// Appends messages to a Redis stream (see the module docs).
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), floodgate::sink::SinkError> {
/// use floodgate::sink::{MessageId, Record, Redis, RunId, Sink};
/// use floodgate::Message;
///
/// // The stream `feeds/btc-usd`, kept to about a million entries.
/// let mut sink = Redis::builder("redis://127.0.0.1:6379/feeds/btc-usd")?
///     .maxlen(1_000_000)
///     .connect()
///     .await?;
/// assert_eq!(sink.describe(), "redis://127.0.0.1:6379/feeds/btc-usd");
/// let run = RunId::random();
/// let message = Message::text(r#"{"price":"101.5"}"#);
/// sink.publish(&[Record { id: MessageId::new(run, 0), message: &message }]).await?;
/// // `redis-cli XRANGE feeds/btc-usd - +` shows it, in the field `data`.
/// # Ok(())
/// # }
/// ```
pub struct Redis {
    client: redis::Client,
    /// `None` after a lost connection or a timeout: the next publish
    /// connects again (the state of a connection whose replies did not
    /// come is unknown, so it is not reused).
    conn: Option<MultiplexedConnection>,
    settings: Settings,
}

/// What a [`Redis`] sink is built from: [`Redis::builder`], then the
/// options, then [`connect`](RedisBuilder::connect).
pub struct RedisBuilder {
    client: redis::Client,
    settings: Settings,
}

struct Settings {
    /// The stream's key, as bytes (Redis keys are binary).
    key: Vec<u8>,
    /// `redis://HOST:PORT/KEY`, the key as written in the URL.
    name: String,
    /// `redis://HOST:PORT`, for the error of a server that cannot be
    /// reached.
    addr: String,
    maxlen: Option<u64>,
    id_field: bool,
    connect_timeout: Duration,
    ack_timeout: Duration,
}

impl std::fmt::Debug for Redis {
    // By hand: the client holds the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis")
            .field("sink", &self.settings.name)
            .field("connected", &self.conn.is_some())
            .field("maxlen", &self.settings.maxlen)
            .field("id_field", &self.settings.id_field)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for RedisBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBuilder")
            .field("sink", &self.settings.name)
            .field("maxlen", &self.settings.maxlen)
            .field("id_field", &self.settings.id_field)
            .field("connect_timeout", &self.settings.connect_timeout)
            .field("ack_timeout", &self.settings.ack_timeout)
            .finish_non_exhaustive()
    }
}

impl Redis {
    /// How long [`RedisBuilder::connect`] (and a reconnection in
    /// [`publish`](super::Sink::publish)) waits for the server by default.
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
    /// How long [`publish`](super::Sink::publish) waits for a batch's
    /// replies by default.
    pub const DEFAULT_ACK_TIMEOUT: Duration = Duration::from_secs(5);

    /// Connects to the stream named by `url`, with the default options:
    /// `Redis::builder(url)?.connect().await`.
    ///
    /// # Errors
    ///
    /// As [`Redis::builder`] and [`RedisBuilder::connect`].
    pub async fn connect(url: &str) -> Result<Redis, SinkError> {
        Redis::builder(url)?.connect().await
    }

    /// Reads `url`, `redis://[USER[:PASSWORD]@]HOST[:PORT]/KEY`: the
    /// stream key is the URL's whole path after the first `/` (it may
    /// contain `/`, and percent-escapes, `%20` for a space), not a database
    /// number as in other Redis clients' URLs (the stream is in database
    /// 0). The port defaults to 6379.
    ///
    /// ```
    /// use floodgate::sink::Redis;
    ///
    /// let builder = Redis::builder("redis://:secret@10.0.0.5/feeds/btc-usd").unwrap();
    /// assert!(format!("{builder:?}").contains("redis://10.0.0.5:6379/feeds/btc-usd"));
    /// assert!(Redis::builder("redis://10.0.0.5:6379").is_err()); // no key
    /// ```
    ///
    /// # Errors
    ///
    /// [`SinkError::Config`] when the URL is not one (a missing key, a
    /// query, `rediss://`, which is not supported yet).
    pub fn builder(url: &str) -> Result<RedisBuilder, SinkError> {
        let parsed = url::Url::parse(url).map_err(|e| SinkError::Config {
            sink: redact(url),
            reason: format!("not a URL ({e}); give redis://[USER:PASSWORD@]HOST:PORT/KEY"),
        })?;
        let config = |reason: String| SinkError::Config {
            sink: redact(url),
            reason,
        };
        match parsed.scheme() {
            "redis" => {}
            "rediss" => {
                return Err(config(
                    "TLS (rediss://) is not supported by this sink yet; use redis:// \
                     (on a trusted network, or through a TLS tunnel such as stunnel)"
                        .into(),
                ))
            }
            other => {
                return Err(config(format!(
                    "the scheme is {other:?}, not redis; give redis://HOST:PORT/KEY"
                )))
            }
        }
        let host = match parsed.host() {
            Some(url::Host::Domain(d)) if !d.is_empty() => d.to_owned(),
            Some(url::Host::Ipv4(a)) => a.to_string(),
            Some(url::Host::Ipv6(a)) => a.to_string(),
            _ => {
                return Err(config(
                    "no host; give redis://HOST:PORT/KEY (Unix sockets are not supported)".into(),
                ))
            }
        };
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(config(
                "a query (?...) or fragment (#...) is not taken; the options are set on the \
                 builder (maxlen, ...), and a key with '?' or '#' escapes them (%3F, %23)"
                    .into(),
            ));
        }
        let port = parsed.port().unwrap_or(6379);
        // host_str keeps an IPv6 address's brackets, as a URL needs.
        let host_in_url = parsed.host_str().unwrap_or_default();
        let addr = format!("redis://{host_in_url}:{port}");
        let raw_key = parsed.path().strip_prefix('/').unwrap_or(parsed.path());
        let key: Vec<u8> = percent_decode_str(raw_key).collect();
        if key.is_empty() {
            return Err(config(format!(
                "no stream key; give one as the URL's path: {addr}/KEY (e.g. {addr}/feeds/btc-usd)"
            )));
        }
        let name = format!("{addr}/{raw_key}");
        let decode = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
        let mut redis_settings = RedisConnectionInfo::default();
        if !parsed.username().is_empty() {
            redis_settings = redis_settings.set_username(decode(parsed.username()));
        }
        if let Some(password) = parsed.password() {
            redis_settings = redis_settings.set_password(decode(password));
        }
        let info = ConnectionAddr::Tcp(host, port)
            .into_connection_info()
            .map_err(|e| config(e.to_string()))?
            .set_redis_settings(redis_settings);
        let client = redis::Client::open(info).map_err(|e| config(e.to_string()))?;
        Ok(RedisBuilder {
            client,
            settings: Settings {
                key,
                name,
                addr,
                maxlen: None,
                id_field: false,
                connect_timeout: Redis::DEFAULT_CONNECT_TIMEOUT,
                ack_timeout: Redis::DEFAULT_ACK_TIMEOUT,
            },
        })
    }

    /// Connects, or returns the connection already made.
    async fn connection(&mut self) -> Result<&mut MultiplexedConnection, SinkError> {
        match &mut self.conn {
            Some(conn) => Ok(conn),
            none => Ok(none.insert(open(&self.client, &self.settings).await?)),
        }
    }
}

impl RedisBuilder {
    /// Trims the stream as it grows: each `XADD` carries `MAXLEN ~ n`, so
    /// the stream keeps at least the newest `n` entries and drops older
    /// ones. Approximate (`~`): Redis drops only whole nodes of its radix
    /// tree (`stream-node-max-entries`, 100 by default), so the stream
    /// holds `n` up to about `n` + 100 entries, for a trim that costs
    /// almost nothing. Without it the stream grows until trimmed by
    /// someone else (`XTRIM`) or the server runs out of memory.
    pub fn maxlen(mut self, n: u64) -> RedisBuilder {
        self.settings.maxlen = Some(n);
        self
    }

    /// With `true`, each entry has a second field, `id`, the record's
    /// [`MessageId`](super::MessageId) (`RRRRRRRRRRRRRRRR-SEQ`), after
    /// `data`: consumers can then drop the duplicates a retried batch may
    /// leave (see the module docs). Off by default: the stored format is
    /// then exactly one field, `data`.
    pub fn with_id_field(mut self, on: bool) -> RedisBuilder {
        self.settings.id_field = on;
        self
    }

    /// How long connecting (TCP, authentication, a first `PING`) may take
    /// before it fails with [`SinkError::Unreachable`]; 10 s by default.
    /// Also bounds each reconnection in [`publish`](super::Sink::publish).
    pub fn connect_timeout(mut self, timeout: Duration) -> RedisBuilder {
        self.settings.connect_timeout = timeout;
        self
    }

    /// How long [`publish`](super::Sink::publish) waits for the replies to
    /// a batch before it fails with [`SinkError::Timeout`]; 5 s by default.
    /// A publish that must first connect again (after a lost connection)
    /// may take up to the connect timeout more.
    pub fn ack_timeout(mut self, timeout: Duration) -> RedisBuilder {
        self.settings.ack_timeout = timeout;
        self
    }

    /// Connects and checks that the server answers (`PING`, which also
    /// tells whether a password it requires was given).
    ///
    /// # Errors
    ///
    /// - [`SinkError::Unreachable`], naming `redis://HOST:PORT`, when
    ///   nothing answers there within the connect timeout (10 s by
    ///   default), the connection is refused, or the host does not
    ///   resolve;
    /// - [`SinkError::Refused`] when the server refuses the credentials
    ///   (a wrong password, none given where one is required), with its
    ///   words.
    pub async fn connect(self) -> Result<Redis, SinkError> {
        let conn = open(&self.client, &self.settings).await?;
        Ok(Redis {
            client: self.client,
            conn: Some(conn),
            settings: self.settings,
        })
    }
}

/// A new connection, authenticated and answering, within the connect
/// timeout.
async fn open(
    client: &redis::Client,
    settings: &Settings,
) -> Result<MultiplexedConnection, SinkError> {
    // The timeouts are ours: connect_timeout around connecting,
    // authenticating and the PING (below), ack_timeout around a whole
    // batch, not the library's per request (500 ms by default).
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(None)
        .set_response_timeout(None);
    let attempt = async {
        let mut conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        // Without a password the handshake does not authenticate, so a
        // server that requires one is found out here (NOAUTH), not at the
        // first batch.
        redis::cmd("PING").query_async::<Value>(&mut conn).await?;
        Ok::<_, RedisError>(conn)
    };
    match tokio::time::timeout(settings.connect_timeout, attempt).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(classify(e, &settings.addr)),
        Err(_) => Err(SinkError::Unreachable {
            sink: settings.addr.clone(),
            source: format!("no answer within {:?}", settings.connect_timeout).into(),
        }),
    }
}

/// A library error as a [`SinkError`] for `sink`: a server's refusal is
/// [`SinkError::Refused`] with its words, unless it is one that passes
/// (the server still loading its data after a restart, a failover);
/// everything else is about the connection and worth retrying.
fn classify(e: RedisError, sink: &str) -> SinkError {
    match e.kind() {
        ErrorKind::Server(
            ServerErrorKind::BusyLoading
            | ServerErrorKind::TryAgain
            | ServerErrorKind::MasterDown
            | ServerErrorKind::ClusterDown,
        ) => SinkError::Unreachable {
            sink: sink.to_owned(),
            source: Box::new(e),
        },
        ErrorKind::AuthenticationFailed => SinkError::Refused {
            sink: sink.to_owned(),
            reason: format!("wrong user or password ({e}); {CREDENTIALS_HINT}"),
        },
        _ => match e.code() {
            Some(code @ ("NOAUTH" | "WRONGPASS" | "NOPERM")) => SinkError::Refused {
                sink: sink.to_owned(),
                reason: format!("{}; {CREDENTIALS_HINT}", server_words(code, e.detail())),
            },
            Some(code) => SinkError::Refused {
                sink: sink.to_owned(),
                reason: server_words(code, e.detail()),
            },
            None => SinkError::Unreachable {
                sink: sink.to_owned(),
                source: Box::new(e),
            },
        },
    }
}

const CREDENTIALS_HINT: &str =
    "give the server's user and password in the URL: redis://[USER]:PASSWORD@HOST:PORT/KEY";

/// A server error as Redis wrote it: `WRONGTYPE Operation against a key
/// holding the wrong kind of value`.
fn server_words(code: &str, detail: Option<&str>) -> String {
    match detail {
        Some(detail) => format!("{code} {detail}"),
        None => code.to_owned(),
    }
}

/// `url` without its password, for an error about a URL that could not be
/// read.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("***"));
            }
            parsed.to_string()
        }
        // Unparsable: the userinfo cannot be found reliably, so it is all
        // left out.
        Err(_) => match url.rsplit_once('@') {
            Some((_, rest)) => format!("(...)@{rest}"),
            None => url.to_owned(),
        },
    }
}

impl Sink for Redis {
    async fn publish(&mut self, batch: &[Record<'_>]) -> Result<(), SinkError> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::Pipeline::with_capacity(batch.len());
        // Each reply is looked at (a refusal of one XADD does not hide the
        // others' replies), rather than the first error failing it all.
        pipe.ignore_errors();
        for record in batch {
            let cmd = pipe.cmd("XADD").arg(&self.settings.key[..]);
            if let Some(n) = self.settings.maxlen {
                cmd.arg("MAXLEN").arg("~").arg(n);
            }
            cmd.arg("*").arg("data").arg(record.message.as_bytes());
            if self.settings.id_field {
                cmd.arg("id").arg(record.id.to_string());
            }
        }
        let name = self.settings.name.clone();
        let ack_timeout = self.settings.ack_timeout;
        let conn = self.connection().await?;
        let replies =
            match tokio::time::timeout(ack_timeout, pipe.query_async::<Vec<Value>>(conn)).await {
                Ok(Ok(replies)) => replies,
                Ok(Err(e)) => {
                    let err = classify(e, &name);
                    if err.is_retryable() {
                        self.conn = None;
                    }
                    return Err(err);
                }
                Err(_) => {
                    self.conn = None;
                    return Err(SinkError::Timeout {
                        sink: name,
                        after: ack_timeout,
                    });
                }
            };
        if replies.len() != batch.len() {
            self.conn = None;
            return Err(SinkError::Unreachable {
                sink: name,
                source: format!(
                    "{} replies to a pipeline of {} XADDs; the connection is dropped",
                    replies.len(),
                    batch.len()
                )
                .into(),
            });
        }
        let refused = replies.iter().find_map(|reply| match reply {
            Value::ServerError(e) => Some(server_words(e.code(), e.details())),
            _ => None,
        });
        match refused {
            None => Ok(()),
            Some(words) => {
                let stored = replies
                    .iter()
                    .filter(|r| !matches!(r, Value::ServerError(_)))
                    .count();
                Err(SinkError::Refused {
                    sink: name,
                    reason: format!(
                        "{words} ({stored} of the batch's {} records were stored)",
                        batch.len()
                    ),
                })
            }
        }
    }

    fn describe(&self) -> String {
        self.settings.name.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(url: &str) -> Settings {
        Redis::builder(url).unwrap().settings
    }

    fn config_error(url: &str) -> String {
        match Redis::builder(url) {
            Err(e @ SinkError::Config { .. }) => {
                assert!(!e.is_retryable());
                e.to_string()
            }
            other => panic!("{url}: {other:?}"),
        }
    }

    #[test]
    fn the_key_is_the_whole_path_decoded() {
        let s = settings("redis://127.0.0.1:7000/feeds/btc-usd");
        assert_eq!(s.key, b"feeds/btc-usd");
        assert_eq!(s.name, "redis://127.0.0.1:7000/feeds/btc-usd");
        assert_eq!(s.addr, "redis://127.0.0.1:7000");
        let s = settings("redis://u:p%40ss@example.com/a%20b%2Fc%FF");
        assert_eq!(s.key, b"a b/c\xff");
        assert_eq!(s.name, "redis://example.com:6379/a%20b%2Fc%FF");
        // A number is a key here, not a database.
        assert_eq!(settings("redis://h:1/0").key, b"0");
        let s = settings("redis://[::1]:7000/k");
        assert_eq!(s.name, "redis://[::1]:7000/k");
    }

    #[test]
    fn the_password_is_never_shown() {
        let builder = Redis::builder("redis://user:hunter2@h:1/k").unwrap();
        assert!(!format!("{builder:?}").contains("hunter2"));
        assert_eq!(builder.settings.name, "redis://h:1/k");
        let e = config_error("redis://user:hunter2@h:1/");
        assert!(!e.contains("hunter2"), "{e}");
        assert!(e.contains("redis://h:1/KEY"), "{e}");
    }

    #[test]
    fn urls_that_cannot_work_are_config_errors_saying_what_to_give() {
        assert!(config_error("redis://h:1").contains("no stream key"));
        assert!(config_error("redis://h:1/").contains("no stream key"));
        assert!(config_error("rediss://h:1/k").contains("TLS"));
        assert!(config_error("http://h:1/k").contains("not redis"));
        assert!(config_error("redis://h:1/k?maxlen=5").contains("query"));
        assert!(config_error("redis:///k").contains("no host"));
        assert!(config_error("not a url").contains("not a URL"));
    }
}
