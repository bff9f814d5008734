"""obsws-python's ``ReqClient`` against ``ObsServer``. ``ARGS["case"]``
picks what to run; the ``RESULT`` holds what the library returned."""

from _child import ARGS, Clock, error_name, result  # first: reports the websocket

import obsws_python as obs
from obsws_python.error import OBSSDKError, OBSSDKRequestError, OBSSDKTimeoutError


def connect(password=None):
    return obs.ReqClient(
        host="127.0.0.1", port=ARGS["port"], password=password or ARGS["password"], timeout=ARGS["timeout"]
    )


def requests():
    """Identify with the password, then requests with answers, one that the
    server refuses (code 600)."""
    out = {}
    with connect() as client:
        version = client.get_version()
        out["version"] = [version.obs_version, version.obs_web_socket_version, version.rpc_version,
                          version.platform_description]
        client.set_current_program_scene("Scene B")
        out["scene"] = client.get_scene_list().current_program_scene_name
        try:
            client.set_current_program_scene("Nope")
            out["refused"] = None
        except OBSSDKRequestError as e:
            out["refused"] = [error_name(e), e.code, str(e)]
    return out


def unanswered():
    """A request the server never answers fails after the timeout given to
    ReqClient (websocket-client bounds every recv() by connect(timeout=))."""
    client = connect()
    clock = Clock()
    try:
        client.get_stats()
        out = {"error": None}
    except OBSSDKTimeoutError as e:
        out = {"error": error_name(e), "message": str(e), "cause": error_name(e.__cause__)}
    out["elapsed"] = clock.elapsed()
    client.disconnect()
    return out


def wrong_password():
    """The server closes with 4009: the client's recv() sees the close and
    authenticate() reports that it could not identify."""
    clock = Clock()
    try:
        connect(password="not-the-password")
        out = {"error": None}
    except OBSSDKError as e:
        out = {"error": error_name(e), "message": str(e)}
    except Exception as e:  # a different class is a difference the test shows
        out = {"error": error_name(e), "message": str(e)}
    out["elapsed"] = clock.elapsed()
    return out


CASES = {f.__name__: f for f in (requests, unanswered, wrong_password)}

result(**CASES[ARGS["case"]]())
