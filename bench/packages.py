#!/usr/bin/python3
"""Approved packages installed on demand: what an install costs next to a plain pip, the
import-triggered path, what the package environment adds to a plain execution, and refreshes under
load (docs/packages.md), in one run.

Run as root after building, from anywhere:   /usr/bin/python3 bench/packages.py [--packages 5]
                     [--files 50] [--big-files 2000] [--after-big 2] [--imports 2] [--runs 40]
                     [--clients 8] [--baseline-seconds 5] [--load-seconds 20] [--refresh-every 4]
                     [--bin PATH]
The defaults take about a minute and a half on 2 cores.
There is no package index on the machine this was written for, so the script builds its own
wheels first, in a temp dir, with Debian's setuptools + wheel (`setup.py -q bdist_wheel`, not
timed): --packages small pure-Python distributions ccbench-a, ccbench-b, ... (import names
ccbench_a, ...), each of --files files (an __init__.py of ~300 lines with VALUE = "<letter>-1",
--files - 2 small modules mod_NN.py and a data.txt holding a random token); --after-big more
small ones, ccbench-post1, ...; --imports small ones ccbench-imp1, ... for the import-triggered
path; and, unless --big-files 0 (then there is no ccbench-postN either), ccbench-big:
--big-files files in 40 subpackages. All are allowlisted (import name = distribution) on top of
the default allowlist.

Daemons: `codecell serve --config FILE --listen 127.0.0.1:<free port> --data-dir <tmp>` started by
this script, two of them, each with the same config: [packages] index_url = "" (no index),
wheel_dir = the wheels, the allowlist above; [executions] queue = 256, per_user = 256 (every
request uses the user id "bench"); [shutdown] grace_seconds = 2; warm interpreters (the default).
The environment has no PIP_* or proxy variables. "plain" never installs anything (it has no package
environment); "pkgs" gets every install. Measuring starts once both say interpreters.mode = "warm"
with every pool ready, and after 3 print('hi') warm-up executions on each (not timed).
1. Install cost, on "pkgs", package by package, with the methods interleaved (alternating which
   goes first):
   (c) codecell  the wall time of POST /v1/packages {"packages": [name], "user_id": "bench"} for a
                 package not installed yet: a sandboxed pip into a new environment built beside the
                 live one by hard links, then the switch; and the "seconds" codecell reports for it.
   (p) pip       unsandboxed `/usr/bin/python3 -m pip install --prefix <fresh temp dir> --no-index
                 --find-links <wheels> --only-binary=:all: --no-cache-dir
                 --disable-pip-version-check <distribution>` (the old bot's way, minus its venv;
                 removing the prefix is not timed).
   First the --packages small ones (medians and codecell ÷ pip), then ccbench-big, then the
   --after-big small ones ccbench-postN: the environment then holds the big package's files too,
   which every later install hard-links into its new environment, hands over (chown) and, once
   switched, removes in its old place (the growth: their median vs the first small ones'). The
   number of files in the live environment before each install is shown (.pyc and .dist-info
   included). Then the same request once more per small package: answered "already_installed"
   without pip (median).
2. Import-triggered installs, on "pkgs": per ccbench-impN an execution of `import ccbench_impN;
   print(ccbench_impN.VALUE)` while it is not installed (the service runs it, sees the
   ModuleNotFoundError, installs, runs it again): its wall time, "package_install_seconds",
   "rerun_after_install", "interpreter"; then the same execution again (the package is there).
3. Overhead of the environment on a plain execution: `print('hi')` on "plain" (no environment) and
   on "pkgs" (an environment holding every package above), --runs each, interleaved run by run;
   every result must say "interpreter": "warm" and print hi (else it counts as a failure). Medians,
   p90, the difference and the ratio pkgs ÷ plain, and the in-sandbox "execution_time" medians.
   "plain" is stopped after this.
4. Refresh under load, on "pkgs": --clients concurrent clients loop executions (each client sends
   its next one when the previous is answered) of: import ccbench_a; sleep 0.2 s; then import a
   submodule of it that was not imported yet and read its data.txt, and print VALUE and the token
   (checked). For --baseline-seconds there is no refresh; then POST /v1/packages/refresh is called
   every --refresh-every seconds (the next one right away if the previous took longer) until
   --load-seconds have passed and the last refresh has answered; then the clients stop. A refresh
   rebuilds the whole environment from scratch with pip. Reported: executions done, failures
   (HTTP != 200, "status" != "ok" or wrong output: all must be 0), p50/p95 latency of executions
   before the first refresh, of those that overlapped a refresh, and of the others after the
   first refresh; each refresh's wall time and "seconds", kept/dropped; the 3 slowest executions
   with their in-sandbox "execution_time" (the rest of their wall time was spent around the
   sandbox: the lease, records, removing a replaced environment, HTTP); and the directories in
   <data_dir>/packages/envs/ (every directory counts: environments, .partial, .trash-) right after
   the load and polled every 50 ms for up to 10 s until only the live one is left.
Times are wall clock from the client's side (time.perf_counter), one new loopback connection per
request. Nothing is asserted on times; the ratios are measured in the same run. At the end a
one-line JSON summary of every number, prefixed "JSON: ". Only the standard library; Debian's
/usr/bin/python3 with python3-pip, python3-setuptools and python3-wheel.
The binary: --bin, else $CODECELL_BIN, else <repo>/build/codecell if it exists, else the snapshot
/tmp/cc-snap/codecell.
"""
import argparse
import concurrent.futures
import json
import os
import pathlib
import platform
import secrets
import shutil
import signal
import string
import subprocess
import sys
import tempfile
import threading
import time

from serve_daemon import (Interrupted, ServeDaemon, interrupted, on_sigterm,
                          print_failures_and_load, stop_all, median, ms, percentile)

REPO = pathlib.Path(__file__).resolve().parents[1]
SNAPSHOT = "/tmp/cc-snap/codecell"
PYTHON = "/usr/bin/python3"
USER = "bench"
ENVS_POLL_S = 10
BIG_SUBPACKAGES = 40
LOAD_PACKAGE = "ccbench_a"
LOAD_SLEEP_S = 0.2


def default_bin():
    if os.environ.get("CODECELL_BIN"):
        return os.environ["CODECELL_BIN"]
    built = REPO / "build" / "codecell"
    return str(built) if os.access(built, os.X_OK) else SNAPSHOT


def clean_env():
    """The environment of the daemons and of the plain pip: no PIP_*, proxy or CODECELL_*
    variables (this machine sets PIP_FIND_LINKS, which would add a second wheel source)."""
    drop = ("PIP_", "CODECELL_", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY")
    return {k: v for k, v in os.environ.items() if not k.upper().startswith(drop)}


# --------------------------------------------------------------------------- cleanup bookkeeping
STOP = threading.Event()  # set on Ctrl-C / SIGTERM / error: load clients stop


# --------------------------------------------------------------------------- wheels
class Package:
    def __init__(self, key, files):
        self.key = key                           # "a", "post1", "imp1", "big"
        self.module = f"ccbench_{key}"            # import name
        self.dist = f"ccbench-{key}"              # distribution (requirement)
        self.value = f"{key}-1"
        self.token = secrets.token_hex(8)         # the content of data.txt
        self.files = files                        # files in the package directory
        self.wheel = None
        self.wheel_bytes = 0


def letters(i):
    """0 -> a, 25 -> z, 26 -> aa, ..."""
    s = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        s = string.ascii_lowercase[r] + s
    return s


def small_tree(pkg_dir, pkg):
    """pkg.files files: __init__.py (~300 lines), data.txt, and pkg.files - 2 small modules."""
    pkg_dir.mkdir(parents=True)
    lines = [f'"""ccbench package {pkg.key}: generated by bench/packages.py."""',
             f"VALUE = {pkg.value!r}", f"TOKEN = {pkg.token!r}", ""]
    for i in range(70):
        lines += [f"def f_{i:03d}(x, y=1):",
                  f"    '''Function {i}.'''",
                  f"    return (x * {i + 3} + y) % {i + 7}", ""]
    (pkg_dir / "__init__.py").write_text("\n".join(lines) + "\n")
    (pkg_dir / "data.txt").write_text(pkg.token + "\n")
    for m in range(max(pkg.files - 2, 0)):
        body = [f'"""Module {m} of {pkg.module}."""', f"NUMBER = {m}", ""]
        for j in range(5):
            body += [f"def g_{j}(x):", f"    return x + {m * 10 + j}", ""]
        (pkg_dir / f"mod_{m:02d}.py").write_text("\n".join(body) + "\n")


def big_tree(pkg_dir, pkg):
    """pkg.files files in BIG_SUBPACKAGES subpackages (plus the top __init__.py and data.txt)."""
    pkg_dir.mkdir(parents=True)
    (pkg_dir / "__init__.py").write_text(
        f"VALUE = {pkg.value!r}\nTOKEN = {pkg.token!r}\n")
    (pkg_dir / "data.txt").write_text(pkg.token + "\n")
    left = max(pkg.files - 2, 0)
    per = -(-left // BIG_SUBPACKAGES) if left else 0
    for s in range(BIG_SUBPACKAGES):
        if left <= 0:
            break
        sub = pkg_dir / f"sub_{s:02d}"
        sub.mkdir()
        (sub / "__init__.py").write_text(f"SUB = {s}\n")
        left -= 1
        for m in range(min(per - 1, left)):
            (sub / f"m_{m:03d}.py").write_text(
                f"def h(x):\n    return x * {s} + {m}\n\nNAME = 'sub_{s:02d}.m_{m:03d}'\n")
            left -= 1


def build_wheel(root, wheel_dir, pkg):
    proj = root / "src" / pkg.key
    tree = big_tree if pkg.key == "big" else small_tree
    tree(proj / pkg.module, pkg)
    (proj / "setup.py").write_text(
        "from setuptools import setup, find_packages\n"
        f"setup(name={pkg.dist!r}, version='1.0', packages=find_packages(),\n"
        f"      package_data={{{pkg.module!r}: ['data.txt']}})\n")
    r = subprocess.run([PYTHON, "setup.py", "-q", "bdist_wheel", "-d", str(wheel_dir)], cwd=proj,
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"building {pkg.dist}: {r.stderr.strip()[-800:]}")
    norm = pkg.dist.replace("-", "_")
    wheels = list(wheel_dir.glob(f"{norm}-1.0-*.whl"))
    if len(wheels) != 1:
        raise RuntimeError(f"building {pkg.dist}: no single wheel in {wheel_dir}: {wheels}")
    pkg.wheel, pkg.wheel_bytes = wheels[0], wheels[0].stat().st_size
    shutil.rmtree(proj, ignore_errors=True)


# --------------------------------------------------------------------------- the daemons
def warm_with_pools(interpreters):
    """interpreters.mode = "warm" with every pool ready."""
    pools = (interpreters or {}).get("pools") or []
    return interpreters.get("mode") == "warm" and pools and all(p.get("ready") for p in pools)


class Daemon(ServeDaemon):
    HTTP_TIMEOUT = 300  # a request that runs pip
    STATUS_TIMEOUT = 10

    def __init__(self, root, name, binary, wheel_dir, packages):
        allow = "".join(f'{p.module} = "{p.dist}"\n' for p in packages)
        super().__init__(root, name, binary, clean_env(), ready=warm_with_pools,
                         not_ready="not warm",
                         extra_config=(f'[packages]\nindex_url = ""\nwheel_dir = "{wheel_dir}"\n'
                                       "[packages.allowlist]\n" + allow))

    def post(self, path, obj):
        """(seconds, HTTP status, parsed JSON or None, raw body)."""
        body = json.dumps(obj).encode()
        t = time.perf_counter()
        status, data = self.request("POST", path, body)
        elapsed = time.perf_counter() - t
        try:
            parsed = json.loads(data)
        except ValueError:
            parsed = None
        return elapsed, status, parsed, data

    def status(self):
        status, data = self.request("GET", "/v1/status", timeout=10)
        if status != 200:
            raise ValueError(f"/v1/status answered {status}: {data[:200]!r}")
        return json.loads(data)

    def execute(self, code):
        return self.post("/v1/executions", {"user_id": USER, "code": code})

    # The package environment on disk.
    def packages_root(self):
        return self.data_dir / "packages"

    def env_files(self):
        """Regular files in the live environment (0 without one)."""
        current = self.packages_root() / "current"
        if not current.exists():
            return 0
        return sum(len(files) for _, _, files in os.walk(current.resolve()))

    def env_dirs(self):
        envs = self.packages_root() / "envs"
        try:
            return sorted(e.name for e in envs.iterdir() if e.is_dir() and not e.is_symlink())
        except OSError:
            return []


# --------------------------------------------------------------------------- helpers



def fmt_s(s):
    if s is None:
        return "—"
    return f"{s * 1000:.1f} ms" if s < 1 else f"{s:.2f} s"


def ratio(a, b):
    return None if not a or not b else round(a / b, 2)


def fmt_x(r):
    return "—" if r is None else f"{r:.2f}×"


def plain_pip(pkg, wheel_dir, scratch):
    """The old bot's install, unsandboxed, into a fresh prefix: (seconds, problem or None)."""
    prefix = pathlib.Path(tempfile.mkdtemp(prefix="prefix-", dir=scratch))
    argv = [PYTHON, "-m", "pip", "install", "--prefix", str(prefix), "--no-index",
            "--find-links", str(wheel_dir), "--only-binary=:all:", "--no-cache-dir",
            "--disable-pip-version-check", pkg.dist]
    try:
        t = time.perf_counter()
        r = subprocess.run(argv, capture_output=True, text=True, env=clean_env(), timeout=600)
        elapsed = time.perf_counter() - t
        problem = None
        if r.returncode != 0:
            problem = f"pip exit {r.returncode}: {r.stderr.strip()[-300:]}"
        elif not list(prefix.glob(f"**/{pkg.module}/data.txt")):
            problem = f"pip: {pkg.module}/data.txt not found under the prefix"
        return elapsed, problem
    finally:
        shutil.rmtree(prefix, ignore_errors=True)


def codecell_install(daemon, pkg, expect="installed"):
    """POST /v1/packages for one package: a dict of what was measured."""
    files_before = daemon.env_files()
    wall, http_status, j, raw = daemon.post("/v1/packages",
                                            {"packages": [pkg.module], "user_id": USER})
    row = {"package": pkg.dist, "files_before": files_before, "wall_s": round(wall, 4),
           "http": http_status, "problem": None}
    if http_status != 200 or not j:
        row["problem"] = f"HTTP {http_status}: {raw[:300]!r}"
        return row
    entries = j.get("packages") or []
    p = entries[0] if entries else {}
    row.update(status=p.get("status"), seconds=p.get("seconds"), version=p.get("version"),
               install_seconds=j.get("install_seconds"))
    if p.get("status") != expect:
        row["problem"] = f"status {p.get('status')!r}, expected {expect!r}: {json.dumps(p)[:300]}"
    return row


# --------------------------------------------------------------------------- 1. install cost
def measure_installs(daemon, small, posts, big, wheel_dir, scratch, failures):
    rows = []

    def one(pkg, i):
        order = ("c", "p") if i % 2 == 0 else ("p", "c")
        row = pip_s = pip_problem = None
        for m in order:
            if m == "c":
                row = codecell_install(daemon, pkg)
            else:
                pip_s, pip_problem = plain_pip(pkg, wheel_dir, scratch)
        row["pip_s"] = round(pip_s, 4)
        row["pip_problem"] = pip_problem
        row["files_after"] = daemon.env_files()
        for what in ("problem", "pip_problem"):
            if row[what]:
                who = "codecell" if what == "problem" else "pip"
                failures.append(f"install of {pkg.dist} ({who}): {row[what]}")
        rows.append(row)
        print(f"  install {pkg.dist}: codecell {row['wall_s']:.2f} s, pip {pip_s:.2f} s "
              f"({row['files_before']} files in the environment before)", file=sys.stderr)

    for i, pkg in enumerate(small):
        one(pkg, i)
    if big:
        one(big, len(small))
    for i, pkg in enumerate(posts):
        one(pkg, len(small) + 1 + i)

    repeats = []
    for pkg in small:
        r = codecell_install(daemon, pkg, expect="already_installed")
        repeats.append(r)
        if r["problem"]:
            failures.append(f"repeated install of {pkg.dist}: {r['problem']}")
    return rows, repeats


# --------------------------------------------------------------------------- 2. import-triggered
def measure_imports(daemon, pkgs, failures):
    rows = []
    for pkg in pkgs:
        code = f"import {pkg.module}\nprint({pkg.module}.VALUE)\n"
        row = {"package": pkg.dist, "files_before": daemon.env_files()}
        for label in ("first", "second"):
            wall, http_status, j, raw = daemon.execute(code)
            r = {"wall_s": round(wall, 4), "http": http_status}
            problem = None
            if http_status != 200 or not j:
                problem = f"HTTP {http_status}: {raw[:300]!r}"
            else:
                r.update(status=j.get("status"), interpreter=j.get("interpreter"),
                         execution_time=j.get("execution_time"),
                         package_install_seconds=j.get("package_install_seconds"),
                         rerun=bool(j.get("rerun_after_install")),
                         installed=j.get("installed_packages"),
                         installs=[(p.get("status"), p.get("seconds"))
                                   for p in j.get("package_installs") or []])
                if j.get("status") != "ok" or j.get("output") != pkg.value + "\n":
                    problem = (f"status {j.get('status')!r}, output {j.get('output', '')[:80]!r}, "
                               f"error {j.get('error', '')[-200:]!r}")
                elif label == "first" and not r["rerun"]:
                    problem = "no rerun_after_install on the first execution"
                elif label == "second" and r["rerun"]:
                    problem = "rerun_after_install on the second execution"
            r["problem"] = problem
            if problem:
                failures.append(f"import-triggered {pkg.dist}, {label} execution: {problem}")
            row[label] = r
        rows.append(row)
        print(f"  import-triggered {pkg.dist}: {row['first']['wall_s']:.2f} s, then "
              f"{row['second']['wall_s'] * 1000:.0f} ms", file=sys.stderr)
    return rows


# --------------------------------------------------------------------------- 3. overhead
def measure_overhead(daemons, runs, failures):
    tallies = {name: {"times": [], "server": [], "failed": 0, "not_warm": 0, "errors": []}
               for name in daemons}

    def once(name, d, record):
        wall, http_status, j, raw = d.execute("print('hi')\n")
        problem = None
        if http_status != 200 or not j:
            problem = f"HTTP {http_status}: {raw[:200]!r}"
        elif j.get("status") != "ok" or j.get("output") != "hi\n":
            problem = f"status {j.get('status')!r}, output {j.get('output', '')[:80]!r}"
        elif j.get("interpreter") != "warm":
            problem = f"interpreter {j.get('interpreter')!r}, expected 'warm'"
            if record:
                tallies[name]["not_warm"] += 1
        if not record:
            return
        t = tallies[name]
        if problem:
            t["failed"] += 1
            if len(t["errors"]) < 3:
                t["errors"].append(problem)
        else:
            t["times"].append(wall)
            t["server"].append(j.get("execution_time"))

    for _ in range(3):
        for name, d in daemons.items():
            once(name, d, False)
    for i in range(runs):
        items = list(daemons.items())
        if i % 2:
            items.reverse()
        for name, d in items:
            once(name, d, True)
        print(f"\r  print('hi') overhead: {i + 1}/{runs}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    out = {}
    for name, t in tallies.items():
        out[name] = {"n": len(t["times"]), "failed": t["failed"], "not_warm": t["not_warm"],
                     "median_ms": ms(median(t["times"])),
                     "p90_ms": ms(percentile(t["times"], 90)),
                     "server_median_ms": ms(median(t["server"]))}
        if t["failed"]:
            failures.append(f"print('hi') on {name}: {t['failed']} failed, e.g. {t['errors'][0]}")
    return out


# --------------------------------------------------------------------------- 4. refresh under load
def load_code(pkg):
    return (f"import {pkg.module}, os, time\n"
            f"time.sleep({LOAD_SLEEP_S})\n"
            f"from {pkg.module} import mod_07\n"
            f"with open(os.path.join(os.path.dirname({pkg.module}.__file__), 'data.txt')) as f:\n"
            f"    token = f.read().strip()\n"
            f"print({pkg.module}.VALUE, mod_07.NUMBER, token)\n")


def measure_refresh_load(daemon, pkg, clients, baseline_s, load_s, every_s, failures):
    code = load_code(pkg)
    expected = f"{pkg.value} 7 {pkg.token}\n"
    records, lock = [], threading.Lock()  # (start, end, problem, interpreter, execution_time)
    refreshes = []
    done = threading.Event()

    def client():
        while not done.is_set() and not STOP.is_set():
            t0 = time.perf_counter()
            problem, interp, server = None, None, None
            try:
                _, http_status, j, raw = daemon.execute(code)
                if http_status != 200 or not j:
                    problem = f"HTTP {http_status}: {raw[:200]!r}"
                else:
                    interp, server = j.get("interpreter"), j.get("execution_time")
                    if j.get("status") != "ok":
                        problem = (f"status {j.get('status')!r}: "
                                   f"{(j.get('error') or '')[-300:]!r}")
                    elif j.get("output") != expected:
                        problem = f"output {j.get('output', '')[:120]!r}"
                    elif j.get("rerun_after_install"):
                        problem = "rerun_after_install"
            except Exception as e:  # noqa: BLE001 - a failed request is a measured failure
                problem = f"{type(e).__name__}: {e}"
            t1 = time.perf_counter()
            with lock:
                records.append((t0, t1, problem, interp, server))

    pool = concurrent.futures.ThreadPoolExecutor(clients)
    try:
        start = time.perf_counter()
        futures = [pool.submit(client) for _ in range(clients)]
        first = start + baseline_s
        end_of_refreshes = first + load_s
        next_at = first
        while True:
            now = time.perf_counter()
            if now >= end_of_refreshes:
                break
            if now < next_at:
                if STOP.wait(min(next_at - now, 0.1)):
                    raise Interrupted("stopping")
                continue
            r0 = time.perf_counter()
            wall, http_status, j, raw = daemon.post("/v1/packages/refresh", {})
            r1 = time.perf_counter()
            rec = {"start": r0, "end": r1, "wall_s": round(wall, 3), "http": http_status,
                   "refreshed": (j or {}).get("refreshed"), "seconds": (j or {}).get("seconds"),
                   "kept": len((j or {}).get("kept") or []),
                   "dropped": len((j or {}).get("dropped") or []),
                   "environment": (j or {}).get("environment"),
                   "error": (j or {}).get("error") if j else raw[:300].decode(errors="replace"),
                   "env_dirs_after": len(daemon.env_dirs())}
            refreshes.append(rec)
            if http_status != 200 or not rec["refreshed"]:
                failures.append(f"refresh {len(refreshes)}: HTTP {http_status}, {rec['error']}")
            print(f"  refresh {len(refreshes)} at {r0 - start:.1f} s: {wall:.2f} s "
                  f"({sum(1 for _ in records)} executions so far)", file=sys.stderr)
            next_at = max(r0 + every_s, r1)
        done.set()
        for f in futures:
            f.result()
        stop = time.perf_counter()
    finally:
        done.set()
        pool.shutdown(wait=True, cancel_futures=True)

    # The old environments: right after the load, then polled until only the live one is left.
    dirs_at_end = daemon.env_dirs()
    t = time.perf_counter()
    dirs = dirs_at_end
    while len(dirs) > 1 and time.perf_counter() - t < ENVS_POLL_S:
        time.sleep(0.05)
        dirs = daemon.env_dirs()
    gone_after = time.perf_counter() - t if len(dirs) <= 1 else None

    windows = [(r["start"], r["end"]) for r in refreshes]
    first_refresh = windows[0][0] if windows else float("inf")
    groups = {"before": [], "during": [], "between": []}
    failed, errors, not_warm = 0, [], 0
    for t0, t1, problem, interp, _ in records:
        if problem:
            failed += 1
            if len(errors) < 5:
                errors.append(problem)
            continue
        if interp != "warm":
            not_warm += 1
        if t1 <= first_refresh:
            groups["before"].append(t1 - t0)
        elif any(t0 < we and t1 > ws for ws, we in windows):
            groups["during"].append(t1 - t0)
        else:
            groups["between"].append(t1 - t0)
    if failed:
        failures.append(f"refresh under load: {failed} of {len(records)} executions failed, "
                        f"e.g. {errors[0]}")
    # The slowest executions, where they fell: the service's execution_time (in the sandbox) vs
    # the wall time says whether the extra was inside the sandbox or around it.
    slowest = []
    for t0, t1, problem, interp, server in sorted(records, key=lambda r: r[0] - r[1])[:3]:
        near = min(refreshes, key=lambda r: min(abs(t0 - r["start"]), abs(t0 - r["end"])),
                   default=None)
        slowest.append({"wall_ms": ms(t1 - t0), "in_sandbox_ms": ms(server),
                        "start_s": round(t0 - start, 2), "end_s": round(t1 - start, 2),
                        "failed": bool(problem),
                        "refresh": None if near is None else refreshes.index(near) + 1})
    if len(dirs) > 1:
        failures.append(f"refresh under load: {len(dirs)} directories still in envs/ "
                        f"{ENVS_POLL_S} s after the load: {dirs}")
    return {
        "executions": len(records), "failed": failed, "errors": errors, "not_warm": not_warm,
        "wall_s": round(stop - start, 2),
        "throughput_per_s": round((len(records) - failed) / (stop - start), 1),
        "latency": {k: {"n": len(v), "p50_ms": ms(percentile(v, 50)),
                        "p95_ms": ms(percentile(v, 95)), "max_ms": ms(max(v) if v else None)}
                    for k, v in groups.items()},
        "refreshes": [{k: v for k, v in r.items() if k not in ("start", "end")}
                      | {"at_s": round(r["start"] - start, 2)} for r in refreshes],
        "slowest": slowest,
        "env_dirs_at_end": dirs_at_end, "env_dirs_final": dirs,
        "env_gone_after_s": None if gone_after is None else round(gone_after, 2),
    }


# --------------------------------------------------------------------------- main
# The numeric options: flag, type, default, help (%(default)s: argparse puts in the default).
NUMBERS = [
    ("--packages", int, 5, "fresh small packages installed and timed in part 1 (%(default)s)"),
    ("--files", int, 50, "files per small package (%(default)s)"),
    ("--big-files", int, 2000, "files of ccbench-big (%(default)s); 0 = no big package"),
    ("--after-big", int, 2,
     "small packages installed after ccbench-big, for the growth (%(default)s)"),
    ("--imports", int, 2, "packages installed by a failed import in part 2 (%(default)s)"),
    ("--runs", int, 40, "print('hi') executions per daemon in part 3 (%(default)s)"),
    ("--clients", int, 8, "concurrent clients in part 4 (%(default)s)"),
    ("--baseline-seconds", float, 5, "load before the first refresh in part 4 (%(default)s)"),
    ("--load-seconds", float, 20, "load while refreshing in part 4 (%(default)s)"),
    ("--refresh-every", float, 4, "seconds between refreshes in part 4 (%(default)s)"),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bin", default=default_bin(),
                        help="the codecell binary (default: $CODECELL_BIN, else build/codecell "
                             f"if it exists, else {SNAPSHOT})")
    for flag, kind, default, what in NUMBERS:
        parser.add_argument(flag, type=kind, default=default, help=what)
    args = parser.parse_args()
    if args.big_files <= 0:
        args.after_big = 0
    if os.geteuid() != 0:
        sys.exit("run as root (codecell serve needs it)")
    if not os.access(args.bin, os.X_OK):
        sys.exit(f"{args.bin} not found: build first (bash scripts/build.sh) or pass --bin")
    if args.packages < 1 or args.files < 10:
        sys.exit("--packages must be >= 1 and --files >= 10 (part 4 imports ccbench_a.mod_07)")

    signal.signal(signal.SIGTERM, on_sigterm)
    root = pathlib.Path(tempfile.mkdtemp(prefix="codecell-bench-pkgs-"))
    daemons = {}
    failures = []
    try:
        wheel_dir = root / "wheels"
        wheel_dir.mkdir()
        scratch = root / "scratch"
        scratch.mkdir()
        small = [Package(letters(i), args.files) for i in range(args.packages)]
        posts = [Package(f"post{i + 1}", args.files) for i in range(args.after_big)]
        imports = [Package(f"imp{i + 1}", args.files) for i in range(args.imports)]
        big = Package("big", args.big_files) if args.big_files > 0 else None
        every = small + posts + imports + ([big] if big else [])
        t = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(2) as ex:
            for f in [ex.submit(build_wheel, root, wheel_dir, p) for p in every]:
                f.result()
        build_s = time.perf_counter() - t
        print(f"  built {len(every)} wheels in {build_s:.1f} s", file=sys.stderr)

        for name in ("plain", "pkgs"):
            daemons[name] = Daemon(root, name, args.bin, wheel_dir, every)
            daemons[name].spawn()
        for name, d in daemons.items():
            print(f"  waiting for {name}: interpreters.mode = \"warm\"", file=sys.stderr)
            d.wait_ready()
            print(f"  {name} ready after {d.ready_s:.1f} s", file=sys.stderr)
        pkgs = daemons["pkgs"]
        for d in daemons.values():
            for _ in range(3):
                d.execute("print('hi')\n")

        commit = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"],
                                capture_output=True, text=True).stdout.strip() or "?"
        pip_version = subprocess.run([PYTHON, "-m", "pip", "--version"], capture_output=True,
                                     text=True, env=clean_env()).stdout.split(" from ")[0]
        meta = {"commit": commit, "bin": args.bin, "host": platform.node(),
                "kernel": platform.release(), "cores": os.cpu_count(),
                "date": time.strftime("%Y-%m-%d %H:%M"), "pip": pip_version,
                "args": {k: v for k, v in vars(args).items() if k != "bin"},
                "wheels": {p.dist: {"files": p.files, "bytes": p.wheel_bytes} for p in every},
                "wheel_build_s": round(build_s, 1),
                "ready_s": {n: round(d.ready_s, 1) for n, d in daemons.items()},
                "load_before": round(os.getloadavg()[0], 2)}
        print(f"codecell {commit} ({args.bin}), {meta['host']}, Linux {meta['kernel']}, "
              f"{meta['cores']} cores, {meta['date']}, {pip_version}; --packages {args.packages} "
              f"--files {args.files} --big-files {args.big_files} --after-big {args.after_big} "
              f"--imports {args.imports} "
              f"--runs {args.runs} --clients {args.clients} --baseline-seconds "
              f"{args.baseline_seconds:g} --load-seconds {args.load_seconds:g} --refresh-every "
              f"{args.refresh_every:g}", flush=True)

        installs, repeats = measure_installs(pkgs, small, posts, big, wheel_dir, scratch,
                                             failures)
        imported = measure_imports(pkgs, imports, failures)
        overhead = measure_overhead(daemons, args.runs, failures)
        overhead_env_files = pkgs.env_files()
        daemons["plain"].stop()  # part 4 has the machine to itself
        load = measure_refresh_load(pkgs, small[0], args.clients, args.baseline_seconds,
                                    args.load_seconds, args.refresh_every, failures)
        try:
            status = pkgs.status().get("packages")
        except (OSError, ValueError) as e:
            status = {"error": f"{type(e).__name__}: {e}"}
        meta["load_after"] = round(os.getloadavg()[0], 2)

        summary = summarize(meta, small, installs, repeats, imported, overhead,
                            overhead_env_files, load, status, failures)
        report(summary)
        print("\nJSON: " + json.dumps(summary, separators=(",", ":"), ensure_ascii=False))
    except (KeyboardInterrupt, Interrupted) as e:
        return interrupted(e)
    finally:
        STOP.set()
        stop_all(daemons.values())
        shutil.rmtree(root, ignore_errors=True)
    return 0


# --------------------------------------------------------------------------- summary and report
def summarize(meta, small, installs, repeats, imported, overhead, overhead_env_files, load,
              status, failures):
    n_small = len(small)
    first = installs[:n_small]
    ok = [r for r in first if not r["problem"] and not r["pip_problem"]]
    c_med = median([r["wall_s"] for r in ok])
    p_med = median([r["pip_s"] for r in ok])
    s_med = median([r.get("seconds") for r in ok])
    for r in installs:
        r["ratio"] = ratio(r["wall_s"], r["pip_s"])
    later = [r for r in installs if r["package"].startswith("ccbench-post") and not r["problem"]]
    l_med = median([r["wall_s"] for r in later])
    rep_ok = [r["wall_s"] for r in repeats if not r["problem"]]
    o = overhead
    return {
        "meta": meta,
        "installs": installs,
        "install_medians": {"n": len(ok), "codecell_wall_ms": ms(c_med),
                            "codecell_seconds_ms": ms(s_med), "pip_ms": ms(p_med),
                            "codecell_over_pip": ratio(c_med, p_med),
                            "after_big_n": len(later), "after_big_wall_ms": ms(l_med),
                            "after_big_files_before": (median([r["files_before"] for r in later])
                                                       if later else None),
                            "after_big_over_small": ratio(l_med, c_med),
                            "after_big_minus_small_ms": (round((l_med - c_med) * 1000, 1)
                                                         if l_med and c_med else None)},
        "already_installed": {"n": len(rep_ok), "median_ms": ms(median(rep_ok)),
                              "max_ms": ms(max(rep_ok) if rep_ok else None)},
        "imports": imported,
        "overhead": {**o, "env_files": overhead_env_files,
                     "pkgs_over_plain": ratio(o["pkgs"]["median_ms"], o["plain"]["median_ms"]),
                     "difference_ms": (round(o["pkgs"]["median_ms"] - o["plain"]["median_ms"], 2)
                                       if o["pkgs"]["median_ms"] and o["plain"]["median_ms"]
                                       else None)},
        "refresh_load": load,
        "status_packages": status,
        "failures": failures,
    }


def section(*lines, head):
    """A part of the report: a blank line, its lines, then its table's column heads with a rule as
    wide under them."""
    print()
    for line in lines:
        print(line)
    print(head)
    print("-" * len(head))


def report(s):
    m = s["meta"]
    w = m["wheels"]
    small = [d for d in w if d != "ccbench-big" and not d.startswith(("ccbench-imp",
                                                                       "ccbench-post"))]
    print(f"wheels (built in {m['wheel_build_s']} s, not timed): {len(small)} small of "
          f"{w[small[0]]['files']} files (~{w[small[0]]['bytes'] // 1024} KiB each)"
          + (f", ccbench-big of {w['ccbench-big']['files']} files "
             f"({w['ccbench-big']['bytes'] // 1024} KiB)" if "ccbench-big" in w else "")
          + f"; daemons warm after {m['ready_s']['plain']} s (plain) and "
            f"{m['ready_s']['pkgs']} s (pkgs)")

    section("1. install cost, first install of each package (POST /v1/packages on 'pkgs' vs a "
            "plain pip --prefix into a fresh dir)",
            head=f"{'package':<14}{'files in env':>13}{'(c) codecell':>14}{'reported':>11}"
                 f"{'(p) pip':>11}{'(c) ÷ (p)':>11}  status")
    for r in s["installs"]:
        st = r.get("status") or "—"
        if r["problem"] or r["pip_problem"]:
            st += " PROBLEM"
        print(f"{r['package']:<14}{r['files_before']:>13}{fmt_s(r['wall_s']):>14}"
              f"{fmt_s(r.get('seconds')):>11}{fmt_s(r['pip_s']):>11}{fmt_x(r['ratio']):>11}  {st}")
    im = s["install_medians"]
    print(f"{'median of the ' + str(im['n']) + ' small':<27}"
          f"{fmt_s(im['codecell_wall_ms'] and im['codecell_wall_ms'] / 1000):>14}"
          f"{fmt_s(im['codecell_seconds_ms'] and im['codecell_seconds_ms'] / 1000):>11}"
          f"{fmt_s(im['pip_ms'] and im['pip_ms'] / 1000):>11}{fmt_x(im['codecell_over_pip']):>11}")
    if im["after_big_n"]:
        grow = im["after_big_minus_small_ms"]
        print(f"growth: the {im['after_big_n']} small one(s) installed after ccbench-big (~"
              f"{im['after_big_files_before']:.0f} files in the environment) took median "
              f"{fmt_s(im['after_big_wall_ms'] / 1000)}, {fmt_x(im['after_big_over_small'])} the "
              f"first small ones' median" + ("" if grow is None else f" ({grow:+.0f} ms)"))
    print("(files in env: regular files in the live environment before the install, .pyc and "
          ".dist-info included; reported = the package's \"seconds\" in the answer)")
    a = s["already_installed"]
    print(f"repeated request (already_installed, no pip): median "
          f"{fmt_s(a['median_ms'] and a['median_ms'] / 1000)}, "
          f"max {fmt_s(a['max_ms'] and a['max_ms'] / 1000)} over {a['n']} requests")

    section("2. import-triggered install (execution `import X; print(X.VALUE)` of an approved, "
            "not installed package)",
            head=f"{'package':<15}{'1st wall':>10}{'pkg install':>13}{'rerun':>7}{'interp':>8}"
                 f"{'exec time':>11}{'2nd wall':>10}{'rerun':>7}{'interp':>8}")
    for r in s["imports"]:
        f, g = r["first"], r["second"]
        print(f"{r['package']:<15}{fmt_s(f['wall_s']):>10}"
              f"{fmt_s(f.get('package_install_seconds')):>13}{str(f.get('rerun', '—')):>7}"
              f"{str(f.get('interpreter')):>8}{fmt_s(f.get('execution_time')):>11}"
              f"{fmt_s(g['wall_s']):>10}{str(g.get('rerun', '—')):>7}"
              f"{str(g.get('interpreter')):>8}"
              + ("  PROBLEM" if f["problem"] or g["problem"] else ""))
    print("  (exec time = the rerun's in-sandbox execution_time; 1st wall - pkg install = the "
          "failed run + the rerun + HTTP)")

    o = s["overhead"]
    section(f"3. print('hi'), warm, interleaved: 'plain' (no package environment) vs 'pkgs' "
            f"(environment of {o['env_files']} files)",
            head=f"{'daemon':<8}{'n':>5}{'median':>11}{'p90':>11}{'in sandbox':>12}{'failed':>8}"
                 f"{'not warm':>10}")
    for name in ("plain", "pkgs"):
        r = o[name]
        print(f"{name:<8}{r['n']:>5}{fmt_s(r['median_ms'] and r['median_ms'] / 1000):>11}"
              f"{fmt_s(r['p90_ms'] and r['p90_ms'] / 1000):>11}"
              f"{fmt_s(r['server_median_ms'] and r['server_median_ms'] / 1000):>12}"
              f"{r['failed']:>8}{r['not_warm']:>10}")
    diff = o["difference_ms"]
    print(f"pkgs ÷ plain (median): {fmt_x(o['pkgs_over_plain'])}, difference "
          f"{'—' if diff is None else f'{diff:+.1f} ms'}")

    ld = s["refresh_load"]
    a = m["args"]
    section(f"4. refresh under load: {a['clients']} clients, import {LOAD_PACKAGE} + sleep "
            f"{LOAD_SLEEP_S} s + read its data, {a['baseline_seconds']:g} s without refreshes, "
            f"then POST /v1/packages/refresh every ~{a['refresh_every']:g} s for "
            f"{a['load_seconds']:g} s",
            f"executions: {ld['executions']} in {ld['wall_s']} s ({ld['throughput_per_s']}/s), "
            f"failed {ld['failed']}, not warm {ld['not_warm']}",
            head=f"{'latency':<34}{'n':>6}{'p50':>11}{'p95':>11}{'max':>11}")
    labels = {"before": "before the first refresh", "during": "overlapping a refresh",
              "between": "after the first, not overlapping"}
    for k, label in labels.items():
        r = ld["latency"][k]
        print(f"{label:<34}{r['n']:>6}{fmt_s(r['p50_ms'] and r['p50_ms'] / 1000):>11}"
              f"{fmt_s(r['p95_ms'] and r['p95_ms'] / 1000):>11}"
              f"{fmt_s(r['max_ms'] and r['max_ms'] / 1000):>11}"
              + ("  (none: every refresh took longer than --refresh-every)"
                 if k == "between" and not r["n"] else ""))
    for i, r in enumerate(ld["refreshes"], 1):
        extra = "" if r["refreshed"] else f" NOT refreshed: {r['error']}"
        print(f"  refresh {i} at {r['at_s']:>5.1f} s: wall {fmt_s(r['wall_s'])}, reported "
              f"{fmt_s(r['seconds'])}, kept {r['kept']}, dropped {r['dropped']}, "
              f"dirs in envs/ right after: {r['env_dirs_after']}{extra}")
    for r in ld["slowest"]:
        ref = ld["refreshes"][r["refresh"] - 1] if r["refresh"] else None
        sandbox = r["in_sandbox_ms"] and r["in_sandbox_ms"] / 1000
        print(f"  slowest execution: {r['start_s']:.2f}-{r['end_s']:.2f} s, wall "
              f"{fmt_s(r['wall_ms'] / 1000)}, in the sandbox {fmt_s(sandbox)}"
              + ("" if ref is None else f"; nearest refresh {r['refresh']}: {ref['at_s']:.2f}-"
                 f"{ref['at_s'] + ref['wall_s']:.2f} s"))
    gone = ld["env_gone_after_s"]
    print(f"envs/ after the load: {len(ld['env_dirs_at_end'])} dir(s) at once, "
          f"{len(ld['env_dirs_final'])} "
          + (f"after {gone} s" if gone is not None else f"still after {ENVS_POLL_S} s: "
             f"{ld['env_dirs_final']}"))
    st = s["status_packages"] or {}
    if "error" not in st:
        print(f"/v1/status packages: installs {st.get('installs')}, install_failures "
              f"{st.get('install_failures')}, pip_runs {st.get('pip_runs')}, refreshes "
              f"{json.dumps(st.get('refreshes'))}, refresh_error "
              f"{json.dumps(st.get('refresh_error'))}")
    print_failures_and_load(s["failures"], m, "much more than 2 means something else ran "
                            "meanwhile and the numbers are noisier")


if __name__ == "__main__":
    sys.exit(main())
