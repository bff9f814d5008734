"""websocket-client's ``WebSocketApp`` over a floodgate connection.

The callbacks, their arguments and their order are websocket-client's
(1.9.2): ``on_open`` (``on_reconnect`` after a reconnect), ``on_data`` and
``on_message`` per message, ``on_ping``/``on_pong``, ``on_cont_message``
per continuation frame, ``on_error`` and, once at the end, ``on_close``.
What changes is underneath:

- the connection's reader is a Rust thread that answers pings and fills a
  bounded buffer whatever the handlers do, so a slow ``on_message`` never
  makes the server's pings wait; the App's thread takes messages from that
  buffer in batches (``recv_batch``), which costs little per message;
- ``ping_interval``/``ping_timeout`` are the connection's own timers, set
  at connect and run by that Rust thread, not by a Python one;
- ``workers=N`` (and ``worker_key=``) run ``on_message`` on a pool of
  Python threads fed through a small bounded queue, so the backlog stays
  in floodgate's buffer, where the ``overflow`` policy applies;
- floodgate's buffer options (``max_messages``, ``overflow``, ``key``,
  ``classifier``, ``compression``, ...) are keyword arguments of
  ``WebSocketApp(...)``, and ``app.stats()`` shows what the buffer did.

Where the behaviour differs from websocket-client, the class docs say so
(and ``docs/python.md``).
"""

import logging
import queue
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

from ._abnf import ABNF
from ._core import WebSocket, getdefaulttimeout
from ._exceptions import (
    WebSocketConnectionClosedException,
    WebSocketException,
    WebSocketTimeoutException,
    WebSocketUnsupportedException,
)
from ._options import normalise

__all__ = ["WebSocketApp", "set_reconnect"]

# websocket-client's logger (see _logging.py).
_log = logging.getLogger("websocket")

#: The default of ``run_forever(reconnect=None)``: seconds between
#: reconnects, 0 for none (``set_reconnect``).
RECONNECT = 0

#: The most messages taken from floodgate's buffer at once.
_BATCH = 256
#: About how much handling time the App's thread takes out of floodgate's
#: buffer at once (seconds). A slow handler then takes few messages at a
#: time, so the backlog waits in the buffer, under its overflow policy, and
#: what the handler gets is the freshest the policy kept; a fast one still
#: takes hundreds per call.
_HOLD = 0.005
#: How long the App's thread waits for messages before it looks at the
#: control frames (with ``on_ping``/``on_pong``) and at ``keep_running``.
_SLICE_CONTROL = 0.02
_SLICE = 0.25
#: Fragmented messages whose frames wait for their message (on_cont_message).
_GROUPS_KEPT = 1024
#: How long a full worker queue is waited on before ``keep_running`` is
#: looked at again.
_PUT_SLICE = 0.05


def set_reconnect(reconnectInterval: Union[int, float]) -> None:  # noqa: N803
    """Sets the delay (seconds) ``run_forever`` waits between reconnects when
    its ``reconnect`` is not given (websocket-client's ``set_reconnect``);
    0: no reconnect."""
    global RECONNECT
    RECONNECT = reconnectInterval


class _Workers:
    """``workers=N``: N Python threads running the per-message callbacks.

    Fed through bounded queues (N messages for the shared queue, 2 per
    thread with a key function), so that a slow pool makes the App's
    thread wait, and the backlog stays in floodgate's buffer. With
    ``key``, each message goes to the thread ``hash(key(message)) % N``:
    messages with the same key are handled one at a time, in order.
    """

    def __init__(self, app: "WebSocketApp", count: int, key: Optional[Callable[[Any], Any]]) -> None:
        self._app = app
        self._key = key
        self._discarding = False
        if key is None:
            self._queues = [queue.Queue(maxsize=count)]
            feeds = [self._queues[0]] * count
        else:
            self._queues = [queue.Queue(maxsize=2) for _ in range(count)]
            feeds = self._queues
        self._threads = [
            threading.Thread(target=self._run, args=(q,), name=f"floodgate-worker-{i}", daemon=True)
            for i, q in enumerate(feeds)
        ]
        for thread in self._threads:
            thread.start()

    def _run(self, feed: "queue.Queue") -> None:
        while True:
            task = feed.get()
            try:
                if task is None:
                    return
                if not self._discarding:
                    task()
            except BaseException as e:  # noqa: BLE001 - a worker must survive
                # _callback passes on what is not an Exception (SystemExit,
                # KeyboardInterrupt raised in the handler): log it here.
                _log.error("error from a worker: %r", e)
            finally:
                feed.task_done()

    def submit(self, message: Any, task: Callable[[], None]) -> bool:
        """Queues ``task``; waits while the queue is full. False when the
        App stopped meanwhile (the task is dropped)."""
        if self._key is None:
            feed = self._queues[0]
        else:
            try:
                index = hash(self._key(message)) % len(self._queues)
            except Exception as e:
                self._app._error(self._key, e)
                index = 0
            feed = self._queues[index]
        while True:
            try:
                feed.put(task, timeout=_PUT_SLICE)
                return True
            except queue.Full:
                if not self._app.keep_running:
                    return False

    def drain(self) -> None:
        """Waits until every queued task has run."""
        for feed in self._queues:
            feed.join()

    def discard(self) -> None:
        """Drops the queued tasks; waits for the running ones."""
        self._discarding = True
        try:
            self.drain()
        finally:
            self._discarding = False

    def stop(self) -> None:
        """Ends the threads (after what is queued)."""
        if self._key is None:
            for _ in self._threads:
                self._queues[0].put(None)
        else:
            for feed in self._queues:
                feed.put(None)


class _Fragments:
    """Matches the frames the reader recorded (``connect(fragments=True)``)
    to the whole messages taken from the buffer, for ``on_cont_message``.

    A fragmented message's frames are recorded before the message reaches
    the buffer, so they are there when the message is taken. Messages the
    buffer's policy dropped leave their frames behind; a message whose data
    matches a later group of frames drops the groups before it.
    """

    def __init__(self) -> None:
        self._partial: List[Tuple[int, bytes, bool]] = []
        self._groups: List[Tuple[int, bytes, List[Tuple[int, bytes, bool]]]] = []

    def take(self, recorded: List[Tuple[int, bytes, bool]]) -> None:
        for frame in recorded:
            self._partial.append(frame)
            if frame[2]:
                frames, self._partial = self._partial, []
                self._groups.append((frames[0][0], b"".join(f[1] for f in frames), frames))
        # Groups whose messages the buffer dropped: keep a bounded few.
        if len(self._groups) > _GROUPS_KEPT:
            del self._groups[: len(self._groups) - _GROUPS_KEPT]

    def frames_of(self, message: Union[str, bytes]) -> Optional[List[Tuple[int, bytes, bool]]]:
        if not self._groups:
            return None
        opcode = ABNF.OPCODE_TEXT if isinstance(message, str) else ABNF.OPCODE_BINARY
        data = message.encode("utf-8") if isinstance(message, str) else message
        for i, (group_opcode, joined, frames) in enumerate(self._groups):
            if group_opcode == opcode and joined == data:
                del self._groups[: i + 1]
                return frames
        return None


def _pong_timeout(e: BaseException) -> bool:
    """Whether ``e`` ended a connection whose pings went unanswered (the
    native module marks it)."""
    return bool(getattr(e, "_pong_timeout", False))


def _close_frame(payload: Optional[bytes]) -> Optional[ABNF]:
    if payload is None:
        return None
    return ABNF(1, 0, 0, 0, ABNF.OPCODE_CLOSE, 0, payload)


class WebSocketApp:
    """websocket-client's event-driven client: give callbacks, call
    ``run_forever()``.

    >>> import floodgate as websocket
    >>> def on_message(ws, message):
    ...     print(message)
    ...     ws.close()
    >>> app = websocket.WebSocketApp("ws://127.0.0.1:9001/",
    ...     on_open=lambda ws: ws.send("Hello"), on_message=on_message,
    ...     max_messages=10_000, overflow="drop_oldest")      # doctest: +SKIP
    >>> app.run_forever(ping_interval=10, ping_timeout=5,
    ...     reconnect=5)                                      # doctest: +SKIP

    Callbacks take the app first, as in websocket-client:
    ``on_open(ws)``, ``on_reconnect(ws)``, ``on_message(ws, str | bytes)``,
    ``on_data(ws, data, opcode, fin)``, ``on_ping(ws, bytes)``,
    ``on_pong(ws, bytes)``, ``on_cont_message(ws, bytes, fin)``,
    ``on_error(ws, exception)``, ``on_close(ws, status_code, reason)``.
    An exception from a callback goes to ``on_error``.

    floodgate's keyword arguments:

    - ``workers=N``: ``on_data``/``on_cont_message``/``on_message`` run on
      a pool of N Python threads instead of the App's thread. The pool is
      fed through a bounded queue (N messages), so a slow pool leaves the
      backlog in floodgate's buffer, under its ``overflow`` policy. Messages
      are then handled concurrently, out of order; ``on_open``,
      ``on_ping``, ``on_pong``, ``on_error`` (for errors of the
      connection) and ``on_close`` stay on the App's thread, and
      ``on_close`` comes after the pool has handled every message taken
      (messages still queued when ``close()`` is called are dropped).
    - ``worker_key=fn`` (with ``workers=N``): each message goes to the
      thread ``hash(fn(message)) % N``, so that messages with the same key
      are handled in order, one at a time (``fn`` gets the ``str`` or
      ``bytes`` message).
    - every buffer and connection option of ``create_connection``
      (``max_messages``, ``max_bytes``, ``overflow``, ``block_timeout``,
      ``then``, ``key``, ``classifier``, the spill's ``spill_dir``,
      ``max_disk_bytes``, ``spill_fallback``, ``durable`` and
      ``fsync_interval``, ``compression``,
      ``close_timeout``, ``max_message_size``, ``tls_roots``,
      ``unix_socket``, ``proxy``, ``no_proxy``, ``timeout``,
      ``redirect_limit``, ...), used for every connection.

    Differences from websocket-client 1.9.2:

    - refused with ``WebSocketUnsupportedException``: ``socket`` (by the
      constructor), ``suppress_host=True``, ``http_proxy_timeout`` and the options
      ``create_connection`` refuses (by ``run_forever``, before
      connecting, not through ``on_error``), ``on_cont_message`` with
      ``compression=True``;
    - with ``on_cont_message``, a fragmented message reaches
      ``on_message`` whole, after ``on_data``/``on_cont_message`` for its
      frames (websocket-client gives ``on_message`` the first frame only),
      and the first frame's ``on_data`` gets ``fin=0`` (not ``True``);
    - ``on_ping``/``on_pong`` come from a tap the App's thread reads
      between batches: their order relative to messages is approximate;
      the pings were answered by Rust before;
    - pings (``ping_interval``) are sent by a Rust thread, which also ends
      the connection when no pong comes within ``ping_timeout`` of a ping;
      ``last_ping_tm`` stays 0, ``last_pong_tm`` is kept only with
      ``on_ping``/``on_pong``;
    - ``close()`` during a reconnect wait ends ``run_forever`` at once,
      with no reconnect; ``close()`` from another thread gives
      ``on_close`` the server's answer;
    - ``skip_utf8_validation``: text still arrives as ``bytes``, but
      floodgate validates it anyway (invalid UTF-8 closes with 1007);
    - ``sock`` is floodgate's ``WebSocket`` (``sock.sock`` is its
      ``NativeSocket``, whose ``fileno()`` is readable when messages are
      buffered); ``ready()`` returns a ``bool``;
    - ``run_forever(dispatcher=...)`` hands that descriptor to the
      dispatcher (``dispatcher.read(ws.sock, callback)``) and returns at
      once; each wake-up handles what is buffered, with no
      ``check_callback`` timer (the Rust reader runs the pings);
    - ``get_mask_key`` is accepted but the connection masks with OS-random
      keys (logged once);
    - with ``overflow="spill"``, ``close()`` leaves the buffered messages
      where they are (see ``WebSocket.close``), so ``on_close`` gets
      ``(None, None)`` after it; with ``durable=True`` they are delivered
      first by the next connection on ``spill_dir``, except those the
      App's thread had already taken in its last batch and not handled.

    ``docs/python.md`` has the whole list.
    """

    def __init__(
        self,
        url: str,
        header: Union[List[str], Dict[str, str], Callable[[], Union[List[str], Dict[str, str]]], None] = None,
        on_open: Optional[Callable[["WebSocketApp"], None]] = None,
        on_reconnect: Optional[Callable[["WebSocketApp"], None]] = None,
        on_message: Optional[Callable[["WebSocketApp", Any], None]] = None,
        on_error: Optional[Callable[["WebSocketApp", Any], None]] = None,
        on_close: Optional[Callable[["WebSocketApp", Any, Any], None]] = None,
        on_ping: Optional[Callable] = None,
        on_pong: Optional[Callable] = None,
        on_cont_message: Optional[Callable] = None,
        keep_running: bool = True,
        get_mask_key: Optional[Callable] = None,
        cookie: Optional[str] = None,
        subprotocols: Optional[List[str]] = None,
        on_data: Optional[Callable] = None,
        socket: Any = None,
        workers: int = 0,
        worker_key: Optional[Callable[[Any], Any]] = None,
        **options: Any,
    ) -> None:
        """Stores the URL, the callbacks and the options; connects only in
        ``run_forever``. Raises ``WebSocketUnsupportedException`` for
        ``socket`` and options floodgate cannot honour,
        ``TypeError`` for unknown options, ``ValueError`` for a bad
        ``workers``/``worker_key``."""
        if socket is not None:
            raise WebSocketUnsupportedException(
                "socket= (a pre-made socket) is not supported by floodgate: "
                "it opens its own; for a Unix socket use unix_socket=path"
            )
        if not isinstance(workers, int) or isinstance(workers, bool) or workers < 0:
            raise ValueError(f"workers={workers!r}: give a number of threads, 0 for none")
        if worker_key is not None and workers < 1:
            raise ValueError("worker_key needs workers=N (N >= 1)")
        if on_cont_message is not None and options.get("compression"):
            raise WebSocketUnsupportedException(
                "on_cont_message with compression=True is not supported by floodgate: "
                "compressed frames cannot be matched to their messages"
            )
        # Refused and unknown options fail now, not at the first connect.
        normalise(**options)
        self.url = url
        self.header = header if header is not None else []
        self.cookie = cookie

        self.on_open = on_open
        self.on_reconnect = on_reconnect
        self.on_message = on_message
        self.on_data = on_data
        self.on_error = on_error
        self.on_close = on_close
        self.on_ping = on_ping
        self.on_pong = on_pong
        self.on_cont_message = on_cont_message
        self.keep_running = False
        # Given to each connection's WebSocket; its frames are masked in
        # Rust with OS-random keys (logged once, see WebSocket.set_mask_key).
        self.get_mask_key = get_mask_key
        #: The current connection (a floodgate ``WebSocket``), ``None``
        #: between runs.
        self.sock: Optional[WebSocket] = None
        self.last_ping_tm = float(0)
        self.last_pong_tm = float(0)
        self.ping_interval: Union[float, int] = float(0)
        self.ping_timeout: Optional[Union[float, int]] = None
        self.ping_payload: Union[str, bytes] = ""
        self.subprotocols = subprotocols
        self.prepared_socket = None
        self.has_errored = False
        self.has_done_teardown = False
        self.has_done_teardown_lock = threading.Lock()
        #: The server's close frame (an ``ABNF``) of the last connection.
        self.last_close_frame: Optional[ABNF] = None
        self.workers = workers
        self.worker_key = worker_key
        self._options = dict(options)
        self._conn: Any = None  # the native connection, kept for stats()
        self._last_stats: Dict[str, float] = {}  # stats() once it was let go
        self._pool: Optional[_Workers] = None
        self._closing = False
        self._stopped = threading.Event()
        self._close_lock = threading.Lock()
        # run_forever(dispatcher=...): the dispatcher, and the frames of
        # fragmented messages (on_cont_message) of the current connection.
        self._dispatcher: Any = None
        self._dispatch_fragments: Optional[_Fragments] = None

    # ----- sending ----------------------------------------------------------

    def send(self, data: Union[bytes, str], opcode: int = ABNF.OPCODE_TEXT) -> None:
        """Sends ``data`` as one message (``opcode``: ``ABNF.OPCODE_TEXT``
        by default). Raises ``WebSocketConnectionClosedException`` when
        there is no open connection. Safe from any thread."""
        sock = self.sock
        if not sock or sock.send(data, opcode) == 0:
            raise WebSocketConnectionClosedException("Connection is already closed.")

    def send_text(self, text_data: str) -> None:
        """Sends a text message."""
        self.send(text_data, ABNF.OPCODE_TEXT)

    def send_bytes(self, data: Union[bytes, bytearray]) -> None:
        """Sends a binary message."""
        self.send(data, ABNF.OPCODE_BINARY)

    # ----- state ------------------------------------------------------------

    def close(self, **kwargs: Any) -> None:
        """Closes the connection (``status``, ``reason``, ``timeout`` as
        ``WebSocket.close``) and ends ``run_forever``: at once from a
        handler or another thread, with no reconnect after it, also during
        a reconnect wait. Messages not yet handled are dropped."""
        self.keep_running = False
        self._closing = True
        self._stopped.set()
        # Held until the server's close frame is known, so that on_close
        # (on the App's thread) reports it.
        with self._close_lock:
            sock = self.sock
            if sock:
                sock.close(**kwargs)
                if sock.close_frame is not None:
                    self.last_close_frame = sock.close_frame
                self.sock = None

    def ready(self) -> bool:
        """Whether a connection is open."""
        sock = self.sock
        conn = sock._conn if sock else None
        return bool(sock and sock.connected and conn is not None and conn.is_open)

    def stats(self) -> Dict[str, float]:
        """floodgate's: the buffer's counters of the current connection (of
        the last one once it has ended; ``{}`` before the first). See
        ``WebSocket.stats``; each reconnect starts from zero."""
        conn = self._conn
        return conn.stats() if conn is not None else dict(self._last_stats)

    # ----- the loop ---------------------------------------------------------

    def run_forever(
        self,
        sockopt: Optional[list] = None,
        sslopt: Optional[dict] = None,
        ping_interval: Union[float, int] = 0,
        ping_timeout: Optional[Union[float, int]] = None,
        ping_payload: Union[str, bytes] = "",
        http_proxy_host: Optional[str] = None,
        http_proxy_port: Optional[Union[int, str]] = None,
        http_no_proxy: Optional[list] = None,
        http_proxy_auth: Optional[tuple] = None,
        http_proxy_timeout: Optional[float] = None,
        skip_utf8_validation: bool = False,
        host: Optional[str] = None,
        origin: Optional[str] = None,
        dispatcher: Any = None,
        suppress_origin: bool = False,
        suppress_host: bool = False,
        proxy_type: Optional[str] = None,
        reconnect: Optional[Union[int, float]] = None,
    ) -> bool:
        """Connects and calls the callbacks until the connection ends (or,
        with ``reconnect``, until ``close()``).

        ``ping_interval`` (seconds, 0: none): a ping that often, sent by a
        Rust thread; ``ping_timeout``: no pong within it ends the
        connection with ``WebSocketTimeoutException("ping/pong timed
        out")``. ``reconnect`` (seconds; ``None``: the ``set_reconnect``
        value, 0: none): the delay before connecting again after the
        connection ended or failed. The other arguments are
        websocket-client's connect options.

        Returns ``True`` if an error ended a connection (a failed connect,
        a drop, a ping timeout, an interrupt), ``False`` after a close
        handshake or ``close()``.

        ``dispatcher`` (e.g. ``rel``): as websocket-client, the dispatcher's
        loop runs the App and ``run_forever`` returns at once.

        Raises ``WebSocketException`` for an invalid ``ping_interval`` /
        ``ping_timeout`` or when already running, and
        ``WebSocketUnsupportedException`` for ``suppress_host=True`` and
        options floodgate cannot honour.
        """
        if reconnect is None:
            reconnect = RECONNECT
        if ping_timeout is not None and ping_timeout <= 0:
            raise WebSocketException("Ensure ping_timeout > 0")
        if ping_interval is not None and ping_interval < 0:
            raise WebSocketException("Ensure ping_interval >= 0")
        if ping_timeout and ping_interval and ping_interval <= ping_timeout:
            raise WebSocketException("Ensure ping_interval > ping_timeout")
        if suppress_host:
            raise WebSocketUnsupportedException(
                "suppress_host=True is not supported by floodgate: "
                "the Host header is required by HTTP/1.1; give another with host="
            )
        if self.sock:
            raise WebSocketException("socket is already opened")

        # Given here, they override those given to WebSocketApp(...).
        ctor = {
            name: value
            for name, value in (
                ("sockopt", sockopt),
                ("sslopt", sslopt),
                ("skip_utf8_validation", skip_utf8_validation),
            )
            if value
        }
        connect_options = {
            "cookie": self.cookie,
            "http_proxy_host": http_proxy_host,
            "http_proxy_port": http_proxy_port,
            "http_no_proxy": http_no_proxy,
            "http_proxy_auth": http_proxy_auth,
            "http_proxy_timeout": http_proxy_timeout,
            "subprotocols": self.subprotocols,
            "host": host,
            "origin": origin,
            "suppress_origin": suppress_origin,
            "proxy_type": proxy_type,
        }
        # What run_forever leaves at its default does not reset an option
        # given to WebSocketApp(...).
        for name in [n for n, v in connect_options.items() if not v and n in self._options]:
            del connect_options[name]
        # Options floodgate refuses fail here, not as a connect error.
        normalise(**{**self._options, **ctor, **connect_options})

        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.ping_payload = ping_payload
        self.has_done_teardown = False
        self.has_errored = False
        self.keep_running = True
        self._closing = False
        self._stopped.clear()
        self._skip_utf8_validation = bool(
            skip_utf8_validation or self._options.get("skip_utf8_validation")
        )
        self._reconnect = reconnect
        self._ctor = ctor
        self._connect_options = connect_options
        if self.workers:
            self._pool = _Workers(self, self.workers, self.worker_key)

        self._dispatcher = dispatcher
        if dispatcher is not None:
            # As websocket-client's WrappedDispatcher: the dispatcher's loop
            # (rel.dispatch()) runs the App; run_forever returns at once.
            dispatcher.signal(2, dispatcher.abort)  # keyboard interrupt
            self._dispatch_connect(reconnecting=False)
            return self.has_errored

        try:
            self._connect_and_read(reconnecting=False)
            while self.keep_running and reconnect:
                _log.debug("reconnecting in %s seconds", reconnect)
                if self._stopped.wait(reconnect) or not self.keep_running:
                    break
                self._connect_and_read(reconnecting=True)
        except (KeyboardInterrupt, Exception) as e:
            _log.info("tearing down on exception %r", e)
            self._teardown()
        finally:
            self._teardown()
            pool, self._pool = self._pool, None
            if pool is not None:
                pool.stop()
            self._let_go()
        return self.has_errored

    def _let_go(self) -> None:
        """Drops the last connection's native object, keeping its figures
        for ``stats()``. It holds the connection's buffer, and with
        ``overflow="spill"`` the spill's files (``durable=True``: the lock
        of its directory, which the next connection on it needs)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            self._last_stats = conn.stats()

    def _connect_and_read(self, reconnecting: bool) -> None:
        """One connection: connect, ``on_open``/``on_reconnect``, read until
        it ends; then what websocket-client's ``handleDisconnect`` does."""
        try:
            ws = self._open(reconnecting)
            close_frame = self._read(ws, self._conn)
        except (KeyboardInterrupt, SystemExit, Exception) as e:
            self._disconnected(e, reconnecting)
            return
        if close_frame is not None:
            self._closed(close_frame)
        else:
            # close() (or keep_running set to False) stopped it.
            self._teardown()

    # ----- run_forever(dispatcher=...) ---------------------------------------

    def _dispatch_connect(self, reconnecting: bool = False) -> None:
        """Connects and hands the connection's ready descriptor
        (``ws.sock``) to the dispatcher, which calls ``_dispatch_read`` when
        messages are buffered (or the connection ended)."""
        if not self.keep_running:
            return
        try:
            ws = self._open(reconnecting)
            conn = self._conn
            self._dispatcher.read(ws.sock, lambda: self._dispatch_read(ws, conn))
        except (KeyboardInterrupt, SystemExit, Exception) as e:
            self._disconnected(e, reconnecting)
            self._dispatch_done()

    def _dispatch_read(self, ws: WebSocket, conn: Any) -> bool:
        """The dispatcher's read callback: handles the messages buffered
        now (never waits). False tells the dispatcher to stop watching."""
        if not self.keep_running:
            self._teardown()
            self._dispatch_done()
            return False
        if self.sock is not ws:
            return False
        control = self.on_ping is not None or self.on_pong is not None
        try:
            try:
                # 0: what is buffered now; a wake-up with nothing is a timeout.
                batch = conn.recv_batch(_BATCH, 0)
            except WebSocketTimeoutException:
                batch = []
            except WebSocketConnectionClosedException as e:
                close_frame = self._end_of(ws, conn, e, control)
                if close_frame is not None:
                    self._closed(close_frame)
                else:
                    self._teardown()
                self._dispatch_done()
                return False
        except (KeyboardInterrupt, SystemExit, Exception) as e:
            self._disconnected(e, False)
            self._dispatch_done()
            return False
        self._hand_out(conn, batch, control, self._dispatch_fragments)
        return True

    def _hand_out(self, conn: Any, batch: Any, control: bool, fragments: Optional["_Fragments"]) -> None:
        """Gives a batch to the handlers (through the pool, with workers),
        after the control frames and the fragments recorded with it."""
        if control:
            self._control_frames(conn)
        if fragments is not None:
            recorded, _dropped = conn.fragments()
            fragments.take(recorded)
        for message in batch:
            if not self.keep_running:
                break
            frames = fragments.frames_of(message) if fragments is not None else None
            if self._pool is not None:
                self._pool.submit(message, lambda m=message, f=frames: self._handle(m, f))
            else:
                self._handle(message, frames)

    def _dispatch_done(self) -> None:
        """After a connection ended under a dispatcher: a reconnect is
        scheduled on the dispatcher (websocket-client's
        ``WrappedDispatcher.reconnect``), or the App is finished."""
        if self._reconnect and self.keep_running:
            self._dispatcher.timeout(self._reconnect, self._dispatch_connect, True)
            return
        self._teardown()
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.stop()
        self._let_go()

    def _open(self, reconnecting: bool) -> WebSocket:
        """Connects a new WebSocket (``self.sock``) and calls ``on_open``
        (``on_reconnect``)."""
        if reconnecting and self.sock:
            self.sock.shutdown()
        self._let_go()
        self.last_close_frame = None
        ws = WebSocket(**{**self._options, **self._ctor}, get_mask_key=self.get_mask_key)
        self.sock = ws
        ws.settimeout(getdefaulttimeout())
        keepalive = None
        if self.ping_interval:
            payload = self.ping_payload
            if isinstance(payload, str):
                payload = payload.encode("utf-8")
            keepalive = (
                float(self.ping_interval),
                float(self.ping_timeout) if self.ping_timeout else None,
                bytes(payload),
            )
        header = self.header() if callable(self.header) else self.header
        ws.connect(
            self.url,
            header=header,
            _fragments=self.on_cont_message is not None,
            _control=self.on_ping is not None or self.on_pong is not None,
            # Pings from the connection's first instant (see
            # _floodgate.connect): no thread, no late start.
            _keepalive=keepalive,
            **self._connect_options,
        )
        self._conn = ws._conn
        self._dispatch_fragments = _Fragments() if self.on_cont_message is not None else None
        _log.info("Websocket connected")
        if reconnecting and self.on_reconnect:
            self._callback(self.on_reconnect)
        else:
            self._callback(self.on_open)
        return ws

    def _read(self, ws: WebSocket, conn: Any) -> Optional[ABNF]:
        """Takes messages until the connection ends: returns the server's
        close frame after a close handshake, ``None`` when ``close()``
        stopped it; raises for anything else."""
        control = self.on_ping is not None or self.on_pong is not None
        fragments = _Fragments() if self.on_cont_message is not None else None
        slice_ = _SLICE_CONTROL if control else _SLICE
        # Starts small and doubles while the handlers keep up (see _HOLD).
        take = 8
        while self.keep_running:
            try:
                batch = conn.recv_batch(take, slice_)
            except WebSocketTimeoutException:
                batch = ()
            except WebSocketConnectionClosedException as e:
                return self._end_of(ws, conn, e, control)
            started = time.perf_counter()
            self._hand_out(conn, batch, control, fragments)
            if batch:
                # With workers this is the pool's pace: submit waits for room.
                per_message = (time.perf_counter() - started) / len(batch)
                fits = int(_HOLD / per_message) if per_message > 0 else _BATCH
                take = max(1, min(_BATCH, 2 * take, fits))
        return None

    def _end_of(self, ws: WebSocket, conn: Any, e: WebSocketConnectionClosedException, control: bool) -> Optional[ABNF]:
        """The end of a connection (``e`` from a receive): the server's
        close frame after a close handshake, ``None`` when the App's own
        ``close()`` ended it; raises what ``on_error`` gets otherwise."""
        ws.connected = False
        payload = getattr(e, "close_payload", None)
        if payload is not None:
            ws.close_frame = _close_frame(payload)
        if control:
            self._control_frames(conn)
        self._wait_for_workers()
        if not self.keep_running:
            # close() from another thread: its handshake ended it.
            if self.last_close_frame is None:
                self.last_close_frame = ws.close_frame
            return None
        if _pong_timeout(e):
            raise WebSocketTimeoutException("ping/pong timed out") from e
        if payload is not None:
            return ws.close_frame
        if ws._conn is not conn:
            # The application shut this connection down itself
            # (``app.sock.shutdown()``), not the server. websocket-client
            # learns it from its ping check ("ping/pong timed out") when
            # pings are on (it waits for ever otherwise); say which end
            # closed it rather than blame the server.
            if self.ping_timeout:
                raise WebSocketTimeoutException("ping/pong timed out") from e
            raise WebSocketConnectionClosedException("socket is already closed.") from e
        if type(e) is WebSocketConnectionClosedException:
            # The server (or the network) ended it without a close
            # handshake: websocket-client's words; floodgate's account
            # (code 1006, who ended it) is the cause.
            raise WebSocketConnectionClosedException("Connection to remote host was lost.") from e
        raise e

    def _handle(self, message: Union[str, bytes], frames: Optional[list]) -> None:
        """The callbacks of one message: ``on_data`` (and
        ``on_cont_message``) for its frames, then ``on_message``."""
        if not self.keep_running:
            return
        opcode = ABNF.OPCODE_TEXT if isinstance(message, str) else ABNF.OPCODE_BINARY
        if self._skip_utf8_validation and opcode == ABNF.OPCODE_TEXT:
            # websocket-client does not decode text without validation.
            message = message.encode("utf-8")
        if frames:
            first_opcode, first_data, first_fin = frames[0]
            if first_opcode == ABNF.OPCODE_TEXT and not self._skip_utf8_validation:
                try:
                    first_data = first_data.decode("utf-8")
                except UnicodeDecodeError:
                    pass  # the frame ends inside a character: bytes, then
            self._callback(self.on_data, first_data, first_opcode, int(first_fin))
            # fin as websocket-client gives a frame's: 0 or 1.
            for _opcode, data, fin in frames[1:]:
                self._callback(self.on_data, data, ABNF.OPCODE_CONT, int(fin))
                self._callback(self.on_cont_message, data, int(fin))
        else:
            self._callback(self.on_data, message, opcode, True)
        self._callback(self.on_message, message)

    def _control_frames(self, conn: Any) -> None:
        for opcode, data in conn.control_frames():
            if not self.keep_running:
                return
            if opcode == ABNF.OPCODE_PING:
                self._callback(self.on_ping, data)
            elif opcode == ABNF.OPCODE_PONG:
                self.last_pong_tm = time.time()
                self._callback(self.on_pong, data)

    def _wait_for_workers(self) -> None:
        pool = self._pool
        if pool is None:
            return
        if self.keep_running:
            pool.drain()
        else:
            pool.discard()

    # ----- the end of a connection (websocket-client's names) ---------------

    def _closed(self, close_frame: ABNF) -> None:
        """The server's close frame: websocket-client's ``closed``."""
        code, reason = self._parse_close_frame(close_frame)
        if code is None:
            message = "Connection closed"
        elif code == 1000:
            message = "Connection closed normally (code 1000)"
        else:
            message = f"Connection closed (code {code})"
        if reason:
            message = f"{message}: {reason}"
        converted = WebSocketConnectionClosedException(message)
        converted.status_code = code
        converted.reason = reason
        self._disconnected(converted, bool(self._reconnect), close_frame=close_frame)

    def _disconnected(
        self, e: BaseException, reconnecting: bool = False, close_frame: Optional[ABNF] = None
    ) -> bool:
        """websocket-client's ``handleDisconnect``."""
        if close_frame is None:
            self.has_errored = True
        if _pong_timeout(e) and close_frame is None:
            e = WebSocketTimeoutException("ping/pong timed out")
        if not reconnecting:
            self._callback(self.on_error, e)
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            self._teardown(close_frame)
            raise e
        if self._reconnect and self.keep_running:
            _log.info("%s - reconnect", e)
            if self._pool is not None:
                self._pool.drain()
        else:
            _log.error("%s - goodbye", e)
            self._teardown(close_frame)
        return self.has_errored

    def _teardown(self, close_frame: Optional[ABNF] = None) -> None:
        """Once per ``run_forever``: stops everything, then ``on_close``."""
        with self.has_done_teardown_lock:
            if self.has_done_teardown:
                return
            self.has_done_teardown = True
        self.keep_running = False
        pool = self._pool
        if pool is not None:
            if self._closing:
                pool.discard()
            else:
                pool.drain()
        if self._closing:
            # close() from another thread: wait for its handshake (bounded
            # by its timeout; this bound only guards against a stuck one).
            if self._close_lock.acquire(timeout=30):
                self._close_lock.release()
        if self.sock:
            current, self.sock = self.sock, None
            # As websocket-client: the answer to this close is not
            # reported (on_close gets the close frame that ended the
            # connection, or the one close() got).
            current.close()
            current.shutdown()
        effective = close_frame if close_frame else self.last_close_frame
        code, reason = self._get_close_args(effective)
        self._callback(self.on_close, code, reason)

    def _get_close_args(self, close_frame: Optional[ABNF]) -> List[Optional[Union[int, str]]]:
        """``[status_code, reason]`` of the close frame (``[None, None]``
        without one, or without ``on_close``)."""
        if not close_frame:
            return [None, None]
        code, reason = self._parse_close_frame(close_frame)
        if not self.on_close:
            return [None, None]
        return [code, reason]

    def _parse_close_frame(self, close_frame: Optional[ABNF]) -> Tuple[Optional[int], Optional[str]]:
        """The code and UTF-8 reason of a close frame (``None`` for each
        that is missing)."""
        if not close_frame or not getattr(close_frame, "data", None):
            return (None, None)
        data = close_frame.data
        if isinstance(data, str):
            data = data.encode("utf-8")
        data = bytes(data)
        if len(data) < 2:
            return (None, None)
        code = 256 * data[0] + data[1]
        rest = data[2:]
        if not rest:
            return (code, None)
        return (code, rest.decode("utf-8", errors="replace"))

    def _callback(self, callback: Optional[Callable], *args: Any) -> None:
        """Calls ``callback(self, *args)``; an exception goes to
        ``on_error`` (unless it came from ``on_error``)."""
        if callback:
            try:
                callback(self, *args)
            except Exception as e:
                self._error(callback, e)

    def _error(self, callback: Any, e: Exception) -> None:
        _log.error("error from callback %r: %s", callback, e)
        if self.on_error and callback is not self.on_error:
            self.on_error(self, e)
