"""websocket-client's ``websocket._ssl_compat``: the ``ssl`` module and its
exception classes, which some libraries import from here. floodgate's TLS
is in Rust (rustls); these are the standard library's classes, and
floodgate's TLS errors are ``WebSocketSSLException``, a subclass of
``ssl.SSLError``. Without the ``ssl`` module (a Python built without
OpenSSL), as in websocket-client: ``HAVE_SSL`` is False, ``ssl`` is None
and the four classes are plain exceptions.
"""

__all__ = ["HAVE_SSL", "ssl", "SSLError", "SSLEOFError", "SSLWantReadError", "SSLWantWriteError"]

try:
    import ssl
    from ssl import SSLEOFError, SSLError, SSLWantReadError, SSLWantWriteError

    HAVE_SSL = True
except ImportError:
    ssl = None  # type: ignore[assignment]
    HAVE_SSL = False

    class SSLError(Exception):  # type: ignore[no-redef]
        pass

    class SSLEOFError(Exception):  # type: ignore[no-redef]
        pass

    class SSLWantReadError(Exception):  # type: ignore[no-redef]
        pass

    class SSLWantWriteError(Exception):  # type: ignore[no-redef]
        pass
