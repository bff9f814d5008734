//! Leases: taking messages that leave the buffer only once the consumer
//! says they are safe.
//!
//! A consumer that hands messages on (the bridge publishing to a broker)
//! must not lose the ones the destination never acknowledged. With
//! [`Buffer::recv_batch`] a message is gone from the buffer once taken; a
//! [`Lease`] keeps it counted as buffered (`Stats::in_flight`) until
//! [`Lease::commit`], and [`Lease::release`] (or dropping the lease) puts
//! the messages back at the head of the buffer, to be taken first again.
//!
//! A durable spill goes further: while a lease holds records read from
//! disk, the spill's read cursor stays before them (the log's *hold*), so
//! a process killed before the commit delivers them again when it starts
//! on the same directory: at least once, never lost.
//!
//! Messages out in a lease do not count against the buffer's limits: the
//! reader keeps placing new ones, under the policy, while the consumer
//! waits for its destination; the lease itself is bounded by the `max`
//! the consumer asked for.

use super::spill::{lock_log, Logged};
use super::{Buffer, Delivered, RecvError, Shared, State, Stats};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// What a take is for: a plain receive, or a lease (counted in flight and
/// holding a durable spill's cursor until committed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Taking {
    Recv,
    Lease,
}

/// The buffer's account of its leases, kept under its lock so that every
/// [`Stats`] snapshot still adds up.
#[derive(Debug, Default)]
pub(crate) struct Outstanding {
    /// Messages out in leases, and their payload bytes.
    leased: u64,
    leased_bytes: u64,
    /// Messages of released leases, oldest first: taken before anything
    /// else.
    returned: VecDeque<Delivered>,
    returned_bytes: u64,
    /// Every message given back was read from a durable spill's disk.
    returned_on_disk: bool,
    /// Whether the last lend was of messages read from a durable spill's
    /// disk (read by [`Buffer::lease_of`] under the same call).
    lent_on_disk: bool,
}

impl Outstanding {
    /// Counts `n` messages of `bytes` as out in a lease (under the lock that
    /// counted them delivered, so no snapshot sees them as either twice).
    pub(crate) fn lend(&mut self, n: usize, bytes: u64, on_disk: bool) {
        self.leased += n as u64;
        self.leased_bytes += bytes;
        self.lent_on_disk = on_disk;
    }

    fn settle(&mut self, n: usize, bytes: u64) {
        self.leased -= (n as u64).min(self.leased);
        self.leased_bytes -= bytes.min(self.leased_bytes);
    }

    /// No lease is out and none was given back: every message taken so far
    /// is safe.
    fn is_idle(&self) -> bool {
        self.leased == 0 && self.returned.is_empty()
    }

    pub(crate) fn returned_len(&self) -> usize {
        self.returned.len()
    }

    /// Hands up to `max` given-back messages to `sink` (lent again when
    /// `taking` is a lease); how many. A lease on a durable spill takes
    /// them all, whatever `max`: they are one released lease, behind one
    /// held cursor, which can only move past all of them at once (a
    /// commit of part of them would leave the rest behind it, and a
    /// restart would bring the committed part again).
    pub(crate) fn take_returned(
        &mut self,
        max: usize,
        taking: Taking,
        durable: bool,
        sink: &mut impl FnMut(Delivered),
    ) -> usize {
        let n = if taking == Taking::Lease && durable {
            self.returned.len()
        } else {
            max.min(self.returned.len())
        };
        let mut bytes = 0;
        for delivered in self.returned.drain(..n) {
            bytes += delivered.len() as u64;
            sink(delivered);
        }
        self.returned_bytes -= bytes;
        if taking == Taking::Lease {
            self.lend(n, bytes, self.returned_on_disk);
        }
        n
    }

    /// The queue's figures with the leases accounted: leased and given-back
    /// messages are still buffered, not delivered.
    pub(crate) fn adjust(&self, mut stats: Stats) -> Stats {
        let out = self.leased + self.returned.len() as u64;
        stats.delivered -= out.min(stats.delivered);
        stats.buffered += out;
        stats.buffered_bytes += self.leased_bytes + self.returned_bytes;
        stats.in_flight = self.leased;
        stats
    }
}

/// Messages taken from a [`Buffer`] that stay counted in it until
/// [`commit`](Self::commit): made by [`Buffer::lease`] and the front ends'
/// `lease`.
///
/// For a consumer that hands messages on (a broker, a database) and must
/// not lose the ones not yet acknowledged: until [`commit`](Self::commit)
/// they count as buffered ([`Stats::in_flight`]); [`release`](Self::release),
/// or dropping the lease, puts them back at the head of the buffer. They
/// do not count against the buffer's limits (the lease is bounded by the
/// `max` it was taken with). Under a durable spill a lease reads only
/// records on disk, and the spill's read cursor stays before them until
/// the commit: a process killed before it delivers them again at its next
/// start. `docs/backpressure.md` ("Leases") has the whole story.
///
/// ```
/// use floodgate::buffer::{Buffer, BufferConfig};
/// use std::time::Duration;
/// # fn publish(_: &[floodgate::buffer::Delivered]) -> Result<(), ()> { Ok(()) }
/// # fn demo(buffer: &Buffer) -> Result<(), floodgate::buffer::RecvError> {
/// loop {
///     let lease = buffer.lease(1024, Duration::from_secs(1))?;
///     match publish(lease.messages()) {
///         Ok(()) => lease.commit(),   // acknowledged: they leave the buffer
///         Err(()) => lease.release(), // they come first again
///     }
/// }
/// # }
/// ```
#[must_use = "a lease's messages go back to the buffer when it is dropped: commit it once they are safe"]
pub struct Lease {
    messages: Vec<Delivered>,
    bytes: u64,
    shared: Arc<Shared>,
    /// A durable spill's log: the commit moves its cursor. Weak: a lease
    /// must not keep a dropped buffer's directory open.
    log: Option<Weak<Mutex<Logged>>>,
    /// See [`Lease::is_on_disk`].
    on_disk: bool,
    settled: bool,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("messages", &self.messages.len())
            .field("bytes", &self.bytes)
            .finish()
    }
}

impl Lease {
    /// The messages, oldest first.
    pub fn messages(&self) -> &[Delivered] {
        &self.messages
    }

    /// How many messages.
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    /// Whether it holds none (a wait that timed out).
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// Whether every message of the lease was read from a durable spill's
    /// disk, behind its held cursor: a process killed before the commit
    /// gets exactly these messages first, in this order, when it opens the
    /// directory again (unless the disk damaged them: damaged records are
    /// skipped and counted). False for a lease of messages that were in
    /// memory, and when leases are taken concurrently (one at a time is
    /// the documented use). A consumer can use it to give the messages the
    /// same identity after a restart (`floodgate bridge` keeps their
    /// message ids beside the spill).
    pub fn is_on_disk(&self) -> bool {
        self.on_disk
    }

    /// The messages are safe: they leave the buffer and count as
    /// `delivered`. Under a durable spill, once no other lease is out, the
    /// read cursor moves past them (a restart no longer delivers them).
    pub fn commit(mut self) {
        let n = self.messages.len();
        self.settle_committed(n);
    }

    /// The messages were not made safe: they go back to the head of the
    /// buffer, before everything else, to be taken again (by a lease or a
    /// receive). The same as dropping the lease.
    pub fn release(self) {
        drop(self);
    }

    /// Commits the lease and keeps its messages: for a consumer that made
    /// them safe and still has a use for them.
    pub fn into_messages(mut self) -> Vec<Delivered> {
        let messages = std::mem::take(&mut self.messages);
        self.settle_committed(messages.len());
        messages
    }

    fn settle_committed(&mut self, n: usize) {
        self.settled = true;
        if n == 0 {
            return;
        }
        let Some(log) = self.log.as_ref().and_then(Weak::upgrade) else {
            self.shared.lock().leases.settle(n, self.bytes);
            return;
        };
        // The log's lock before the buffer's: the order of the spill's
        // writer, so the two never wait for each other.
        let mut guard = lock_log(&log);
        let mut state = self.shared.lock();
        state.leases.settle(n, self.bytes);
        commit_hold_if_idle(&mut guard, &mut state);
    }
}

/// Moves a durable spill's held cursor to its reader once nothing taken is
/// still unsafe: no lease out, nothing given back waiting. Called with the
/// log's lock taken before the buffer's (the spill writer's order, so the
/// two never wait for each other).
pub(crate) fn commit_hold_if_idle(guard: &mut Logged, state: &mut State) {
    if !(state.leases.is_idle() && guard.log.is_held()) {
        // Another lease, or a released one's messages, are still before
        // the reader: the cursor must stay before them.
        return;
    }
    if let Err(e) = guard.log.commit() {
        tracing::warn!(error = %e, "spill: the read cursor could not be saved after a commit; a restart may deliver some messages again");
    }
    guard.version += 1;
    let (disk_bytes, version) = (guard.log.disk_bytes(), guard.version);
    if let Some(spill) = state.queue.spill_mut() {
        spill.note_disk_bytes(disk_bytes, version);
        spill.sync_due = true;
    }
}

impl Buffer {
    /// After a receive took what released leases gave back: once nothing
    /// taken is unsafe any more, a durable spill's hold ends (received
    /// messages are delivered; a restart must not bring them again).
    pub(crate) fn end_hold_if_idle(&self) {
        let Some(log) = self
            .spill
            .as_ref()
            .filter(|io| io.durable)
            .and_then(|io| io.log.as_ref())
        else {
            return;
        };
        let mut guard = lock_log(log);
        let mut state = self.lock();
        commit_hold_if_idle(&mut guard, &mut state);
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.settled || self.messages.is_empty() {
            return;
        }
        let messages = std::mem::take(&mut self.messages);
        let n = messages.len();
        let consumers = {
            let mut state = self.shared.lock();
            let leases = &mut state.leases;
            leases.settle(n, self.bytes);
            leases.returned_on_disk =
                self.on_disk && (leases.returned.is_empty() || leases.returned_on_disk);
            // At the front: with one lease out at a time (the documented
            // use) its messages are the oldest the buffer has.
            for delivered in messages.into_iter().rev() {
                leases.returned.push_front(delivered);
            }
            leases.returned_bytes += self.bytes;
            std::mem::take(&mut state.consumers)
        };
        consumers.into_iter().for_each(Waker::wake);
    }
}

impl Buffer {
    /// Wraps messages just taken for a lease.
    fn lease_of(&self, messages: Vec<Delivered>) -> Lease {
        let bytes = messages.iter().map(|d| d.len() as u64).sum();
        let on_disk = !messages.is_empty() && self.lock().leases.lent_on_disk;
        let log = self
            .spill
            .as_ref()
            .filter(|io| io.durable)
            .and_then(|io| io.log.as_ref())
            .map(Arc::downgrade);
        Lease {
            on_disk: on_disk && log.is_some(),
            messages,
            bytes,
            shared: self.state.clone(),
            log,
            settled: false,
        }
    }

    /// Leases up to `max` messages, waiting at most `wait` for the first;
    /// an empty lease when none came in time. The messages stay counted in
    /// the buffer until the lease is committed (see [`Lease`]).
    ///
    /// Take one lease at a time for order: a released lease's messages
    /// come back before everything else (under a durable spill, all of
    /// them in the next lease, even past `max`). Lease or receive, not both: under
    /// a durable spill, messages received while a lease is out, or taken by
    /// a receive from what a released lease gave back, are behind the held
    /// cursor and come again if the process stops before the hold ends (at
    /// least once, never lost).
    ///
    /// # Errors
    ///
    /// As for [`try_recv`](Self::try_recv): once the connection has ended
    /// and nothing is left (a lease out is not "left": release it first).
    pub fn lease(&self, max: usize, wait: Duration) -> Result<Lease, RecvError> {
        let mut messages = Vec::new();
        self.wait_batch(
            |d| messages.push(d),
            max,
            Instant::now().checked_add(wait),
            Taking::Lease,
        )?;
        Ok(self.lease_of(messages))
    }

    /// Leases up to `max` messages if any is buffered, without waiting (an
    /// empty lease otherwise).
    ///
    /// # Errors
    ///
    /// As for [`lease`](Self::lease).
    pub fn try_lease(&self, max: usize) -> Result<Lease, RecvError> {
        let mut messages = Vec::new();
        self.take(|d| messages.push(d), max.max(1), None, Taking::Lease)?;
        Ok(self.lease_of(messages))
    }

    /// Waits for at least one message, then leases up to `max`; for async
    /// front ends. Cancel-safe: messages are taken only when it returns
    /// `Ready`.
    ///
    /// # Errors
    ///
    /// As for [`lease`](Self::lease).
    pub fn poll_lease(&self, cx: &mut Context<'_>, max: usize) -> Poll<Result<Lease, RecvError>> {
        let mut messages = Vec::new();
        match self.take(
            |d| messages.push(d),
            max.max(1),
            Some(cx.waker()),
            Taking::Lease,
        ) {
            Ok(0) => Poll::Pending,
            Ok(_) => Poll::Ready(Ok(self.lease_of(messages))),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buffer::{BufferConfig, Overflow, Pushed};
    use floodgate_proto::Message;

    fn push(buffer: &Buffer, texts: impl IntoIterator<Item = String>) {
        let mut batch = buffer.new_batch();
        for t in texts {
            buffer.stage(&mut batch, Message::text(t));
        }
        assert!(matches!(
            buffer.push(&mut batch, Waker::noop(), true),
            Pushed::Done
        ));
    }

    fn texts(lease: &Lease) -> Vec<&str> {
        lease
            .messages()
            .iter()
            .map(|d| d.as_text().unwrap())
            .collect()
    }

    fn numbered(range: std::ops::Range<u32>) -> impl Iterator<Item = String> {
        range.map(|i| format!("{i}"))
    }

    fn adds_up(s: &Stats) -> bool {
        s.received
            == s.delivered
                + s.buffered
                + s.dropped_oldest
                + s.dropped_newest
                + s.conflated
                + s.filtered
    }

    #[test]
    fn a_lease_counts_as_buffered_until_committed() {
        // Both take paths: a few messages (moved under the lock) and many
        // (the queue swapped out whole).
        for n in [3, 40] {
            let buffer = Buffer::new(&BufferConfig::new().max_messages(100));
            push(&buffer, numbered(0..n));
            let lease = buffer.try_lease(100).unwrap();
            assert_eq!(lease.len(), n as usize);
            assert!(!lease.is_on_disk(), "in memory");
            let s = buffer.stats();
            assert_eq!(
                (s.delivered, s.buffered, s.in_flight),
                (0, n as u64, n as u64)
            );
            assert_eq!(
                s.buffered_bytes,
                lease.messages().iter().map(|d| d.len() as u64).sum::<u64>()
            );
            assert!(adds_up(&s), "{s:?}");
            // Nothing left to take: the leased messages are not takeable.
            assert!(buffer.is_empty());
            assert!(buffer.try_recv().unwrap().is_none());
            lease.commit();
            let s = buffer.stats();
            assert_eq!(
                (s.delivered, s.buffered, s.in_flight, s.buffered_bytes),
                (n as u64, 0, 0, 0)
            );
        }
    }

    #[test]
    fn a_released_lease_comes_first_again_and_delivered_never_goes_down() {
        let buffer = Buffer::new(&BufferConfig::new().max_messages(100));
        push(&buffer, numbered(0..5));
        let lease = buffer.try_lease(3).unwrap();
        assert_eq!(texts(&lease), ["0", "1", "2"]);
        push(&buffer, numbered(5..7));
        lease.release();
        let s = buffer.stats();
        assert_eq!((s.delivered, s.buffered, s.in_flight), (0, 7, 0));
        assert_eq!(buffer.len(), 7);
        // A smaller lease takes part of what came back: still in order.
        let lease = buffer.try_lease(2).unwrap();
        assert_eq!(texts(&lease), ["0", "1"]);
        lease.commit();
        assert_eq!(buffer.stats().delivered, 2);
        let mut rest = Vec::new();
        while let Some(d) = buffer.try_recv().unwrap() {
            rest.push(d.as_text().unwrap().to_owned());
        }
        assert_eq!(rest, ["2", "3", "4", "5", "6"]);
        let s = buffer.stats();
        assert_eq!((s.delivered, s.buffered), (7, 0));
        assert!(adds_up(&s));
    }

    #[test]
    fn dropping_a_lease_releases_it_and_wakes_a_waiting_consumer() {
        let buffer = Arc::new(Buffer::new(&BufferConfig::new()));
        push(&buffer, numbered(0..2));
        let lease = buffer.try_lease(10).unwrap();
        let waiter = {
            let buffer = buffer.clone();
            std::thread::spawn(move || buffer.lease(10, Duration::from_secs(10)))
        };
        std::thread::sleep(Duration::from_millis(50));
        drop(lease);
        let again = waiter.join().unwrap().unwrap();
        assert_eq!(texts(&again), ["0", "1"]);
    }

    #[test]
    fn leased_messages_are_outside_the_limits_and_never_shed() {
        let config = BufferConfig::new()
            .max_messages(4)
            .overflow(Overflow::DropOldest);
        let buffer = Buffer::new(&config);
        push(&buffer, numbered(0..4));
        let lease = buffer.try_lease(4).unwrap();
        // The reader goes on at full limits while the lease is out; only
        // the queue's own messages are shed.
        push(&buffer, numbered(4..10));
        let s = buffer.stats();
        assert_eq!(
            (s.in_flight, s.buffered, s.dropped_oldest),
            (4, 8, 2),
            "{s:?}"
        );
        assert!(adds_up(&s));
        assert_eq!(texts(&lease), ["0", "1", "2", "3"]);
        lease.commit();
        let rest = buffer.try_lease(10).unwrap();
        assert_eq!(texts(&rest), ["6", "7", "8", "9"]);
    }

    #[test]
    fn the_end_comes_after_what_a_released_lease_gave_back() {
        let buffer = Buffer::new(&BufferConfig::new());
        push(&buffer, numbered(0..2));
        let lease = buffer.try_lease(10).unwrap();
        buffer.finish(std::io::Error::other("gone"));
        lease.release();
        let again = buffer.try_lease(10).unwrap();
        assert_eq!(texts(&again), ["0", "1"]);
        again.commit();
        assert!(matches!(buffer.try_lease(10), Err(RecvError::Ended(_))));
    }

    #[test]
    fn a_lease_wait_that_times_out_is_empty() {
        let buffer = Buffer::new(&BufferConfig::new());
        let lease = buffer.lease(10, Duration::from_millis(20)).unwrap();
        assert!(lease.is_empty());
        lease.commit();
        assert_eq!(buffer.stats().delivered, 0);
    }
}
