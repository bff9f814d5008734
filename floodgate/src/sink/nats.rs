//! [`Nats`]: publishes each message to a NATS JetStream stream, and
//! counts it as delivered once the stream acknowledged storing it (feature
//! `sink-nats`).
//!
//! Why JetStream and not core NATS: a core NATS publish is fire-and-forget
//! (nothing tells the sender that a subscriber, or anyone, got it), so a
//! bridge could never know when a message is safe to drop from its buffer.
//! A JetStream publish is answered with a `PubAck` once the stream has
//! stored the message, and a stream deduplicates by the `Nats-Msg-Id`
//! header, which makes retries harmless.
//!
//! # What is sent
//!
//! Each record becomes one message on the configured subject: the body is
//! the WebSocket message's bytes unchanged (a text message as its UTF-8),
//! with the header `Nats-Msg-Id: <MessageId>` (e.g.
//! `00c0ffee00c0ffee-42`). A batch is pipelined: every message is sent,
//! then every acknowledgement awaited.
//!
//! # Which stream
//!
//! - With [`NatsBuilder::stream`]: that stream. It is created (capturing
//!   the subject, file storage) when missing; when it exists it must
//!   capture the subject, else connecting fails with
//!   [`SinkError::Refused`].
//! - Without: the stream that already captures the subject (JetStream's
//!   stream-by-subject lookup), or, when none does, a new one (capturing
//!   the subject, file storage) named by [`Nats::stream_name_for`]: the subject
//!   with every character other than ASCII letters, digits, `-` and `_`
//!   replaced by `_` (`feeds.btc-usd` -> `feeds_btc-usd`), since stream
//!   names cannot hold `.`, `*`, `>`, whitespace or path separators.
//!
//! # Guarantees: at least once, duplicates dropped within the window
//!
//! A publish that resolves `Ok` means JetStream stored every record of the
//! batch (or found it a duplicate of one it stored). A publish that fails
//! may have stored part of the batch: publish the same batch again with the
//! same ids. The stream drops a message whose `Nats-Msg-Id` it has seen
//! within its **duplicate window** (the stream's setting: 2 minutes by
//! default, which streams created here keep), so a retry within the window
//! stores nothing twice; a retry later than that is stored again. Messages
//! of a new run carry a new [`RunId`](super::RunId), so they are never
//! taken for duplicates.
//!
//! "Stored" is JetStream's: with file storage, a server killed (SIGKILL)
//! mid-publish lost nothing it had acknowledged in the tests, but it syncs
//! its files to the disk on its own schedule (`sync_interval`, 2 min by
//! default), so a machine crash can lose the last acknowledged messages.
//!
//! Order: the stream holds the messages in the order published, across a
//! lost connection or a timeout too, as long as the caller retries the
//! failed batch before publishing the next. A lost connection is not
//! resumed by the client in the background (it would send the copies it
//! still had queued ahead of the retry): the client tries once at once
//! (only a server back within that instant gets the queued copies first),
//! then is dropped, and the next publish connects anew.
//!
//! # Errors
//!
//! - [`SinkError::Unreachable`] (retryable): the server cannot be reached
//!   at connect (within the connect timeout, 10 s by default), or the
//!   connection was lost during a publish, or no new one can be made
//!   within the ack timeout when a publish starts (attempts 100 ms apart).
//! - [`SinkError::Timeout`] (retryable): connected, but an acknowledgement
//!   did not come within the ack timeout (5 s by default).
//! - [`SinkError::Refused`] (not retryable): wrong credentials, JetStream
//!   not enabled on the server, no stream for the subject (deleted after
//!   connecting), a stream that refuses (sealed, full with discard new, a
//!   stream name taken with another configuration), with the server's
//!   words; also an address or subject that is malformed.

use super::{Record, Sink, SinkError};
use async_nats::jetstream::context::{
    Context, ContextBuilder, CreateStreamErrorKind, GetStreamByNameErrorKind, PublishAckFuture,
    PublishErrorKind,
};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::{Config as StreamConfig, StorageType};
use async_nats::{ConnectErrorKind, ConnectOptions, Event};
use bytes::Bytes;
use floodgate_proto::Message;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How long [`NatsBuilder::connect`] waits by default.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a publish waits by default for an acknowledgement.
const DEFAULT_ACK_TIMEOUT: Duration = Duration::from_secs(5);
/// The port of a `nats://` address that names none.
const DEFAULT_PORT: u16 = 4222;
/// How many acknowledgements a publish waits for at once: a larger batch
/// waits for the oldest before sending more (async-nats holds one permit
/// per pending acknowledgement, and would wait for a free one forever if a
/// batch held them all before awaiting any).
const MAX_IN_FLIGHT: usize = 4096;

/// A NATS JetStream sink (see the module docs).
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), floodgate::sink::SinkError> {
/// use floodgate::sink::{MessageId, Nats, Record, RunId, Sink};
/// use floodgate::Message;
///
/// // A server started with `nats-server -js`; the stream that captures
/// // `feeds.trades` is used, or one named `feeds_trades` is created.
/// let mut sink = Nats::connect("nats://127.0.0.1:4222", "feeds.trades").await?;
/// let run = RunId::random();
/// let messages = [Message::text("a"), Message::binary(vec![1, 2, 3])];
/// let batch: Vec<Record<'_>> = messages
///     .iter()
///     .enumerate()
///     .map(|(seq, message)| Record { id: MessageId::new(run, seq as u64), message })
///     .collect();
/// sink.publish(&batch).await?; // stored by JetStream: safe to drop from the buffer
/// assert_eq!(sink.describe(), "nats://127.0.0.1:4222/feeds.trades");
/// # Ok(())
/// # }
/// ```
pub struct Nats {
    /// `None` once a connection was lost: the next publish connects anew.
    conn: Option<Conn>,
    /// The address without credentials, and the credentials: to connect
    /// again.
    url: String,
    credentials: Option<(String, String)>,
    subject: async_nats::Subject,
    stream: String,
    /// `nats://HOST:PORT/SUBJECT`, without credentials.
    name: String,
    ack_timeout: Duration,
}

/// One connection (an async-nats client that does not reconnect).
struct Conn {
    client: async_nats::Client,
    js: Context,
    /// Whether the client is connected, from its events: a publish stops
    /// waiting for acknowledgements as soon as the connection is lost
    /// (those acknowledgements will never come).
    connected: watch::Receiver<bool>,
}

impl Conn {
    fn is_connected(&self) -> bool {
        *self.connected.borrow()
            && self.client.connection_state() == async_nats::connection::State::Connected
    }
}

impl std::fmt::Debug for Nats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nats")
            .field("name", &self.name)
            .field("stream", &self.stream)
            .field("ack_timeout", &self.ack_timeout)
            .field("connected", &self.conn.as_ref().map(Conn::is_connected))
            .finish_non_exhaustive()
    }
}

/// Options of a [`Nats`] sink, from [`Nats::builder`].
#[derive(Debug, Clone)]
pub struct NatsBuilder {
    url: String,
    subject: String,
    stream: Option<String>,
    connect_timeout: Duration,
    ack_timeout: Duration,
}

fn stream_name_for(subject: &str) -> String {
    subject
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn unreachable(sink: &str, why: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> SinkError {
    SinkError::Unreachable {
        sink: sink.to_owned(),
        source: why.into(),
    }
}

fn refused(sink: &str, reason: impl Into<String>) -> SinkError {
    SinkError::Refused {
        sink: sink.to_owned(),
        reason: reason.into(),
    }
}

/// How long a publish waits between two attempts to connect again.
const RECONNECT_PAUSE: Duration = Duration::from_millis(100);

impl Nats {
    /// Connects to the server at `url` (`nats://HOST:PORT`, or
    /// `nats://USER:PASSWORD@HOST:PORT`) to publish to `subject`, with the
    /// defaults of [`Nats::builder`].
    ///
    /// # Errors
    ///
    /// See [`NatsBuilder::connect`].
    pub async fn connect(url: &str, subject: &str) -> Result<Nats, SinkError> {
        Nats::builder(url, subject).connect().await
    }

    /// Options: the stream, the timeouts.
    pub fn builder(url: &str, subject: &str) -> NatsBuilder {
        NatsBuilder {
            url: url.to_owned(),
            subject: subject.to_owned(),
            stream: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            ack_timeout: DEFAULT_ACK_TIMEOUT,
        }
    }

    /// The name of the stream created for `subject` when none captures it
    /// and none was named: every character other than ASCII letters,
    /// digits, `-` and `_` becomes `_` (`feeds.btc-usd` ->
    /// `feeds_btc-usd`).
    ///
    /// Two subjects may map to one name (`a.b`, `a_b`): the second then
    /// finds the name taken with another configuration and connecting fails
    /// with [`SinkError::Refused`]; name the stream with
    /// [`NatsBuilder::stream`].
    ///
    /// ```
    /// use floodgate::sink::Nats;
    /// assert_eq!(Nats::stream_name_for("feeds.btc-usd"), "feeds_btc-usd");
    /// ```
    pub fn stream_name_for(subject: &str) -> String {
        stream_name_for(subject)
    }

    /// The name of the stream the messages go to.
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// The subject the messages are published to.
    pub fn subject(&self) -> &str {
        self.subject.as_str()
    }

    /// A connection that is up: the current one, or a new one made within
    /// the ack timeout (attempts 100 ms apart, so that a caller retrying in
    /// a loop is paced by them).
    async fn ensure_connected(&mut self) -> Result<(), SinkError> {
        if self.conn.as_ref().is_some_and(Conn::is_connected) {
            return Ok(());
        }
        // The old client goes, with whatever it still had queued: sent
        // later, those copies would land ahead of the caller's retry.
        self.conn = None;
        let deadline = tokio::time::Instant::now() + self.ack_timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let attempt = open(
                &self.url,
                self.credentials.clone(),
                &self.name,
                left,
                self.ack_timeout,
            );
            let failed = match tokio::time::timeout(left, attempt).await {
                Ok(Ok(conn)) => {
                    self.conn = Some(conn);
                    return Ok(());
                }
                Ok(Err(err @ SinkError::Refused { .. })) => return Err(err),
                Ok(Err(err)) => err,
                Err(_) => unreachable(
                    &self.name,
                    format!(
                        "the connection was lost and no new one was made within {:?}",
                        self.ack_timeout
                    ),
                ),
            };
            if tokio::time::Instant::now() + RECONNECT_PAUSE >= deadline {
                return Err(failed);
            }
            tokio::time::sleep(RECONNECT_PAUSE).await;
        }
    }

    fn publish_error(
        &self,
        conn: &Conn,
        err: async_nats::jetstream::context::PublishError,
    ) -> SinkError {
        match err.kind() {
            PublishErrorKind::TimedOut if !conn.is_connected() => {
                unreachable(&self.name, format!("the connection was lost: {err}"))
            }
            PublishErrorKind::TimedOut => SinkError::Timeout {
                sink: self.name.clone(),
                after: self.ack_timeout,
            },
            PublishErrorKind::BrokenPipe => unreachable(&self.name, err),
            PublishErrorKind::StreamNotFound => refused(
                &self.name,
                format!(
                    "no stream captures subject {} (stream {} was deleted?): {err}; create one \
                     or connect again",
                    self.subject, self.stream
                ),
            ),
            PublishErrorKind::Other if !conn.is_connected() => unreachable(&self.name, err),
            _ => refused(&self.name, err.to_string()),
        }
    }

    async fn await_ack(&self, conn: &Conn, ack: PublishAckFuture) -> Result<(), SinkError> {
        ack.await
            .map(drop)
            .map_err(|err| self.publish_error(conn, err))
    }

    async fn publish_all(&self, conn: &Conn, batch: &[Record<'_>]) -> Result<(), SinkError> {
        let mut pending: VecDeque<PublishAckFuture> =
            VecDeque::with_capacity(batch.len().min(MAX_IN_FLIGHT));
        for record in batch {
            if pending.len() >= MAX_IN_FLIGHT {
                if let Some(oldest) = pending.pop_front() {
                    self.await_ack(conn, oldest).await?;
                }
            }
            let publish = PublishMessage::build()
                .payload(payload(record.message))
                .message_id(record.id.to_string());
            let ack = conn
                .js
                .send_publish(self.subject.clone(), publish)
                .await
                .map_err(|err| self.publish_error(conn, err))?;
            pending.push_back(ack);
        }
        // Every message is on its way: the acknowledgements come back in
        // about one round trip, whichever order they are awaited in.
        for ack in pending {
            self.await_ack(conn, ack).await?;
        }
        Ok(())
    }

    /// Publishes on `conn`, failing as soon as the connection is lost.
    async fn publish_on(&self, conn: &Conn, batch: &[Record<'_>]) -> Result<(), SinkError> {
        let mut connected = conn.connected.clone();
        tokio::select! {
            result = self.publish_all(conn, batch) => result,
            _ = connected.wait_for(|up| !*up) => Err(unreachable(
                &self.name,
                "the connection was lost while waiting for acknowledgements",
            )),
        }
    }
}

/// The body of a record: the message's bytes, shared, not copied, for text
/// and binary messages.
fn payload(message: &Message) -> Bytes {
    match message {
        Message::Text(text) => text.clone().into_bytes(),
        Message::Binary(bytes) => bytes.clone(),
        other => Bytes::copy_from_slice(other.as_bytes()),
    }
}

/// Whether `subject` is one a message can be published to: dot-separated
/// non-empty tokens, no wildcards, no whitespace.
fn check_subject(subject: &str) -> Result<(), String> {
    if subject.is_empty() {
        return Err("the subject is empty".into());
    }
    if subject.split('.').any(str::is_empty) {
        return Err(format!("subject {subject:?} has an empty token"));
    }
    if subject
        .chars()
        .any(|c| c == '*' || c == '>' || c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "subject {subject:?} holds a wildcard or whitespace; messages are published to one \
             literal subject"
        ));
    }
    Ok(())
}

/// `nats://HOST:PORT` of `url`, without credentials.
fn address(url: &str) -> Result<String, String> {
    // Never echo the credentials back: name the address without them.
    let shown = url.rsplit('@').next().unwrap_or(url);
    let bad =
        |why: &str| format!("{shown:?} is not a NATS address ({why}); expected nats://HOST:PORT");
    let parsed = url::Url::parse(url).map_err(|err| bad(&err.to_string()))?;
    if parsed.scheme() != "nats" {
        return Err(bad("the scheme must be nats"));
    }
    let host = parsed.host_str().filter(|h| !h.is_empty());
    let host = host.ok_or_else(|| bad("no host"))?;
    if !(parsed.path().is_empty() || parsed.path() == "/") {
        return Err(bad("a path"));
    }
    let port = parsed.port().unwrap_or(DEFAULT_PORT);
    Ok(format!("nats://{host}:{port}"))
}

/// `url` without its credentials, and the credentials (percent-decoded).
fn split_credentials(url: &str) -> (String, Option<(String, String)>) {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return (url.to_owned(), None);
    };
    if parsed.username().is_empty() && parsed.password().is_none() {
        return (url.to_owned(), None);
    }
    let user = percent_decode(parsed.username());
    let password = percent_decode(parsed.password().unwrap_or(""));
    // Cannot fail on a URL that has credentials (it has a host).
    let _ = parsed.set_username("");
    let _ = parsed.set_password(None);
    (parsed.to_string(), Some((user, password)))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One connection to `url` (without credentials).
async fn open(
    url: &str,
    credentials: Option<(String, String)>,
    name: &str,
    connect_timeout: Duration,
    ack_timeout: Duration,
) -> Result<Conn, SinkError> {
    let (up, connected) = watch::channel(false);
    let up = Arc::new(up);
    let events = Arc::clone(&up);
    let options = ConnectOptions::new()
        .name("floodgate")
        .connection_timeout(connect_timeout)
        // One immediate attempt after a loss, then the client closes: the
        // next publish makes a new one. A client that reconnected on its
        // own later would send what it had queued (copies of a failed
        // batch) ahead of the caller's retry, out of order.
        .max_reconnects(1)
        .event_callback(move |event| {
            let up = Arc::clone(&events);
            async move {
                match event {
                    Event::Connected => {
                        up.send_replace(true);
                    }
                    Event::Disconnected | Event::Closed => {
                        up.send_replace(false);
                    }
                    _ => {}
                }
            }
        });
    // async-nats reads no credentials from the address: hand them over.
    let options = match credentials {
        Some((user, password)) => options.user_and_password(user, password),
        None => options,
    };
    let client = options.connect(url).await.map_err(|err| match err.kind() {
        ConnectErrorKind::AuthorizationViolation | ConnectErrorKind::Authentication => refused(
            name,
            format!("{err}; check the user and password in the address"),
        ),
        ConnectErrorKind::ServerParse | ConnectErrorKind::Tls => refused(name, err.to_string()),
        _ => unreachable(name, err),
    })?;
    // The Connected event may come after connect returns; the client is
    // connected now.
    up.send_replace(true);
    let js = ContextBuilder::new()
        .timeout(ack_timeout)
        .ack_timeout(ack_timeout)
        .max_ack_inflight(MAX_IN_FLIGHT)
        .build(client.clone());
    Ok(Conn {
        client,
        js,
        connected,
    })
}

impl NatsBuilder {
    /// Publishes into the stream `name`, created (capturing the subject,
    /// file storage) when missing. Without it: the stream that captures the
    /// subject, or one named by [`Nats::stream_name_for`].
    pub fn stream(mut self, name: &str) -> NatsBuilder {
        self.stream = Some(name.to_owned());
        self
    }

    /// How long connecting and finding (or creating) the stream may take
    /// before [`connect`](NatsBuilder::connect) fails with
    /// [`SinkError::Unreachable`]. Default: 10 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> NatsBuilder {
        self.connect_timeout = timeout;
        self
    }

    /// How long a publish waits for an acknowledgement (and for a new
    /// connection after one was lost) before failing. Default: 5 s.
    pub fn ack_timeout(mut self, timeout: Duration) -> NatsBuilder {
        self.ack_timeout = timeout;
        self
    }

    /// Connects, and finds or creates the stream (see the module docs).
    ///
    /// # Errors
    ///
    /// - [`SinkError::Unreachable`] naming `nats://HOST:PORT/SUBJECT` when
    ///   the server cannot be reached within the connect timeout.
    /// - [`SinkError::Refused`]: wrong credentials, JetStream not enabled,
    ///   a named stream that exists without capturing the subject, a stream
    ///   name taken with another configuration, a malformed address or
    ///   subject.
    pub async fn connect(self) -> Result<Nats, SinkError> {
        let shown = address(&self.url).unwrap_or_else(|_| "nats://?".into());
        let name = format!("{shown}/{}", self.subject);
        address(&self.url).map_err(|reason| refused(&name, reason))?;
        check_subject(&self.subject).map_err(|reason| refused(&name, reason))?;
        if let Some(stream) = &self.stream {
            if stream.is_empty() || stream_name_for(stream) != *stream {
                return Err(refused(
                    &name,
                    format!("{stream:?} is not a stream name (ASCII letters, digits, '-', '_')"),
                ));
            }
        }
        let (url, credentials) = split_credentials(&self.url);
        let timeout = self.connect_timeout;
        let setup = async {
            let conn = open(&url, credentials.clone(), &name, timeout, self.ack_timeout).await?;
            let stream = find_stream(&conn, &name, &self.subject, self.stream.as_deref()).await?;
            Ok::<_, SinkError>((conn, stream))
        };
        let (conn, stream) = match tokio::time::timeout(timeout, setup).await {
            Ok(result) => result?,
            Err(_) => return Err(unreachable(&name, format!("no answer within {timeout:?}"))),
        };
        Ok(Nats {
            conn: Some(conn),
            url,
            credentials,
            subject: self.subject.as_str().into(),
            stream,
            name,
            ack_timeout: self.ack_timeout,
        })
    }
}

/// The stream to publish into (see the module docs), created if needed.
async fn find_stream(
    conn: &Conn,
    name: &str,
    subject: &str,
    wanted: Option<&str>,
) -> Result<String, SinkError> {
    let api_error = |what: &str, err: &dyn std::fmt::Display| {
        if conn.is_connected() {
            refused(
                name,
                format!("{what}: {err}; is JetStream enabled on the server (nats-server -js)?"),
            )
        } else {
            unreachable(name, format!("{what}: {err}"))
        }
    };
    let found = match conn.js.stream_by_subject(subject).await {
        Ok(found) => Some(found),
        Err(err) if err.kind() == GetStreamByNameErrorKind::NotFound => None,
        Err(err) => {
            return Err(api_error(
                &format!("looking up the stream of {subject}"),
                &err,
            ))
        }
    };
    let stream = match (found, wanted) {
        (Some(found), None) => return Ok(found),
        (Some(found), Some(wanted)) if found == wanted => return Ok(found),
        (Some(found), Some(wanted)) => {
            return Err(refused(
                name,
                format!(
                    "subject {subject} is captured by stream {found}, not {wanted}; name stream \
                     {found} or none"
                ),
            ))
        }
        (None, Some(wanted)) => wanted.to_owned(),
        (None, None) => stream_name_for(subject),
    };
    let config = StreamConfig {
        name: stream.clone(),
        subjects: vec![subject.to_owned()],
        storage: StorageType::File,
        ..Default::default()
    };
    match conn.js.create_stream(config).await {
        Ok(_) => Ok(stream),
        Err(err) => match err.kind() {
            CreateStreamErrorKind::JetStream(js) => Err(refused(
                name,
                format!(
                    "creating stream {stream} for subject {subject}: {js}; a stream of that name \
                     exists without capturing the subject? add the subject to it or name \
                     another stream"
                ),
            )),
            _ => Err(api_error(&format!("creating stream {stream}"), &err)),
        },
    }
}

impl Sink for Nats {
    async fn publish(&mut self, batch: &[Record<'_>]) -> Result<(), SinkError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.ensure_connected().await?;
        let Some(conn) = self.conn.as_ref() else {
            return Err(unreachable(&self.name, "not connected"));
        };
        let result = self.publish_on(conn, batch).await;
        let lost = matches!(result, Err(SinkError::Unreachable { .. })) || !conn.is_connected();
        if lost {
            self.conn = None;
        }
        result
    }

    fn describe(&self) -> String {
        self.name.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_names_are_made_valid() {
        assert_eq!(stream_name_for("feeds.btc-usd"), "feeds_btc-usd");
        assert_eq!(stream_name_for("a/b\\c d\té"), "a_b_c_d__");
        assert_eq!(stream_name_for("Plain_Name-1"), "Plain_Name-1");
    }

    #[test]
    fn subjects_must_be_literal() {
        assert!(check_subject("feeds.trades").is_ok());
        for bad in ["", "a..b", ".a", "a.", "a.*", "a.>", "a b", "a\tb"] {
            assert!(check_subject(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn credentials_are_taken_from_the_address() {
        assert_eq!(
            split_credentials("nats://u%40x:p%3Ass@h:1"),
            (
                "nats://h:1".to_owned(),
                Some(("u@x".to_owned(), "p:ss".to_owned()))
            )
        );
        assert_eq!(
            split_credentials("nats://h:1"),
            ("nats://h:1".to_owned(), None)
        );
    }

    #[test]
    fn addresses_never_show_credentials() {
        assert_eq!(
            address("nats://u:secret@127.0.0.1:4333").as_deref(),
            Ok("nats://127.0.0.1:4333")
        );
        assert_eq!(address("nats://h").as_deref(), Ok("nats://h:4222"));
        assert_eq!(address("nats://[::1]:5").as_deref(), Ok("nats://[::1]:5"));
        for bad in ["http://h:1", "nats://", "h:4222", "nats://u:secret@h:1/x"] {
            let err = address(bad).unwrap_err();
            assert!(!err.contains("secret"), "{err}");
        }
    }
}
