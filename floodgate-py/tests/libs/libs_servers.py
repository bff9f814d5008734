"""Fake servers for the library tests, all on loopback, each run by its own
asyncio loop in a thread of the pytest process (one per test, so that what
a server records belongs to one test).

They speak just enough of each service's protocol for the library to do
its real work, and record what they saw (messages, acks, close codes) for
the tests to assert on. Their replies are computed from what the client
sent (a transformed echo, a reply per request id), so a client that sent
nothing or the wrong thing cannot get the expected answer back.

- ``KubeServer``: the API server's exec and port-forward endpoints, over the
  v5/v4 channel protocol (``v5.channel.k8s.io`` / ``v4.channel.k8s.io``).
- ``ObsServer``: obs-websocket v5 (Hello with an auth challenge, Identify,
  Identified, requests and their responses).
- ``SlackServer``: ``apps.connections.open`` (HTTP) and the Socket Mode
  WebSocket (hello, envelopes, acks, ``disconnect``).
- ``BinanceServer``: the spot market stream (SUBSCRIBE, trade events,
  a ping from the server, the close).
"""

import asyncio
import base64
import hashlib
import json
import ssl
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

from certs import make_tls_files

__all__ = ["KubeServer", "ObsServer", "SlackServer", "BinanceServer", "make_tls_files"]

# How long a server waits for the client's next step before giving up on
# the connection; the tests' own bounds are shorter or equal, so a stuck
# client shows up as the test's failure, not as a server that hangs.
STEP_TIMEOUT = 10.0


class LoopServer:
    """A ``websockets`` server run by an asyncio loop in a thread.

    Subclasses define ``async handle(connection)`` and may override
    ``serve_options()``. ``events`` is a list the handlers append to
    (guarded by ``lock``); ``wait_for(predicate, timeout)`` polls it.
    """

    def __init__(self) -> None:
        self.events = []
        self.lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop = None
        self._thread = threading.Thread(target=self._run, name=type(self).__name__, daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError(f"{type(self).__name__} did not start within 10 s")

    def serve_options(self) -> dict:
        return {}

    def record(self, *event) -> None:
        with self.lock:
            self.events.append(event)

    def seen(self, kind: str) -> list:
        with self.lock:
            return [e[1:] for e in self.events if e[0] == kind]

    def wait_for(self, predicate, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if predicate(list(self.events)):
                    return True
            time.sleep(0.01)
        return False

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        options = {"ping_interval": None, "compression": None, "max_size": 16 * 1024 * 1024}
        options.update(self.serve_options())
        async with serve(self._handle, "127.0.0.1", 0, **options) as server:
            self.port = server.sockets[0].getsockname()[1]
            self._ready.set()
            await self._stop.wait()

    async def _handle(self, connection) -> None:
        try:
            await asyncio.wait_for(self.handle(connection), 4 * STEP_TIMEOUT)
        except (ConnectionClosed, asyncio.TimeoutError):
            pass
        finally:
            # The close code the client sent (None: TCP ended without one).
            rcvd = getattr(connection, "close_rcvd", None) or getattr(connection.protocol, "close_rcvd", None)
            self.record("closed", connection.request.path, rcvd.code if rcvd else None)

    async def handle(self, connection) -> None:
        raise NotImplementedError

    def close(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


# ---------------------------------------------------------------------------
# Kubernetes


V5 = "v5.channel.k8s.io"
V4 = "v4.channel.k8s.io"
STDIN, STDOUT, STDERR, ERROR, CLOSE = 0, 1, 2, 3, 255

#: The key the fake pod's port-forward services XOR every byte with: a reply
#: that is the client's bytes transformed, whatever the chunking.
PF_KEY = 0x5A
_PF_TABLE = bytes(i ^ PF_KEY for i in range(256))


def pf_transform(data: bytes) -> bytes:
    return data.translate(_PF_TABLE)


def _status(code: int) -> bytes:
    """The metav1.Status the API server sends on the error channel when the
    command ends (what the client's ``returncode`` parses)."""
    if code == 0:
        status = {"metadata": {}, "status": "Success"}
    else:
        status = {
            "metadata": {},
            "status": "Failure",
            "message": f"command terminated with non-zero exit code: exit status {code}",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
        }
    return json.dumps(status).encode()


class KubeServer(LoopServer):
    """The API server's WebSocket endpoints for one pod.

    - ``GET /api/v1/namespaces/NS/pods/NAME/exec?command=...``: runs one of
      the fake commands below. The namespace ``v4only`` accepts only
      ``v4.channel.k8s.io`` (no channel close); others prefer v5.

      - ``report TEXT CODE``: ``TEXT\\n`` on stdout, ``oops: TEXT\\n`` on
        stderr, exits with ``CODE``.
      - ``seq N``: ``line 1\\n`` ... ``line N\\n`` on stdout, one frame each
        and all at once (the client must drain frames already waiting).
      - ``cat``: each stdin chunk comes back on stdout prefixed ``cat: ``;
        the stdin line ``exit N`` ends it with code ``N``; closing stdin
        (v5's close channel) writes ``stdin closed\\n`` on stderr and exits 0.

    - ``GET .../portforward?ports=P1,P2``: each port's data channel sends
      the port number first (as the kubelet does), then answers every chunk
      with ``pf_transform(chunk)``; the port ``9999`` answers on its error
      channel that nothing listens there.

    Every request must carry ``authorization: Bearer <token>``, else 401.
    """

    def __init__(self, token: str, tls=None) -> None:
        """``tls``: the paths of ``make_tls_files()`` to serve wss, or None."""
        self.token = token
        self.tls = tls
        super().__init__()

    def serve_options(self) -> dict:
        options = {"process_request": self._check_auth, "select_subprotocol": self._select}
        if self.tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(self.tls["cert"], self.tls["key"])
            options["ssl"] = context
        return options

    def _check_auth(self, connection, request):
        # The subprotocols offered, in order, over every header line (RFC
        # 6455 11.3.4: several lines are one list; spaces are not part of it).
        offered = [
            token.strip()
            for line in request.headers.get_all("Sec-WebSocket-Protocol")
            for token in line.split(",")
        ]
        self.record("request", request.path, request.headers.get("Authorization"), offered)
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return connection.respond(HTTPStatus.UNAUTHORIZED, "Unauthorized: bad or missing bearer token\n")
        return None

    def _select(self, connection, offered):
        accepted = [V4] if "/namespaces/v4only/" in connection.request.path else [V5, V4]
        return next((p for p in accepted if p in offered), None)

    async def handle(self, ws) -> None:
        url = urlsplit(ws.request.path)
        query = parse_qs(url.query)
        self.record("subprotocol", ws.subprotocol)
        if url.path.endswith("/exec"):
            # As the API server: no stream for a channel not asked for.
            muted = {ch for ch, name in ((STDOUT, "stdout"), (STDERR, "stderr")) if [v.lower() for v in query.get(name, [])] != ["true"]}
            await self._exec(ws, query.get("command", []), muted)
        elif url.path.endswith("/portforward"):
            await self._portforward(ws, [int(p) for p in query["ports"][0].split(",")])
        else:
            await ws.close(1008, f"no such endpoint {url.path}")

    async def _send(self, ws, channel: int, data: bytes) -> None:
        if channel not in getattr(ws, "muted", ()):
            await ws.send(bytes([channel]) + data)

    async def _exec(self, ws, command, muted) -> None:
        self.record("command", command)
        ws.muted = muted
        code = 0
        if command[:1] == ["report"] and len(command) == 3:
            text, code = command[1], int(command[2])
            await self._send(ws, STDOUT, f"{text}\n".encode())
            await self._send(ws, STDERR, f"oops: {text}\n".encode())
        elif command[:1] == ["seq"] and len(command) == 2:
            for i in range(1, int(command[1]) + 1):
                await self._send(ws, STDOUT, f"line {i}\n".encode())
        elif command == ["cat"]:
            code = await self._cat(ws)
        else:
            await self._send(ws, STDERR, f"fake pod: unknown command {command!r}\n".encode())
            code = 127
        await self._send(ws, ERROR, _status(code))
        await ws.close(1000, "")

    async def _cat(self, ws) -> int:
        while True:
            message = await asyncio.wait_for(ws.recv(), STEP_TIMEOUT)
            data = message.encode() if isinstance(message, str) else message
            channel, body = data[0], data[1:]
            self.record("stdin-frame", "text" if isinstance(message, str) else "binary", data)
            if channel == CLOSE and ws.subprotocol == V5:
                self.record("channel-closed", body[0])
                if body[0] == STDIN:
                    await self._send(ws, STDERR, b"stdin closed\n")
                    return 0
                continue
            if channel != STDIN:
                await self._send(ws, STDERR, f"fake pod: data on channel {channel}\n".encode())
                continue
            for line in body.decode().splitlines():
                if line.startswith("exit "):
                    return int(line.split()[1])
            await self._send(ws, STDOUT, b"cat: " + body)

    async def _portforward(self, ws, ports) -> None:
        self.record("ports", ports)
        for ix, port in enumerate(ports):
            for channel in (2 * ix, 2 * ix + 1):
                await self._send(ws, channel, port.to_bytes(2, "little"))
        for ix, port in enumerate(ports):
            if port == 9999:
                await self._send(ws, 2 * ix + 1, b"fake pod: nothing listens on port 9999")
        async for message in ws:
            if isinstance(message, str):
                self.record("pf-text", message)
                continue
            channel, body = message[0], message[1:]
            self.record("pf-data", ports[channel // 2], len(body))
            await self._send(ws, channel, pf_transform(body))


# ---------------------------------------------------------------------------
# OBS


def obs_auth(password: str, salt: str, challenge: str) -> str:
    """obs-websocket v5's authentication string."""
    secret = base64.b64encode(hashlib.sha256((password + salt).encode()).digest())
    return base64.b64encode(hashlib.sha256(secret + challenge.encode()).digest()).decode()


class ObsServer(LoopServer):
    """obs-websocket v5 with a password.

    Requests: ``GetVersion`` (answered with data), ``GetSceneList``,
    ``SetCurrentProgramScene`` (fails with code 600 unless the scene is
    ``Scene A`` or ``Scene B``), and ``GetStats``, which this server records
    and never answers (for the client's timeout). A wrong authentication
    string closes with 4009, as OBS does.
    """

    SALT = "c2FsdC1mb3ItdGVzdHM="
    CHALLENGE = "Y2hhbGxlbmdlLWZvci10ZXN0cw=="

    def __init__(self, password: str) -> None:
        self.password = password
        self.scene = "Scene A"
        super().__init__()

    async def handle(self, ws) -> None:
        await ws.send(json.dumps({
            "op": 0,
            "d": {
                "obsWebSocketVersion": "5.5.2",
                "rpcVersion": 1,
                "authentication": {"challenge": self.CHALLENGE, "salt": self.SALT},
            },
        }))
        identify = json.loads(await asyncio.wait_for(ws.recv(), STEP_TIMEOUT))
        self.record("identify", identify)
        expected = obs_auth(self.password, self.SALT, self.CHALLENGE)
        if identify.get("op") != 1 or identify["d"].get("authentication") != expected:
            await ws.close(4009, "Authentication failed.")
            return
        await ws.send(json.dumps({"op": 2, "d": {"negotiatedRpcVersion": identify["d"]["rpcVersion"]}}))
        async for message in ws:
            request = json.loads(message)
            d = request["d"]
            self.record("request", d["requestType"], d.get("requestData"))
            if d["requestType"] == "GetStats":
                continue  # never answered
            status, data = self._answer(d["requestType"], d.get("requestData") or {})
            response = {"requestType": d["requestType"], "requestId": d["requestId"], "requestStatus": status}
            if data is not None:
                response["responseData"] = data
            await ws.send(json.dumps({"op": 7, "d": response}))

    def _answer(self, kind, data):
        ok = {"result": True, "code": 100}
        if kind == "GetVersion":
            return ok, {
                "obsVersion": "30.2.3",
                "obsWebSocketVersion": "5.5.2",
                "rpcVersion": 1,
                "availableRequests": ["GetVersion", "GetSceneList", "SetCurrentProgramScene", "GetStats"],
                "supportedImageFormats": ["png", "jpg"],
                "platform": "linux",
                "platformDescription": "fake OBS of floodgate's tests",
            }
        if kind == "GetSceneList":
            return ok, {
                "currentProgramSceneName": self.scene,
                "currentPreviewSceneName": None,
                "scenes": [{"sceneIndex": 0, "sceneName": "Scene B"}, {"sceneIndex": 1, "sceneName": "Scene A"}],
            }
        if kind == "SetCurrentProgramScene":
            name = data.get("sceneName")
            if name not in ("Scene A", "Scene B"):
                return {"result": False, "code": 600, "comment": f"No source was found by the name of `{name}`."}, None
            self.scene = name
            return ok, None
        return {"result": False, "code": 204, "comment": f"Unknown request type {kind}"}, None


# ---------------------------------------------------------------------------
# Slack


class SlackServer(LoopServer):
    """Slack's ``apps.connections.open`` (HTTP, on ``http_port``) and Socket
    Mode (WebSocket).

    ``apps.connections.open`` checks the app token and hands out
    ``ws://.../link/?ticket=N`` for the N-th call. The N-th WebSocket
    connection made (whatever its ticket: slack_sdk asks for a URL it may
    never use, see ``SlackServer.handle``) sends ``hello``, then the
    envelopes ``plan[N-1]`` (event texts) one at a time, each waiting for
    its ack; then, if another connection is planned, a ``disconnect``
    (refresh_requested), after which it waits for the client to close. The
    last connection stays open until the client closes it.
    """

    def __init__(self, app_token: str, plan) -> None:
        self.app_token = app_token
        self.plan = plan
        self.tickets = 0
        self.connections = 0
        super().__init__()
        server = self

        class Api(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                if self.path.rstrip("/") != "/api/apps.connections.open":
                    body = {"ok": False, "error": "unknown_method"}
                elif self.headers.get("Authorization") != f"Bearer {server.app_token}":
                    body = {"ok": False, "error": "invalid_auth"}
                else:
                    with server.lock:
                        server.tickets += 1
                        ticket = server.tickets
                    body = {"ok": True, "url": f"ws://127.0.0.1:{server.port}/link/?ticket={ticket}"}
                server.record("connections.open", self.headers.get("Authorization"), body)
                raw = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args):
                pass

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Api)
        self.http_port = self._http.server_address[1]
        threading.Thread(target=self._http.serve_forever, name="SlackApi", daemon=True).start()

    async def handle(self, ws) -> None:
        # slack_sdk's monitor thread checks the session once at start, before
        # the session's own thread has connected, and then asks for a second
        # URL and replaces the session: the first ticket is usually never
        # used. So plans follow the connections made, not the tickets.
        with self.lock:
            self.connections += 1
            number = self.connections
        ticket = int(parse_qs(urlsplit(ws.request.path).query)["ticket"][0])
        self.record("connected", number, ticket)
        await ws.send(json.dumps({
            "type": "hello",
            "num_connections": 1,
            "debug_info": {"host": "fake-slack", "approximate_connection_time": 3600},
            "connection_info": {"app_id": "A0TEST"},
        }))
        texts = self.plan[number - 1] if number <= len(self.plan) else []
        for i, text in enumerate(texts):
            envelope_id = f"env-{number}-{i}"
            await ws.send(json.dumps({
                "envelope_id": envelope_id,
                "type": "events_api",
                "accepts_response_payload": False,
                "retry_attempt": 0,
                "retry_reason": "",
                "payload": {
                    "type": "event_callback",
                    "event": {"type": "message", "text": text, "channel": "C0TEST"},
                },
            }))
            ack = json.loads(await asyncio.wait_for(ws.recv(), STEP_TIMEOUT))
            self.record("ack", number, ack)
        if number < len(self.plan):
            await ws.send(json.dumps({
                "type": "disconnect",
                "reason": "refresh_requested",
                "debug_info": {"host": "fake-slack"},
            }))
            self.record("disconnect-sent", number)
        # Wait for the client to close (Slack would drop it a few seconds
        # after a disconnect); anything else it sends is recorded.
        async for message in ws:
            self.record("extra", number, message)

    def close(self) -> None:
        self._http.shutdown()
        self._http.server_close()
        super().close()


# ---------------------------------------------------------------------------
# Binance


class BinanceServer(LoopServer):
    """The spot market stream at ``/ws``.

    ``SUBSCRIBE`` is answered ``{"result": null, "id": ID}``, then
    ``trades`` trade events per stream, whose trade ids and prices are
    computed from the subscription's id. After the first subscription the
    server pings with ``PING_PAYLOAD`` and records whether the pong echoed
    it. A client's close is answered (1000).
    """

    PING_PAYLOAD = b"binance-heartbeat"

    def __init__(self, trades: int) -> None:
        self.trades = trades
        super().__init__()

    async def handle(self, ws) -> None:
        self.record("path", ws.request.path)
        pinged = False
        async for message in ws:
            request = json.loads(message)
            self.record("request", request)
            if request.get("method") != "SUBSCRIBE":
                await ws.send(json.dumps({"error": {"code": 2, "msg": "Invalid request"}, "id": request.get("id")}))
                continue
            await ws.send(json.dumps({"result": None, "id": request["id"]}))
            for stream in request["params"]:
                symbol, kind = stream.split("@")
                for t in range(self.trades):
                    await ws.send(json.dumps({
                        "e": kind,
                        "E": 1700000000000 + t,
                        "s": symbol.upper(),
                        "t": request["id"] % 1000 * 100 + t,
                        "p": f"{t + 1}.00",
                        "q": "0.5",
                    }))
            if not pinged:
                pinged = True
                pong = await ws.ping(self.PING_PAYLOAD)
                try:
                    await asyncio.wait_for(pong, STEP_TIMEOUT)
                    self.record("pong", True)
                except asyncio.TimeoutError:
                    self.record("pong", False)
