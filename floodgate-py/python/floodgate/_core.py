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

import logging
import socket
import ssl
import struct
import threading
from typing import Any, Callable, Dict, List, Optional, Union

from . import _floodgate
from . import _logging
from . import _transport
from ._abnf import DEFAULT_MAX_MESSAGE_SIZE, ABNF, STATUS_NORMAL, continuous_frame, frame_buffer
from ._exceptions import (
    WebSocketBadStatusException,
    WebSocketConnectionClosedException,
    WebSocketException,
    WebSocketUnsupportedException,
)
from ._logging import isEnabledForTrace, trace
from ._options import normalise_ignoring_unknown
from ._sock import NativeSocket
# websocket-client's module-level names for the socket I/O of _send/_recv
# (tests patch ``websocket._core.send``).
from ._transport import recv, send
from ._utils import NoLock

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


_log = logging.getLogger("websocket")

# get_mask_key on a connection floodgate opened: said once per process.
_mask_key_logged = False
_mask_key_lock = threading.Lock()


def _log_mask_key_once() -> None:
    global _mask_key_logged
    with _mask_key_lock:
        if _mask_key_logged:
            return
        _mask_key_logged = True
    _log.warning(
        "get_mask_key/set_mask_key: a connection floodgate opened masks its frames in Rust "
        "with keys from the OS's random source (RFC 6455 wants them unpredictable), so the "
        "function is not called for it; it is used where Python frames the bytes "
        "(ABNF.format(), a socket given as ws.sock)"
    )


class WebSocket:
    """A WebSocket connection with websocket-client's methods.

    >>> import floodgate as websocket
    >>> ws = websocket.WebSocket()
    >>> ws.connect("ws://127.0.0.1:9001/")          # doctest: +SKIP
    >>> ws.send("Hello, Server")                      # doctest: +SKIP
    >>> ws.recv()                                     # doctest: +SKIP
    'Hello, Server'
    >>> ws.close()                                    # doctest: +SKIP

    The constructor takes websocket-client's arguments (``get_mask_key``,
    ``sockopt``, ``sslopt``, ``fire_cont_frame``, ``enable_multithread``,
    ``skip_utf8_validation``, ``dispatcher``) and floodgate's
    (``max_messages``, ``max_bytes``, ``overflow``, ``key``,
    ``classifier``, ``compression``, ``spill_dir``, ...), which become the
    defaults of ``connect``.

    Two transports: ``connect()`` opens a floodgate connection, read and
    written by a Rust thread into a bounded buffer (``ws.sock`` is then a
    ``NativeSocket``: ``fileno()`` is readable when ``recv()`` would not
    block). An object the application assigns to ``ws.sock`` (a socket,
    or a mock with ``recv``/``send``) is instead framed and parsed in
    Python, as websocket-client does (``_transport.py``).

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
        get_mask_key: Optional[Callable[[int], Union[bytes, str]]] = None,
        sockopt: Any = None,
        sslopt: Optional[dict] = None,
        fire_cont_frame: bool = False,
        enable_multithread: bool = True,
        skip_utf8_validation: bool = False,
        dispatcher: Any = None,
        **options: Any,
    ) -> None:
        self._defaults: Dict[str, Any] = dict(options)
        for name, value in (("sockopt", sockopt), ("sslopt", sslopt)):
            if value:
                self._defaults[name] = value
        # Checked now, so that a refused option fails at once. Unknown
        # names are ignored (and logged once), as websocket-client's
        # constructor ignores them (``**_``).
        normalise_ignoring_unknown(**self._defaults)
        #: The mask key function (``set_mask_key``) of frames framed in
        #: Python; a native connection masks with OS-random keys.
        self.get_mask_key = get_mask_key
        self.dispatcher = dispatcher
        # websocket-client's frame reader and fragment joiner: used for a
        # socket the application gives (``ws.sock = ...``).
        # Bounded by max_message_size= (floodgate's 64 MiB by default),
        # which websocket-client's are not.
        max_size = options.get("max_message_size") or DEFAULT_MAX_MESSAGE_SIZE
        self.frame_buffer = frame_buffer(self._recv, skip_utf8_validation, max_size)
        self.cont_frame = continuous_frame(fire_cont_frame, skip_utf8_validation, max_size)
        if enable_multithread:
            self.lock: Any = threading.Lock()
            self.readlock: Any = threading.Lock()
        else:
            self.lock = NoLock()
            self.readlock = NoLock()
        self._conn: Optional[Any] = None
        # None, a NativeSocket over _conn, or the application's object.
        self._sock: Any = None
        # overflow="spill": close() lets the connection go even after the
        # server's close (see close()).
        self._spills = False
        # The last connection's stats(), once it was let go.
        self._last_stats: Optional[Dict[str, float]] = None
        self._timeout: Optional[float] = None
        # fire_cont_frame on a native connection: the frames recorded by
        # the reader (connect(fragments=True)) and those not yet returned.
        self._fragments: Any = None
        self._queued_frames: List[tuple] = []
        # The native connection's end was reported by a receive (see
        # _native_recv).
        self._end_reported = False
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

    # ----- the socket -------------------------------------------------------

    @property
    def sock(self) -> Any:
        """``None`` when not connected; on a connection floodgate opened, a
        ``NativeSocket`` (``_sock.py``); else the object the application
        assigned, which this WebSocket then reads and writes in Python."""
        return self._sock

    @sock.setter
    def sock(self, value: Any) -> None:
        if value is self._sock:
            return
        if self._conn is not None and not (isinstance(value, NativeSocket) and value._conn is self._conn):
            # The application's object replaces floodgate's connection.
            self._let_native_go()
        self._sock = value

    def _let_native_go(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.abort()
            self._last_stats = conn.stats()
        if isinstance(self._sock, NativeSocket):
            self._sock._closed = True
            self._sock = None
        self._queued_frames = []

    def fileno(self) -> int:
        """``sock.fileno()``: on a floodgate connection, a descriptor that
        is readable exactly when ``recv()`` would not block (see
        ``_sock.py``). ``WebSocketException`` when not connected."""
        if self._sock is None:
            raise WebSocketException("Connection not established")
        return self._sock.fileno()

    def set_mask_key(self, func: Callable[[int], Union[bytes, str]]) -> None:
        """Sets the function that makes mask keys (``func(4)`` returns 4
        bytes), for the frames framed in Python (a socket given as
        ``ws.sock``). A connection floodgate opened masks in Rust with
        keys from the OS's random source (logged once)."""
        self.get_mask_key = func
        if self._conn is not None:
            _log_mask_key_once()

    # ----- options ----------------------------------------------------------

    def gettimeout(self) -> Optional[Union[int, float]]:
        """The timeout of each receive (seconds; ``None``: none)."""
        return self._timeout

    def settimeout(self, timeout: Optional[Union[int, float]]) -> None:
        """Sets the timeout of each receive (seconds; ``None``: none); also
        the timeout of a socket the application gave.

        Sends on a floodgate connection are bounded by the ``timeout``
        given to ``connect`` (websocket-client's socket timeout covers
        both)."""
        if timeout is not None and timeout < 0:
            raise ValueError("timeout must be at least 0, or None")
        self._timeout = timeout
        sock = self._sock
        if sock is not None and not isinstance(sock, NativeSocket):
            sock.settimeout(timeout)

    timeout = property(gettimeout, settimeout)

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
        """Whether the connection is TLS (``wss://``, or an
        ``ssl.SSLSocket`` given as ``ws.sock``)."""
        if self._conn is not None:
            return bool(getattr(self, "_url", "").lower().startswith("wss://"))
        try:
            return isinstance(self._sock, ssl.SSLSocket)
        except (AttributeError, NameError, TypeError):
            return False

    def connect(self, url: str, **options: Any) -> None:
        """Connects to ``url`` (``ws://``, ``wss://``) with
        websocket-client's options (``header``, ``cookie``, ``origin``,
        ``subprotocols``, ``timeout``, ``connection``, ``http_proxy_host``,
        ...) and floodgate's (see the class docs). ``timeout`` becomes the
        timeout of each receive too (``gettimeout()``); a
        ``Sec-WebSocket-Protocol`` in ``header`` is offered with
        ``subprotocols``; unknown names are ignored, as websocket-client
        ignores them (logged once each on the ``websocket`` logger)."""
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
        fire_cont_frame = bool(self.cont_frame.fire_cont_frame)
        if fire_cont_frame and merged.get("compression"):
            raise WebSocketUnsupportedException(
                "fire_cont_frame=True with compression=True is not supported by floodgate: "
                "the frames of a compressed message cannot be handed on one by one"
            )
        # WebSocketApp's (and fire_cont_frame's): record the frames of
        # fragmented messages, and the pings and pongs from the first one.
        fragments = bool(merged.pop("_fragments", False)) or fire_cont_frame
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
        try:
            conn = _floodgate.connect(url, normalised, fragments, control, keepalive)
        except WebSocketBadStatusException as e:
            # websocket-client's words, which programs match on ("Handshake
            # status 401"); floodgate's account stays in ``explanation``.
            e.explanation = str(e)
            e.args = (
                f"Handshake status {e.status_code} {e.status_message} -+-+- "
                f"{e.resp_headers} -+-+- {e.resp_body}",
            )
            raise
        if isinstance(self._sock, NativeSocket):
            self._sock._closed = True
        self._conn = conn
        self._sock = NativeSocket(self, conn)
        self._spills = normalised["overflow"] == "spill"
        self._last_stats = None
        self._url = url
        self._queued_frames = []
        self._end_reported = False
        if fire_cont_frame:
            from ._app import _Fragments  # _app imports this module

            self._fragments = _Fragments()
        if self.get_mask_key is not None:
            _log_mask_key_once()
        if _logging._trace_enabled:
            headers = "\n".join(f"{k}: {v}" for k, v in conn.headers)
            _logging.dump("response header", f"HTTP/1.1 {conn.status}\n{headers}")
        self.connected = True
        self.close_frame = None

    # ----- the Python transport's I/O (websocket-client's names) ------------

    def _send(self, data: Union[str, bytes]) -> int:
        if self._sock is None:
            raise WebSocketConnectionClosedException("socket is already closed.")
        return send(self._sock, data)

    def _recv(self, bufsize: int) -> bytes:
        if self._sock is None:
            raise WebSocketConnectionClosedException("Connection is closed")
        try:
            return recv(self._sock, bufsize)
        except WebSocketConnectionClosedException:
            if self._sock is not None:
                self._sock.close()
            self._sock = None
            self.connected = False
            raise

    # ----- the native connection's ends, in websocket-client's words -----------

    def _native_recv(self, conn: Any, *args: Any) -> tuple:
        """``conn.recv``; the end of the connection is reported as
        websocket-client reports it: "Connection to remote host was lost."
        once (then ``sock`` is ``None`` and ``connected`` False), then
        "Connection is closed". floodgate's own account (who ended it, the
        close code) is the exception's ``__cause__``. The native connection
        is kept until ``close()``/``shutdown()`` (its ``stats()``, and its
        ready descriptor stays valid for a loop still watching it)."""
        try:
            return conn.recv(self._timeout, *args)
        except WebSocketConnectionClosedException as e:
            if not _plain_end(e) or conn is not self._conn:
                raise
            if self._end_reported:
                raise WebSocketConnectionClosedException("Connection is closed") from e
            self._end_reported = True
            self.connected = False
            if isinstance(self._sock, NativeSocket):
                self._sock = None
            raise WebSocketConnectionClosedException("Connection to remote host was lost.") from e

    @staticmethod
    def _native_send(send_fn: Callable[..., None], *args: Any) -> None:
        try:
            send_fn(*args)
        except WebSocketConnectionClosedException as e:
            if not _plain_end(e):
                raise
            raise WebSocketConnectionClosedException("socket is already closed.") from e

    # ----- sending ----------------------------------------------------------

    def _connection(self):
        if self._conn is None:
            raise WebSocketConnectionClosedException("socket is already closed.")
        return self._conn

    def send(self, payload: Union[bytes, str], opcode: int = ABNF.OPCODE_TEXT) -> int:
        """Sends ``payload`` as one message (``opcode``: ``ABNF.OPCODE_TEXT``
        by default, or ``OPCODE_BINARY``, ``OPCODE_PING``, ...); returns the
        bytes the frame takes."""
        conn = self._conn
        if conn is None:
            return self.send_frame(ABNF.create_frame(payload, opcode))
        if _logging._trace_enabled:
            _logging.trace(f"++Sent decoded: opcode={opcode} data={_logging._any(payload)}")
        if opcode == ABNF.OPCODE_TEXT:
            text = payload if isinstance(payload, str) else bytes(payload).decode("utf-8")
            self._native_send(conn.send_text, text)
            return _frame_length(len(text) if text.isascii() else len(text.encode("utf-8")))
        data = _as_bytes(payload)
        if opcode == ABNF.OPCODE_BINARY:
            self._native_send(conn.send_binary, data)
        elif opcode == ABNF.OPCODE_PING:
            self._native_send(conn.ping, data)
        elif opcode == ABNF.OPCODE_PONG:
            self._native_send(conn.pong, data)
        elif opcode == ABNF.OPCODE_CLOSE:
            code, reason = STATUS_NORMAL, ""
            if len(data) >= 2:
                code = struct.unpack("!H", data[:2])[0]
                reason = data[2:].decode("utf-8")
            self.send_close(code, reason)
        else:
            self._native_send(conn.send_frame, opcode, data, True)
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
        ``fin=0``, then ``OPCODE_CONT`` frames. Returns the bytes the frame
        takes."""
        conn = self._conn
        if conn is None:
            # Framed here, over the application's socket (_transport.py).
            if self.get_mask_key:
                frame.get_mask_key = self.get_mask_key
            data = frame.format()
            length = len(data)
            if isEnabledForTrace():
                trace(f"++Sent raw: {data!r}")
                trace(f"++Sent decoded: {frame}")
            with self.lock:
                while data:
                    sent = self._send(data)
                    data = data[sent:]
            return length
        data = _as_bytes(frame.data)
        self._native_send(conn.send_frame, frame.opcode, data, bool(frame.fin))
        return _frame_length(len(data))

    def ping(self, payload: Union[str, bytes] = "") -> None:
        """Sends a ping."""
        if self._conn is None:
            self.send(_as_bytes(payload), ABNF.OPCODE_PING)
        else:
            self._native_send(self._conn.ping, _as_bytes(payload))

    def pong(self, payload: Union[str, bytes] = "") -> None:
        """Sends a pong."""
        if self._conn is None:
            self.send(_as_bytes(payload), ABNF.OPCODE_PONG)
        else:
            self._native_send(self._conn.pong, _as_bytes(payload))

    # ----- receiving --------------------------------------------------------

    def _closed_by_server(self, payload: bytes) -> None:
        self.connected = False
        self.close_frame = ABNF(1, 0, 0, 0, ABNF.OPCODE_CLOSE, 0, payload)

    def recv(self) -> Union[str, bytes]:
        """The next message: ``str`` for text, ``bytes`` for binary. After
        the server's close, ``""`` once, then
        ``WebSocketConnectionClosedException``."""
        conn = self._conn
        if conn is None or self._fragments is not None:
            with self.readlock:
                opcode, data = self.recv_data()
            if opcode == ABNF.OPCODE_TEXT:
                return data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data
            if opcode == ABNF.OPCODE_BINARY:
                return data
            return ""
        opcode, data = self._native_recv(conn)
        if _logging._trace_enabled:
            _logging.trace(f"++Rcv decoded: opcode={opcode} data={_logging._any(data)}")
        if opcode == ABNF.OPCODE_CLOSE:
            self._closed_by_server(data)
            return ""
        return data

    def recv_data(self, control_frame: bool = False) -> tuple:
        """``(opcode, data)`` of the next message, ``data`` as bytes. With
        ``control_frame``, pings (already answered) and pongs too."""
        conn = self._conn
        if conn is None or self._fragments is not None:
            opcode, frame = self.recv_data_frame(control_frame)
            return opcode, frame.data
        opcode, data = self._native_recv(conn, control_frame, True)
        if opcode == ABNF.OPCODE_CLOSE:
            self._closed_by_server(data)
        return opcode, data

    def recv_data_frame(self, control_frame: bool = False) -> tuple:
        """``(opcode, ABNF)`` of the next message. On a floodgate
        connection a whole message is one frame with ``fin=1`` (the reader
        reassembles fragments), unless ``fire_cont_frame=True``: then each
        fragment comes on its own, the first with the message's opcode,
        the next ones as ``OPCODE_CONT``, as websocket-client gives them."""
        conn = self._conn
        if conn is None:
            return _transport.recv_data_frame(self, control_frame)
        if self._fragments is not None:
            return self._next_fragment(conn, control_frame)
        opcode, data = self.recv_data(control_frame)
        return opcode, ABNF(1, 0, 0, 0, opcode, 0, data)

    def _next_fragment(self, conn: Any, control_frame: bool) -> tuple:
        """fire_cont_frame on a native connection: the frames the reader
        recorded for the next message, one per call."""
        if self._queued_frames:
            return self._queued_frames.pop(0)
        opcode, data = self._native_recv(conn, control_frame, True)
        if opcode == ABNF.OPCODE_CLOSE:
            self._closed_by_server(data)
        if opcode in (ABNF.OPCODE_TEXT, ABNF.OPCODE_BINARY):
            recorded, _dropped = conn.fragments()
            self._fragments.take(recorded)
            # _Fragments matches text as str (the reader validated it).
            message = data.decode("utf-8") if opcode == ABNF.OPCODE_TEXT else data
            frames = self._fragments.frames_of(message)
            if frames:
                out = []
                for i, (_opcode, frame_data, fin) in enumerate(frames):
                    frame_opcode = opcode if i == 0 else ABNF.OPCODE_CONT
                    out.append((frame_opcode, ABNF(int(fin), 0, 0, 0, frame_opcode, 0, frame_data)))
                self._queued_frames.extend(out[1:])
                return out[0]
        return opcode, ABNF(1, 0, 0, 0, opcode, 0, data)

    def recv_frame(self) -> ABNF:
        """The next frame. On a floodgate connection, the next message as
        one frame (see ``recv_data_frame``)."""
        if self._conn is None:
            return self.frame_buffer.recv_frame()
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
        answering pings whatever the consumer does; ``ping_round_trips``,
        ``last_ping_rtt`` (seconds, ``None`` until measured) and
        ``max_ping_rtt`` time the keepalive's own pings. After ``close()``
        (or ``shutdown()``), the last connection's figures.

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
        if self._conn is None:
            self.send(struct.pack("!H", status) + _reason_bytes(reason), ABNF.OPCODE_CLOSE)
            return
        self._conn.send_close(status, _reason(reason))

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
        if self._conn is None:
            if not self.connected:
                return
            if status < 0 or status >= ABNF.LENGTH_16:
                raise ValueError("code is invalid range")
            _transport.close(self, status, _reason_bytes(reason), timeout)
            return
        if not self.connected and not self._spills:
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
        elif self.connected and self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except (OSError, AttributeError):
                # Never connected, or already closed: abort is best-effort.
                _logging.debug("Socket already closed during abort")

    def shutdown(self) -> None:
        """Closes the socket at once, without a close handshake, and lets
        the connection go (``stats()`` keeps its last figures)."""
        sock = self._sock
        self._let_native_go()
        self._sock = None
        if sock is not None and not isinstance(sock, NativeSocket):
            try:
                # websocket-client's check: a socket already closed is left.
                if not sock._closed:
                    sock.close()
            except (OSError, AttributeError):
                _logging.debug("Socket already closed during shutdown")
        self.connected = False


def _plain_end(e: BaseException) -> bool:
    """Whether ``e`` is the plain end of a connection, which websocket-client
    words its own way (not floodgate's subclasses: a buffer overflow, a
    refused spill; not a ping timeout)."""
    return type(e) is WebSocketConnectionClosedException and not getattr(e, "_pong_timeout", False)


def _reason(reason: Union[str, bytes]) -> str:
    if isinstance(reason, (bytes, bytearray)):
        return bytes(reason).decode("utf-8")
    return reason or ""


def _reason_bytes(reason: Union[str, bytes, None]) -> bytes:
    """A close reason as UTF-8 bytes (websocket-client takes both)."""
    if reason is None:
        return b""
    if isinstance(reason, str):
        return reason.encode("utf-8")
    return bytes(reason)


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
