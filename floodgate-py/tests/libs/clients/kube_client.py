"""The official kubernetes client's ``stream()`` (exec) and
``portforward()``, against ``KubeServer``. ``ARGS["case"]`` picks what to
run; the ``RESULT`` holds what the library returned."""

import hashlib
import random
import select
import threading
import time

from _child import ARGS, Clock, error_name, result  # first: reports the websocket

from kubernetes import client
from kubernetes.client.rest import ApiException
from kubernetes.stream import portforward, stream


def api(token):
    configuration = client.Configuration()
    if ARGS.get("ca"):
        # wss: the client verifies the fake API server with this CA.
        configuration.host = f"https://127.0.0.1:{ARGS['port']}"
        configuration.ssl_ca_cert = ARGS["ca"]
        configuration.verify_ssl = True
    else:
        configuration.host = f"http://127.0.0.1:{ARGS['port']}"
    configuration.api_key = {"authorization": token}
    configuration.api_key_prefix = {"authorization": "Bearer"}
    return client.CoreV1Api(client.ApiClient(configuration))


def exec_preload():
    """``_preload_content=True``: the call returns all stdout and stderr."""
    core = api(ARGS["token"])
    out = {}
    clock = Clock()
    out["report"] = stream(
        core.connect_get_namespaced_pod_exec, "pod-1", "default",
        command=["report", "hello world", "0"], stderr=True, stdin=False, stdout=True, tty=False,
        _request_timeout=10,
    )
    out["seq"] = stream(
        core.connect_get_namespaced_pod_exec, "pod-1", "default",
        command=["seq", str(ARGS["lines"])], stderr=True, stdin=False, stdout=True, tty=False,
        _request_timeout=10,
    )
    binary = stream(
        core.connect_get_namespaced_pod_exec, "pod-1", "default",
        command=["report", "bytes", "0"], stderr=False, stdin=False, stdout=True, tty=False,
        binary=True, _request_timeout=10,
    )
    out["binary_type"] = type(binary).__name__
    out["binary"] = binary.decode()
    out["elapsed"] = clock.elapsed()
    return out


def exec_interactive():
    """``_preload_content=False``: write stdin, read stdout lines, close
    stdin (v5) or send ``exit N`` (v4), wait for the end, read the exit
    code from the error channel."""
    namespace = ARGS["namespace"]
    core = api(ARGS["token"])
    clock = Clock()
    resp = stream(
        core.connect_get_namespaced_pod_exec, "pod-1", namespace,
        command=["cat"], stderr=True, stdin=True, stdout=True, tty=False,
        _preload_content=False,
    )
    out = {"subprotocol": resp.subprotocol, "open_at_start": resp.is_open()}
    # Nothing to read yet: poll() on ws.sock must wait out the timeout (a
    # descriptor readable with no frame would block in recv_data_frame).
    idle = Clock()
    out["idle_line"] = resp.readline_stdout(timeout=0.5)
    out["idle_elapsed"] = idle.elapsed()
    lines = []
    for text in ("hello\n", "second line\n"):
        resp.write_stdin(text)
        lines.append(resp.readline_stdout(timeout=5))
    out["lines"] = lines
    out["returncode_while_open"] = resp.returncode
    if ARGS["end"] == "close":
        resp.close_channel(0)
    else:
        resp.write_stdin(f"exit {ARGS['end']}\n")
    resp.run_forever(timeout=5)
    out["open_at_end"] = resp.is_open()
    out["stderr"] = resp.read_stderr()
    out["returncode"] = resp.returncode
    out["elapsed"] = clock.elapsed()
    resp.close()
    return out


def exec_refused():
    """A wrong token: the handshake is refused with 401, which the client
    reports as an ``ApiException``."""
    core = api("wrong-token")
    try:
        stream(
            core.connect_get_namespaced_pod_exec, "pod-1", "default",
            command=["report", "x", "0"], stderr=True, stdin=False, stdout=True, tty=False,
        )
    except ApiException as e:
        return {"error": error_name(e), "status": e.status, "reason": str(e.reason)}
    return {"error": None}


def recv_exactly(sock, n, timeout):
    """Reads until ``n`` bytes, the end of the stream or ``timeout``. Waits
    with select() rather than the socket's timeout, which a sender thread
    shares."""
    data = b""
    deadline = time.monotonic() + timeout
    while len(data) < n:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([sock], [], [], remaining)[0]:
            break
        chunk = sock.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def port_forward():
    """Two forwarded ports: 8080 (a service that XORs what it gets) and 9999
    (nothing listens: an error on its error channel)."""
    core = api(ARGS["token"])
    clock = Clock()
    pf = portforward(core.connect_get_namespaced_pod_portforward, "pod-1", "default", ports="8080,9999")
    out = {}
    sock = pf.socket(8080)
    sock.sendall(b"hello port")
    out["small"] = recv_exactly(sock, len(b"hello port"), 5).hex()
    big = random.Random(7).randbytes(ARGS["big"])
    # Send from a thread while this one reads, as the replies come back
    # while the bytes are still going out.
    sender = threading.Thread(target=sock.sendall, args=(big,), daemon=True)
    sender.start()
    back = recv_exactly(sock, len(big), 10)
    sender.join(5)
    out["sender_done"] = not sender.is_alive()
    out["big_len"] = len(back)
    out["big_sha"] = hashlib.sha256(back).hexdigest()
    deadline = time.monotonic() + 5
    while pf.error(9999) is None and time.monotonic() < deadline:
        time.sleep(0.01)
    out["error_9999"] = pf.error(9999)
    out["eof_9999"] = recv_exactly(pf.socket(9999), 1, 5) == b""
    out["connected_before_close"] = pf.connected
    sock.close()
    deadline = time.monotonic() + 5
    while pf.connected and time.monotonic() < deadline:
        time.sleep(0.01)
    out["connected_after_close"] = pf.connected
    out["elapsed"] = clock.elapsed()
    return out


CASES = {f.__name__: f for f in (exec_preload, exec_interactive, exec_refused, port_forward)}

result(**CASES[ARGS["case"]]())
