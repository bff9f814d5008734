"""``floodgate.install_as_websocket()``, ``FLOODGATE_AS_WEBSOCKET=1`` (the
``.pth`` file the wheel installs) and ``python -m floodgate.as_websocket``:
``import websocket`` gives floodgate.

Everything that installs the alias runs in a child interpreter, so this
process's ``sys.modules`` keeps websocket-client (installed in the test
venv) as ``websocket``, which the comparisons at the end use.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

import floodgate
from floodgate import _url as fg_url
from floodgate import _utils as fg_utils


def run_python(code_or_args, tmp_path, env_extra=None, files=None):
    """Runs a child interpreter (``-c code`` or the given arguments) in
    ``tmp_path``, with ``files`` written there first, and returns its
    completed process. FLOODGATE_AS_WEBSOCKET is removed from the
    environment unless ``env_extra`` sets it, so that a test only gets the
    alias it asks for."""
    for name, text in (files or {}).items():
        (tmp_path / name).write_text(textwrap.dedent(text))
    env = {k: v for k, v in os.environ.items() if k != "FLOODGATE_AS_WEBSOCKET"}
    env.update(env_extra or {})
    args = ["-c", textwrap.dedent(code_or_args)] if isinstance(code_or_args, str) else code_or_args
    return subprocess.run(
        [sys.executable, *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def last_json(proc):
    assert proc.returncode == 0, f"child failed:\n{proc.stdout}\n{proc.stderr}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


# A library that knows nothing of floodgate: its module-level imports are
# websocket-client's, public and private.
LIBRARY = """
import websocket
from websocket import ABNF, create_connection
from websocket._abnf import ABNF as PrivateABNF
from websocket._exceptions import WebSocketConnectionClosedException
from websocket._app import WebSocketApp
from websocket._core import WebSocket
from websocket._url import parse_url
from websocket._utils import validate_utf8


def echo(url, text):
    ws = create_connection(url, timeout=5)
    ws.send(text)
    answer = ws.recv()
    ws.close()
    try:
        ws.recv()
        closed = "no exception"
    except WebSocketConnectionClosedException:
        closed = "WebSocketConnectionClosedException"
    return answer, closed
"""


def test_install_as_websocket_gives_floodgate_to_a_library(server, tmp_path):
    proc = run_python(
        f"""
        import json, sys
        import floodgate
        floodgate.install_as_websocket()
        import library  # imports websocket itself
        import websocket, websocket._abnf, websocket._exceptions, websocket._url

        answer, closed = library.echo({server.url("/echo")!r}, "through the alias")
        print(json.dumps({{
            "answer": answer,
            "closed": closed,
            "name": websocket.__name__,
            "is_floodgate": websocket is floodgate,
            "abnf": websocket._abnf.ABNF is floodgate.ABNF and library.PrivateABNF is floodgate.ABNF,
            "closed_class": library.WebSocketConnectionClosedException
                is floodgate.WebSocketConnectionClosedException,
            "app": library.WebSocketApp is floodgate.WebSocketApp,
            "core": library.WebSocket is floodgate.WebSocket,
            "parse_url": library.parse_url("wss://example.com/a?b=1"),
            "aliases": {{n: m.__name__ for n, m in sys.modules.items()
                         if n == "websocket" or n.startswith("websocket.")}},
        }}))
        """,
        tmp_path,
        files={"library.py": LIBRARY},
    )
    out = last_json(proc)
    assert out["answer"] == "through the alias"
    assert out["closed"] == "WebSocketConnectionClosedException"
    assert out["name"] == "floodgate"
    assert out["is_floodgate"] and out["abnf"] and out["closed_class"]
    assert out["app"] and out["core"]
    assert out["parse_url"] == ["example.com", 443, "/a?b=1", True]
    # Every alias is floodgate's module of the same name: none of
    # websocket-client's files (installed in this venv) was loaded.
    aliases = out["aliases"]
    assert aliases["websocket"] == "floodgate"
    for sub in ("_abnf", "_app", "_core", "_exceptions", "_logging", "_url", "_utils", "_socket", "_ssl_compat"):
        assert aliases[f"websocket.{sub}"] == f"floodgate.{sub}"
    assert set(aliases.values()) <= {"floodgate"} | {f"floodgate.{n}" for n in floodgate._install.WEBSOCKET_MODULES}


def test_install_as_websocket_is_idempotent(tmp_path):
    out = last_json(
        run_python(
            """
            import json, sys
            import floodgate
            floodgate.install_as_websocket()
            import websocket._abnf
            first = dict((n, id(m)) for n, m in sys.modules.items() if n.startswith("websocket"))
            floodgate.install_as_websocket()
            floodgate.install_as_websocket()
            second = dict((n, id(m)) for n, m in sys.modules.items() if n.startswith("websocket"))
            finders = [f for f in sys.meta_path if f is floodgate._install._WebsocketFinder]
            print(json.dumps({"same": first == second, "finders": len(finders), "count": len(first)}))
            """,
            tmp_path,
        )
    )
    assert out == {"same": True, "finders": 1, "count": 1 + len(floodgate._install.WEBSOCKET_MODULES)}


def test_install_refuses_when_websocket_client_was_imported_first(tmp_path):
    out = last_json(
        run_python(
            """
            import json, sys
            import websocket  # websocket-client, as a library imported before
            real = websocket
            import floodgate
            try:
                floodgate.install_as_websocket()
                error = None
            except RuntimeError as e:
                error = str(e)
            print(json.dumps({
                "error": error,
                "untouched": sys.modules["websocket"] is real and real is not floodgate,
                "no_alias": "websocket._url" not in sys.modules
                    or sys.modules["websocket._url"].__name__ == "websocket._url",
                "version": real.__version__,
            }))
            """,
            tmp_path,
        )
    )
    assert out["error"] is not None, "install_as_websocket() accepted a websocket-client already imported"
    assert "already imported" in out["error"]
    assert out["version"] in out["error"]  # it says which websocket
    assert "site-packages/websocket" in out["error"]
    # Refused means nothing changed: websocket-client stays websocket.
    assert out["untouched"] and out["no_alias"]


def test_modules_floodgate_lacks_raise_with_the_reason(tmp_path):
    out = last_json(
        run_python(
            """
            import json
            import floodgate
            floodgate.install_as_websocket()
            errors = {}
            for name in ("websocket._http", "websocket._handshake", "websocket._options", "websocket.nope"):
                try:
                    __import__(name)
                    errors[name] = None
                except ImportError as e:
                    errors[name] = [type(e).__name__, str(e)]
            print(json.dumps(errors))
            """,
            tmp_path,
        )
    )
    # websocket-client's _http and _handshake are installed in this venv: an
    # import that found them would return None here.
    for name, error in out.items():
        assert error is not None, f"import {name} succeeded"
        assert error[0] == "ModuleNotFoundError"
        assert "is floodgate" in error[1]
    assert "Python socket" in out["websocket._http"][1]


# A program that does not know floodgate: it prints which websocket it got.
PROGRAM = """
import json, sys
import websocket

ws = websocket.create_connection(sys.argv[1], timeout=5)
ws.send("from the program")
answer = ws.recv()
ws.close()
print(json.dumps({"name": websocket.__name__, "answer": answer, "argv": sys.argv[1:], "main": __name__}))
"""


@pytest.mark.parametrize("value, expected", [("1", "floodgate"), ("0", "websocket"), (None, "websocket")])
def test_the_environment_variable_installs_it_at_startup(server, tmp_path, value, expected):
    env = {} if value is None else {"FLOODGATE_AS_WEBSOCKET": value}
    out = last_json(run_python(["prog.py", server.url("/echo")], tmp_path, env, files={"prog.py": PROGRAM}))
    # Unset or 0: websocket-client, so a "floodgate" here is the
    # variable's doing and nothing else's.
    assert out["name"] == expected
    assert out["answer"] == "from the program"


def test_python_m_floodgate_as_websocket_runs_a_program(server, tmp_path):
    url = server.url("/echo")
    out = last_json(
        run_python(["-m", "floodgate.as_websocket", "prog.py", url], tmp_path, files={"prog.py": PROGRAM})
    )
    assert out == {"name": "floodgate", "answer": "from the program", "argv": [url], "main": "__main__"}
    # From another directory: the program's own directory is on the path
    # (its sibling module imports), as with `python app/prog.py`.
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "helper.py").write_text("WHERE = 'app'\n")
    (tmp_path / "app" / "prog.py").write_text(
        "import json, helper, websocket\nprint(json.dumps([helper.WHERE, websocket.__name__]))\n"
    )
    assert last_json(run_python(["-m", "floodgate.as_websocket", "app/prog.py"], tmp_path)) == ["app", "floodgate"]
    # -m MODULE: the program's module found on the path, run as __main__.
    (tmp_path / "progmod.py").write_text(PROGRAM)
    out = last_json(run_python(["-m", "floodgate.as_websocket", "-m", "progmod", url], tmp_path))
    assert out == {"name": "floodgate", "answer": "from the program", "argv": [url], "main": "__main__"}


def test_the_wheel_installed_the_pth_file():
    # The environment route needs the .pth file in site-packages, which only
    # the wheel's floodgate-*.data/purelib puts there.
    import site

    dirs = site.getsitepackages() + [site.getusersitepackages()]
    assert any(os.path.exists(os.path.join(d, "floodgate_as_websocket.pth")) for d in dirs), dirs


# _url and _utils against websocket-client's own (imported in this process,
# where nothing installed the alias).

URLS = [
    "ws://example.com/",
    "ws://example.com",
    "wss://example.com:8443/chat?room=1&x=y",
    "ws://127.0.0.1:9001/echo",
    "ws://[::1]:9001/a",
    "wss://[2001:db8::1]/",
    "ws://user:pw@host:81/p",
    "http://example.com/",
    "ws:///nohost",
    "nocolon",
]


@pytest.mark.parametrize("url", URLS)
def test_parse_url_answers_as_websocket_client(url):
    from websocket import _url as real

    def outcome(parse):
        try:
            return parse(url)
        except ValueError as e:
            return ("ValueError", str(e))

    assert real.__name__ == "websocket._url" and real is not fg_url
    assert outcome(fg_url.parse_url) == outcome(real.parse_url)


PROXY_CASES = [
    ({}, ("example.com", False), {}),
    ({"http_proxy": "http://user:p%40ss@proxy:3128"}, ("example.com", False), {}),
    ({"https_proxy": "http://proxy:3129", "http_proxy": "http://other:1"}, ("example.com", True), {}),
    ({"HTTP_PROXY": "http://upper:8080"}, ("example.com", False), {}),
    ({"http_proxy": "http://proxy:3128", "no_proxy": "example.com"}, ("sub.example.com", False), {}),
    ({"http_proxy": "http://proxy:3128", "no_proxy": ".example.com"}, ("example.com", False), {}),
    ({"http_proxy": "http://proxy:3128", "no_proxy": "10.0.0.0/8"}, ("10.1.2.3", False), {}),
    ({"http_proxy": "http://proxy:3128", "no_proxy": "10.0.0.0/8"}, ("11.1.2.3", False), {}),
    ({"http_proxy": "http://proxy:3128"}, ("h", False), {"proxy_host": "given", "proxy_port": 8000}),
    ({}, ("h", False), {"proxy_host": "given", "proxy_port": 8000, "no_proxy": ["h"]}),
    ({}, ("h", False), {"proxy_host": "given"}),
]


@pytest.mark.parametrize("env, args, kwargs", PROXY_CASES)
def test_get_proxy_info_answers_as_websocket_client(monkeypatch, env, args, kwargs):
    from websocket import _url as real

    for key in ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)

    def outcome(get):
        try:
            return get(*args, **kwargs)
        except Exception as e:  # the class's name: the two modules' classes differ
            return (type(e).__name__, str(e))

    expected = outcome(real.get_proxy_info)
    assert outcome(fg_url.get_proxy_info) == expected


UTF8_CASES = [
    b"",
    b"plain ascii",
    "héllo wörld €𝄞".encode(),
    b"\xc3\x28",  # invalid continuation
    b"\xc0\xaf",  # overlong
    b"\xed\xa0\x80",  # surrogate
    b"\xf4\x90\x80\x80",  # above U+10FFFF
    b"\xe2\x82",  # cut short: valid so far, as websocket-client answers
    b"\xed\xa0",  # cut short, but already a surrogate
    b"\xf4\x90",  # cut short, but already above U+10FFFF
    b"\xe0\x80",  # cut short, but already overlong
    "\ud800",  # a str with a lone surrogate
    "fine str",
]


@pytest.mark.parametrize("data", UTF8_CASES)
def test_validate_utf8_answers_as_websocket_client(data):
    from websocket import _utils as real

    assert fg_utils.validate_utf8(data) == real.validate_utf8(data)


def test_the_other_utils_answer_as_websocket_client():
    from websocket import _utils as real

    for exc in (OSError(104, "reset"), ValueError("x"), Exception(), OSError("only")):
        assert fg_utils.extract_err_message(exc) == real.extract_err_message(exc)
        assert fg_utils.extract_error_code(exc) == real.extract_error_code(exc)
    with fg_utils.NoLock():
        pass
