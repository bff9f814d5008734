//! The buffered receive path from the shell: `--policy` and the limits
//! around it, turned into a [`BufferConfig`].
//!
//! The conflation key is a JSON pointer (RFC 6901) into text messages, so
//! that `--policy conflate --conflate-key /channel` keeps the latest
//! message of each channel of a JSON feed. A message that is not JSON, or
//! has nothing at the pointer, has no key: it is buffered as usual and
//! dropped oldest-first when the buffer is full.
//!
//! `--policy spill` keeps the memory limits and writes what does not fit
//! to segment files under `--spill-dir` (`Overflow::Spill`): nothing is
//! lost and the server is not slowed, up to `--max-disk`; then
//! `--spill-fallback` decides. `--durable` keeps the spill across runs:
//! a command started again on the same directory first prints what the
//! last one left.

use crate::error::CliError;
use crate::units;
use floodgate::buffer::{BufferConfig, Conflate, Key, Overflow, Shed, SpillConfig, SpillFallback};
use floodgate::Message;
use std::path::PathBuf;
use std::time::Duration;

/// The overflow policies, as named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PolicyName {
    /// Lossless: stop reading until there is room, so TCP slows the server.
    Block,
    /// Drop the oldest buffered message to make room.
    DropOldest,
    /// Drop the arriving message.
    DropNewest,
    /// Keep only the latest message per key (--conflate-key).
    Conflate,
    /// Close the connection (code 1008) and exit with an error.
    Disconnect,
    /// Lossless without slowing the server: what does not fit in memory
    /// waits on disk (--spill-dir), printed in arrival order.
    Spill,
}

/// `--spill-fallback`: what `--policy spill` does with a message the disk
/// cannot take (`--max-disk` reached, a full or failing disk, a disk
/// slower than the feed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FallbackName {
    /// Stop reading until the disk takes messages again (slows the server,
    /// as --policy block does).
    Block,
    /// Drop the arriving message (counted in dropped_newest).
    DropNewest,
    /// Close the connection (code 1008) and exit 1 saying why.
    Disconnect,
}

impl From<FallbackName> for SpillFallback {
    fn from(name: FallbackName) -> Self {
        match name {
            FallbackName::Block => SpillFallback::Block,
            FallbackName::DropNewest => SpillFallback::DropNewest,
            FallbackName::Disconnect => SpillFallback::Disconnect,
        }
    }
}

/// Options of the buffer between the connection's reader and the printer.
#[derive(Debug, Clone, clap::Args)]
pub struct BufferArgs {
    /// What to do with a message that arrives while the buffer is full.
    #[arg(long, value_enum, default_value = "block", help_heading = "Buffer")]
    pub policy: PolicyName,
    /// Buffer at most N messages.
    #[arg(long, value_name = "N", default_value_t = floodgate::buffer::DEFAULT_MAX_MESSAGES, help_heading = "Buffer")]
    pub max_messages: usize,
    /// Buffer at most SIZE of payload (e.g. 1MiB; default 64MiB). Also
    /// the largest message accepted, unless --max-message-size says less.
    #[arg(long, value_name = "SIZE", value_parser = units::size, help_heading = "Buffer")]
    pub max_bytes: Option<usize>,
    /// With --policy conflate: a JSON pointer into text messages that
    /// names the key (e.g. /channel); the latest message per key wins.
    #[arg(long, value_name = "POINTER", help_heading = "Buffer")]
    pub conflate_key: Option<String>,
    /// With --policy block: block at most this long, then drop the oldest.
    #[arg(long, value_name = "DURATION", value_parser = units::duration, help_heading = "Buffer")]
    pub block_for: Option<Duration>,

    /// With --policy spill (required there): the directory to spill
    /// under (created if missing). Ephemeral by default: a private
    /// directory in it, removed at exit.
    #[arg(
        long,
        value_name = "DIR",
        required_if_eq("policy", "spill"),
        help_heading = "Spill to disk (--policy spill)"
    )]
    pub spill_dir: Option<PathBuf>,
    /// With --policy spill: at most SIZE of segment files on disk
    /// (e.g. 4GiB; default 1GiB); past it, --spill-fallback acts.
    #[arg(long, value_name = "SIZE", value_parser = units::size, help_heading = "Spill to disk (--policy spill)")]
    pub max_disk: Option<usize>,
    /// With --policy spill: what to do with a message the disk cannot
    /// take (--max-disk reached, disk full or failing) [default:
    /// disconnect].
    #[arg(
        long,
        value_enum,
        value_name = "FALLBACK",
        help_heading = "Spill to disk (--policy spill)"
    )]
    pub spill_fallback: Option<FallbackName>,
    /// With --policy spill: keep the spill in --spill-dir itself across
    /// runs; a run started again on the directory (even after a kill)
    /// first prints what the last one left. One run per directory. A
    /// killed run loses at most the message it was printing, and what had
    /// not reached the disk yet.
    #[arg(long, help_heading = "Spill to disk (--policy spill)")]
    pub durable: bool,
    /// With --durable: sync the spill's files to the disk this often
    /// (default 1s): what a crash of the machine, not of the process, may
    /// lose. 0 syncs after every batch written, and delivery waits for
    /// each sync (far slower).
    #[arg(long, value_name = "DURATION", value_parser = units::duration, requires = "durable", help_heading = "Spill to disk (--policy spill)")]
    pub fsync_interval: Option<Duration>,
}

impl BufferArgs {
    /// The buffer configuration these options describe.
    ///
    /// # Errors
    ///
    /// [`CliError::Usage`] for options that do not go together.
    pub fn config(&self) -> Result<BufferConfig, CliError> {
        if self.max_messages == 0 {
            return Err(CliError::Usage("--max-messages must be at least 1".into()));
        }
        if self.max_bytes == Some(0) {
            return Err(CliError::Usage(
                "--max-bytes must be at least 1 byte".into(),
            ));
        }
        if self.conflate_key.is_some() && self.policy != PolicyName::Conflate {
            return Err(CliError::Usage(
                "--conflate-key needs --policy conflate".into(),
            ));
        }
        if self.block_for.is_some() && self.policy != PolicyName::Block {
            return Err(CliError::Usage("--block-for needs --policy block".into()));
        }
        if self.policy != PolicyName::Spill {
            let given = [
                ("--spill-dir", self.spill_dir.is_some()),
                ("--max-disk", self.max_disk.is_some()),
                ("--spill-fallback", self.spill_fallback.is_some()),
                ("--durable", self.durable),
                ("--fsync-interval", self.fsync_interval.is_some()),
            ];
            if let Some((flag, _)) = given.iter().find(|(_, given)| *given) {
                let also = if *flag == "--spill-dir" {
                    ""
                } else {
                    " --spill-dir DIR"
                };
                return Err(CliError::Usage(format!(
                    "{flag} needs --policy spill{also}"
                )));
            }
        }
        if self.max_disk == Some(0) {
            return Err(CliError::Usage(
                "--max-disk must be above zero (e.g. 1GiB)".into(),
            ));
        }
        let overflow = match self.policy {
            PolicyName::Block => match self.block_for {
                Some(limit) => Overflow::BlockFor(limit, Shed::DropOldest),
                None => Overflow::Block,
            },
            PolicyName::DropOldest => Overflow::DropOldest,
            PolicyName::DropNewest => Overflow::DropNewest,
            PolicyName::Disconnect => Overflow::Disconnect,
            PolicyName::Spill => Overflow::Spill(self.spill_config()?),
            PolicyName::Conflate => {
                let pointer = self.conflate_key.clone().ok_or_else(|| {
                    CliError::Usage(
                        "--policy conflate needs --conflate-key POINTER (e.g. /channel)".into(),
                    )
                })?;
                Overflow::Conflate(Conflate::by(json_key(&pointer)?))
            }
        };
        let mut config = BufferConfig::new()
            .max_messages(self.max_messages)
            .overflow(overflow);
        if let Some(bytes) = self.max_bytes {
            config = config.max_bytes(bytes);
        }
        Ok(config)
    }

    /// The [`SpillConfig`] of `--policy spill`.
    fn spill_config(&self) -> Result<SpillConfig, CliError> {
        // clap requires it; a `BufferArgs` built in code may not have it.
        let dir = self.spill_dir.clone().ok_or_else(|| {
            CliError::Usage("--policy spill needs --spill-dir DIR (where to spill)".into())
        })?;
        let mut spill = SpillConfig::new(dir);
        if let Some(bytes) = self.max_disk {
            spill = spill.max_disk_bytes(bytes as u64);
        }
        if let Some(fallback) = self.spill_fallback {
            spill = spill.fallback(fallback.into());
        }
        if self.durable {
            spill = spill.durable();
        }
        if let Some(interval) = self.fsync_interval {
            spill = spill.fsync_interval(interval);
        }
        Ok(spill)
    }

    /// Whether this is `--policy spill` (its stats have more counters).
    pub fn spills(&self) -> bool {
        self.policy == PolicyName::Spill
    }
}

/// A key function that reads `pointer` out of JSON text messages.
///
/// # Errors
///
/// A pointer that is not empty and does not start with `/`.
pub fn json_key(
    pointer: &str,
) -> Result<impl Fn(&Message) -> Option<Key> + Send + Sync + 'static, CliError> {
    if !pointer.is_empty() && !pointer.starts_with('/') {
        return Err(CliError::Usage(format!(
            "--conflate-key {pointer:?} is not a JSON pointer: it starts with / (e.g. /channel or /data/symbol)"
        )));
    }
    let pointer = pointer.to_owned();
    Ok(move |message: &Message| {
        let value: serde_json::Value = serde_json::from_str(message.as_text()?).ok()?;
        match value.pointer(&pointer)? {
            serde_json::Value::String(s) => Some(Key::from(s.as_str())),
            serde_json::Value::Null => None,
            // Numbers and the rest are keyed by their JSON text: 3 and "3"
            // are different keys, as they are different values.
            other => Some(Key::from(other.to_string())),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(pointer: &str, text: &str) -> Option<Key> {
        json_key(pointer).unwrap()(&Message::text(text))
    }

    #[test]
    fn the_key_is_the_value_at_the_pointer() {
        assert_eq!(
            key("/channel", r#"{"channel":"btc"}"#),
            Some(Key::from("btc"))
        );
        assert_eq!(key("/channel", r#"{"channel":3}"#), Some(Key::from("3")));
        assert_eq!(key("/a/0", r#"{"a":["x"]}"#), Some(Key::from("x")));
        assert_eq!(key("/channel", r#"{"other":1}"#), None);
        assert_eq!(key("/channel", "not json"), None);
        assert_eq!(json_key("/c").unwrap()(&Message::binary(&b"{}"[..])), None);
        assert!(json_key("channel").is_err());
    }

    fn args(policy: PolicyName) -> BufferArgs {
        BufferArgs {
            policy,
            max_messages: 10,
            max_bytes: None,
            conflate_key: None,
            block_for: None,
            spill_dir: None,
            max_disk: None,
            spill_fallback: None,
            durable: false,
            fsync_interval: None,
        }
    }

    #[test]
    fn options_that_do_not_go_together_are_refused() {
        assert!(args(PolicyName::Conflate).config().is_err(), "no key");
        let mut a = args(PolicyName::Block);
        a.conflate_key = Some("/c".into());
        assert!(a.config().is_err());
        let mut a = args(PolicyName::DropOldest);
        a.block_for = Some(Duration::from_millis(5));
        assert!(a.config().is_err());
        let mut a = args(PolicyName::Block);
        a.max_messages = 0;
        assert!(a.config().is_err());
        let mut a = args(PolicyName::Conflate);
        a.conflate_key = Some("/c".into());
        assert!(a.config().is_ok());
    }

    #[test]
    fn spill_options_need_the_spill_policy_and_a_directory() {
        let err = args(PolicyName::Spill).config().unwrap_err().to_string();
        assert!(err.contains("--spill-dir"), "{err}");
        let mut a = args(PolicyName::Block);
        a.durable = true;
        let err = a.config().unwrap_err().to_string();
        assert!(err.contains("--durable needs --policy spill"), "{err}");
        let mut a = args(PolicyName::DropOldest);
        a.max_disk = Some(1 << 20);
        assert!(a.config().is_err());
        let mut a = args(PolicyName::Spill);
        a.spill_dir = Some("/var/tmp".into());
        a.max_disk = Some(0);
        assert!(a.config().is_err());
        a.max_disk = Some(4 << 20);
        a.spill_fallback = Some(FallbackName::DropNewest);
        a.durable = true;
        a.fsync_interval = Some(Duration::from_millis(200));
        assert!(a.config().is_ok());
        let spill = a.spill_config().unwrap();
        assert_eq!(spill.dir(), std::path::Path::new("/var/tmp"));
        assert_eq!(spill.get_max_disk_bytes(), 4 << 20);
        assert_eq!(spill.get_fallback(), SpillFallback::DropNewest);
        assert!(spill.is_durable());
    }
}
