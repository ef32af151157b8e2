"""Shared machinery of the codecell security suite.

Run with Debian's interpreter:  cd <repo> && /usr/bin/python3 -m pytest tests/security -q

* ``CODECELL_BIN``: the binary under test (default ``<repo>/build/codecell``).
* ``CI=true``: missing root / kernel features make tests FAIL instead of skip.

Every call of the binary is ``codecell run --json --data-dir D --output-dir O [flags] -c CODE`` with
a secret planted in codecell's own environment (``CODECELL_TEST_SECRET``); :func:`run` asserts that
the secret never comes back in any result.

Tests marked ``dangerous`` perform attacks that would harm the host if the code were NOT confined
(we run as root).  Before the first of them runs, a preflight execution must prove confinement
(uid != 0, Seccomp 2, NoNewPrivs 1, no capabilities, finite RLIMIT_NPROC); otherwise each dangerous
test fails with the preflight's findings and its attack is never started.
"""
import json
import os
import platform
import secrets
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # tests/, for support.harness
from support import harness  # noqa: E402
# re-exported for the test modules (`from .conftest import ...`)
from support.harness import (BIN, binary_path, descendants_in, host_cannot,  # noqa: E402,F401
                             in_ci, require, require_binary)

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent

SECRET_NAME = "CODECELL_TEST_SECRET"
SECRET = "ccsec-" + secrets.token_hex(16)
SLOT_UID_MIN = 900000
MAX_CHARS = 100_000
SIGSYS = int(signal.SIGSYS)


# --------------------------------------------------------------------------------------------
# root, architecture and temporary directories (tests/support/harness.py)
# --------------------------------------------------------------------------------------------
# the temporary directories are removed at the end of the session, passed or failed
SUITE = harness.Suite("security", tmp_prefix="codecell-sec-", keep_on_failure=False,
                      root_reason="codecell run needs root; this test process is not root")
require_root = SUITE.require_root
_base = SUITE.base_dir
new_dir = SUITE.new_dir


def require_x86_64() -> None:
    # A requirement, not an absent attack surface: on another architecture this suite could not
    # check that the sandbox confines anything, so under CI=true that must fail.
    require(platform.machine() == "x86_64",
            f"the syscall numbers and machine code in this suite are x86_64 ({platform.machine()})")


def new_data_dir() -> Path:
    """A codecell data dir holding a canary file the sandbox must never reach."""
    d = new_dir("data")
    (d / "canary.txt").write_text("canary-" + secrets.token_hex(12))
    return d


# --------------------------------------------------------------------------------------------
# running codecell
# --------------------------------------------------------------------------------------------
_RSS_WRAPPER = r"""
import os, resource, subprocess, sys
r = subprocess.run(sys.argv[2:])
with open(sys.argv[1], "w") as f:
    f.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
sys.exit(r.returncode if r.returncode >= 0 else 128 - r.returncode)
"""


class Result(dict):
    """The parsed JSON of one execution, plus what the host saw of it."""

    wall: float
    data_dir: Path
    output_dir: Path
    stderr: str
    maxrss_kb: int | None
    pid: int

    def describe(self) -> str:
        return (f"status={self.get('status')!r} return_code={self.get('return_code')!r} "
                f"wall={self.wall:.2f}s\n--- output (tail) ---\n{str(self.get('output'))[-2500:]}"
                f"\n--- error (tail) ---\n{str(self.get('error'))[-2500:]}")

    def payload(self, tag: str = "@@"):
        """The JSON object the user code printed on its last line starting with ``tag``."""
        lines = [l for l in str(self.get("output", "")).splitlines() if l.startswith(tag)]
        assert lines, f"the code printed no {tag!r} result line\n{self.describe()}"
        return json.loads(lines[-1][len(tag):])


class Handle:
    def __init__(self, proc, argv, guard, data_dir, output_dir, rss_file):
        self.proc, self.argv, self.guard = proc, argv, guard
        self.data_dir, self.output_dir, self.rss_file = data_dir, output_dir, rss_file
        self.t0 = time.monotonic()


def _flag_value(flags, name, default):
    flags = [str(f) for f in flags]
    for i, f in enumerate(flags):
        if f == name and i + 1 < len(flags):
            return float(flags[i + 1])
        if f.startswith(name + "="):
            return float(f.split("=", 1)[1])
    return default


def start(code, *flags, files=(), data_dir=None, output_dir=None, env=None,
          measure_rss=False) -> Handle:
    """Start ``codecell run --json`` in the background (see :func:`finish`)."""
    require_root()
    require_binary()
    data_dir = Path(data_dir) if data_dir else new_data_dir()
    output_dir = Path(output_dir) if output_dir else new_dir("out")
    argv = [str(BIN), "run", "--json", "--data-dir", str(data_dir), "--output-dir",
            str(output_dir)]
    for f in files:
        argv += ["--file", str(f)]
    argv += [str(f) for f in flags]
    argv += ["-c", code]
    rss_file = None
    if measure_rss:
        rss_file = new_dir("rss") / "maxrss"
        argv = [sys.executable, "-c", _RSS_WRAPPER, str(rss_file)] + argv
    guard = _flag_value(flags, "--timeout", 60) + 60
    full_env = dict(os.environ)
    full_env[SECRET_NAME] = SECRET
    full_env.update(env or {})
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=full_env, start_new_session=True)
    return Handle(proc, argv, guard, data_dir, output_dir, rss_file)


def finish(h: Handle) -> Result:
    """Wait for an execution started by :func:`start`; assert exit 0 and parse its JSON."""
    try:
        remaining = max(1.0, h.guard - (time.monotonic() - h.t0))
        out, err = h.proc.communicate(timeout=remaining)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(h.proc.pid, signal.SIGKILL)
        except OSError:
            pass
        out, err = h.proc.communicate()
        pytest.fail(f"codecell did not return within the {h.guard:.0f}s guard\n"
                    f"stderr: {err.decode(errors='replace')[-3000:]}", pytrace=False)
    wall = time.monotonic() - h.t0
    out_s, err_s = out.decode(errors="replace"), err.decode(errors="replace")
    assert h.proc.returncode == 0, (
        f"codecell exited {h.proc.returncode} (expected 0)\nstderr: {err_s[-3000:]}\n"
        f"stdout: {out_s[-3000:]}")
    try:
        parsed = json.loads(out_s)
    except ValueError as e:
        raise AssertionError(f"codecell --json printed no JSON object ({e}):\n{out_s[-3000:]}"
                             f"\nstderr: {err_s[-3000:]}") from None
    assert isinstance(parsed, dict) and "status" in parsed, f"unexpected JSON: {out_s[:2000]}"
    assert SECRET not in out_s, "the secret of codecell's own environment leaked into a result"
    res = Result(parsed)
    res.wall, res.data_dir, res.output_dir, res.stderr = wall, h.data_dir, h.output_dir, err_s
    res.pid = h.proc.pid
    res.maxrss_kb = None
    if h.rss_file is not None:
        res.maxrss_kb = int(h.rss_file.read_text())
    return res


def run(code, *flags, files=(), **kw) -> Result:
    """``codecell run --json --data-dir <tmp> --output-dir <tmp> [flags] -c code`` -> parsed JSON."""
    return finish(start(code, *flags, files=files, **kw))


# --------------------------------------------------------------------------------------------
# writing the user code
# --------------------------------------------------------------------------------------------
PRELUDE = r'''
import ctypes, errno, json, os, sys
def attempt(fn, *a, **k):
    """Call fn; {'ok': True, 'value': ...} or {'ok': False, 'exc', 'errno', 'msg'}."""
    try:
        r = fn(*a, **k)
        if not isinstance(r, (int, float, str, bool, list, type(None))):
            r = repr(r)[:300]
        elif isinstance(r, str):
            r = r[:300]
        return {"ok": True, "value": r}
    except BaseException as e:
        return {"ok": False, "exc": type(e).__name__, "errno": getattr(e, "errno", None),
                "msg": str(e)[:300]}
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def _arg(a):
    if isinstance(a, bool):
        return ctypes.c_long(int(a))
    if isinstance(a, int):
        return ctypes.c_long(a)
    if isinstance(a, bytes):
        return ctypes.c_char_p(a)
    if a is None:
        return ctypes.c_void_p(0)
    return a
def sc(nr, *args):
    """Raw syscall: {'ret': r, 'errno': e} (errno only meaningful when ret == -1)."""
    ctypes.set_errno(0)
    r = libc.syscall(ctypes.c_long(nr), *[_arg(a) for a in args])
    return {"ret": r, "errno": ctypes.get_errno() if r == -1 else 0}
def emit(obj, tag="@@"):
    print(tag + json.dumps(obj), flush=True)
'''


def prog(body: str, **params) -> str:
    """User code = ``P = {params}`` + the helper prelude + the dedented body."""
    return f"P = {params!r}\n" + PRELUDE + "\n" + textwrap.dedent(body)


def failed(attempt_result) -> bool:
    return isinstance(attempt_result, dict) and attempt_result.get("ok") is False


def succeeded(attempt_result) -> bool:
    return isinstance(attempt_result, dict) and attempt_result.get("ok") is True


# --------------------------------------------------------------------------------------------
# host-side observation
# --------------------------------------------------------------------------------------------
def host_sandbox_processes(min_uid: int = SLOT_UID_MIN):
    """Host processes with any uid >= min_uid: [(pid, uids, state, cmdline)]."""
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            status = Path(f"/proc/{d}/status").read_text()
        except OSError:
            continue
        fields = dict(l.split(":", 1) for l in status.splitlines() if ":" in l)
        uids = [int(u) for u in fields.get("Uid", "").split()]
        if any(u >= min_uid for u in uids):
            try:
                cmd = Path(f"/proc/{d}/cmdline").read_bytes().replace(b"\0", b" ").decode(
                    errors="replace")
            except OSError:
                cmd = "?"
            found.append((int(d), uids, fields.get("State", "").strip(), cmd))
    return found


def host_processes_matching(needle: str):
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{d}/cmdline").read_bytes().replace(b"\0", b" ").decode(
                errors="replace")
        except OSError:
            continue
        if needle in cmd:
            found.append((int(d), cmd))
    return found


def _ppid_uid_cmd(pid: int):
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        status = Path(f"/proc/{pid}/status").read_text()
        uid = int(next(l for l in status.splitlines() if l.startswith("Uid:")).split()[1])
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        return ppid, uid, cmd
    except (OSError, ValueError, StopIteration, IndexError):
        return None


# On the warm path (tests/warm/run_security_warm.py) executions run on children of a zygote that
# outlives them: its pid is given here, processes under it belong to executions (ours included),
# and it never excuses a leftover.
ZYGOTE_PID = int(os.environ.get("CODECELL_TEST_ZYGOTE_PID", "0") or 0)


def _under_live_codecell(pid: int) -> bool:
    """True when a root-owned codecell process (another, still running execution) is an ancestor."""
    seen = set()
    while pid > 1 and pid not in seen:
        seen.add(pid)
        info = _ppid_uid_cmd(pid)
        if info is None:
            return False
        ppid, uid, cmd = info
        if ZYGOTE_PID and pid == ZYGOTE_PID:
            return False
        if uid == 0 and b"codecell" in cmd and pid != os.getpid():
            return True
        pid = ppid
    return False


def host_descendants(root_pid: int):
    """Host pids whose ancestor chain contains root_pid (e.g. a running codecell).

    On the warm path an execution's processes descend from the zygote instead: its slot-uid
    descendants (the running execution's; idle children are root) are counted too."""
    if ZYGOTE_PID and root_pid != ZYGOTE_PID:
        warm = [p for p in host_descendants(ZYGOTE_PID)
                if (info := _ppid_uid_cmd(p)) is not None and info[1] >= SLOT_UID_MIN]
        return host_descendants_of(root_pid) + warm
    return host_descendants_of(root_pid)


def host_descendants_of(root_pid: int):
    parent = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            info = _ppid_uid_cmd(int(d))
            if info is not None:
                parent[int(d)] = info[0]
    return descendants_in(parent, root_pid)


def assert_no_sandbox_processes(grace: float = 1.0, needle: str | None = None):
    """No host process of a slot uid (>= 900000) remains (polling up to ``grace`` seconds).

    Processes that still hang below a running root-owned codecell belong to some other,
    concurrent execution (e.g. a developer running codecell at the same time) and are not
    counted; everything else -- orphans reparented away from their codecell -- is a leak.
    Our own codecell has exited when this is called, so none of its processes can be excused.
    """
    deadline = time.monotonic() + grace
    while True:
        left = [p for p in host_sandbox_processes() if not _under_live_codecell(p[0])]
        marked = host_processes_matching(needle) if needle else []
        if not left and not marked:
            return
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
    raise AssertionError(f"sandbox processes survived the execution: {left} {marked}")


def host_can_fork() -> bool:
    try:
        return subprocess.run(["/bin/true"], timeout=5).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


# --------------------------------------------------------------------------------------------
# preflight: is the code really confined?
# --------------------------------------------------------------------------------------------
PREFLIGHT_CODE = r'''
import json, os, resource, socket
st = {}
for line in open("/proc/self/status"):
    k, _, v = line.partition(":")
    st[k] = v.strip()
soft, hard = resource.getrlimit(resource.RLIMIT_NPROC)
print("@@" + json.dumps({"Uid": st.get("Uid"), "Gid": st.get("Gid"), "Seccomp": st.get("Seccomp"),
      "NoNewPrivs": st.get("NoNewPrivs"), "CapInh": st.get("CapInh"), "CapPrm": st.get("CapPrm"),
      "CapEff": st.get("CapEff"), "CapAmb": st.get("CapAmb"), "CapBnd": st.get("CapBnd"),
      "nproc": [soft, hard], "inf": resource.RLIM_INFINITY, "pid": os.getpid(),
      "hostname": socket.gethostname()}))
'''

_preflight = None


def preflight():
    """(ok, message, facts) of one confinement-proving execution; computed once per session."""
    global _preflight
    if _preflight is not None:
        return _preflight
    try:
        res = run(PREFLIGHT_CODE, "--timeout", "20")
        facts = res.payload()
    except BaseException as e:  # noqa: BLE001 - pytest outcomes included
        _preflight = (False, f"the preflight execution itself failed: {type(e).__name__}: {e}",
                      None)
        return _preflight
    problems = []
    uids = [int(x) for x in (facts.get("Uid") or "0").split()]
    if not uids or any(u == 0 for u in uids):
        problems.append(f"runs with uid 0 somewhere in Uid: {facts.get('Uid')!r}")
    if facts.get("Seccomp") != "2":
        problems.append(f"Seccomp is {facts.get('Seccomp')!r}, not '2' (filter)")
    if facts.get("NoNewPrivs") != "1":
        problems.append(f"NoNewPrivs is {facts.get('NoNewPrivs')!r}, not '1'")
    for cap in ("CapEff", "CapPrm", "CapInh", "CapAmb"):
        try:
            if int(facts.get(cap) or "x", 16) != 0:
                problems.append(f"{cap} is {facts.get(cap)} (must be all zero)")
        except ValueError:
            problems.append(f"{cap} unreadable: {facts.get(cap)!r}")
    soft, hard = facts.get("nproc") or [None, None]
    if soft in (None, facts.get("inf")) or hard in (None, facts.get("inf")):
        problems.append(f"RLIMIT_NPROC is not finite: {facts.get('nproc')}")
    if problems:
        _preflight = (False, "; ".join(problems) + f"\nfacts: {facts}", facts)
    else:
        _preflight = (True, f"confined: {facts}", facts)
    return _preflight


# --------------------------------------------------------------------------------------------
# pytest hooks and fixtures
# --------------------------------------------------------------------------------------------
def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "dangerous: a real attack that would harm the host if unconfined; runs only after the "
        "confinement preflight passed")


def pytest_report_header(config):
    return SUITE.report_header()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    if item.get_closest_marker("dangerous") is None:
        return
    require_root()
    ok, msg, _ = preflight()
    if not ok:
        pytest.fail("REFUSING to run a dangerous attack: the confinement preflight failed.\n" + msg,
                    pytrace=False)


def pytest_sessionfinish(session, exitstatus):
    SUITE.session_finish(exitstatus)


@pytest.fixture(autouse=True)
def _root_and_arch():
    require_root()
    require_x86_64()


@pytest.fixture
def tcp_listener():
    """A TCP listener on the HOST's 127.0.0.1; yields (socket, port)."""
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    srv.setblocking(False)
    yield srv, srv.getsockname()[1]
    srv.close()


@pytest.fixture
def udp_listener():
    srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    srv.bind(("127.0.0.1", 0))
    srv.setblocking(False)
    yield srv, srv.getsockname()[1]
    srv.close()


def assert_nothing_arrived_tcp(srv, wait: float = 0.5):
    import select
    r, _, _ = select.select([srv], [], [], wait)
    if r:
        try:
            conn, addr = srv.accept()
            conn.settimeout(0.5)
            try:
                data = conn.recv(100)
            except OSError:
                data = b""
            conn.close()
        except BlockingIOError:
            return
        raise AssertionError(f"the host listener received a connection from {addr}: {data!r}")


def assert_nothing_arrived_udp(srv, wait: float = 0.5):
    import select
    r, _, _ = select.select([srv], [], [], wait)
    if r:
        try:
            data, addr = srv.recvfrom(2048)
        except BlockingIOError:
            return
        raise AssertionError(f"the host UDP listener received {data!r} from {addr}")
