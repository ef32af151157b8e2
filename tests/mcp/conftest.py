"""Machinery of the MCP suite: codecell's MCP server over stdio (``codecell mcp``) and Streamable
HTTP (``/mcp`` on ``codecell serve``), driven raw from Python and by the official TypeScript SDK's
client (``sdk_client.mjs``).

    cd <repo> && CODECELL_BIN=build/codecell /usr/bin/python3 -m pytest tests/mcp -q

* ``CODECELL_BIN``: the binary under test (default ``<repo>/build/codecell``).
* ``CI=true``: a missing prerequisite (root, node, the SDK in ``<build>/mcp-client``) makes the
  tests FAIL instead of skip.

The SDK (pinned by tests/mcp/package-lock.json) is installed by scripts/build.sh into
``<build dir>/mcp-client/node_modules``; ``sdk_client.mjs`` is copied next to it before it runs
(ESM resolves packages relative to the script). Only the standard library speaks HTTP here.
"""
import base64
import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import NamedTuple

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # tests/, for support.harness
from support import harness  # noqa: E402
# re-exported for the test modules (`from .conftest import ...`)
from support.harness import (BIN, DEFAULT, binary_path, env_without_codecell,  # noqa: E402,F401
                             free_port, in_ci, missing as _missing, multipart, new_user, q,
                             read_tail, to_toml, toml_value)

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
SDK_SCRIPT = HERE / "sdk_client.mjs"

READY_TIMEOUT = 20.0      # seconds for GET /healthz to answer after start
STOP_TIMEOUT = 10.0       # SIGTERM, then SIGKILL after this long
RPC_TIMEOUT = 60.0        # one MCP request (the first execution starts warm interpreters)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
LATEST = "2025-11-25"
SUPPORTED = ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"]
TOOL_NAMES = {"execute_python_code", "analyze_data_file", "list_files", "delete_file",
              "upload_file"}
# JSON-RPC / MCP error codes
PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS = -32700, -32600, -32601, -32602
RESOURCE_NOT_FOUND = -32002


# --------------------------------------------------------------------------------------------
# prerequisites and temporary directories (tests/support/harness.py)
# --------------------------------------------------------------------------------------------
BUILD_DIR = BIN.parent
CLIENT_DIR = BUILD_DIR / "mcp-client"
SDK_DIR = CLIENT_DIR / "node_modules" / "@modelcontextprotocol" / "sdk"

SUITE = harness.Suite("MCP", tmp_prefix="codecell-mcp-",
                      root_reason="codecell runs executions in the sandbox, which needs root; "
                                  "this process is not root")
require_root = SUITE.require_root
base_dir = SUITE.base_dir
new_dir = SUITE.new_dir


def node_path():
    return shutil.which("node")


def require_sdk() -> None:
    if node_path() is None:
        _missing("node is not installed (run scripts/build.sh)")
    if not SDK_DIR.is_dir():
        _missing(f"the MCP TypeScript SDK is not installed in {CLIENT_DIR}/node_modules "
                 "(run scripts/build.sh)")


def short(obj, limit=3000) -> str:
    text = obj if isinstance(obj, str) else json.dumps(obj, indent=1, default=repr)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"


# --------------------------------------------------------------------------------------------
# MCP results
# --------------------------------------------------------------------------------------------
def rpc_result(msg: dict) -> dict:
    """The `result` of a JSON-RPC response, failing with the whole message otherwise."""
    assert isinstance(msg, dict) and msg.get("jsonrpc") == "2.0", f"not JSON-RPC 2.0: {short(msg)}"
    assert "error" not in msg and isinstance(msg.get("result"), dict), \
        f"expected a result: {short(msg)}"
    return msg["result"]


def rpc_error(msg: dict, code: int) -> dict:
    assert isinstance(msg, dict) and msg.get("jsonrpc") == "2.0", f"not JSON-RPC 2.0: {short(msg)}"
    err = msg.get("error")
    assert isinstance(err, dict) and "result" not in msg, \
        f"expected JSON-RPC error {code}, got: {short(msg)}"
    assert err.get("code") == code, f"expected JSON-RPC error {code}, got: {short(msg)}"
    assert isinstance(err.get("message"), str) and err["message"], f"no message: {short(msg)}"
    return err


def items(result: dict, kind: str) -> list:
    content = result.get("content")
    assert isinstance(content, list), f"tool result without content: {short(result)}"
    return [c for c in content if isinstance(c, dict) and c.get("type") == kind]


def text_of(result: dict) -> str:
    content = result.get("content")
    assert isinstance(content, list) and content, f"tool result without content: {short(result)}"
    first = content[0]
    assert first.get("type") == "text" and isinstance(first.get("text"), str), \
        f"content[0] is not text: {short(result)}"
    return first["text"]


def assert_tool_ok(result: dict) -> str:
    text = text_of(result)
    assert result.get("isError") in (None, False), f"tool call failed: {short(result)}"
    return text


def assert_tool_error(result: dict) -> str:
    text = text_of(result)
    assert result.get("isError") is True, f"expected isError true: {short(result)}"
    return text


def image_bytes(item: dict) -> bytes:
    assert isinstance(item.get("data"), str), item
    return base64.b64decode(item["data"], validate=True)


# --------------------------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------------------------
class Resp(NamedTuple):
    status: int
    headers: dict          # lower-case names
    body: bytes
    events: list           # SSE: [(seconds since the request was sent, parsed JSON)]

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError as e:
            raise AssertionError(f"HTTP {self.status}: body is not JSON ({e}): {self!r}")

    @property
    def sse(self) -> bool:
        return self.headers.get("content-type", "").startswith("text/event-stream")

    def messages(self) -> list:
        """The JSON-RPC messages of the answer (one for JSON, every event for SSE)."""
        if self.sse:
            return [m for _, m in self.events]
        obj = self.json()
        return obj if isinstance(obj, list) else [obj]

    def response(self, rid=None) -> dict:
        """The JSON-RPC response (the message with an id and a result or an error)."""
        resps = [m for m in self.messages() if isinstance(m, dict)
                 and ("result" in m or "error" in m) and (rid is None or m.get("id") == rid)]
        assert len(resps) == 1, f"expected one JSON-RPC response (id {rid}) in {self!r}"
        return resps[0]

    def __repr__(self):
        return (f"<HTTP {self.status} {self.headers.get('content-type')} "
                f"mcp-session-id={self.headers.get('mcp-session-id')} {self.body[:1500]!r}>")


def _read_sse(r, t0):
    """Reads an SSE stream line by line; returns (raw body, [(t, JSON of each data event)])."""
    raw = []
    events = []
    data = []
    while True:
        line = r.readline()
        if not line:
            break
        raw.append(line)
        s = line.decode("utf-8", "replace").rstrip("\r\n")
        if s == "":
            if data:
                payload = "\n".join(data)
                try:
                    events.append((time.monotonic() - t0, json.loads(payload)))
                except ValueError:
                    events.append((time.monotonic() - t0, {"_not_json": payload}))
                data = []
        elif s.startswith("data:"):
            data.append(s[5:].lstrip(" ") if s.startswith("data: ") else s[5:])
    if data:
        events.append((time.monotonic() - t0, json.loads("\n".join(data))))
    return b"".join(raw), events


class Daemon(harness.Daemon):
    """harness.Daemon whose API key is the config's first ``api_keys`` entry and whose answers
    are :class:`Resp` with the events of an SSE stream."""

    suite = SUITE
    READY_TIMEOUT = READY_TIMEOUT
    STOP_TIMEOUT = STOP_TIMEOUT
    HTTP_TIMEOUT = RPC_TIMEOUT

    def __init__(self, name="daemon", config: dict | None = None, env: dict | None = None):
        api_key = config["api_keys"][0] if config and config.get("api_keys") else None
        super().__init__(config=config, env=env, api_key=api_key, name=name)

    # -- HTTP -----------------------------------------------------------------------------------
    def request(self, method, path, body=None, headers=None, timeout=RPC_TIMEOUT,
                auth=True) -> Resp:
        return super().request(method, path, body, headers, key=DEFAULT if auth else None,
                               timeout=timeout)

    def response(self, r, t0) -> Resp:
        hdrs = {k.lower(): v for k, v in r.getheaders()}
        if hdrs.get("content-type", "").startswith("text/event-stream"):
            data, events = _read_sse(r, t0)
        else:
            data, events = r.read(), []
        return Resp(r.status, hdrs, data, events)

    # -- REST, for cross-checks -----------------------------------------------------------------
    def upload(self, user, name, data: bytes, ctype="application/octet-stream") -> dict:
        body, ct = multipart([("user_id", user)], [("file", name, data, ctype)])
        r = self.request("POST", "/v1/files", body=body, headers={"Content-Type": ct})
        assert r.status == 201, f"REST upload of {name!r} for {user}: {r!r}"
        return r.json()

    def list_files(self, user) -> list:
        r = self.request("GET", "/v1/files" + q(user_id=user))
        assert r.status == 200, r
        return r.json()["files"]

    # -- MCP ------------------------------------------------------------------------------------
    def mcp(self, user=None, via="query", **kw) -> "HttpMcp":
        return HttpMcp(self, user=user, via=via, **kw)


MCP_HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


class HttpMcp:
    """One Streamable HTTP MCP session, spoken raw. `via`: how the user is named at initialize
    ("query": ?user_id=, "header": X-Codecell-User-Id, None: not at all)."""

    def __init__(self, daemon: Daemon, user=None, via="query", protocol=LATEST, init=True,
                 headers=None):
        self.d = daemon
        self.user = user
        self.via = via
        self.protocol = protocol
        self.session_id = None
        self.init_result = None
        self.extra = dict(headers or {})
        self._id = 0
        if init:
            self.initialize()

    def next_id(self) -> int:
        self._id += 1
        return self._id

    def path(self, user=None) -> str:
        user = user if user is not None else (self.user if self.via == "query" else None)
        return "/mcp" + (q(user_id=user) if user is not None else "")

    def headers(self, session=True, protocol=True, extra=None) -> dict:
        h = dict(MCP_HEADERS)
        if self.via == "header" and self.user is not None:
            h["X-Codecell-User-Id"] = self.user
        if session and self.session_id:
            h["Mcp-Session-Id"] = self.session_id
        if protocol and self.session_id and self.init_result:
            h["MCP-Protocol-Version"] = self.init_result["protocolVersion"]
        h.update(self.extra)
        h.update(extra or {})
        return {k: v for k, v in h.items() if v is not None}

    def initialize(self, protocol=None) -> Resp:
        msg = {"jsonrpc": "2.0", "id": self.next_id(), "method": "initialize",
               "params": {"protocolVersion": protocol or self.protocol, "capabilities": {},
                          "clientInfo": {"name": "codecell-tests", "version": "0"}}}
        r = self.d.request("POST", self.path(), msg, headers=self.headers(session=False))
        assert r.status == 200, f"initialize: {r!r}\n{self.d.stderr(2000)}"
        self.session_id = r.headers.get("mcp-session-id")
        assert self.session_id, f"initialize without an Mcp-Session-Id header: {r!r}"
        self.init_result = rpc_result(r.response(msg["id"]))
        n = self.post({"jsonrpc": "2.0", "method": "notifications/initialized"})
        assert n.status == 202, f"notifications/initialized: {n!r}"
        self.init_resp = r
        return r

    def post(self, msg, path=None, extra=None, timeout=RPC_TIMEOUT, **kw) -> Resp:
        return self.d.request("POST", path or self.path(), msg,
                              headers=self.headers(extra=extra, **kw),
                              timeout=timeout)

    def raw_rpc(self, method, params=None, **kw) -> Resp:
        msg = {"jsonrpc": "2.0", "id": self.next_id(), "method": method}
        if params is not None:
            msg["params"] = params
        return self.post(msg, **kw)

    def rpc(self, method, params=None, **kw) -> dict:
        """The JSON-RPC response message (result or error) of a request in this session."""
        r = self.raw_rpc(method, params, **kw)
        assert r.status == 200, f"{method}: {r!r}"
        return r.response()

    def call(self, name, arguments=None, **kw) -> dict:
        return rpc_result(self.rpc("tools/call", {"name": name, "arguments": arguments or {}},
                                   **kw))

    def delete(self) -> Resp:
        return self.d.request("DELETE", self.path(), headers=self.headers())


# --------------------------------------------------------------------------------------------
# stdio
# --------------------------------------------------------------------------------------------
class StdioMcp:
    """``codecell mcp`` with pipes: newline-delimited JSON-RPC on stdin/stdout."""

    def __init__(self, data_dir: Path, user=None, env=None, extra_args=(), protocol=LATEST,
                 init=True, name="stdio"):
        self.dir = new_dir(name)
        self.data_dir = Path(data_dir)
        self.protocol = protocol
        self.cmd = [str(BIN), "mcp", "--data-dir", str(self.data_dir)]
        if user is not None:
            self.cmd += ["--user", user]
        self.cmd += list(extra_args)
        environ = env_without_codecell(env)
        assert BIN.exists(), f"no codecell binary at {BIN} (set CODECELL_BIN)"
        self.stderr_path = self.dir / "stderr.log"
        self._err = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._err, env=environ)
        self.lines = queue.Queue()
        self.bad_lines = []            # stdout lines that are not JSON (protocol violations)
        self.all = []                  # every message received
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._id = 0
        self.init_result = None
        if init:
            self.initialize()

    def _read(self):
        for line in self.proc.stdout:
            t = time.monotonic()
            try:
                msg = json.loads(line)
            except ValueError:
                self.bad_lines.append(line)
                continue
            self.all.append(msg)
            self.lines.put((t, msg))
        self.lines.put((time.monotonic(), None))

    def stderr(self, limit=4000) -> str:
        return read_tail(self.stderr_path, limit)

    def next_id(self) -> int:
        self._id += 1
        return self._id

    def send_raw(self, data: bytes):
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def send(self, msg: dict):
        self.send_raw(json.dumps(msg).encode() + b"\n")

    def recv(self, timeout=RPC_TIMEOUT):
        """The next message, as (time received, message); message None on EOF."""
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no message from codecell mcp within {timeout}s; "
                                 f"alive={self.proc.poll() is None}\nstderr:\n{self.stderr()}")

    def wait_response(self, rid, timeout=RPC_TIMEOUT):
        """Messages up to the response with this id: (response, [(t, notification)...])."""
        deadline = time.monotonic() + timeout
        others = []
        while True:
            t, msg = self.recv(max(0.1, deadline - time.monotonic()))
            assert msg is not None, \
                f"codecell mcp closed stdout before answering id {rid!r} (exit " \
                f"{self.proc.poll()})\nstderr:\n{self.stderr()}"
            if ("result" in msg or "error" in msg) and msg.get("id") == rid:
                return msg, others
            others.append((t, msg))

    def rpc_full(self, method, params=None, timeout=RPC_TIMEOUT):
        msg = {"jsonrpc": "2.0", "id": self.next_id(), "method": method}
        if params is not None:
            msg["params"] = params
        self.send(msg)
        return self.wait_response(msg["id"], timeout)

    def rpc(self, method, params=None, timeout=RPC_TIMEOUT) -> dict:
        return self.rpc_full(method, params, timeout)[0]

    def call(self, name, arguments=None, **kw) -> dict:
        return rpc_result(self.rpc("tools/call", {"name": name, "arguments": arguments or {}},
                                   **kw))

    def initialize(self, protocol=None):
        resp = self.rpc("initialize", {"protocolVersion": protocol or self.protocol,
                                       "capabilities": {},
                                       "clientInfo": {"name": "codecell-tests", "version": "0"}})
        self.init_result = rpc_result(resp)
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return self.init_result

    def close(self, timeout=30) -> int:
        """Closes stdin (EOF) and waits; returns the exit code (None if it had to be killed)."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            rc = None
        self._reader.join(5)
        self._err.close()
        return rc

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if not self._err.closed:
            self._err.close()


# --------------------------------------------------------------------------------------------
# the SDK client
# --------------------------------------------------------------------------------------------
def run_sdk(target: list, scenario: str, data: dict | None = None, headers: dict | None = None,
            timeout=240) -> dict:
    """Runs sdk_client.mjs (copied into <build>/mcp-client) and returns its JSON report.
    `target`: ["--http", url] or ["--stdio", "--", cmd...]."""
    require_sdk()
    dest = CLIENT_DIR / "sdk_client.mjs"
    src = SDK_SCRIPT.read_bytes()
    if not dest.exists() or dest.read_bytes() != src:
        tmp = CLIENT_DIR / f".sdk_client.{os.getpid()}.tmp"
        tmp.write_bytes(src)
        os.replace(tmp, dest)
    args = [node_path(), str(dest), "--scenario", scenario]
    if data is not None:
        args += ["--data", json.dumps(data)]
    for k, v in (headers or {}).items():
        args += ["--header", f"{k}={v}"]
    args += target
    env = env_without_codecell()
    try:
        p = subprocess.run(args, capture_output=True, timeout=timeout, cwd=CLIENT_DIR, env=env)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"sdk_client.mjs {scenario} did not finish within {timeout}s\n"
                             f"stdout: {e.stdout!r}\nstderr: {e.stderr!r}")
    out = p.stdout.decode(errors="replace").strip().splitlines()
    try:
        report = json.loads(out[-1])
    except (IndexError, ValueError):
        raise AssertionError(f"sdk_client.mjs {scenario} exited {p.returncode} without a JSON "
                             f"report\nstdout: {p.stdout[-3000:]!r}\nstderr: "
                             f"{p.stderr[-3000:]!r}")
    report["_exit"] = p.returncode
    report["_stderr"] = p.stderr.decode(errors="replace")[-4000:]
    return report


# --------------------------------------------------------------------------------------------
# pytest hooks and fixtures
# --------------------------------------------------------------------------------------------
def pytest_report_header(config):
    return SUITE.report_header(f"; node: {node_path()}; SDK: {SDK_DIR} "
                               f"(exists: {SDK_DIR.is_dir()})")


def pytest_sessionfinish(session, exitstatus):
    SUITE.session_finish(exitstatus)


@pytest.fixture(autouse=True)
def _requirements():
    require_root()


@pytest.fixture
def user():
    return new_user()


def start_daemon(name, config=None, env=None) -> Daemon:
    require_root()
    return Daemon(name=name, config=config, env=env).start()


def running_daemon(name, config=None):
    """Body of a module fixture (``yield from running_daemon("http")``): a started daemon, which
    must exit 0 on SIGTERM at the end."""
    daemon = start_daemon(name, config=config)
    yield daemon
    rc = daemon.stop()
    assert rc == 0, f"the daemon exited {rc} on SIGTERM\n{daemon.stderr()}"
