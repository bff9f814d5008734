//! What handlers are given: [`Context`] (the connection of the moment and
//! a way to send on it) and [`AppHandle`] (close the App from anywhere).

use crate::blocking::buffered::Sender;
use crate::error::{ErrorKind, Result};
use floodgate_proto::{CloseCode, CloseFrame, Message};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

#[derive(Debug, Default)]
struct HandleState {
    /// The application asked to close: no reconnect from now on.
    closing: Option<Option<CloseFrame>>,
    /// The connection of the moment.
    sender: Option<Sender>,
}

#[derive(Debug, Default)]
struct HandleShared {
    state: Mutex<HandleState>,
    changed: Condvar,
}

/// Closes an [`App`](super::App) from a handler, another thread or a
/// signal handler's thread; cheap to clone.
///
/// ```
/// use floodgate::app::{App, RunOptions};
/// # let server = floodgate_server::Server::bind("127.0.0.1:0", floodgate_server::echo).unwrap();
/// let app = App::builder(server.url()).build()?;
/// let handle = app.handle();
/// std::thread::spawn(move || {
///     std::thread::sleep(std::time::Duration::from_millis(50));
///     handle.close(); // run_forever returns once the close handshake is done
/// });
/// app.run_forever(&RunOptions::new())?;
/// # Ok::<(), floodgate::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct AppHandle {
    shared: Arc<HandleShared>,
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

    /// Closes the App: no reconnect happens from now on, the close frame
    /// is sent on the connection of the moment (if any) and `run_forever`
    /// returns once the close handshake is done (bounded by the
    /// connection's `close_timeout`) and the handlers have finished. It
    /// returns at once, so it may be called from any handler, even those
    /// that run on the reader thread. Calls after the first do nothing.
    /// An invalid close code is replaced by 1000.
    pub fn close_with(&self, frame: Option<CloseFrame>) {
        let sender = {
            let mut state = self.lock();
            if state.closing.is_some() {
                return;
            }
            state.closing = Some(frame.clone());
            state.sender.clone()
        };
        self.shared.changed.notify_all();
        if let Some(sender) = sender {
            send_close(&sender, frame);
        }
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

    /// A connection is up: a close asked for from now on goes to it. If
    /// the App was closed before, the close is sent at once.
    pub(crate) fn attach(&self, sender: Sender) {
        let pending = {
            let mut state = self.lock();
            state.sender = Some(sender.clone());
            state.closing.clone()
        };
        if let Some(frame) = pending {
            send_close(&sender, frame);
        }
    }

    pub(crate) fn detach(&self) {
        self.lock().sender = None;
    }

    /// Waits up to `wait`; true if the App was closed meanwhile.
    pub(crate) fn wait_closing(&self, wait: Duration) -> bool {
        let state = self.lock();
        let (state, _) = self
            .shared
            .changed
            .wait_timeout_while(state, wait, |s| s.closing.is_none())
            .unwrap_or_else(|e| e.into_inner());
        state.closing.is_some()
    }
}

fn send_close(sender: &Sender, frame: Option<CloseFrame>) {
    let result = match sender.start_close(frame) {
        Err(e) if matches!(e.kind(), ErrorKind::Usage(_)) => {
            sender.start_close(Some(CloseFrame::new(CloseCode::NORMAL, "")))
        }
        other => other,
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "closing the App's connection");
    }
}

/// What every handler is given: the App's handle and, when there is one,
/// the connection of the moment.
///
/// Handlers may keep a clone of [`Context::sender`] and send from any
/// thread; after the connection ends it returns
/// [`ErrorKind::AlreadyClosed`], and the context of the next connection
/// (after a reconnect) has a new one.
#[derive(Debug, Clone)]
pub struct Context {
    handle: AppHandle,
    sender: Option<Sender>,
    connection: u64,
    url: Arc<str>,
}

impl Context {
    pub(crate) fn new(
        handle: AppHandle,
        sender: Option<Sender>,
        connection: u64,
        url: Arc<str>,
    ) -> Context {
        Context {
            handle,
            sender,
            connection,
            url,
        }
    }

    /// The sender of the connection of the moment (`None` in handlers
    /// called between connections: `on_error` for a failed connect,
    /// `on_reconnect`).
    pub fn sender(&self) -> Option<&Sender> {
        self.sender.as_ref()
    }

    /// Sends a message on the connection.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::AlreadyClosed`] when there is no connection; otherwise
    /// as for [`Sender::send`].
    pub fn send(&self, message: impl Into<Message>) -> Result<()> {
        self.connected()?.send(message)
    }

    /// Sends a text message on the connection.
    ///
    /// # Errors
    ///
    /// As for [`send`](Self::send).
    pub fn send_text(&self, text: &str) -> Result<()> {
        self.connected()?.send_text(text)
    }

    /// Sends a binary message on the connection.
    ///
    /// # Errors
    ///
    /// As for [`send`](Self::send).
    pub fn send_binary(&self, data: &[u8]) -> Result<()> {
        self.connected()?.send_binary(data)
    }

    fn connected(&self) -> Result<&Sender> {
        self.sender
            .as_ref()
            .ok_or_else(|| ErrorKind::AlreadyClosed.into())
    }

    /// Closes the App (see [`AppHandle::close`]).
    pub fn close(&self) {
        self.handle.close();
    }

    /// The App's handle, to keep.
    pub fn handle(&self) -> &AppHandle {
        &self.handle
    }

    /// Which connection this is: 1 for the first, 2 after the first
    /// reconnect, and so on (0 before the first succeeded).
    pub fn connection(&self) -> u64 {
        self.connection
    }

    /// The URL the App connects to.
    pub fn url(&self) -> &str {
        &self.url
    }
}
