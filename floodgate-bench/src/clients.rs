//! One runner per client. Each connects to the URL, receives every message
//! until the server's close frame, and returns what it counted and how long
//! it took.
//!
//! Timing is wall time from just before `connect` to the moment the client
//! library hands over the server's close (for floodgate: the end of its
//! `messages()` iterator, which ends at a clean close; for
//! floodgate-buffered: the buffer reporting the end of the connection, which
//! its reader does once the server has also ended TCP). Anything set up
//! before the connection — the tokio runtime — is outside the timer; the
//! rest of the close handshake is outside it too.
//!
//! Every runner counts a message's payload bytes from what the library
//! returns, so a library that lost or merged messages fails the check in the
//! binary.

use std::error::Error;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

use crate::handshake;
use crate::server::parse_header;

/// The error type runners return.
pub type BoxError = Box<dyn Error + Send + Sync>;

/// What one run of one client saw.
#[derive(Clone, Copy, Debug)]
pub struct Outcome {
    /// Complete data messages received.
    pub messages: u64,
    /// Their payload bytes.
    pub bytes: u64,
    /// Connect to close received.
    pub elapsed: Duration,
}

/// The role a client plays in the tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The raw TCP ceiling.
    Ceiling,
    /// An existing library floodgate is compared with.
    Anchor,
    /// floodgate itself.
    Subject,
    /// Another way of receiving with floodgate, compared with the direct
    /// `floodgate` client of the same run (not with the anchors' best).
    Variant,
}

/// A client runner.
pub struct Client {
    /// Name used in tables and `--only`.
    pub name: &'static str,
    /// Its role in the comparison.
    pub role: Role,
    /// Runs on a tokio runtime: compared with the fastest async anchor too.
    pub asynchronous: bool,
    /// Runs it once against `url`.
    pub run: fn(&str) -> Result<Outcome, BoxError>,
}

/// Every client, in the order they run.
pub fn all() -> Vec<Client> {
    // Only the floodgate rows are pushed, and only with that feature.
    #[cfg_attr(not(feature = "floodgate-client"), allow(unused_mut))]
    let mut v = vec![
        Client {
            name: "raw-tcp",
            role: Role::Ceiling,
            asynchronous: false,
            run: raw_tcp,
        },
        Client {
            name: "tungstenite",
            role: Role::Anchor,
            asynchronous: false,
            run: tungstenite_sync,
        },
        Client {
            name: "tokio-tungstenite",
            role: Role::Anchor,
            asynchronous: true,
            run: tokio_tungstenite,
        },
        Client {
            name: "fastwebsockets",
            role: Role::Anchor,
            asynchronous: true,
            run: fastwebsockets,
        },
        Client {
            name: "sockudo-ws",
            role: Role::Anchor,
            asynchronous: true,
            run: sockudo_ws,
        },
        Client {
            name: "sockudo-ws-tuned",
            role: Role::Anchor,
            asynchronous: true,
            run: sockudo_ws_tuned,
        },
        Client {
            name: "yawc",
            role: Role::Anchor,
            asynchronous: true,
            run: yawc,
        },
        Client {
            name: "yawc-tuned",
            role: Role::Anchor,
            asynchronous: true,
            run: yawc_tuned,
        },
        Client {
            name: "tokio-websockets",
            role: Role::Anchor,
            asynchronous: true,
            run: tokio_websockets,
        },
    ];
    #[cfg(feature = "floodgate-client")]
    v.push(Client {
        name: "floodgate",
        role: Role::Subject,
        asynchronous: false,
        run: floodgate,
    });
    #[cfg(feature = "floodgate-client")]
    v.push(Client {
        name: "floodgate-buffered",
        role: Role::Variant,
        asynchronous: false,
        run: floodgate_buffered,
    });
    #[cfg(feature = "floodgate-client")]
    v.push(Client {
        name: "floodgate-async",
        role: Role::Variant,
        asynchronous: true,
        run: floodgate_async,
    });
    #[cfg(feature = "floodgate-client")]
    v.push(Client {
        name: "floodgate-async-buffered",
        role: Role::Variant,
        asynchronous: true,
        run: floodgate_async_buffered,
    });
    v
}

/// Read size of the raw TCP ceiling: 64 KiB, which measured faster than
/// 256 KiB at 1 KiB and 64 KiB messages (a read that stays within the L2
/// cache is copied out of the kernel faster) and the same at 16 B.
pub const RAW_CHUNK: usize = 64 * 1024;

/// How the ceiling works, for the output.
pub const RAW_TCP_NOTE: &str = "raw-tcp reads the socket in 64 KiB chunks into one reused \
buffer and walks the frame headers only (counts messages and payload lengths, never touches \
or copies a payload): the cost of getting the bytes out of the kernel, plus a few ns per frame";

/// The ceiling: hand handshake, then 64 KiB reads, walking frame headers.
pub fn raw_tcp(url: &str) -> Result<Outcome, BoxError> {
    let start = Instant::now();
    let mut s = handshake::client_connect(url)?;
    let mut buf = vec![0u8; RAW_CHUNK];
    let (mut messages, mut bytes) = (0u64, 0u64);
    let mut skip = 0u64; // payload bytes of the current frame not yet read
    let mut have = 0usize; // start of an incomplete header kept at buf[..have]
    loop {
        let n = s.read(&mut buf[have..])?;
        if n == 0 {
            return Err("raw-tcp: EOF before the close frame".into());
        }
        let end = have + n;
        let mut pos = 0usize;
        loop {
            if skip > 0 {
                let take = skip.min((end - pos) as u64);
                skip -= take;
                pos += take as usize;
                if skip > 0 {
                    break;
                }
            }
            let Some((opcode, hlen, plen)) = parse_header(&buf[pos..end]) else {
                break;
            };
            let fin = buf[pos] & 0x80 != 0;
            match opcode {
                0x0..=0x2 => {
                    messages += fin as u64;
                    bytes += plen as u64;
                }
                0x8 => {
                    let elapsed = start.elapsed();
                    // Masked close reply, code 1000.
                    let m = [0x12, 0x34, 0x56, 0x78];
                    s.write_all(&[0x88, 0x82, m[0], m[1], m[2], m[3], 0x03 ^ m[0], 0xE8 ^ m[1]])?;
                    while s.read(&mut buf)? > 0 {}
                    return Ok(Outcome {
                        messages,
                        bytes,
                        elapsed,
                    });
                }
                _ => {} // our server sends no pings
            }
            pos += hlen;
            skip = plen as u64;
        }
        buf.copy_within(pos..end, 0);
        have = end - pos;
    }
}

/// tungstenite, blocking: `connect`, then `read()` until the close.
pub fn tungstenite_sync(url: &str) -> Result<Outcome, BoxError> {
    use tungstenite::{Error as WsError, Message};
    let start = Instant::now();
    let (mut ws, _response) = tungstenite::connect(url)?;
    let (mut messages, mut bytes) = (0u64, 0u64);
    let elapsed = loop {
        match ws.read()? {
            Message::Binary(b) => {
                messages += 1;
                bytes += b.len() as u64;
            }
            Message::Text(t) => {
                messages += 1;
                bytes += t.len() as u64;
            }
            Message::Close(_) => break start.elapsed(),
            _ => {}
        }
    };
    // Finish the close handshake: the next read sends the reply, then sees EOF.
    loop {
        match ws.read() {
            Ok(_) => {}
            Err(WsError::ConnectionClosed | WsError::AlreadyClosed) => break,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Outcome {
        messages,
        bytes,
        elapsed,
    })
}

/// The runtime of every async runner: current-thread, with I/O and timers
/// (floodgate's async client needs the timers; the anchors get the same
/// runtime so that none pays for a driver the others do not).
pub fn current_thread_runtime() -> Result<tokio::runtime::Runtime, BoxError> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// tokio-tungstenite on a current-thread runtime: `connect_async`, then
/// `StreamExt::next` until the stream ends.
pub fn tokio_tungstenite(url: &str) -> Result<Outcome, BoxError> {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let rt = current_thread_runtime()?;
    rt.block_on(async {
        let start = Instant::now();
        let (mut ws, _response) = tokio_tungstenite::connect_async(url).await?;
        let (mut messages, mut bytes) = (0u64, 0u64);
        let mut elapsed = None;
        while let Some(msg) = ws.next().await {
            match msg? {
                Message::Binary(b) => {
                    messages += 1;
                    bytes += b.len() as u64;
                }
                Message::Text(t) => {
                    messages += 1;
                    bytes += t.len() as u64;
                }
                // The stream goes on until the reply is sent and EOF is seen.
                Message::Close(_) => elapsed = elapsed.or(Some(start.elapsed())),
                _ => {}
            }
        }
        let elapsed = elapsed.ok_or("tokio-tungstenite: stream ended without a close")?;
        Ok(Outcome {
            messages,
            bytes,
            elapsed,
        })
    })
}

/// fastwebsockets on a current-thread runtime. The handshake is done by hand
/// (the same one raw-tcp uses: no byte past the response head is consumed)
/// so the frames are read straight from the `TcpStream`, not through
/// hyper's upgrade wrapper. Messages come from `FragmentCollector`, its way
/// to receive complete messages (for unfragmented frames it costs one
/// branch over `WebSocket::read_frame`). Auto-close and auto-pong keep their
/// defaults (on); the maximum message size is set to 64 MiB, the same regime
/// as tungstenite's default.
pub fn fastwebsockets(url: &str) -> Result<Outcome, BoxError> {
    use fastwebsockets::{FragmentCollector, OpCode, Role, WebSocket};
    let rt = current_thread_runtime()?;
    rt.block_on(async {
        let start = Instant::now();
        let stream = handshake::client_connect_tokio(url)?;
        let mut ws = WebSocket::after_handshake(stream, Role::Client);
        ws.set_max_message_size(64 << 20);
        ws.set_auto_close(true);
        ws.set_auto_pong(true);
        let mut ws = FragmentCollector::new(ws);
        let (mut messages, mut bytes) = (0u64, 0u64);
        let elapsed = loop {
            let frame = ws.read_frame().await?;
            match frame.opcode {
                OpCode::Binary | OpCode::Text => {
                    messages += 1;
                    bytes += frame.payload.len() as u64;
                }
                // auto_close has already written the reply.
                OpCode::Close => break start.elapsed(),
                _ => {}
            }
        };
        // Wait for the server to hang up.
        let mut stream = ws.into_inner();
        let mut sink = [0u8; 1024];
        while tokio::io::AsyncReadExt::read(&mut stream, &mut sink).await? > 0 {}
        Ok(Outcome {
            messages,
            bytes,
            elapsed,
        })
    })
}

/// What the second sockudo-ws row changes, for the output.
pub const SOCKUDO_TUNED_NOTE: &str = "sockudo-ws reads its clock (quanta) for every message it \
receives under its default Config, to track inbound activity for its heartbeat (a ping after \
30 s without traffic) and its 120 s idle timeout; sockudo-ws-tuned sets `auto_ping(false)` and \
`idle_timeout(0)` (its documented off switches: its README's configuration table gives \
\"0 = disabled\" for the idle timeout), which leaves no deadline to track, so no clock read per \
message";

/// What the second yawc row changes, for the output.
pub const YAWC_TUNED_NOTE: &str = "yawc-tuned sets `with_read_buffer_capacity(128 KiB)` \
(default 8 KiB): yawc's docs recommend a larger read buffer \"for bursts of small messages when \
the extra memory per connection is acceptable\", and its README's \"yawc tuned\" benchmark rows \
use 128 KiB";

/// sockudo-ws's tuned configuration: see [`SOCKUDO_TUNED_NOTE`].
pub fn sockudo_tuned_config() -> sockudo_ws::Config {
    sockudo_ws::Config::builder()
        .auto_ping(false)
        .idle_timeout(0)
        .build()
}

/// sockudo-ws with its default `Config` on a current-thread runtime:
/// `WebSocketClient::<Http1>::connect_to_url`, then `StreamExt::next`
/// until the stream ends.
///
/// Defaults that matter here: messages up to 64 MiB, frames up to 16 MiB
/// (one frame per message in this benchmark), a 64 KiB receive buffer,
/// a 16 KiB write (cork) buffer, UTF-8 checked on text (the server sends
/// binary), and a heartbeat: a ping after 30 s without inbound traffic, an
/// idle timeout of 120 s, both tracked by reading the clock (quanta, so
/// the TSC on x86) for every message received. `connect_to_url` sets
/// `TCP_NODELAY` and boxes the socket (`Stream<Http1>`: one virtual call
/// per socket read). `init_clock()` runs before the runtime is built, as
/// sockudo-ws's README asks of latency-sensitive code, so that quanta's
/// one-time calibration (up to 200 ms) falls outside the timer.
pub fn sockudo_ws(url: &str) -> Result<Outcome, BoxError> {
    sockudo_ws_with(url, "sockudo-ws", sockudo_ws::Config::default())
}

/// sockudo-ws with its heartbeat and idle timeout off
/// ([`sockudo_tuned_config`]); otherwise as [`sockudo_ws()`].
pub fn sockudo_ws_tuned(url: &str) -> Result<Outcome, BoxError> {
    sockudo_ws_with(url, "sockudo-ws-tuned", sockudo_tuned_config())
}

fn sockudo_ws_with(url: &str, name: &str, config: sockudo_ws::Config) -> Result<Outcome, BoxError> {
    use futures_util::StreamExt;
    use sockudo_ws::client::WebSocketClient;
    use sockudo_ws::{Http1, Message};
    sockudo_ws::init_clock();
    let rt = current_thread_runtime()?;
    rt.block_on(async {
        let start = Instant::now();
        let client = WebSocketClient::<Http1>::new(config);
        let (mut ws, _handshake) = client.connect_to_url(url, None).await?;
        let (mut messages, mut bytes) = (0u64, 0u64);
        let mut elapsed = None;
        while let Some(msg) = ws.next().await {
            match msg? {
                Message::Binary(b) | Message::Text(b) => {
                    messages += 1;
                    bytes += b.len() as u64;
                }
                // The stream replies to the close, then ends at EOF.
                Message::Close(_) => elapsed = elapsed.or(Some(start.elapsed())),
                _ => {}
            }
        }
        let elapsed = elapsed.ok_or_else(|| format!("{name}: stream ended without a close"))?;
        Ok(Outcome {
            messages,
            bytes,
            elapsed,
        })
    })
}

/// yawc with its default `Options` on a current-thread runtime:
/// `WebSocket::connect(url)`, then `next_frame()` until the close, then
/// once more (which sends the queued close reply and reports the end).
///
/// Defaults that matter here: a frame payload must be below 1 MiB
/// (`MAX_PAYLOAD_READ`, exclusive) and a reassembled message below 2 MiB;
/// the read and write buffers start at 8 KiB (the read buffer grows for a
/// larger frame and shrinks back after it); UTF-8 is *not* checked on
/// text unless `with_utf8()` is set; no compression unless asked for;
/// `TCP_NODELAY` off. `WebSocket` reassembles fragments, as the others'
/// message APIs do.
pub fn yawc(url: &str) -> Result<Outcome, BoxError> {
    yawc_with(url, "yawc", yawc::Options::default())
}

/// yawc with a 128 KiB read buffer (see [`YAWC_TUNED_NOTE`]); otherwise as
/// [`yawc()`].
pub fn yawc_tuned(url: &str) -> Result<Outcome, BoxError> {
    yawc_with(url, "yawc-tuned", yawc_tuned_options())
}

/// yawc's tuned options: see [`YAWC_TUNED_NOTE`].
pub fn yawc_tuned_options() -> yawc::Options {
    yawc::Options::default().with_read_buffer_capacity(128 * 1024)
}

fn yawc_with(url: &str, name: &str, options: yawc::Options) -> Result<Outcome, BoxError> {
    use yawc::{OpCode, WebSocket, WebSocketError};
    let rt = current_thread_runtime()?;
    rt.block_on(async {
        let start = Instant::now();
        let mut ws = WebSocket::connect(url.parse()?)
            .with_options(options)
            .await?;
        let (mut messages, mut bytes) = (0u64, 0u64);
        let elapsed = loop {
            let frame = ws.next_frame().await?;
            match frame.opcode() {
                OpCode::Binary | OpCode::Text => {
                    messages += 1;
                    bytes += frame.payload().len() as u64;
                }
                OpCode::Close => break start.elapsed(),
                _ => {}
            }
        };
        // The close reply was queued on receipt; the next read flushes it
        // and reports the end.
        match ws.next_frame().await {
            Err(WebSocketError::ConnectionClosed) => {}
            Err(e) => return Err(e.into()),
            Ok(f) => return Err(format!("{name}: {:?} frame after the close", f.opcode()).into()),
        }
        Ok(Outcome {
            messages,
            bytes,
            elapsed,
        })
    })
}

/// tokio-websockets with its defaults on a current-thread runtime:
/// `ClientBuilder::new().uri(url)?.connect()`, then `StreamExt::next`
/// until the stream ends (it replies to the close and ends).
///
/// Defaults that matter here: payloads up to 64 MiB (`Limits`), UTF-8
/// always checked on text (no switch: it calls itself strict), a read
/// buffer of tokio-util's `FramedRead` (8 KiB to start, grown for a
/// larger frame), outgoing frames up to 4 MiB, a flush threshold of
/// 8 KiB, no compression (unsupported), `TCP_NODELAY` off. Its docs
/// recommend nothing for speed.
pub fn tokio_websockets(url: &str) -> Result<Outcome, BoxError> {
    use futures_util::StreamExt;
    let rt = current_thread_runtime()?;
    rt.block_on(async {
        let start = Instant::now();
        let (mut ws, _response) = tokio_websockets::ClientBuilder::new()
            .uri(url)?
            .connect()
            .await?;
        let (mut messages, mut bytes) = (0u64, 0u64);
        let mut elapsed = None;
        while let Some(msg) = ws.next().await {
            let msg = msg?;
            if msg.is_binary() || msg.is_text() {
                messages += 1;
                bytes += msg.as_payload().len() as u64;
            } else if msg.is_close() {
                elapsed = elapsed.or(Some(start.elapsed()));
            }
        }
        let elapsed = elapsed.ok_or("tokio-websockets: stream ended without a close")?;
        Ok(Outcome {
            messages,
            bytes,
            elapsed,
        })
    })
}

/// floodgate, blocking: `connect`, then the `messages()` iterator, which
/// ends at a clean close. The same loop as `floodgate/examples/drain.rs`.
#[cfg(feature = "floodgate-client")]
pub fn floodgate(url: &str) -> Result<Outcome, BoxError> {
    let start = Instant::now();
    let mut ws = floodgate::connect(url)?;
    let (mut messages, mut bytes) = (0u64, 0u64);
    for msg in ws.messages() {
        let msg = msg?;
        messages += 1;
        bytes += msg.len() as u64;
    }
    let elapsed = start.elapsed();
    drop(ws);
    Ok(Outcome {
        messages,
        bytes,
        elapsed,
    })
}

/// Messages taken per `recv_batch_into` call by `floodgate-buffered` (64
/// and 4096 measured within noise of it at 16 B: once the buffer is busy,
/// batches are as large as what the reader pushed since the last call).
pub const BUFFERED_BATCH: usize = 1024;

/// floodgate's buffered path: `connect_buffered` with the default buffer
/// (`Overflow::Block`, 4096 messages, 64 MiB), so a reader thread decodes
/// into the buffer while this thread takes up to [`BUFFERED_BATCH`]
/// messages per `recv_batch_into` call into one reused vector. The same
/// loop as `floodgate/examples/drain.rs --buffered`. The run ends when the
/// buffer reports the close handshake (after the last message was taken).
#[cfg(feature = "floodgate-client")]
pub fn floodgate_buffered(url: &str) -> Result<Outcome, BoxError> {
    let start = Instant::now();
    let ws = floodgate::Client::builder()
        .buffer(floodgate::buffer::BufferConfig::new())
        .connect_buffered(url)?;
    let (mut messages, mut bytes) = (0u64, 0u64);
    let mut batch = Vec::with_capacity(BUFFERED_BATCH);
    loop {
        batch.clear();
        match ws.recv_batch_into(&mut batch, BUFFERED_BATCH, Duration::MAX) {
            Ok(_) => {
                for m in &batch {
                    messages += 1;
                    bytes += m.len() as u64;
                }
            }
            Err(e) if e.is_closed() => break,
            Err(e) => return Err(e.into()),
        }
    }
    let elapsed = start.elapsed();
    drop(ws);
    Ok(Outcome {
        messages,
        bytes,
        elapsed,
    })
}

/// floodgate's async client on a current-thread runtime:
/// `floodgate::tokio::connect`, then `recv()` until it reports the close
/// (`ConnectionClosed`, once the close handshake is done and the server
/// has ended TCP, as the blocking `messages()` iterator ends).
#[cfg(feature = "floodgate-client")]
pub fn floodgate_async(url: &str) -> Result<Outcome, BoxError> {
    let rt = current_thread_runtime()?;
    rt.block_on(async {
        let start = Instant::now();
        let mut ws = floodgate::tokio::connect(url).await?;
        let (mut messages, mut bytes) = (0u64, 0u64);
        loop {
            match ws.recv().await {
                Ok(msg) => {
                    messages += 1;
                    bytes += msg.len() as u64;
                }
                Err(e) if e.is_closed() => break,
                Err(e) => return Err(e.into()),
            }
        }
        let elapsed = start.elapsed();
        drop(ws);
        Ok(Outcome {
            messages,
            bytes,
            elapsed,
        })
    })
}

/// floodgate's async buffered connection on a current-thread runtime:
/// `connect_buffered_async` with the default buffer (`Overflow::Block`,
/// 4096 messages, 64 MiB), whose reader task (on the same thread) decodes
/// into the buffer while this task takes up to [`BUFFERED_BATCH`] messages
/// per `recv_batch` call (no bound on the wait; a new `Vec` each time). The run
/// ends when the buffer reports the close handshake.
#[cfg(feature = "floodgate-client")]
pub fn floodgate_async_buffered(url: &str) -> Result<Outcome, BoxError> {
    use floodgate::buffer::{BufferConfig, Overflow};
    let rt = current_thread_runtime()?;
    rt.block_on(async {
        let start = Instant::now();
        let ws = floodgate::Client::builder()
            .buffer(BufferConfig::new().overflow(Overflow::Block))
            .connect_buffered_async(url)
            .await?;
        let (mut messages, mut bytes) = (0u64, 0u64);
        loop {
            match ws.recv_batch(BUFFERED_BATCH, Duration::MAX).await {
                Ok(batch) => {
                    for m in &batch {
                        messages += 1;
                        bytes += m.len() as u64;
                    }
                }
                Err(e) if e.is_closed() => break,
                Err(e) => return Err(e.into()),
            }
        }
        let elapsed = start.elapsed();
        drop(ws);
        Ok(Outcome {
            messages,
            bytes,
            elapsed,
        })
    })
}
