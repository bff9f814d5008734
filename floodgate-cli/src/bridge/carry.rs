//! The message ids of the batch being published, kept beside a durable
//! spill, so that a bridge killed before the broker acknowledged the batch
//! publishes it again **with the same ids** when it starts on the same
//! directory, and a deduplicating broker (JetStream's `Nats-Msg-Id`) drops
//! what the dead process had already stored.
//!
//! Why it works: a lease of a durable spill holds the spill's read cursor
//! before its records until committed (`Lease::is_on_disk`), so the next
//! run's first messages are exactly that batch, in order. Why it is safe:
//! each id is kept with a hash of its message, and an id is reused only for
//! a message with the same hash, from the start of the batch on; at the
//! first mismatch (a damaged record skipped, another version of floodgate
//! hashing differently) the rest get new ids: a duplicate at worst, never a
//! new message dropped as one. The file is removed once the batch is
//! acknowledged and before the lease is committed, so a stale file can only
//! name messages that come again.
//!
//! The file, `floodgate-bridge.ids` in the spill directory (the spill counts
//! it as a file not its own and leaves it alone): `FGBIDS01`, the number of
//! entries (u64 LE), then per message its run id, sequence number and hash
//! (u64 LE each). Written to a temporary name and renamed over, so a
//! process killed while writing leaves the old file or the new one.

use floodgate::sink::{MessageId, RunId};
use floodgate::Message;
use std::collections::VecDeque;
use std::hash::{Hash, Hasher};
use std::io;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"FGBIDS01";
const FILE: &str = "floodgate-bridge.ids";

/// A message's identity for the check: its kind and bytes. Std's SipHash
/// with its fixed keys: the same in every process of one build (another
/// build may hash differently; then ids are not carried, see the module
/// docs).
pub fn hash_of(message: &Message) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    message.as_text().is_some().hash(&mut hasher);
    message.as_bytes().hash(&mut hasher);
    hasher.finish()
}

/// The ids kept for one durable spill directory.
#[derive(Debug)]
pub struct Carried {
    path: PathBuf,
    /// Ids the dead process gave the messages that come first now.
    pending: VecDeque<(MessageId, u64)>,
}

impl Carried {
    /// Reads what a previous run left in `dir` (nothing when it ended
    /// cleanly). A file that cannot be read is ignored (the batch then
    /// gets new ids: duplicates at worst).
    pub fn open(dir: &Path) -> Carried {
        let path = dir.join(FILE);
        let pending = match std::fs::read(&path) {
            Ok(bytes) => decode(&bytes).unwrap_or_else(|| {
                tracing::warn!(path = %path.display(), "bridge: a damaged ids file is ignored; the batch in flight when the last run stopped gets new ids");
                VecDeque::new()
            }),
            Err(_) => VecDeque::new(),
        };
        Carried { path, pending }
    }

    /// How many ids wait to be given again.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// The ids of `batch`: the kept ones, in order, while the messages
    /// match their hashes; then new ones from `run` and `next_seq`.
    pub fn ids_for<'a>(
        &mut self,
        batch: impl ExactSizeIterator<Item = &'a Message>,
        run: RunId,
        next_seq: &mut u64,
    ) -> Vec<(MessageId, u64)> {
        let mut ids = Vec::with_capacity(batch.len());
        for message in batch {
            let hash = hash_of(message);
            match self.pending.front() {
                Some(&(id, kept)) if kept == hash => {
                    self.pending.pop_front();
                    ids.push((id, hash));
                }
                _ => {
                    if !self.pending.is_empty() {
                        tracing::debug!(left = self.pending.len(), "bridge: a message differs from the one the last run published; new ids from here");
                        self.pending.clear();
                    }
                    ids.push((MessageId::new(run, *next_seq), hash));
                    *next_seq += 1;
                }
            }
        }
        ids
    }

    /// `ids` (a batch not published, given back) come first again.
    pub fn give_back(&mut self, ids: &[(MessageId, u64)]) {
        for id in ids.iter().rev() {
            self.pending.push_front(*id);
        }
    }

    /// Keeps `ids` on disk while their batch is being published.
    pub fn save(&self, ids: &[(MessageId, u64)]) -> io::Result<()> {
        let mut bytes = Vec::with_capacity(16 + ids.len() * 24);
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&(ids.len() as u64).to_le_bytes());
        for (id, hash) in ids {
            bytes.extend_from_slice(&id.run.to_le_bytes());
            bytes.extend_from_slice(&id.seq.to_le_bytes());
            bytes.extend_from_slice(&hash.to_le_bytes());
        }
        let tmp = self.path.with_extension("ids.tmp");
        std::fs::write(&tmp, &bytes)?;
        std::fs::rename(&tmp, &self.path)
    }

    /// The batch was acknowledged: nothing to carry.
    pub fn clear(&self) -> io::Result<()> {
        match std::fs::remove_file(&self.path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

fn decode(bytes: &[u8]) -> Option<VecDeque<(MessageId, u64)>> {
    let rest = bytes.strip_prefix(MAGIC)?;
    let (count, mut rest) = rest.split_at_checked(8)?;
    let count = u64::from_le_bytes(count.try_into().ok()?);
    if rest.len() as u64 != count.checked_mul(24)? {
        return None;
    }
    let mut out = VecDeque::with_capacity(count as usize);
    let word = |b: &[u8]| u64::from_le_bytes(b.try_into().expect("8 bytes"));
    while !rest.is_empty() {
        let (entry, tail) = rest.split_at(24);
        out.push_back((
            MessageId::new(RunId(word(&entry[..8])), word(&entry[8..16])),
            word(&entry[16..]),
        ));
        rest = tail;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(texts: &[&str]) -> Vec<Message> {
        texts.iter().map(|t| Message::text(*t)).collect()
    }

    #[test]
    fn a_killed_runs_batch_gets_its_ids_again_and_the_rest_new_ones() {
        let dir = tempfile::tempdir().unwrap();
        let (old_run, new_run) = (RunId(7), RunId(8));
        let batch = texts(&["a", "b", "c"]);
        let mut first = Carried::open(dir.path());
        assert_eq!(first.pending(), 0);
        let mut seq = 40;
        let ids = first.ids_for(batch.iter(), old_run, &mut seq);
        first.save(&ids).unwrap();
        // Killed before the acknowledgement: the next run reads them.
        let mut next = Carried::open(dir.path());
        assert_eq!(next.pending(), 3);
        let mut seq = 0;
        let more = texts(&["a", "b", "c", "d"]);
        let again = next.ids_for(more.iter(), new_run, &mut seq);
        let got: Vec<String> = again.iter().map(|(id, _)| id.to_string()).collect();
        let want: Vec<String> = [
            MessageId::new(old_run, 40),
            MessageId::new(old_run, 41),
            MessageId::new(old_run, 42),
            MessageId::new(new_run, 0),
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        assert_eq!(got, want);
        assert_eq!(seq, 1);
        // Acknowledged: nothing is carried into a third run.
        next.clear().unwrap();
        assert_eq!(Carried::open(dir.path()).pending(), 0);
    }

    #[test]
    fn a_message_that_differs_ends_the_carrying() {
        let dir = tempfile::tempdir().unwrap();
        let mut first = Carried::open(dir.path());
        let mut seq = 10;
        let ids = first.ids_for(texts(&["a", "b", "c"]).iter(), RunId(1), &mut seq);
        first.save(&ids).unwrap();
        let mut next = Carried::open(dir.path());
        let mut seq = 0;
        // "b" was lost (a damaged record skipped): "c" must not take b's id.
        let again = next.ids_for(texts(&["a", "c", "d"]).iter(), RunId(2), &mut seq);
        let runs: Vec<u64> = again.iter().map(|(id, _)| id.run).collect();
        assert_eq!(runs, [1, 2, 2]);
        assert_eq!(next.pending(), 0);
    }

    #[test]
    fn ids_given_back_come_first_and_a_damaged_file_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let mut carried = Carried::open(dir.path());
        let mut seq = 0;
        let batch = texts(&["x", "y"]);
        let ids = carried.ids_for(batch.iter(), RunId(3), &mut seq);
        carried.give_back(&ids);
        let again = carried.ids_for(batch.iter(), RunId(3), &mut seq);
        assert_eq!(
            again.iter().map(|(id, _)| id.seq).collect::<Vec<_>>(),
            [0, 1]
        );
        assert_eq!(seq, 2, "no new ids for the messages given back");
        std::fs::write(dir.path().join(FILE), b"FGBIDS01\x05").unwrap();
        assert_eq!(Carried::open(dir.path()).pending(), 0);
    }
}
