//! [`FloodServer`]: a fast local server that sends numbered messages on
//! several channels to one client as fast as it can (or spread over a
//! given time), pings it on a schedule, and reports what it saw: how many
//! messages it wrote, each ping's round trip, the longest single socket
//! write (which shows that TCP flow control pushed back on it), and the
//! close code the client sent.
//!
//! The server's send buffer is kept small (and tests ask the client for a
//! small receive buffer) so that kernel buffers cannot hide backpressure:
//! once the client stops reading, the server's writes block within a few
//! kilobytes.
//!
//! Message `i` (0-based, the *global* sequence number) goes to channel
//! `i % channels` as that channel's message number `i / channels`, as text:
//! `"{channel} {seq_in_channel} {global} "` padded with dots to `size`
//! bytes. [`Numbered::parse`] reads it back.

use bytes::BytesMut;
use floodgate::buffer::{Key, Stats};
use floodgate::{Error, ErrorKind};
use floodgate_proto::frame::encode_frame;
use floodgate_proto::handshake::{parse_request_head, server_accept_response};
use floodgate_proto::{Config, Message, OpCode, Protocol, Role};
use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// The longest any one step of the server may wait for the client (the
/// handshake, a write, a read, the close): a broken client fails the test
/// instead of hanging it.
pub const FLOOD_TIMEOUT: Duration = Duration::from_secs(30);

/// What the server sends.
#[derive(Debug, Clone)]
pub struct FloodConfig {
    /// Data messages to send.
    pub messages: u64,
    /// Channels they are spread over (round robin).
    pub channels: u64,
    /// Length of each message in bytes (at least the numbers need).
    pub size: usize,
    /// Send a ping this often while sending (the first one this long after
    /// the first message).
    pub ping_every: Option<Duration>,
    /// Spread the messages evenly over this time instead of sending them as
    /// fast as the socket takes them.
    pub spread_over: Option<Duration>,
    /// The server socket's `SO_SNDBUF`.
    pub send_buffer: usize,
    /// Read when each pong arrives and recorded with it (for example a
    /// count of messages the test's consumer has taken).
    pub progress: Option<Arc<AtomicU64>>,
}

impl Default for FloodConfig {
    fn default() -> Self {
        FloodConfig {
            messages: 1000,
            channels: 4,
            size: 64,
            ping_every: None,
            spread_over: None,
            send_buffer: 4096,
            progress: None,
        }
    }
}

/// One ping the server sent.
#[derive(Debug, Clone)]
pub struct PingRecord {
    /// Just before the ping was written.
    pub sent_at: Instant,
    /// Data messages fully written before it.
    pub after_messages: u64,
    /// Its pong, if one came.
    pub pong: Option<PongRecord>,
}

/// The pong that answered a ping.
#[derive(Debug, Clone, Copy)]
pub struct PongRecord {
    /// When the server decoded it.
    pub at: Instant,
    /// [`FloodConfig::progress`] at that moment (0 without one).
    pub progress: u64,
}

impl PingRecord {
    /// From writing the ping to decoding its pong, if answered.
    pub fn round_trip(&self) -> Option<Duration> {
        self.pong
            .map(|p| p.at.saturating_duration_since(self.sent_at))
    }
}

/// What the server saw, once it is done.
#[derive(Debug)]
pub struct FloodReport {
    /// Data messages fully written.
    pub sent: u64,
    /// Every ping sent, in order.
    pub pings: Vec<PingRecord>,
    /// Pongs whose payload matched no ping sent.
    pub unexpected_pongs: u64,
    /// The longest any single write (of one message or ping) took.
    pub longest_write: Duration,
    /// The close frame the client sent: `None` if none came, `Some(None)`
    /// for a close without code.
    pub client_close: Option<Option<u16>>,
    /// Whether the client closed first (before the server sent its close).
    pub client_closed_first: bool,
    /// The first write error, if writing failed (the client went away).
    pub write_error: Option<io::ErrorKind>,
    /// A protocol error in what the client sent, if any.
    pub protocol_error: Option<String>,
}

impl FloodReport {
    /// Pings that got their pong.
    pub fn pings_answered(&self) -> usize {
        self.pings.iter().filter(|p| p.pong.is_some()).count()
    }

    /// The longest ping round trip among answered pings.
    pub fn worst_round_trip(&self) -> Option<Duration> {
        self.pings.iter().filter_map(PingRecord::round_trip).max()
    }
}

/// The numbers carried by one flood message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Numbered {
    pub channel: u64,
    pub seq: u64,
    pub global: u64,
}

impl Numbered {
    /// Reads the numbers back from a flood message's text.
    pub fn parse(text: &str) -> Numbered {
        let mut parts = text.split(' ');
        let mut next = |what: &str| -> u64 {
            parts
                .next()
                .and_then(|p| p.parse().ok())
                .unwrap_or_else(|| panic!("no {what} in flood message {text:?}"))
        };
        Numbered {
            channel: next("channel"),
            seq: next("channel sequence number"),
            global: next("global sequence number"),
        }
    }

    /// The numbers of a delivered message.
    pub fn of(message: &Message) -> Numbered {
        Numbered::parse(message.as_text().expect("flood messages are text"))
    }
}

/// How many of `messages` go to `channel` among `channels`.
pub fn messages_in_channel(messages: u64, channels: u64, channel: u64) -> u64 {
    messages / channels + u64::from(channel < messages % channels)
}

/// The text of message `global`.
pub fn flood_text(global: u64, channels: u64, size: usize) -> String {
    let mut text = format!("{} {} {} ", global % channels, global / channels, global);
    if text.len() < size {
        text.extend(std::iter::repeat_n('.', size - text.len()));
    }
    text
}

/// A flood server running on a thread for one client.
pub struct FloodServer {
    addr: SocketAddr,
    report: mpsc::Receiver<thread::Result<FloodReport>>,
}

impl FloodServer {
    /// Binds 127.0.0.1:0 and waits on a thread for one client.
    pub fn start(config: FloodConfig) -> FloodServer {
        assert!(config.channels > 0, "at least one channel");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let addr = listener.local_addr().expect("local address");
        let (tx, report) = mpsc::channel();
        thread::Builder::new()
            .name("flood-server".into())
            .spawn(move || {
                let result = std::panic::catch_unwind(move || run(listener, config));
                let _ = tx.send(result);
            })
            .expect("spawn the flood server");
        FloodServer { addr, report }
    }

    /// `ws://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("ws://{}/", self.addr)
    }

    /// Waits for the server to end (it ends once the connection has) and
    /// returns its report; re-raises a panic of the server thread.
    pub fn finish(self) -> FloodReport {
        match self.report.recv_timeout(FLOOD_TIMEOUT * 3) {
            Ok(Ok(report)) => report,
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            Err(_) => panic!("the flood server did not finish"),
        }
    }
}

/// What the reading thread shares with the writing one.
#[derive(Default)]
struct Seen {
    pings: Mutex<Vec<PingRecord>>,
    unexpected_pongs: AtomicU64,
    client_close: Mutex<Option<Option<u16>>>,
    client_closed: AtomicBool,
    protocol_error: Mutex<Option<String>>,
}

fn run(listener: TcpListener, config: FloodConfig) -> FloodReport {
    let (mut stream, _) = listener.accept().expect("accept the client");
    drop(listener);
    socket2::SockRef::from(&stream)
        .set_send_buffer_size(config.send_buffer)
        .expect("set SO_SNDBUF");
    stream.set_nodelay(true).expect("set TCP_NODELAY");
    stream.set_read_timeout(Some(FLOOD_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(FLOOD_TIMEOUT)).unwrap();
    let leftover = handshake(&mut stream);

    let seen = Arc::new(Seen::default());
    let reader = {
        let stream = stream.try_clone().expect("clone the socket");
        let seen = seen.clone();
        let progress = config.progress.clone();
        thread::Builder::new()
            .name("flood-server-reader".into())
            .spawn(move || read_client(stream, leftover, &seen, progress.as_deref()))
            .expect("spawn the flood server's reader")
    };

    let mut writer = Writer {
        stream: &stream,
        frame: Vec::with_capacity(config.size + 16),
        longest: Duration::ZERO,
        error: None,
    };
    let sent = flood(&mut writer, &config, &seen);

    let client_closed_first = seen.client_closed.load(Ordering::SeqCst);
    if writer.error.is_none() {
        // Answer the client's close with its code, or begin the close.
        let code = match *seen.client_close.lock().unwrap() {
            Some(Some(code)) => code,
            _ => 1000,
        };
        writer.frame.clear();
        encode_frame(
            &mut writer.frame,
            true,
            0,
            OpCode::Close,
            None,
            &code.to_be_bytes(),
        );
        let frame = std::mem::take(&mut writer.frame);
        let _ = (&stream).write_all(&frame);
    }
    // The client answers our close, and ends TCP once we have (RFC 6455
    // §7.1.1: the server ends TCP first).
    let deadline = Instant::now() + FLOOD_TIMEOUT;
    while !seen.client_closed.load(Ordering::SeqCst)
        && !reader.is_finished()
        && Instant::now() < deadline
    {
        thread::sleep(Duration::from_millis(2));
    }
    let _ = stream.shutdown(Shutdown::Write);
    reader.join().expect("the flood server's reader panicked");

    let pings = std::mem::take(&mut *seen.pings.lock().unwrap());
    let client_close = *seen.client_close.lock().unwrap();
    let protocol_error = seen.protocol_error.lock().unwrap().take();
    FloodReport {
        sent,
        pings,
        unexpected_pongs: seen.unexpected_pongs.load(Ordering::SeqCst),
        longest_write: writer.longest,
        client_close,
        client_closed_first,
        write_error: writer.error,
        protocol_error,
    }
}

/// Reads the upgrade request and accepts it; returns bytes read past it.
fn handshake(stream: &mut TcpStream) -> BytesMut {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some((head, len)) =
            parse_request_head(&buf, 64 << 10).expect("a valid upgrade request")
        {
            let key = head.websocket_key().expect("a WebSocket upgrade");
            stream
                .write_all(&server_accept_response(key, None))
                .expect("answer the upgrade");
            return BytesMut::from(&buf[len..]);
        }
        let n = stream.read(&mut chunk).expect("read the upgrade request");
        assert!(n > 0, "the client left during the handshake");
        buf.extend_from_slice(&chunk[..n]);
    }
}

struct Writer<'a> {
    stream: &'a TcpStream,
    frame: Vec<u8>,
    longest: Duration,
    error: Option<io::ErrorKind>,
}

impl Writer<'_> {
    /// Writes one frame, timing the write; false once writing failed.
    fn send(&mut self, opcode: OpCode, payload: &[u8]) -> bool {
        if self.error.is_some() {
            return false;
        }
        self.frame.clear();
        encode_frame(&mut self.frame, true, 0, opcode, None, payload);
        let started = Instant::now();
        let result = (&*self.stream).write_all(&self.frame);
        self.longest = self.longest.max(started.elapsed());
        match result {
            Ok(()) => true,
            Err(e) => {
                self.error = Some(e.kind());
                false
            }
        }
    }
}

/// Sends the messages and the pings; returns how many messages were
/// written. Stops early when the client closes or goes away.
fn flood(writer: &mut Writer<'_>, config: &FloodConfig, seen: &Seen) -> u64 {
    let start = Instant::now();
    let mut next_ping = config.ping_every.map(|every| start + every);
    let mut sent = 0u64;
    while sent < config.messages {
        if seen.client_closed.load(Ordering::SeqCst) {
            break;
        }
        let now = Instant::now();
        if let (Some(at), Some(every)) = (next_ping, config.ping_every) {
            if now >= at {
                let id = {
                    let mut pings = seen.pings.lock().unwrap();
                    pings.push(PingRecord {
                        sent_at: Instant::now(),
                        after_messages: sent,
                        pong: None,
                    });
                    pings.len() - 1
                };
                if !writer.send(OpCode::Ping, id.to_string().as_bytes()) {
                    break;
                }
                next_ping = Some((at + every).max(Instant::now()));
            }
        }
        if let Some(spread) = config.spread_over {
            let due = start + spread.mul_f64(sent as f64 / config.messages as f64);
            if now < due {
                let until = next_ping.map_or(due, |p| p.min(due));
                thread::sleep(until.saturating_duration_since(Instant::now()));
                continue;
            }
        }
        let text = flood_text(sent, config.channels, config.size);
        if !writer.send(OpCode::Text, text.as_bytes()) {
            break;
        }
        sent += 1;
    }
    sent
}

/// Reads what the client sends until it ends TCP: pongs (matched to pings
/// by their payload) and its close frame.
fn read_client(
    mut stream: TcpStream,
    mut buf: BytesMut,
    seen: &Seen,
    progress: Option<&AtomicU64>,
) {
    let mut proto = Protocol::new(Role::Server, Config::default());
    let mut chunk = [0u8; 16 << 10];
    loop {
        match proto.read_message(&mut buf) {
            Ok(Some(Message::Pong(payload))) => {
                let at = Instant::now();
                let progress = progress.map_or(0, |p| p.load(Ordering::SeqCst));
                let id = std::str::from_utf8(&payload)
                    .ok()
                    .and_then(|s| s.parse::<usize>().ok());
                let mut pings = seen.pings.lock().unwrap();
                match id.and_then(|id| pings.get_mut(id)) {
                    Some(ping) if ping.pong.is_none() => {
                        ping.pong = Some(PongRecord { at, progress })
                    }
                    _ => {
                        seen.unexpected_pongs.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
            Ok(Some(Message::Close(frame))) => {
                *seen.client_close.lock().unwrap() = Some(frame.map(|f| f.code.0));
                seen.client_closed.store(true, Ordering::SeqCst);
            }
            Ok(Some(_)) => {}
            Ok(None) => {
                let n = match stream.read(&mut chunk) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => 0,
                };
                if n == 0 {
                    return;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            Err(e) => {
                *seen.protocol_error.lock().unwrap() = Some(e.to_string());
                return;
            }
        }
        // This instance only decodes; the writer sends the answers.
        let queued = proto.output().len();
        proto.consume_output(queued);
    }
}

/// The largest message the clients of [`flood_client`] accept: small, so
/// that a small byte limit is a valid buffer configuration.
pub const MAX_MESSAGE: usize = 1024;

/// A client for flood tests: a small kernel receive buffer (so that the
/// backlog shows in the floodgate buffer and in the server's writes, not in
/// the kernel) and [`MAX_MESSAGE`] as the message limit.
pub fn flood_client(buffer: floodgate::buffer::BufferConfig) -> floodgate::ClientBuilder {
    floodgate::Client::builder()
        .recv_buffer_size(4096)
        .max_frame_size(Some(MAX_MESSAGE))
        .max_message_size(Some(MAX_MESSAGE))
        .buffer(buffer)
}

// ----- Assertions shared by the overflow-policy tests (blocking and async) --

/// The server closed normally after its last message and the client saw it.
pub fn assert_server_closed(end: &Error, report: &FloodReport, config: &FloodConfig) {
    match end.kind() {
        ErrorKind::ConnectionClosed(Some(frame)) => assert_eq!(frame.code.0, 1000),
        other => panic!("expected the server's close (1000), got {other:?}"),
    }
    assert_eq!(report.sent, config.messages, "the server sent everything");
    assert!(!report.client_closed_first);
    assert_eq!(report.client_close, Some(Some(1000)), "the client answered");
    assert_eq!(report.write_error, None);
}

pub fn assert_adds_up(s: &Stats) {
    assert_eq!(
        s.received,
        s.delivered + s.buffered + s.dropped_oldest + s.dropped_newest + s.conflated + s.filtered,
        "the counters do not add up: {s:?}"
    );
}

pub fn assert_within_limits(s: &Stats, max_messages: usize, max_bytes: usize) {
    assert!(
        s.high_water_messages <= max_messages as u64,
        "the buffer held {} messages, over its limit of {max_messages}",
        s.high_water_messages
    );
    assert!(
        s.high_water_bytes <= max_bytes as u64,
        "the buffer held {} bytes, over its limit of {max_bytes}",
        s.high_water_bytes
    );
}

/// Global sequence numbers strictly increase (order kept, no duplicate).
pub fn assert_in_global_order(got: &[Numbered]) {
    for pair in got.windows(2) {
        assert!(
            pair[0].global < pair[1].global,
            "message {} delivered after {}",
            pair[1].global,
            pair[0].global
        );
    }
}

/// Within each channel, sequence numbers strictly increase.
pub fn assert_in_order_per_channel(got: &[Numbered]) {
    let mut last: BTreeMap<u64, u64> = BTreeMap::new();
    for n in got {
        if let Some(&prev) = last.get(&n.channel) {
            assert!(
                n.seq > prev,
                "channel {}: message {} delivered after {prev}",
                n.channel,
                n.seq
            );
        }
        last.insert(n.channel, n.seq);
    }
}

pub fn globals(got: &[Numbered]) -> Vec<u64> {
    got.iter().map(|n| n.global).collect()
}

pub fn channel_key(message: &floodgate::Message) -> Option<Key> {
    let text = message.as_text()?;
    let channel: u64 = text.split(' ').next()?.parse().ok()?;
    Some(Key::from(channel))
}
