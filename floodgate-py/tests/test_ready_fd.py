"""The native connection's readiness descriptor (``_conn.ready_fd()``), the
file descriptor behind ``fileno()`` and ``ws.sock``: readable exactly when
a receive would not block (``floodgate-py/src/ready.rs``).

These tests drive the native contract directly; ``ws.sock``/``fileno()``
and the dispatchers built on it have tests of their own."""

import os
import select
import socket
import threading
import time

import pytest

import floodgate


def readable(fd: int, timeout: float = 0.0) -> bool:
    r, _, _ = select.select([fd], [], [], timeout)
    return bool(r)


def wait_readable(fd: int, timeout: float = 2.0) -> bool:
    return readable(fd, timeout)


@pytest.fixture
def ws(server):
    ws = floodgate.create_connection(server.url("/echo"), timeout=5)
    yield ws
    ws.shutdown()


def test_readable_exactly_while_messages_are_buffered(ws):
    fd = ws._conn.ready_fd()
    assert not readable(fd), "readable with nothing buffered"
    for n in range(3):
        ws.send(f"m{n}")
    # Wait until all three echoes are buffered.
    deadline = time.monotonic() + 2
    while ws._conn.pending() < 3 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert ws._conn.pending() == 3
    assert readable(fd)
    assert ws.recv() == "m0"
    assert readable(fd), "two messages left, but not readable"
    assert ws.recv() == "m1"
    assert readable(fd)
    assert ws.recv() == "m2"
    assert not readable(fd), "still readable after the buffer was emptied"
    assert ws._conn.pending() == 0


def test_wakes_on_arrival_and_not_before(ws):
    fd = ws._conn.ready_fd()
    assert not readable(fd, 0.05)
    sent = time.monotonic()
    ws.send("ping me")
    assert wait_readable(fd), "the echo never made the descriptor readable"
    woke = time.monotonic() - sent
    assert woke < 1.0
    assert ws.recv() == "ping me"
    assert not readable(fd)


def test_recv_batch_darkens_it(ws):
    fd = ws._conn.ready_fd()
    for n in range(10):
        ws.send(str(n))
    deadline = time.monotonic() + 2
    while ws._conn.pending() < 10 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert readable(fd)
    assert ws.recv_batch(100) == [str(n) for n in range(10)]
    assert not readable(fd)


def test_readable_at_the_end_and_stays_readable(ws):
    fd = ws._conn.ready_fd()
    ws.send("close:1000:done")
    assert wait_readable(fd)
    assert ws.recv() == ""  # websocket-client's recv() for the server's close
    # The end: a receive raises at once, so it stays readable.
    assert readable(fd)
    with pytest.raises(floodgate.WebSocketConnectionClosedException):
        ws.recv()
    assert readable(fd)


def test_abort_makes_a_waiting_select_return(ws):
    fd = ws._conn.ready_fd()
    threading.Timer(0.1, ws.abort).start()
    assert wait_readable(fd), "abort() did not wake a select on the descriptor"


def test_same_descriptor_each_time_and_not_inherited(ws):
    fd = ws._conn.ready_fd()
    assert ws._conn.ready_fd() == fd
    assert not os.get_inheritable(fd)


def test_socket_fd_is_the_connection_socket(ws):
    fd = ws._conn.socket_fd()
    assert fd is not None
    s = socket.socket(fileno=os.dup(fd))
    try:
        # floodgate sets TCP_NODELAY on every connection.
        assert s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        assert s.getpeername()[1] == int(ws._url.rsplit(":", 1)[1].split("/")[0])
    finally:
        s.close()
    # Closing the duplicate left the connection alone.
    ws.send("still here")
    assert ws.recv() == "still here"
