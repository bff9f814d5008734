"""websocket-client 1.9's frame-level API, run on floodgate and on the
real websocket-client (installed in the test venv) and compared:

- ``ABNF.format()``/``mask()``/``validate()``/``create_frame`` and the
  exceptions and messages of each refusal;
- a WebSocket driven over a socket the application assigns
  (``ws.sock = SockMock()``, floodgate's ``_transport.py``): framing with
  ``set_mask_key``, fragments, ``fire_cont_frame``, pings answered,
  timeouts, the close handshake;
- ``fire_cont_frame=True`` and ``get_mask_key`` on a connection floodgate
  opened (fragments from the reader's tap; mask keys stay OS-random);
- the exceptions and messages after a close, and a WebSocketApp whose
  connection the application shut down or closed itself.
"""

import logging
import socket
import struct
import threading

import pytest
import websocket as websocket_client

import floodgate


@pytest.fixture(params=["floodgate", "websocket-client"])
def lib(request):
    return floodgate if request.param == "floodgate" else websocket_client


def both(make):
    """``make(lib)`` on each library: (floodgate's, websocket-client's)."""
    return make(floodgate), make(websocket_client)


def outcome(call):
    """The result of ``call()``, or the exception's class name and message."""
    try:
        return ("ok", call())
    except Exception as e:  # noqa: BLE001 - compared, not handled
        return (type(e).__name__, str(e))


# ----- ABNF ---------------------------------------------------------------------


@pytest.mark.parametrize("length", [0, 1, 125, 126, 127, 65535, 65536, 70000])
@pytest.mark.parametrize("mask", [0, 1])
def test_format_gives_websocket_clients_bytes(length, mask):
    def frame_bytes(lib):
        frame = lib.ABNF(1, 0, 0, 0, lib.ABNF.OPCODE_BINARY, mask, bytes(range(256)) * (length // 256) + bytes(length % 256))
        frame.get_mask_key = lambda n: b"\x01\x02\x03\x04"
        return frame.format()

    ours, theirs = both(frame_bytes)
    assert ours == theirs
    # And it is a frame: the header's length and the (un)masked payload.
    head = 2 + (2 if 126 <= length < 65536 else 8 if length >= 65536 else 0)
    assert len(ours) == head + 4 * mask + length


def test_create_frame_text_and_fragments_format_alike():
    def frames(lib):
        out = []
        for data, opcode, fin in [("héllo", 1, 1), ("part", 1, 0), (b"more", 0, 1), (b"\x03\xe8bye", 8, 1)]:
            frame = lib.ABNF.create_frame(data, opcode, fin)
            frame.get_mask_key = lambda n: "abcd"  # a str key, as websocket-client's tests use
            out.append((frame.fin, frame.opcode, frame.mask_value, frame.data, frame.format(), str(frame)))
        return out

    ours, theirs = both(frames)
    assert ours == theirs


@pytest.mark.parametrize(
    "key, data",
    [(b"abcd", b"Hello"), ("abcd", "Hello"), (b"\xff\x00\xff\x00", b""), (b"1234", None), (b"wxyz", bytes(1001))],
)
def test_mask_is_websocket_clients(key, data):
    ours, theirs = both(lambda lib: lib.ABNF.mask(key, data))
    assert ours == theirs
    if data:
        # Masking twice gives the data back.
        raw = data.encode("latin-1") if isinstance(data, str) else data
        assert floodgate.ABNF.mask(key, ours) == raw


@pytest.mark.parametrize(
    "fields",
    [
        dict(fin=1, rsv1=1, opcode=1, data=b"x"),
        dict(fin=1, opcode=3, data=b""),
        dict(fin=0, opcode=9, data=b""),
        dict(fin=1, opcode=8, data=b"\x03"),
        dict(fin=1, opcode=8, data=b"\x03\xe8" + b"x" * 124),
        dict(fin=1, opcode=8, data=b"\x03\xe8\xff\xfe"),
        dict(fin=1, opcode=8, data=b"\x03\xed"),  # 1005 may not be sent
        dict(fin=1, opcode=8, data=b"\x0b\xb8ok"),  # 3000: valid
        dict(fin=1, opcode=8, data=b""),
        dict(fin=1, opcode=1, data=b"\xff"),  # text is not checked by validate
    ],
)
def test_validate_raises_websocket_clients_exceptions(fields):
    def check(lib):
        frame = lib.ABNF(
            fields["fin"], fields.get("rsv1", 0), 0, 0, fields["opcode"], 0, fields["data"]
        )
        return outcome(frame.validate)

    ours, theirs = both(check)
    assert ours == theirs


def test_validate_skips_utf8_when_asked():
    frame = floodgate.ABNF(1, 0, 0, 0, 8, 0, b"\x03\xe8\xff")
    with pytest.raises(floodgate.WebSocketProtocolException, match="Invalid close frame"):
        frame.validate()
    frame.validate(skip_utf8_validation=True)


@pytest.mark.parametrize(
    "fields",
    [dict(fin=2, opcode=1), dict(fin=1, opcode=5), dict(fin=1, rsv3=3, opcode=1)],
)
def test_format_refuses_what_websocket_client_refuses(fields):
    def check(lib):
        frame = lib.ABNF(fields["fin"], 0, 0, fields.get("rsv3", 0), fields["opcode"], 0, b"x")
        return outcome(frame.format)

    ours, theirs = both(check)
    assert ours == theirs
    assert ours[0] == "ValueError"


def test_module_level_names_of_websocket_abnf():
    import websocket._abnf as theirs

    from floodgate import _abnf as ours

    for name in ["frame_buffer", "continuous_frame", "VALID_CLOSE_STATUS", "STATUS_NORMAL", "STATUS_TLS_HANDSHAKE_ERROR"]:
        assert hasattr(ours, name), name
    assert ours.VALID_CLOSE_STATUS == theirs.VALID_CLOSE_STATUS
    assert ours.ABNF.OPCODES == theirs.ABNF.OPCODES
    assert ours.ABNF.OPCODE_MAP == theirs.ABNF.OPCODE_MAP
    assert set(theirs.__all__) <= set(ours.__all__) | {"VALID_CLOSE_STATUS"}


# ----- a socket the application gives ---------------------------------------------


class SockMock:
    """websocket-client's tests' mock: ``recv`` pops queued packets (or
    raises a queued exception), ``None`` when empty; ``send`` records."""

    def __init__(self, *packets):
        self.data = list(packets)
        self.sent = []
        self.timeouts = []

    def gettimeout(self):
        return None

    def settimeout(self, timeout):
        self.timeouts.append(timeout)

    def recv(self, bufsize):
        if self.data:
            e = self.data.pop(0)
            if isinstance(e, Exception):
                raise e
            if len(e) > bufsize:
                self.data.insert(0, e[bufsize:])
            return e[:bufsize]
        return None

    def send(self, data):
        self.sent.append(data)
        return len(data)

    def shutdown(self, how):
        pass

    def close(self):
        pass


def masked(opcode, payload, fin=1, key=b"abcd"):
    frame = floodgate.ABNF(fin, 0, 0, 0, opcode, 1, payload)
    frame.get_mask_key = lambda n: key
    return frame.format()


def drive(lib, packets, steps, **options):
    """Runs ``steps(ws)`` on a WebSocket over a SockMock: what it returned
    (or raised) each time, and the bytes the WebSocket wrote."""
    ws = lib.WebSocket(**options)
    ws.set_mask_key(lambda n: b"wxyz")
    sock = ws.sock = SockMock(*packets)
    results = []
    for step in steps:
        results.append(outcome(lambda: step(ws)))
    return results, sock.sent


def compare(packets, steps, **options):
    ours = drive(floodgate, packets, steps, **options)
    theirs = drive(websocket_client, packets, steps, **options)
    assert ours == theirs
    return ours


def test_send_frames_with_the_mask_key_over_the_given_socket():
    results, sent = compare(
        [],
        [
            lambda ws: ws.send("Hello"),
            lambda ws: ws.send("こんにちは"),
            lambda ws: ws.send_binary(b"\x00" * 300),
            lambda ws: ws.ping("p"),
            lambda ws: ws.pong(b"q"),
            lambda ws: ws.send_frame(floodgate.ABNF.create_frame("a", 1, 0)),
            lambda ws: ws.send_close(1001, "going"),
        ],
    )
    assert sent[0] == b"\x81\x85wxyz" + floodgate.ABNF.mask(b"wxyz", b"Hello")
    assert results[0] == ("ok", 11)


def test_recv_joins_fragments_and_answers_pings_over_the_given_socket():
    packets = [
        masked(1, b"Too much ", fin=0),
        masked(9, b"Please PONG this"),
        masked(0, b"of a good thing"),
        masked(2, b"\x00\x01"),
    ]
    results, sent = compare(packets, [lambda ws: ws.recv(), lambda ws: ws.recv(), lambda ws: ws.recv()])
    assert results[0] == ("ok", "Too much of a good thing")
    assert results[1] == ("ok", b"\x00\x01")
    # The mock is empty: the peer's end.
    assert results[2] == ("WebSocketConnectionClosedException", "Connection to remote host was lost.")
    assert sent == [masked(0xA, b"Please PONG this", key=b"wxyz")]


def test_fire_cont_frame_over_the_given_socket():
    packets = [masked(1, b"Brevity is ", fin=0), masked(0, b"Brevity is ", fin=0), masked(0, b"the soul of wit")]
    results, _ = compare(
        packets,
        [lambda ws: ws.recv_data(), lambda ws: ws.recv_data(), lambda ws: ws.recv_data()],
        fire_cont_frame=True,
    )
    assert [r[1] for r in results] == [(1, b"Brevity is "), (0, b"Brevity is "), (0, b"the soul of wit")]


def test_timeouts_of_the_given_socket_resume_where_they_stopped():
    frame = masked(1, b"Hello, World!")
    packets = [frame[:1], socket.timeout("timed out"), frame[1:7], socket.timeout("timed out"), frame[7:]]
    results, _ = compare(packets, [lambda ws: ws.recv()] * 4)
    assert results[0][0] == results[1][0] == "WebSocketTimeoutException"
    assert results[2] == ("ok", "Hello, World!")
    assert results[3][0] == "WebSocketConnectionClosedException"


@pytest.mark.parametrize(
    "packets",
    [
        [masked(0, b"orphan")],  # a continuation without a start
        [masked(1, b"a", fin=0), masked(1, b"b")],  # a new message inside one
        [bytes([0x91, 0x81]) + b"abcd" + b"x"],  # rsv1 set
        [masked(9, b"x" * 126)],  # a ping too long
        [masked(1, b"\xff\xfe")],  # invalid UTF-8 text
        [masked(1, b"\xce", fin=0), masked(0, b"\xba\xff")],  # invalid across fragments
        [masked(8, b"\x03\xe8\xff")],  # a close reason that is not UTF-8
    ],
)
def test_protocol_errors_over_the_given_socket(packets):
    results, _ = compare(packets, [lambda ws: ws.recv()])
    assert results[0][0] != "ok"


def test_close_handshake_over_the_given_socket():
    def steps(lib):
        ws = lib.WebSocket()
        ws.set_mask_key(lambda n: b"wxyz")
        sock = ws.sock = SockMock(masked(1, b"late"), struct.pack("!BB", 0x88, 4) + b"\x03\xe8ok")
        ws.connected = True
        ws.close(reason="done", timeout=2)
        return (ws.connected, ws.sock, ws.close_frame.data, sock.sent, sock.timeouts)

    ours, theirs = both(steps)
    assert ours == theirs
    assert ours[2] == b"\x03\xe8ok"
    assert ours[3][0] == masked(8, b"\x03\xe8done", key=b"wxyz")


def test_close_without_a_socket_does_not_raise():
    def steps(lib):
        ws = lib.WebSocket()
        ws.connected = True
        ws.close()
        return ws.connected, ws.sock

    ours, theirs = both(steps)
    assert ours == theirs == (False, None)


# ----- fire_cont_frame and get_mask_key on a connection floodgate opened --------------


def test_fire_cont_frame_hands_on_each_fragment(lib, server):
    # /fragments sends "Hel"+"lo, "+"world", b"\0\1"+b"\2" (the websockets
    # server ends each with an empty final frame), then "whole".
    ws = lib.create_connection(server.url("/fragments"), fire_cont_frame=True, timeout=5)
    try:
        got = []
        for _ in range(8):
            opcode, frame = ws.recv_data_frame()
            got.append((opcode, frame.opcode, frame.fin, frame.data))
        ws.send("after")
        assert ws.recv() == "after"
    finally:
        ws.close()
    assert got == [
        (1, 1, 0, b"Hel"),
        (0, 0, 0, b"lo, "),
        (0, 0, 0, b"world"),
        (0, 0, 1, b""),
        (2, 2, 0, b"\x00\x01"),
        (0, 0, 0, b"\x02"),
        (0, 0, 1, b""),
        (1, 1, 1, b"whole"),
    ]


def test_get_mask_key_is_accepted_and_logged_once(lib, server, caplog):
    import floodgate._core as core

    core._mask_key_logged = False
    calls = []

    def key(n):
        calls.append(n)
        return b"\x00" * n

    with caplog.at_level(logging.WARNING, logger="websocket"):
        for _ in range(2):
            ws = lib.WebSocket(get_mask_key=key)
            ws.connect(server.url("/echo"), timeout=5)
            ws.set_mask_key(key)
            ws.send("masked")
            assert ws.recv() == "masked"
            ws.close()
    said = [r for r in caplog.records if "mask" in r.getMessage()]
    if lib is floodgate:
        # The Rust writer masks with OS-random keys (docs/python.md).
        assert calls == []
        assert len(said) == 1
    else:
        assert calls and set(calls) == {4}
        assert said == []


# ----- exceptions after the end ---------------------------------------------------------


def test_not_connected_and_after_close(lib, server):
    ws = lib.WebSocket()
    assert ws.sock is None
    with pytest.raises(lib.WebSocketException, match="Connection not established"):
        ws.fileno()
    ws.connect(server.url("/echo"), timeout=5)
    assert ws.sock is not None
    ws.close()
    assert ws.sock is None
    assert outcome(lambda: ws.send("x")) == ("WebSocketConnectionClosedException", "socket is already closed.")
    assert outcome(ws.recv) == ("WebSocketConnectionClosedException", "Connection is closed")
    with pytest.raises(lib.WebSocketException, match="Connection not established"):
        ws.fileno()


def test_after_shutdown(lib, server):
    ws = lib.create_connection(server.url("/echo"), timeout=5)
    ws.shutdown()
    assert ws.sock is None and not ws.connected
    assert outcome(ws.recv) == ("WebSocketConnectionClosedException", "Connection is closed")
    ws.close()  # nothing to do, no exception


# ----- WebSocketApp: an end the application caused ------------------------------------


def run_app(lib, url, **callbacks):
    events = []
    app = lib.WebSocketApp(
        url,
        on_error=lambda a, e: events.append(("error", type(e).__name__, str(e))),
        on_close=lambda a, code, reason: events.append(("close", code, reason)),
        **callbacks,
    )
    return app, events


def test_app_close_from_another_thread_is_not_an_error(lib, server):
    app, events = run_app(lib, server.url("/echo"))
    threading.Timer(0.3, app.close).start()
    errored = app.run_forever()
    assert errored is False
    assert [e[0] for e in events] == ["close"]


def test_app_local_shutdown_with_pings_reports_the_ping_check(lib, server):
    done = threading.Event()

    def on_open(app):
        threading.Timer(0.3, app.sock.shutdown).start()

    app, events = run_app(lib, server.url("/echo"), on_open=on_open)
    thread = threading.Thread(target=lambda: (app.run_forever(ping_interval=0.5, ping_timeout=0.4), done.set()))
    thread.start()
    assert done.wait(15), "run_forever did not return after the local shutdown"
    errors = [e for e in events if e[0] == "error"]
    assert errors == [("error", "WebSocketTimeoutException", "ping/pong timed out")]
    assert events[-1][0] == "close"


def test_fire_cont_frame_queued_fragments_count_as_pending(server):
    ws = floodgate.create_connection(server.url("/fragments"), fire_cont_frame=True, timeout=5)
    try:
        opcode, frame = ws.recv_data_frame()
        assert (opcode, frame.data) == (1, b"Hel")
        # "lo, ", "world", "" wait in Python; the binary message and "whole"
        # in the buffer.
        assert ws.sock.pending() >= 3
    finally:
        ws.close()


def test_fire_cont_frame_with_compression_is_refused(server):
    with pytest.raises(floodgate.WebSocketUnsupportedException, match="fire_cont_frame"):
        floodgate.create_connection(server.url("/echo"), fire_cont_frame=True, compression=True, timeout=5)


def test_the_given_socket_is_bounded_by_max_message_size():
    # floodgate's own rule (websocket-client has no limit): a peer must not
    # decide how much memory the reader takes. A frame over the limit is
    # refused from its header, before its payload is read...
    header_only = b"\x82\x7f" + (1 << 40).to_bytes(8, "big")
    results, _ = drive(floodgate, [header_only], [lambda ws: ws.recv()])
    kind, message = results[0]
    assert kind == "WebSocketProtocolException"
    assert f"a frame of {1 << 40} bytes is over the limit of {64 << 20} bytes" in message
    # ...and fragments are joined up to the limit only.
    packets = [masked(2, b"x" * 600, fin=0), masked(0, b"y" * 600)]
    results, _ = drive(floodgate, packets, [lambda ws: ws.recv()], max_message_size=1000)
    kind, message = results[0]
    assert kind == "WebSocketProtocolException"
    assert "a fragmented message of 1200 bytes is over the limit of 1000 bytes" in message
    # Within the limit, nothing changes.
    results, _ = drive(floodgate, packets, [lambda ws: ws.recv()], max_message_size=1200)
    assert results[0] == ("ok", b"x" * 600 + b"y" * 600)
