"""binance-connector's ``SpotWebsocketStreamClient`` on floodgate and on
websocket-client (the ``impl`` fixture), against the fake spot stream
``BinanceServer``.

What the library needs from ``websocket``: ``create_connection(url,
timeout=)``, ``send()``, ``recv_data_frame(True)`` in a reader thread
(answering pings itself, then ``pong("")`` from the library),
``send_close()`` from another thread, ``connected``, ``ABNF`` opcodes and
the exception classes.
"""

import pytest
from .libs_run import run_client
from .libs_servers import BinanceServer


@pytest.fixture
def binance():
    server = BinanceServer(trades=5)
    yield server
    server.close()


def test_subscribe_receive_and_stop(binance, impl):
    out = run_client(impl, "binance_client.py", {"port": binance.port, "trades": 5, "wait": 10}, timeout=40)
    assert out["got_all"] is True, out
    assert out["stop"] == "ok", out["stop_error"]
    messages = out["messages"]
    # Each SUBSCRIBE answered by its id, then that stream's trades, computed
    # from the id (so they belong to this subscription), in order.
    assert messages[0] == {"result": None, "id": 101}
    trades = [m for m in messages if "e" in m]
    assert [(m["e"], m["s"], m["t"], m["p"]) for m in trades] == [
        ("trade", "BTCUSDT", 10100 + t, f"{t + 1}.00") for t in range(5)
    ] + [("aggTrade", "ETHUSDT", 10200 + t, f"{t + 1}.00") for t in range(5)]
    assert {"result": None, "id": 102} in messages
    assert len(messages) == 12
    # The server's ping reached on_ping with its payload, and the pong the
    # client sent back carried it.
    assert out["pings"] == [BinanceServer.PING_PAYLOAD.decode()]
    assert binance.wait_for(lambda events: any(e[0] == "pong" for e in events), 5)
    assert binance.seen("pong") == [(True,)]
    # stop(): the client's close (1000) answered by the server, on_close
    # called, and no error on the way.
    assert out["closed"] is True
    assert out["events"] == ["open", "close"], out["events"]
    assert binance.seen("path") == [("/ws",)]
    assert [r[0] for r in binance.seen("request")] == [
        {"method": "SUBSCRIBE", "params": ["btcusdt@trade"], "id": 101},
        {"method": "SUBSCRIBE", "params": ["ethusdt@aggTrade"], "id": 102},
    ]
    assert binance.wait_for(lambda events: any(e[0] == "closed" for e in events), 5)
    assert binance.seen("closed")[0][1] == 1000
