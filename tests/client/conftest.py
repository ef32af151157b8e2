"""Machinery of the Python client suite: a real ``codecell serve`` on a free loopback port with a
temporary data dir, and ``clients/python`` importable from the source tree.

    cd <repo> && CODECELL_BIN=build/codecell /usr/bin/python3 -m pytest tests/client -q

* ``CODECELL_BIN``: the binary under test (default ``<repo>/build/codecell``).
* ``CI=true``: a missing root privilege (or Debian package) makes every test FAIL instead of skip.

Needs Debian's python3-aiohttp and python3-discord (bookworm); no pytest-asyncio: coroutines run
with ``asyncio.run`` inside sync tests.
"""
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
CLIENT_SRC = REPO / "clients" / "python"
EXAMPLES = CLIENT_SRC / "examples"

READY_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0

for p in (str(CLIENT_SRC), str(EXAMPLES)):
    if p not in sys.path:
        sys.path.insert(0, p)


def binary_path() -> Path:
    env = os.environ.get("CODECELL_BIN")
    if not env:
        return REPO / "build" / "codecell"
    p = Path(env)
    if not p.is_absolute():
        p = Path.cwd() / p if (Path.cwd() / p).exists() else REPO / p
    return p.absolute()


BIN = binary_path()


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def _missing(reason: str) -> None:
    if in_ci():
        pytest.fail(f"CI=true and a requirement is missing: {reason}", pytrace=False)
    print(f"\nSKIP: {reason}", file=sys.stderr)
    pytest.skip(reason)


def require_root() -> None:
    if os.geteuid() != 0:
        _missing("codecell serve runs executions in the sandbox, which needs root; "
                 "this process is not root")


def require_module(name: str, package: str) -> None:
    try:
        __import__(name)
    except ImportError:
        _missing(f"Python module {name!r} is missing (Debian package {package})")


_BASE = None


def base_dir() -> Path:
    global _BASE
    if _BASE is None:
        _BASE = Path(tempfile.mkdtemp(prefix="codecell-client-",
                                      dir="/var/tmp" if os.path.isdir("/var/tmp") else None))
    return _BASE


def new_dir(kind: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=kind + "-", dir=base_dir()))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def new_user(prefix: str = "u") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


class Daemon:
    def __init__(self, name: str = "daemon"):
        self.dir = new_dir(name)
        self.data_dir = self.dir / "data"
        self.port = None
        self.proc = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self):
        return [str(BIN), "serve", "--listen", f"127.0.0.1:{self.port}",
                "--data-dir", str(self.data_dir)]

    def start(self):
        assert BIN.exists(), f"no codecell binary at {BIN} (set CODECELL_BIN)"
        self.port = free_port()
        self.stderr_path = self.dir / "stderr.log"
        self._err = open(self.stderr_path, "wb")
        env = {k: v for k, v in os.environ.items() if not k.startswith("CODECELL_")}
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=self._err, env=env)
        self.wait_ready()
        return self

    def stderr(self, limit=6000) -> str:
        try:
            text = self.stderr_path.read_text(errors="replace")
        except OSError:
            return "<no stderr>"
        return text if len(text) <= limit else "...\n" + text[-limit:]

    def wait_ready(self, timeout=READY_TIMEOUT):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                pytest.fail(f"codecell serve exited with {rc} before answering /healthz\n"
                            f"stderr:\n{self.stderr()}", pytrace=False)
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                try:
                    conn.request("GET", "/healthz")
                    if conn.getresponse().status == 200:
                        return
                finally:
                    conn.close()
            except OSError as e:
                last = e
            time.sleep(0.1)
        self.stop()
        pytest.fail(f"codecell serve did not answer /healthz within {timeout}s ({last!r})\n"
                    f"stderr:\n{self.stderr()}", pytrace=False)

    def stop(self):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._err.close()
        return self.proc.returncode


def pytest_report_header(config):
    return [f"codecell binary: {BIN} (exists: {BIN.exists()}); CI={in_ci()}; euid={os.geteuid()}"]


def pytest_sessionfinish(session, exitstatus):
    if _BASE is not None and exitstatus == 0:
        shutil.rmtree(_BASE, ignore_errors=True)
    elif _BASE is not None:
        print(f"\ncodecell client suite: data dirs and logs kept under {_BASE}", file=sys.stderr)


@pytest.fixture(autouse=True)
def _requirements():
    require_root()
    require_module("aiohttp", "python3-aiohttp")


@pytest.fixture(scope="session")
def daemon():
    """One daemon on the built-in defaults, shared by the whole session."""
    require_root()
    d = Daemon(name="shared")
    d.start()
    yield d
    rc = d.stop()
    assert rc == 0, f"the daemon exited {rc} on SIGTERM\n{d.stderr()}"


@pytest.fixture
def user():
    return new_user()
