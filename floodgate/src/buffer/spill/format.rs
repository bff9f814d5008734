//! The bytes of a spill directory: segment names, the segment header, the
//! record frame and the read cursor. Pure functions over byte slices, so
//! the log (`log.rs`) holds no format knowledge and the tests can forge
//! damaged files byte by byte.

/// The first eight bytes of every segment file.
pub(super) const MAGIC: [u8; 8] = *b"FGSPILL1";

/// The format version after the magic. A file with another version is
/// left alone as a file that is not ours (a newer floodgate wrote it).
pub(super) const VERSION: u32 = 1;

/// A segment's header: magic (8), version (u32 LE), the segment's own
/// number (u64 LE), so that a segment copied or renamed to another number
/// is not mistaken for the one its name says.
pub(super) const SEGMENT_HEADER: u64 = 8 + 4 + 8;

/// A record's frame before its payload: length of the payload (u32 LE),
/// CRC32 (u32 LE) of the rest of the header followed by the payload, kind
/// (u8), priority (u8), stamp (u64 LE: when the message was received, in
/// nanoseconds since the Unix epoch, so a resumed log still knows how long
/// each message waited).
pub(super) const RECORD_HEADER: u64 = 4 + 4 + 1 + 1 + 8;

/// The part of the record header the CRC covers (after length and CRC).
const META_LEN: usize = 1 + 1 + 8;

/// The read cursor's file: where the reader was when the log last took
/// records, rewritten in place after every take of a durable log, so that
/// a log resumed after a stop (even a killed process) delivers nothing
/// twice.
pub(super) const CURSOR_FILE: &str = "read.cursor";

/// The lock a durable spill holds (`flock`) on its directory, so that two
/// buffers never append to one log.
pub(crate) const LOCK_FILE: &str = "spill.lock";

const CURSOR_MAGIC: [u8; 8] = *b"FGCURSR1";

/// The cursor file: magic (8), segment number (u64 LE), offset in it
/// (u64 LE), CRC32 of the 24 bytes before it (u32 LE).
pub(super) const CURSOR_LEN: usize = 8 + 8 + 8 + 4;

/// What a record holds: the data message it came from was text or binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub(crate) enum Kind {
    /// A text message (its payload was valid UTF-8 when it was written).
    Text = 1,
    /// A binary message.
    Binary = 2,
}

/// Highest priority byte a record may carry (`Priority::CRITICAL`).
pub(super) const MAX_PRIORITY: u8 = 3;

/// What a record carries beside its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Meta {
    pub(crate) kind: Kind,
    /// The message's priority (0 to [`MAX_PRIORITY`]).
    pub(crate) priority: u8,
    /// When the message was received, in nanoseconds since the Unix epoch.
    pub(crate) stamp: u64,
}

impl From<Kind> for Meta {
    /// A `NORMAL` record stamped 0 (the tests' shorthand).
    fn from(kind: Kind) -> Meta {
        Meta {
            kind,
            priority: 1,
            stamp: 0,
        }
    }
}

impl Kind {
    /// The kind of a record's kind byte; 0 (a zero-filled tail) and every
    /// value not listed are no kind.
    pub(super) fn from_byte(byte: u8) -> Option<Kind> {
        match byte {
            1 => Some(Kind::Text),
            2 => Some(Kind::Binary),
            _ => None,
        }
    }
}

/// The file name of segment `number`: 20 decimal digits (every `u64`
/// fits) and `.seg`, so that names sort like numbers until the wrap.
pub(super) fn segment_name(number: u64) -> String {
    format!("{number:020}.seg")
}

/// The number in a segment file's name, if it is one.
pub(super) fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".seg")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The header of segment `number`.
pub(super) fn segment_header(number: u64) -> [u8; SEGMENT_HEADER as usize] {
    let mut header = [0; SEGMENT_HEADER as usize];
    header[..8].copy_from_slice(&MAGIC);
    header[8..12].copy_from_slice(&VERSION.to_le_bytes());
    header[12..].copy_from_slice(&number.to_le_bytes());
    header
}

/// What the first bytes of a file named like segment `number` say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Header {
    /// Our segment, in this format.
    Ours,
    /// Shorter than a header, and what is there is the start of ours: the
    /// segment was being created when the process stopped. It holds no
    /// record.
    TornAtCreation,
    /// Not ours, or not in a format this version reads: left alone.
    Foreign,
}

/// Checks `bytes`, the first [`SEGMENT_HEADER`] bytes of a file (fewer if
/// it is shorter), against the header of segment `number`.
pub(super) fn check_header(bytes: &[u8], number: u64) -> Header {
    let expected = segment_header(number);
    if bytes.len() < expected.len() {
        if expected.starts_with(bytes) {
            Header::TornAtCreation
        } else {
            Header::Foreign
        }
    } else if bytes[..expected.len()] == expected {
        Header::Ours
    } else {
        Header::Foreign
    }
}

fn encode_meta(meta: Meta) -> [u8; META_LEN] {
    let mut out = [0; META_LEN];
    out[0] = meta.kind as u8;
    out[1] = meta.priority;
    out[2..].copy_from_slice(&meta.stamp.to_le_bytes());
    out
}

/// Appends the frame of one record to `out`. The CRC32 covers kind,
/// priority and stamp, then the payload, so a flipped byte anywhere after
/// the length is caught (a flipped length shows as a record that runs past
/// its file or fails its CRC). The caller has checked that the payload's
/// length fits in a `u32`.
pub(super) fn encode_record(meta: Meta, payload: &[u8], out: &mut Vec<u8>) {
    let len = u32::try_from(payload.len()).expect("checked by the caller");
    let head = encode_meta(meta);
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&head);
    hasher.update(payload);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&hasher.finalize().to_le_bytes());
    out.extend_from_slice(&head);
    out.extend_from_slice(payload);
}

/// A record's frame before its payload, as read (not yet checked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct RecordHeader {
    pub(super) len: u32,
    pub(super) crc: u32,
    /// The bytes the CRC covers before the payload.
    pub(super) meta_bytes: [u8; META_LEN],
}

impl RecordHeader {
    /// The kind, priority and stamp, if the kind and priority bytes are
    /// ones this version writes (0, a zero-filled tail, is no kind).
    pub(super) fn meta(&self) -> Option<Meta> {
        let kind = Kind::from_byte(self.meta_bytes[0])?;
        let priority = self.meta_bytes[1];
        if priority > MAX_PRIORITY {
            return None;
        }
        let stamp = u64::from_le_bytes(self.meta_bytes[2..].try_into().expect("8 bytes"));
        Some(Meta {
            kind,
            priority,
            stamp,
        })
    }

    /// A CRC32 hasher fed with the header bytes it covers; the payload
    /// follows.
    pub(super) fn hasher(&self) -> crc32fast::Hasher {
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&self.meta_bytes);
        hasher
    }
}

pub(super) fn decode_record_header(bytes: &[u8; RECORD_HEADER as usize]) -> RecordHeader {
    RecordHeader {
        len: u32::from_le_bytes(bytes[0..4].try_into().expect("4 bytes")),
        crc: u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes")),
        meta_bytes: bytes[8..].try_into().expect("10 bytes"),
    }
}

/// The cursor file's bytes for the reader at `offset` in segment `number`.
pub(super) fn encode_cursor(number: u64, offset: u64) -> [u8; CURSOR_LEN] {
    let mut out = [0; CURSOR_LEN];
    out[..8].copy_from_slice(&CURSOR_MAGIC);
    out[8..16].copy_from_slice(&number.to_le_bytes());
    out[16..24].copy_from_slice(&offset.to_le_bytes());
    let crc = crc32fast::hash(&out[..24]);
    out[24..].copy_from_slice(&crc.to_le_bytes());
    out
}

/// The segment number and offset a cursor file holds, if it is whole.
pub(super) fn decode_cursor(bytes: &[u8]) -> Option<(u64, u64)> {
    if bytes.len() != CURSOR_LEN || bytes[..8] != CURSOR_MAGIC {
        return None;
    }
    let crc = u32::from_le_bytes(bytes[24..].try_into().ok()?);
    if crc32fast::hash(&bytes[..24]) != crc {
        return None;
    }
    let number = u64::from_le_bytes(bytes[8..16].try_into().ok()?);
    let offset = u64::from_le_bytes(bytes[16..24].try_into().ok()?);
    Some((number, offset))
}

/// Orders segment numbers oldest first across the wrap of `u64`: the
/// oldest is the one after the widest gap between neighbours (taken
/// cyclically). A live log spans far fewer than 2^63 numbers, so the
/// widest gap is the unused part of the circle.
pub(super) fn order_across_wrap(numbers: &mut [u64]) {
    numbers.sort_unstable();
    if numbers.len() < 2 {
        return;
    }
    let mut oldest = 0;
    // The gap from the last to the first, across the wrap.
    let mut widest = numbers[0].wrapping_sub(numbers[numbers.len() - 1]);
    for i in 1..numbers.len() {
        let gap = numbers[i] - numbers[i - 1];
        if gap > widest {
            widest = gap;
            oldest = i;
        }
    }
    numbers.rotate_left(oldest);
}
