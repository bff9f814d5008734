//! Raw frames: `recv_frame` on the async [`Receiver`] (and so on the
//! [`WebSocket`](super::WebSocket)), with the blocking
//! [`crate::WebSocket::recv_frame`]'s semantics and `recv`'s cancel
//! safety: the receive in flight is kept in the [`Receiver`] in the same
//! slot, and a data frame already in the read buffer is returned without
//! it.

use super::receiver::{kept, mixed, Core, Received, Receiver};
use crate::error::{ErrorKind, Result};
use floodgate_proto::{Frame, OpCode, ProtocolError};
use std::task::{ready, Context, Poll};

type Decoded = std::result::Result<Option<Frame>, ProtocolError>;

impl Core {
    fn decode_frame(&mut self) -> Decoded {
        let mut conn = self.shared.conn();
        let decoded = conn.read_frame(&mut self.read_buf, self.read_at);
        self.raw_open = conn.raw_message_open();
        decoded
    }

    /// `first`: what the fast path decoded before this future was made.
    async fn recv_frame(&mut self, mut first: Option<Decoded>) -> Result<Frame> {
        loop {
            let decoded = match first.take() {
                Some(decoded) => decoded,
                None => self.decode_frame(),
            };
            match decoded {
                Ok(Some(frame)) => {
                    if frame.opcode.is_control() {
                        // A pong or the close reply, queued by the protocol.
                        self.shared.flush().await?;
                    }
                    if frame.opcode == OpCode::Close {
                        let close = self
                            .shared
                            .conn()
                            .protocol()
                            .close_received()
                            .cloned()
                            .flatten();
                        // The frame is returned either way; the close
                        // handshake has been completed by now.
                        let _ = self.on_peer_close(close).await;
                        self.reported = true;
                    }
                    return Ok(frame);
                }
                Ok(None) => self.fill().await?,
                Err(err) => return Err(self.fail(err).await),
            }
        }
    }
}

impl Receiver {
    /// Receives the next frame as it came, without assembling fragments:
    /// data fragments (`Text` or `Binary` with `fin = false`, then
    /// `Continuation` frames), pings, pongs and the close, as the blocking
    /// [`crate::WebSocket::recv_frame`] does. Pings are still answered and
    /// the close handshake still run; payloads of compressed messages are
    /// inflated and text fragments checked as UTF-8.
    ///
    /// A fragmented message begun with `recv_frame` must be finished with
    /// it: [`recv`](Self::recv) refuses to go on in the middle.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> floodgate::Result<()> {
    /// use floodgate::OpCode;
    /// # let server = floodgate_server::Server::bind("127.0.0.1:0", floodgate_server::echo).unwrap();
    /// let mut ws = floodgate::tokio::connect(&server.url()).await?;
    /// ws.ping(b"hi").await?;
    /// let pong = ws.recv_frame().await?;
    /// assert_eq!((pong.opcode, &pong.payload[..]), (OpCode::Pong, &b"hi"[..]));
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe, as [`recv`](Self::recv): if the future is dropped
    /// before it completes, no frame is lost and none is received twice;
    /// the next `recv_frame` goes on where this one stopped. (A cancelled
    /// `recv_frame` must be finished by `recv_frame`, a cancelled `recv` by
    /// `recv`: the other one returns [`ErrorKind::Usage`] and leaves the
    /// receive in flight alone.)
    ///
    /// # Errors
    ///
    /// As for [`recv`](Self::recv); the peer's close is returned as a
    /// frame once, then [`ErrorKind::AlreadyClosed`].
    pub async fn recv_frame(&mut self) -> Result<Frame> {
        std::future::poll_fn(|cx| self.poll_recv_frame(cx)).await
    }

    /// Polls for the next frame: the poll form of
    /// [`recv_frame`](Self::recv_frame), with the same cancel safety.
    ///
    /// # Errors
    ///
    /// As for [`recv_frame`](Self::recv_frame).
    pub fn poll_recv_frame(&mut self, cx: &mut Context<'_>) -> Poll<Result<Frame>> {
        if kept(&mut self.in_flight).is_none() {
            let Some(core) = self.core.as_mut() else {
                return Poll::Ready(Err(ErrorKind::AlreadyClosed.into()));
            };
            // The fast path: a data frame already in the read buffer.
            let first = match core.decode_frame() {
                Ok(Some(frame)) if !frame.opcode.is_control() => return Poll::Ready(Ok(frame)),
                other => other,
            };
            let mut core = self.core.take().expect("checked above");
            *kept(&mut self.in_flight) = Some(Box::pin(async move {
                let result = core.recv_frame(Some(first)).await;
                (core, Received::Frame(result))
            }));
            self.in_flight_frames = true;
        } else if !self.in_flight_frames {
            return Poll::Ready(Err(mixed(
                "a recv that was cancelled must be finished with recv",
            )));
        }
        match ready!(self.poll_in_flight(cx)) {
            Received::Frame(result) => Poll::Ready(result),
            Received::Message(_) => unreachable!("checked above: a recv_frame is in flight"),
        }
    }
}
