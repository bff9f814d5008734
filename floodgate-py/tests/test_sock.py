"""``ws.sock`` and ``fileno()`` of a connection floodgate opened
(``_sock.py``): the descriptor is readable exactly when ``recv()`` would
not block, so ``select``, ``poll``, ``selectors`` and dispatchers
(``run_forever(dispatcher=...)``, e.g. ``rel``) wait on it. Where the
behaviour is websocket-client's, the test runs on both libraries.
"""

import select
import selectors
import socket
import statistics
import threading
import time

import pytest
import websocket as websocket_client

import floodgate


@pytest.fixture(params=["floodgate", "websocket-client"])
def lib(request):
    return floodgate if request.param == "floodgate" else websocket_client


def readable(obj, timeout=0.0) -> bool:
    r, _, _ = select.select([obj], [], [], timeout)
    return bool(r)


def test_sock_is_none_until_connected_and_after_close(lib, server):
    ws = lib.WebSocket()
    assert ws.sock is None
    ws.connect(server.url("/echo"), timeout=5)
    assert ws.sock is not None
    assert ws.fileno() == ws.sock.fileno() >= 0
    ws.close()
    assert ws.sock is None


def test_fileno_is_the_ready_descriptor(server):
    ws = floodgate.create_connection(server.url("/echo"), timeout=5)
    try:
        assert ws.fileno() == ws._conn.ready_fd()
        assert ws.fileno() != ws._conn.socket_fd()
    finally:
        ws.close()


def test_select_wakes_within_10ms_of_a_message_and_not_before(server):
    """The time from the send of a message the echo server returns to the
    wake-up of a select() on ``ws.sock`` includes the loopback round trip
    and the server's own handling, so it bounds the wake-up's delay from
    above; no wake-up comes before the send."""
    ws = floodgate.create_connection(server.url("/echo"), timeout=5)
    delays = []
    try:
        for i in range(30):
            assert not readable(ws.sock, 0.02), "readable before anything was sent"
            sent_at = []
            threading.Timer(0.01, lambda: (sent_at.append(time.perf_counter()), ws.send(f"m{i}"))).start()
            r, _, _ = select.select([ws.sock], [], [], 5)
            woke = time.perf_counter()
            assert r, "select() did not wake for the echo"
            assert sent_at and woke >= sent_at[0]
            delays.append(woke - sent_at[0])
            assert ws.recv() == f"m{i}"
            assert not readable(ws.sock), "still readable after the only message was taken"
    finally:
        ws.close()
    # Median well inside 10 ms; the worst case has margin for a loaded CI machine.
    assert statistics.median(delays) < 0.010, delays
    assert max(delays) < 0.050, delays


def test_selectors_and_poll_register_the_object(server):
    ws = floodgate.create_connection(server.url("/echo"), timeout=5)
    try:
        with selectors.DefaultSelector() as sel:
            sel.register(ws.sock, selectors.EVENT_READ, "ws")
            assert sel.select(0.05) == []
            ws.send("one")
            events = sel.select(5)
            assert [key.data for key, _ in events] == ["ws"]
            assert ws.sock.pending() == 1
            assert ws.recv() == "one"
            assert sel.select(0.05) == []
        poll = select.poll()
        poll.register(ws.sock, select.POLLIN)  # kubernetes' stream does this
        assert poll.poll(50) == []
        ws.send("two")
        assert poll.poll(5000) == [(ws.fileno(), select.POLLIN)]
        poll.unregister(ws.sock)
        assert ws.recv() == "two"
        # The WebSocket itself (fileno()), as kubernetes' port-forward selects it,
        # also for writing.
        _, w, _ = select.select([], [ws], [], 1)
        assert w == [ws]
    finally:
        ws.close()


def test_the_end_of_the_connection_makes_it_readable(server):
    ws = floodgate.create_connection(server.url("/echo"), timeout=5)
    ws.send("close:1000:bye")
    assert readable(ws.sock, 5)
    assert ws.recv() == ""
    assert ws.close_frame.data[2:] == b"bye"
    ws.close()


def test_socket_options_reach_the_real_socket(lib, server):
    ws = lib.create_connection(server.url("/echo"), timeout=5)
    try:
        assert ws.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        assert ws.sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 0)
        assert ws.sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 0
        host, port = ws.sock.getpeername()
        assert host == "127.0.0.1" and port == server.port
        ws.send("still works")
        assert ws.recv() == "still works"
    finally:
        ws.close()


def test_sock_send_takes_client_frames(lib, server):
    """kubernetes' port-forward writes ``ABNF.create_frame(...).format()``
    bytes with ``ws.sock.send``; a frame may be cut between two calls."""
    ws = lib.create_connection(server.url("/echo"), timeout=5)
    try:
        data = lib.ABNF.create_frame(b"\x00forwarded", lib.ABNF.OPCODE_BINARY).format()
        data += lib.ABNF.create_frame("text too", lib.ABNF.OPCODE_TEXT).format()
        cut = len(data) - 3
        sent = ws.sock.send(data[:cut])
        sent += ws.sock.send(data[sent:])
        assert sent == len(data)
        assert ws.recv() == b"\x00forwarded"
        assert ws.recv() == "text too"
    finally:
        ws.close()


def test_sock_send_refuses_bytes_that_are_not_client_frames(server):
    ws = floodgate.create_connection(server.url("/echo"), timeout=5)
    try:
        with pytest.raises(floodgate.WebSocketProtocolException, match="client frames"):
            ws.sock.send(b"\x81\x02hi")  # unmasked: a server's frame
    finally:
        ws.close()


def test_sock_timeout_is_the_websockets(server):
    ws = floodgate.create_connection(server.url("/echo"), timeout=5)
    try:
        ws.sock.settimeout(0.2)
        assert ws.gettimeout() == 0.2 and ws.sock.gettimeout() == 0.2
        started = time.monotonic()
        with pytest.raises(floodgate.WebSocketTimeoutException):
            ws.recv()
        assert 0.15 < time.monotonic() - started < 2
    finally:
        ws.close()


def test_sock_close_ends_the_connection(server):
    ws = floodgate.create_connection(server.url("/echo"), timeout=5)
    sock = ws.sock
    sock.close()
    assert ws.sock is None and not ws.connected
    assert sock.fileno() == -1
    with pytest.raises(floodgate.WebSocketConnectionClosedException):
        ws.send("x")


# ----- run_forever(dispatcher=...) -----------------------------------------------------


class Dispatcher:
    """A small dispatcher with rel's interface (what websocket-client's
    WrappedDispatcher calls): ``read(sock, callback)`` watches a socket
    until the callback returns False, ``timeout(seconds, callback, *args)``
    calls later, ``signal``/``abort``; ``dispatch()`` runs the loop until
    nothing is left to watch or wait for."""

    def __init__(self):
        self._selector = selectors.DefaultSelector()
        self._timers = []
        self._stop = False
        self.reads = 0

    def read(self, sock, callback):
        self._selector.register(sock, selectors.EVENT_READ, callback)

    def timeout(self, seconds, callback, *args):
        self._timers.append((time.monotonic() + seconds, callback, args))

    def signal(self, sig, callback):
        pass

    def abort(self):
        self._stop = True

    def buffwrite(self, sock, data, send, handle_disconnect):
        send(sock, data)

    def dispatch(self, limit=60.0):
        deadline = time.monotonic() + limit
        while not self._stop and (self._selector.get_map() or self._timers):
            assert time.monotonic() < deadline, "the dispatcher ran past its limit"
            for key, _ in self._selector.select(0.05):
                self.reads += 1
                if not key.data():
                    self._selector.unregister(key.fileobj)
            now = time.monotonic()
            for timer in [t for t in self._timers if t[0] <= now]:
                self._timers.remove(timer)
                timer[1](*timer[2])


def test_dispatcher_driven_run_forever_handles_10000_messages(lib, feed):
    got = []
    closed = []
    errors = []
    app = lib.WebSocketApp(
        feed.url(rate=0, count=10000, size=32),
        on_message=lambda a, m: got.append(m),
        on_close=lambda a, code, reason: closed.append(code),
        on_error=lambda a, e: errors.append(e),
    )
    dispatcher = Dispatcher()
    assert app.run_forever(dispatcher=dispatcher) is False  # returns at once
    dispatcher.dispatch()
    assert len(got) == 10000
    assert got[0] != got[-1]
    assert len(closed) == 1
    assert closed == [1000]
    assert [(type(e).__name__, str(e)) for e in errors] == [
        ("WebSocketConnectionClosedException", "Connection closed normally (code 1000): feed complete")
    ]
    if lib is floodgate:
        # Several messages per wake-up: recv_batch takes what is buffered.
        assert dispatcher.reads < 10000


def test_dispatcher_app_close_from_a_callback(server):
    """close() from a handler: the connection's end makes the ready
    descriptor readable, the next read callback tears down (on_close) and
    stops the watch. (websocket-client closes its socket there, which this
    small dispatcher then waits on for ever: floodgate only.)"""
    lib = floodgate
    events = []

    def on_message(app, message):
        events.append(message)
        app.close()

    app = lib.WebSocketApp(
        server.url("/echo"),
        on_open=lambda a: a.send("hello"),
        on_message=on_message,
        on_close=lambda a, code, reason: events.append("closed"),
        on_error=lambda a, e: events.append(("error", e)),
    )
    dispatcher = Dispatcher()
    app.run_forever(dispatcher=dispatcher)
    dispatcher.dispatch(limit=10)
    assert events == ["hello", "closed"]


def test_rel_runs_the_app(lib, feed):
    """The dispatcher libraries use: rel (pinned in the test requirements
    once the lead adds it; skipped where it is not installed)."""
    rel = pytest.importorskip("rel")
    got = []
    events = []

    def on_close(app, code, reason):
        events.append(("close", code))
        rel.abort()

    app = lib.WebSocketApp(
        feed.url(rate=0, count=10000, size=32),
        on_message=lambda a, m: got.append(m),
        on_close=on_close,
        on_error=lambda a, e: events.append(("error", type(e).__name__)),
    )
    app.run_forever(dispatcher=rel)
    guard = threading.Timer(60, rel.abort)
    guard.start()
    try:
        rel.dispatch()
    finally:
        guard.cancel()
    assert len(got) == 10000
    assert events == [("error", "WebSocketConnectionClosedException"), ("close", 1000)]
