"""What every client script of the library tests shares: its arguments,
the stack dump before the parent's timeout, and the one ``RESULT`` line.

Imported first by each script, before the library (and so before
``websocket``): with ``FLOODGATE_AS_WEBSOCKET=1`` the alias is already in
place from interpreter startup; this module only checks which ``websocket``
the library will get and reports it.
"""

import faulthandler
import json
import os
import sys
import threading
import time

ARGS = json.loads(sys.argv[1])

# The parent kills the child after its timeout; dump every thread's stack
# just before, so a hang says where it is.
faulthandler.dump_traceback_later(float(os.environ.get("LIBS_DUMP_AFTER", "28")), exit=False)

import websocket  # noqa: E402  (after the dump is armed)

WEBSOCKET = websocket.__name__


def result(**fields) -> None:
    fields["websocket"] = WEBSOCKET
    # The modules behind every websocket name loaded, at the end: on
    # floodgate, all of them floodgate's (no websocket-client file was
    # loaded next to it by the library).
    fields["websocket_modules"] = sorted(
        {getattr(m, "__name__", "?") for n, m in list(sys.modules.items())
         if m is not None and (n == "websocket" or n.startswith("websocket."))}
    )
    print("RESULT " + json.dumps(fields), flush=True)


def error_name(e: BaseException) -> str:
    return f"{type(e).__module__}.{type(e).__name__}"


def join_within(target, timeout: float, name: str):
    """Runs ``target()`` in a thread and waits at most ``timeout`` seconds:
    returns ``("ok", value)``, ``("error", "Class: message")`` or
    ``("hung", None)`` (the thread is a daemon; the process can still end).
    For library calls with no timeout of their own (a ``join()``)."""
    out = {}

    def run():
        try:
            out["value"] = target()
        except BaseException as e:  # reported to the test, which asserts
            out["error"] = f"{error_name(e)}: {e}"

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        return "hung", None
    if "error" in out:
        return "error", out["error"]
    return "ok", out.get("value")


class Clock:
    def __init__(self) -> None:
        self.start = time.monotonic()

    def elapsed(self) -> float:
        return round(time.monotonic() - self.start, 3)
