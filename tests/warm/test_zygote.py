"""The zygote process itself (ready line, single thread, pool) and that it really is warm."""
import os
import signal
import struct
import threading
from pathlib import Path

from .conftest import (DEFAULT_PRELOADS, SLOT_UID_MIN, Zygote, children_of, pid_alive,
                      proc_ns, proc_uids, run_warm, threads_of, wait_until)


def test_ready_line(zygote):
    r = zygote.ready
    assert r.get("pid") == zygote.pid, f"ready line pid {r.get('pid')} != process {zygote.pid}: {r}"
    assert r.get("pool_size") == 2, r
    assert isinstance(r.get("idle_pids"), list) and len(set(r["idle_pids"])) == 2, r
    assert all(isinstance(p, int) and p > 1 for p in r["idle_pids"]), r
    # (that idle_pids are the interpreters, not the inits: test_idle_children_die_with_the_zygote,
    # on a zygote no execution has used yet)
    assert isinstance(r.get("heap_in_huge_pages_mib"), (int, float)) and \
        r["heap_in_huge_pages_mib"] >= 0, f"no heap_in_huge_pages_mib: {r}"
    assert r.get("preloaded") == DEFAULT_PRELOADS, r
    assert r.get("failed") == {}, f"default preloads failed: {r}"
    assert isinstance(r.get("startup_seconds"), (int, float)) and r["startup_seconds"] > 0, r
    assert zygote.socket.is_socket(), f"{zygote.socket} is not a socket"
    assert zygote.socket.stat().st_mode & 0o077 == 0, \
        f"the zygote socket is accessible to others: {oct(zygote.socket.stat().st_mode)}"


THREADS_CODE = r'''
import threading, concurrent.futures, numpy, time
ts = [threading.Thread(target=time.sleep, args=(0.2,)) for _ in range(8)]
for t in ts: t.start()
with concurrent.futures.ThreadPoolExecutor(4) as ex:
    print(sum(ex.map(lambda x: x * x, range(100))))
a = numpy.random.rand(300, 300)
print(float((a @ a).sum()) > 0)
for t in ts: t.join()
'''


def test_zygote_single_threaded_and_pool_refilled(zygote):
    assert threads_of(zygote.pid) == [str(zygote.pid)], \
        f"the zygote has threads before any execution: {threads_of(zygote.pid)}"
    for _ in range(3):
        res = run_warm(zygote, THREADS_CODE)
        assert res["status"] == "ok", res.describe()
        assert res["output"] == "328350\nTrue\n", res.describe()
    tasks = threads_of(zygote.pid)
    assert tasks == [str(zygote.pid)], f"the zygote is no longer single-threaded: tasks {tasks}"
    inits, kids = zygote.wait_pool_full(10)   # asserts pool x (init + interpreter), nothing else
    assert len(kids) == zygote.pool, \
        f"the zygote has {len(kids)} interpreters after the executions, pool size {zygote.pool}"
    for k in kids + inits:
        uids = proc_uids(k)
        assert uids is not None and not any(u >= SLOT_UID_MIN for u in uids), \
            f"idle child {k} already runs as a slot uid {uids} (not idle?)"


def test_pool_refilled_after_concurrent_executions(zygote):
    results, errors = [], []

    def one(i):
        try:
            results.append(run_warm(zygote, f"import time; time.sleep(0.3); print({i})"))
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    ts = [threading.Thread(target=one, args=(i,)) for i in range(5)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, f"concurrent warm executions failed: {errors[0]}"
    assert sorted(r["output"] for r in results) == [f"{i}\n" for i in range(5)]
    inits, kids = zygote.wait_pool_full(10)
    assert len(kids) == len(inits) == zygote.pool, \
        f"children after a burst: inits {inits}, interpreters {kids} (pool {zygote.pool})"
    assert threads_of(zygote.pid) == [str(zygote.pid)], threads_of(zygote.pid)


def test_preloads_are_in_sys_modules_before_any_import(zygote):
    code = ("import sys\nprint('pandas' in sys.modules, 'numpy' in sys.modules, "
            "'matplotlib.pyplot' in sys.modules, 'scipy.stats' in sys.modules, "
            "'seaborn' in sys.modules)")
    res = run_warm(zygote, code)
    assert res["output"] == "True True True True True\n", \
        f"preloaded modules missing from a warm child's sys.modules\n{res.describe()}"


def test_pandas_describe(zygote):
    code = ("import pandas as pd\ndf = pd.DataFrame({'x': [1, 2, 3, 4], 'y': [10.0, 20.0, 30.0, "
            "40.0]})\nd = df.describe()\nprint(d.loc['mean', 'x'], d.loc['max', 'y'], "
            "int(d.loc['count', 'x']))\nprint(d)")
    res = run_warm(zygote, code)
    assert res["status"] == "ok", res.describe()
    assert res["output"].splitlines()[0] == "2.5 40.0 4", res.describe()
    assert "mean" in res["output"] and "std" in res["output"], res.describe()


def test_plot_comes_back_as_generated_file(zygote):
    code = ("import matplotlib.pyplot as plt, seaborn as sns, pandas as pd\n"
            "df = pd.DataFrame({'a': range(10), 'b': [v * v for v in range(10)]})\n"
            "sns.lineplot(data=df, x='a', y='b')\nplt.savefig('plot.png')\n"
            "df.to_csv('table.csv', index=False)\nprint('saved')")
    res = run_warm(zygote, code)
    assert res["status"] == "ok", res.describe()
    gen = {g["filename"]: g for g in res.get("generated_files", [])}
    assert set(gen) == {"plot.png", "table.csv"}, f"generated_files: {res.get('generated_files')}"
    png = gen["plot.png"]
    assert png.get("size", 0) > 1000, png
    path = Path(png["path"]) if png.get("path") else res.output_dir / res["execution_id"] / "plot.png"
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG: {data[:16]!r}"
    w, h = struct.unpack(">II", data[16:24])
    assert w > 100 and h > 100, (w, h)


def test_input_file_with_load_file(zygote, tmp_path):
    csv = tmp_path / "sales.csv"
    csv.write_text("month,sales\n1,10\n2,30\n3,20\n")
    res = run_warm(zygote, "df = load_file('sales.csv')\nprint(int(df['sales'].sum()))",
                   files=[csv])
    assert res["status"] == "ok" and res["output"] == "60\n", res.describe()


def test_custom_preloads_and_failed_preload():
    """--preload with an unknown module: still ready, reports it under 'failed'; a module not
    preloaded is not in sys.modules of the child."""
    z = Zygote(pool=1, preload="json,codecell_no_such_module_x", tag="pre")
    try:
        z.start()
        r = z.ready
        assert "json" in r.get("preloaded", []), r
        assert "codecell_no_such_module_x" in r.get("failed", {}), \
            f"an unimportable preload is not reported under 'failed': {r}"
        assert r.get("pool_size") == 1, r
        res = run_warm(z, "import sys\nprint('pandas' in sys.modules)")
        assert res["output"] == "False\n", \
            f"pandas is in sys.modules though it was not preloaded\n{res.describe()}"
        inits, kids = z.wait_pool_full(10)
        assert len(inits) == len(kids) == 1, children_of(z.pid)
    finally:
        pid = z.pid if z.proc else None
        if z.proc is not None and z.proc.poll() is None:
            z.proc.send_signal(signal.SIGTERM)
            z.proc.wait(10)
        socket_left = z.socket.exists()
        z.stop()
    assert z.proc.returncode == 0, f"SIGTERM: the zygote exited with {z.proc.returncode}"
    assert not socket_left, f"the zygote left its socket {z.socket} behind after SIGTERM"
    if pid:
        assert wait_until(lambda: not children_of(pid), 5), \
            f"children of the stopped zygote {pid} survive: {children_of(pid)}"


def test_idle_children_die_with_the_zygote():
    z = Zygote(pool=2, preload="", tag="die")
    z.start()
    inits, interps = z.wait_pool_full(10)
    kids = inits + interps
    assert len(kids) == 4, kids
    assert sorted(z.ready.get("idle_pids", [])) == interps, \
        f"ready line idle_pids {z.ready.get('idle_pids')} are not the idle interpreters " \
        f"{interps} (inits {inits})"
    z.kill()  # SIGKILL: no chance to clean up, the children must notice on their own
    gone = wait_until(lambda: not any(pid_alive(k) for k in kids), 5)
    assert gone, f"idle children {[k for k in kids if pid_alive(k)]} outlived their SIGKILLed " \
                 f"zygote {z.pid}"


def test_idle_pool_layout(zygote):
    """An idle warm child is an init (uid nobody, "codecell-init", pid 1, own empty mount
    namespace, own net/ipc/uts) plus the interpreter (root fork of the zygote, pid 2, joined the
    init's net/ipc/uts), both direct children of the zygote (pool_layout checks the pairing)."""
    inits, interps = zygote.wait_pool_full(10)
    for init in inits:
        mounts = Path(f"/proc/{init}/mountinfo").read_text().splitlines()
        assert len(mounts) == 1, f"init {init} sees more than its own root: {mounts}"
        assert os.listdir(f"/proc/{init}/root") == [], \
            f"the init {init}'s root is not empty: {os.listdir(f'/proc/{init}/root')}"
        assert threads_of(init) == [str(init)], f"init {init} has threads: {threads_of(init)}"
        caps = {l.split(":")[0]: int(l.split()[1], 16) for l in
                Path(f"/proc/{init}/status").read_text().splitlines()
                if l.startswith(("CapEff", "CapPrm"))}
        assert caps == {"CapEff": 0, "CapPrm": 0}, f"init {init} holds capabilities: {caps}"


def test_idle_children_hold_only_their_own_descriptors(zygote):
    """A forked interpreter starts with copies of every descriptor of the zygote, other
    executions' report pipes among them, and a report pipe reaches end of file (the end of an
    execution, for its supervisor) only when its last copy is closed. An idle interpreter keeps
    exactly stdio, its channel (3, a socket) and its report pipe (4); an init keeps its zygote-alive
    pipe (0) and its signalfd. Checked right after executions, while the pool refills."""
    for _ in range(3):
        res = run_warm(zygote, "print('x')")
        assert res["interpreter"] == "warm" and res["status"] == "ok", res.describe()
    inits, interps = zygote.wait_pool_full(10)

    def fds(pid):
        out = {}
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                out[int(fd)] = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                pass
        return out
    for k in interps:
        table = fds(k)
        assert sorted(table) == [0, 1, 2, 3, 4], f"idle interpreter {k} holds {table}"
        assert table[3].startswith("socket:") and table[4].startswith("pipe:"), table
    for k in inits:
        table = fds(k)
        assert sorted(table) == [0, 3], f"init {k} holds {table}"
        assert table[0].startswith("pipe:") and "signalfd" in table[3], table


def test_execution_consumes_one_pair(zygote):
    """After an execution the zygote has reaped the interpreter and killed its init: both pids
    are gone and the pool is refilled with a fresh pair."""
    inits, interps = zygote.wait_pool_full(10)
    pidns = {p: proc_ns(p, "pid") for p in inits + interps}
    res = run_warm(zygote, "print('one')")
    assert res["output"] == "one\n", res.describe()
    inits2, interps2 = zygote.wait_pool_full(10)
    gone_inits = sorted(set(inits) - set(inits2))
    gone_interps = sorted(set(interps) - set(interps2))
    assert len(gone_inits) == 1 and len(gone_interps) == 1, \
        f"one execution did not consume exactly one pair: inits {inits} -> {inits2}, " \
        f"interpreters {interps} -> {interps2}"
    assert pidns[gone_inits[0]] == pidns[gone_interps[0]], \
        f"the init {gone_inits[0]} that went is not the one of the used interpreter " \
        f"{gone_interps[0]}"
    gone = gone_inits + gone_interps
    assert wait_until(lambda: not any(pid_alive(p) for p in gone), 5), \
        f"the used pair {gone} is still alive: {[p for p in gone if pid_alive(p)]}"
