//! [`SegmentLog`]: appends, takes, opening a directory, syncing. The
//! format is `format.rs`'s; the module docs (`mod.rs`) give the rules.
//!
//! # The hold: at-least-once across a crash
//!
//! A consumer that hands records on (the bridge publishes them to a
//! broker) must not lose a batch when the process is killed between the
//! take and the broker's acknowledgement. [`SegmentLog::hold`] pins the
//! *committed* position where the reader is; takes go on, but the cursor
//! file keeps naming the committed position, and every segment from it on
//! stays on the disk (and in [`SegmentLog::disk_bytes`]) even once all its
//! records are taken. [`SegmentLog::commit`] moves the committed position
//! to the reader's and removes the segments before it. A log opened again
//! after a kill (or a drop) without a commit therefore delivers the held
//! records again, in order, then the rest; committed ones never come back.
//! Without a hold, nothing changes: the committed position is the reader's.

use super::error::io_error;
use super::format::{
    self, Header, Meta, CURSOR_FILE, CURSOR_LEN, LOCK_FILE, RECORD_HEADER, SEGMENT_HEADER,
};
use super::{Fsync, LogConfig, SpillError, SpillLimit, SpillOp};
use bytes::Bytes;
use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The reader's chunk: how much of a segment is read at once, beside the
/// record being returned.
pub(crate) const READ_CHUNK: usize = 64 << 10;

/// How many bytes of encoded records one `write` takes at most: the
/// memory the writer holds beside the messages themselves.
const WRITE_CHUNK: usize = 1 << 20;

/// How many whole record frames the first `written` bytes of `frames`
/// (frames back to back) hold, and their bytes.
fn whole_frames(frames: &[u8], written: u64) -> (usize, u64) {
    let mut pos = 0usize;
    let mut count = 0;
    while pos + RECORD_HEADER as usize <= frames.len() {
        let len = u32::from_le_bytes(frames[pos..pos + 4].try_into().expect("4 bytes"));
        let end = pos + RECORD_HEADER as usize + len as usize;
        if end as u64 > written || end > frames.len() {
            break;
        }
        pos = end;
        count += 1;
    }
    (count, pos as u64)
}

/// Records encoded in the log's frame buffer and not yet written.
#[derive(Debug, Default)]
struct Pending {
    records: usize,
    bytes: u64,
}

/// How many names a new segment skips, at most, when files that are not
/// ours already hold them.
const MAX_NAME_SKIPS: u32 = 1024;

/// One record taken from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) kind: super::Kind,
    /// The priority it was written with (0 to 3).
    pub(crate) priority: u8,
    /// When its message was received (nanoseconds since the Unix epoch).
    pub(crate) stamp: u64,
    pub(crate) payload: Bytes,
}

/// Damage found and work left undone, since the log was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SpillCounts {
    /// Bad records (torn, wrong length, unknown kind, wrong CRC); each
    /// ended its segment.
    pub(crate) corrupt_records: u64,
    /// Bytes skipped: from each bad record to the end of its segment, and
    /// segments torn while being created.
    pub(crate) skipped_bytes: u64,
    /// Files in the directory that are not ours, left alone.
    pub(crate) foreign_files: u64,
    /// Numbers missing between two of our segments.
    pub(crate) missing_segments: u64,
    /// Spent segments whose removal failed: no longer counted in the disk
    /// bytes, but still on the disk (and read again at the next open).
    pub(crate) unremoved_segments: u64,
}

/// One segment file still holding records to take (or being appended to),
/// or, while held, one whose records are all taken and which a reopen
/// may have to read again.
#[derive(Debug)]
struct Segment {
    number: u64,
    path: PathBuf,
    /// The end of its last whole record: nothing after it is read.
    end: u64,
    /// Its bytes on the disk (counted in the log's disk bytes).
    size: u64,
    /// Records in it not yet taken.
    records: u64,
}

/// Where a log opened again after a kill starts reading, while a hold is
/// on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Committed {
    /// The log held no segment when the hold began: the start of its
    /// oldest segment, whichever that is by then.
    Start,
    /// This offset in the segment with this number.
    At(u64, u64),
}

/// A failure the tests inject into the next append.
#[cfg(test)]
#[derive(Debug, Clone, Copy)]
pub(super) struct InjectedFailure {
    /// Bytes of the frame written before the write fails (`ENOSPC`).
    pub(super) written: usize,
    /// The truncation that undoes them fails too.
    pub(super) truncate_fails: bool,
}

/// An append-only log of records in segment files, taken in order. See
/// the module docs.
#[derive(Debug)]
pub(crate) struct SegmentLog {
    dir: PathBuf,
    config: LogConfig,
    /// Oldest first; the reader is in the first, the writer appends to
    /// the last one.
    segments: VecDeque<Segment>,
    /// Segments whose records are all taken, before the reader's, kept on
    /// the disk while held (oldest first; the committed position is in
    /// the first). Empty when not held.
    kept: VecDeque<Segment>,
    /// The committed position, while a hold is on.
    held: Option<Committed>,
    /// Appends to the last segment; `None` before the first append, after
    /// an open, and after a failure that left a torn tail (the next
    /// append starts a new segment).
    writer: Option<File>,
    /// Reads the first segment at `read_pos`.
    reader: Option<BufReader<File>>,
    /// Offset of the next record to take in the first segment.
    read_pos: u64,
    /// The cursor file, open once it was first written (rewritten in
    /// place), and what it holds.
    cursor: Option<(File, (u64, u64))>,
    next_number: u64,
    records: u64,
    disk_bytes: u64,
    counts: SpillCounts,
    /// The frame being appended, reused.
    frame: Vec<u8>,
    /// Appends since the writer's file was last synced.
    unsynced: bool,
    /// Files created or removed since the directory was last synced.
    dir_unsynced: bool,
    #[cfg(test)]
    pub(super) inject: Option<InjectedFailure>,
}

/// Reads the record at the reader's position, which is `pos`, in a segment
/// whose whole records end at or before `end`. `Ok(None)` when the record
/// is bad: cut short, longer than what is left, no known kind, or a wrong
/// CRC. With `keep`, the payload is returned; without, it is only checked
/// (through `scratch`, so an open needs no more memory than a take).
fn read_record(
    reader: &mut BufReader<File>,
    pos: u64,
    end: u64,
    keep: bool,
    scratch: &mut [u8],
) -> io::Result<Option<(Meta, Vec<u8>, u64)>> {
    if end.saturating_sub(pos) < RECORD_HEADER {
        return Ok(None);
    }
    let mut header = [0; RECORD_HEADER as usize];
    match reader.read_exact(&mut header) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let header = format::decode_record_header(&header);
    let len = u64::from(header.len);
    if len > end - pos - RECORD_HEADER {
        return Ok(None);
    }
    let Some(meta) = header.meta() else {
        return Ok(None);
    };
    let mut hasher = header.hasher();
    let mut payload = Vec::new();
    let read = if keep {
        payload.resize(header.len as usize, 0);
        reader
            .read_exact(&mut payload)
            .map(|()| hasher.update(&payload))
    } else {
        let mut left = header.len as usize;
        let mut result = Ok(());
        while left > 0 {
            let n = left.min(scratch.len());
            if let Err(e) = reader.read_exact(&mut scratch[..n]) {
                result = Err(e);
                break;
            }
            hasher.update(&scratch[..n]);
            left -= n;
        }
        result
    };
    match read {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    if hasher.finalize() != header.crc {
        return Ok(None);
    }
    Ok(Some((meta, payload, RECORD_HEADER + len)))
}

/// What the scan of one of our segments found.
struct Scan {
    /// The end of its last whole record.
    end: u64,
    /// Its whole records.
    records: u64,
    /// A bad record ended it before the end of the file.
    corrupt: bool,
    /// How many records precede `cursor`, when `cursor` is the offset of
    /// one of its records (or its end).
    before_cursor: Option<u64>,
}

fn scan_segment(
    file: File,
    size: u64,
    cursor: Option<u64>,
    scratch: &mut [u8],
) -> io::Result<Scan> {
    let mut reader = BufReader::with_capacity(READ_CHUNK, file);
    reader.seek(SeekFrom::Start(SEGMENT_HEADER))?;
    let mut pos = SEGMENT_HEADER;
    let mut records = 0;
    let mut before_cursor = None;
    loop {
        if cursor == Some(pos) {
            before_cursor = Some(records);
        }
        if pos == size {
            return Ok(Scan {
                end: pos,
                records,
                corrupt: false,
                before_cursor,
            });
        }
        match read_record(&mut reader, pos, size, false, scratch)? {
            Some((_, _, frame)) => {
                pos += frame;
                records += 1;
            }
            None => {
                return Ok(Scan {
                    end: pos,
                    records,
                    corrupt: true,
                    before_cursor,
                })
            }
        }
    }
}

impl SegmentLog {
    /// Opens the log in `dir`, creating the directory if needed, and scans
    /// what an earlier log left there (see the module docs for what damage
    /// is skipped and counted). Appends go to a new segment.
    ///
    /// # Errors
    ///
    /// [`SpillError::LimitTooSmall`] for a configuration that cannot hold
    /// a record; [`SpillError::Io`] when the directory cannot be created
    /// or listed, or a segment cannot be read (damage is no error).
    pub(crate) fn open(
        dir: impl Into<PathBuf>,
        config: LogConfig,
    ) -> Result<SegmentLog, SpillError> {
        let dir = dir.into();
        let min = SEGMENT_HEADER + RECORD_HEADER;
        for (limit, value) in [
            (SpillLimit::SegmentBytes, config.segment_bytes),
            (SpillLimit::MaxDiskBytes, config.max_disk_bytes),
        ] {
            if value < min {
                return Err(SpillError::LimitTooSmall { limit, value, min });
            }
        }
        fs::create_dir_all(&dir).map_err(io_error(SpillOp::CreateDir, &dir))?;

        let mut counts = SpillCounts::default();
        let mut numbers = Vec::new();
        let mut cursor = None;
        for entry in fs::read_dir(&dir).map_err(io_error(SpillOp::ReadDir, &dir))? {
            let entry = entry.map_err(io_error(SpillOp::ReadDir, &dir))?;
            let is_file = entry.file_type().map(|t| t.is_file()).unwrap_or(false);
            let name = entry.file_name();
            match name.to_str() {
                Some(CURSOR_FILE) if is_file => {
                    let mut bytes = Vec::with_capacity(CURSOR_LEN);
                    let path = entry.path();
                    File::open(&path)
                        .and_then(|f| f.take(CURSOR_LEN as u64 + 1).read_to_end(&mut bytes))
                        .map_err(io_error(SpillOp::Read, &path))?;
                    cursor = format::decode_cursor(&bytes);
                }
                // The durable spill's lock (held by whoever opened us).
                Some(LOCK_FILE) if is_file => {}
                Some(name) if is_file => match format::parse_segment_name(name) {
                    Some(number) => numbers.push(number),
                    None => counts.foreign_files += 1,
                },
                _ => counts.foreign_files += 1,
            }
        }
        format::order_across_wrap(&mut numbers);

        let mut log = SegmentLog {
            dir,
            config,
            segments: VecDeque::new(),
            kept: VecDeque::new(),
            held: None,
            writer: None,
            reader: None,
            read_pos: SEGMENT_HEADER,
            cursor: None,
            next_number: 0,
            records: 0,
            disk_bytes: 0,
            counts,
            frame: Vec::new(),
            unsynced: false,
            dir_unsynced: false,
            #[cfg(test)]
            inject: None,
        };
        let mut scratch = vec![0; READ_CHUNK];
        // Our segments in order, those removed here included, for the gaps.
        let mut ours: Vec<u64> = Vec::new();
        for number in numbers {
            let path = log.dir.join(format::segment_name(number));
            let mut file = File::open(&path).map_err(io_error(SpillOp::Open, &path))?;
            let size = file
                .metadata()
                .map_err(io_error(SpillOp::Read, &path))?
                .len();
            let mut header = Vec::with_capacity(SEGMENT_HEADER as usize);
            (&mut file)
                .take(SEGMENT_HEADER)
                .read_to_end(&mut header)
                .map_err(io_error(SpillOp::Read, &path))?;
            match format::check_header(&header, number) {
                Header::Foreign => {
                    log.counts.foreign_files += 1;
                    continue;
                }
                Header::TornAtCreation => {
                    ours.push(number);
                    log.counts.skipped_bytes += size;
                    log.remove(&path)?;
                    continue;
                }
                Header::Ours => ours.push(number),
            }
            // The cursor counts only in the oldest segment: it names the
            // segment the reader was in, and every older one was removed.
            let first = log.segments.is_empty() && ours.len() == 1;
            let cursor_here = cursor
                .filter(|&(n, _)| first && n == number)
                .map(|(_, o)| o);
            let scan = scan_segment(file, size, cursor_here, &mut scratch)
                .map_err(io_error(SpillOp::Read, &path))?;
            if scan.corrupt {
                log.counts.corrupt_records += 1;
                log.counts.skipped_bytes += size - scan.end;
            }
            let taken = match (cursor_here, scan.before_cursor) {
                (Some(offset), Some(taken)) => {
                    log.read_pos = offset;
                    taken
                }
                _ => 0,
            };
            if scan.records == taken {
                // Nothing left to take in it.
                if log.segments.is_empty() {
                    log.read_pos = SEGMENT_HEADER;
                }
                log.remove(&path)?;
                continue;
            }
            log.records += scan.records - taken;
            log.disk_bytes += size;
            log.segments.push_back(Segment {
                number,
                path,
                end: scan.end,
                size,
                records: scan.records - taken,
            });
        }
        for pair in ours.windows(2) {
            log.counts.missing_segments += pair[1].wrapping_sub(pair[0]).wrapping_sub(1);
        }
        log.next_number = match ours.last() {
            Some(&last) => last.wrapping_add(1),
            None => log.config.first_segment,
        };
        Ok(log)
    }

    /// Records appended and not yet taken.
    pub(crate) fn len(&self) -> u64 {
        self.records
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// Bytes the log's segment files take on the disk now (a partly taken
    /// segment counts whole until it is removed, and so do the spent
    /// segments a hold keeps).
    pub(crate) fn disk_bytes(&self) -> u64 {
        self.disk_bytes
    }

    /// Segment files the log holds now (those a hold keeps included).
    #[cfg(test)]
    pub(crate) fn segment_count(&self) -> usize {
        self.kept.len() + self.segments.len()
    }

    /// Damage found since the log was opened.
    pub(crate) fn counts(&self) -> SpillCounts {
        self.counts
    }

    /// The largest payload an append accepts: what fits in the disk
    /// budget after the headers (and in a `u32`). A record larger than
    /// [`LogConfig::segment_bytes`] gets a segment of its own, so every
    /// message a connection accepts can spill unless the budget is
    /// smaller than the message.
    pub(crate) fn max_record(&self) -> usize {
        let room = self.config.max_disk_bytes - SEGMENT_HEADER - RECORD_HEADER;
        usize::try_from(room.min(u64::from(u32::MAX))).unwrap_or(usize::MAX)
    }

    /// Appends one record at the end of the log; see
    /// [`append_batch`](Self::append_batch).
    ///
    /// # Errors
    ///
    /// As for `append_batch`: the record is not in the log.
    #[cfg(test)]
    pub(crate) fn append(
        &mut self,
        meta: impl Into<Meta>,
        payload: &[u8],
    ) -> Result<(), SpillError> {
        match self.append_batch(std::iter::once((meta.into(), payload))) {
            (_, Some(e)) => Err(e),
            (_, None) => Ok(()),
        }
    }

    /// Appends records in order, starting a new segment first whenever one
    /// would take the current one past [`LogConfig::segment_bytes`].
    /// Records bound for one segment are encoded together and written
    /// with one `write` per MiB: the kernel's write path costs far more per
    /// call than per byte, so one write per record ran at a fifth of the
    /// disk's speed (`floodgate-bench --bin spill`, row e).
    ///
    /// Returns how many records were appended, and the error that stopped
    /// the batch, if one did (the records after it were not tried):
    /// [`SpillError::TooLarge`] for a payload over
    /// [`max_record`](Self::max_record), [`SpillError::DiskFull`] when the
    /// record would take the log past its disk budget (neither touches the
    /// disk), [`SpillError::Io`] when a write or a new segment fails. The
    /// log is consistent after each: the records counted are in it, the
    /// others are not (a failed write is truncated away whole, or its
    /// segment closed at its last whole record).
    pub(crate) fn append_batch<'a>(
        &mut self,
        records: impl IntoIterator<Item = (Meta, &'a [u8])>,
    ) -> (usize, Option<SpillError>) {
        let mut appended = 0;
        let mut pending = Pending::default();
        self.frame.clear();
        for (meta, payload) in records {
            let max = self.max_record();
            if payload.len() > max {
                let error = SpillError::TooLarge {
                    len: payload.len(),
                    max,
                };
                return self.end_batch(appended, &mut pending, Some(error));
            }
            let frame_len = RECORD_HEADER + payload.len() as u64;
            let roll = match (&self.writer, self.segments.back()) {
                // An empty segment takes any record, however large.
                (Some(_), Some(last)) => {
                    let size = last.size + pending.bytes;
                    size > SEGMENT_HEADER && size + frame_len > self.config.segment_bytes
                }
                _ => true,
            };
            let needed = frame_len + if roll { SEGMENT_HEADER } else { 0 };
            if self.disk_bytes + pending.bytes + needed > self.config.max_disk_bytes {
                let error = SpillError::DiskFull {
                    used: self.disk_bytes + pending.bytes,
                    max: self.config.max_disk_bytes,
                };
                return self.end_batch(appended, &mut pending, Some(error));
            }
            if roll {
                match self.flush(&mut pending) {
                    (n, None) => appended += n,
                    (n, Some(e)) => return (appended + n, Some(e)),
                }
                if let Err(e) = self.roll() {
                    return (appended, Some(e));
                }
            }
            format::encode_record(meta, payload, &mut self.frame);
            pending.records += 1;
            pending.bytes += frame_len;
            if self.frame.len() >= WRITE_CHUNK {
                match self.flush(&mut pending) {
                    (n, None) => appended += n,
                    (n, Some(e)) => return (appended + n, Some(e)),
                }
            }
        }
        self.end_batch(appended, &mut pending, None)
    }

    /// Writes what is pending, then reports the batch.
    fn end_batch(
        &mut self,
        appended: usize,
        pending: &mut Pending,
        error: Option<SpillError>,
    ) -> (usize, Option<SpillError>) {
        match self.flush(pending) {
            (n, None) => (appended + n, error),
            (n, Some(e)) => (appended + n, Some(e)),
        }
    }

    /// Writes the records encoded in `self.frame` to the last segment and
    /// counts them; on failure none of them is in the log.
    /// Writes the records encoded in `self.frame` to the last segment and
    /// counts them. On failure, the records counted are those still whole
    /// on the disk (none, unless the torn write could not be truncated
    /// away: then its whole leading records stay, and are counted, so that
    /// the directory read again holds nothing the log did not report).
    fn flush(&mut self, pending: &mut Pending) -> (usize, Option<SpillError>) {
        let Pending { records, bytes } = std::mem::take(pending);
        if records == 0 {
            return (0, None);
        }
        let written = self.write_frame();
        self.frame.clear();
        if let Err((kept, e)) = written {
            return (kept, Some(e));
        }
        let last = self.segments.back_mut().expect("a segment after a roll");
        last.size += bytes;
        last.end += bytes;
        last.records += records as u64;
        self.records += records as u64;
        self.disk_bytes += bytes;
        self.unsynced = true;
        (records, None)
    }

    /// Writes `self.frame` at the end of the last segment; on failure,
    /// truncates the partial write away, or, if that fails too, closes the
    /// segment after the whole records the partial write holds (counted
    /// here, returned with the error) and before its torn tail (skipped
    /// and counted when the directory is opened again).
    fn write_frame(&mut self) -> Result<(), (usize, SpillError)> {
        let file = self.writer.as_mut().expect("a writer after a roll");
        let last = self.segments.back_mut().expect("a segment after a roll");
        #[cfg(test)]
        let (result, truncate_fails) = match self.inject.take() {
            Some(injected) => {
                // A torn write: never the whole frame.
                let written = injected.written.min(self.frame.len() - 1);
                let result = file.write_all(&self.frame[..written]).and_then(|()| {
                    Err(io::Error::new(
                        io::ErrorKind::StorageFull,
                        "injected: no space left on device",
                    ))
                });
                (result, injected.truncate_fails)
            }
            None => (file.write_all(&self.frame), false),
        };
        #[cfg(not(test))]
        let (result, truncate_fails) = (file.write_all(&self.frame), false);
        let Err(source) = result else {
            return Ok(());
        };
        // The file is opened to append, so after truncating the next write
        // goes where the torn frame began.
        let truncated = if truncate_fails {
            Err(io::Error::other("injected: truncate failed"))
        } else {
            file.set_len(last.size)
        };
        let mut kept = 0;
        if truncated.is_err() {
            let on_disk = file
                .metadata()
                .map(|m| m.len())
                .unwrap_or(last.size + self.frame.len() as u64);
            let written = on_disk.saturating_sub(last.size);
            let (records, bytes) = whole_frames(&self.frame, written);
            kept = records;
            last.end += bytes;
            last.records += records as u64;
            self.records += records as u64;
            self.disk_bytes += written;
            last.size = on_disk.max(last.size);
            self.unsynced = true;
            self.writer = None;
        }
        Err((
            kept,
            SpillError::Io {
                op: SpillOp::Write,
                path: last.path.clone(),
                source,
            },
        ))
    }

    /// Starts a new segment for appends (syncing the one it replaces when
    /// the log is durable).
    fn roll(&mut self) -> Result<(), SpillError> {
        if let Some(file) = self.writer.take() {
            if self.config.fsync != Fsync::Never && self.unsynced {
                let path = &self.segments.back().expect("a writer has a segment").path;
                file.sync_data().map_err(io_error(SpillOp::Sync, path))?;
            }
            self.unsynced = false;
        }
        let mut skips = 0;
        let (number, path, mut file) = loop {
            let number = self.next_number;
            self.next_number = number.wrapping_add(1);
            let path = self.dir.join(format::segment_name(number));
            match OpenOptions::new().append(true).create_new(true).open(&path) {
                Ok(file) => break (number, path, file),
                // A file that is not ours holds the name: leave it alone.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && skips < MAX_NAME_SKIPS => {
                    skips += 1;
                }
                Err(e) => return Err(io_error(SpillOp::Create, &path)(e)),
            }
        };
        self.dir_unsynced = true;
        if let Err(e) = file.write_all(&format::segment_header(number)) {
            // Removed now, or at the next open as torn at creation.
            let _ = fs::remove_file(&path);
            return Err(io_error(SpillOp::Write, &path)(e));
        }
        self.segments.push_back(Segment {
            number,
            path,
            end: SEGMENT_HEADER,
            size: SEGMENT_HEADER,
            records: 0,
        });
        self.disk_bytes += SEGMENT_HEADER;
        self.writer = Some(file);
        self.retire_spent();
        Ok(())
    }

    /// Takes the oldest record, or `None` when the log is empty. A bad
    /// record (the file changed under the log) ends its segment, counted
    /// as on open, and the next segment is read.
    ///
    /// # Errors
    ///
    /// [`SpillError::Io`] when a segment cannot be read; the record stays
    /// in the log and the next call tries it again.
    pub(crate) fn take(&mut self) -> Result<Option<Record>, SpillError> {
        loop {
            self.retire_spent();
            let Some(first) = self.segments.front() else {
                return Ok(None);
            };
            if first.records == 0 {
                return Ok(None);
            }
            let reader = match &mut self.reader {
                Some(reader) => reader,
                None => {
                    let mut file =
                        File::open(&first.path).map_err(io_error(SpillOp::Open, &first.path))?;
                    file.seek(SeekFrom::Start(self.read_pos))
                        .map_err(io_error(SpillOp::Read, &first.path))?;
                    self.reader
                        .insert(BufReader::with_capacity(READ_CHUNK, file))
                }
            };
            match read_record(reader, self.read_pos, first.end, true, &mut []) {
                Ok(Some((meta, payload, frame))) => {
                    self.read_pos += frame;
                    self.segments[0].records -= 1;
                    self.records -= 1;
                    if self.records == 0 && self.held.is_none() {
                        // Drained: the segment being appended to goes too
                        // (the next append starts a new one), so an empty
                        // spill holds no disk space. While held its file
                        // stays anyway, so appends go on in it (and
                        // `sync` still reaches it); `commit` lets it go.
                        self.close_writer();
                    }
                    self.retire_spent();
                    return Ok(Some(Record {
                        kind: meta.kind,
                        priority: meta.priority,
                        stamp: meta.stamp,
                        payload: Bytes::from(payload),
                    }));
                }
                Ok(None) => {
                    let first = &mut self.segments[0];
                    self.counts.corrupt_records += 1;
                    self.counts.skipped_bytes += first.end - self.read_pos;
                    self.records -= first.records;
                    first.records = 0;
                    first.end = self.read_pos;
                    if self.segments.len() == 1 {
                        // Appends must not go behind the damage.
                        self.close_writer();
                    }
                }
                Err(e) => {
                    self.reader = None;
                    return Err(io_error(SpillOp::Read, &self.segments[0].path)(e));
                }
            }
        }
    }

    /// Gives up on the rest of the oldest segment (after reading it failed
    /// and failed again): its records are skipped, counted as one corrupt
    /// record and their bytes, and the next segment is read. Returns how
    /// many records were skipped. Without it a segment the disk can no
    /// longer read would stop every later record for ever.
    pub(crate) fn abandon_oldest(&mut self) -> u64 {
        let Some(first) = self.segments.front_mut() else {
            return 0;
        };
        let lost = first.records;
        if lost > 0 {
            self.counts.corrupt_records += 1;
            self.counts.skipped_bytes += first.end - self.read_pos;
            self.records -= lost;
            first.records = 0;
            first.end = self.read_pos;
        }
        if self.segments.len() == 1 {
            self.close_writer();
        }
        self.reader = None;
        self.retire_spent();
        lost
    }

    /// Moves the reader past the oldest segments while every record in
    /// them was taken and appends have moved on, and removes them, unless
    /// a hold keeps them.
    fn retire_spent(&mut self) {
        while let Some(first) = self.segments.front() {
            let appending = self.writer.is_some() && self.segments.len() == 1;
            if first.records > 0 || appending {
                break;
            }
            let first = self.segments.pop_front().expect("checked");
            self.reader = None;
            self.read_pos = SEGMENT_HEADER;
            self.kept.push_back(first);
        }
        if self.held.is_some() {
            return;
        }
        // Newest first: a process killed part-way leaves the oldest, which
        // the cursor names, so a reopen still starts where it says.
        while let Some(spent) = self.kept.pop_back() {
            self.disk_bytes -= spent.size;
            match fs::remove_file(&spent.path) {
                Ok(()) => self.dir_unsynced = true,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(_) => self.counts.unremoved_segments += 1,
            }
        }
    }

    /// Stops appending to the last segment (the next append starts a new
    /// one). While held, its records may have to be read again after a
    /// crash of the machine and [`sync`](Self::sync) no longer reaches its
    /// file, so a durable log syncs it now (best effort: a failure leaves
    /// it to the kernel's writeback, as for any unsynced append).
    fn close_writer(&mut self) {
        if let Some(file) = self.writer.take() {
            if self.held.is_some() && self.config.fsync != Fsync::Never && self.unsynced {
                let _ = file.sync_data();
            }
            self.unsynced = false;
        }
    }

    /// Starts a hold: from now on the committed position stays where the
    /// reader is, while takes go on. Until [`commit`](Self::commit), the
    /// cursor file names the committed position (after
    /// [`save_cursor`](Self::save_cursor), [`sync`](Self::sync) and on
    /// drop), and no segment from it on is removed, so a log opened again
    /// on the directory delivers every record taken since, in order, before
    /// the rest. The kept segments count in [`disk_bytes`](Self::disk_bytes)
    /// (and so against the disk budget) until the commit removes them.
    /// Called while held, it changes nothing (the earlier committed
    /// position stays: moving it would lose records not yet committed).
    pub(crate) fn hold(&mut self) {
        if self.held.is_none() {
            self.held = Some(match self.segments.front() {
                Some(first) => Committed::At(first.number, self.read_pos),
                None => Committed::Start,
            });
        }
    }

    /// Whether a hold is on (between [`hold`](Self::hold) and
    /// [`commit`](Self::commit)).
    pub(crate) fn is_held(&self) -> bool {
        self.held.is_some()
    }

    /// Ends the hold: the committed position moves to the reader's, the
    /// segments before it are removed now, and the cursor is written as
    /// by [`save_cursor`](Self::save_cursor) (not synced). Without a hold,
    /// it only writes the cursor. A later [`hold`](Self::hold) starts a
    /// new one.
    ///
    /// A process killed inside `commit` may deliver again the records it
    /// was committing (the kept files are removed newest first, before the
    /// cursor moves), and, if killed after the last removal and before
    /// the cursor's write, the records taken earlier from the reader's
    /// segment: at most one segment's records.
    ///
    /// # Errors
    ///
    /// [`SpillError::Io`] when the cursor file cannot be written; the
    /// hold has ended all the same (a later `save_cursor` writes it).
    pub(crate) fn commit(&mut self) -> Result<(), SpillError> {
        if self.held.take().is_some() && self.records == 0 {
            // Drained while held: the segment appended to goes now, as it
            // would have at the take that drained the log.
            self.close_writer();
        }
        self.retire_spent();
        self.write_cursor(false)
    }

    fn remove(&mut self, path: &Path) -> Result<(), SpillError> {
        fs::remove_file(path).map_err(io_error(SpillOp::Remove, path))?;
        self.dir_unsynced = true;
        Ok(())
    }

    /// Puts every record appended so far on the disk (and the directory's
    /// new and removed files), and writes the read cursor.
    ///
    /// # Errors
    ///
    /// [`SpillError::Io`] when a sync or the cursor's write fails; the
    /// records are still in the log.
    pub(crate) fn sync(&mut self) -> Result<(), SpillError> {
        if self.unsynced {
            if let (Some(file), Some(last)) = (&self.writer, self.segments.back()) {
                file.sync_data()
                    .map_err(io_error(SpillOp::Sync, &last.path))?;
            }
            self.unsynced = false;
        }
        self.write_cursor(true)?;
        if self.dir_unsynced {
            #[cfg(unix)]
            File::open(&self.dir)
                .and_then(|dir| dir.sync_all())
                .map_err(io_error(SpillOp::Sync, &self.dir))?;
            self.dir_unsynced = false;
        }
        Ok(())
    }

    /// Writes where the reader is (while held: the committed position),
    /// without syncing: after a take, so that a process killed later
    /// resumes after the records it delivered (the page cache outlives the
    /// process; only a crash of the machine can lose the write, and then
    /// at most what was taken since the last [`sync`](Self::sync) comes
    /// again).
    ///
    /// # Errors
    ///
    /// [`SpillError::Io`] when the cursor file cannot be written.
    pub(crate) fn save_cursor(&mut self) -> Result<(), SpillError> {
        self.write_cursor(false)
    }

    /// Writes where the reader is, or while held the committed position
    /// (or removes the cursor when the log holds no segment). The 28
    /// bytes are rewritten in place, one `pwrite` that a killed process
    /// cannot tear; a write torn by a power cut fails the cursor's CRC and
    /// is ignored at the next open (the oldest segment is then read from
    /// its start).
    fn write_cursor(&mut self, sync: bool) -> Result<(), SpillError> {
        let path = self.dir.join(CURSOR_FILE);
        let oldest = self.kept.front().or(self.segments.front());
        let at = match (self.held, oldest) {
            (_, None) => None,
            (None, Some(_)) => self.segments.front().map(|s| (s.number, self.read_pos)),
            (Some(Committed::At(number, offset)), Some(_)) => Some((number, offset)),
            (Some(Committed::Start), Some(oldest)) => Some((oldest.number, SEGMENT_HEADER)),
        };
        let Some(at) = at else {
            if self.cursor.take().is_some() || path.exists() {
                match fs::remove_file(&path) {
                    Ok(()) => self.dir_unsynced = true,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_error(SpillOp::Remove, &path)(e)),
                }
            }
            return Ok(());
        };
        if self
            .cursor
            .as_ref()
            .is_some_and(|(_, written)| *written == at)
            && !sync
        {
            return Ok(());
        }
        if self.cursor.is_none() {
            let file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(io_error(SpillOp::Create, &path))?;
            self.cursor = Some((file, (u64::MAX, u64::MAX)));
            self.dir_unsynced = true;
        }
        let (file, written) = self.cursor.as_mut().expect("opened above");
        let bytes = format::encode_cursor(at.0, at.1);
        write_at_start(file, &bytes).map_err(io_error(SpillOp::Write, &path))?;
        *written = at;
        if sync {
            file.sync_data().map_err(io_error(SpillOp::Sync, &path))?;
        }
        Ok(())
    }
}

/// Writes `bytes` at offset 0 of `file` in one call where the system has
/// one (`pwrite`).
fn write_at_start(file: &mut File, bytes: &[u8]) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileExt;
        file.write_all_at(bytes, 0)
    }
    #[cfg(not(unix))]
    {
        file.seek(SeekFrom::Start(0))?;
        file.write_all(bytes)
    }
}

impl Drop for SegmentLog {
    /// A clean stop: the cursor is written so that a log opened again on
    /// the directory delivers nothing twice (synced when durable), except,
    /// while held, the records taken since the hold: those come again.
    fn drop(&mut self) {
        let _ = if self.config.fsync == Fsync::Never {
            self.write_cursor(false)
        } else {
            self.sync()
        };
    }
}
