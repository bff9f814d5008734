"""slack_sdk's Socket Mode client through its websocket-client adapter, on
floodgate and on websocket-client (the ``impl`` fixture), against the fake
Slack ``SlackServer`` (``apps.connections.open`` over HTTP, then the
WebSocket).

What the library needs from ``websocket``: ``WebSocketApp(url, on_open=,
on_message=, on_error=, on_close=)``, ``run_forever(ping_interval=,
http_proxy_host=None, ...)`` in its own thread, ``app.send()`` from other
threads, ``app.sock`` (``None`` once closed: how it decides to reconnect),
``app.close()`` from another thread, ``enableTrace``,
``WebSocketException``.
"""

import pytest
from .libs_run import run_client
from .libs_servers import SlackServer

APP_TOKEN = "xapp-1-A0TEST-fake"
# Connection 1 brings two events then a disconnect; connection 2 one event.
PLAN = [["first event", "second event"], ["after the reconnect"]]


@pytest.fixture
def slack():
    server = SlackServer(APP_TOKEN, PLAN)
    yield server
    server.close()


def test_events_acks_and_reconnect_on_disconnect(slack, impl):
    out = run_client(impl, "slack_client.py", {
        "http_port": slack.http_port, "app_token": APP_TOKEN, "expect": 3, "wait": 15, "ping_interval": 10,
    }, timeout=40)
    # Every event reached the listener once, in order, with its envelope.
    assert out["events"] == [
        ["events_api", "env-1-0", "first event"],
        ["events_api", "env-1-1", "second event"],
        ["events_api", "env-2-0", "after the reconnect"],
    ], (out, out["stderr_log"])
    assert out["all_seen"] is True
    assert out["connected_before_close"] is True
    assert out["close"] == "ok", out["close_error"]
    # Each envelope was acked on the connection that brought it.
    assert slack.seen("ack") == [
        (1, {"envelope_id": "env-1-0"}), (1, {"envelope_id": "env-1-1"}), (2, {"envelope_id": "env-2-0"}),
    ]
    # The disconnect made the client ask for a new URL and connect to it.
    # How many URLs slack_sdk asks for varies from run to run (its monitor
    # thread asks for one at start when the first session has not
    # connected yet, and the disconnect is handled both by the message
    # processor and by on_close), so: at least two, all with the app token;
    # two sessions, the second on a later URL than the first.
    opens = slack.seen("connections.open")
    assert len(opens) >= 2, opens
    assert all(o == (f"Bearer {APP_TOKEN}", {"ok": True, "url": o[1]["url"]}) for o in opens), opens
    connected = slack.seen("connected")
    assert [c[0] for c in connected] == [1, 2]
    assert connected[0][1] < connected[1][1] <= len(opens)
    assert out["opened"] == 2
    assert slack.seen("disconnect-sent") == [(1,)]
    assert slack.seen("extra") == []
    # Both sessions were closed by the client: the first when it moved to
    # the second, the second by close().
    assert slack.wait_for(lambda events: sum(e[0] == "closed" for e in events) == 2, 5)
    codes = [c[1] for c in slack.seen("closed")]
    assert codes == [1000, 1000], codes
