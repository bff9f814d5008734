//! Sinks: where a bridge hands the messages of a feed on, and learns when
//! they are safe (feature `sink`, and one feature per broker).
//!
//! A feed that arrives faster than one process can handle is best received
//! by a small process that never falls behind and handed to a broker that
//! many consumers share. A [`Sink`] is that hand-off: it takes a batch of
//! [`Record`]s and completes when the destination has **acknowledged**
//! every one of them (a JetStream publish acknowledgement, a Redis reply,
//! bytes written and flushed), so that the caller can keep each message in
//! its buffer until then: backpressure runs from the broker to the
//! WebSocket.
//!
//! Each record carries a [`MessageId`], stable across retries of the same
//! message and unique across runs ([`RunId`] plus a sequence number): a
//! destination that deduplicates (JetStream's `Nats-Msg-Id`) drops a retry
//! and keeps a new run's messages.
//!
//! Sinks here:
//! - [`JsonLines`]: one JSON object per line to a file or stdout (nothing
//!   to install; the default of `floodgate bridge`).
//! - [`Redis`] (feature `sink-redis`): entries appended to a Redis stream
//!   (`XADD KEY * data PAYLOAD`); at least once, a retried batch may be
//!   stored twice (see its docs).
//! - [`Nats`] (feature `sink-nats`): a NATS JetStream stream, deduplicating
//!   retries by `Nats-Msg-Id`.
//!
//! Not here: Kafka (no broker can be installed where this crate is tested,
//! so a sink for it could not be tested against a real one).

mod error;
mod id;
mod jsonl;
#[cfg(feature = "sink-nats")]
mod nats;
#[cfg(feature = "sink-redis")]
mod redis;

pub use error::SinkError;
pub use id::{MessageId, RunId};
pub use jsonl::JsonLines;
// `self::`: the crate of the same name is not meant.
#[cfg(feature = "sink-redis")]
pub use self::redis::{Redis, RedisBuilder};
#[cfg(feature = "sink-nats")]
pub use nats::{Nats, NatsBuilder};

use floodgate_proto::Message;
use std::future::Future;

/// One message to publish: the WebSocket message, unchanged, and its id.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    /// Stable across retries of this message, unique across runs.
    pub id: MessageId,
    /// The message as received (text or binary).
    pub message: &'a Message,
}

/// A destination for messages that acknowledges them (see the module
/// docs).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), floodgate::sink::SinkError> {
/// use floodgate::sink::{JsonLines, MessageId, Record, RunId, Sink};
/// use floodgate::Message;
///
/// let dir = tempfile::tempdir().unwrap();
/// let mut sink = JsonLines::create(dir.path().join("feed.jsonl")).await?;
/// let run = RunId::random();
/// let messages = [Message::text("a"), Message::text("b")];
/// let batch: Vec<Record<'_>> = messages
///     .iter()
///     .enumerate()
///     .map(|(seq, message)| Record { id: MessageId::new(run, seq as u64), message })
///     .collect();
/// sink.publish(&batch).await?; // written and flushed: safe to drop from the buffer
/// # Ok(())
/// # }
/// ```
pub trait Sink: Send {
    /// Publishes `batch` in order and resolves once the destination has
    /// acknowledged every record in it.
    ///
    /// # Errors
    ///
    /// A [`SinkError`]. The batch may then have been published in part:
    /// publish it again with the same ids (a deduplicating destination
    /// drops the copies; others may hold duplicates, which their docs
    /// say).
    fn publish(
        &mut self,
        batch: &[Record<'_>],
    ) -> impl Future<Output = Result<(), SinkError>> + Send;

    /// What the sink writes to, for messages and metrics: `"file:PATH"`,
    /// `"nats://HOST:PORT/SUBJECT"`, ...
    fn describe(&self) -> String;
}
