"""obsws-python (``ReqClient``) on floodgate and on websocket-client (the
``impl`` fixture), against the fake obs-websocket v5 server ``ObsServer``.

What the library needs from ``websocket``: ``WebSocket()``,
``connect(url, timeout=)`` whose timeout also bounds every later
``recv()``, ``send()``, ``recv()`` returning ``""`` once the server has
closed, ``WebSocketTimeoutException``, ``close()``.
"""

import pytest
from .libs_run import run_client
from .libs_servers import ObsServer, obs_auth

PASSWORD = "obs-secret-42"


@pytest.fixture
def obs():
    server = ObsServer(PASSWORD)
    yield server
    server.close()


def test_identify_and_requests(obs, impl):
    out = run_client(impl, "obs_client.py", {"case": "requests", "port": obs.port, "password": PASSWORD, "timeout": 5})
    assert out["version"] == ["30.2.3", "5.5.2", 1, "fake OBS of floodgate's tests"], out["stderr_log"]
    assert out["scene"] == "Scene B"
    assert out["refused"] == [
        "obsws_python.error.OBSSDKRequestError",
        600,
        "Request SetCurrentProgramScene returned code 600. With message: No source was found by the name of `Nope`.",
    ]
    (identify,) = [e[0] for e in obs.seen("identify")]
    assert identify["d"]["authentication"] == obs_auth(PASSWORD, ObsServer.SALT, ObsServer.CHALLENGE)
    assert [r[0] for r in obs.seen("request")] == [
        "GetVersion", "SetCurrentProgramScene", "GetSceneList", "SetCurrentProgramScene",
    ]
    assert obs.seen("request")[1][1] == {"sceneName": "Scene B"}
    # The client closed (disconnect() on leaving the with block).
    assert obs.wait_for(lambda events: any(e[0] == "closed" for e in events), 5)
    assert obs.seen("closed")[0][1] == 1000


def test_unanswered_request_times_out(obs, impl):
    timeout = 2
    out = run_client(impl, "obs_client.py",
                     {"case": "unanswered", "port": obs.port, "password": PASSWORD, "timeout": timeout}, timeout=20)
    assert out["error"] == "obsws_python.error.OBSSDKTimeoutError", out
    assert out["cause"].endswith("WebSocketTimeoutException")
    assert out["message"] == "Timeout while trying to send the request"
    # About the timeout given, not at once and not much later.
    assert timeout - 0.2 <= out["elapsed"] <= timeout + 1.5, out["elapsed"]
    assert [r[0] for r in obs.seen("request")] == ["GetStats"]


def test_wrong_password_is_refused(obs, impl):
    out = run_client(impl, "obs_client.py", {"case": "wrong_password", "port": obs.port, "password": PASSWORD,
                                             "timeout": 5})
    # The server's close (4009) makes recv() return "" on websocket-client,
    # which obsws reports as a failed identification.
    assert out["error"] == "obsws_python.error.OBSSDKError", out
    assert out["message"] == "failed to identify client with the server, please check connection settings"
    assert out["elapsed"] < 3
    assert obs.seen("request") == []
