import floodgate as websocket

# websocket-client's documented WebSocketApp programs, written as they
# would be after `import floodgate as websocket`: on_open sends, on_message
# gets the echo, on_close gets the server's code and reason, on_error gets
# a refused connect, run_forever(reconnect=...) reconnects with
# on_reconnect, ping_interval/ping_timeout end a dead connection, callback
# errors go to on_error; then floodgate's own: a slow handler that misses
# no ping, workers=N, worker_key.

import json
import socket
import threading
import time

import pytest
from conftest import worst_round_trip


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Recorder:
    """Callbacks that record what they were called with."""

    def __init__(self):
        self.events = []
        self.lock = threading.Lock()

    def add(self, *event):
        with self.lock:
            self.events.append(event)

    def names(self):
        return [e[0] for e in self.events]

    def of(self, name):
        return [e[1:] for e in self.events if e[0] == name]


def run_in_thread(app, **kwargs):
    result = {}

    def target():
        result["value"] = app.run_forever(**kwargs)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, result


def test_on_open_sends_and_on_message_gets_the_echo(server):
    rec = Recorder()

    def on_open(ws):
        rec.add("open")
        ws.send("Hello, Server")
        ws.send_bytes(b"\x00\x01")

    def on_message(ws, message):
        rec.add("message", message)
        if message == b"\x00\x01":
            ws.close()

    app = websocket.WebSocketApp(
        server.url(),
        on_open=on_open,
        on_message=on_message,
        on_data=lambda ws, data, opcode, fin: rec.add("data", data, opcode, fin),
        on_error=lambda ws, e: rec.add("error", e),
        on_close=lambda ws, code, reason: rec.add("close", code, reason),
    )
    assert app.run_forever() is False
    assert rec.events == [
        ("open",),
        ("data", "Hello, Server", websocket.ABNF.OPCODE_TEXT, True),
        ("message", "Hello, Server"),
        ("data", b"\x00\x01", websocket.ABNF.OPCODE_BINARY, True),
        ("message", b"\x00\x01"),
        # The server's answer to our close (1000).
        ("close", 1000, None),
    ]
    assert app.sock is None and not app.ready()
    assert app.last_close_frame is not None
    stats = app.stats()
    assert stats["received"] >= 2


def test_a_server_close_gives_on_error_then_on_close_with_code_and_reason(server):
    rec = Recorder()
    app = websocket.WebSocketApp(
        server.url("/close/4001"),
        on_open=lambda ws: rec.add("open"),
        on_error=lambda ws, e: rec.add("error", e),
        on_close=lambda ws, code, reason: rec.add("close", code, reason),
    )
    assert app.run_forever() is False
    assert rec.names() == ["open", "error", "close"]
    (error,) = rec.of("error")[0]
    # websocket-client 1.9's on_error for a server close.
    assert isinstance(error, websocket.WebSocketConnectionClosedException)
    assert (error.status_code, error.reason) == (4001, "bye")
    assert str(error) == "Connection closed (code 4001): bye"
    assert rec.of("close") == [(4001, "bye")]


def test_the_echo_closes_with_the_code_and_reason_it_was_asked_for(server):
    closes = []
    app = websocket.WebSocketApp(
        server.url(),
        on_open=lambda ws: ws.send("close:4002:going away now"),
        on_close=lambda ws, code, reason: closes.append((code, reason)),
    )
    assert app.run_forever() is False
    assert closes == [(4002, "going away now")]


def test_a_refused_connect_goes_to_on_error_and_run_forever_returns_true():
    rec = Recorder()
    app = websocket.WebSocketApp(
        f"ws://127.0.0.1:{free_port()}/",
        on_open=lambda ws: rec.add("open"),
        on_error=lambda ws, e: rec.add("error", e),
        on_close=lambda ws, code, reason: rec.add("close", code, reason),
    )
    assert app.run_forever() is True
    assert rec.names() == ["error", "close"]
    assert isinstance(rec.of("error")[0][0], ConnectionRefusedError)
    assert rec.of("close") == [(None, None)]


def test_a_refused_upgrade_goes_to_on_error(server):
    errors = []
    app = websocket.WebSocketApp(server.url("/status/403"), on_error=lambda ws, e: errors.append(e))
    assert app.run_forever() is True
    assert isinstance(errors[0], websocket.WebSocketBadStatusException)
    assert errors[0].status_code == 403


def test_a_dropped_connection_is_an_error(server):
    rec = Recorder()
    app = websocket.WebSocketApp(
        server.url("/drop/3"),
        on_message=lambda ws, m: rec.add("message", m),
        on_error=lambda ws, e: rec.add("error", e),
        on_close=lambda ws, code, reason: rec.add("close", code, reason),
    )
    assert app.run_forever() is True
    assert rec.of("message") == [("message 0",), ("message 1",), ("message 2",)]
    assert isinstance(rec.of("error")[0][0], websocket.WebSocketConnectionClosedException)
    assert rec.of("close") == [(None, None)]


def test_reconnect_calls_on_reconnect_and_close_from_a_timer_ends_it(server):
    rec = Recorder()
    app = websocket.WebSocketApp(
        server.url("/count"),
        on_open=lambda ws: rec.add("open"),
        on_reconnect=lambda ws: rec.add("reconnect"),
        on_message=lambda ws, m: rec.add("message", int(m)),
        on_error=lambda ws, e: rec.add("error", e),
        on_close=lambda ws, code, reason: rec.add("close", code, reason),
    )
    thread, result = run_in_thread(app, reconnect=0.05)
    deadline = time.monotonic() + 20
    while len(rec.of("message")) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    timer = threading.Timer(0.0, app.close)
    started = time.monotonic()
    timer.start()
    thread.join(10)
    assert not thread.is_alive()
    assert time.monotonic() - started < 5
    names = rec.names()
    assert names[0] == "open" and names.count("open") == 1
    assert names.count("reconnect") >= 2
    counts = [m[0] for m in rec.of("message")]
    assert counts == sorted(counts) and len(set(counts)) == len(counts)
    # websocket-client reports the first connection's drop only.
    assert names.count("error") == 1
    assert names[-1] == "close" and names.count("close") == 1
    # Each drop was an error.
    assert result["value"] is True


def test_set_reconnect_is_the_default_of_run_forever(server):
    opened = []
    app = websocket.WebSocketApp(server.url("/count"), on_open=lambda ws: opened.append(1),
                                 on_reconnect=lambda ws: opened.append(2) or ws.close())
    websocket.set_reconnect(0.05)
    try:
        thread, result = run_in_thread(app)
        thread.join(10)
    finally:
        websocket.set_reconnect(0)
    assert not thread.is_alive()
    assert opened == [1, 2]


def test_close_during_the_reconnect_wait_ends_run_forever_at_once(server):
    app = websocket.WebSocketApp(server.url("/count"))
    thread, result = run_in_thread(app, reconnect=30)
    time.sleep(0.5)  # connected, dropped, now waiting 30 s
    started = time.monotonic()
    app.close()
    thread.join(10)
    assert not thread.is_alive()
    assert time.monotonic() - started < 2


def test_a_silent_server_ends_with_a_ping_timeout(silent):
    rec = Recorder()
    app = websocket.WebSocketApp(
        silent.url(),
        on_error=lambda ws, e: rec.add("error", e),
        on_close=lambda ws, code, reason: rec.add("close", code, reason),
    )
    started = time.monotonic()
    assert app.run_forever(ping_interval=0.4, ping_timeout=0.2) is True
    took = time.monotonic() - started
    # The first ping after 0.4 s, no pong 0.2 s later: slack for a small
    # machine.
    assert took < 0.6 + 2.0
    (error,) = rec.of("error")[0]
    assert isinstance(error, websocket.WebSocketTimeoutException)
    assert str(error) == "ping/pong timed out"
    assert rec.of("close") == [(None, None)]


def test_run_forever_checks_its_arguments(server):
    app = websocket.WebSocketApp(server.url())
    with pytest.raises(websocket.WebSocketException, match="ping_timeout > 0"):
        app.run_forever(ping_timeout=0)
    with pytest.raises(websocket.WebSocketException, match="ping_interval >= 0"):
        app.run_forever(ping_interval=-1)
    with pytest.raises(websocket.WebSocketException, match="ping_interval > ping_timeout"):
        app.run_forever(ping_interval=1, ping_timeout=1)
    # Not a dispatcher (no signal/read): websocket-client's WrappedDispatcher
    # fails the same way, before connecting.
    with pytest.raises(AttributeError):
        app.run_forever(dispatcher=object())
    with pytest.raises(TypeError):
        websocket.WebSocketApp(server.url(), no_such_option=1)

    # Already running.
    opened = threading.Event()
    app = websocket.WebSocketApp(server.url(), on_open=lambda ws: opened.set())
    thread, _ = run_in_thread(app)
    assert opened.wait(10)
    with pytest.raises(websocket.WebSocketException, match="already opened"):
        app.run_forever()
    app.close()
    thread.join(10)


def test_a_callback_exception_goes_to_on_error_and_the_app_goes_on(server):
    errors = []
    got = []

    def on_message(ws, message):
        got.append(message)
        if message == "first":
            raise RuntimeError("handler failed")
        ws.close()

    def on_open(ws):
        ws.send("first")
        ws.send("second")

    app = websocket.WebSocketApp(server.url(), on_open=on_open, on_message=on_message,
                                 on_error=lambda ws, e: errors.append(e))
    assert app.run_forever() is False
    assert got == ["first", "second"]
    assert len(errors) == 1 and isinstance(errors[0], RuntimeError)


def test_header_can_be_a_callable_called_for_each_connect(server):
    calls = []
    seen = []

    def header():
        calls.append(1)
        return {"X-Attempt": str(len(calls))}

    def on_message(ws, message):
        seen.append(json.loads(message)["x-attempt"])
        ws.close()

    app = websocket.WebSocketApp(server.url("/headers"), header=header, on_message=on_message)
    assert app.run_forever() is False
    assert calls == [1] and seen == ["1"]


def test_on_ping_sees_the_servers_pings_and_on_pong_the_answers_to_ours(server, feed):
    pings = []
    app = websocket.WebSocketApp(
        feed.url(rate=50, count=25, ping_ms=100),
        on_ping=lambda ws, data: pings.append(data),
    )
    assert app.run_forever() is False  # the feed closes with 1000
    assert len(pings) >= 2 and all(isinstance(p, bytes) for p in pings)

    pongs = []

    def on_pong(ws, data):
        pongs.append(data)
        if len(pongs) == 2:
            ws.close()

    app = websocket.WebSocketApp(server.url(), on_pong=on_pong)
    thread, result = run_in_thread(app, ping_interval=0.1, ping_payload="are you there")
    thread.join(15)
    assert not thread.is_alive()
    assert pongs == [b"are you there", b"are you there"]
    assert result["value"] is False


def test_on_cont_message_gets_each_continuation_frame_before_the_whole_message(server):
    rec = Recorder()

    def on_message(ws, message):
        rec.add("message", message)
        if message == "whole":
            ws.close()

    app = websocket.WebSocketApp(
        server.url("/fragments"),
        on_message=on_message,
        on_data=lambda ws, data, opcode, fin: rec.add("data", data, opcode, fin),
        on_cont_message=lambda ws, data, fin: rec.add("cont", data, fin),
    )
    assert app.run_forever() is False
    TEXT, BINARY, CONT = (websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_BINARY,
                          websocket.ABNF.OPCODE_CONT)
    # websockets ends a message sent from an iterable with an empty final
    # frame.
    assert rec.events == [
        ("data", "Hel", TEXT, False),
        ("data", b"lo, ", CONT, False),
        ("cont", b"lo, ", False),
        ("data", b"world", CONT, False),
        ("cont", b"world", False),
        ("data", b"", CONT, True),
        ("cont", b"", True),
        ("message", "Hello, world"),
        ("data", b"\x00\x01", BINARY, False),
        ("data", b"\x02", CONT, False),
        ("cont", b"\x02", False),
        ("data", b"", CONT, True),
        ("cont", b"", True),
        ("message", b"\x00\x01\x02"),
        ("data", "whole", TEXT, True),
        ("message", "whole"),
    ]


def test_a_slow_handler_misses_no_message_and_no_ping(feed):
    before = len(feed.reports())
    got = []

    def on_message(ws, message):
        got.append(json.loads(message)["n"])
        time.sleep(0.05)

    # 200 messages/s for 0.4 s, handled at 20/s (4 s), a ping every 100 ms.
    app = websocket.WebSocketApp(feed.url(rate=200, count=80, ping_ms=100), on_message=on_message)
    assert app.run_forever() is False
    assert got == list(range(80))
    report = feed.wait_report(before + 1)[-1]
    pings = report.split("; ")[-1]
    answered, sent = pings.split(" pings answered")[0].split(" of ")
    assert answered == sent and int(sent) >= 2, report
    assert worst_round_trip(report) < 0.25, report


def test_workers_run_on_message_concurrently(feed):
    lock = threading.Lock()
    running = [0]
    most = [0]
    got = []

    def on_message(ws, message):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1
            got.append(json.loads(message)["n"])

    app = websocket.WebSocketApp(feed.url(rate=0, count=60), on_message=on_message, workers=4)
    started = time.monotonic()
    assert app.run_forever() is False
    took = time.monotonic() - started
    assert sorted(got) == list(range(60))
    assert 1 < most[0] <= 4
    # 60 x 50 ms on one thread would be 3 s.
    assert took < 3.0


def test_worker_key_keeps_the_order_of_each_key(feed):
    lock = threading.Lock()
    seen = {}
    threads = set()

    def on_message(ws, message):
        m = json.loads(message)
        time.sleep(0.002)
        with lock:
            seen.setdefault(m["channel"], []).append(m["seq"])
            threads.add(threading.current_thread().name)

    app = websocket.WebSocketApp(
        feed.url(rate=0, count=400, channels=8),
        on_message=on_message,
        workers=3,
        worker_key=lambda message: json.loads(message)["channel"],
    )
    assert app.run_forever() is False
    assert sorted(seen) == list(range(8))
    for channel, seqs in seen.items():
        assert seqs == list(range(50)), channel
    assert len(threads) > 1


def test_floodgate_buffer_options_reach_the_connection(feed):
    got = []

    def on_message(ws, message):
        got.append(message)
        time.sleep(0.01)

    app = websocket.WebSocketApp(
        feed.url(rate=0, count=500), on_message=on_message, max_messages=8, overflow="drop_oldest"
    )
    assert app.run_forever() is False
    stats = app.stats()
    assert stats["dropped_oldest"] > 0
    assert stats["delivered"] == len(got) < 500
    assert stats["received"] == 500


@pytest.mark.parametrize("workers", [0, 2])
def test_close_from_another_thread_ends_a_busy_app_promptly(feed, workers):
    handled = []

    def on_message(ws, message):
        handled.append(message)
        time.sleep(0.01)

    closes = []
    app = websocket.WebSocketApp(
        feed.url(rate=0, count=1_000_000),
        on_message=on_message,
        on_close=lambda ws, code, reason: closes.append((code, reason)),
        workers=workers,
    )
    thread, result = run_in_thread(app, reconnect=1)
    deadline = time.monotonic() + 10
    while len(handled) < 20 and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    app.close()
    thread.join(10)
    assert not thread.is_alive()
    assert time.monotonic() - started < 2
    count = len(handled)
    time.sleep(0.1)
    assert len(handled) == count  # nothing handled after the end
    assert result["value"] is False
    assert closes == [(1000, None)]


INTERRUPTED = r"""
import faulthandler, os, signal, sys, threading
# A process started in the background by a non-interactive shell (as a
# test run may be) inherits SIGINT ignored, and Python then installs no
# KeyboardInterrupt handler: the SIGINT below would do nothing and
# run_forever would wait for ever. Ctrl-C's usual meaning, explicitly.
signal.signal(signal.SIGINT, signal.default_int_handler)
# Should it hang all the same, every thread's stack goes to stderr, which
# the assertion shows, instead of a bare timeout.
faulthandler.dump_traceback_later(20, exit=True)
import floodgate as websocket

events = []

def on_open(ws):
    events.append("open")
    threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGINT)).start()

app = websocket.WebSocketApp(
    sys.argv[1],
    on_open=on_open,
    on_error=lambda ws, e: events.append(type(e).__name__),
    on_close=lambda ws, code, reason: events.append(("close", code, reason)),
)
print(app.run_forever(reconnect=1), events, flush=True)
"""


def test_a_keyboard_interrupt_ends_run_forever(server, tmp_path):
    import subprocess
    import sys

    script = tmp_path / "interrupted.py"
    script.write_text(INTERRUPTED)
    done = subprocess.run(
        [sys.executable, str(script), server.url()], capture_output=True, text=True, timeout=40
    )
    # As websocket-client 1.9.2: on_error gets the KeyboardInterrupt, then
    # on_close, and run_forever returns True.
    assert done.stdout.strip() == "True ['open', 'KeyboardInterrupt', ('close', None, None)]", done


def test_connect_options_of_the_app_and_of_run_forever_are_sent(server):
    seen = {}

    def on_open(ws):
        seen["subprotocol"] = ws.sock.subprotocol
        seen["ready"] = ws.ready()

    def on_message(ws, message):
        seen["headers"] = json.loads(message)
        ws.close()

    app = websocket.WebSocketApp(
        server.url("/headers"),
        header=["X-From: app"],
        cookie="session=abc",
        subprotocols=["superchat"],
        on_open=on_open,
        on_message=on_message,
        origin="http://app.example",
    )
    assert app.run_forever(host=f"127.0.0.1:{server.port}") is False
    assert seen["subprotocol"] == "superchat" and seen["ready"] is True
    headers = seen["headers"]
    assert headers["x-from"] == "app"
    assert headers["cookie"] == "session=abc"
    assert headers["origin"] == "http://app.example"
    assert headers["host"] == f"127.0.0.1:{server.port}"


def test_skip_utf8_validation_gives_text_as_bytes_as_websocket_client_does(server):
    got = []

    def on_message(ws, message):
        got.append(message)
        ws.close()

    app = websocket.WebSocketApp(server.url(), on_open=lambda ws: ws.send("h\u00e9"), on_message=on_message)
    app.run_forever(skip_utf8_validation=True)
    assert got == ["h\u00e9".encode("utf-8")]


def test_a_slow_pool_leaves_the_backlog_in_floodgates_buffer(feed):
    handled = []

    def on_message(ws, message):
        time.sleep(0.005)
        handled.append(message)

    app = websocket.WebSocketApp(
        feed.url(rate=0, count=2000),
        on_message=on_message,
        workers=2,
        max_messages=16,
        overflow="drop_oldest",
    )
    assert app.run_forever() is False
    stats = app.stats()
    # The pool's queue holds 2 messages: the rest waited in the buffer,
    # where drop_oldest shed them.
    assert stats["dropped_oldest"] > 0
    assert stats["received"] == 2000
    assert len(handled) == stats["delivered"] < 2000
