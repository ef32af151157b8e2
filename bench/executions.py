#!/usr/bin/python3
"""Execution latency and throughput: codecell over HTTP (warm interpreters, and cold for the
before/after) against a fresh python3 with and without bubblewrap, on the same workloads, in one
run (issue 4, "Benchmark"; the warm-interpreter targets).

Run as root after building, from anywhere:   /usr/bin/python3 bench/executions.py [--runs 15]
                     [--concurrency 8] [--total 200] [--only a,b,c,d] [--workers N] [--pool N]
                     [--no-pss]
Methods:
  (a) python3   a fresh /usr/bin/python3 per execution, no isolation (the old bot's way): the code
                is written to a file in a fresh temp dir that also holds the CSV, and run there.
  (b) bwrap     the same inside bubblewrap, a typical per-execution sandbox: --unshare-all
                --die-with-parent, read-only /usr with the /bin /lib /lib64 symlinks, the few /etc
                entries python3/numpy/matplotlib need read-only, --proc /proc --dev /dev,
                --tmpfs /tmp, the per-execution dir bound at /work (cwd) with the CSV bound
                read-only into it.
  (c) codecell  `codecell serve` with warm interpreters (CODECELL_WARM_INTERPRETERS=true, the
                default), started by this script on a free loopback port with its own data dir;
                measuring starts once GET /v1/status says interpreters.mode = "warm" (up to 120 s)
                and the zygote's pool is full. The CSV is uploaded once and every execution is a
                stateless POST /v1/executions with file_ids = [that CSV]. Every result must say
                "interpreter": "warm"; one that does not counts as a failure (and is counted).
  (d) codecell-cold  a second daemon, the same but CODECELL_WARM_INTERPRETERS=false (a fresh
                interpreter per execution, the service before warm interpreters); every result
                must say "interpreter": "cold".
--workers N sets CODECELL_WORKERS and --pool N CODECELL_ZYGOTE_POOL for both daemons (default:
unset, i.e. the service's defaults: workers = cores, pool = 4).
Workloads: print('hi'); pandas read_csv of a generated 10,000-row CSV + describe(); a matplotlib
line plot saved to PNG; then --total print executions from --concurrency concurrent clients per
method (each client sends its next execution when the previous one is answered). Every method is
warmed up once per workload; the sequential workloads interleave the methods run by run
(a, b, c, d, a, b, c, d, ...) so that drift on the machine hits all of them alike.
The table shows the median and p90 per workload and method and the speed-ups "vs (a)" and
"vs (b)" = median(a or b) / median(method) (for throughput: method / (a or b)), so > 1× means
faster; the issue's targets stand next to (c)'s ratios with PASS/MISS.
codecell runs with its defaults except executions.queue = 256 and executions.per_user = 256: every
execution uses the same user id, "bench" (the one that owns the CSV), and with those limits no
execution is refused with 429. Files a plot run generates are deleted after it (not timed), so
every run starts from the same state.
Memory:
  - during each concurrent run, the sum of VmRSS over the process tree (codecell: the daemon and
    everything under it) is sampled every 20 ms; each daemon's own VmHWM is read at the end;
  - the warm pool: for the zygote (its pid from /v1/status) and each idle pre-forked child (a
    child of the zygote blocked in recvmsg), /proc/<pid>/smaps_rollup: Rss, Pss and
    Private_Clean + Private_Dirty (= unshared), once the pool is full before the runs and again
    after them; the target is < 15 MiB unshared per idle child;
  - a second concurrent pass per daemon, not timed (reading smaps_rollup costs ~5 ms of CPU per
    process, which would slow the throughput pass on 2 cores), samples Σ Rss and Σ Pss from
    smaps_rollup over the daemon's whole tree; for a forked tree Σ Pss is the honest figure
    (pages shared with the zygote are split among the sharers), Σ Rss counts them once per
    process. --no-pss skips that pass.
At the end a one-line JSON summary of every number, prefixed "JSON: ".
Only the standard library; Debian's /usr/bin/python3 (with python3-pandas, python3-matplotlib).
"""
import argparse
import concurrent.futures
import csv
import datetime
import json
import os
import pathlib
import platform
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid

from serve_daemon import (Interrupted, ServeDaemon, interrupted, on_sigterm,
                          print_failures_and_load, stop_all, fmt_ms, fmt_x)

REPO = pathlib.Path(__file__).resolve().parents[1]
BIN = os.environ.get("CODECELL_BIN", str(REPO / "build" / "codecell"))
PYTHON = "/usr/bin/python3"
CSV_NAME = "sales.csv"
CSV_ROWS = 10_000
USER = "bench"  # one user for every codecell execution; executions.per_user is raised to 256
METHODS = {"a": "python3", "b": "bwrap", "c": "codecell", "d": "codecell-cold"}
DAEMONS = {"c": "warm", "d": "cold"}  # method -> the interpreter every result must report

# The issue's targets, for (c): speed-up vs (a) per workload; concurrent throughput with 8 clients
# on 2 cores and no failure; unshared memory per idle pre-forked child.
TARGET_VS_A = {"print": 8.0, "pandas": 8.0, "plot": 4.0}
TARGET_THROUGHPUT = 150.0
TARGET_CLIENTS, TARGET_CORES = 8, 2
TARGET_CHILD_MIB = 15.0

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
WARMUP_FAILURES = []  # reported with the table
STOP = threading.Event()  # set on Ctrl-C / SIGTERM / error: workers stop taking new executions
LIVE = set()  # Popen objects of (a) and (b) executions in flight, killed on the way out
LIVE_LOCK = threading.Lock()


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


# --------------------------------------------------------------------------- (c), (d) codecell
class Daemon(ServeDaemon):
    """`codecell serve` with warm interpreters ((c)) or without ((d)), on its own port and data dir."""

    OWN_ENV = ("CODECELL_WARM_INTERPRETERS", "CODECELL_WORKERS", "CODECELL_ZYGOTE_POOL")

    def __init__(self, root, key, workers=None, pool=None):
        self.key, self.mode = key, DAEMONS[key]
        env = {k: v for k, v in os.environ.items() if k not in self.OWN_ENV}
        env["CODECELL_WARM_INTERPRETERS"] = "true" if self.mode == "warm" else "false"
        if workers is not None:
            env["CODECELL_WORKERS"] = str(workers)
        if pool is not None:
            env["CODECELL_ZYGOTE_POOL"] = str(pool)
        # ready once /v1/status says interpreters.mode == self.mode
        super().__init__(root, METHODS[key], BIN, env,
                         ready=lambda i: isinstance(i, dict) and i.get("mode") == self.mode,
                         not_ready=f"/v1/status interpreters.mode is not {self.mode!r}")

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
    """(c)/(d) codecell over HTTP: stateless executions with the uploaded CSV in /mnt/data."""

    def __init__(self, daemon, csv_path):
        self.daemon = daemon
        self.expect = daemon.mode
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
        interpreter = result.get("interpreter")
        extra = {"server_s": result.get("execution_time"), "interpreter": interpreter,
                 "peak_bytes": (result.get("resources") or {}).get("peak_memory_bytes")}
        if not result.get("success"):
            problem = f"status {result.get('status')}: {result.get('error', '')[-300:]}"
            return elapsed, problem, extra
        problem = check(workload, result.get("output", ""), files)
        if problem is None and interpreter != self.expect:
            problem = f"\"interpreter\": {json.dumps(interpreter)}, expected \"{self.expect}\""
        return elapsed, problem, extra


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


def tree_pids(root, include_root=True, exclude=()):
    pids, stack, seen = [], [root], set()
    while stack:
        pid = stack.pop()
        if pid in seen or pid in exclude:
            continue
        seen.add(pid)
        if pid != root or include_root:
            pids.append(pid)
        stack += children(pid)
    return pids


def tree_rss(root, include_root=True, exclude=()):
    """Sum of VmRSS (KiB) over root's process tree. Shared pages (libpython, numpy's .so files)
    count once per process, so this overstates what the tree costs in RAM."""
    return sum(status_kib(pid, "VmRSS") for pid in tree_pids(root, include_root, exclude))


def smaps_rollup(pid):
    """/proc/<pid>/smaps_rollup as {field: KiB}; None once the process is gone."""
    fields = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 2 and parts[0].endswith(":") and parts[1].isdigit():
                    fields[parts[0][:-1]] = int(parts[1])
    except OSError:
        return None
    return fields or None


def unshared_kib(m):
    return m.get("Private_Clean", 0) + m.get("Private_Dirty", 0)


def tree_smaps(root):
    """Σ Rss and Σ Pss (KiB) from smaps_rollup over root's tree, and how many processes."""
    rss = pss = procs = 0
    for pid in tree_pids(root):
        m = smaps_rollup(pid)
        if m:
            rss, pss, procs = rss + m.get("Rss", 0), pss + m.get("Pss", 0), procs + 1
    return {"rss": rss, "pss": pss, "procs": procs}


RECVMSG = {"x86_64": 47, "aarch64": 212}.get(platform.machine())  # syscall number


def waiting_in_recvmsg(pid):
    """An idle pre-forked child blocks in recvmsg on its channel until it gets an execution."""
    try:
        with open(f"/proc/{pid}/syscall") as f:
            nr = f.read().split()[0]
        if RECVMSG is not None and nr.isdigit():
            return int(nr) == RECVMSG
        if nr == "running":
            return False
        with open(f"/proc/{pid}/wchan") as f:
            return "unix_stream_read" in f.read()
    except (OSError, IndexError):
        return False


def mib(kib):
    return None if kib is None else round(kib / 1024, 1)


def pool_snapshot(daemon, settle_s=30):
    """The warm daemon's zygotes ("base" and "full") and their idle pre-forked children, once every
    pool is full (or has stopped growing for 3 s: a zygote clamps its pool to the available
    memory); None without a ready zygote. An idle child is a pair: its interpreter (a fork of the
    zygote, blocked in recvmsg) and its init (codecell-init, pid 1 of the pair's namespace); its
    unshared memory is the sum of both. "zygote" is the full zygote (the large one)."""
    deadline = time.monotonic() + settle_s
    last, since = -1, time.monotonic()
    while True:
        interpreters = daemon.status().get("interpreters") or {}
        pools = [p for p in interpreters.get("pools") or [] if p.get("ready") and p.get("pid")]
        if interpreters.get("mode") != "warm" or not pools:
            if time.monotonic() > deadline:
                return None
            time.sleep(0.1)
            continue
        size = sum(p.get("pool_size") or 0 for p in pools)
        idle = [c for p in pools for c in children(p["pid"]) if waiting_in_recvmsg(c)]
        now = time.monotonic()
        if len(idle) != last:
            last, since = len(idle), now
        if len(idle) >= size or now - since > 3 or now > deadline:
            break
        time.sleep(0.05)

    def is_init(pid):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                return f.read().split(b"\0")[0] == b"codecell-init"
        except OSError:
            return False

    per_zygote, pairs, busy = {}, [], 0
    for pool in pools:
        zpid = pool["pid"]
        z = smaps_rollup(zpid) or {}
        interps, inits = [], []
        for pid in children(zpid):
            m = smaps_rollup(pid)
            if m and is_init(pid):
                inits.append(mib(unshared_kib(m)))
            elif m and waiting_in_recvmsg(pid):
                interps.append({"pid": pid, "rss_mib": mib(m.get("Rss", 0)),
                                "pss_mib": mib(m.get("Pss", 0)),
                                "unshared_mib": mib(unshared_kib(m))})
            else:
                busy += 1
        init_mib = statistics.median(inits) if inits else 0.0
        for k in interps:
            pairs.append(dict(k, unshared_mib=round(k["unshared_mib"] + init_mib, 1),
                              pool=pool["name"]))
        per_zygote[pool["name"]] = {
            "pid": zpid, "pool_size": pool.get("pool_size"),
            "rss_mib": mib(z.get("Rss")), "pss_mib": mib(z.get("Pss")),
            "unshared_mib": mib(unshared_kib(z)) if z else None,
            "idle_interpreters": len(interps), "idle_inits": len(inits),
            "init_unshared_median_mib": round(init_mib, 2),
            "pair_unshared_median_mib": round(statistics.median(
                [p["unshared_mib"] for p in pairs if p["pool"] == pool["name"]]), 1)
            if interps else None}
    full = per_zygote.get("full") or next(iter(per_zygote.values()))
    unshared = [k["unshared_mib"] for k in pairs]
    return {"zygote_pid": full["pid"], "pool_size": size, "idle_children": len(pairs),
            "other_children": busy, "zygotes": per_zygote,
            "zygote": {"rss_mib": full["rss_mib"], "pss_mib": full["pss_mib"],
                       "unshared_mib": full["unshared_mib"]},
            "child_unshared_median_mib": round(statistics.median(unshared), 1) if pairs else None,
            "child_unshared_max_mib": max(unshared) if pairs else None,
            "child_rss_median_mib": round(statistics.median(k["rss_mib"] for k in pairs), 1)
            if pairs else None,
            "child_pss_median_mib": round(statistics.median(k["pss_mib"] for k in pairs), 1)
            if pairs else None}


class Sampler:
    """Calls fn (-> {name: number}) every `interval` s in a thread; keeps each name's peak and
    the thread's own CPU time (what sampling cost)."""

    def __init__(self, fn, interval=0.02):
        self.fn, self.interval, self.peak, self.samples = fn, interval, {}, 0
        self.cpu_s = 0.0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def loop(self):
        while not self.done.is_set():
            for k, v in self.fn().items():
                self.peak[k] = max(self.peak.get(k, 0), v)
            self.samples += 1
            self.done.wait(self.interval)
        self.cpu_s = time.thread_time()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.done.set()
        self.thread.join()


# --------------------------------------------------------------------------- measuring
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

    def interpreters(self, expect):
        """(how many results said `expect`, of how many executions) for (c)/(d), else None."""
        if expect is None:
            return None
        return sum(1 for e in self.extra if e.get("interpreter") == expect), len(self.extra)


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


# --------------------------------------------------------------------------- main
def parse_only(text):
    keys = [k.strip() for k in text.split(",") if k.strip()]
    bad = [k for k in keys if k not in METHODS]
    if bad or not keys:
        raise argparse.ArgumentTypeError(
            f"methods are {', '.join(METHODS)} separated by commas (e.g. a,c), not {text!r}")
    return [k for k in METHODS if k in keys]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15, help="runs per sequential workload (15)")
    parser.add_argument("--concurrency", type=int, default=8, help="concurrent clients (8)")
    parser.add_argument("--total", type=int, default=200, help="executions in the concurrent run")
    parser.add_argument("--only", type=parse_only, metavar="a,b,c,d",
                        help="measure these methods only (default: all four)")
    parser.add_argument("--workers", type=int, metavar="N",
                        help="CODECELL_WORKERS for both daemons (default: unset = cores)")
    parser.add_argument("--pool", type=int, metavar="N",
                        help="CODECELL_ZYGOTE_POOL for the daemons (default: unset = 4)")
    parser.add_argument("--no-pss", action="store_true",
                        help="skip the untimed concurrent pass that samples Σ Pss of each daemon")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root (codecell serve and bubblewrap's namespaces need it)")
    keys = args.only or list(METHODS)

    signal.signal(signal.SIGTERM, on_sigterm)
    root = pathlib.Path(tempfile.mkdtemp(prefix="codecell-bench-exec-"))
    daemons = {}
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
        if any(k in DAEMONS for k in keys):
            if not os.access(BIN, os.X_OK):
                sys.exit(f"{BIN} not found: build first (bash scripts/build.sh)")
        for k in DAEMONS:
            if k in keys:
                daemons[k] = Daemon(root, k, args.workers, args.pool)
                daemons[k].spawn()  # both start at once; the zygote's imports take a few seconds
        # The cold daemon first: it is ready as soon as it answers, so each ready_s is its own.
        for k, d in sorted(daemons.items(), key=lambda kd: kd[1].mode == "warm"):
            print(f"  waiting for {METHODS[k]}: interpreters.mode = \"{d.mode}\"", file=sys.stderr)
            d.wait_ready()
            print(f"  {METHODS[k]} ready after {d.ready_s:.1f} s", file=sys.stderr)
        for k, d in daemons.items():
            methods[k] = Codecell(d, csv_path)

        commit = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"],
                                capture_output=True, text=True).stdout.strip() or "?"
        meta = {"commit": commit, "host": platform.node(), "kernel": platform.release(),
                "cores": os.cpu_count(), "date": time.strftime("%Y-%m-%d %H:%M"),
                "runs": args.runs, "concurrency": args.concurrency, "total": args.total,
                "workers": args.workers, "pool": args.pool, "bin": BIN,
                "methods": {k: METHODS[k] for k in keys}}
        print(f"codecell {commit}, {meta['host']}, Linux {meta['kernel']}, {meta['cores']} cores, "
              f"{meta['date']}; --runs {args.runs} --concurrency {args.concurrency} "
              f"--total {args.total}"
              + (f" --workers {args.workers}" if args.workers is not None else "")
              + (f" --pool {args.pool}" if args.pool is not None else "")
              + f"; methods {','.join(keys)}", flush=True)

        pool = {}
        if "c" in daemons:
            pool["before"] = pool_snapshot(daemons["c"])

        meta["load_before"] = round(os.getloadavg()[0], 2)
        seq = {w: sequential(methods, w, args.runs) for w in WORKLOADS}

        conc = {}
        daemon_pids = {d.proc.pid for d in daemons.values()}
        for key, m in methods.items():
            warm_up(m, "print", METHODS[key])
            if key in daemons:
                sample = (lambda d: lambda: {"rss": d.rss_tree()})(daemons[key])
            else:  # the bench's own children, without the daemons' trees
                sample = lambda: {"rss": tree_rss(os.getpid(), include_root=False,
                                                  exclude=daemon_pids)}
            with Sampler(sample) as sampler:
                tally, wall = concurrent_run(m, args.total, args.concurrency)
            conc[key] = {"tally": tally, "wall": wall, "peak_rss": sampler.peak.get("rss", 0),
                         "samples": sampler.samples}
            print(f"  concurrent {METHODS[key]}: {args.total} in {wall:.1f} s", file=sys.stderr)

        pss = {}
        if not args.no_pss:
            for key, d in daemons.items():
                with Sampler((lambda d: lambda: tree_smaps(d.proc.pid))(d)) as sampler:
                    tally, wall = concurrent_run(methods[key], args.total, args.concurrency)
                pss[key] = {"tally": tally, "wall": wall, "peak": sampler.peak,
                            "samples": sampler.samples, "cpu_s": sampler.cpu_s}
                print(f"  memory pass {METHODS[key]}: {args.total} in {wall:.1f} s "
                      f"({sampler.samples} samples)", file=sys.stderr)

        if "c" in daemons:
            pool["after"] = pool_snapshot(daemons["c"])
        for d in daemons.values():
            d.hwm = d.vm_hwm()
            try:
                d.status_at_end = d.status()
            except (OSError, ValueError) as e:
                d.status_at_end = {"error": f"{type(e).__name__}: {e}"}
        meta["load_after"] = round(os.getloadavg()[0], 2)

        summary = summarize(args, keys, meta, daemons, seq, conc, pss, pool)
        report(args, keys, summary)
        print("\nJSON: " + json.dumps(summary, separators=(",", ":"), ensure_ascii=False))
    except (KeyboardInterrupt, Interrupted) as e:
        return interrupted(e)
    finally:
        STOP.set()
        kill_live()
        stop_all(daemons.values())
        shutil.rmtree(root, ignore_errors=True)
    return 0


# --------------------------------------------------------------------------- summary and report
def ms(s):
    return None if s is None or s != s else round(s * 1000, 2)


def speedup(base, x, higher_is_better=False):
    if not base or not x:
        return None
    return round(x / base if higher_is_better else base / x, 2)


def verdict(ok):
    return None if ok is None else ("PASS" if ok else "MISS")


def summarize(args, keys, meta, daemons, seq, conc, pss, pool):
    failures = []
    s = {"meta": meta, "sequential": {}, "concurrent": {}, "memory": {}, "daemons": {},
         "targets": [], "failures": failures}

    def interp(t, key):
        got = t.interpreters(DAEMONS.get(key))
        return None if got is None else {"expected": DAEMONS[key], "ok": got[0], "of": got[1],
                                         "not_ok": got[1] - got[0]}

    def note_failures(what, key, t):
        if t.failures:
            i = interp(t, key)
            extra = f" ({i['not_ok']} not {i['expected']})" if i and i["not_ok"] else ""
            failures.append(f"{what} ({key}) {METHODS[key]}: {t.failures} failed{extra}, "
                            f"e.g. {t.errors[0]}")

    for w, tallies in seq.items():
        med = {k: (statistics.median(t.times) if t.times else None) for k, t in tallies.items()}
        rows = {}
        for k, t in tallies.items():
            server = [e["server_s"] for e in t.extra if e.get("server_s") is not None]
            peaks = [e["peak_bytes"] for e in t.extra if e.get("peak_bytes")]
            rows[k] = {"median_ms": ms(med[k]), "p90_ms": ms(percentile(t.times, 90)),
                       "n": len(t.times), "failed": t.failures, "interpreter": interp(t, k),
                       "vs_a": speedup(med.get("a"), med[k]) if k != "a" else None,
                       "vs_b": speedup(med.get("b"), med[k]) if k != "b" else None}
            if k in DAEMONS:
                rows[k]["in_sandbox_median_ms"] = ms(statistics.median(server)) if server else None
                rows[k]["peak_memory_median_mib"] = (
                    round(statistics.median(peaks) / 2**20, 1) if peaks else None)
            note_failures(LABELS[w], k, t)
        s["sequential"][w] = rows
        c = rows.get("c")
        ratio = c and c["vs_a"]
        ok = None if ratio is None else (ratio >= TARGET_VS_A[w] and c["failed"] == 0)
        s["targets"].append({"what": f"{LABELS[w]}: (c) vs (a)", "target": f"≥ {TARGET_VS_A[w]:g}×",
                             "measured": ratio, "failed": c and c["failed"], "verdict": verdict(ok)})

    thr = {k: len(v["tally"].times) / v["wall"] if v["wall"] else None for k, v in conc.items()}
    for k, v in conc.items():
        t = v["tally"]
        s["concurrent"][k] = {
            "throughput_per_s": round(thr[k], 1) if thr[k] else None, "wall_s": round(v["wall"], 2),
            "p50_ms": ms(percentile(t.times, 50)), "p99_ms": ms(percentile(t.times, 99)),
            "ok": len(t.times), "failed": t.failures, "interpreter": interp(t, k),
            "vs_a": speedup(thr.get("a"), thr[k], True) if k != "a" else None,
            "vs_b": speedup(thr.get("b"), thr[k], True) if k != "b" else None,
            "peak_vmrss_tree_mib": mib(v["peak_rss"]), "vmrss_samples": v["samples"]}
        note_failures(f"concurrent {args.total} prints", k, t)
    c = s["concurrent"].get("c")
    shape = args.concurrency == TARGET_CLIENTS and os.cpu_count() == TARGET_CORES
    ok = None if not c else ((c["throughput_per_s"] or 0) >= TARGET_THROUGHPUT and c["failed"] == 0)
    s["targets"].append({
        "what": f"(c) throughput, {args.concurrency} clients, {os.cpu_count()} cores",
        "target": f"≥ {TARGET_THROUGHPUT:g} /s, 0 failed ({TARGET_CLIENTS} clients, "
                  f"{TARGET_CORES} cores)",
        "measured": c and c["throughput_per_s"], "failed": c and c["failed"],
        "verdict": verdict(ok), "same_shape_as_target": shape})

    for k, v in pss.items():
        t = v["tally"]
        s["memory"][k] = {"peak_rss_tree_mib": mib(v["peak"].get("rss")),
                          "peak_pss_tree_mib": mib(v["peak"].get("pss")),
                          "peak_processes": v["peak"].get("procs"), "samples": v["samples"],
                          "wall_s": round(v["wall"], 2), "sampler_cpu_s": round(v["cpu_s"], 2),
                          "failed": t.failures, "interpreter": interp(t, k)}
        note_failures("memory pass", k, t)
    s["pool"] = pool
    snaps = [p for p in pool.values() if p and p["idle_children"]]
    worst = max((p["child_unshared_max_mib"] for p in snaps), default=None)
    s["targets"].append({"what": "(c) unshared memory per idle pre-forked child (max)",
                         "target": f"< {TARGET_CHILD_MIB:g} MiB", "measured": worst,
                         "verdict": verdict(None if worst is None else worst < TARGET_CHILD_MIB)})
    if "c" in daemons and not snaps:
        failures.append("(c) codecell: no idle pre-forked child found under the zygote")

    for k, d in daemons.items():
        start, end = d.status_at_start, getattr(d, "status_at_end", {})
        i0, i1 = start.get("interpreters") or {}, end.get("interpreters") or {}
        s["daemons"][k] = {
            "ready_s": round(d.ready_s, 2), "workers": start.get("workers"),
            "vm_hwm_mib": mib(getattr(d, "hwm", 0)),
            "interpreters": {key: i0.get(key) for key in
                             ("mode", "pid", "pool_size", "startup_seconds", "python",
                              "preloaded", "failed_preloads", "reason") if key in i0},
            "pools": [{key: p.get(key) for key in ("name", "pid", "pool_size", "startup_seconds",
                                                   "preloaded", "failed_preloads")}
                      for p in i0.get("pools") or []],
            "mode_at_end": i1.get("mode"),
            "restarts": sum(p.get("restarts") or 0 for p in i1.get("pools") or []),
            "zygote_pid_at_end": [p.get("pid") for p in i1.get("pools") or []]}
        if i1.get("mode") != d.mode:
            failures.append(f"({k}) {METHODS[k]}: interpreters.mode at the end is "
                            f"{i1.get('mode')!r} ({i1.get('reason', '')})")
        if i1.get("restarts"):
            failures.append(f"({k}) {METHODS[k]}: the zygote was restarted {i1['restarts']} times")
        for p in i0.get("pools") or []:
            if p.get("failed_preloads"):
                failures.append(f"({k}) {METHODS[k]}: failed preloads in {p.get('name')}: "
                                f"{p['failed_preloads']}")
    failures += WARMUP_FAILURES
    return s




def fmt_mib(v):
    return "—" if v is None else f"{v:.1f} MiB"


def fmt_interp(i):
    return "—" if not i else f"{i['ok']}/{i['of']} {i['expected']}"


def report(args, keys, s):
    targets = {t["what"]: t for t in s["targets"]}
    print()
    head = (f"{'median of ' + str(args.runs) + ' runs':<26}{'method':<18}{'median':>10}{'p90':>10}"
            f"{'failed':>8}  {'interpreter':<13}{'vs (a)':>8}{'vs (b)':>8}  target (c) vs (a)")
    print(head)
    print("-" * len(head))
    for w, rows in s["sequential"].items():
        first = True
        for k in keys:
            r = rows[k]
            line = (f"{LABELS[w] if first else '':<26}{f'({k}) {METHODS[k]}':<18}"
                    f"{fmt_ms(r['median_ms']):>10}{fmt_ms(r['p90_ms']):>10}{r['failed']:>8}  "
                    f"{fmt_interp(r['interpreter']):<13}{fmt_x(r['vs_a']):>8}{fmt_x(r['vs_b']):>8}")
            if k == "c":
                t = targets[f"{LABELS[w]}: (c) vs (a)"]
                line += f"  {t['target']}: {t['verdict'] or 'n/a (no (a))'}"
            print(line.rstrip())
            first = False
    print()
    head = (f"{f'{args.total} prints, {args.concurrency} clients':<26}{'method':<18}"
            f"{'through.':>10}{'p50':>10}{'p99':>10}{'failed':>8}  {'interpreter':<13}"
            f"{'vs (a)':>8}{'vs (b)':>8}  target")
    print(head)
    print("-" * len(head))
    for k in keys:
        r = s["concurrent"][k]
        tp = "—" if r["throughput_per_s"] is None else f"{r['throughput_per_s']:.1f} /s"
        line = (f"{'':<26}{f'({k}) {METHODS[k]}':<18}{tp:>10}{fmt_ms(r['p50_ms']):>10}"
                f"{fmt_ms(r['p99_ms']):>10}{r['failed']:>8}  {fmt_interp(r['interpreter']):<13}"
                f"{fmt_x(r['vs_a']):>8}{fmt_x(r['vs_b']):>8}")
        if k == "c":
            t = [t for t in s["targets"] if t["what"].startswith("(c) throughput")][0]
            line += f"  {t['target']}: {t['verdict']}"
            if not t["same_shape_as_target"]:
                line += " (measured with another shape)"
        print(line.rstrip())
    print("vs (a), vs (b): how many times faster than (a), (b) (median(a) / median(method); for "
          "throughput method / (a)); > 1× = faster.\nfailed includes wrong output and, for (c) "
          "and (d), results whose \"interpreter\" is not the expected one.")

    print()
    print("memory, peak Σ VmRSS over the process tree during the concurrent run (every 20 ms; "
          "shared pages count\nonce per process, so these overstate RAM use):")
    for k in keys:
        r = s["concurrent"][k]
        what = {"c": "the daemon + its helpers, the zygote and its pool, inits, interpreters",
                "d": "the daemon + its helpers, inits and interpreters"}.get(
                    k, "this script's children (the interpreters and bwrap)")
        print(f"  ({k}) {METHODS[k]:<14} {fmt_mib(r['peak_vmrss_tree_mib']):>11}  {what}, "
              f"{r['vmrss_samples']} samples")
    for k, d in s["daemons"].items():
        print(f"  ({k}) {METHODS[k]} daemon process alone: VmHWM {fmt_mib(d['vm_hwm_mib'])} "
              "over the whole run")
    if s["memory"]:
        print("daemon tree in a second, untimed concurrent pass (smaps_rollup of every process, "
              "back to back; Σ Pss splits\nshared pages among their sharers, the honest figure for "
              "a forked tree):")
        for k, m in s["memory"].items():
            print(f"  ({k}) {METHODS[k]:<14} peak Σ Rss {fmt_mib(m['peak_rss_tree_mib']):>11}, "
                  f"peak Σ Pss {fmt_mib(m['peak_pss_tree_mib']):>11}, up to "
                  f"{m['peak_processes']} processes; {m['samples']} samples in {m['wall_s']} s "
                  f"(sampling used {m['sampler_cpu_s']} s CPU), {m['failed']} failed")
    pool = s["pool"]
    if "c" in s["daemons"]:
        d = s["daemons"]["c"]
        i = d["interpreters"]
        for p in d["pools"]:
            print(f"warm pool (c) {p['name']}: zygote pid {p.get('pid')}, pool_size "
                  f"{p.get('pool_size')}, startup {p.get('startup_seconds')} s, "
                  f"{len(p.get('preloaded') or [])} preloads")
        print(f"  ready {d['ready_s']} s after spawning the daemon; zygote restarts during the "
              f"run: {d['restarts']}")
        t = [t for t in s["targets"] if t["what"].startswith("(c) unshared")][0]
        for when, p in pool.items():
            if not p:
                print(f"  {when} the runs: no zygote")
                continue
            z = p["zygote"]
            print(f"  {when + ' the runs:':<18}zygote Rss {fmt_mib(z['rss_mib'])}, Pss "
                  f"{fmt_mib(z['pss_mib'])}, unshared {fmt_mib(z['unshared_mib'])}; "
                  f"{p['idle_children']} idle children ({p['other_children']} other): unshared "
                  f"median {fmt_mib(p['child_unshared_median_mib'])}, max "
                  f"{fmt_mib(p['child_unshared_max_mib'])} (Rss median "
                  f"{fmt_mib(p['child_rss_median_mib'])}, Pss median "
                  f"{fmt_mib(p['child_pss_median_mib'])})")
            for name, zg in (p.get("zygotes") or {}).items():
                print(f"    {name}: zygote Rss {fmt_mib(zg['rss_mib'])}, Pss {fmt_mib(zg['pss_mib'])};"
                      f" {zg['idle_interpreters']} idle interpreters + {zg['idle_inits']} inits, "
                      f"init unshared {fmt_mib(zg['init_unshared_median_mib'])}, pair unshared "
                      f"median {fmt_mib(zg['pair_unshared_median_mib'])}")
        print(f"  unshared = Private_Clean + Private_Dirty from smaps_rollup; target per idle "
              f"child {t['target']}: {t['verdict'] or 'n/a'}")

    daemon_keys = [k for k in keys if k in DAEMONS]
    if daemon_keys:
        print()
        print("codecell, where the time goes (medians): HTTP round trip vs the execution_time the "
              "service reports\n(sandbox launch to interpreter exit); the rest is the helper "
              "process, workspace, cgroup, files, HTTP:")
        for w, rows in s["sequential"].items():
            for k in daemon_keys:
                r = rows[k]
                if r["median_ms"] is None or r.get("in_sandbox_median_ms") is None:
                    continue
                rt, sv = r["median_ms"], r["in_sandbox_median_ms"]
                peak = r.get("peak_memory_median_mib")
                print(f"  {LABELS[w]:<26}({k}) round trip {fmt_ms(rt):>10}, in the sandbox "
                      f"{fmt_ms(sv):>10}, around it {fmt_ms(rt - sv):>9}"
                      + (f", peak {peak:.0f} MiB" if peak else ""))

    print()
    print("targets:")
    for t in s["targets"]:
        m = t["measured"]
        shown = "—" if m is None else (f"{m:.2f}×" if "×" in t["target"] else
                                       f"{m:.1f} MiB" if "MiB" in t["target"] else f"{m:.1f} /s")
        failed = f", {t['failed']} failed" if t.get("failed") else ""
        print(f"  {t['what']:<52} {shown:>10}{failed}  target {t['target']}: "
              f"{t['verdict'] or 'n/a'}")
    print_failures_and_load(s["failures"], s["meta"],
                            "this script alone keeps it near 1-2; much more means something else "
                            "ran meanwhile and the numbers are noisier")


if __name__ == "__main__":
    sys.exit(main())
