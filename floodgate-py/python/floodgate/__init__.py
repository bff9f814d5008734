"""floodgate: websocket-client's API, backed by a Rust WebSocket client
that stays alive and bounded when messages arrive faster than Python
handles them.

    import floodgate as websocket

    ws = websocket.create_connection("ws://127.0.0.1:9001/")
    ws.send("Hello, Server")
    print(ws.recv())
    ws.close()

What websocket-client programs use is here under the same names
(``WebSocket``, ``create_connection``, ``WebSocketApp``, ``ABNF``, the
``STATUS_*`` codes, the exceptions). What floodgate adds comes as keyword
arguments: a bounded buffer with an overflow policy (``max_messages``,
``max_bytes``, ``overflow``, ``key``, ``classifier``; ``overflow="spill"``
with ``spill_dir`` and friends to go on to disk), ``recv_batch``,
``stats()`` and, for ``WebSocketApp``, ``workers``. The connection's
reader runs in Rust without the GIL, so the server's pings are answered
however slow the Python code is. The guide is ``docs/python.md``.

For libraries that ``import websocket`` themselves, call
``floodgate.install_as_websocket()`` first (or set
``FLOODGATE_AS_WEBSOCKET=1``, or run ``python -m floodgate.as_websocket
prog.py``).
"""

from ._abnf import *  # noqa: F401,F403
from ._app import WebSocketApp, set_reconnect  # noqa: F401
from ._core import *  # noqa: F401,F403
from ._exceptions import *  # noqa: F401,F403
from ._floodgate import __version__  # noqa: F401
from ._install import install_as_websocket  # noqa: F401
from ._logging import *  # noqa: F401,F403

# websocket-client's other module names, imported so that they are attributes
# of the package (`websocket._url` after install_as_websocket()).
from . import _socket, _ssl_compat, _url, _utils  # noqa: F401,E402
