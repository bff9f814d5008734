//! The segment log against a model, across the wrap, and against damage.

use super::format::{self, CURSOR_FILE, RECORD_HEADER, SEGMENT_HEADER};
use super::log::InjectedFailure;
use super::{Fsync, Kind, LogConfig, Meta, SegmentLog, SpillError};
use proptest::prelude::*;
use std::collections::VecDeque;
use std::fs;
use std::path::Path;

fn small(first_segment: u64) -> LogConfig {
    LogConfig {
        segment_bytes: 256,
        max_disk_bytes: 4096,
        fsync: Fsync::Never,
        first_segment,
    }
}

/// The frame of one of `fill`'s records: a header and 40 bytes.
const RECORD: u64 = RECORD_HEADER + 40;

/// Appends `p` (text or binary) with `fail` injected, and checks the
/// outcome against the model: appended (and in the model) unless the
/// budget, the record limit or the injected failure refused it.
fn append_checked(
    log: &mut SegmentLog,
    model: &mut VecDeque<(Kind, Vec<u8>)>,
    fail: Option<InjectedFailure>,
    text: bool,
    p: Vec<u8>,
) -> Result<(), TestCaseError> {
    let kind = if text { Kind::Text } else { Kind::Binary };
    log.inject = fail;
    let injected = log.inject.is_some();
    let len = p.len();
    match log.append(kind, &p) {
        Ok(()) => {
            prop_assert!(!injected);
            model.push_back((kind, p));
        }
        Err(SpillError::DiskFull { .. }) => {}
        Err(SpillError::TooLarge { .. }) => prop_assert!(len > log.max_record()),
        Err(SpillError::Io { .. }) if injected => {}
        Err(e) => prop_assert!(false, "{e}"),
    }
    log.inject = None;
    Ok(())
}

fn payload(i: u32, len: usize) -> Vec<u8> {
    (0..len).map(|j| (i as usize * 31 + j) as u8).collect()
}

fn drain(log: &mut SegmentLog) -> Vec<(Kind, Vec<u8>)> {
    let mut out = Vec::new();
    while let Some(record) = log.take().unwrap() {
        out.push((record.kind, record.payload.to_vec()));
    }
    out
}

fn segment_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".seg"))
        .collect();
    names.sort();
    names
}

fn bytes_on_disk(dir: &Path) -> u64 {
    segment_files(dir)
        .iter()
        .map(|n| fs::metadata(dir.join(n)).unwrap().len())
        .sum()
}

/// Appends records 0..n of 40 bytes, alternately text and binary.
fn fill(log: &mut SegmentLog, n: u32) -> Vec<(Kind, Vec<u8>)> {
    (0..n)
        .map(|i| {
            let kind = if i % 2 == 0 { Kind::Text } else { Kind::Binary };
            let p = payload(i, 40);
            log.append(kind, &p).unwrap();
            (kind, p)
        })
        .collect()
}

#[test]
fn records_come_back_in_order_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = SegmentLog::open(dir.path(), small(0)).unwrap();
    let written = fill(&mut log, 20);
    assert!(log.segment_count() > 3);
    assert_eq!(log.disk_bytes(), bytes_on_disk(dir.path()));
    assert_eq!(drain(&mut log), written);
    assert!(log.is_empty());
}

#[test]
fn a_segment_file_is_removed_once_every_record_in_it_is_taken() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = SegmentLog::open(dir.path(), small(0)).unwrap();
    // 256-byte segments hold 4 records of RECORD bytes after the 20-byte header.
    fill(&mut log, 9);
    let first = format::segment_name(0);
    assert_eq!(segment_files(dir.path())[0], first);
    for _ in 0..3 {
        log.take().unwrap().unwrap();
    }
    assert!(dir.path().join(&first).exists());
    log.take().unwrap().unwrap();
    assert!(
        !dir.path().join(&first).exists(),
        "the spent segment is gone"
    );
    assert_eq!(log.disk_bytes(), bytes_on_disk(dir.path()));
    // Drained, the log holds no segment, not even the one appended to
    // last; the next append starts a new one.
    drain(&mut log);
    assert!(segment_files(dir.path()).is_empty());
    assert_eq!(log.disk_bytes(), 0);
    log.append(Kind::Binary, &[0; 200]).unwrap();
    assert_eq!(segment_files(dir.path()), vec![format::segment_name(3)]);
}

#[test]
fn numbering_crosses_the_wrap_and_reopening_keeps_the_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = SegmentLog::open(dir.path(), small(u64::MAX - 2)).unwrap();
    let written = fill(&mut log, 24);
    let names = segment_files(dir.path());
    assert!(names.contains(&format::segment_name(u64::MAX)));
    assert!(names.contains(&format::segment_name(0)));
    assert!(names.contains(&format::segment_name(1)));
    drop(log);
    let mut log = SegmentLog::open(dir.path(), small(0)).unwrap();
    assert_eq!(log.counts(), Default::default());
    let more = fill(&mut log, 3);
    assert_eq!(drain(&mut log), [written, more].concat());
}

#[test]
fn a_clean_reopen_delivers_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = SegmentLog::open(dir.path(), small(0)).unwrap();
    let written = fill(&mut log, 10);
    log.take().unwrap().unwrap();
    log.take().unwrap().unwrap();
    drop(log);
    let mut log = SegmentLog::open(dir.path(), small(0)).unwrap();
    assert_eq!(log.len(), 8);
    assert_eq!(drain(&mut log), written[2..]);
    drop(log);
    assert!(segment_files(dir.path()).is_empty());
    assert!(!dir.path().join(CURSOR_FILE).exists());
}

#[test]
fn a_crash_redelivers_at_most_the_records_taken_from_the_oldest_segment() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = SegmentLog::open(dir.path(), small(0)).unwrap();
    let written = fill(&mut log, 10);
    log.take().unwrap().unwrap();
    log.sync().unwrap();
    log.take().unwrap().unwrap();
    // A crash: no cursor written after the second take.
    std::mem::forget(log);
    let mut log = SegmentLog::open(dir.path(), small(0)).unwrap();
    assert_eq!(drain(&mut log), written[1..]);
}

#[test]
fn a_truncated_last_record_is_skipped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = SegmentLog::open(dir.path(), small(0)).unwrap();
    let written = fill(&mut log, 6);
    drop(log);
    let last = dir.path().join(segment_files(dir.path()).pop().unwrap());
    let len = fs::metadata(&last).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&last)
        .unwrap()
        .set_len(len - 10)
        .unwrap();
    let mut log = SegmentLog::open(dir.path(), small(0)).unwrap();
    let counts = log.counts();
    assert_eq!(counts.corrupt_records, 1);
    assert_eq!(counts.skipped_bytes, RECORD_HEADER + 40 - 10);
    assert_eq!(drain(&mut log), written[..5]);
}

#[test]
fn flipped_bits_mid_segment_skip_the_rest_of_that_segment_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = SegmentLog::open(dir.path(), small(0)).unwrap();
    let written = fill(&mut log, 12);
    drop(log);
    // Segment 0 holds records 0..4; flip a payload bit of record 1.
    let first = dir.path().join(format::segment_name(0));
    let mut bytes = fs::read(&first).unwrap();
    let at = (SEGMENT_HEADER + RECORD + RECORD_HEADER + 5) as usize;
    bytes[at] ^= 0x10;
    fs::write(&first, &bytes).unwrap();
    let mut log = SegmentLog::open(dir.path(), small(0)).unwrap();
    assert_eq!(log.counts().corrupt_records, 1);
    assert_eq!(log.counts().skipped_bytes, 3 * RECORD);
    let expected: Vec<_> = written[..1].iter().chain(&written[4..]).cloned().collect();
    assert_eq!(drain(&mut log), expected);
}

#[test]
fn a_flipped_length_never_loops_or_blocks_the_open() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = SegmentLog::open(dir.path(), small(0)).unwrap();
    let written = fill(&mut log, 8);
    drop(log);
    let first = dir.path().join(format::segment_name(0));
    let mut bytes = fs::read(&first).unwrap();
    let at = (SEGMENT_HEADER + RECORD) as usize;
    bytes[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    fs::write(&first, &bytes).unwrap();
    let mut log = SegmentLog::open(dir.path(), small(0)).unwrap();
    assert_eq!(log.counts().corrupt_records, 1);
    let expected: Vec<_> = written[..1].iter().chain(&written[4..]).cloned().collect();
    assert_eq!(drain(&mut log), expected);
}

#[test]
fn a_missing_segment_is_counted_and_the_rest_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = SegmentLog::open(dir.path(), small(0)).unwrap();
    let written = fill(&mut log, 12);
    drop(log);
    fs::remove_file(dir.path().join(format::segment_name(1))).unwrap();
    let mut log = SegmentLog::open(dir.path(), small(0)).unwrap();
    assert_eq!(log.counts().missing_segments, 1);
    assert_eq!(log.counts().corrupt_records, 0);
    let expected: Vec<_> = written[..4].iter().chain(&written[8..]).cloned().collect();
    assert_eq!(drain(&mut log), expected);
}

#[test]
fn files_that_are_not_ours_are_counted_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = SegmentLog::open(dir.path(), small(0)).unwrap();
    let written = fill(&mut log, 6);
    drop(log);
    fs::write(dir.path().join("notes.txt"), b"hello").unwrap();
    // Named like a segment, in the live range, but not ours.
    let impostor = dir.path().join(format::segment_name(5));
    fs::write(&impostor, b"PK\x03\x04 not a spill segment at all").unwrap();
    // Ours by its magic, but a newer version.
    let newer = dir.path().join(format::segment_name(6));
    let mut header = format::segment_header(6);
    header[8] = 2;
    fs::write(&newer, header).unwrap();
    fs::create_dir(dir.path().join("subdir")).unwrap();
    let mut log = SegmentLog::open(dir.path(), small(0)).unwrap();
    assert_eq!(log.counts().foreign_files, 4);
    assert_eq!(drain(&mut log), written);
    // Appends skip names that are taken, and never touch those files.
    let more = fill(&mut log, 6);
    assert_eq!(drain(&mut log), more);
    drop(log);
    assert!(impostor.exists() && newer.exists());
    assert!(dir.path().join("notes.txt").exists());
}

#[test]
fn a_segment_torn_at_creation_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let torn = dir.path().join(format::segment_name(3));
    fs::write(&torn, &format::segment_header(3)[..5]).unwrap();
    let log = SegmentLog::open(dir.path(), small(0)).unwrap();
    assert_eq!(log.counts().skipped_bytes, 5);
    assert_eq!(log.counts().foreign_files, 0);
    assert!(!torn.exists());
}

#[test]
fn an_oversized_record_and_a_full_budget_are_refused_loudly() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = SegmentLog::open(dir.path(), small(0)).unwrap();
    let max = log.max_record();
    assert_eq!(max as u64, 4096 - SEGMENT_HEADER - RECORD_HEADER);
    match log.append(Kind::Binary, &vec![7; max + 1]) {
        Err(SpillError::TooLarge { len, max: m }) => assert_eq!((len, m), (max + 1, max)),
        other => panic!("{other:?}"),
    }
    // A record larger than a segment gets a segment of its own.
    let big = vec![7; 600];
    log.append(Kind::Binary, &big).unwrap();
    log.append(Kind::Text, &[1; 10]).unwrap();
    assert_eq!(log.segment_count(), 2);
    assert_eq!(log.take().unwrap().unwrap().payload.len(), 600);
    assert_eq!(log.take().unwrap().unwrap().payload.len(), 10);
    let mut appended = 0;
    let err = loop {
        match log.append(Kind::Text, &[1; 100]) {
            Ok(()) => appended += 1,
            Err(e) => break e,
        }
    };
    match err {
        SpillError::DiskFull { used, max } => {
            assert_eq!(max, 4096);
            assert!(used <= 4096 && used == log.disk_bytes());
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(log.len(), appended);
    assert_eq!(log.disk_bytes(), bytes_on_disk(dir.path()));
    // Room comes back as segments are taken.
    for _ in 0..3 {
        log.take().unwrap().unwrap();
    }
    log.append(Kind::Text, &[1; 100]).unwrap();
}

#[test]
fn a_failed_write_leaves_no_record_behind() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = SegmentLog::open(dir.path(), small(0)).unwrap();
    let mut written = fill(&mut log, 2);
    for truncate_fails in [false, true] {
        log.inject = Some(InjectedFailure {
            written: 13,
            truncate_fails,
        });
        match log.append(Kind::Text, &payload(99, 40)) {
            Err(SpillError::Io { source, .. }) => {
                assert_eq!(source.kind(), std::io::ErrorKind::StorageFull)
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(log.disk_bytes(), bytes_on_disk(dir.path()));
        written.extend(fill(&mut log, 2));
    }
    drop(log);
    let mut log = SegmentLog::open(dir.path(), small(0)).unwrap();
    // The tail left when the truncation failed is found and counted.
    assert_eq!(log.counts().corrupt_records, 1);
    assert_eq!(log.counts().skipped_bytes, 13);
    assert_eq!(drain(&mut log), written);
}

#[test]
fn a_batch_is_written_a_segment_at_a_time_and_fails_whole_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = SegmentLog::open(dir.path(), small(0)).unwrap();
    let payloads: Vec<Vec<u8>> = (0..10).map(|i| payload(i, 40)).collect();
    let batch = || {
        payloads
            .iter()
            .map(|p| (Meta::from(Kind::Text), p.as_slice()))
    };
    // The first write (the first segment's four records) fails.
    log.inject = Some(InjectedFailure {
        written: 30,
        truncate_fails: false,
    });
    let (appended, error) = log.append_batch(batch());
    assert_eq!(appended, 0);
    assert!(matches!(error, Some(SpillError::Io { .. })), "{error:?}");
    assert!(log.is_empty());
    assert_eq!(log.disk_bytes(), bytes_on_disk(dir.path()));
    // Then the whole batch, across three segments, in order.
    assert_eq!(log.append_batch(batch()).0, 10);
    assert!(log.segment_count() >= 3);
    assert_eq!(log.disk_bytes(), bytes_on_disk(dir.path()));
    let got: Vec<Vec<u8>> = drain(&mut log).into_iter().map(|(_, p)| p).collect();
    assert_eq!(got, payloads);
    // The budget ends a batch part-way: what fits is in, the rest is not.
    let (appended, error) =
        log.append_batch((0..200).map(|_| (Meta::from(Kind::Binary), &[5u8; 40][..])));
    assert!(appended > 0 && appended < 200, "{appended}");
    assert!(
        matches!(error, Some(SpillError::DiskFull { .. })),
        "{error:?}"
    );
    assert_eq!(log.len(), appended as u64);
    assert_eq!(log.disk_bytes(), bytes_on_disk(dir.path()));
    drop(log);
    let log = SegmentLog::open(dir.path(), small(0)).unwrap();
    assert_eq!(log.len(), appended as u64);
    assert_eq!(log.counts(), Default::default());
}

#[test]
fn a_torn_batch_that_cannot_be_truncated_counts_its_whole_records() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = SegmentLog::open(dir.path(), small(0)).unwrap();
    let payloads: Vec<Vec<u8>> = (0..3).map(|i| payload(i, 40)).collect();
    // Two whole frames and part of the third reach the disk; the
    // truncation that would undo them fails.
    log.inject = Some(InjectedFailure {
        written: (2 * RECORD + 7) as usize,
        truncate_fails: true,
    });
    let (appended, error) = log.append_batch(
        payloads
            .iter()
            .map(|p| (Meta::from(Kind::Text), p.as_slice())),
    );
    assert!(matches!(error, Some(SpillError::Io { .. })), "{error:?}");
    // What the disk holds whole is what the log reports: read again, the
    // directory gives exactly those, nothing the caller still holds.
    assert_eq!(appended, 2);
    assert_eq!(log.len(), 2);
    assert_eq!(log.disk_bytes(), bytes_on_disk(dir.path()));
    drop(log);
    let mut log = SegmentLog::open(dir.path(), small(0)).unwrap();
    assert_eq!(log.counts().corrupt_records, 1);
    assert_eq!(log.counts().skipped_bytes, 7);
    let got: Vec<Vec<u8>> = drain(&mut log).into_iter().map(|(_, p)| p).collect();
    assert_eq!(got, payloads[..2]);
}

#[test]
fn a_durable_log_syncs_on_its_interval() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        fsync: Fsync::Every(std::time::Duration::from_millis(100)),
        ..small(0)
    };
    let mut log = SegmentLog::open(dir.path(), config.clone()).unwrap();
    let written = fill(&mut log, 5);
    log.take().unwrap().unwrap();
    log.sync().unwrap();
    std::mem::forget(log);
    let mut log = SegmentLog::open(dir.path(), config).unwrap();
    assert_eq!(drain(&mut log), written[1..]);
}

#[derive(Debug, Clone)]
enum Op {
    Append {
        text: bool,
        len: usize,
    },
    Take(usize),
    Reopen,
    FailNextWrite {
        written: usize,
        truncate_fails: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (any::<bool>(), prop_oneof![0usize..64, 64usize..240]).prop_map(|(text, len)| Op::Append { text, len }),
        3 => (1usize..8).prop_map(Op::Take),
        1 => Just(Op::Reopen),
        1 => (0usize..60, any::<bool>()).prop_map(|(written, truncate_fails)| Op::FailNextWrite { written, truncate_fails }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// The log against a `VecDeque`: after every step it holds the
    /// model's records (its length and disk bytes agree), every take
    /// returns the model's front, and at the end it yields exactly the
    /// model's records in order.
    #[test]
    fn the_log_behaves_as_a_queue(
        start in prop_oneof![Just(0u64), Just(u64::MAX - 3), any::<u64>()],
        ops in proptest::collection::vec(op(), 1..120),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let config = small(start);
        let mut log = SegmentLog::open(dir.path(), config.clone()).unwrap();
        let mut model: VecDeque<(Kind, Vec<u8>)> = VecDeque::new();
        let mut next = 0u32;
        let mut fail = None;
        for op in ops {
            match op {
                Op::Append { text, len } => {
                    append_checked(&mut log, &mut model, fail.take(), text, payload(next, len))?;
                    next += 1;
                }
                Op::Take(n) => {
                    for _ in 0..n {
                        let got = log.take().unwrap().map(|r| (r.kind, r.payload.to_vec()));
                        prop_assert_eq!(got, model.pop_front());
                    }
                }
                Op::Reopen => {
                    drop(log);
                    log = SegmentLog::open(dir.path(), config.clone()).unwrap();
                }
                Op::FailNextWrite { written, truncate_fails } => {
                    fail = Some(InjectedFailure { written, truncate_fails });
                }
            }
            prop_assert_eq!(log.len(), model.len() as u64);
            prop_assert_eq!(log.disk_bytes(), bytes_on_disk(dir.path()));
            prop_assert!(log.disk_bytes() <= config.max_disk_bytes);
        }
        let rest: Vec<_> = model.into_iter().collect();
        prop_assert_eq!(drain(&mut log), rest);
    }
}

// The hold: a message leaves a durable spill only once committed.

/// Takes `n` records (all present).
fn take_n(log: &mut SegmentLog, n: usize) -> Vec<(Kind, Vec<u8>)> {
    (0..n)
        .map(|_| {
            let record = log.take().unwrap().expect("a record to take");
            (record.kind, record.payload.to_vec())
        })
        .collect()
}

/// What a killed process leaves: the directory as it is now, before any
/// drop writes to it (the page cache outlives the process).
fn snapshot(dir: &Path) -> tempfile::TempDir {
    let copy = tempfile::tempdir().unwrap();
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), copy.path().join(entry.file_name())).unwrap();
    }
    copy
}

fn cursor_on_disk(dir: &Path) -> Option<(u64, u64)> {
    format::decode_cursor(&fs::read(dir.join(CURSOR_FILE)).ok()?)
}

/// How a test stops a log that holds records.
#[derive(Debug, Clone, Copy)]
enum Stop {
    /// A clean drop (the cursor written by `Drop`).
    Drop,
    /// `save_cursor`, then the process is killed (nothing else written).
    SaveThenKill,
    /// Killed with nothing written since the hold began.
    Kill,
}

/// Stops `log` on `dir` as `stop` says and returns the directory to
/// reopen (a snapshot for a kill, the directory itself for a drop).
fn stop(log: SegmentLog, dir: tempfile::TempDir, stop: Stop) -> tempfile::TempDir {
    match stop {
        Stop::Drop => {
            drop(log);
            dir
        }
        Stop::SaveThenKill => {
            let mut log = log;
            log.save_cursor().unwrap();
            let copy = snapshot(dir.path());
            // Forgotten, as a killed process would: no `Drop`.
            std::mem::forget(log);
            copy
        }
        Stop::Kill => {
            let copy = snapshot(dir.path());
            drop(log);
            copy
        }
    }
}

#[test]
fn held_records_come_again_in_order_when_the_log_stops_without_a_commit() {
    for how in [Stop::Drop, Stop::SaveThenKill, Stop::Kill] {
        let dir = tempfile::tempdir().unwrap();
        let mut log = SegmentLog::open(dir.path(), small(0)).unwrap();
        let written = fill(&mut log, 12);
        assert_eq!(take_n(&mut log, 2), written[..2], "{how:?}");
        log.save_cursor().unwrap();
        log.hold();
        assert!(log.is_held());
        // Across the end of segment 0 (records 0..4) into segment 1.
        assert_eq!(take_n(&mut log, 5), written[2..7], "{how:?}");
        assert_eq!(log.len(), 5);
        let dir = stop(log, dir, how);
        assert_eq!(
            cursor_on_disk(dir.path()),
            Some((0, SEGMENT_HEADER + 2 * RECORD)),
            "{how:?}: the cursor names the committed position"
        );
        let mut log = SegmentLog::open(dir.path(), small(0)).unwrap();
        assert!(!log.is_held());
        assert_eq!(log.len(), 10, "{how:?}");
        assert_eq!(log.counts(), Default::default(), "{how:?}");
        assert_eq!(drain(&mut log), written[2..], "{how:?}");
    }
}

#[test]
fn committed_records_never_come_back() {
    for how in [Stop::Drop, Stop::SaveThenKill, Stop::Kill] {
        let dir = tempfile::tempdir().unwrap();
        let mut log = SegmentLog::open(dir.path(), small(0)).unwrap();
        let written = fill(&mut log, 12);
        log.hold();
        assert_eq!(take_n(&mut log, 6), written[..6]);
        log.commit().unwrap();
        assert!(!log.is_held());
        // A second lease, taken and not committed.
        log.hold();
        assert_eq!(take_n(&mut log, 3), written[6..9]);
        let dir = stop(log, dir, how);
        let mut log = SegmentLog::open(dir.path(), small(0)).unwrap();
        assert_eq!(drain(&mut log), written[6..], "{how:?}");
    }
}

#[test]
fn a_hold_keeps_every_segment_file_until_the_commit() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = SegmentLog::open(dir.path(), small(0)).unwrap();
    let written = fill(&mut log, 14);
    let files = segment_files(dir.path());
    assert_eq!(files.len(), 4);
    log.hold();
    // Into the last segment: segments 0, 1 and 2 are spent and stay.
    assert_eq!(take_n(&mut log, 13), written[..13]);
    assert_eq!(segment_files(dir.path()), files);
    assert_eq!(log.segment_count(), 4);
    assert_eq!(log.disk_bytes(), bytes_on_disk(dir.path()));
    assert_eq!(log.len(), 1);
    log.save_cursor().unwrap();
    assert_eq!(cursor_on_disk(dir.path()), Some((0, SEGMENT_HEADER)));
    log.commit().unwrap();
    assert_eq!(segment_files(dir.path()), files[3..]);
    assert_eq!(log.segment_count(), 1);
    assert_eq!(log.disk_bytes(), bytes_on_disk(dir.path()));
    assert_eq!(
        cursor_on_disk(dir.path()),
        Some((3, SEGMENT_HEADER + RECORD))
    );
    // Without a hold, a drained log frees its last segment at once again.
    assert_eq!(take_n(&mut log, 1), written[13..]);
    assert!(segment_files(dir.path()).is_empty());
    assert_eq!(log.disk_bytes(), 0);
}

#[test]
fn a_log_drained_while_held_keeps_its_last_segment_and_frees_it_at_the_commit() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = SegmentLog::open(dir.path(), small(0)).unwrap();
    // Held with no segment at all: the committed position is the start
    // of whatever comes first.
    log.hold();
    let written = fill(&mut log, 2);
    assert_eq!(drain(&mut log), written);
    assert!(log.is_empty());
    assert_eq!(segment_files(dir.path()), [format::segment_name(0)]);
    assert_eq!(log.disk_bytes(), bytes_on_disk(dir.path()));
    // Appends go on in the held segment.
    let more = fill(&mut log, 1);
    assert_eq!(segment_files(dir.path()), [format::segment_name(0)]);
    assert_eq!(drain(&mut log), more);
    log.save_cursor().unwrap();
    assert_eq!(cursor_on_disk(dir.path()), Some((0, SEGMENT_HEADER)));
    // Killed now: all three come again.
    let copy = snapshot(dir.path());
    let mut reopened = SegmentLog::open(copy.path(), small(0)).unwrap();
    assert_eq!(drain(&mut reopened), [written, more].concat());
    log.commit().unwrap();
    assert!(segment_files(dir.path()).is_empty());
    assert_eq!(log.disk_bytes(), 0);
    assert!(!dir.path().join(CURSOR_FILE).exists());
    drop(log);
    let mut log = SegmentLog::open(dir.path(), small(0)).unwrap();
    assert!(drain(&mut log).is_empty());
}

#[test]
fn a_second_hold_before_the_commit_keeps_the_first_position() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = SegmentLog::open(dir.path(), small(0)).unwrap();
    let written = fill(&mut log, 8);
    log.hold();
    take_n(&mut log, 3);
    log.hold();
    take_n(&mut log, 3);
    let dir = stop(log, dir, Stop::SaveThenKill);
    let mut log = SegmentLog::open(dir.path(), small(0)).unwrap();
    assert_eq!(drain(&mut log), written);
}

#[test]
fn a_cursor_into_a_segment_whose_records_were_all_taken_delivers_each_held_record_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = SegmentLog::open(dir.path(), small(0)).unwrap();
    let written = fill(&mut log, 12);
    take_n(&mut log, 2);
    log.save_cursor().unwrap();
    log.hold();
    // The rest of segment 0, then none of segment 1 yet: the reader has
    // left segment 0, which only the hold keeps.
    take_n(&mut log, 2);
    assert_eq!(segment_files(dir.path()).len(), 3);
    let dir = stop(log, dir, Stop::Kill);
    let mut log = SegmentLog::open(dir.path(), small(0)).unwrap();
    assert_eq!(log.len(), 10);
    assert_eq!(drain(&mut log), written[2..]);
    drop(log);

    // A cursor at the very end of the oldest segment: nothing of it comes.
    let dir = tempfile::tempdir().unwrap();
    let mut log = SegmentLog::open(dir.path(), small(0)).unwrap();
    let written = fill(&mut log, 8);
    std::mem::forget(log);
    fs::write(
        dir.path().join(CURSOR_FILE),
        format::encode_cursor(0, SEGMENT_HEADER + 4 * RECORD),
    )
    .unwrap();
    let mut log = SegmentLog::open(dir.path(), small(0)).unwrap();
    assert_eq!(log.len(), 4);
    assert_eq!(drain(&mut log), written[4..]);
}

#[test]
fn a_hold_across_the_wrap_of_segment_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = SegmentLog::open(dir.path(), small(u64::MAX - 1)).unwrap();
    let written = fill(&mut log, 16);
    take_n(&mut log, 1);
    log.save_cursor().unwrap();
    log.hold();
    // From segment u64::MAX - 1 through u64::MAX into segment 0.
    take_n(&mut log, 10);
    let names = segment_files(dir.path());
    assert_eq!(names.len(), 4);
    assert!(names.contains(&format::segment_name(u64::MAX - 1)));
    let copy = snapshot(dir.path());
    let mut reopened = SegmentLog::open(copy.path(), small(0)).unwrap();
    assert_eq!(drain(&mut reopened), written[1..]);
    log.commit().unwrap();
    assert_eq!(
        segment_files(dir.path()),
        [format::segment_name(0), format::segment_name(1)]
    );
    assert_eq!(log.disk_bytes(), bytes_on_disk(dir.path()));
    drop(log);
    let mut log = SegmentLog::open(dir.path(), small(0)).unwrap();
    assert_eq!(drain(&mut log), written[11..]);
}

#[test]
fn held_segments_count_against_the_disk_budget_until_the_commit() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        max_disk_bytes: 3 * 256,
        ..small(0)
    };
    let mut log = SegmentLog::open(dir.path(), config).unwrap();
    let written = fill(&mut log, 12);
    log.hold();
    assert_eq!(drain(&mut log), written);
    assert_eq!(log.disk_bytes(), bytes_on_disk(dir.path()));
    match log.append(Kind::Text, &payload(0, 40)) {
        Err(SpillError::DiskFull { used, max }) => {
            assert_eq!((used, max), (log.disk_bytes(), 3 * 256));
        }
        other => panic!("{other:?}"),
    }
    log.commit().unwrap();
    assert_eq!(log.disk_bytes(), 0);
    log.append(Kind::Text, &payload(0, 40)).unwrap();
}

#[test]
fn damage_found_while_held_is_skipped_and_the_held_records_still_come_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = SegmentLog::open(dir.path(), small(0)).unwrap();
    let written = fill(&mut log, 12);
    // Record 2 of segment 0 is damaged under the log (before its reader
    // opens the file).
    let first = dir.path().join(format::segment_name(0));
    let mut bytes = fs::read(&first).unwrap();
    bytes[(SEGMENT_HEADER + 2 * RECORD + RECORD_HEADER + 3) as usize] ^= 1;
    fs::write(&first, &bytes).unwrap();
    log.hold();
    assert_eq!(
        take_n(&mut log, 3),
        [&written[..2], &written[4..5]].concat()
    );
    assert_eq!(log.counts().corrupt_records, 1);
    assert!(first.exists(), "the damaged segment holds held records");
    assert_eq!(log.disk_bytes(), bytes_on_disk(dir.path()));
    // The reader gives up on segment 1 (as after failed reads).
    assert_eq!(log.abandon_oldest(), 3);
    assert_eq!(take_n(&mut log, 1), written[8..9]);
    assert_eq!(segment_files(dir.path()).len(), 3);
    assert_eq!(log.disk_bytes(), bytes_on_disk(dir.path()));
    log.save_cursor().unwrap();
    let copy = snapshot(dir.path());
    // Reopened, the damage is found again; segment 1, readable now, comes
    // whole (abandoned records are not lost while their file is kept).
    let mut reopened = SegmentLog::open(copy.path(), small(0)).unwrap();
    assert_eq!(reopened.counts().corrupt_records, 1);
    let expected = [&written[..2], &written[4..]].concat();
    assert_eq!(drain(&mut reopened), expected);
    log.commit().unwrap();
    assert_eq!(segment_files(dir.path()), [format::segment_name(2)]);
    assert_eq!(log.disk_bytes(), bytes_on_disk(dir.path()));
    assert_eq!(drain(&mut log), written[9..]);
}

#[derive(Debug, Clone)]
enum HoldOp {
    Append {
        text: bool,
        len: usize,
    },
    Take(usize),
    Hold,
    Commit,
    /// A clean drop, then open again.
    Reopen,
    /// `save_cursor` (as the buffer does after its takes), then killed:
    /// the directory as it is, opened again.
    Kill,
    FailNextWrite {
        written: usize,
        truncate_fails: bool,
    },
}

fn hold_op() -> impl Strategy<Value = HoldOp> {
    prop_oneof![
        6 => (any::<bool>(), prop_oneof![0usize..64, 64usize..240]).prop_map(|(text, len)| HoldOp::Append { text, len }),
        4 => (1usize..8).prop_map(HoldOp::Take),
        2 => Just(HoldOp::Hold),
        2 => Just(HoldOp::Commit),
        1 => Just(HoldOp::Reopen),
        1 => Just(HoldOp::Kill),
        1 => (0usize..60, any::<bool>()).prop_map(|(written, truncate_fails)| HoldOp::FailNextWrite { written, truncate_fails }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// The log with holds against a model: records not yet taken, and
    /// those taken since the hold began. A stop (a drop or a kill) puts
    /// the held ones back in front, in order; a commit forgets them. After
    /// every step the log's length, disk bytes (the files on the disk)
    /// and hold agree with it; at the end, drained and committed, a reopen
    /// finds nothing.
    #[test]
    fn held_records_come_again_and_committed_ones_never(
        start in prop_oneof![Just(0u64), Just(u64::MAX - 3), any::<u64>()],
        durable in any::<bool>(),
        ops in proptest::collection::vec(hold_op(), 1..120),
    ) {
        let mut dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            fsync: if durable {
                Fsync::Every(std::time::Duration::from_secs(1))
            } else {
                Fsync::Never
            },
            ..small(start)
        };
        let mut log = SegmentLog::open(dir.path(), config.clone()).unwrap();
        let mut model: VecDeque<(Kind, Vec<u8>)> = VecDeque::new();
        let mut held: Vec<(Kind, Vec<u8>)> = Vec::new();
        let mut holding = false;
        let mut next = 0u32;
        let mut fail = None;
        for op in ops {
            match op {
                HoldOp::Append { text, len } => {
                    append_checked(&mut log, &mut model, fail.take(), text, payload(next, len))?;
                    next += 1;
                }
                HoldOp::Take(n) => {
                    for _ in 0..n {
                        let got = log.take().unwrap().map(|r| (r.kind, r.payload.to_vec()));
                        let want = model.pop_front();
                        prop_assert_eq!(&got, &want);
                        if let (Some(record), true) = (got, holding) {
                            held.push(record);
                        }
                    }
                    log.save_cursor().unwrap();
                }
                HoldOp::Hold => {
                    log.hold();
                    holding = true;
                }
                HoldOp::Commit => {
                    log.commit().unwrap();
                    held.clear();
                    holding = false;
                }
                HoldOp::Reopen | HoldOp::Kill => {
                    if matches!(op, HoldOp::Kill) {
                        log.save_cursor().unwrap();
                        let copy = snapshot(dir.path());
                        drop(log);
                        dir = copy;
                    } else {
                        drop(log);
                    }
                    log = SegmentLog::open(dir.path(), config.clone()).unwrap();
                    for record in held.drain(..).rev() {
                        model.push_front(record);
                    }
                    holding = false;
                }
                HoldOp::FailNextWrite { written, truncate_fails } => {
                    fail = Some(InjectedFailure { written, truncate_fails });
                }
            }
            prop_assert_eq!(log.len(), model.len() as u64);
            prop_assert_eq!(log.is_held(), holding);
            prop_assert_eq!(log.disk_bytes(), bytes_on_disk(dir.path()));
            prop_assert!(log.disk_bytes() <= config.max_disk_bytes);
        }
        let rest: Vec<_> = model.into_iter().collect();
        prop_assert_eq!(drain(&mut log), rest);
        log.commit().unwrap();
        // Every kept segment is gone; at most the one being appended to
        // stays, empty (after a failed first write into it).
        prop_assert_eq!(log.disk_bytes(), bytes_on_disk(dir.path()));
        prop_assert!(log.disk_bytes() <= SEGMENT_HEADER);
        drop(log);
        let mut log = SegmentLog::open(dir.path(), config).unwrap();
        prop_assert!(log.take().unwrap().is_none());
    }
}
