//! The bounded buffer between the connection's reader and the consumer.
//!
//! A [`Buffer`] holds complete data messages that the reader decoded and
//! the consumer has not taken yet, within a message and a byte limit. What
//! happens when a message does not fit is the connection's [`Overflow`]
//! policy; a classifier may rank or discard each message first; every
//! message is accounted for in [`Stats`]. The guide
//! `docs/backpressure.md` explains how to choose.
//!
//! The buffer does not assume that the reader or the consumer is a thread:
//! waiting is expressed with [`std::task::Waker`]s. The blocking methods
//! ([`Buffer::recv`] and friends) wait by parking the calling thread behind
//! a waker that unparks it; an async front end registers its task's waker
//! through [`Buffer::poll_recv`] and [`Buffer::poll_recv_batch`]. Both can
//! be used on the same buffer.
//!
//! Under [`Overflow::Spill`] (`spill/`) the buffer also owns a directory
//! and the one thread it starts, the spill's writer: the reader only adds
//! to a bounded hand-off under the buffer's lock, the writer appends it to
//! the segment files, and the consumer reads them back outside the lock,
//! so neither the reader nor the lock ever waits on the disk.
//!
//! A consumer that hands messages on takes them in a [`Lease`]
//! ([`Buffer::lease`]): they stay counted in the buffer until it commits
//! the lease, and go back to its head if it does not.
//!
//! One lock guards the queue and the counters, so a [`Stats`] snapshot is
//! always consistent. It is taken once per batch on both sides: the reader
//! pushes every message decoded from one read under one lock, and
//! [`Buffer::recv_batch`] takes up to N messages under one lock; wake-ups
//! happen only when the other side is actually waiting.
//!
//! The buffer sits below the connection's error type and does not use it:
//! its own errors are [`BufferError`] (a policy ended the connection),
//! [`BufferConfigError`] (a configuration that cannot work) and
//! [`RecvError`] (what the consumer side meets). How the connection ended
//! is whatever error the front end gave [`Buffer`] when it finished it,
//! kept boxed in a [`ConnectionEnd`]; the front ends turn a [`RecvError`]
//! back into their [`crate::Error`] at their edge, so the same buffer can
//! serve a front end with other errors.

mod config;
mod lease;
mod queue;
mod spill;
mod stats;

pub use config::{
    BufferConfig, Class, Conflate, Key, LagEvent, LagReason, LagThreshold, Overflow, Priority,
    Shed, DEFAULT_MAX_BYTES, DEFAULT_MAX_MESSAGES,
};
pub use lease::Lease;
pub use queue::Delivered;
pub use spill::{
    SpillConfig, SpillError, SpillFallback, SpillLimit, SpillOp, SpillRefusal,
    DEFAULT_FSYNC_INTERVAL, DEFAULT_MAX_DISK_BYTES, DEFAULT_SEGMENT_BYTES,
    DEFAULT_WRITER_QUEUE_BYTES,
};
pub use stats::{Stats, WaitSummary};

pub(crate) use queue::Incoming;

pub use config::BufferConfigError;

use config::{ClassifyFn, KeyFn, LagFn};
pub(crate) use config::{ControlFn, DataFrameFn};
use floodgate_proto::Message;
use lease::Taking;
use queue::{Offered, Queue};
use spill::state::{Next, SpillState};
use spill::{lock_log, Durable, Round, SharedLog, WriterHost};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{JoinHandle, Thread};
use std::time::{Duration, Instant};

/// Errors that come from the buffer's policies.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BufferError {
    /// The [`Shed::Disconnect`] policy ended the connection: a message
    /// arrived while the buffer was full.
    #[error(
        "the consumer fell behind: a message arrived while the buffer held {buffered_messages} \
         of {max_messages} messages and {buffered_bytes} of {max_bytes} bytes ({received} \
         received, {delivered} delivered), so the connection was closed with code 1008 \
         (Disconnect policy); consume faster, raise the buffer limits, or choose a policy \
         that sheds"
    )]
    FellBehind {
        /// Messages buffered when the message arrived.
        buffered_messages: usize,
        /// Payload bytes buffered when the message arrived.
        buffered_bytes: usize,
        /// The buffer's message limit.
        max_messages: usize,
        /// The buffer's byte limit.
        max_bytes: usize,
        /// Messages received, counting the one that did not fit.
        received: u64,
        /// Messages the consumer had taken.
        delivered: u64,
    },
    /// [`Overflow::Spill`] with the [`SpillFallback::Disconnect`] fallback
    /// ended the connection: the spill could not take a message, for the
    /// reason given.
    #[error(
        "a message could not be spilled to disk: {0}; the connection was closed with code 1008 \
         (the spill's fallback is Disconnect; the Block fallback waits instead, DropNewest drops \
         and counts)"
    )]
    SpillRefused(SpillRefusal),
}

/// Why the consumer side of a [`Buffer`] got no message.
///
/// The buffer knows nothing of the connection's error type (it sits below
/// it): the front end that ended the connection put its own error in
/// ([`ConnectionEnd`]) and turns a `RecvError` back into it at its edge, so
/// callers of [`crate::BufferedWebSocket`] see a [`crate::Error`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecvError {
    /// No message came within the time given to
    /// [`Buffer::recv_timeout`]; the connection is still open.
    #[error("no message came within {0:?}; the connection is still open, wait again")]
    TimedOut(Duration),
    /// The connection ended and every message buffered before the end has
    /// been taken: how it ended. Given once; later calls get
    /// [`RecvError::AlreadyEnded`].
    #[error("{0}")]
    Ended(ConnectionEnd),
    /// The end was handed out by an earlier call.
    #[error("the connection has ended and its buffer is empty; connect again to go on")]
    AlreadyEnded,
}

/// How a connection ended, as its front end reported it to the
/// [`Buffer`]: the front end's own error, boxed, so that the buffer does
/// not depend on it. [`downcast`](Self::downcast) takes it out again (for
/// floodgate's front ends it is a [`crate::Error`]).
pub struct ConnectionEnd(Box<dyn std::error::Error + Send + Sync>);

impl ConnectionEnd {
    /// Wraps the error that ended the connection.
    pub fn new(end: impl std::error::Error + Send + Sync + 'static) -> ConnectionEnd {
        ConnectionEnd(Box::new(end))
    }

    /// The error, if it is an `E`.
    pub fn downcast_ref<E: std::error::Error + 'static>(&self) -> Option<&E> {
        self.0.downcast_ref()
    }

    /// The error as an `E`, or `self` back when it is not one.
    ///
    /// # Errors
    ///
    /// `self` when the error is not an `E`.
    pub fn downcast<E: std::error::Error + 'static>(self) -> Result<E, ConnectionEnd> {
        self.0.downcast().map(|e| *e).map_err(ConnectionEnd)
    }

    /// The boxed error.
    pub fn into_inner(self) -> Box<dyn std::error::Error + Send + Sync> {
        self.0
    }
}

impl std::fmt::Debug for ConnectionEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.0, f)
    }
}

impl std::fmt::Display for ConnectionEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for ConnectionEnd {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// How the reader's push ended.
#[derive(Debug)]
pub(crate) enum Pushed {
    /// Every message was placed.
    Done,
    /// No room: wait for a wake-up (or until the deadline) and push again.
    Wait(Option<Instant>),
    /// The `Disconnect` policy: end the connection.
    FellBehind(BufferError),
}

/// Messages the reader decoded since its last push, and how many the
/// classifier discarded.
#[derive(Debug)]
pub(crate) struct Batch {
    items: BatchItems,
    filtered: u64,
}

#[derive(Debug)]
enum BatchItems {
    /// No classifier and no conflation key: bare messages. This is the hot
    /// path of a busy connection; moving each 40-byte message once rather
    /// than inside an [`Incoming`] through several temporaries cut the
    /// reader's time per 16-byte message measurably.
    Plain(VecDeque<Message>),
    Classified(VecDeque<Incoming>),
}

impl Batch {
    pub(crate) fn len(&self) -> usize {
        match &self.items {
            BatchItems::Plain(messages) => messages.len(),
            BatchItems::Classified(items) => items.len(),
        }
    }

    /// No message and nothing filtered: nothing to push.
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0 && self.filtered == 0
    }

    pub(crate) fn clear(&mut self) {
        match &mut self.items {
            BatchItems::Plain(messages) => messages.clear(),
            BatchItems::Classified(items) => items.clear(),
        }
        self.filtered = 0;
    }

    fn pop_front(&mut self) -> Option<Incoming> {
        match &mut self.items {
            BatchItems::Plain(messages) => messages.pop_front().map(Incoming::plain),
            BatchItems::Classified(items) => items.pop_front(),
        }
    }

    fn push_front(&mut self, item: Incoming) {
        match &mut self.items {
            BatchItems::Plain(messages) => messages.push_front(item.message),
            BatchItems::Classified(items) => items.push_front(item),
        }
    }
}

/// The bounded, observable message buffer; see the [module docs](self).
///
/// A connection made with [`crate::Client::connect_buffered`] owns one and
/// exposes its consumer side; [`Buffer::stats`] can be read from any
/// thread through [`crate::BufferedWebSocket::buffer`].
pub struct Buffer {
    /// Shared with the spill's writer thread, if there is one.
    state: Arc<Shared>,
    classifier: Option<ClassifyFn>,
    key_fn: Option<KeyFn>,
    lag: Option<LagFn>,
    max_messages: usize,
    max_bytes: usize,
    /// `Overflow::Spill`: the log and the writer thread.
    spill: Option<SpillIo>,
}

/// The buffer's one lock.
struct Shared(Mutex<State>);

struct State {
    queue: Queue,
    /// Consumers waiting for a message.
    consumers: Vec<Waker>,
    /// The producer waiting for room.
    producer: Option<Waker>,
    /// How the connection ended, once it has: given to the consumer once
    /// the queue is empty, then `AlreadyEnded`.
    end: Option<Option<ConnectionEnd>>,
    /// Threads in [`Buffer::wait_finished`], woken by `finish` only (a
    /// consumer's waker would take a message's wake-up from a consumer).
    finish_waiters: Vec<Waker>,
    /// The spill's writer thread, and whether it sleeps until woken.
    writer: Option<Thread>,
    writer_idle: bool,
    /// The buffer is being dropped: the writer stops.
    stop: bool,
    /// Messages out in [`Lease`]s: taken, not yet committed.
    leases: lease::Outstanding,
}

/// The disk side of a spilling buffer.
struct SpillIo {
    /// `None` once dropped, before the directory is removed.
    log: Option<SharedLog>,
    writer: Option<JoinHandle<()>>,
    durable: bool,
    /// The ephemeral spill's private directory.
    remove: Option<PathBuf>,
    /// The durable directory's lock, released last.
    lock: Option<spill::DirLock>,
}

/// How many payload bytes one consumer's call takes from the disk at most:
/// what reading back holds in memory at once, beside the log's read chunk.
const DISK_TAKE_BYTES: usize = 4 << 20;

impl std::fmt::Debug for Buffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Buffer")
            .field("max_messages", &self.max_messages)
            .field("max_bytes", &self.max_bytes)
            .field("stats", &self.stats())
            .finish()
    }
}

impl Buffer {
    /// An empty buffer. Check `config` with [`BufferConfig::validate`]
    /// first; connections do.
    ///
    /// With [`Overflow::Spill`], prefer [`try_new`](Self::try_new), which
    /// reports a spill directory that cannot be opened: here the failure
    /// is logged and the spill refuses every message (its fallback acts,
    /// and the reason is in [`BufferError::SpillRefused`]).
    pub fn new(config: &BufferConfig) -> Buffer {
        match Buffer::try_new(config) {
            Ok(buffer) => buffer,
            Err(e) => {
                tracing::error!(error = %e, "the spill cannot be opened; its fallback takes every message");
                let buffer = Buffer::in_memory(config);
                if let Overflow::Spill(spill) = &config.overflow {
                    let mut state = SpillState::new(spill, 0);
                    state.failing = Some(e.refusal());
                    buffer.lock().queue.set_spill(state);
                }
                buffer
            }
        }
    }

    /// An empty buffer; with [`Overflow::Spill`], opens its directory
    /// (a durable one's undelivered messages come first) and starts its
    /// writer thread.
    ///
    /// # Errors
    ///
    /// [`SpillError`] when the spill directory cannot be created, locked
    /// ([`SpillError::Locked`]: another durable buffer uses it) or read,
    /// or a size in the [`SpillConfig`] is too small. Connections report
    /// it as [`crate::ErrorKind::Spill`].
    pub fn try_new(config: &BufferConfig) -> Result<Buffer, SpillError> {
        let mut buffer = Buffer::in_memory(config);
        let Overflow::Spill(spill_config) = &config.overflow else {
            return Ok(buffer);
        };
        let opened = spill::open(spill_config)?;
        let (state, durable) = {
            let guard = lock_log(&opened.log);
            let mut state = SpillState::new(spill_config, guard.log.max_record());
            state.recover(guard.log.len(), guard.log.disk_bytes());
            state.figures.corrupt_records = guard.log.counts().corrupt_records;
            (
                state,
                spill_config.durable.then_some(spill_config.fsync_interval),
            )
        };
        buffer.lock().queue.set_spill(state);
        let host: Arc<dyn WriterHost> = buffer.state.clone();
        let log = opened.log.clone();
        let writer = std::thread::Builder::new()
            .name("floodgate-spill".into())
            .spawn(move || spill::run(host, log, durable))
            .map_err(|source| SpillError::Io {
                op: SpillOp::StartWriter,
                path: spill_config.dir.clone(),
                source,
            })?;
        buffer.lock().writer = Some(writer.thread().clone());
        buffer.spill = Some(SpillIo {
            log: Some(opened.log),
            writer: Some(writer),
            durable: spill_config.durable,
            remove: opened.remove,
            lock: opened.lock,
        });
        Ok(buffer)
    }

    fn in_memory(config: &BufferConfig) -> Buffer {
        let queue = Queue::new(config);
        Buffer {
            key_fn: queue.key_fn().cloned(),
            state: Arc::new(Shared(Mutex::new(State {
                queue,
                consumers: Vec::new(),
                producer: None,
                end: None,
                finish_waiters: Vec::new(),
                writer: None,
                writer_idle: false,
                stop: false,
                leases: lease::Outstanding::default(),
            }))),
            classifier: config.classifier.clone(),
            lag: config.lag.as_ref().map(|l| l.callback.clone()),
            max_messages: config.max_messages,
            max_bytes: config.max_bytes,
            spill: None,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock()
    }

    /// Whether staging a message calls the application's code (a
    /// classifier or a conflation key), which a reader must not run under
    /// a lock its senders need.
    pub(crate) fn stage_calls_user_code(&self) -> bool {
        self.classifier.is_some() || self.key_fn.is_some()
    }

    /// The message limit (set with [`BufferConfig::max_messages`]).
    pub fn max_messages(&self) -> usize {
        self.max_messages
    }

    /// The byte limit (set with [`BufferConfig::max_bytes`]).
    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// A consistent snapshot of the counters; see [`Stats`].
    pub fn stats(&self) -> Stats {
        let state = self.lock();
        state.leases.adjust(state.queue.stats(Instant::now()))
    }

    /// Messages buffered now that a consumer can take (not those out in a
    /// [`Lease`]).
    pub fn len(&self) -> usize {
        let state = self.lock();
        state.queue.len() + state.leases.returned_len()
    }

    /// Whether no message is buffered now that a consumer can take.
    pub fn is_empty(&self) -> bool {
        let state = self.lock();
        state.queue.is_empty() && state.leases.returned_len() == 0
    }

    /// Whether the connection has ended (messages may still be buffered).
    pub fn is_finished(&self) -> bool {
        self.lock().end.is_some()
    }

    /// Waits up to `timeout` for the connection to end, without taking
    /// any message; returns whether it has ended. For a close that leaves
    /// the buffered messages where they are (a durable spill keeps them
    /// for the next connection on its directory).
    ///
    /// ```
    /// # fn demo(ws: &floodgate::BufferedWebSocket) -> floodgate::Result<()> {
    /// use std::time::Duration;
    /// ws.sender().start_close(None)?;
    /// if !ws.buffer().wait_finished(Duration::from_secs(5)) {
    ///     ws.sender().shutdown();
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn wait_finished(&self, timeout: Duration) -> bool {
        // (The async counterpart is `poll_finished`.)
        let deadline = Instant::now().checked_add(timeout);
        let waker = thread_waker();
        loop {
            {
                let mut state = self.lock();
                if state.end.is_some() {
                    return true;
                }
                if !state.finish_waiters.iter().any(|w| w.will_wake(&waker)) {
                    state.finish_waiters.push(waker.clone());
                }
            }
            match deadline {
                None => std::thread::park(),
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        let mut state = self.lock();
                        state.finish_waiters.retain(|w| !w.will_wake(&waker));
                        return state.end.is_some();
                    }
                    std::thread::park_timeout(left);
                }
            }
        }
    }

    fn fire(&self, lag: Option<LagEvent>) {
        if let (Some(event), Some(callback)) = (lag, &self.lag) {
            callback(&event);
        }
    }

    /// Whether the connection has ended, for async front ends: `Pending`
    /// (and `cx`'s waker is woken at the end) until it has. Like
    /// [`wait_finished`](Self::wait_finished), takes no message.
    pub fn poll_finished(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = self.lock();
        if state.end.is_some() {
            return Poll::Ready(());
        }
        if !state.finish_waiters.iter().any(|w| w.will_wake(cx.waker())) {
            state.finish_waiters.push(cx.waker().clone());
        }
        Poll::Pending
    }

    /// Whether a receive would return at once, for an event loop that is
    /// not this crate's (the Python package's readiness descriptor, which
    /// `select` waits on): `Ready` while a message is buffered (in memory
    /// or spilled) or the connection has ended; otherwise `Pending`, and
    /// `cx`'s waker is woken when a message arrives or the connection
    /// ends. Takes nothing; a waker is woken once, so poll again after
    /// each wake-up and after each take to follow the buffer.
    ///
    /// ```
    /// use std::task::{Context, Poll, Waker};
    /// # fn demo(buffer: &floodgate::buffer::Buffer) {
    /// let mut cx = Context::from_waker(Waker::noop());
    /// if buffer.poll_ready(&mut cx).is_ready() {
    ///     let _ = buffer.try_recv(); // returns at once
    /// }
    /// # }
    /// ```
    pub fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = self.lock();
        if !state.queue.is_empty() || state.leases.returned_len() > 0 || state.end.is_some() {
            return Poll::Ready(());
        }
        if !state.consumers.iter().any(|w| w.will_wake(cx.waker())) {
            state.consumers.push(cx.waker().clone());
        }
        Poll::Pending
    }

    /// How the connection ended, without taking the messages still
    /// buffered (an App closing without draining: a durable spill keeps
    /// them); `None` while it has not. Given once, as to a consumer.
    pub(crate) fn take_end(&self) -> Option<RecvError> {
        let mut state = self.lock();
        let end = state.end.as_mut()?;
        Some(end.take().map_or(RecvError::AlreadyEnded, RecvError::Ended))
    }

    // ----- the producer side (the connection's reader) ---------------------

    /// An empty batch for the reader, of the kind this buffer's
    /// configuration needs.
    pub(crate) fn new_batch(&self) -> Batch {
        let items = if self.classifier.is_none() && self.key_fn.is_none() {
            BatchItems::Plain(VecDeque::new())
        } else {
            BatchItems::Classified(VecDeque::new())
        };
        Batch { items, filtered: 0 }
    }

    /// Adds a decoded message to `batch`, classified (or counted as
    /// filtered). Runs the user's functions, so call it without holding
    /// the lock.
    #[inline]
    pub(crate) fn stage(&self, batch: &mut Batch, message: Message) {
        let items = match &mut batch.items {
            BatchItems::Plain(messages) => return messages.push_back(message),
            BatchItems::Classified(items) => items,
        };
        let priority = match &self.classifier {
            None => Priority::NORMAL,
            Some(classify) => match classify(&message) {
                Class::Keep(priority) => priority,
                Class::Discard => {
                    batch.filtered += 1;
                    return;
                }
            },
        };
        let key = self
            .key_fn
            .as_ref()
            .and_then(|key| key(&message))
            .map(Box::new);
        items.push_back(Incoming {
            message,
            priority,
            key,
        });
    }

    /// Places as many messages from the front of `batch` as the policy
    /// allows, after counting the ones the classifier discarded. On
    /// [`Pushed::Wait`], `waker` is woken when room may have been made.
    ///
    /// With `wake_consumers` false, waiting consumers are not woken for
    /// the messages placed: the caller promises a
    /// [`wake_consumers`](Self::wake_consumers) soon (the reader does so
    /// before it could block on the socket). A full buffer wakes them
    /// regardless, since the caller is about to wait for them.
    pub(crate) fn push(&self, batch: &mut Batch, waker: &Waker, wake_consumers: bool) -> Pushed {
        let now = Instant::now();
        let mut lags: Vec<LagEvent> = Vec::new();
        let mut placed = 0usize;
        let mut state = self.lock();
        for _ in 0..std::mem::take(&mut batch.filtered) {
            state.queue.record_filtered();
        }
        if let BatchItems::Plain(messages) = &mut batch.items {
            let (run, lag) = state.queue.offer_run(messages, now);
            placed += run;
            lags.extend(lag);
        }
        let outcome = loop {
            let Some(item) = batch.pop_front() else {
                break Pushed::Done;
            };
            let (offered, lag) = state.queue.offer(item, now);
            lags.extend(lag);
            match offered {
                Offered::Placed => placed += 1,
                Offered::Wait(item, deadline) => {
                    batch.push_front(*item);
                    match &state.producer {
                        Some(w) if w.will_wake(waker) => {}
                        _ => state.producer = Some(waker.clone()),
                    }
                    break Pushed::Wait(deadline);
                }
                Offered::FellBehind(err) => {
                    // The connection ends here: what else this read decoded
                    // is dropped too, and counted, never lost silently.
                    for _ in 0..batch.len() {
                        state.queue.record_dropped_newest();
                    }
                    batch.clear();
                    break Pushed::FellBehind(err);
                }
            }
        };
        let wake: Vec<Waker> = if matches!(outcome, Pushed::Wait(_)) {
            // Earlier pushes may have deferred their wake-ups.
            std::mem::take(&mut state.consumers)
        } else if wake_consumers && placed > 0 && !state.consumers.is_empty() {
            let n = placed.min(state.consumers.len());
            state.consumers.drain(..n).collect()
        } else {
            Vec::new()
        };
        let writer = state.writer_to_wake();
        drop(state);
        wake.into_iter().for_each(Waker::wake);
        if let Some(writer) = writer {
            writer.unpark();
        }
        for lag in lags {
            self.fire(Some(lag));
        }
        outcome
    }

    /// Counts every message of `batch` as dropped (`dropped_newest`) and
    /// empties it: the connection ended while they waited for room, so
    /// they will never be placed, and are never lost silently.
    pub(crate) fn drop_batch(&self, batch: &mut Batch) {
        let mut state = self.lock();
        for _ in 0..std::mem::take(&mut batch.filtered) {
            state.queue.record_filtered();
        }
        for _ in 0..batch.len() {
            state.queue.record_dropped_newest();
        }
        drop(state);
        batch.clear();
    }

    /// Wakes every waiting consumer: the deferred wake-ups of
    /// [`push`](Self::push) with `wake_consumers` false.
    pub(crate) fn wake_consumers(&self) {
        let consumers = {
            let mut state = self.lock();
            if state.queue.is_empty() {
                return;
            }
            std::mem::take(&mut state.consumers)
        };
        consumers.into_iter().for_each(Waker::wake);
    }

    /// Counts a ping the reader answered, `delay` after decoding it.
    pub(crate) fn record_ping(&self, delay: Duration) {
        self.lock().queue.record_ping(delay);
    }

    /// Counts a pong received, with the round trip of the keepalive ping
    /// it answered (`None`: it answered none).
    pub(crate) fn record_pong(&self, rtt: Option<Duration>) {
        self.lock().queue.record_pong(rtt);
    }

    /// The application is closing: stop waiting for room (messages that do
    /// not fit are dropped from now on, counted as `dropped_newest`), so
    /// the reader can reach the server's close frame.
    pub(crate) fn set_closing(&self) {
        let producer = {
            let mut state = self.lock();
            state.queue.set_closing(Instant::now());
            state.producer.take()
        };
        if let Some(w) = producer {
            w.wake();
        }
    }

    /// The connection ended with `end` (the front end's error:
    /// `ConnectionClosed` for a clean close): the consumer gets it after the
    /// buffered messages, as [`RecvError::Ended`]. Only the first end counts.
    pub(crate) fn finish(&self, end: impl std::error::Error + Send + Sync + 'static) {
        let (consumers, producer) = {
            let mut state = self.lock();
            if state.end.is_none() {
                state.end = Some(Some(ConnectionEnd::new(end)));
            }
            state.queue.set_closing(Instant::now());
            let mut wake = std::mem::take(&mut state.consumers);
            wake.append(&mut state.finish_waiters);
            (wake, state.producer.take())
        };
        consumers.into_iter().for_each(Waker::wake);
        if let Some(w) = producer {
            w.wake();
        }
    }

    // ----- the consumer side -----------------------------------------------

    /// Takes up to `max` messages into `out` if any is buffered; `Ok(0)`
    /// if none is and the connection is open; the end of the connection
    /// once it has ended and nothing is left.
    fn take(
        &self,
        mut sink: impl FnMut(Delivered),
        max: usize,
        waker: Option<&Waker>,
        taking: Taking,
    ) -> Result<usize, RecvError> {
        loop {
            if let Some(result) = self.take_once(&mut sink, max, waker, taking) {
                return result;
            }
        }
    }

    /// One attempt of [`take`](Self::take); `None`: look again (every
    /// record read from the disk was damaged, and skipped).
    fn take_once(
        &self,
        mut sink: impl FnMut(Delivered),
        max: usize,
        waker: Option<&Waker>,
        taking: Taking,
    ) -> Option<Result<usize, RecvError>> {
        let now = Instant::now();
        let mut lags: Vec<LagEvent> = Vec::new();
        let mut state = self.lock();
        // A released lease's messages are the oldest: they go first.
        let lease = taking == Taking::Lease;
        let durable = self.spill.as_ref().is_some_and(|io| io.durable);
        let returned = state.leases.take_returned(max, taking, durable, &mut sink);
        if returned > 0 {
            let end_hold = taking == Taking::Recv && state.leases.returned_len() == 0;
            drop(state);
            if end_hold {
                self.end_hold_if_idle();
            }
            return Some(Ok(returned));
        }
        if let Some(mut taken) = state.queue.take_all(now, max) {
            if lease {
                state.leases.lend(taken.len(), taken.bytes(), false);
            }
            // The common case under load: everything at once, handed out
            // after the lock is released so the reader is not kept waiting.
            let producer = state.producer.take();
            drop(state);
            if let Some(w) = producer {
                w.wake();
            }
            let n = taken.len();
            taken.deliver(&mut sink);
            self.lock().queue.finish_take(taken, &mut lags);
            for lag in lags {
                self.fire(Some(lag));
            }
            return Some(Ok(n));
        }
        let bytes_before = state.queue.bytes();
        let mut n = state.queue.pop_many(now, max, &mut sink, &mut lags);
        if lease && n > 0 {
            let bytes = bytes_before - state.queue.bytes();
            state.leases.lend(n, bytes as u64, false);
        }
        let mut spill_taken = false;
        if n == 0 {
            let next = state.queue.spill().map(|spill| match spill.next() {
                // A durable lease takes only what is on disk, where a
                // process killed before the commit finds it again; the
                // writer is about to put the hand-off there (unless it is
                // failing: then the hand-off, rather than nothing).
                Next::HandOff if lease && spill.durable && spill.failing.is_none() => Next::Wait,
                next => next,
            });
            match next {
                Some(Next::Disk) => {
                    let taken = self.take_from_disk(state, &mut sink, max, now, taking);
                    // Zero: every record read was damaged; look again.
                    return (taken > 0).then_some(Ok(taken));
                }
                Some(Next::HandOff) => {
                    let mut bytes = 0u64;
                    let mut counted = |d: Delivered| {
                        bytes += d.len() as u64;
                        sink(d);
                    };
                    n = state.queue.take_handoff(now, max, &mut counted, &mut lags);
                    if lease {
                        state.leases.lend(n, bytes, false);
                    }
                    spill_taken = n > 0;
                }
                Some(Next::Wait) => {
                    // The writer is writing the next message, or another
                    // consumer reads the disk: both wake the consumers.
                    if let Some(waker) = waker {
                        if !state.consumers.iter().any(|w| w.will_wake(waker)) {
                            state.consumers.push(waker.clone());
                        }
                    }
                    return Some(Ok(0));
                }
                Some(Next::Empty) | None => {}
            }
        }
        let result = if n > 0 {
            Ok(n)
        } else if let Some(end) = &mut state.end {
            Err(end.take().map_or(RecvError::AlreadyEnded, RecvError::Ended))
        } else {
            if let Some(waker) = waker {
                if !state.consumers.iter().any(|w| w.will_wake(waker)) {
                    state.consumers.push(waker.clone());
                }
            }
            Ok(0)
        };
        // Wake the reader once there is a useful amount of room, not after
        // every message: a wake-up per message would cost more than the
        // message.
        let producer = if n > 0
            && state.producer.is_some()
            && (spill_taken || self.has_room_to_resume(&state))
        {
            state.producer.take()
        } else {
            None
        };
        drop(state);
        if let Some(w) = producer {
            w.wake();
        }
        for lag in lags {
            self.fire(Some(lag));
        }
        Some(result)
    }

    /// Whether both limits have an eighth of slack (or the buffer is
    /// empty): enough room for the reader to place a run of messages.
    fn has_room_to_resume(&self, state: &State) -> bool {
        let queue = &state.queue;
        queue.memory_len() == 0
            || (queue.memory_len() <= self.max_messages - self.max_messages.div_ceil(8)
                && queue.bytes() <= self.max_bytes - self.max_bytes.div_ceil(8))
    }

    /// Takes up to `max` spilled messages from the log, reading outside
    /// the buffer's lock (the reader may push meanwhile; the new arrivals
    /// join the spill behind what is on disk). Returns how many were
    /// handed to `sink`: 0 when every record read was damaged.
    fn take_from_disk(
        &self,
        mut state: MutexGuard<'_, State>,
        sink: &mut impl FnMut(Delivered),
        max: usize,
        now: Instant,
        taking: Taking,
    ) -> usize {
        let io = self
            .spill
            .as_ref()
            .expect("a spill with records on disk has its log");
        let log = io
            .log
            .as_ref()
            .expect("the log lives as long as the buffer");
        let spill = state.queue.spill_mut().expect("a spilling queue");
        spill.reading = true;
        // Only records the writer has reported: the log may already hold
        // the writer's next batch, which the buffer counts in the hand-off
        // until the writer reports it (taking it now would count it twice).
        let committed = usize::try_from(spill.disk_records()).unwrap_or(usize::MAX);
        drop(state);

        let mut records = Vec::new();
        let mut read_errors = 0;
        // The log ran out before the records counted were taken.
        let mut exhausted = false;
        let (removed, disk_bytes, version, corrupt) = {
            let mut guard = lock_log(log);
            if io.durable {
                match taking {
                    // The cursor stays before these records until the lease
                    // is committed: a process killed meanwhile delivers them
                    // again.
                    Taking::Lease if !guard.log.is_held() => guard.log.hold(),
                    // Received, they are delivered: a hold left by leases
                    // now all settled ends here.
                    Taking::Recv if guard.log.is_held() => {
                        lease::commit_hold_if_idle(&mut guard, &mut self.lock());
                    }
                    _ => {}
                }
            }
            let before = guard.log.len();
            let mut bytes = 0;
            while records.len() < max.max(1).min(committed) && bytes < DISK_TAKE_BYTES {
                match guard.log.take() {
                    Ok(Some(record)) => {
                        bytes += record.payload.len();
                        records.push(record);
                    }
                    Ok(None) => {
                        exhausted = true;
                        break;
                    }
                    Err(e) => {
                        // A segment the disk cannot read: skip what is left
                        // of it (counted) rather than fail every later call.
                        tracing::warn!(error = %e, "spill: a segment could not be read back; its remaining records are skipped");
                        read_errors += 1;
                        guard.log.abandon_oldest();
                    }
                }
            }
            if io.durable && !records.is_empty() {
                // Where the next run starts: after what is handed out now.
                if let Err(e) = guard.log.save_cursor() {
                    tracing::warn!(error = %e, "spill: the read cursor could not be saved; a restart may deliver some messages again");
                }
            }
            guard.version += 1;
            (
                before - guard.log.len(),
                guard.log.disk_bytes(),
                guard.version,
                guard.log.counts().corrupt_records,
            )
        };
        let mut delivered = Vec::with_capacity(records.len());
        let mut stamps = Vec::with_capacity(records.len());
        let mut bad_text = 0u64;
        for record in records {
            let message = match record.kind {
                spill::Kind::Binary => Message::Binary(record.payload),
                spill::Kind::Text => match floodgate_proto::Text::try_from(record.payload) {
                    Ok(text) => Message::Text(text),
                    Err(_) => {
                        // Its CRC matched: only a bug could get here.
                        bad_text += 1;
                        continue;
                    }
                },
            };
            stamps.push(record.stamp);
            delivered.push((
                message,
                Priority::from_index(usize::from(record.priority.min(3))),
            ));
        }
        // Only reported records are counted on disk. A segment given up
        // after a read error may also have held records the writer had
        // appended and not yet reported: they are not counted here; once
        // reported, they are found missing like any other (below, at a
        // later take).
        let committed = committed as u64;
        let mut removed = removed.min(committed);
        let mut lost = removed - delivered.len() as u64;
        if exhausted && removed < committed {
            // Counted on disk, and not there (see above): gone, and said so.
            lost += committed - removed;
            removed = committed;
        }

        let mut lags = Vec::new();
        let mut state = self.lock();
        let spill = state.queue.spill_mut().expect("a spilling queue");
        spill.end_read(removed, disk_bytes, version);
        spill.figures.corrupt_records = spill.figures.corrupt_records.max(corrupt) + bad_text;
        spill.figures.errors += read_errors;
        let retry_writer = spill.failing.is_some();
        let waits = state
            .queue
            .record_disk_take(now, stamps.into_iter(), lost, &mut lags);
        if taking == Taking::Lease {
            let bytes = delivered.iter().map(|(m, _)| m.len() as u64).sum();
            state.leases.lend(delivered.len(), bytes, true);
        }
        let producer = state.producer.take();
        let consumers = std::mem::take(&mut state.consumers);
        let writer = if retry_writer {
            state.writer.clone()
        } else {
            None
        };
        drop(state);
        if let Some(w) = producer {
            w.wake();
        }
        // Consumers that waited while this one read.
        consumers.into_iter().for_each(Waker::wake);
        if let Some(writer) = writer {
            writer.unpark();
        }
        let n = delivered.len();
        for ((message, priority), waited) in delivered.into_iter().zip(waits) {
            sink(Delivered::new(message, waited, priority));
        }
        for lag in lags {
            self.fire(Some(lag));
        }
        n
    }

    /// Takes a message if one is buffered, without waiting.
    ///
    /// # Errors
    ///
    /// Once the connection has ended and the buffer is empty:
    /// [`RecvError::Ended`] with how it ended (`ConnectionClosed` after a
    /// close handshake, or the failure), then [`RecvError::AlreadyEnded`].
    pub fn try_recv(&self) -> Result<Option<Delivered>, RecvError> {
        let mut out = None;
        self.take(|d| out = Some(d), 1, None, Taking::Recv)?;
        Ok(out)
    }

    /// Waits for a message; for async front ends.
    ///
    /// # Errors
    ///
    /// As for [`try_recv`](Self::try_recv).
    pub fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Result<Delivered, RecvError>> {
        let mut out = None;
        match self.take(|d| out = Some(d), 1, Some(cx.waker()), Taking::Recv) {
            Ok(0) => Poll::Pending,
            Ok(_) => Poll::Ready(Ok(out.expect("one message taken"))),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    /// Waits for at least one message, then takes up to `max` into `out`;
    /// for async front ends.
    ///
    /// # Errors
    ///
    /// As for [`try_recv`](Self::try_recv).
    pub fn poll_recv_batch(
        &self,
        cx: &mut Context<'_>,
        out: &mut Vec<Delivered>,
        max: usize,
    ) -> Poll<Result<usize, RecvError>> {
        match self.take(|d| out.push(d), max.max(1), Some(cx.waker()), Taking::Recv) {
            Ok(0) => Poll::Pending,
            other => Poll::Ready(other),
        }
    }

    /// Waits for up to `max` messages, until `deadline` (`None`: for ever)
    /// for the first. `Ok(0)` when the deadline passed.
    fn wait_batch(
        &self,
        mut sink: impl FnMut(Delivered),
        max: usize,
        deadline: Option<Instant>,
        taking: Taking,
    ) -> Result<usize, RecvError> {
        // Without waiting first: no waker is made when a message is there.
        let n = self.take(&mut sink, max.max(1), None, taking)?;
        if n > 0 {
            return Ok(n);
        }
        let waker = thread_waker();
        loop {
            let n = self.take(&mut sink, max.max(1), Some(&waker), taking)?;
            if n > 0 {
                return Ok(n);
            }
            match deadline {
                None => std::thread::park(),
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        self.forget_consumer(&waker);
                        return Ok(0);
                    }
                    std::thread::park_timeout(left);
                }
            }
        }
    }

    /// Forgets a consumer's waker after a wait that timed out.
    pub(crate) fn forget_consumer(&self, waker: &Waker) {
        self.lock().consumers.retain(|w| !w.will_wake(waker));
    }

    /// Waits for the next message.
    ///
    /// # Errors
    ///
    /// As for [`try_recv`](Self::try_recv).
    pub fn recv(&self) -> Result<Delivered, RecvError> {
        let mut out = None;
        self.wait_batch(|d| out = Some(d), 1, None, Taking::Recv)?;
        Ok(out.expect("a message was taken"))
    }

    /// Waits at most `timeout` for the next message.
    ///
    /// # Errors
    ///
    /// [`RecvError::TimedOut`] when none came in time (the connection
    /// stays usable); otherwise as for [`try_recv`](Self::try_recv).
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Delivered, RecvError> {
        let mut out = None;
        if self.wait_batch(
            |d| out = Some(d),
            1,
            Instant::now().checked_add(timeout),
            Taking::Recv,
        )? == 0
        {
            return Err(RecvError::TimedOut(timeout));
        }
        Ok(out.expect("a message was taken"))
    }

    /// Takes every buffered message, up to `max`, waiting at most `wait`
    /// for the first. An empty vector means none came in time.
    ///
    /// # Errors
    ///
    /// As for [`try_recv`](Self::try_recv).
    pub fn recv_batch(&self, max: usize, wait: Duration) -> Result<Vec<Delivered>, RecvError> {
        let mut out = Vec::new();
        self.recv_batch_into(&mut out, max, wait)?;
        Ok(out)
    }

    /// [`recv_batch`](Self::recv_batch) appending to `out`, so a loop can
    /// reuse one vector; returns how many were appended.
    ///
    /// # Errors
    ///
    /// As for [`try_recv`](Self::try_recv).
    pub fn recv_batch_into(
        &self,
        out: &mut Vec<Delivered>,
        max: usize,
        wait: Duration,
    ) -> Result<usize, RecvError> {
        let deadline = Instant::now().checked_add(wait);
        self.wait_batch(|d| out.push(d), max, deadline, Taking::Recv)
    }
}

impl Drop for Buffer {
    /// Stops the spill's writer (a durable one first writes what waits for
    /// it, and syncs), then removes an ephemeral spill's directory.
    fn drop(&mut self) {
        let Some(mut io) = self.spill.take() else {
            return;
        };
        if let Some(lock) = &io.lock {
            lock.releasing();
        }
        let writer = {
            let mut state = self.lock();
            state.stop = true;
            state.writer.take()
        };
        if let Some(writer) = writer {
            writer.unpark();
        }
        if let Some(handle) = io.writer.take() {
            let _ = handle.join();
        }
        let unwritten = self.lock().queue.spill().map_or(0, |s| s.handoff_len());
        if io.durable && unwritten > 0 {
            // The writer stops without them only when the disk is failing.
            tracing::warn!(
                unwritten,
                "durable spill: messages not yet written when the buffer was dropped are lost (the disk was failing)"
            );
        }
        // The log writes its cursor when dropped: before its directory goes.
        drop(io.log.take());
        if let Some(dir) = io.remove.take() {
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                tracing::warn!(dir = %dir.display(), error = %e, "the ephemeral spill directory could not be removed");
            }
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic in user code never runs under this lock (classifier, key
        // function and lag callback are called outside it), so a poisoned
        // lock only means a panic inside the buffer itself; its state is
        // still the last consistent one.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl State {
    /// The writer, if it sleeps and the hand-off has messages for it.
    fn writer_to_wake(&mut self) -> Option<Thread> {
        if self.writer_idle && self.queue.spill().is_some_and(|s| s.handoff_len() > 0) {
            self.writer_idle = false;
            return self.writer.clone();
        }
        None
    }

    /// Takes every waiting consumer and the producer, to wake after the
    /// lock is released.
    fn take_waiters(&mut self) -> (Vec<Waker>, Option<Waker>) {
        (std::mem::take(&mut self.consumers), self.producer.take())
    }
}

fn wake_all((consumers, producer): (Vec<Waker>, Option<Waker>)) {
    consumers.into_iter().for_each(Waker::wake);
    if let Some(w) = producer {
        w.wake();
    }
}

impl WriterHost for Shared {
    fn begin(
        &self,
        batch: &mut Vec<(spill::Meta, Message)>,
        max_bytes: usize,
        durable: Durable,
    ) -> Round {
        let mut state = self.lock();
        let stop = state.stop;
        let now = Instant::now();
        let spill = state.queue.spill_mut().expect("a writer has a spill");
        let retry_later = spill.failing.is_some() && durable.retry_at.is_some_and(|at| now < at);
        // An ephemeral spill ends with the buffer; a durable one writes
        // what waits first (unless the disk is failing).
        if stop && (!spill.durable || spill.failing.is_some()) {
            return Round::Stop;
        }
        if !retry_later && spill.begin_write(batch, max_bytes) > 0 {
            return Round::Write;
        }
        if stop {
            return Round::Stop;
        }
        let sync_at = durable.sync_at.filter(|_| spill.sync_due);
        let retry_at = durable.retry_at.filter(|_| spill.failing.is_some());
        let wake_at = match (sync_at, retry_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        state.writer_idle = true;
        Round::Idle(wake_at.map(|at| at.saturating_duration_since(now)))
    }

    fn end(
        &self,
        written: usize,
        failure: Option<(SpillRefusal, bool)>,
        disk_bytes: u64,
        version: u64,
    ) {
        let mut state = self.lock();
        state
            .queue
            .spill_mut()
            .expect("a writer has a spill")
            .end_write(written, failure, disk_bytes, version);
        let waiters = state.take_waiters();
        drop(state);
        wake_all(waiters);
    }

    fn sync_due(&self) -> bool {
        self.lock().queue.spill().is_some_and(|s| s.sync_due)
    }

    fn synced(&self) {
        if let Some(spill) = self.lock().queue.spill_mut() {
            spill.sync_due = false;
        }
    }

    fn clear_failing(&self) {
        let mut state = self.lock();
        if let Some(spill) = state.queue.spill_mut() {
            spill.failing = None;
        }
        let waiters = state.take_waiters();
        drop(state);
        wake_all(waiters);
    }
}

/// Wakes a parked thread: how the blocking front end waits on a buffer
/// built around wakers.
struct ThreadWaker(Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// This thread's waker, made once per thread (no allocation per wait).
pub(crate) fn thread_waker() -> Waker {
    thread_local! {
        static WAKER: Waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    }
    WAKER.with(Waker::clone)
}

#[cfg(test)]
mod ready_tests {
    //! `Buffer::poll_ready`: the readiness a foreign event loop follows.
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Default)]
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn push(buffer: &Buffer, texts: &[&str], wake_consumers: bool) {
        let mut batch = buffer.new_batch();
        for t in texts {
            buffer.stage(&mut batch, Message::text(*t));
        }
        let producer = Waker::noop();
        assert!(matches!(
            buffer.push(&mut batch, producer, wake_consumers),
            Pushed::Done
        ));
        if !wake_consumers {
            buffer.wake_consumers();
        }
    }

    fn poll(buffer: &Buffer, count: &Arc<Count>) -> bool {
        let waker = Waker::from(count.clone());
        buffer
            .poll_ready(&mut Context::from_waker(&waker))
            .is_ready()
    }

    #[test]
    fn ready_follows_the_buffer_and_wakes_on_arrival() {
        for wake_consumers in [true, false] {
            let buffer = Buffer::new(&BufferConfig::new().max_messages(16));
            let count = Arc::new(Count::default());
            assert!(!poll(&buffer, &count), "ready while empty");
            // Polling twice registers once: one wake-up per arrival.
            assert!(!poll(&buffer, &count));
            push(&buffer, &["a", "b"], wake_consumers);
            assert_eq!(
                count.0.load(Ordering::SeqCst),
                1,
                "not woken once on arrival"
            );
            assert!(poll(&buffer, &count));
            assert_eq!(buffer.try_recv().unwrap().unwrap().as_text(), Some("a"));
            assert!(poll(&buffer, &count), "one message left");
            buffer.try_recv().unwrap().unwrap();
            assert!(!poll(&buffer, &count), "ready after the last was taken");
            // Nothing arrived: no wake-up.
            assert_eq!(count.0.load(Ordering::SeqCst), 1);
        }
    }

    #[test]
    fn the_end_is_ready_and_wakes() {
        let buffer = Buffer::new(&BufferConfig::new());
        let count = Arc::new(Count::default());
        assert!(!poll(&buffer, &count));
        buffer.finish(std::io::Error::other("gone"));
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(poll(&buffer, &count));
        assert!(buffer.try_recv().is_err());
        // Ended and given: a receive still returns at once.
        assert!(poll(&buffer, &count));
    }

    #[test]
    fn spilled_messages_are_ready() {
        let dir = tempfile::tempdir().unwrap();
        let config = BufferConfig::new()
            .max_messages(1)
            .overflow(Overflow::Spill(SpillConfig::new(dir.path())));
        let buffer = Buffer::try_new(&config).unwrap();
        let count = Arc::new(Count::default());
        push(&buffer, &["m0", "m1", "m2", "m3"], true);
        // Ready while the three past the limit wait for the writer...
        assert!(poll(&buffer, &count));
        // ...and once they are on disk.
        let deadline = Instant::now() + Duration::from_secs(10);
        while buffer.stats().buffered_disk < 3 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        let before = buffer.stats();
        assert_eq!(
            (before.buffered, before.buffered_disk),
            (4, 3),
            "{before:?}"
        );
        let mut got = Vec::new();
        while poll(&buffer, &count) {
            match buffer.recv_timeout(Duration::from_secs(5)) {
                Ok(d) => got.push(d.as_text().unwrap().to_owned()),
                Err(e) => panic!("ready, but the receive failed: {e}"),
            }
        }
        assert_eq!(got, ["m0", "m1", "m2", "m3"]);
        assert_eq!(buffer.stats().buffered, 0);
    }
}
