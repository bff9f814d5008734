//! Read chunks the reader reuses once the consumer is done with them.
//!
//! A decoded message is a slice of the chunk it was read into (no copy),
//! so while the consumer holds any message of a chunk the reader cannot
//! write into that chunk again and needs another one. Allocating a fresh
//! chunk per read costs page faults (the allocator gives freed chunks of
//! this size back to the kernel) and cold caches: on a 2-core machine that
//! halved the throughput of 64 KiB messages against the direct path.
//! [`ChunkPool`] keeps the reader's last chunks and hands back the first
//! whose messages have all been dropped, which `BytesMut::try_reclaim`
//! tells without allocating.

use bytes::BytesMut;
use std::collections::VecDeque;

/// How many read chunks are kept for reuse. Each is about the read chunk
/// size, so after a burst an idle connection keeps up to this many chunks
/// (2 MiB at the default 256 KiB).
pub(crate) const SPARE_CHUNKS: usize = 8;

/// The reader's spare read chunks; see the [module docs](self).
#[derive(Debug)]
pub(crate) struct ChunkPool {
    chunk_size: usize,
    spare: VecDeque<BytesMut>,
    /// Whether the current read buffer's allocation may join `spare`: it
    /// was allocated here with a size close to the chunk size (a chunk
    /// grown for one huge frame is not kept).
    current_poolable: bool,
}

impl ChunkPool {
    pub(crate) fn new(chunk_size: usize) -> ChunkPool {
        ChunkPool {
            chunk_size,
            spare: VecDeque::new(),
            current_poolable: false,
        }
    }

    /// Makes room for more bytes in `buf`. When the current chunk still
    /// has `at_least` bytes free, the read goes on into it: a peer that
    /// trickles (or TLS, which hands over one 16 KiB record per read) must
    /// not cost one chunk per read while the consumer holds a message of
    /// each, which made the memory of a full buffer of small messages tens
    /// of times their size. Otherwise room for `additional` bytes is made:
    /// in place when no message of the chunk is alive any more, else in a
    /// spare chunk that is free again, else in a new chunk. The bytes
    /// already in `buf` (a frame not yet complete) move with it.
    pub(crate) fn make_room(&mut self, buf: &mut BytesMut, at_least: usize, additional: usize) {
        if buf.capacity() - buf.len() >= at_least.max(1) {
            return;
        }
        if buf.try_reclaim(additional) {
            return;
        }
        let needed = buf.len() + additional;
        let free = self
            .spare
            .iter_mut()
            .position(|chunk| chunk.try_reclaim(needed));
        let (mut next, poolable) = match free.and_then(|i| self.spare.remove(i)) {
            Some(chunk) => (chunk, true),
            None => {
                let size = needed.max(self.chunk_size);
                (BytesMut::with_capacity(size), size <= 2 * self.chunk_size)
            }
        };
        next.extend_from_slice(buf);
        let mut old = std::mem::replace(buf, next);
        if std::mem::replace(&mut self.current_poolable, poolable) {
            old.clear();
            if self.spare.len() == SPARE_CHUNKS {
                self.spare.pop_front();
            }
            self.spare.push_back(old);
        }
    }

    #[cfg(test)]
    fn spare_count(&self) -> usize {
        self.spare.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHUNK: usize = 4096;

    /// Fills `buf` with `n` bytes, as a read would, and cuts them off as
    /// one message.
    fn read_message(pool: &mut ChunkPool, buf: &mut BytesMut, n: usize) -> bytes::Bytes {
        pool.make_room(buf, n, n);
        let start = buf.len();
        buf.resize(start + n, 7);
        buf.split_to(n).freeze()
    }

    fn base(b: &[u8]) -> *const u8 {
        b.as_ptr()
    }

    #[test]
    fn a_chunk_is_reused_once_its_messages_are_dropped() {
        let mut pool = ChunkPool::new(CHUNK);
        let mut buf = BytesMut::new();
        let first = read_message(&mut pool, &mut buf, CHUNK);
        let first_start = base(&first);
        // The chunk is full and its message alive: the next read needs a
        // new chunk, and the first one waits in the pool.
        let second = read_message(&mut pool, &mut buf, CHUNK);
        assert_ne!(base(&second), first_start);
        assert_eq!(pool.spare_count(), 1);
        // Still alive: a third chunk.
        let third = read_message(&mut pool, &mut buf, CHUNK);
        assert_ne!(base(&third), first_start);
        assert_eq!(pool.spare_count(), 2);
        drop(first);
        // Now the first chunk is free and is read into again: it leaves
        // the pool (the third takes its place) and no chunk is allocated.
        let fourth = read_message(&mut pool, &mut buf, CHUNK);
        assert_eq!(base(&fourth), first_start);
        assert_eq!(pool.spare_count(), 2);
        drop((second, third, fourth));
    }

    #[test]
    fn small_reads_fill_the_current_chunk_before_taking_another() {
        let mut pool = ChunkPool::new(CHUNK);
        let mut buf = BytesMut::new();
        pool.make_room(&mut buf, 100, CHUNK);
        let chunk_start = buf.as_ptr();
        let mut held = Vec::new();
        // Sixteen 100-byte reads while every message stays alive: all in
        // the one chunk, back to back.
        for i in 0..16 {
            pool.make_room(&mut buf, 100, CHUNK);
            let start = buf.len();
            buf.resize(start + 100, i);
            let message = buf.split_to(100).freeze();
            assert_eq!(message.as_ptr(), chunk_start.wrapping_add(i as usize * 100));
            held.push(message);
        }
        assert_eq!(pool.spare_count(), 0);
        // When less than asked is left, the next read takes a new chunk.
        pool.make_room(&mut buf, CHUNK, CHUNK);
        assert!(buf.capacity() >= CHUNK);
        assert_ne!(buf.as_ptr(), chunk_start.wrapping_add(1600));
    }

    #[test]
    fn a_partial_frame_moves_with_the_chunk() {
        let mut pool = ChunkPool::new(CHUNK);
        let mut buf = BytesMut::new();
        let held = read_message(&mut pool, &mut buf, CHUNK - 10);
        buf.extend_from_slice(b"0123456789"); // the start of the next frame
        pool.make_room(&mut buf, CHUNK, CHUNK);
        assert_eq!(&buf[..], b"0123456789");
        assert!(buf.capacity() >= 10 + CHUNK);
        assert_eq!(held.len(), CHUNK - 10);
    }

    #[test]
    fn the_pool_is_bounded_and_keeps_no_oversized_chunk() {
        let mut pool = ChunkPool::new(CHUNK);
        let mut buf = BytesMut::new();
        let mut held = Vec::new();
        for _ in 0..3 * SPARE_CHUNKS {
            held.push(read_message(&mut pool, &mut buf, CHUNK));
        }
        assert_eq!(pool.spare_count(), SPARE_CHUNKS);
        // A frame far larger than the chunk size gets a chunk of its own,
        // which is not kept once the reader moves on.
        let mut pool = ChunkPool::new(CHUNK);
        let mut buf = BytesMut::new();
        let huge = read_message(&mut pool, &mut buf, 10 * CHUNK);
        let _next = read_message(&mut pool, &mut buf, CHUNK);
        assert_eq!(pool.spare_count(), 0);
        drop((held, huge));
    }
}
