//! The event-driven [`App`] on tokio: the blocking [`crate::App`]'s
//! handlers, keepalive and reconnect, running as tasks, with async
//! handlers — websocket-client's `WebSocketApp` for async Rust.
//!
//! It is built on the async buffered connection
//! ([`crate::tokio::BufferedWebSocket`]): its reader task answers pings
//! and the close at once and feeds the bounded buffer (every policy and
//! every stat of [`crate::buffer`] apply), and messages are handed to
//! `on_message` on the task that runs the App, or up to N at once
//! ([`AppBuilder::workers`], [`AppBuilder::workers_by_key`] to keep the
//! order per key). A handler that awaits for a long time delays only the
//! handling: pings are still answered and the keepalive still runs.
//!
//! ```
//! use floodgate::tokio::app::{App, RunOptions};
//! use std::time::Duration;
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> floodgate::Result<()> {
//! # let server = floodgate_server::Server::bind("127.0.0.1:0", floodgate_server::echo).unwrap();
//!
//! let app = App::builder(server.url())
//!     .on_open(|ctx| async move {
//!         // Runs again after every reconnect: subscribe here.
//!         ctx.send_text("subscribe ticker").await.unwrap();
//!     })
//!     .on_message(|ctx, message| async move {
//!         println!("{:?} (waited {:?})", message.as_text(), message.waited());
//!         ctx.close(); // done after the first message
//!     })
//!     .on_error(|_ctx, error| eprintln!("error: {error}"))
//!     .on_close(|_ctx, frame| async move { println!("closed: {frame:?}") })
//!     .build()?;
//! let summary = app
//!     .run_forever(
//!         &RunOptions::new()
//!             .ping_interval(Duration::from_secs(10))
//!             .ping_timeout(Duration::from_secs(5))
//!             .reconnect(floodgate::reconnect::Backoff::new()),
//!     )
//!     .await?;
//! assert_eq!(summary.connections, 1);
//! # Ok(())
//! # }
//! ```
//!
//! # Handlers
//!
//! - `on_open`, `on_message`, `on_close` and `on_reconnect` are async:
//!   closures that return a future (`|ctx, message| async move { .. }`).
//!   They take the [`Context`] (one reference count to clone) and their
//!   argument by value, so the future may keep them. A synchronous
//!   handler returns `std::future::ready(())` or an empty `async {}`.
//! - `on_error` is a plain function given the error by reference: the
//!   error stays the App's, to be returned by `run_forever`. To await
//!   something on an error, spawn a task with what it needs.
//! - `on_ping`, `on_pong`, `on_data` and `on_cont_message` are plain
//!   functions called by the connection's reader task as the frame is
//!   decoded (as in the blocking App they run on the reader): keep them
//!   short, the reader reads nothing while they run.
//!
//! Which task runs what: `on_open`, `on_close`, `on_error`,
//! `on_reconnect` and `on_message` without workers run on the task that
//! awaits [`App::run_forever`]; `on_message` with workers on tasks the App
//! spawns. A handler that panics is reported to `on_error` as
//! [`crate::ErrorKind::Panicked`] and the App goes on.
//!
//! # Ending
//!
//! As for the blocking App: [`AppHandle::close`] (from a handler, another
//! task or thread) makes the App's task send the close; `run_forever`
//! finishes once the close handshake is done (within `close_timeout`), the
//! messages still buffered are handed to `on_message` (unless
//! [`AppBuilder::drain_on_close`] says not to), the workers have finished,
//! and `on_close` was called once for the connection. A close asked for
//! while connecting or between reconnects ends the App at once. Without
//! reconnect, the App also ends when the connection does: `Ok` after a
//! close handshake, the error otherwise. With reconnect, any other end is
//! followed by a new connection after the backoff's delay, until the
//! maximum number of attempts in a row ([`crate::ErrorKind::GaveUp`]).
//!
//! The options of [`RunOptions`], the [`RunSummary`] and [`Reconnecting`]
//! are the blocking App's own types.

mod context;
mod workers;

pub use crate::app::{Reconnecting, RunOptions, RunSummary};
pub use context::{AppHandle, Context};

use crate::app::common::{self, Ended, Next, PlainHandlers};
use crate::app::workers::WorkerKeyFn;
use crate::buffer::{BufferConfig, Delivered, Key};
use crate::client::{Client, ClientBuilder};
use crate::error::{Callback, ConfigError, Error, Result};
use crate::reconnect::Retry;
use crate::tokio::BufferedWebSocket;
use floodgate_proto::{CloseFrame, Frame, Message};
use std::any::Any;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Instant;
use workers::Dispatch;

/// A handler's future.
type HandlerFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;
type OpenFn = Box<dyn Fn(Context) -> HandlerFuture + Send + Sync>;
type MessageFn = Box<dyn Fn(Context, Delivered) -> HandlerFuture + Send + Sync>;
type CloseFn = Box<dyn Fn(Context, Option<CloseFrame>) -> HandlerFuture + Send + Sync>;
type ReconnectFn = Box<dyn Fn(Context, Reconnecting) -> HandlerFuture + Send + Sync>;

/// The application's handlers.
#[derive(Default)]
pub(crate) struct Handlers {
    on_open: Option<OpenFn>,
    on_message: Option<MessageFn>,
    on_close: Option<CloseFn>,
    on_reconnect: Option<ReconnectFn>,
    /// `on_error` and the reader task's handlers (shared with the buffer's
    /// observers).
    plain: Arc<PlainHandlers<Context>>,
}

/// Polls `future`, turning a panic in any poll into `Err`.
///
/// Written here rather than taken from `futures-util` (`catch_unwind`):
/// it is these few lines, and the library does not otherwise need that
/// crate.
async fn catching(mut future: HandlerFuture) -> std::result::Result<(), Box<dyn Any + Send>> {
    std::future::poll_fn(move |cx| {
        match catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx))) {
            Ok(Poll::Ready(())) => Poll::Ready(Ok(())),
            Ok(Poll::Pending) => Poll::Pending,
            Err(panic) => Poll::Ready(Err(panic)),
        }
    })
    .await
}

impl Handlers {
    /// Makes and awaits an async handler's future, turning a panic (in the
    /// call or in any poll) into an `on_error` call.
    async fn awaited(
        &self,
        context: &Context,
        what: Callback,
        make: impl FnOnce() -> HandlerFuture,
    ) {
        let outcome = match catch_unwind(AssertUnwindSafe(make)) {
            Ok(future) => catching(future).await,
            Err(panic) => Err(panic),
        };
        if let Err(panic) = outcome {
            self.plain.panicked(context, what, &*panic);
        }
    }

    pub(crate) async fn message(&self, context: &Context, message: Delivered) {
        if let Some(f) = &self.on_message {
            self.awaited(context, Callback::OnMessage, || f(context.clone(), message))
                .await;
        }
    }

    fn error(&self, context: &Context, error: &Error) {
        self.plain.error(context, error);
    }
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

/// A setter of an async handler: a closure of `Context` and `$arg` that
/// returns a future.
macro_rules! async_handler_setter {
    ($(#[$doc:meta])* $name:ident $(, $arg:ident: $ty:ty)?) => {
        $(#[$doc])*
        pub fn $name<F, Fut>(mut self, f: F) -> Self
        where
            F: Fn(Context $(, $ty)?) -> Fut + Send + Sync + 'static,
            Fut: Future<Output = ()> + Send + 'static,
        {
            self.handlers.$name = Some(Box::new(move |context $(, $arg: $ty)?| {
                Box::pin(f(context $(, $arg)?))
            }));
            self
        }
    };
}

/// A setter of a plain handler (`on_error`, the reader task's), called
/// with the context by reference.
macro_rules! handler_setter {
    ($(#[$doc:meta])* $name:ident, $ty:ty) => {
        $(#[$doc])*
        pub fn $name(mut self, f: impl Fn(&Context, $ty) + Send + Sync + 'static) -> Self {
            self.plain.$name = Some(Box::new(f));
            self
        }
    };
}

impl AppBuilder {
    /// The connection options (headers, subprotocols, timeouts, socket
    /// options, TLS, proxies, compression, limits); its buffer, if set, is
    /// replaced by [`buffer`](Self::buffer).
    pub fn client(mut self, client: ClientBuilder) -> Self {
        self.client = client;
        self
    }

    /// The buffer between the reader task and the handlers: limits,
    /// overflow policy, classifier (default [`BufferConfig::default`]).
    pub fn buffer(mut self, buffer: BufferConfig) -> Self {
        self.buffer = buffer;
        self
    }

    async_handler_setter!(
        /// Called when a connection is open, after every reconnect too
        /// (the place to subscribe). Messages that arrive meanwhile wait
        /// in the buffer.
        on_open
    );
    async_handler_setter!(
        /// Called for each message (text or binary) taken from the buffer.
        on_message, message: Delivered
    );
    async_handler_setter!(
        /// Called once when a connection that was open ends: with the
        /// close frame after a close handshake (`None` inside: a close
        /// without code), with `None` when it ended without one.
        on_close, frame: Option<CloseFrame>
    );
    async_handler_setter!(
        /// Called before each reconnect attempt, with its number and
        /// delay.
        on_reconnect, info: Reconnecting
    );
    handler_setter!(
        /// Called for each error: a failed connect, a broken connection, a
        /// ping timeout, a handler's panic. A plain function: see the
        /// [module docs](self#handlers).
        on_error, &Error
    );
    handler_setter!(
        /// Called with each ping's payload, after it was answered (reader
        /// task).
        on_ping, &[u8]
    );
    handler_setter!(
        /// Called with each pong's payload (reader task).
        on_pong, &[u8]
    );
    handler_setter!(
        /// Called with every data frame as it is decoded — text, binary and
        /// continuation frames — before its message is complete or
        /// buffered (reader task).
        on_data, &Frame
    );
    handler_setter!(
        /// Called with each continuation frame of a fragmented message
        /// (reader task).
        on_cont_message, &Frame
    );

    /// Runs up to `n` `on_message` calls at once, each on a task of its
    /// own (0, the default: one at a time on the App's task). Any free
    /// slot takes the next message, so the order is not kept.
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n;
        self.worker_key = None;
        self
    }

    /// Runs `on_message` on `n` lane tasks, keeping the order per key:
    /// messages with the same key are handled in arrival order by one lane
    /// at a time. Messages without a key go to any lane.
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
            move || current.get()
        });
        let handlers = Arc::new(Handlers {
            plain,
            ..self.handlers
        });
        let client = self.client.build()?;
        buffer.validate(client.options().max_message_size)?;
        if self.workers == 0 && self.worker_key.is_some() {
            return Err(ConfigError::WorkersByKeyWithoutWorkers.into());
        }
        Ok(App {
            url: Arc::from(self.url.as_str()),
            client,
            buffer,
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
/// reader task calls (`on_ping`, `on_pong`, `on_data`,
/// `on_cont_message`). Unlike the blocking App's, nothing waits on it: the
/// App publishes a connection's context before it starts that
/// connection's reader task, and clears it once the reader has stopped.
#[derive(Default)]
struct CurrentContext(Mutex<Option<Context>>);

impl CurrentContext {
    fn set(&self, context: Option<Context>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = context;
    }

    fn get(&self) -> Option<Context> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// The event-driven async client; see the [module docs](self).
pub struct App {
    url: Arc<str>,
    client: Client,
    /// The buffer of each connection, with the frame observers.
    buffer: BufferConfig,
    handlers: Arc<Handlers>,
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

/// Messages taken from the buffer at once.
const BATCH: usize = 256;

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

    fn context(&self, sender: Option<crate::tokio::Sender>, connection: u64) -> Context {
        Context::new(self.handle.clone(), sender, connection, self.url.clone())
    }

    /// Connects and runs the handlers until the App is closed, or the
    /// connection ends without reconnect, or reconnecting gives up. A
    /// closed App stays closed: after [`AppHandle::close`], `run_forever`
    /// returns at once. Run it once at a time.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime with I/O and timers.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) for invalid options; without reconnect, the
    /// error that ended the connection (a failed first connect included);
    /// with reconnect, [`ErrorKind::GaveUp`](crate::ErrorKind::GaveUp) after the maximum number of
    /// attempts in a row.
    pub async fn run_forever(&self, options: &RunOptions) -> Result<RunSummary> {
        options.validate()?;
        let mut summary = RunSummary::default();
        let mut dispatch =
            Dispatch::new(self.handlers.clone(), self.workers, self.worker_key.clone());
        let mut retry = options.reconnect.map(Retry::new);
        // The keepalive is the connection's own, from its first instant:
        // its reader task sends the pings and keeps the pong deadline.
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
            let connected = ::tokio::select! {
                biased;
                () = self.handle.closed() => break Ok(()),
                connected = self.connect(&client, &mut summary) => connected,
            };
            let end = match connected {
                Ok((conn, context)) => {
                    opened = Some(Instant::now());
                    self.serve(conn, context, options, &mut dispatch, &mut summary)
                        .await
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
                    .awaited(&ctx, Callback::OnReconnect, || f(ctx.clone(), info))
                    .await;
            }
            tracing::debug!(delay = ?info.delay, attempt = info.attempt, "reconnecting (async)");
            ::tokio::select! {
                () = self.handle.closed() => break Ok(()),
                () = ::tokio::time::sleep(info.delay) => {}
            }
        };
        dispatch.finish().await;
        result.map(|()| summary)
    }

    /// Connects, publishes the connection's context, then starts its
    /// reader: the reader-task handlers never see a frame without it.
    async fn connect(
        &self,
        client: &crate::Client,
        summary: &mut RunSummary,
    ) -> Result<(BufferedWebSocket, Context)> {
        let ws = client.connect_async(&self.url).await?;
        summary.connections += 1;
        let context = self.context(Some(ws.sender_clone()), summary.connections);
        self.current.set(Some(context.clone()));
        match ws.into_buffered(&self.buffer).await {
            Ok(conn) => Ok((conn, context)),
            Err(error) => {
                self.current.set(None);
                Err(error)
            }
        }
    }

    /// Runs one connection to its end.
    async fn serve(
        &self,
        conn: BufferedWebSocket,
        context: Context,
        options: &RunOptions,
        dispatch: &mut Dispatch,
        summary: &mut RunSummary,
    ) -> Ended {
        if let Some(f) = &self.handlers.on_open {
            self.handlers
                .awaited(&context, Callback::OnOpen, || f(context.clone()))
                .await;
        }
        self.handle.attach(conn.sender());
        let end = self.consume(&conn, &context, dispatch, summary).await;
        self.handle.detach();
        summary.last_stats = Some(conn.stats());
        // The reader has stopped (the buffer reported the end): no more
        // reader-task handler calls for this connection.
        drop(conn);
        self.current.set(None);
        // A dead connection ends with a pong timeout from the reader itself.
        let ended = Ended::of(end, false, options.ping_timeout);
        if let Some(error) = &ended.error {
            self.handlers.error(&context, error);
        }
        if let Some(f) = &self.handlers.on_close {
            let frame = ended.close_frame().cloned();
            self.handlers
                .awaited(&context, Callback::OnClose, || f(context.clone(), frame))
                .await;
        }
        ended
    }

    /// Hands messages to `on_message` until the connection ends; returns
    /// the end. Sends the close when the App is asked to, and bounds the
    /// server's answer by `close_timeout`.
    async fn consume(
        &self,
        conn: &BufferedWebSocket,
        context: &Context,
        dispatch: &mut Dispatch,
        summary: &mut RunSummary,
    ) -> Error {
        let close_timeout = self.client.options().close_timeout;
        // Set once the close is sent: when the connection is given up.
        let mut close_deadline: Option<::tokio::time::Instant> = None;
        let mut killed = false;
        loop {
            if close_deadline.is_none() && self.handle.is_closing() {
                close_deadline = Some(::tokio::time::Instant::now() + close_timeout);
                if let Some(frame) = self.handle.close_frame() {
                    // A send stuck behind a full socket (a server that
                    // reads nothing) must not outlast the close's bound:
                    // the deadline below then aborts the connection.
                    let sender = conn.sender();
                    let sent = context::send_close(&sender, frame);
                    let _ = ::tokio::time::timeout(close_timeout, sent).await;
                }
                // Under Block the reader must not wait for room any more:
                // the server's close has to be read.
                conn.buffer().set_closing();
            }
            let waiting_for_close = close_deadline.filter(|_| !killed);
            if !self.drain_on_close && close_deadline.is_some() {
                // Closing without draining: what is buffered stays there,
                // counted as undelivered (a durable spill keeps it for the
                // next run on its directory); only the end is awaited.
                let buffer = conn.buffer();
                ::tokio::select! {
                    biased;
                    () = ::tokio::time::sleep_until(waiting_for_close.unwrap_or_else(::tokio::time::Instant::now)),
                        if waiting_for_close.is_some() =>
                    {
                        tracing::debug!("no close from the server within close_timeout (async App)");
                        killed = true;
                        conn.killer().kill().await;
                    }
                    () = std::future::poll_fn(|cx| buffer.poll_finished(cx)) => {
                        summary.undelivered += buffer.len() as u64;
                        return buffer
                            .take_end()
                            .map_or_else(|| crate::ErrorKind::AlreadyClosed.into(), Error::from);
                    }
                }
                continue;
            }
            let batch = ::tokio::select! {
                biased;
                () = self.handle.closed(), if close_deadline.is_none() => continue,
                () = ::tokio::time::sleep_until(waiting_for_close.unwrap_or_else(::tokio::time::Instant::now)),
                    if waiting_for_close.is_some() =>
                {
                    tracing::debug!("no close from the server within close_timeout (async App)");
                    killed = true;
                    conn.killer().kill().await;
                    continue;
                }
                // No bound of its own: the branches above wake the loop.
                batch = conn.recv_batch(BATCH, std::time::Duration::MAX) => batch,
            };
            let batch = match batch {
                Ok(batch) => batch,
                Err(end) => return end,
            };
            let mut skip = !self.drain_on_close && close_deadline.is_some();
            for message in batch {
                // Without draining, a close asked for by a handler of this
                // batch stops the rest of it too.
                skip = skip || (!self.drain_on_close && self.handle.is_closing());
                if skip {
                    summary.undelivered += 1;
                } else {
                    dispatch.dispatch(context, message).await;
                }
            }
        }
    }
}
