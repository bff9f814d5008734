//! [`Link`]: how the input side (stdin or the line editor) reaches the
//! connection of the moment, which changes when the session reconnects,
//! and how it tells the session that the user wants to close.

use floodgate::Sender;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// Why the input side could not send.
#[derive(Debug)]
pub enum Unsent {
    /// The session is over (or the user closed): stop reading input.
    Over,
    /// The send failed on the connection.
    Failed(floodgate::Error),
}

#[derive(Default)]
struct State {
    sender: Option<Sender>,
    /// The user asked to close (end of input, Ctrl-D, `/close`), with
    /// this code and reason.
    closing: Option<(u16, String)>,
    /// The session is over.
    ended: bool,
}

/// Shared by the session and the input thread.
#[derive(Default)]
pub struct Link {
    state: Mutex<State>,
    changed: Condvar,
}

impl Link {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The session has a (new) connection. Returns the close the user
    /// asked for before it was attached (input can end before the first
    /// connection is handed over): the session must send it.
    pub fn attach(&self, sender: Sender) -> Option<(u16, String)> {
        let mut state = self.lock();
        state.sender = Some(sender);
        let pending = state.closing.clone();
        drop(state);
        self.changed.notify_all();
        pending
    }

    /// The session's connection ended.
    pub fn detach(&self) {
        self.lock().sender = None;
    }

    /// The session is over: nothing will be sent any more.
    pub fn end(&self) {
        let mut state = self.lock();
        state.ended = true;
        state.sender = None;
        drop(state);
        self.changed.notify_all();
    }

    /// Whether the user asked to close.
    pub fn closing(&self) -> bool {
        self.lock().closing.is_some()
    }

    /// Runs `send` with the connection's sender, waiting for one while
    /// the session reconnects.
    pub fn send<T>(&self, send: impl FnOnce(&Sender) -> floodgate::Result<T>) -> Result<T, Unsent> {
        let sender = {
            let mut state = self.lock();
            loop {
                if state.ended || state.closing.is_some() {
                    return Err(Unsent::Over);
                }
                if let Some(sender) = &state.sender {
                    break sender.clone();
                }
                state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
            }
        };
        send(&sender).map_err(Unsent::Failed)
    }

    /// The user's close: mark it, send the close frame if connected and
    /// wait (up to the close timeout) for the server's answer.
    pub fn close(&self, code: u16, reason: &str) -> floodgate::Result<()> {
        let sender = {
            let mut state = self.lock();
            if state.closing.is_some() || state.ended {
                return Ok(());
            }
            state.closing = Some((code, reason.to_owned()));
            state.sender.clone()
        };
        self.changed.notify_all();
        match sender {
            Some(sender) => sender.close(code, reason),
            None => Ok(()),
        }
    }

    /// Waits up to `wait`; true if the user closed (or the session ended)
    /// meanwhile.
    pub fn wait_closing(&self, wait: Duration) -> bool {
        self.wait_until(wait, |s| s.closing.is_some() || s.ended)
    }

    /// Waits up to `wait`; true if the session ended meanwhile.
    pub fn wait_ended(&self, wait: Duration) -> bool {
        self.wait_until(wait, |s| s.ended)
    }

    fn wait_until(&self, wait: Duration, done: impl Fn(&State) -> bool) -> bool {
        let state = self.lock();
        let (state, _) = self
            .changed
            .wait_timeout_while(state, wait, |s| !done(s))
            .unwrap_or_else(|e| e.into_inner());
        done(&state)
    }
}
