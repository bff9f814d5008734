//! [`BridgeError`]: what ends `floodgate bridge`, and its exit code.
//!
//! A type of its own beside [`CliError`] because the bridge meets failures
//! the other commands do not (a broker, a config file, a drain cut short)
//! and because each must name the feed it belongs to: with many feeds, "the
//! connection was refused" alone does not say which.

use crate::error::CliError;
use floodgate::sink::SinkError;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// A feed in a config file: its place (from 1) and its name, when it has
/// one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedRef {
    /// The `[[feed]]` table's place in the file, from 1.
    pub index: usize,
    /// Its `name`, when given.
    pub name: Option<String>,
}

impl fmt::Display for FeedRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "feed {}", self.index)?;
        if let Some(name) = &self.name {
            write!(f, " ({name:?})")?;
        }
        Ok(())
    }
}

/// Where in a config file a problem is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Place {
    /// The line (from 1), when known.
    pub line: Option<usize>,
    /// The feed, when the problem is in a `[[feed]]` table.
    pub feed: Option<FeedRef>,
    /// The field (serde's path inside the feed, or at the top level).
    pub field: Option<String>,
}

/// What ends `floodgate bridge` with an error (one line on stderr, see
/// [`BridgeError::exit_code`]).
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    /// An error of the options shared with `connect`, of a connection, or
    /// of I/O, worded as `connect` words it.
    #[error(transparent)]
    Cli(#[from] CliError),
    /// The config file cannot be read, or a value in it is wrong.
    #[error("{}", config_line(.file, .place, .message))]
    Config {
        /// The file, as given.
        file: PathBuf,
        /// Where in it.
        place: Place,
        /// What is wrong and what to give instead.
        message: String,
    },
    /// `--to` (or a feed's `to`) names no destination the bridge knows.
    #[error("feed {feed}: --to {dest:?}: {reason}")]
    Dest {
        /// The feed's name.
        feed: String,
        /// The destination as given.
        dest: String,
        /// What is wrong.
        reason: String,
    },
    /// A sink could not be made at start (a broker that cannot be
    /// reached, refused credentials, ...), or refused messages later.
    #[error("feed {feed}: {}", one_line(&.source.to_string()))]
    Sink {
        /// The feed's name.
        feed: String,
        /// The sink's error (it names the broker and its address).
        #[source]
        source: SinkError,
    },
    /// The brokers did not all answer within the start-up bound.
    #[error(
        "{sink} did not answer within {}s at start; check that it is running and listening there",
        .after.as_secs()
    )]
    StartTimeout {
        /// The sink that was still connecting.
        sink: String,
        /// The bound.
        after: Duration,
    },
    /// A feed's first connection failed (as `connect`'s does, at once).
    #[error("feed {feed}: {source}")]
    Connect {
        /// The feed's name.
        feed: String,
        /// Why.
        #[source]
        source: CliError,
    },
    /// Feeds ended with an error; each was reported when it happened.
    #[error("{} ended with an error (see above)", feeds_named(.feeds))]
    FeedsFailed {
        /// Their names.
        feeds: Vec<String>,
        /// The exit code of the first.
        code: u8,
    },
    /// At shutdown, what was buffered could not all be published within
    /// `--drain-timeout`.
    #[error(
        "the drain did not finish within --drain-timeout {}: {remaining} messages were not \
         published (see the lines above for where they are); give the sink more time with a \
         longer --drain-timeout",
        crate::units::show(*.timeout)
    )]
    DrainIncomplete {
        /// Messages not published, over every feed.
        remaining: u64,
        /// The bound.
        timeout: Duration,
    },
}

fn config_line(file: &std::path::Path, place: &Place, message: &str) -> String {
    let mut out = file.display().to_string();
    if let Some(line) = place.line {
        out.push_str(&format!(", line {line}"));
    }
    if let Some(feed) = &place.feed {
        out.push_str(&format!(", {feed}"));
    }
    if let Some(field) = &place.field {
        out.push_str(&format!(", field {field}"));
    }
    format!("{out}: {message}")
}

/// `text` on one line: a client library's message may span several (a
/// parser's report of what it read instead of a reply).
fn one_line(text: &str) -> String {
    text.split('\n')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn feeds_named(feeds: &[String]) -> String {
    match feeds {
        [one] => format!("feed {one}"),
        many => format!("{} feeds ({})", many.len(), many.join(", ")),
    }
}

impl BridgeError {
    /// The process exit code: the codes of `connect` (see
    /// [`crate::error`]) where they apply; 2 for a bad config file or
    /// destination; 3 for a broker that cannot be reached or does not
    /// answer at start; 1 for a broker that refused, and for a drain cut
    /// short.
    pub fn exit_code(&self) -> u8 {
        match self {
            BridgeError::Cli(e) | BridgeError::Connect { source: e, .. } => e.exit_code(),
            BridgeError::Config { .. } | BridgeError::Dest { .. } => 2,
            BridgeError::Sink { source, .. } => sink_exit_code(source),
            BridgeError::StartTimeout { .. } => 3,
            BridgeError::FeedsFailed { code, .. } => *code,
            BridgeError::DrainIncomplete { .. } => 1,
        }
    }
}

fn sink_exit_code(e: &SinkError) -> u8 {
    match e {
        SinkError::Unreachable { .. } => 3,
        SinkError::Config { .. } => 2,
        SinkError::Timeout { .. } => 5,
        _ => 1,
    }
}

impl From<std::io::Error> for BridgeError {
    fn from(e: std::io::Error) -> Self {
        BridgeError::Cli(CliError::Io(e))
    }
}
