"""binance-connector's ``SpotWebsocketStreamClient`` against
``BinanceServer``: subscribe to two streams, receive their trade events and
the server's ping, stop."""

import json
import threading

from _child import ARGS, Clock, join_within, result  # first: reports the websocket

from binance.websocket.spot.websocket_stream import SpotWebsocketStreamClient

messages = []
pings = []
events = []
lock = threading.Lock()
enough = threading.Event()
closed = threading.Event()


def on_message(_manager, message):
    with lock:
        messages.append(json.loads(message))
        # 2 subscription answers + the trades of both streams.
        if len(messages) >= 2 + 2 * ARGS["trades"] and pings:
            enough.set()


def on_ping(_manager, payload):
    with lock:
        pings.append(payload.decode() if isinstance(payload, bytes) else payload)
        if len(messages) >= 2 + 2 * ARGS["trades"]:
            enough.set()


clock = Clock()
client = SpotWebsocketStreamClient(
    stream_url=f"ws://127.0.0.1:{ARGS['port']}",
    on_message=on_message,
    on_open=lambda _m: events.append("open"),
    on_ping=on_ping,
    on_close=lambda _m: (events.append("close"), closed.set()),
    on_error=lambda _m, e: events.append(f"error {type(e).__name__}: {e}"),
    timeout=10,
)
client.trade(symbol="btcusdt", id=101)
client.agg_trade(symbol="ETHUSDT", id=102)
got_all = enough.wait(ARGS["wait"])
state, error = join_within(client.stop, 10, "stop")
with lock:
    result(
        messages=list(messages),
        pings=list(pings),
        got_all=got_all,
        stop=state,
        stop_error=error,
        closed=closed.is_set(),
        events=list(events),
        elapsed=clock.elapsed(),
    )
