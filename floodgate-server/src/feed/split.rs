//! The feed's connection, split between its writer (the connection's
//! thread) and a reader thread.
//!
//! Why a reader thread: the feed sends as fast as the client's socket takes
//! it, and meanwhile the client's pings must be answered, its pongs timed
//! when they arrive (not when a blocked write lets the writer look), and
//! its close seen. One [`Protocol`] serves both sides, behind a mutex held
//! only to encode or decode, never while waiting on the socket; a second
//! lock orders the writes, from taking the protocol's output to the end
//! of the socket write, so frames from the two threads never interleave.
//! Lock order: the writer's lock, then the protocol's.

use crate::error::Error;
use crate::socket::{Parts, WebSocket};
use crate::transport::{Stream, Transport};
use bytes::BytesMut;
use floodgate_proto::{CloseFrame, Message, Protocol, UsageError};
use std::io::{self, Write};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::thread::JoinHandle;
use std::time::Duration;

/// Bytes the reader asks of the socket per read: the client sends little
/// (pongs, pings, a close).
const READ_CHUNK: usize = 16 << 10;

/// How the reader saw the connection end.
#[derive(Debug)]
pub(super) enum ReaderEnd {
    /// The client's close arrived (and was answered, if the server had not
    /// closed first).
    Closed(Option<CloseFrame>),
    /// The connection failed: end of stream without a close, a protocol
    /// error (answered with its close code), an I/O error.
    Failed(Error),
}

struct Shared {
    proto: Mutex<Protocol>,
    writer: Mutex<Writer>,
}

struct Writer {
    stream: Stream,
    /// Encoded frames taken from the protocol, on their way to the socket.
    out: Vec<u8>,
}

/// The split connection, held by the writer.
pub(super) struct Split {
    shared: Arc<Shared>,
    ended: mpsc::Receiver<ReaderEnd>,
    reader: Option<JoinHandle<()>>,
    close_timeout: Duration,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking handler thread leaves the state between two calls.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Split {
    /// Splits `ws` and starts its reader; `on_pong` sees each pong's
    /// payload as soon as it is decoded.
    pub(super) fn start(
        ws: WebSocket<Stream>,
        mut on_pong: impl FnMut(&[u8]) + Send + 'static,
    ) -> Result<Split, Error> {
        let Parts {
            stream,
            proto,
            read_buf,
            close_timeout,
        } = ws.into_parts();
        let mut reading = stream.try_clone()?;
        // The reader blocks until something arrives; dropping the split
        // shuts the socket down, which wakes it.
        reading.set_read_timeout(None)?;
        let shared = Arc::new(Shared {
            proto: Mutex::new(proto),
            writer: Mutex::new(Writer {
                stream,
                out: Vec::new(),
            }),
        });
        let (tell, ended) = mpsc::channel();
        let reader = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("floodgate-feed-reader".into())
                .spawn(move || {
                    let end = shared.read(&mut reading, read_buf, &mut on_pong);
                    tracing::debug!(?end, "feed reader ended");
                    let _ = tell.send(end);
                })?
        };
        Ok(Split {
            shared,
            ended,
            reader: Some(reader),
            close_timeout,
        })
    }

    /// Encodes with `encode` and writes what it queued (with any pong or
    /// close the reader left queued before it).
    pub(super) fn send(
        &self,
        encode: impl FnOnce(&mut Protocol) -> Result<(), UsageError>,
    ) -> Result<(), Error> {
        let mut writer = lock(&self.shared.writer);
        {
            let mut proto = lock(&self.shared.proto);
            encode(&mut proto)?;
            take_output(&mut proto, &mut writer.out);
        }
        writer.write_out()
    }

    /// Waits up to `within` for the reader to see the connection end.
    pub(super) fn wait_end(&self, within: Duration) -> Option<ReaderEnd> {
        match self.ended.recv_timeout(within) {
            Ok(end) => Some(end),
            Err(RecvTimeoutError::Timeout) => None,
            // The reader thread panicked: a bug, told as a failure.
            Err(RecvTimeoutError::Disconnected) => Some(ReaderEnd::Failed(Error::Io(
                io::Error::other("the feed's reader thread ended without a word"),
            ))),
        }
    }

    /// [`Options::close_timeout`](crate::Options::close_timeout).
    pub(super) fn close_timeout(&self) -> Duration {
        self.close_timeout
    }
}

impl Drop for Split {
    fn drop(&mut self) {
        // The server ends TCP (after the close handshake, or to give up);
        // that also wakes the reader.
        let _ = lock(&self.shared.writer).stream.shutdown();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

impl Shared {
    /// The reader's loop: decode what arrives (the protocol queues the
    /// answers to pings and to the close), hand pongs to `on_pong`,
    /// discard data, until the connection ends.
    fn read(
        &self,
        stream: &mut Stream,
        mut buf: BytesMut,
        on_pong: &mut impl FnMut(&[u8]),
    ) -> ReaderEnd {
        loop {
            loop {
                let decoded = lock(&self.proto).read_message(&mut buf);
                match decoded {
                    Ok(Some(Message::Pong(payload))) => on_pong(&payload),
                    Ok(Some(Message::Close(frame))) => {
                        return match self.flush(true) {
                            Ok(()) => ReaderEnd::Closed(frame),
                            Err(e) => ReaderEnd::Failed(e),
                        };
                    }
                    // Pings (answered by the protocol) and data, which is
                    // not the feed's business.
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(e) => {
                        // The protocol queued a close with the error's code.
                        let _ = self.flush(true);
                        return ReaderEnd::Failed(Error::Protocol(e));
                    }
                }
            }
            // Pongs go out now unless a writer is busy, who then takes
            // them with its next frames.
            if let Err(e) = self.flush(false) {
                return ReaderEnd::Failed(e);
            }
            buf.reserve(READ_CHUNK);
            match stream.read_into(&mut buf, READ_CHUNK) {
                Ok(0) => return ReaderEnd::Failed(Error::AbnormalClosure),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return ReaderEnd::Failed(e.into()),
            }
        }
    }

    /// Writes what the protocol has queued; with `wait` false, only if no
    /// writer is busy.
    fn flush(&self, wait: bool) -> Result<(), Error> {
        let mut writer = if wait {
            lock(&self.writer)
        } else {
            match self.writer.try_lock() {
                Ok(writer) => writer,
                Err(TryLockError::WouldBlock) => return Ok(()),
                Err(TryLockError::Poisoned(e)) => e.into_inner(),
            }
        };
        {
            let mut proto = lock(&self.proto);
            if !proto.has_output() {
                return Ok(());
            }
            take_output(&mut proto, &mut writer.out);
        }
        writer.write_out()
    }
}

fn take_output(proto: &mut Protocol, out: &mut Vec<u8>) {
    let queued = proto.output();
    out.extend_from_slice(queued);
    let n = queued.len();
    proto.consume_output(n);
}

impl Writer {
    fn write_out(&mut self) -> Result<(), Error> {
        let written = self.stream.write_all(&self.out);
        // Keep the buffer for the next batch unless a huge one grew it.
        if self.out.capacity() > 1 << 20 {
            self.out = Vec::new();
        } else {
            self.out.clear();
        }
        match written {
            Ok(()) => Ok(()),
            Err(e) if crate::tls::is_timeout(&e) => {
                Err(Error::Timeout(crate::error::Timeout::Write))
            }
            Err(e) => Err(e.into()),
        }
    }
}
