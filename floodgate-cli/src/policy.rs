//! The buffered receive path from the shell: `--policy` and the limits
//! around it, turned into a [`BufferConfig`].
//!
//! The conflation key is a JSON pointer (RFC 6901) into text messages, so
//! that `--policy conflate --conflate-key /channel` keeps the latest
//! message of each channel of a JSON feed. A message that is not JSON, or
//! has nothing at the pointer, has no key: it is buffered as usual and
//! dropped oldest-first when the buffer is full.

use crate::error::CliError;
use crate::units;
use floodgate::buffer::{BufferConfig, Conflate, Key, Overflow, Shed};
use floodgate::Message;
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
        let overflow = match self.policy {
            PolicyName::Block => match self.block_for {
                Some(limit) => Overflow::BlockFor(limit, Shed::DropOldest),
                None => Overflow::Block,
            },
            PolicyName::DropOldest => Overflow::DropOldest,
            PolicyName::DropNewest => Overflow::DropNewest,
            PolicyName::Disconnect => Overflow::Disconnect,
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
}
