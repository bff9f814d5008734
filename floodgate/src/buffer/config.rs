//! What a [`Buffer`](super::Buffer) is told: its limits, what to do when
//! they are reached ([`Overflow`]), how to rank or discard messages
//! ([`Class`], [`Priority`]), and when to raise a lag alarm ([`LagAlarm`]).
//!
//! Policies are types rather than flags so that a combination that makes
//! no sense (conflating inside conflation, a zero-sized buffer) is either
//! impossible to write or rejected by [`BufferConfig::validate`] before a
//! connection is made.

use super::spill::SpillConfig;
use bytes::Bytes;
use floodgate_proto::{Frame, Message};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// How important a message is. Shedding takes the lowest priority first;
/// [`Priority::CRITICAL`] is never shed (the reader waits for room
/// instead, whatever the policy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Priority(u8);

impl Priority {
    /// Shed first.
    pub const LOW: Priority = Priority(0);
    /// Every message without a classifier.
    pub const NORMAL: Priority = Priority(1);
    /// Shed only when no `LOW` or `NORMAL` message is buffered.
    pub const HIGH: Priority = Priority(2);
    /// Never shed: when only critical messages are buffered, the reader
    /// blocks until the consumer makes room (lossless, like
    /// [`Overflow::Block`]).
    pub const CRITICAL: Priority = Priority(3);

    /// Number of priority levels.
    pub(crate) const LEVELS: usize = 4;

    pub(crate) fn index(self) -> usize {
        usize::from(self.0)
    }
}

impl Default for Priority {
    fn default() -> Self {
        Priority::NORMAL
    }
}

/// What a classifier decides for one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Buffer it with this priority.
    Keep(Priority),
    /// Drop it at once (counted under `filtered`).
    Discard,
}

impl From<Priority> for Class {
    fn from(priority: Priority) -> Self {
        Class::Keep(priority)
    }
}

/// A conflation key: messages with equal keys replace each other in the
/// buffer. Built from an integer (cheapest), a string or bytes.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Key(KeyRepr);

#[derive(Clone, PartialEq, Eq, Hash)]
enum KeyRepr {
    Int(u64),
    Bytes(Bytes),
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            KeyRepr::Int(n) => write!(f, "Key({n})"),
            KeyRepr::Bytes(b) => match std::str::from_utf8(b) {
                Ok(s) => write!(f, "Key({s:?})"),
                Err(_) => write!(f, "Key({b:?})"),
            },
        }
    }
}

impl From<u64> for Key {
    fn from(n: u64) -> Self {
        Key(KeyRepr::Int(n))
    }
}

impl From<&str> for Key {
    fn from(s: &str) -> Self {
        Key(KeyRepr::Bytes(Bytes::copy_from_slice(s.as_bytes())))
    }
}

impl From<String> for Key {
    fn from(s: String) -> Self {
        Key(KeyRepr::Bytes(Bytes::from(s)))
    }
}

impl From<&[u8]> for Key {
    fn from(b: &[u8]) -> Self {
        Key(KeyRepr::Bytes(Bytes::copy_from_slice(b)))
    }
}

impl From<Bytes> for Key {
    fn from(b: Bytes) -> Self {
        Key(KeyRepr::Bytes(b))
    }
}

/// How to make room once waiting is over (or was never an option).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shed {
    /// Drop the oldest buffered message of the lowest priority present.
    DropOldest,
    /// Drop the newest message of the lowest priority present: usually the
    /// one arriving.
    DropNewest,
    /// Close the connection (code 1008) and report
    /// [`BufferError::FellBehind`](super::BufferError::FellBehind).
    Disconnect,
}

/// What the reader does with a message that does not fit.
///
/// ```
/// use floodgate::buffer::{BufferConfig, Conflate, Overflow, Shed};
/// use std::time::Duration;
///
/// // Lossless: TCP flow control slows the server down.
/// let lossless = BufferConfig::new().overflow(Overflow::Block);
/// // Wait up to 200 ms for the consumer, then drop the oldest.
/// let patient = BufferConfig::new()
///     .overflow(Overflow::BlockFor(Duration::from_millis(200), Shed::DropOldest));
/// // Latest value per channel wins; other messages drop the oldest.
/// let ticker = BufferConfig::new().overflow(Overflow::Conflate(
///     Conflate::by(|m| m.as_text().and_then(|t| t.split(':').next()).map(Into::into)),
/// ));
/// ```
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum Overflow {
    /// Lossless (the default): the reader stops reading the socket until
    /// there is room, so the kernel's receive buffer fills and TCP flow
    /// control slows the server. Pings that arrive behind the blocked data
    /// wait too.
    #[default]
    Block,
    /// Block for at most this long, then shed with the given policy until
    /// a message fits again without shedding.
    BlockFor(Duration, Shed),
    /// [`Shed::DropOldest`] at once.
    DropOldest,
    /// [`Shed::DropNewest`] at once.
    DropNewest,
    /// Replace the buffered message with the same key; see [`Conflate`].
    Conflate(Conflate),
    /// [`Shed::Disconnect`] at once.
    Disconnect,
    /// Lossless without slowing the server: past the memory limits,
    /// messages go to segment files on disk, written by a thread of the
    /// buffer's own (the reader never waits on the disk), and come back in
    /// arrival order; see [`SpillConfig`]. While anything is on disk, new
    /// arrivals join it, so the order is kept; once the consumer has
    /// drained the disk, the buffer is back to memory. When the disk
    /// cannot take a message (its budget is used up, it is full or
    /// failing, or slower than the feed), the [`SpillFallback`] decides.
    /// A classifier still applies first (a discarded message is never
    /// written), and priorities are kept on disk, but nothing is shed by
    /// priority: the fallback acts on the arriving message.
    ///
    /// [`SpillFallback`]: super::SpillFallback
    Spill(SpillConfig),
}

impl fmt::Debug for Overflow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Overflow::Block => f.write_str("Block"),
            Overflow::BlockFor(d, shed) => write!(f, "BlockFor({d:?}, {shed:?})"),
            Overflow::DropOldest => f.write_str("DropOldest"),
            Overflow::DropNewest => f.write_str("DropNewest"),
            Overflow::Conflate(c) => write!(f, "Conflate(otherwise {:?})", c.otherwise),
            Overflow::Disconnect => f.write_str("Disconnect"),
            Overflow::Spill(c) => write!(f, "Spill({c:?})"),
        }
    }
}

pub(crate) type KeyFn = Arc<dyn Fn(&Message) -> Option<Key> + Send + Sync>;
pub(crate) type ClassifyFn = Arc<dyn Fn(&Message) -> Class + Send + Sync>;
pub(crate) type LagFn = Arc<dyn Fn(&LagEvent) + Send + Sync>;
pub(crate) type ControlFn = Arc<dyn Fn(&Message) + Send + Sync>;
pub(crate) type DataFrameFn = Arc<dyn Fn(&Frame) + Send + Sync>;

/// Conflation: "latest value wins" per key.
///
/// The key function sees each message on the reader thread (keep it
/// cheap). A message whose key matches a buffered message replaces it in
/// place: it takes the old message's position in the queue, and the old
/// one is counted under `conflated`. This happens whenever the older value
/// has not been taken yet, not only when the buffer is full: a value that
/// is already superseded would only add lag. A message with no key (the
/// function returned `None`) or a key not in the buffer is buffered as
/// usual, and the `otherwise` policy (default [`Overflow::DropOldest`])
/// decides when it does not fit.
#[derive(Clone)]
pub struct Conflate {
    pub(crate) key: KeyFn,
    pub(crate) otherwise: Box<Overflow>,
}

impl Conflate {
    /// Conflates by the key `key` derives from a message.
    pub fn by(key: impl Fn(&Message) -> Option<Key> + Send + Sync + 'static) -> Conflate {
        Conflate {
            key: Arc::new(key),
            otherwise: Box::new(Overflow::DropOldest),
        }
    }

    /// The policy for messages that do not replace another and do not fit
    /// (any policy but `Conflate`; checked by [`BufferConfig::validate`]).
    pub fn otherwise(mut self, overflow: Overflow) -> Conflate {
        self.otherwise = Box::new(overflow);
        self
    }
}

/// When the lag alarm fires.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LagThreshold {
    /// Fire when the buffer holds at least this many messages.
    pub depth: Option<usize>,
    /// Fire when a delivered message waited at least this long.
    pub wait: Option<Duration>,
}

/// What crossed its threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LagReason {
    /// The number of buffered messages.
    Depth,
    /// How long a delivered message waited.
    Wait,
}

/// Passed to the lag callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LagEvent {
    /// Which threshold was crossed.
    pub reason: LagReason,
    /// Messages buffered at that moment.
    pub depth: usize,
    /// Payload bytes buffered at that moment.
    pub bytes: usize,
    /// For [`LagReason::Wait`], how long the message waited.
    pub wait: Duration,
}

/// The lag alarm: a threshold and the callback it fires.
#[derive(Clone)]
pub(crate) struct LagAlarm {
    pub(crate) threshold: LagThreshold,
    pub(crate) callback: LagFn,
}

/// Limits and policies of a [`Buffer`](super::Buffer).
///
/// ```
/// use floodgate::buffer::{BufferConfig, Class, Overflow, Priority};
/// let config = BufferConfig::new()
///     .max_messages(10_000)
///     .max_bytes(8 << 20)
///     .overflow(Overflow::DropOldest)
///     // Heartbeats are dropped before anyone parses them; orders are
///     // never shed.
///     .classify(|m| match m.as_text() {
///         Some(t) if t.contains("\"heartbeat\"") => Class::Discard,
///         Some(t) if t.contains("\"order\"") => Class::Keep(Priority::CRITICAL),
///         _ => Class::Keep(Priority::NORMAL),
///     });
/// ```
#[derive(Clone)]
#[must_use = "a BufferConfig does nothing until given to a connection"]
pub struct BufferConfig {
    pub(crate) max_messages: usize,
    pub(crate) max_bytes: usize,
    pub(crate) overflow: Overflow,
    pub(crate) classifier: Option<ClassifyFn>,
    pub(crate) lag: Option<LagAlarm>,
    pub(crate) on_control: Option<ControlFn>,
    pub(crate) on_data_frame: Option<DataFrameFn>,
}

/// Default message limit.
pub const DEFAULT_MAX_MESSAGES: usize = 4096;
/// Default byte limit: the default `max_message_size`, so that any message
/// the connection accepts fits.
pub const DEFAULT_MAX_BYTES: usize = floodgate_proto::protocol::DEFAULT_MAX_MESSAGE_SIZE;

impl Default for BufferConfig {
    fn default() -> Self {
        BufferConfig {
            max_messages: DEFAULT_MAX_MESSAGES,
            max_bytes: DEFAULT_MAX_BYTES,
            overflow: Overflow::Block,
            classifier: None,
            lag: None,
            on_control: None,
            on_data_frame: None,
        }
    }
}

impl fmt::Debug for BufferConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BufferConfig")
            .field("max_messages", &self.max_messages)
            .field("max_bytes", &self.max_bytes)
            .field("overflow", &self.overflow)
            .field("classifier", &self.classifier.is_some())
            .field("lag", &self.lag.as_ref().map(|l| l.threshold))
            .field("on_control", &self.on_control.is_some())
            .field("on_data_frame", &self.on_data_frame.is_some())
            .finish()
    }
}

impl BufferConfig {
    /// The defaults: [`Overflow::Block`], 4096 messages, 64 MiB.
    pub fn new() -> BufferConfig {
        BufferConfig::default()
    }

    /// At most this many messages are buffered (at least 1).
    pub fn max_messages(mut self, n: usize) -> Self {
        self.max_messages = n;
        self
    }

    /// At most this many payload bytes are buffered. Must be at least the
    /// connection's `max_message_size`, so that every message the
    /// connection accepts can fit.
    pub fn max_bytes(mut self, n: usize) -> Self {
        self.max_bytes = n;
        self
    }

    /// The overflow policy.
    pub fn overflow(mut self, overflow: Overflow) -> Self {
        self.overflow = overflow;
        self
    }

    /// A function that sees every message first, on the reader thread,
    /// and decides its priority or discards it. Keep it cheap: it runs
    /// before the message is buffered.
    pub fn classify(mut self, f: impl Fn(&Message) -> Class + Send + Sync + 'static) -> Self {
        self.classifier = Some(Arc::new(f));
        self
    }

    /// Calls `callback` when the buffer depth or a message's queue wait
    /// crosses `threshold`. It fires once per crossing and is re-armed when
    /// the figure falls back to half the threshold. It runs on the thread
    /// that crossed it (the reader for depth, the consumer for wait), with
    /// no lock held; keep it short.
    pub fn on_lag(
        mut self,
        threshold: LagThreshold,
        callback: impl Fn(&LagEvent) + Send + Sync + 'static,
    ) -> Self {
        self.lag = Some(LagAlarm {
            threshold,
            callback: Arc::new(callback),
        });
        self
    }

    /// Calls `f` with every ping and pong the connection's reader decodes
    /// (`Message::Ping` after it was answered, `Message::Pong`), on the
    /// reader thread, with no lock held. Control frames are never buffered:
    /// this is how an application observes them on a buffered connection
    /// (to log them, or to time its own pings). Keep it short: the reader
    /// reads nothing while it runs.
    ///
    /// ```
    /// use floodgate::buffer::BufferConfig;
    /// use floodgate::Message;
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use std::sync::Arc;
    ///
    /// let pongs = Arc::new(AtomicU64::new(0));
    /// let seen = pongs.clone();
    /// let config = BufferConfig::new().on_control_frame(move |frame| {
    ///     if let Message::Pong(_) = frame {
    ///         seen.fetch_add(1, Ordering::Relaxed);
    ///     }
    /// });
    /// ```
    pub fn on_control_frame(mut self, f: impl Fn(&Message) + Send + Sync + 'static) -> Self {
        self.on_control = Some(Arc::new(f));
        self
    }

    /// Calls `f` with every data frame the reader decodes (text, binary
    /// and each continuation frame of a fragmented message), as it is
    /// decoded: before the message it belongs to is complete, classified
    /// or buffered, so it sees messages the policy may later drop. On the
    /// reader thread, with no lock held; keep it short. For applications
    /// that want frames as well as messages (websocket-client's `on_data`
    /// and `on_cont_message`); most want messages only.
    ///
    /// ```
    /// use floodgate::buffer::BufferConfig;
    /// use floodgate::OpCode;
    /// let config = BufferConfig::new().on_data_frame(|frame| {
    ///     if frame.opcode == OpCode::Continuation {
    ///         println!("a fragment of {} bytes (last: {})", frame.payload.len(), frame.fin);
    ///     }
    /// });
    /// ```
    pub fn on_data_frame(mut self, f: impl Fn(&Frame) + Send + Sync + 'static) -> Self {
        self.on_data_frame = Some(Arc::new(f));
        self
    }

    /// Whether the policy may keep messages whose neighbours in the read
    /// chunk were dropped or taken long before (conflation, dropping the
    /// newest, shedding by priority): a buffered message that is a slice of
    /// its read chunk keeps the whole chunk alive, so the reader copies
    /// small ones out. `Block` and `DropOldest` keep runs of consecutive
    /// messages, which share their chunks, and skip the copy.
    pub(crate) fn retains_sparsely(&self) -> bool {
        let sheds_newest = matches!(
            self.overflow,
            Overflow::DropNewest | Overflow::BlockFor(_, Shed::DropNewest) | Overflow::Conflate(_)
        );
        self.classifier.is_some() || sheds_newest
    }

    /// The message limit, as set by [`max_messages`](Self::max_messages)
    /// (and read from a running buffer with [`Buffer::max_messages`]).
    /// Named with `get_` because the setter has the name, as in
    /// `std::process::Command::get_args`.
    ///
    /// [`Buffer::max_messages`]: super::Buffer::max_messages
    ///
    /// ```
    /// use floodgate::buffer::BufferConfig;
    /// assert_eq!(BufferConfig::new().max_messages(10).get_max_messages(), 10);
    /// ```
    pub fn get_max_messages(&self) -> usize {
        self.max_messages
    }

    /// The byte limit, as set by [`max_bytes`](Self::max_bytes) (and read
    /// from a running buffer with [`Buffer::max_bytes`]).
    ///
    /// [`Buffer::max_bytes`]: super::Buffer::max_bytes
    pub fn get_max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// Checks the limits against the connection's `max_message_size`.
    ///
    /// # Errors
    ///
    /// A [`BufferConfigError`] when a limit is zero, when a message the
    /// connection accepts could never fit (`max_bytes` below
    /// `max_message_size`, or no `max_message_size`), when the fallback of
    /// [`Conflate`] is itself `Conflate`, or when a lag threshold is zero.
    /// Connections report it as [`crate::ErrorKind::Config`]
    /// ([`crate::ConfigError::Buffer`]).
    pub fn validate(&self, max_message_size: Option<usize>) -> Result<(), BufferConfigError> {
        if self.max_messages == 0 || self.max_bytes == 0 {
            return Err(BufferConfigError::ZeroLimit {
                max_messages: self.max_messages,
                max_bytes: self.max_bytes,
            });
        }
        match max_message_size {
            None => {
                return Err(BufferConfigError::NoMaxMessageSize {
                    max_bytes: self.max_bytes,
                })
            }
            Some(size) if size > self.max_bytes => {
                return Err(BufferConfigError::MaxBytesBelowMessageSize {
                    max_bytes: self.max_bytes,
                    max_message_size: size,
                })
            }
            Some(_) => {}
        }
        if let Overflow::Conflate(c) = &self.overflow {
            if matches!(*c.otherwise, Overflow::Conflate(_)) {
                return Err(BufferConfigError::ConflateInConflate);
            }
            if matches!(*c.otherwise, Overflow::Spill(_)) {
                return Err(BufferConfigError::SpillInConflate);
            }
        }
        if let Some(lag) = &self.lag {
            if lag.threshold.depth == Some(0) || lag.threshold.wait == Some(Duration::ZERO) {
                return Err(BufferConfigError::ZeroLagThreshold);
            }
        }
        Ok(())
    }
}

/// A [`BufferConfig`] that cannot work, from [`BufferConfig::validate`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BufferConfigError {
    /// A limit is zero: nothing could ever be buffered.
    #[error(
        "buffer limits must be at least 1 message and 1 byte (max_messages is {max_messages}, \
         max_bytes is {max_bytes})"
    )]
    ZeroLimit {
        /// The message limit given.
        max_messages: usize,
        /// The byte limit given.
        max_bytes: usize,
    },
    /// The connection has no `max_message_size`, so a message could be
    /// larger than the buffer.
    #[error(
        "a buffered connection needs a max_message_size (at most the buffer's max_bytes, \
         {max_bytes}) so that every accepted message fits"
    )]
    NoMaxMessageSize {
        /// The buffer's byte limit.
        max_bytes: usize,
    },
    /// A message the connection accepts could never be buffered.
    #[error(
        "the buffer's max_bytes ({max_bytes}) is below max_message_size ({max_message_size}): \
         a message that large could never be buffered; raise max_bytes or lower \
         max_message_size"
    )]
    MaxBytesBelowMessageSize {
        /// The buffer's byte limit.
        max_bytes: usize,
        /// The connection's message size limit.
        max_message_size: usize,
    },
    /// [`Conflate`]'s fallback policy is `Spill`: a value on disk could not
    /// be replaced in place, so conflation and spilling do not mix.
    #[error(
        "the fallback of Conflate cannot be Spill (a conflated value on disk cannot be \
         replaced); give DropOldest, Block or another policy, or Spill without Conflate"
    )]
    SpillInConflate,
    /// [`Conflate`]'s fallback policy is `Conflate` again.
    #[error(
        "the fallback of Conflate cannot be Conflate; give DropOldest, Block or another policy"
    )]
    ConflateInConflate,
    /// A lag threshold (depth or wait) is zero: the alarm would always be
    /// raised.
    #[error("lag thresholds must be above zero")]
    ZeroLagThreshold,
}
