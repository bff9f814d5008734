"""websocket-client's ``websocket._utils``: the helpers libraries import
from it (``NoLock``, ``validate_utf8``, ``extract_err_message``,
``extract_error_code``). floodgate's connections validate UTF-8 in Rust and
do not use these.
"""

import codecs
from typing import Any, Optional, Union

__all__ = ["NoLock", "validate_utf8", "extract_err_message", "extract_error_code"]


class NoLock:
    """A context manager that does nothing, where a lock is optional."""

    def __enter__(self) -> None:
        pass

    def __exit__(self, exc_type: Any, exc_value: Any, traceback: Any) -> None:
        pass


def validate_utf8(utfbytes: Union[str, bytes, bytearray, memoryview]) -> bool:
    """Whether ``utfbytes`` is UTF-8 that is valid so far, as websocket-client
    answers: a byte that no valid UTF-8 could have there makes it invalid
    (overlong forms, surrogates, code points above U+10FFFF), but a sequence
    cut short at the end does not (websocket-client's validator only looks
    for a rejected byte). A ``str`` is encoded first with ``surrogatepass``,
    so a lone surrogate in it makes it invalid."""
    if isinstance(utfbytes, str):
        utfbytes = utfbytes.encode("utf-8", "surrogatepass")
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        decoder.decode(bytes(utfbytes), final=False)
    except UnicodeDecodeError:
        return False
    tail = decoder.getstate()[0]
    if not tail:
        return True
    # Python's decoder keeps some impossible starts pending (ED A0 is
    # already a surrogate): the tail is valid so far only if some
    # continuation completes it.
    return any(_completes(tail, first, missing) for first in range(0x80, 0xC0) for missing in (1, 2, 3))


def _completes(tail: bytes, first: int, missing: int) -> bool:
    try:
        (tail + bytes([first]) + b"\x80" * (missing - 1)).decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def extract_err_message(exception: Exception) -> Optional[str]:
    """The exception's first argument as a string, or ``None``."""
    return str(exception.args[0]) if exception.args else None


def extract_error_code(exception: Exception) -> Optional[int]:
    """The exception's first argument when it is an ``int`` and there are
    more (``OSError(errno, message)``), else ``None``."""
    if len(exception.args) > 1 and isinstance(exception.args[0], int):
        return exception.args[0]
    return None
