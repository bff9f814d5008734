"""websocket-client's logging helpers, on the same logger (``"websocket"``),
so that programs that configure it, or call ``enableTrace(True)``, keep
working.

With the trace on, floodgate's Python layer logs the handshake's response
(status and headers) and every message sent and received at DEBUG, as
websocket-client does; the request's headers and the raw frames are not
shown (floodgate builds and parses them in Rust).
"""

import logging
from typing import Any, Optional

__all__ = [
    "enableTrace",
    "dump",
    "error",
    "warning",
    "debug",
    "trace",
    "isEnabledForError",
    "isEnabledForDebug",
    "isEnabledForTrace",
]

_logger = logging.getLogger("websocket")
_logger.addHandler(logging.NullHandler())
_trace_enabled = False
_trace_handler: Optional[logging.Handler] = None
_default_level = _logger.getEffectiveLevel()


def enableTrace(  # noqa: N802 (websocket-client's name)
    traceable: bool, handler: Optional[logging.Handler] = None, level: str = "DEBUG"
) -> None:
    """Turns the trace on (to ``handler``, a ``StreamHandler`` by default)
    or off."""
    global _trace_enabled, _trace_handler
    if _trace_handler is not None and _trace_handler in _logger.handlers:
        _logger.removeHandler(_trace_handler)
    _trace_handler = None
    if traceable:
        _trace_handler = handler if handler is not None else logging.StreamHandler()
        _logger.addHandler(_trace_handler)
        _logger.setLevel(getattr(logging, level))
        _trace_enabled = True
    else:
        _trace_enabled = False
        _logger.setLevel(_default_level)


def dump(title: str, message: str) -> None:
    if _trace_enabled:
        _logger.debug(f"--- {title} ---")
        _logger.debug(message)
        _logger.debug("-----------------------")


def error(msg: str) -> None:
    _logger.error(msg)


def warning(msg: str) -> None:
    _logger.warning(msg)


def debug(msg: str) -> None:
    _logger.debug(msg)


def info(msg: str) -> None:
    _logger.info(msg)


def trace(msg: str) -> None:
    if _trace_enabled:
        _logger.debug(msg)


def isEnabledForError() -> bool:  # noqa: N802
    return _logger.isEnabledFor(logging.ERROR)


def isEnabledForDebug() -> bool:  # noqa: N802
    return _logger.isEnabledFor(logging.DEBUG)


def isEnabledForTrace() -> bool:  # noqa: N802
    return _trace_enabled


def _any(value: Any) -> str:
    return repr(value) if len(repr(value)) < 200 else repr(value)[:200] + "..."
