"""Servers for the Python package's tests, all on loopback.

- ``server`` (a session fixture): a server written with the third-party
  ``websockets`` library (asyncio, in a thread of this process) whose
  paths behave as websocket-client's documented examples need:

  - ``/echo`` (and any path not below): echoes text as text, binary as
    binary; a text ``close:CODE:REASON`` makes it close with that code;
  - ``/headers``: sends the request's headers as one JSON text message,
    then echoes;
  - ``/header-lines``: sends the request's header lines as a JSON list of
    ``[name, value]`` (repeated names kept), then echoes;
  - ``/status/N``: refuses the upgrade with HTTP ``N`` and a body;
  - ``/redirect``: answers 302 to ``/echo``;
  - ``/drop/N``: sends ``N`` messages, then drops TCP without a close;
  - ``/close/CODE``: closes at once with ``CODE`` and the reason ``bye``;
  - ``/fragments``: sends the text ``Hello, world`` in three frames
    (``Hel``, ``lo, ``, ``world``), the binary ``00 01 02`` in two
    (``00 01``, ``02``) and the text ``whole`` in one, then echoes;
  - ``/count``: sends how many connections ``/count`` has seen so far, then
    drops TCP (for reconnect tests);
  - subprotocols ``chat`` and ``superchat`` are accepted when offered.

- ``feed`` (a session fixture): floodgate's own embedded server, the
  ``floodgate serve`` binary (``target/release/floodgate``, built by
  ``scripts/test``), for fast numbered feeds with pings:
  ``feed.url(rate=200, count=100, size=128, ping_ms=100)``. It prints one
  line per feed connection, with the worst ping round trip it measured;
  ``feed.reports()`` returns them.

- ``silent``: a raw TCP server that completes the handshake and then never
  reads or answers anything (no pong, no close), for timeouts.

``test_tls.py`` starts ``floodgate serve --tls-cert/--tls-key`` with a CA
and a certificate it makes with the ``cryptography`` package.
"""

import asyncio
import base64
import hashlib
import json
import os
import re
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
from websockets.asyncio.server import serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Response

ROOT = Path(__file__).resolve().parents[2]


class PyServer:
    """The ``websockets`` server, run by an asyncio loop in a thread."""

    def __init__(self) -> None:
        self.count_connections = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the websockets test server did not start")

    def url(self, path: str = "/echo") -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        async with serve(
            self._handler,
            "127.0.0.1",
            0,
            process_request=self._process_request,
            select_subprotocol=lambda _conn, offered: next(
                (p for p in offered if p in ("chat", "superchat")), None
            ),
            max_size=64 * 1024 * 1024,
            ping_interval=None,
            compression=None,
        ) as server:
            self.port = server.sockets[0].getsockname()[1]
            self._ready.set()
            await asyncio.Future()

    def _process_request(self, connection, request):
        path = request.path
        match = re.fullmatch(r"/status/(\d+)", path)
        if match:
            status = int(match.group(1))
            return Response(
                status,
                "Refused",
                Headers([("Content-Type", "text/plain"), ("X-Why", "test")]),
                b"refused by the test server",
            )
        if path == "/redirect":
            return Response(302, "Found", Headers([("Location", "/echo")]), b"")
        return None

    async def _handler(self, ws) -> None:
        path = ws.request.path
        try:
            if path == "/headers":
                await ws.send(json.dumps({k.lower(): v for k, v in ws.request.headers.raw_items()}))
            if path == "/header-lines":
                # Every header line as sent, repeats included (/headers
                # keeps one per name).
                await ws.send(json.dumps([[k, v] for k, v in ws.request.headers.raw_items()]))
            match = re.fullmatch(r"/drop/(\d+)", path)
            if match:
                for i in range(int(match.group(1))):
                    await ws.send(f"message {i}")
                await asyncio.sleep(0.05)
                ws.transport.abort()
                return
            match = re.fullmatch(r"/close/(\d+)", path)
            if match:
                await ws.close(int(match.group(1)), "bye")
                return
            if path == "/fragments":
                # A fragmented text and a fragmented binary message, then
                # one in a single frame, then echo.
                await ws.send(iter(["Hel", "lo, ", "world"]))
                await ws.send(iter([b"\x00\x01", b"\x02"]))
                await ws.send("whole")
            if path == "/count":
                self.count_connections += 1
                await ws.send(str(self.count_connections))
                await asyncio.sleep(0.05)
                ws.transport.abort()
                return
            async for message in ws:
                if isinstance(message, str) and message.startswith("close:"):
                    _, code, reason = message.split(":", 2)
                    await ws.close(int(code), reason)
                    return
                await ws.send(message)
        except ConnectionClosed:
            pass


@pytest.fixture(scope="session")
def server() -> PyServer:
    return PyServer()


def _floodgate_binary() -> Path:
    given = os.environ.get("FLOODGATE_BIN")
    path = Path(given) if given else ROOT / "target" / "release" / "floodgate"
    if not path.exists():
        pytest.fail(
            f"{path} is missing: build it with `cargo build --release -p floodgate-cli` "
            "(scripts/test does), or set FLOODGATE_BIN"
        )
    return path


class FeedServer:
    """``floodgate serve`` as a child process, stopped at the session's end."""

    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            [str(_floodgate_binary()), "serve", "--bind", "127.0.0.1:0", "--ping-interval", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._lines = []
        self._lock = threading.Lock()
        first = self._proc.stdout.readline()
        found = re.search(r"ws://127\.0\.0\.1:(\d+)/", first)
        if not found:
            self._proc.kill()
            raise RuntimeError(f"floodgate serve said {first!r}, not its address")
        self.port = int(found.group(1))
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self._proc.stdout:
            with self._lock:
                self._lines.append(line.rstrip("\n"))

    def url(self, **query) -> str:
        params = "&".join(f"{k}={v}" for k, v in query.items())
        return f"ws://127.0.0.1:{self.port}/feed?{params}"

    def reports(self) -> list:
        with self._lock:
            # "floodgate: feed to 127.0.0.1:PORT (/feed?...): completed; ..."
            return [line for line in self._lines if line.startswith("floodgate: feed to")]

    def wait_report(self, count: int, timeout: float = 10.0) -> list:
        """Waits until ``count`` feed reports have been printed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            reports = self.reports()
            if len(reports) >= count:
                return reports
            time.sleep(0.02)
        raise AssertionError(f"floodgate serve printed {self.reports()}, not {count} reports")

    def stop(self) -> None:
        self._proc.kill()
        self._proc.wait()


@pytest.fixture(scope="session")
def feed():
    server = FeedServer()
    yield server
    server.stop()


def worst_round_trip(report: str) -> float:
    """The worst ping round trip (seconds) of a ``floodgate serve`` report
    line ("... worst round trip 1.2ms")."""
    found = re.search(r"worst round trip ([0-9.]+)(ns|µs|us|ms|s)\b", report)
    if not found:
        raise AssertionError(f"no round trip in {report!r}")
    value, unit = float(found.group(1)), found.group(2)
    return value * {"ns": 1e-9, "µs": 1e-6, "us": 1e-6, "ms": 1e-3, "s": 1.0}[unit]


class SilentServer:
    """Completes the WebSocket handshake, then reads and answers nothing."""

    def __init__(self) -> None:
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen()
        self.port = self._listener.getsockname()[1]
        self._held = []
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                request += chunk
            key = re.search(rb"(?i)sec-websocket-key:\s*(\S+)", request).group(1)
            accept = base64.b64encode(
                hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest()
            )
            conn.sendall(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
            )
            self._held.append(conn)  # never read again


@pytest.fixture
def silent():
    s = SilentServer()
    yield s
    s._listener.close()
