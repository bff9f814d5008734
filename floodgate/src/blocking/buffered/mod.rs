//! [`BufferedWebSocket`]: a connection whose reader runs on its own thread
//! and feeds a bounded [`Buffer`], so that a slow consumer neither starves
//! the connection's pings nor lets an invisible backlog grow.
//!
//! One [`Connection`] (the protocol and its lifecycle, from
//! `floodgate-proto`) serves the whole connection, behind one lock
//! ([`Shared::core`]); three kinds of threads use it:
//! - the **reader** thread ([`reader`]) owns the read side of the socket.
//!   It decodes each read under the lock, answers pings and the close at
//!   once, pushes data messages into the buffer, and keeps the
//!   connection's timers: keepalive pings, the pong, close and send
//!   deadlines. It never waits on a write: what it queues is written by
//!   whoever holds the wire, or by itself with a short bound.
//! - **senders** ([`Sender`], any thread) encode under the lock, take the
//!   bytes out and write them under a second lock, the **wire**
//!   ([`Shared::wire`]), which only orders the writes. A sender blocked on
//!   a full socket holds the wire, never the connection, so the reader
//!   goes on reading and its deadlines end a connection whose server
//!   stopped reading (the shutdown also frees the blocked sender).
//! - the **consumer** takes messages from the [`Buffer`].
//!
//! The socket is split with [`Transport::try_clone`] (one descriptor to
//! read, one to write, one to shut down with), so that none of them waits
//! for another's lock. The reader reads into chunks it reuses once the
//! consumer has dropped their messages ([`chunks`]), and wakes a waiting
//! consumer once per run of reads rather than per read (see
//! `Reader::fill`).

mod chunks;
pub(crate) mod reader;
mod sender;

pub use sender::Sender;

use crate::blocking::websocket::WebSocket;
use crate::buffer::{Buffer, BufferConfig, Delivered, Stats};
use crate::dial::stream::{Stream, Transport};
use crate::error::{Error, ErrorKind, Result};
use crate::ingest::Ingest;
use crate::lifecycle::ArmedTimeout;
use chunks::ChunkPool;
use floodgate_proto::connection::{Connection, End, WRITE_IN_PIECES_FROM};
use floodgate_proto::{CloseCode, CloseFrame, Message, OpCode, UsageError};
use http::{HeaderMap, StatusCode};
use reader::Reader;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The connection's state, under [`Shared::core`].
#[derive(Debug)]
pub(crate) struct Core {
    pub(crate) conn: Connection,
    /// The transport was shut down: every send fails with `AlreadyClosed`.
    pub(crate) ended: bool,
}

/// The write side: a socket handle, the bytes taken from the connection
/// and not written yet, and the socket's write timeout as last set.
#[derive(Debug)]
pub(crate) struct Wire<S> {
    pub(crate) stream: S,
    pub(crate) out: Vec<u8>,
    pub(crate) armed: ArmedTimeout,
}

/// What the reader, the senders and the consumer share.
#[derive(Debug)]
pub(crate) struct Shared<S> {
    core: Mutex<Core>,
    wire: Mutex<Wire<S>>,
    /// A handle used only to shut the transport down, so that ending the
    /// connection never waits for a sender blocked on the wire.
    killer: Mutex<S>,
    /// Output queued by a thread that could not take the wire: the wire's
    /// holder writes it before it lets go.
    pending: AtomicBool,
    pub(crate) buffer: Arc<Buffer>,
    /// The connection's end, once decided (for a waiting `close`).
    done: Mutex<Option<End>>,
    done_changed: Condvar,
    pub(crate) close_timeout: Duration,
    write_timeout: Option<Duration>,
}

/// How long the reader waits on one write of its own (a pong, a ping, the
/// answer to a close) before it goes back to reading and leaves the rest
/// to the next write: it must not stop reading for a server that does not.
const READER_WRITE_WAIT: Duration = Duration::from_millis(10);

impl<S: Transport> Shared<S> {
    pub(crate) fn core(&self) -> MutexGuard<'_, Core> {
        // A panic while holding it leaves the connection as consistent as
        // between two calls; keep using it.
        self.core.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wire(&self) -> MutexGuard<'_, Wire<S>> {
        self.wire.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Encodes with `encode` (under the connection's lock) and writes the
    /// result (under the wire's): a sender's path.
    pub(crate) fn send_with(
        &self,
        encode: impl FnOnce(&mut Connection) -> std::result::Result<(), UsageError>,
    ) -> Result<()> {
        self.send_encoded(encode, None)
    }

    /// Sends one data message: whole through [`send_with`](Self::send_with),
    /// or, when large, as one frame masked and written a piece at a time
    /// (see [`Connection::write_piece`]), each piece still in the cache
    /// when the kernel copies it. The wire is held throughout, so other
    /// senders wait for it as for any write; what the reader queues
    /// meanwhile (a pong, a close) goes out right after the frame.
    pub(crate) fn send_data(&self, opcode: OpCode, payload: &[u8]) -> Result<()> {
        // Small messages skip the lock that asking takes. (Not in the
        // `match`: the lock would be held through it.)
        let piece = if payload.len() >= WRITE_IN_PIECES_FROM {
            self.core().conn.write_piece(payload.len())
        } else {
            None
        };
        match piece {
            None => self.send_with(|c| c.send_frame(opcode, payload, true)),
            Some(piece) => {
                let start = |c: &mut Connection| c.start_frame(opcode, payload.len(), true);
                self.send_encoded(start, Some((payload, piece)))
            }
        }
    }

    /// Takes the wire, encodes with `encode`, and writes; with `pieces`,
    /// the payload of the frame `encode` started, given and written a
    /// piece at a time.
    fn send_encoded(
        &self,
        encode: impl FnOnce(&mut Connection) -> std::result::Result<(), UsageError>,
        pieces: Option<(&[u8], usize)>,
    ) -> Result<()> {
        let mut wire = self.wire();
        // Only `Timeouts::send` needs to know when a write began: without
        // it, no clock read and no second lock per message.
        let timed = {
            let mut core = self.core();
            if core.ended || core.conn.is_finished() {
                return Err(ErrorKind::AlreadyClosed.into());
            }
            encode(&mut core.conn)?;
            core.conn.take_output(&mut wire.out);
            let timed = core.conn.timeouts().send.is_some();
            if timed {
                core.conn.write_started(Instant::now());
            }
            timed
        };
        let written = match pieces {
            None => self.write_out(&mut wire, self.write_timeout),
            Some((payload, piece)) => self.write_pieces(&mut wire, payload, piece),
        };
        if timed {
            self.core().conn.write_finished();
        }
        self.release(wire);
        written
    }

    /// Gives the open frame its `payload` and writes it, `piece` bytes at
    /// a time (the header is on the wire already).
    fn write_pieces(&self, wire: &mut Wire<S>, payload: &[u8], piece: usize) -> Result<()> {
        let mut rest = payload;
        while !rest.is_empty() {
            let (now, after) = rest.split_at(piece.min(rest.len()));
            rest = after;
            let mut core = self.core();
            core.conn.frame_data(now)?;
            core.conn.take_output(&mut wire.out);
            drop(core);
            if let Err(e) = self.write_out(wire, self.write_timeout) {
                // The frame is completed in the output, so that it never
                // holds the frames queued after it (the rest goes out
                // first with the next write).
                self.core().conn.frame_data(rest)?;
                return Err(e);
            }
        }
        Ok(())
    }

    /// Writes what the wire holds (within `timeout`, `None`: no limit),
    /// then what others queued meanwhile.
    fn write_out(&self, wire: &mut Wire<S>, timeout: Option<Duration>) -> Result<()> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            if self.pending.swap(false, Ordering::SeqCst) {
                self.core().conn.take_output(&mut wire.out);
            }
            if wire.out.is_empty() {
                return Ok(());
            }
            if let Err(e) = write_some(wire, deadline) {
                if e.is_timeout() {
                    return Err(e);
                }
                // The socket failed: nothing more can be written. When a
                // deadline ended the connection (and shut the socket down
                // under this write), that end is the error, not the pipe.
                wire.out.clear();
                let end = self.core().conn.end().cloned();
                self.end_transport();
                return Err(match end {
                    Some(end) => crate::lifecycle::error_of(&end),
                    None => e,
                });
            }
        }
    }

    /// Lets go of the wire; writes what was queued while it was held
    /// (the reader queues without waiting for it).
    fn release(&self, wire: MutexGuard<'_, Wire<S>>) {
        drop(wire);
        // The reader sets `pending` before it tries the wire: either it
        // got the wire, or this sees the flag.
        if self.pending.load(Ordering::SeqCst) {
            self.flush_queued(READER_WRITE_WAIT);
        }
    }

    /// Writes what the connection queued (a pong, a ping, a close), waiting
    /// at most `wait` on the socket, without waiting for a sender that
    /// holds the wire: it writes the output after its own. What did not
    /// fit stays queued for the next writer. Whether everything went out.
    pub(crate) fn flush_queued(&self, wait: Duration) -> bool {
        self.pending.store(true, Ordering::SeqCst);
        let Ok(mut wire) = self.wire.try_lock() else {
            return false;
        };
        let written = self.write_out(&mut wire, Some(wait));
        let done = written.is_ok() && wire.out.is_empty();
        if !done {
            self.pending.store(true, Ordering::SeqCst);
        }
        drop(wire);
        done
    }

    /// Ends the transport for good: senders get `AlreadyClosed`, a sender
    /// blocked on a full socket is freed, and the reader, if still
    /// reading, sees end of stream.
    pub(crate) fn end_transport(&self) {
        {
            let mut core = self.core();
            if core.ended {
                return;
            }
            core.ended = true;
            if !core.conn.is_finished() {
                core.conn.shutdown();
            }
        }
        let _ = self
            .killer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .shutdown();
        // A reader waiting for room under `Block` must not wait for a
        // consumer that may be gone.
        self.buffer.set_closing();
        self.set_done();
    }

    /// Publishes the connection's end, once decided, to a waiting `close`.
    pub(crate) fn set_done(&self) {
        let end = self.core().conn.end().cloned();
        let Some(end) = end else { return };
        let mut done = self.done.lock().unwrap_or_else(|e| e.into_inner());
        if done.is_none() {
            *done = Some(end);
            self.done_changed.notify_all();
        }
    }

    fn wait_done(&self, deadline: Instant) -> Option<End> {
        let done = self.done.lock().unwrap_or_else(|e| e.into_inner());
        let wait = deadline.saturating_duration_since(Instant::now());
        let (done, _) = self
            .done_changed
            .wait_timeout_while(done, wait, |done| done.is_none())
            .unwrap_or_else(|e| e.into_inner());
        done.clone()
    }

    /// The application's close, first half: queue the close (the close
    /// deadline starts), stop blocking the reader on a full buffer, and
    /// write the frame if the wire is free; the reader completes the
    /// handshake. It never waits behind a sender blocked on a full socket:
    /// that sender writes the close after its own bytes, and the close
    /// deadline ends the connection if it never can.
    pub(crate) fn send_close(&self, frame: Option<CloseFrame>) -> Result<()> {
        {
            let mut core = self.core();
            if core.ended || core.conn.end().is_some() {
                return Err(ErrorKind::AlreadyClosed.into());
            }
            // An invalid code or reason, or a close sent already, is
            // refused (`Usage`) before anything changes.
            core.conn.close(frame.as_ref(), Instant::now())?;
        }
        self.buffer.set_closing();
        self.flush_queued(READER_WRITE_WAIT);
        Ok(())
    }

    /// The application's close: [`send_close`](Self::send_close), then
    /// wait for the end the connection decides (the close deadline is the
    /// core's; this thread runs it too, in case the reader is asleep).
    pub(crate) fn close(&self, frame: Option<CloseFrame>) -> Result<()> {
        self.send_close(frame)?;
        let deadline = Instant::now() + self.close_timeout;
        let end = match self.wait_done(deadline) {
            Some(end) => end,
            None => {
                let mut core = self.core();
                core.conn.handle_timeout(Instant::now().max(deadline));
                let end = core.conn.end().cloned().unwrap_or(End::CloseTimeout {
                    timeout: self.close_timeout,
                });
                drop(core);
                self.end_transport();
                end
            }
        };
        match end {
            End::Closed { .. } => Ok(()),
            end => Err(crate::lifecycle::error_of(&end)),
        }
    }
}

/// One write of the wire's bytes, bounded by `deadline`.
fn write_some<S: Transport>(wire: &mut Wire<S>, deadline: Option<Instant>) -> Result<()> {
    use std::io::ErrorKind as Io;
    let now = Instant::now();
    if deadline.is_some_and(|d| now >= d) {
        return Err(crate::error::Error::timeout(
            crate::error::TimeoutKind::Write,
            None,
        ));
    }
    if let Some(timeout) = wire.armed.update(deadline, now) {
        wire.stream.set_write_timeout(timeout)?;
    }
    match wire.stream.write(&wire.out) {
        Ok(0) => Err(std::io::Error::from(Io::WriteZero).into()),
        Ok(n) => {
            wire.out.drain(..n);
            if wire.out.is_empty() {
                wire.stream.flush()?;
            }
            Ok(())
        }
        Err(e) if e.kind() == Io::Interrupted => Ok(()),
        Err(e) if crate::blocking::websocket::is_timeout(&e) => Ok(()),
        Err(e) => Err(e.into()),
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
/// # let server = floodgate_server::Server::bind("127.0.0.1:0", floodgate_server::echo).unwrap();
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
    /// The socket's descriptor (see [`socket_fd`](Self::socket_fd)), read
    /// once here: the streams are behind locks a blocked sender may hold.
    #[cfg(unix)]
    socket_fd: Option<std::os::fd::RawFd>,
}

impl<S: Transport + Send + 'static> BufferedWebSocket<S> {
    pub(crate) fn start(ws: WebSocket<S>, config: &BufferConfig) -> Result<BufferedWebSocket<S>> {
        let parts = ws.into_parts();
        config.validate(parts.conn.protocol().config().max_message_size)?;
        if parts.conn.state() != floodgate_proto::State::Open || parts.finished {
            return Err(ErrorKind::AlreadyClosed.into());
        }
        let write_stream = parts.stream.try_clone()?;
        let killer = parts.stream.try_clone()?;
        // The killer's handle is never read or written, and lives as long
        // as the shared state (so as long as this connection).
        #[cfg(unix)]
        let socket_fd = killer.socket_fd();
        let buffer = Arc::new(Buffer::try_new(config)?);
        let deflate = parts.conn.deflate().cloned();
        let close_timeout = parts.conn.timeouts().close;
        let shared = Arc::new(Shared {
            core: Mutex::new(Core {
                conn: parts.conn,
                ended: false,
            }),
            wire: Mutex::new(Wire {
                stream: write_stream,
                out: Vec::new(),
                armed: ArmedTimeout::default(),
            }),
            killer: Mutex::new(killer),
            pending: AtomicBool::new(false),
            buffer: buffer.clone(),
            done: Mutex::new(None),
            done_changed: Condvar::new(),
            close_timeout,
            write_timeout: parts.write_timeout,
        });
        let read_chunk = parts
            .read_chunk_size
            .unwrap_or(crate::options::BUFFERED_READ_CHUNK);
        let ingest = Ingest::new(
            buffer.clone(),
            config.retains_sparsely(),
            read_chunk,
            config.on_control.clone(),
            config.on_data_frame.clone(),
        );
        let reader = Reader::new(
            parts.stream,
            parts.read_buf,
            read_chunk,
            shared.clone(),
            ingest,
            ChunkPool::new(read_chunk),
        );
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
            #[cfg(unix)]
            socket_fd,
        })
    }
}

impl<S: Transport + Send + 'static> BufferedWebSocket<S> {
    /// Pings the server at once and then every `interval` (as the async
    /// `floodgate::tokio::BufferedWebSocket::keepalive`);
    /// with `timeout`, ends the connection when no pong answers a ping
    /// within `timeout` (see
    /// [`crate::keepalive`]). The pings and the deadline are the reader
    /// thread's (the same as [`ClientBuilder::ping_interval`](crate::ClientBuilder::ping_interval)
    /// and [`ping_timeout`](crate::ClientBuilder::ping_timeout) set at
    /// connect), so neither a slow consumer nor a sender blocked on a full
    /// socket delays them.
    pub fn keepalive(
        &self,
        interval: Duration,
        timeout: Option<Duration>,
        payload: &[u8],
    ) -> crate::blocking::keepalive::Keepalive {
        crate::blocking::keepalive::Keepalive::start(
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

    /// Leases up to `max` messages, waiting at most `wait` for the first
    /// (an empty lease when none came): they stay counted in the buffer
    /// until [`Lease::commit`](crate::buffer::Lease::commit), and go back
    /// to its head if the lease is released or dropped. For a consumer that
    /// hands messages on and must not lose the ones not yet acknowledged;
    /// see [`crate::buffer::Lease`].
    ///
    /// ```no_run
    /// # fn main() -> floodgate::Result<()> {
    /// # fn forward(_: &[floodgate::buffer::Delivered]) -> std::io::Result<()> { Ok(()) }
    /// use std::time::Duration;
    /// let ws = floodgate::Client::default().connect_buffered("ws://127.0.0.1:9001/feed")?;
    /// loop {
    ///     let lease = ws.lease(1024, Duration::from_secs(1))?;
    ///     if forward(lease.messages()).is_ok() {
    ///         lease.commit();
    ///     } // else dropped: the messages come first again
    /// }
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// As for [`recv`](Self::recv).
    pub fn lease(&self, max: usize, wait: Duration) -> Result<crate::buffer::Lease> {
        Ok(self.buffer.lease(max, wait)?)
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
    /// over 123 bytes (nothing is sent), or when a close was sent already;
    /// [`ErrorKind::Timeout`] when the server did not answer (the socket is
    /// shut down); [`ErrorKind::AbnormalClosure`] or another error when the
    /// connection ended otherwise; [`ErrorKind::AlreadyClosed`] once the
    /// connection has ended.
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

    /// Starts the close handshake and returns at once; see
    /// [`Sender::start_close`].
    ///
    /// # Errors
    ///
    /// As for [`Sender::start_close`].
    pub fn start_close(&self, frame: Option<CloseFrame>) -> Result<()> {
        self.sender.start_close(frame)
    }

    /// Drops the connection at once, without a close handshake, and waits
    /// for the reader thread to stop: messages already buffered stay
    /// readable, then the consumer gets [`ErrorKind::AbnormalClosure`]
    /// (see [`Sender::shutdown`]).
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

    /// permessage-deflate as negotiated, or `None` (see
    /// [`crate::WebSocket::deflate`]).
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

    /// The connection's socket descriptor, for socket options
    /// (`getsockopt`, `setsockopt`) only: the reader thread owns the
    /// socket's bytes, so reading or writing it would corrupt the
    /// connection. Valid while this connection lives (even after the
    /// transport is shut down); `None` when the transport is not a socket.
    /// To wait for messages with `select` or `poll`, wait on the buffer
    /// ([`Buffer::poll_ready`]) instead: this socket is readable whenever
    /// bytes arrive, not when a message can be taken.
    ///
    /// ```no_run
    /// # fn demo() -> floodgate::Result<()> {
    /// use std::os::fd::BorrowedFd;
    /// let ws = floodgate::Client::builder().connect_buffered("ws://127.0.0.1:9001/")?;
    /// if let Some(fd) = ws.socket_fd() {
    ///     // SAFETY: the descriptor stays open while `ws` lives.
    ///     let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    ///     println!("TCP_NODELAY: {}", socket2::SockRef::from(&fd).tcp_nodelay()?);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(unix)]
    pub fn socket_fd(&self) -> Option<std::os::fd::RawFd> {
        self.socket_fd
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
