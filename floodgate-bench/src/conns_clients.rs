//! The clients of the `conns` benchmark: many connections on one async
//! runtime, each keeping a window of echoes in flight.
//!
//! A run opens C connections (not timed), then gives each its own task on
//! one tokio runtime and times them together: each task sends W messages,
//! then for every echo it receives (checked: length, sequence number,
//! content) sends one more, until it has sent and received M. The run's
//! time is from just before the tasks are spawned to the last task's last
//! echo; the connections are then closed (not timed). This is the shape of
//! yawc's and web-socket-benchmark's echo runs, and the one a
//! market-data or RPC client with many sessions has.
//!
//! Why a trait ([`EchoConn`]) and one generic loop ([`drive`]) rather than
//! a hand-written loop per library, as `clients` and `echo_clients` have:
//! the windowed loop, the payloads, the checks and the clock reads must be
//! the same for every client or the comparison measures the harness. Each
//! library only supplies connect, send one binary message, receive the
//! next data message, and close, each through its own documented client
//! API; what a library does per call (flush, copy, allocate) is its own
//! cost.
//!
//! The payload of message `n` is [`payload`]: `n` as 8 little-endian bytes,
//! then a fixed printable pattern. An echo must be exactly that, for the
//! next `n` the connection expects, so a library (or server) that loses,
//! repeats, reorders, merges, truncates or corrupts a message fails the
//! run at that message.
//!
//! Round-trip times are recorded cheaply: one `Instant` per send in a ring
//! of W slots per connection (at most W are in flight, echoes come back in
//! order), one per echo, and the difference stored as nanoseconds in a
//! vector reserved before the timer starts. That is two clock reads per
//! message (some 20 to 50 ns on a TSC clock) for every client alike;
//! `--no-latency` in the binary drops them to show what they cost.
//!
//! On the current-thread runtime, the CPU time of the one thread that runs
//! every task is read before and after the timed part
//! (`CLOCK_THREAD_CPUTIME_ID`: user and system, so the kernel's work for
//! the client's sends and reads is in it). On a loopback machine shared
//! with the server and other work, it moves much less from run to run
//! than the wall-clock rate does.
//!
//! Every connection sets `TCP_NODELAY` (floodgate's default; set through
//! each library's option or on the socket for the others): a window of
//! small writes otherwise waits on Nagle's algorithm and delayed ACKs,
//! which would measure the kernel's timers, not the library.

use std::future::Future;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;

use crate::clients::{current_thread_runtime, BoxError};
use crate::handshake;
use crate::server::{frame_header, parse_header};

/// What one run asks of a client.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// Connections, each its own task.
    pub connections: usize,
    /// Messages in flight per connection.
    pub window: usize,
    /// Payload bytes per message, at least [`SEQ_BYTES`].
    pub size: usize,
    /// Messages each connection sends (and receives back).
    pub messages: u64,
    /// `None`: a current-thread runtime; `Some(n)`: multi-thread, n workers.
    pub threads: Option<usize>,
    /// Record round-trip times.
    pub latency: bool,
}

impl Plan {
    /// Echoes the whole run must receive.
    pub fn total(&self) -> u64 {
        self.connections as u64 * self.messages
    }
}

/// What one run measured.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// Echoes received and checked, over all connections.
    pub messages: u64,
    /// From just before the tasks were spawned to the last echo.
    pub elapsed: Duration,
    /// Median round trip, if recorded.
    pub p50: Option<Duration>,
    /// 99th percentile round trip, if recorded.
    pub p99: Option<Duration>,
    /// CPU time (user and system) of the client's thread over the timed
    /// part, on the current-thread runtime (`None` on the multi-thread one,
    /// whose workers are not told apart from the server's threads).
    pub cpu: Option<Duration>,
}

/// The part a client plays in the table: the same roles as in `stream`
/// (here `Subject` is floodgate's async client, `Variant` its buffered
/// connection).
pub use crate::clients::Role;

/// A client of the benchmark.
pub struct ConnsClient {
    /// Name used in tables and `--only`.
    pub name: &'static str,
    /// Its part in the comparison.
    pub role: Role,
    /// Runs it once against `url`.
    pub run: fn(&str, &Plan) -> Result<Outcome, BoxError>,
}

/// Every client, in table order.
pub fn all() -> Vec<ConnsClient> {
    #[cfg_attr(not(feature = "floodgate-client"), allow(unused_mut))]
    let mut v = vec![
        ConnsClient {
            name: "raw-tcp",
            role: Role::Ceiling,
            run: run::<RawTcp>,
        },
        ConnsClient {
            name: "tokio-tungstenite",
            role: Role::Anchor,
            run: run::<TokioTungstenite>,
        },
        ConnsClient {
            name: "fastwebsockets",
            role: Role::Anchor,
            run: run::<FastWebSockets>,
        },
        ConnsClient {
            name: "tokio-websockets",
            role: Role::Anchor,
            run: run::<TokioWebSockets>,
        },
        ConnsClient {
            name: "yawc",
            role: Role::Anchor,
            run: run::<Yawc<false>>,
        },
        ConnsClient {
            name: "yawc (tuned buffers)",
            role: Role::Anchor,
            run: run::<Yawc<true>>,
        },
        ConnsClient {
            name: "sockudo-ws",
            role: Role::Anchor,
            run: run::<Sockudo<true>>,
        },
        ConnsClient {
            name: "sockudo-ws (no heartbeat)",
            role: Role::Anchor,
            run: run::<Sockudo<false>>,
        },
    ];
    #[cfg(feature = "floodgate-client")]
    v.extend([
        ConnsClient {
            name: "floodgate-async",
            role: Role::Subject,
            run: run::<FloodgateAsync>,
        },
        ConnsClient {
            name: "floodgate-async-buffered",
            role: Role::Variant,
            run: run::<FloodgateAsyncBuffered>,
        },
    ]);
    v
}

/// How each client connects, sends and receives, for the output.
pub const CLIENT_NOTES: &[(&str, &str)] = &[
    (
        "raw-tcp",
        "the ceiling: the hand handshake, then a tokio `TcpStream`; each message is one \
         hand-masked frame written with `write_all`, echoes are read into a 64 KiB buffer and \
         their headers walked; no library",
    ),
    (
        "tokio-tungstenite",
        "`connect_async_with_config(.., disable_nagle: true)`; `SinkExt::send` (flushes) of a \
         `Message::Binary`, `StreamExt::next`",
    ),
    (
        "fastwebsockets",
        "the hand handshake (no hyper), `WebSocket::after_handshake` in a `FragmentCollector`; \
         `write_frame` of a borrowed payload, `read_frame`",
    ),
    (
        "tokio-websockets",
        "`ClientBuilder::uri(..).connect_on(stream)` over a `TcpStream` with `TCP_NODELAY` \
         (`connect` does not set it); `SinkExt::send` (flushes), `StreamExt::next`",
    ),
    (
        "yawc",
        "`WebSocket::connect(url).with_options(Options::default().with_no_delay())`; \
         `SinkExt::send` (flushes) of a `Frame::binary`, `next_frame`; with its default 8 KiB \
         read buffer, whose room shrinks as each frame keeps a share of it, it made some ten \
         `recvfrom` calls per echo here (`perf trace`)",
    ),
    (
        "yawc (tuned buffers)",
        "the same with the buffers of yawc's own benchmark (its \"yawc tuned\"): \
         `with_read_buffer_capacity(128 KiB)`, `with_backpressure_boundary(64 KiB)`",
    ),
    (
        "sockudo-ws",
        "`WebSocketClient::<Http1>::new(Config::default()).connect(stream, ..)` over a \
         `TcpStream` with `TCP_NODELAY`; `SinkExt::send` (flushes), `StreamExt::next`; its \
         default heartbeat (ping after 30 s idle, 120 s idle timeout) reads a clock per \
         message received",
    ),
    (
        "sockudo-ws (no heartbeat)",
        "the same with `auto_ping(false)` and `idle_timeout(0)`: no heartbeat, no clock read \
         per message",
    ),
    (
        "floodgate-async",
        "`floodgate::tokio::connect` (`TCP_NODELAY` is its default); `send_binary`, `recv`",
    ),
    (
        "floodgate-async-buffered",
        "`Client::builder().buffer(BufferConfig::new()).connect_buffered_async`: a reader task \
         per connection fills its buffer (`Overflow::Block`); `send_binary`, `recv` from the \
         buffer",
    ),
];

/// Bytes of the sequence number at the start of every payload.
pub const SEQ_BYTES: usize = 8;

/// How long a run may take before it fails (a lost message would
/// otherwise leave its connection waiting forever).
pub const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// The payload of message `seq` of `size` bytes: `seq` as 8 little-endian
/// bytes, then printable ASCII.
pub fn payload(seq: u64, size: usize) -> Vec<u8> {
    let mut p = pattern(size);
    p[..SEQ_BYTES].copy_from_slice(&seq.to_le_bytes());
    p
}

fn pattern(size: usize) -> Vec<u8> {
    (0..size).map(|i| b'a' + (i % 26) as u8).collect()
}

/// Checks that `echo` is the payload of message `seq` of `size` bytes
/// ([`payload`]); `body` is the pattern after the sequence number.
fn check(seq: u64, size: usize, body: &[u8], echo: &[u8]) -> Result<(), String> {
    if echo.len() != size {
        return Err(format!(
            "echo of message {seq} has {} bytes, sent {size}",
            echo.len()
        ));
    }
    let got = u64::from_le_bytes(echo[..SEQ_BYTES].try_into().expect("8 bytes"));
    if got != seq {
        return Err(format!(
            "expected the echo of message {seq}, got one numbered {got}"
        ));
    }
    if &echo[SEQ_BYTES..] != body {
        let at = echo[SEQ_BYTES..]
            .iter()
            .zip(body)
            .position(|(a, b)| a != b)
            .unwrap_or(0);
        return Err(format!(
            "echo of message {seq} differs from what was sent at byte {}",
            SEQ_BYTES + at
        ));
    }
    Ok(())
}

/// One connection's side of the loop: what to send next, what to expect,
/// and the round trips seen.
pub struct Window {
    window: usize,
    messages: u64,
    sent: u64,
    received: u64,
    /// The next payload, its sequence number rewritten before each send.
    out: Vec<u8>,
    /// Send instants, slot `seq % window`.
    sent_at: Vec<Instant>,
    /// Round trips in nanoseconds, if recorded.
    latencies: Option<Vec<u32>>,
    /// When the last echo came.
    finished: Option<Instant>,
}

impl Window {
    /// A window for one connection of `plan`.
    pub fn new(plan: &Plan) -> Window {
        assert!(plan.size >= SEQ_BYTES, "payloads carry an 8-byte number");
        Window {
            window: plan.window.max(1),
            messages: plan.messages,
            sent: 0,
            received: 0,
            out: pattern(plan.size),
            sent_at: vec![Instant::now(); plan.window.max(1)],
            latencies: plan
                .latency
                .then(|| Vec::with_capacity(plan.messages as usize)),
            finished: None,
        }
    }

    /// The next payload to send, if the window has room and messages are
    /// left; counts it as sent.
    pub fn next_payload(&mut self) -> Option<&[u8]> {
        if self.sent == self.messages || self.sent - self.received == self.window as u64 {
            return None;
        }
        let seq = self.sent;
        self.sent += 1;
        self.out[..SEQ_BYTES].copy_from_slice(&seq.to_le_bytes());
        if self.latencies.is_some() {
            self.sent_at[(seq % self.window as u64) as usize] = Instant::now();
        }
        Some(&self.out)
    }

    /// Checks `echo` against the oldest message in flight and takes it off
    /// the window.
    ///
    /// # Errors
    ///
    /// If nothing is in flight, or `echo` is not that message's payload.
    pub fn received(&mut self, echo: &[u8]) -> Result<(), String> {
        let seq = self.received;
        if seq == self.sent {
            return Err(format!(
                "an echo arrived with nothing in flight ({seq} received)"
            ));
        }
        check(seq, self.out.len(), &self.out[SEQ_BYTES..], echo)?;
        self.received += 1;
        if let Some(lat) = &mut self.latencies {
            let now = Instant::now();
            let at = self.sent_at[(seq % self.window as u64) as usize];
            lat.push(now.duration_since(at).as_nanos().min(u32::MAX as u128) as u32);
            if self.received == self.messages {
                self.finished = Some(now);
            }
        } else if self.received == self.messages {
            self.finished = Some(Instant::now());
        }
        Ok(())
    }

    /// Whether every message has been sent and echoed.
    pub fn done(&self) -> bool {
        self.received == self.messages
    }

    /// Echoes received so far.
    pub fn received_count(&self) -> u64 {
        self.received
    }
}

/// One connection of one library, as the loop uses it.
///
/// `connect` and `close` are outside the timer and run one connection at a
/// time on the runtime's main task; `send` and `recv` run in the
/// connection's own task, hence `Send` (for the multi-thread runtime).
pub trait EchoConn: Sized + Send + 'static {
    /// Anything the library wants done once before the runtime starts.
    fn prepare() {}

    /// Connects and upgrades, through the library's own client API.
    fn connect(url: &str) -> impl Future<Output = Result<Self, BoxError>>;

    /// Sends one binary message (and flushes it, if the library buffers).
    fn send<'a>(
        &'a mut self,
        payload: &'a [u8],
    ) -> impl Future<Output = Result<(), BoxError>> + Send + 'a;

    /// Receives the next data message; control frames are the library's
    /// business.
    fn recv(&mut self) -> impl Future<Output = Result<&[u8], BoxError>> + Send + '_;

    /// Closes the connection (close handshake, then the end of TCP).
    fn close(self) -> impl Future<Output = Result<(), BoxError>>;
}

/// The windowed loop of one connection: fill the window, then one send per
/// echo received until every message has come back.
pub async fn drive<C: EchoConn>(mut conn: C, mut w: Window) -> Result<(C, Window), BoxError> {
    while let Some(p) = w.next_payload() {
        conn.send(p).await?;
    }
    while !w.done() {
        let echo = conn.recv().await?;
        w.received(echo)?;
        if let Some(p) = w.next_payload() {
            conn.send(p).await?;
        }
    }
    Ok((conn, w))
}

fn runtime(threads: Option<usize>) -> Result<tokio::runtime::Runtime, BoxError> {
    match threads {
        None => current_thread_runtime(),
        Some(n) => Ok(tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n.max(1))
            .enable_all()
            .build()?),
    }
}

/// Runs `plan` once with client `C` against the echo server at `url`.
///
/// # Errors
///
/// A connect, send, receive or close error of any connection, a wrong
/// echo (with the connection and message it came on), or a run longer than
/// [`RUN_TIMEOUT`].
pub fn run<C: EchoConn>(url: &str, plan: &Plan) -> Result<Outcome, BoxError> {
    C::prepare();
    let rt = runtime(plan.threads)?;
    let plan = *plan;
    rt.block_on(async move {
        let mut conns = Vec::with_capacity(plan.connections);
        for i in 0..plan.connections {
            let c = C::connect(url)
                .await
                .map_err(|e| format!("connection {i}: connect: {e}"))?;
            conns.push((c, Window::new(&plan)));
        }
        let cpu_start = thread_cpu();
        let start = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for (i, (c, w)) in conns.into_iter().enumerate() {
            tasks.spawn(async move {
                drive(c, w)
                    .await
                    .map_err(|e| -> BoxError { format!("connection {i}: {e}").into() })
            });
        }
        let mut done = Vec::with_capacity(plan.connections);
        let joined = tokio::time::timeout(RUN_TIMEOUT, async {
            while let Some(r) = tasks.join_next().await {
                done.push(r??);
            }
            Ok::<_, BoxError>(())
        })
        .await;
        match joined {
            Ok(r) => r?,
            Err(_) => {
                let received: u64 = done.iter().map(|(_, w)| w.received_count()).sum();
                return Err(format!(
                    "timed out after {} s: {} of {} connections finished ({received} echoes \
                     on those)",
                    RUN_TIMEOUT.as_secs(),
                    done.len(),
                    plan.connections
                )
                .into());
            }
        }
        // The current-thread runtime runs every task on this thread.
        let cpu = match (plan.threads, cpu_start, thread_cpu()) {
            (None, Some(a), Some(b)) => Some(b.saturating_sub(a)),
            _ => None,
        };
        let end = done
            .iter()
            .filter_map(|(_, w)| w.finished)
            .max()
            .unwrap_or(start);
        let elapsed = end.saturating_duration_since(start);
        let messages = done.iter().map(|(_, w)| w.received_count()).sum();
        let mut lat: Vec<u32> = Vec::new();
        if plan.latency {
            lat.reserve(plan.total() as usize);
        }
        let mut closing = Vec::with_capacity(done.len());
        for (c, w) in done {
            lat.extend(w.latencies.iter().flatten());
            closing.push(c);
        }
        for (i, c) in closing.into_iter().enumerate() {
            c.close()
                .await
                .map_err(|e| format!("connection {i}: close: {e}"))?;
        }
        let (p50, p99) = match percentiles(&mut lat) {
            Some((a, b)) => (Some(a), Some(b)),
            None => (None, None),
        };
        Ok(Outcome {
            messages,
            elapsed,
            p50,
            p99,
            cpu,
        })
    })
}

/// CPU time of the calling thread so far (`CLOCK_THREAD_CPUTIME_ID`:
/// user and system, to the nanosecond).
fn thread_cpu() -> Option<Duration> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    (rc == 0).then(|| Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
}

/// Nearest-rank p50 and p99 of round trips in nanoseconds (reordered).
pub fn percentiles(ns: &mut [u32]) -> Option<(Duration, Duration)> {
    if ns.is_empty() {
        return None;
    }
    let mut at = |q: f64| {
        let rank = ((q * ns.len() as f64).ceil() as usize).clamp(1, ns.len()) - 1;
        Duration::from_nanos(*ns.select_nth_unstable(rank).1 as u64)
    };
    Some((at(0.50), at(0.99)))
}

fn nodelay(s: &TcpStream) -> Result<(), BoxError> {
    s.set_nodelay(true)?;
    Ok(())
}

/// A tokio `TcpStream` with `TCP_NODELAY`, connected to the URL's
/// authority; also returns the authority and the path.
async fn dial(url: &str) -> Result<(TcpStream, &str, &str), BoxError> {
    let (authority, path) = handshake::split_url(url)?;
    let s = TcpStream::connect(authority).await?;
    nodelay(&s)?;
    Ok((s, authority, path))
}

/// The hand handshake (which takes no byte past the response head), then
/// the socket as a tokio `TcpStream` with `TCP_NODELAY`.
fn hand_upgraded(url: &str) -> Result<TcpStream, BoxError> {
    let s = handshake::client_connect_tokio(url)?;
    s.set_nodelay(true)?;
    Ok(s)
}

/// Size of the ceiling's read buffer (it grows for a larger frame).
const RAW_READ: usize = 64 * 1024;

/// The ceiling: frames made and masked by hand, one `write_all` each;
/// reads into one buffer, walking frame headers.
pub struct RawTcp {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Unparsed bytes are `buf[pos..end]`.
    pos: usize,
    end: usize,
    out: Vec<u8>,
    /// State of the mask-key generator (xorshift).
    key: u32,
}

impl RawTcp {
    /// A complete data frame at `buf[pos..]`: its payload's range.
    fn parse(&mut self) -> Result<Option<std::ops::Range<usize>>, BoxError> {
        loop {
            let Some((opcode, hlen, plen)) = parse_header(&self.buf[self.pos..self.end]) else {
                return Ok(None);
            };
            if self.buf[self.pos + 1] & 0x80 != 0 {
                return Err("raw-tcp: masked frame from the server".into());
            }
            if self.end - self.pos < hlen + plen {
                let need = hlen + plen;
                if need > self.buf.len() {
                    self.buf.resize(need, 0);
                }
                return Ok(None);
            }
            let start = self.pos + hlen;
            self.pos = start + plen;
            match opcode {
                0x2 => return Ok(Some(start..start + plen)),
                0x8 => return Err("raw-tcp: closed by the server".into()),
                _ => {} // the echo server sends nothing else
            }
        }
    }
}

impl EchoConn for RawTcp {
    async fn connect(url: &str) -> Result<Self, BoxError> {
        Ok(RawTcp {
            stream: hand_upgraded(url)?,
            buf: vec![0; RAW_READ],
            pos: 0,
            end: 0,
            out: Vec::new(),
            key: 0x9E37_79B9,
        })
    }

    async fn send(&mut self, payload: &[u8]) -> Result<(), BoxError> {
        use tokio::io::AsyncWriteExt;
        self.key ^= self.key << 13;
        self.key ^= self.key >> 17;
        self.key ^= self.key << 5;
        let mask = self.key.to_ne_bytes();
        self.out.clear();
        frame_header(0x2, payload.len(), &mut self.out);
        self.out[1] |= 0x80;
        self.out.extend_from_slice(&mask);
        let h = self.out.len();
        self.out.extend_from_slice(payload);
        let wide = u64::from_ne_bytes([
            mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3],
        ]);
        let mut chunks = self.out[h..].chunks_exact_mut(8);
        for c in &mut chunks {
            let v = u64::from_ne_bytes(c.try_into().expect("8 bytes")) ^ wide;
            c.copy_from_slice(&v.to_ne_bytes());
        }
        for (b, m) in chunks.into_remainder().iter_mut().zip(mask) {
            *b ^= m;
        }
        self.stream.write_all(&self.out).await?;
        Ok(())
    }

    async fn recv(&mut self) -> Result<&[u8], BoxError> {
        use tokio::io::AsyncReadExt;
        loop {
            if let Some(r) = self.parse()? {
                return Ok(&self.buf[r]);
            }
            if self.pos > 0 {
                self.buf.copy_within(self.pos..self.end, 0);
                self.end -= self.pos;
                self.pos = 0;
            }
            let n = self.stream.read(&mut self.buf[self.end..]).await?;
            if n == 0 {
                return Err("raw-tcp: EOF".into());
            }
            self.end += n;
        }
    }

    async fn close(mut self) -> Result<(), BoxError> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        // Masked close, code 1000; then read to the server's EOF.
        let m = [0x12, 0x34, 0x56, 0x78];
        self.stream
            .write_all(&[0x88, 0x82, m[0], m[1], m[2], m[3], 0x03 ^ m[0], 0xE8 ^ m[1]])
            .await?;
        while self.stream.read(&mut self.buf).await? > 0 {}
        Ok(())
    }
}

/// tokio-tungstenite.
pub struct TokioTungstenite {
    ws: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>,
    last: tungstenite::Bytes,
}

impl EchoConn for TokioTungstenite {
    async fn connect(url: &str) -> Result<Self, BoxError> {
        let (ws, _response) = tokio_tungstenite::connect_async_with_config(url, None, true).await?;
        Ok(TokioTungstenite {
            ws,
            last: tungstenite::Bytes::new(),
        })
    }

    async fn send(&mut self, payload: &[u8]) -> Result<(), BoxError> {
        use futures_util::SinkExt;
        use tokio_tungstenite::tungstenite::{Bytes, Message};
        self.ws
            .send(Message::Binary(Bytes::copy_from_slice(payload)))
            .await?;
        Ok(())
    }

    async fn recv(&mut self) -> Result<&[u8], BoxError> {
        use futures_util::StreamExt;
        use tokio_tungstenite::tungstenite::Message;
        loop {
            match self.ws.next().await {
                Some(Ok(Message::Binary(b))) => {
                    self.last = b;
                    return Ok(&self.last);
                }
                Some(Ok(Message::Text(t))) => {
                    self.last = t.into();
                    return Ok(&self.last);
                }
                Some(Ok(Message::Close(_))) => return Err("closed by the server".into()),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
                None => return Err("stream ended".into()),
            }
        }
    }

    async fn close(mut self) -> Result<(), BoxError> {
        use futures_util::StreamExt;
        self.ws.close(None).await?;
        while let Some(m) = self.ws.next().await {
            m?;
        }
        Ok(())
    }
}

/// fastwebsockets.
pub struct FastWebSockets {
    ws: fastwebsockets::FragmentCollector<TcpStream>,
    last: Vec<u8>,
}

impl EchoConn for FastWebSockets {
    async fn connect(url: &str) -> Result<Self, BoxError> {
        use fastwebsockets::{FragmentCollector, Role, WebSocket};
        let mut ws = WebSocket::after_handshake(hand_upgraded(url)?, Role::Client);
        ws.set_max_message_size(64 << 20);
        ws.set_auto_close(true);
        ws.set_auto_pong(true);
        Ok(FastWebSockets {
            ws: FragmentCollector::new(ws),
            last: Vec::new(),
        })
    }

    async fn send(&mut self, payload: &[u8]) -> Result<(), BoxError> {
        use fastwebsockets::{Frame, Payload};
        self.ws
            .write_frame(Frame::binary(Payload::Borrowed(payload)))
            .await?;
        Ok(())
    }

    async fn recv(&mut self) -> Result<&[u8], BoxError> {
        use fastwebsockets::OpCode;
        loop {
            let frame = self.ws.read_frame().await?;
            match frame.opcode {
                OpCode::Binary | OpCode::Text => {
                    // The payload is owned by the frame; keeping it keeps
                    // the bytes without a copy.
                    self.last = frame.payload.into();
                    return Ok(&self.last);
                }
                OpCode::Close => return Err("closed by the server".into()),
                _ => {}
            }
        }
    }

    async fn close(mut self) -> Result<(), BoxError> {
        use fastwebsockets::{Frame, OpCode};
        self.ws.write_frame(Frame::close(1000, b"")).await?;
        loop {
            match self.ws.read_frame().await {
                Ok(f) if f.opcode == OpCode::Close => break,
                Ok(_) => {}
                // After its close, fastwebsockets reports the end as an
                // error.
                Err(_) => break,
            }
        }
        Ok(())
    }
}

/// tokio-websockets.
pub struct TokioWebSockets {
    ws: tokio_websockets::WebSocketStream<TcpStream>,
    last: Option<tokio_websockets::Message>,
}

impl EchoConn for TokioWebSockets {
    async fn connect(url: &str) -> Result<Self, BoxError> {
        let (stream, _, _) = dial(url).await?;
        let (ws, _response) = tokio_websockets::ClientBuilder::new()
            .uri(url)?
            .connect_on(stream)
            .await?;
        Ok(TokioWebSockets { ws, last: None })
    }

    async fn send(&mut self, payload: &[u8]) -> Result<(), BoxError> {
        use futures_util::SinkExt;
        self.ws
            .send(tokio_websockets::Message::binary(
                tungstenite::Bytes::copy_from_slice(payload),
            ))
            .await?;
        Ok(())
    }

    async fn recv(&mut self) -> Result<&[u8], BoxError> {
        use futures_util::StreamExt;
        loop {
            match self.ws.next().await {
                Some(Ok(m)) if m.is_binary() || m.is_text() => {
                    return Ok(&self.last.insert(m).as_payload()[..]);
                }
                Some(Ok(m)) if m.is_close() => return Err("closed by the server".into()),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
                None => return Err("stream ended".into()),
            }
        }
    }

    async fn close(mut self) -> Result<(), BoxError> {
        use futures_util::{SinkExt, StreamExt};
        self.ws.close().await?;
        while let Some(m) = self.ws.next().await {
            m?;
        }
        Ok(())
    }
}

/// yawc; `TUNED` gives it the buffers of its own benchmark's "yawc
/// tuned" (a 128 KiB read buffer, a 64 KiB write backpressure boundary).
pub struct Yawc<const TUNED: bool> {
    ws: yawc::WebSocket<yawc::MaybeTlsStream<TcpStream>>,
    last: Option<yawc::Frame>,
}

impl<const TUNED: bool> EchoConn for Yawc<TUNED> {
    async fn connect(url: &str) -> Result<Self, BoxError> {
        let mut options = yawc::Options::default().with_no_delay();
        if TUNED {
            options = options
                .with_read_buffer_capacity(128 * 1024)
                .with_backpressure_boundary(64 * 1024);
        }
        let ws = yawc::WebSocket::connect(url.parse()?)
            .with_options(options)
            .await?;
        Ok(Yawc { ws, last: None })
    }

    async fn send(&mut self, payload: &[u8]) -> Result<(), BoxError> {
        use futures_util::SinkExt;
        self.ws
            .send(yawc::Frame::binary(tungstenite::Bytes::copy_from_slice(
                payload,
            )))
            .await?;
        Ok(())
    }

    async fn recv(&mut self) -> Result<&[u8], BoxError> {
        use yawc::OpCode;
        loop {
            let frame = self.ws.next_frame().await?;
            match frame.opcode() {
                OpCode::Binary | OpCode::Text => {
                    return Ok(self.last.insert(frame).payload());
                }
                OpCode::Close => return Err("closed by the server".into()),
                _ => {}
            }
        }
    }

    async fn close(mut self) -> Result<(), BoxError> {
        use futures_util::SinkExt;
        use yawc::{close::CloseCode, OpCode};
        self.ws
            .send(yawc::Frame::close(CloseCode::Normal, b""))
            .await?;
        loop {
            match self.ws.next_frame().await {
                Ok(f) if f.opcode() == OpCode::Close => break,
                Ok(_) => {}
                Err(e) if e.is_closed() => break,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

/// sockudo-ws; `HEARTBEAT` false turns its heartbeat off.
pub struct Sockudo<const HEARTBEAT: bool> {
    ws: sockudo_ws::WebSocketStream<sockudo_ws::Stream<sockudo_ws::Http1>>,
    last: Option<sockudo_ws::Message>,
}

impl<const HEARTBEAT: bool> EchoConn for Sockudo<HEARTBEAT> {
    fn prepare() {
        // Its docs: calibrate the clock before the runtime starts (the first
        // read may block for up to 200 ms).
        sockudo_ws::init_clock();
    }

    async fn connect(url: &str) -> Result<Self, BoxError> {
        use sockudo_ws::{client::WebSocketClient, Config, Http1};
        let (stream, authority, path) = dial(url).await?;
        let config = if HEARTBEAT {
            Config::default()
        } else {
            Config::builder().auto_ping(false).idle_timeout(0).build()
        };
        let (ws, _handshake) = WebSocketClient::<Http1>::new(config)
            .connect(stream, authority, path, None)
            .await?;
        Ok(Sockudo { ws, last: None })
    }

    async fn send(&mut self, payload: &[u8]) -> Result<(), BoxError> {
        use futures_util::SinkExt;
        self.ws
            .send(sockudo_ws::Message::Binary(
                tungstenite::Bytes::copy_from_slice(payload),
            ))
            .await?;
        Ok(())
    }

    async fn recv(&mut self) -> Result<&[u8], BoxError> {
        use futures_util::StreamExt;
        use sockudo_ws::Message;
        loop {
            match self.ws.next().await {
                Some(Ok(m @ (Message::Binary(_) | Message::Text(_)))) => {
                    return Ok(self.last.insert(m).as_bytes());
                }
                Some(Ok(Message::Close(_))) => return Err("closed by the server".into()),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
                None => return Err("stream ended".into()),
            }
        }
    }

    async fn close(mut self) -> Result<(), BoxError> {
        use futures_util::StreamExt;
        self.ws.close(1000, "").await?;
        while let Some(m) = self.ws.next().await {
            match m {
                Ok(_) => {}
                Err(sockudo_ws::Error::ConnectionClosed) => break,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

/// floodgate's async client.
#[cfg(feature = "floodgate-client")]
pub struct FloodgateAsync {
    ws: floodgate::tokio::WebSocket,
    last: Option<floodgate::Message>,
}

#[cfg(feature = "floodgate-client")]
impl EchoConn for FloodgateAsync {
    async fn connect(url: &str) -> Result<Self, BoxError> {
        Ok(FloodgateAsync {
            ws: floodgate::tokio::connect(url).await?,
            last: None,
        })
    }

    async fn send(&mut self, payload: &[u8]) -> Result<(), BoxError> {
        self.ws.send_binary(payload).await?;
        Ok(())
    }

    async fn recv(&mut self) -> Result<&[u8], BoxError> {
        let m = self.ws.recv().await?;
        Ok(self.last.insert(m).as_bytes())
    }

    async fn close(mut self) -> Result<(), BoxError> {
        self.ws.close(1000, "").await?;
        Ok(())
    }
}

/// floodgate's async buffered connection.
#[cfg(feature = "floodgate-client")]
pub struct FloodgateAsyncBuffered {
    ws: floodgate::tokio::BufferedWebSocket,
    last: Option<floodgate::buffer::Delivered>,
}

#[cfg(feature = "floodgate-client")]
impl EchoConn for FloodgateAsyncBuffered {
    async fn connect(url: &str) -> Result<Self, BoxError> {
        use floodgate::buffer::{BufferConfig, Overflow};
        let ws = floodgate::Client::builder()
            .buffer(BufferConfig::new().overflow(Overflow::Block))
            .connect_buffered_async(url)
            .await?;
        Ok(FloodgateAsyncBuffered { ws, last: None })
    }

    async fn send(&mut self, payload: &[u8]) -> Result<(), BoxError> {
        self.ws.send_binary(payload).await?;
        Ok(())
    }

    async fn recv(&mut self) -> Result<&[u8], BoxError> {
        let m = self.ws.recv().await?;
        Ok(self.last.insert(m).as_bytes())
    }

    async fn close(mut self) -> Result<(), BoxError> {
        self.ws.close(1000, "").await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(messages: u64, window: usize) -> Plan {
        Plan {
            connections: 1,
            window,
            size: 32,
            messages,
            threads: None,
            latency: true,
        }
    }

    #[test]
    fn the_window_holds_at_most_w_in_flight_and_ends_after_m() {
        let mut w = Window::new(&plan(5, 2));
        assert_eq!(w.next_payload().unwrap(), payload(0, 32));
        assert_eq!(w.next_payload().unwrap(), payload(1, 32));
        assert!(
            w.next_payload().is_none(),
            "two in flight fill a window of 2"
        );
        for seq in 0..5 {
            w.received(&payload(seq, 32)).unwrap();
            let next = w.next_payload().map(<[u8]>::to_vec);
            assert_eq!(next, (seq + 2 < 5).then(|| payload(seq + 2, 32)));
        }
        assert!(w.done());
        assert_eq!(w.latencies.as_ref().map(Vec::len), Some(5));
    }

    #[test]
    fn a_wrong_echo_is_caught() {
        let mut w = Window::new(&plan(4, 4));
        while w.next_payload().is_some() {}
        let mut corrupt = payload(0, 32);
        corrupt[20] ^= 1;
        assert_eq!(
            w.received(&corrupt).unwrap_err(),
            "echo of message 0 differs from what was sent at byte 20"
        );
        assert_eq!(
            w.received(&payload(1, 32)).unwrap_err(),
            "expected the echo of message 0, got one numbered 1"
        );
        assert_eq!(
            w.received(&payload(0, 32)[..31]).unwrap_err(),
            "echo of message 0 has 31 bytes, sent 32"
        );
        w.received(&payload(0, 32)).unwrap();
        assert_eq!(w.received_count(), 1);
    }

    #[test]
    fn an_echo_with_nothing_in_flight_is_caught() {
        let mut w = Window::new(&plan(1, 1));
        assert!(w.received(&payload(0, 32)).is_err());
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut v: Vec<u32> = (1..=100).rev().collect();
        let (p50, p99) = percentiles(&mut v).unwrap();
        assert_eq!((p50.as_nanos(), p99.as_nanos()), (50, 99));
        assert!(percentiles(&mut []).is_none());
    }
}
