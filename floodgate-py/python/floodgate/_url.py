"""websocket-client's ``websocket._url``: ``parse_url`` and
``get_proxy_info``, for the libraries that import them to look at a URL or
at the proxy a connection would use.

floodgate's connections do not call these: the URL is parsed, and the
proxy chosen from ``http_proxy``/``https_proxy``/``no_proxy``, in Rust.
They are written here to give the answers websocket-client 1.9's give.
"""

import ipaddress
import os
from typing import List, Optional, Tuple
from urllib.parse import unquote, urlparse

from ._exceptions import WebSocketProxyException

__all__ = ["parse_url", "get_proxy_info"]


def parse_url(url: str) -> Tuple[str, int, str, bool]:
    """``(hostname, port, resource, is_secure)`` of a ``ws://`` or
    ``wss://`` URL; the port is 80 or 443 when the URL gives none, the
    resource is the path (``/`` when empty) and the query. Raises
    ``ValueError`` for another scheme or no host, as websocket-client does.
    """
    if ":" not in url:
        raise ValueError("url is invalid")
    scheme, rest = url.split(":", 1)
    # Parsed as http so that urlparse splits the authority from the path
    # (it does not know ws).
    parsed = urlparse(rest, scheme="http")
    if not parsed.hostname:
        raise ValueError("hostname is invalid")
    port = parsed.port or 0
    if scheme == "ws":
        is_secure = False
        port = port or 80
    elif scheme == "wss":
        is_secure = True
        port = port or 443
    else:
        raise ValueError(f"scheme {scheme} is invalid")
    resource = parsed.path or "/"
    if parsed.query:
        resource += "?" + parsed.query
    return parsed.hostname, port, resource, is_secure


def _in_network(address: str, network: str) -> bool:
    try:
        return ipaddress.ip_network(address).subnet_of(ipaddress.ip_network(network))
    except (TypeError, ValueError):
        return False


def _no_proxy_for(hostname: str, no_proxy: Optional[List[str]]) -> bool:
    if not no_proxy:
        value = os.environ.get("no_proxy", os.environ.get("NO_PROXY", "")).replace(" ", "")
        no_proxy = value.split(",") if value else []
    if "*" in no_proxy or hostname in no_proxy:
        return True
    try:
        ipaddress.ip_address(hostname)
    except ValueError:
        pass
    else:
        return any(_in_network(hostname, entry) for entry in no_proxy)
    for domain in no_proxy:
        # ".example.com" and "example.com" both cover the subdomains.
        if domain.startswith("."):
            if hostname.endswith(domain.lstrip(".")):
                return True
        elif hostname == domain or hostname.endswith("." + domain):
            return True
    return False


def _is_ip_address(addr: str) -> bool:
    """Whether ``addr`` is an IPv4 or IPv6 address (websocket-client's
    private helper, which libraries' and its own tests import)."""
    if not isinstance(addr, str):
        raise TypeError("_is_ip_address() argument 1 must be str")
    try:
        ipaddress.ip_address(addr)
    except ValueError:
        return False
    return True


def _is_subnet_address(hostname: str) -> bool:
    """Whether ``hostname`` is a network (``10.0.0.0/8``) or an address."""
    try:
        ipaddress.ip_network(hostname)
    except ValueError:
        return False
    return True


# websocket-client's names of the two checks above.
_is_address_in_network = _in_network
_is_no_proxy_host = _no_proxy_for


def get_proxy_info(
    hostname: str,
    is_secure: bool,
    proxy_host: Optional[str] = None,
    proxy_port: int = 0,
    proxy_auth: Optional[tuple] = None,
    no_proxy: Optional[List[str]] = None,
    proxy_type: str = "http",
) -> tuple:
    """``(proxy_host, proxy_port, proxy_auth)`` for a connection to
    ``hostname``: the proxy given, else ``https_proxy``/``http_proxy``
    (upper case too) from the environment, or ``(None, 0, None)`` when
    ``no_proxy`` (or the environment's) covers the host. ``proxy_type``
    does not change the answer (as in websocket-client)."""
    if _no_proxy_for(hostname, no_proxy):
        return None, 0, None
    if proxy_host:
        if not proxy_port:
            raise WebSocketProxyException("Cannot use port 0 when proxy_host specified")
        return proxy_host, proxy_port, proxy_auth
    key = "https_proxy" if is_secure else "http_proxy"
    value = os.environ.get(key, os.environ.get(key.upper(), "")).replace(" ", "")
    if value:
        proxy = urlparse(value)
        auth = (unquote(proxy.username or ""), unquote(proxy.password or "")) if proxy.username else None
        return proxy.hostname, proxy.port, auth
    return None, 0, None
