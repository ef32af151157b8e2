"""The `codecell serve` daemons the benchmarks (bench/executions.py, bench/packages.py) start and
drive, and what a benchmark run does around them.

ServeDaemon: its own directory (config, log, data dir), a free loopback port, spawning it in its
own session (Ctrl-C reaches the benchmark only, which stops its daemons in order) with
PR_SET_PDEATHSIG = SIGTERM (it does not outlive a benchmark that is killed), waiting until it is
healthy and then ready (a condition on /v1/status's "interpreters" that each benchmark gives),
plain HTTP requests (one new loopback connection each), stopping it with SIGTERM then SIGKILL.
Around it: SIGTERM as the exception Interrupted, the message and exit status after an interruption,
stopping every daemon on the way out, the closing lines of a report (failures, load average), and
the statistics and number formats the reports share (percentile, median, ms, fmt_ms, fmt_x).
Only the standard library; the benchmarks import it from their own directory (python3 puts the
directory of the script it runs first on sys.path).
"""
import ctypes
import http.client
import json
import signal
import socket
import statistics
import subprocess
import sys
import time

WARM_WAIT_S = 120  # from spawning the daemon to ready()
HEALTHY_WAIT_S = 30  # from spawning the daemon to GET /healthz = 200
# Every benchmark request uses one user id, so the per-user limit is raised with the queue: no
# request is refused with 429. A short grace period keeps stopping quick.
BASE_CONFIG = ("[executions]\nqueue = 256\nper_user = 256\n"
               "[shutdown]\ngrace_seconds = 2\n")


class Interrupted(Exception):
    """Ctrl-C's counterpart for SIGTERM (see on_sigterm), or raised by a benchmark's workers once
    it is stopping."""


def on_sigterm(signum, frame):
    """signal.signal(signal.SIGTERM, on_sigterm): SIGTERM raises Interrupted in the main thread, so
    the benchmark's finally stops its daemons and removes its temp dir."""
    raise Interrupted(f"signal {signum}")


def interrupted(e):
    """Says on stderr that the benchmark was interrupted (by e: Ctrl-C or SIGTERM); its exit
    status."""
    print(f"\ninterrupted ({e or 'Ctrl-C'}): cleaning up", file=sys.stderr)
    return 130


def stop_all(daemons):
    """Stops every daemon, even when stopping one of them fails (said on stderr)."""
    for d in daemons:
        try:
            d.stop()
        except Exception as e:  # noqa: BLE001 - keep stopping the others
            print(f"stopping {d.name}: {e}", file=sys.stderr)


def print_failures_and_load(failures, meta, note):
    """The end of a benchmark's report: its failures, if any, then the 1-minute load average
    before and after the runs (meta["load_before"], meta["load_after"]) with note on reading it."""
    if failures:
        print()
        print("failures:")
        for f in failures:
            print("  " + f)
    print(f"\nload average (1 min): {meta['load_before']:.2f} before the runs, "
          f"{meta['load_after']:.2f} after ({note})")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServeDaemon:
    """`codecell serve --config <dir>/bench.toml --listen 127.0.0.1:<free port>
    --data-dir <dir>/data`, its output in <dir>/serve.log, where <dir> = parent / name (created
    here). name labels it in messages. ready(interpreters) says when wait_ready() is done, given
    /v1/status's "interpreters"; not_ready says what was awaited, for the timeout's message."""

    HTTP_TIMEOUT = 120  # the default timeout of request()
    STATUS_TIMEOUT = 5

    def __init__(self, parent, name, binary, env, ready, not_ready, extra_config=""):
        self.name, self.binary, self.env = name, binary, env
        self.ready, self.not_ready = ready, not_ready
        self.root = parent / name
        self.root.mkdir()
        self.data_dir = self.root / "data"
        self.port = free_port()
        self.config = self.root / "bench.toml"
        self.config.write_text(BASE_CONFIG + extra_config)
        self.log_path = self.root / "serve.log"
        self.log = None
        self.proc = None
        self.started = None
        self.ready_s = None  # from spawning the daemon to ready()
        self.status_at_start = {}  # /v1/status once ready()

    def spawn(self):
        libc = ctypes.CDLL(None, use_errno=True)

        def die_with_us():  # PR_SET_PDEATHSIG = 1: the daemon gets SIGTERM if we are killed
            libc.prctl(1, signal.SIGTERM, 0, 0, 0)

        self.log = open(self.log_path, "wb")
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [self.binary, "serve", "--config", str(self.config),
             "--listen", f"127.0.0.1:{self.port}", "--data-dir", str(self.data_dir)],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log, env=self.env,
            start_new_session=True,  # Ctrl-C reaches us only; we stop the daemon in order
            preexec_fn=die_with_us)

    def alive(self):
        if self.proc.poll() is not None:
            raise RuntimeError(f"codecell serve ({self.name}) exited {self.proc.returncode}:\n"
                               f"{self.log_tail()}")

    def log_tail(self, n=20):
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def wait_ready(self):
        """Healthy within HEALTHY_WAIT_S, then ready(interpreters) within WARM_WAIT_S."""
        deadline = self.started + HEALTHY_WAIT_S
        while True:
            self.alive()
            try:
                if self.request("GET", "/healthz", timeout=1)[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"codecell serve ({self.name}) not healthy after "
                                   f"{HEALTHY_WAIT_S} s:\n{self.log_tail()}")
            time.sleep(0.05)
        deadline = self.started + WARM_WAIT_S
        last = None
        while True:
            self.alive()
            try:
                status = self.status()
                last = status.get("interpreters")
                if self.ready(last):
                    self.ready_s = time.monotonic() - self.started
                    self.status_at_start = status
                    return
            except (OSError, ValueError, AttributeError) as e:
                last = f"{type(e).__name__}: {e}"
            if time.monotonic() > deadline:
                raise RuntimeError(f"codecell serve ({self.name}): {self.not_ready} after "
                                   f"{WARM_WAIT_S} s: {json.dumps(last)}\n{self.log_tail()}")
            time.sleep(0.1)

    def status(self):
        status, data = self.request("GET", "/v1/status", timeout=self.STATUS_TIMEOUT)
        if status != 200:
            raise ValueError(f"/v1/status answered {status}: {data[:200]!r}")
        return json.loads(data)

    def request(self, method, path, body=None, headers=None, timeout=None):
        """(HTTP status, body bytes). headers default to a JSON Content-Type when there is a
        body; timeout to HTTP_TIMEOUT."""
        if headers is None:
            headers = {"Content-Type": "application/json"} if body is not None else {}
        conn = http.client.HTTPConnection("127.0.0.1", self.port,
                                          timeout=timeout or self.HTTP_TIMEOUT)
        try:
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def stop(self):
        """SIGTERM, then SIGKILL after 15 s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# --------------------------------------------------------------------------- statistics, report
def percentile(xs, p):
    """The p-th percentile of xs (linear interpolation), None when xs is empty."""
    xs = sorted(xs)
    if not xs:
        return None
    k = (len(xs) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def median(xs):
    """The median of the values that are not None; None when there are none."""
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def ms(s):
    """Seconds as milliseconds, rounded to 0.01 ms; None stays None."""
    return None if s is None else round(s * 1000, 2)


def fmt_ms(v):
    return "—" if v is None else f"{v:.1f} ms"


def fmt_x(v):
    return "—" if v is None else f"{v:.2f}×"
