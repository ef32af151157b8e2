"""Shared machinery of the HTTP API suite for ``codecell serve``.

Run with Debian's interpreter (pytest 7.2):

    cd <repo> && CODECELL_BIN=build/codecell /usr/bin/python3 -m pytest tests/api -q

* ``CODECELL_BIN``: the binary under test (default ``<repo>/build/codecell``).
* ``CI=true``: a missing root privilege makes every test FAIL instead of skip.

Only the standard library speaks HTTP here (http.client / raw sockets); multipart bodies are built
by hand.  Every daemon is a real ``codecell serve`` on a free loopback port with a temporary data
dir; its stderr (JSON logs) goes to a file that failures quote.
"""
import http.client
import json
import os
import random
import re
import select
import socket
import sys
from datetime import datetime
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # tests/, for support.harness
from support import harness  # noqa: E402
# re-exported for the test modules (`from .conftest import ...`)
from support.harness import (BIN, DEFAULT as _DEFAULT, Resp, binary_path, free_port,  # noqa: E402,F401
                             in_ci, multipart, new_user, q, sha256, to_toml, toml_value)

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent

READY_TIMEOUT = 20.0      # seconds for GET /healthz to answer after start
STOP_TIMEOUT = 10.0       # SIGTERM, then SIGKILL after this long
FILE_OBJECT_KEYS = {"file_id", "user_id", "filename", "file_type", "mime_type", "file_size",
                    "sha256", "uploaded_at", "expires_at"}
UPLOAD_EXTRA_KEYS = {"original_filename", "source"}
RESULT_KEYS = {"execution_id", "success", "status", "output", "error", "return_code",
               "execution_time", "truncated", "generated_files", "installed_packages",
               "failed_packages", "resources"}
GENERATED_KEYS = {"file_id", "filename", "file_type", "mime_type", "size", "expires_at"}
STATUS_KEYS = {"venv_exists", "python_path", "installed_packages", "package_count",
               "last_cleanup", "total_user_files", "total_file_size_mb",
               "file_expiration_hours", "max_file_size_mb", "version", "uptime_s", "workers",
               "executions"}
RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|\+00:00)$")
FILE_ID_RE = re.compile(r"^[A-Za-z0-9_-]{16,}$")     # URL-safe, >= 96 random bits
# directories under <data_dir>/files/ that are not the store proper (brief: ignore them)
IGNORED_DIRS = {"tmp", ".tmp", "temp", ".temp", "work", "cache"}


# --------------------------------------------------------------------------------------------
# root and temporary directories (tests/support/harness.py)
# --------------------------------------------------------------------------------------------
SUITE = harness.Suite("API", tmp_prefix="codecell-api-", kept="daemons' data dirs and logs",
                      root_reason="codecell serve runs executions in the sandbox, which needs "
                                  "root; this process is not root")
require_root = SUITE.require_root
base_dir = SUITE.base_dir
new_dir = SUITE.new_dir


# --------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------
def parse_time(s: str) -> datetime:
    assert isinstance(s, str) and RFC3339_UTC.match(s), f"not an RFC 3339 UTC time: {s!r}"
    m = re.match(r"^(.*T\d{2}:\d{2}:\d{2})(\.\d+)?(Z|\+00:00)$", s)
    frac = (m.group(2) or ".0")[:7]
    return datetime.fromisoformat(m.group(1) + frac + "+00:00")


def assert_error(r: Resp, status: int, code: str):
    """The SPEC error shape with this status and code; returns the message."""
    assert r.status == status, f"expected HTTP {status} {code}, got {r!r}"
    obj = r.json()
    assert isinstance(obj, dict) and isinstance(obj.get("error"), dict), f"not an error shape: {r!r}"
    assert obj["error"].get("code") == code, f"expected code {code!r}: {r!r}"
    msg = obj["error"].get("message")
    assert isinstance(msg, str) and msg.strip(), f"error without a message: {r!r}"
    if status == 429:
        ra = r.headers.get("retry-after")
        assert ra is not None and re.fullmatch(r"\d+", ra.strip()), f"429 without a Retry-After: {r!r}"
    return msg


def assert_file_object(obj: dict, *, user: str, filename: str | None = None,
                       data: bytes | None = None, upload: bool = False):
    keys = FILE_OBJECT_KEYS | (UPLOAD_EXTRA_KEYS if upload else set())
    missing = keys - set(obj)
    assert not missing, f"file object lacks {sorted(missing)}: {obj}"
    assert obj["user_id"] == user, obj
    assert isinstance(obj["file_id"], str) and FILE_ID_RE.match(obj["file_id"]), obj
    if filename is not None:
        assert obj["filename"] == filename, obj
    if data is not None:
        assert obj["file_size"] == len(data), obj
        assert obj["sha256"] == sha256(data), obj
    assert re.fullmatch(r"[0-9a-f]{64}", obj["sha256"]), obj
    assert isinstance(obj["file_type"], str) and obj["file_type"], obj
    assert isinstance(obj["mime_type"], str) and "/" in obj["mime_type"], obj
    up = parse_time(obj["uploaded_at"])
    if obj["expires_at"] is not None:
        assert parse_time(obj["expires_at"]) > up, obj
    return up


def stored_files(data_dir: Path):
    """Regular files under <data_dir>/files/, except under tmp/work/cache directories."""
    root = Path(data_dir) / "files"
    out = []
    if not root.is_dir():
        return out
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in IGNORED_DIRS]
        for f in filenames:
            p = Path(dirpath) / f
            if p.is_file() and not p.is_symlink():
                out.append(p)
    return out


# --------------------------------------------------------------------------------------------
# the daemon
# --------------------------------------------------------------------------------------------
class Daemon(harness.Daemon):
    """harness.Daemon (start with config/env/flags, /healthz, SIGTERM then SIGKILL, request
    with the API key, list_files, content) with logs per start and the API's request helpers."""

    suite = SUITE
    READY_TIMEOUT = READY_TIMEOUT
    STOP_TIMEOUT = STOP_TIMEOUT
    LOGS_PER_START = True

    def json(self, method, path, payload=None, **kw) -> Resp:
        return self.request(method, path, body=payload, **kw)

    def upload(self, user, name, data: bytes, content_type="application/octet-stream",
               key=_DEFAULT, fields=None, timeout=90) -> Resp:
        flds = [("user_id", user)] if user is not None else []
        flds += list(fields or [])
        body, ctype = multipart(flds, [("file", name, data, content_type)])
        return self.request("POST", "/v1/files", body=body, headers={"Content-Type": ctype},
                            key=key, timeout=timeout)

    def upload_ok(self, user, name, data: bytes, **kw) -> dict:
        r = self.upload(user, name, data, **kw)
        assert r.status == 201, f"upload of {name!r} for {user}: {r!r}"
        return r.json()

    def execute(self, user, code, http_timeout=120, **fields) -> Resp:
        """POST /v1/executions; `fields` (timeout, memory_mb, file_ids, ...) go in the body."""
        payload = {"user_id": user, "code": code, **fields}
        return self.json("POST", "/v1/executions", payload, timeout=http_timeout)

    def execute_ok(self, user, code, **fields) -> dict:
        r = self.execute(user, code, **fields)
        assert r.status == 200, f"execution: {r!r}"
        res = r.json()
        assert res.get("status") == "ok" and res.get("success") is True, \
            f"execution did not succeed: {json.dumps(res, indent=1)[:3000]}"
        return res

    def healthy(self) -> bool:
        try:
            r = self.request("GET", "/healthz", key=None, timeout=5)
            return r.status == 200
        except OSError:
            return False

    def assert_healthy(self, what=""):
        assert self.alive(), f"the daemon died {what}: exit {self.proc.returncode}\n{self.stderr()}"
        assert self.healthy(), f"the daemon does not answer /healthz {what}\n{self.stderr()}"

    def raw(self, method, path, headers: dict, chunks, timeout=60):
        """Send a request whose body comes from `chunks` (an iterable of bytes), stopping as soon
        as the daemon answers or closes. Returns (Resp or None, bytes_sent, error or None)."""
        headers = self._auth(dict(headers), _DEFAULT)
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        sent = 0
        err = None
        try:
            head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
            head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
            sock.sendall(head.encode())
            for chunk in chunks:
                readable, _, _ = select.select([sock], [], [], 0)
                if readable:
                    break
                try:
                    sock.sendall(chunk)
                    sent += len(chunk)
                except OSError as e:       # EPIPE / ECONNRESET: the daemon stopped reading
                    err = e
                    break
            try:
                resp = http.client.HTTPResponse(sock, method=method)
                resp.begin()
                data = resp.read()
                return Resp(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data), sent, err
            except (OSError, http.client.HTTPException) as e:
                return None, sent, e
        finally:
            sock.close()


# --------------------------------------------------------------------------------------------
# pytest hooks and fixtures
# --------------------------------------------------------------------------------------------
def pytest_report_header(config):
    return SUITE.report_header()


def pytest_sessionfinish(session, exitstatus):
    SUITE.session_finish(exitstatus)


@pytest.fixture(autouse=True)
def _root():
    require_root()


@pytest.fixture(scope="session")
def daemon():
    """One daemon on the built-in defaults, shared by the whole session."""
    yield from harness.shared_daemon(Daemon)


@pytest.fixture
def make_daemon():
    """Factory for daemons with a special config; all of them are stopped at teardown."""
    made = []

    def make(config=None, env=None, api_key=None, extra_args=(), data_dir=None, start=True,
             name="special", listen="127.0.0.1:{port}"):
        d = Daemon(config=config, env=env, api_key=api_key, extra_args=extra_args,
                   data_dir=data_dir, name=name, listen=listen)
        made.append(d)
        if start:
            d.start()
        return d

    yield make
    for d in made:
        d.stop()


@pytest.fixture
def user():
    return new_user()


def rand_bytes(n: int, seed=None) -> bytes:
    if seed is None:
        return os.urandom(n)
    return random.Random(seed).randbytes(n)
