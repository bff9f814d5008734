"""slack_sdk's Socket Mode client on its websocket-client adapter
(``slack_sdk.socket_mode.websocket_client``), against ``SlackServer``:
receive the events of ``ARGS["expect"]`` envelopes, ack each one, follow a
``disconnect`` to a new connection, close."""

import threading
import time

from _child import ARGS, Clock, join_within, result  # first: reports the websocket

from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.socket_mode.websocket_client import SocketModeClient
from slack_sdk.web import WebClient

seen = []
done = threading.Event()
lock = threading.Lock()


def on_request(client, request):
    # Ack first, as a Bolt app does, then record the event.
    client.send_socket_mode_response(SocketModeResponse(envelope_id=request.envelope_id))
    with lock:
        seen.append([request.type, request.envelope_id, request.payload["event"]["text"]])
        if len(seen) >= ARGS["expect"]:
            done.set()


opened = []
closed = []
clock = Clock()
web = WebClient(base_url=f"http://127.0.0.1:{ARGS['http_port']}/api/", timeout=5)
client = SocketModeClient(
    app_token=ARGS["app_token"],
    web_client=web,
    ping_interval=ARGS["ping_interval"],
    on_open_listeners=[lambda ws: opened.append(clock.elapsed())],
    on_close_listeners=[lambda ws: closed.append(clock.elapsed())],
)
client.socket_mode_request_listeners.append(on_request)
client.connect()
all_seen = done.wait(ARGS["wait"])
# Give the last ack time to leave before closing.
time.sleep(0.2)
connected_before_close = client.is_connected()
state, error = join_within(client.close, 10, "close")
with lock:
    result(
        events=list(seen),
        all_seen=all_seen,
        opened=len(opened),
        connected_before_close=connected_before_close,
        close=state,
        close_error=error,
        elapsed=clock.elapsed(),
    )
