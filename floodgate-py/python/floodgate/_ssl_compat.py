"""websocket-client's ``websocket._ssl_compat``: the ``ssl`` module and its
exception classes, which some libraries import from here. floodgate's TLS
is in Rust (rustls); these are the standard library's classes, and
floodgate's TLS errors are ``WebSocketSSLException``, a subclass of
``ssl.SSLError``.
"""

import ssl
from ssl import SSLEOFError, SSLError, SSLWantReadError, SSLWantWriteError

__all__ = ["HAVE_SSL", "ssl", "SSLError", "SSLEOFError", "SSLWantReadError", "SSLWantWriteError"]

HAVE_SSL = True
