"""The harness shared by codecell's Python test suites (standard library + pytest only).

What used to be copied into every ``tests/<suite>/conftest.py`` lives here once:

* the binary under test (:data:`BIN`, from ``CODECELL_BIN``, default ``<repo>/build/codecell``);
* the CI rule (:func:`require`, :func:`missing`): a missing requirement (root, a tool, a Python
  module, an enforcement feature of the kernel) FAILS the test under ``CI=true`` and otherwise
  skips it, printing why; :func:`host_cannot` is the other case, an attack the host itself cannot
  perform (the kernel lacks the surface): never a failure, the test runs what it can and says so;
* :class:`Suite`: a suite's name, its temporary directories (one base dir under /var/tmp per
  session, kept after a failed session if the suite wants), why it needs root, its report header;
* small helpers: :func:`free_port`, :func:`new_user`, :func:`q`, :func:`to_toml`,
  :func:`multipart`, :func:`env_without_codecell`, :func:`read_tail`, :func:`terminate`;
* :class:`Daemon`: a real ``codecell serve`` on a free loopback port with an optional TOML config
  and a temporary data dir, waited for on ``GET /healthz``, its stdout and stderr in log files,
  spoken to with http.client, stopped with SIGTERM then SIGKILL.  Suites subclass it for their
  own defaults (timeouts, environment, log files) and request helpers; :func:`shared_daemon`
  is the body of a session fixture around one.

How a suite uses it: its conftest.py puts ``tests/`` on ``sys.path`` (pytest's default
"prepend" import mode already does so for the suites that are packages, e.g. ``tests/api`` with
its ``__init__.py``, whose conftest is imported as ``api.conftest``; the explicit insert covers
``tests/integration`` and other layouts), then imports what it needs and re-exports it, so test
modules keep importing everything from ``.conftest``::

    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # tests/, for support.harness
    from support import harness                                      # noqa: E402
    from support.harness import BIN, in_ci, free_port, new_user      # noqa: E402,F401

    SUITE = harness.Suite("API", tmp_prefix="codecell-api-", root_reason="...")
    require_root, base_dir, new_dir = SUITE.require_root, SUITE.base_dir, SUITE.new_dir

    class Daemon(harness.Daemon):
        suite = SUITE

``tests/warm/run_security_warm.py`` (a script, not a conftest) imports it the same way.
Never run two suites in one pytest invocation: their conftest modules define the same names.
"""
import hashlib
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
import warnings
from pathlib import Path
from typing import NamedTuple

import pytest

REPO = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------------------------
# the binary, CI and requirements
# --------------------------------------------------------------------------------------------
def binary_path() -> Path:
    """``CODECELL_BIN`` made absolute (a relative one against the working directory when it
    exists there, else against the repository), default ``<repo>/build/codecell``."""
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


def missing(reason: str) -> None:
    """A requirement is missing: FAIL under ``CI=true``, else print why and skip."""
    if in_ci():
        pytest.fail(f"CI=true and a requirement is missing: {reason}", pytrace=False)
    print(f"\nSKIP (not CI): {reason}", file=sys.stderr)
    pytest.skip(reason)


def require(condition: bool, reason: str) -> None:
    """:func:`missing` unless ``condition`` holds."""
    if not condition:
        missing(reason)


class HostCannotWarning(UserWarning):
    """Shown in pytest's warnings summary: part of an attack did not apply to this host."""


def host_cannot(reason: str) -> None:
    """The host itself cannot perform (part of) an attack: e.g. a kernel without IA32 emulation
    kills every ``int 0x80`` before any filter sees it. Nothing is unenforced, so this is never a
    failure, under ``CI=true`` either; the caller still runs what the host allows and asserts on
    it. Prints why (and warns, so that the note reaches pytest's summary)."""
    print(f"\nNOTE (the host cannot perform this attack): {reason}", file=sys.stderr)
    warnings.warn(reason, HostCannotWarning, stacklevel=2)


def require_root(reason: str) -> None:
    require(os.geteuid() == 0, reason)


def require_module(name: str, package: str) -> None:
    """An importable Python module (from a Debian package)."""
    try:
        __import__(name)
    except ImportError:
        missing(f"Python module {name!r} is missing (Debian package {package})")


def require_binary() -> None:
    """The binary must exist (always a failure: the build is the suite's input)."""
    if not BIN.exists():
        pytest.fail(f"codecell binary not found at {BIN} (set CODECELL_BIN)", pytrace=False)


# --------------------------------------------------------------------------------------------
# a suite: name, temporary directories, root
# --------------------------------------------------------------------------------------------
class Suite:
    """A suite's settings of the shared pieces.

    ``tmp_prefix``: prefix of the session's base directory under /var/tmp (created on first
    :meth:`new_dir`); ``keep_on_failure``: keep it (and say where) when the session failed,
    else always remove it; ``kept``: what the "kept under" message calls its content;
    ``root_reason``: the message of :meth:`require_root`."""

    def __init__(self, name: str, *, root_reason: str, tmp_prefix: str | None = None,
                 keep_on_failure: bool = True, kept: str = "data dirs and logs"):
        self.name = name
        self.root_reason = root_reason
        self.tmp_prefix = tmp_prefix or f"codecell-{name.lower()}-"
        self.keep_on_failure = keep_on_failure
        self.kept = kept
        self.base: Path | None = None

    def require_root(self) -> None:
        require_root(self.root_reason)

    def base_dir(self) -> Path:
        if self.base is None:
            self.base = Path(tempfile.mkdtemp(
                prefix=self.tmp_prefix, dir="/var/tmp" if os.path.isdir("/var/tmp") else None))
        return self.base

    def new_dir(self, kind: str) -> Path:
        return Path(tempfile.mkdtemp(prefix=kind + "-", dir=self.base_dir()))

    def report_header(self, extra: str = "") -> list:
        """For ``pytest_report_header``."""
        return [f"codecell binary: {BIN} (exists: {BIN.exists()}); CI={in_ci()}; "
                f"euid={os.geteuid()}{extra}"]

    def session_finish(self, exitstatus) -> None:
        """For ``pytest_sessionfinish``: remove the base dir, or keep it after a failure."""
        if self.base is None:
            return
        if exitstatus == 0 or not self.keep_on_failure:
            shutil.rmtree(self.base, ignore_errors=True)
        else:
            print(f"\ncodecell {self.name} suite: {self.kept} kept under {self.base}",
                  file=sys.stderr)


# --------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def new_user(prefix: str = "u") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def q(**params) -> str:
    """A query string: ``q(user_id="a b")`` -> ``"?user_id=a+b"``."""
    return "?" + urllib.parse.urlencode(params)


_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def toml_key(k: str) -> str:
    return k if _BARE_KEY.match(k) else json.dumps(k)


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):  # inside a list: an inline table
        return "{" + ", ".join(f"{toml_key(k)} = {toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(f"no TOML for {v!r}")


def to_toml(config: dict, prefix: str = "") -> str:
    """A dict as TOML; nested dicts become [tables] / [table.subtable]."""
    lines = [f"{toml_key(k)} = {toml_value(v)}" for k, v in config.items()
             if not isinstance(v, dict)]
    out = "\n".join(lines) + ("\n" if lines else "")
    for k, v in config.items():
        if isinstance(v, dict):
            name = f"{prefix}.{toml_key(k)}" if prefix else toml_key(k)
            out += f"\n[{name}]\n" + to_toml(v, name)
    return out


def multipart(fields=(), files=(), boundary=None):
    """(body, content_type). fields: [(name, value)]; files: [(field, filename, data, ctype)].
    A value may be str or bytes; a filename may be bytes (sent raw, e.g. with NUL or invalid
    UTF-8) or str."""
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


def env_without_codecell(extra: dict | None = None) -> dict:
    """os.environ without any ``CODECELL_*`` variable, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CODECELL_")}
    env.update(extra or {})
    return env


def read_tail(path, limit: int) -> str:
    """The last ``limit`` characters of a log file, or ``<no stderr>``."""
    try:
        text = Path(path).read_text(errors="replace")
    except (OSError, TypeError):
        return "<no stderr>"
    return text if len(text) <= limit else "...\n" + text[-limit:]


def terminate(proc: subprocess.Popen, timeout: float):
    """SIGTERM, SIGKILL after ``timeout`` s; returns the exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def descendants_in(parent: dict, root: int) -> list:
    """The pids of ``parent`` (pid -> parent pid, e.g. read from /proc) whose chain of
    ancestors reaches ``root``, in ``parent``'s order."""
    out = []
    for pid in parent:
        p, seen = pid, set()
        while p in parent and p not in seen and p > 1:
            seen.add(p)
            p = parent[p]
            if p == root:
                out.append(pid)
                break
    return out


def close_logs(obj) -> None:
    """Close ``obj._err`` and ``obj._out`` (the log files of a process) if open."""
    for f in (getattr(obj, "_err", None), getattr(obj, "_out", None)):
        if f and not f.closed:
            f.close()


# --------------------------------------------------------------------------------------------
# codecell serve
# --------------------------------------------------------------------------------------------
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


DEFAULT = object()     # "the daemon's own API key" for Daemon.request(key=...)


class Daemon:
    """A real ``codecell serve``: ``--data-dir`` (default ``<dir>/data``), ``--listen``
    (``listen`` with ``{port}`` a free loopback port; None: no flag), ``--config`` (a TOML file
    written from ``config`` (a dict) or ``config_toml`` (text)), then ``extra_args``.

    Its directory is ``root`` if given, else a new one of ``suite`` (a :class:`Suite`, set by the
    suite's subclass).  The environment is the test's without ``CODECELL_*``, plus ``env``.
    :meth:`start` waits up to ``READY_TIMEOUT`` s for ``GET /healthz`` to answer 200, failing
    with the daemon's stderr; :meth:`stop` sends SIGTERM and SIGKILL after ``STOP_TIMEOUT`` s.
    stdout and stderr go to ``stdout.log`` / ``stderr.log`` in its directory (appended on a
    restart), or to ``stdout.N.log`` / ``stderr.N.log`` per start with ``LOGS_PER_START``.
    """

    suite: Suite | None = None
    READY_TIMEOUT = 20.0       # seconds for GET /healthz to answer after start
    STOP_TIMEOUT = 10.0        # SIGTERM, then SIGKILL after this long
    STDERR_LIMIT = 6000        # characters of stderr that stderr() (and failures) quote
    LOGS_PER_START = False
    HTTP_TIMEOUT = 90
    response_type = Resp

    def __init__(self, config: dict | None = None, env: dict | None = None,
                 api_key: str | None = None, extra_args=(), data_dir: Path | None = None,
                 name: str = "daemon", listen: str | None = "127.0.0.1:{port}", *,
                 config_toml: str | None = None, root: Path | None = None):
        self.name = name
        if root is not None:
            self.dir = Path(root)
            self.dir.mkdir(parents=True, exist_ok=True)
        else:
            self.dir = self.suite.new_dir(name)
        self.data_dir = Path(data_dir) if data_dir else self.dir / "data"
        self.config = config
        self.env = env or {}
        self.api_key = api_key
        self.extra_args = list(extra_args)
        self.listen = listen
        self.port = None
        self.proc = None
        self.starts = 0
        self.stderr_path = self.dir / "stderr.log"
        self.stdout_path = self.dir / "stdout.log"
        self.config_path = None
        if config is not None or config_toml is not None:
            self.config_path = self.dir / "config.toml"
            self.config_path.write_text(to_toml(config) if config_toml is None else config_toml)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- process ------------------------------------------------------------------------------
    def command(self) -> list:
        cmd = [str(BIN), "serve", "--data-dir", str(self.data_dir)]
        if self.listen is not None:
            cmd += ["--listen", self.listen.format(port=self.port)]
        if self.config_path:
            cmd += ["--config", str(self.config_path)]
        return cmd + self.extra_args

    def environ(self) -> dict:
        return env_without_codecell(self.env)

    def start(self, wait: bool = True, timeout: float | None = None):
        """Start on a new free port (again after a stop: same data dir); waits for /healthz."""
        if self.suite is not None:
            self.suite.require_root()
        require_binary()
        self.port = free_port()
        self.starts += 1
        mode = "ab"
        if self.LOGS_PER_START:
            mode = "wb"
            self.stderr_path = self.dir / f"stderr.{self.starts}.log"
            self.stdout_path = self.dir / f"stdout.{self.starts}.log"
        self._err = open(self.stderr_path, mode)
        self._out = open(self.stdout_path, mode)
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=self._out,
                                     stderr=self._err, env=self.environ())
        if wait:
            self.wait_ready(timeout)
        return self

    def stderr(self, limit: int | None = None) -> str:
        return read_tail(self.stderr_path, self.STDERR_LIMIT if limit is None else limit)

    def describe_start(self) -> str:
        """The command, config and stderr, for a failure to start."""
        config = f"config:\n{self.config_path.read_text()}\n" if self.config_path else ""
        return f"command: {self.command()}\n{config}stderr:\n{self.stderr()}"

    def healthz_status(self, timeout: float = 2) -> int:
        """The status of a plain ``GET /healthz`` (no credentials); OSError if none."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request("GET", "/healthz")
            r = conn.getresponse()
            r.read()
            return r.status
        finally:
            conn.close()

    def wait_ready(self, timeout: float | None = None):
        timeout = self.READY_TIMEOUT if timeout is None else timeout
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                close_logs(self)
                pytest.fail(f"codecell serve exited with {rc} before answering /healthz\n"
                            f"{self.describe_start()}", pytrace=False)
            try:
                status = self.healthz_status(timeout=2)
                if status == 200:
                    return
                last = f"HTTP {status}"
            except OSError as e:
                last = e
            time.sleep(0.1)
        self.stop()
        pytest.fail(f"codecell serve did not answer GET /healthz within {timeout}s "
                    f"(last: {last!r})\n{self.describe_start()}", pytrace=False)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        if self.alive():
            self.proc.send_signal(sig)

    def stop(self, timeout: float | None = None):
        """SIGTERM, then SIGKILL after ``timeout`` s; returns the exit code."""
        if self.proc is None:
            return None
        terminate(self.proc, self.STOP_TIMEOUT if timeout is None else timeout)
        close_logs(self)
        return self.proc.returncode

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        close_logs(self)

    # -- HTTP -----------------------------------------------------------------------------------
    def _auth(self, headers: dict, key) -> dict:
        key = self.api_key if key is DEFAULT else key
        if key is not None and "Authorization" not in headers:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def send(self, method, path, body=None, headers=None, timeout=None):
        """One request on a new connection: a dict/list body is sent as JSON, a str as UTF-8.
        When the daemon answers (e.g. 413) and closes before reading the whole body, that
        answer is returned.  Returns ``response(r, t0)`` (a :class:`Resp` by default)."""
        headers = dict(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        elif isinstance(body, str):
            body = body.encode()
        conn = http.client.HTTPConnection("127.0.0.1", self.port,
                                          timeout=self.HTTP_TIMEOUT if timeout is None else timeout)
        try:
            t0 = time.monotonic()
            try:
                conn.request(method, path, body=body, headers=headers)
            except (BrokenPipeError, ConnectionResetError) as e:
                try:
                    r = conn.getresponse()
                except (OSError, http.client.HTTPException):
                    raise e
            else:
                r = conn.getresponse()
            return self.response(r, t0)
        finally:
            conn.close()

    def response(self, r: http.client.HTTPResponse, t0: float):
        """What :meth:`send` returns for the response ``r`` to a request sent at ``t0``."""
        return self.response_type(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())

    def request(self, method, path, body=None, headers=None, key=DEFAULT, timeout=None):
        """:meth:`send` with ``Authorization: Bearer <key>`` (default: the daemon's api_key;
        None: none)."""
        return self.send(method, path, body, self._auth(dict(headers or {}), key), timeout)

    def list_files(self, user) -> list:
        r = self.request("GET", "/v1/files" + q(user_id=user))
        assert r.status == 200, r
        obj = r.json()
        assert isinstance(obj, dict) and isinstance(obj.get("files"), list), obj
        return obj["files"]

    def content(self, user, file_id):
        return self.request("GET", f"/v1/files/{file_id}/content" + q(user_id=user))


def shared_daemon(daemon_class, name: str = "shared"):
    """Body of a session-scoped fixture (``yield from shared_daemon(Daemon)``): one daemon on
    the built-in defaults for the whole session, which must exit 0 on SIGTERM at its end."""
    daemon_class.suite.require_root()
    d = daemon_class(name=name)
    d.start()
    yield d
    rc = d.stop()
    assert rc == 0, f"the shared daemon exited {rc} on SIGTERM\n{d.stderr()}"
