"""The part of websocket-client's ``websocket._socket`` that applies to
floodgate: the default timeout (the same one ``floodgate.setdefaulttimeout``
sets) and ``DEFAULT_SOCKET_OPTION``.

Its ``sock_opt``, ``recv``, ``recv_line`` and ``send`` read and write a
Python socket; a floodgate connection's socket is read and written in Rust,
so they are not here.
"""

from ._core import DEFAULT_SOCKET_OPTION, getdefaulttimeout, setdefaulttimeout

__all__ = ["DEFAULT_SOCKET_OPTION", "setdefaulttimeout", "getdefaulttimeout"]
