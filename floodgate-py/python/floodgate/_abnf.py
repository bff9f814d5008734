"""websocket-client's ``ABNF`` frame class and the frame helpers libraries
import from ``websocket._abnf`` (``frame_buffer``, ``continuous_frame``,
the ``STATUS_*`` close codes, ``VALID_CLOSE_STATUS``).

On a connection floodgate opened, frames are built, masked and parsed in
Rust; an ``ABNF`` there carries ``opcode``, ``fin`` and ``data`` between
the application and the connection. ``format()``, ``mask()``,
``validate()``, ``frame_buffer`` and ``continuous_frame`` behave as
websocket-client 1.9's: libraries call them to frame bytes themselves
(kubernetes' port-forward sends ``ABNF.create_frame(...).format()``), and
a WebSocket given a socket by the application (``ws.sock = ...``) frames
and parses with them in Python (``_transport.py``).
"""

import os
import struct
import sys
from threading import Lock
from typing import Any, Callable, List, Optional, Union

from ._exceptions import WebSocketPayloadException, WebSocketProtocolException
from ._utils import validate_utf8

__all__ = [
    "ABNF",
    "continuous_frame",
    "frame_buffer",
    "STATUS_NORMAL",
    "STATUS_GOING_AWAY",
    "STATUS_PROTOCOL_ERROR",
    "STATUS_UNSUPPORTED_DATA_TYPE",
    "STATUS_STATUS_NOT_AVAILABLE",
    "STATUS_ABNORMAL_CLOSED",
    "STATUS_INVALID_PAYLOAD",
    "STATUS_POLICY_VIOLATION",
    "STATUS_MESSAGE_TOO_BIG",
    "STATUS_INVALID_EXTENSION",
    "STATUS_UNEXPECTED_CONDITION",
    "STATUS_SERVICE_RESTART",
    "STATUS_TRY_AGAIN_LATER",
    "STATUS_BAD_GATEWAY",
    "STATUS_TLS_HANDSHAKE_ERROR",
    "VALID_CLOSE_STATUS",
]

STATUS_NORMAL = 1000
STATUS_GOING_AWAY = 1001
STATUS_PROTOCOL_ERROR = 1002
STATUS_UNSUPPORTED_DATA_TYPE = 1003
STATUS_STATUS_NOT_AVAILABLE = 1005
STATUS_ABNORMAL_CLOSED = 1006
STATUS_INVALID_PAYLOAD = 1007
STATUS_POLICY_VIOLATION = 1008
STATUS_MESSAGE_TOO_BIG = 1009
STATUS_INVALID_EXTENSION = 1010
STATUS_UNEXPECTED_CONDITION = 1011
STATUS_SERVICE_RESTART = 1012
STATUS_TRY_AGAIN_LATER = 1013
STATUS_BAD_GATEWAY = 1014
STATUS_TLS_HANDSHAKE_ERROR = 1015

VALID_CLOSE_STATUS = (
    STATUS_NORMAL,
    STATUS_GOING_AWAY,
    STATUS_PROTOCOL_ERROR,
    STATUS_UNSUPPORTED_DATA_TYPE,
    STATUS_INVALID_PAYLOAD,
    STATUS_POLICY_VIOLATION,
    STATUS_MESSAGE_TOO_BIG,
    STATUS_INVALID_EXTENSION,
    STATUS_UNEXPECTED_CONDITION,
    STATUS_SERVICE_RESTART,
    STATUS_TRY_AGAIN_LATER,
    STATUS_BAD_GATEWAY,
)



def _xor(mask_key: bytes, data: bytes) -> bytes:
    """``data`` XOR the 4-byte ``mask_key`` repeated (RFC 6455 5.3), as one
    big-integer operation: far faster in CPython than a loop over bytes."""
    length = len(data)
    if not length:
        return b""
    repeated = (mask_key * (length // 4 + 1))[:length]
    order = sys.byteorder
    return (int.from_bytes(data, order) ^ int.from_bytes(repeated, order)).to_bytes(length, order)


class ABNF:
    """A WebSocket frame (RFC 6455 5.2): ``fin``, ``rsv1-3``, ``opcode``,
    ``mask_value`` (1: masked when formatted) and ``data``.

    ``format()`` gives the frame's bytes, masked with a key from
    ``get_mask_key(4)`` (``os.urandom`` unless replaced, as
    ``WebSocket.set_mask_key`` does for the frames it sends).
    """

    OPCODE_CONT = 0x0
    OPCODE_TEXT = 0x1
    OPCODE_BINARY = 0x2
    OPCODE_CLOSE = 0x8
    OPCODE_PING = 0x9
    OPCODE_PONG = 0xA

    OPCODES = (OPCODE_CONT, OPCODE_TEXT, OPCODE_BINARY, OPCODE_CLOSE, OPCODE_PING, OPCODE_PONG)

    OPCODE_MAP = {
        OPCODE_CONT: "cont",
        OPCODE_TEXT: "text",
        OPCODE_BINARY: "binary",
        OPCODE_CLOSE: "close",
        OPCODE_PING: "ping",
        OPCODE_PONG: "pong",
    }

    LENGTH_7 = 0x7E
    LENGTH_16 = 1 << 16
    LENGTH_63 = 1 << 63

    def __init__(
        self,
        fin: int = 0,
        rsv1: int = 0,
        rsv2: int = 0,
        rsv3: int = 0,
        opcode: int = OPCODE_TEXT,
        mask_value: int = 1,
        data: Optional[Union[str, bytes]] = "",
    ) -> None:
        self.fin = fin
        self.rsv1 = rsv1
        self.rsv2 = rsv2
        self.rsv3 = rsv3
        self.opcode = opcode
        self.mask_value = mask_value
        self.data = "" if data is None else data
        self.get_mask_key: Callable[[int], Union[bytes, str]] = os.urandom

    def validate(self, skip_utf8_validation: bool = False) -> None:
        """Raises ``WebSocketProtocolException`` (websocket-client's
        messages) for what RFC 6455 forbids in a received frame: a reserved
        bit, an unknown opcode, a fragmented ping, a close frame with a
        1-byte or too long payload, a reason that is not UTF-8 or a code
        that may not be sent."""
        if self.rsv1 or self.rsv2 or self.rsv3:
            raise WebSocketProtocolException("rsv is not implemented, yet")
        if self.opcode not in ABNF.OPCODES:
            raise WebSocketProtocolException(f"Invalid opcode {self.opcode!r}")
        if self.opcode == ABNF.OPCODE_PING and not self.fin:
            raise WebSocketProtocolException("Invalid ping frame.")
        if self.opcode != ABNF.OPCODE_CLOSE:
            return
        length = len(self.data)
        if not length:
            return
        if length == 1 or length >= 126:
            raise WebSocketProtocolException("Invalid close frame.")
        if length > 2 and not skip_utf8_validation and not validate_utf8(self.data[2:]):
            raise WebSocketProtocolException("Invalid close frame.")
        head = self.data[:2]
        if isinstance(head, str):
            head = head.encode("utf-8")
        code = struct.unpack("!H", head)[0]
        if not (code in VALID_CLOSE_STATUS or 3000 <= code < 5000):
            raise WebSocketProtocolException(f"Invalid close opcode {code!r}")

    @staticmethod
    def _is_valid_close_status(code: int) -> bool:
        return code in VALID_CLOSE_STATUS or 3000 <= code < 5000

    def __str__(self) -> str:
        data = self.data if isinstance(self.data, str) else repr(self.data)
        return f"fin={self.fin} opcode={self.opcode} data={data}"

    def __repr__(self) -> str:
        return f"ABNF({self})"

    @staticmethod
    def create_frame(data: Union[bytes, str], opcode: int, fin: int = 1) -> "ABNF":
        """A masked frame to send (``WebSocket.send_frame``); text given as
        ``str`` is encoded as UTF-8. ``fin=0`` starts or continues a
        fragmented message."""
        if opcode == ABNF.OPCODE_TEXT and isinstance(data, str):
            data = data.encode("utf-8")
        return ABNF(fin, 0, 0, 0, opcode, 1, data)

    def format(self) -> bytes:
        """The frame's bytes, as a client writes them: masked with
        ``get_mask_key(4)`` when ``mask_value`` is 1. Raises ``ValueError``
        for a flag that is not 0 or 1, an unknown opcode, or data of 2**63
        bytes or more."""
        if any(bit not in (0, 1) for bit in (self.fin, self.rsv1, self.rsv2, self.rsv3)):
            raise ValueError("not 0 or 1")
        if self.opcode not in ABNF.OPCODES:
            raise ValueError("Invalid OPCODE")
        length = len(self.data)
        if length >= ABNF.LENGTH_63:
            raise ValueError("data is too long")
        first = self.fin << 7 | self.rsv1 << 6 | self.rsv2 << 5 | self.rsv3 << 4 | self.opcode
        mask_bit = self.mask_value << 7
        if length < ABNF.LENGTH_7:
            header = struct.pack("!BB", first, mask_bit | length)
        elif length < ABNF.LENGTH_16:
            header = struct.pack("!BBH", first, mask_bit | 0x7E, length)
        else:
            header = struct.pack("!BBQ", first, mask_bit | 0x7F, length)
        if not self.mask_value:
            if isinstance(self.data, str):
                self.data = self.data.encode("utf-8")
            return header + bytes(self.data)
        return header + self._get_masked(self.get_mask_key(4))

    def _get_masked(self, mask_key: Union[str, bytes]) -> bytes:
        """The mask key followed by the masked data."""
        masked = ABNF.mask(mask_key, self.data)
        if isinstance(mask_key, str):
            mask_key = mask_key.encode("utf-8")
        return bytes(mask_key) + masked

    @staticmethod
    def mask(mask_key: Union[str, bytes], data: Union[str, bytes, None]) -> bytes:
        """``data`` masked (or unmasked) with the 4-byte ``mask_key``. A
        ``str`` is taken as Latin-1 (one byte per character), as
        websocket-client takes it."""
        if data is None:
            data = ""
        if isinstance(mask_key, str):
            mask_key = mask_key.encode("latin-1")
        if isinstance(data, str):
            data = data.encode("latin-1")
        return _xor(bytes(mask_key), bytes(data))


#: The largest frame or message read over a socket the application gives,
#: unless ``max_message_size=`` says otherwise: floodgate's own limit (64
#: MiB). websocket-client has none; without one, a peer decides how much
#: memory the reader takes.
DEFAULT_MAX_MESSAGE_SIZE = 64 << 20


def _too_large(what: str, size: int, limit: int) -> WebSocketProtocolException:
    return WebSocketProtocolException(
        f"{what} of {size} bytes is over the limit of {limit} bytes; "
        "pass max_message_size= to WebSocket(...) to accept larger ones"
    )


class frame_buffer:  # noqa: N801 - websocket-client's name
    """Reads frames from ``recv_fn(n)`` (a socket's ``recv``): the header,
    the length, the mask key and the payload, each kept across a timeout
    so that the next call goes on where the last one stopped. A frame
    longer than ``max_size`` is refused before its payload is read."""

    _HEADER_MASK_INDEX = 5
    _HEADER_LENGTH_INDEX = 6

    def __init__(
        self,
        recv_fn: Callable[[int], bytes],
        skip_utf8_validation: bool,
        max_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    ) -> None:
        self.recv = recv_fn
        self.skip_utf8_validation = skip_utf8_validation
        self.max_size = max_size
        # Bytes received but not yet used by a frame.
        self.recv_buffer: List[bytes] = []
        self.clear()
        self.lock = Lock()

    def clear(self) -> None:
        self.header: Optional[tuple] = None
        self.length: Optional[int] = None
        self.mask_value: Optional[Union[bytes, str]] = None

    def needs_header(self) -> bool:
        return self.header is None

    def recv_header(self) -> None:
        b1, b2 = self.recv_strict(2)
        self.header = (b1 >> 7 & 1, b1 >> 6 & 1, b1 >> 5 & 1, b1 >> 4 & 1, b1 & 0xF, b2 >> 7 & 1, b2 & 0x7F)

    def has_mask(self) -> Union[bool, int]:
        if not self.header:
            return False
        return self.header[frame_buffer._HEADER_MASK_INDEX]

    def needs_length(self) -> bool:
        return self.length is None

    def recv_length(self) -> None:
        if self.header is None:
            raise WebSocketProtocolException("Header not received")
        bits = self.header[frame_buffer._HEADER_LENGTH_INDEX] & 0x7F
        if bits == 0x7E:
            self.length = struct.unpack("!H", self.recv_strict(2))[0]
        elif bits == 0x7F:
            self.length = struct.unpack("!Q", self.recv_strict(8))[0]
        else:
            self.length = bits

    def needs_mask(self) -> bool:
        return self.mask_value is None

    def recv_mask(self) -> None:
        self.mask_value = self.recv_strict(4) if self.has_mask() else ""

    def recv_frame(self) -> ABNF:
        """The next frame, validated (``ABNF.validate``)."""
        with self.lock:
            if self.needs_header():
                self.recv_header()
            if self.header is None:
                raise WebSocketProtocolException("Header not received")
            fin, rsv1, rsv2, rsv3, opcode, has_mask, _ = self.header
            if self.needs_length():
                self.recv_length()
            length = self.length
            if self.needs_mask():
                self.recv_mask()
            mask_value = self.mask_value
            if length is None:
                raise WebSocketProtocolException("Length not received")
            if length > self.max_size:
                raise _too_large("a frame", length, self.max_size)
            payload = self.recv_strict(length)
            if has_mask:
                if mask_value is None:
                    raise WebSocketProtocolException("Mask not received")
                payload = ABNF.mask(mask_value, payload)
            self.clear()
            frame = ABNF(fin, rsv1, rsv2, rsv3, opcode, has_mask, payload)
            frame.validate(self.skip_utf8_validation)
        return frame

    def recv_strict(self, bufsize: int) -> bytes:
        """Exactly ``bufsize`` bytes (fewer only when ``recv`` returned
        something that is not bytes); what a timeout interrupted stays in
        ``recv_buffer`` for the next call."""
        if not isinstance(bufsize, int):
            raise ValueError("bufsize must be an integer")
        shortage = bufsize - sum(len(b) for b in self.recv_buffer)
        while shortage > 0:
            # At most 16 KiB at a time: a large bufsize passed to recv()
            # again and again allocates large buffers for little data.
            chunk = self.recv(min(16384, shortage))
            if not isinstance(chunk, bytes):
                break
            self.recv_buffer.append(chunk)
            shortage -= len(chunk)
        unified = b"".join(self.recv_buffer)
        if shortage == 0:
            self.recv_buffer = []
            return unified
        self.recv_buffer = [unified[bufsize:]]
        return unified[:bufsize]


class continuous_frame:  # noqa: N801 - websocket-client's name
    """Joins the frames of a fragmented message (or, with
    ``fire_cont_frame``, hands each frame on as it comes)."""

    def __init__(
        self,
        fire_cont_frame: bool,
        skip_utf8_validation: bool,
        max_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    ) -> None:
        self.fire_cont_frame = fire_cont_frame
        self.skip_utf8_validation = skip_utf8_validation
        # The largest message joined from fragments.
        self.max_size = max_size
        self.cont_data: Optional[List[Any]] = None
        self.recving_frames: Optional[int] = None

    def validate(self, frame: ABNF) -> None:
        """A continuation without a start, or a new message inside a
        fragmented one, is a protocol error."""
        if not self.recving_frames and frame.opcode == ABNF.OPCODE_CONT:
            raise WebSocketProtocolException("Illegal frame")
        if self.recving_frames and frame.opcode in (ABNF.OPCODE_TEXT, ABNF.OPCODE_BINARY):
            raise WebSocketProtocolException("Illegal frame")

    def add(self, frame: ABNF) -> None:
        if self.cont_data:
            size = len(self.cont_data[1]) + len(frame.data)
            if size > self.max_size:
                self.cont_data = None
                self.recving_frames = None
                raise _too_large("a fragmented message", size, self.max_size)
            self.cont_data[1] += frame.data
        else:
            if frame.opcode in (ABNF.OPCODE_TEXT, ABNF.OPCODE_BINARY):
                self.recving_frames = frame.opcode
            self.cont_data = [frame.opcode, frame.data]
        if frame.fin:
            self.recving_frames = None

    def is_fire(self, frame: ABNF) -> Union[bool, int]:
        return frame.fin or self.fire_cont_frame

    def extract(self, frame: ABNF) -> tuple:
        """``(opcode, frame)`` with the data joined so far (text checked as
        UTF-8 unless skipped or handed on frame by frame)."""
        data = self.cont_data
        if data is None:
            raise WebSocketProtocolException("No continuation data available")
        self.cont_data = None
        frame.data = data[1]
        if (
            not self.fire_cont_frame
            and data[0] == ABNF.OPCODE_TEXT
            and not self.skip_utf8_validation
            and not validate_utf8(frame.data)
        ):
            raise WebSocketPayloadException(f"cannot decode: {frame.data!r}")
        return data[0], frame
