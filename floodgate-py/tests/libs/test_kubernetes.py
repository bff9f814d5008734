"""The kubernetes client's ``stream()`` (exec) and ``portforward()``, on
floodgate and on websocket-client (the ``impl`` fixture), against the fake
API server ``KubeServer``.

What the library needs from ``websocket`` here: ``WebSocket(sslopt=...,
skip_utf8_validation=...)``, ``connect(url, header=[...])`` with the
subprotocols offered only in a raw ``sec-websocket-protocol`` header line,
``ws.subprotocol``, ``ws.sock`` given to ``select.poll()`` (and its
``pending()`` for TLS), ``recv_data_frame(True)``, ``send(payload,
opcode=)``, ``connected``; port-forward also ``select.select()`` on the
WebSocket object itself (its ``fileno()``), ``ABNF.create_frame(...).format()``
and ``ws.sock.send(raw frame bytes)``.
"""

import hashlib
import random

import pytest
from .libs_run import run_client
from .libs_servers import V4, V5, KubeServer, make_tls_files, pf_transform

TOKEN = "fake-token-7f3a"


@pytest.fixture
def kube():
    server = KubeServer(TOKEN)
    yield server
    server.close()


@pytest.fixture
def kube_tls(tmp_path):
    files = make_tls_files(tmp_path)
    server = KubeServer(TOKEN, tls=files)
    server.ca = files["ca"]
    yield server
    server.close()


@pytest.mark.parametrize("scheme", ["ws", "wss"])
def test_exec_with_preload_content_returns_stdout_and_stderr(request, scheme, impl):
    # Over TLS, websocket-client's ws.sock is an ssl.SSLSocket: the client
    # also reads the frames TLS has already decrypted (its pending()),
    # which poll() on the socket does not show.
    kube = request.getfixturevalue("kube_tls" if scheme == "wss" else "kube")
    lines = 300
    args = {"case": "exec_preload", "port": kube.port, "token": TOKEN, "lines": lines}
    if scheme == "wss":
        args["ca"] = kube.ca
    out = run_client(impl, "kube_client.py", args)
    # stdout and stderr of `report`, in the order they were sent.
    assert out["report"] == "hello world\noops: hello world\n", out["stderr_log"]
    # 300 frames, all arriving at once: every one is read (the client keeps
    # reading while its poll() says the socket is readable).
    assert out["seq"] == "".join(f"line {i}\n" for i in range(1, lines + 1))
    assert out["binary_type"] == "bytes" and out["binary"] == "bytes\n"
    assert out["elapsed"] < 8
    # The server saw the bearer token and the subprotocols offered in the
    # raw header line, and chose v5.
    requests = kube.seen("request")
    assert len(requests) == 3
    for path, authorization, protocols in requests:
        assert "/api/v1/namespaces/default/pods/pod-1/exec?" in path
        assert authorization == f"Bearer {TOKEN}"
        assert protocols == [V5, V4]
    assert kube.seen("subprotocol") == [(V5,)] * 3
    assert [c[0] for c in kube.seen("command")] == [
        ["report", "hello world", "0"], ["seq", str(lines)], ["report", "bytes", "0"],
    ]


def test_exec_interactive_v5_closes_stdin_and_gets_exit_code(kube, impl):
    out = run_client(impl, "kube_client.py", {"case": "exec_interactive", "port": kube.port, "token": TOKEN,
                                              "namespace": "default", "end": "close"})
    assert 0.45 <= out["idle_elapsed"] < 2.5, out
    # One comparison, so that a failure shows every field.
    assert {k: v for k, v in out.items() if k not in ("elapsed", "idle_elapsed", "stderr_log")} == {
        "subprotocol": V5,
        "open_at_start": True,
        "idle_line": "",
        "lines": ["cat: hello", "cat: second line"],
        "returncode_while_open": None,
        "open_at_end": False,
        "stderr": "stdin closed\n",
        "returncode": 0,
        "websocket": out["websocket"],
    }, (kube.events, out["stderr_log"])
    assert out["elapsed"] < 8
    # stdin went as text frames on channel 0; the close as v5's binary
    # [255, 0].
    frames = kube.seen("stdin-frame")
    assert frames == [("text", b"\x00hello\n"), ("text", b"\x00second line\n"), ("binary", b"\xff\x00")]
    assert kube.seen("channel-closed") == [(0,)]


def test_exec_interactive_v4_exit_code_from_error_channel(kube, impl):
    out = run_client(impl, "kube_client.py", {"case": "exec_interactive", "port": kube.port, "token": TOKEN,
                                              "namespace": "v4only", "end": 3})
    assert 0.45 <= out["idle_elapsed"] < 2.5, out
    assert {k: v for k, v in out.items() if k not in ("elapsed", "idle_elapsed", "stderr_log")} == {
        "subprotocol": V4,
        "open_at_start": True,
        "idle_line": "",
        "lines": ["cat: hello", "cat: second line"],
        "returncode_while_open": None,
        "open_at_end": False,
        "stderr": "",
        "returncode": 3,
        "websocket": out["websocket"],
    }, (kube.events, out["stderr_log"])
    assert out["elapsed"] < 8
    assert kube.seen("subprotocol") == [(V4,)]
    assert [f[1] for f in kube.seen("stdin-frame")] == [b"\x00hello\n", b"\x00second line\n", b"\x00exit 3\n"]


def test_exec_refused_handshake_is_an_api_exception(kube, impl):
    out = run_client(impl, "kube_client.py", {"case": "exec_refused", "port": kube.port, "token": TOKEN})
    assert out["error"] == "kubernetes.client.exceptions.ApiException"
    assert out["status"] == 0
    assert "401" in out["reason"], out
    assert kube.seen("request")[0][1] == "Bearer wrong-token"
    assert kube.seen("command") == []


def test_portforward_exchanges_bytes_both_ways(kube, impl):
    big = 300_000
    out = run_client(impl, "kube_client.py", {"case": "port_forward", "port": kube.port, "token": TOKEN, "big": big},
                     timeout=45)  # above the sum of the waits in port_forward()
    assert bytes.fromhex(out["small"]) == pf_transform(b"hello port"), out["stderr_log"]
    expected = pf_transform(random.Random(7).randbytes(big))
    assert out["big_len"] == big
    assert out["sender_done"] is True
    assert out["big_sha"] == hashlib.sha256(expected).hexdigest()
    assert out["error_9999"] == "fake pod: nothing listens on port 9999"
    assert out["eof_9999"] is True
    assert out["connected_before_close"] is True
    # Closing the last local socket ends the forwarding: the client closes
    # the WebSocket (1000) and the library reports it disconnected.
    assert out["connected_after_close"] is False
    assert out["elapsed"] < 15
    assert kube.seen("ports") == [([8080, 9999],)]
    assert sum(n for port, n in kube.seen("pf-data") if port == 8080) == len(b"hello port") + big
    assert kube.wait_for(lambda events: any(e[0] == "closed" for e in events), 5)
    assert kube.seen("closed")[0][1] == 1000
