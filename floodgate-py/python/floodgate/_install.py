"""``install_as_websocket()``: makes ``import websocket`` (and
``import websocket._abnf`` and the other websocket-client module names)
give floodgate's modules, so that a library's own ``import websocket``
uses floodgate.

Each name is an alias in ``sys.modules`` for the very module object of
floodgate (``websocket is floodgate``, ``websocket._abnf is
floodgate._abnf``): one copy of every class, so ``except
websocket.WebSocketException`` in a library catches what floodgate raises.
A finder at the front of ``sys.meta_path`` answers every other
``websocket.<name>``, so that an installed websocket-client is never
half-loaded next to floodgate, and the package's ``__path__`` (floodgate's
directory) is never used to load a second copy of a floodgate file under a
``websocket.`` name.
"""

import importlib
import sys
from typing import Optional

__all__ = ["install_as_websocket", "WEBSOCKET_MODULES", "MISSING_MODULES"]

#: websocket-client's module names that floodgate provides, each the alias
#: of ``floodgate.<name>``.
WEBSOCKET_MODULES = (
    "_abnf",
    "_app",
    "_core",
    "_exceptions",
    "_logging",
    "_socket",
    "_ssl_compat",
    "_url",
    "_utils",
)

#: websocket-client's modules that floodgate does not have, with the reason
#: (the message of the ``ModuleNotFoundError`` importing them raises).
MISSING_MODULES = {
    "_http": "its connect(), read_headers() and proxy tunnel speak HTTP on a Python "
    "socket; floodgate's handshake and proxies run in Rust, so there is no socket "
    "they could be given",
    "_handshake": "floodgate's handshake runs in Rust",
    "_dispatcher": "floodgate's WebSocketApp does not read a Python socket",
    "_cookiejar": "floodgate sends the cookie given in cookie= or header=; it keeps no cookie jar",
    "_wsdump": "websocket-client's wsdump command is not part of floodgate",
}


class _WebsocketFinder:
    """Answers ``import websocket.<name>`` for the names not aliased in
    ``sys.modules``: a ``ModuleNotFoundError`` that says why (the aliased
    names are found in ``sys.modules`` before any finder is asked)."""

    @classmethod
    def find_spec(cls, fullname: str, path=None, target=None):
        if not fullname.startswith("websocket."):
            return None
        websocket = sys.modules.get("websocket")
        if websocket is None or websocket is not sys.modules.get("floodgate"):
            # install_as_websocket() was undone (sys.modules edited): step
            # aside rather than answer for a websocket that is not floodgate.
            return None
        name = fullname[len("websocket.") :]
        if name in WEBSOCKET_MODULES:
            # The alias was deleted from sys.modules (tests do that to
            # import a module again, e.g. with an import blocked): as Python
            # does for any module, run floodgate's file again under that
            # name. The new module's classes are new ones, as they would be
            # for websocket-client's.
            import importlib.util

            source = importlib.import_module("floodgate." + name).__file__
            return importlib.util.spec_from_file_location(fullname, source)
        why = MISSING_MODULES.get(name, "it is not one of websocket-client's modules that floodgate has")
        raise ModuleNotFoundError(
            f"No module named {fullname!r}: `websocket` is floodgate (install_as_websocket()), "
            f"which has no {name}: {why}",
            name=fullname,
        )


def _real_websocket() -> Optional[str]:
    """Names the websocket module(s) already imported that are not floodgate's
    aliases, or ``None``."""
    import floodgate

    found = [
        name
        for name, module in list(sys.modules.items())
        if (name == "websocket" or name.startswith("websocket."))
        and module is not None
        and not (module is floodgate or getattr(module, "__name__", "").startswith("floodgate."))
    ]
    if not found:
        return None
    top = sys.modules.get("websocket")
    where = getattr(top, "__file__", None) or "?"
    version = getattr(top, "__version__", "?")
    return f"{', '.join(sorted(found))} (version {version}, from {where})"


def install_as_websocket() -> None:
    """Makes ``import websocket`` and ``import websocket.<sub>`` give
    floodgate's modules, for the rest of the process.

    Call it before anything imports ``websocket``. Calling it again does
    nothing. Raises ``RuntimeError`` when a ``websocket`` that is not
    floodgate (websocket-client) was already imported: the modules that
    imported it hold its classes (``from websocket import WebSocket``,
    ``except WebSocketException``), which replacing ``sys.modules`` entries
    would not change, so the process would run two clients whose exceptions
    do not catch each other's.
    """
    import floodgate

    other = _real_websocket()
    if other is not None:
        raise RuntimeError(
            f"install_as_websocket(): a websocket module that is not floodgate was already imported: "
            f"{other}. The modules that imported it keep its classes, so floodgate would only replace "
            "it for later imports; call install_as_websocket() before anything imports websocket "
            "(or set FLOODGATE_AS_WEBSOCKET=1 in the environment, which installs it at startup)"
        )
    for name in WEBSOCKET_MODULES:
        sys.modules["websocket." + name] = importlib.import_module("floodgate." + name)
    sys.modules["websocket"] = floodgate
    if not any(finder is _WebsocketFinder for finder in sys.meta_path):
        sys.meta_path.insert(0, _WebsocketFinder)
