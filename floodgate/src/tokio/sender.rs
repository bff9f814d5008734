//! The write side of an async connection: the state the halves share
//! ([`Shared`]: the connection and the writer) and the cloneable [`Sender`].
//!
//! One [`Connection`] (protocol and lifecycle, from `floodgate-proto`) per
//! connection, behind a `std::sync::Mutex` that is held only while bytes
//! are decoded or a frame is encoded, never across an `.await`. Writes go
//! through one `tokio::sync::Mutex` around the write half and a queue of
//! encoded bytes: whoever holds it writes out everything queued, in order,
//! so frames from concurrent senders (and the pongs the receiver queues)
//! never interleave, and a write cancelled half-way leaves its rest at the
//! front of the queue for the next writer, not a torn frame.
//!
//! A write waits at most until the connection's next deadline
//! ([`Connection::poll_timeout`]): then the deadline runs, and a
//! connection it ended (no pong, a stalled send, a close not answered) is
//! shut down at the socket, which also frees any other task waiting on it.
//! The receiver never waits for the writer's lock: what it queues (a pong,
//! the answer to a close) is written by the lock's holder.

use super::stream::AsyncStream;
use crate::error::{Error, ErrorKind, Result, TimeoutKind};
use crate::lifecycle::{earliest, error_of};
use floodgate_proto::connection::{Connection, End, WRITE_IN_PIECES_FROM};
use floodgate_proto::deflate::PerMessageDeflate;
use floodgate_proto::frame::MAX_CONTROL_PAYLOAD;
use floodgate_proto::{CloseCode, CloseFrame, Message, OpCode};
use futures_sink::Sink;
use http::{HeaderMap, StatusCode};
use std::borrow::Borrow;
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncWriteExt, WriteHalf};
use tokio::time::Instant;

/// A write queue larger than this is freed once a write out used less than
/// a quarter of it.
const KEEP_WRITE_QUEUE: usize = 64 * 1024;

/// The [`Sink`] writes what it has encoded once this much waits, without
/// waiting for `poll_flush`: large enough that a run of small messages
/// costs one system call per thousands, small enough to stay in cache.
const SINK_WRITE_AT: usize = 64 * 1024;

/// The [`Sink`] encodes the messages fed to it this many at a time, under
/// one lock of the connection: taking the lock per message cost a small
/// message's send a fifth of its time (`send --sizes 16`, async row).
const STASH_MESSAGES: usize = 64;

/// ... or once this many payload bytes are fed, so that the connection's
/// output (what `poll_ready` bounds) never lags far behind what was fed.
const STASH_BYTES: usize = 16 * 1024;

/// What the halves share: the connection, the writer, and what the
/// handshake said (so that halves put back together by
/// [`Receiver::reunite`](super::Receiver::reunite) still know it).
pub(super) struct Shared {
    conn: Mutex<Connection>,
    pub(super) writer: ::tokio::sync::Mutex<Writer>,
    pub(super) close_timeout: Duration,
    /// Bounds each write to the transport, as the blocking client's
    /// `SO_SNDTIMEO` does.
    pub(super) write_timeout: Option<Duration>,
    pub(super) handshake: Handshake,
    /// Output queued by a task that did not take the writer: its holder
    /// writes it before it lets go.
    pending: AtomicBool,
    /// Wakes the buffered connection's reader task when a deadline was
    /// added from outside (a keepalive, a close).
    pub(super) timers_changed: ::tokio::sync::Notify,
    /// Told when the buffered connection's reader reported the end (for
    /// a waiting `close`).
    pub(super) end_reported: ::tokio::sync::Notify,
    /// Told when the connection's end was decided, by whichever task
    /// decided it (for [`Sender::close`], which waits for it).
    end_decided: ::tokio::sync::Notify,
    /// `end_decided` was told.
    end_told: AtomicBool,
    /// The connection can no longer send (a close sent or received, or
    /// the end): set by [`ConnGuard`] as the lock is let go, so that the
    /// [`Sink`]'s `start_send` refuses at once without taking the lock.
    cannot_send: AtomicBool,
    /// The socket, to shut down without the writer's lock (which a write
    /// to a peer that stopped reading may hold for ever). Valid while the
    /// write half, which `writer` owns, is alive.
    #[cfg(unix)]
    fd: std::os::fd::RawFd,
    killed: AtomicBool,
}

/// The server's answer to the opening handshake.
pub(super) struct Handshake {
    pub(super) status: StatusCode,
    pub(super) headers: HeaderMap,
    pub(super) subprotocol: Option<String>,
    /// permessage-deflate as negotiated: kept here, out of the lock, so
    /// that `deflate()` can lend it as the blocking connections do.
    pub(super) deflate: Option<PerMessageDeflate>,
}

/// The connection, locked; when the lock is let go after the connection's
/// end was decided, a [`Sender::close`] waiting for it is told. Whoever
/// decides the end (the receiver, the reader task, a deadline run by a
/// writer, a shutdown) goes through this guard, so none of them has to
/// remember to.
pub(super) struct ConnGuard<'a> {
    guard: MutexGuard<'a, Connection>,
    shared: &'a Shared,
}

impl std::ops::Deref for ConnGuard<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        &self.guard
    }
}

impl std::ops::DerefMut for ConnGuard<'_> {
    fn deref_mut(&mut self) -> &mut Connection {
        &mut self.guard
    }
}

impl Drop for ConnGuard<'_> {
    fn drop(&mut self) {
        // Once it cannot send, a connection never can again.
        if !self.shared.cannot_send.load(Ordering::Relaxed) && !self.guard.can_send() {
            self.shared.cannot_send.store(true, Ordering::Release);
        }
        if !self.shared.end_told.load(Ordering::Relaxed)
            && self.guard.end().is_some()
            && !self.shared.end_told.swap(true, Ordering::SeqCst)
        {
            self.shared.end_decided.notify_waiters();
        }
    }
}

pub(super) struct Writer {
    pub(super) io: WriteHalf<AsyncStream>,
    /// Encoded bytes, complete frames in order; `queue[written..]` is not
    /// written yet. A `Vec` with a cursor rather than a `BytesMut`, so an
    /// empty queue can swap buffers with the connection's output
    /// ([`Connection::take_output`]) instead of copying every frame.
    pub(super) queue: Vec<u8>,
    pub(super) written: usize,
    pub(super) shut_down: bool,
}

impl Shared {
    pub(super) fn new(
        conn: Connection,
        io: WriteHalf<AsyncStream>,
        #[cfg(unix)] fd: std::os::fd::RawFd,
        close_timeout: Duration,
        write_timeout: Option<Duration>,
        handshake: Handshake,
    ) -> Shared {
        Shared {
            conn: Mutex::new(conn),
            writer: ::tokio::sync::Mutex::new(Writer {
                io,
                queue: Vec::new(),
                written: 0,
                shut_down: false,
            }),
            close_timeout,
            write_timeout,
            handshake,
            pending: AtomicBool::new(false),
            timers_changed: ::tokio::sync::Notify::new(),
            end_reported: ::tokio::sync::Notify::new(),
            end_decided: ::tokio::sync::Notify::new(),
            end_told: AtomicBool::new(false),
            cannot_send: AtomicBool::new(false),
            #[cfg(unix)]
            fd,
            killed: AtomicBool::new(false),
        }
    }

    pub(super) fn conn(&self) -> ConnGuard<'_> {
        // A panic while holding the lock cannot leave the connection half
        // updated in a way that matters more than the panic itself.
        ConnGuard {
            guard: self.conn.lock().unwrap_or_else(|e| e.into_inner()),
            shared: self,
        }
    }

    /// Encodes with `encode` and writes out everything queued.
    pub(super) async fn send_with<F>(&self, encode: F) -> Result<()>
    where
        F: FnOnce(&mut Connection) -> std::result::Result<(), floodgate_proto::UsageError>,
    {
        self.send_encoded(encode, None).await
    }

    /// Sends one data message: whole through [`send_with`](Self::send_with),
    /// or, when large, as one frame masked and written a piece at a time
    /// (see [`Connection::write_piece`]), each piece still in the cache
    /// when the kernel copies it. The writer is held throughout, so other
    /// tasks' sends wait for it as for any write; what is queued without
    /// the writer meanwhile (the reader's pongs, a `Sink`'s messages, a
    /// close) goes out right after the frame.
    pub(super) async fn send_data(&self, opcode: OpCode, payload: &[u8]) -> Result<()> {
        // Small messages skip the lock that asking takes. (Not in the
        // `match`: the lock would be held through it.)
        let piece = if payload.len() >= WRITE_IN_PIECES_FROM {
            self.conn().write_piece(payload.len())
        } else {
            None
        };
        match piece {
            None => {
                self.send_with(|c| c.send_frame(opcode, payload, true))
                    .await
            }
            Some(piece) => {
                let start = |c: &mut Connection| c.start_frame(opcode, payload.len(), true);
                self.send_encoded(start, Some((payload, piece))).await
            }
        }
    }

    /// Takes the writer, encodes with `encode`, and writes out everything
    /// queued; with `pieces`, the payload of the frame `encode` started,
    /// given and written a piece at a time.
    async fn send_encoded<F>(&self, encode: F, pieces: Option<(&[u8], usize)>) -> Result<()>
    where
        F: FnOnce(&mut Connection) -> std::result::Result<(), floodgate_proto::UsageError>,
    {
        let mut writer = self.writer.lock().await;
        if writer.shut_down {
            return Err(ErrorKind::AlreadyClosed.into());
        }
        // Only `Timeouts::send` needs to know when a write began: without
        // it, no clock read and no second lock per message.
        let timed = {
            let mut conn = self.conn();
            if conn.is_finished() {
                return Err(ErrorKind::AlreadyClosed.into());
            }
            encode(&mut conn)?;
            let timed = conn.timeouts().send.is_some();
            if timed {
                conn.write_started(Instant::now().into_std());
            }
            timed
        };
        let written = match pieces {
            None => writer.write_out(self).await,
            Some((payload, piece)) => self.write_pieces(&mut writer, payload, piece).await,
        };
        if timed {
            self.conn().write_finished();
        }
        drop(writer);
        self.write_pending().await;
        written
    }

    /// Gives the open frame its `payload` and writes it, `piece` bytes at
    /// a time.
    async fn write_pieces(&self, writer: &mut Writer, payload: &[u8], piece: usize) -> Result<()> {
        // Dropped half-way (a cancelled send), or failed, the frame is
        // completed in the output, so that it never holds the frames queued
        // after it: the rest goes out first with the next write.
        let mut open = OpenFrame {
            shared: self,
            rest: payload,
        };
        while !open.rest.is_empty() {
            let (now, rest) = open.rest.split_at(piece.min(open.rest.len()));
            self.conn().frame_data(now)?;
            open.rest = rest;
            writer.write_out(self).await?;
        }
        Ok(())
    }

    /// Sends a close frame: the close deadline starts.
    ///
    /// It never waits behind a send blocked on a full socket: the frame is
    /// queued, and whoever holds the writer writes it after its own bytes;
    /// the close deadline ends the connection if that never happens.
    pub(super) async fn send_close(&self, frame: Option<CloseFrame>) -> Result<()> {
        {
            let mut conn = self.conn();
            if conn.is_finished() || conn.end().is_some() {
                return Err(ErrorKind::AlreadyClosed.into());
            }
            // An invalid code or reason, or a close sent already, is
            // refused (`Usage`) before anything changes.
            conn.close(frame.as_ref(), Instant::now().into_std())?;
        }
        self.timers_changed.notify_one();
        self.flush().await
    }

    /// Waits for the connection's end, as decided by whoever reads (the
    /// [`Receiver`](super::Receiver), the buffered connection's reader
    /// task), for at most `close_timeout`: then the close deadline is run
    /// here, as the blocking buffered connection's `close` does, and the
    /// transport is cut off.
    pub(super) async fn wait_end(&self) -> Result<()> {
        let deadline = Instant::now() + self.close_timeout;
        let end = loop {
            let decided = self.end_decided.notified();
            if let Some(end) = self.conn().end().cloned() {
                break end;
            }
            ::tokio::select! {
                () = decided => {}
                () = ::tokio::time::sleep_until(deadline) => {
                    let end = {
                        let mut conn = self.conn();
                        conn.handle_timeout(Instant::now().max(deadline).into_std());
                        conn.end().cloned().unwrap_or(End::CloseTimeout {
                            timeout: self.close_timeout,
                        })
                    };
                    self.kill();
                    break end;
                }
            }
        };
        match end {
            End::Closed { .. } => Ok(()),
            end => Err(error_of(&end)),
        }
    }

    /// Writes out what the connection queued (a pong, a close reply, a
    /// keepalive ping) unless another task holds the writer, which then
    /// writes it after its own bytes. Waits for the socket no longer than
    /// the connection's next deadline.
    pub(super) async fn flush(&self) -> Result<()> {
        self.pending.store(true, Ordering::SeqCst);
        let Ok(mut writer) = self.writer.try_lock() else {
            return Ok(());
        };
        if writer.shut_down {
            return Ok(());
        }
        let written = writer.write_out(self).await;
        drop(writer);
        written
    }

    /// After letting go of the writer: what was queued meanwhile by a task
    /// that found it taken.
    async fn write_pending(&self) {
        if self.pending.load(Ordering::SeqCst) {
            let _ = Box::pin(self.flush()).await;
        }
    }

    /// Writes out what is queued and ends the write side (TLS sends its
    /// close_notify), within the connection's `fail_grace`: the lifecycle
    /// is over, so a writer that cannot be had in that time (a write
    /// blocked on a peer that stopped reading) is cut off at the socket.
    pub(super) async fn shutdown(&self) {
        let grace = self.conn().timeouts().fail_grace;
        let done = ::tokio::time::timeout(grace, async {
            let mut writer = self.writer.lock().await;
            if writer.shut_down {
                return;
            }
            writer.shut_down = true;
            if !self.was_killed() {
                let _ = writer.write_out(self).await;
                let _ = writer.io.shutdown().await;
            }
        })
        .await;
        if done.is_err() {
            self.kill();
        }
    }

    /// Ends the connection at once at the socket: reads see the end,
    /// a write blocked on a full socket fails, and the connection is
    /// finished ([`End::Shutdown`](floodgate_proto::End::Shutdown) unless
    /// its end was decided).
    pub(super) fn kill(&self) {
        self.conn().shutdown();
        if self.killed.swap(true, Ordering::SeqCst) {
            return;
        }
        #[cfg(unix)]
        {
            // SAFETY: the descriptor is the write half's, which `self`
            // owns (in `writer`): it is open for as long as `self` lives.
            let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(self.fd) };
            let _ = socket2::SockRef::from(&fd).shutdown(std::net::Shutdown::Both);
        }
        self.timers_changed.notify_one();
    }

    /// Whether the socket was cut off here.
    pub(super) fn was_killed(&self) -> bool {
        self.killed.load(Ordering::SeqCst)
    }
}

/// The opcode of a data message (a text or binary one).
fn data_opcode(message: &Message) -> OpCode {
    match message {
        Message::Text(_) => OpCode::Text,
        _ => OpCode::Binary,
    }
}

/// A frame begun with [`Connection::start_frame`] by
/// [`Shared::send_data`] and the payload it still lacks: completed in the
/// output when dropped.
struct OpenFrame<'a> {
    shared: &'a Shared,
    rest: &'a [u8],
}

impl Drop for OpenFrame<'_> {
    fn drop(&mut self) {
        if !self.rest.is_empty() {
            // Within the length `start_frame` was given: it cannot fail.
            let _ = self.shared.conn().frame_data(self.rest);
        }
    }
}

impl Writer {
    async fn write_out(&mut self, shared: &Shared) -> Result<()> {
        let user_deadline = shared.write_timeout.map(|t| Instant::now() + t);
        loop {
            let deadline = {
                let mut conn = shared.conn();
                shared.pending.store(false, Ordering::SeqCst);
                if conn.has_output() {
                    if self.written == self.queue.len() {
                        self.queue.clear();
                        self.written = 0;
                    }
                    conn.take_output(&mut self.queue);
                }
                earliest(conn.poll_timeout().map(Instant::from_std), user_deadline)
            };
            let unwritten = &self.queue[self.written..];
            if unwritten.is_empty() {
                break;
            }
            // `write` (not `write_all`): cancel-safe, so the queue always
            // tells what is still to go, also after a timeout (the rest
            // goes out first with the next write, as in the blocking
            // client).
            let written = match deadline {
                None => Some(self.io.write(unwritten).await),
                Some(deadline) => ::tokio::time::timeout_at(deadline, self.io.write(unwritten))
                    .await
                    .ok(),
            };
            match written {
                Some(Ok(0)) => return Err(io::Error::from(io::ErrorKind::WriteZero).into()),
                Some(Ok(n)) => self.written += n,
                Some(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Some(Err(e)) => {
                    if let Some(end) = shared.conn().end() {
                        // Cut off at the socket by a deadline: say which.
                        return Err(error_of(end));
                    }
                    return Err(e.into());
                }
                None => {
                    let now = Instant::now();
                    let ended = {
                        let mut conn = shared.conn();
                        conn.handle_timeout(now.into_std());
                        conn.is_finished().then(|| conn.end().cloned()).flatten()
                    };
                    if let Some(end) = ended {
                        shared.kill();
                        return Err(error_of(&end));
                    }
                    if user_deadline.is_some_and(|d| now >= d) {
                        return Err(Error::timeout(TimeoutKind::Write, shared.write_timeout));
                    }
                }
            }
        }
        let flushed = match user_deadline {
            None => Ok(self.io.flush().await),
            Some(deadline) => ::tokio::time::timeout_at(deadline, self.io.flush()).await,
        };
        flushed.map_err(|_| Error::timeout(TimeoutKind::Write, shared.write_timeout))??;
        // As the connection's own output buffer: a large queue is kept
        // while the writes use it, let go by the first that does not.
        let used = std::mem::take(&mut self.written);
        self.queue.clear();
        if self.queue.capacity() > KEEP_WRITE_QUEUE && used < self.queue.capacity() / 4 {
            self.queue = Vec::new();
        }
        Ok(())
    }
}

// ----- the send half ---------------------------------------------------------

type SendFuture = Pin<Box<dyn Future<Output = Result<()>> + Send>>;

/// The sending half of an async [`WebSocket`](super::WebSocket) or
/// [`BufferedWebSocket`](super::BufferedWebSocket): clone it and send from
/// any task. Frames are written under one lock, in the order their sends
/// took it, so concurrent sends never interleave frames. Its methods have
/// the blocking [`crate::Sender`]'s names and contracts.
///
/// Also a [`Sink`] of messages, which batches: `start_send` (`feed`)
/// keeps the message, and encodes what was fed into the connection's
/// output 64 messages (or 16 KiB) at a time, under one lock;
/// `poll_flush` encodes the rest and writes everything queued with one
/// system call, and `poll_ready` writes first once 64 KiB wait. A data
/// message of 128 KiB or more is written as [`send_binary`](Self::send_binary)
/// writes it, a piece at a time, by the `poll_ready` or `poll_flush`
/// after its `start_send`. A message
/// the protocol refuses (a control payload over 125 bytes, a connection
/// that has ended or sent its close) fails in its `start_send`; when the
/// connection closes while fed messages wait to be encoded, the call that
/// encodes them fails (`start_send`, `poll_flush` or `poll_close`), and
/// they are dropped. Messages fed to one `Sender` go out in the order
/// fed, and before anything that `Sender` sends afterwards by its other
/// methods (which first finish a write the sink began, for instance under
/// a flush that was cancelled); a `Sender` dropped with messages fed and
/// not flushed encodes them, and the next write of any task sends them.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> floodgate::Result<()> {
/// # let server = floodgate_server::Server::bind("127.0.0.1:0", floodgate_server::echo).unwrap();
/// let (sender, mut receiver) = floodgate::tokio::connect(&server.url()).await?.split();
/// let tasks: Vec<_> = (0..4)
///     .map(|i| {
///         let sender = sender.clone();
///         tokio::spawn(async move { sender.send_binary(&[i; 1000]).await })
///     })
///     .collect();
/// for task in tasks {
///     task.await.expect("the task")?;
/// }
/// for _ in 0..4 {
///     assert_eq!(receiver.recv().await?.len(), 1000);
/// }
/// # Ok(())
/// # }
/// ```
///
/// # Cancel safety
///
/// The send methods are not cancel-safe in the sense that a dropped send
/// may or may not have sent its message; they never corrupt the stream:
/// a frame whose write was cut short is finished by the next send.
pub struct Sender {
    pub(super) shared: Arc<Shared>,
    /// The [`Sink`]'s state. Behind a mutex only so that `Sender` stays
    /// `Sync`: the sink's methods (`&mut self`) reach it without locking,
    /// and the send methods (`&self`) lock it once per call, to encode
    /// what was fed before their own message. Boxed: most senders never
    /// use the sink, and `Sender` (in `WebSocket`, `ReuniteError`) stays
    /// two words.
    sink: Box<Mutex<SinkState>>,
}

#[derive(Default)]
struct SinkState {
    /// The send in progress: it may hold the writer while suspended.
    sending: Option<SendFuture>,
    /// A large data message fed, whose write in pieces has not begun:
    /// `poll_sink` begins it. Kept as a message until then, so that a
    /// `Sender` dropped first encodes it, and the frame is not opened
    /// (holding back every other frame) before anyone drives it.
    large: Option<Message>,
    /// `poll_close` ran.
    closed: bool,
    /// Bytes queued in the connection's output after the sink last
    /// encoded: `poll_ready` decides on it without taking the
    /// connection's lock again.
    queued: usize,
    /// Messages fed and not encoded yet, and their payload bytes.
    stash: Vec<Message>,
    stash_bytes: usize,
}

impl SinkState {
    /// Encodes the stash in order under one lock of the connection, and
    /// returns how much output the connection then holds. The messages
    /// after one the connection refuses are dropped with it: a refusal
    /// here means the connection can no longer send (checks that depend on
    /// the message alone were made when it was fed).
    fn encode(&mut self, shared: &Shared) -> Result<usize> {
        self.stash_bytes = 0;
        let mut conn = shared.conn();
        let mut messages = self.stash.drain(..);
        if conn.is_finished() {
            return Err(ErrorKind::AlreadyClosed.into());
        }
        for message in messages.by_ref() {
            conn.send(&message)?;
        }
        // Counted with what waits for another task's message written in
        // pieces, which holds it back.
        self.queued = conn.queued_len();
        Ok(self.queued)
    }
}

impl Clone for Sender {
    fn clone(&self) -> Sender {
        Sender::new(self.shared.clone())
    }
}

impl Drop for Sender {
    /// Messages fed and not flushed are encoded, as they were when fed:
    /// the next write of any task sends them.
    fn drop(&mut self) {
        let (shared, sink) = self.parts();
        if let Some(message) = sink.large.take() {
            let _ = shared.conn().send(&message);
        }
        if !sink.stash.is_empty() {
            let _ = sink.encode(shared);
        }
    }
}

impl fmt::Debug for Sender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("state", &self.shared.conn().state())
            .finish_non_exhaustive()
    }
}

impl Sender {
    pub(super) fn new(shared: Arc<Shared>) -> Sender {
        Sender {
            shared,
            sink: Box::new(Mutex::new(SinkState::default())),
        }
    }

    fn sink_state(&mut self) -> &mut SinkState {
        self.parts().1
    }

    /// The connection and the sink's state, borrowed at once.
    fn parts(&mut self) -> (&Shared, &mut SinkState) {
        let sink = self.sink.get_mut().unwrap_or_else(|e| e.into_inner());
        (&self.shared, sink)
    }

    /// Sends or encodes what was fed to the sink and not sent yet, so
    /// that it goes before what the caller sends next: the sink's send in
    /// progress is finished here (it may hold the writer, which this
    /// caller is about to wait for), a large message not begun is sent,
    /// and the stash is encoded. (At most one of the three is there: the
    /// sink finishes each before it takes the next message.)
    async fn fed_first(&self) -> Result<()> {
        let (sending, large) = {
            let mut sink = self.sink.lock().unwrap_or_else(|e| e.into_inner());
            if sink.sending.is_none() && sink.large.is_none() {
                if sink.stash.is_empty() {
                    return Ok(());
                }
                return sink.encode(&self.shared).map(drop);
            }
            (sink.sending.take(), sink.large.take())
        };
        if let Some(sending) = sending {
            sending.await?;
        }
        if let Some(message) = large {
            self.shared
                .send_data(data_opcode(&message), message.as_bytes())
                .await?;
        }
        Ok(())
    }

    /// Sends a message (text, binary, ping, pong; a `Close` message runs
    /// [`close_with`](Self::close_with), as in the blocking client).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::AlreadyClosed`] once the connection has ended;
    /// [`ErrorKind::Usage`] when the protocol forbids it (e.g. after a
    /// close was sent); I/O errors; [`ErrorKind::Timeout`] when a write to
    /// the transport took longer than
    /// [`write_timeout`](crate::ClientBuilder::write_timeout) (the
    /// connection stays usable: the unsent rest of the frame goes out
    /// first with the next send). For a `Close` message, as for
    /// [`close`](Self::close).
    pub async fn send(&self, message: impl Into<Message>) -> Result<()> {
        self.fed_first().await?;
        match message.into() {
            Message::Close(frame) => self.close_with(frame).await,
            Message::Text(text) => self.shared.send_data(OpCode::Text, text.as_bytes()).await,
            Message::Binary(data) => self.shared.send_data(OpCode::Binary, &data).await,
            message => self.shared.send_with(|c| c.send(&message)).await,
        }
    }

    /// Sends several messages with one write, as the blocking
    /// [`Sender::send_all`](crate::Sender::send_all): each is encoded after
    /// the other under the connection's lock and the lot is written
    /// together, so they reach the peer in order with nothing from another
    /// task in between. A `Close` message ends the batch: what came before
    /// it is written, then the connection is closed as by
    /// [`close_with`](Self::close_with). Messages are taken owned or
    /// borrowed: `send_all(&batch)` encodes a slice of messages where they
    /// are, without cloning them.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> floodgate::Result<()> {
    /// # let server = floodgate_server::Server::bind("127.0.0.1:0", floodgate_server::echo).unwrap();
    /// use floodgate::Message;
    /// let ws = floodgate::Client::default().connect_buffered_async(&server.url()).await?;
    /// ws.sender().send_all(["one", "two", "three"].map(Message::text)).await?;
    /// let mut got = Vec::new();
    /// while got.len() < 3 {
    ///     got.extend(ws.recv_batch(3, std::time::Duration::from_secs(5)).await?);
    /// }
    /// assert_eq!(got[2].as_text(), Some("three"));
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// As for [`send`](Self::send); when a message is refused (a control
    /// payload over 125 bytes), the messages before it are still written.
    pub async fn send_all<I>(&self, messages: I) -> Result<()>
    where
        I: IntoIterator,
        I::Item: Borrow<Message>,
    {
        self.fed_first().await?;
        let mut close = None;
        let mut refused = None;
        let written = self
            .shared
            .send_with(|conn| {
                for message in messages {
                    let message = message.borrow();
                    if let Message::Close(frame) = message {
                        close = Some(frame.clone());
                        break;
                    }
                    if let Err(e) = conn.send(message) {
                        refused = Some(e);
                        break;
                    }
                }
                Ok(())
            })
            .await;
        written?;
        if let Some(e) = refused {
            return Err(e.into());
        }
        match close {
            Some(frame) => self.close_with(frame).await,
            None => Ok(()),
        }
    }

    /// Sends a text message.
    ///
    /// # Errors
    ///
    /// As for [`send`](Self::send).
    pub async fn send_text(&self, text: &str) -> Result<()> {
        self.fed_first().await?;
        self.shared.send_data(OpCode::Text, text.as_bytes()).await
    }

    /// Sends a binary message.
    ///
    /// # Errors
    ///
    /// As for [`send`](Self::send).
    pub async fn send_binary(&self, data: &[u8]) -> Result<()> {
        self.fed_first().await?;
        self.shared.send_data(OpCode::Binary, data).await
    }

    /// Sends one raw frame, so a caller can fragment a message (see the
    /// blocking [`crate::WebSocket::send_frame`]). Fragments of one
    /// message must come from one task: another task's message would be
    /// refused in between.
    ///
    /// # Errors
    ///
    /// As for [`send`](Self::send); [`ErrorKind::Usage`] for a frame out of
    /// sequence or a malformed control frame.
    pub async fn send_frame(&self, opcode: OpCode, payload: &[u8], fin: bool) -> Result<()> {
        self.fed_first().await?;
        self.shared
            .send_with(|c| c.send_frame(opcode, payload, fin))
            .await
    }

    /// Sends a ping (payload at most 125 bytes).
    ///
    /// # Errors
    ///
    /// As for [`send`](Self::send).
    pub async fn ping(&self, payload: &[u8]) -> Result<()> {
        self.fed_first().await?;
        self.shared.send_with(|c| c.send_ping(payload)).await
    }

    /// Sends a pong (payload at most 125 bytes).
    ///
    /// # Errors
    ///
    /// As for [`send`](Self::send).
    pub async fn pong(&self, payload: &[u8]) -> Result<()> {
        self.fed_first().await?;
        self.shared.send_with(|c| c.send_pong(payload)).await
    }

    /// Closes the connection, as the blocking
    /// [`Sender::close`](crate::Sender::close): sends a close frame with
    /// `code` and `reason`, then waits up to `close_timeout` for the
    /// server's close. The server's close is read by whoever receives: the
    /// buffered connection's reader task, or the [`Receiver`](super::Receiver)
    /// of a split connection, which must be receiving meanwhile (it then
    /// gets [`ErrorKind::ConnectionClosed`]). To send the close frame and
    /// return at once, use [`start_close`](Self::start_close).
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe: dropped half-way, the close frame may be sent
    /// without the wait for the server's answer.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Usage`] for a code that must not be sent or a reason
    /// over 123 bytes (nothing is sent), or when a close was sent already;
    /// [`ErrorKind::Timeout`] when the server did not answer in time (the
    /// transport is shut down); [`ErrorKind::AbnormalClosure`] or another
    /// error when the connection ended otherwise; [`ErrorKind::AlreadyClosed`]
    /// once the connection has ended.
    pub async fn close(&self, code: impl Into<CloseCode>, reason: &str) -> Result<()> {
        self.close_with(Some(CloseFrame::new(code.into(), reason)))
            .await
    }

    /// [`close`](Self::close) with any close frame, or none.
    ///
    /// # Errors
    ///
    /// As for [`close`](Self::close).
    pub async fn close_with(&self, frame: Option<CloseFrame>) -> Result<()> {
        self.start_close(frame).await?;
        self.shared.wait_end().await
    }

    /// Starts the close handshake and returns once the close frame is
    /// written (or queued behind a send blocked on a full socket), as the
    /// blocking [`Sender::start_close`](crate::Sender::start_close): the
    /// close deadline starts, and whoever receives completes the handshake
    /// and gets [`ErrorKind::ConnectionClosed`] when the server answers.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Usage`] for a code or reason that must not be sent
    /// (nothing is sent), or when a close was sent already;
    /// [`ErrorKind::AlreadyClosed`] once the connection has ended; I/O
    /// errors.
    pub async fn start_close(&self, frame: Option<CloseFrame>) -> Result<()> {
        // What was fed and cannot go does not stop the close.
        let _ = self.fed_first().await;
        self.shared.send_close(frame).await
    }

    /// Drops the connection at once, without a close handshake, as the
    /// blocking [`Sender::shutdown`](crate::Sender::shutdown): the socket
    /// is shut down (which frees a send blocked on it), and the receiving
    /// side then gets [`ErrorKind::AbnormalClosure`] (after the messages
    /// already buffered, on the buffered connection). It never waits.
    pub fn shutdown(&self) {
        tracing::debug!("shutting the connection down without a close handshake (async)");
        self.shared.kill();
    }

    /// Whether messages can still be sent: no close sent or received, and
    /// the transport alive.
    pub fn is_open(&self) -> bool {
        let conn = self.shared.conn();
        conn.can_send() && !conn.is_finished() && !self.shared.was_killed()
    }

    /// Encodes what was fed (see [`SinkState::encode`]).
    fn encode_fed(&mut self) -> Result<usize> {
        let (shared, sink) = self.parts();
        sink.encode(shared)
    }

    /// Takes a large data message as the sink's next send, after what was
    /// fed: as `send_binary` does, one frame masked and written a piece at
    /// a time (see [`Shared::send_data`]), which `start_send` could not
    /// do, since it cannot wait for the socket between pieces.
    /// `poll_ready` and `poll_flush` begin and drive it.
    fn keep_large(&mut self, message: Message) -> Result<()> {
        if !self.sink_state().stash.is_empty() {
            self.encode_fed()?;
        }
        self.sink_state().large = Some(message);
        Ok(())
    }

    /// Writes out what is queued (waiting for the writer if another task
    /// holds it), as the sink's send in progress.
    fn write_queued(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let shared = self.shared.clone();
        let sink = self.sink_state();
        sink.queued = 0;
        sink.sending = Some(Box::pin(async move { shared.send_with(|_| Ok(())).await }));
        self.poll_sink(cx)
    }

    fn poll_sink(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        if let Some(message) = self.sink_state().large.take() {
            let shared = self.shared.clone();
            self.sink_state().sending = Some(Box::pin(async move {
                shared
                    .send_data(data_opcode(&message), message.as_bytes())
                    .await
            }));
        }
        let sink = self.sink_state();
        if let Some(future) = sink.sending.as_mut() {
            let result = ready!(future.as_mut().poll(cx));
            sink.sending = None;
            result?;
        }
        Poll::Ready(Ok(()))
    }
}

impl Sink<Message> for Sender {
    type Error = Error;

    /// Ready unless more than 64 KiB wait to be written, or a large
    /// message is being written: then that is done first (the sink's
    /// backpressure).
    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        ready!(self.poll_sink(cx))?;
        if self.sink_state().queued >= SINK_WRITE_AT {
            return self.write_queued(cx);
        }
        Poll::Ready(Ok(()))
    }

    /// Keeps the message, and encodes what was fed into the connection's
    /// output once 64 messages or 16 KiB wait, to be written by the next
    /// `poll_flush` (or by the next write of any task): `feed` then
    /// `flush` writes a run of messages with one system call, the
    /// connection's lock is taken once per 64 small messages, and no
    /// message is boxed or copied on the way. A data message of 128 KiB
    /// or more starts its write in pieces, after what was fed before it.
    fn start_send(mut self: Pin<&mut Self>, message: Message) -> Result<()> {
        let this = &mut *self;
        match message {
            // A Sink only sends: a `Close` message sends the close frame
            // (as `start_close`) after what was fed, and the receiving
            // side sees the server's answer.
            Message::Close(frame) => {
                // What was fed and cannot go does not stop the close.
                let _ = this.encode_fed();
                let shared = this.shared.clone();
                this.sink_state().sending =
                    Some(Box::pin(async move { shared.send_close(frame).await }));
                Ok(())
            }
            message => {
                if this.shared.cannot_send.load(Ordering::Acquire) {
                    let conn = this.shared.conn();
                    return Err(if conn.is_finished() {
                        ErrorKind::AlreadyClosed.into()
                    } else {
                        floodgate_proto::UsageError::Closed.into()
                    });
                }
                // What depends on the message alone fails here, not in
                // the batch.
                if let Message::Ping(payload) | Message::Pong(payload) = &message {
                    if payload.len() > MAX_CONTROL_PAYLOAD {
                        let len = payload.len();
                        return Err(floodgate_proto::UsageError::ControlPayloadTooLong(len).into());
                    }
                }
                if message.len() >= WRITE_IN_PIECES_FROM {
                    if let Message::Text(_) | Message::Binary(_) = message {
                        return this.keep_large(message);
                    }
                }
                let sink = this.sink_state();
                sink.stash_bytes += message.len();
                sink.stash.push(message);
                if sink.stash.len() >= STASH_MESSAGES || sink.stash_bytes >= STASH_BYTES {
                    this.encode_fed()?;
                }
                Ok(())
            }
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        ready!(self.poll_sink(cx))?;
        // Also what waits behind another task's message written in
        // pieces: flushed once the writer is had, after that message.
        let queued = if self.sink_state().stash.is_empty() {
            self.shared.conn().queued_len()
        } else {
            self.encode_fed()?
        };
        if queued > 0 {
            return self.write_queued(cx);
        }
        Poll::Ready(Ok(()))
    }

    /// Sends a normal close (1000) unless a close was sent already, and
    /// returns once it is written, without waiting for the server's answer
    /// (a `Sink` only sends): the receiving side sees the answer. Use
    /// [`Sender::close`] to wait for it.
    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        ready!(self.poll_sink(cx))?;
        if !self.sink_state().stash.is_empty() {
            self.encode_fed()?;
        }
        if !self.sink_state().closed {
            self.sink_state().closed = true;
            if !self.shared.conn().protocol().close_sent() {
                let shared = self.shared.clone();
                self.sink_state().sending = Some(Box::pin(async move {
                    shared
                        .send_close(Some(CloseFrame::new(CloseCode::NORMAL, "")))
                        .await
                }));
                return self.poll_sink(cx);
            }
        }
        Poll::Ready(Ok(()))
    }
}
