//! The compressor and decompressor of one connection.
//!
//! Backend: `flate2` over `zlib-rs` (pure Rust). Raw deflate with a chosen
//! window (`Compress::new_with_window_bits`) needs one of flate2's zlib
//! backends; `miniz_oxide`, flate2's default, always uses a 32 KiB window
//! and so cannot honour `client_max_window_bits`. zlib-rs is the zlib
//! backend that needs no C compiler and, by its authors' measurements and
//! flate2's recommendation, is as fast as zlib-ng, faster than C zlib.
//!
//! Both halves are made on first use: the buffered connection's reader
//! only inflates and its writer only compresses, and a zlib compressor is
//! about 256 KiB.

use super::PerMessageDeflate;
use crate::error::ProtocolError;
use crate::protocol::Role;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use std::fmt;

/// What a message's compressed data ends with before the sender strips
/// it (RFC 7692 §7.2.1), and what the receiver appends (§7.2.2).
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// The smallest output allocation when inflating; the first is about
/// three times the compressed size, later ones double.
const FIRST_STEP: usize = 256;

/// Scratch capacity kept between messages.
const SCRATCH_KEPT: usize = 256 << 10;

/// The per-connection codec state.
pub(crate) struct DeflateState {
    params: PerMessageDeflate,
    compress_bits: u8,
    decompress_bits: u8,
    reset_compressor: bool,
    reset_decompressor: bool,
    compressor: Option<Compress>,
    decompressor: Option<Decompress>,
    /// Compressed output of the frame being encoded.
    scratch: Vec<u8>,
    /// An outgoing fragmented message is being sent compressed.
    pub(crate) compressing: bool,
}

impl fmt::Debug for DeflateState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeflateState")
            .field("params", &self.params)
            .field("compressing", &self.compressing)
            .finish_non_exhaustive()
    }
}

/// Why inflating a message stopped.
#[derive(Debug)]
pub(crate) enum InflateError {
    /// The output would pass the budget; `produced` bytes were made.
    TooLarge { produced: usize },
    /// The compressed data is not valid deflate.
    Invalid,
}

impl DeflateState {
    pub(crate) fn new(params: PerMessageDeflate, role: Role) -> DeflateState {
        let (local_bits, remote_bits, local_reset, remote_reset) = match role {
            Role::Client => (
                params.client_max_window_bits,
                params.server_max_window_bits,
                params.client_no_context_takeover,
                params.server_no_context_takeover,
            ),
            Role::Server => (
                params.server_max_window_bits,
                params.client_max_window_bits,
                params.server_no_context_takeover,
                params.client_no_context_takeover,
            ),
        };
        DeflateState {
            // zlib has no 8-bit window for raw deflate; 9 bits never
            // reaches further back than 250 bytes (see the module docs of
            // `deflate`), so it is safe for a peer that keeps 256.
            compress_bits: local_bits.clamp(9, 15),
            decompress_bits: remote_bits.clamp(9, 15),
            reset_compressor: local_reset,
            reset_decompressor: remote_reset,
            params,
            compressor: None,
            decompressor: None,
            scratch: Vec::new(),
            compressing: false,
        }
    }

    pub(crate) fn params(&self) -> &PerMessageDeflate {
        &self.params
    }

    /// Whether a new outgoing message of `len` bytes is compressed.
    #[inline]
    pub(crate) fn wants(&self, len: usize) -> bool {
        len >= self.params.threshold
    }

    /// Compresses one frame's payload of an outgoing message; `fin`: the
    /// message ends with it. Returns the bytes to send.
    pub(crate) fn compress(&mut self, payload: &[u8], fin: bool) -> Result<&[u8], String> {
        let (bits, level) = (self.compress_bits, self.params.level);
        let compressor = self.compressor.get_or_insert_with(|| {
            Compress::new_with_window_bits(Compression::new(level), false, bits)
        });
        // The space a huge message needed is not kept for small ones.
        if self.scratch.capacity() > SCRATCH_KEPT && payload.len() < SCRATCH_KEPT {
            self.scratch = Vec::new();
        }
        let out = &mut self.scratch;
        out.clear();
        // Deflate adds at most 5 bytes per 16 KiB stored block, plus the
        // sync flush; start with that much room so one call usually does.
        out.reserve(payload.len() + payload.len() / 1024 + 64);
        if payload.is_empty() {
            // zlib refuses a second sync flush with no input in between
            // (Z_BUF_ERROR, no output), so an empty frame is written by
            // hand: nothing, or at the end of a message the one byte
            // 0x00, which with the receiver's 00 00 ff ff is an empty
            // stored block (RFC 7692 §7.2.3.6). The stream stays aligned.
            if fin {
                out.push(0x00);
                if self.reset_compressor {
                    compressor.reset();
                }
            }
            return Ok(&self.scratch);
        }
        let mut input = payload;
        loop {
            let before = compressor.total_in();
            compressor
                .compress_vec(input, out, FlushCompress::Sync)
                .map_err(|e| e.to_string())?;
            let used = (compressor.total_in() - before) as usize;
            input = &input[used..];
            // Flushed when all input is in and zlib left room unused.
            if input.is_empty() && out.len() < out.capacity() {
                break;
            }
            out.reserve(out.capacity().max(64));
        }
        if fin {
            if out.ends_with(&TAIL) {
                out.truncate(out.len() - TAIL.len());
            }
            if self.reset_compressor {
                compressor.reset();
            }
        }
        Ok(&self.scratch)
    }

    /// Inflates one frame's payload of an incoming compressed message;
    /// `fin`: the message ends with it. At most `budget` bytes may come
    /// out: output is made in steps and the first byte past the budget
    /// stops it.
    pub(crate) fn inflate(
        &mut self,
        payload: &[u8],
        fin: bool,
        budget: usize,
    ) -> Result<Vec<u8>, InflateError> {
        let bits = self.decompress_bits;
        let decompressor = self
            .decompressor
            .get_or_insert_with(|| Decompress::new_with_window_bits(false, bits));
        let mut out = Vec::new();
        let mut ended = feed(decompressor, payload, &mut out, budget)?;
        if fin && !ended {
            ended = feed(decompressor, &TAIL, &mut out, budget)?;
        }
        if ended || (fin && self.reset_decompressor) {
            // A final block (BFINAL) ends the deflate stream: the next
            // message starts a new one, whatever was negotiated.
            decompressor.reset(false);
        }
        // A message sits in the application's buffer as this allocation,
        // and the buffer counts its payload: spare room is given back.
        if out.capacity() - out.len() > out.len() / 8 + 64 {
            out.shrink_to_fit();
        }
        Ok(out)
    }
}

/// Feeds `input` to the decompressor, appending to `out` without letting
/// it pass `budget` bytes by more than one. Whether the stream ended.
fn feed(
    d: &mut Decompress,
    mut input: &[u8],
    out: &mut Vec<u8>,
    budget: usize,
) -> Result<bool, InflateError> {
    let ceiling = budget.saturating_add(1);
    loop {
        if out.len() == out.capacity() {
            if out.len() >= ceiling {
                return Err(InflateError::TooLarge {
                    produced: out.len(),
                });
            }
            let step = out
                .capacity()
                .max(input.len().saturating_mul(3))
                .max(FIRST_STEP)
                .min(ceiling - out.len());
            out.reserve_exact(step);
        }
        let (in_before, out_before) = (d.total_in(), d.total_out());
        let status = d
            .decompress_vec(input, out, FlushDecompress::Sync)
            .map_err(|_| InflateError::Invalid)?;
        if out.len() > budget {
            return Err(InflateError::TooLarge {
                produced: out.len(),
            });
        }
        let used = (d.total_in() - in_before) as usize;
        input = &input[used..];
        if status == Status::StreamEnd {
            return Ok(true);
        }
        let room_left = out.len() < out.capacity();
        if input.is_empty() && room_left {
            return Ok(false);
        }
        if used == 0 && d.total_out() == out_before && room_left {
            // No progress with input and room: the data cannot be decoded.
            return Err(InflateError::Invalid);
        }
    }
}

impl InflateError {
    /// The protocol error for a message whose inflated part before this
    /// frame was `so_far` bytes, under `max`.
    pub(crate) fn into_protocol(self, so_far: u64, max: Option<usize>) -> ProtocolError {
        match self {
            InflateError::TooLarge { produced } => ProtocolError::MessageTooLarge {
                len: so_far + produced as u64,
                max: max.unwrap_or(usize::MAX),
            },
            InflateError::Invalid => ProtocolError::InvalidCompressedData,
        }
    }
}
