//! From a URL to an open async [`WebSocket`]: the same steps and rules as
//! the blocking connect (`crate::connect`), with the waits on tokio.
//!
//! The transport comes from `dial.rs`, natively on tokio: DNS, the TCP
//! connect with the blocking client's socket options set before it, the
//! proxy's tunnel (the sans-I/O handshakes of `floodgate_proto::tunnel`,
//! the same the blocking client drives) and TLS, with no blocking-pool
//! thread holding a socket, so dropping the connect future closes
//! everything at once. Then the WebSocket handshake runs on tokio with the
//! sans-I/O handshake of `floodgate-proto`, and redirects follow
//! `crate::connect::next_hop`, the blocking client's rules. One deadline,
//! `connect_timeout`, covers the whole chain of redirects.

use super::dial::open_stream;
use super::socket::WebSocket;
use super::stream::AsyncStream;
use crate::connect::{after_head, client_request, next_hop, parse_url};
use crate::error::{Error, ErrorKind, Result, TimeoutKind};
use crate::options::Options;
use bytes::BytesMut;
use floodgate_proto::handshake::{parse_response_head, ClientHandshake, ClientRequest};
use http::StatusCode;
use std::borrow::Cow;
use std::io;
use std::sync::Arc;
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Connects to `url` with `options`, bounded by `connect_timeout` for the
/// whole chain of redirects.
pub(crate) async fn connect(
    url: &str,
    options: &Options,
    tls_config: &(dyn Fn() -> Result<Arc<rustls::ClientConfig>> + Sync),
) -> Result<WebSocket> {
    let deadline = options.connect_timeout.map(|t| Instant::now() + t);
    let run = connect_following(url, options, deadline, tls_config);
    match options.connect_timeout {
        None => run.await,
        Some(timeout) => match ::tokio::time::timeout(timeout, run).await {
            Ok(result) => result,
            Err(_) => Err(Error::timeout(TimeoutKind::Handshake, Some(timeout))),
        },
    }
}

async fn connect_following(
    url: &str,
    options: &Options,
    deadline: Option<Instant>,
    tls_config: &(dyn Fn() -> Result<Arc<rustls::ClientConfig>> + Sync),
) -> Result<WebSocket> {
    let mut url = url.to_owned();
    let mut options = Cow::Borrowed(options);
    let mut redirects = 0;
    loop {
        let target = parse_url(&url)?;
        let stream = open_stream(&target, &options, deadline, tls_config).await?;
        let request = client_request(&target, &options);
        tracing::debug!(host = %target.host, port = target.port, path = %target.resource, "connected (async), sending upgrade");
        let error = match handshake(stream, &request, &options).await {
            Ok(ws) => return Ok(ws),
            Err(e) => e,
        };
        url = next_hop(&url, &target, &mut options, error, &mut redirects)?;
    }
}

/// The opening handshake over a connected transport (the caller bounds
/// it in time).
async fn handshake(
    mut stream: AsyncStream,
    request: &ClientRequest,
    options: &Options,
) -> Result<WebSocket> {
    let (handshake, bytes) = ClientHandshake::new(request)?;
    stream.write_all(&bytes).await?;
    stream.flush().await?;
    let mut buf = BytesMut::new();
    let (head, head_len) = loop {
        if let Some(parsed) = parse_response_head(&buf, options.max_handshake_size)? {
            break parsed;
        }
        if read_some(&mut stream, &mut buf, 4096).await? == 0 {
            return Err(ErrorKind::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection during the handshake",
            ))
            .into());
        }
    };
    if head.status != StatusCode::SWITCHING_PROTOCOLS {
        // As the blocking client: show the start of the body (at most 4 KiB).
        let wanted = head_len + head.error_body_wanted();
        while buf.len() < wanted {
            let missing = wanted - buf.len();
            match read_some(&mut stream, &mut buf, missing).await {
                Ok(n) if n > 0 => {}
                _ => break,
            }
        }
    }
    let response = handshake.accept(head, &buf[head_len..])?;
    let buf = after_head(buf, head_len);
    tracing::debug!(subprotocol = ?response.subprotocol, "WebSocket handshake accepted (async)");
    Ok(WebSocket::new(stream, options, buf, response))
}

/// One read of at most `at_most` bytes into `buf`.
async fn read_some(stream: &mut AsyncStream, buf: &mut BytesMut, at_most: usize) -> Result<usize> {
    buf.reserve(at_most.max(1));
    Ok((&mut *stream)
        .take(at_most.max(1) as u64)
        .read_buf(buf)
        .await?)
}
