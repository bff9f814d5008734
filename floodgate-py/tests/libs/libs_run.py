"""``run_client()``: runs a script of ``clients/`` in a child interpreter
whose ``import websocket`` is floodgate or websocket-client."""

import json
import os
import subprocess
import sys
from pathlib import Path

CLIENTS = Path(__file__).resolve().parent / "clients"

IMPLS = ("floodgate", "websocket-client")


class ChildFailed(AssertionError):
    pass


def run_client(impl: str, script: str, args: dict, timeout: float = 30.0) -> dict:
    """Runs ``clients/<script>`` with ``args`` under ``impl`` and returns its
    ``RESULT``. Fails (with the child's output) when it exits non-zero,
    prints no result, reports a different ``websocket`` than asked, or is
    still running after ``timeout`` seconds."""
    env = {k: v for k, v in os.environ.items() if k != "FLOODGATE_AS_WEBSOCKET"}
    if impl == "floodgate":
        env["FLOODGATE_AS_WEBSOCKET"] = "1"
    # The child dumps its stacks a little before it is killed.
    env["LIBS_DUMP_AFTER"] = str(max(1.0, timeout - 2.0))
    try:
        proc = subprocess.run(
            [sys.executable, str(CLIENTS / script), json.dumps(args)],
            cwd=CLIENTS,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as e:
        raise ChildFailed(
            f"{script} on {impl} still running after {timeout} s (killed)\n"
            f"--- stdout\n{_text(e.stdout)}\n--- stderr\n{_text(e.stderr)}"
        ) from None
    results = [line[len("RESULT ") :] for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not results:
        raise ChildFailed(
            f"{script} on {impl} exited with {proc.returncode}"
            f"{'' if results else ' without a result'}\n"
            f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
        )
    result = json.loads(results[-1])
    expected = "floodgate" if impl == "floodgate" else "websocket"
    assert result["websocket"] == expected, f"the child's websocket was {result['websocket']}, not {expected}"
    modules = result.pop("websocket_modules")
    assert modules and all(m.split(".")[0] == expected for m in modules), (
        f"{script} on {impl} loaded websocket modules not from {expected}: {modules}"
    )
    result["stderr_log"] = proc.stderr
    return result


def _text(data) -> str:
    if data is None:
        return ""
    return data.decode(errors="replace") if isinstance(data, bytes) else data
