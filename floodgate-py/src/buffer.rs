//! The buffer options of the Python API (`max_messages`, `max_bytes`,
//! `overflow`, `key`, `classifier`, and the spill's `spill_dir`,
//! `max_disk_bytes`, `spill_fallback`, `durable`, `fsync_interval`) as a
//! [`BufferConfig`], and the stats as a dict.
//!
//! The policy names are strings, as Python users expect: `"block"`,
//! `"drop_oldest"`, `"drop_newest"`, `"conflate"` (with `key`),
//! `"disconnect"`, `"block_for"` (with `block_timeout` and `then`), and
//! `"spill"` (with `spill_dir`). `floodgate/_options.py` checks the spill
//! options first, so that `WebSocket(...)` and `WebSocketApp(...)` refuse
//! a bad combination before any connect; the checks here are the same
//! ones, for a caller of `_floodgate.connect` that skipped it.
//! A `key` or `classifier` written in Python runs on the connection's
//! reader thread *with the GIL*, once per message: it is the one place
//! where Python code delays the reader, so keep it short (a dict lookup,
//! not a parse of the whole message) or leave it out.

use crate::convert::{message_to_py, seconds};
use floodgate::buffer::{
    BufferConfig, Class, Conflate, Key, Overflow, Priority, Shed, SpillConfig, SpillFallback, Stats,
};
use floodgate::Message;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyInt, PyString};
use std::path::PathBuf;
use std::time::Duration;

/// What Python passed for the buffer.
pub(crate) struct BufferOptions {
    pub(crate) max_messages: Option<usize>,
    pub(crate) max_bytes: Option<usize>,
    pub(crate) overflow: String,
    pub(crate) block_timeout: Option<f64>,
    pub(crate) then: String,
    pub(crate) key: Option<Py<PyAny>>,
    pub(crate) classifier: Option<Py<PyAny>>,
    pub(crate) spill: SpillOptions,
}

/// What Python passed for `overflow="spill"` (`None`: not given).
pub(crate) struct SpillOptions {
    pub(crate) dir: Option<PathBuf>,
    pub(crate) max_disk_bytes: Option<u64>,
    pub(crate) fallback: Option<String>,
    pub(crate) durable: Option<bool>,
    pub(crate) fsync_interval: Option<f64>,
}

impl SpillOptions {
    /// The names of the options given, for the error that says they need
    /// `overflow="spill"`.
    fn given(&self) -> Vec<&'static str> {
        let mut given = Vec::new();
        if self.dir.is_some() {
            given.push("spill_dir");
        }
        if self.max_disk_bytes.is_some() {
            given.push("max_disk_bytes");
        }
        if self.fallback.is_some() {
            given.push("spill_fallback");
        }
        if self.durable.is_some() {
            given.push("durable");
        }
        if self.fsync_interval.is_some() {
            given.push("fsync_interval");
        }
        given
    }

    /// The spill these options ask for.
    fn config(self) -> PyResult<SpillConfig> {
        let Some(dir) = self.dir.filter(|d| !d.as_os_str().is_empty()) else {
            return Err(PyValueError::new_err(
                "overflow=\"spill\" needs spill_dir=<a directory for the spilled messages>",
            ));
        };
        let mut spill = SpillConfig::new(dir);
        if let Some(bytes) = self.max_disk_bytes {
            spill = spill.max_disk_bytes(bytes);
        }
        if let Some(name) = self.fallback {
            spill = spill.fallback(fallback(&name)?);
        }
        let durable = self.durable.unwrap_or(false);
        if durable {
            spill = spill.durable();
        }
        if let Some(interval) = seconds("fsync_interval", self.fsync_interval)? {
            if !durable {
                return Err(PyValueError::new_err(
                    "fsync_interval= is only used with durable=True (an ephemeral spill is never synced)",
                ));
            }
            spill = spill.fsync_interval(interval);
        }
        Ok(spill)
    }
}

fn fallback(name: &str) -> PyResult<SpillFallback> {
    match name {
        "block" => Ok(SpillFallback::Block),
        "drop_newest" => Ok(SpillFallback::DropNewest),
        "disconnect" => Ok(SpillFallback::Disconnect),
        other => Err(PyValueError::new_err(format!(
            "spill_fallback={other:?}: when the spill cannot take a message, \"block\", \"drop_newest\" or \"disconnect\" (the default)"
        ))),
    }
}

fn shed(name: &str) -> PyResult<Shed> {
    match name {
        "drop_oldest" => Ok(Shed::DropOldest),
        "drop_newest" => Ok(Shed::DropNewest),
        "disconnect" => Ok(Shed::Disconnect),
        other => Err(PyValueError::new_err(format!(
            "then={other:?}: after block_for, the policy is \"drop_oldest\", \"drop_newest\" or \"disconnect\""
        ))),
    }
}

impl BufferOptions {
    /// The buffer these options ask for.
    pub(crate) fn config(self) -> PyResult<BufferConfig> {
        let mut config = BufferConfig::new();
        if let Some(n) = self.max_messages {
            config = config.max_messages(n);
        }
        if let Some(n) = self.max_bytes {
            config = config.max_bytes(n);
        }
        let given = self.spill.given();
        if !given.is_empty() && self.overflow != "spill" {
            return Err(PyValueError::new_err(format!(
                "{} only used with overflow=\"spill\" (overflow is {:?})",
                if given.len() == 1 {
                    format!("{}= is", given[0])
                } else {
                    format!("{}= are", given.join("=, "))
                },
                self.overflow
            )));
        }
        if self.key.is_some() && self.overflow != "conflate" {
            return Err(PyValueError::new_err(
                "key= is only used with overflow=\"conflate\"; for the order of on_message per key, use WebSocketApp(workers_by_key=...)",
            ));
        }
        let overflow = match self.overflow.as_str() {
            "block" => Overflow::Block,
            "drop_oldest" => Overflow::DropOldest,
            "drop_newest" => Overflow::DropNewest,
            "disconnect" => Overflow::Disconnect,
            "spill" => Overflow::Spill(self.spill.config()?),
            "block_for" => {
                let Some(seconds) = self.block_timeout.filter(|s| *s >= 0.0 && s.is_finite()) else {
                    return Err(PyValueError::new_err(
                        "overflow=\"block_for\" needs block_timeout=<seconds, at least 0>",
                    ));
                };
                Overflow::BlockFor(Duration::from_secs_f64(seconds), shed(&self.then)?)
            }
            "conflate" => {
                let Some(key) = self.key else {
                    return Err(PyValueError::new_err(
                        "overflow=\"conflate\" needs key=<a function of the message that returns its key, or None>",
                    ));
                };
                Overflow::Conflate(Conflate::by(move |m| python_key(&key, m)))
            }
            other => {
                return Err(PyValueError::new_err(format!(
                    "overflow={other:?}: the policies are \"block\", \"block_for\", \"drop_oldest\", \"drop_newest\", \"conflate\", \"disconnect\" and \"spill\""
                )))
            }
        };
        config = config.overflow(overflow);
        if let Some(classifier) = self.classifier {
            config = config.classify(move |m| python_class(&classifier, m));
        }
        Ok(config)
    }
}

/// Calls a Python key function on the reader thread: `None` (or an
/// exception, which is reported as unraisable) means no key.
fn python_key(key: &Py<PyAny>, message: &Message) -> Option<Key> {
    Python::attach(|py| {
        let result = message_to_py(py, message).and_then(|m| key.bind(py).call1((m,)));
        match result {
            Ok(k) if k.is_none() => None,
            Ok(k) => key_of(&k),
            Err(e) => {
                e.write_unraisable(py, Some(key.bind(py)));
                None
            }
        }
    })
}

/// A Python key as a [`Key`]: ints, str and bytes as themselves, anything
/// else by its hash.
fn key_of(k: &Bound<'_, PyAny>) -> Option<Key> {
    if let Ok(s) = k.cast::<PyString>() {
        return s.to_cow().ok().map(|s| Key::from(s.as_ref()));
    }
    if let Ok(b) = k.cast::<PyBytes>() {
        return Some(Key::from(b.as_bytes()));
    }
    if let Ok(i) = k.cast::<PyInt>() {
        if let Ok(n) = i.extract::<u64>() {
            return Some(Key::from(n));
        }
    }
    k.hash().ok().map(|h| Key::from(h as u64))
}

/// Calls a Python classifier: `"low"`, `"normal"`, `"high"`, `"critical"`
/// (or 0–3) keep the message at that priority; `"discard"` or `False`
/// drops it; `None` or `True` is normal. Anything else, or an exception,
/// is reported as unraisable and keeps the message at normal priority.
fn python_class(classifier: &Py<PyAny>, message: &Message) -> Class {
    Python::attach(|py| {
        let result = message_to_py(py, message).and_then(|m| classifier.bind(py).call1((m,)));
        let class = result.and_then(|c| class_of(&c));
        match class {
            Ok(class) => class,
            Err(e) => {
                e.write_unraisable(py, Some(classifier.bind(py)));
                Class::Keep(Priority::NORMAL)
            }
        }
    })
}

fn class_of(c: &Bound<'_, PyAny>) -> PyResult<Class> {
    if c.is_none() {
        return Ok(Class::Keep(Priority::NORMAL));
    }
    if let Ok(b) = c.extract::<bool>() {
        return Ok(if b {
            Class::Keep(Priority::NORMAL)
        } else {
            Class::Discard
        });
    }
    if let Ok(n) = c.extract::<u8>() {
        return match n {
            0 => Ok(Class::Keep(Priority::LOW)),
            1 => Ok(Class::Keep(Priority::NORMAL)),
            2 => Ok(Class::Keep(Priority::HIGH)),
            3 => Ok(Class::Keep(Priority::CRITICAL)),
            _ => Err(PyValueError::new_err(format!(
                "a classifier returned priority {n}; priorities are 0 (low) to 3 (critical)"
            ))),
        };
    }
    match c.extract::<String>()?.as_str() {
        "low" => Ok(Class::Keep(Priority::LOW)),
        "normal" => Ok(Class::Keep(Priority::NORMAL)),
        "high" => Ok(Class::Keep(Priority::HIGH)),
        "critical" => Ok(Class::Keep(Priority::CRITICAL)),
        "discard" => Ok(Class::Discard),
        other => Err(PyTypeError::new_err(format!(
            "a classifier returned {other:?}; return \"low\", \"normal\", \"high\", \"critical\", \"discard\" or None"
        ))),
    }
}

/// The stats as a dict (durations in seconds); `received` equals
/// `delivered + buffered + dropped_oldest + dropped_newest + conflated +
/// filtered`. `buffered` counts memory and disk together (`buffered_disk`
/// of them on disk); `buffered_bytes` is memory only, `disk_bytes` the
/// spill's files.
pub(crate) fn stats_dict<'py>(py: Python<'py>, s: &Stats) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("received", s.received)?;
    d.set_item("delivered", s.delivered)?;
    d.set_item("buffered", s.buffered)?;
    d.set_item("dropped_oldest", s.dropped_oldest)?;
    d.set_item("dropped_newest", s.dropped_newest)?;
    d.set_item("conflated", s.conflated)?;
    d.set_item("filtered", s.filtered)?;
    d.set_item("buffered_bytes", s.buffered_bytes)?;
    d.set_item("buffered_disk", s.buffered_disk)?;
    d.set_item("disk_bytes", s.disk_bytes)?;
    d.set_item("high_water_disk_bytes", s.high_water_disk_bytes)?;
    d.set_item("spilled", s.spilled)?;
    d.set_item("recovered", s.recovered)?;
    d.set_item("spill_refused", s.spill_refused)?;
    d.set_item("spill_errors", s.spill_errors)?;
    d.set_item("spill_corrupt_records", s.spill_corrupt_records)?;
    d.set_item("high_water_messages", s.high_water_messages)?;
    d.set_item("high_water_bytes", s.high_water_bytes)?;
    d.set_item("blocked", s.blocked.as_secs_f64())?;
    d.set_item("wait_p50", s.queue_wait.p50.as_secs_f64())?;
    d.set_item("wait_p99", s.queue_wait.p99.as_secs_f64())?;
    d.set_item("wait_max", s.queue_wait.max.as_secs_f64())?;
    d.set_item("pings_answered", s.pings_answered)?;
    d.set_item("max_ping_delay", s.max_ping_delay.as_secs_f64())?;
    d.set_item("pongs_received", s.pongs_received)?;
    d.set_item("ping_round_trips", s.ping_round_trips)?;
    // None until a pong answered one of the keepalive's pings.
    d.set_item("last_ping_rtt", s.last_ping_rtt.map(|d| d.as_secs_f64()))?;
    d.set_item("max_ping_rtt", s.max_ping_rtt.as_secs_f64())?;
    Ok(d)
}
