"""floodgate's Python package against websocket-client, in one run.

    target/pyenv/bin/python floodgate-py/bench/bench.py [--quick] [--runs K]

Two measurements, each against the same local server, printed as Markdown
tables with ratios to websocket-client:

1. **Receive throughput** at 16 B, 1 KiB and 64 KiB payloads. The server
   (``blast_server`` below, a separate process so it never competes for
   this process's GIL) answers the upgrade, writes N pre-encoded unmasked
   binary frames as fast as the socket takes them, then a close frame.
   Each client receives until the close, one message per ``recv()`` (the
   websocket-client way; floodgate also with ``recv_batch``), and the
   counts are checked. Runs are interleaved (client A, B, C, then again);
   the best of K is kept.
2. **The worst ping-to-pong delay under a slow handler**: floodgate's
   feed (``floodgate serve``) sends 200 messages a second with a ping
   every 100 ms, the handler sleeps 50 ms per message, and the server
   reports the worst round trip of its pings. websocket-client answers a
   ping only when ``recv`` reaches it behind the backlog; floodgate's
   reader thread (Rust, no GIL) answers at once.

Machine facts and the load average go on top of the report: the machines
this runs on are small and noisy, so read ratios, not absolute numbers.
"""

import argparse
import base64
import hashlib
import multiprocessing
import os
import platform
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import websocket as wsc  # websocket-client

import floodgate

ROOT = Path(__file__).resolve().parents[2]


# ----- the blast server --------------------------------------------------------


def _frame(payload: bytes, opcode: int = 0x2) -> bytes:
    n = len(payload)
    if n < 126:
        header = bytes([0x80 | opcode, n])
    elif n < 1 << 16:
        header = bytes([0x80 | opcode, 126]) + n.to_bytes(2, "big")
    else:
        header = bytes([0x80 | opcode, 127]) + n.to_bytes(8, "big")
    return header + payload


def _serve_one(conn: socket.socket, size: int, count: int) -> None:
    request = b""
    while b"\r\n\r\n" not in request:
        chunk = conn.recv(65536)
        if not chunk:
            return
        request += chunk
    key = re.search(rb"(?i)sec-websocket-key:\s*(\S+)", request).group(1)
    accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
    conn.sendall(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
    )
    frame = _frame(os.urandom(size))
    per_block = max(1, (1 << 20) // len(frame))
    block = frame * per_block
    sent = 0
    while sent + per_block <= count:
        conn.sendall(block)
        sent += per_block
    conn.sendall(frame * (count - sent))
    conn.sendall(_frame((1000).to_bytes(2, "big"), 0x8))
    # The client answers the close; then the server closes TCP first, as
    # RFC 6455 (7.1.1) has it (floodgate waits for that, as it should).
    conn.settimeout(30)
    try:
        conn.recv(65536)
    except OSError:
        pass
    conn.close()


def blast_server(port_pipe, size: int, count: int) -> None:
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port_pipe.send(listener.getsockname()[1])
    while True:
        conn, _ = listener.accept()
        # No Nagle: the frames must not wait for the ACK of the 101.
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        _serve_one(conn, size, count)


# ----- the clients -------------------------------------------------------------


def run_websocket_client(url: str) -> int:
    ws = wsc.create_connection(url)
    n = 0
    while True:
        opcode, _data = ws.recv_data()
        if opcode == wsc.ABNF.OPCODE_CLOSE:
            break
        n += 1
    ws.close()
    return n


def run_floodgate_recv(url: str) -> int:
    ws = floodgate.create_connection(url)
    n = 0
    while True:
        message = ws.recv()
        if message == "":
            break
        n += 1
    ws.close()
    return n


def run_floodgate_batch(url: str) -> int:
    ws = floodgate.create_connection(url)
    n = 0
    try:
        while True:
            n += len(ws.recv_batch(1024))
    except floodgate.WebSocketConnectionClosedException:
        pass
    ws.close()
    return n


CLIENTS = [
    ("websocket-client", run_websocket_client),
    ("floodgate recv()", run_floodgate_recv),
    ("floodgate recv_batch()", run_floodgate_batch),
]


def throughput(sizes, counts, runs) -> str:
    out = []
    for size in sizes:
        count = counts[size]
        parent, child = multiprocessing.Pipe()
        server = multiprocessing.Process(target=blast_server, args=(child, size, count), daemon=True)
        server.start()
        url = f"ws://127.0.0.1:{parent.recv()}/"
        best = {}
        for _ in range(runs):
            for name, run in CLIENTS:
                started = time.perf_counter()
                got = run(url)
                took = time.perf_counter() - started
                if got != count:
                    raise SystemExit(f"{name} received {got} of {count} messages at {size} B")
                rate = count / took
                best[name] = max(best.get(name, 0.0), rate)
                print(f"  {size} B {name}: {rate:,.0f} msg/s", file=sys.stderr)
        server.kill()
        base = best["websocket-client"]
        out.append(f"\n### {size} B payloads x {count:,} messages (best of {runs})\n")
        out.append("| client | messages/s | MiB/s | vs websocket-client |")
        out.append("|---|---:|---:|---:|")
        for name, _ in CLIENTS:
            rate = best[name]
            mib = rate * size / (1 << 20)
            out.append(f"| {name} | {rate:,.0f} | {mib:,.1f} | {rate / base:.1f}x |")
    return "\n".join(out)


# ----- the slow handler under pings -------------------------------------------


def _feed_server():
    binary = Path(os.environ.get("FLOODGATE_BIN", ROOT / "target" / "release" / "floodgate"))
    if not binary.exists():
        raise SystemExit(f"{binary} is missing: cargo build --release -p floodgate-cli")
    proc = subprocess.Popen(
        [str(binary), "serve", "--bind", "127.0.0.1:0", "--ping-interval", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    port = int(re.search(r"127\.0\.0\.1:(\d+)/", proc.stdout.readline()).group(1))
    return proc, port


def _report(proc) -> str:
    for line in proc.stdout:
        if line.startswith("floodgate: feed to"):
            return line.strip()
    raise SystemExit("floodgate serve ended without a report")


def _round_trip(report: str) -> str:
    found = re.search(r"worst round trip (\S+)", report)
    pings = re.search(r"(\d+) of (\d+) pings answered", report)
    return f"{found.group(1)} ({pings.group(1)} of {pings.group(2)} pings answered)"


def slow_handler(count: int) -> str:
    rows = []
    for name, module in (("websocket-client", wsc), ("floodgate", floodgate)):
        proc, port = _feed_server()
        url = f"ws://127.0.0.1:{port}/feed?rate=200&count={count}&size=128&ping_ms=100"
        ws = module.create_connection(url)
        started = time.perf_counter()
        handled = 0
        while True:
            message = ws.recv()
            if message == "":
                break
            time.sleep(0.05)  # the slow handler
            handled += 1
        took = time.perf_counter() - started
        ws.close()
        report = _report(proc)
        proc.kill()
        print(f"  slow handler {name}: {report}", file=sys.stderr)
        rows.append(f"| {name} | {handled} | {took:.1f} s | {_round_trip(report)} |")
    return "\n".join(
        [
            f"\n### Worst ping round trip: {count} messages at 200/s, a ping every 100 ms, "
            "a handler that sleeps 50 ms per message\n",
            "| client | messages handled | handling took | server's worst ping round trip |",
            "|---|---:|---:|---|",
            *rows,
        ]
    )


def machine() -> str:
    try:
        model = next(
            line.split(":", 1)[1].strip()
            for line in open("/proc/cpuinfo")
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        model = platform.processor() or "?"
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{os.cpu_count()} CPUs ({model}), Python {platform.python_version()}, "
        f"websocket-client {wsc.__version__}, floodgate {floodgate.__version__}, "
        f"load average at start {load}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny counts: check that it runs")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if args.quick:
        counts = {16: 2000, 1024: 1000, 65536: 50}
        runs, slow_count = 1, 10
    else:
        counts = {16: 200_000, 1024: 100_000, 65536: 5_000}
        runs, slow_count = args.runs, 100
    print("## floodgate (Python) against websocket-client (`floodgate-py/bench/bench.py`)\n")
    print(machine())
    print(throughput([16, 1024, 65536], counts, runs))
    print(slow_handler(slow_count))


if __name__ == "__main__":
    main()
