"""``WebSocket.sock`` of a connection floodgate opened: what libraries
call on websocket-client's socket, over a connection whose socket is read
and written by a Rust thread.

- ``fileno()`` is the connection's *ready* descriptor (``ready_fd()`` of
  the native connection), not the TCP socket's: it is readable exactly
  when ``recv()``/``recv_data_frame()`` would not block (a message is
  buffered, or the connection ended), so ``select``, ``poll``,
  ``selectors`` and dispatchers (``rel``) wait on it as they waited on
  websocket-client's socket. The TCP socket itself becomes readable when
  bytes arrive, which tells nothing once Rust has read them.
- ``send(data)`` takes bytes of the WebSocket stream a client writes:
  whole client frames (``ABNF.create_frame(...).format()``, as
  kubernetes' port-forward writes them). They are parsed (and unmasked)
  here and each sent through the connection, which masks it again with
  its own key; raw bytes written to the TCP stream next to the Rust
  writer would corrupt its framing. A frame cut short is kept until the
  rest comes. It returns ``len(data)``.
- ``setsockopt``/``getsockopt``, ``getpeername``/``getsockname`` act on
  the real socket (a duplicate of its descriptor, closed after use);
  ``OSError(EBADF)`` when there is none (after the end, or a TLS stream
  that does not expose it).
- ``settimeout``/``gettimeout`` are the WebSocket's receive timeout.
- ``pending()``: the messages buffered now (an ``ssl.SSLSocket``'s
  ``pending()`` counts bytes; both are "reading now will not block").
- ``close()``/``shutdown(how)`` end the connection at once, as closing the
  socket under websocket-client does.
"""

import errno
import os
import socket
import struct
from typing import Any, Callable, List, Optional, Tuple, TypeVar

from ._abnf import ABNF
from ._exceptions import WebSocketProtocolException

__all__ = ["NativeSocket"]

T = TypeVar("T")


class NativeSocket:
    """The socket-like face of one native connection (see the module)."""

    def __init__(self, ws: Any, conn: Any) -> None:
        self._ws = ws
        self._conn = conn
        # Bytes given to send() that do not make a whole frame yet.
        self._partial = b""
        self._closed = False

    def __repr__(self) -> str:
        try:
            fd = self.fileno()
        except Exception:  # noqa: BLE001 - a repr must not fail
            fd = -1
        return f"<floodgate NativeSocket fd={fd}>"

    # ----- waiting ----------------------------------------------------------

    def fileno(self) -> int:
        """The descriptor readable when a receive would not block."""
        if self._closed:
            return -1
        return self._conn.ready_fd()

    def pending(self) -> int:
        """The messages buffered now (and, with ``fire_cont_frame``, the
        fragments of a message already taken that wait to be returned)."""
        if self._closed:
            return 0
        return self._conn.pending() + len(self._ws._queued_frames)

    # ----- timeouts ---------------------------------------------------------

    def settimeout(self, timeout: Optional[float]) -> None:
        """Sets the WebSocket's receive timeout (``WebSocket.settimeout``)."""
        if timeout is not None and timeout < 0:
            raise ValueError("timeout must be at least 0, or None")
        self._ws._timeout = timeout

    def gettimeout(self) -> Optional[float]:
        return self._ws._timeout

    def setblocking(self, flag: bool) -> None:
        self.settimeout(None if flag else 0.0)

    # ----- the real socket --------------------------------------------------

    def _with_socket(self, use: Callable[[socket.socket], T]) -> T:
        fd = None if self._closed else self._conn.socket_fd()
        if fd is None:
            raise OSError(
                errno.EBADF,
                "this floodgate connection exposes no socket descriptor (it ended, or its "
                "transport does not have one)",
            )
        sock = socket.socket(fileno=os.dup(fd))
        try:
            return use(sock)
        finally:
            sock.close()

    def setsockopt(self, level: int, optname: int, value: Any, optlen: Optional[int] = None) -> None:
        """``setsockopt`` on the connection's TCP (or Unix) socket."""
        if optlen is None:
            self._with_socket(lambda s: s.setsockopt(level, optname, value))
        else:
            self._with_socket(lambda s: s.setsockopt(level, optname, value, optlen))

    def getsockopt(self, level: int, optname: int, buflen: Optional[int] = None) -> Any:
        """``getsockopt`` on the connection's TCP (or Unix) socket."""
        if buflen is None:
            return self._with_socket(lambda s: s.getsockopt(level, optname))
        return self._with_socket(lambda s: s.getsockopt(level, optname, buflen))

    def getpeername(self) -> Any:
        return self._with_socket(lambda s: s.getpeername())

    def getsockname(self) -> Any:
        return self._with_socket(lambda s: s.getsockname())

    # ----- writing ----------------------------------------------------------

    def send(self, data: bytes) -> int:
        """Sends the client frames in ``data`` (see the module): returns
        ``len(data)``. Raises ``WebSocketProtocolException`` for bytes
        that are not client frames (unmasked, or a reserved opcode)."""
        data = bytes(data)
        buffered = self._partial + data
        frames, used = _parse_client_frames(buffered)
        self._partial = buffered[used:]
        for opcode, fin, payload in frames:
            self._send_one(opcode, fin, payload)
        return len(data)

    def sendall(self, data: bytes) -> None:
        self.send(data)

    def _send_one(self, opcode: int, fin: bool, payload: bytes) -> None:
        conn = self._ws._connection()
        if opcode == ABNF.OPCODE_PING:
            conn.ping(payload)
        elif opcode == ABNF.OPCODE_PONG:
            conn.pong(payload)
        elif opcode == ABNF.OPCODE_CLOSE:
            code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1000
            self._ws.connected = False
            conn.send_close(code, payload[2:].decode("utf-8"))
        else:
            conn.send_frame(opcode, payload, fin)

    # ----- the end ----------------------------------------------------------

    def shutdown(self, how: int = socket.SHUT_RDWR) -> None:
        """Ends the connection at once (no close handshake)."""
        self.close()

    def close(self) -> None:
        """Ends the connection at once (no close handshake): the
        WebSocket's ``shutdown()``."""
        if not self._closed:
            self._closed = True
            if self._ws._sock is self:
                self._ws.shutdown()


def _parse_client_frames(data: bytes) -> Tuple[List[Tuple[int, bool, bytes]], int]:
    """The whole client frames at the start of ``data`` as ``(opcode, fin,
    unmasked payload)``, and how many bytes they took."""
    frames = []
    at = 0
    end = len(data)
    while end - at >= 2:
        b1, b2 = data[at], data[at + 1]
        if b1 & 0x70:
            raise WebSocketProtocolException("rsv is not implemented, yet")
        opcode = b1 & 0x0F
        if opcode not in ABNF.OPCODES:
            raise WebSocketProtocolException(f"Invalid opcode {opcode!r}")
        if not b2 & 0x80:
            raise WebSocketProtocolException(
                "ws.sock.send() takes client frames, which are masked (ABNF.create_frame(...).format())"
            )
        length = b2 & 0x7F
        head = at + 2
        if length == 0x7E:
            if end - head < 2:
                break
            length = struct.unpack_from("!H", data, head)[0]
            head += 2
        elif length == 0x7F:
            if end - head < 8:
                break
            length = struct.unpack_from("!Q", data, head)[0]
            head += 8
        if end - head < 4 + length:
            break
        key = data[head : head + 4]
        payload = ABNF.mask(key, data[head + 4 : head + 4 + length])
        frames.append((opcode, bool(b1 & 0x80), payload))
        at = head + 4 + length
    return frames, at
