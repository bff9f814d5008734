"""The part of websocket-client's ``websocket._socket`` that applies to
floodgate: the default timeout (the same one ``floodgate.setdefaulttimeout``
sets), ``DEFAULT_SOCKET_OPTION``, and ``recv``/``recv_line``/``send`` on
a socket-like object (those of ``_transport.py``, the path for sockets the
application gives).

A connection floodgate opened is read and written in Rust; these
functions never touch it.
"""

from typing import Any

from ._core import DEFAULT_SOCKET_OPTION, getdefaulttimeout, setdefaulttimeout
from ._transport import recv, send

__all__ = ["DEFAULT_SOCKET_OPTION", "setdefaulttimeout", "getdefaulttimeout", "recv", "recv_line", "send"]


def recv_line(sock: Any) -> bytes:
    """Bytes up to and including the next ``\\n``, read one at a time."""
    line = []
    while True:
        c = recv(sock, 1)
        line.append(c)
        if c == b"\n":
            break
    return b"".join(line)
