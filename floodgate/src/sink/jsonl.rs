//! [`JsonLines`]: one JSON object per message, one per line, to a file or
//! stdout. Nothing to install; what `floodgate bridge --to file:PATH` and
//! `--to -` write.
//!
//! Each line: `{"id":"<MessageId>","text":"..."}` for a text message, or
//! `{"id":"<MessageId>","binary":"<base64>"}` for a binary one (JSON
//! cannot hold arbitrary bytes). A batch is acknowledged once its lines
//! are written and flushed to the OS, and with [`sync`](JsonLines::sync)
//! once they are on the disk.

use super::{Record, Sink, SinkError};
use base64::Engine as _;
use floodgate_proto::Message;
use std::path::{Path, PathBuf};
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// See the module docs.
pub struct JsonLines {
    out: Out,
    /// `file:PATH` or `stdout`.
    name: String,
    sync: bool,
    /// A batch's lines, written at once.
    lines: Vec<u8>,
}

enum Out {
    File(tokio::fs::File),
    Stdout(tokio::io::Stdout),
}

impl std::fmt::Debug for JsonLines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonLines")
            .field("name", &self.name)
            .field("sync", &self.sync)
            .finish_non_exhaustive()
    }
}

impl JsonLines {
    /// Appends to the file at `path` (created if missing).
    ///
    /// # Errors
    ///
    /// [`SinkError::Io`] when the file cannot be opened.
    pub async fn create(path: impl AsRef<Path>) -> Result<JsonLines, SinkError> {
        let path: PathBuf = path.as_ref().to_owned();
        let name = format!("file:{}", path.display());
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .await
            .map_err(|source| SinkError::Io {
                sink: name.clone(),
                source,
            })?;
        Ok(JsonLines {
            out: Out::File(file),
            name,
            sync: false,
            lines: Vec::new(),
        })
    }

    /// Writes to the process's standard output.
    pub fn stdout() -> JsonLines {
        JsonLines {
            out: Out::Stdout(tokio::io::stdout()),
            name: "stdout".into(),
            sync: false,
            lines: Vec::new(),
        }
    }

    /// With `true`, a batch is acknowledged only once it is on the disk
    /// (`fsync`), not just handed to the OS: a machine crash then loses
    /// nothing acknowledged, at the cost of a sync per batch. No effect on
    /// stdout.
    pub fn sync(mut self, sync: bool) -> JsonLines {
        self.sync = sync;
        self
    }

    fn encode(&mut self, record: &Record<'_>) {
        use std::io::Write as _;
        let out = &mut self.lines;
        // Writes into a Vec cannot fail.
        let _ = write!(out, "{{\"id\":\"{}\"", record.id);
        match record.message {
            Message::Text(text) => {
                out.extend_from_slice(b",\"text\":");
                // serde_json's escaping: JSON strings are easy to get
                // subtly wrong by hand (control characters, U+2028).
                let _ = serde_json::to_writer(&mut *out, text.as_str());
            }
            other => {
                out.extend_from_slice(b",\"binary\":\"");
                let encoded = base64::engine::general_purpose::STANDARD.encode(other.as_bytes());
                out.extend_from_slice(encoded.as_bytes());
                out.push(b'"');
            }
        }
        out.extend_from_slice(b"}\n");
    }
}

impl Sink for JsonLines {
    async fn publish(&mut self, batch: &[Record<'_>]) -> Result<(), SinkError> {
        self.lines.clear();
        for record in batch {
            self.encode(record);
        }
        let result = async {
            match &mut self.out {
                Out::File(file) => {
                    write_all(file, &self.lines).await?;
                    if self.sync {
                        file.sync_data().await?;
                    }
                }
                Out::Stdout(stdout) => write_all(stdout, &self.lines).await?,
            }
            Ok(())
        }
        .await;
        result.map_err(|source| SinkError::Io {
            sink: self.name.clone(),
            source,
        })
    }

    fn describe(&self) -> String {
        self.name.clone()
    }
}

async fn write_all(out: &mut (impl AsyncWrite + Unpin), bytes: &[u8]) -> std::io::Result<()> {
    out.write_all(bytes).await?;
    out.flush().await
}
