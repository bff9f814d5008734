//! The buffer's state machine: queues per priority, the overflow policies
//! and the counters. No locks, no clock, no waiting: the caller passes the
//! time and is told when it must wait, so every rule here is tested
//! deterministically (see the tests at the bottom and
//! `tests/overflow_policies.rs`).
//!
//! Messages are kept in one `VecDeque` per priority level, each entry
//! tagged with a global sequence number; delivery takes the smallest
//! sequence number among the level heads, so delivery is in arrival order
//! whatever the priorities, while shedding can take the oldest or newest
//! message of the lowest level in O(1). A message replaced by conflation
//! with a different priority, the only removal from the middle, leaves a
//! tombstone that delivery skips; tombstones are swept when they outnumber
//! live entries.

use super::config::{Conflate, Key, KeyFn, LagThreshold, Overflow, Priority, Shed};
use super::spill::state::{Queued, SpillState};
use super::spill::{SpillFallback, SpillRefusal};
use super::stats::{Stats, WaitHistogram};
use super::{BufferConfig, BufferError};
use floodgate_proto::Message;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// A message on its way in, classified by the reader.
#[derive(Debug)]
pub(crate) struct Incoming {
    pub(crate) message: Message,
    pub(crate) priority: Priority,
    /// Boxed: only conflating connections have keys, and the others should
    /// not pay for the room (this struct and [`Entry`] are the hot path).
    pub(crate) key: Option<Box<Key>>,
}

impl Incoming {
    /// A `NORMAL` message without a key.
    pub(crate) fn plain(message: Message) -> Incoming {
        Incoming {
            message,
            priority: Priority::NORMAL,
            key: None,
        }
    }

    #[cfg(test)]
    pub(crate) fn new(message: Message) -> Incoming {
        Incoming {
            message,
            priority: Priority::NORMAL,
            key: None,
        }
    }
}

impl Delivered {
    pub(crate) fn new(message: Message, waited: Duration, priority: Priority) -> Delivered {
        Delivered {
            message,
            waited,
            priority,
        }
    }
}

/// A message the consumer took, with how long it waited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    message: Message,
    waited: Duration,
    priority: Priority,
}

impl Delivered {
    /// The message.
    pub fn message(&self) -> &Message {
        &self.message
    }

    /// The message, by value.
    pub fn into_message(self) -> Message {
        self.message
    }

    /// How long it waited in the buffer (from being decoded to being taken).
    pub fn waited(&self) -> Duration {
        self.waited
    }

    /// The priority the classifier gave it.
    pub fn priority(&self) -> Priority {
        self.priority
    }
}

impl std::ops::Deref for Delivered {
    type Target = Message;
    fn deref(&self) -> &Message {
        &self.message
    }
}

impl From<Delivered> for Message {
    fn from(d: Delivered) -> Message {
        d.message
    }
}

/// One buffered message, kept to one 64-byte cache line: the reader writes
/// and the consumer reads thousands per batch, and their memory traffic is
/// the buffer's main cost for small messages.
#[derive(Debug)]
struct Entry {
    seq: u64,
    /// `None`: a tombstone left by conflation across priorities.
    message: Option<Message>,
    /// When it was offered, in nanoseconds since the queue's epoch.
    enqueued: u64,
    key: Option<Box<Key>>,
}

/// How long to wait for room before shedding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WaitRule {
    Never,
    Forever,
    For(Duration),
}

/// What became of an offered message.
#[derive(Debug)]
pub(crate) enum Offered {
    /// Buffered, conflated, dropped or filtered: counted in `received`.
    Placed,
    /// No room and the policy says wait; the message is handed back. Offer
    /// it again after room was made or at `deadline`.
    Wait(Box<Incoming>, Option<Instant>),
    /// `Disconnect`: the message was dropped and the connection must end.
    FellBehind(BufferError),
}

/// A lag threshold crossed while offering or taking.
pub(crate) type Lag = Option<super::LagEvent>;

pub(crate) struct Queue {
    levels: [VecDeque<Entry>; Priority::LEVELS],
    /// Levels that hold entries (live or tombstones), one bit per level.
    occupied: u8,
    live: usize,
    tombstones: usize,
    bytes: usize,
    next_seq: u64,
    max_messages: usize,
    max_bytes: usize,
    wait_rule: WaitRule,
    shed: Shed,
    conflate: Option<KeyFn>,
    /// Where each conflation key's message is: (level, seq).
    keys: HashMap<Key, (usize, u64)>,
    /// Set by `close`: stop waiting for room.
    closing: bool,
    blocked_since: Option<Instant>,
    blocked_total: Duration,
    /// A `BlockFor` wait expired: shed until a message fits again.
    block_expired: bool,
    lag: LagThreshold,
    depth_alarm_armed: bool,
    wait_alarm_armed: bool,
    s: Counters,
    waits: WaitHistogram,
    /// The time of the first offer: entries store their offer time relative
    /// to it, in 8 bytes instead of an `Instant`'s 16.
    epoch: Option<Instant>,
    /// An empty deque (with its capacity) swapped in for the `NORMAL`
    /// level by [`Queue::take_all`].
    spare: VecDeque<Entry>,
    /// The epoch as nanoseconds since the Unix epoch: spilled messages
    /// carry wall-clock stamps, which outlive the process.
    epoch_unix: u64,
    /// `Overflow::Spill`: the hand-off to the writer and the disk's
    /// figures. `None` for every other policy.
    spill: Option<SpillState>,
}

/// [`Queue::take_all`] swaps the queue out only from this many messages.
const TAKE_ALL_FROM: usize = 16;

/// Every message of a plain queue, taken out in one swap by
/// [`Queue::take_all`], to be handed out without the buffer's lock.
#[derive(Debug)]
pub(crate) struct Taken {
    entries: VecDeque<Entry>,
    /// Their payload bytes.
    bytes: usize,
    stamp_now: u64,
    /// Queue waits by run of messages offered together: (wait, count).
    runs: Vec<(Duration, u64)>,
}

impl Taken {
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn bytes(&self) -> u64 {
        self.bytes as u64
    }

    /// Hands out every message in arrival order and notes the waits.
    pub(crate) fn deliver(&mut self, sink: &mut impl FnMut(Delivered)) {
        let stamp_now = self.stamp_now;
        let mut run: Option<(u64, u64)> = None; // (enqueued, count)
        for entry in self.entries.drain(..) {
            let message = entry.message.expect("plain queues hold no tombstones");
            match &mut run {
                Some((stamp, count)) if *stamp == entry.enqueued => *count += 1,
                _ => {
                    if let Some((stamp, count)) = run.take() {
                        let waited = Duration::from_nanos(stamp_now.saturating_sub(stamp));
                        self.runs.push((waited, count));
                    }
                    run = Some((entry.enqueued, 1));
                }
            }
            sink(Delivered {
                message,
                waited: Duration::from_nanos(stamp_now.saturating_sub(entry.enqueued)),
                priority: Priority::NORMAL,
            });
        }
        if let Some((stamp, count)) = run {
            self.runs
                .push((Duration::from_nanos(stamp_now.saturating_sub(stamp)), count));
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    received: u64,
    delivered: u64,
    dropped_oldest: u64,
    dropped_newest: u64,
    conflated: u64,
    filtered: u64,
    high_water_messages: usize,
    high_water_bytes: usize,
    pings_answered: u64,
    max_ping_delay: Duration,
    pongs_received: u64,
    ping_round_trips: u64,
    last_ping_rtt: Option<Duration>,
    max_ping_rtt: Duration,
}

fn rule_of(overflow: &Overflow) -> (WaitRule, Shed) {
    match overflow {
        // The shed policy of a forever-block is used only after `close`.
        Overflow::Block => (WaitRule::Forever, Shed::DropNewest),
        Overflow::BlockFor(d, shed) => (WaitRule::For(*d), *shed),
        Overflow::DropOldest => (WaitRule::Never, Shed::DropOldest),
        Overflow::DropNewest => (WaitRule::Never, Shed::DropNewest),
        Overflow::Disconnect => (WaitRule::Never, Shed::Disconnect),
        Overflow::Conflate(Conflate { otherwise, .. }) => rule_of(otherwise),
        // Never used: a message that does not fit is spilled, or handled
        // by the spill's fallback (`Queue::spill_offer`).
        Overflow::Spill(_) => (WaitRule::Never, Shed::DropNewest),
    }
}

impl Queue {
    pub(crate) fn new(config: &BufferConfig) -> Queue {
        let (wait_rule, shed) = rule_of(&config.overflow);
        let conflate = match &config.overflow {
            Overflow::Conflate(c) => Some(c.key.clone()),
            _ => None,
        };
        Queue {
            spare: VecDeque::new(),
            levels: Default::default(),
            occupied: 0,
            live: 0,
            tombstones: 0,
            bytes: 0,
            next_seq: 0,
            max_messages: config.max_messages,
            max_bytes: config.max_bytes,
            wait_rule,
            shed,
            conflate,
            keys: HashMap::new(),
            closing: false,
            blocked_since: None,
            blocked_total: Duration::ZERO,
            block_expired: false,
            lag: config.lag.as_ref().map(|l| l.threshold).unwrap_or_default(),
            depth_alarm_armed: true,
            wait_alarm_armed: true,
            s: Counters::default(),
            waits: WaitHistogram::default(),
            epoch: None,
            epoch_unix: 0,
            spill: None,
        }
    }

    /// Makes this a spilling queue (`Overflow::Spill`).
    pub(crate) fn set_spill(&mut self, spill: SpillState) {
        self.s.received += spill.figures.recovered;
        self.spill = Some(spill);
    }

    pub(crate) fn spill(&self) -> Option<&SpillState> {
        self.spill.as_ref()
    }

    pub(crate) fn spill_mut(&mut self) -> Option<&mut SpillState> {
        self.spill.as_mut()
    }

    /// Whether messages now join the spill rather than memory.
    #[inline]
    fn spilling(&self) -> bool {
        self.spill.as_ref().is_some_and(SpillState::is_active)
    }

    /// The conflation key function, if the policy conflates.
    pub(crate) fn key_fn(&self) -> Option<&KeyFn> {
        self.conflate.as_ref()
    }

    /// Messages buffered: in memory, and spilled.
    pub(crate) fn len(&self) -> usize {
        self.live + self.spill.as_ref().map_or(0, |s| s.len() as usize)
    }

    /// Messages in the memory queue.
    pub(crate) fn memory_len(&self) -> usize {
        self.live
    }

    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stops all waiting for room: from now on a message that does not fit
    /// is shed (`DropNewest` for blocking policies).
    pub(crate) fn set_closing(&mut self, now: Instant) {
        self.closing = true;
        self.end_block(now);
    }

    pub(crate) fn record_filtered(&mut self) {
        self.s.received += 1;
        self.s.filtered += 1;
    }

    /// A message the reader decoded but could not offer (the connection
    /// ended first).
    pub(crate) fn record_dropped_newest(&mut self) {
        self.s.received += 1;
        self.s.dropped_newest += 1;
    }

    pub(crate) fn record_ping(&mut self, delay: Duration) {
        self.s.pings_answered += 1;
        self.s.max_ping_delay = self.s.max_ping_delay.max(delay);
    }

    /// Counts a pong, and the round trip of the keepalive ping it
    /// answered (`None`: it answered none).
    pub(crate) fn record_pong(&mut self, rtt: Option<Duration>) {
        self.s.pongs_received += 1;
        if let Some(rtt) = rtt {
            self.s.ping_round_trips += 1;
            self.s.last_ping_rtt = Some(rtt);
            self.s.max_ping_rtt = self.s.max_ping_rtt.max(rtt);
        }
    }

    fn end_block(&mut self, now: Instant) {
        if let Some(since) = self.blocked_since.take() {
            self.blocked_total += now.saturating_duration_since(since);
        }
    }

    /// `now` as nanoseconds since the epoch (set by the first call).
    fn stamp(&mut self, now: Instant) -> u64 {
        let epoch = match self.epoch {
            Some(epoch) => epoch,
            None => {
                self.epoch_unix = unix_nanos();
                *self.epoch.insert(now)
            }
        };
        u64::try_from(now.saturating_duration_since(epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    /// `now` as nanoseconds since the Unix epoch, from the queue's own
    /// clock (one clock read per process start, not per message).
    pub(crate) fn unix_stamp(&mut self, now: Instant) -> u64 {
        let since_epoch = self.stamp(now);
        self.epoch_unix.saturating_add(since_epoch)
    }

    fn fits(&self, size: usize) -> bool {
        self.live < self.max_messages && self.bytes + size <= self.max_bytes
    }

    /// Offers one message. See [`Offered`].
    pub(crate) fn offer(&mut self, item: Incoming, now: Instant) -> (Offered, Lag) {
        let offered = self.place(item, now);
        if !matches!(offered, Offered::Wait(..)) {
            self.end_block(now);
        }
        (offered, self.depth_alarm())
    }

    fn place(&mut self, item: Incoming, now: Instant) -> Offered {
        let size = item.message.len();
        if self.spill.is_some() && (self.spilling() || !self.fits(size)) {
            return self.spill_offer(item, now);
        }
        if let Some(key) = &item.key {
            if let Some(&(level, seq)) = self.keys.get(&**key) {
                if level == item.priority.index() {
                    let old = self.find(level, seq).map_or(0, |m| m.len());
                    if self.bytes - old + size <= self.max_bytes {
                        return self.replace(level, seq, item, now);
                    }
                }
                // A different priority, or too big to swap in place: the
                // old value goes, the new one is placed as any other.
                self.remove_at(level, seq);
                self.s.conflated += 1;
            }
        }
        if size > self.max_bytes {
            // Cannot happen with a validated config (max_message_size <=
            // max_bytes); shed rather than wait for room that never comes.
            tracing::warn!(
                size,
                max = self.max_bytes,
                "message larger than the buffer dropped"
            );
            return self.drop_incoming();
        }
        let mut shed_any = false;
        loop {
            if self.fits(size) {
                if !shed_any {
                    // Room without shedding: the consumer caught up, so
                    // the next overflow may wait again.
                    self.block_expired = false;
                }
                self.push(item, now);
                return Offered::Placed;
            }
            shed_any = true;
            let shed = match self.wait_or_shed(now) {
                Ok(shed) => shed,
                Err(deadline) => return Offered::Wait(Box::new(item), deadline),
            };
            if shed == Shed::Disconnect {
                let figures = self.fell_behind_figures();
                self.drop_incoming();
                return Offered::FellBehind(figures);
            }
            // The lowest level that may be shed (CRITICAL never is).
            let victim = (0..Priority::CRITICAL.index()).find(|&l| self.level_has_live(l));
            let incoming = item.priority.index();
            let shed_incoming = match (victim, shed) {
                (None, _) => incoming < Priority::CRITICAL.index(),
                (Some(level), Shed::DropNewest) => incoming <= level,
                (Some(level), _) => incoming < level,
            };
            if shed_incoming {
                return self.drop_incoming();
            }
            match victim {
                // Only critical messages buffered and a critical one
                // arriving: wait for room, whatever the policy.
                None if self.closing => return self.drop_incoming(),
                None => {
                    self.blocked_since.get_or_insert(now);
                    return Offered::Wait(Box::new(item), None);
                }
                Some(level) if shed == Shed::DropNewest => {
                    self.pop_back_live(level);
                    self.s.dropped_newest += 1;
                }
                Some(level) => {
                    self.pop_front_live(level);
                    self.s.dropped_oldest += 1;
                }
            }
        }
    }

    /// `Overflow::Spill`: the message joins the hand-off to the writer, or,
    /// when the spill refuses it, the fallback decides.
    fn spill_offer(&mut self, item: Incoming, now: Instant) -> Offered {
        let size = item.message.len();
        let stamp = self.unix_stamp(now);
        let spill = self.spill.as_mut().expect("a spilling queue");
        let Some(refusal) = spill.refusal(size) else {
            spill.push(Queued {
                message: item.message,
                priority: item.priority,
                stamp,
            });
            self.s.received += 1;
            self.block_expired = false;
            return Offered::Placed;
        };
        let wait = match spill.fallback {
            _ if self.closing => false,
            SpillFallback::Block => true,
            SpillFallback::DropNewest => item.priority == Priority::CRITICAL,
            SpillFallback::Disconnect => false,
        };
        if wait {
            // Counted once per wait, not at every offer while it lasts.
            if self.blocked_since.is_none() {
                spill.figures.refused += 1;
            }
            self.blocked_since.get_or_insert(now);
            // Woken when the writer or the consumer makes room; the
            // deadline only bounds a wake-up missed.
            return Offered::Wait(Box::new(item), Some(now + super::spill::RETRY_AFTER));
        }
        spill.figures.refused += 1;
        let disconnect = spill.fallback == SpillFallback::Disconnect && !self.closing;
        self.drop_incoming();
        if disconnect {
            return Offered::FellBehind(BufferError::SpillRefused(refusal));
        }
        note_spill_drop(&refusal);
        Offered::Placed
    }

    /// Delivers up to `max` messages from the spill's hand-off (when the
    /// disk holds none and the writer is not writing them).
    pub(crate) fn take_handoff(
        &mut self,
        now: Instant,
        max: usize,
        sink: &mut impl FnMut(Delivered),
        lags: &mut Vec<super::LagEvent>,
    ) -> usize {
        let now_unix = self.unix_stamp(now);
        let mut n = 0;
        while n < max {
            let Some(queued) = self.spill.as_mut().and_then(SpillState::pop_handoff) else {
                break;
            };
            let waited = Duration::from_nanos(now_unix.saturating_sub(queued.stamp));
            self.s.delivered += 1;
            self.waits.record(waited);
            lags.extend(self.wait_alarm(waited));
            sink(Delivered::new(queued.message, waited, queued.priority));
            n += 1;
        }
        n
    }

    /// Counts messages the consumer took from the spill's log: delivered,
    /// with the stamps they were received at, and `lost` records that
    /// could not be read (counted as `dropped_oldest`: they were the
    /// oldest, and they are gone).
    pub(crate) fn record_disk_take(
        &mut self,
        now: Instant,
        stamps: impl Iterator<Item = u64>,
        lost: u64,
        lags: &mut Vec<super::LagEvent>,
    ) -> Vec<Duration> {
        let now_unix = self.unix_stamp(now);
        let mut waits = Vec::new();
        for stamp in stamps {
            let waited = Duration::from_nanos(now_unix.saturating_sub(stamp));
            self.s.delivered += 1;
            self.waits.record(waited);
            lags.extend(self.wait_alarm(waited));
            waits.push(waited);
        }
        self.s.dropped_oldest += lost;
        waits
    }

    /// `Ok(shed)`: shed now; `Err(deadline)`: wait (until `deadline`).
    fn wait_or_shed(&mut self, now: Instant) -> Result<Shed, Option<Instant>> {
        if self.closing {
            return Ok(match self.shed {
                Shed::Disconnect => Shed::DropNewest,
                shed => shed,
            });
        }
        match self.wait_rule {
            WaitRule::Never => Ok(self.shed),
            WaitRule::Forever => {
                self.blocked_since.get_or_insert(now);
                Err(None)
            }
            WaitRule::For(_) if self.block_expired => Ok(self.shed),
            WaitRule::For(limit) => {
                let since = *self.blocked_since.get_or_insert(now);
                let deadline = since + limit;
                if now >= deadline {
                    self.block_expired = true;
                    Ok(self.shed)
                } else {
                    Err(Some(deadline))
                }
            }
        }
    }

    fn fell_behind_figures(&self) -> BufferError {
        BufferError::FellBehind {
            buffered_messages: self.live,
            buffered_bytes: self.bytes,
            max_messages: self.max_messages,
            max_bytes: self.max_bytes,
            received: self.s.received + 1,
            delivered: self.s.delivered,
        }
    }

    fn drop_incoming(&mut self) -> Offered {
        self.s.received += 1;
        self.s.dropped_newest += 1;
        Offered::Placed
    }

    fn push(&mut self, item: Incoming, now: Instant) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let level = item.priority.index();
        if let Some(key) = &item.key {
            self.keys.insert(Key::clone(key), (level, seq));
        }
        let enqueued = self.stamp(now);
        self.bytes += item.message.len();
        self.live += 1;
        self.s.received += 1;
        self.s.high_water_messages = self.s.high_water_messages.max(self.live);
        self.s.high_water_bytes = self.s.high_water_bytes.max(self.bytes);
        self.levels[level].push_back(Entry {
            seq,
            message: Some(item.message),
            enqueued,
            key: item.key,
        });
        self.occupied |= 1 << level;
    }

    fn index_of(&self, level: usize, seq: u64) -> Option<usize> {
        self.levels[level]
            .binary_search_by_key(&seq, |e| e.seq)
            .ok()
    }

    fn find(&self, level: usize, seq: u64) -> Option<&Message> {
        let i = self.index_of(level, seq)?;
        self.levels[level][i].message.as_ref()
    }

    /// Conflation in place: same position, new value, fresh wait clock.
    fn replace(&mut self, level: usize, seq: u64, item: Incoming, now: Instant) -> Offered {
        let Some(i) = self.index_of(level, seq) else {
            // The key map always points at a live entry; if that were ever
            // broken, placing the message normally is still correct.
            self.keys
                .remove(&**item.key.as_ref().expect("conflated items have keys"));
            return self.place(item, now);
        };
        let enqueued = self.stamp(now);
        let entry = &mut self.levels[level][i];
        let old = entry.message.replace(item.message).map_or(0, |m| m.len());
        let new = entry.message.as_ref().map_or(0, |m| m.len());
        entry.enqueued = enqueued;
        self.bytes = self.bytes - old + new;
        self.s.high_water_bytes = self.s.high_water_bytes.max(self.bytes);
        self.s.received += 1;
        self.s.conflated += 1;
        Offered::Placed
    }

    /// Removes a live entry from the middle (leaves a tombstone).
    fn remove_at(&mut self, level: usize, seq: u64) {
        let Some(i) = self.index_of(level, seq) else {
            return;
        };
        let entry = &mut self.levels[level][i];
        if let Some(message) = entry.message.take() {
            if let Some(key) = entry.key.take() {
                self.keys.remove(&*key);
            }
            self.bytes -= message.len();
            self.live -= 1;
            self.tombstones += 1;
        }
        if self.tombstones > 64 && self.tombstones > self.live {
            for level in &mut self.levels {
                level.retain(|e| e.message.is_some());
            }
            self.tombstones = 0;
            self.refresh_occupied();
        }
    }

    fn refresh_occupied(&mut self) {
        self.occupied = 0;
        for (l, level) in self.levels.iter().enumerate() {
            if !level.is_empty() {
                self.occupied |= 1 << l;
            }
        }
    }

    fn level_has_live(&mut self, level: usize) -> bool {
        self.trim(level);
        !self.levels[level].is_empty()
    }

    /// Drops tombstones at both ends of a level.
    fn trim(&mut self, level: usize) {
        let q = &mut self.levels[level];
        while q.front().is_some_and(|e| e.message.is_none()) {
            q.pop_front();
            self.tombstones -= 1;
        }
        while q.back().is_some_and(|e| e.message.is_none()) {
            q.pop_back();
            self.tombstones -= 1;
        }
        if q.is_empty() {
            self.occupied &= !(1 << level);
        }
    }

    fn take_entry(&mut self, entry: Entry) -> Option<(Message, u64)> {
        let message = entry.message?;
        if let Some(key) = entry.key {
            if self
                .keys
                .get(&*key)
                .is_some_and(|&(_, seq)| seq == entry.seq)
            {
                self.keys.remove(&*key);
            }
        }
        self.bytes -= message.len();
        self.live -= 1;
        Some((message, entry.enqueued))
    }

    fn pop_front_live(&mut self, level: usize) -> Option<(Message, u64)> {
        self.trim(level);
        let entry = self.levels[level].pop_front()?;
        let taken = self.take_entry(entry);
        self.trim(level);
        taken
    }

    fn pop_back_live(&mut self, level: usize) -> Option<(Message, u64)> {
        self.trim(level);
        let entry = self.levels[level].pop_back()?;
        let taken = self.take_entry(entry);
        self.trim(level);
        taken
    }

    /// Whether the batch paths below apply: one priority level, no
    /// tombstones, no conflation keys.
    #[inline]
    fn is_plain(&self) -> bool {
        (self.occupied & !(1 << Priority::NORMAL.index())) == 0
            && self.tombstones == 0
            && self.conflate.is_none()
    }

    /// Places the longest run from the front of `batch` that fits without
    /// any policy decision: bare messages (no classifier, no conflation),
    /// each `NORMAL`. The general
    /// [`offer`](Self::offer) takes over for the rest. One clock stamp and
    /// one alarm check for the run instead of one per message: this is the
    /// reader's hot path under `Block` with room to spare.
    pub(crate) fn offer_run(
        &mut self,
        batch: &mut VecDeque<Message>,
        now: Instant,
    ) -> (usize, Lag) {
        if !self.is_plain() || self.closing || batch.is_empty() || self.spilling() {
            return (0, None);
        }
        let enqueued = self.stamp(now);
        let level = Priority::NORMAL.index();
        let mut placed = 0;
        let mut counted = 0;
        let mut lag = None;
        // The whole batch fits and crosses no depth alarm: move it in one
        // pass, with no per-message checks.
        let n = batch.len();
        let depth_crossed = self.depth_alarm_armed
            && self
                .lag
                .depth
                .is_some_and(|d| d > self.live && d <= self.live + n);
        if self.live + n <= self.max_messages && !depth_crossed {
            let bytes: usize = batch.iter().map(Message::len).sum();
            if self.bytes + bytes <= self.max_bytes {
                let first_seq = self.next_seq;
                self.levels[level].extend(batch.drain(..).zip(first_seq..).map(
                    |(message, seq)| Entry {
                        seq,
                        message: Some(message),
                        enqueued,
                        key: None,
                    },
                ));
                self.next_seq += n as u64;
                self.bytes += bytes;
                self.live += n;
                placed = n;
            }
        }
        while let Some(message) = batch.front() {
            let size = message.len();
            if !self.fits(size) {
                break;
            }
            // The depth alarm reports the figures at the moment of crossing.
            if self.depth_alarm_armed && self.lag.depth == Some(self.live + 1) {
                let message = batch.pop_front().expect("front exists");
                self.push(Incoming::plain(message), now); // counts itself in `received`
                counted += 1;
                placed += 1;
                lag = lag.or(self.depth_alarm());
                continue;
            }
            let message = batch.pop_front().expect("front exists");
            self.levels[level].push_back(Entry {
                seq: self.next_seq,
                message: Some(message),
                enqueued,
                key: None,
            });
            self.next_seq += 1;
            self.bytes += size;
            self.live += 1;
            placed += 1;
        }
        if placed == 0 {
            return (0, None);
        }
        self.occupied |= 1 << level;
        self.block_expired = false;
        self.s.received += (placed - counted) as u64;
        self.s.high_water_messages = self.s.high_water_messages.max(self.live);
        self.s.high_water_bytes = self.s.high_water_bytes.max(self.bytes);
        self.end_block(now);
        (placed, lag.or(self.depth_alarm()))
    }

    /// Takes up to `max` messages in arrival order into `sink`; returns how
    /// many. Messages offered in one run share a stamp, so their waits are
    /// recorded per run rather than per message.
    pub(crate) fn pop_many(
        &mut self,
        now: Instant,
        max: usize,
        sink: &mut impl FnMut(Delivered),
        lags: &mut Vec<super::LagEvent>,
    ) -> usize {
        if !self.is_plain() {
            let mut n = 0;
            while n < max {
                let (delivered, lag) = self.pop(now);
                lags.extend(lag);
                match delivered {
                    Some(d) => sink(d),
                    None => break,
                }
                n += 1;
            }
            return n;
        }
        let level = Priority::NORMAL.index();
        let n = max.min(self.levels[level].len());
        if n == 0 {
            return 0;
        }
        let stamp_now = self.stamp(now);
        let mut run: Option<(u64, u64)> = None; // (enqueued, count)
        let mut bytes = 0;
        let mut runs: Vec<(Duration, u64)> = Vec::new();
        for entry in self.levels[level].drain(..n) {
            let message = entry.message.expect("plain queues hold no tombstones");
            bytes += message.len();
            let waited = Duration::from_nanos(stamp_now.saturating_sub(entry.enqueued));
            match &mut run {
                Some((stamp, count)) if *stamp == entry.enqueued => *count += 1,
                _ => {
                    if let Some((stamp, count)) = run.take() {
                        runs.push((Duration::from_nanos(stamp_now.saturating_sub(stamp)), count));
                    }
                    run = Some((entry.enqueued, 1));
                }
            }
            sink(Delivered {
                message,
                waited,
                priority: Priority::NORMAL,
            });
        }
        if let Some((stamp, count)) = run {
            runs.push((Duration::from_nanos(stamp_now.saturating_sub(stamp)), count));
        }
        self.bytes -= bytes;
        self.live -= n;
        self.s.delivered += n as u64;
        if self.levels[level].is_empty() {
            self.occupied &= !(1 << level);
        }
        for (waited, count) in runs {
            self.waits.record_n(waited, count);
            lags.extend(self.wait_alarm(waited));
        }
        n
    }

    /// Takes every message at once when the queue is plain and holds at
    /// most `max`: the `NORMAL` level is swapped for an empty one, so the
    /// caller's lock is held for a constant time however many messages
    /// there are (the reader is waiting for that lock). The messages count
    /// as delivered now; their queue waits are recorded by
    /// [`finish_take`](Self::finish_take) once they are handed out.
    pub(crate) fn take_all(&mut self, now: Instant, max: usize) -> Option<Taken> {
        let level = Priority::NORMAL.index();
        let n = self.levels[level].len();
        // A few messages are cheaper to move under the lock than to swap.
        if !self.is_plain() || n < TAKE_ALL_FROM || n > max {
            return None;
        }
        let stamp_now = self.stamp(now);
        let entries = std::mem::replace(&mut self.levels[level], std::mem::take(&mut self.spare));
        let bytes = std::mem::take(&mut self.bytes);
        self.live = 0;
        self.s.delivered += n as u64;
        self.occupied &= !(1 << level);
        Some(Taken {
            entries,
            bytes,
            stamp_now,
            runs: Vec::new(),
        })
    }

    /// Records the queue waits of messages handed out from `taken`, and
    /// keeps its deque for the next [`take_all`](Self::take_all).
    pub(crate) fn finish_take(&mut self, mut taken: Taken, lags: &mut Vec<super::LagEvent>) {
        for (waited, count) in taken.runs.drain(..) {
            self.waits.record_n(waited, count);
            lags.extend(self.wait_alarm(waited));
        }
        if taken.entries.capacity() > self.spare.capacity() {
            taken.entries.clear();
            self.spare = taken.entries;
        }
    }

    /// Takes the oldest message (arrival order across all priorities).
    #[inline]
    pub(crate) fn pop(&mut self, now: Instant) -> (Option<Delivered>, Lag) {
        let level = if self.occupied == 1 << Priority::NORMAL.index() && self.tombstones == 0 {
            // The common case: no classifier, a single level.
            Priority::NORMAL.index()
        } else {
            let mut best: Option<(usize, u64)> = None;
            for level in 0..Priority::LEVELS {
                if self.occupied & (1 << level) == 0 {
                    continue;
                }
                self.trim(level);
                if let Some(head) = self.levels[level].front() {
                    if best.is_none_or(|(_, seq)| head.seq < seq) {
                        best = Some((level, head.seq));
                    }
                }
            }
            match best {
                Some((level, _)) => level,
                None => return (None, None),
            }
        };
        let Some((message, enqueued)) = self.pop_front_live(level) else {
            return (None, None);
        };
        let waited = Duration::from_nanos(self.stamp(now).saturating_sub(enqueued));
        self.s.delivered += 1;
        self.waits.record(waited);
        let lag = self.wait_alarm(waited);
        let delivered = Delivered {
            message,
            waited,
            priority: Priority::from_index(level),
        };
        (Some(delivered), lag)
    }

    fn depth_alarm(&mut self) -> Lag {
        let threshold = self.lag.depth?;
        if self.depth_alarm_armed && self.len() >= threshold {
            self.depth_alarm_armed = false;
            return Some(self.lag_event(super::LagReason::Depth, Duration::ZERO));
        }
        if !self.depth_alarm_armed && self.len() <= threshold / 2 {
            self.depth_alarm_armed = true;
        }
        None
    }

    fn wait_alarm(&mut self, waited: Duration) -> Lag {
        // Depth falls as messages are taken: re-arm its alarm here too.
        if let Some(depth) = self.lag.depth {
            if !self.depth_alarm_armed && self.len() <= depth / 2 {
                self.depth_alarm_armed = true;
            }
        }
        let threshold = self.lag.wait?;
        if self.wait_alarm_armed && waited >= threshold {
            self.wait_alarm_armed = false;
            return Some(self.lag_event(super::LagReason::Wait, waited));
        }
        if !self.wait_alarm_armed && waited <= threshold / 2 {
            self.wait_alarm_armed = true;
        }
        None
    }

    fn lag_event(&self, reason: super::LagReason, wait: Duration) -> super::LagEvent {
        super::LagEvent {
            reason,
            // Memory and spill: the backlog the consumer has to work through.
            depth: self.len(),
            bytes: self.bytes,
            wait,
        }
    }

    pub(crate) fn stats(&self, now: Instant) -> Stats {
        let blocked_now = self
            .blocked_since
            .map_or(Duration::ZERO, |since| now.saturating_duration_since(since));
        let spill = self
            .spill
            .as_ref()
            .map(SpillState::figures)
            .unwrap_or_default();
        Stats {
            received: self.s.received,
            delivered: self.s.delivered,
            buffered: self.live as u64 + spill.buffered_disk + spill.queued,
            buffered_disk: spill.buffered_disk,
            disk_bytes: spill.disk_bytes,
            high_water_disk_bytes: spill.high_water_disk_bytes,
            spilled: spill.spilled,
            recovered: spill.recovered,
            spill_refused: spill.refused,
            spill_errors: spill.errors,
            spill_corrupt_records: spill.corrupt_records,
            dropped_oldest: self.s.dropped_oldest,
            dropped_newest: self.s.dropped_newest,
            conflated: self.s.conflated,
            filtered: self.s.filtered,
            buffered_bytes: self.bytes as u64 + spill.queued_bytes,
            in_flight: 0,
            high_water_messages: self.s.high_water_messages as u64,
            high_water_bytes: self.s.high_water_bytes as u64,
            blocked: self.blocked_total + blocked_now,
            queue_wait: self.waits.summary(),
            pings_answered: self.s.pings_answered,
            max_ping_delay: self.s.max_ping_delay,
            pongs_received: self.s.pongs_received,
            ping_round_trips: self.s.ping_round_trips,
            last_ping_rtt: self.s.last_ping_rtt,
            max_ping_rtt: self.s.max_ping_rtt,
        }
    }
}

/// Logs a message dropped by the spill's `DropNewest` fallback, at most
/// once a second per process: loud enough to be seen, not a line per
/// message of a flood.
fn note_spill_drop(refusal: &SpillRefusal) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST: AtomicU64 = AtomicU64::new(0);
    let second = unix_nanos() / 1_000_000_000;
    if LAST.swap(second, Ordering::Relaxed) != second {
        tracing::warn!(%refusal, "spill: messages are being dropped (DropNewest fallback)");
    }
}

/// Nanoseconds since the Unix epoch (0 for a clock set before it).
pub(crate) fn unix_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

impl Priority {
    pub(crate) fn from_index(level: usize) -> Priority {
        [
            Priority::LOW,
            Priority::NORMAL,
            Priority::HIGH,
            Priority::CRITICAL,
        ][level]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buffer::{Conflate, LagThreshold};

    fn text(s: &str) -> Message {
        Message::text(s)
    }

    fn item(s: &str) -> Incoming {
        Incoming::new(text(s))
    }

    fn with(priority: Priority, s: &str) -> Incoming {
        Incoming {
            priority,
            ..item(s)
        }
    }

    fn keyed(key: &str, s: &str) -> Incoming {
        Incoming {
            key: Some(Box::new(Key::from(key))),
            ..item(s)
        }
    }

    fn queue(max_messages: usize, overflow: Overflow) -> Queue {
        Queue::new(
            &BufferConfig::new()
                .max_messages(max_messages)
                .overflow(overflow),
        )
    }

    fn drain(q: &mut Queue, now: Instant) -> Vec<String> {
        let mut out = Vec::new();
        while let (Some(d), _) = q.pop(now) {
            out.push(d.as_text().unwrap().to_owned());
        }
        out
    }

    fn assert_adds_up(q: &Queue) {
        let s = q.stats(Instant::now());
        assert_eq!(
            s.received,
            s.delivered
                + s.buffered
                + s.dropped_oldest
                + s.dropped_newest
                + s.conflated
                + s.filtered,
            "{s:?}"
        );
    }

    fn placed(offered: (Offered, Lag)) -> bool {
        matches!(offered.0, Offered::Placed)
    }

    #[test]
    fn drop_oldest_keeps_the_newest_n() {
        let now = Instant::now();
        let mut q = queue(3, Overflow::DropOldest);
        for i in 0..10 {
            assert!(placed(q.offer(item(&i.to_string()), now)));
            assert_adds_up(&q);
        }
        assert_eq!(drain(&mut q, now), ["7", "8", "9"]);
        let s = q.stats(now);
        assert_eq!((s.dropped_oldest, s.delivered), (7, 3));
    }

    #[test]
    fn drop_newest_keeps_the_first_n() {
        let now = Instant::now();
        let mut q = queue(3, Overflow::DropNewest);
        for i in 0..10 {
            assert!(placed(q.offer(item(&i.to_string()), now)));
        }
        assert_eq!(drain(&mut q, now), ["0", "1", "2"]);
        assert_eq!(q.stats(now).dropped_newest, 7);
        assert_adds_up(&q);
    }

    #[test]
    fn block_hands_the_message_back_and_counts_it_only_once_placed() {
        let now = Instant::now();
        let mut q = queue(2, Overflow::Block);
        assert!(placed(q.offer(item("a"), now)));
        assert!(placed(q.offer(item("b"), now)));
        let (Offered::Wait(back, None), _) = q.offer(item("c"), now) else {
            panic!("expected to wait");
        };
        assert_eq!(q.stats(now).received, 2);
        assert_adds_up(&q);
        q.pop(now);
        assert!(placed(q.offer(*back, now + Duration::from_millis(5))));
        let s = q.stats(now + Duration::from_millis(5));
        assert_eq!(s.blocked, Duration::from_millis(5));
        assert_eq!(drain(&mut q, now), ["b", "c"]);
    }

    #[test]
    fn byte_limit_counts_payload_bytes() {
        let now = Instant::now();
        let mut q = Queue::new(
            &BufferConfig::new()
                .max_bytes(10)
                .overflow(Overflow::DropOldest),
        );
        q.offer(item("aaaa"), now);
        q.offer(item("bbbb"), now);
        q.offer(item("cccc"), now); // 12 bytes: "aaaa" goes
        let s = q.stats(now);
        assert_eq!((s.buffered, s.buffered_bytes, s.dropped_oldest), (2, 8, 1));
        assert_eq!(s.high_water_bytes, 8);
    }

    #[test]
    fn block_for_waits_until_the_deadline_then_sheds_until_room() {
        let t0 = Instant::now();
        let limit = Duration::from_millis(100);
        let mut q = queue(1, Overflow::BlockFor(limit, Shed::DropOldest));
        q.offer(item("a"), t0);
        let (Offered::Wait(back, Some(deadline)), _) = q.offer(item("b"), t0) else {
            panic!("expected a bounded wait");
        };
        assert_eq!(deadline, t0 + limit);
        // Still waiting before the deadline.
        let (Offered::Wait(back, _), _) = q.offer(*back, t0 + limit / 2) else {
            panic!("expected to wait on");
        };
        assert!(placed(q.offer(*back, deadline)));
        // The wait expired: the next overflow sheds at once.
        assert!(placed(q.offer(item("c"), deadline)));
        assert_eq!(drain(&mut q, deadline), ["c"]);
        assert_eq!(q.stats(deadline).dropped_oldest, 2);
        // Room again: the next overflow waits again.
        q.offer(item("d"), deadline);
        assert!(matches!(
            q.offer(item("e"), deadline).0,
            Offered::Wait(_, Some(_))
        ));
    }

    #[test]
    fn disconnect_reports_the_figures() {
        let now = Instant::now();
        let mut q = queue(2, Overflow::Disconnect);
        q.offer(item("a"), now);
        q.offer(item("b"), now);
        let (Offered::FellBehind(err), _) = q.offer(item("c"), now) else {
            panic!("expected to fall behind");
        };
        assert_eq!(
            err,
            BufferError::FellBehind {
                buffered_messages: 2,
                buffered_bytes: 2,
                max_messages: 2,
                max_bytes: crate::buffer::DEFAULT_MAX_BYTES,
                received: 3,
                delivered: 0,
            }
        );
        assert_eq!(q.stats(now).dropped_newest, 1);
        assert_adds_up(&q);
    }

    #[test]
    fn conflation_replaces_in_place_and_keeps_the_position() {
        let now = Instant::now();
        let by_prefix = Conflate::by(|m| m.as_text().map(|t| Key::from(&t[..1])));
        let mut q = queue(10, Overflow::Conflate(by_prefix));
        q.offer(keyed("a", "a1"), now);
        q.offer(keyed("b", "b1"), now);
        q.offer(keyed("a", "a2"), now);
        q.offer(keyed("c", "c1"), now);
        q.offer(keyed("a", "a3"), now);
        assert_eq!(drain(&mut q, now), ["a3", "b1", "c1"]);
        assert_eq!(q.stats(now).conflated, 2);
        assert_adds_up(&q);
        // Once taken, the key starts afresh.
        q.offer(keyed("a", "a4"), now);
        assert_eq!(drain(&mut q, now), ["a4"]);
    }

    #[test]
    fn conflation_falls_back_for_new_keys() {
        let now = Instant::now();
        let c = Conflate::by(|_| None).otherwise(Overflow::DropNewest);
        let mut q = queue(2, Overflow::Conflate(c));
        for k in ["a", "b", "c"] {
            q.offer(keyed(k, k), now);
        }
        assert_eq!(drain(&mut q, now), ["a", "b"]);
        assert_eq!(q.stats(now).dropped_newest, 1);
    }

    #[test]
    fn conflation_across_priorities_leaves_order_intact() {
        let now = Instant::now();
        let mut q = queue(10, Overflow::Conflate(Conflate::by(|_| None)));
        q.offer(keyed("a", "a1"), now);
        q.offer(keyed("b", "b1"), now);
        let mut high = keyed("a", "a2");
        high.priority = Priority::HIGH;
        q.offer(high, now);
        assert_eq!(drain(&mut q, now), ["b1", "a2"]);
        assert_adds_up(&q);
    }

    #[test]
    fn shedding_takes_the_lowest_priority_first() {
        let now = Instant::now();
        let mut q = queue(3, Overflow::DropOldest);
        q.offer(with(Priority::HIGH, "h1"), now);
        q.offer(with(Priority::LOW, "l1"), now);
        q.offer(with(Priority::NORMAL, "n1"), now);
        q.offer(with(Priority::NORMAL, "n2"), now); // l1 goes
        q.offer(with(Priority::NORMAL, "n3"), now); // n1 goes
        q.offer(with(Priority::LOW, "l2"), now); // lower than all: l2 goes
        assert_eq!(drain(&mut q, now), ["h1", "n2", "n3"]);
        let s = q.stats(now);
        assert_eq!((s.dropped_oldest, s.dropped_newest), (2, 1));
    }

    #[test]
    fn critical_messages_are_never_shed_they_wait() {
        let now = Instant::now();
        let mut q = queue(2, Overflow::DropNewest);
        q.offer(with(Priority::CRITICAL, "c1"), now);
        q.offer(with(Priority::CRITICAL, "c2"), now);
        // A normal one is shed...
        assert!(placed(q.offer(item("n"), now)));
        // ...a critical one waits.
        let (Offered::Wait(back, None), _) = q.offer(with(Priority::CRITICAL, "c3"), now) else {
            panic!("critical must wait");
        };
        q.pop(now);
        assert!(placed(q.offer(*back, now)));
        assert_eq!(drain(&mut q, now), ["c2", "c3"]);
    }

    #[test]
    fn delivery_is_in_arrival_order_across_priorities() {
        let now = Instant::now();
        let mut q = queue(10, Overflow::Block);
        for (p, s) in [
            (Priority::LOW, "1"),
            (Priority::CRITICAL, "2"),
            (Priority::NORMAL, "3"),
            (Priority::HIGH, "4"),
            (Priority::LOW, "5"),
        ] {
            q.offer(with(p, s), now);
        }
        assert_eq!(drain(&mut q, now), ["1", "2", "3", "4", "5"]);
    }

    #[test]
    fn closing_turns_blocking_into_dropping() {
        let now = Instant::now();
        let mut q = queue(1, Overflow::Block);
        q.offer(item("a"), now);
        q.set_closing(now);
        assert!(placed(q.offer(item("b"), now)));
        assert_eq!(q.stats(now).dropped_newest, 1);
    }

    #[test]
    fn queue_wait_is_measured_from_the_offer() {
        let t0 = Instant::now();
        let mut q = queue(10, Overflow::Block);
        q.offer(item("a"), t0);
        let (d, _) = q.pop(t0 + Duration::from_millis(30));
        assert_eq!(d.unwrap().waited(), Duration::from_millis(30));
        assert_eq!(q.stats(t0).queue_wait.max, Duration::from_millis(30));
    }

    fn plain_batch(texts: &[&str]) -> VecDeque<Message> {
        texts.iter().map(|t| text(t)).collect()
    }

    #[test]
    fn a_plain_run_is_placed_up_to_the_limits_and_the_rest_stays() {
        let now = Instant::now();
        let mut q = queue(3, Overflow::Block);
        let mut batch = plain_batch(&["a", "b"]);
        assert_eq!(q.offer_run(&mut batch, now).0, 2);
        assert!(batch.is_empty());
        // One more fits; the fourth and fifth stay for the general path.
        let mut batch = plain_batch(&["c", "d", "e"]);
        assert_eq!(q.offer_run(&mut batch, now).0, 1);
        assert_eq!(batch.len(), 2);
        assert_eq!(q.stats(now).received, 3);
        assert_adds_up(&q);
        assert_eq!(drain(&mut q, now), ["a", "b", "c"]);
    }

    #[test]
    fn take_all_hands_out_everything_in_order_and_records_the_waits() {
        let t0 = Instant::now();
        let mut q = queue(100, Overflow::Block);
        let first: Vec<String> = (0..TAKE_ALL_FROM).map(|i| i.to_string()).collect();
        let first: Vec<&str> = first.iter().map(String::as_str).collect();
        q.offer_run(&mut plain_batch(&first), t0);
        q.offer_run(&mut plain_batch(&["last"]), t0 + Duration::from_millis(10));
        // More than `max`: not taken this way.
        assert!(q.take_all(t0, TAKE_ALL_FROM).is_none());
        let t1 = t0 + Duration::from_millis(30);
        let mut taken = q.take_all(t1, 100).expect("a plain queue");
        let n = TAKE_ALL_FROM + 1;
        assert_eq!(taken.len(), n);
        // Counted as delivered at once, so the invariant holds meanwhile.
        assert_eq!(q.stats(t1).delivered, n as u64);
        assert_eq!(q.stats(t1).buffered, 0);
        assert_adds_up(&q);
        let mut got = Vec::new();
        taken.deliver(&mut |d: Delivered| got.push((d.as_text().unwrap().to_owned(), d.waited())));
        let mut expected: Vec<(String, Duration)> = first
            .iter()
            .map(|t| (t.to_string(), Duration::from_millis(30)))
            .collect();
        expected.push(("last".to_owned(), Duration::from_millis(20)));
        assert_eq!(got, expected);
        let mut lags = Vec::new();
        q.finish_take(taken, &mut lags);
        assert_eq!(q.stats(t1).queue_wait.max, Duration::from_millis(30));
        // The queue goes on working after the swap.
        q.offer_run(&mut plain_batch(&["d"]), t1);
        assert_eq!(drain(&mut q, t1), ["d"]);
    }

    #[test]
    fn take_all_leaves_queues_with_priorities_to_the_general_path() {
        let now = Instant::now();
        let mut q = queue(100, Overflow::Block);
        q.offer(with(Priority::HIGH, "h"), now);
        let rest: Vec<String> = (0..TAKE_ALL_FROM).map(|i| i.to_string()).collect();
        for t in &rest {
            q.offer(item(t), now);
        }
        assert!(q.take_all(now, 100).is_none());
        assert_eq!(drain(&mut q, now)[0], "h");
    }

    #[test]
    fn the_depth_alarm_fires_once_per_crossing() {
        let now = Instant::now();
        let mut q = Queue::new(&BufferConfig::new().on_lag(
            LagThreshold {
                depth: Some(4),
                wait: None,
            },
            |_| {},
        ));
        let fired: Vec<bool> = (0..6)
            .map(|_| q.offer(item("x"), now).1.is_some())
            .collect();
        assert_eq!(fired, [false, false, false, true, false, false]);
        for _ in 0..4 {
            q.pop(now); // down to 2 = half the threshold: re-armed
        }
        let again: Vec<bool> = (0..2)
            .map(|_| q.offer(item("x"), now).1.is_some())
            .collect();
        assert_eq!(again, [false, true]);
    }

    #[test]
    fn the_wait_alarm_fires_on_a_slow_delivery() {
        let t0 = Instant::now();
        let mut q = Queue::new(&BufferConfig::new().on_lag(
            LagThreshold {
                depth: None,
                wait: Some(Duration::from_millis(10)),
            },
            |_| {},
        ));
        q.offer(item("a"), t0);
        q.offer(item("b"), t0);
        let (_, first) = q.pop(t0 + Duration::from_millis(20));
        let (_, second) = q.pop(t0 + Duration::from_millis(20));
        let event = first.expect("fired");
        assert_eq!(event.reason, crate::buffer::LagReason::Wait);
        assert_eq!(event.wait, Duration::from_millis(20));
        assert!(second.is_none(), "fires once per crossing");
    }
}
