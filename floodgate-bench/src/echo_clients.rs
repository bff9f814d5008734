//! One runner per client for the `echo` benchmark.
//!
//! Each runner connects to the echo server, does `warmup` round trips that
//! are not recorded, then `rounds` sequential round trips: send one binary
//! message of `size` bytes, wait for its echo, check the echoed length,
//! and record the time from just before the send to the moment the library
//! hands over the echo. Then it closes the connection properly. Only the
//! round trips are timed; connecting, the runtime and the close are not.
//!
//! Every connection has `TCP_NODELAY` set (floodgate's default, and
//! sockudo-ws's `connect_to_url` sets it; set explicitly for the others,
//! through each library's option where it has one, on the socket it
//! exposes otherwise), so no round trip waits on Nagle's algorithm. The async clients run on a current-thread tokio runtime
//! with I/O and timers, the same one for all of them.

use std::net::TcpStream;
use std::time::Instant;

use crate::clients::{current_thread_runtime, BoxError};
use crate::handshake;

/// The recorded round trips of one run, in nanoseconds, in order.
pub type Latencies = Vec<u64>;

/// What one run asks of a runner.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// Payload bytes per message.
    pub size: usize,
    /// Round trips done first and not recorded.
    pub warmup: usize,
    /// Round trips recorded.
    pub rounds: usize,
}

/// An echo client runner.
pub struct EchoClient {
    /// Name used in tables and `--only`.
    pub name: &'static str,
    /// An existing async library: the yardstick of the ratios.
    pub async_anchor: bool,
    /// floodgate (printed in bold).
    pub floodgate: bool,
    /// Runs it once against `url`.
    pub run: fn(&str, Plan) -> Result<Latencies, BoxError>,
}

/// Every client, in the order they run.
pub fn all() -> Vec<EchoClient> {
    // Only the floodgate rows are pushed, and only with that feature.
    #[cfg_attr(not(feature = "floodgate-client"), allow(unused_mut))]
    let mut v = vec![
        EchoClient {
            name: "tungstenite",
            async_anchor: false,
            floodgate: false,
            run: tungstenite_sync,
        },
        EchoClient {
            name: "tokio-tungstenite",
            async_anchor: true,
            floodgate: false,
            run: tokio_tungstenite,
        },
        EchoClient {
            name: "fastwebsockets",
            async_anchor: true,
            floodgate: false,
            run: fastwebsockets,
        },
        EchoClient {
            name: "sockudo-ws",
            async_anchor: true,
            floodgate: false,
            run: sockudo_ws,
        },
        EchoClient {
            name: "sockudo-ws-tuned",
            async_anchor: true,
            floodgate: false,
            run: sockudo_ws_tuned,
        },
        EchoClient {
            name: "yawc",
            async_anchor: true,
            floodgate: false,
            run: yawc,
        },
        EchoClient {
            name: "tokio-websockets",
            async_anchor: true,
            floodgate: false,
            run: tokio_websockets,
        },
    ];
    #[cfg(feature = "floodgate-client")]
    v.extend([
        EchoClient {
            name: "floodgate",
            async_anchor: false,
            floodgate: true,
            run: floodgate,
        },
        EchoClient {
            name: "floodgate-async",
            async_anchor: false,
            floodgate: true,
            run: floodgate_async,
        },
        EchoClient {
            name: "floodgate-async-buffered",
            async_anchor: false,
            floodgate: true,
            run: floodgate_async_buffered,
        },
    ]);
    v
}

/// The payload every client sends: printable ASCII (valid UTF-8 too).
pub fn payload(size: usize) -> Vec<u8> {
    (0..size).map(|i| b'a' + (i % 26) as u8).collect()
}

fn check(name: &str, got: usize, size: usize) -> Result<(), BoxError> {
    if got == size {
        Ok(())
    } else {
        Err(format!("{name}: echo of {got} bytes, sent {size}").into())
    }
}

/// Runs `warmup + rounds` round trips with `once`, recording the last
/// `rounds`.
fn measure(
    plan: Plan,
    mut once: impl FnMut() -> Result<(), BoxError>,
) -> Result<Latencies, BoxError> {
    for _ in 0..plan.warmup {
        once()?;
    }
    let mut v = Vec::with_capacity(plan.rounds);
    for _ in 0..plan.rounds {
        let t = Instant::now();
        once()?;
        v.push(t.elapsed().as_nanos() as u64);
    }
    Ok(v)
}

/// The async form of [`measure`] (a macro: async closures borrowing the
/// connection are not expressible as a plain `FnMut` here).
macro_rules! measure_async {
    ($plan:expr, $once:expr) => {{
        let plan: Plan = $plan;
        for _ in 0..plan.warmup {
            $once;
        }
        let mut v = Vec::with_capacity(plan.rounds);
        for _ in 0..plan.rounds {
            let t = Instant::now();
            $once;
            v.push(t.elapsed().as_nanos() as u64);
        }
        v
    }};
}

/// tungstenite, blocking: `client` over a `TcpStream` with `TCP_NODELAY`;
/// `send` (write and flush), then `read` until the binary echo.
pub fn tungstenite_sync(url: &str, plan: Plan) -> Result<Latencies, BoxError> {
    use tungstenite::{Bytes, Error as WsError, Message};
    let (authority, _) = handshake::split_url(url)?;
    let stream = TcpStream::connect(authority)?;
    stream.set_nodelay(true)?;
    let (mut ws, _response) = tungstenite::client(url, stream).map_err(|e| e.to_string())?;
    let data = Bytes::from(payload(plan.size));
    let lat = measure(plan, || {
        ws.send(Message::Binary(data.clone()))?;
        loop {
            if let Message::Binary(b) = ws.read()? {
                return check("tungstenite", b.len(), plan.size);
            }
        }
    })?;
    ws.close(None)?;
    loop {
        match ws.read() {
            Ok(_) => {}
            Err(WsError::ConnectionClosed | WsError::AlreadyClosed) => break,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(lat)
}

/// tokio-tungstenite: `connect_async_with_config(.., disable_nagle: true)`;
/// `SinkExt::send` (which flushes), then `StreamExt::next` until the echo.
pub fn tokio_tungstenite(url: &str, plan: Plan) -> Result<Latencies, BoxError> {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::{Bytes, Message};
    let rt = current_thread_runtime()?;
    rt.block_on(async {
        let (mut ws, _response) =
            tokio_tungstenite::connect_async_with_config(url, None, true).await?;
        let data = Bytes::from(payload(plan.size));
        let lat = measure_async!(plan, {
            ws.send(Message::Binary(data.clone())).await?;
            loop {
                match ws.next().await {
                    Some(Ok(Message::Binary(b))) => {
                        check("tokio-tungstenite", b.len(), plan.size)?;
                        break;
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(e.into()),
                    None => return Err("tokio-tungstenite: stream ended".into()),
                }
            }
        });
        ws.close(None).await?;
        while let Some(m) = ws.next().await {
            m?;
        }
        Ok(lat)
    })
}

/// fastwebsockets: the hand handshake, `TCP_NODELAY`, `write_frame` of a
/// borrowed payload (masking copies it, as it must), then `read_frame` of
/// a `FragmentCollector` until the echo.
pub fn fastwebsockets(url: &str, plan: Plan) -> Result<Latencies, BoxError> {
    use fastwebsockets::{FragmentCollector, Frame, OpCode, Payload, Role, WebSocket};
    let rt = current_thread_runtime()?;
    rt.block_on(async {
        let stream = handshake::client_connect_tokio(url)?;
        stream.set_nodelay(true)?;
        let mut ws = WebSocket::after_handshake(stream, Role::Client);
        ws.set_max_message_size(64 << 20);
        ws.set_auto_close(true);
        ws.set_auto_pong(true);
        let mut ws = FragmentCollector::new(ws);
        let data = payload(plan.size);
        let lat = measure_async!(plan, {
            ws.write_frame(Frame::binary(Payload::Borrowed(&data)))
                .await?;
            loop {
                let frame = ws.read_frame().await?;
                match frame.opcode {
                    OpCode::Binary => {
                        check("fastwebsockets", frame.payload.len(), plan.size)?;
                        break;
                    }
                    OpCode::Close => return Err("fastwebsockets: closed by the server".into()),
                    _ => {}
                }
            }
        });
        ws.write_frame(Frame::close(1000, b"")).await?;
        loop {
            match ws.read_frame().await {
                Ok(f) if f.opcode == OpCode::Close => break,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        Ok(lat)
    })
}

/// sockudo-ws with its default `Config` (heartbeat on: the clock is read
/// for every message received, see [`crate::clients::sockudo_ws`]):
/// `WebSocketClient::<Http1>::connect_to_url` (which sets `TCP_NODELAY`
/// itself), `SinkExt::send` of a `Bytes` clone (which flushes), then
/// `StreamExt::next` until the echo; `close(1000, "")`, then `next` until
/// the stream ends, as its README asks.
pub fn sockudo_ws(url: &str, plan: Plan) -> Result<Latencies, BoxError> {
    sockudo_ws_with(url, plan, "sockudo-ws", sockudo_ws::Config::default())
}

/// sockudo-ws with its heartbeat and idle timeout off
/// ([`crate::clients::sockudo_tuned_config`]); otherwise as [`sockudo_ws()`].
pub fn sockudo_ws_tuned(url: &str, plan: Plan) -> Result<Latencies, BoxError> {
    let config = crate::clients::sockudo_tuned_config();
    sockudo_ws_with(url, plan, "sockudo-ws-tuned", config)
}

fn sockudo_ws_with(
    url: &str,
    plan: Plan,
    name: &'static str,
    config: sockudo_ws::Config,
) -> Result<Latencies, BoxError> {
    use futures_util::{SinkExt, StreamExt};
    use sockudo_ws::client::WebSocketClient;
    use sockudo_ws::{Http1, Message};
    use tungstenite::Bytes; // the `bytes` crate's, which sockudo-ws takes too
    sockudo_ws::init_clock();
    let rt = current_thread_runtime()?;
    rt.block_on(async {
        let client = WebSocketClient::<Http1>::new(config);
        let (mut ws, _handshake) = client.connect_to_url(url, None).await?;
        let data = Bytes::from(payload(plan.size));
        let lat = measure_async!(plan, {
            ws.send(Message::Binary(data.clone())).await?;
            loop {
                match ws.next().await {
                    Some(Ok(Message::Binary(b))) => {
                        check(name, b.len(), plan.size)?;
                        break;
                    }
                    Some(Ok(Message::Close(_))) => {
                        return Err(format!("{name}: closed by the server").into())
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(e.into()),
                    None => return Err(format!("{name}: stream ended").into()),
                }
            }
        });
        ws.close(1000, "").await?;
        while let Some(m) = ws.next().await {
            m?;
        }
        Ok(lat)
    })
}

/// yawc with its default `Options` plus `with_no_delay()` (its
/// `TCP_NODELAY` switch, off by default): `WebSocket::connect`,
/// `SinkExt::send` of a `Frame::binary` of a `Bytes` clone (which
/// flushes), then `next_frame` until the echo; a close frame, then
/// `next_frame` until the server's close or the end.
pub fn yawc(url: &str, plan: Plan) -> Result<Latencies, BoxError> {
    use futures_util::SinkExt;
    use tungstenite::Bytes; // the `bytes` crate's, which yawc takes too
    use yawc::close::CloseCode;
    use yawc::{Frame, OpCode, Options, WebSocket};
    let rt = current_thread_runtime()?;
    rt.block_on(async {
        let mut ws = WebSocket::connect(url.parse()?)
            .with_options(Options::default().with_no_delay())
            .await?;
        let data = Bytes::from(payload(plan.size));
        let lat = measure_async!(plan, {
            ws.send(Frame::binary(data.clone())).await?;
            loop {
                let frame = ws.next_frame().await?;
                match frame.opcode() {
                    OpCode::Binary => {
                        check("yawc", frame.payload().len(), plan.size)?;
                        break;
                    }
                    OpCode::Close => return Err("yawc: closed by the server".into()),
                    _ => {}
                }
            }
        });
        ws.send(Frame::close(CloseCode::Normal, b"")).await?;
        loop {
            match ws.next_frame().await {
                Ok(f) if f.opcode() == OpCode::Close => break,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        Ok(lat)
    })
}

/// tokio-websockets with its defaults: `ClientBuilder::new().uri(url)?
/// .connect()`, then `TCP_NODELAY` on the socket it exposes (`get_ref()`,
/// `MaybeTlsStream::Plain`; the builder has no such option);
/// `SinkExt::send` of a `Bytes` clone (which flushes; masking copies it
/// into a new buffer), then `StreamExt::next` until the echo; `close()`,
/// which waits for the server's close and the end.
pub fn tokio_websockets(url: &str, plan: Plan) -> Result<Latencies, BoxError> {
    use futures_util::{SinkExt, StreamExt};
    use tokio_websockets::{ClientBuilder, MaybeTlsStream, Message, Payload};
    use tungstenite::Bytes; // the `bytes` crate's, which tokio-websockets takes too
    let rt = current_thread_runtime()?;
    rt.block_on(async {
        let (mut ws, _response) = ClientBuilder::new().uri(url)?.connect().await?;
        match ws.get_ref() {
            MaybeTlsStream::Plain(tcp) => tcp.set_nodelay(true)?,
            #[allow(unreachable_patterns)] // only with a TLS feature
            _ => return Err("tokio-websockets: not a plain TCP stream".into()),
        }
        let data = Bytes::from(payload(plan.size));
        let lat = measure_async!(plan, {
            ws.send(Message::binary(Payload::from(data.clone())))
                .await?;
            loop {
                match ws.next().await {
                    Some(Ok(m)) if m.is_binary() => {
                        check("tokio-websockets", m.as_payload().len(), plan.size)?;
                        break;
                    }
                    Some(Ok(m)) if m.is_close() => {
                        return Err("tokio-websockets: closed by the server".into())
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(e.into()),
                    None => return Err("tokio-websockets: stream ended".into()),
                }
            }
        });
        ws.close().await?;
        Ok(lat)
    })
}

/// floodgate, blocking: `connect` (`TCP_NODELAY` is its default),
/// `send_binary`, `recv`.
#[cfg(feature = "floodgate-client")]
pub fn floodgate(url: &str, plan: Plan) -> Result<Latencies, BoxError> {
    let mut ws = floodgate::connect(url)?;
    let data = payload(plan.size);
    let lat = measure(plan, || {
        ws.send_binary(&data)?;
        let m = ws.recv()?;
        check("floodgate", m.len(), plan.size)
    })?;
    ws.close(1000, "")?;
    Ok(lat)
}

/// floodgate's async client: `floodgate::tokio::connect`, `send_binary`,
/// `recv`.
#[cfg(feature = "floodgate-client")]
pub fn floodgate_async(url: &str, plan: Plan) -> Result<Latencies, BoxError> {
    let rt = current_thread_runtime()?;
    rt.block_on(async {
        let mut ws = floodgate::tokio::connect(url).await?;
        let data = payload(plan.size);
        let lat = measure_async!(plan, {
            ws.send_binary(&data).await?;
            let m = ws.recv().await?;
            check("floodgate-async", m.len(), plan.size)?;
        });
        ws.close(1000, "").await?;
        Ok(lat)
    })
}

/// floodgate's async buffered connection (`connect_buffered_async`, the
/// default buffer under `Overflow::Block`): its reader task decodes into
/// the buffer, the round trip is `send_binary` then `recv` from the buffer.
#[cfg(feature = "floodgate-client")]
pub fn floodgate_async_buffered(url: &str, plan: Plan) -> Result<Latencies, BoxError> {
    use floodgate::buffer::{BufferConfig, Overflow};
    let rt = current_thread_runtime()?;
    rt.block_on(async {
        let mut ws = floodgate::Client::builder()
            .buffer(BufferConfig::new().overflow(Overflow::Block))
            .connect_buffered_async(url)
            .await?;
        let data = payload(plan.size);
        let lat = measure_async!(plan, {
            ws.send_binary(&data).await?;
            let m = ws.recv().await?;
            check("floodgate-async-buffered", m.len(), plan.size)?;
        });
        ws.close(1000, "").await?;
        Ok(lat)
    })
}
