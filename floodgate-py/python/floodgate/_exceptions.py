"""websocket-client's exception classes, with its names and hierarchy, and
the few floodgate adds (each a subclass of one websocket-client already
has, so ``except WebSocketException`` still catches everything).

The native module raises these (``src/errors.rs``): a timeout is
``WebSocketTimeoutException``, a connection that ended is
``WebSocketConnectionClosedException``, a refused upgrade is
``WebSocketBadStatusException`` with ``status_code``, ``resp_headers`` and
``resp_body``. As with websocket-client, a refused TCP connection is the
built-in ``ConnectionRefusedError`` and a malformed URL a ``ValueError``.
"""

import ssl
from typing import Optional

__all__ = [
    "WebSocketException",
    "WebSocketProtocolException",
    "WebSocketPayloadException",
    "WebSocketConnectionClosedException",
    "WebSocketTimeoutException",
    "WebSocketProxyException",
    "WebSocketBadStatusException",
    "WebSocketAddressException",
    "WebSocketSSLException",
    "WebSocketBufferException",
    "WebSocketUnsupportedException",
]


class WebSocketException(Exception):
    """The base of every exception this package raises for a WebSocket."""


class WebSocketProtocolException(WebSocketException):
    """The server broke the WebSocket protocol (the connection is closed
    with the matching close code)."""


class WebSocketPayloadException(WebSocketException):
    """A payload was invalid: text that is not UTF-8 (close code 1007)."""


class WebSocketConnectionClosedException(WebSocketException):
    """The connection is closed: by a close handshake, by the network, or
    because no pong came in time."""


class WebSocketTimeoutException(WebSocketException):
    """A connect, a receive or a send took longer than the timeout."""


class WebSocketProxyException(WebSocketException):
    """The proxy refused or broke the tunnel (its message says which)."""


class WebSocketBadStatusException(WebSocketException):
    """The server answered the upgrade with another status than 101."""

    def __init__(
        self,
        message: str,
        status_code: int = 0,
        status_message: Optional[str] = None,
        resp_headers: Optional[dict] = None,
        resp_body: Optional[bytes] = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.status_message = status_message
        self.resp_headers = resp_headers
        self.resp_body = resp_body


class WebSocketAddressException(WebSocketException):
    """The host name could not be resolved."""


class WebSocketSSLException(WebSocketException, ssl.SSLError):
    """TLS failed (floodgate's; websocket-client lets ``ssl.SSLError``
    through, so this is one too: ``except ssl.SSLError`` keeps working).
    The message names the check that failed: unknown issuer, wrong host
    name, expired certificate, refused client certificate..."""


class WebSocketBufferException(WebSocketConnectionClosedException):
    """floodgate's: under ``overflow="disconnect"`` (or ``"block_for"``
    then ``"disconnect"``) the consumer fell behind and the connection was
    closed with 1008."""


class WebSocketUnsupportedException(WebSocketException, ValueError):
    """floodgate's: an option websocket-client accepts that floodgate
    cannot honour (it is refused, never silently ignored)."""
