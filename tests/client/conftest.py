"""Machinery of the Python client suite: a real ``codecell serve`` on a free loopback port with a
temporary data dir, and ``clients/python`` importable from the source tree.

    cd <repo> && CODECELL_BIN=build/codecell /usr/bin/python3 -m pytest tests/client -q

* ``CODECELL_BIN``: the binary under test (default ``<repo>/build/codecell``).
* ``CI=true``: a missing root privilege (or Debian package) makes every test FAIL instead of skip.

Needs Debian's python3-aiohttp and python3-discord (bookworm); no pytest-asyncio: coroutines run
with ``asyncio.run`` inside sync tests.
"""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # tests/, for support.harness
from support import harness  # noqa: E402
# re-exported for the test modules (`from .conftest import ...`)
from support.harness import (BIN, binary_path, free_port, in_ci, new_user,  # noqa: E402,F401
                             require_module)

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
CLIENT_SRC = REPO / "clients" / "python"
EXAMPLES = CLIENT_SRC / "examples"

READY_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0

for p in (str(CLIENT_SRC), str(EXAMPLES)):
    if p not in sys.path:
        sys.path.insert(0, p)

SUITE = harness.Suite("client", tmp_prefix="codecell-client-",
                      root_reason="codecell serve runs executions in the sandbox, which needs "
                                  "root; this process is not root")
require_root = SUITE.require_root
base_dir = SUITE.base_dir
new_dir = SUITE.new_dir


class Daemon(harness.Daemon):
    """harness.Daemon on the built-in defaults (``url`` for the client)."""

    suite = SUITE
    READY_TIMEOUT = READY_TIMEOUT
    STOP_TIMEOUT = STOP_TIMEOUT


def pytest_report_header(config):
    return SUITE.report_header()


def pytest_sessionfinish(session, exitstatus):
    SUITE.session_finish(exitstatus)


@pytest.fixture(autouse=True)
def _requirements():
    require_root()
    require_module("aiohttp", "python3-aiohttp")


@pytest.fixture(scope="session")
def daemon():
    """One daemon on the built-in defaults, shared by the whole session."""
    yield from harness.shared_daemon(Daemon)


@pytest.fixture
def user():
    return new_user()
