"""Shared machinery of the HTTP API suite for ``codecell serve``.

Run with Debian's interpreter (pytest 7.2):

    cd <repo> && CODECELL_BIN=build/codecell /usr/bin/python3 -m pytest tests/api -q

* ``CODECELL_BIN``: the binary under test (default ``<repo>/build/codecell``).
* ``CI=true``: a missing root privilege makes every test FAIL instead of skip.

Only the standard library speaks HTTP here (http.client / raw sockets); multipart bodies are built
by hand.  Every daemon is a real ``codecell serve`` on a free loopback port with a temporary data
dir; its stderr (JSON logs) goes to a file that failures quote.
"""
import hashlib
import http.client
import json
import os
import random
import re
import secrets
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
from datetime import datetime
from pathlib import Path
from typing import NamedTuple

import pytest

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
# binary, CI and root
# --------------------------------------------------------------------------------------------
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


def require_root() -> None:
    if os.geteuid() == 0:
        return
    reason = "codecell serve runs executions in the sandbox, which needs root; this process is not root"
    if in_ci():
        pytest.fail(f"CI=true and a requirement is missing: {reason}", pytrace=False)
    pytest.skip(reason)


# --------------------------------------------------------------------------------------------
# temporary directories
# --------------------------------------------------------------------------------------------
_BASE = None


def base_dir() -> Path:
    global _BASE
    if _BASE is None:
        _BASE = Path(tempfile.mkdtemp(prefix="codecell-api-",
                                      dir="/var/tmp" if os.path.isdir("/var/tmp") else None))
    return _BASE


def new_dir(kind: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=kind + "-", dir=base_dir()))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------
def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def new_user(prefix: str = "u") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def parse_time(s: str) -> datetime:
    assert isinstance(s, str) and RFC3339_UTC.match(s), f"not an RFC 3339 UTC time: {s!r}"
    m = re.match(r"^(.*T\d{2}:\d{2}:\d{2})(\.\d+)?(Z|\+00:00)$", s)
    frac = (m.group(2) or ".0")[:7]
    return datetime.fromisoformat(m.group(1) + frac + "+00:00")


def q(**params) -> str:
    return "?" + urllib.parse.urlencode(params)


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    raise TypeError(f"no TOML for {v!r}")


def to_toml(config: dict) -> str:
    lines = [f"{k} = {toml_value(v)}" for k, v in config.items() if not isinstance(v, dict)]
    for k, v in config.items():
        if isinstance(v, dict):
            lines.append(f"\n[{k}]")
            lines += [f"{kk} = {toml_value(vv)}" for kk, vv in v.items()]
    return "\n".join(lines) + "\n"


def multipart(fields=(), files=(), boundary=None):
    """(body, content_type). fields: [(name, value)]; files: [(field, filename, data, ctype)].
    A filename may be bytes (sent raw, e.g. with NUL or invalid UTF-8) or str."""
    boundary = boundary or "----codecell" + secrets.token_hex(12)
    out = []
    for name, value in fields:
        if isinstance(value, str):
            value = value.encode()
        out.append(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n"
                   .encode() + value + b"\r\n")
    for field, filename, data, ctype in files:
        fn = filename if isinstance(filename, bytes) else filename.encode()
        fn = fn.replace(b'"', b"%22")          # what browsers do; backslashes are sent raw
        out.append(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\""
                   .encode() + fn + f"\"\r\nContent-Type: {ctype}\r\n\r\n".encode() + data
                   + b"\r\n")
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out), f"multipart/form-data; boundary={boundary}"


class Resp(NamedTuple):
    status: int
    headers: dict      # lower-case names
    body: bytes

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError as e:
            raise AssertionError(f"HTTP {self.status}: body is not JSON ({e}): {self.body[:500]!r}")

    def __repr__(self):
        return f"<HTTP {self.status} {self.headers.get('content-type')} {self.body[:600]!r}>"


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
_DEFAULT = object()


class Daemon:
    def __init__(self, config: dict | None = None, env: dict | None = None,
                 api_key: str | None = None, extra_args=(), data_dir: Path | None = None,
                 name: str = "daemon", listen: str = "127.0.0.1:{port}"):
        self.dir = new_dir(name)
        self.data_dir = Path(data_dir) if data_dir else self.dir / "data"
        self.config = config
        self.env = env or {}
        self.api_key = api_key
        self.extra_args = list(extra_args)
        self.listen = listen
        self.port = None
        self.proc = None
        self.starts = 0
        self.config_path = None
        if config is not None:
            self.config_path = self.dir / "config.toml"
            self.config_path.write_text(to_toml(config))

    # -- process ------------------------------------------------------------------------------
    def command(self):
        cmd = [str(BIN), "serve", "--data-dir", str(self.data_dir)]
        if self.listen is not None:
            cmd += ["--listen", self.listen.format(port=self.port)]
        if self.config_path:
            cmd += ["--config", str(self.config_path)]
        return cmd + self.extra_args

    def environ(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("CODECELL_")}
        env.update(self.env)
        return env

    def start(self, wait=True):
        assert BIN.exists(), f"no codecell binary at {BIN} (set CODECELL_BIN)"
        self.port = free_port()
        self.starts += 1
        self.stderr_path = self.dir / f"stderr.{self.starts}.log"
        self.stdout_path = self.dir / f"stdout.{self.starts}.log"
        self._err = open(self.stderr_path, "wb")
        self._out = open(self.stdout_path, "wb")
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=self._out,
                                     stderr=self._err, env=self.environ())
        if wait:
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
                            f"command: {self.command()}\nstderr:\n{self.stderr()}", pytrace=False)
            try:
                r = self.request("GET", "/healthz", timeout=2, key=None)
                if r.status == 200:
                    return
                last = r
            except OSError as e:
                last = e
            time.sleep(0.1)
        self.kill()
        pytest.fail(f"codecell serve did not answer GET /healthz within {timeout}s (last: {last!r})\n"
                    f"command: {self.command()}\nstderr:\n{self.stderr()}", pytrace=False)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        if self.alive():
            self.proc.send_signal(sig)

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM, then SIGKILL after `timeout` s; returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._close_logs()
        return self.proc.returncode

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._close_logs()

    def _close_logs(self):
        for f in (getattr(self, "_err", None), getattr(self, "_out", None)):
            if f and not f.closed:
                f.close()

    # -- HTTP -----------------------------------------------------------------------------------
    def _auth(self, headers, key):
        key = self.api_key if key is _DEFAULT else key
        if key is not None and "Authorization" not in headers:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def request(self, method, path, body=None, headers=None, key=_DEFAULT, timeout=90) -> Resp:
        headers = self._auth(dict(headers or {}), key)
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        elif isinstance(body, str):
            body = body.encode()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            try:
                conn.request(method, path, body=body, headers=headers)
            except (BrokenPipeError, ConnectionResetError) as e:
                # the daemon answered (e.g. 413) and closed before reading the whole body:
                # read that answer if it is there
                try:
                    r = conn.getresponse()
                except (OSError, http.client.HTTPException):
                    raise e
            else:
                r = conn.getresponse()
            data = r.read()
            return Resp(r.status, {k.lower(): v for k, v in r.getheaders()}, data)
        finally:
            conn.close()

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

    def list_files(self, user) -> list:
        r = self.request("GET", "/v1/files" + q(user_id=user))
        assert r.status == 200, r
        obj = r.json()
        assert isinstance(obj, dict) and isinstance(obj.get("files"), list), obj
        return obj["files"]

    def content(self, user, file_id) -> Resp:
        return self.request("GET", f"/v1/files/{file_id}/content" + q(user_id=user))

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
    return [f"codecell binary: {BIN} (exists: {BIN.exists()}); CI={in_ci()}; euid={os.geteuid()}"]


def pytest_sessionfinish(session, exitstatus):
    if _BASE is not None and exitstatus == 0:
        shutil.rmtree(_BASE, ignore_errors=True)
    elif _BASE is not None:
        print(f"\ncodecell API suite: daemons' data dirs and logs kept under {_BASE}",
              file=sys.stderr)


@pytest.fixture(autouse=True)
def _root():
    require_root()


@pytest.fixture(scope="session")
def daemon():
    """One daemon on the built-in defaults, shared by the whole session."""
    require_root()
    d = Daemon(name="shared")
    d.start()
    yield d
    rc = d.stop()
    assert rc == 0, f"the shared daemon exited {rc} on SIGTERM\n{d.stderr()}"


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
