#!/usr/bin/python3
"""Execution latency and throughput: codecell over HTTP against a fresh python3 with and without
bubblewrap, on the same workloads, in one run (issue 4, "Benchmark").

Run as root after building, from anywhere:   /usr/bin/python3 bench/executions.py [--runs 15]
                                             [--concurrency 8] [--total 200] [--only a|b|c]
Methods:
  (a) python3   a fresh /usr/bin/python3 per execution, no isolation (the old bot's way): the code
                is written to a file in a fresh temp dir that also holds the CSV, and run there.
  (b) bwrap     the same inside bubblewrap, a typical per-execution sandbox: --unshare-all
                --die-with-parent, read-only /usr with the /bin /lib /lib64 symlinks, the few /etc
                entries python3/numpy/matplotlib need read-only, --proc /proc --dev /dev,
                --tmpfs /tmp, the per-execution dir bound at /work (cwd) with the CSV bound
                read-only into it.
  (c) codecell  `build/codecell serve` started by this script on a free loopback port with its own
                data dir; the CSV is uploaded once and every execution is a stateless
                POST /v1/executions with file_ids = [that CSV].
Workloads: print('hi'); pandas read_csv of a generated 10,000-row CSV + describe(); a matplotlib
line plot saved to PNG; then --total print executions from --concurrency concurrent clients per
method (each client sends its next execution when the previous one is answered). Every method is
warmed up once per workload; the sequential workloads interleave the methods run by run
(a, b, c, a, b, c, ...) so that drift on the machine hits all three alike.
codecell runs with its defaults (executions.workers = number of cores) except executions.queue =
256 and executions.per_user = 256: every execution uses the same user id, "bench" (the one that
owns the CSV), and with those limits no execution is refused with 429. Files a plot run generates
are deleted after it (not timed), so every run starts from the same state.
Memory: during each concurrent run, the sum of VmRSS over the process tree (codecell: the daemon
and everything under it) is sampled every 20 ms; the daemon's own VmHWM is read at the end.
Only the standard library; Debian's /usr/bin/python3 (with python3-pandas, python3-matplotlib).
"""
import argparse
import concurrent.futures
import csv
import ctypes
import datetime
import http.client
import json
import os
import pathlib
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid

REPO = pathlib.Path(__file__).resolve().parents[1]
BIN = os.environ.get("CODECELL_BIN", str(REPO / "build" / "codecell"))
PYTHON = "/usr/bin/python3"
CSV_NAME = "sales.csv"
CSV_ROWS = 10_000
USER = "bench"  # one user for every codecell execution; executions.per_user is raised to 256
METHODS = {"a": "python3", "b": "bwrap", "c": "codecell"}

WORKLOADS = {
    "print": "print('hi')\n",
    "pandas": ("import pandas as pd\n"
               f"df = pd.read_csv('{CSV_NAME}')\n"
               "print(df.describe())\n"),
    "plot": ("import matplotlib.pyplot as plt\n"
             "xs = list(range(200))\n"
             "ys = [(x * 37) % 101 for x in xs]\n"
             "plt.plot(xs, ys)\n"
             "plt.title('line')\n"
             "plt.savefig('plot.png')\n"),
}
LABELS = {"print": "print('hi')", "pandas": "pandas read_csv+describe", "plot": "matplotlib plot"}


def check(workload, output, files):
    """None when the execution did what it should, else what went wrong."""
    if workload == "print":
        return None if output == "hi\n" else f"output {output[:80]!r}"
    if workload == "pandas":
        return None if "count" in output and "10000" in output else f"output {output[:80]!r}"
    return None if "plot.png" in files else f"no plot.png among {sorted(files)}"


# --------------------------------------------------------------------------- cleanup bookkeeping
class Interrupted(Exception):
    pass


WARMUP_FAILURES = []  # reported with the table
STOP = threading.Event()  # set on Ctrl-C / SIGTERM / error: workers stop taking new executions
LIVE = set()  # Popen objects of (a) and (b) executions in flight, killed on the way out
LIVE_LOCK = threading.Lock()


def on_sigterm(signum, frame):
    raise Interrupted(f"signal {signum}")


def run_tracked(argv, **kwargs):
    """subprocess.run with the child registered so cleanup can kill it."""
    if STOP.is_set():
        raise Interrupted("stopping")
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs) as p:
        with LIVE_LOCK:
            LIVE.add(p)
        try:
            out, err = p.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
        finally:
            with LIVE_LOCK:
                LIVE.discard(p)
    return p.returncode, out.decode(errors="replace"), err.decode(errors="replace")


def kill_live():
    with LIVE_LOCK:
        for p in list(LIVE):
            try:
                p.kill()
            except OSError:
                pass


# --------------------------------------------------------------------------- (a) and (b)
def base_env(home, mpl_dir):
    # The interpreter environment codecell gives its sandboxes (src/runner/runner_files.cpp), so
    # that the only difference between the methods is the isolation around the interpreter.
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": home, "TMPDIR": "/tmp",
            "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "MPLBACKEND": "Agg", "MPLCONFIGDIR": mpl_dir,
            "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


class Plain:
    """(a) fresh python3 per execution, no isolation, CSV in the cwd."""

    def __init__(self, root, csv_path, mpl_dir):
        self.root, self.csv = root / "a", csv_path
        self.root.mkdir()
        self.env = base_env(str(root / "home"), str(mpl_dir))

    def run(self, workload, client=0):
        t = time.perf_counter()
        d = pathlib.Path(tempfile.mkdtemp(dir=self.root))
        try:
            os.link(self.csv, d / CSV_NAME)
            (d / "code.py").write_text(WORKLOADS[workload])
            rc, out, err = run_tracked([PYTHON, "code.py"], cwd=d, env=self.env)
            files = set(os.listdir(d)) - {"code.py", CSV_NAME}
            elapsed = time.perf_counter() - t
        finally:
            shutil.rmtree(d, ignore_errors=True)
        problem = f"return code {rc}: {err.strip()[-300:]}" if rc else check(workload, out, files)
        return elapsed, problem, {}


class Bwrap:
    """(b) bubblewrap around a fresh python3, a typical per-execution sandbox."""

    ETC = ["ld.so.cache", "alternatives", "matplotlibrc", "python3.11", "fonts", "localtime"]

    def __init__(self, root, csv_path, mpl_dir):
        self.root = root / "b"
        self.root.mkdir()
        argv = ["bwrap", "--unshare-all", "--die-with-parent",
                "--ro-bind", "/usr", "/usr"]
        for link in ("bin", "lib", "lib64", "sbin"):
            if os.path.islink(f"/{link}"):
                argv += ["--symlink", os.readlink(f"/{link}"), f"/{link}"]
        # Without ld.so.cache and /etc/alternatives numpy cannot find libblas.so.3; Debian's
        # matplotlib reads /etc/matplotlibrc; python3.11/ holds sitecustomize.py.
        for name in self.ETC:
            if os.path.exists(f"/etc/{name}"):
                argv += ["--ro-bind", f"/etc/{name}", f"/etc/{name}"]
        argv += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp",
                 # matplotlib's font cache, built once (as codecell keeps one in its data dir)
                 "--bind", str(mpl_dir), "/mplcache",
                 "--clearenv"]
        for k, v in base_env("/tmp", "/mplcache").items():
            argv += ["--setenv", k, v]
        self.prefix, self.csv = argv, str(csv_path)

    def run(self, workload, client=0):
        t = time.perf_counter()
        d = pathlib.Path(tempfile.mkdtemp(dir=self.root))
        try:
            (d / "code.py").write_text(WORKLOADS[workload])
            argv = self.prefix + ["--bind", str(d), "/work",
                                  "--ro-bind", self.csv, f"/work/{CSV_NAME}",
                                  "--chdir", "/work", PYTHON, "-I", "code.py"]
            rc, out, err = run_tracked(argv)
            # bwrap leaves an empty sales.csv behind in d as the bind's mount point
            files = set(os.listdir(d)) - {"code.py", CSV_NAME}
            elapsed = time.perf_counter() - t
        finally:
            shutil.rmtree(d, ignore_errors=True)
        problem = f"return code {rc}: {err.strip()[-300:]}" if rc else check(workload, out, files)
        return elapsed, problem, {}


# --------------------------------------------------------------------------- (c) codecell
class Daemon:
    def __init__(self, root):
        self.root = root / "codecell"
        self.root.mkdir()
        self.port = free_port()
        self.config = self.root / "bench.toml"
        self.config.write_text(
            "[executions]\nqueue = 256\nper_user = 256\n"
            "[shutdown]\ngrace_seconds = 2\n")
        self.log_path = self.root / "serve.log"
        self.proc = None

    def start(self):
        libc = ctypes.CDLL(None, use_errno=True)

        def die_with_us():  # PR_SET_PDEATHSIG = 1: the daemon gets SIGTERM if we are killed
            libc.prctl(1, signal.SIGTERM, 0, 0, 0)

        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [BIN, "serve", "--config", str(self.config), "--listen", f"127.0.0.1:{self.port}",
             "--data-dir", str(self.root / "data")],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log,
            start_new_session=True,  # Ctrl-C reaches us only; we stop the daemon in order
            preexec_fn=die_with_us)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"codecell serve exited {self.proc.returncode}:\n{self.log_tail()}")
            try:
                status, _ = self.request("GET", "/healthz", timeout=1)
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"codecell serve not healthy after 30 s:\n{self.log_tail()}")

    def log_tail(self):
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-20:])
        except OSError:
            return ""

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def request(self, method, path, body=None, headers=None, timeout=120):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def upload(self, user, path):
        boundary = uuid.uuid4().hex
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"user_id\"\r\n\r\n"
                f"{user}\r\n"
                f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
                f"filename=\"{path.name}\"\r\nContent-Type: text/csv\r\n\r\n").encode()
        body += path.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
        status, data = self.request(
            "POST", "/v1/files", body,
            {"Content-Type": f"multipart/form-data; boundary={boundary}"})
        if status != 201:
            raise RuntimeError(f"upload answered {status}: {data[:300]!r}")
        return json.loads(data)["file_id"]

    def rss_tree(self):
        return tree_rss(self.proc.pid, include_root=True)

    def vm_hwm(self):
        return status_kib(self.proc.pid, "VmHWM")


class Codecell:
    """(c) codecell over HTTP: stateless executions with the uploaded CSV in /mnt/data."""

    def __init__(self, daemon, csv_path):
        self.daemon = daemon
        self.csv_id = daemon.upload(USER, csv_path)

    def run(self, workload, client=0):
        if STOP.is_set():
            raise Interrupted("stopping")
        body = json.dumps({"user_id": USER, "code": WORKLOADS[workload],
                           "file_ids": [self.csv_id]}).encode()
        # A new loopback connection per execution (~0.1 ms): a kept-alive one goes stale while the
        # other methods run (the server closes idle connections after a few seconds).
        t = time.perf_counter()
        status, data = self.daemon.request("POST", "/v1/executions", body,
                                           {"Content-Type": "application/json"})
        elapsed = time.perf_counter() - t
        if status != 200:
            return elapsed, f"HTTP {status}: {data[:200]!r}", {}
        result = json.loads(data)
        files = {f["filename"]: f.get("file_id") for f in result.get("generated_files", [])}
        for file_id in files.values():  # stateless: drop what the run made (not timed)
            self.daemon.request("DELETE", f"/v1/files/{file_id}?user_id={USER}")
        extra = {"server_s": result.get("execution_time"),
                 "peak_bytes": (result.get("resources") or {}).get("peak_memory_bytes")}
        if not result.get("success"):
            problem = f"status {result.get('status')}: {result.get('error', '')[-300:]}"
            return elapsed, problem, extra
        return elapsed, check(workload, result.get("output", ""), files), extra


# --------------------------------------------------------------------------- memory sampling
def status_kib(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def children(pid):
    kids = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                kids += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return kids


def tree_rss(root, include_root=True, exclude=()):
    """Sum of VmRSS (KiB) over root's process tree. Shared pages (libpython, numpy's .so files)
    count once per process, so this overstates what the tree costs in RAM."""
    total, stack = 0, [root]
    seen = set()
    while stack:
        pid = stack.pop()
        if pid in seen or pid in exclude:
            continue
        seen.add(pid)
        if pid != root or include_root:
            total += status_kib(pid, "VmRSS")
        stack += children(pid)
    return total


class Sampler:
    def __init__(self, fn, interval=0.02):
        self.fn, self.interval, self.peak, self.samples = fn, interval, 0, 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def loop(self):
        while not self.done.is_set():
            self.peak = max(self.peak, self.fn())
            self.samples += 1
            self.done.wait(self.interval)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.done.set()
        self.thread.join()


# --------------------------------------------------------------------------- measuring
def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_csv(path):
    rng = random.Random(4)
    start = datetime.date(2023, 1, 1)
    regions = ["north", "south", "east", "west"]
    products = ["widget", "gadget", "gizmo", "doohickey", "sprocket"]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["date", "region", "product", "units", "price"])
        for i in range(CSV_ROWS):
            w.writerow([(start + datetime.timedelta(days=i % 730)).isoformat(),
                        rng.choice(regions), rng.choice(products), rng.randint(1, 500),
                        f"{rng.uniform(0.5, 250):.2f}"])


def percentile(xs, p):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


class Tally:
    def __init__(self):
        self.times, self.failures, self.errors, self.extra = [], 0, [], []

    def add(self, elapsed, problem, extra):
        if problem:
            self.failures += 1
            if len(self.errors) < 3:
                self.errors.append(problem)
        else:
            self.times.append(elapsed)
        self.extra.append(extra)


def warm_up(method, workload, name):
    try:
        _, problem, _ = method.run(workload)
    except Interrupted:
        raise
    except Exception as e:
        problem = f"{type(e).__name__}: {e}"
    if problem:
        WARMUP_FAILURES.append(f"warm-up of {name} on {LABELS[workload]}: {problem}")


def sequential(methods, workload, runs):
    tallies = {key: Tally() for key in methods}
    for key, m in methods.items():
        warm_up(m, workload, METHODS[key])
    for i in range(runs):
        for key, m in methods.items():
            try:
                tallies[key].add(*m.run(workload))
            except Interrupted:
                raise
            except Exception as e:
                tallies[key].add(0, f"{type(e).__name__}: {e}", {})
        print(f"\r  {LABELS[workload]}: {i + 1}/{runs}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return tallies


def concurrent_run(method, total, concurrency):
    """total print executions from concurrency clients, each client one after another."""
    tally, lock, counter = Tally(), threading.Lock(), iter(range(total))

    def client(index):
        while not STOP.is_set():
            with lock:
                if next(counter, None) is None:
                    return
            t = time.perf_counter()
            try:
                result = method.run("print", index)
            except Interrupted:
                return
            except Exception as e:
                result = (time.perf_counter() - t, f"{type(e).__name__}: {e}", {})
            with lock:
                tally.add(*result)

    pool = concurrent.futures.ThreadPoolExecutor(concurrency)
    try:
        t = time.perf_counter()
        futures = [pool.submit(client, i) for i in range(concurrency)]
        for f in futures:
            f.result()
        wall = time.perf_counter() - t
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    return tally, wall


# --------------------------------------------------------------------------- report
def fmt_ms(s):
    return "—" if s is None or s != s else f"{s * 1000:.1f} ms"


def ratio(x):
    return "—" if x is None or x != x else f"{x:.2f}×"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15, help="runs per sequential workload (15)")
    parser.add_argument("--concurrency", type=int, default=8, help="concurrent clients (8)")
    parser.add_argument("--total", type=int, default=200, help="executions in the concurrent run")
    parser.add_argument("--only", choices=sorted(METHODS), help="measure one method only")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root (codecell serve and bubblewrap's namespaces need it)")
    keys = [args.only] if args.only else list(METHODS)

    signal.signal(signal.SIGTERM, on_sigterm)
    root = pathlib.Path(tempfile.mkdtemp(prefix="codecell-bench-exec-"))
    daemon = None
    try:
        (root / "home").mkdir()
        mpl_dir = root / "mplcache"
        mpl_dir.mkdir()
        csv_path = root / CSV_NAME
        make_csv(csv_path)
        methods = {}
        if "a" in keys:
            methods["a"] = Plain(root, csv_path, mpl_dir)
        if "b" in keys:
            if not shutil.which("bwrap"):
                sys.exit("bwrap not found: apt-get install bubblewrap")
            methods["b"] = Bwrap(root, csv_path, mpl_dir)
        if "c" in keys:
            if not os.access(BIN, os.X_OK):
                sys.exit(f"{BIN} not found: build first (bash scripts/build.sh)")
            daemon = Daemon(root)
            daemon.start()
            methods["c"] = Codecell(daemon, csv_path)

        commit = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"],
                                capture_output=True, text=True).stdout.strip() or "?"
        print(f"codecell {commit}, {platform.node()}, Linux {platform.release()}, "
              f"{os.cpu_count()} cores, {time.strftime('%Y-%m-%d %H:%M')}; "
              f"--runs {args.runs} --concurrency {args.concurrency} --total {args.total}",
              flush=True)

        load_before = os.getloadavg()[0]
        seq = {w: sequential(methods, w, args.runs) for w in WORKLOADS}

        conc = {}
        for key, m in methods.items():
            warm_up(m, "print", METHODS[key])
            if key == "c":
                sample = daemon.rss_tree
            else:  # the bench's own children, without the daemon's tree
                skip = {daemon.proc.pid} if daemon else set()
                sample = lambda: tree_rss(os.getpid(), include_root=False, exclude=skip)
            with Sampler(sample) as sampler:
                tally, wall = concurrent_run(m, args.total, args.concurrency)
            conc[key] = (tally, wall, sampler.peak, sampler.samples)
            print(f"  concurrent {METHODS[key]}: {args.total} in {wall:.1f} s", file=sys.stderr)
        hwm = daemon.vm_hwm() if daemon else 0

        report(args, keys, seq, conc, hwm)
        print(f"\nload average (1 min): {load_before:.2f} before the runs, "
              f"{os.getloadavg()[0]:.2f} after (this script alone keeps it near 1-2; much more "
              "means something else ran meanwhile and the numbers are noisier)")
    except (KeyboardInterrupt, Interrupted) as e:
        print(f"\ninterrupted ({e or 'Ctrl-C'}): cleaning up", file=sys.stderr)
        return 130
    finally:
        STOP.set()
        kill_live()
        if daemon:
            daemon.stop()
        shutil.rmtree(root, ignore_errors=True)
    return 0


def report(args, keys, seq, conc, hwm):
    cols = [f"({k}) {METHODS[k]}" for k in keys]
    has_ratios = "c" in keys
    rat_cols = [f"(c) vs ({k})" for k in keys if k != "c"] if has_ratios else []
    targets = {"print": "≥ 8×", "pandas": "≥ 8×", "plot": "≥ 4×"}
    head = f"{'median of ' + str(args.runs) + ' runs':<32}" + "".join(f"{c:>15}" for c in cols)
    head += "".join(f"{c:>13}" for c in rat_cols) + f"{'target vs (a)':>15}"
    print()
    print(head)
    print("-" * len(head))

    def row(label, values, better_low=True, target=""):
        line = f"{label:<32}"
        for k in keys:
            v = values.get(k)
            line += f"{(fmt_ms(v) if better_low else ('—' if v is None else f'{v:.1f} /s')):>15}"
        for k in keys:
            if k == "c" or not has_ratios:
                continue
            a, c = values.get(k), values.get("c")
            r = None if not a or not c else (a / c if better_low else c / a)
            line += f"{ratio(r):>13}"
        line += f"{target:>15}"
        print(line)

    failures = []
    for w, tallies in seq.items():
        values = {k: (statistics.median(t.times) if t.times else None) for k, t in tallies.items()}
        row(LABELS[w], values, target=targets[w])
        failures += [f"{LABELS[w]} ({k}): {t.failures} failed, e.g. {t.errors[0]}"
                     for k, t in tallies.items() if t.failures]
    label = f"{args.total} prints, {args.concurrency} clients"
    row(f"{label}: throughput", {k: len(t.times) / wall for k, (t, wall, _, _) in conc.items()},
        better_low=False, target="≥ 150 /s")
    row("  latency p50", {k: percentile(t.times, 50) for k, (t, _, _, _) in conc.items()})
    row("  latency p99", {k: percentile(t.times, 99) for k, (t, _, _, _) in conc.items()})
    print(f"{'  failures':<32}" + "".join(f"{conc[k][0].failures:>15}" for k in keys)
          + " " * (13 * len(rat_cols)) + f"{'0':>15}")
    for k, (t, _, _, _) in conc.items():
        if t.failures:
            failures.append(f"concurrent ({k}): {t.failures} failed, e.g. {t.errors[0]}")
    print("×: how many times faster codecell is (a ratio > 1 means codecell is faster)")

    print()
    print("memory, peak during the concurrent run (sum of VmRSS over the process tree, sampled "
          "every 20 ms;\nshared pages count once per process, so these overstate RAM use):")
    for k, (_, _, peak, n) in conc.items():
        what = ("the daemon + its helpers, inits and interpreters" if k == "c"
                else "this script's children (the interpreters and bwrap)")
        print(f"  ({k}) {METHODS[k]:<9} {peak / 1024:8.1f} MiB  {what}, {n} samples")
    if "c" in conc:
        print(f"  codecell daemon process alone: VmHWM {hwm / 1024:.1f} MiB over the whole run")

    if "c" in keys:
        print()
        print("codecell, where the time goes (medians): HTTP round trip vs the execution_time the "
              "service reports\n(sandbox launch to interpreter exit); the rest is the helper "
              "process, workspace, cgroup, files, HTTP:")
        for w, tallies in seq.items():
            t = tallies["c"]
            server = [e["server_s"] for e in t.extra if e.get("server_s") is not None]
            peaks = [e["peak_bytes"] for e in t.extra if e.get("peak_bytes")]
            if t.times and server:
                rt, sv = statistics.median(t.times), statistics.median(server)
                print(f"  {LABELS[w]:<28} round trip {fmt_ms(rt):>10}, in the sandbox "
                      f"{fmt_ms(sv):>10}, around it {fmt_ms(rt - sv):>9}"
                      + (f", peak {statistics.median(peaks) / 2**20:.0f} MiB" if peaks else ""))
    failures += WARMUP_FAILURES
    if failures:
        print()
        print("failures:")
        for f in failures:
            print("  " + f)


if __name__ == "__main__":
    sys.exit(main())
