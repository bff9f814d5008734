//! [`SinkError`]: what can go wrong handing messages to a destination, by
//! what the caller does about it.

use std::time::Duration;

/// A sink could not publish (see [`Sink::publish`](super::Sink::publish)).
/// `sink` is the sink's [`describe`](super::Sink::describe).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SinkError {
    /// The destination cannot be reached (connection refused or lost, a
    /// name that does not resolve). Worth retrying: it may come back.
    #[error("cannot reach {sink}: {source}; check that it is running and listening there")]
    Unreachable {
        /// The sink.
        sink: String,
        /// What the client library said.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The destination answered, and refused (no stream for the subject,
    /// wrong credentials, a wrong key type). Retrying the same batch will
    /// not help; the configuration must change.
    #[error("{sink} refused the messages: {reason}")]
    Refused {
        /// The sink.
        sink: String,
        /// The destination's words.
        reason: String,
    },
    /// No acknowledgement came in time. The messages may or may not have
    /// been taken: a retry may duplicate them.
    #[error("{sink} did not acknowledge within {after:?}; it may be overloaded or stalled")]
    Timeout {
        /// The sink.
        sink: String,
        /// How long was waited.
        after: Duration,
    },
    /// The sink's settings cannot work (a URL without the part that names
    /// where messages go, a scheme the sink does not speak): found before
    /// anything was sent. Retrying will not help; fix the configuration.
    #[error("{sink}: {reason}")]
    Config {
        /// The sink, as far as it could be made out (no password).
        sink: String,
        /// What is wrong and what to give instead.
        reason: String,
    },
    /// Writing failed (a file sink: disk full, a closed stdout).
    #[error("cannot write to {sink}: {source}")]
    Io {
        /// The sink.
        sink: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

impl SinkError {
    /// Whether publishing the same batch again may succeed (the
    /// destination was away or slow), as opposed to a refusal or settings
    /// that need a change of configuration.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, SinkError::Refused { .. } | SinkError::Config { .. })
    }
}
