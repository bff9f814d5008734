//! The buffered connection on tokio: a reader task answers pings and the
//! close at once and feeds the same [`Buffer`] as the blocking
//! [`crate::BufferedWebSocket`], with the same policies, classifier and
//! [`Stats`]; consumers wait on it with wakers ([`Buffer::poll_recv`],
//! [`Buffer::poll_recv_batch`]), and the reader waits for room under
//! `Block` with the buffer's own waker-based push, so no thread is held.
//!
//! The reader task is the only reader of the socket; the sending half is
//! the [`Sender`] of the unbuffered connection, so a pong queued by the
//! reader and a message sent by the application never interleave.

use super::receiver::{Core, Wait};
use super::sender::Sender;
use super::socket::{CoreParts, WebSocket};
use crate::buffer::{
    Batch, Buffer, BufferConfig, BufferError, ControlFn, DataFrameFn, Delivered, Pushed, Stats,
};
use crate::buffered::reader::compact;
use crate::error::{Error, ErrorKind, Result, TimeoutKind};
use floodgate_proto::{CloseCode, CloseFrame, Message, UsageError};
use futures_core::Stream;
use http::{HeaderMap, StatusCode};
use std::future::Future;
use std::ops::ControlFlow;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant as StdInstant;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Decoded messages are pushed into the buffer in runs of at most this
/// many (as the blocking reader does).
const DELIVER_EVERY: usize = 512;

/// An async connection whose reader task feeds a bounded
/// [`Buffer`]: see the blocking [`crate::BufferedWebSocket`] for the
/// semantics, which are the same, and `docs/backpressure.md` to choose a
/// policy.
///
/// Made by [`crate::Client::connect_buffered_async`] (the builder's
/// [`buffer`](crate::ClientBuilder::buffer) options) or
/// [`WebSocket::into_buffered`]. Must be used inside a tokio runtime: the
/// reader is a task. Dropping it stops the reader task.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> floodgate::Result<()> {
/// use floodgate::buffer::{BufferConfig, Overflow};
/// # let server = floodgate::server::Server::bind("127.0.0.1:0", floodgate::server::echo)?;
/// let mut ws = floodgate::Client::builder()
///     .buffer(BufferConfig::new().max_messages(10_000).overflow(Overflow::DropOldest))
///     .connect_buffered_async(&server.url())
///     .await?;
/// ws.send_text("tick").await?;
/// let message = ws.recv().await?;
/// println!("{:?} waited {:?} in the buffer", message.message().as_text(), message.waited());
/// let stats = ws.stats();
/// assert_eq!(stats.received, stats.delivered + stats.buffered + stats.dropped_oldest);
/// ws.close(1000, "bye").await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct BufferedWebSocket {
    buffer: Arc<Buffer>,
    sender: Sender,
    reader: Option<JoinHandle<()>>,
    ended: bool,
}

impl WebSocket {
    /// Turns this connection into a [`BufferedWebSocket`]: a reader task
    /// takes over receiving and feeds a bounded buffer with `config`'s
    /// limits and policies. Bytes already read are kept, and so is the
    /// message of a `recv` that was cancelled.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`] when `config` does not fit the connection's
    /// limits (see [`BufferConfig::validate`]); [`ErrorKind::Usage`] when
    /// a fragmented message begun with [`WebSocket::recv_frame`] is not
    /// finished (the connection is dropped).
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime (the reader is spawned with
    /// `tokio::spawn`).
    pub async fn into_buffered(self, config: &BufferConfig) -> Result<BufferedWebSocket> {
        let max_message_size = self.shared().proto().config().max_message_size;
        config.validate(max_message_size)?;
        let CoreParts {
            mut core,
            first,
            sender,
        } = self.into_core().await;
        if core.as_ref().is_some_and(|core| core.raw_open) {
            return Err(ErrorKind::Usage(UsageError::BadFragmentSequence(
                "a message begun with recv_frame must be finished with recv_frame before into_buffered",
            ))
            .into());
        }
        if let Some(core) = &mut core {
            // The reader waits only on the buffer, never on a read
            // timeout (as in the blocking buffered connection).
            core.read_timeout = None;
        }
        let buffer = Arc::new(Buffer::new(config));
        let reader = Reader {
            buffer: buffer.clone(),
            copy_small: config.retains_sparsely(),
            on_control: config.on_control.clone(),
            on_data_frame: config.on_data_frame.clone(),
        };
        let handle = match core {
            Some(core) => Some(::tokio::spawn(reader.run(core, first))),
            None => {
                buffer.finish(Error::from(ErrorKind::AlreadyClosed));
                None
            }
        };
        Ok(BufferedWebSocket {
            buffer,
            sender,
            reader: handle,
            ended: false,
        })
    }
}

struct Reader {
    buffer: Arc<Buffer>,
    copy_small: bool,
    on_control: Option<ControlFn>,
    on_data_frame: Option<DataFrameFn>,
}

impl Reader {
    async fn run(self, mut core: Box<Core>, first: Option<Result<Message>>) {
        let end = self.read_loop(&mut core, first).await;
        core.finish().await;
        self.buffer.finish(end);
    }

    async fn read_loop(&self, core: &mut Core, first: Option<Result<Message>>) -> Error {
        let mut batch = self.buffer.new_batch();
        match first {
            Some(Ok(message @ (Message::Text(_) | Message::Binary(_)))) => {
                self.buffer.stage(&mut batch, message);
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return e,
            None => {}
        }
        let chunk_size = core.max_chunk();
        loop {
            let buffer = &self.buffer;
            let copy_small = self.copy_small;
            let mut each = |message| match message {
                Message::Text(_) | Message::Binary(_) => {
                    buffer.stage(&mut batch, compact(copy_small, chunk_size, message));
                    if batch.len() >= DELIVER_EVERY {
                        ControlFlow::Break(None)
                    } else {
                        ControlFlow::Continue(())
                    }
                }
                control => ControlFlow::Break(Some(control)),
            };
            let stopped = {
                let mut proto = core.shared.proto();
                match &self.on_data_frame {
                    None => proto.read_messages(&mut core.read_buf, &mut each),
                    Some(observe) => {
                        proto.read_messages_observed(&mut core.read_buf, &mut each, |f| observe(f))
                    }
                }
            };
            match stopped {
                Err(err) => {
                    let _ = self.deliver(&mut batch).await;
                    return core.fail(err).await;
                }
                Ok(Some(Some(ping @ Message::Ping(_)))) => {
                    let decoded = StdInstant::now();
                    // The protocol queued the pong (unless auto_pong is
                    // off): send it before anything else is done.
                    if core.shared.proto().has_output() {
                        match core.shared.flush().await {
                            Ok(()) => self.buffer.record_ping(decoded.elapsed()),
                            Err(e) => tracing::debug!(error = %e, "could not answer a ping"),
                        }
                    }
                    self.observe(&ping);
                }
                Ok(Some(Some(pong @ Message::Pong(_)))) => {
                    self.buffer.record_pong();
                    self.observe(&pong);
                }
                Ok(Some(Some(Message::Close(frame)))) => {
                    let _ = self.deliver(&mut batch).await;
                    return core.on_peer_close(frame).await;
                }
                Ok(Some(_)) => {
                    if let Err(err) = self.deliver(&mut batch).await {
                        return self.disconnect(core, err).await;
                    }
                }
                Ok(None) => {
                    let delivered = !batch.is_empty();
                    if let Err(err) = self.deliver(&mut batch).await {
                        return self.disconnect(core, err).await;
                    }
                    // Let the consumer take what this read brought before
                    // reading more. Without it, on a current-thread runtime
                    // the reader reads on until tokio's budget (128 reads,
                    // 32 MiB of 256 KiB reads) or the buffer's limit stops
                    // it, so every message is written to and read from
                    // cold, freshly faulted memory; with it the buffer
                    // holds about one read, as with the blocking reader
                    // thread. One task switch per read costs nothing next
                    // to the read.
                    if delivered {
                        ::tokio::task::yield_now().await;
                    }
                    if let Err(end) = core.fill().await {
                        return end;
                    }
                }
            }
        }
    }

    fn observe(&self, frame: &Message) {
        if let Some(observer) = &self.on_control {
            observer(frame);
        }
    }

    /// Hands the batch to the buffer; under `Block` waits for room with
    /// the task's waker (and, for `BlockFor`, until the buffer's deadline,
    /// after which the push is retried and the fallback policy applies).
    async fn deliver(&self, batch: &mut Batch) -> std::result::Result<(), BufferError> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut timer: Option<Pin<Box<::tokio::time::Sleep>>> = None;
        let result = std::future::poll_fn(|cx| loop {
            match self.buffer.push(batch, cx.waker(), true) {
                Pushed::Done => return Poll::Ready(Ok(())),
                Pushed::FellBehind(err) => return Poll::Ready(Err(err)),
                Pushed::Wait(None) => return Poll::Pending,
                Pushed::Wait(Some(deadline)) => {
                    let deadline = Instant::from_std(deadline);
                    let sleep =
                        timer.get_or_insert_with(|| Box::pin(::tokio::time::sleep_until(deadline)));
                    if sleep.deadline() != deadline {
                        sleep.as_mut().reset(deadline);
                    }
                    match sleep.as_mut().poll(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(()) => timer = None,
                    }
                }
            }
        })
        .await;
        batch.clear();
        result
    }

    /// The `Disconnect` policy: close with 1008, wait briefly for the
    /// server's close, end.
    async fn disconnect(&self, core: &mut Core, err: BufferError) -> Error {
        tracing::debug!(error = %err, "consumer fell behind: disconnecting (async)");
        let frame = CloseFrame::new(CloseCode::POLICY_VIOLATION, "consumer fell behind");
        if core
            .shared
            .send_with(|p| p.send_close(Some(&frame)))
            .await
            .is_ok()
        {
            core.read_buf.clear();
            let deadline = Instant::now() + core.shared.close_timeout;
            if core.wait_for_close(deadline).await == Wait::Done {
                core.wait_for_eof(deadline).await;
            }
        }
        ErrorKind::Buffer(err).into()
    }
}

impl BufferedWebSocket {
    /// Receives the next message from the buffer, waiting for one.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: a message is taken from the buffer only when the call
    /// returns it.
    ///
    /// # Errors
    ///
    /// Once the buffer is empty and the connection has ended: what ended
    /// it ([`ErrorKind::ConnectionClosed`] after a close handshake,
    /// [`ErrorKind::Buffer`] under `Disconnect`, a protocol or I/O error),
    /// then [`ErrorKind::AlreadyClosed`].
    pub async fn recv(&self) -> Result<Delivered> {
        Ok(std::future::poll_fn(|cx| self.buffer.poll_recv(cx)).await?)
    }

    /// Takes up to `max` messages at once, waiting until there is at least
    /// one.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe, as [`recv`](Self::recv).
    ///
    /// # Errors
    ///
    /// As for [`recv`](Self::recv).
    pub async fn recv_batch(&self, max: usize) -> Result<Vec<Delivered>> {
        let mut out = Vec::new();
        std::future::poll_fn(|cx| self.buffer.poll_recv_batch(cx, &mut out, max)).await?;
        Ok(out)
    }

    /// A message if one is buffered, without waiting.
    ///
    /// # Errors
    ///
    /// As for [`recv`](Self::recv).
    pub fn try_recv(&self) -> Result<Option<Delivered>> {
        Ok(self.buffer.try_recv()?)
    }

    /// The buffer's counters, read at one instant.
    pub fn stats(&self) -> Stats {
        self.buffer.stats()
    }

    /// The buffer, shared with the reader task.
    pub fn buffer(&self) -> &Arc<Buffer> {
        &self.buffer
    }

    /// A sending half for other tasks.
    pub fn sender(&self) -> Sender {
        self.sender.clone()
    }

    /// Pings the server every `interval` from a task of its own; with
    /// `timeout`, aborts the connection when no pong comes within
    /// `timeout` of a ping (see [`super::keepalive`]). The consumer then
    /// gets [`ErrorKind::AbnormalClosure`] after the buffered messages.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn keepalive(
        &self,
        interval: std::time::Duration,
        timeout: Option<std::time::Duration>,
        payload: &[u8],
    ) -> super::Keepalive {
        super::Keepalive::start(
            self.sender.clone(),
            self.buffer.clone(),
            self.killer(),
            interval,
            timeout,
            payload.to_vec(),
        )
    }

    /// What ends the connection from outside (the keepalive, the App's
    /// close deadline).
    pub(crate) fn killer(&self) -> Killer {
        Killer {
            reader: self.reader.as_ref().map(JoinHandle::abort_handle),
            sender: self.sender.clone(),
            buffer: self.buffer.clone(),
        }
    }

    super::delegate_sends!(send, send_text, send_binary, send_frame, ping);

    /// Closes the connection: the buffer stops blocking the reader
    /// (messages that do not fit from now on are dropped and counted as
    /// `dropped_newest`), a close frame is sent, and this waits up to
    /// `close_timeout` for the reader to see the server's close. Messages
    /// still buffered stay readable until the end is reported.
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe (the close frame may be sent without the wait).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Usage`] for a code that must not be sent or a reason
    /// over 123 bytes (nothing is sent); [`ErrorKind::Timeout`] when the
    /// reader did not end in time (it is stopped and the transport shut
    /// down); [`ErrorKind::AlreadyClosed`].
    pub async fn close(&mut self, code: impl Into<CloseCode>, reason: &str) -> Result<()> {
        self.close_with(Some(CloseFrame::new(code.into(), reason)))
            .await
    }

    /// [`close`](Self::close) with any close frame, or none.
    ///
    /// # Errors
    ///
    /// As for [`close`](Self::close).
    pub async fn close_with(&mut self, frame: Option<CloseFrame>) -> Result<()> {
        self.sender.close_with(frame).await?;
        self.buffer.set_closing();
        let Some(mut reader) = self.reader.take() else {
            return Ok(());
        };
        let close_timeout = self.sender.shared.close_timeout;
        match ::tokio::time::timeout(close_timeout, &mut reader).await {
            Ok(_) => Ok(()),
            Err(_) => {
                reader.abort();
                self.sender.shared.shutdown().await;
                self.buffer.finish(Error::from(ErrorKind::AbnormalClosure));
                Err(Error::timeout(TimeoutKind::Close, Some(close_timeout)))
            }
        }
    }

    /// Whether the connection is open (no close sent or received).
    pub fn is_open(&self) -> bool {
        self.sender.is_open()
    }

    /// The subprotocol the server selected.
    pub fn subprotocol(&self) -> Option<&str> {
        self.sender.shared.handshake.subprotocol.as_deref()
    }

    /// The handshake status (101).
    pub fn status(&self) -> StatusCode {
        self.sender.shared.handshake.status
    }

    /// The server's handshake response headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.sender.shared.handshake.headers
    }
}

/// Ends a connection at once, from another task: its reader task stops,
/// the consumer gets [`ErrorKind::AbnormalClosure`] after what is
/// buffered, and the transport is shut down (within `close_timeout`).
#[derive(Debug, Clone)]
pub(crate) struct Killer {
    reader: Option<::tokio::task::AbortHandle>,
    sender: Sender,
    buffer: Arc<Buffer>,
}

impl Killer {
    pub(crate) async fn kill(&self) {
        if let Some(reader) = &self.reader {
            reader.abort();
        }
        self.buffer.finish(Error::from(ErrorKind::AbnormalClosure));
        // A writer stuck on a full socket holds the write lock: the bound
        // keeps the kill from waiting on the dead peer.
        let shared = &self.sender.shared;
        let _ = ::tokio::time::timeout(shared.close_timeout, shared.shutdown()).await;
    }
}

impl Drop for BufferedWebSocket {
    fn drop(&mut self) {
        if let Some(reader) = self.reader.take() {
            reader.abort();
        }
    }
}

impl Stream for BufferedWebSocket {
    type Item = Result<Delivered>;

    /// Buffered messages until the close handshake ends the stream; any
    /// other end is yielded once as an error.
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.ended {
            return Poll::Ready(None);
        }
        match self.buffer.poll_recv(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(delivered)) => Poll::Ready(Some(Ok(delivered))),
            Poll::Ready(Err(e)) => {
                self.ended = true;
                let e = Error::from(e);
                Poll::Ready(if e.is_closed() { None } else { Some(Err(e)) })
            }
        }
    }
}
