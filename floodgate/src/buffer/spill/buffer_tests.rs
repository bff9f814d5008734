//! A spilling [`Buffer`] against a model: a plain in-memory queue of what
//! was pushed. Random pushes (of random sizes, past the memory limits),
//! takes, restarts of a durable spill, and write failures injected into
//! the log, over a temporary directory whose segment numbers start near
//! their wrap-around. Whatever happens, the consumer gets the pushed
//! messages in order with none twice; without failures, all of them; and
//! the counters add up at every step.

use super::log::InjectedFailure;
use super::{lock_log, SpillConfig, SpillFallback};
use crate::buffer::{Buffer, BufferConfig, Lease, Overflow, Pushed, Stats};
use floodgate_proto::Message;
use proptest::prelude::*;
use std::time::Duration;

#[derive(Debug, Clone)]
enum Op {
    /// Push this many messages of these sizes.
    Push(Vec<usize>),
    /// Take up to this many.
    Take(usize),
    /// The next append fails (`ENOSPC`), after writing this many bytes.
    Fail(usize),
    /// Drop the buffer and open the directory again (durable only); a
    /// lease out is dropped with it, uncommitted, as by a killed process.
    Restart,
    /// Lease up to this many (when no lease is out).
    Lease(usize),
    /// Commit the lease out: its messages are delivered.
    Commit,
    /// Release it: its messages come first again.
    Release,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        13 => op_without_faults(),
        1 => (0usize..40).prop_map(Op::Fail),
    ]
}

/// Without injected failures the model checks that nothing is lost.
fn op_without_faults() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => proptest::collection::vec(1usize..600, 1..40).prop_map(Op::Push),
        3 => (1usize..60).prop_map(Op::Take),
        1 => Just(Op::Restart),
        2 => (1usize..60).prop_map(Op::Lease),
        2 => Just(Op::Commit),
        1 => Just(Op::Release),
    ]
}

fn message(seq: u64, size: usize) -> Message {
    let mut text = format!("{seq:08} ");
    while text.len() < size.max(9) {
        text.push('x');
    }
    Message::text(text)
}

fn seq_of(message: &Message) -> u64 {
    message.as_text().unwrap()[..8].parse().unwrap()
}

fn assert_adds_up(s: &Stats) {
    assert_eq!(
        s.received,
        s.delivered + s.buffered + s.dropped_oldest + s.dropped_newest + s.conflated + s.filtered,
        "{s:?}"
    );
}

fn open(config: &BufferConfig) -> Buffer {
    Buffer::try_new(config).expect("open the spill")
}

/// Runs `ops` and checks the buffer against the model.
fn check(ops: Vec<Op>, durable: bool) {
    let dir = tempfile::tempdir().unwrap();
    let mut spill = SpillConfig::new(dir.path())
        .segment_bytes(2048)
        .max_disk_bytes(64 << 10)
        .fallback(SpillFallback::DropNewest);
    spill.first_segment = u64::MAX - 3;
    if durable {
        spill = spill.durable().fsync_interval(Duration::from_millis(5));
    }
    let config = BufferConfig::new()
        .max_messages(8)
        .max_bytes(2048)
        .overflow(Overflow::Spill(spill));
    let mut buffer = open(&config);
    let waker = crate::buffer::thread_waker();
    let mut pushed: Vec<u64> = Vec::new();
    let mut got: Vec<u64> = Vec::new();
    // Lost to the fallback (dropped) in buffers already closed.
    let mut dropped = 0;
    let mut failures = false;
    let mut next = 0u64;
    let mut lease: Option<Lease> = None;
    for op in ops {
        match op {
            Op::Push(sizes) => {
                let mut batch = buffer.new_batch();
                for size in sizes {
                    buffer.stage(&mut batch, message(next, size));
                    pushed.push(next);
                    next += 1;
                }
                match buffer.push(&mut batch, &waker, true) {
                    Pushed::Done => {}
                    other => panic!("DropNewest never waits or ends: {other:?}"),
                }
            }
            // Receiving while a lease is out would take messages from
            // behind it, and receiving what a released lease gave back
            // while a durable spill still holds its cursor before them may
            // bring them again after a restart: the documented use is one
            // or the other.
            Op::Take(_) if lease.is_some() || buffer.lock().leases.returned_len() > 0 => {}
            Op::Take(n) => {
                for _ in 0..n {
                    match buffer.try_recv().unwrap() {
                        Some(d) => got.push(seq_of(d.message())),
                        None => break,
                    }
                }
            }
            Op::Fail(written) => {
                failures = true;
                let io = buffer.spill.as_ref().unwrap();
                lock_log(io.log.as_ref().unwrap()).log.inject = Some(InjectedFailure {
                    written,
                    truncate_fails: written % 2 == 1,
                });
            }
            Op::Restart if durable => {
                let s = buffer.stats();
                dropped += s.dropped_newest;
                // Forgotten, not released: a killed process gives nothing
                // back, and only the disk can bring its messages again.
                std::mem::forget(lease.take());
                drop(buffer);
                buffer = open(&config);
            }
            Op::Restart => {}
            Op::Lease(n) => {
                if lease.is_none() {
                    lease = Some(buffer.try_lease(n).unwrap());
                }
            }
            Op::Commit => {
                if let Some(l) = lease.take() {
                    got.extend(l.messages().iter().map(|d| seq_of(d.message())));
                    l.commit();
                }
            }
            Op::Release => drop(lease.take()),
        }
        let s = buffer.stats();
        assert_adds_up(&s);
        let out = lease.as_ref().map_or(0, |l| l.len() as u64);
        assert_eq!(s.in_flight, out, "{s:?}");
        assert!(s.buffered >= out, "{s:?}");
    }
    if let Some(l) = lease.take() {
        got.extend(l.messages().iter().map(|d| seq_of(d.message())));
        l.commit();
    }
    // Drain: whatever is buffered must come out (the writer finishes its
    // batch, a failing writer's messages are taken from the hand-off).
    loop {
        let s = buffer.stats();
        if s.buffered == 0 {
            break;
        }
        match buffer.recv_timeout(Duration::from_secs(5)) {
            Ok(d) => got.push(seq_of(d.message())),
            Err(e) => panic!(
                "{} messages buffered but none delivered: {e}; {s:?}",
                s.buffered
            ),
        }
    }
    let s = buffer.stats();
    assert_adds_up(&s);
    dropped += s.dropped_newest;
    // In order, none twice, only what was pushed.
    for pair in got.windows(2) {
        assert!(pair[0] < pair[1], "{} delivered after {}", pair[1], pair[0]);
    }
    assert!(got.iter().all(|seq| *seq < next));
    if !failures {
        // Nothing is lost: what was not delivered was dropped, counted,
        // by the fallback (the budget is the only refusal left).
        assert_eq!(got.len() as u64 + dropped, pushed.len() as u64, "{s:?}");
        if dropped == 0 {
            assert_eq!(got, pushed);
        }
    } else if !durable {
        // Failures cost only what the fallback dropped, counted.
        assert_eq!(got.len() as u64 + dropped, pushed.len() as u64, "{s:?}");
    }
}

#[test]
fn records_counted_on_disk_but_gone_are_dropped_and_counted_not_waited_for() {
    let dir = tempfile::tempdir().unwrap();
    let config = BufferConfig::new()
        .max_messages(4)
        .max_bytes(4096)
        .overflow(Overflow::Spill(SpillConfig::new(dir.path())));
    let buffer = open(&config);
    let waker = crate::buffer::thread_waker();
    let mut batch = buffer.new_batch();
    for seq in 0..50 {
        buffer.stage(&mut batch, message(seq, 100));
    }
    assert!(matches!(
        buffer.push(&mut batch, &waker, true),
        Pushed::Done
    ));
    // Wait for the writer to have written the hand-off.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while buffer.stats().buffered_disk < 46 {
        assert!(std::time::Instant::now() < deadline, "{:?}", buffer.stats());
        std::thread::sleep(Duration::from_millis(5));
    }
    // Five records vanish from the log behind the buffer's back (as the
    // records of a segment given up after a read error would).
    {
        let io = buffer.spill.as_ref().unwrap();
        let mut log = lock_log(io.log.as_ref().unwrap());
        for _ in 0..5 {
            log.log.take().unwrap().unwrap();
        }
    }
    assert_adds_up(&buffer.stats());
    let mut got = Vec::new();
    while let Some(d) = buffer.try_recv().unwrap() {
        got.push(seq_of(d.message()));
    }
    // The first four stayed in memory; the first five on disk are gone.
    assert_eq!(got, (0..4).chain(9..50).collect::<Vec<_>>());
    let s = buffer.stats();
    assert_adds_up(&s);
    assert_eq!(
        (s.buffered, s.buffered_disk, s.dropped_oldest),
        (0, 0, 5),
        "{s:?}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn an_ephemeral_spill_behaves_like_a_queue(ops in proptest::collection::vec(op(), 1..60)) {
        check(ops, false);
    }

    /// A lease out when the process dies is not lost: its records come
    /// again after the restart, before the rest, and committed ones never.
    #[test]
    fn a_durable_spill_with_leases_loses_nothing_across_restarts(
        ops in proptest::collection::vec(op_without_faults(), 1..60)
    ) {
        check(ops, true);
    }

    #[test]
    fn a_durable_spill_behaves_like_a_queue_across_restarts(
        ops in proptest::collection::vec(op(), 1..60)
    ) {
        check(ops, true);
    }
}

/// Wraps `n` numbered 100-byte messages into one batch and pushes it.
fn push_numbered(buffer: &Buffer, range: std::ops::Range<u64>) {
    let waker = crate::buffer::thread_waker();
    let mut batch = buffer.new_batch();
    for seq in range {
        buffer.stage(&mut batch, message(seq, 100));
    }
    assert!(matches!(
        buffer.push(&mut batch, &waker, true),
        Pushed::Done
    ));
}

fn wait_on_disk(buffer: &Buffer, records: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while buffer.stats().buffered_disk < records {
        assert!(std::time::Instant::now() < deadline, "{:?}", buffer.stats());
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A durable spill on `dir` (1 KiB segments) whose buffer holds messages
/// 0 to 49, all on disk.
fn fifty_on_disk(dir: &std::path::Path) -> (BufferConfig, Buffer) {
    let config = BufferConfig::new()
        .max_messages(4)
        .overflow(Overflow::Spill(
            SpillConfig::new(dir).durable().segment_bytes(1024),
        ));
    let buffer = open(&config);
    push_numbered(&buffer, 0..50);
    wait_on_disk(&buffer, 50);
    (config, buffer)
}

/// The bridge's case, killed between publishing and the broker's
/// acknowledgement: the lease was never committed, so the next run on
/// the directory delivers its messages again, then the rest, in order.
#[test]
fn a_durable_lease_killed_before_its_commit_comes_again() {
    let dir = tempfile::tempdir().unwrap();
    let (config, buffer) = fifty_on_disk(dir.path());
    let first = buffer.try_lease(10).unwrap();
    assert_eq!(
        first
            .messages()
            .iter()
            .map(|d| seq_of(d))
            .collect::<Vec<_>>(),
        (0..10).collect::<Vec<_>>()
    );
    first.commit();
    // Spans several 1 KiB segments: their files must outlive the take.
    let second = buffer.try_lease(20).unwrap();
    assert_eq!(second.len(), 20);
    assert!(second.is_on_disk(), "read from the durable spill's disk");
    assert_eq!(buffer.stats().in_flight, 20);
    std::mem::forget(second);
    drop(buffer);

    let buffer = open(&config);
    let s = buffer.stats();
    assert_eq!((s.recovered, s.buffered), (40, 40), "{s:?}");
    let mut got = Vec::new();
    while let Some(d) = buffer.try_recv().unwrap() {
        got.push(seq_of(&d));
    }
    assert_eq!(got, (10..50).collect::<Vec<_>>());
}

/// Committed, the lease's records are gone from the disk: the next run
/// starts after them, and their segments' files are removed.
#[test]
fn a_committed_durable_lease_does_not_come_again() {
    let dir = tempfile::tempdir().unwrap();
    let (config, buffer) = fifty_on_disk(dir.path());
    let disk_before = buffer.stats().disk_bytes;
    let lease = buffer.try_lease(30).unwrap();
    // Held: the segments the lease read are still on disk.
    assert_eq!(buffer.stats().disk_bytes, disk_before);
    lease.commit();
    let s = buffer.stats();
    assert!(s.disk_bytes < disk_before, "{s:?}");
    assert_eq!((s.delivered, s.buffered, s.in_flight), (30, 20, 0), "{s:?}");
    drop(buffer);

    let buffer = open(&config);
    let mut got = Vec::new();
    while let Some(d) = buffer.try_recv().unwrap() {
        got.push(seq_of(&d));
    }
    assert_eq!(got, (30..50).collect::<Vec<_>>());
}
