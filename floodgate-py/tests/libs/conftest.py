"""Runs libraries that ``import websocket`` themselves (kubernetes,
obsws-python, slack_sdk, binance-connector), unmodified, against the fake
servers of ``libs_servers.py``.

Every test runs twice (the ``impl`` fixture):

- ``floodgate``: the library runs in a child interpreter started with
  ``FLOODGATE_AS_WEBSOCKET=1``, so the ``.pth`` file of floodgate's wheel
  calls ``floodgate.install_as_websocket()`` before anything imports
  ``websocket``;
- ``websocket-client``: the same child without it, so ``import websocket``
  is websocket-client (installed in the test venv as the reference). A
  fake server that only floodgate gets along with would fail here.

A child is a script of ``clients/`` given its arguments as JSON; it prints
``RESULT <json>`` (what the library returned, the events seen, the times)
and the test asserts on that. The child arms ``faulthandler`` to dump its
threads' stacks before the parent's timeout kills it, so a hang shows where
it hangs.
"""

import pytest

from .libs_run import IMPLS


@pytest.fixture(params=IMPLS)
def impl(request) -> str:
    """Which ``websocket`` the library's child process gets: ``floodgate``
    or ``websocket-client`` (see ``libs_run.run_client``)."""
    return request.param
