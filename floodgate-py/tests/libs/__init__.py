"""Tests that run libraries which ``import websocket`` themselves (see
``conftest.py``). A package, so that its ``conftest`` does not take the
name ``conftest`` from ``tests/conftest.py``, which other tests import
from."""
