//! floodgate's errors as websocket-client's exceptions.
//!
//! The exception classes live in Python (`floodgate/_exceptions.py`), with
//! websocket-client's names and hierarchy, so that `except
//! websocket.WebSocketTimeoutException:` works after `import floodgate as
//! websocket`; this module picks the class for each [`ErrorKind`] and
//! builds the instance (with `status_code`, `resp_headers` and `resp_body`
//! for a refused upgrade). Where websocket-client lets a standard exception
//! through (a refused TCP connection is `ConnectionRefusedError`, a bad
//! URL `ValueError`), so does this.
//!
//! The spill to disk (`overflow="spill"`) has two errors of its own: a
//! spill directory that cannot be opened or is locked by another
//! connection ([`ErrorKind::Spill`], at connect) is
//! `WebSocketSpillException`, an `OSError` with `errno` and `filename`
//! where the file system gave them; a message the spill could not take
//! under the `"disconnect"` fallback ([`BufferError::SpillRefused`], the
//! end of the connection) is `WebSocketSpillRefusedException`, a
//! `WebSocketBufferException` (so a `WebSocketConnectionClosedException`)
//! whose `refusal` names the reason.

use floodgate::buffer::{BufferError, SpillError, SpillRefusal};
use floodgate::{Error, ErrorKind, TimeoutKind};
use pyo3::exceptions::{PyConnectionRefusedError, PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

/// The Python module that defines the exception classes.
const EXCEPTIONS: &str = "floodgate._exceptions";

/// An instance of the exception class `name` of `floodgate._exceptions`
/// with `message`.
fn raise(py: Python<'_>, name: &str, message: String) -> PyErr {
    let made = py
        .import(EXCEPTIONS)
        .and_then(|m| m.getattr(name))
        .and_then(|class| class.call1((message,)));
    match made {
        Ok(instance) => PyErr::from_value(instance),
        // The package is broken (the module or the class is missing): say
        // so rather than hide the original error.
        Err(e) => e,
    }
}

/// websocket-client's `WebSocketTimeoutException` with `message`.
pub(crate) fn timeout(py: Python<'_>, message: impl Into<String>) -> PyErr {
    raise(py, "WebSocketTimeoutException", message.into())
}

/// websocket-client's `WebSocketConnectionClosedException` with `message`.
pub(crate) fn closed(py: Python<'_>, message: impl Into<String>) -> PyErr {
    raise(py, "WebSocketConnectionClosedException", message.into())
}

/// The Python exception for a floodgate error.
pub(crate) fn to_py(py: Python<'_>, error: Error) -> PyErr {
    let message = error.to_string();
    match error.into_kind() {
        // A send after the close (sent, or received while the message was
        // being handled): websocket-client's class, not a bad argument.
        ErrorKind::Usage(floodgate::UsageError::Closed) => closed(py, message),
        ErrorKind::InvalidUrl { .. } | ErrorKind::Config(_) | ErrorKind::Usage(_) => {
            PyValueError::new_err(message)
        }
        ErrorKind::Unsupported(_) => raise(py, "WebSocketUnsupportedException", message),
        // A name that does not resolve: websocket-client's own class.
        ErrorKind::Resolve { .. } => raise(py, "WebSocketAddressException", message),
        ErrorKind::Connect { source, .. } => match source.kind() {
            std::io::ErrorKind::ConnectionRefused => PyConnectionRefusedError::new_err(message),
            // Kept for errors that carry a resolver's failure as a connect
            // error.
            _ if is_name_error(&source) => raise(py, "WebSocketAddressException", message),
            std::io::ErrorKind::TimedOut => timeout(py, message),
            _ => PyOSError::new_err(message),
        },
        // A connection that looked dead (no pong) is a closed one to
        // websocket-client, whose own keepalive says "ping/pong timed out"
        // on top of it.
        ErrorKind::Timeout {
            kind: TimeoutKind::Pong,
            ..
        } => {
            let err = closed(py, message);
            // For WebSocketApp, which reports it as websocket-client's
            // "ping/pong timed out". Only fails if the class refuses
            // attributes; the error stays a closed connection then.
            let _ = err.value(py).setattr("_pong_timeout", true);
            err
        }
        ErrorKind::Timeout { .. } => timeout(py, message),
        ErrorKind::Tls { .. } => raise(py, "WebSocketSSLException", message),
        ErrorKind::Proxy { .. } => raise(py, "WebSocketProxyException", message),
        ErrorKind::Handshake(floodgate::HandshakeError::UnexpectedStatus {
            status,
            reason,
            headers,
            body,
        }) => bad_status(py, message, status, &reason, &headers, &body),
        ErrorKind::Handshake(_) | ErrorKind::Redirect { .. } => {
            raise(py, "WebSocketBadStatusException", message)
        }
        ErrorKind::Protocol(e) if e.close_code().0 == 1007 => {
            raise(py, "WebSocketPayloadException", message)
        }
        ErrorKind::Protocol(_) => raise(py, "WebSocketProtocolException", message),
        ErrorKind::ConnectionClosed(_) | ErrorKind::AbnormalClosure | ErrorKind::AlreadyClosed => {
            closed(py, message)
        }
        ErrorKind::Buffer(BufferError::SpillRefused(refusal)) => {
            // The message names the Rust fallbacks; say the keyword too.
            let message =
                format!("{message} (from Python: spill_fallback=\"block\" or \"drop_newest\")");
            spill_refused(py, message, &refusal)
        }
        ErrorKind::Buffer(_) => raise(py, "WebSocketBufferException", message),
        // A disk budget too small for one record: a bad option value.
        ErrorKind::Spill(SpillError::LimitTooSmall { .. }) => PyValueError::new_err(message),
        ErrorKind::Spill(e) => spill_error(py, message, &e),
        ErrorKind::Io(_) => closed(py, message),
        _ => PyRuntimeError::new_err(message),
    }
}

fn is_name_error(error: &std::io::Error) -> bool {
    // std reports a failed lookup as `Uncategorized` with getaddrinfo's
    // message; the message is all there is to go on.
    let text = error.to_string();
    text.contains("failed to lookup address")
        || text.contains("Name or service not known")
        || text.contains("No address associated")
        || text.contains("nodename nor servname")
}

/// `WebSocketBadStatusException(message, status_code, status_message,
/// resp_headers, resp_body)`, as websocket-client raises for a refused
/// upgrade.
fn bad_status(
    py: Python<'_>,
    message: String,
    status: http::StatusCode,
    reason: &str,
    headers: &http::HeaderMap,
    body: &[u8],
) -> PyErr {
    let made = (|| -> PyResult<Bound<'_, PyAny>> {
        let class = py
            .import(EXCEPTIONS)?
            .getattr("WebSocketBadStatusException")?;
        let resp_headers = PyDict::new(py);
        for (name, value) in headers {
            resp_headers.set_item(name.as_str(), String::from_utf8_lossy(value.as_bytes()))?;
        }
        class.call1((
            message,
            status.as_u16(),
            // The server's own phrase, as websocket-client reports it.
            reason,
            resp_headers,
            PyBytes::new(py, body),
        ))
    })();
    match made {
        Ok(instance) => PyErr::from_value(instance),
        Err(e) => e,
    }
}

/// Sets the attribute `name` of the exception `err` (an instance of one of
/// our classes, which take any attribute). A failure leaves the exception
/// as it is rather than hide it.
fn set_attribute<'py>(py: Python<'py>, err: &PyErr, name: &str, value: impl IntoPyObject<'py>) {
    let _ = err.value(py).setattr(name, value);
}

/// `WebSocketSpillException` for a spill directory that could not be
/// opened: `filename` is the file or directory, `errno` the system's error
/// number (when the file system failed), `locked` whether another
/// connection holds the directory.
fn spill_error(py: Python<'_>, message: String, error: &SpillError) -> PyErr {
    let err = raise(py, "WebSocketSpillException", message);
    let (path, errno, locked) = match error {
        SpillError::Io { path, source, .. } => (Some(path), source.raw_os_error(), false),
        SpillError::Locked { dir } => (Some(dir), None, true),
        _ => (None, None, false),
    };
    set_attribute(py, &err, "filename", path.map(|p| p.as_os_str()));
    set_attribute(py, &err, "errno", errno);
    set_attribute(py, &err, "locked", locked);
    err
}

/// `WebSocketSpillRefusedException` for a message the spill could not
/// take under the `"disconnect"` fallback: `refusal` is `"disk_budget"`,
/// `"too_large"`, `"writer_behind"` or `"disk"` (with `errno` when the
/// system gave one).
fn spill_refused(py: Python<'_>, message: String, refusal: &SpillRefusal) -> PyErr {
    let err = raise(py, "WebSocketSpillRefusedException", message);
    let (name, errno) = match refusal {
        SpillRefusal::DiskBudget { .. } => ("disk_budget", None),
        SpillRefusal::TooLarge { .. } => ("too_large", None),
        SpillRefusal::WriterBehind { .. } => ("writer_behind", None),
        SpillRefusal::Disk { os_error, .. } => ("disk", *os_error),
        // A reason added to floodgate later: the message says it.
        _ => ("other", None),
    };
    set_attribute(py, &err, "refusal", name);
    set_attribute(py, &err, "errno", errno);
    err
}
