//! One feed of the bridge: a WebSocket connection whose messages are
//! published to a sink, a batch at a time, each batch let go only once the
//! sink acknowledged it.
//!
//! Why one task per feed and no queue between the connection and the sink:
//! the connection's buffer already is the queue, bounded and with the
//! feed's overflow policy. Adding another (as hand-written bridges do, an
//! unbounded channel in front of the broker client) would hide the backlog
//! from that policy and grow without bound while the broker is slow or
//! away. So the task leases a batch (its messages stay counted in the
//! buffer), publishes it, retries it while the sink is away (with the same
//! message ids, so a deduplicating broker drops the copies), commits it
//! once acknowledged, and only then leases the next; meanwhile the
//! connection's reader
//! keeps reading and answering pings, and the buffer's policy decides what
//! happens to what arrives.
//!
//! A connection that ends is drained to the sink before the feed
//! reconnects (its buffer holds messages nobody else will publish), then a
//! new connection starts with a new buffer; under a durable spill, while
//! the sink is away, the feed reconnects at once instead and the next
//! buffer delivers the old one's messages from disk (see [`Feed::serve`]). The [`Figures`] add the
//! connections' stats up, as `connect --stats` does.

use super::carry::Carried;
use super::dest::SharedSink;
use super::error::BridgeError;
use crate::error::CliError;
use crate::report::Totals;
use crate::units;
use floodgate::buffer::{Buffer, Delivered, Stats};
use floodgate::reconnect::{Backoff, Retry};
use floodgate::sink::{MessageId, Record, RunId, Sink};
use floodgate::tokio::BufferedWebSocket;
use floodgate::{Client, CloseFrame, ErrorKind};
use serde_json::json;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// At most this many messages per publish: large enough to pipeline well,
/// small enough that a retry resends little.
const MAX_BATCH: usize = 1024;

/// Publish retries: from 100 ms, doubling, at most 2 s apart, so that a
/// broker that is back is used again within about 2 s (each attempt also
/// waits for the sink's own timeouts).
fn publish_backoff() -> Backoff {
    Backoff::new()
        .initial(Duration::from_millis(100))
        .max_delay(Duration::from_secs(2))
        .max_attempts(None)
}

/// A feed's figures, read by `--metrics` at each scrape, and by the
/// report at the end (also after the feed's task was cut short).
#[derive(Debug)]
pub struct Figures {
    /// The feed's name (its label).
    pub name: String,
    /// The durable spill directory, when the feed has one: what remains
    /// there is kept for the next run.
    pub durable_dir: Option<PathBuf>,
    live: Mutex<Live>,
    /// Messages the sink acknowledged.
    pub published: AtomicU64,
    /// Publishes that failed (each retry counts).
    pub sink_errors: AtomicU64,
}

#[derive(Debug)]
struct Live {
    totals: Totals,
    current: Option<Arc<Buffer>>,
    /// What the last connection that ended left buffered.
    left: u64,
}

impl Figures {
    /// A feed that has not connected yet.
    pub fn new(name: String, spill: bool, durable_dir: Option<PathBuf>) -> Figures {
        Figures {
            name,
            durable_dir,
            live: Mutex::new(Live {
                totals: Totals::new(spill),
                current: None,
                left: 0,
            }),
            published: AtomicU64::new(0),
            sink_errors: AtomicU64::new(0),
        }
    }

    fn live(&self) -> std::sync::MutexGuard<'_, Live> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The connections' stats so far (the running one's included).
    pub fn totals(&self) -> Totals {
        let live = self.live();
        let mut totals = live.totals.clone();
        if let Some(buffer) = &live.current {
            totals.add(&buffer.stats());
        }
        totals
    }

    fn attach(&self, buffer: Arc<Buffer>) {
        self.live().current = Some(buffer);
    }

    fn detach(&self, last: &Stats) {
        let mut live = self.live();
        live.totals.add(last);
        live.current = None;
        live.left = last.buffered;
    }

    /// Messages received and neither published nor dropped: buffered
    /// (memory and disk, leased ones included) by the running connection,
    /// or the last one. Not the sum over connections: an ended connection
    /// was drained before the next began, or (a durable spill) left its
    /// messages on disk to the next, which counts them again.
    pub fn remaining(&self) -> u64 {
        let live = self.live();
        match &live.current {
            Some(buffer) => buffer.stats().buffered,
            None => live.left,
        }
    }

    /// The line printed for the feed at the end.
    pub fn summary(&self) -> String {
        let stats = self.totals().stats;
        let remaining = self.remaining();
        let published = self.published.load(Ordering::SeqCst);
        let whereabouts = match (&self.durable_dir, remaining) {
            (_, 0) => String::new(),
            // A durable spill holds every message on disk (a lease's
            // too, until committed).
            (Some(dir), _) => format!(
                " (in the durable spill directory {}: kept for the next run)",
                dir.display()
            ),
            (None, _) => " (in memory: lost)".to_owned(),
        };
        let dropped = stats.dropped_oldest + stats.dropped_newest + stats.conflated;
        let dropped = if dropped > 0 {
            format!(", dropped {dropped}")
        } else {
            String::new()
        };
        format!(
            "feed {}: published {published}{dropped}, remaining {remaining}{whereabouts}",
            self.name
        )
    }

    /// `--stats`: the object of `connect --stats`, plus the feed's name,
    /// what was published and how many publishes failed.
    pub fn stats_json(&self) -> serde_json::Value {
        let mut value = self.totals().to_json();
        value["feed"] = json!(self.name);
        value["published"] = json!(self.published.load(Ordering::SeqCst));
        value["sink_errors"] = json!(self.sink_errors.load(Ordering::SeqCst));
        value
    }
}

/// Everything a feed's task needs.
pub struct Feed {
    /// Its name (label, lines).
    pub name: String,
    /// The server's URL.
    pub url: String,
    /// The client, with the feed's options and buffer.
    pub client: Client,
    /// Sent after every connect (`-t`, `subscribe`).
    pub texts: Vec<String>,
    /// Reconnect after an abnormal end.
    pub reconnect: bool,
    /// The buffer is a durable spill: a connection that ends while the
    /// sink is away is left on disk for the next one (see [`Feed::serve`]).
    pub durable: bool,
    /// The reconnect policy.
    pub backoff: Backoff,
    /// Where the messages go.
    pub sink: SharedSink,
    /// The run part of the feed's message ids.
    pub run: RunId,
    /// Shared with the metrics and the report.
    pub figures: Arc<Figures>,
}

/// The feed's message ids: a sequence in its run, and under a durable
/// spill the ids a killed run gave the messages that come first now.
struct Ids {
    next_seq: u64,
    carried: Option<Carried>,
}

impl Ids {
    /// The ids of a leased batch, and its messages' hashes.
    fn assign(&mut self, batch: &[Delivered], run: RunId) -> Vec<(MessageId, u64)> {
        let messages = batch.iter().map(Delivered::message);
        match &mut self.carried {
            Some(carried) => carried.ids_for(messages, run, &mut self.next_seq),
            None => messages
                .map(|_| {
                    let id = MessageId::new(run, self.next_seq);
                    self.next_seq += 1;
                    (id, 0)
                })
                .collect(),
        }
    }

    /// A batch not published: its messages come first again and get these
    /// ids.
    fn give_back(&mut self, ids: &[(MessageId, u64)]) {
        match &mut self.carried {
            Some(carried) => carried.give_back(ids),
            // Without a durable spill nothing comes again from another
            // buffer: only this one's head, in the same order.
            None => self.next_seq -= ids.len() as u64,
        }
    }
}

/// What became of a batch.
enum Published {
    /// The sink acknowledged it.
    Acknowledged,
    /// Not published, given back (see [`Feed::serve`]).
    Left,
}

/// How one connection ended, for the feed.
enum Ending {
    /// Closed normally, or as asked at shutdown: the feed is done.
    Clean,
    /// Reconnecting may help.
    Abnormal(CliError),
    /// It would not (the Disconnect policy, a spill refusal, a sink that
    /// refuses).
    Fatal(BridgeError),
}

impl Feed {
    /// Runs the feed from its first connection until it ends: the server
    /// closed normally, `stop` was set (and what was buffered has been
    /// published), or an error that reconnecting does not cure.
    ///
    /// # Errors
    ///
    /// A sink that refuses (not retryable), the connection's end without
    /// `--reconnect` (or after its attempts), the buffer's own errors.
    pub async fn run(
        self,
        first: BufferedWebSocket,
        mut stop: watch::Receiver<bool>,
    ) -> Result<(), BridgeError> {
        let mut retry = Retry::new(self.backoff);
        let mut ids = Ids {
            next_seq: 0,
            carried: self.figures.durable_dir.as_deref().map(Carried::open),
        };
        if let Some(carried) = ids.carried.as_ref().filter(|c| c.pending() > 0) {
            eprintln!(
                "floodgate: feed {}: the last run stopped before the broker acknowledged {} \
                 messages; they are published again with the same ids",
                self.name,
                carried.pending()
            );
        }
        let mut conn = first;
        loop {
            let up_since = Instant::now();
            let conn_ref = Arc::new(conn);
            self.figures.attach(conn_ref.buffer().clone());
            let closer = tokio::spawn(close_on_stop(conn_ref.clone(), stop.clone()));
            let ending = self.serve(&conn_ref, &mut ids, &stop).await;
            closer.abort();
            let _ = closer.await;
            self.figures.detach(&conn_ref.stats());
            // The last reference: the buffer goes with it (a durable spill
            // directory is free for the next connection).
            drop(conn_ref);
            let error = match ending {
                Ending::Clean => return Ok(()),
                Ending::Fatal(e) => return Err(e),
                Ending::Abnormal(e) if !self.reconnect => {
                    return Err(BridgeError::Connect {
                        feed: self.name.clone(),
                        source: e,
                    })
                }
                Ending::Abnormal(e) => e,
            };
            retry.connection_ended(up_since.elapsed());
            eprintln!("floodgate: feed {}: connection lost: {error}", self.name);
            match self.reconnect(&mut retry, &mut stop).await? {
                Some(next) => conn = next,
                None => return Ok(()), // stopped while waiting
            }
        }
    }

    /// Publishes what one connection delivers until it ends and its
    /// buffer is empty.
    async fn serve(
        &self,
        conn: &BufferedWebSocket,
        ids: &mut Ids,
        stop: &watch::Receiver<bool>,
    ) -> Ending {
        // On every connection, so that a subscription survives a
        // reconnect.
        for text in &self.texts {
            if let Err(e) = conn.send_text(text).await {
                return self.judge(e, stop);
            }
        }
        loop {
            // The lease's messages stay in the buffer (counted in_flight)
            // until the sink acknowledged them; dropped unacknowledged (the
            // drain cut short), they go back to its head.
            let lease = match conn.lease(MAX_BATCH, Duration::MAX).await {
                Ok(lease) if lease.is_empty() => continue,
                Ok(lease) => lease,
                Err(e) => return self.judge(e, stop),
            };
            let n = lease.len() as u64;
            // Ids are given when a message is first leased and kept for
            // its retries (the lease is held, not released, meanwhile).
            let batch_ids = ids.assign(lease.messages(), self.run);
            // Kept beside a durable spill while the batch is out: a bridge
            // killed now publishes it again with these ids (see `carry`).
            if let Some(carried) = &ids.carried {
                let kept = if lease.is_on_disk() {
                    carried.save(&batch_ids)
                } else {
                    carried.clear()
                };
                if let Err(e) = kept {
                    tracing::warn!(feed = %self.name, error = %e, "bridge: the ids of the batch in flight could not be kept beside the spill; after a crash it would be published again with new ids");
                }
            }
            // With a durable spill, a connection that ends while the sink
            // is away need not be drained first: its messages are on disk
            // and the next connection's buffer (same directory) delivers
            // them first, so the feed reconnects at once instead of
            // missing what the server sends until the sink is back.
            let leave = || self.durable && self.reconnect && !*stop.borrow() && !conn.is_open();
            match self.publish(lease.messages(), &batch_ids, &leave).await {
                Ok(Published::Acknowledged) => {}
                Ok(Published::Left) => {
                    // Released, the lease's messages come first again, in
                    // order: they get the same ids.
                    ids.give_back(&batch_ids);
                    drop(lease);
                    return Ending::Abnormal(CliError::Other(
                        "the connection ended while the sink was away; what it received waits \
                         in the durable spill for the next connection"
                            .into(),
                    ));
                }
                Err(e) => return Ending::Fatal(e),
            }
            // Before the commit: a crash between the two brings the batch
            // again with new ids (a duplicate), never the reverse (a stale
            // file naming messages that will not come again).
            if let Some(carried) = &ids.carried {
                if let Err(e) = carried.clear() {
                    tracing::warn!(feed = %self.name, error = %e, "bridge: the ids file could not be removed");
                }
            }
            lease.commit();
            self.figures.published.fetch_add(n, Ordering::SeqCst);
        }
    }

    /// Publishes `batch` (ids from `first`), retrying while the sink is
    /// away or slow; returns once acknowledged, or when `leave` says to
    /// stop retrying (checked after each failure).
    async fn publish(
        &self,
        batch: &[Delivered],
        ids: &[(MessageId, u64)],
        leave: &(dyn Fn() -> bool + Sync),
    ) -> Result<Published, BridgeError> {
        let records: Vec<Record<'_>> = batch
            .iter()
            .zip(ids)
            .map(|(delivered, (id, _))| Record {
                id: *id,
                message: delivered.message(),
            })
            .collect();
        let mut retry = Retry::new(publish_backoff());
        let mut failing = false;
        loop {
            let started = Instant::now();
            let (result, sink_name) = {
                let mut sink = self.sink.lock().await;
                (sink.publish(&records).await, sink.describe())
            };
            match result {
                Ok(()) => {
                    metrics::histogram!("floodgate_sink_publish_seconds", "feed" => self.name.clone())
                        .record(started.elapsed().as_secs_f64());
                    if failing {
                        eprintln!(
                            "floodgate: feed {}: {sink_name} takes messages again",
                            self.name
                        );
                    }
                    return Ok(Published::Acknowledged);
                }
                Err(e) => {
                    self.figures.sink_errors.fetch_add(1, Ordering::SeqCst);
                    if !e.is_retryable() {
                        return Err(BridgeError::Sink {
                            feed: self.name.clone(),
                            source: e,
                        });
                    }
                    if !failing {
                        eprintln!(
                            "floodgate: feed {}: {e}; retrying (the feed's buffer policy applies \
                             meanwhile)",
                            self.name
                        );
                        failing = true;
                    } else {
                        tracing::debug!(feed = %self.name, error = %e, "publish failed again");
                    }
                    if leave() {
                        return Ok(Published::Left);
                    }
                    let delay = retry.next_delay().unwrap_or(Duration::from_secs(2));
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    fn judge(&self, e: floodgate::Error, stop: &watch::Receiver<bool>) -> Ending {
        if *stop.borrow() {
            // We closed: whatever the end looked like, what was buffered
            // has been published.
            tracing::debug!(feed = %self.name, error = %e, "connection ended at shutdown");
            return Ending::Clean;
        }
        match e.into_kind() {
            ErrorKind::ConnectionClosed(frame) => match frame {
                None => Ending::Clean,
                Some(frame) if frame.code.0 == 1000 => Ending::Clean,
                Some(frame) => Ending::Abnormal(CliError::ClosedWithError {
                    code: frame.code.0,
                    reason: frame.reason.to_string(),
                }),
            },
            // The consumer fell behind (`--policy disconnect`), or the
            // spill refused a message: the same would happen again.
            ErrorKind::Buffer(e) => Ending::Fatal(BridgeError::Connect {
                feed: self.name.clone(),
                source: floodgate::Error::from(e).into(),
            }),
            kind => Ending::Abnormal(CliError::WebSocket(kind.into())),
        }
    }

    /// Connects again after waits chosen by `retry`; `None` when stopped
    /// in the meantime.
    async fn reconnect(
        &self,
        retry: &mut Retry,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<Option<BufferedWebSocket>, BridgeError> {
        let mut last = None;
        loop {
            let Some(delay) = retry.next_delay() else {
                return Err(BridgeError::Connect {
                    feed: self.name.clone(),
                    source: crate::connect::gave_up(retry, last),
                });
            };
            eprintln!(
                "floodgate: feed {}: reconnecting in {} (attempt {})",
                self.name,
                units::show(delay),
                retry.attempts()
            );
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = stopped(stop) => return Ok(None),
            }
            let attempt = tokio::select! {
                result = self.client.connect_buffered_async(&self.url) => result,
                () = stopped(stop) => return Ok(None),
            };
            match attempt {
                Ok(conn) => {
                    eprintln!("floodgate: feed {}: reconnected to {}", self.name, self.url);
                    return Ok(Some(conn));
                }
                // A spill directory that cannot be opened will not open by
                // dialing again.
                Err(e) if matches!(e.kind(), ErrorKind::Spill(_)) => {
                    return Err(BridgeError::Connect {
                        feed: self.name.clone(),
                        source: e.into(),
                    })
                }
                Err(e) => {
                    eprintln!("floodgate: feed {}: reconnect failed: {e}", self.name);
                    last = Some(e);
                }
            }
        }
    }
}

/// Resolves once `stop` is set; never when its sender is gone without
/// setting it.
pub async fn stopped(stop: &mut watch::Receiver<bool>) {
    if stop.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// At shutdown, asks the server to stop: sends the close frame, and the
/// feed's task publishes what is buffered and what still arrives before
/// the server's answer (or the close timeout) ends the connection.
///
/// Through the sender, not `BufferedWebSocket::start_close`: that one also
/// stops the buffer from blocking the reader, which then drops what does
/// not fit (counted `dropped_newest`) and keeps what fits later, so the
/// published feed would have a hole before its last messages. This way it
/// ends with a clean cut: a prefix of what the server sent, whole.
async fn close_on_stop(conn: Arc<BufferedWebSocket>, mut stop: watch::Receiver<bool>) {
    stopped(&mut stop).await;
    let frame = CloseFrame::new(1001u16, "floodgate bridge is stopping");
    if let Err(e) = conn.sender().start_close(Some(frame)).await {
        tracing::debug!(error = %e, "closing at shutdown");
    }
}
