"""websocket-client's connect options, normalised for the native module.

``normalise(**options)`` takes what ``create_connection``, ``WebSocket``
and ``WebSocket.connect`` accept — websocket-client's names (``header``,
``cookie``, ``origin``, ``suppress_origin``, ``host``, ``subprotocols``,
``timeout``, ``sslopt``, ``sockopt``, ``http_proxy_host``,
``http_proxy_port``, ``http_proxy_auth``, ``proxy_type``,
``http_no_proxy``, ``redirect_limit``, ``skip_utf8_validation``,
``enable_multithread``) and floodgate's own (the buffer, compression, TLS
roots, Unix sockets) — and returns the dict with every key that
``_floodgate.connect`` reads (``src/options.rs``).

An option floodgate cannot honour raises ``WebSocketUnsupportedException``
(a ``ValueError``) that says what to do instead. A name that is no
option at all is ignored where websocket-client ignores it (logged once on
the ``websocket`` logger: ``normalise_ignoring_unknown``), a ``TypeError``
elsewhere.
"""

import math
import os
import socket
import ssl
import threading
from typing import Any, Dict, Iterable, Optional, Set
from urllib.parse import quote

from . import _logging
from ._exceptions import WebSocketUnsupportedException

__all__ = ["normalise", "normalise_ignoring_unknown", "FLOODGATE_OPTIONS"]

#: floodgate's keyword arguments (not in websocket-client), with defaults.
FLOODGATE_OPTIONS: Dict[str, Any] = {
    # The bounded buffer between the reader thread and recv().
    "max_messages": None,  # default 4096
    "max_bytes": None,  # default 64 MiB
    "overflow": "block",  # block, block_for, drop_oldest, drop_newest, conflate, disconnect, spill
    "block_timeout": None,  # seconds, with overflow="block_for"
    "then": "drop_oldest",  # after block_for: drop_oldest, drop_newest, disconnect
    "key": None,  # with overflow="conflate": message -> key (None: never conflated)
    "classifier": None,  # message -> "low"/"normal"/"high"/"critical"/"discard"
    # overflow="spill": past the memory limits, to segment files on disk.
    # None: not given (each is refused without overflow="spill").
    "spill_dir": None,  # required with spill: str or os.PathLike
    "max_disk_bytes": None,  # the disk budget (default 1 GiB)
    "spill_fallback": None,  # block, drop_newest, disconnect (default)
    "durable": None,  # True: kept for the next connection on spill_dir
    "fsync_interval": None,  # seconds between syncs, durable only (default 1.0)
    # The connection.
    "compression": False,  # offer permessage-deflate: True, or a dict (_compression)
    "close_timeout": 3.0,  # seconds the close handshake may take
    "max_message_size": None,  # bytes (default 64 MiB)
    "tls_roots": None,  # "platform" (default), "mozilla", "none"
    "unix_socket": None,  # connect to this Unix socket path instead
    "proxy": None,  # a proxy URL: http://, socks4://, socks4a://, socks5://, socks5h://
    "no_proxy": None,  # hosts that bypass the proxy, as in curl
}

_PROXY_TYPES = ("http", "socks4", "socks4a", "socks5", "socks5h")

_SPILL_OPTIONS = ("spill_dir", "max_disk_bytes", "spill_fallback", "durable", "fsync_interval")
_SPILL_FALLBACKS = ("block", "drop_newest", "disconnect")

# websocket-client options that need nothing from floodgate.
_ACCEPTED_WITHOUT_EFFECT = {
    # floodgate's connections are always safe to use from several threads.
    "enable_multithread",
    # floodgate always validates UTF-8 (with SIMD, at a few GB/s): invalid
    # text ends the connection with 1007 instead of raising
    # UnicodeDecodeError in recv(), as websocket-client would.
    "skip_utf8_validation",
}


def _unsupported(what: str, instead: str) -> WebSocketUnsupportedException:
    return WebSocketUnsupportedException(f"{what} is not supported by floodgate: {instead}")


def _headers(header: Any) -> list:
    if header is None:
        return []
    if isinstance(header, dict):
        # websocket-client leaves out a dict's names whose value is None.
        items = [(n, v) for n, v in header.items() if v is not None]
    else:
        items = []
        for line in header:
            name, sep, value = str(line).partition(":")
            if not sep:
                raise ValueError(f"header {line!r}: write it as 'Name: value'")
            items.append((name, value))
    return [(str(n).strip(), str(v).strip()) for n, v in items]


def _connection(value: Any, headers: list) -> None:
    """websocket-client's ``connection=``: a line sent instead of
    ``Connection: Upgrade`` (websocket-client sends the string as a whole
    header line, ``connection="Connection: keep-alive, Upgrade"``; its
    docs call it the header's value, so a bare value is taken as that).

    floodgate's handshake (Rust) always sends ``Connection: Upgrade``; the
    other tokens go in a second ``Connection`` line, which HTTP reads as
    one list (RFC 9110 5.3: ``Upgrade`` + ``keep-alive`` is ``Upgrade,
    keep-alive``). Another header's line is sent as an extra header. A
    ``Connection`` without ``Upgrade`` makes a handshake RFC 6455 servers
    refuse (and replacing the line needs the Rust handshake): refused."""
    if value is None:
        return
    name, sep, rest = str(value).partition(":")
    if sep and name.strip().lower() != "connection":
        headers.append((name.strip(), rest.strip()))
        return
    tokens = [t.strip() for t in (rest if sep else name).split(",") if t.strip()]
    if not any(t.lower() == "upgrade" for t in tokens):
        raise _unsupported(
            f"connection={value!r} (without Upgrade)",
            "a WebSocket handshake needs Connection: Upgrade, which floodgate always sends; "
            "give the other tokens with it (connection='Connection: keep-alive, Upgrade')",
        )
    others = [t for t in tokens if t.lower() != "upgrade"]
    if others:
        headers.append(("Connection", ", ".join(others)))


def _offered(headers: list, subprotocols: list) -> tuple:
    """Moves the ``Sec-WebSocket-Protocol`` headers of ``header=`` (any
    case, comma-separated values) into the subprotocols offered, after
    those of ``subprotocols=`` and without repeats.

    websocket-client sends such a header as given, next to the one it
    makes from ``subprotocols=``, and checks the server's choice against
    ``subprotocols=`` only (not at all when that is empty). Libraries rely
    on it: kubernetes' ``stream`` offers ``v5.channel.k8s.io`` and
    ``v4.channel.k8s.io`` that way. floodgate sends one header with every
    subprotocol offered either way, and accepts the server's choice when it
    is one of them (RFC 6455 4.1: a choice not offered fails the
    handshake)."""
    offered = list(subprotocols)
    kept = []
    for name, value in headers:
        if name.lower() != "sec-websocket-protocol":
            kept.append((name, value))
            continue
        for protocol in value.split(","):
            protocol = protocol.strip()
            if protocol and protocol not in offered:
                offered.append(protocol)
    return kept, offered


def _sslopt(sslopt: Optional[dict], out: Dict[str, Any]) -> None:
    for name, value in (sslopt or {}).items():
        if name == "cert_reqs":
            if value == ssl.CERT_NONE:
                out["verify"] = False
            elif value != ssl.CERT_REQUIRED:
                raise _unsupported(
                    "sslopt cert_reqs=CERT_OPTIONAL", "use ssl.CERT_REQUIRED or ssl.CERT_NONE"
                )
        elif name == "check_hostname":
            if not value and out.get("verify", True) and sslopt.get("cert_reqs") != ssl.CERT_NONE:
                raise _unsupported(
                    "sslopt check_hostname=False with certificate verification",
                    "give the name the certificate holds with sslopt server_hostname=..., "
                    "or turn verification off with cert_reqs=ssl.CERT_NONE",
                )
        elif name == "ca_certs":
            out["ca_file"] = value
        elif name == "cadata":
            out["ca_data"] = value.decode() if isinstance(value, bytes) else value
        elif name == "certfile":
            out["cert_file"] = value
        elif name == "keyfile":
            out["key_file"] = value
        elif name == "server_hostname":
            out["server_hostname"] = value
        elif value is None:
            continue
        elif name == "ca_cert_path":
            raise _unsupported("sslopt ca_cert_path (a directory)", "give the CA file with ca_certs=")
        elif name == "password":
            raise _unsupported("an encrypted client key (sslopt password)", "decrypt the key file")
        else:
            raise _unsupported(
                f"sslopt {name}",
                "floodgate uses rustls with its own protocol versions and ciphers "
                "(TLS 1.2 and 1.3); see docs/python.md",
            )


def _sockopt(sockopt: Any, out: Dict[str, Any]) -> None:
    keepalive = False
    keepidle = None
    for opt in sockopt or ():
        level, name, value = opt[0], opt[1], opt[2]
        if level == socket.IPPROTO_TCP and name == socket.TCP_NODELAY:
            out["nodelay"] = bool(value)
        elif level == socket.SOL_SOCKET and name == socket.SO_KEEPALIVE:
            keepalive = bool(value)
        elif level == socket.IPPROTO_TCP and name == getattr(socket, "TCP_KEEPIDLE", None):
            keepidle = float(value)
        elif level == socket.SOL_SOCKET and name == socket.SO_RCVBUF:
            out["recv_buffer"] = int(value)
        elif level == socket.SOL_SOCKET and name == socket.SO_SNDBUF:
            out["send_buffer"] = int(value)
        else:
            raise _unsupported(
                f"sockopt {opt!r}",
                "floodgate sets TCP_NODELAY, SO_KEEPALIVE (with TCP_KEEPIDLE), "
                "SO_RCVBUF and SO_SNDBUF",
            )
    if keepalive:
        # Without TCP_KEEPIDLE, the kernel's default idle time (2 hours).
        out["tcp_keepalive"] = keepidle if keepidle is not None else 7200.0


def _proxy(options: Dict[str, Any], out: Dict[str, Any]) -> None:
    host = options.pop("http_proxy_host", None)
    port = options.pop("http_proxy_port", None)
    auth = options.pop("http_proxy_auth", None)
    kind = options.pop("proxy_type", None) or "http"
    no_proxy = options.pop("http_no_proxy", None)
    timeout = options.pop("http_proxy_timeout", None)
    if timeout is not None:
        raise _unsupported(
            "http_proxy_timeout", "the proxy's handshake is bounded by timeout= with the connect"
        )
    if kind not in _PROXY_TYPES:
        raise ValueError(f"proxy_type={kind!r}: one of {', '.join(_PROXY_TYPES)}")
    if no_proxy is not None:
        out["no_proxy"] = no_proxy if isinstance(no_proxy, str) else ",".join(no_proxy)
    if host:
        if port is None:
            # websocket-client needs the port; so does the URL.
            raise ValueError("http_proxy_host needs http_proxy_port")
        userinfo = ""
        if auth:
            user, password = auth
            userinfo = f"{quote(str(user), safe='')}:{quote(str(password), safe='')}@"
        bracketed = f"[{host}]" if ":" in host and not host.startswith("[") else host
        out["proxy"] = f"{kind}://{userinfo}{bracketed}:{int(port)}"
        # websocket-client does not look at the environment when a proxy is
        # given.
        out["proxy_from_env"] = False
    elif auth or port is not None:
        raise ValueError("http_proxy_auth and http_proxy_port need http_proxy_host")


# compression={...}: floodgate's DeflateConfig fields; a name left out keeps
# its default (docs/python.md). Each maps to the check of its value.
_COMPRESSION_FIELDS = {
    # Messages shorter than this many bytes go uncompressed (default 64);
    # 0 compresses every one.
    "threshold": ("a number of bytes, at least 0", lambda v: _is_int(v) and v >= 0),
    # zlib's level (default 6).
    "level": ("0 (store) to 9 (best)", lambda v: _is_int(v) and 0 <= v <= 9),
    # The offer's parameters (RFC 7692 7.1). The defaults offer
    # client_no_context_takeover and a bare client_max_window_bits (the
    # server may pick the client's window).
    "client_max_window_bits": ("8 to 15 (default 15)", lambda v: _is_int(v) and 8 <= v <= 15),
    "server_max_window_bits": (
        "8 to 15, or None (the server chooses)",
        lambda v: v is None or (_is_int(v) and 8 <= v <= 15),
    ),
    "client_no_context_takeover": ("True (the default) or False", lambda v: isinstance(v, bool)),
    "server_no_context_takeover": ("True or False (the default)", lambda v: isinstance(v, bool)),
}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _compression(value: Any) -> Optional[Dict[str, Any]]:
    """``compression=`` as ``src/options.rs`` reads it: ``None`` for no
    offer (``False``, ``None``), else a dict with every field of
    ``_COMPRESSION_FIELDS`` (``None``: floodgate's default). ``True`` is the
    default offer; a dict changes some fields, e.g. ``{"threshold": 0}`` to
    compress even the shortest messages (as the Autobahn client does)."""
    if value is None or value is False:
        return None
    if value is True:
        return dict.fromkeys(_COMPRESSION_FIELDS)
    if not isinstance(value, dict):
        raise TypeError(
            f"compression={value!r}: give True, False or a dict of "
            f"{', '.join(_COMPRESSION_FIELDS)}"
        )
    unknown = sorted(set(value) - set(_COMPRESSION_FIELDS))
    if unknown:
        raise ValueError(
            f"compression: unknown field(s) {', '.join(map(str, unknown))}; "
            f"the fields are {', '.join(_COMPRESSION_FIELDS)}"
        )
    out = dict.fromkeys(_COMPRESSION_FIELDS)
    for name, given in value.items():
        expected, valid = _COMPRESSION_FIELDS[name]
        if not valid(given):
            raise ValueError(f"compression {name}={given!r}: give {expected}")
        out[name] = given
    return out


def _spill(out: Dict[str, Any]) -> None:
    """Checks the spill options in ``out`` and puts them in the types
    ``src/options.rs`` reads (``spill_dir`` as a ``str``). Done here rather
    than only at connect, so that ``WebSocket(...)`` and
    ``WebSocketApp(...)`` refuse a bad combination at once."""
    given = [name for name in _SPILL_OPTIONS if out[name] is not None]
    if out["overflow"] != "spill":
        if given:
            names = "=, ".join(given) + "="
            raise ValueError(
                f"{names} {'is' if len(given) == 1 else 'are'} only used with "
                f'overflow="spill" (overflow is {out["overflow"]!r})'
            )
        return
    directory = out["spill_dir"]
    if directory is None:
        raise ValueError(
            'overflow="spill" needs spill_dir=<a directory for the spilled messages> '
            "(created if missing; with durable=True, one per connection)"
        )
    try:
        directory = os.fsdecode(os.fspath(directory))
    except TypeError:
        raise TypeError(
            f"spill_dir={directory!r}: give a path (str or os.PathLike)"
        ) from None
    if not directory:
        raise ValueError('spill_dir="": give the directory for the spilled messages')
    out["spill_dir"] = directory
    budget = out["max_disk_bytes"]
    if budget is not None:
        if not isinstance(budget, int) or isinstance(budget, bool) or budget <= 0:
            raise ValueError(f"max_disk_bytes={budget!r}: give a number of bytes, above 0")
    fallback = out["spill_fallback"]
    if fallback is not None and fallback not in _SPILL_FALLBACKS:
        raise ValueError(
            f"spill_fallback={fallback!r}: when the spill cannot take a message, "
            '"block", "drop_newest" or "disconnect" (the default)'
        )
    durable = out["durable"]
    if durable is not None and not isinstance(durable, bool):
        raise ValueError(f"durable={durable!r}: give True or False")
    interval = out["fsync_interval"]
    if interval is not None:
        if not durable:
            raise ValueError(
                "fsync_interval= is only used with durable=True (an ephemeral spill is never synced)"
            )
        if (
            not isinstance(interval, (int, float))
            or isinstance(interval, bool)
            or not math.isfinite(interval)
            or interval < 0
        ):
            raise ValueError(f"fsync_interval={interval!r}: give a number of seconds, at least 0")
        out["fsync_interval"] = float(interval)


# The unknown keyword arguments already logged (once each per process).
_warned_unknown: Set[str] = set()
_warned_lock = threading.Lock()


def _ignore_unknown(names: Iterable[str]) -> None:
    """websocket-client's ``WebSocket(...)``, ``connect`` and
    ``create_connection`` ignore the keyword arguments they do not know
    (``connect(url, headers=...)`` sends no header); programs and libraries
    rely on it, so floodgate ignores them too, but says so once per name on
    websocket-client's logger, since a misspelt floodgate option (say
    ``max_message=``) would otherwise go unnoticed."""
    for name in sorted(names):
        with _warned_lock:
            first = name not in _warned_unknown
            _warned_unknown.add(name)
        if first:
            _logging.warning(
                f"ignoring the unknown keyword argument {name}= "
                "(websocket-client ignores it too; floodgate's own options are listed "
                "in docs/python.md)"
            )


def normalise(**options: Any) -> Dict[str, Any]:
    """The dict ``_floodgate.connect`` takes, from websocket-client's and
    floodgate's keyword arguments. An unknown name is a ``TypeError``, as
    for ``WebSocketApp(...)``, whose websocket-client signature has no
    ``**kwargs``."""
    return _normalise(options, ignore_unknown=False)


def normalise_ignoring_unknown(**options: Any) -> Dict[str, Any]:
    """``normalise`` for ``WebSocket(...)``, ``connect`` and
    ``create_connection``: unknown names are ignored and logged once each
    (see ``_ignore_unknown``); the known ones are checked all the same."""
    return _normalise(options, ignore_unknown=True)


def _normalise(options: Dict[str, Any], ignore_unknown: bool) -> Dict[str, Any]:
    options = dict(options)
    headers, subprotocols = _offered(
        _headers(options.pop("header", None)), list(options.pop("subprotocols", None) or [])
    )
    out: Dict[str, Any] = {
        "headers": headers,
        "cookie": options.pop("cookie", None),
        "origin": options.pop("origin", None),
        "suppress_origin": bool(options.pop("suppress_origin", False)),
        "host": options.pop("host", None),
        "subprotocols": subprotocols,
        "timeout": options.pop("timeout", None),
        "ca_file": None,
        "ca_data": None,
        "cert_file": None,
        "key_file": None,
        "verify": True,
        "server_hostname": None,
        "proxy_from_env": True,
        "redirect_limit": int(options.pop("redirect_limit", 3)),
        "nodelay": True,
        "recv_buffer": None,
        "send_buffer": None,
        "tcp_keepalive": None,
    }
    _connection(options.pop("connection", None), out["headers"])
    _sslopt(options.pop("sslopt", None), out)
    _sockopt(options.pop("sockopt", None), out)
    _proxy(options, out)
    for name, default in FLOODGATE_OPTIONS.items():
        if name in ("proxy", "no_proxy"):
            # floodgate's URL form; websocket-client's names set them too.
            given = options.pop(name, None)
            if given is not None:
                out[name] = given
                if name == "proxy":
                    out["proxy_from_env"] = False
            out.setdefault(name, None)
        else:
            out[name] = options.pop(name, default)
    out["compression"] = _compression(out["compression"])
    _spill(out)
    if options.pop("suppress_host", False):
        raise _unsupported("suppress_host=True", "floodgate always sends the Host header HTTP/1.1 requires")
    if options.pop("socket", None) is not None:
        raise _unsupported(
            "socket= (a pre-made socket)",
            "floodgate opens its own; for a Unix socket use unix_socket=path",
        )
    # WebSocket's own (Python-side) options, handled before the options
    # reach here: the mask key function and fire_cont_frame (_core.py), the
    # dispatcher (WebSocketApp.run_forever).
    for name in ("fire_cont_frame", "get_mask_key", "dispatcher"):
        options.pop(name, None)
    for name in _ACCEPTED_WITHOUT_EFFECT:
        options.pop(name, None)
    if options:
        if ignore_unknown:
            _ignore_unknown(options)
        else:
            raise TypeError(f"unknown option(s): {', '.join(sorted(options))}")
    return out
