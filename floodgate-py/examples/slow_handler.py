"""A websocket-client program with a slow handler, on floodgate.

    target/pyenv/bin/python floodgate-py/examples/slow_handler.py

Starts floodgate's embedded feed server (``floodgate serve``: 2,000
messages a second over 4 channels, a ping every 100 ms), then runs a
``WebSocketApp`` whose ``on_message`` takes 20 ms per message: a tenth of
the rate it is sent at. Written for websocket-client, this program would
fall further behind every second and its pings would wait behind the
backlog; here the reader thread (Rust, no GIL) answers the pings at once,
the buffer keeps the newest 200 messages and sheds the oldest, and
``workers=4, worker_key=channel`` handles four channels at a time, in
order per channel. After 3 seconds it closes and prints what the buffer
did; the counters add up (the close discards what is still buffered,
as websocket-client's does).
"""

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import floodgate as websocket

ROOT = Path(__file__).resolve().parents[2]


def start_feed_server():
    binary = Path(os.environ.get("FLOODGATE_BIN", ROOT / "target" / "release" / "floodgate"))
    if not binary.exists():
        sys.exit(f"{binary} is missing: run `cargo build --release -p floodgate-cli` first")
    server = subprocess.Popen(
        [str(binary), "serve", "--bind", "127.0.0.1:0", "--ping-interval", "100ms"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    port = re.search(r"127\.0\.0\.1:(\d+)/", server.stdout.readline()).group(1)
    return server, f"ws://127.0.0.1:{port}/feed?rate=2000&channels=4&size=128"


def main():
    server, url = start_feed_server()
    handled = {"count": 0}
    last_seq = {}
    lock = threading.Lock()

    def on_open(ws):
        print(f"open: {url}")

    def on_message(ws, message):
        feed = json.loads(message)
        time.sleep(0.02)  # the slow part of the application
        with lock:
            # Per channel, messages arrive in order (some shed in between).
            assert feed["seq"] > last_seq.get(feed["channel"], -1)
            last_seq[feed["channel"]] = feed["seq"]
            handled["count"] += 1

    def on_close(ws, status_code, reason):
        print(f"close: {status_code} {reason!r}")

    app = websocket.WebSocketApp(
        url,
        on_open=on_open,
        on_message=on_message,
        on_close=on_close,
        # floodgate's: bounded buffer, shed the oldest; 4 handler threads,
        # one channel on one thread at a time.
        max_messages=200,
        overflow="drop_oldest",
        workers=4,
        worker_key=lambda message: json.loads(message)["channel"],
    )
    threading.Timer(3.0, app.close).start()
    errored = app.run_forever()
    stats = app.stats()
    server.kill()
    print(
        f"received {stats['received']}, handled {handled['count']}, "
        f"shed {stats['dropped_oldest']} (oldest first), "
        f"discarded by the close {stats['delivered'] - handled['count']} "
        "(what was buffered when it began, as websocket-client discards it)"
    )
    print(
        f"pings answered {stats['pings_answered']}, slowest answer "
        f"{stats['max_ping_delay'] * 1e6:.0f} µs, longest wait in the buffer "
        f"{stats['wait_max'] * 1e3:.0f} ms"
    )
    assert not errored, "run_forever ended with an error"
    assert stats["received"] == (
        stats["delivered"] + stats["buffered"] + stats["dropped_oldest"] + stats["dropped_newest"]
    ), stats
    assert stats["pings_answered"] > 0 and stats["dropped_oldest"] > 0, stats


if __name__ == "__main__":
    main()
