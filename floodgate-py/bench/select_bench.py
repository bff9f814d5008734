"""Waiting with select() on a connection: floodgate against websocket-client,
in one run.

    target/pyenv/bin/python floodgate-py/bench/select_bench.py [--quick] [--count N] [--rounds K]

Two measurements, each client in turn, K rounds interleaved, the median
round kept, printed as a Markdown table:

1. **echo + select**: send a message to an echo server (the tests'
   ``websockets`` server), ``select()`` on the connection until it is
   readable, take the message; the round trip, p50 and p99 over 2,000.
   floodgate's descriptor is lit by its Rust reader once the message is
   buffered (``ready_fd``); websocket-client's is its socket.
2. **select-driven feed**: N messages of 64 bytes at full rate from
   ``floodgate serve``; the loop waits in ``select()``, then takes every
   message that is ready (``recv`` while the descriptor stays readable);
   messages per second. This is the loop of dispatchers (``rel``) and of
   libraries that poll ``ws.sock`` (kubernetes' stream).

Machines here are small and noisy: read the ratio, not the figures.
"""

import argparse
import os
import select
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from conftest import FeedServer, PyServer  # noqa: E402

import floodgate  # noqa: E402
import websocket as websocket_client  # noqa: E402

LIBS = {"floodgate": floodgate, "websocket-client": websocket_client}
if getattr(websocket_client, "__name__", "") == "floodgate":
    raise SystemExit("select_bench: `websocket` is floodgate here (FLOODGATE_AS_WEBSOCKET?); unset it")


def echo_select(lib, url, n):
    ws = lib.create_connection(url, timeout=5)
    lat = []
    for _ in range(n):
        t = time.perf_counter()
        ws.send("x")
        r, _, _ = select.select([ws], [], [], 5)
        if not r:
            raise SystemExit(f"select_bench: {lib.__name__}: no echo within 5 s")
        ws.recv()
        lat.append(time.perf_counter() - t)
    ws.close()
    lat.sort()
    return lat[len(lat) // 2], lat[min(len(lat) - 1, int(len(lat) * 0.99))]


def select_feed(lib, url, n):
    ws = lib.create_connection(url, timeout=10)
    got = 0
    t = time.perf_counter()
    while got < n:
        r, _, _ = select.select([ws], [], [], 10)
        if not r:
            raise SystemExit(f"select_bench: {lib.__name__}: nothing after {got} messages")
        while True:
            if ws.recv() == "":
                raise SystemExit(f"select_bench: {lib.__name__}: the feed ended after {got}")
            got += 1
            if got == n or not select.select([ws], [], [], 0)[0]:
                break
    rate = n / (time.perf_counter() - t)
    ws.close()
    return rate


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny counts: check that it runs")
    parser.add_argument("--count", type=int, default=100_000, help="feed messages per run")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    count, rounds, echoes = (2_000, 1, 100) if args.quick else (args.count, args.rounds, 2_000)
    echo = PyServer()
    feed = FeedServer()
    try:
        rows = {name: {"echo": [], "feed": []} for name in LIBS}
        for _ in range(rounds):
            for name, lib in LIBS.items():
                rows[name]["echo"].append(echo_select(lib, echo.url("/echo"), echoes))
                url = feed.url(rate=0, count=count, size=64, ping_ms=0)
                rows[name]["feed"].append(select_feed(lib, url, count))
    finally:
        feed.stop()
    print(f"select() on a connection, {count} messages of 64 B, median of {rounds} round(s)")
    print()
    print("| client | echo + select p50 (µs) | p99 (µs) | select-driven feed (msg/s) | feed ratio |")
    print("|---|---:|---:|---:|---:|")
    median = {name: sorted(r["feed"])[len(r["feed"]) // 2] for name, r in rows.items()}
    for name, r in rows.items():
        p50, p99 = sorted(r["echo"])[len(r["echo"]) // 2]
        ratio = median[name] / median["websocket-client"]
        print(f"| {name} | {p50 * 1e6:.0f} | {p99 * 1e6:.0f} | {median[name]:,.0f} | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
