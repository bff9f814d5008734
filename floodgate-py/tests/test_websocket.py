import floodgate as websocket

# websocket-client's documented behaviours of WebSocket and
# create_connection, each written as a websocket-client program would be
# after `import floodgate as websocket`: echo, headers, cookies and origin,
# subprotocols, the handshake's status and headers, close codes, timeouts,
# a refused upgrade, redirects, dropped connections, control frames, and
# the options floodgate refuses.

import json
import socket
import ssl
import threading
import time

import pytest


def test_echo_text_and_binary_with_create_connection(server):
    ws = websocket.create_connection(server.url())
    assert ws.connected
    assert ws.send("Hello, Server") == 2 + 4 + len("Hello, Server")
    assert ws.recv() == "Hello, Server"
    ws.send_binary(b"\x00\x01\xff")
    assert ws.recv() == b"\x00\x01\xff"
    ws.send_bytes(bytearray(b"abc"))
    assert ws.recv() == b"abc"
    ws.send("h\u00e9llo \u2603", opcode=websocket.ABNF.OPCODE_TEXT)
    assert ws.recv() == "h\u00e9llo \u2603"
    big = "x" * 200_000
    ws.send_text(big)
    assert ws.recv() == big
    ws.close()
    assert not ws.connected


def test_the_websocket_class_connects_and_iterates(server):
    ws = websocket.WebSocket()
    ws.connect(server.url())
    for i in range(3):
        ws.send(f"message {i}")
    got = []
    for message in ws:
        got.append(message)
        if len(got) == 3:
            break
    assert got == ["message 0", "message 1", "message 2"]
    ws.close()


def test_headers_cookie_origin_and_host_are_sent(server):
    ws = websocket.create_connection(
        server.url("/headers"),
        header=["User-Agent: MyProgram", "x-custom: header"],
        cookie="session=abc",
        origin="http://testing_websockets.com",
        host=f"127.0.0.1:{server.port}",
    )
    sent = json.loads(ws.recv())
    assert sent["user-agent"] == "MyProgram"
    assert sent["x-custom"] == "header"
    assert sent["cookie"] == "session=abc"
    assert sent["origin"] == "http://testing_websockets.com"
    assert sent["host"] == f"127.0.0.1:{server.port}"
    ws.close()

    ws = websocket.create_connection(server.url("/headers"), header={"X-Dict": "yes"})
    assert json.loads(ws.recv())["x-dict"] == "yes"
    ws.close()


def test_origin_is_sent_by_default_and_can_be_suppressed(server):
    ws = websocket.create_connection(server.url("/headers"))
    assert json.loads(ws.recv())["origin"] == f"http://127.0.0.1:{server.port}"
    ws.close()
    ws = websocket.create_connection(server.url("/headers"), suppress_origin=True)
    assert "origin" not in json.loads(ws.recv())
    ws.close()


def test_subprotocols_status_and_response_headers(server):
    ws = websocket.create_connection(server.url(), subprotocols=["unknown", "chat"])
    assert ws.getsubprotocol() == "chat"
    assert ws.subprotocol == "chat"
    assert ws.getstatus() == 101
    assert ws.status == 101
    headers = ws.getheaders()
    assert headers["upgrade"].lower() == "websocket"
    assert headers["sec-websocket-protocol"] == "chat"
    assert ws.headers == headers
    ws.close()

    ws = websocket.create_connection(server.url())
    assert ws.getsubprotocol() is None
    ws.close()


def test_the_servers_close_code_and_reason_reach_the_client(server):
    ws = websocket.create_connection(server.url())
    ws.send("close:4001:custom reason")
    # websocket-client: recv returns "" for the close, then raises.
    assert ws.recv() == ""
    assert ws.close_frame.opcode == websocket.ABNF.OPCODE_CLOSE
    assert ws.close_frame.data == (4001).to_bytes(2, "big") + b"custom reason"
    with pytest.raises(websocket.WebSocketConnectionClosedException):
        ws.recv()
    ws.close()  # nothing to do

    ws = websocket.create_connection(server.url("/close/1001"))
    opcode, data = ws.recv_data()
    assert opcode == websocket.ABNF.OPCODE_CLOSE
    assert data == (1001).to_bytes(2, "big") + b"bye"


def test_a_send_after_the_servers_close_is_a_closed_connection(server):
    # The server's close is behind a buffered message: the application
    # takes the message and answers it, but the connection has ended.
    ws = websocket.create_connection(server.url(), timeout=5)
    ws.send("m1")
    ws.send("close:1000:bye")
    deadline = time.monotonic() + 5
    while ws._conn.is_open and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not ws._conn.is_open, "the server's close never arrived"
    assert ws.recv() == "m1"
    with pytest.raises(websocket.WebSocketConnectionClosedException):
        ws.send("echo of m1")
    ws.shutdown()


def test_a_client_close_with_a_code_is_completed(server):
    ws = websocket.create_connection(server.url())
    ws.send("before")
    assert ws.recv() == "before"
    started = time.monotonic()
    ws.close(status=websocket.STATUS_GOING_AWAY, reason=b"leaving")
    assert time.monotonic() - started < 2, "the server answered the close"
    assert not ws.connected
    with pytest.raises(websocket.WebSocketConnectionClosedException):
        ws.send("after")
    with pytest.raises(ValueError):
        websocket.create_connection(server.url()).close(status=70000)


def test_a_receive_timeout_raises_and_the_connection_goes_on(server):
    ws = websocket.create_connection(server.url(), timeout=5)
    ws.settimeout(0.2)
    assert ws.gettimeout() == 0.2
    assert ws.timeout == 0.2
    started = time.monotonic()
    with pytest.raises(websocket.WebSocketTimeoutException):
        ws.recv()
    took = time.monotonic() - started
    assert 0.15 <= took < 3, took
    ws.send("still there")
    assert ws.recv() == "still there"
    ws.close()


def test_a_connect_timeout_raises_websocket_timeout():
    # A listener that never accepts: TCP connects (the kernel's backlog),
    # the upgrade is never answered.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(websocket.WebSocketTimeoutException):
        websocket.create_connection(f"ws://127.0.0.1:{port}/", timeout=0.3)
    assert time.monotonic() - started < 5
    listener.close()


def test_a_refused_upgrade_raises_bad_status_with_the_response(server):
    with pytest.raises(websocket.WebSocketBadStatusException) as raised:
        websocket.create_connection(server.url("/status/403"))
    error = raised.value
    assert error.status_code == 403
    # The server's own reason phrase (the test server says "Refused", not
    # the standard "Forbidden"), as websocket-client reports it.
    assert error.status_message == "Refused"
    assert error.resp_headers["x-why"] == "test"
    assert error.resp_body == b"refused by the test server"
    assert "403" in str(error)
    assert isinstance(error, websocket.WebSocketException)


def test_redirects_are_followed_up_to_the_limit(server):
    ws = websocket.create_connection(server.url("/redirect"))
    ws.send("redirected")
    assert ws.recv() == "redirected"
    ws.close()
    with pytest.raises(websocket.WebSocketBadStatusException):
        websocket.create_connection(server.url("/redirect"), redirect_limit=0)


def test_a_refused_tcp_connection_is_connection_refused_error():
    with pytest.raises(ConnectionRefusedError):
        websocket.create_connection("ws://127.0.0.1:1/")


def test_a_bad_url_is_a_value_error():
    with pytest.raises(ValueError):
        websocket.create_connection("http//nowhere")


def test_a_dropped_connection_delivers_what_came_then_raises(server):
    ws = websocket.create_connection(server.url("/drop/3"))
    assert [ws.recv() for _ in range(3)] == ["message 0", "message 1", "message 2"]
    with pytest.raises(websocket.WebSocketConnectionClosedException):
        ws.recv()


def test_ping_and_pong_control_frames(server):
    ws = websocket.create_connection(server.url())
    ws.ping("are you there")
    opcode, data = ws.recv_data(control_frame=True)
    assert opcode == websocket.ABNF.OPCODE_PONG
    assert data == b"are you there"
    opcode, frame = (ws.ping(b"again"), ws.recv_data_frame(control_frame=True))[1]
    assert opcode == websocket.ABNF.OPCODE_PONG
    assert frame.data == b"again" and frame.fin == 1
    ws.send_frame(websocket.ABNF.create_frame("frag", websocket.ABNF.OPCODE_TEXT, 0))
    ws.send_frame(websocket.ABNF.create_frame("ment", websocket.ABNF.OPCODE_CONT, 1))
    assert ws.recv() == "fragment"
    ws.close()


def test_abort_from_another_thread_wakes_a_blocked_recv(server):
    ws = websocket.create_connection(server.url())
    threading.Timer(0.2, ws.abort).start()
    started = time.monotonic()
    with pytest.raises(websocket.WebSocketConnectionClosedException):
        ws.recv()
    assert time.monotonic() - started < 5


def test_sending_from_another_thread_while_one_receives(server):
    ws = websocket.create_connection(server.url(), enable_multithread=True)
    got = []
    reader = threading.Thread(target=lambda: got.extend(ws.recv() for _ in range(100)))
    reader.start()
    for i in range(100):
        ws.send(str(i))
    reader.join(10)
    assert got == [str(i) for i in range(100)]
    ws.close()


@pytest.mark.parametrize(
    "options, words",
    [
        ({"sslopt": {"ciphers": "ECDHE"}}, "sslopt ciphers"),
        ({"sslopt": {"cert_reqs": ssl.CERT_REQUIRED, "check_hostname": False}}, "check_hostname"),
        ({"sockopt": [(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)]}, "sockopt"),
        ({"socket": socket.socket()}, "socket="),
        ({"http_proxy_timeout": 5}, "http_proxy_timeout"),
    ],
)
def test_options_floodgate_cannot_honour_are_refused_with_a_reason(server, options, words):
    with pytest.raises(websocket.WebSocketUnsupportedException) as raised:
        websocket.create_connection(server.url(), **options)
    assert words in str(raised.value)
    assert "not supported by floodgate" in str(raised.value)


def test_honoured_socket_and_tls_options_are_accepted(server):
    ws = websocket.create_connection(
        server.url(),
        sockopt=[
            (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),
            (socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20),
            (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1),
        ],
        sslopt={"cert_reqs": ssl.CERT_NONE},  # ws://: no TLS to configure
        skip_utf8_validation=True,
    )
    ws.send("ok")
    assert ws.recv() == "ok"
    ws.close()


def test_an_unknown_option_is_ignored_as_websocket_client_ignores_it(server):
    # (Logged once per name: test_websocket_client_parity.py.)
    ws = websocket.create_connection(server.url(), no_such_option=1)
    ws.send("ok")
    assert ws.recv() == "ok"
    ws.close()


def test_default_timeout(server):
    websocket.setdefaulttimeout(0.2)
    try:
        assert websocket.getdefaulttimeout() == 0.2
        ws = websocket.create_connection(server.url())
        assert ws.gettimeout() == 0.2
        with pytest.raises(websocket.WebSocketTimeoutException):
            ws.recv()
        ws.close()
    finally:
        websocket.setdefaulttimeout(None)


def test_enable_trace_logs_the_handshake_and_messages_on_the_websocket_logger(server):
    import logging

    records = []

    class Collect(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    websocket.enableTrace(True, handler=Collect())
    try:
        ws = websocket.create_connection(server.url())
        ws.send("traced")
        assert ws.recv() == "traced"
        ws.close()
    finally:
        websocket.enableTrace(False)
    text = "\n".join(records)
    assert "--- response header ---" in text
    assert "HTTP/1.1 101" in text
    assert "++Sent decoded" in text and "'traced'" in text
    assert "++Rcv decoded" in text
    assert not websocket.isEnabledForTrace()


def test_suppress_host_is_refused(server):
    with pytest.raises(websocket.WebSocketUnsupportedException):
        websocket.create_connection(server.url(), suppress_host=True)
    assert websocket.DEFAULT_SOCKET_OPTION[0][1] == socket.TCP_NODELAY
