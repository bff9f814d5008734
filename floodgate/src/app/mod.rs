//! The event-driven [`App`]: handlers for what happens on a connection,
//! `run_forever` with keepalive and reconnect, and `on_message` on a pool
//! of workers — websocket-client's `WebSocketApp`, built on the buffered
//! connection so that a slow handler never starves the connection.
//!
//! Receiving and handling are apart: the connection's reader answers
//! pings and the close at once and feeds the bounded buffer (every policy
//! and every stat of [`crate::buffer`] apply), and messages are handed to
//! `on_message` on the thread that runs the App, or on N workers
//! ([`AppBuilder::workers`], [`AppBuilder::workers_by_key`] to keep the
//! order per key).
//!
//! ```
//! use floodgate::app::{App, RunOptions};
//! use std::time::Duration;
//! # let server = floodgate_server::Server::bind("127.0.0.1:0", floodgate_server::echo).unwrap();
//!
//! let app = App::builder(server.url())
//!     .on_open(|ctx| {
//!         // Runs again after every reconnect: subscribe here.
//!         ctx.send_text("subscribe ticker").unwrap();
//!     })
//!     .on_message(|ctx, message| {
//!         println!("{:?} (waited {:?})", message.as_text(), message.waited());
//!         ctx.close(); // done after the first message
//!     })
//!     .on_error(|_ctx, error| eprintln!("error: {error}"))
//!     .on_close(|_ctx, frame| println!("closed: {frame:?}"))
//!     .build()?;
//! let summary = app.run_forever(
//!     &RunOptions::new()
//!         .ping_interval(Duration::from_secs(10))
//!         .ping_timeout(Duration::from_secs(5))
//!         .reconnect(floodgate::reconnect::Backoff::new()),
//! )?;
//! assert_eq!(summary.connections, 1);
//! # Ok::<(), floodgate::Error>(())
//! ```
//!
//! # Which thread runs what
//!
//! - `on_open`, `on_close`, `on_error`, `on_reconnect`, and `on_message`
//!   without workers: the thread that called [`App::run_forever`].
//! - `on_message` with workers: one of the workers.
//! - `on_ping`, `on_pong`, `on_data`, `on_cont_message`: the connection's
//!   reader, as the frame is decoded; keep them short (the reader reads
//!   nothing while they run).
//!
//! A handler that panics is reported to `on_error` as
//! [`crate::ErrorKind::Panicked`] and the App goes on.
//!
//! # Ending
//!
//! [`AppHandle::close`] (from a handler, another thread, a Ctrl-C handler)
//! sends the close and lets `run_forever` finish: the close handshake is
//! done, the messages still buffered are handed to `on_message` (unless
//! [`AppBuilder::drain_on_close`] says not to: they are then counted in
//! [`RunSummary::undelivered`]), the workers finish what they hold, and
//! `on_close` is called once for the connection. No reconnect happens after
//! a close the application asked for. Without reconnect, the App also ends
//! when the connection does: `Ok` after a close handshake, the error
//! otherwise. With reconnect, any other end (the server's close included)
//! is followed by a new connection after the backoff's delay, until the
//! maximum number of attempts in a row ([`crate::ErrorKind::GaveUp`]).

pub(crate) mod common;
mod context;
// The async App (feature `tokio`): beside the blocking one, above both
// front ends and `client.rs`. Public only so that `floodgate::tokio::app`
// can re-export it; it is documented there.
#[cfg(feature = "tokio")]
#[doc(hidden)]
pub mod tokio;
pub(crate) mod workers;

pub use context::{AppHandle, Context};

use crate::buffer::{BufferConfig, Delivered, Key, Stats};
use crate::client::{Client, ClientBuilder};
use crate::error::{Callback, ConfigError, Error, Result};
use crate::reconnect::{Backoff, Retry};
use crate::BufferedWebSocket;
use common::{Ended, Next, PlainHandlers};
use floodgate_proto::{CloseFrame, Frame, Message};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use workers::{Dispatch, WorkerKeyFn};

type OpenFn = Box<dyn Fn(&Context) + Send + Sync>;
type MessageFn = Box<dyn Fn(&Context, &Delivered) + Send + Sync>;
type CloseFn = Box<dyn Fn(&Context, Option<&CloseFrame>) + Send + Sync>;
type ReconnectFn = Box<dyn Fn(&Context, Reconnecting) + Send + Sync>;

/// The application's handlers.
#[derive(Default)]
pub(crate) struct Handlers {
    on_open: Option<OpenFn>,
    on_message: Option<MessageFn>,
    on_close: Option<CloseFn>,
    on_reconnect: Option<ReconnectFn>,
    /// `on_error` and the reader thread's handlers (shared with the
    /// buffer's observers).
    plain: Arc<PlainHandlers<Context>>,
}

impl Handlers {
    /// Runs a handler, turning a panic into an `on_error` call.
    fn guarded(&self, context: &Context, what: Callback, run: impl FnOnce()) {
        self.plain.guarded(context, what, run);
    }

    pub(crate) fn message(&self, context: &Context, message: &Delivered) {
        if let Some(f) = &self.on_message {
            self.guarded(context, Callback::OnMessage, || f(context, message));
        }
    }

    fn error(&self, context: &Context, error: &Error) {
        self.plain.error(context, error);
    }
}

/// What `on_reconnect` is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reconnecting {
    /// The attempt about to be made, from 1, counted since the last
    /// connection that stayed up (see [`Backoff::reset_after`]).
    pub attempt: u32,
    /// How long the App waits before it.
    pub delay: Duration,
}

/// Builds an [`App`]; see the [module docs](self).
#[must_use = "an AppBuilder does nothing until build()"]
pub struct AppBuilder {
    url: String,
    client: ClientBuilder,
    buffer: BufferConfig,
    handlers: Handlers,
    plain: PlainHandlers<Context>,
    workers: usize,
    worker_key: Option<WorkerKeyFn>,
    drain_on_close: bool,
}

impl std::fmt::Debug for AppBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppBuilder")
            .field("url", &self.url)
            .field("buffer", &self.buffer)
            .field("workers", &self.workers)
            .finish_non_exhaustive()
    }
}

macro_rules! handler_setter {
    ($(#[$doc:meta])* $field:ident . $name:ident, $($arg:ty),*) => {
        $(#[$doc])*
        pub fn $name(mut self, f: impl Fn(&Context, $($arg),*) + Send + Sync + 'static) -> Self {
            self.$field.$name = Some(Box::new(f));
            self
        }
    };
}

impl AppBuilder {
    /// The connection options (headers, subprotocols, timeouts, socket
    /// options, limits); its buffer, if set, is replaced by
    /// [`buffer`](Self::buffer).
    pub fn client(mut self, client: ClientBuilder) -> Self {
        self.client = client;
        self
    }

    /// The buffer between the reader and the handlers: limits, overflow
    /// policy, classifier (default [`BufferConfig::default`]).
    pub fn buffer(mut self, buffer: BufferConfig) -> Self {
        self.buffer = buffer;
        self
    }

    /// Called when a connection is open, after every reconnect too (the
    /// place to subscribe).
    pub fn on_open(mut self, f: impl Fn(&Context) + Send + Sync + 'static) -> Self {
        self.handlers.on_open = Some(Box::new(f));
        self
    }

    handler_setter!(
        /// Called for each message (text or binary) taken from the buffer.
        handlers.on_message, &Delivered
    );
    handler_setter!(
        /// Called for each error: a failed connect, a broken connection, a
        /// ping timeout, a handler's panic.
        plain.on_error, &Error
    );
    handler_setter!(
        /// Called once when a connection that was open ends: with the close
        /// frame after a close handshake (`None` inside: a close without
        /// code), with `None` when it ended without one.
        handlers.on_close, Option<&CloseFrame>
    );
    handler_setter!(
        /// Called with each ping's payload, after it was answered (reader
        /// thread).
        plain.on_ping, &[u8]
    );
    handler_setter!(
        /// Called with each pong's payload (reader thread).
        plain.on_pong, &[u8]
    );
    handler_setter!(
        /// Called with every data frame as it is decoded — text, binary and
        /// continuation frames — before its message is complete or
        /// buffered (reader thread).
        plain.on_data, &Frame
    );
    handler_setter!(
        /// Called with each continuation frame of a fragmented message
        /// (reader thread).
        plain.on_cont_message, &Frame
    );
    handler_setter!(
        /// Called before each reconnect attempt, with its number and delay.
        handlers.on_reconnect, Reconnecting
    );

    /// Runs `on_message` on `n` worker threads (0: on the App's thread).
    /// Any free worker takes the next message.
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n;
        self.worker_key = None;
        self
    }

    /// Runs `on_message` on `n` workers, keeping the order per key:
    /// messages with the same key are handled in arrival order by one
    /// worker at a time. Messages without a key go to any worker.
    pub fn workers_by_key(
        mut self,
        n: usize,
        key: impl Fn(&Message) -> Option<Key> + Send + Sync + 'static,
    ) -> Self {
        self.workers = n;
        self.worker_key = Some(Arc::new(key));
        self
    }

    /// Whether the messages still buffered when the App is closed are
    /// handed to `on_message` (default) or left and counted in
    /// [`RunSummary::undelivered`]. Left means left in the buffer: a
    /// durable spill ([`SpillConfig::durable`]) keeps them for the next
    /// run on its directory. The rest of the batch being handled when
    /// the close was asked for (at most 256 messages) was taken already:
    /// it is counted in `undelivered` too, and not kept.
    ///
    /// [`SpillConfig::durable`]: crate::buffer::SpillConfig::durable
    pub fn drain_on_close(mut self, drain: bool) -> Self {
        self.drain_on_close = drain;
        self
    }

    /// Checks the options and builds the App.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) for invalid connection or buffer options.
    pub fn build(self) -> Result<App> {
        let current: Arc<CurrentContext> = Arc::default();
        let plain = Arc::new(self.plain);
        let buffer = common::with_observers(self.buffer, &plain, {
            let current = current.clone();
            move || current.wait()
        });
        let handlers = Arc::new(Handlers {
            plain,
            ..self.handlers
        });
        let client = self.client.buffer(buffer).build()?;
        if self.workers == 0 && self.worker_key.is_some() {
            return Err(ConfigError::WorkersByKeyWithoutWorkers.into());
        }
        Ok(App {
            url: Arc::from(self.url.as_str()),
            client,
            handlers,
            current,
            handle: AppHandle::default(),
            workers: self.workers,
            worker_key: self.worker_key,
            drain_on_close: self.drain_on_close,
        })
    }
}

/// The context of the connection of the moment, for the handlers that the
/// reader thread calls (`on_ping`, `on_pong`, `on_data`,
/// `on_cont_message`).
///
/// A connection's reader starts inside `connect_buffered`, before `serve`
/// publishes that connection's context, and frames the server sends right
/// after the handshake reach it at once; so those handlers wait for the
/// context rather than skip the frame. It is cleared when a connection
/// ends (its reader has stopped by then), so the next connection's reader
/// never sees the previous connection's context.
#[derive(Default)]
struct CurrentContext {
    slot: Mutex<Option<Arc<Context>>>,
    published: std::sync::Condvar,
}

/// How long a reader-thread handler waits for its connection's context:
/// `serve` publishes it right after connecting, so this only bounds a bug.
const CONTEXT_WAIT: Duration = Duration::from_secs(10);

impl CurrentContext {
    fn set(&self, context: Option<Arc<Context>>) {
        *self.slot.lock().unwrap_or_else(|e| e.into_inner()) = context;
        self.published.notify_all();
    }

    fn wait(&self) -> Option<Arc<Context>> {
        let slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        let (slot, _) = self
            .published
            .wait_timeout_while(slot, CONTEXT_WAIT, |c| c.is_none())
            .unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            tracing::warn!("a frame handler found no connection context; the frame was not shown");
        }
        slot.clone()
    }
}

/// How `run_forever` keeps the connection alive: websocket-client's
/// `run_forever(ping_interval=, ping_timeout=, ping_payload=, reconnect=)`.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub(crate) ping_interval: Option<Duration>,
    pub(crate) ping_timeout: Option<Duration>,
    pub(crate) ping_payload: Vec<u8>,
    pub(crate) reconnect: Option<Backoff>,
}

impl RunOptions {
    /// No pings, no reconnect.
    pub fn new() -> RunOptions {
        RunOptions::default()
    }

    /// Ping the server this often.
    pub fn ping_interval(mut self, every: Duration) -> Self {
        self.ping_interval = Some(every);
        self
    }

    /// With a ping interval: no pong within this time of a ping means the
    /// connection is dead; it is dropped and reported
    /// ([`crate::TimeoutKind::Pong`]), then reconnected
    /// if asked.
    pub fn ping_timeout(mut self, timeout: Duration) -> Self {
        self.ping_timeout = Some(timeout);
        self
    }

    /// The payload of the pings (at most 125 bytes; empty, the default: an
    /// 8-byte counter, so that each pong is matched to its own ping).
    pub fn ping_payload(mut self, payload: &[u8]) -> Self {
        self.ping_payload = payload.to_vec();
        self
    }

    /// Reconnect after an end the application did not ask for, with this
    /// backoff.
    pub fn reconnect(mut self, backoff: Backoff) -> Self {
        self.reconnect = Some(backoff);
        self
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.ping_timeout.is_some() && self.ping_interval.is_none() {
            return Err(ConfigError::PingTimeoutWithoutInterval.into());
        }
        if self.ping_interval.is_some_and(|i| i.is_zero()) {
            return Err(ConfigError::PingIntervalZero.into());
        }
        if self.ping_payload.len() > 125 {
            return Err(ConfigError::PingPayloadTooLong {
                len: self.ping_payload.len(),
            }
            .into());
        }
        Ok(())
    }
}

/// What `run_forever` did.
#[derive(Debug, Clone, Default)]
pub struct RunSummary {
    /// Connections that opened.
    pub connections: u64,
    /// The last connection's buffer stats.
    pub last_stats: Option<Stats>,
    /// Messages left in the buffer at the end and not handed to
    /// `on_message` (only with [`AppBuilder::drain_on_close`] off).
    pub undelivered: u64,
}

/// The event-driven client; see the [module docs](self).
pub struct App {
    url: Arc<str>,
    client: Client,
    handlers: Arc<Handlers>,
    /// The context of the connection of the moment, for the handlers the
    /// reader calls.
    current: Arc<CurrentContext>,
    handle: AppHandle,
    workers: usize,
    worker_key: Option<WorkerKeyFn>,
    drain_on_close: bool,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("url", &self.url)
            .field("workers", &self.workers)
            .finish_non_exhaustive()
    }
}

impl App {
    /// A builder for an App that connects to `url`.
    pub fn builder(url: impl Into<String>) -> AppBuilder {
        AppBuilder {
            url: url.into(),
            client: Client::builder(),
            buffer: BufferConfig::default(),
            handlers: Handlers::default(),
            plain: PlainHandlers::default(),
            workers: 0,
            worker_key: None,
            drain_on_close: true,
        }
    }

    /// The handle that closes this App.
    pub fn handle(&self) -> AppHandle {
        self.handle.clone()
    }

    fn context(&self, sender: Option<crate::Sender>, connection: u64) -> Context {
        Context::new(self.handle.clone(), sender, connection, self.url.clone())
    }

    /// Connects and runs the handlers until the App is closed, or the
    /// connection ends without reconnect, or reconnecting gives up. An App
    /// runs once at a time, and a closed App stays closed: after
    /// [`AppHandle::close`], `run_forever` returns at once.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) for invalid options; without reconnect, the
    /// error that ended the connection (a failed first connect included);
    /// with reconnect, [`ErrorKind::GaveUp`](crate::ErrorKind::GaveUp) after the maximum number of
    /// attempts in a row.
    pub fn run_forever(&self, options: &RunOptions) -> Result<RunSummary> {
        options.validate()?;
        let mut summary = RunSummary::default();
        let mut dispatch =
            Dispatch::new(self.handlers.clone(), self.workers, self.worker_key.clone());
        let mut retry = options.reconnect.map(Retry::new);
        // The keepalive is the connection's own, from its first instant:
        // its reader sends the pings and keeps the pong deadline.
        let payload = (!options.ping_payload.is_empty())
            .then(|| bytes::Bytes::copy_from_slice(&options.ping_payload));
        let client =
            self.client
                .with_keepalive(options.ping_interval, options.ping_timeout, payload);
        let result = loop {
            if self.handle.is_closing() {
                break Ok(());
            }
            let mut opened = None;
            let end = match client.connect_buffered(&self.url) {
                Ok(conn) => {
                    summary.connections += 1;
                    opened = Some(Instant::now());
                    self.serve(conn, options, &mut dispatch, &mut summary)
                }
                Err(error) => {
                    self.handlers
                        .error(&self.context(None, summary.connections), &error);
                    Ended::failed(error)
                }
            };
            if self.handle.is_closing() {
                break Ok(());
            }
            let info = match common::next(retry.as_mut(), opened, end) {
                Next::Stop(result) => break result,
                Next::Reconnect(info) => info,
            };
            if let Some(f) = &self.handlers.on_reconnect {
                let ctx = self.context(None, summary.connections);
                self.handlers
                    .guarded(&ctx, Callback::OnReconnect, || f(&ctx, info));
            }
            let delay = info.delay;
            tracing::debug!(?delay, attempt = info.attempt, "reconnecting");
            if self.handle.wait_closing(delay) {
                break Ok(());
            }
        };
        dispatch.finish();
        result.map(|()| summary)
    }

    /// Runs one connection to its end.
    fn serve(
        &self,
        conn: BufferedWebSocket,
        options: &RunOptions,
        dispatch: &mut Dispatch,
        summary: &mut RunSummary,
    ) -> Ended {
        let context = Arc::new(self.context(Some(conn.sender()), summary.connections));
        self.current.set(Some(context.clone()));
        if let Some(f) = &self.handlers.on_open {
            self.handlers
                .guarded(&context, Callback::OnOpen, || f(&context));
        }
        self.handle.attach(conn.sender());
        let end = self.consume(&conn, &context, dispatch, summary);

        self.handle.detach();
        summary.last_stats = Some(conn.stats());
        // A dead connection ends with a pong timeout from the reader itself.
        let ended = Ended::of(end, false, options.ping_timeout);
        if let Some(error) = &ended.error {
            self.handlers.error(&context, error);
        }
        if let Some(f) = &self.handlers.on_close {
            let frame = ended.close_frame();
            self.handlers
                .guarded(&context, Callback::OnClose, || f(&context, frame));
        }
        self.current.set(None);
        ended
    }

    /// Hands messages to `on_message` until the connection ends; returns
    /// the end.
    fn consume(
        &self,
        conn: &BufferedWebSocket,
        context: &Arc<Context>,
        dispatch: &mut Dispatch,
        summary: &mut RunSummary,
    ) -> Error {
        let close_timeout = self.client.options().close_timeout;
        let mut closing_since: Option<Instant> = None;
        let mut batch = Vec::with_capacity(256);
        loop {
            if closing_since.is_none() && self.handle.is_closing() {
                closing_since = Some(Instant::now());
            }
            // The server must answer a close in time (AppHandle::close
            // does not wait, so the bound is kept here).
            if closing_since.is_some_and(|t| t.elapsed() > close_timeout) {
                conn.sender().shutdown();
            }
            if !self.drain_on_close && closing_since.is_some() {
                // Closing without draining: what is buffered stays there,
                // counted as undelivered (a durable spill keeps it for the
                // next run on its directory); only the end is awaited.
                if conn.buffer().wait_finished(Duration::from_millis(100)) {
                    summary.undelivered += conn.buffer().len() as u64;
                    return conn
                        .buffer()
                        .take_end()
                        .map_or_else(|| crate::ErrorKind::AlreadyClosed.into(), Error::from);
                }
                continue;
            }
            match conn.recv_batch_into(&mut batch, 256, Duration::from_millis(100)) {
                Ok(_) => {}
                Err(e) => return e,
            }
            let mut skip = !self.drain_on_close && closing_since.is_some();
            for message in batch.drain(..) {
                // Without draining, a close asked for by a handler of this
                // batch stops the rest of it too.
                skip = skip || (!self.drain_on_close && self.handle.is_closing());
                if skip {
                    summary.undelivered += 1;
                } else {
                    dispatch.dispatch(context, message);
                }
            }
        }
    }
}
