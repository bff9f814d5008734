import floodgate as websocket

# wss:// as websocket-client programs write it: sslopt's ca_certs,
# cert_reqs=CERT_NONE, server_hostname; a certificate from an unknown CA is
# refused with an exception that is also an ssl.SSLError. The server is
# floodgate's own (`floodgate serve --tls-cert/--tls-key`) with a CA and a
# certificate made for this test by the `cryptography` package.

import re
import ssl
import subprocess

import pytest

from certs import make_tls_files
from conftest import _floodgate_binary


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    """A CA, a server certificate for localhost/127.0.0.1 signed by it, and
    `floodgate serve` speaking TLS with it."""
    d = tmp_path_factory.mktemp("tls")
    paths = make_tls_files(d)
    proc = subprocess.Popen(
        [
            str(_floodgate_binary()),
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--tls-cert",
            str(d / "cert.pem"),
            "--tls-key",
            str(d / "key.pem"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    first = proc.stdout.readline()
    port = int(re.search(r"127\.0\.0\.1:(\d+)/", first).group(1))
    yield {"port": port, "ca": str(d / "ca.pem"), "ca_pem": open(paths["ca"]).read()}
    proc.kill()
    proc.wait()


def test_wss_with_the_ca_in_sslopt_ca_certs(tls):
    ws = websocket.create_connection(
        f"wss://localhost:{tls['port']}/", sslopt={"ca_certs": tls["ca"]}
    )
    assert ws.is_ssl()
    ws.send("over TLS")
    assert ws.recv() == "over TLS"
    ws.close()


def test_wss_with_cadata_and_an_ip_address(tls):
    ws = websocket.create_connection(
        f"wss://127.0.0.1:{tls['port']}/", sslopt={"cadata": tls["ca_pem"]}
    )
    ws.send("by address")
    assert ws.recv() == "by address"
    ws.close()


def test_an_unknown_ca_is_refused_as_an_ssl_error(tls):
    with pytest.raises(websocket.WebSocketSSLException) as raised:
        # The platform's roots: they do not hold the test's CA.
        websocket.create_connection(f"wss://localhost:{tls['port']}/")
    assert isinstance(raised.value, ssl.SSLError)
    assert isinstance(raised.value, websocket.WebSocketException)
    assert "not signed by a trusted certificate authority" in str(raised.value)


def test_server_hostname_is_the_name_checked(tls):
    url = f"wss://127.0.0.1:{tls['port']}/"
    # The certificate names localhost and 127.0.0.1, not this.
    with pytest.raises(ssl.SSLError) as raised:
        websocket.create_connection(
            url, sslopt={"ca_certs": tls["ca"], "server_hostname": "other.example"}
        )
    assert "other.example" in str(raised.value)
    ws = websocket.create_connection(
        url, sslopt={"ca_certs": tls["ca"], "server_hostname": "localhost"}
    )
    ws.send("named")
    assert ws.recv() == "named"
    ws.close()


def test_cert_reqs_none_skips_verification(tls):
    ws = websocket.create_connection(
        f"wss://localhost:{tls['port']}/", sslopt={"cert_reqs": ssl.CERT_NONE}
    )
    ws.send("unverified")
    assert ws.recv() == "unverified"
    ws.close()
