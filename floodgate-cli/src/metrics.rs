//! `--metrics ADDR`: the command's figures as Prometheus text at
//! `http://ADDR/metrics`, refreshed at every scrape.
//!
//! The figures go through `floodgate::metrics` (the `metrics` facade, names
//! prefixed `floodgate_`) into `metrics-exporter-prometheus`'s recorder,
//! which renders the text format (`# TYPE` lines included). The HTTP side
//! is a small loop on a std listener rather than the exporter's own
//! listener: that one is a hyper server that needs a tokio runtime, which
//! the blocking command does not otherwise run; a scrape is one GET, served
//! here with `httparse` and bounded reads.

use crate::error::CliError;
use floodgate::metrics::Reporter;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

/// Reports the current figures (called before each render).
pub type Refresh = Arc<dyn Fn(&Reporter) + Send + Sync>;

/// A request head larger than this is refused (a scrape's is ~100 bytes).
const MAX_HEAD: usize = 8 << 10;
/// How long a scraper may take to send its request or read the answer.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Installs the Prometheus recorder and serves `/metrics` on `addr` from a
/// thread of its own; returns the address bound (for `:0`). `labels` go on
/// every series.
pub fn serve(
    addr: &str,
    labels: Vec<(&'static str, String)>,
    refresh: Refresh,
) -> Result<SocketAddr, CliError> {
    let listener = TcpListener::bind(addr).map_err(|e| {
        CliError::Usage(format!(
            "--metrics {addr}: cannot listen there ({e}); give a free HOST:PORT"
        ))
    })?;
    let bound = listener.local_addr()?;
    let handle = PrometheusBuilder::new().install_recorder().map_err(|e| {
        CliError::Other(format!(
            "--metrics: cannot install the metrics recorder: {e}"
        ))
    })?;
    let reporter = Reporter::new(labels);
    // Series exist from the start (a scrape before the first message sees
    // zeros, not nothing).
    refresh(&reporter);
    std::thread::Builder::new()
        .name("floodgate-metrics".into())
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                // One scraper at a time: a scrape is small, and a stuck one
                // is cut by IO_TIMEOUT.
                let _ = answer(stream, &handle, &reporter, &refresh);
            }
        })?;
    Ok(bound)
}

fn answer(
    mut stream: TcpStream,
    handle: &PrometheusHandle,
    reporter: &Reporter,
    refresh: &Refresh,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    let path = loop {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut request = httparse::Request::new(&mut headers);
        match request.parse(&head) {
            Ok(httparse::Status::Complete(_)) => {
                let method = request.method.unwrap_or("");
                let path = request.path.unwrap_or("");
                break (method == "GET").then(|| path.to_owned());
            }
            Ok(httparse::Status::Partial) if head.len() < MAX_HEAD => {}
            _ => return respond(&mut stream, "400 Bad Request", "bad request\n"),
        }
    };
    match path.as_deref() {
        Some("/metrics") | Some("/metrics/") => {
            refresh(reporter);
            respond(&mut stream, "200 OK", &handle.render())
        }
        Some(_) => respond(
            &mut stream,
            "404 Not Found",
            "the metrics are at /metrics\n",
        ),
        None => respond(&mut stream, "405 Method Not Allowed", "only GET /metrics\n"),
    }
}

fn respond(stream: &mut TcpStream, status: &str, body: &str) -> std::io::Result<()> {
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}
