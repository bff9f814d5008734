//! [`Connection`]: one floodgate buffered connection, for the Python
//! `WebSocket` (`floodgate/_core.py`) to drive.
//!
//! The connection's reader is a Rust thread that never takes the GIL
//! (unless the application gave a Python `key` or `classifier`): it reads,
//! answers pings, handles the close and fills the bounded buffer, however
//! long the Python code takes between two `recv` calls. Every wait here
//! (`recv`, `recv_batch`, `close`) releases the GIL, in slices of
//! [`SLICE`], checking for signals between them, so that Ctrl-C raises
//! `KeyboardInterrupt` in a blocked `recv` as it does with websocket-client.
//! Sends release the GIL too: a send blocked by a slow server never holds
//! up the other Python threads.

use crate::buffer::stats_dict;
use crate::convert::{message_to_py, opcode, opcode_of, seconds, OPCODE_CLOSE};
use crate::errors::{closed, timeout as timeout_error, to_py};
use crate::options::ConnectOptions;
use floodgate::buffer::Delivered;
use floodgate::{BufferedWebSocket, CloseCode, CloseFrame, Error, ErrorKind, Message, Sender};
use pyo3::prelude::*;
use pyo3::pybacked::{PyBackedBytes, PyBackedStr};
use pyo3::types::{PyBytes, PyList};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The longest a wait goes without looking at Python's signals.
const SLICE: Duration = Duration::from_millis(50);
/// With control frames asked for, waits are cut shorter so that a ping
/// arriving during one is returned soon.
const CONTROL_SLICE: Duration = Duration::from_millis(5);
/// About how many payload bytes one `recv_batch` turns into Python
/// objects. A batch of 1024 messages of 64 KiB would be 64 MiB of fresh
/// `bytes` at once: allocating and faulting in that much (glibc gives it
/// back to the kernel between batches) made `recv_batch` slower than
/// `recv` at 64 KiB (0.7x of it); at 256 KiB a batch it is 0.8x of it,
/// and small messages still come by the hundred. One message is always
/// taken.
const BATCH_BYTES: usize = 256 << 10;
/// Control frames kept for `recv_data(control_frame=True)`; older ones
/// are dropped first.
const CONTROL_KEPT: usize = 256;

/// The pings and pongs the reader saw, once the application asked for
/// control frames (websocket-client's `recv_data(control_frame=True)`).
#[derive(Default)]
pub(crate) struct ControlTap {
    wanted: AtomicBool,
    frames: Mutex<VecDeque<Message>>,
}

impl ControlTap {
    pub(crate) fn observe(&self, frame: &Message) {
        if !self.wanted.load(Ordering::Relaxed) {
            return;
        }
        let mut frames = self.frames.lock().unwrap_or_else(|e| e.into_inner());
        if frames.len() == CONTROL_KEPT {
            frames.pop_front();
        }
        frames.push_back(frame.clone());
    }

    fn pop(&self) -> Option<Message> {
        self.frames
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop_front()
    }

    fn drain(&self) -> VecDeque<Message> {
        std::mem::take(&mut *self.frames.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// The frames of fragmented messages, for `WebSocketApp(on_cont_message=)`
/// (websocket-client's `fire_cont_frame`): the reader records them as it
/// decodes them; the App's thread takes them. Bounded like the control
/// tap: past [`FRAGMENTS_KEPT`], the oldest are dropped and counted.
#[derive(Default)]
pub(crate) struct FragmentTap {
    frames: Mutex<(VecDeque<Fragment>, u64)>,
}

/// A recorded frame: websocket-client's opcode, the payload, fin.
type Fragment = (u8, Vec<u8>, bool);

/// Fragments kept for the App's thread.
const FRAGMENTS_KEPT: usize = 4096;

impl FragmentTap {
    pub(crate) fn observe(&self, frame: &floodgate::Frame) {
        // A whole message in one frame is not a fragment.
        if frame.fin && frame.opcode != floodgate::OpCode::Continuation {
            return;
        }
        let mut kept = self.frames.lock().unwrap_or_else(|e| e.into_inner());
        if kept.0.len() == FRAGMENTS_KEPT {
            kept.0.pop_front();
            kept.1 += 1;
        }
        let opcode = crate::convert::frame_opcode(frame.opcode);
        kept.0
            .push_back((opcode, frame.payload.to_vec(), frame.fin));
    }
}

/// A buffered floodgate connection (see the module docs).
#[pyclass(module = "floodgate._floodgate", frozen)]
pub struct Connection {
    ws: BufferedWebSocket,
    sender: Sender,
    control: Arc<ControlTap>,
    fragments: Option<Arc<FragmentTap>>,
    /// The server's close was returned once as an `OPCODE_CLOSE` message
    /// (websocket-client's `recv` returns `""` for it); after it, receiving
    /// raises `WebSocketConnectionClosedException`.
    close_returned: AtomicBool,
    /// How many messages `recv_batch` takes at most next time, from the
    /// sizes of the last batch (see [`BATCH_BYTES`]).
    batch_hint: AtomicUsize,
    /// The buffer spills to disk (`overflow="spill"`): `close` leaves the
    /// buffered messages where they are instead of taking and discarding
    /// them (see [`Connection::close`]).
    spills: bool,
    /// The readiness descriptor (`ready_fd`), made on first request: most
    /// programs never ask, and each sync costs a lock per receive.
    #[cfg(unix)]
    ready: std::sync::OnceLock<crate::ready::ReadySignal>,
}

/// Connects with the normalised options (see `floodgate/_options.py`).
/// With `fragments`, the frames of fragmented messages are recorded for
/// [`Connection::fragments`]; with `control`, pings and pongs are recorded
/// from the first one for [`Connection::control_frames`]; with `keepalive`
/// (`(interval, timeout, payload)`, seconds), the connection pings from
/// its first instant and ends when no pong comes in time (the exception
/// then has `_pong_timeout`): the App's keepalive, set at connect rather
/// than started on the running connection, whose reader may be asleep
/// for up to a second with no deadline to wake it.
#[pyfunction]
#[pyo3(signature = (url, options, fragments=false, control=false, keepalive=None))]
pub fn connect(
    py: Python<'_>,
    url: String,
    options: ConnectOptions,
    fragments: bool,
    control: bool,
    keepalive: Option<(f64, Option<f64>, Vec<u8>)>,
) -> PyResult<Connection> {
    let control = Arc::new(ControlTap {
        wanted: AtomicBool::new(control),
        ..ControlTap::default()
    });
    let spills = options.spills();
    let (mut builder, buffer) = options.builder()?;
    if let Some((interval, timeout, payload)) = keepalive {
        let interval = ping_interval(interval)?;
        builder = builder
            .ping_interval(Some(interval))
            .ping_timeout(seconds("ping_timeout", timeout)?);
        if !payload.is_empty() {
            builder = builder.ping_payload(payload);
        }
    }
    let tap = control.clone();
    let mut buffer = buffer.on_control_frame(move |frame| tap.observe(frame));
    let fragments = fragments.then(|| Arc::new(FragmentTap::default()));
    if let Some(tap) = fragments.clone() {
        buffer = buffer.on_data_frame(move |frame| tap.observe(frame));
    }
    let client = builder.buffer(buffer).build().map_err(|e| to_py(py, e))?;
    let ws = py
        .detach(|| client.connect_buffered(&url))
        .map_err(|e| to_py(py, e))?;
    Ok(Connection {
        sender: ws.sender(),
        ws,
        control,
        fragments,
        close_returned: AtomicBool::new(false),
        batch_hint: AtomicUsize::new(usize::MAX),
        spills,
        #[cfg(unix)]
        ready: std::sync::OnceLock::new(),
    })
}

/// Keeps the readiness descriptor in step (see `ready.rs`) when a call
/// that may take from the buffer returns, however it returns; nothing
/// until `ready_fd` was asked for.
struct SyncAfter<'a>(&'a Connection);

impl Drop for SyncAfter<'_> {
    fn drop(&mut self) {
        #[cfg(unix)]
        if let Some(ready) = self.0.ready.get() {
            ready.sync();
        }
    }
}

/// How a wait ended.
enum Waited<T> {
    Got(T),
    TimedOut,
}

impl Connection {
    /// Runs `step` (which waits at most the slice it is given) without the
    /// GIL until it yields something or `deadline` passes, checking
    /// Python's signals between slices.
    fn wait<T: Send>(
        &self,
        py: Python<'_>,
        deadline: Option<Instant>,
        slice: Duration,
        mut step: impl FnMut(Duration) -> Option<floodgate::Result<T>> + Send,
    ) -> PyResult<Waited<floodgate::Result<T>>> {
        loop {
            let now = Instant::now();
            let this = match deadline {
                Some(d) if d <= now => return Ok(Waited::TimedOut),
                Some(d) => (d - now).min(slice),
                None => slice,
            };
            if let Some(result) = py.detach(|| step(this)) {
                return Ok(Waited::Got(result));
            }
            py.check_signals()?;
        }
    }

    /// What a receive returns once the connection has ended: the server's
    /// close once (as `(OPCODE_CLOSE, payload)`), then the exception.
    fn ended<'py>(&self, py: Python<'py>, end: Error) -> PyResult<(u8, Bound<'py, PyAny>)> {
        if let ErrorKind::ConnectionClosed(frame) = end.kind() {
            if !self.close_returned.swap(true, Ordering::SeqCst) {
                return Ok((OPCODE_CLOSE, close_payload(py, frame.as_ref()).into_any()));
            }
        }
        Err(match end.kind() {
            ErrorKind::AlreadyClosed | ErrorKind::ConnectionClosed(_) => {
                closed(py, "Connection is already closed.")
            }
            _ => to_py(py, end),
        })
    }

    fn delivered<'py>(
        py: Python<'py>,
        message: &Delivered,
        raw: bool,
    ) -> PyResult<(u8, Bound<'py, PyAny>)> {
        let m = message.message();
        let data = if raw {
            PyBytes::new(py, m.as_bytes()).into_any()
        } else {
            message_to_py(py, m)?
        };
        Ok((opcode_of(m), data))
    }
}

/// A close frame's payload as websocket-client gives it: the code (2
/// bytes, big-endian) and the reason; empty for a close without a code.
fn close_payload<'py>(py: Python<'py>, frame: Option<&CloseFrame>) -> Bound<'py, PyBytes> {
    let mut payload = Vec::new();
    if let Some(frame) = frame {
        payload.extend_from_slice(&frame.code.0.to_be_bytes());
        payload.extend_from_slice(frame.reason.as_bytes());
    }
    PyBytes::new(py, &payload)
}

#[pymethods]
impl Connection {
    /// Receives the next message as `(opcode, data)`: `str` for text,
    /// `bytes` otherwise. With `control_frame`, pings and pongs the reader
    /// saw (it has answered the pings) are returned too. `timeout` in
    /// seconds, `None` to wait for ever.
    ///
    /// With `raw`, text comes as its UTF-8 `bytes` (websocket-client's
    /// `recv_data`).
    #[pyo3(signature = (timeout=None, control_frame=false, raw=false))]
    fn recv<'py>(
        &self,
        py: Python<'py>,
        timeout: Option<f64>,
        control_frame: bool,
        raw: bool,
    ) -> PyResult<(u8, Bound<'py, PyAny>)> {
        let _sync = SyncAfter(self);
        if control_frame {
            self.control.wanted.store(true, Ordering::Relaxed);
        }
        let deadline = seconds("timeout", timeout)?.map(|t| Instant::now() + t);
        loop {
            if control_frame {
                if let Some(frame) = self.control.pop() {
                    return Ok((opcode_of(&frame), message_to_py(py, &frame)?));
                }
            }
            // Most calls find a message waiting: take it without giving
            // up the GIL.
            match self.ws.try_recv() {
                Ok(Some(message)) => return Self::delivered(py, &message, raw),
                Ok(None) => {}
                Err(end) => return self.ended(py, end),
            }
            let slice = if control_frame { CONTROL_SLICE } else { SLICE };
            let waited = self.wait(py, deadline, slice, |wait| {
                match self.ws.recv_timeout(wait) {
                    Err(e) if e.is_timeout() && control_frame => Some(Err(e)),
                    Err(e) if e.is_timeout() => None,
                    other => Some(other),
                }
            })?;
            match waited {
                Waited::TimedOut => return Err(timeout_error(py, "Connection timed out")),
                Waited::Got(Ok(message)) => return Self::delivered(py, &message, raw),
                // A slice ended with control frames asked for: look again.
                Waited::Got(Err(e)) if e.is_timeout() => {}
                Waited::Got(Err(end)) => return self.ended(py, end),
            }
        }
    }

    /// Up to `max` messages at once (`str` or `bytes`), waiting at most
    /// `timeout` seconds for the first (`None`: for ever). Raises
    /// `WebSocketConnectionClosedException` once the connection has ended
    /// and nothing is left.
    #[pyo3(signature = (max=256, timeout=None))]
    fn recv_batch<'py>(
        &self,
        py: Python<'py>,
        max: usize,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyList>> {
        let _sync = SyncAfter(self);
        let max = max.max(1).min(self.batch_hint.load(Ordering::Relaxed));
        let deadline = seconds("timeout", timeout)?.map(|t| Instant::now() + t);
        let mut batch = match self.ws.recv_batch(max, Duration::ZERO) {
            Ok(batch) => batch,
            Err(end) => return Err(self.batch_end(py, end)),
        };
        if batch.is_empty() {
            let waited = self.wait(py, deadline, SLICE, |wait| {
                match self.ws.recv_batch(max, wait) {
                    Ok(batch) if batch.is_empty() => None,
                    other => Some(other),
                }
            })?;
            batch = match waited {
                Waited::TimedOut => return Err(timeout_error(py, "Connection timed out")),
                Waited::Got(Ok(batch)) => batch,
                Waited::Got(Err(end)) => return Err(self.batch_end(py, end)),
            };
        }
        let list = PyList::empty(py);
        let mut bytes = 0;
        for message in &batch {
            bytes += message.message().as_bytes().len();
            list.append(message_to_py(py, message.message())?)?;
        }
        let average = (bytes / batch.len().max(1)).max(1);
        self.batch_hint
            .store((BATCH_BYTES / average).max(1), Ordering::Relaxed);
        Ok(list)
    }

    /// Sends a text message.
    fn send_text(&self, py: Python<'_>, text: PyBackedStr) -> PyResult<()> {
        py.detach(|| self.sender.send_text(&text))
            .map_err(|e| to_py(py, e))
    }

    /// Sends a binary message.
    fn send_binary(&self, py: Python<'_>, data: PyBackedBytes) -> PyResult<()> {
        py.detach(|| self.sender.send_binary(&data))
            .map_err(|e| to_py(py, e))
    }

    /// Sends one frame with websocket-client's opcode number (fragments:
    /// a text or binary frame with `fin=False`, then continuation frames).
    fn send_frame(
        &self,
        py: Python<'_>,
        opcode_number: u8,
        payload: PyBackedBytes,
        fin: bool,
    ) -> PyResult<()> {
        let op = opcode(opcode_number)?;
        py.detach(|| self.sender.send_frame(op, &payload, fin))
            .map_err(|e| to_py(py, e))
    }

    /// Sends a ping. From then on the control frames are recorded (as by
    /// `recv(control_frame=True)`): the pong may come back before the
    /// application asks for it, and must not be missed.
    fn ping(&self, py: Python<'_>, payload: PyBackedBytes) -> PyResult<()> {
        self.control.wanted.store(true, Ordering::Relaxed);
        py.detach(|| self.sender.ping(&payload))
            .map_err(|e| to_py(py, e))
    }

    /// Sends a pong.
    fn pong(&self, py: Python<'_>, payload: PyBackedBytes) -> PyResult<()> {
        py.detach(|| self.sender.pong(&payload))
            .map_err(|e| to_py(py, e))
    }

    /// Sends the close frame and waits up to `timeout` seconds (`None`:
    /// for ever) for the server's, discarding the messages that arrive
    /// meanwhile (as websocket-client does); then the transport is shut
    /// down. Does nothing once the connection is closed.
    ///
    /// Returns the server's close payload (code and reason, as
    /// websocket-client's `close_frame.data`) when the connection ended
    /// with one, else `None`.
    ///
    /// A buffer that spills to disk is left alone: taking its messages to
    /// discard them would deliver (and so delete) what a durable spill
    /// keeps for the next connection on its directory, and would read an
    /// ephemeral spill's backlog back from disk only to throw it away
    /// (its directory is removed with the connection). The close then
    /// waits for the end of the handshake without seeing the server's
    /// close frame, and returns `None`.
    #[pyo3(signature = (code=1000, reason=String::new(), timeout=Some(3.0)))]
    fn close<'py>(
        &self,
        py: Python<'py>,
        code: u16,
        reason: String,
        timeout: Option<f64>,
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let _sync = SyncAfter(self);
        let deadline = seconds("timeout", timeout)?.map(|t| Instant::now() + t);
        match self
            .sender
            .start_close(Some(CloseFrame::new(CloseCode(code), reason)))
        {
            Ok(()) => {}
            // Closed already, or being closed (`send_close`): wait below
            // for the end, without taking anything.
            Err(e) if closed_already(&e) && self.spills => {}
            Err(e) if closed_already(&e) => {
                // Closed already (by the server, or by an earlier close):
                // the end, if it has come, says how.
                loop {
                    match self.ws.try_recv() {
                        Ok(Some(_discarded)) => {}
                        Ok(None) => return Ok(None),
                        Err(end) => return Ok(end_payload(py, &end)),
                    }
                }
            }
            Err(e) => return Err(to_py(py, e)),
        }
        let waited = if self.spills {
            let buffer = self.ws.buffer();
            self.wait(py, deadline, SLICE, |wait| {
                buffer.wait_finished(wait).then_some(Ok(()))
            })?
        } else {
            self.wait(py, deadline, SLICE, |wait| {
                match self.ws.recv_timeout(wait) {
                    Ok(_discarded) => None,
                    Err(e) if e.is_timeout() => None,
                    Err(end) => Some(Err::<(), _>(end)),
                }
            })?
        };
        self.close_returned.store(true, Ordering::SeqCst);
        match waited {
            Waited::TimedOut => {
                self.sender.shutdown();
                Ok(None)
            }
            Waited::Got(Err(end)) => Ok(end_payload(py, &end)),
            Waited::Got(Ok(())) => Ok(None),
        }
    }

    /// Sends the close frame and returns at once (the reader completes the
    /// handshake when the server answers).
    fn send_close(&self, py: Python<'_>, code: u16, reason: String) -> PyResult<()> {
        match self
            .sender
            .start_close(Some(CloseFrame::new(CloseCode(code), reason)))
        {
            Err(e) if !closed_already(&e) => Err(to_py(py, e)),
            _ => Ok(()),
        }
    }

    /// Drops the transport at once, without a close handshake; a `recv`
    /// waiting in another thread returns (messages already buffered are
    /// still returned first).
    fn abort(&self) {
        self.sender.shutdown();
    }

    /// Pings every `interval` seconds from a Rust thread; with `timeout`,
    /// drops the connection when no pong comes within `timeout` of a ping
    /// (receiving then raises `WebSocketConnectionClosedException`).
    #[pyo3(signature = (interval, timeout=None, payload=Vec::new()))]
    fn keepalive(
        &self,
        interval: f64,
        timeout: Option<f64>,
        payload: Vec<u8>,
    ) -> PyResult<Keepalive> {
        let interval = ping_interval(interval)?;
        let timeout = seconds("ping_timeout", timeout)?;
        Ok(Keepalive {
            running: Mutex::new(Some(self.ws.keepalive(interval, timeout, &payload))),
        })
    }

    /// The fragments recorded since the last call, as `(opcode, data,
    /// fin)`, and how many were dropped because the App's thread did not
    /// take them in time (see `connect(fragments=True)`).
    fn fragments<'py>(&self, py: Python<'py>) -> PyResult<(Bound<'py, PyList>, u64)> {
        let list = PyList::empty(py);
        let Some(tap) = &self.fragments else {
            return Ok((list, 0));
        };
        let (frames, dropped) = {
            let mut kept = tap.frames.lock().unwrap_or_else(|e| e.into_inner());
            (std::mem::take(&mut kept.0), std::mem::take(&mut kept.1))
        };
        for (opcode, data, fin) in frames {
            list.append((opcode, PyBytes::new(py, &data), fin))?;
        }
        Ok((list, dropped))
    }

    /// The pings (already answered) and pongs the reader saw since the last
    /// call, oldest first, as `(opcode, payload)`; from this call on, they
    /// are recorded (see `connect(control=True)` to record from the
    /// start). At most 256 are kept; older ones are dropped.
    fn control_frames<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        self.control.wanted.store(true, Ordering::Relaxed);
        let list = PyList::empty(py);
        for frame in self.control.drain() {
            list.append((opcode_of(&frame), PyBytes::new(py, frame.as_bytes())))?;
        }
        Ok(list)
    }

    /// The handshake's HTTP status (101).
    #[getter]
    fn status(&self) -> u16 {
        self.ws.status().as_u16()
    }

    /// The handshake response's headers as `(name, value)` pairs, names in
    /// lower case.
    #[getter]
    fn headers(&self) -> Vec<(String, String)> {
        self.ws
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect()
    }

    /// The subprotocol the server chose.
    #[getter]
    fn subprotocol(&self) -> Option<String> {
        self.ws.subprotocol().map(str::to_owned)
    }

    /// Whether the connection is open (no close sent or received, the
    /// transport alive).
    #[getter]
    fn is_open(&self) -> bool {
        self.sender.is_open()
    }

    /// A descriptor readable exactly when `recv` or `recv_batch` would
    /// not block: a message is buffered (in memory or spilled), or the
    /// connection has ended. For `select`, `poll` and event loops
    /// (websocket-client's `fileno()`); only wait on it, never read it.
    /// Non-blocking, close-on-exec, owned by this connection (closed when
    /// it is dropped). The pings and pongs recorded for
    /// `recv(control_frame=True)` do not make it readable (see `ready.rs`).
    #[cfg(unix)]
    fn ready_fd(&self) -> PyResult<i32> {
        if let Some(ready) = self.ready.get() {
            return Ok(ready.fd());
        }
        let made = crate::ready::ReadySignal::new(self.ws.buffer())?;
        // Two threads asking at once: one signal is kept, the other dropped.
        let _ = self.ready.set(made);
        self.ready
            .get()
            .map(crate::ready::ReadySignal::fd)
            .ok_or_else(|| {
                pyo3::exceptions::PyRuntimeError::new_err("the readiness descriptor was not kept")
            })
    }

    /// Messages buffered now (in memory and spilled): what `recv` takes
    /// without waiting.
    fn pending(&self) -> usize {
        self.ws.buffer().len()
    }

    /// The socket's own descriptor, for `getsockopt`/`setsockopt` only
    /// (the reader thread owns its bytes); `None` when the transport is
    /// not a socket. Valid while this connection lives.
    fn socket_fd(&self) -> Option<i32> {
        #[cfg(unix)]
        return self.ws.socket_fd();
        #[cfg(not(unix))]
        None
    }

    /// The buffer's counters (see `floodgate.WebSocket.stats`).
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, pyo3::types::PyDict>> {
        stats_dict(py, &self.ws.stats())
    }
}

/// A ping interval in seconds, which must be above 0.
fn ping_interval(interval: f64) -> PyResult<Duration> {
    seconds("ping_interval", Some(interval))?
        .filter(|i| !i.is_zero())
        .ok_or_else(|| pyo3::exceptions::PyValueError::new_err("ping_interval must be above 0"))
}

/// A running keepalive (see [`Connection::keepalive`]).
#[pyclass(module = "floodgate._floodgate", frozen)]
pub struct Keepalive {
    running: Mutex<Option<floodgate::keepalive::Keepalive>>,
}

#[pymethods]
impl Keepalive {
    /// Stops it; whether it found the connection dead (no pong in time).
    fn stop(&self, py: Python<'_>) -> bool {
        let running = self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        running.is_some_and(|k| py.detach(|| k.stop()))
    }
}

/// The server's close payload when `end` is the end of a close handshake.
fn end_payload<'py>(py: Python<'py>, end: &Error) -> Option<Bound<'py, PyBytes>> {
    match end.kind() {
        ErrorKind::ConnectionClosed(frame) => Some(close_payload(py, frame.as_ref())),
        _ => None,
    }
}

impl Connection {
    /// The exception `recv_batch` raises at the end; after a close
    /// handshake it carries the server's close payload as `close_payload`
    /// (for `WebSocketApp`'s `on_close`).
    fn batch_end(&self, py: Python<'_>, end: Error) -> PyErr {
        self.close_returned.store(true, Ordering::SeqCst);
        let payload = end_payload(py, &end);
        let err = self.batch_error(py, end);
        if let Some(payload) = payload {
            // Only fails if the class refuses attributes; then the App
            // sees a drop instead of a close, which it survives.
            let _ = err.value(py).setattr("close_payload", payload);
        }
        err
    }

    fn batch_error(&self, py: Python<'_>, end: Error) -> PyErr {
        match end.kind() {
            ErrorKind::ConnectionClosed(Some(frame)) => closed(
                py,
                format!(
                    "Connection is already closed (code {}{}).",
                    frame.code.0,
                    if frame.reason.is_empty() {
                        String::new()
                    } else {
                        format!(", reason {:?}", frame.reason)
                    }
                ),
            ),
            ErrorKind::ConnectionClosed(None) | ErrorKind::AlreadyClosed => {
                closed(py, "Connection is already closed.")
            }
            _ => to_py(py, end),
        }
    }
}

/// A close refused because one was sent already (`Usage(Closed)`, while
/// the handshake runs) or the connection ended (`AlreadyClosed`): for
/// Python, closing twice is not an error.
fn closed_already(e: &floodgate::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::AlreadyClosed | ErrorKind::Usage(floodgate::UsageError::Closed)
    )
}
