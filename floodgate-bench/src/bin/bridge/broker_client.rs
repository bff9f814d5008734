//! The bench's own client of each broker, with the client crates of
//! floodgate's sinks (async-nats, redis): the plain publish loop that is
//! the limit of a row, the count polled while the bridge runs, the
//! read-back that checks a run, and the clean-up after it.
//!
//! Every broker call is bounded by [`CALL_TIMEOUT`] (a whole publish loop
//! or read-back by the caller's limit).

use std::collections::VecDeque;
use std::future::{Future, IntoFuture};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer, context::Context, message::PublishMessage, stream};
use futures_util::StreamExt;
use redis::aio::MultiplexedConnection;
use redis::Value;

use crate::brokers::{Broker, Kind};
use crate::feed::{number_of, payload};

/// Longest one broker call (a publish's ack, a count, a read) may take.
pub(crate) const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Entries per `XRANGE` when reading a stream back.
const READ_CHUNK: usize = 10_000;

/// Where a run's messages go: a NATS stream capturing one subject, or a
/// Redis stream key. Fresh for every run.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    /// NATS: the stream's name; Redis: the key.
    pub(crate) name: String,
    /// NATS: the subject the stream captures.
    pub(crate) subject: String,
}

impl Target {
    /// The target of run `run` of row `row` (`limit`, `bridge`) at `size`.
    pub(crate) fn new(kind: Kind, row: &str, size: usize, run: usize) -> Target {
        match kind {
            Kind::Nats => Target {
                name: format!("bench_{row}_{size}_{run}"),
                subject: format!("bench.{row}.{size}.{run}"),
            },
            Kind::Redis => Target {
                name: format!("bench:{row}:{size}:{run}"),
                subject: String::new(),
            },
        }
    }

    /// The bridge's `--to` (and `--stream`) for this target at `broker`.
    pub(crate) fn bridge_args(&self, broker: &Broker) -> Vec<String> {
        match broker.kind {
            Kind::Nats => vec![
                "--to".into(),
                format!("{}/{}", broker.url(), self.subject),
                "--stream".into(),
                self.name.clone(),
            ],
            Kind::Redis => vec!["--to".into(), format!("{}/{}", broker.url(), self.name)],
        }
    }
}

/// A connection to one broker.
pub(crate) enum Client {
    Nats(Context),
    Redis(MultiplexedConnection),
}

/// `what` within [`CALL_TIMEOUT`], its error as a string.
async fn bounded<T, E: std::fmt::Display>(
    what: &str,
    call: impl Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{what}: {e}")),
        Err(_) => Err(format!("{what}: no answer within {CALL_TIMEOUT:?}")),
    }
}

impl Client {
    pub(crate) async fn connect(broker: &Broker) -> Result<Client, String> {
        let url = broker.url();
        match broker.kind {
            Kind::Nats => {
                let client = bounded(
                    &format!("connect to {url}"),
                    async_nats::ConnectOptions::new()
                        .name("floodgate-bridge-bench")
                        .connection_timeout(CALL_TIMEOUT)
                        .connect(&url),
                )
                .await?;
                // As the sink's context: timeouts, and room for every ack
                // of a batch.
                Ok(Client::Nats(
                    jetstream::ContextBuilder::new()
                        .timeout(CALL_TIMEOUT)
                        .ack_timeout(CALL_TIMEOUT)
                        .max_ack_inflight(4096)
                        .build(client),
                ))
            }
            Kind::Redis => {
                let client = redis::Client::open(format!("{url}/"))
                    .map_err(|e| format!("redis client for {url}: {e}"))?;
                let conn = bounded(
                    &format!("connect to {url}"),
                    client.get_multiplexed_async_connection(),
                )
                .await?;
                Ok(Client::Redis(conn))
            }
        }
    }

    /// The plain publish loop (the limit): `n` messages of `size` bytes,
    /// built before the clock starts, then published. NATS: with a
    /// `Nats-Msg-Id` header as the sink sends, at most `batch` PubAcks
    /// outstanding (the oldest awaited before the next publish); Redis:
    /// pipelines of `batch` `XADD KEY * data PAYLOAD`, each sent whole and
    /// its replies read before the next.
    /// Returns the time from the first publish to the last ack. The target
    /// must be new (NATS: the stream is created here, before the clock).
    pub(crate) async fn plain_loop(
        &mut self,
        target: &Target,
        size: usize,
        n: u64,
        batch: usize,
    ) -> Result<Duration, String> {
        let mut body = Vec::with_capacity(size);
        match self {
            Client::Nats(js) => {
                create_stream(js, target).await?;
                // The sink's ids: a run id, '-', the sequence number.
                let run = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64);
                let messages: Vec<PublishMessage> = (0..n)
                    .map(|seq| {
                        payload(seq, size, &mut body);
                        PublishMessage::build()
                            .payload(body.clone().into())
                            .message_id(format!("{run:016x}-{seq}"))
                    })
                    .collect();
                let subject = async_nats::Subject::from(target.subject.as_str());
                let start = Instant::now();
                // A sliding window: at most `batch` acks outstanding, the
                // oldest awaited before one more is sent.
                let mut acks = VecDeque::with_capacity(batch);
                for message in messages {
                    if acks.len() >= batch {
                        if let Some(oldest) = acks.pop_front() {
                            bounded("await a PubAck", IntoFuture::into_future(oldest)).await?;
                        }
                    }
                    acks.push_back(
                        bounded("publish", js.send_publish(subject.clone(), message)).await?,
                    );
                }
                for ack in acks {
                    bounded("await a PubAck", IntoFuture::into_future(ack)).await?;
                }
                Ok(start.elapsed())
            }
            Client::Redis(conn) => {
                let pipes: Vec<redis::Pipeline> = (0..n)
                    .collect::<Vec<u64>>()
                    .chunks(batch)
                    .map(|seqs| {
                        let mut pipe = redis::Pipeline::with_capacity(seqs.len());
                        for &seq in seqs {
                            payload(seq, size, &mut body);
                            pipe.cmd("XADD")
                                .arg(&target.name)
                                .arg("*")
                                .arg("data")
                                .arg(&body[..]);
                        }
                        pipe
                    })
                    .collect();
                let start = Instant::now();
                for pipe in &pipes {
                    let replies: Vec<Value> =
                        bounded("a pipeline of XADDs", pipe.query_async(conn)).await?;
                    if replies.len() != pipe.len() {
                        return Err(format!(
                            "{} replies to a pipeline of {} XADDs",
                            replies.len(),
                            pipe.len()
                        ));
                    }
                }
                Ok(start.elapsed())
            }
        }
    }

    /// How many messages the target holds: NATS: the stream's `messages`
    /// (`None` while there is no stream); Redis: `XLEN` (0 for no key).
    pub(crate) async fn count(&mut self, target: &Target) -> Result<Option<u64>, String> {
        match self {
            Client::Nats(js) => {
                let stream =
                    match tokio::time::timeout(CALL_TIMEOUT, js.get_stream(&target.name)).await {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(e))
                            if matches!(
                                e.kind(),
                                jetstream::context::GetStreamErrorKind::JetStream(js)
                                    if js.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND
                            ) =>
                        {
                            return Ok(None)
                        }
                        Ok(Err(e)) => return Err(format!("stream info {}: {e}", target.name)),
                        Err(_) => {
                            return Err(format!(
                                "stream info {}: no answer within {CALL_TIMEOUT:?}",
                                target.name
                            ))
                        }
                    };
                Ok(Some(stream.cached_info().state.messages))
            }
            Client::Redis(conn) => {
                let len: u64 = bounded(
                    &format!("XLEN {}", target.name),
                    redis::cmd("XLEN").arg(&target.name).query_async(conn),
                )
                .await?;
                Ok(Some(len))
            }
        }
    }

    /// Reads every message of the target back and checks that it holds
    /// exactly the messages `0..n` of `size` bytes, each once (in any
    /// order: the check is of loss and duplication). `limit` bounds the
    /// whole read.
    pub(crate) async fn check(
        &mut self,
        target: &Target,
        size: usize,
        n: u64,
        limit: Duration,
    ) -> Result<(), String> {
        let mut tally = Tally::new(n);
        let read = async {
            match self {
                Client::Nats(js) => read_nats(js, target, size, &mut tally).await,
                Client::Redis(conn) => read_redis(conn, target, size, &mut tally).await,
            }
        };
        match tokio::time::timeout(limit, read).await {
            Ok(result) => result?,
            Err(_) => {
                return Err(format!(
                    "reading the messages back took more than {limit:?} ({} read)",
                    tally.stored
                ))
            }
        }
        tally.verdict()
    }

    /// Removes the target (its messages take disk or memory).
    pub(crate) async fn remove(&mut self, target: &Target) -> Result<(), String> {
        match self {
            Client::Nats(js) => {
                bounded(
                    &format!("delete stream {}", target.name),
                    js.delete_stream(&target.name),
                )
                .await?;
            }
            Client::Redis(conn) => {
                bounded::<Value, _>(
                    &format!("DEL {}", target.name),
                    redis::cmd("DEL").arg(&target.name).query_async(conn),
                )
                .await?;
            }
        }
        Ok(())
    }
}

/// The stream as the sink creates one: capturing the subject, file
/// storage, the server's defaults otherwise (a 2-minute duplicate window).
async fn create_stream(js: &Context, target: &Target) -> Result<(), String> {
    let config = stream::Config {
        name: target.name.clone(),
        subjects: vec![target.subject.clone()],
        storage: stream::StorageType::File,
        ..Default::default()
    };
    bounded(
        &format!("create stream {}", target.name),
        js.create_stream(config),
    )
    .await
    .map(drop)
}

async fn read_nats(
    js: &Context,
    target: &Target,
    size: usize,
    tally: &mut Tally,
) -> Result<(), String> {
    let what = format!("read back stream {}", target.name);
    let mut stream = bounded(&what, js.get_stream(&target.name)).await?;
    let count = bounded(&what, stream.info()).await?.state.messages;
    let consumer: consumer::PullConsumer = bounded(
        &what,
        stream.create_consumer(consumer::pull::Config {
            deliver_policy: consumer::DeliverPolicy::All,
            ack_policy: consumer::AckPolicy::None,
            ..Default::default()
        }),
    )
    .await?;
    let mut messages = bounded(&what, consumer.messages()).await?;
    let mut read = 0;
    while read < count {
        let message = match tokio::time::timeout(CALL_TIMEOUT, messages.next()).await {
            Ok(Some(Ok(m))) => m,
            Ok(Some(Err(e))) => return Err(format!("{what}: {e}")),
            Ok(None) => return Err(format!("{what}: the consumer ended after {read}")),
            Err(_) => {
                return Err(format!(
                    "{what}: {read} of {count} read, then nothing for {CALL_TIMEOUT:?}"
                ))
            }
        };
        tally.add(&message.payload, size);
        read += 1;
    }
    Ok(())
}

async fn read_redis(
    conn: &mut MultiplexedConnection,
    target: &Target,
    size: usize,
    tally: &mut Tally,
) -> Result<(), String> {
    let what = format!("XRANGE {}", target.name);
    let mut from = "-".to_string();
    loop {
        let reply: Value = bounded(
            &what,
            redis::cmd("XRANGE")
                .arg(&target.name)
                .arg(&from)
                .arg("+")
                .arg("COUNT")
                .arg(READ_CHUNK)
                .query_async(conn),
        )
        .await?;
        let Value::Array(entries) = reply else {
            return Err(format!("{what}: not an array: {reply:?}"));
        };
        let got = entries.len();
        for entry in entries {
            let (id, fields) = match entry {
                Value::Array(mut pair) if pair.len() == 2 => {
                    let fields = pair.pop();
                    (pair.pop(), fields)
                }
                other => {
                    return Err(format!(
                        "{what}: an entry that is not [id, fields]: {other:?}"
                    ))
                }
            };
            let (Some(Value::BulkString(id)), Some(Value::Array(fields))) = (id, fields) else {
                return Err(format!("{what}: an entry that is not [id, fields]"));
            };
            match &fields[..] {
                [Value::BulkString(field), Value::BulkString(data)] if field == b"data" => {
                    tally.add(data, size)
                }
                _ => tally.malformed += 1,
            }
            // Exclusive start (Redis 6.2 and later): after this entry.
            from = format!("({}", String::from_utf8_lossy(&id));
        }
        if got < READ_CHUNK {
            return Ok(());
        }
    }
}

/// Which of the run's numbers were stored, and how often.
struct Tally {
    expected: u64,
    seen: Vec<bool>,
    stored: u64,
    duplicates: u64,
    /// Not a message of the run (wrong size, number out of range, not the
    /// one field `data`).
    malformed: u64,
}

impl Tally {
    fn new(n: u64) -> Tally {
        Tally {
            expected: n,
            seen: vec![false; n as usize],
            stored: 0,
            duplicates: 0,
            malformed: 0,
        }
    }

    fn add(&mut self, body: &[u8], size: usize) {
        self.stored += 1;
        match number_of(body, size).and_then(|seq| self.seen.get_mut(seq as usize)) {
            Some(seen) if *seen => self.duplicates += 1,
            Some(seen) => *seen = true,
            None => self.malformed += 1,
        }
    }

    fn verdict(&self) -> Result<(), String> {
        let missing = self.seen.iter().filter(|s| !**s).count();
        if missing == 0 && self.duplicates == 0 && self.malformed == 0 {
            return Ok(());
        }
        Err(format!(
            "the broker holds {} messages for {} sent: {missing} missing, {} duplicated, {} \
             not of this run",
            self.stored, self.expected, self.duplicates, self.malformed
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tally_finds_a_loss_hidden_by_a_duplicate() {
        let mut tally = Tally::new(3);
        let mut body = Vec::new();
        for seq in [0, 1, 1] {
            payload(seq, 16, &mut body);
            tally.add(&body, 16);
        }
        let err = tally.verdict().unwrap_err();
        assert!(err.contains("1 missing, 1 duplicated"), "{err}");
        payload(2, 16, &mut body);
        let mut whole = Tally::new(3);
        for seq in [2, 0, 1] {
            payload(seq, 16, &mut body);
            whole.add(&body, 16);
        }
        assert_eq!(whole.verdict(), Ok(()));
        whole.add(b"short", 16);
        assert!(whole.verdict().is_err());
    }
}
