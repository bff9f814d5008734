import floodgate as websocket

# How websocket-client's option names become floodgate's: the proxy
# arguments become one proxy URL, sslopt and sockopt their settings, the
# header forms a list of pairs. (The network side of each is tested in the
# Rust suite against real proxies and TLS servers; TLS from Python is in
# test_tls.py.)

import socket
import ssl

import pytest

from floodgate._options import normalise


def test_http_proxy_arguments_become_a_proxy_url_and_turn_the_environment_off():
    o = normalise(
        http_proxy_host="proxy.example",
        http_proxy_port=3128,
        http_proxy_auth=("us er", "p@ss:word"),
        http_no_proxy=["localhost", "10.0.0.0/8"],
    )
    assert o["proxy"] == "http://us%20er:p%40ss%3Aword@proxy.example:3128"
    assert o["no_proxy"] == "localhost,10.0.0.0/8"
    assert o["proxy_from_env"] is False


@pytest.mark.parametrize("kind", ["socks4", "socks4a", "socks5", "socks5h"])
def test_proxy_type_names_the_url_scheme(kind):
    o = normalise(http_proxy_host="::1", http_proxy_port=1080, proxy_type=kind)
    assert o["proxy"] == f"{kind}://[::1]:1080"


def test_without_a_proxy_the_environment_is_read_as_websocket_client_does():
    o = normalise()
    assert o["proxy"] is None and o["proxy_from_env"] is True


def test_proxy_arguments_that_do_not_fit_are_errors():
    with pytest.raises(ValueError):
        normalise(http_proxy_host="p", proxy_type="gopher", http_proxy_port=1)
    with pytest.raises(ValueError):
        normalise(http_proxy_host="p")  # no port
    with pytest.raises(ValueError):
        normalise(http_proxy_port=8080)  # no host


def test_sslopt_and_sockopt_become_floodgates_settings():
    o = normalise(
        sslopt={
            "cert_reqs": ssl.CERT_NONE,
            "ca_certs": "/ca.pem",
            "certfile": "/c.pem",
            "keyfile": "/k.pem",
            "server_hostname": "name",
            "check_hostname": False,
        },
        sockopt=[
            (socket.IPPROTO_TCP, socket.TCP_NODELAY, 0),
            (socket.SOL_SOCKET, socket.SO_SNDBUF, 65536),
            (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1),
            (socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 30),
        ],
    )
    assert o["verify"] is False
    assert (o["ca_file"], o["cert_file"], o["key_file"]) == ("/ca.pem", "/c.pem", "/k.pem")
    assert o["server_hostname"] == "name"
    assert o["nodelay"] is False
    assert o["send_buffer"] == 65536
    assert o["tcp_keepalive"] == 30.0


def test_headers_as_a_list_or_a_dict():
    assert normalise(header=["A: 1", "B:2"])["headers"] == [("A", "1"), ("B", "2")]
    assert normalise(header={"A": 1})["headers"] == [("A", "1")]
    with pytest.raises(ValueError):
        normalise(header=["no colon"])


def test_refused_options_say_so():
    with pytest.raises(websocket.WebSocketUnsupportedException):
        normalise(sslopt={"ca_cert_path": "/etc/ssl"})
    with pytest.raises(websocket.WebSocketUnsupportedException):
        normalise(sslopt={"password": "x"})
    with pytest.raises(websocket.WebSocketUnsupportedException):
        normalise(sslopt={"cert_reqs": ssl.CERT_OPTIONAL})


def test_a_dict_headers_none_values_are_left_out_as_websocket_client_does():
    assert normalise(header={"X-None": None, "X-One": "1"})["headers"] == [("X-One", "1")]


def test_sec_websocket_protocol_in_header_joins_the_subprotocols_offered():
    o = normalise(
        subprotocols=["a", "b"],
        header=["X-Other: 1", "SEC-WEBSOCKET-PROTOCOL: b, c,,d", "sec-websocket-protocol: e"],
    )
    # One list, subprotocols= first, no repeat, no empty value; the header
    # itself is not sent as well (the native side writes one from the list).
    assert o["subprotocols"] == ["a", "b", "c", "d", "e"]
    assert o["headers"] == [("X-Other", "1")]
    assert normalise(header={"Sec-WebSocket-Protocol": "v5.channel.k8s.io,v4.channel.k8s.io"})[
        "subprotocols"
    ] == ["v5.channel.k8s.io", "v4.channel.k8s.io"]


def test_compression_takes_true_or_a_dict_of_fields():
    assert normalise()["compression"] is None
    assert normalise(compression=True)["compression"] == {
        "threshold": None,
        "level": None,
        "client_max_window_bits": None,
        "server_max_window_bits": None,
        "client_no_context_takeover": None,
        "server_no_context_takeover": None,
    }
    got = normalise(compression={"threshold": 0, "server_max_window_bits": 10})["compression"]
    assert (got["threshold"], got["server_max_window_bits"], got["level"]) == (0, 10, None)


@pytest.mark.parametrize(
    "value, error, words",
    [
        ({"treshold": 0}, ValueError, "unknown field(s) treshold"),
        ({"level": 10}, ValueError, "level=10: give 0 (store) to 9"),
        ({"client_max_window_bits": 7}, ValueError, "client_max_window_bits=7"),
        ({"threshold": True}, ValueError, "threshold=True"),
        ("deflate", TypeError, "give True, False or a dict"),
    ],
)
def test_a_bad_compression_says_what_to_give(value, error, words):
    with pytest.raises(error) as raised:
        normalise(compression=value)
    assert words in str(raised.value)


def test_the_compression_dict_is_what_the_offer_says(server):
    import json

    ws = websocket.create_connection(
        server.url("/headers"),
        compression={"client_max_window_bits": 10, "server_no_context_takeover": True},
    )
    try:
        headers = {k.lower(): v for k, v in json.loads(ws.recv()).items()}
    finally:
        ws.close()
    # The first offer is the one asked for (floodgate adds a fallback
    # offer after it, for servers that refuse a window size).
    first = headers["sec-websocket-extensions"].split(",")[0]
    offer = [p.strip() for p in first.split(";")]
    assert offer[0] == "permessage-deflate"
    assert "client_max_window_bits=10" in offer
    assert "server_no_context_takeover" in offer
    assert "client_no_context_takeover" in offer  # the default, kept
