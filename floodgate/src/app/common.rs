//! What the blocking [`App`](super::App) and the async one
//! ([`crate::tokio::app::App`], feature `tokio`) share, whatever their
//! context type: the plain handlers (`on_error` and those the reader
//! calls as frames are decoded) with their panic guard, the buffer
//! observers that call them, how a connection's end is read, and what the
//! App does next (reconnect after a delay, or stop with what result).

use super::Reconnecting;
use crate::buffer::BufferConfig;
use crate::error::{Callback, Error, ErrorKind, Result, TimeoutKind};
use crate::reconnect::Retry;
use floodgate_proto::{CloseFrame, Frame, Message, OpCode};
use std::any::Any;
use std::borrow::Borrow;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

type ErrorFn<C> = Box<dyn Fn(&C, &Error) + Send + Sync>;
type PayloadFn<C> = Box<dyn Fn(&C, &[u8]) + Send + Sync>;
type FrameFn<C> = Box<dyn Fn(&C, &Frame) + Send + Sync>;

/// The handlers that are plain functions in both Apps, for context type
/// `C`.
pub(crate) struct PlainHandlers<C> {
    pub(crate) on_error: Option<ErrorFn<C>>,
    pub(crate) on_ping: Option<PayloadFn<C>>,
    pub(crate) on_pong: Option<PayloadFn<C>>,
    pub(crate) on_data: Option<FrameFn<C>>,
    pub(crate) on_cont_message: Option<FrameFn<C>>,
}

impl<C> Default for PlainHandlers<C> {
    fn default() -> Self {
        PlainHandlers {
            on_error: None,
            on_ping: None,
            on_pong: None,
            on_data: None,
            on_cont_message: None,
        }
    }
}

impl<C> PlainHandlers<C> {
    /// Reports a handler's panic to `on_error` as [`ErrorKind::Panicked`].
    pub(crate) fn panicked(&self, context: &C, what: Callback, panic: &(dyn Any + Send)) {
        let error = ErrorKind::Panicked {
            callback: what,
            message: crate::error::panic_message(panic),
        }
        .into();
        // A panicking on_error is not reported again.
        if let Some(on_error) = &self.on_error {
            let _ = catch_unwind(AssertUnwindSafe(|| on_error(context, &error)));
        }
    }

    /// Runs a handler, turning a panic into an `on_error` call.
    pub(crate) fn guarded(&self, context: &C, what: Callback, run: impl FnOnce()) {
        if let Err(panic) = catch_unwind(AssertUnwindSafe(run)) {
            self.panicked(context, what, &*panic);
        }
    }

    pub(crate) fn error(&self, context: &C, error: &Error) {
        if let Some(f) = &self.on_error {
            self.guarded(context, Callback::OnError, || f(context, error));
        }
    }
}

/// Adds to `buffer` the observers of control and data frames that call
/// the reader's handlers, keeping any the buffer had. `context` gives the
/// connection's context (`None`: the frame is not shown).
pub(crate) fn with_observers<C, R>(
    buffer: BufferConfig,
    handlers: &Arc<PlainHandlers<C>>,
    context: impl Fn() -> Option<R> + Clone + Send + Sync + 'static,
) -> BufferConfig
where
    C: 'static,
    R: Borrow<C>,
{
    let mut buffer = buffer;
    if handlers.on_ping.is_some() || handlers.on_pong.is_some() {
        let (handlers, context, theirs) =
            (handlers.clone(), context.clone(), buffer.on_control.clone());
        buffer = buffer.on_control_frame(move |frame| {
            if let Some(theirs) = &theirs {
                theirs(frame);
            }
            let Some(ctx) = context() else { return };
            let ctx = ctx.borrow();
            match (frame, &handlers.on_ping, &handlers.on_pong) {
                (Message::Ping(p), Some(f), _) => {
                    handlers.guarded(ctx, Callback::OnPing, || f(ctx, p))
                }
                (Message::Pong(p), _, Some(f)) => {
                    handlers.guarded(ctx, Callback::OnPong, || f(ctx, p))
                }
                _ => {}
            }
        });
    }
    if handlers.on_data.is_some() || handlers.on_cont_message.is_some() {
        let (handlers, theirs) = (handlers.clone(), buffer.on_data_frame.clone());
        buffer = buffer.on_data_frame(move |frame| {
            if let Some(theirs) = &theirs {
                theirs(frame);
            }
            let Some(ctx) = context() else { return };
            let ctx = ctx.borrow();
            if let Some(f) = &handlers.on_data {
                handlers.guarded(ctx, Callback::OnData, || f(ctx, frame));
            }
            if let (OpCode::Continuation, Some(f)) = (frame.opcode, &handlers.on_cont_message) {
                handlers.guarded(ctx, Callback::OnContMessage, || f(ctx, frame));
            }
        });
    }
    buffer
}

/// How one connection ended.
pub(crate) struct Ended {
    /// The close handshake's frame, if there was one.
    pub(crate) closed: Option<Option<CloseFrame>>,
    /// The error, when it ended otherwise.
    pub(crate) error: Option<Error>,
}

impl Ended {
    pub(crate) fn failed(error: Error) -> Ended {
        Ended {
            closed: None,
            error: Some(error),
        }
    }

    /// Reads the end the buffer reported; `dead`: the keepalive found no
    /// pong within `ping_timeout` (and ended the connection itself).
    pub(crate) fn of(end: Error, dead: bool, ping_timeout: Option<Duration>) -> Ended {
        match end.into_kind() {
            _ if dead => Ended::failed(Error::timeout(TimeoutKind::Pong, ping_timeout)),
            ErrorKind::ConnectionClosed(frame) => Ended {
                closed: Some(frame),
                error: None,
            },
            kind => Ended::failed(kind.into()),
        }
    }

    /// The close frame for `on_close`.
    pub(crate) fn close_frame(&self) -> Option<&CloseFrame> {
        self.closed.as_ref().and_then(Option::as_ref)
    }
}

/// What the App does after a connection (or a connect) ended.
pub(crate) enum Next {
    /// `run_forever` returns this.
    Stop(Result<()>),
    /// Another attempt after the delay (`on_reconnect` is told).
    Reconnect(Reconnecting),
}

/// Decides [`Next`] for an App that was not asked to close: without
/// `retry`, stop with the end's error (or `Ok` after a close handshake);
/// with it, reconnect after the backoff's delay (starting the backoff over
/// when the connection, `opened` at that instant, stayed up long enough),
/// until the attempts run out ([`ErrorKind::GaveUp`]).
pub(crate) fn next(retry: Option<&mut Retry>, opened: Option<Instant>, end: Ended) -> Next {
    let Some(retry) = retry else {
        return Next::Stop(end.error.map_or(Ok(()), Err));
    };
    if let Some(opened) = opened {
        retry.connection_ended(opened.elapsed());
    }
    match retry.next_delay() {
        Some(delay) => Next::Reconnect(Reconnecting {
            attempt: retry.attempts(),
            delay,
        }),
        None => {
            let last = end
                .error
                .unwrap_or_else(|| ErrorKind::ConnectionClosed(end.closed.flatten()).into());
            Next::Stop(Err(ErrorKind::GaveUp {
                attempts: retry.attempts(),
                last,
            }
            .into()))
        }
    }
}
