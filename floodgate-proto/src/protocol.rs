//! The connection state machine: bytes in, messages out; calls in, bytes to
//! send out.
//!
//! [`Protocol`] owns no socket, thread or clock. The I/O layer reads into a
//! [`BytesMut`] it owns and asks [`Protocol::read_message`] (or
//! [`Protocol::read_frame`]) for what the bytes contain; it calls the
//! `send_*` methods and writes out [`Protocol::output`]. Everything a peer
//! can get wrong is checked here, so every rule is testable with byte
//! slices.
//!
//! Control frames are handled as they are decoded: a ping queues its pong in
//! the output at once, and a close queues the answering close, whatever the
//! application does with the messages. The I/O layer only has to flush the
//! output after each read.
//!
//! Any [`ProtocolError`] *fails the connection* (RFC 6455 §7.1.7): a close
//! frame with the error's code is queued and no more data frames are
//! accepted. The I/O layer then sends it, waits a moment for the peer's
//! close ([`Protocol::discard_until_close`]) and drops the transport.

use crate::close::{encode_close_payload, parse_close_payload, CloseCode, CloseFrame};
use crate::deflate::{DeflateState, PerMessageDeflate, RSV1};
use crate::error::{ProtocolError, UsageError};
use crate::frame::{encode_frame, Frame, FrameHeader, OpCode, MAX_CONTROL_PAYLOAD};
use crate::mask::{apply_mask, mask_into};
use crate::message::{Message, Text};
use crate::utf8::Utf8Validator;
use bytes::{Buf, BytesMut};
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use std::ops::ControlFlow;

/// Which end of the connection this is. A client masks what it sends and
/// refuses masked frames; a server the other way round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The connecting side.
    Client,
    /// The accepting side (used by floodgate's embedded test server).
    Server,
}

/// Limits and behaviour of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Largest accepted frame payload; `None` for no limit. Checked from the
    /// header, before any byte of the payload is buffered. Default 16 MiB.
    pub max_frame_size: Option<usize>,
    /// Largest accepted message (all fragments together); `None` for no
    /// limit. Default 64 MiB.
    pub max_message_size: Option<usize>,
    /// Answer pings with pongs automatically. Default true.
    pub auto_pong: bool,
}

/// Default `max_frame_size`: 16 MiB.
pub const DEFAULT_MAX_FRAME_SIZE: usize = 16 << 20;
/// Default `max_message_size`: 64 MiB.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 64 << 20;

impl Default for Config {
    fn default() -> Self {
        Config {
            max_frame_size: Some(DEFAULT_MAX_FRAME_SIZE),
            max_message_size: Some(DEFAULT_MAX_MESSAGE_SIZE),
            auto_pong: true,
        }
    }
}

/// Where the connection is in its life (RFC 6455 §4, §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Data flows both ways.
    Open,
    /// One side has sent a close frame; the other's is awaited.
    Closing,
    /// Both close frames were exchanged, or the transport ended.
    Closed,
}

/// A data message being put together from fragments.
#[derive(Debug)]
struct Assembly {
    opcode: OpCode,
    /// Fragments collected so far (empty when frames are read raw).
    data: BytesMut,
    /// Payload bytes received so far, collected or not, for the size limit.
    len: u64,
    /// Every fragment so far went into `data` (none was read raw).
    collected: bool,
    utf8: Option<Utf8Validator>,
    /// The message is compressed (RSV1 on its first frame): fragments are
    /// inflated, and `len` counts inflated bytes.
    compressed: bool,
}

/// The WebSocket protocol for one connection, without I/O.
///
/// ```
/// use bytes::BytesMut;
/// use floodgate_proto::{Config, Message, Protocol, Role};
///
/// let mut client = Protocol::new(Role::Client, Config::default());
/// // A server frame: FIN + text, unmasked, "hi".
/// let mut buf = BytesMut::from(&[0x81, 0x02, b'h', b'i'][..]);
/// assert_eq!(client.read_message(&mut buf).unwrap(), Some(Message::text("hi")));
/// // A ping is answered in the output without being asked.
/// let mut buf = BytesMut::from(&[0x89, 0x01, b'!'][..]);
/// assert_eq!(client.read_message(&mut buf).unwrap(), Some(Message::Ping("!".into())));
/// assert_eq!(client.output()[0], 0x8A); // FIN + pong
/// ```
#[derive(Debug)]
pub struct Protocol {
    role: Role,
    config: Config,
    /// Reserved bits owned by negotiated extensions (none yet).
    extension_rsv: u8,
    out: Vec<u8>,
    /// The front of `out` already written: a partial write moves this
    /// cursor instead of the rest of the buffer (see `consume_output`).
    out_pos: usize,
    /// Bytes of `out` written since it was last empty: what the flush in
    /// progress used of its capacity.
    out_consumed: usize,
    rng: StdRng,
    assembly: Option<Assembly>,
    /// Whether an outgoing fragmented message is open.
    sending_fragmented: bool,
    close_sent: bool,
    /// The peer's close, once received (`Some(None)`: a close without code).
    close_received: Option<Option<CloseFrame>>,
    transport_closed: bool,
    failed: Option<ProtocolError>,
    /// Payload bytes of a skipped frame still to skip (closing only).
    discard_remaining: u64,
    /// Bytes the buffer must hold for the next frame to complete.
    needed: usize,
    /// permessage-deflate, when negotiated.
    deflate: Option<Box<DeflateState>>,
    /// A data frame whose payload is being given in pieces
    /// ([`Protocol::start_frame`]). Boxed: only large messages have one,
    /// and an idle connection should not pay for the room.
    open_frame: Option<Box<OpenFrame>>,
}

/// A frame started by [`Protocol::start_frame`], not yet complete.
#[derive(Debug)]
struct OpenFrame {
    key: Option<[u8; 4]>,
    /// Payload bytes given so far, of `len`.
    given: u64,
    len: u64,
    /// Frames queued while it is open: they go out after it.
    held: Vec<u8>,
}

/// Output capacity always kept after a flush. A larger buffer is kept
/// while the flushes use it (at least a quarter of it each), and released
/// by the first flush that does not: a run of large messages reuses one
/// buffer instead of allocating (and faulting in) a fresh one per message
/// (the `send` benchmark at 64 KiB: about a fifth faster on medians),
/// and a connection that goes back to small messages gives it up.
const KEPT_OUTPUT_CAPACITY: usize = 256 << 10;

/// What [`Protocol::read_message_with`] tells as it decodes.
pub(crate) trait ReadHook {
    /// A control message (ping, pong, close) is about to be returned.
    fn control(&mut self, message: &Message);
    /// Decoding failed with `err` (the protocol queued its close); `buf`
    /// is the read buffer.
    fn failed(&mut self, err: &ProtocolError, buf: &mut BytesMut);
}

/// No hook: plain [`Protocol::read_message`].
impl ReadHook for () {
    fn control(&mut self, _: &Message) {}
    fn failed(&mut self, _: &ProtocolError, _: &mut BytesMut) {}
}

impl Protocol {
    /// A new connection in the [`State::Open`] state (the opening handshake
    /// is done by [`crate::handshake`]).
    pub fn new(role: Role, config: Config) -> Protocol {
        Protocol::with_rng(role, config, StdRng::from_os_rng())
    }

    /// Like [`Protocol::new`], with masking keys drawn from a seeded
    /// generator: for reproducible tests only, never on a real connection.
    pub fn with_seed(role: Role, config: Config, seed: u64) -> Protocol {
        Protocol::with_rng(role, config, StdRng::seed_from_u64(seed))
    }

    fn with_rng(role: Role, config: Config, rng: StdRng) -> Protocol {
        Protocol {
            role,
            config,
            extension_rsv: 0,
            out: Vec::new(),
            out_pos: 0,
            out_consumed: 0,
            rng,
            assembly: None,
            sending_fragmented: false,
            close_sent: false,
            close_received: None,
            transport_closed: false,
            failed: None,
            discard_remaining: 0,
            needed: 2,
            deflate: None,
            open_frame: None,
        }
    }

    /// Turns permessage-deflate on with the negotiated parameters (from
    /// [`crate::handshake::Response::deflate`]), or off with `None`. Call
    /// it before any data message is sent or received.
    ///
    /// Then data messages at or over the threshold are sent compressed,
    /// and messages with RSV1 set on their first frame are inflated, at
    /// most `max_message_size` bytes of them.
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use floodgate_proto::deflate::PerMessageDeflate;
    /// use floodgate_proto::{Config, Message, Protocol, Role};
    ///
    /// let mut server = Protocol::new(Role::Server, Config::default());
    /// let mut client = Protocol::new(Role::Client, Config::default());
    /// server.set_deflate(Some(PerMessageDeflate::default()));
    /// client.set_deflate(Some(PerMessageDeflate::default()));
    /// let text = "la la la ".repeat(100);
    /// server.send_text(&text).unwrap();
    /// assert!(server.output().len() < 100); // 900 bytes, compressed
    /// assert_eq!(server.output()[0], 0xC1); // FIN + RSV1 + text
    /// let mut wire = BytesMut::from(server.output());
    /// assert_eq!(client.read_message(&mut wire).unwrap(), Some(Message::text(text)));
    /// ```
    pub fn set_deflate(&mut self, deflate: Option<PerMessageDeflate>) {
        self.deflate = deflate.map(|params| Box::new(DeflateState::new(params, self.role)));
        self.extension_rsv = if self.deflate.is_some() { RSV1 } else { 0 };
    }

    /// The negotiated permessage-deflate parameters, if it is on.
    pub fn deflate(&self) -> Option<&PerMessageDeflate> {
        self.deflate.as_deref().map(DeflateState::params)
    }

    /// This side's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The connection state.
    pub fn state(&self) -> State {
        if self.transport_closed || (self.close_sent && self.close_received.is_some()) {
            State::Closed
        } else if self.close_sent || self.close_received.is_some() {
            State::Closing
        } else {
            State::Open
        }
    }

    /// Whether this side has sent (or queued) its close frame.
    pub fn close_sent(&self) -> bool {
        self.close_sent
    }

    /// The peer's close frame, once received: `Some(None)` means it carried
    /// no code.
    pub fn close_received(&self) -> Option<&Option<CloseFrame>> {
        self.close_received.as_ref()
    }

    /// Whether a fragmented message is open whose first fragments were
    /// returned by [`read_frame`](Self::read_frame): it must be finished
    /// with `read_frame` too (see the panic of
    /// [`read_message`](Self::read_message)).
    pub fn raw_message_open(&self) -> bool {
        self.assembly.as_ref().is_some_and(|a| !a.collected)
    }

    /// The error the connection was failed with, if any.
    pub fn failure(&self) -> Option<&ProtocolError> {
        self.failed.as_ref()
    }

    /// How many bytes the read buffer must hold before the next call can
    /// make progress: a hint for how much to reserve before reading.
    pub fn bytes_needed(&self) -> usize {
        self.needed
    }

    /// Tells the protocol the transport has ended (EOF or reset).
    pub fn receive_eof(&mut self) {
        self.transport_closed = true;
    }

    // ----- receiving -------------------------------------------------------

    /// Decodes the next complete message from the front of `buf`, consuming
    /// the bytes it used. `Ok(None)` means `buf` holds no complete message
    /// yet: read more and call again.
    ///
    /// Pings, pongs and the peer's close are returned too (as
    /// [`Message::Ping`] etc.); their answers are already queued in the
    /// output. After the peer's close, `Ok(None)` is returned for good.
    ///
    /// # Panics
    ///
    /// If the message being finished was begun with
    /// [`read_frame`](Self::read_frame): switch modes between messages only.
    ///
    /// # Errors
    ///
    /// A [`ProtocolError`] fails the connection: a close frame with its code
    /// is queued in the output and every later call returns the same error.
    pub fn read_message(&mut self, buf: &mut BytesMut) -> Result<Option<Message>, ProtocolError> {
        self.read_message_with(buf, &mut ())
    }

    /// [`read_message`](Self::read_message), showing `hook` a control
    /// message before it is returned, and the error when decoding fails:
    /// for [`Connection`](crate::Connection), whose lifecycle must see
    /// pongs, the peer's close and failures. Out of line and not generic,
    /// so that the message is built in the caller's return slot and
    /// nothing runs between this call and the caller's use of it (see
    /// [`Connection::read_message`](crate::Connection::read_message)).
    #[inline(never)]
    pub(crate) fn read_message_with(
        &mut self,
        buf: &mut BytesMut,
        hook: &mut dyn ReadHook,
    ) -> Result<Option<Message>, ProtocolError> {
        loop {
            let decoded = self.next_frame(buf, true);
            let Some(frame) = decoded.map_err(|err| Self::hook_failed(err, buf, hook))? else {
                return Ok(None);
            };
            // A data message costs one branch more than decoding alone; a
            // control message, rare, takes its own way to the hook.
            if frame.opcode.is_control() {
                return Ok(Some(self.control_message(frame, hook)));
            }
            if let Some(message) = self.message_of(frame) {
                return Ok(Some(message));
            }
        }
    }

    #[cold]
    #[inline(never)]
    fn control_message(&mut self, frame: Frame, hook: &mut dyn ReadHook) -> Message {
        let message = self
            .message_of(frame)
            .expect("a control frame is a whole message");
        hook.control(&message);
        message
    }

    #[cold]
    #[inline(never)]
    fn hook_failed(
        err: ProtocolError,
        buf: &mut BytesMut,
        hook: &mut dyn ReadHook,
    ) -> ProtocolError {
        hook.failed(&err, buf);
        err
    }

    /// Decodes every complete message at the front of `buf`, handing each
    /// to `each`, until `each` breaks (its value is returned) or more bytes
    /// are needed (`Ok(None)`).
    ///
    /// The same as calling [`read_message`](Self::read_message) in a loop,
    /// and the same rules and answers apply. It is for readers that decode
    /// a whole read at a time: each message goes straight to `each`, which
    /// is compiled into the caller, instead of being returned through
    /// memory. At 16-byte messages that return was a measurable share of
    /// floodgate's buffered reader.
    ///
    /// # Errors
    ///
    /// As for [`read_message`](Self::read_message); messages before the
    /// bad frame have been handed to `each`.
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use floodgate_proto::{Config, Message, Protocol, Role};
    /// use std::ops::ControlFlow;
    ///
    /// let mut proto = Protocol::new(Role::Client, Config::default());
    /// // Two unmasked text frames from a server, and half of a third.
    /// let mut buf = BytesMut::from(&b"\x81\x02hi\x81\x03you\x81\x05ha"[..]);
    /// let mut got = Vec::new();
    /// let stopped = proto
    ///     .read_messages(&mut buf, |m: Message| {
    ///         got.push(m);
    ///         ControlFlow::<()>::Continue(())
    ///     })
    ///     .unwrap();
    /// assert_eq!(stopped, None); // the third message needs more bytes
    /// assert_eq!(got, [Message::text("hi"), Message::text("you")]);
    /// assert_eq!(&buf[..], b"\x81\x05ha");
    /// ```
    #[inline]
    pub fn read_messages<B>(
        &mut self,
        buf: &mut BytesMut,
        each: impl FnMut(Message) -> ControlFlow<B>,
    ) -> Result<Option<B>, ProtocolError> {
        self.read_messages_observed(buf, each, |_| {})
    }

    /// [`read_messages`](Self::read_messages), showing `data_frame` every
    /// data frame (text, binary, continuation; each fragment of a
    /// fragmented message) as it is decoded, before the message it
    /// belongs to is complete: for applications that want the frames as
    /// well as the messages (websocket-client's `on_data` and
    /// `on_cont_message`).
    ///
    /// # Errors
    ///
    /// As for [`read_message`](Self::read_message).
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use floodgate_proto::{Config, Message, OpCode, Protocol, Role};
    /// use std::ops::ControlFlow;
    ///
    /// let mut proto = Protocol::new(Role::Client, Config::default());
    /// // "hello" in two fragments: text "hel", continuation "lo".
    /// let mut buf = BytesMut::from(&b"\x01\x03hel\x80\x02lo"[..]);
    /// let mut frames = Vec::new();
    /// let mut messages = Vec::new();
    /// proto
    ///     .read_messages_observed(
    ///         &mut buf,
    ///         |m: Message| {
    ///             messages.push(m);
    ///             ControlFlow::<()>::Continue(())
    ///         },
    ///         |f| frames.push((f.opcode, f.fin, f.payload.clone())),
    ///     )
    ///     .unwrap();
    /// assert_eq!(frames[0], (OpCode::Text, false, "hel".into()));
    /// assert_eq!(frames[1], (OpCode::Continuation, true, "lo".into()));
    /// assert_eq!(messages, [Message::text("hello")]);
    /// ```
    #[inline]
    pub fn read_messages_observed<B>(
        &mut self,
        buf: &mut BytesMut,
        mut each: impl FnMut(Message) -> ControlFlow<B>,
        mut data_frame: impl FnMut(&Frame),
    ) -> Result<Option<B>, ProtocolError> {
        loop {
            let Some(frame) = self.next_frame(buf, true)? else {
                return Ok(None);
            };
            if !frame.opcode.is_control() {
                data_frame(&frame);
            }
            if let Some(message) = self.message_of(frame) {
                if let ControlFlow::Break(value) = each(message) {
                    return Ok(Some(value));
                }
            }
        }
    }

    /// The message a decoded frame completes, if it completes one.
    #[inline(always)]
    fn message_of(&mut self, frame: Frame) -> Option<Message> {
        Some(match frame.opcode {
            OpCode::Text if frame.fin => Message::Text(Text::from_validated(frame.payload)),
            OpCode::Binary if frame.fin => Message::Binary(frame.payload),
            OpCode::Continuation if frame.fin => {
                let assembly = self.assembly.take().expect("continuation has an assembly");
                // Fragments returned by `read_frame` are not in `data`:
                // what is left is not the message, and may not be UTF-8.
                assert!(
                    assembly.collected,
                    "read_message cannot finish a message whose first fragments were returned by read_frame"
                );
                let data = assembly.data.freeze();
                match assembly.opcode {
                    OpCode::Text => Message::Text(Text::from_validated(data)),
                    _ => Message::Binary(data),
                }
            }
            OpCode::Text | OpCode::Binary | OpCode::Continuation => return None,
            OpCode::Ping => Message::Ping(frame.payload),
            OpCode::Pong => Message::Pong(frame.payload),
            OpCode::Close => Message::Close(
                self.close_received
                    .clone()
                    .expect("close frame was recorded"),
            ),
        })
    }

    /// Decodes the next frame from the front of `buf` without assembling
    /// messages: for callers that handle fragments themselves.
    ///
    /// Every rule is enforced as in [`read_message`](Self::read_message)
    /// (including fragment sequencing and UTF-8 of text fragments), and
    /// control frames are answered the same way.
    ///
    /// # Errors
    ///
    /// As for [`read_message`](Self::read_message).
    pub fn read_frame(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, ProtocolError> {
        let frame = self.next_frame(buf, false)?;
        if let Some(frame) = &frame {
            if frame.opcode == OpCode::Continuation && frame.fin {
                self.assembly = None;
            }
        }
        Ok(frame)
    }

    /// After this side has sent its close (or failed the connection):
    /// skips frames until the peer's close frame. Returns `Ok(true)` once it
    /// has arrived, `Ok(false)` if more bytes are needed.
    ///
    /// Data frames met on the way are skipped without being buffered or
    /// checked (the connection is ending), so a peer cannot make this wait
    /// hold more than one control frame in memory.
    ///
    /// # Errors
    ///
    /// A frame header so broken that frames cannot be skipped.
    pub fn discard_until_close(&mut self, buf: &mut BytesMut) -> Result<bool, ProtocolError> {
        while self.close_received.is_none() {
            if self.discard_remaining > 0 {
                let skip = (buf.len() as u64).min(self.discard_remaining);
                buf.advance(skip as usize);
                self.discard_remaining -= skip;
                if self.discard_remaining > 0 {
                    self.needed = 1;
                    return Ok(false);
                }
            }
            let Some((header, header_len)) = FrameHeader::decode(buf)? else {
                self.needed = header_len_hint(buf);
                return Ok(false);
            };
            if header.opcode != OpCode::Close {
                buf.advance(header_len);
                self.discard_remaining = header.payload_len;
                continue;
            }
            // Control frames are at most 125 bytes: safe to wait for whole.
            let total = header_len + header.payload_len as usize;
            if buf.len() < total {
                self.needed = total;
                return Ok(false);
            }
            buf.advance(header_len);
            let mut payload = buf.split_to(header.payload_len as usize);
            if let Some(key) = header.mask {
                apply_mask(&mut payload, key);
            }
            // A malformed close still ends the wait: the peer has closed,
            // whatever it said.
            self.close_received = Some(parse_close_payload(&payload).unwrap_or(None));
        }
        Ok(true)
    }

    /// Decodes, checks and consumes one frame. `collect`: append data
    /// fragments to the assembly (message mode) or not (frame mode).
    #[inline]
    fn next_frame(
        &mut self,
        buf: &mut BytesMut,
        collect: bool,
    ) -> Result<Option<Frame>, ProtocolError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        if self.close_received.is_some() {
            return Ok(None);
        }
        match self.decode_frame(buf, collect) {
            Ok(frame) => Ok(frame),
            Err(err) => Err(self.fail(err)),
        }
    }

    #[inline]
    fn decode_frame(
        &mut self,
        buf: &mut BytesMut,
        collect: bool,
    ) -> Result<Option<Frame>, ProtocolError> {
        let Some((header, header_len)) = FrameHeader::decode(buf)? else {
            self.needed = header_len_hint(buf);
            return Ok(None);
        };
        self.check_header(&header)?;
        // `check_header` bounded the length by the limits; without limits a
        // length that does not fit in memory is refused here.
        let payload_len =
            usize::try_from(header.payload_len).map_err(|_| ProtocolError::FrameTooLarge {
                len: header.payload_len,
                max: usize::MAX,
            })?;
        let total = header_len.saturating_add(payload_len);
        if buf.len() < total {
            self.needed = total;
            return Ok(None);
        }
        self.needed = 2;
        buf.advance(header_len);
        let mut payload = buf.split_to(payload_len);
        if let Some(key) = header.mask {
            apply_mask(&mut payload, key);
        }
        let mut payload = payload.freeze();
        let compressed = match header.opcode {
            OpCode::Text | OpCode::Binary => header.rsv & RSV1 != 0,
            OpCode::Continuation => self.assembly.as_ref().is_some_and(|a| a.compressed),
            _ => false,
        };
        if compressed {
            payload = self.inflate(&payload, header.fin)?;
        }
        match header.opcode {
            OpCode::Text | OpCode::Binary if header.fin => {
                if header.opcode == OpCode::Text && simdutf8::basic::from_utf8(&payload).is_err() {
                    return Err(ProtocolError::InvalidUtf8);
                }
            }
            OpCode::Text | OpCode::Binary => {
                let mut utf8 = (header.opcode == OpCode::Text).then(Utf8Validator::default);
                if let Some(v) = &mut utf8 {
                    v.feed(&payload)?;
                }
                let data = if collect {
                    BytesMut::from(&payload[..])
                } else {
                    BytesMut::new()
                };
                self.assembly = Some(Assembly {
                    opcode: header.opcode,
                    data,
                    len: payload.len() as u64,
                    collected: collect,
                    utf8,
                    compressed,
                });
            }
            OpCode::Continuation => {
                let assembly = self.assembly.as_mut().expect("checked by check_header");
                if let Some(v) = &mut assembly.utf8 {
                    v.feed(&payload)?;
                    if header.fin {
                        v.finish()?;
                    }
                }
                assembly.len += payload.len() as u64;
                assembly.collected &= collect;
                if collect {
                    assembly.data.extend_from_slice(&payload);
                }
            }
            OpCode::Ping => {
                if self.config.auto_pong && !self.close_sent {
                    self.encode(true, OpCode::Pong, &payload);
                }
            }
            OpCode::Pong => {}
            OpCode::Close => {
                let frame = parse_close_payload(&payload)?;
                if !self.close_sent {
                    // Echo the code (RFC 6455 §5.5.1); a close without code
                    // is answered by one without code.
                    let reply = frame.as_ref().map(|f| CloseFrame::new(f.code, ""));
                    self.encode_close(reply.as_ref());
                }
                self.close_received = Some(frame);
            }
        }
        Ok(Some(Frame {
            fin: header.fin,
            rsv: header.rsv,
            opcode: header.opcode,
            payload,
        }))
    }

    /// Inflates one frame's payload of a compressed message, within what
    /// `max_message_size` leaves.
    #[inline(never)]
    fn inflate(&mut self, payload: &[u8], fin: bool) -> Result<bytes::Bytes, ProtocolError> {
        let so_far = self.assembly.as_ref().map_or(0, |a| a.len);
        let max = self.config.max_message_size;
        let budget = max.map_or(usize::MAX, |m| {
            usize::try_from((m as u64).saturating_sub(so_far)).unwrap_or(usize::MAX)
        });
        let Some(deflate) = self.deflate.as_mut() else {
            // `check_rsv` lets RSV1 through only when deflate is on.
            return Err(ProtocolError::ReservedBits { bits: RSV1 });
        };
        match deflate.inflate(payload, fin, budget) {
            Ok(out) => Ok(out.into()),
            Err(e) => Err(e.into_protocol(so_far, max)),
        }
    }

    /// The reserved bits of a frame that has some set.
    #[cold]
    fn check_rsv(&self, header: &FrameHeader) -> Result<(), ProtocolError> {
        if header.rsv & !self.extension_rsv != 0 {
            return Err(ProtocolError::ReservedBits { bits: header.rsv });
        }
        if header.rsv & RSV1 != 0 && !matches!(header.opcode, OpCode::Text | OpCode::Binary) {
            return Err(ProtocolError::MisplacedRsv1(header.opcode));
        }
        Ok(())
    }

    /// The checks that need the connection's context.
    #[inline]
    fn check_header(&self, header: &FrameHeader) -> Result<(), ProtocolError> {
        if header.rsv != 0 {
            self.check_rsv(header)?;
        }
        match (self.role, header.mask.is_some()) {
            (Role::Client, true) => return Err(ProtocolError::MaskedFrameFromServer),
            (Role::Server, false) => return Err(ProtocolError::UnmaskedFrameFromClient),
            _ => {}
        }
        if let Some(max) = self.config.max_frame_size {
            if header.payload_len > max as u64 {
                return Err(ProtocolError::FrameTooLarge {
                    len: header.payload_len,
                    max,
                });
            }
        }
        let so_far = match (header.opcode, &self.assembly) {
            (OpCode::Continuation, None) => return Err(ProtocolError::ContinuationWithoutStart),
            (OpCode::Text | OpCode::Binary, Some(_)) => {
                return Err(ProtocolError::DataFrameInsideFragmentedMessage)
            }
            // A compressed message is measured as it inflates.
            (OpCode::Continuation, Some(assembly)) if assembly.compressed => return Ok(()),
            (OpCode::Continuation, Some(assembly)) => assembly.len,
            (OpCode::Text | OpCode::Binary, None) if header.rsv & RSV1 != 0 => return Ok(()),
            (OpCode::Text | OpCode::Binary, None) => 0,
            _ => return Ok(()),
        };
        if let Some(max) = self.config.max_message_size {
            let len = so_far.saturating_add(header.payload_len);
            if len > max as u64 {
                return Err(ProtocolError::MessageTooLarge { len, max });
            }
        }
        Ok(())
    }

    /// Fails the connection: queues a close with the error's code (unless a
    /// close was already sent) and refuses further frames.
    fn fail(&mut self, err: ProtocolError) -> ProtocolError {
        if !self.close_sent {
            self.encode_close(Some(&err.close_frame()));
        }
        self.assembly = None;
        self.failed = Some(err.clone());
        err
    }

    // ----- sending ---------------------------------------------------------

    /// Queues a text message.
    ///
    /// # Errors
    ///
    /// [`UsageError::Closed`] once a close was sent;
    /// [`UsageError::BadFragmentSequence`] inside a fragmented message sent
    /// with [`send_frame`](Self::send_frame).
    pub fn send_text(&mut self, text: &str) -> Result<(), UsageError> {
        self.send_frame(OpCode::Text, text.as_bytes(), true)
    }

    /// Queues a binary message.
    ///
    /// # Errors
    ///
    /// As for [`send_text`](Self::send_text).
    pub fn send_binary(&mut self, data: &[u8]) -> Result<(), UsageError> {
        self.send_frame(OpCode::Binary, data, true)
    }

    /// Queues any [`Message`]; a `Close` message starts the close handshake.
    ///
    /// # Errors
    ///
    /// As for the specific `send_*` methods.
    pub fn send(&mut self, message: &Message) -> Result<(), UsageError> {
        match message {
            Message::Text(t) => self.send_frame(OpCode::Text, t.as_bytes(), true),
            Message::Binary(b) => self.send_frame(OpCode::Binary, b, true),
            Message::Ping(b) => self.send_frame(OpCode::Ping, b, true),
            Message::Pong(b) => self.send_frame(OpCode::Pong, b, true),
            Message::Close(frame) => self.send_close(frame.as_ref()),
        }
    }

    /// Queues a ping.
    ///
    /// # Errors
    ///
    /// [`UsageError::ControlPayloadTooLong`] over 125 bytes; `Closed`.
    pub fn send_ping(&mut self, payload: &[u8]) -> Result<(), UsageError> {
        self.send_frame(OpCode::Ping, payload, true)
    }

    /// Queues a pong (unsolicited pongs are allowed as heartbeats).
    ///
    /// # Errors
    ///
    /// As for [`send_ping`](Self::send_ping).
    pub fn send_pong(&mut self, payload: &[u8]) -> Result<(), UsageError> {
        self.send_frame(OpCode::Pong, payload, true)
    }

    /// Queues one raw frame. Data frames may be sent fragmented: a `Text`
    /// or `Binary` frame with `fin = false`, then `Continuation` frames, the
    /// last with `fin = true`. Control frames may go between fragments.
    ///
    /// ```
    /// use floodgate_proto::{Config, OpCode, Protocol, Role};
    /// let mut p = Protocol::new(Role::Client, Config::default());
    /// p.send_frame(OpCode::Text, b"hel", false).unwrap();
    /// p.send_frame(OpCode::Ping, b"", true).unwrap();
    /// p.send_frame(OpCode::Continuation, b"lo", true).unwrap();
    /// assert!(p.send_frame(OpCode::Continuation, b"!", true).is_err());
    /// ```
    ///
    /// # Errors
    ///
    /// A control frame that is fragmented or over 125 bytes, a fragment out
    /// of sequence, or any frame after this side's close.
    pub fn send_frame(
        &mut self,
        opcode: OpCode,
        payload: &[u8],
        fin: bool,
    ) -> Result<(), UsageError> {
        if self.close_sent {
            return Err(UsageError::Closed);
        }
        match opcode {
            OpCode::Close => {
                return Err(UsageError::BadFragmentSequence(
                    "send a close with send_close, which validates its code and reason",
                ))
            }
            OpCode::Ping | OpCode::Pong => {
                if !fin {
                    return Err(UsageError::FragmentedControlFrame);
                }
                if payload.len() > MAX_CONTROL_PAYLOAD {
                    return Err(UsageError::ControlPayloadTooLong(payload.len()));
                }
            }
            OpCode::Text | OpCode::Binary | OpCode::Continuation => {
                self.sequence_data_frame(opcode, fin)?;
            }
        }
        match &mut self.deflate {
            Some(deflate) if !opcode.is_control() => {
                let compress = match opcode {
                    OpCode::Continuation => deflate.compressing,
                    _ => deflate.wants(payload.len()),
                };
                if compress {
                    deflate.compressing = !fin;
                    let data = deflate
                        .compress(payload, fin)
                        .map_err(UsageError::CompressionFailed)?;
                    let rsv = if opcode == OpCode::Continuation {
                        0
                    } else {
                        RSV1
                    };
                    let mask = mask_key(self.role, &mut self.rng);
                    let out = queue_for(&mut self.out, &mut self.open_frame);
                    encode_frame(out, fin, rsv, opcode, mask, data);
                } else {
                    self.encode(fin, opcode, payload);
                }
            }
            _ => self.encode(fin, opcode, payload),
        }
        Ok(())
    }

    /// Starts the close handshake (or answers the peer's close): queues a
    /// close frame. `None` sends a close without code.
    ///
    /// # Errors
    ///
    /// A code that must not be sent (1005, 1006, 1015, unregistered
    /// ranges), a reason over 123 bytes, or a close already sent.
    pub fn send_close(&mut self, frame: Option<&CloseFrame>) -> Result<(), UsageError> {
        if self.close_sent {
            return Err(UsageError::Closed);
        }
        let mut scratch = Vec::new();
        encode_close_payload(frame, &mut scratch)?;
        self.encode(true, OpCode::Close, &scratch);
        self.close_sent = true;
        Ok(())
    }

    fn encode_close(&mut self, frame: Option<&CloseFrame>) {
        let mut payload = Vec::with_capacity(125);
        // Only frames built from valid codes and truncated reasons come
        // here; an invalid one is sent without code rather than not at all.
        if encode_close_payload(frame, &mut payload).is_err() {
            payload.clear();
        }
        self.encode(true, OpCode::Close, &payload);
        self.close_sent = true;
    }

    #[inline]
    fn encode(&mut self, fin: bool, opcode: OpCode, payload: &[u8]) {
        let mask = mask_key(self.role, &mut self.rng);
        let out = queue_for(&mut self.out, &mut self.open_frame);
        encode_frame(out, fin, 0, opcode, mask, payload);
    }

    /// Checks that a data frame (`Text`, `Binary`, `Continuation`) may
    /// come next in the outgoing fragment sequence, and notes whether it
    /// leaves a message open.
    fn sequence_data_frame(&mut self, opcode: OpCode, fin: bool) -> Result<(), UsageError> {
        match (opcode, self.sending_fragmented) {
            (OpCode::Continuation, false) => Err(UsageError::BadFragmentSequence(
                "a continuation frame was sent with no fragmented message open",
            )),
            (OpCode::Text | OpCode::Binary, true) => Err(UsageError::BadFragmentSequence(
                "a new message was started before the fragmented one was finished",
            )),
            _ => {
                self.sending_fragmented = !fin;
                Ok(())
            }
        }
    }

    /// Starts a data frame of `len` payload bytes whose payload is then
    /// given in pieces with [`frame_data`](Self::frame_data): each piece is
    /// masked into the output as it comes, so a large message can be
    /// masked and written a piece at a time, while the piece is still in
    /// the cache, instead of masked whole and then written. On the wire it
    /// is one ordinary frame. Until its last byte is given, every other
    /// frame queued (a keepalive ping, a close, another sender's message)
    /// waits, to go out right after it, in the order queued. The frame is
    /// sent uncompressed.
    ///
    /// ```
    /// use floodgate_proto::{Config, OpCode, Protocol, Role};
    /// let mut whole = Protocol::with_seed(Role::Client, Config::default(), 1);
    /// let mut pieces = Protocol::with_seed(Role::Client, Config::default(), 1);
    /// let payload = [7u8; 1000];
    /// whole.send_binary(&payload).unwrap();
    /// pieces.start_frame(OpCode::Binary, payload.len(), true).unwrap();
    /// pieces.send_ping(b"later").unwrap(); // held until the frame is complete
    /// for piece in payload.chunks(333) {
    ///     pieces.frame_data(piece).unwrap();
    /// }
    /// assert_eq!(&pieces.output()[..whole.output().len()], whole.output());
    /// assert_eq!(pieces.output()[whole.output().len()], 0x89); // then the ping
    /// ```
    ///
    /// # Errors
    ///
    /// As for [`send_frame`](Self::send_frame); a control opcode (control
    /// frames are small: send them whole); a frame already open; a
    /// continuation of a compressed message.
    pub fn start_frame(&mut self, opcode: OpCode, len: usize, fin: bool) -> Result<(), UsageError> {
        if self.close_sent {
            return Err(UsageError::Closed);
        }
        if self.open_frame.is_some() {
            return Err(UsageError::BadFragmentSequence(
                "a frame started with start_frame is still open: give the rest of its payload first",
            ));
        }
        if opcode.is_control() {
            return Err(UsageError::BadFragmentSequence(
                "control frames are sent whole, with send_frame",
            ));
        }
        if opcode == OpCode::Continuation && self.deflate.as_ref().is_some_and(|d| d.compressing) {
            return Err(UsageError::BadFragmentSequence(
                "a compressed message is continued with send_frame, not start_frame",
            ));
        }
        self.sequence_data_frame(opcode, fin)?;
        let key = mask_key(self.role, &mut self.rng);
        FrameHeader {
            fin,
            rsv: 0,
            opcode,
            mask: key,
            payload_len: len as u64,
        }
        .encode(&mut self.out);
        if len > 0 {
            self.open_frame = Some(Box::new(OpenFrame {
                key,
                given: 0,
                len: len as u64,
                held: Vec::new(),
            }));
        }
        Ok(())
    }

    /// Gives the next piece of the payload of the frame opened by
    /// [`start_frame`](Self::start_frame), masked into the output. The
    /// last byte completes the frame, and the control frames that waited
    /// for it are queued after it.
    ///
    /// # Errors
    ///
    /// No frame is open, or the piece goes beyond the frame's length
    /// (nothing is queued then).
    pub fn frame_data(&mut self, piece: &[u8]) -> Result<(), UsageError> {
        let Some(frame) = &mut self.open_frame else {
            return Err(UsageError::BadFragmentSequence(
                "no frame is open: start one with start_frame",
            ));
        };
        if piece.len() as u64 > frame.len - frame.given {
            return Err(UsageError::BadFragmentSequence(
                "more payload than the length given to start_frame",
            ));
        }
        match frame.key {
            Some(key) => {
                // The key continues where the previous piece left it.
                let at = (frame.given % 4) as usize;
                let key = [
                    key[at],
                    key[(at + 1) % 4],
                    key[(at + 2) % 4],
                    key[(at + 3) % 4],
                ];
                mask_into(&mut self.out, piece, key);
            }
            None => self.out.extend_from_slice(piece),
        }
        frame.given += piece.len() as u64;
        if frame.given == frame.len {
            if let Some(mut open) = self.open_frame.take() {
                self.out.append(&mut open.held);
            }
        }
        Ok(())
    }

    /// Whether a frame started by [`start_frame`](Self::start_frame) still
    /// waits for payload.
    pub fn frame_open(&self) -> bool {
        self.open_frame.is_some()
    }

    /// Bytes queued: the [`output`](Self::output), and the frames that wait
    /// for an open frame to complete. What a writer that bounds its queue
    /// counts.
    pub fn queued_len(&self) -> usize {
        let held = self.open_frame.as_ref().map_or(0, |open| open.held.len());
        self.out.len() - self.out_pos + held
    }

    // ----- output ----------------------------------------------------------

    /// Bytes waiting to be written to the transport, in order.
    pub fn output(&self) -> &[u8] {
        &self.out[self.out_pos..]
    }

    /// Whether anything waits to be written.
    pub fn has_output(&self) -> bool {
        self.out_pos < self.out.len()
    }

    /// Moves everything queued to the end of `out`, leaving the output
    /// empty: for a writer that writes outside the lock that guards the
    /// protocol. When `out` is empty the buffers are swapped, so neither
    /// side allocates in the steady state.
    pub fn take_output(&mut self, out: &mut Vec<u8>) {
        self.out_consumed = 0;
        if self.out_pos > 0 {
            out.extend_from_slice(&self.out[self.out_pos..]);
            self.out.clear();
            self.out_pos = 0;
        } else if out.is_empty() {
            std::mem::swap(out, &mut self.out);
        } else {
            out.append(&mut self.out);
        }
    }

    /// Marks the first `n` bytes of [`output`](Self::output) as written.
    ///
    /// A partial write only moves a cursor: moving the unwritten rest to
    /// the front after every partial write made a large message written in
    /// many pieces (a slow peer, a full socket buffer) cost time quadratic
    /// in its size. The written front is dropped once it is at least half
    /// of the buffer, so each byte is moved at most about once.
    pub fn consume_output(&mut self, n: usize) {
        let n = n.min(self.out.len() - self.out_pos);
        self.out_consumed += n;
        self.out_pos += n;
        if self.out_pos == self.out.len() {
            let used = std::mem::take(&mut self.out_consumed);
            self.out.clear();
            self.out_pos = 0;
            if self.out.capacity() > KEPT_OUTPUT_CAPACITY && used < self.out.capacity() / 4 {
                self.out = Vec::new();
            }
        } else if self.out_pos >= self.out.len() - self.out_pos {
            self.out.drain(..self.out_pos);
            self.out_pos = 0;
        }
    }
}

/// The length of the frame header at the start of `buf`, as far as its
/// first two bytes tell (2 until they are there). Asking for more, such as
/// [`MAX_HEADER_LEN`](crate::frame::MAX_HEADER_LEN), would stall a reader
/// on a short frame at the end of what the peer sends (an empty ping is 2
/// bytes, 6 when masked).
fn header_len_hint(buf: &[u8]) -> usize {
    let [_, b1, ..] = *buf else {
        return 2;
    };
    let extended = match b1 & 0x7F {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let mask = if b1 & 0x80 != 0 { 4 } else { 0 };
    2 + extended + mask
}

/// A fresh masking key for a client's frame; none for a server's.
#[inline]
fn mask_key(role: Role, rng: &mut StdRng) -> Option<[u8; 4]> {
    match role {
        Role::Client => Some(rng.next_u32().to_ne_bytes()),
        Role::Server => None,
    }
}

/// Where a frame queued now goes: the output, or, while a frame given in
/// pieces is open, behind it, to follow it once it is complete.
#[inline]
fn queue_for<'a>(
    out: &'a mut Vec<u8>,
    open_frame: &'a mut Option<Box<OpenFrame>>,
) -> &'a mut Vec<u8> {
    match open_frame {
        Some(open) => &mut open.held,
        None => out,
    }
}

/// The default close frame a client sends when it ends a connection.
pub fn normal_close() -> CloseFrame {
    CloseFrame::new(CloseCode::NORMAL, "")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> Protocol {
        Protocol::with_seed(Role::Client, Config::default(), 7)
    }

    /// What a socket taking `sizes` bytes per write (in turn) gets of
    /// messages sent between the writes.
    #[test]
    fn partial_writes_keep_the_order_and_move_each_byte_about_once() {
        // Two protocols with one seed encode the same frames.
        let mut p = client();
        let mut reference = client();
        let mut written = Vec::new();
        let mut expected = Vec::new();
        let sizes = [1usize, 7, 4096, 65_536, 3, 200_000];
        for i in 0..200usize {
            let message = vec![i as u8; (i * 7919) % 150_000];
            p.send_binary(&message).unwrap();
            reference.send_binary(&message).unwrap();
            for _ in 0..2 {
                let take = sizes[i % sizes.len()].min(p.output().len());
                written.extend_from_slice(&p.output()[..take]);
                p.consume_output(take);
                // The written front is dropped once it is half of the
                // buffer: it never holds more than twice what waits.
                assert!(p.out.len() <= 2 * p.output().len(), "at message {i}");
            }
        }
        while p.has_output() {
            let take = 65_536.min(p.output().len());
            written.extend_from_slice(&p.output()[..take]);
            p.consume_output(take);
        }
        expected.extend_from_slice(reference.output());
        assert!(
            written == expected,
            "the bytes written differ from the frames sent"
        );
        assert!(!p.has_output() && p.output().is_empty());
        // A small write of a large frame moves nothing.
        p.send_binary(&[5u8; 1 << 20]).unwrap();
        let rest = p.output().as_ptr();
        p.consume_output(1);
        assert_eq!(
            p.output().as_ptr(),
            rest.wrapping_add(1),
            "the rest stayed where it was"
        );
    }

    #[test]
    fn a_frame_given_in_pieces_is_the_frame_sent_whole_for_either_role() {
        let payload: Vec<u8> = (0..70_001u32).map(|i| (i % 251) as u8).collect();
        for role in [Role::Client, Role::Server] {
            let mut whole = Protocol::with_seed(role, Config::default(), 3);
            let mut pieces = Protocol::with_seed(role, Config::default(), 3);
            whole.send_binary(&payload).unwrap();
            pieces
                .start_frame(OpCode::Binary, payload.len(), true)
                .unwrap();
            // Pieces of every phase of the key: 1, 2, 3 and 5 bytes, then
            // large ones.
            let mut at = 0;
            for n in [1, 2, 3, 5, 4096, 65_536].into_iter().cycle() {
                let end = (at + n).min(payload.len());
                assert!(pieces.frame_open());
                pieces.frame_data(&payload[at..end]).unwrap();
                at = end;
                if at == payload.len() {
                    break;
                }
            }
            assert!(!pieces.frame_open());
            assert_eq!(pieces.output(), whole.output(), "{role:?}");
        }
    }

    #[test]
    fn while_a_frame_is_open_other_frames_wait_in_order() {
        let mut p = client();
        p.start_frame(OpCode::Text, 10, true).unwrap();
        let header = p.output().len();
        assert!(
            p.start_frame(OpCode::Binary, 1, true).is_err(),
            "one at a time"
        );
        assert!(p.frame_data(&[0; 11]).is_err(), "beyond its length");
        p.send_binary(b"x").unwrap();
        p.send_ping(b"p").unwrap();
        p.send_close(None).unwrap();
        assert_eq!(p.output().len(), header, "held until the frame is complete");
        assert_eq!(p.queued_len(), header + 7 + 7 + 6, "held, and counted");
        p.frame_data(b"hello").unwrap();
        p.frame_data(b"world").unwrap();
        let out = p.output();
        let after = &out[header + 10..];
        assert_eq!(
            (after[0], after[1] & 0x7F),
            (0x82, 1),
            "the binary message first"
        );
        assert_eq!(after[7] & 0x0F, 0x9, "then the ping");
        assert_eq!(after[14] & 0x0F, 0x8, "then the close");
        assert_eq!(p.queued_len(), out.len());
        assert!(p.frame_data(b"!").is_err(), "no frame open");
        assert!(p.start_frame(OpCode::Binary, 1, true).is_err(), "closed");
        // Control opcodes are sent whole; an empty frame is complete at once.
        let mut p = client();
        assert!(p.start_frame(OpCode::Ping, 1, true).is_err());
        p.start_frame(OpCode::Binary, 0, true).unwrap();
        assert!(!p.frame_open());
        // Fragments: a started message wants continuations.
        p.start_frame(OpCode::Binary, 1, false).unwrap();
        p.frame_data(b"a").unwrap();
        assert!(p.start_frame(OpCode::Binary, 1, true).is_err());
        p.start_frame(OpCode::Continuation, 1, true).unwrap();
        p.frame_data(b"b").unwrap();
        assert!(p.start_frame(OpCode::Continuation, 1, true).is_err());
    }

    #[test]
    fn take_output_after_a_partial_write_takes_only_the_rest() {
        let mut p = client();
        p.send_binary(&[1u8; 1000]).unwrap();
        let whole = p.output().to_vec();
        p.consume_output(100);
        let mut taken = Vec::new();
        p.take_output(&mut taken);
        assert_eq!(taken, whole[100..]);
        assert!(!p.has_output());
        p.send_binary(b"next").unwrap();
        assert_eq!(p.output().len(), 2 + 4 + 4, "a fresh frame, nothing stale");
    }

    #[test]
    fn a_large_output_buffer_is_kept_while_large_flushes_use_it() {
        let mut p = client();
        let big = vec![1u8; 1 << 20];
        p.send_binary(&big).unwrap();
        let cap = p.out.capacity();
        assert!(cap > KEPT_OUTPUT_CAPACITY);
        // Written in parts, as a socket may take it: the whole flush
        // counts, not its last part.
        let len = p.output().len();
        p.consume_output(len - 1000);
        p.consume_output(1000);
        assert_eq!(p.out.capacity(), cap, "a flush that used it keeps it");
        p.send_binary(&big).unwrap();
        assert_eq!(p.out.capacity(), cap, "the next message reuses it");
        let len = p.output().len();
        p.consume_output(len);
        // A small flush lets it go: an idle connection stays small.
        p.send_binary(b"small").unwrap();
        let len = p.output().len();
        p.consume_output(len);
        assert!(
            p.out.capacity() <= KEPT_OUTPUT_CAPACITY,
            "{}",
            p.out.capacity()
        );
    }

    #[test]
    fn take_output_starts_the_count_of_a_flush_again() {
        let mut p = client();
        p.send_binary(&vec![1u8; 1 << 20]).unwrap();
        let len = p.output().len();
        p.consume_output(len / 2);
        // The writer's empty queue (large, from an earlier burst) comes
        // back in exchange.
        let mut taken = Vec::with_capacity(3 << 19);
        p.take_output(&mut taken);
        assert_eq!(taken.len(), len - len / 2);
        assert_eq!(p.out.capacity(), 3 << 19);
        // Half a megabyte was written before the swap; it must not make
        // this small flush look like one that used the buffer.
        p.send_binary(b"x").unwrap();
        let small = p.output().len();
        p.consume_output(small);
        assert!(
            p.out.capacity() <= KEPT_OUTPUT_CAPACITY,
            "{}",
            p.out.capacity()
        );
    }
}
