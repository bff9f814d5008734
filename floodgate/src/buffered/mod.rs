//! [`BufferedWebSocket`]: a connection whose reader runs on its own thread
//! and feeds a bounded [`Buffer`], so that a slow consumer neither starves
//! the connection's pings nor lets an invisible backlog grow.
//!
//! Three parts share one connection:
//! - the **reader** thread ([`reader`]) owns the read side of the socket
//!   and a protocol instance that decodes; it answers pings and the close
//!   handshake at once and pushes data messages into the buffer;
//! - the **writer** (a socket handle and a protocol instance that encodes,
//!   under one lock) serves every [`Sender`] and the reader's answers;
//! - the **consumer** takes messages from the [`Buffer`].
//!
//! The socket is split with [`Transport::try_clone`] (a second descriptor
//! for the same connection), so reading never holds the writer's lock.
//! The reader reads into chunks it reuses once the consumer has dropped
//! their messages ([`chunks`]), and wakes a waiting consumer once per run
//! of reads rather than per read (see `Reader::fill`).

mod chunks;
pub(crate) mod reader;
mod sender;

pub use sender::Sender;

use crate::buffer::{Buffer, BufferConfig, Delivered, Stats};
use crate::error::{Error, ErrorKind, Result, TimeoutKind};
use crate::socket::WebSocket;
use crate::stream::{Stream, Transport};
use chunks::ChunkPool;
use floodgate_proto::{CloseCode, CloseFrame, Message, OpCode, Protocol};
use http::{HeaderMap, StatusCode};
use reader::Reader;
use sender::Writer;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How the connection ended, as far as a waiting `close` cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    /// The close handshake completed (either side began it).
    Closed,
    /// The transport ended without a close.
    Abnormal,
    /// An error ended it.
    Failed,
}

/// What the reader, the writers and the consumer share.
#[derive(Debug)]
pub(crate) struct Shared<S> {
    writer: Mutex<Writer<S>>,
    pub(crate) buffer: Arc<Buffer>,
    done: Mutex<Option<Ending>>,
    done_changed: Condvar,
    pub(crate) close_timeout: Duration,
}

impl<S: Transport> Shared<S> {
    pub(crate) fn writer(&self) -> MutexGuard<'_, Writer<S>> {
        // A panic while writing leaves the writer as consistent as an I/O
        // error would; keep using it.
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Ends the transport for good: senders get `AlreadyClosed` and the
    /// reader, if still reading, sees end of stream.
    pub(crate) fn end_transport(&self) {
        {
            let mut writer = self.writer();
            if !writer.ended {
                writer.ended = true;
                let _ = writer.stream.shutdown();
            }
        }
        // A reader waiting for room under `Block` must not wait for a
        // consumer that may be gone.
        self.buffer.set_closing();
    }

    /// Whether the transport was ended on this side (a read error after it
    /// is expected, not a failure).
    pub(crate) fn shut_down_locally(&self) -> bool {
        self.writer().ended
    }

    pub(crate) fn set_done(&self, ending: Ending) {
        let mut done = self.done.lock().unwrap_or_else(|e| e.into_inner());
        if done.is_none() {
            *done = Some(ending);
            self.done_changed.notify_all();
        }
    }

    fn wait_done(&self, deadline: Instant) -> Option<Ending> {
        let done = self.done.lock().unwrap_or_else(|e| e.into_inner());
        let wait = deadline.saturating_duration_since(Instant::now());
        let (done, _) = self
            .done_changed
            .wait_timeout_while(done, wait, |done| done.is_none())
            .unwrap_or_else(|e| e.into_inner());
        *done
    }

    /// The application's close, first half: stop blocking the reader on a
    /// full buffer and send the close; the reader completes the handshake.
    pub(crate) fn send_close(&self, frame: Option<CloseFrame>) -> Result<()> {
        let mut writer = self.writer();
        if writer.ended || writer.proto.close_sent() {
            return Err(ErrorKind::AlreadyClosed.into());
        }
        // An invalid code or reason is refused before anything changes.
        writer.proto.send_close(frame.as_ref())?;
        self.buffer.set_closing();
        if let Err(e) = writer.flush() {
            drop(writer);
            self.end_transport();
            return Err(e);
        }
        Ok(())
    }

    /// The application's close: [`send_close`](Self::send_close), then
    /// wait for the server's.
    pub(crate) fn close(&self, frame: Option<CloseFrame>) -> Result<()> {
        self.send_close(frame)?;
        match self.wait_done(Instant::now() + self.close_timeout) {
            Some(Ending::Closed) => Ok(()),
            Some(Ending::Abnormal) => Err(ErrorKind::AbnormalClosure.into()),
            Some(Ending::Failed) => Err(ErrorKind::Io(std::io::Error::other(
                "the transport failed during the close handshake",
            ))
            .into()),
            None => {
                self.end_transport();
                Err(Error::timeout(TimeoutKind::Close, Some(self.close_timeout)))
            }
        }
    }
}

/// A connection with a reader thread and a bounded, observable buffer.
///
/// Made by [`crate::Client::connect_buffered`] (with the builder's
/// [`buffer`](crate::ClientBuilder::buffer) options) or from a connected
/// [`WebSocket`] with [`WebSocket::into_buffered`].
///
/// ```
/// use floodgate::buffer::{BufferConfig, Overflow};
/// # let server = floodgate::server::Server::bind("127.0.0.1:0", floodgate::server::echo)?;
/// let ws = floodgate::Client::builder()
///     .buffer(BufferConfig::new().max_messages(1000).overflow(Overflow::DropOldest))
///     .connect_buffered(&server.url())?;
/// ws.send_text("one")?;
/// ws.send_text("two")?;
/// let batch = ws.recv_batch(100, std::time::Duration::from_secs(5))?;
/// assert!(!batch.is_empty());
/// for message in &batch {
///     println!("{:?} waited {:?}", message.as_text(), message.waited());
/// }
/// let stats = ws.stats();
/// assert_eq!(stats.received, stats.delivered + stats.buffered);
/// # Ok::<(), floodgate::Error>(())
/// ```
///
/// Pings are answered by the reader as soon as they are read, however slow
/// the consumer; under [`Overflow::Block`](crate::buffer::Overflow::Block)
/// a full buffer stops the reader reading, and pings sent after the data
/// that filled it wait in the kernel with that data (see the guide,
/// `docs/backpressure.md`).
///
/// Dropping it drops the connection without a close handshake, even if
/// [`Sender`]s remain; call [`close`](Self::close) to end it cleanly.
#[derive(Debug)]
pub struct BufferedWebSocket<S: Transport = Stream> {
    sender: Sender<S>,
    buffer: Arc<Buffer>,
    reader: Option<JoinHandle<()>>,
    status: StatusCode,
    headers: HeaderMap,
    subprotocol: Option<String>,
    deflate: Option<floodgate_proto::deflate::PerMessageDeflate>,
}

impl<S: Transport + Send + 'static> BufferedWebSocket<S> {
    pub(crate) fn start(ws: WebSocket<S>, config: &BufferConfig) -> Result<BufferedWebSocket<S>> {
        let parts = ws.into_parts();
        config.validate(parts.proto.config().max_message_size)?;
        if parts.proto.state() != floodgate_proto::State::Open || parts.finished {
            return Err(ErrorKind::AlreadyClosed.into());
        }
        let write_stream = parts.stream.try_clone()?;
        let buffer = Arc::new(Buffer::new(config));
        let auto_pong = parts.proto.config().auto_pong;
        let mut writer_proto = Protocol::new(parts.proto.role(), parts.proto.config().clone());
        // The writer compresses, the reader inflates (its own protocol
        // keeps the inflate context of what was received so far).
        let deflate = parts.proto.deflate().cloned();
        writer_proto.set_deflate(deflate.clone());
        let shared = Arc::new(Shared {
            writer: Mutex::new(Writer {
                stream: write_stream,
                proto: writer_proto,
                ended: false,
            }),
            buffer: buffer.clone(),
            done: Mutex::new(None),
            done_changed: Condvar::new(),
            close_timeout: parts.close_timeout,
        });
        let reader = Reader {
            stream: parts.stream,
            proto: parts.proto,
            read_buf: parts.read_buf,
            read_chunk_size: parts.read_chunk_size,
            auto_pong,
            copy_small: config.retains_sparsely(),
            shared: shared.clone(),
            unwoken_bytes: 0,
            chunks: ChunkPool::new(parts.read_chunk_size),
            on_control: config.on_control.clone(),
            on_data_frame: config.on_data_frame.clone(),
        };
        let handle = std::thread::Builder::new()
            .name("floodgate-reader".into())
            .spawn(move || reader.run())?;
        Ok(BufferedWebSocket {
            sender: Sender { shared },
            buffer,
            reader: Some(handle),
            status: parts.status,
            headers: parts.headers,
            subprotocol: parts.subprotocol,
            deflate,
        })
    }
}

impl<S: Transport + Send + 'static> BufferedWebSocket<S> {
    /// Pings the server every `interval` on a thread of its own; with
    /// `timeout`, shuts the connection down when no pong comes within
    /// `timeout` of a ping (see [`crate::keepalive`]).
    pub fn keepalive(
        &self,
        interval: Duration,
        timeout: Option<Duration>,
        payload: &[u8],
    ) -> crate::keepalive::Keepalive {
        crate::keepalive::Keepalive::start(
            self.sender(),
            self.buffer.clone(),
            interval,
            timeout,
            payload.to_vec(),
        )
    }
}

impl<S: Transport> BufferedWebSocket<S> {
    // ----- receiving -------------------------------------------------------

    /// Waits for the next message.
    ///
    /// # Errors
    ///
    /// Once the connection has ended and every buffered message was taken:
    /// [`ErrorKind::ConnectionClosed`] after a close handshake,
    /// [`ErrorKind::Buffer`] under the `Disconnect` policy,
    /// [`ErrorKind::Protocol`], [`ErrorKind::AbnormalClosure`] or
    /// [`ErrorKind::Io`] when it failed; then
    /// [`ErrorKind::AlreadyClosed`].
    pub fn recv(&self) -> Result<Delivered> {
        Ok(self.buffer.recv()?)
    }

    /// Waits at most `timeout` for the next message.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Timeout`] when none came (the connection stays usable);
    /// otherwise as for [`recv`](Self::recv).
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Delivered> {
        Ok(self.buffer.recv_timeout(timeout)?)
    }

    /// Takes a message if one is buffered, without waiting.
    ///
    /// # Errors
    ///
    /// As for [`recv`](Self::recv).
    pub fn try_recv(&self) -> Result<Option<Delivered>> {
        Ok(self.buffer.try_recv()?)
    }

    /// Takes every buffered message, up to `max`, waiting at most `wait`
    /// for the first; empty when none came in time. One lock for the whole
    /// batch: the fastest way to consume.
    ///
    /// # Errors
    ///
    /// As for [`recv`](Self::recv).
    pub fn recv_batch(&self, max: usize, wait: Duration) -> Result<Vec<Delivered>> {
        Ok(self.buffer.recv_batch(max, wait)?)
    }

    /// [`recv_batch`](Self::recv_batch) into a vector the caller reuses;
    /// returns how many messages were appended.
    ///
    /// # Errors
    ///
    /// As for [`recv`](Self::recv).
    pub fn recv_batch_into(
        &self,
        out: &mut Vec<Delivered>,
        max: usize,
        wait: Duration,
    ) -> Result<usize> {
        Ok(self.buffer.recv_batch_into(out, max, wait)?)
    }

    /// An iterator over messages that ends after a close handshake and
    /// yields any other end of the connection as one error.
    pub fn messages(&self) -> BufferedMessages<'_> {
        BufferedMessages {
            buffer: &self.buffer,
            done: false,
        }
    }

    /// A consistent snapshot of the buffer's counters.
    pub fn stats(&self) -> Stats {
        self.buffer.stats()
    }

    /// The buffer, to share with other threads (stats, more consumers).
    pub fn buffer(&self) -> &Arc<Buffer> {
        &self.buffer
    }

    // ----- sending ---------------------------------------------------------

    /// A sender for this connection, to use from any thread.
    pub fn sender(&self) -> Sender<S> {
        self.sender.clone()
    }

    /// Sends a message; see [`Sender::send`].
    ///
    /// # Errors
    ///
    /// As for [`Sender::send`].
    pub fn send(&self, message: impl Into<Message>) -> Result<()> {
        self.sender.send(message)
    }

    /// Sends a text message.
    ///
    /// # Errors
    ///
    /// As for [`Sender::send`].
    pub fn send_text(&self, text: &str) -> Result<()> {
        self.sender.send_text(text)
    }

    /// Sends a binary message.
    ///
    /// # Errors
    ///
    /// As for [`Sender::send`].
    pub fn send_binary(&self, data: &[u8]) -> Result<()> {
        self.sender.send_binary(data)
    }

    /// Sends one raw frame; see [`Sender::send_frame`].
    ///
    /// # Errors
    ///
    /// As for [`Sender::send_frame`].
    pub fn send_frame(&self, opcode: OpCode, payload: &[u8], fin: bool) -> Result<()> {
        self.sender.send_frame(opcode, payload, fin)
    }

    /// Sends a ping.
    ///
    /// # Errors
    ///
    /// As for [`Sender::send`].
    pub fn ping(&self, payload: &[u8]) -> Result<()> {
        self.sender.ping(payload)
    }

    /// Sends a pong.
    ///
    /// # Errors
    ///
    /// As for [`Sender::send`].
    pub fn pong(&self, payload: &[u8]) -> Result<()> {
        self.sender.pong(payload)
    }

    /// Closes the connection: the reader stops waiting for room (messages
    /// that do not fit from now on are dropped and counted as
    /// `dropped_newest`), a close frame is sent, and this waits up to
    /// `close_timeout` for the server's. Messages still buffered stay
    /// readable until the end of the connection is reported.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Usage`] for a code that must not be sent or a reason
    /// over 123 bytes (nothing is sent); [`ErrorKind::Timeout`] when the
    /// server did not answer (the socket is shut down);
    /// [`ErrorKind::AbnormalClosure`]; [`ErrorKind::AlreadyClosed`].
    pub fn close(&mut self, code: impl Into<CloseCode>, reason: &str) -> Result<()> {
        self.close_with(Some(CloseFrame::new(code.into(), reason)))
    }

    /// [`close`](Self::close) with any close frame, or none.
    ///
    /// # Errors
    ///
    /// As for [`close`](Self::close).
    pub fn close_with(&mut self, frame: Option<CloseFrame>) -> Result<()> {
        let result = self.sender.close_with(frame);
        if self.sender.shared.wait_done(Instant::now()).is_some() {
            // The reader has at most its end-of-stream wait left.
            if let Some(handle) = self.reader.take() {
                let _ = handle.join();
            }
        }
        result
    }

    /// Drops the connection at once, without a close handshake.
    pub fn shutdown(&mut self) {
        self.sender.shared.end_transport();
        if let Some(handle) = self.reader.take() {
            let _ = handle.join();
        }
    }

    // ----- state -----------------------------------------------------------

    /// Whether the connection is open (no close sent or received).
    pub fn is_open(&self) -> bool {
        self.sender.is_open()
    }

    /// The subprotocol the server selected.
    pub fn subprotocol(&self) -> Option<&str> {
        self.subprotocol.as_deref()
    }

    /// permessage-deflate as negotiated (see [`crate::WebSocket::deflate`]).
    pub fn deflate(&self) -> Option<&floodgate_proto::deflate::PerMessageDeflate> {
        self.deflate.as_ref()
    }

    /// The handshake status (101).
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The server's handshake response headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }
}

impl<S: Transport> Drop for BufferedWebSocket<S> {
    fn drop(&mut self) {
        // The reader thread sees end of stream and ends by itself.
        self.sender.shared.end_transport();
    }
}

/// Iterator returned by [`BufferedWebSocket::messages`].
#[derive(Debug)]
pub struct BufferedMessages<'a> {
    buffer: &'a Buffer,
    done: bool,
}

impl Iterator for BufferedMessages<'_> {
    type Item = Result<Delivered>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.buffer.recv().map_err(Error::from) {
            Ok(message) => Some(Ok(message)),
            Err(e) => {
                self.done = true;
                if e.is_closed() {
                    None
                } else {
                    Some(Err(e))
                }
            }
        }
    }
}
