//! Where a feed's messages go (`--to DEST`), read before anything is
//! started, and the sink made from it.
//!
//! The destination is one string so that a feed is one line in a script or
//! one key in a config file; the few options that only one broker has
//! (`--stream`, `--maxlen`) are separate and refused for the others rather
//! than ignored.

use floodgate::sink::{JsonLines, Nats, Record, Redis, Sink, SinkError};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// A parsed `--to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dest {
    /// `nats://[USER:PASS@]HOST:PORT/SUBJECT`: a JetStream stream.
    Nats {
        /// `nats://[USER:PASS@]HOST:PORT`.
        server: String,
        /// The subject published to.
        subject: String,
        /// `--stream`: the stream's name (default: the one that captures
        /// the subject, or one made from it).
        stream: Option<String>,
    },
    /// `redis://[USER:PASS@]HOST:PORT/KEY`: a Redis stream.
    Redis {
        /// The whole URL (the sink reads the key from its path).
        url: String,
        /// `--maxlen`: trim the stream to about this many entries.
        maxlen: Option<u64>,
    },
    /// `file:PATH`: JSON lines appended to a file.
    File(PathBuf),
    /// `-`: JSON lines on stdout.
    Stdout,
}

/// What the destinations look like, for error messages.
const FORMS: &str = "give nats://HOST:PORT/SUBJECT, redis://HOST:PORT/KEY, file:PATH or - (stdout)";

impl Dest {
    /// Reads `dest`, with the broker-specific options.
    ///
    /// # Errors
    ///
    /// What is wrong, worded for the user: an unknown scheme, a missing
    /// subject, key or path, an option for another broker.
    pub fn parse(dest: &str, stream: Option<&str>, maxlen: Option<u64>) -> Result<Dest, String> {
        let parsed = if dest == "-" {
            Dest::Stdout
        } else if let Some(path) = dest.strip_prefix("file:") {
            if path.is_empty() {
                return Err("no path after file:; give file:PATH".into());
            }
            Dest::File(PathBuf::from(path))
        } else if let Some(rest) = dest.strip_prefix("nats://") {
            let (authority, subject) = rest.split_once('/').unwrap_or((rest, ""));
            if authority.is_empty() {
                return Err("no host; give nats://HOST:PORT/SUBJECT".into());
            }
            if subject.is_empty() {
                return Err(
                    "no subject; give it as the path: nats://HOST:PORT/SUBJECT (e.g. \
                     nats://127.0.0.1:4222/feeds.trades)"
                        .into(),
                );
            }
            Dest::Nats {
                server: format!("nats://{authority}"),
                subject: subject.to_owned(),
                stream: stream.map(str::to_owned),
            }
        } else if dest.starts_with("redis://") || dest.starts_with("rediss://") {
            // The sink reads (and checks) the rest: the key, credentials.
            Dest::Redis {
                url: dest.to_owned(),
                maxlen,
            }
        } else {
            let scheme = match dest.split_once("://") {
                Some((scheme, _)) => format!("the scheme {scheme}:// is not one the bridge has"),
                None => "not a destination".to_owned(),
            };
            let kafka = if dest.starts_with("kafka") {
                " (there is no Kafka sink: no broker could be tested here)"
            } else {
                ""
            };
            return Err(format!("{scheme}{kafka}; {FORMS}"));
        };
        if stream.is_some() && !matches!(parsed, Dest::Nats { .. }) {
            return Err("--stream is for nats:// destinations (the JetStream stream)".into());
        }
        if maxlen.is_some() && !matches!(parsed, Dest::Redis { .. }) {
            return Err("--maxlen is for redis:// destinations (the stream's length)".into());
        }
        if maxlen == Some(0) {
            return Err("--maxlen must be at least 1".into());
        }
        Ok(parsed)
    }

    /// A key that is the same for two feeds that must share one sink (one
    /// file, one stdout, one stream): the destination with its options.
    pub fn share_key(&self) -> String {
        format!("{self:?}")
    }

    /// Connects (or opens) the sink, taking at most `timeout` to reach a
    /// broker.
    ///
    /// # Errors
    ///
    /// The sink's [`SinkError`]: a broker that cannot be reached
    /// (`Unreachable`, naming it and its address), refused credentials, a
    /// file that cannot be opened.
    pub async fn connect(&self, timeout: Duration) -> Result<AnySink, SinkError> {
        Ok(match self {
            Dest::Stdout => AnySink::Lines(JsonLines::stdout()),
            Dest::File(path) => AnySink::Lines(JsonLines::create(path).await?),
            Dest::Nats {
                server,
                subject,
                stream,
            } => {
                let mut builder = Nats::builder(server, subject).connect_timeout(timeout);
                if let Some(stream) = stream {
                    builder = builder.stream(stream);
                }
                AnySink::Nats(builder.connect().await?)
            }
            Dest::Redis { url, maxlen } => {
                let mut builder = Redis::builder(url)?.connect_timeout(timeout);
                if let Some(n) = maxlen {
                    builder = builder.maxlen(*n);
                }
                AnySink::Redis(builder.connect().await?)
            }
        })
    }

    /// What the sink will call itself before it exists (no password).
    pub fn describe(&self) -> String {
        match self {
            Dest::Stdout => "stdout".into(),
            Dest::File(path) => format!("file:{}", path.display()),
            Dest::Nats {
                server, subject, ..
            } => format!("{}/{subject}", without_credentials(server)),
            Dest::Redis { url, .. } => without_credentials(url),
        }
    }
}

fn without_credentials(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
            let host = authority.rsplit('@').next().unwrap_or(authority);
            if path.is_empty() {
                format!("{scheme}://{host}")
            } else {
                format!("{scheme}://{host}/{path}")
            }
        }
        None => url.to_owned(),
    }
}

/// One of the sinks the bridge can publish to.
#[derive(Debug)]
pub enum AnySink {
    /// JetStream.
    Nats(Nats),
    /// Redis Streams.
    Redis(Redis),
    /// JSON lines (a file or stdout).
    Lines(JsonLines),
}

impl Sink for AnySink {
    async fn publish(&mut self, batch: &[Record<'_>]) -> Result<(), SinkError> {
        match self {
            AnySink::Nats(sink) => sink.publish(batch).await,
            AnySink::Redis(sink) => sink.publish(batch).await,
            AnySink::Lines(sink) => sink.publish(batch).await,
        }
    }

    fn describe(&self) -> String {
        match self {
            AnySink::Nats(sink) => sink.describe(),
            AnySink::Redis(sink) => sink.describe(),
            AnySink::Lines(sink) => sink.describe(),
        }
    }
}

/// A sink shared by the feeds that write to the same destination (one
/// writer to a file or stdout keeps each batch's lines together); a
/// publish holds it until acknowledged.
pub type SharedSink = Arc<tokio::sync::Mutex<AnySink>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_destination_is_read() {
        assert_eq!(Dest::parse("-", None, None), Ok(Dest::Stdout));
        assert_eq!(
            Dest::parse("file:/tmp/x.jsonl", None, None),
            Ok(Dest::File("/tmp/x.jsonl".into()))
        );
        assert_eq!(
            Dest::parse("nats://u:p@127.0.0.1:4222/feeds.btc", Some("FEEDS"), None),
            Ok(Dest::Nats {
                server: "nats://u:p@127.0.0.1:4222".into(),
                subject: "feeds.btc".into(),
                stream: Some("FEEDS".into()),
            })
        );
        let redis = Dest::parse("redis://:pw@127.0.0.1:6379/feeds/btc", None, Some(1000)).unwrap();
        assert_eq!(redis.describe(), "redis://127.0.0.1:6379/feeds/btc");
        let nats = Dest::parse("nats://u:p@h:1/s", None, None).unwrap();
        assert_eq!(nats.describe(), "nats://h:1/s");
    }

    #[test]
    fn what_is_not_a_destination_is_refused_with_the_forms() {
        let err = Dest::parse("kafka://127.0.0.1:9092/t", None, None).unwrap_err();
        assert!(
            err.contains("kafka://") && err.contains("no Kafka sink"),
            "{err}"
        );
        assert!(err.contains("redis://HOST:PORT/KEY"), "{err}");
        assert!(Dest::parse("out.jsonl", None, None)
            .unwrap_err()
            .contains("not a destination"));
        assert!(Dest::parse("nats://127.0.0.1:4222", None, None)
            .unwrap_err()
            .contains("no subject"));
        assert!(Dest::parse("file:", None, None).is_err());
        assert!(Dest::parse("-", Some("S"), None)
            .unwrap_err()
            .contains("--stream"));
        assert!(Dest::parse("nats://h/s", None, Some(5))
            .unwrap_err()
            .contains("--maxlen"));
        assert!(Dest::parse("redis://h/k", None, Some(0)).is_err());
    }
}
