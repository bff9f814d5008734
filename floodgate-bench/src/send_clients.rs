//! One runner per client for the `send` benchmark.
//!
//! Each runner builds the payload ([`payload`]) before its timer, then,
//! timed: connects, sends `count` binary messages of `size` bytes with the
//! library's own way to send many, closes with code 1000 and waits for the
//! server's close reply. The server ([`send_server`](crate::send_server))
//! answers a close only once it has read and checked everything before
//! it, so the time ends when every byte was received, unmasked and
//! checked: a client cannot finish early by leaving bytes in a buffer.
//! Setting up a tokio runtime, and for sockudo-ws the one-time calibration
//! of its clock, happen before the timer; the end of TCP after the close
//! reply is outside it too.
//!
//! How each library is asked to send many (its documented way; where it
//! has a way to queue messages and write them together, that one):
//!
//! * the `Sink`s of tokio-tungstenite, tokio-websockets, yawc and
//!   sockudo-ws: `SinkExt::feed` per message, `flush` once at the end
//!   (futures' documented way to send many without a flush each; sockudo-ws
//!   documents `feed` then `flush` at batch boundaries for speed, and each
//!   library flushes on its own when its write buffer passes its threshold);
//! * tungstenite: `write` per message (buffered; it writes out when its
//!   buffer passes 128 KiB), `flush` at the end, as its docs describe;
//! * fastwebsockets: `write_frame` per message (it has no buffered send:
//!   every frame is written at once), `flush` at the end;
//! * floodgate, blocking: `WebSocket::send_all` (encode a batch, write it
//!   with one call) with [`send_all_batch`] messages per call; async: its
//!   `Sink`, `feed` per message and one `flush`, as the other async
//!   libraries (it writes out past 64 KiB). `floodgate-each` and
//!   `floodgate-async-each` send with `send_binary`, which writes every
//!   message at once: the cost of a system call per message, for
//!   comparison. `floodgate-owned` is `send_all` given a clone of one
//!   `Bytes` per message, as the libraries that take ownership are.
//!
//! What each is given is what its API takes: a clone of one `Bytes` for
//! the libraries that take ownership of a payload, floodgate's `Sink`
//! included (a reference count; a library that must then copy the payload
//! to mask it, because it may not write into a shared buffer, pays for the
//! copy as part of its cost), a borrowed message for floodgate's
//! `send_all` (which takes `&Message`), a borrowed slice for floodgate's
//! `send_binary` and for fastwebsockets (fastwebsockets copies
//! a borrowed payload into a new `Vec` to mask it, an allocation per
//! message, which is its cost too). Each library masks every frame with a
//! key of its own random choice (raw-tcp cycles through its block's keys);
//! the server counts zero and repeated keys.
//!
//! Every connection keeps its library's socket defaults: tungstenite's
//! `connect`, floodgate and sockudo-ws's `connect_to_url` set
//! `TCP_NODELAY`; tokio-tungstenite's `connect_async`, tokio-websockets and
//! yawc keep Nagle's algorithm, as do the sockets connected by hand for
//! fastwebsockets and raw-tcp. (The server acknowledges at once after a
//! short read, so that Nagle's algorithm does not hold the close frame for
//! a delayed ACK at the end of a run.)

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use crate::clients::{current_thread_runtime, BoxError, Outcome, Role};
use crate::handshake;
use crate::send_server::{masked_frame, masked_frame_len};
use crate::server::parse_header;

pub use crate::send_server::payload;

/// What one run sends.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// Payload bytes per message.
    pub size: usize,
    /// Messages.
    pub count: u64,
}

impl Plan {
    fn sent(&self, elapsed: Duration) -> Outcome {
        Outcome {
            messages: self.count,
            bytes: self.count * self.size as u64,
            elapsed,
        }
    }
}

/// A send client runner.
pub struct SendClient {
    /// Name used in tables and `--only`.
    pub name: &'static str,
    /// Its role in the comparison.
    pub role: Role,
    /// Runs on a tokio runtime: compared with the fastest async anchor too.
    pub asynchronous: bool,
    /// Runs it once against `url`: connect, send, close.
    pub run: fn(&str, Plan) -> Result<Outcome, BoxError>,
}

/// Every client, in the order they run.
pub fn all() -> Vec<SendClient> {
    let client = |name, role, asynchronous, run| SendClient {
        name,
        role,
        asynchronous,
        run,
    };
    // Only the floodgate rows are pushed, and only with that feature.
    #[cfg_attr(not(feature = "floodgate-client"), allow(unused_mut))]
    let mut v = vec![
        client("raw-tcp", Role::Ceiling, false, raw_tcp as _),
        client("tungstenite", Role::Anchor, false, tungstenite_sync),
        client("tokio-tungstenite", Role::Anchor, true, tokio_tungstenite),
        client("fastwebsockets", Role::Anchor, true, fastwebsockets),
        client("tokio-websockets", Role::Anchor, true, tokio_websockets),
        client("yawc", Role::Anchor, true, yawc),
        client("sockudo-ws", Role::Anchor, true, sockudo_ws),
    ];
    #[cfg(feature = "floodgate-client")]
    v.extend([
        client("floodgate", Role::Subject, false, floodgate as _),
        client("floodgate-owned", Role::Variant, false, floodgate_owned),
        client("floodgate-async", Role::Variant, true, floodgate_async),
        client("floodgate-each", Role::Variant, false, floodgate_each),
        client(
            "floodgate-async-each",
            Role::Variant,
            true,
            floodgate_async_each,
        ),
    ]);
    v
}

/// Target size of the ceiling's pre-encoded block of frames.
pub const RAW_BLOCK: usize = 1 << 20;

/// How the ceiling works, for the output.
pub const RAW_TCP_NOTE: &str = "raw-tcp writes frames encoded and masked before the timer \
(a block of about 1 MiB, at least two frames, each with its own key) again and again with \
`write_all`: the cost of getting the bytes into the kernel, and of the server taking them, \
with no work per message";

/// The ceiling: hand handshake, then pre-encoded, pre-masked blocks.
pub fn raw_tcp(url: &str, plan: Plan) -> Result<Outcome, BoxError> {
    let data = payload(plan.size);
    let frame_len = masked_frame_len(plan.size);
    // At least two frames, so that consecutive frames never share a key.
    let per_block = (RAW_BLOCK / frame_len).max(2);
    let mut block = Vec::with_capacity(per_block * frame_len);
    for i in 0..per_block as u32 {
        let key = (i.wrapping_mul(0x9E37_79B9) ^ 0x5BD1_E995).to_be_bytes();
        masked_frame(0x2, &data, key, &mut block);
    }
    let mut close = Vec::new();
    masked_frame(
        0x8,
        &1000u16.to_be_bytes(),
        [0x12, 0x34, 0x56, 0x78],
        &mut close,
    );

    let start = Instant::now();
    let mut s = handshake::client_connect(url)?;
    for _ in 0..plan.count / per_block as u64 {
        s.write_all(&block)?;
    }
    let rest = (plan.count % per_block as u64) as usize;
    s.write_all(&block[..rest * frame_len])?;
    s.write_all(&close)?;
    // The server's close reply: the only frame it sends.
    let mut buf = Vec::new();
    let mut chunk = [0u8; 256];
    loop {
        if let Some((opcode, hlen, plen)) = parse_header(&buf) {
            if opcode != 0x8 {
                return Err(format!("raw-tcp: unexpected frame, opcode {opcode:#x}").into());
            }
            if buf.len() >= hlen + plen {
                break;
            }
        }
        match s.read(&mut chunk)? {
            0 => return Err("raw-tcp: EOF before the server's close".into()),
            n => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let elapsed = start.elapsed();
    while s.read(&mut chunk)? > 0 {}
    Ok(plan.sent(elapsed))
}

/// tungstenite, blocking: `connect`, `write` per message (into its write
/// buffer, written out past 128 KiB), `flush`, `close`, then `read` until
/// the server's close.
pub fn tungstenite_sync(url: &str, plan: Plan) -> Result<Outcome, BoxError> {
    use tungstenite::{Bytes, Error as WsError, Message};
    let data = Bytes::from(payload(plan.size));
    let start = Instant::now();
    let (mut ws, _response) = tungstenite::connect(url)?;
    for _ in 0..plan.count {
        ws.write(Message::Binary(data.clone()))?;
    }
    ws.flush()?;
    ws.close(None)?;
    let elapsed = loop {
        match ws.read() {
            Ok(Message::Close(_)) => break start.elapsed(),
            Ok(_) => {}
            Err(WsError::ConnectionClosed) => break start.elapsed(),
            Err(e) => return Err(e.into()),
        }
    };
    // The end of TCP.
    while ws.read().is_ok() {}
    Ok(plan.sent(elapsed))
}

/// tokio-tungstenite on a current-thread runtime: `connect_async`,
/// `SinkExt::feed` per message, `flush`, `close`, then `next` until the
/// server's close.
pub fn tokio_tungstenite(url: &str, plan: Plan) -> Result<Outcome, BoxError> {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::{Bytes, Message};
    let data = Bytes::from(payload(plan.size));
    let rt = current_thread_runtime()?;
    rt.block_on(async {
        let start = Instant::now();
        let (mut ws, _response) = tokio_tungstenite::connect_async(url).await?;
        for _ in 0..plan.count {
            ws.feed(Message::Binary(data.clone())).await?;
        }
        ws.flush().await?;
        ws.close(None).await?;
        let mut elapsed = None;
        // The stream goes on until the server has ended TCP.
        while let Some(msg) = ws.next().await {
            if let Message::Close(_) = msg? {
                elapsed = elapsed.or(Some(start.elapsed()));
            }
        }
        let elapsed = elapsed.ok_or("tokio-tungstenite: no close from the server")?;
        Ok(plan.sent(elapsed))
    })
}

/// fastwebsockets on a current-thread runtime: the hand handshake (as in
/// `stream`), `write_frame` of a borrowed payload per message (masking
/// copies it into a new `Vec`; frames over 1 KiB go out with `writev`, as
/// by default), `flush`, a close frame, then `read_frame` until the
/// server's close.
pub fn fastwebsockets(url: &str, plan: Plan) -> Result<Outcome, BoxError> {
    use fastwebsockets::{Frame, OpCode, Payload, Role, WebSocket};
    let data = payload(plan.size);
    let rt = current_thread_runtime()?;
    rt.block_on(async {
        let start = Instant::now();
        let stream = handshake::client_connect_tokio(url)?;
        let mut ws = WebSocket::after_handshake(stream, Role::Client);
        for _ in 0..plan.count {
            ws.write_frame(Frame::binary(Payload::Borrowed(&data)))
                .await?;
        }
        ws.flush().await?;
        ws.write_frame(Frame::close(1000, b"")).await?;
        let elapsed = loop {
            if ws.read_frame().await?.opcode == OpCode::Close {
                break start.elapsed();
            }
        };
        Ok(plan.sent(elapsed))
    })
}

/// tokio-websockets on a current-thread runtime: `ClientBuilder::connect`,
/// `SinkExt::feed` per message (it masks a copy of a shared payload;
/// frames are written once 8 KiB are queued), `flush`, a close message,
/// then `next` until the server's close.
pub fn tokio_websockets(url: &str, plan: Plan) -> Result<Outcome, BoxError> {
    use futures_util::{SinkExt, StreamExt};
    use tokio_websockets::{ClientBuilder, CloseCode, Message};
    let data = tungstenite::Bytes::from(payload(plan.size));
    let rt = current_thread_runtime()?;
    rt.block_on(async {
        let start = Instant::now();
        let (mut ws, _response) = ClientBuilder::new().uri(url)?.connect().await?;
        for _ in 0..plan.count {
            ws.feed(Message::binary(data.clone())).await?;
        }
        ws.flush().await?;
        ws.send(Message::close(Some(CloseCode::NORMAL_CLOSURE), ""))
            .await?;
        let mut elapsed = None;
        while let Some(msg) = ws.next().await {
            if msg?.is_close() {
                elapsed = elapsed.or(Some(start.elapsed()));
            }
        }
        let elapsed = elapsed.ok_or("tokio-websockets: no close from the server")?;
        Ok(plan.sent(elapsed))
    })
}

/// yawc on a current-thread runtime: `WebSocket::connect`, `SinkExt::feed`
/// of a `Frame` per message, `flush`, a close frame, then `next_frame`
/// until the server's close.
pub fn yawc(url: &str, plan: Plan) -> Result<Outcome, BoxError> {
    use futures_util::SinkExt;
    use yawc::close::CloseCode;
    use yawc::{Frame, OpCode, WebSocket};
    let data = tungstenite::Bytes::from(payload(plan.size));
    let rt = current_thread_runtime()?;
    rt.block_on(async {
        let start = Instant::now();
        let mut ws = WebSocket::connect(url.parse()?).await?;
        for _ in 0..plan.count {
            ws.feed(Frame::binary(data.clone())).await?;
        }
        ws.flush().await?;
        ws.send(Frame::close(CloseCode::Normal, b"")).await?;
        let elapsed = loop {
            if ws.next_frame().await?.opcode() == OpCode::Close {
                break start.elapsed();
            }
        };
        Ok(plan.sent(elapsed))
    })
}

/// sockudo-ws on a current-thread runtime, default `Config` (heartbeat on:
/// a ping after 30 s without input, an idle timeout of 120 s; neither
/// fires in a run): `WebSocketClient::<Http1>::connect_to_url`,
/// `SinkExt::feed` per message (its writes are corked and go out past the
/// 64 KiB high-water mark), `flush`, `close(1000)`, then `next` until the
/// server's close. `init_clock` (its clock's one-time calibration, up to
/// 200 ms, which its docs say to do before the runtime) runs before the
/// timer.
pub fn sockudo_ws(url: &str, plan: Plan) -> Result<Outcome, BoxError> {
    use futures_util::{SinkExt, StreamExt};
    use sockudo_ws::client::WebSocketClient;
    use sockudo_ws::{Config, Http1, Message};
    let data = tungstenite::Bytes::from(payload(plan.size));
    sockudo_ws::init_clock();
    let rt = current_thread_runtime()?;
    rt.block_on(async {
        let start = Instant::now();
        let client = WebSocketClient::<Http1>::new(Config::default());
        let (mut ws, _handshake) = client.connect_to_url(url, None).await?;
        for _ in 0..plan.count {
            ws.feed(Message::Binary(data.clone())).await?;
        }
        ws.flush().await?;
        ws.close(1000, "").await?;
        let mut elapsed = None;
        while let Some(msg) = ws.next().await {
            if msg?.is_close() {
                elapsed = elapsed.or(Some(start.elapsed()));
            }
        }
        let elapsed = elapsed.ok_or("sockudo-ws: no close from the server")?;
        Ok(plan.sent(elapsed))
    })
}

/// Payload bytes per `send_all` call of the blocking floodgate row.
pub const SEND_ALL_BYTES: usize = 256 * 1024;

/// Most messages per `send_all` call.
pub const SEND_ALL_MAX: usize = 1024;

/// Messages per `send_all` call for payloads of `size` bytes: about
/// [`SEND_ALL_BYTES`] of payload, at most [`SEND_ALL_MAX`] messages, at
/// least one (1024 at 16 B, 256 at 1 KiB, 4 at 64 KiB, 1 at 1 MiB).
pub fn send_all_batch(size: usize) -> usize {
    (SEND_ALL_BYTES / size.max(1)).clamp(1, SEND_ALL_MAX)
}

/// The batches of a run: `count` messages in calls of `batch`.
fn batches(count: u64, batch: usize) -> impl Iterator<Item = usize> {
    let full = count / batch as u64;
    let rest = (count % batch as u64) as usize;
    (0..full)
        .map(move |_| batch)
        .chain((rest > 0).then_some(rest))
}

/// floodgate, blocking: `connect`, `WebSocket::send_all` with
/// [`send_all_batch`] messages per call (one `Message`, borrowed: what
/// `send_all` takes without a clone), then `close`, which waits for the
/// server's close (and its end of TCP).
#[cfg(feature = "floodgate-client")]
pub fn floodgate(url: &str, plan: Plan) -> Result<Outcome, BoxError> {
    use floodgate::Message;
    let message = Message::binary(payload(plan.size));
    let batch = send_all_batch(plan.size);
    let start = Instant::now();
    let mut ws = floodgate::connect(url)?;
    for n in batches(plan.count, batch) {
        ws.send_all(std::iter::repeat_n(&message, n))?;
    }
    ws.close(1000, "")?;
    Ok(plan.sent(start.elapsed()))
}

/// floodgate, blocking, `WebSocket::send_all` given owned messages (a
/// clone of one `Bytes` each), as the libraries that take ownership are
/// given: what borrowing saves, for comparison with the `floodgate` row.
#[cfg(feature = "floodgate-client")]
pub fn floodgate_owned(url: &str, plan: Plan) -> Result<Outcome, BoxError> {
    use floodgate::Message;
    let data = tungstenite::Bytes::from(payload(plan.size));
    let batch = send_all_batch(plan.size);
    let start = Instant::now();
    let mut ws = floodgate::connect(url)?;
    for n in batches(plan.count, batch) {
        ws.send_all(std::iter::repeat_n(Message::Binary(data.clone()), n))?;
    }
    ws.close(1000, "")?;
    Ok(plan.sent(start.elapsed()))
}

/// floodgate's async client on a current-thread runtime:
/// `floodgate::tokio::connect`, then its `Sink`: `feed` per message (a
/// clone of one `Bytes`), one `flush`, then `close`, which waits for the
/// server's close.
#[cfg(feature = "floodgate-client")]
pub fn floodgate_async(url: &str, plan: Plan) -> Result<Outcome, BoxError> {
    use floodgate::Message;
    use futures_util::SinkExt;
    let data = tungstenite::Bytes::from(payload(plan.size));
    let rt = current_thread_runtime()?;
    rt.block_on(async {
        let start = Instant::now();
        let mut ws = floodgate::tokio::connect(url).await?;
        for _ in 0..plan.count {
            ws.feed(Message::Binary(data.clone())).await?;
        }
        SinkExt::flush(&mut ws).await?;
        ws.close(1000, "").await?;
        Ok(plan.sent(start.elapsed()))
    })
}

/// floodgate, blocking, one `send_binary` per message: each is written at
/// once, a system call per message.
#[cfg(feature = "floodgate-client")]
pub fn floodgate_each(url: &str, plan: Plan) -> Result<Outcome, BoxError> {
    let data = payload(plan.size);
    let start = Instant::now();
    let mut ws = floodgate::connect(url)?;
    for _ in 0..plan.count {
        ws.send_binary(&data)?;
    }
    ws.close(1000, "")?;
    Ok(plan.sent(start.elapsed()))
}

/// floodgate's async client, one `send_binary` per message: each is
/// written at once.
#[cfg(feature = "floodgate-client")]
pub fn floodgate_async_each(url: &str, plan: Plan) -> Result<Outcome, BoxError> {
    let data = payload(plan.size);
    let rt = current_thread_runtime()?;
    rt.block_on(async {
        let start = Instant::now();
        let mut ws = floodgate::tokio::connect(url).await?;
        for _ in 0..plan.count {
            ws.send_binary(&data).await?;
        }
        ws.close(1000, "").await?;
        Ok(plan.sent(start.elapsed()))
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn batches_add_up() {
        for (count, batch) in [(0, 4), (3, 4), (8, 4), (10, 4), (5, 1)] {
            let v: Vec<usize> = super::batches(count, batch).collect();
            assert_eq!(v.iter().sum::<usize>() as u64, count);
            assert!(v.iter().all(|&n| n >= 1 && n <= batch));
        }
        assert_eq!(super::send_all_batch(16), 1024);
        assert_eq!(super::send_all_batch(1 << 20), 1);
        assert_eq!(super::send_all_batch(0), 1024);
    }
}
