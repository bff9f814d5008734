"""websocket-client's ``WebSocket`` and ``create_connection``, over a
floodgate buffered connection.

The difference that matters: the connection's reader is a Rust thread
that never needs the GIL. It reads, answers pings, handles the server's
close and fills a bounded buffer while Python does something else, so a
slow ``recv`` loop never makes the server's pings wait and never lets the
backlog grow without bound (the ``overflow`` policy decides; ``stats()``
shows what it did). ``recv`` takes from that buffer.

Behaviour that differs from websocket-client is listed in
``docs/python.md`` ("coming from websocket-client").
"""

import socket
import struct
from typing import Any, Dict, List, Optional, Union

from . import _floodgate
from ._abnf import ABNF, STATUS_NORMAL
from ._exceptions import (
    WebSocketConnectionClosedException,
    WebSocketUnsupportedException,
)
from . import _logging
from ._options import normalise_ignoring_unknown

__all__ = [
    "DEFAULT_SOCKET_OPTION",
    "WebSocket",
    "create_connection",
    "getdefaulttimeout",
    "setdefaulttimeout",
]

_default_timeout: Optional[float] = None

#: The socket options floodgate sets on every connection (websocket-client's
#: name; its own list adds keepalive timings floodgate leaves to the kernel
#: unless ``sockopt`` asks for SO_KEEPALIVE).
DEFAULT_SOCKET_OPTION = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]


def setdefaulttimeout(timeout: Optional[Union[int, float]]) -> None:
    """Sets the timeout that ``create_connection`` uses when given none."""
    global _default_timeout
    _default_timeout = timeout


def getdefaulttimeout() -> Optional[Union[int, float]]:
    """The timeout ``create_connection`` uses when given none."""
    return _default_timeout


def _frame_length(payload_length: int) -> int:
    """The bytes a client frame with this payload takes on the wire."""
    if payload_length < 126:
        header = 2
    elif payload_length < 1 << 16:
        header = 4
    else:
        header = 10
    return header + 4 + payload_length


def _as_bytes(payload: Union[str, bytes, bytearray, memoryview]) -> bytes:
    if isinstance(payload, str):
        return payload.encode("utf-8")
    return bytes(payload)


class WebSocket:
    """A WebSocket connection with websocket-client's methods.

    >>> import floodgate as websocket
    >>> ws = websocket.WebSocket()
    >>> ws.connect("ws://127.0.0.1:9001/")          # doctest: +SKIP
    >>> ws.send("Hello, Server")                      # doctest: +SKIP
    >>> ws.recv()                                     # doctest: +SKIP
    'Hello, Server'
    >>> ws.close()                                    # doctest: +SKIP

    The constructor takes websocket-client's arguments (``sockopt``,
    ``sslopt``, ``enable_multithread``, ``skip_utf8_validation``; see
    ``docs/python.md`` for ``fire_cont_frame``, ``get_mask_key`` and
    ``dispatcher``, which are refused) and floodgate's (``max_messages``,
    ``max_bytes``, ``overflow``, ``key``, ``classifier``, ``compression``,
    ``spill_dir``, ...), which become the defaults of ``connect``.

    ``overflow="spill"`` keeps every message without slowing the server:
    past the memory limits, messages go to files under ``spill_dir`` and
    come back in order. ``max_disk_bytes`` bounds the disk (1 GiB by
    default), ``spill_fallback`` (``"disconnect"``, ``"block"`` or
    ``"drop_newest"``) says what happens past it, ``durable=True`` keeps
    the spill for the next connection on the directory (synced every
    ``fsync_interval`` seconds). See ``docs/python.md``.
    """

    def __init__(
        self,
        get_mask_key: Any = None,
        sockopt: Any = None,
        sslopt: Optional[dict] = None,
        fire_cont_frame: bool = False,
        enable_multithread: bool = True,
        skip_utf8_validation: bool = False,
        dispatcher: Any = None,
        **options: Any,
    ) -> None:
        self._defaults: Dict[str, Any] = dict(options)
        for name, value in (
            ("get_mask_key", get_mask_key),
            ("sockopt", sockopt),
            ("sslopt", sslopt),
            ("fire_cont_frame", fire_cont_frame),
            ("dispatcher", dispatcher),
        ):
            if value:
                self._defaults[name] = value
        # Checked now, so that a refused option fails at once. Unknown
        # names are ignored (and logged once), as websocket-client's
        # constructor ignores them (``**_``).
        normalise_ignoring_unknown(**self._defaults)
        self._conn: Optional[Any] = None
        # overflow="spill": close() lets the connection go even after the
        # server's close (see close()).
        self._spills = False
        # The last connection's stats(), once it was let go.
        self._last_stats: Optional[Dict[str, float]] = None
        self._timeout: Optional[float] = None
        self.connected = False
        #: The server's close frame (an ABNF), once the close handshake is done.
        self.close_frame: Optional[ABNF] = None

    # ----- iteration --------------------------------------------------------

    def __iter__(self):
        """Yields ``recv()`` for ever (until an exception)."""
        while True:
            yield self.recv()

    def __next__(self):
        return self.recv()

    def next(self):
        return self.__next__()

    # ----- options ----------------------------------------------------------

    def gettimeout(self) -> Optional[Union[int, float]]:
        """The timeout of each receive (seconds; ``None``: none)."""
        return self._timeout

    def settimeout(self, timeout: Optional[Union[int, float]]) -> None:
        """Sets the timeout of each receive (seconds; ``None``: none).

        Sends are bounded by the ``timeout`` given to ``connect``
        (websocket-client's socket timeout covers both).
        """
        if timeout is not None and timeout < 0:
            raise ValueError("timeout must be at least 0, or None")
        self._timeout = timeout

    timeout = property(gettimeout, settimeout)

    def fileno(self) -> int:
        raise WebSocketUnsupportedException(
            "fileno() is not supported by floodgate: the socket belongs to the reader "
            "thread; wait with recv(timeout) or recv_batch instead of select()"
        )

    def set_mask_key(self, func: Any) -> None:
        raise WebSocketUnsupportedException(
            "set_mask_key is not supported by floodgate: mask keys come from the OS's random source"
        )

    # ----- the handshake ----------------------------------------------------

    def getsubprotocol(self) -> Optional[str]:
        """The subprotocol the server chose."""
        return self._conn.subprotocol if self._conn is not None else None

    subprotocol = property(getsubprotocol)

    def getstatus(self) -> Optional[int]:
        """The handshake's status (101)."""
        return self._conn.status if self._conn is not None else None

    status = property(getstatus)

    def getheaders(self) -> Optional[dict]:
        """The handshake response's headers, names in lower case."""
        if self._conn is None:
            return None
        headers: Dict[str, str] = {}
        for name, value in self._conn.headers:
            # websocket-client keeps the last of repeated headers.
            headers[name] = value
        return headers

    headers = property(getheaders)

    def is_ssl(self) -> bool:
        return bool(getattr(self, "_url", "").lower().startswith("wss://"))

    def connect(self, url: str, **options: Any) -> None:
        """Connects to ``url`` (``ws://``, ``wss://``) with
        websocket-client's options (``header``, ``cookie``, ``origin``,
        ``subprotocols``, ``timeout``, ``http_proxy_host``, ...) and
        floodgate's (see the class docs). ``timeout`` becomes the timeout
        of each receive too (``gettimeout()``); a ``Sec-WebSocket-Protocol``
        in ``header`` is offered with ``subprotocols``; unknown names are
        ignored, as websocket-client ignores them (logged once each on the
        ``websocket`` logger)."""
        merged = dict(self._defaults)
        merged.update(options)
        if "timeout" in options:
            # websocket-client makes connect's timeout the socket's: it
            # bounds the handshake and then every receive (gettimeout()
            # returns it), even when the connect fails. ``timeout=None``
            # given here means no bound, as there.
            self.settimeout(options["timeout"])
        elif self._timeout is not None or "timeout" not in merged:
            # settimeout() (or create_connection's timeout) bounds the
            # handshake too, before a WebSocket(timeout=...) default.
            merged["timeout"] = self._timeout
        else:
            # WebSocket(timeout=...): a default of connect's, so the same
            # as connect(url, timeout=...).
            self.settimeout(merged["timeout"])
        # WebSocketApp's: record the frames of fragmented messages, and the
        # pings and pongs from the first one.
        fragments = bool(merged.pop("_fragments", False))
        control = bool(merged.pop("_control", False))
        # WebSocketApp's keepalive, set at connect: (interval, timeout, payload).
        keepalive = merged.pop("_keepalive", None)
        normalised = normalise_ignoring_unknown(**merged)
        if self._conn is not None and self._spills:
            # A connect on a connected WebSocket replaces the connection;
            # a spilling one goes first, as it may hold the lock of the
            # durable directory the new one needs. (Others are dropped
            # once replaced, so that a failed connect keeps them.)
            self.shutdown()
        self._conn = _floodgate.connect(url, normalised, fragments, control, keepalive)
        self._spills = normalised["overflow"] == "spill"
        self._last_stats = None
        self._url = url
        if _logging._trace_enabled:
            headers = "\n".join(f"{k}: {v}" for k, v in self._conn.headers)
            _logging.dump("response header", f"HTTP/1.1 {self._conn.status}\n{headers}")
        self.connected = True
        self.close_frame = None

    # ----- sending ----------------------------------------------------------

    def _connection(self):
        if self._conn is None:
            raise WebSocketConnectionClosedException("socket is already closed.")
        return self._conn

    def send(self, payload: Union[bytes, str], opcode: int = ABNF.OPCODE_TEXT) -> int:
        """Sends ``payload`` as one message (``opcode``: ``ABNF.OPCODE_TEXT``
        by default, or ``OPCODE_BINARY``, ``OPCODE_PING``, ...); returns the
        bytes the frame takes."""
        conn = self._connection()
        if _logging._trace_enabled:
            _logging.trace(f"++Sent decoded: opcode={opcode} data={_logging._any(payload)}")
        if opcode == ABNF.OPCODE_TEXT:
            text = payload if isinstance(payload, str) else bytes(payload).decode("utf-8")
            conn.send_text(text)
            return _frame_length(len(text) if text.isascii() else len(text.encode("utf-8")))
        data = _as_bytes(payload)
        if opcode == ABNF.OPCODE_BINARY:
            conn.send_binary(data)
        elif opcode == ABNF.OPCODE_PING:
            conn.ping(data)
        elif opcode == ABNF.OPCODE_PONG:
            conn.pong(data)
        elif opcode == ABNF.OPCODE_CLOSE:
            code, reason = STATUS_NORMAL, ""
            if len(data) >= 2:
                code = struct.unpack("!H", data[:2])[0]
                reason = data[2:].decode("utf-8")
            self.send_close(code, reason)
        else:
            conn.send_frame(opcode, data, True)
        return _frame_length(len(data))

    def send_text(self, text_data: str) -> int:
        """Sends a text message."""
        return self.send(text_data, ABNF.OPCODE_TEXT)

    def send_bytes(self, data: Union[bytes, bytearray]) -> int:
        """Sends a binary message."""
        return self.send(data, ABNF.OPCODE_BINARY)

    def send_binary(self, payload: bytes) -> int:
        """Sends a binary message."""
        return self.send(payload, ABNF.OPCODE_BINARY)

    def send_frame(self, frame: ABNF) -> int:
        """Sends one frame (``ABNF.create_frame``): a fragment with
        ``fin=0``, then ``OPCODE_CONT`` frames."""
        data = _as_bytes(frame.data)
        self._connection().send_frame(frame.opcode, data, bool(frame.fin))
        return _frame_length(len(data))

    def ping(self, payload: Union[str, bytes] = "") -> None:
        """Sends a ping."""
        self._connection().ping(_as_bytes(payload))

    def pong(self, payload: Union[str, bytes] = "") -> None:
        """Sends a pong."""
        self._connection().pong(_as_bytes(payload))

    # ----- receiving --------------------------------------------------------

    def _closed_by_server(self, payload: bytes) -> None:
        self.connected = False
        self.close_frame = ABNF(1, 0, 0, 0, ABNF.OPCODE_CLOSE, 0, payload)

    def recv(self) -> Union[str, bytes]:
        """The next message: ``str`` for text, ``bytes`` for binary. After
        the server's close, ``""`` once, then
        ``WebSocketConnectionClosedException``."""
        opcode, data = self._connection().recv(self._timeout)
        if _logging._trace_enabled:
            _logging.trace(f"++Rcv decoded: opcode={opcode} data={_logging._any(data)}")
        if opcode == ABNF.OPCODE_CLOSE:
            self._closed_by_server(data)
            return ""
        return data

    def recv_data(self, control_frame: bool = False) -> tuple:
        """``(opcode, data)`` of the next message, ``data`` as bytes. With
        ``control_frame``, pings (already answered) and pongs too."""
        opcode, data = self._connection().recv(self._timeout, control_frame, True)
        if opcode == ABNF.OPCODE_CLOSE:
            self._closed_by_server(data)
        return opcode, data

    def recv_data_frame(self, control_frame: bool = False) -> tuple:
        """``(opcode, ABNF)`` of the next message: a whole message is one
        frame with ``fin=1`` (floodgate reassembles fragments)."""
        opcode, data = self.recv_data(control_frame)
        return opcode, ABNF(1, 0, 0, 0, opcode, 0, data)

    def recv_frame(self) -> ABNF:
        """The next message as one frame (see ``recv_data_frame``)."""
        return self.recv_data_frame(True)[1]

    # floodgate's own ---------------------------------------------------------

    def recv_batch(self, max: int = 256, timeout: Optional[float] = -1) -> List[Union[str, bytes]]:
        """floodgate's: up to ``max`` messages at once, waiting for the first
        at most ``timeout`` seconds (by default the socket's timeout; ``None``
        for ever). Much cheaper per message than ``recv`` in a loop."""
        if timeout == -1:
            timeout = self._timeout
        return self._connection().recv_batch(max, timeout)

    def stats(self) -> Dict[str, float]:
        """floodgate's: the buffer's counters. ``received == delivered +
        buffered + dropped_oldest + dropped_newest + conflated + filtered``;
        ``pings_answered`` and ``max_ping_delay`` (seconds) show the reader
        answering pings whatever the consumer does. After ``close()`` (or
        ``shutdown()``), the last connection's figures.

        With ``overflow="spill"``: ``buffered`` counts memory and disk,
        ``buffered_disk`` of them on disk (``buffered_bytes`` is memory
        only, ``disk_bytes`` and ``high_water_disk_bytes`` the spill's
        files); ``spilled`` messages were ever written to disk,
        ``recovered`` found there at the start (``durable=True``, counted
        in ``received``), ``spill_refused`` times the ``spill_fallback``
        acted, ``spill_errors`` failed writes, ``spill_corrupt_records``
        damaged records skipped. They are 0 under the other policies."""
        if self._conn is None and self._last_stats is not None:
            return dict(self._last_stats)
        return self._connection().stats()

    # ----- closing ----------------------------------------------------------

    def send_close(self, status: int = STATUS_NORMAL, reason: Union[str, bytes] = b"") -> None:
        """Sends a close frame without waiting for the answer."""
        if status < 0 or status >= ABNF.LENGTH_16:
            raise ValueError("code is invalid range")
        self.connected = False
        self._connection().send_close(status, _reason(reason))

    def close(
        self,
        status: int = STATUS_NORMAL,
        reason: Union[str, bytes] = b"",
        timeout: Optional[Union[int, float]] = 3,
    ) -> None:
        """Sends the close frame, waits up to ``timeout`` seconds (``None``:
        for ever) for the server's and shuts the connection down. Messages
        arriving meanwhile are discarded, as with websocket-client.

        With ``overflow="spill"`` the buffered messages are not taken: a
        ``durable=True`` spill keeps them for the next connection on its
        ``spill_dir``, an ephemeral one is removed with the connection
        (not read back from disk to be thrown away). The server's close
        frame comes after them, so ``close()`` does not learn it
        (``close_frame`` is set only if ``recv()`` returned it). The
        connection is let go even when the server closed first, so that
        the spill's directory is released (a durable one's lock, which the
        next connection on it needs; an ephemeral one's files)."""
        if self._conn is None or (not self.connected and not self._spills):
            return
        if status < 0 or status >= ABNF.LENGTH_16:
            raise ValueError("code is invalid range")
        self.connected = False
        payload = self._conn.close(status, _reason(reason), timeout)
        if payload is not None:
            # The server's close frame, as websocket-client keeps it.
            self.close_frame = ABNF(1, 0, 0, 0, ABNF.OPCODE_CLOSE, 0, payload)
        self.shutdown()

    def abort(self) -> None:
        """Drops the transport at once; a ``recv`` blocked in another thread
        returns (with ``WebSocketConnectionClosedException``)."""
        if self._conn is not None:
            self._conn.abort()

    def shutdown(self) -> None:
        """Closes the socket at once, without a close handshake, and lets
        the connection go (``stats()`` keeps its last figures)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.abort()
            self._last_stats = conn.stats()
        self.connected = False


def _reason(reason: Union[str, bytes]) -> str:
    if isinstance(reason, (bytes, bytearray)):
        return bytes(reason).decode("utf-8")
    return reason or ""


def create_connection(
    url: str, timeout: Optional[Union[int, float]] = None, class_: type = WebSocket, **options: Any
) -> WebSocket:
    """Connects to ``url`` and returns the ``WebSocket``: websocket-client's
    ``create_connection``, with its options and floodgate's.

    >>> import floodgate as websocket
    >>> ws = websocket.create_connection("ws://127.0.0.1:9001/",
    ...     header=["User-Agent: MyProgram"], max_messages=10_000,
    ...     overflow="drop_oldest")                           # doctest: +SKIP
    """
    ctor = {
        name: options.pop(name)
        for name in (
            "sockopt",
            "sslopt",
            "fire_cont_frame",
            "enable_multithread",
            "skip_utf8_validation",
            "get_mask_key",
            "dispatcher",
        )
        if name in options
    }
    websock = class_(**ctor)
    websock.settimeout(timeout if timeout is not None else getdefaulttimeout())
    websock.connect(url, **options)
    return websock
