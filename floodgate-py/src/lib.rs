//! `floodgate._floodgate`: the native half of the Python package
//! `floodgate`, websocket-client's API over floodgate's buffered
//! connection.
//!
//! The Python half (`python/floodgate/`) holds websocket-client's names
//! and behaviour — `WebSocket`, `create_connection`, `WebSocketApp`,
//! `ABNF`, the exception classes, the option names — and calls this module
//! for everything that touches the network:
//!
//! - [`connection`]: a buffered connection (`connect`, `Connection`),
//! - [`options`]: the normalised connect options as a `ClientBuilder`,
//! - [`buffer`]: the buffer options, Python key and classifier functions,
//!   the stats dict,
//! - [`errors`]: floodgate's errors as websocket-client's exceptions,
//! - [`convert`]: messages, opcodes and seconds between the two.

mod buffer;
mod connection;
mod convert;
mod errors;
mod options;
#[cfg(unix)]
mod ready;

use pyo3::prelude::*;

#[pymodule]
fn _floodgate(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<connection::Connection>()?;
    m.add_class::<connection::Keepalive>()?;
    m.add_function(wrap_pyfunction!(connection::connect, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
