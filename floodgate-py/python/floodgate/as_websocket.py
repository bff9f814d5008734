"""Runs a program with floodgate as its ``websocket``, without editing it:

    python -m floodgate.as_websocket prog.py [ARG]...
    python -m floodgate.as_websocket -m package.module [ARG]...

``install_as_websocket()`` is called first, then the program runs as
``python prog.py`` (or ``python -m package.module``) would run it: as
``__main__``, with ``sys.argv`` starting at the program. Child processes it
starts do not inherit this; for them (and for console scripts) set
``FLOODGATE_AS_WEBSOCKET=1`` in the environment instead (docs/python.md).
"""

import os
import runpy
import sys

from ._install import install_as_websocket

_USAGE = "usage: python -m floodgate.as_websocket (PROGRAM.py | -m MODULE) [ARG]..."


def main(argv: list) -> None:
    if not argv or argv[0] in ("-h", "--help"):
        print(_USAGE, file=sys.stderr if not argv else sys.stdout)
        sys.exit(2 if not argv else 0)
    install_as_websocket()
    if argv[0] == "-m":
        if len(argv) < 2:
            print(_USAGE, file=sys.stderr)
            sys.exit(2)
        sys.argv = argv[1:]
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = argv
        # As `python prog.py` does: the program's directory, not the current
        # one (which `python -m` put there), first on the path.
        sys.path[0] = os.path.dirname(os.path.abspath(argv[0]))
        runpy.run_path(argv[0], run_name="__main__")


if __name__ == "__main__":
    main(sys.argv[1:])
