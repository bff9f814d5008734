//! The connect options, as the Python layer normalises them
//! (`floodgate/_options.py` turns websocket-client's keyword arguments —
//! `header`, `sslopt`, `sockopt`, `http_proxy_host`, ... — into one dict
//! with every key), into a [`ClientBuilder`].
//!
//! Everything websocket-client accepts and floodgate cannot honour is
//! refused in `_options.py` with a message that says so; what reaches
//! this module is only what floodgate does.

use crate::buffer::{BufferOptions, SpillOptions};
use crate::convert::seconds;
use floodgate::buffer::BufferConfig;
use floodgate::tls::RootCertificates;
use floodgate::{ClientBuilder, DeflateConfig};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use std::path::PathBuf;

/// The normalised options (every key present; `None` for "not given").
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
pub(crate) struct ConnectOptions {
    headers: Vec<(String, String)>,
    cookie: Option<String>,
    origin: Option<String>,
    suppress_origin: bool,
    host: Option<String>,
    subprotocols: Vec<String>,
    /// websocket-client's `timeout`: the connect, and each send.
    timeout: Option<f64>,
    close_timeout: Option<f64>,
    ca_file: Option<String>,
    ca_data: Option<String>,
    cert_file: Option<String>,
    key_file: Option<String>,
    verify: bool,
    server_hostname: Option<String>,
    tls_roots: Option<String>,
    proxy: Option<String>,
    no_proxy: Option<String>,
    proxy_from_env: bool,
    redirect_limit: u32,
    nodelay: bool,
    recv_buffer: Option<usize>,
    send_buffer: Option<usize>,
    tcp_keepalive: Option<f64>,
    /// `None`: no permessage-deflate offer.
    compression: Option<CompressionOptions>,
    max_message_size: Option<usize>,
    unix_socket: Option<String>,
    // The buffer.
    max_messages: Option<usize>,
    max_bytes: Option<usize>,
    overflow: String,
    block_timeout: Option<f64>,
    then: String,
    key: Option<Py<PyAny>>,
    classifier: Option<Py<PyAny>>,
    // The spill (overflow="spill"); `None`: not given.
    spill_dir: Option<PathBuf>,
    max_disk_bytes: Option<u64>,
    spill_fallback: Option<String>,
    durable: Option<bool>,
    fsync_interval: Option<f64>,
}

/// `compression=`, as `_options._compression` normalises it: every field
/// of [`DeflateConfig`] a Python program may set, `None` for its default.
/// The values were checked there; [`DeflateConfig::validate`] checks them
/// again when the client is built.
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
pub(crate) struct CompressionOptions {
    threshold: Option<usize>,
    level: Option<u32>,
    client_max_window_bits: Option<u8>,
    server_max_window_bits: Option<u8>,
    client_no_context_takeover: Option<bool>,
    server_no_context_takeover: Option<bool>,
}

impl CompressionOptions {
    fn config(self) -> DeflateConfig {
        let mut c = DeflateConfig::default();
        if let Some(bytes) = self.threshold {
            c = c.threshold(bytes);
        }
        if let Some(level) = self.level {
            c = c.level(level);
        }
        if let Some(bits) = self.client_max_window_bits {
            c = c.client_max_window_bits(bits);
        }
        if self.server_max_window_bits.is_some() {
            c = c.server_max_window_bits(self.server_max_window_bits);
        }
        if let Some(on) = self.client_no_context_takeover {
            c = c.client_no_context_takeover(on);
        }
        if let Some(on) = self.server_no_context_takeover {
            c = c.server_no_context_takeover(on);
        }
        c
    }
}

impl ConnectOptions {
    /// Whether the buffer spills to disk (`overflow="spill"`): then
    /// `Connection.close` leaves the buffered messages alone (see there).
    pub(crate) fn spills(&self) -> bool {
        self.overflow == "spill"
    }

    /// The client these options describe, and its buffer (the caller adds
    /// its observers, then sets it on the builder).
    pub(crate) fn builder(self) -> PyResult<(ClientBuilder, BufferConfig)> {
        let mut b = ClientBuilder::default();
        for (name, value) in &self.headers {
            b = b.header(name, value);
        }
        if let Some(cookie) = self.cookie {
            b = b.cookie(cookie);
        }
        if self.suppress_origin {
            b = b.suppress_origin();
        } else if let Some(origin) = self.origin {
            b = b.origin(origin);
        }
        if let Some(host) = self.host {
            b = b.host_header(host);
        }
        for protocol in self.subprotocols {
            b = b.subprotocol(protocol);
        }
        if let Some(timeout) = seconds("timeout", self.timeout)? {
            b = b
                .connect_timeout(Some(timeout))
                .write_timeout(Some(timeout));
        }
        if let Some(timeout) = seconds("close_timeout", self.close_timeout)? {
            b = b.close_timeout(timeout);
        }
        if let Some(roots) = self.tls_roots.as_deref() {
            b = b.tls_roots(match roots {
                "platform" => RootCertificates::Platform,
                "mozilla" => RootCertificates::Mozilla,
                "none" => RootCertificates::None,
                other => {
                    return Err(PyValueError::new_err(format!(
                        "tls_roots={other:?}: \"platform\", \"mozilla\" or \"none\""
                    )))
                }
            });
        }
        if let Some(path) = self.ca_file {
            b = b.ca_file(path);
        }
        if let Some(pem) = self.ca_data {
            b = b.add_root_certificates_pem(pem.as_bytes());
        }
        match (self.cert_file, self.key_file) {
            (Some(cert), Some(key)) => b = b.client_certificate_files(cert, key),
            // websocket-client (ssl) reads the key from the certificate
            // file when no keyfile is given.
            (Some(cert), None) => b = b.client_certificate_files(&cert, &cert),
            (None, Some(_)) => {
                return Err(PyValueError::new_err(
                    "sslopt keyfile without certfile: give the client certificate too",
                ))
            }
            (None, None) => {}
        }
        if !self.verify {
            b = b.dangerous_skip_certificate_verification();
        }
        if let Some(name) = self.server_hostname {
            b = b.tls_server_name(name);
        }
        if let Some(proxy) = self.proxy {
            b = b.proxy(proxy.as_str());
        }
        if let Some(hosts) = self.no_proxy {
            b = b.no_proxy(hosts.as_str());
        }
        b = b
            .proxy_from_env(self.proxy_from_env)
            .redirect_limit(self.redirect_limit)
            .nodelay(self.nodelay);
        if let Some(n) = self.recv_buffer {
            b = b.recv_buffer_size(n);
        }
        if let Some(n) = self.send_buffer {
            b = b.send_buffer_size(n);
        }
        if let Some(idle) = seconds("tcp_keepalive", self.tcp_keepalive)? {
            b = b.tcp_keepalive(idle);
        }
        if let Some(compression) = self.compression {
            b = b.compression(compression.config());
        }
        if let Some(limit) = self.max_message_size {
            b = b.max_message_size(Some(limit));
        }
        if let Some(path) = self.unix_socket {
            b = b.unix_socket(path);
        }
        let buffer = BufferOptions {
            max_messages: self.max_messages,
            max_bytes: self.max_bytes,
            overflow: self.overflow,
            block_timeout: self.block_timeout,
            then: self.then,
            key: self.key,
            classifier: self.classifier,
            spill: SpillOptions {
                dir: self.spill_dir,
                max_disk_bytes: self.max_disk_bytes,
                fallback: self.spill_fallback,
                durable: self.durable,
                fsync_interval: self.fsync_interval,
            },
        };
        Ok((b, buffer.config()?))
    }
}
