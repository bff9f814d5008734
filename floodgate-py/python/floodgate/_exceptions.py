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
    "WebSocketSpillRefusedException",
    "WebSocketSpillException",
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


class WebSocketSpillRefusedException(WebSocketBufferException):
    """floodgate's: under ``overflow="spill"`` with
    ``spill_fallback="disconnect"`` (the default), a message could not be
    spilled to disk and the connection was closed with 1008, after the
    messages buffered before it were received. The message says why and
    what to change.

    ``refusal`` names the reason: ``"disk_budget"`` (``max_disk_bytes`` is
    used up: the consumer is that far behind), ``"too_large"`` (the
    message alone is larger than the budget), ``"writer_behind"`` (the
    disk is slower than the feed) or ``"disk"`` (the file system failed a
    write; ``errno`` is the system's error number, e.g. ``errno.ENOSPC``
    for a full disk, or ``None``).
    """

    refusal: Optional[str] = None
    errno: Optional[int] = None


class WebSocketSpillException(WebSocketException, OSError):
    """floodgate's: with ``overflow="spill"``, the spill directory could
    not be opened when the connection started (nothing was received). It
    is an ``OSError`` (``except OSError`` catches it) whose text is
    floodgate's message.

    ``filename`` is the file or directory concerned, ``errno`` the
    system's error number when the file system failed (``None``
    otherwise), and ``locked`` is ``True`` when another connection (of
    this process or another) holds a ``durable=True`` spill directory:
    give each durable connection a directory of its own, or close the
    other one first.
    """

    locked: bool = False

    def __str__(self) -> str:
        # OSError's own __str__ would print "[Errno N] strerror: filename"
        # from the attributes set after construction; the message already
        # names the file and the error.
        return str(self.args[0]) if self.args else ""


class WebSocketUnsupportedException(WebSocketException, ValueError):
    """floodgate's: an option websocket-client accepts that floodgate
    cannot honour (it is refused, never silently ignored)."""
