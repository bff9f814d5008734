//! `floodgate bridge --config FILE`: many feeds from one TOML file.
//!
//! ```toml
//! metrics = "127.0.0.1:9100"   # as --metrics
//! stats = true                 # as --stats
//! drain_timeout = "10s"        # as --drain-timeout
//!
//! [[feed]]
//! name = "btc"                                # label and lines (default: the URL)
//! url = "wss://example.com/ws"
//! headers = ["Authorization: Bearer x"]       # as -H
//! subscribe = ['{"op":"subscribe","channel":"btc"}']   # as -t: after every connect
//! to = "nats://127.0.0.1:4222/feeds.btc"      # as --to (default: -)
//! stream = "FEEDS"                            # as --stream
//! policy = "spill"                            # and the other buffer options, as the flags
//! spill_dir = "/var/lib/floodgate/btc"        # with _ for -: max_messages, max_bytes,
//! durable = true                              # conflate_key, block_for, max_disk, ...
//! reconnect = true
//! ```
//!
//! Why the flags' names: a feed that works from the command line moves to
//! the file without translation. The options given on the command line
//! with `--config` are every feed's defaults (say `--reconnect` or `-k` for
//! all); a feed's table overrides them, and its lists (`headers`,
//! `subscribe`) add to them.
//!
//! The file is read whole and checked before anything starts: unknown
//! fields, wrong types, duplicate names and options that do not go
//! together are reported as one line naming the file, the line, the feed
//! (its place and name) and the field.

use super::dest::Dest;
use super::error::{BridgeError, FeedRef, Place};
use crate::connect::DialArgs;
use crate::policy::{BufferArgs, FallbackName, PolicyName};
use crate::units;
use serde::de::{self, Deserializer};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTable {
    metrics: Option<String>,
    stats: Option<bool>,
    drain_timeout: Option<Dur>,
    #[serde(default)]
    feed: Vec<FeedTable>,
}

/// One `[[feed]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FeedTable {
    name: Option<String>,
    url: String,
    #[serde(default)]
    headers: Vec<String>,
    #[serde(default)]
    subscribe: Vec<String>,
    to: Option<String>,
    stream: Option<String>,
    maxlen: Option<u64>,
    policy: Option<Named<PolicyName>>,
    max_messages: Option<usize>,
    max_bytes: Option<Size>,
    conflate_key: Option<String>,
    block_for: Option<Dur>,
    spill_dir: Option<PathBuf>,
    max_disk: Option<Size>,
    spill_fallback: Option<Named<FallbackName>>,
    durable: Option<bool>,
    fsync_interval: Option<Dur>,
    reconnect: Option<bool>,
    reconnect_attempts: Option<u32>,
    reconnect_delay: Option<Dur>,
    ping_interval: Option<Dur>,
    ping_timeout: Option<Dur>,
}

/// A duration written as the flags take it ("500ms", "10s").
#[derive(Debug, Clone, Copy)]
struct Dur(Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d).map_err(|_| {
            de::Error::custom("expected a duration as a string, e.g. \"500ms\" or \"10s\"")
        })?;
        units::duration(&text).map(Dur).map_err(de::Error::custom)
    }
}

/// A size: a number of bytes, or a string as the flags take it ("64MiB").
#[derive(Debug, Clone, Copy)]
struct Size(usize);

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bytes(u64),
            Text(String),
        }
        match Raw::deserialize(d).map_err(|_| {
            de::Error::custom("expected a size: a number of bytes or a string such as \"64MiB\"")
        })? {
            Raw::Bytes(n) => usize::try_from(n)
                .map(Size)
                .map_err(|_| de::Error::custom("too large")),
            Raw::Text(text) => units::size(&text).map(Size).map_err(de::Error::custom),
        }
    }
}

/// A value of a flag's enum, by the name the flag takes ("drop-oldest";
/// "drop_oldest" is taken too).
#[derive(Debug, Clone, Copy)]
struct Named<T>(T);

impl<'de, T: clap::ValueEnum> Deserialize<'de> for Named<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let names = || {
            T::value_variants()
                .iter()
                .filter_map(|v| v.to_possible_value())
                .map(|v| v.get_name().to_owned())
                .collect::<Vec<_>>()
                .join(", ")
        };
        T::from_str(&text.replace('_', "-"), false)
            .map(Named)
            .map_err(|_| de::Error::custom(format!("{text:?} is not one of: {}", names())))
    }
}

/// What the file says, checked.
#[derive(Debug)]
pub struct Config {
    /// `metrics`.
    pub metrics: Option<String>,
    /// `stats`.
    pub stats: bool,
    /// `drain_timeout`.
    pub drain_timeout: Option<Duration>,
    /// The feeds, in the file's order.
    pub feeds: Vec<FeedSpec>,
}

/// One feed, from the flags or from a `[[feed]]` table.
#[derive(Debug, Clone)]
pub struct FeedSpec {
    /// Unique among the feeds; the label of its metrics.
    pub name: String,
    /// The server.
    pub url: String,
    /// How to reach it.
    pub dial: DialArgs,
    /// Its buffer.
    pub buffer: BufferArgs,
    /// Where its messages go.
    pub dest: Dest,
    /// The config file and the place in it (`None`: from the flags).
    pub origin: Option<(PathBuf, Place)>,
}

/// Reads and checks `path`; `dial` and `buffer` (the command line's) are
/// every feed's defaults.
///
/// # Errors
///
/// [`BridgeError::Config`] naming the file, the line, the feed and the
/// field.
pub fn load(path: &Path, dial: &DialArgs, buffer: &BufferArgs) -> Result<Config, BridgeError> {
    let text = std::fs::read_to_string(path).map_err(|e| BridgeError::Config {
        file: path.to_owned(),
        place: Place::default(),
        message: format!("cannot read it: {e}"),
    })?;
    parse(path, &text, dial, buffer)
}

fn parse(
    path: &Path,
    text: &str,
    dial: &DialArgs,
    buffer: &BufferArgs,
) -> Result<Config, BridgeError> {
    let error = |place: Place, message: String| BridgeError::Config {
        file: path.to_owned(),
        place,
        message,
    };
    let deserializer = toml::Deserializer::parse(text).map_err(|e| {
        let place = Place {
            line: e.span().map(|s| line_of(text, s.start)),
            ..Place::default()
        };
        error(place, e.message().trim().to_owned())
    })?;
    let file: FileTable = serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let place = place_of(text, e.path(), e.inner().span());
        error(place, e.inner().message().trim().to_owned())
    })?;
    if file.feed.is_empty() {
        return Err(error(
            Place::default(),
            "no feed: add a [[feed]] table with url = \"ws://...\" (and to = \"...\")".into(),
        ));
    }
    let mut feeds: Vec<FeedSpec> = Vec::with_capacity(file.feed.len());
    for (i, table) in file.feed.into_iter().enumerate() {
        let place = |field: &str| Place {
            line: None,
            feed: Some(FeedRef {
                index: i + 1,
                name: table.name.clone(),
            }),
            field: (!field.is_empty()).then(|| field.to_owned()),
        };
        let name = table.name.clone().unwrap_or_else(|| table.url.clone());
        if name.is_empty() {
            return Err(error(place("name"), "a feed's name cannot be empty".into()));
        }
        if let Some(other) = feeds.iter().position(|f| f.name == name) {
            return Err(error(
                place("name"),
                format!(
                    "the name {name:?} is taken by feed {} (a feed is named by its URL unless \
                     it has a name); give each feed a name of its own",
                    other + 1
                ),
            ));
        }
        let to = table.to.clone().unwrap_or_else(|| "-".to_owned());
        let dest = Dest::parse(&to, table.stream.as_deref(), table.maxlen)
            .map_err(|reason| error(place("to"), as_fields(&reason)))?;
        let (dial, buffer) = overlay(&table, dial, buffer);
        feeds.push(FeedSpec {
            name,
            url: table.url,
            dial,
            buffer,
            dest,
            origin: Some((path.to_owned(), place(""))),
        });
    }
    Ok(Config {
        metrics: file.metrics,
        stats: file.stats.unwrap_or(false),
        drain_timeout: file.drain_timeout.map(|d| d.0),
        feeds,
    })
}

/// The command line's options with the feed's table over them.
fn overlay(table: &FeedTable, dial: &DialArgs, buffer: &BufferArgs) -> (DialArgs, BufferArgs) {
    let mut dial = dial.clone();
    let mut buffer = buffer.clone();
    dial.headers.extend(table.headers.iter().cloned());
    dial.texts.extend(table.subscribe.iter().cloned());
    macro_rules! set {
        ($target:expr, $value:expr) => {
            if let Some(value) = $value {
                $target = value;
            }
        };
    }
    set!(dial.reconnect, table.reconnect);
    set!(dial.reconnect_attempts, table.reconnect_attempts.map(Some));
    set!(dial.reconnect_delay, table.reconnect_delay.map(|d| d.0));
    set!(dial.ping_interval, table.ping_interval.map(|d| Some(d.0)));
    set!(dial.ping_timeout, table.ping_timeout.map(|d| Some(d.0)));
    set!(buffer.policy, table.policy.map(|p| p.0));
    set!(buffer.max_messages, table.max_messages);
    set!(buffer.max_bytes, table.max_bytes.map(|s| Some(s.0)));
    set!(buffer.conflate_key, table.conflate_key.clone().map(Some));
    set!(buffer.block_for, table.block_for.map(|d| Some(d.0)));
    set!(buffer.spill_dir, table.spill_dir.clone().map(Some));
    set!(buffer.max_disk, table.max_disk.map(|s| Some(s.0)));
    set!(
        buffer.spill_fallback,
        table.spill_fallback.map(|f| Some(f.0))
    );
    set!(buffer.durable, table.durable);
    set!(
        buffer.fsync_interval,
        table.fsync_interval.map(|d| Some(d.0))
    );
    (dial, buffer)
}

/// A message about flags (`--conflate-key needs --policy conflate`) in
/// the file's words (`conflate_key needs policy conflate`).
pub fn as_fields(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find("--") {
        out.push_str(&rest[..at]);
        let flag = &rest[at + 2..];
        let end = flag
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .unwrap_or(flag.len());
        let name = &flag[..end];
        out.push_str(&match name {
            "to" | "stream" | "maxlen" => name.to_owned(),
            "text" => "subscribe".to_owned(),
            "header" => "headers".to_owned(),
            _ => name.replace('-', "_"),
        });
        rest = &flag[end..];
    }
    out.push_str(rest);
    out
}

/// The line (from 1) of byte `offset`.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The place serde's `path` (`feed[1].max_messages`) names, with the
/// feed's name read from the file when it has one.
fn place_of(
    text: &str,
    path: &serde_path_to_error::Path,
    span: Option<std::ops::Range<usize>>,
) -> Place {
    use serde_path_to_error::Segment;
    let segments: Vec<&Segment> = path.iter().collect();
    let line = span.map(|s| line_of(text, s.start));
    match segments.as_slice() {
        [Segment::Map { key }, Segment::Seq { index }, rest @ ..] if key == "feed" => {
            let name = toml::from_str::<toml::Table>(text).ok().and_then(|t| {
                t.get("feed")?
                    .as_array()?
                    .get(*index)?
                    .get("name")?
                    .as_str()
                    .map(str::to_owned)
            });
            let field = rest
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(".");
            Place {
                line,
                feed: Some(FeedRef {
                    index: index + 1,
                    name,
                }),
                field: (!field.is_empty() && field != "?").then_some(field),
            }
        }
        _ => {
            let field = path.to_string();
            Place {
                line,
                feed: None,
                field: (field != "." && field != "?").then_some(field),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Defaults {
        #[command(flatten)]
        dial: DialArgs,
        #[command(flatten)]
        buffer: BufferArgs,
    }

    fn parse_str(text: &str) -> Result<Config, String> {
        let d = Defaults::try_parse_from(["bridge"]).unwrap();
        parse(Path::new("bridge.toml"), text, &d.dial, &d.buffer).map_err(|e| e.to_string())
    }

    #[test]
    fn feeds_are_read_over_the_command_lines_defaults() {
        let config = parse_str(
            r#"
            stats = true
            drain_timeout = "3s"
            [[feed]]
            name = "btc"
            url = "ws://127.0.0.1:1/btc"
            headers = ["X-A: 1"]
            subscribe = ["sub btc"]
            to = "redis://127.0.0.1:6379/k"
            maxlen = 100
            policy = "drop_oldest"
            max_bytes = "1MiB"
            [[feed]]
            url = "ws://127.0.0.1:1/eth"
            max_bytes = 4096
            policy = "conflate"
            conflate_key = "/channel"
            "#,
        )
        .unwrap();
        assert!(config.stats);
        assert_eq!(config.drain_timeout, Some(Duration::from_secs(3)));
        let [btc, eth] = &config.feeds[..] else {
            panic!("two feeds")
        };
        assert_eq!(btc.name, "btc");
        assert_eq!(btc.dial.headers, ["X-A: 1"]);
        assert_eq!(btc.dial.texts, ["sub btc"]);
        assert_eq!(btc.buffer.policy, PolicyName::DropOldest);
        assert_eq!(btc.buffer.max_bytes, Some(1 << 20));
        assert!(matches!(
            btc.dest,
            Dest::Redis {
                maxlen: Some(100),
                ..
            }
        ));
        assert_eq!(eth.name, "ws://127.0.0.1:1/eth");
        assert_eq!(eth.dest, Dest::Stdout);
        assert_eq!(eth.buffer.max_bytes, Some(4096));
        assert!(eth.buffer.config().is_ok());
    }

    #[test]
    fn a_wrong_type_names_the_line_the_feed_and_the_field() {
        let err = parse_str(
            "[[feed]]\nurl = \"ws://a/\"\n\n[[feed]]\nname = \"eth\"\nurl = \"ws://b/\"\nmax_messages = \"ten\"\n",
        )
        .unwrap_err();
        assert!(
            err.starts_with("bridge.toml, line 7, feed 2 (\"eth\"), field max_messages: "),
            "{err}"
        );
        assert!(err.contains("invalid type"), "{err}");
    }

    #[test]
    fn unknown_fields_and_bad_values_are_refused() {
        let err = parse_str("[[feed]]\nurl = \"ws://a/\"\nmax_mesages = 3\n").unwrap_err();
        assert!(
            err.contains("feed 1") && err.contains("max_mesages"),
            "{err}"
        );
        let err = parse_str("[[feed]]\nurl = \"ws://a/\"\npolicy = \"fast\"\n").unwrap_err();
        assert!(
            err.contains("field policy") && err.contains("drop-oldest"),
            "{err}"
        );
        let err = parse_str("[[feed]]\nurl = \"ws://a/\"\nblock_for = 5\n").unwrap_err();
        assert!(
            err.contains("field block_for") && err.contains("\"10s\""),
            "{err}"
        );
        let err = parse_str("[[feed]]\nurl = \"ws://a/\"\nto = \"kafka://k/t\"\n").unwrap_err();
        assert!(
            err.contains("field to") && err.contains("kafka://"),
            "{err}"
        );
        let err = parse_str("metric = \"127.0.0.1:0\"\n[[feed]]\nurl = \"ws://a/\"\n").unwrap_err();
        assert!(err.contains("metric"), "{err}");
        let err = parse_str("[[feed]]\nname = \"x\"\n").unwrap_err();
        assert!(
            err.contains("feed 1 (\"x\")") && err.contains("url"),
            "{err}"
        );
        let err = parse_str("").unwrap_err();
        assert!(err.contains("no feed"), "{err}");
        let err = parse_str("[[feed]\n").unwrap_err();
        assert!(err.starts_with("bridge.toml, line 1: "), "{err}");
    }

    #[test]
    fn feed_names_are_unique() {
        let err = parse_str(
            "[[feed]]\nname = \"a\"\nurl = \"ws://a/\"\n[[feed]]\nname = \"a\"\nurl = \"ws://b/\"\n",
        )
        .unwrap_err();
        assert!(
            err.contains("feed 2 (\"a\"), field name") && err.contains("taken by feed 1"),
            "{err}"
        );
        // Unnamed feeds are named by their URL.
        let err =
            parse_str("[[feed]]\nurl = \"ws://a/\"\n[[feed]]\nurl = \"ws://a/\"\n").unwrap_err();
        assert!(err.contains("taken by feed 1"), "{err}");
    }

    #[test]
    fn flag_names_are_put_in_the_files_words() {
        assert_eq!(
            as_fields("--conflate-key needs --policy conflate"),
            "conflate_key needs policy conflate"
        );
        assert_eq!(as_fields("--text and --header"), "subscribe and headers");
    }
}
