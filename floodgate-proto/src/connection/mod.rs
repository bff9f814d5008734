//! [`Connection`]: one WebSocket connection's whole life, without I/O and
//! without a clock of its own.
//!
//! [`Protocol`] knows frames: it decodes, checks, answers pings and echoes
//! a close. A `Connection` wraps it with everything that takes *time*: how
//! long a close may take, when a client stops waiting for the server to
//! end TCP, how long a failed connection lingers before its transport is
//! dropped, the keepalive's pings and their pong deadline (pongs matched by
//! payload, which also gives each ping's round trip, [`take_ping_rtt`]),
//! an idle limit and a limit on a write that does not finish.
//! As in quinn-proto, it is told the time ([`handle_timeout`]) and says
//! when it next needs to be woken ([`poll_timeout`]); the I/O layer is a
//! loop that decides nothing:
//!
//! 1. read from the transport, then [`read`] (or [`receive_eof`]);
//! 2. deliver the messages it hands out;
//! 3. write [`output`] (reporting long writes with [`write_started`] and
//!    [`write_finished`]);
//! 4. once [`is_finished`], drop the transport; otherwise wait for input
//!    until [`poll_timeout`] and call [`handle_timeout`].
//!
//! [`end`] says how the connection ends as soon as that is decided, which
//! is often before the transport may be dropped: after a protocol error
//! the caller learns of it at once while the close frame goes out and the
//! peer gets [`Timeouts::fail_grace`] to answer.
//!
//! # One state per connection
//!
//! A front end that reads on one thread (or task) and sends from others
//! shares one `Connection` behind a lock: the reader holds it while it
//! decodes one read, a sender while it encodes one message. Neither holds
//! it while it waits on the transport: a sender takes the encoded bytes out
//! ([`take_output`]) and writes them under a second lock that only orders
//! the writes, and reports the write with [`write_started`] /
//! [`write_finished`]. So a writer stuck on a full socket never keeps the
//! reader from its deadlines, and the reader, which owns the timers, ends
//! a connection whose peer stopped reading ([`Timeouts::send`],
//! [`Timeouts::ping_timeout`]).
//!
//! # Example: a client and a server in memory, with a virtual clock
//!
//! ```
//! use bytes::BytesMut;
//! use floodgate_proto::connection::{Connection, End, Timeouts};
//! use floodgate_proto::{Config, Message, Role};
//! use std::ops::ControlFlow;
//! use std::time::{Duration, Instant};
//!
//! let t0 = Instant::now();
//! let timeouts = Timeouts::default()
//!     .ping_interval(Some(Duration::from_secs(1)))
//!     .ping_timeout(Some(Duration::from_secs(2)));
//! let mut client = Connection::new(Role::Client, Config::default(), timeouts, t0);
//! assert_eq!(client.poll_timeout(), Some(t0 + Duration::from_secs(1)));
//!
//! // The ping is due: it is queued; the server stays silent.
//! client.handle_timeout(t0 + Duration::from_secs(1));
//! assert!(client.has_output());
//! client.handle_timeout(t0 + Duration::from_secs(3));
//! assert_eq!(client.end(), Some(&End::NoPong { timeout: Duration::from_secs(2) }));
//! assert!(client.is_finished(), "drop the transport");
//!
//! // A server's message is decoded as by Protocol.
//! let mut client = Connection::new(Role::Client, Config::default(), Timeouts::default(), t0);
//! let mut wire = BytesMut::from(&b"\x81\x02hi"[..]);
//! let mut got = Vec::new();
//! client
//!     .read(&mut wire, t0, |m| {
//!         got.push(m);
//!         ControlFlow::<()>::Continue(())
//!     })
//!     .unwrap();
//! assert_eq!(got, [Message::text("hi")]);
//! ```
//!
//! [`handle_timeout`]: Connection::handle_timeout
//! [`poll_timeout`]: Connection::poll_timeout
//! [`read`]: Connection::read
//! [`receive_eof`]: Connection::receive_eof
//! [`output`]: Connection::output
//! [`take_output`]: Connection::take_output
//! [`write_started`]: Connection::write_started
//! [`write_finished`]: Connection::write_finished
//! [`is_finished`]: Connection::is_finished
//! [`end`]: Connection::end
//! [`take_ping_rtt`]: Connection::take_ping_rtt

mod keepalive;
mod timeouts;

pub use timeouts::{Timeouts, DEFAULT_CLOSE_TIMEOUT, DEFAULT_FAIL_GRACE};

/// Data messages from this many bytes are best sent in pieces (see
/// [`Connection::write_piece`]): below it, one write of the whole frame
/// costs less than several.
pub const WRITE_IN_PIECES_FROM: usize = 128 * 1024;

/// The piece a large message is sent in: masked into the output, then
/// written, while it is still in the L1 cache (48 KiB per core on the
/// machines measured), instead of masked whole and read back from further
/// away by the kernel's copy. In the `send` benchmark 1 MiB messages sent
/// in 32 KiB pieces went about 1.5x as fast as masked whole; 64 KiB pieces
/// were no faster.
pub const WRITE_PIECE: usize = 32 * 1024;

use crate::close::CloseFrame;
use crate::deflate::PerMessageDeflate;
use crate::error::{ProtocolError, UsageError};
use crate::frame::{Frame, OpCode};
use crate::message::Message;
use crate::protocol::{Config, Protocol, ReadHook, Role, State};
use bytes::BytesMut;
use keepalive::Keepalive;
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

/// Which side began the close handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// This side sent the first close frame.
    Local,
    /// The peer did.
    Peer,
}

/// How a connection ended (or is ending), as soon as it is decided.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum End {
    /// The close handshake completed: both close frames were exchanged.
    /// `frame` is the peer's (`None`: it carried no code).
    Closed {
        /// The peer's close frame.
        frame: Option<CloseFrame>,
        /// Who closed first.
        initiated_by: Side,
    },
    /// The transport ended without a close handshake (code 1006).
    Abnormal,
    /// The peer broke the protocol; a close frame with the error's code
    /// was queued.
    Failed(ProtocolError),
    /// This side failed the connection
    /// ([`Connection::abort`]) with this close frame (for instance 1008
    /// when a consumer fell behind, 1011 when a callback panicked).
    Aborted(CloseFrame),
    /// This side's close was not answered within [`Timeouts::close`].
    CloseTimeout {
        /// The timeout that passed.
        timeout: Duration,
    },
    /// No pong answered a keepalive ping within [`Timeouts::ping_timeout`].
    NoPong {
        /// The timeout that passed.
        timeout: Duration,
    },
    /// Nothing was received for [`Timeouts::idle`].
    Idle {
        /// The timeout that passed.
        timeout: Duration,
    },
    /// One write did not finish within [`Timeouts::send`]: the peer has
    /// stopped reading.
    SendStalled {
        /// The timeout that passed.
        timeout: Duration,
    },
    /// This side dropped the connection without a close handshake
    /// ([`Connection::shutdown`]).
    Shutdown,
}

impl End {
    /// Whether this is the end of a completed close handshake.
    pub fn is_clean(&self) -> bool {
        matches!(self, End::Closed { .. })
    }
}

/// Where the connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Open,
    /// This side sent its close; the peer's is awaited until `deadline`.
    Closing {
        deadline: Instant,
    },
    /// The close frames were exchanged (or the connection failed and the
    /// peer answered); a client waits for the server's end of the
    /// transport until `deadline`.
    AwaitingEof {
        deadline: Instant,
    },
    /// Failed: the close frame is queued, frames are skipped until the
    /// peer's close, the transport is dropped at `deadline` at the latest.
    Failing {
        deadline: Instant,
    },
    /// Drop the transport.
    Finished,
}

/// The part of a [`Connection`] that is its lifecycle rather than its
/// codec: kept apart from the [`Protocol`] so that the decoder can hand it
/// a pong, the peer's close or an error while it decodes (it is the
/// decoder's [`ReadHook`]).
#[derive(Debug)]
struct Lifecycle {
    role: Role,
    /// The time of the bytes [`Connection::read_message`] is decoding.
    decoding_at: Instant,
    timeouts: Timeouts,
    phase: Phase,
    end: Option<End>,
    keepalive: Keepalive,
    /// The round trip of the keepalive ping the last pong answered, until
    /// taken ([`Connection::take_ping_rtt`]); every pong sets it, so an
    /// unsolicited one leaves `None` rather than an older figure.
    ping_rtt: Option<Duration>,
}

impl Lifecycle {
    /// A control message was decoded: a pong is matched against the
    /// keepalive's pings (and measured), the peer's close starts the end.
    fn observe(&mut self, message: &Message, now: Instant) {
        match message {
            Message::Pong(payload) => self.on_pong(payload, now),
            Message::Close(frame) => self.on_peer_close(frame.clone(), now),
            _ => {}
        }
    }

    fn on_pong(&mut self, payload: &[u8], now: Instant) {
        self.ping_rtt = self.keepalive.pong(payload, now);
    }

    /// The peer's close arrived (and was answered by the protocol).
    fn on_peer_close(&mut self, frame: Option<CloseFrame>, now: Instant) {
        self.keepalive.stop();
        let (initiated_by, deadline) = match self.phase {
            Phase::Closing { deadline } => (Side::Local, deadline),
            _ => (Side::Peer, now + self.timeouts.close),
        };
        tracing::debug!(?frame, ?initiated_by, "close handshake complete");
        self.decide(End::Closed {
            frame,
            initiated_by,
        });
        self.after_close_exchange(deadline, now);
    }

    /// Both close frames are out: a client waits for the server to end
    /// the transport (so that the server holds TIME_WAIT, RFC 6455
    /// §7.1.1); a server ends it now.
    fn after_close_exchange(&mut self, deadline: Instant, now: Instant) {
        self.phase = match self.role {
            Role::Client if now < deadline => Phase::AwaitingEof { deadline },
            _ => Phase::Finished,
        };
    }

    /// The peer broke the protocol (the protocol queued the close).
    fn on_protocol_error(
        &mut self,
        err: ProtocolError,
        buf: &mut BytesMut,
        now: Instant,
    ) -> ProtocolError {
        tracing::debug!(error = %err, code = %err.close_code(), "failing the WebSocket connection");
        // What follows a bad frame cannot be trusted to be framed (skipping
        // it could mean skipping a 1 GiB announced payload, or meeting the
        // same bad header again): the peer's close is looked for only in
        // what it sends from now on.
        buf.clear();
        self.start_failing(End::Failed(err.clone()), now);
        err
    }

    fn start_failing(&mut self, end: End, now: Instant) {
        self.keepalive.stop();
        self.decide(end);
        self.phase = Phase::Failing {
            deadline: now + self.timeouts.fail_grace,
        };
    }

    /// Decides the end if nothing did before.
    fn decide(&mut self, end: End) {
        if self.end.is_none() {
            self.end = Some(end);
        }
    }

    fn finish(&mut self, end: End) {
        self.decide(end);
        self.keepalive.stop();
        self.phase = Phase::Finished;
    }
}

/// What [`Connection::read_message`] gives the decoder to call on a
/// control message or an error: the lifecycle itself, at the time it was
/// given (`decoding_at`), so that the call passes two pointers and builds
/// nothing (a hook built per call was 2% of a 16-byte message's cost).
impl ReadHook for Lifecycle {
    fn control(&mut self, message: &Message) {
        self.observe(message, self.decoding_at);
    }

    fn failed(&mut self, err: &ProtocolError, buf: &mut BytesMut) {
        self.on_protocol_error(err.clone(), buf, self.decoding_at);
    }
}

/// One WebSocket connection: the [`Protocol`] plus its lifecycle and
/// timers. See the [module docs](self).
#[derive(Debug)]
pub struct Connection {
    proto: Protocol,
    life: Lifecycle,
    /// When bytes last arrived (idle deadline).
    last_received: Instant,
    /// Reading paused by the application since then (its buffer is full).
    paused_since: Option<Instant>,
    /// A write to the transport in progress since then.
    writing_since: Option<Instant>,
}

impl Connection {
    /// A connection whose opening handshake is done, at `now`.
    pub fn new(role: Role, config: Config, timeouts: Timeouts, now: Instant) -> Connection {
        Connection::with_protocol(Protocol::new(role, config), timeouts, now)
    }

    /// A connection over a [`Protocol`] already set up (deflate, seeded
    /// masks for tests).
    pub fn with_protocol(proto: Protocol, timeouts: Timeouts, now: Instant) -> Connection {
        let keepalive = Keepalive::new(
            timeouts.ping_interval,
            timeouts.ping_timeout,
            timeouts.ping_payload.clone(),
            now,
        );
        let role = proto.role();
        Connection {
            proto,
            life: Lifecycle {
                role,
                decoding_at: now,
                timeouts,
                phase: Phase::Open,
                end: None,
                keepalive,
                ping_rtt: None,
            },
            last_received: now,
            paused_since: None,
            writing_since: None,
        }
    }

    /// The frame codec underneath, for inspection.
    pub fn protocol(&self) -> &Protocol {
        &self.proto
    }

    /// The deadlines in force.
    pub fn timeouts(&self) -> &Timeouts {
        &self.life.timeouts
    }

    /// This side's role.
    pub fn role(&self) -> Role {
        self.proto.role()
    }

    /// Turns permessage-deflate on (see [`Protocol::set_deflate`]).
    pub fn set_deflate(&mut self, deflate: Option<PerMessageDeflate>) {
        self.proto.set_deflate(deflate);
    }

    /// The negotiated permessage-deflate parameters, if it is on.
    pub fn deflate(&self) -> Option<&PerMessageDeflate> {
        self.proto.deflate()
    }

    /// The protocol state (open, closing, closed).
    pub fn state(&self) -> State {
        if self.life.phase == Phase::Finished {
            State::Closed
        } else {
            self.proto.state()
        }
    }

    /// Whether data may still be sent: open, no close sent.
    pub fn can_send(&self) -> bool {
        self.life.phase == Phase::Open && !self.proto.close_sent()
    }

    /// How the connection ends, once that is decided; it does not change
    /// after.
    pub fn end(&self) -> Option<&End> {
        self.life.end.as_ref()
    }

    /// Whether the lifecycle is over: the I/O layer drops (shuts down) the
    /// transport now. [`end`](Self::end) says why.
    pub fn is_finished(&self) -> bool {
        self.life.phase == Phase::Finished
    }

    /// Whether frames read now are skipped unread (the connection failed,
    /// or waits only for the end of the transport).
    pub fn is_discarding(&self) -> bool {
        matches!(
            self.life.phase,
            Phase::Failing { .. } | Phase::AwaitingEof { .. } | Phase::Finished
        )
    }

    /// How many bytes the read buffer must hold for the next frame.
    pub fn bytes_needed(&self) -> usize {
        self.proto.bytes_needed()
    }

    /// Whether a message begun with [`read_frame`](Self::read_frame) is
    /// open (see [`Protocol::raw_message_open`]).
    pub fn raw_message_open(&self) -> bool {
        self.proto.raw_message_open()
    }

    // ----- time ------------------------------------------------------------

    /// When [`handle_timeout`](Self::handle_timeout) must next be called;
    /// `None`: only input can change anything.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let write = self
            .writing_since
            .zip(self.life.timeouts.send)
            .map(|(since, limit)| since + limit);
        let phase = match self.life.phase {
            Phase::Finished => return None,
            Phase::Closing { deadline }
            | Phase::AwaitingEof { deadline }
            | Phase::Failing { deadline } => Some(deadline),
            Phase::Open => {
                let watched = if self.paused_since.is_some() {
                    // Pong and idle deadlines wait while reading is paused.
                    None
                } else {
                    let idle = self.life.timeouts.idle.map(|t| self.last_received + t);
                    earliest(idle, self.life.keepalive.pong_deadline())
                };
                earliest(watched, self.life.keepalive.next_ping())
            }
        };
        earliest(phase, write)
    }

    /// Runs every deadline that has passed by `now`: queues a due ping,
    /// ends a connection whose pong, close, idle or write deadline passed,
    /// finishes one whose linger is over. Calling it early is harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.life.phase == Phase::Finished {
            return;
        }
        if let (Some(since), Some(limit)) = (self.writing_since, self.life.timeouts.send) {
            if now >= since + limit {
                tracing::debug!(
                    ?limit,
                    "a write did not finish in time: the peer stopped reading"
                );
                return self.life.finish(End::SendStalled { timeout: limit });
            }
        }
        match self.life.phase {
            Phase::Finished => {}
            Phase::Closing { deadline } => {
                if now >= deadline {
                    let timeout = self.life.timeouts.close;
                    tracing::debug!(?timeout, "no close frame in time");
                    self.life.finish(End::CloseTimeout { timeout });
                }
            }
            Phase::AwaitingEof { deadline } | Phase::Failing { deadline } => {
                if now >= deadline {
                    // `end` was decided when this phase began.
                    self.life.phase = Phase::Finished;
                }
            }
            Phase::Open => self.open_timers(now),
        }
    }

    fn open_timers(&mut self, now: Instant) {
        if self.paused_since.is_none() {
            if let Some(idle) = self.life.timeouts.idle {
                if now >= self.last_received + idle {
                    tracing::debug!(?idle, "nothing received in time");
                    return self.life.finish(End::Idle { timeout: idle });
                }
            }
            if self
                .life
                .keepalive
                .pong_deadline()
                .is_some_and(|d| now >= d)
            {
                let timeout = self.life.timeouts.ping_timeout.unwrap_or_default();
                tracing::debug!(?timeout, "no pong in time: the connection looks dead");
                return self.life.finish(End::NoPong { timeout });
            }
        }
        if let Some(payload) = self.life.keepalive.ping_due(now) {
            if self.proto.send_ping(&payload).is_err() {
                // Only a close already sent refuses a ping.
                self.life.keepalive.stop();
            }
        }
    }

    /// Changes the keepalive at `now`: pings every `interval` (the first
    /// one `interval` from now), each awaited for `timeout`, with
    /// `payload` (`None`: a counter). Pings outstanding are forgotten.
    /// Ignored once the connection is closing.
    pub fn set_keepalive(
        &mut self,
        interval: Option<Duration>,
        timeout: Option<Duration>,
        payload: Option<bytes::Bytes>,
        now: Instant,
    ) {
        if self.life.phase != Phase::Open {
            return;
        }
        self.life.timeouts.ping_interval = interval;
        self.life.timeouts.ping_timeout = timeout;
        self.life.timeouts.ping_payload = payload.clone();
        self.life.keepalive = Keepalive::new(interval, timeout, payload, now);
    }

    /// Queues the keepalive's next ping now rather than at its time (the
    /// interval goes on from here), with its pong deadline: for a
    /// keepalive started on a running connection, so that its first
    /// answer comes at once. Nothing when no ping interval is set or the
    /// connection is closing.
    pub fn ping_now(&mut self, now: Instant) {
        if self.life.phase == Phase::Open {
            self.life.keepalive.due_now(now);
            self.open_timers(now);
        }
    }

    /// The application stopped reading (its buffer is full, under a
    /// blocking policy): pong and idle deadlines stop counting until
    /// [`resume_reading`](Self::resume_reading), since the pongs wait
    /// unread behind the data. Pings are still sent.
    pub fn pause_reading(&mut self, now: Instant) {
        if self.paused_since.is_none() {
            self.paused_since = Some(now);
        }
    }

    /// Reading resumes: the paused time is added to the pong and idle
    /// deadlines.
    pub fn resume_reading(&mut self, now: Instant) {
        if let Some(since) = self.paused_since.take() {
            let paused = now.saturating_duration_since(since);
            self.life.keepalive.postpone(paused);
            self.last_received += paused;
        }
    }

    /// The round trip of the keepalive ping (see
    /// [`Timeouts::ping_interval`]) that the last pong decoded answered,
    /// taken: it is `Some` once per such pong, so a front end that calls
    /// this after each pong it reads records each round trip exactly
    /// once. `None`: already taken, or the last pong answered none of the
    /// keepalive's pings (an unsolicited pong, the answer to a ping of the
    /// application's own, or to a ping already answered).
    ///
    /// It runs from the moment [`handle_timeout`](Self::handle_timeout)
    /// queued the ping to the `now` the pong was read at: the wait for
    /// the ping to be written (behind output queued before it) and for
    /// its pong to be read is included, and so is a pause of the reading
    /// ([`pause_reading`](Self::pause_reading)), during which the pong
    /// waits unread. A pong that answers several pings (a peer may answer
    /// only the latest) gives the newest one's round trip.
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use floodgate_proto::connection::{Connection, Timeouts};
    /// use floodgate_proto::{Config, Role};
    /// use std::ops::ControlFlow;
    /// use std::time::{Duration, Instant};
    ///
    /// let t0 = Instant::now();
    /// let ms = Duration::from_millis;
    /// let timeouts = Timeouts::default().ping_interval(Some(ms(500)));
    /// let mut client = Connection::new(Role::Client, Config::default(), timeouts, t0);
    /// let mut server = Connection::new(Role::Server, Config::default(), Timeouts::default(), t0);
    /// let ignore = |_| ControlFlow::<()>::Continue(());
    ///
    /// // The keepalive's ping goes out at 500 ms; the server answers it.
    /// client.handle_timeout(t0 + ms(500));
    /// let mut wire = BytesMut::from(client.output());
    /// server.read(&mut wire, t0 + ms(510), ignore).unwrap();
    ///
    /// // Its pong is read at 530 ms: a round trip of 30 ms, taken once.
    /// let mut wire = BytesMut::from(server.output());
    /// client.read(&mut wire, t0 + ms(530), ignore).unwrap();
    /// assert_eq!(client.take_ping_rtt(), Some(ms(30)));
    /// assert_eq!(client.take_ping_rtt(), None);
    /// ```
    pub fn take_ping_rtt(&mut self) -> Option<Duration> {
        self.life.ping_rtt.take()
    }

    // ----- receiving -------------------------------------------------------

    /// Decodes every complete message at the front of `buf` (read at
    /// `now`), handing each to `each` until it breaks or more bytes are
    /// needed (`Ok(None)`), as [`Protocol::read_messages`] does, and runs
    /// the lifecycle on the way: a pong is matched against the keepalive's
    /// pings, the peer's close starts the end of the connection. Control
    /// messages reach `each` after that, so an observer may see them.
    ///
    /// When the connection is discarding ([`is_discarding`](Self::is_discarding))
    /// the bytes are skipped (after a failure: up to the peer's close) and
    /// nothing reaches `each`.
    ///
    /// # Errors
    ///
    /// A [`ProtocolError`] fails the connection: a close frame with its
    /// code is queued, [`end`](Self::end) is `Failed`, and the transport is
    /// dropped after [`Timeouts::fail_grace`] at most. Messages before the
    /// bad frame were handed to `each`. Later calls skip what arrives.
    pub fn read<B>(
        &mut self,
        buf: &mut BytesMut,
        now: Instant,
        each: impl FnMut(Message) -> ControlFlow<B>,
    ) -> Result<Option<B>, ProtocolError> {
        self.read_observed(buf, now, each, |_| {})
    }

    /// [`read`](Self::read), showing `data_frame` every data frame as it is
    /// decoded (see [`Protocol::read_messages_observed`]).
    ///
    /// # Errors
    ///
    /// As for [`read`](Self::read).
    #[inline]
    pub fn read_observed<B>(
        &mut self,
        buf: &mut BytesMut,
        now: Instant,
        mut each: impl FnMut(Message) -> ControlFlow<B>,
        data_frame: impl FnMut(&Frame),
    ) -> Result<Option<B>, ProtocolError> {
        self.note_received(buf, now);
        if self.is_discarding() {
            self.discard(buf, now);
            return Ok(None);
        }
        let Connection { proto, life, .. } = self;
        let result = proto.read_messages_observed(
            buf,
            |message| {
                if message.is_control() {
                    life.observe(&message, now);
                }
                each(message)
            },
            data_frame,
        );
        result.map_err(|err| self.life.on_protocol_error(err, buf, now))
    }

    /// Decodes the next complete message from the front of `buf` (read at
    /// `now`), as [`Protocol::read_message`] does, with the lifecycle of
    /// [`read`](Self::read): the form for a caller that takes one message
    /// at a time (the direct connections' `recv`). A data message costs
    /// no more than it does through [`Protocol`]: only a control message
    /// is looked at by the lifecycle.
    ///
    /// # Errors
    ///
    /// As for [`read`](Self::read).
    #[inline]
    pub fn read_message(
        &mut self,
        buf: &mut BytesMut,
        now: Instant,
    ) -> Result<Option<Message>, ProtocolError> {
        self.note_received(buf, now);
        if self.life.phase != Phase::Open && self.is_discarding() {
            self.discard(buf, now);
            return Ok(None);
        }
        // The lifecycle sees a pong, the peer's close or an error from
        // inside the decoder (the `ReadHook`), before the message is built
        // in this call's return slot; nothing runs between that call and
        // the return. Anything that did (even a check of the variant, and
        // a call when it is a control message) made the caller copy the
        // message out with a wide load right after the decoder's narrow
        // stores: a store-forwarding stall per message, 12% of the
        // 16-byte direct receive.
        self.life.decoding_at = now;
        self.proto.read_message_with(buf, &mut self.life)
    }

    /// Bytes arrived at `now`: the idle deadline starts again (only kept
    /// when there is one, so that the hot path stores nothing).
    #[inline(always)]
    fn note_received(&mut self, buf: &BytesMut, now: Instant) {
        if self.life.timeouts.idle.is_some() && !buf.is_empty() {
            self.last_received = now;
        }
    }

    /// Decodes the next frame without assembling messages (see
    /// [`Protocol::read_frame`]), with the lifecycle of [`read`](Self::read).
    ///
    /// # Errors
    ///
    /// As for [`read`](Self::read).
    pub fn read_frame(
        &mut self,
        buf: &mut BytesMut,
        now: Instant,
    ) -> Result<Option<Frame>, ProtocolError> {
        self.note_received(buf, now);
        if self.is_discarding() {
            self.discard(buf, now);
            return Ok(None);
        }
        match self.proto.read_frame(buf) {
            Ok(Some(frame)) => {
                match frame.opcode {
                    OpCode::Pong => self.life.on_pong(&frame.payload, now),
                    OpCode::Close => self
                        .life
                        .on_peer_close(self.proto.close_received().cloned().flatten(), now),
                    _ => {}
                }
                Ok(Some(frame))
            }
            Ok(None) => Ok(None),
            Err(err) => Err(self.life.on_protocol_error(err, buf, now)),
        }
    }

    /// The transport ended (end of stream, reset, or a read error).
    pub fn receive_eof(&mut self, _now: Instant) {
        self.proto.receive_eof();
        if self.life.phase != Phase::Finished {
            // Abnormal unless a close handshake or a failure decided it.
            self.life.finish(End::Abnormal);
        }
    }

    fn discard(&mut self, buf: &mut BytesMut, now: Instant) {
        match self.life.phase {
            Phase::Failing { deadline } => match self.proto.discard_until_close(buf) {
                Ok(false) => {}
                Ok(true) => self.life.after_close_exchange(deadline, now),
                // Frames cannot even be skipped: stop listening.
                Err(_) => self.life.phase = Phase::Finished,
            },
            _ => buf.clear(),
        }
    }

    // ----- sending ---------------------------------------------------------

    /// Queues a text message (see [`Protocol::send_text`]).
    ///
    /// # Errors
    ///
    /// [`UsageError::Closed`] once a close was sent or the connection
    /// ended.
    pub fn send_text(&mut self, text: &str) -> Result<(), UsageError> {
        self.check_can_send()?;
        self.proto.send_text(text)
    }

    /// Queues a binary message.
    ///
    /// # Errors
    ///
    /// As for [`send_text`](Self::send_text).
    pub fn send_binary(&mut self, data: &[u8]) -> Result<(), UsageError> {
        self.check_can_send()?;
        self.proto.send_binary(data)
    }

    /// Queues any data or control message; a `Close` message is refused
    /// here (use [`close`](Self::close), which needs the time).
    ///
    /// # Errors
    ///
    /// As for the `send_*` methods of [`Protocol`].
    pub fn send(&mut self, message: &Message) -> Result<(), UsageError> {
        if let Message::Close(_) = message {
            return Err(UsageError::BadFragmentSequence(
                "send a close with Connection::close, which starts the close deadline",
            ));
        }
        self.check_can_send()?;
        self.proto.send(message)
    }

    /// Queues one raw frame (see [`Protocol::send_frame`]).
    ///
    /// # Errors
    ///
    /// As for [`Protocol::send_frame`].
    pub fn send_frame(
        &mut self,
        opcode: OpCode,
        payload: &[u8],
        fin: bool,
    ) -> Result<(), UsageError> {
        self.check_can_send()?;
        self.proto.send_frame(opcode, payload, fin)
    }

    /// Starts a data frame whose payload is given in pieces (see
    /// [`Protocol::start_frame`]): a large message masked and written a
    /// piece at a time. Frames queued meanwhile (keepalive pings, a close,
    /// another sender's messages) go out after the frame.
    ///
    /// # Errors
    ///
    /// As for [`Protocol::start_frame`]; `Closed` once closing.
    pub fn start_frame(&mut self, opcode: OpCode, len: usize, fin: bool) -> Result<(), UsageError> {
        self.check_can_send()?;
        self.proto.start_frame(opcode, len, fin)
    }

    /// The piece size to send a data message of `len` bytes in, with
    /// [`start_frame`](Self::start_frame) and [`frame_data`](Self::frame_data),
    /// writing each piece before masking the next; `None`: encode it whole
    /// (a message under [`WRITE_IN_PIECES_FROM`], or permessage-deflate
    /// negotiated, where messages are compressed whole).
    pub fn write_piece(&self, len: usize) -> Option<usize> {
        (len >= WRITE_IN_PIECES_FROM && self.proto.deflate().is_none()).then_some(WRITE_PIECE)
    }

    /// Bytes queued, the frames waiting for an open frame included (see
    /// [`Protocol::queued_len`]).
    pub fn queued_len(&self) -> usize {
        self.proto.queued_len()
    }

    /// The next piece of the frame opened by
    /// [`start_frame`](Self::start_frame) (see [`Protocol::frame_data`]).
    /// Allowed whatever happened since the frame started: a frame begun
    /// on the wire must be finished for anything after it to be read.
    ///
    /// # Errors
    ///
    /// As for [`Protocol::frame_data`].
    pub fn frame_data(&mut self, piece: &[u8]) -> Result<(), UsageError> {
        self.proto.frame_data(piece)
    }

    /// Queues a ping of the application's own (the keepalive's pings are
    /// sent by [`handle_timeout`](Self::handle_timeout)).
    ///
    /// # Errors
    ///
    /// As for [`Protocol::send_ping`].
    pub fn send_ping(&mut self, payload: &[u8]) -> Result<(), UsageError> {
        self.check_can_send()?;
        self.proto.send_ping(payload)
    }

    /// Queues a pong.
    ///
    /// # Errors
    ///
    /// As for [`Protocol::send_pong`].
    pub fn send_pong(&mut self, payload: &[u8]) -> Result<(), UsageError> {
        self.check_can_send()?;
        self.proto.send_pong(payload)
    }

    fn check_can_send(&self) -> Result<(), UsageError> {
        if self.life.phase == Phase::Open {
            Ok(())
        } else {
            Err(UsageError::Closed)
        }
    }

    /// Starts the close handshake at `now`: queues the close frame; the
    /// peer's is awaited until `now + close`. `None` sends a close without
    /// code.
    ///
    /// # Errors
    ///
    /// A code that must not be sent or a reason over 123 bytes (nothing
    /// changes), or [`UsageError::Closed`] when a close was already sent or
    /// the connection is ending.
    pub fn close(&mut self, frame: Option<&CloseFrame>, now: Instant) -> Result<(), UsageError> {
        if self.life.phase != Phase::Open {
            return Err(UsageError::Closed);
        }
        self.proto.send_close(frame)?;
        self.life.keepalive.stop();
        self.life.phase = Phase::Closing {
            deadline: now + self.life.timeouts.close,
        };
        Ok(())
    }

    /// Fails the connection from this side (the application's reason, not
    /// the peer's fault): queues `frame` as the close (unless a close was
    /// sent already), skips what arrives until the peer's close, and lets
    /// the transport go after [`Timeouts::fail_grace`] at most.
    /// [`end`](Self::end) becomes [`End::Aborted`] unless already decided.
    pub fn abort(&mut self, frame: CloseFrame, now: Instant) {
        if matches!(self.life.phase, Phase::Finished | Phase::Failing { .. }) {
            return;
        }
        if !self.proto.close_sent() && self.proto.send_close(Some(&frame)).is_err() {
            // Only an invalid code or reason fails: a close without code
            // still ends the connection properly.
            let _ = self.proto.send_close(None);
        }
        if self.proto.close_received().is_some() {
            // The peer closed already: only its end of transport is left.
            self.life.decide(End::Aborted(frame));
            return;
        }
        self.life.start_failing(End::Aborted(frame), now);
    }

    /// Ends the connection at once without a close handshake: the
    /// transport is to be dropped ([`End::Shutdown`] unless the end was
    /// decided already).
    pub fn shutdown(&mut self) {
        self.life.finish(End::Shutdown);
    }

    // ----- output ----------------------------------------------------------

    /// Bytes waiting to be written to the transport, in order.
    pub fn output(&self) -> &[u8] {
        self.proto.output()
    }

    /// Whether anything waits to be written.
    pub fn has_output(&self) -> bool {
        self.proto.has_output()
    }

    /// Marks the first `n` bytes of [`output`](Self::output) as written.
    pub fn consume_output(&mut self, n: usize) {
        self.proto.consume_output(n);
    }

    /// Moves everything queued to the end of `out` (for a writer that
    /// writes outside the connection's lock; see the module docs).
    pub fn take_output(&mut self, out: &mut Vec<u8>) {
        self.proto.take_output(out);
    }

    /// A write of output to the transport began at `now` (and may block):
    /// [`Timeouts::send`] runs from here until
    /// [`write_finished`](Self::write_finished).
    pub fn write_started(&mut self, now: Instant) {
        if self.writing_since.is_none() {
            self.writing_since = Some(now);
        }
    }

    /// The write begun with [`write_started`](Self::write_started) is over
    /// (written or failed).
    pub fn write_finished(&mut self) {
        self.writing_since = None;
    }
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}
