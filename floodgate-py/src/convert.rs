//! Messages and durations between Rust and Python.

use floodgate::{Message, OpCode};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};
use std::time::Duration;

/// websocket-client's opcodes (`ABNF.OPCODE_*`).
pub(crate) const OPCODE_CONT: u8 = 0x0;
pub(crate) const OPCODE_TEXT: u8 = 0x1;
pub(crate) const OPCODE_BINARY: u8 = 0x2;
pub(crate) const OPCODE_CLOSE: u8 = 0x8;
pub(crate) const OPCODE_PING: u8 = 0x9;
pub(crate) const OPCODE_PONG: u8 = 0xa;

/// A data message as Python sees it: `str` for text, `bytes` for binary
/// (and for a ping's or pong's payload).
pub(crate) fn message_to_py<'py>(
    py: Python<'py>,
    message: &Message,
) -> PyResult<Bound<'py, PyAny>> {
    Ok(match message {
        Message::Text(_) => PyString::new(py, message.as_text().unwrap_or_default()).into_any(),
        other => PyBytes::new(py, other.as_bytes()).into_any(),
    })
}

/// The opcode websocket-client gives a message.
pub(crate) fn opcode_of(message: &Message) -> u8 {
    match message {
        Message::Text(_) => OPCODE_TEXT,
        Message::Binary(_) => OPCODE_BINARY,
        Message::Ping(_) => OPCODE_PING,
        Message::Pong(_) => OPCODE_PONG,
        Message::Close(_) => OPCODE_CLOSE,
    }
}

/// websocket-client's number for a frame opcode.
pub(crate) fn frame_opcode(op: OpCode) -> u8 {
    match op {
        OpCode::Continuation => OPCODE_CONT,
        OpCode::Text => OPCODE_TEXT,
        OpCode::Binary => OPCODE_BINARY,
        OpCode::Close => OPCODE_CLOSE,
        OpCode::Ping => OPCODE_PING,
        OpCode::Pong => OPCODE_PONG,
    }
}

/// The frame opcode for websocket-client's number.
pub(crate) fn opcode(number: u8) -> PyResult<OpCode> {
    Ok(match number {
        OPCODE_CONT => OpCode::Continuation,
        OPCODE_TEXT => OpCode::Text,
        OPCODE_BINARY => OpCode::Binary,
        OPCODE_CLOSE => OpCode::Close,
        OPCODE_PING => OpCode::Ping,
        OPCODE_PONG => OpCode::Pong,
        other => {
            return Err(PyValueError::new_err(format!(
                "opcode {other:#x} is not one of ABNF.OPCODES (0x0, 0x1, 0x2, 0x8, 0x9, 0xa)"
            )))
        }
    })
}

/// Seconds from Python (`None`: no limit) as a duration.
pub(crate) fn seconds(what: &str, value: Option<f64>) -> PyResult<Option<Duration>> {
    match value {
        None => Ok(None),
        Some(s) if s.is_finite() && s >= 0.0 => Ok(Some(Duration::from_secs_f64(s))),
        Some(s) => Err(PyValueError::new_err(format!(
            "{what}={s}: give a number of seconds, at least 0, or None"
        ))),
    }
}
