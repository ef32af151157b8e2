"""Shared machinery of the warm-interpreter suite (``codecell zygote`` and ``run --zygote``).

Run with Debian's interpreter:  cd <repo> && /usr/bin/python3 -m pytest tests/warm -q

* ``CODECELL_BIN``: the binary under test (default ``<repo>/build/codecell``).
* ``CI=true``: missing root / kernel features make tests FAIL instead of skip.

Each idle warm child is a PAIR of direct children of the zygote: an init (``codecell-init``, uid
65534, pid 1 of the child's pid namespace, its own empty mount namespace and own net/ipc/uts
namespaces) and the interpreter (a root fork of the zygote, pid 2 there, sharing the init's
net/ipc/uts namespaces); :func:`pool_layout` / :meth:`Zygote.wait_pool_full` check that layout.

One ``codecell zygote --pool 2`` (default preloads) is started per session (fixture ``zygote``)
on a socket under /run/codecell; :func:`run_warm` runs ``codecell run --json --zygote SOCKET``
with ``CODECELL_REQUIRE_WARM=1`` and asserts the result says ``"interpreter": "warm"``, so a
silent fallback to a cold interpreter can never pass a warm test.  :func:`run_cold` runs the same
code on the cold path (no zygote variables in the environment) for side-by-side comparisons.
"""
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # tests/, for support.harness
from support import harness  # noqa: E402
# re-exported for the test modules (`from .conftest import ...`)
from support.harness import (BIN, binary_path, close_logs, descendants_in,  # noqa: E402,F401
                             free_port, in_ci, read_tail, require, require_binary,
                             terminate)

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent

SLOT_UID_MIN = 900000
SOCKET_DIR = Path("/run/codecell")
READY_TIMEOUT = 60.0          # seconds for the zygote's ready line (it takes ~4 s)
DEFAULT_PRELOADS = ["numpy", "pandas", "matplotlib", "matplotlib.pyplot", "scipy.stats",
                    "seaborn"]
# what the service's "base" zygote preloads (its "full" one preloads interpreters.preload)
BASE_PRELOADS = ["json", "linecache", "threading", "traceback", "tokenize", "random", "math", "re",
                 "datetime", "collections", "itertools", "functools", "statistics", "decimal",
                 "fractions", "csv", "string", "textwrap", "pprint", "dataclasses"]
INIT_CMDLINE = "codecell-init"
NOBODY_UID = 65534
ZYGOTE_ENV = ("CODECELL_ZYGOTE_SOCKET", "CODECELL_REQUIRE_WARM", "CODECELL_WARM_INTERPRETERS",
              "CODECELL_ZYGOTE_POOL", "CODECELL_PRELOAD")


# --------------------------------------------------------------------------------------------
# root, temporary directories and sockets (tests/support/harness.py)
# --------------------------------------------------------------------------------------------
SUITE = harness.Suite("warm", tmp_prefix="codecell-warm-", kept="logs and data",
                      root_reason="codecell zygote / run need root; this test process is not root")
require_root = SUITE.require_root
base_dir = SUITE.base_dir
new_dir = SUITE.new_dir


def new_socket_path(tag: str = "warm") -> Path:
    """A fresh socket path under /run/codecell (short enough for sun_path)."""
    SOCKET_DIR.mkdir(parents=True, exist_ok=True)
    os.chmod(SOCKET_DIR, 0o700)
    p = SOCKET_DIR / f"t-{tag}-{os.getpid()}-{secrets.token_hex(3)}.sock"
    assert len(str(p).encode()) < 108, p
    return p


def clean_env(extra: dict | None = None) -> dict:
    """os.environ without any zygote-related variable, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in ZYGOTE_ENV}
    env.update(extra or {})
    return env


# --------------------------------------------------------------------------------------------
# /proc helpers
# --------------------------------------------------------------------------------------------
def proc_stat(pid: int):
    """(state, ppid) of a pid or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    rest = stat.rsplit(")", 1)[1].split()
    return rest[0], int(rest[1])


def proc_uids(pid: int):
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        line = next(l for l in status.splitlines() if l.startswith("Uid:"))
        return [int(u) for u in line.split()[1:]]
    except (OSError, StopIteration, ValueError):
        return None


def proc_cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(
            errors="replace").strip()
    except OSError:
        return "?"


def pid_alive(pid: int) -> bool:
    st = proc_stat(pid)
    return st is not None and st[0] not in ("Z", "X")


def all_pids():
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def children_of(pid: int):
    """Live (non-zombie) direct children of ``pid``."""
    out = []
    for p in all_pids():
        st = proc_stat(p)
        if st is not None and st[1] == pid and st[0] not in ("Z", "X"):
            out.append(p)
    return sorted(out)


def descendants_of(root: int):
    parent = {}
    for p in all_pids():
        st = proc_stat(p)
        if st is not None:
            parent[p] = st[1]
    return sorted(descendants_in(parent, root))


def threads_of(pid: int):
    return sorted(os.listdir(f"/proc/{pid}/task"))


def slot_processes(pids=None):
    """[(pid, uids, cmdline)] of processes with any uid >= SLOT_UID_MIN."""
    found = []
    for p in (all_pids() if pids is None else pids):
        uids = proc_uids(p)
        st = proc_stat(p)
        if uids and any(u >= SLOT_UID_MIN for u in uids) and st and st[0] not in ("Z", "X"):
            found.append((p, uids, proc_cmdline(p)))
    return found


def under_live_codecell(pid: int) -> bool:
    """True when a root-owned process whose command line names codecell is an ancestor."""
    seen = set()
    while pid > 1 and pid not in seen:
        seen.add(pid)
        st = proc_stat(pid)
        if st is None:
            return False
        uids = proc_uids(pid)
        if uids and uids[0] == 0 and "codecell" in proc_cmdline(pid) and pid != os.getpid():
            return True
        pid = st[1]
    return False


def proc_cmdline_raw(pid: int):
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None


def proc_ns(pid: int, kind: str):
    try:
        return os.readlink(f"/proc/{pid}/ns/{kind}")
    except OSError:
        return None


def proc_nspid(pid: int):
    """The NSpid line of /proc/PID/status as ints (host pid first, innermost last) or None."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("NSpid:"):
                return [int(x) for x in line.split()[1:]]
    except (OSError, ValueError):
        pass
    return None


def is_warm_init(pid: int) -> bool:
    return proc_cmdline_raw(pid) == INIT_CMDLINE.encode() + b"\0"


def pool_layout(zpid: int, pool: int):
    """(inits, interpreters, problems) of a zygote's live children, ``problems`` listing every
    way they differ from ``pool`` idle init + interpreter pairs (empty: the pool is full)."""
    kids = children_of(zpid)
    inits = [k for k in kids if is_warm_init(k)]
    interps = [k for k in kids if k not in inits]
    problems = []
    if len(inits) != pool or len(interps) != pool:
        problems.append(f"{len(inits)} inits and {len(interps)} interpreters, expected {pool} of "
                        f"each: " + ", ".join(f"{k} {proc_cmdline(k)!r}" for k in kids))
    zcmd = proc_cmdline_raw(zpid)
    zns = {n: proc_ns(zpid, n) for n in ("mnt", "net", "ipc", "uts", "pid")}
    init_by_pidns = {}
    for k in inits:
        uids = proc_uids(k)
        if uids != [NOBODY_UID] * 4:
            problems.append(f"init {k} runs as uids {uids}, not {NOBODY_UID}")
        nspid = proc_nspid(k)
        if not nspid or len(nspid) < 2 or nspid[-1] != 1:
            problems.append(f"init {k} is not pid 1 of its own pid namespace (NSpid {nspid})")
        for n in ("mnt", "net", "ipc", "uts", "pid"):
            ns = proc_ns(k, n)
            if ns is None or ns == zns[n]:
                problems.append(f"init {k} shares the zygote's {n} namespace ({ns})")
        init_by_pidns.setdefault(proc_ns(k, "pid"), []).append(k)
    paired = set()
    for k in interps:
        uids = proc_uids(k)
        if uids != [0] * 4:
            problems.append(f"idle interpreter {k} runs as uids {uids}, not root")
        if proc_cmdline_raw(k) != zcmd:
            problems.append(f"idle interpreter {k} has cmdline {proc_cmdline(k)!r}, not the "
                            f"zygote's {proc_cmdline(zpid)!r}")
        nspid = proc_nspid(k)
        if not nspid or len(nspid) < 2 or nspid[-1] != 2:
            problems.append(f"idle interpreter {k} is not pid 2 of its pid namespace "
                            f"(NSpid {nspid})")
        mates = init_by_pidns.get(proc_ns(k, "pid"), [])
        if len(mates) != 1:
            problems.append(f"idle interpreter {k} has {len(mates)} inits in its pid namespace "
                            f"({mates})")
            continue
        init = mates[0]
        if init in paired:
            problems.append(f"init {init} is shared by several interpreters")
        paired.add(init)
        for n in ("net", "ipc", "uts"):
            if proc_ns(k, n) != proc_ns(init, n):
                problems.append(f"idle interpreter {k} did not join its init {init}'s {n} "
                                f"namespace ({proc_ns(k, n)} vs {proc_ns(init, n)})")
    for k in inits:
        if k not in paired:
            problems.append(f"init {k} has no interpreter (left behind by an execution?)")
    return inits, interps, problems


def wait_until(pred, timeout: float, interval: float = 0.05):
    """Poll ``pred`` until it returns a truthy value or ``timeout`` passes; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(interval)


def stop_process(obj, timeout: float):
    """SIGTERM ``obj.proc``, SIGKILL after ``timeout`` s, close ``obj``'s log files; returns the
    exit code (None if it never started). Used by Zygote."""
    if obj.proc is None:
        return None
    terminate(obj.proc, timeout)
    close_logs(obj)
    return obj.proc.returncode


# --------------------------------------------------------------------------------------------
# the zygote
# --------------------------------------------------------------------------------------------
class Zygote:
    """A ``codecell zygote`` process; :meth:`start` waits for its ready line."""

    def __init__(self, pool: int = 2, preload: str | None = None, tag: str = "z",
                 env: dict | None = None, preexec_fn=None):
        self.env = env or {}
        self.preexec_fn = preexec_fn
        self.pool = pool
        self.preload = preload
        self.dir = new_dir("zygote")
        self.data_dir = self.dir / "data"
        self.socket = new_socket_path(tag)
        self.proc = None
        self.ready = None
        self.stderr_path = self.dir / "stderr.log"
        self.stdout_path = self.dir / "stdout.log"

    def command(self):
        cmd = [str(BIN), "zygote", "--socket", str(self.socket), "--data-dir",
               str(self.data_dir), "--pool", str(self.pool)]
        if self.preload is not None:
            cmd += ["--preload", self.preload]
        return cmd

    def stderr(self, limit: int = 6000) -> str:
        return read_tail(self.stderr_path, limit)

    def start(self, timeout: float = READY_TIMEOUT):
        require_root()
        require_binary()
        self._err = open(self.stderr_path, "wb")
        self._out = open(self.stdout_path, "wb")
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL,
                                     stdout=self._out, stderr=self._err,
                                     env=clean_env(self.env), start_new_session=True,
                                     preexec_fn=self.preexec_fn)
        self.ready = self._read_ready(timeout)
        return self

    def stdout(self) -> str:
        try:
            return self.stdout_path.read_text(errors="replace")
        except OSError:
            return ""

    def _read_ready(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while "\n" not in self.stdout():
            if self.proc.poll() is not None:
                pytest.fail(f"codecell zygote exited {self.proc.returncode} before its ready "
                            f"line (stdout {self.stdout()!r})\ncommand: {self.command()}\n"
                            f"stderr:\n{self.stderr()}", pytrace=False)
            if time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"codecell zygote printed no ready line within {timeout}s "
                            f"(stdout so far {self.stdout()!r})\ncommand: {self.command()}\n"
                            f"stderr:\n{self.stderr()}", pytrace=False)
            time.sleep(0.05)
        line = self.stdout().split("\n", 1)[0]
        try:
            obj = json.loads(line)
        except ValueError as e:
            self.kill()
            pytest.fail(f"the zygote's first stdout line is not JSON ({e}): {line!r}\n"
                        f"stderr:\n{self.stderr()}", pytrace=False)
        if not (isinstance(obj, dict) and obj.get("ready") is True):
            self.kill()
            pytest.fail(f"the zygote's first line is not a ready line: {obj}\n"
                        f"stderr:\n{self.stderr()}", pytrace=False)
        return obj

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def idle_children(self):
        return children_of(self.pid)

    def wait_pool_full(self, timeout: float = 10.0):
        """Wait until exactly ``pool`` idle init + interpreter pairs (and nothing else) hang
        below the zygote; asserts so and returns (inits, interpreters)."""
        return wait_pool_full(self.pid, self.pool, timeout)

    def stop(self, timeout: float = 10.0):
        code = stop_process(self, timeout)
        self._unlink_socket()
        return code

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        close_logs(self)
        self._unlink_socket()

    def _unlink_socket(self):
        try:
            self.socket.unlink()
        except OSError:
            pass


def wait_pool_full(zpid: int, pool: int, timeout: float = 10.0):
    """Wait for :func:`pool_layout` to report no problem; asserts it and returns
    (inits, interpreters)."""
    layout = wait_until(lambda: (lambda l: l if not l[2] else None)(pool_layout(zpid, pool)),
                        timeout) or pool_layout(zpid, pool)
    inits, interps, problems = layout
    assert not problems, f"zygote {zpid}, pool {pool}: the idle pool is not {pool} init + " \
                         f"interpreter pairs after {timeout}s:\n  " + "\n  ".join(problems)
    return inits, interps


# --------------------------------------------------------------------------------------------
# running codecell
# --------------------------------------------------------------------------------------------
class Result(dict):
    argv: list
    stderr: str
    output_dir: Path
    exit_code: int

    def describe(self) -> str:
        return (f"interpreter={self.get('interpreter')!r} status={self.get('status')!r} "
                f"return_code={self.get('return_code')!r}\n--- output (tail) ---\n"
                f"{str(self.get('output'))[-2500:]}\n--- error (tail) ---\n"
                f"{str(self.get('error'))[-2500:]}\n--- codecell stderr (tail) ---\n"
                f"{self.stderr[-1500:]}")

    def payload(self, tag: str = "@@"):
        lines = [l for l in str(self.get("output", "")).splitlines() if l.startswith(tag)]
        assert lines, f"the code printed no {tag!r} line\n{self.describe()}"
        return json.loads(lines[-1][len(tag):])


def invoke(code, *flags, env=None, data_dir=None, output_dir=None, files=(), guard=None,
           preexec_fn=None):
    """``codecell run --json ...`` -> (exit code, stdout, stderr, output_dir)."""
    require_root()
    require_binary()
    data_dir = Path(data_dir) if data_dir else new_dir("data")
    output_dir = Path(output_dir) if output_dir else new_dir("out")
    argv = [str(BIN), "run", "--json", "--data-dir", str(data_dir), "--output-dir",
            str(output_dir)]
    for f in files:
        argv += ["--file", str(f)]
    argv += [str(f) for f in flags] + ["-c", code]
    if guard is None:
        guard = 120
        fl = [str(f) for f in flags]
        if "--timeout" in fl:
            guard = float(fl[fl.index("--timeout") + 1]) + 60
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, start_new_session=True,
                            preexec_fn=preexec_fn)
    try:
        out, err = proc.communicate(timeout=guard)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"codecell run did not return within {guard}s\nargv: {argv}\n"
                    f"stderr: {err.decode(errors='replace')[-3000:]}", pytrace=False)
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace"), \
        output_dir, argv


def _parse(rc, out, err, output_dir, argv) -> Result:
    assert rc == 0, f"codecell run exited {rc} (expected 0)\nstdout: {out[-3000:]}\n" \
                    f"stderr: {err[-3000:]}"
    try:
        obj = json.loads(out)
    except ValueError as e:
        raise AssertionError(f"codecell run --json printed no JSON ({e}): {out[-3000:]}\n"
                             f"stderr: {err[-3000:]}") from None
    assert isinstance(obj, dict) and "status" in obj, f"unexpected JSON: {out[:2000]}"
    res = Result(obj)
    res.argv, res.stderr, res.output_dir, res.exit_code = argv, err, output_dir, rc
    return res


def run_warm(zyg, code, *flags, via_env=False, **kw) -> Result:
    """Run on the warm path (REQUIRE_WARM=1); asserts exit 0 and ``interpreter == "warm"``."""
    extra = {"CODECELL_REQUIRE_WARM": "1"}
    if via_env:
        extra["CODECELL_ZYGOTE_SOCKET"] = str(zyg.socket)
    else:
        flags = ("--zygote", str(zyg.socket)) + tuple(flags)
    res = _parse(*invoke(code, *flags, env=clean_env(extra), **kw))
    assert res.get("interpreter") == "warm", \
        f"expected a warm interpreter, got {res.get('interpreter')!r}\n{res.describe()}"
    return res


def run_cold(code, *flags, **kw) -> Result:
    """Run with no zygote variables at all; asserts ``interpreter == "cold"``."""
    res = _parse(*invoke(code, *flags, env=clean_env(), **kw))
    assert res.get("interpreter") == "cold", \
        f"expected a cold interpreter, got {res.get('interpreter')!r}\n{res.describe()}"
    return res


# --------------------------------------------------------------------------------------------
# a minimal ``codecell serve`` (tests/support/harness.py)
# --------------------------------------------------------------------------------------------
class Daemon(harness.Daemon):
    """harness.Daemon with an optional TOML config text; :meth:`request` returns
    (status, parsed JSON or the raw body)."""

    suite = SUITE
    READY_TIMEOUT = 20.0
    STOP_TIMEOUT = 15.0

    def __init__(self, env: dict | None = None, config_toml: str | None = None,
                 name: str = "daemon"):
        super().__init__(env=env, config_toml=config_toml, name=name)

    def request(self, method, path, payload=None, timeout=120):
        headers = {}
        body = None
        if payload is not None:
            body = json.dumps(payload).encode()
            headers["Content-Type"] = "application/json"
        r = self.send(method, path, body, headers, timeout)
        try:
            return r.status, json.loads(r.body) if r.body else None
        except ValueError:
            return r.status, r.body

    def status(self) -> dict:
        code, obj = self.request("GET", "/v1/status", timeout=10)
        assert code == 200 and isinstance(obj, dict), f"GET /v1/status: {code} {obj!r}"
        assert isinstance(obj.get("interpreters"), dict), \
            f"/v1/status has no 'interpreters' object: {obj}"
        return obj

    def interpreters(self) -> dict:
        return self.status()["interpreters"]

    def wait_mode(self, mode: str, timeout: float = 60.0, pred=None) -> dict:
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            it = self.interpreters()
            if it.get("mode") == mode and (pred is None or pred(it)):
                return it
            if not seen or seen[-1] != it:
                seen.append(it)
            if time.monotonic() > deadline:
                pytest.fail(f"/v1/status interpreters.mode did not become {mode!r} within "
                            f"{timeout}s; states seen: {seen[-5:]}\nstderr:\n{self.stderr()}",
                            pytrace=False)
            time.sleep(0.2)

    def execute(self, code, user="warm-user", **fields) -> dict:
        code_, obj = self.request("POST", "/v1/executions",
                                  {"user_id": user, "code": code, **fields})
        assert code_ == 200 and isinstance(obj, dict), f"POST /v1/executions: {code_} {obj!r}"
        return obj


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
def zygote():
    """One ``codecell zygote --pool 2`` with the default preloads for the whole session."""
    require_root()
    z = Zygote(pool=2, tag="suite")
    z.start()
    yield z
    alive = z.alive()
    pid = z.pid
    rc = z.stop()
    assert alive, f"the session zygote died during the suite (exit {rc})\n{z.stderr()}"
    # after SIGTERM, nothing of it may remain
    left = wait_until(lambda: not descendants_of(pid) and not pid_alive(pid), 5)
    assert left, f"processes of the zygote {pid} survived its SIGTERM: {descendants_of(pid)}"


@pytest.fixture
def daemons():
    made = []

    def make(**kw):
        d = Daemon(**kw)
        made.append(d)
        d.start()
        return d

    yield make
    for d in made:
        d.stop()


# --------------------------------------------------------------------------------------------
# looking for a secret in the user code's own address space
# --------------------------------------------------------------------------------------------
def memory_scan_code(secret: str) -> str:
    """User code that reports where ``secret`` occurs in its environment and readable anonymous
    / stack / heap memory (the zygote's original environment block would be there).  The code
    never holds the secret in plain form except in one bytes object, whose address is excluded."""
    reversed_hex = secret.encode()[::-1].hex()
    return f'''
import ctypes, json, os
needle = bytes(reversed(bytes.fromhex({reversed_hex!r})))
own = ctypes.cast(ctypes.c_char_p(needle), ctypes.c_void_p).value
hits = []
for line in open("/proc/self/maps"):
    f = line.split()
    if "r" not in f[1] or (len(f) >= 6 and f[5] not in ("[stack]", "[heap]")):
        continue
    a, b = (int(x, 16) for x in f[0].split("-"))
    if b - a > (512 << 20):
        continue
    data = ctypes.string_at(a, b - a)
    i = data.find(needle)
    while i >= 0:
        if a + i != own:
            hits.append([line.strip(), data[max(0, i - 48):i].decode("latin-1")])
        i = data.find(needle, i + 1)
env_hits = [k for k, v in os.environ.items() if needle.decode() in v or needle.decode() in k]
for path in ("/proc/self/environ", "/proc/self/cmdline"):
    try:
        with open(path, "rb") as f:
            if needle in f.read():
                env_hits.append(path)
    except OSError:
        pass
print("@@" + json.dumps({{"memory": hits[:5], "environ": env_hits}}))
'''
