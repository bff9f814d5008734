"""The path for sockets the application gives: ``ws.sock = obj``.

A WebSocket that floodgate connected is read and written by Rust (see
``_core.py``). websocket-client's own tests, and the tests of libraries
built on it, instead drive a ``WebSocket`` by assigning an object with
``recv(n)``/``send(data)`` (a mock, or a socket the program made) to
``ws.sock``. From then on that WebSocket frames and parses in Python over
the object, exactly as websocket-client 1.9 does: ``ABNF.format`` with
the mask key (``set_mask_key``; ``WebSocket.send_frame``), ``frame_buffer`` reading frames with
``sock.recv(n)``, ``continuous_frame`` joining fragments (or handing each
on with ``fire_cont_frame``), pings answered with pongs, each frame
``validate``d, the object's timeouts raised as
``WebSocketTimeoutException`` and ``close()`` waiting for the server's
close frame.

None of floodgate's buffer, policies or reader thread apply here: the
object is read on the caller's thread, when ``recv`` is called.
"""

import errno
import selectors
import socket
import ssl
import struct
import time
from typing import Any, Optional, Union

from ._abnf import ABNF, STATUS_NORMAL
from ._exceptions import (
    WebSocketConnectionClosedException,
    WebSocketProtocolException,
    WebSocketTimeoutException,
)
from . import _logging
from ._utils import extract_err_message, extract_error_code

__all__ = ["send", "recv", "recv_data_frame", "close"]


def _would_block(e: OSError) -> bool:
    """``EAGAIN``/``EWOULDBLOCK`` from a non-blocking socket (the code as
    websocket-client finds it: the first of several arguments)."""
    return extract_error_code(e) in (errno.EAGAIN, errno.EWOULDBLOCK)


def _wait(sock: Any, event: int) -> bool:
    """Waits up to the object's timeout for it to be readable/writable
    (after ``EAGAIN`` or an SSL want-read/want-write)."""
    selector = selectors.DefaultSelector()
    try:
        selector.register(sock, event)
        return bool(selector.select(sock.gettimeout()))
    finally:
        selector.close()


def recv(sock: Any, bufsize: int) -> bytes:
    """``sock.recv(bufsize)``, with websocket-client's mapping: a timeout
    is ``WebSocketTimeoutException``, nothing (the peer's end) is
    ``WebSocketConnectionClosedException``; on ``EAGAIN`` (or
    ``SSLWantReadError``) it waits up to the object's timeout once."""
    if not sock:
        raise WebSocketConnectionClosedException("socket is already closed.")

    def retry() -> bytes:
        if not _wait(sock, selectors.EVENT_READ):
            # A wait that timed out, not the peer's end.
            raise WebSocketTimeoutException("Connection timed out waiting for data")
        return sock.recv(bufsize)

    try:
        if sock.gettimeout() == 0:
            data = sock.recv(bufsize)
        else:
            try:
                data = sock.recv(bufsize)
            except ssl.SSLWantReadError:
                data = retry()
            except OSError as e:
                if isinstance(e, (TimeoutError, ssl.SSLError)) or not _would_block(e):
                    raise
                data = retry()
    except TimeoutError:
        # socket.timeout is TimeoutError (3.10+): websocket-client's words.
        raise WebSocketTimeoutException("Connection timed out")
    except ssl.SSLError as e:
        message = extract_err_message(e)
        if isinstance(message, str) and "timed out" in message:
            raise WebSocketTimeoutException(message)
        raise
    if not data:
        raise WebSocketConnectionClosedException("Connection to remote host was lost.")
    return data


def send(sock: Any, data: Union[bytes, str]) -> int:
    """``sock.send(data)``: the bytes written (0 when a wait after
    ``EAGAIN`` timed out; a timeout is ``WebSocketTimeoutException``)."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    if not sock:
        raise WebSocketConnectionClosedException("socket is already closed.")

    def retry() -> int:
        return sock.send(data) if _wait(sock, selectors.EVENT_WRITE) else 0

    try:
        if sock.gettimeout() == 0:
            return sock.send(data)
        try:
            return sock.send(data)
        except ssl.SSLEOFError:
            raise WebSocketConnectionClosedException("socket is already closed.")
        except ssl.SSLWantWriteError:
            return retry()
        except OSError as e:
            if isinstance(e, (TimeoutError, ssl.SSLError)) or extract_error_code(e) is None or not _would_block(e):
                raise
            return retry()
    except TimeoutError as e:
        raise WebSocketTimeoutException(extract_err_message(e) or "Connection timed out")
    except (OSError, ssl.SSLError) as e:
        message = extract_err_message(e)
        if isinstance(message, str) and "timed out" in message:
            raise WebSocketTimeoutException(message)
        raise


def recv_data_frame(ws: Any, control_frame: bool) -> tuple:
    """``(opcode, frame)`` of the next message (or fragment, with
    ``fire_cont_frame``; or ping/pong, with ``control_frame``). A ping is
    answered with a pong, a close frame with a close frame."""
    while True:
        frame = ws.frame_buffer.recv_frame()
        if _logging._trace_enabled:
            _logging.trace(f"++Rcv raw: {frame.format()!r}")
            _logging.trace(f"++Rcv decoded: {frame}")
        if frame.opcode in (ABNF.OPCODE_TEXT, ABNF.OPCODE_BINARY, ABNF.OPCODE_CONT):
            ws.cont_frame.validate(frame)
            ws.cont_frame.add(frame)
            if ws.cont_frame.is_fire(frame):
                return ws.cont_frame.extract(frame)
        elif frame.opcode == ABNF.OPCODE_CLOSE:
            ws.send_close()
            return frame.opcode, frame
        elif frame.opcode == ABNF.OPCODE_PING:
            if len(frame.data) >= 126:
                raise WebSocketProtocolException("Ping message is too long")
            ws.pong(frame.data)
            if control_frame:
                return frame.opcode, frame
        elif frame.opcode == ABNF.OPCODE_PONG:
            if control_frame:
                return frame.opcode, frame


def close(ws: Any, status: int, reason: bytes, timeout: Optional[float]) -> None:
    """Sends the close frame, reads frames until the server's close frame
    (kept in ``ws.close_frame``) or ``timeout``, then shuts the object
    down. Errors on the way are swallowed, as websocket-client does: a
    close always ends with the WebSocket shut."""
    ws.close_frame = None
    try:
        ws.connected = False
        ws.send(struct.pack("!H", status) + reason, ABNF.OPCODE_CLOSE)
        sock = ws.sock
        if sock is None:
            return
        previous = sock.gettimeout()
        sock.settimeout(timeout)
        started = time.time()
        while timeout is None or time.time() - started < timeout:
            try:
                frame = ws.recv_frame()
            except (WebSocketConnectionClosedException, WebSocketTimeoutException, struct.error):
                break
            if frame.opcode != ABNF.OPCODE_CLOSE:
                continue
            ws.close_frame = frame
            code = struct.unpack("!H", frame.data[0:2])[0]
            if code != STATUS_NORMAL and not 3000 <= code <= 4999:
                _logging.error(f"close status: {code!r}")
            break
        if ws.sock is not None:
            ws.sock.settimeout(previous)
            ws.sock.shutdown(socket.SHUT_RDWR)
    except Exception:  # noqa: BLE001 - websocket-client's close never raises here
        pass
    finally:
        ws.shutdown()
