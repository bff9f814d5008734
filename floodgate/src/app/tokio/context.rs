//! What the async App's handlers are given: [`Context`] (the connection of
//! the moment and a way to send on it) and [`AppHandle`] (close the App
//! from anywhere, async code or not).

use crate::error::{ErrorKind, Result};
use crate::tokio::Sender;
use floodgate_proto::{CloseCode, CloseFrame, Message};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::watch;

#[derive(Debug, Default)]
struct HandleState {
    /// The application asked to close: no reconnect from now on.
    closing: Option<Option<CloseFrame>>,
    /// The connection of the moment.
    sender: Option<Sender>,
}

#[derive(Debug)]
struct HandleShared {
    state: Mutex<HandleState>,
    /// Flips to true once, when the App is asked to close; `run_forever`
    /// waits on it (a `watch`, so a close asked for before the wait
    /// starts is not missed).
    closing: watch::Sender<bool>,
}

/// Closes an async [`App`](super::App) from a handler, another task,
/// another thread or a Ctrl-C handler; cheap to clone. Its methods are not
/// `async`: `close` only records the request, and the App's task sends the
/// close frame.
///
/// ```
/// use floodgate::tokio::app::{App, RunOptions};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> floodgate::Result<()> {
/// # let server = floodgate_server::Server::bind("127.0.0.1:0", floodgate_server::echo).unwrap();
/// let app = App::builder(server.url()).build()?;
/// let handle = app.handle();
/// tokio::spawn(async move {
///     tokio::time::sleep(std::time::Duration::from_millis(50)).await;
///     handle.close(); // run_forever returns once the close handshake is done
/// });
/// app.run_forever(&RunOptions::new()).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct AppHandle {
    shared: Arc<HandleShared>,
}

impl Default for AppHandle {
    fn default() -> AppHandle {
        AppHandle {
            shared: Arc::new(HandleShared {
                state: Mutex::default(),
                closing: watch::Sender::new(false),
            }),
        }
    }
}

impl AppHandle {
    fn lock(&self) -> MutexGuard<'_, HandleState> {
        self.shared.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Closes the App with 1000 (normal closure); see
    /// [`close_with`](Self::close_with).
    pub fn close(&self) {
        self.close_with(Some(CloseFrame::new(CloseCode::NORMAL, "")));
    }

    /// Closes the App: no reconnect happens from now on, the App's task
    /// sends the close frame on the connection of the moment (if any) and
    /// `run_forever` returns once the close handshake is done (bounded by
    /// the connection's `close_timeout`) and the handlers have finished.
    /// Returns at once, from any thread. Calls after the first do nothing.
    /// An invalid close code is replaced by 1000.
    pub fn close_with(&self, frame: Option<CloseFrame>) {
        {
            let mut state = self.lock();
            if state.closing.is_some() {
                return;
            }
            state.closing = Some(frame);
        }
        self.shared.closing.send_replace(true);
    }

    /// The sender of the connection of the moment, to send from outside
    /// the handlers (websocket-client's `app.send`); `None` between
    /// connections. A sender kept past its connection's end returns
    /// [`ErrorKind::AlreadyClosed`]: ask again after a reconnect.
    pub fn sender(&self) -> Option<Sender> {
        self.lock().sender.clone()
    }

    /// Whether the App was asked to close.
    pub fn is_closing(&self) -> bool {
        self.lock().closing.is_some()
    }

    /// The close frame asked for (`None` inside: a close without a code),
    /// once the App is closing.
    pub(crate) fn close_frame(&self) -> Option<Option<CloseFrame>> {
        self.lock().closing.clone()
    }

    /// Resolves once the App is asked to close (at once if it was).
    pub(crate) async fn closed(&self) {
        let mut closing = self.shared.closing.subscribe();
        // The sender lives as long as `self`: `wait_for` cannot fail.
        let _ = closing.wait_for(|closing| *closing).await;
    }

    /// A connection is up: `sender` reaches it from now on.
    pub(crate) fn attach(&self, sender: Sender) {
        self.lock().sender = Some(sender);
    }

    pub(crate) fn detach(&self) {
        self.lock().sender = None;
    }
}

/// Sends the close frame the App was asked for on `sender` (1000 instead of
/// a code that must not be sent).
pub(crate) async fn send_close(sender: &Sender, frame: Option<CloseFrame>) {
    let result = match sender.start_close(frame).await {
        Err(e) if matches!(e.kind(), ErrorKind::Usage(_)) => {
            sender
                .start_close(Some(CloseFrame::new(CloseCode::NORMAL, "")))
                .await
        }
        other => other,
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "closing the async App's connection");
    }
}

#[derive(Debug)]
struct ContextInner {
    handle: AppHandle,
    sender: Option<Sender>,
    connection: u64,
    url: Arc<str>,
}

/// What every handler is given: the App's handle and, when there is one,
/// the connection of the moment. Cheap to clone (one reference count), so
/// async handlers take it by value and may keep it.
///
/// After the connection ends its sends return
/// [`ErrorKind::AlreadyClosed`]; the context of the next connection (after
/// a reconnect) has a new sender.
#[derive(Debug, Clone)]
pub struct Context(Arc<ContextInner>);

impl Context {
    pub(crate) fn new(
        handle: AppHandle,
        sender: Option<Sender>,
        connection: u64,
        url: Arc<str>,
    ) -> Context {
        Context(Arc::new(ContextInner {
            handle,
            sender,
            connection,
            url,
        }))
    }

    /// The sender of the connection of the moment (`None` in handlers
    /// called between connections: `on_error` for a failed connect,
    /// `on_reconnect`).
    pub fn sender(&self) -> Option<&Sender> {
        self.0.sender.as_ref()
    }

    /// Sends a message on the connection.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::AlreadyClosed`] when there is no connection; otherwise
    /// as for [`Sender::send`].
    pub async fn send(&self, message: impl Into<Message>) -> Result<()> {
        self.connected()?.send(message).await
    }

    /// Sends a text message on the connection.
    ///
    /// # Errors
    ///
    /// As for [`send`](Self::send).
    pub async fn send_text(&self, text: &str) -> Result<()> {
        self.connected()?.send_text(text).await
    }

    /// Sends a binary message on the connection.
    ///
    /// # Errors
    ///
    /// As for [`send`](Self::send).
    pub async fn send_binary(&self, data: &[u8]) -> Result<()> {
        self.connected()?.send_binary(data).await
    }

    fn connected(&self) -> Result<&Sender> {
        self.0
            .sender
            .as_ref()
            .ok_or_else(|| ErrorKind::AlreadyClosed.into())
    }

    /// Closes the App (see [`AppHandle::close`]).
    pub fn close(&self) {
        self.0.handle.close();
    }

    /// The App's handle, to keep.
    pub fn handle(&self) -> &AppHandle {
        &self.0.handle
    }

    /// Which connection this is: 1 for the first, 2 after the first
    /// reconnect, and so on (0 before the first succeeded).
    pub fn connection(&self) -> u64 {
        self.0.connection
    }

    /// The URL the App connects to.
    pub fn url(&self) -> &str {
        &self.0.url
    }
}
