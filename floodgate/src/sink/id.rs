//! Message ids: a run's random [`RunId`] and a sequence number.
//!
//! Why both: a retry of a message must carry the same id (so a
//! deduplicating broker drops it), and a message of a later run must not
//! (so a restarted bridge, whose sequence starts again, is not taken for a
//! retry). 64 random bits per run make two runs' ids collide with
//! negligible odds.

use std::fmt;
use std::str::FromStr;

/// A run's identity: 64 random bits, drawn once per run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RunId(pub u64);

impl RunId {
    /// A fresh run id from the OS's random source.
    pub fn random() -> RunId {
        RunId(rand::random())
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// A message's id: its run and its place in the run, written
/// `RRRRRRRRRRRRRRRR-SEQ` (the run in 16 hex digits, the sequence in
/// decimal), e.g. `00c0ffee00c0ffee-42`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId {
    /// The run.
    pub run: u64,
    /// The message's place in the run (from 0, per feed).
    pub seq: u64,
}

impl MessageId {
    /// The id of message `seq` of `run`.
    pub fn new(run: RunId, seq: u64) -> MessageId {
        MessageId { run: run.0, seq }
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}-{}", self.run, self.seq)
    }
}

/// A string that is not a [`MessageId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a message id (16 hex digits, '-', a decimal sequence number)")]
pub struct ParseMessageIdError(String);

impl FromStr for MessageId {
    type Err = ParseMessageIdError;

    fn from_str(s: &str) -> Result<MessageId, ParseMessageIdError> {
        let bad = || ParseMessageIdError(s.to_owned());
        let (run, seq) = s.split_once('-').ok_or_else(bad)?;
        if run.len() != 16 || !run.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        if seq.is_empty() || !seq.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        Ok(MessageId {
            run: u64::from_str_radix(run, 16).map_err(|_| bad())?,
            seq: seq.parse().map_err(|_| bad())?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ids_are_written_and_read_back() {
        let id = MessageId::new(RunId(0x00c0_ffee_00c0_ffee), 42);
        assert_eq!(id.to_string(), "00c0ffee00c0ffee-42");
        assert_eq!("00c0ffee00c0ffee-42".parse::<MessageId>(), Ok(id));
        for bad in [
            "",
            "-1",
            "00c0ffee00c0ffee-",
            "00c0ffee00c0ffe-1",
            "00c0ffee00c0ffeg-1",
            "00c0ffee00c0ffee-+1",
            "00c0ffee00c0ffee-1-2",
        ] {
            assert!(bad.parse::<MessageId>().is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn runs_differ() {
        assert_ne!(RunId::random(), RunId::random());
    }

    proptest! {
        #[test]
        fn any_id_round_trips(run in any::<u64>(), seq in any::<u64>()) {
            let id = MessageId { run, seq };
            prop_assert_eq!(id.to_string().parse::<MessageId>(), Ok(id));
        }
    }
}
