#!/usr/bin/env python3
"""WebSocket echo server for floodgate's interoperability tests.

Built on the Python `websockets` library (its asyncio implementation), so the
tests check floodgate against a server written by someone else.

    python scripts/echo_server.py --port 0

prints `LISTENING <port>` on stdout (flushed) once the socket is bound, then
serves until killed. Behaviour:

- text messages are echoed as text, binary messages as binary;
- subprotocols: the first of the client's offers that is "chat" or
  "superchat" is selected; a client that offers none (or only unknown ones)
  is accepted without a subprotocol;
- a text message "close:CODE:REASON" makes the server close the connection
  with that code and reason (REASON may be empty or contain ':');
- permessage-deflate is off (the server neither offers nor accepts it), no
  keepalive pings are sent, and messages up to 64 MiB are accepted.

With `--exit-on-stdin-eof` the server exits when its standard input reaches
end of file, so a test harness that dies without cleaning up (and thereby
closes the pipe) does not leave the server running.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import threading

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

SUPPORTED_SUBPROTOCOLS = ("chat", "superchat")
MAX_MESSAGE_SIZE = 64 * 1024 * 1024


def select_subprotocol(connection: ServerConnection, offered) -> str | None:
    """Pick the first subprotocol the client offers that this server knows.

    Unlike the library default, a client offering nothing is accepted.
    """
    for subprotocol in offered:
        if subprotocol in SUPPORTED_SUBPROTOCOLS:
            return subprotocol
    return None


def parse_close_command(message: str) -> tuple[int, str] | None:
    """`close:CODE:REASON` -> (CODE, REASON); anything else -> None."""
    if not message.startswith("close:"):
        return None
    _, _, rest = message.partition(":")
    code_text, _, reason = rest.partition(":")
    try:
        code = int(code_text)
    except ValueError:
        return None
    return code, reason


async def echo(connection: ServerConnection) -> None:
    try:
        async for message in connection:
            if isinstance(message, str):
                command = parse_close_command(message)
                if command is not None:
                    code, reason = command
                    await connection.close(code, reason)
                    return
            # str is sent as a text frame, bytes as a binary frame.
            await connection.send(message)
    except ConnectionClosed:
        pass


def watch_stdin_for_eof() -> None:
    def watch() -> None:
        try:
            while sys.stdin.buffer.read(4096):
                pass
        finally:
            os._exit(0)

    threading.Thread(target=watch, name="stdin-eof", daemon=True).start()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument(
        "--exit-on-stdin-eof",
        action="store_true",
        help="exit when standard input is closed",
    )
    args = parser.parse_args()

    if args.exit_on_stdin_eof:
        watch_stdin_for_eof()

    async with serve(
        echo,
        args.host,
        args.port,
        select_subprotocol=select_subprotocol,
        compression=None,
        ping_interval=None,
        max_size=MAX_MESSAGE_SIZE,
        max_queue=64,
    ) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        print(f"LISTENING {port}", flush=True)
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
