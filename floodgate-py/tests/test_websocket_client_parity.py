"""websocket-client 1.9 behaviours that libraries rely on, each test run
on floodgate and on the real websocket-client (installed in the test
venv), so that a test's expectation is websocket-client's and not one the
test server or floodgate made up. Where the two differ on purpose, the
test says so and checks each side (docs/python.md lists the differences).

- a ``Sec-WebSocket-Protocol`` given in ``header=`` is offered
  (kubernetes' ``stream`` offers its subprotocols that way);
- ``connect(url, timeout=)`` bounds every receive (obsws-python waits on
  ``recv()`` for an answer that may never come);
- unknown keyword arguments are ignored (floodgate logs each name once).
"""

import json
import logging
import threading
import time
import uuid

import pytest
import websocket as websocket_client

import floodgate


@pytest.fixture(params=["floodgate", "websocket-client"])
def lib(request):
    return floodgate if request.param == "floodgate" else websocket_client


def _protocol_lines(ws) -> list:
    """The Sec-WebSocket-Protocol lines the server received
    (``/header-lines`` sends them first)."""
    lines = json.loads(ws.recv())
    return [value for name, value in lines if name.lower() == "sec-websocket-protocol"]


def _values(line: str) -> list:
    return [p.strip() for p in line.split(",")]


# ----- subprotocols offered in header= ---------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        # kubernetes' form: a list, the name in lower case, two values.
        ["sec-websocket-protocol: unknown,chat"],
        ["Sec-WebSocket-Protocol: unknown, chat"],
        {"Sec-WebSocket-Protocol": "unknown, chat"},
    ],
)
def test_a_subprotocol_offered_in_header_is_accepted_when_the_server_selects_it(
    lib, server, header
):
    # The test server selects the first of "chat"/"superchat" offered.
    # Before: floodgate refused it ("... which the client did not offer").
    ws = lib.create_connection(server.url("/header-lines"), header=header)
    try:
        # One line on the wire, with both values, as websocket-client sends it.
        lines = _protocol_lines(ws)
        assert len(lines) == 1, lines
        assert _values(lines[0]) == ["unknown", "chat"]
        assert ws.getheaders()["sec-websocket-protocol"] == "chat"
        if lib is floodgate:
            assert ws.subprotocol == "chat"
        else:
            # websocket-client checks (and reports) only subprotocols=; a
            # difference floodgate keeps on purpose (docs/python.md).
            assert ws.subprotocol is None
        ws.send("still there")
        assert ws.recv() == "still there"
    finally:
        ws.close()


def test_subprotocols_and_header_are_both_offered(lib, server):
    ws = lib.create_connection(
        server.url("/header-lines"),
        subprotocols=["superchat"],
        header=["X-Other: 1", "Sec-WebSocket-Protocol: chat"],
    )
    try:
        lines = _protocol_lines(ws)
        offered = [p for line in lines for p in _values(line)]
        # subprotocols= first, then header='s, as websocket-client puts them.
        assert offered == ["superchat", "chat"]
        if lib is floodgate:
            # One header: a repeated Sec-WebSocket-Protocol is legal HTTP
            # but some servers read only the first.
            assert len(lines) == 1, lines
        else:
            assert len(lines) == 2, lines
        assert ws.subprotocol == "superchat"
    finally:
        ws.close()


def test_a_subprotocol_in_header_the_server_does_not_select(lib, server):
    # The server knows none of those offered: no subprotocol, no error.
    ws = lib.create_connection(server.url("/header-lines"), header=["Sec-WebSocket-Protocol: other"])
    try:
        assert _values(_protocol_lines(ws)[0]) == ["other"]
        assert ws.subprotocol is None
    finally:
        ws.close()


# ----- connect(url, timeout=) ------------------------------------------------


def test_connect_timeout_bounds_every_receive(lib, server):
    # obsws-python's call. Before: gettimeout() was None and recv() waited
    # for ever.
    ws = lib.WebSocket()
    ws.connect(server.url(), timeout=0.3)
    try:
        assert ws.gettimeout() == 0.3
        for _ in range(2):
            started = time.monotonic()
            with pytest.raises(lib.WebSocketTimeoutException):
                ws.recv()
            took = time.monotonic() - started
            assert 0.25 <= took < 3, took
        # A timeout does not end the connection.
        ws.send("still there")
        assert ws.recv() == "still there"
    finally:
        ws.close()


def test_connect_without_timeout_keeps_settimeout_and_none_clears_it(lib, server):
    ws = lib.WebSocket()
    ws.settimeout(0.3)
    ws.connect(server.url())
    try:
        assert ws.gettimeout() == 0.3
        with pytest.raises(lib.WebSocketTimeoutException):
            ws.recv()
    finally:
        ws.close()
    # timeout=None given to connect means no bound, as websocket-client's
    # options.get("timeout", ...) reads it.
    ws.connect(server.url(), timeout=None)
    try:
        assert ws.gettimeout() is None
    finally:
        ws.close()


def test_create_connection_timeout_and_the_default(lib, server):
    ws = lib.create_connection(server.url(), timeout=0.3)
    try:
        assert ws.gettimeout() == 0.3
    finally:
        ws.close()
    lib.setdefaulttimeout(0.4)
    try:
        # The module default is create_connection's, not WebSocket()'s.
        ws = lib.create_connection(server.url())
        assert ws.gettimeout() == 0.4
        ws.close()
        ws = lib.WebSocket()
        ws.connect(server.url())
        assert ws.gettimeout() is None
        ws.close()
    finally:
        lib.setdefaulttimeout(None)


# ----- unknown keyword arguments ---------------------------------------------


def _warnings_naming(caplog, name: str) -> list:
    return [
        r
        for r in caplog.records
        if r.name == "websocket" and r.levelno == logging.WARNING and f"{name}=" in r.getMessage()
    ]


def test_unknown_keyword_arguments_are_ignored_and_logged_once(lib, server, caplog):
    # Names of this run only: floodgate logs each name once per process.
    name = f"no_such_option_{uuid.uuid4().hex[:8]}"
    other = f"{name}_too"
    with caplog.at_level(logging.WARNING, logger="websocket"):
        # headers= (websocket-client's is header=): accepted, sends nothing.
        ws = lib.create_connection(server.url("/headers"), headers={"X-Test": "1"}, **{name: 1})
        assert "x-test" not in json.loads(ws.recv())
        ws.close()
        ws = lib.WebSocket(**{name: 2})
        ws.connect(server.url("/headers"), headers={"X-Test": "1"}, **{name: 3, other: 4})
        assert "x-test" not in json.loads(ws.recv())
        ws.send("ok")
        assert ws.recv() == "ok"
        ws.close()
    if lib is floodgate:
        assert len(_warnings_naming(caplog, name)) == 1
        assert len(_warnings_naming(caplog, other)) == 1
        assert len(_warnings_naming(caplog, "headers")) <= 1
    else:
        assert _warnings_naming(caplog, name) == []


def test_floodgates_own_options_are_still_checked(server):
    # Known names keep their checks; only unknown ones are let through.
    with pytest.raises(ValueError, match="spill"):
        floodgate.WebSocket(spill_dir="/tmp/never")
    with pytest.raises(ValueError):
        floodgate.create_connection(server.url(), overflow="no_such_policy")
    with pytest.raises(floodgate.WebSocketUnsupportedException):
        floodgate.WebSocket().connect(server.url(), suppress_host=True)
    ws = floodgate.create_connection(server.url(), max_messages=2, overflow="drop_oldest")
    try:
        for i in range(5):
            ws.send(str(i))
        time.sleep(0.3)
        # Only the last two stayed: max_messages and overflow took effect.
        assert ws.recv_batch(10, 1) == ["3", "4"]
        assert ws.stats()["dropped_oldest"] == 3
    finally:
        ws.close()


def test_websocketapp_still_refuses_unknown_arguments(lib, server):
    # websocket-client's WebSocketApp has no **kwargs: a TypeError there too.
    with pytest.raises(TypeError):
        lib.WebSocketApp(server.url(), no_such_option=1)


# ----- the exceptions and messages of each end ------------------------------------


def _outcome(call):
    try:
        return ("ok", call())
    except Exception as e:  # noqa: BLE001 - compared, not handled
        return (type(e).__name__, str(e))


def test_a_dropped_connection_is_reported_as_websocket_client_reports_it(lib, server):
    ws = lib.create_connection(server.url("/drop/1"), timeout=5)
    assert ws.recv() == "message 0"
    time.sleep(0.2)
    assert _outcome(ws.recv) == ("WebSocketConnectionClosedException", "Connection to remote host was lost.")
    assert ws.sock is None and not ws.connected
    assert _outcome(ws.recv) == ("WebSocketConnectionClosedException", "Connection is closed")
    assert _outcome(lambda: ws.send("x")) == ("WebSocketConnectionClosedException", "socket is already closed.")
    ws.close()


def test_a_receive_after_the_servers_close(lib, server):
    ws = lib.create_connection(server.url("/close/1001"), timeout=5)
    assert ws.recv() == ""
    assert not ws.connected
    if lib is floodgate:
        # floodgate also keeps the frame recv() returned (websocket-client
        # sets close_frame only in close()).
        assert ws.close_frame.data == b"\x03\xe9bye"
    time.sleep(0.2)
    assert _outcome(ws.recv) == ("WebSocketConnectionClosedException", "Connection to remote host was lost.")
    assert _outcome(lambda: ws.send("x")) == ("WebSocketConnectionClosedException", "socket is already closed.")
    ws.close()


def test_abort_wakes_a_receive_with_websocket_clients_message(lib, server):
    ws = lib.create_connection(server.url("/echo"), timeout=5)
    threading.Timer(0.2, ws.abort).start()
    assert _outcome(ws.recv) == ("WebSocketConnectionClosedException", "Connection to remote host was lost.")
    ws.close()


def test_a_refused_upgrade_says_handshake_status(lib, server):
    with pytest.raises(lib.WebSocketBadStatusException) as raised:
        lib.create_connection(server.url("/status/404"), timeout=5)
    e = raised.value
    # The server's own reason phrase ("Refused"), not the standard "Not Found".
    assert str(e).startswith("Handshake status 404 Refused -+-+- ")
    assert (e.status_code, e.status_message) == (404, "Refused")
    assert e.resp_headers["x-why"] == "test"
    if lib is floodgate:
        assert "404" in e.explanation


@pytest.mark.parametrize(
    "url, error",
    [
        ("ws://127.0.0.1:1/", ConnectionRefusedError),
        ("http://127.0.0.1:1/", ValueError),
        ("ws//example.com", ValueError),
    ],
)
def test_connect_failures_raise_websocket_clients_classes(lib, url, error):
    # The messages differ on purpose: floodgate's name the URL or address
    # and what to check (docs/python.md).
    with pytest.raises(error):
        lib.create_connection(url, timeout=5)


# ----- connection= --------------------------------------------------------------------


def _connection_tokens(ws) -> set:
    lines = json.loads(ws.recv())
    values = [value for name, value in lines if name.lower() == "connection"]
    return {t.strip().lower() for value in values for t in value.split(",")}


@pytest.mark.parametrize(
    "value", ["Connection: Upgrade", "Connection: keep-alive, Upgrade", "connection: upgrade, close-later"]
)
def test_connection_option_sends_its_tokens(lib, server, value):
    # websocket-client sends the string as the header line, in place of
    # "Connection: Upgrade"; floodgate sends "Upgrade" and the other tokens
    # in a second line: the same list for HTTP (RFC 9110 5.3).
    ws = lib.create_connection(server.url("/header-lines"), connection=value, timeout=5)
    try:
        assert _connection_tokens(ws) == {t.strip().lower() for t in value.split(":", 1)[1].split(",")}
        ws.send("echo")
        assert ws.recv() == "echo"
    finally:
        ws.close()


def test_connection_option_as_a_bare_value(server):
    # websocket-client's docs call it the header's value (it would send
    # "keep-alive, Upgrade" as a line without a name).
    ws = floodgate.create_connection(server.url("/header-lines"), connection="keep-alive, Upgrade", timeout=5)
    try:
        assert _connection_tokens(ws) == {"keep-alive", "upgrade"}
    finally:
        ws.close()


def test_connection_without_upgrade_is_refused(server):
    for value in ["keep-alive", "Connection: close"]:
        with pytest.raises(floodgate.WebSocketUnsupportedException, match="Connection: Upgrade"):
            floodgate.create_connection(server.url("/echo"), connection=value, timeout=5)


def test_app_on_error_when_the_server_drops(lib, server):
    events = []
    app = lib.WebSocketApp(
        server.url("/drop/2"),
        on_message=lambda a, m: events.append(m),
        on_error=lambda a, e: events.append((type(e).__name__, str(e))),
        on_close=lambda a, code, reason: events.append(("close", code, reason)),
    )
    assert app.run_forever() is True
    assert events == [
        "message 0",
        "message 1",
        ("WebSocketConnectionClosedException", "Connection to remote host was lost."),
        ("close", None, None),
    ]
