"""Each warm execution is a fresh fork of the zygote: fresh randomness, no state carried over."""
import random

from .conftest import SLOT_UID_MIN, run_cold, run_warm

RANDOM_CODE = r'''
import json, os, random, secrets
import numpy
print("@@" + json.dumps({
    "random": random.random(),
    "getrandbits": random.getrandbits(64),
    "numpy_global": numpy.random.rand(),
    "numpy_randint": int(numpy.random.randint(0, 2**62)),
    "urandom": os.urandom(8).hex(),
    "secrets": secrets.token_hex(),
}))
'''


def test_randomness_differs_between_executions(zygote):
    runs = [run_warm(zygote, RANDOM_CODE) for _ in range(4)]
    values = [r.payload() for r in runs]
    for key in values[0]:
        seen = [v[key] for v in values]
        assert len(set(seen)) == len(seen), \
            f"{key}: {len(seen)} warm executions drew repeated values {seen} (state inherited " \
            f"from the zygote instead of a per-child reseed)"


def test_numpy_global_state_is_not_the_import_time_state(zygote):
    """The child's numpy global RandomState must not equal the one of a process that seeded at
    import time and never drew: comparing two children's full state vectors proves a reseed."""
    code = r'''
import json, numpy
st = numpy.random.get_state()
print("@@" + json.dumps({"key": [int(x) for x in st[1][:8]], "pos": int(st[2])}))
'''
    a, b = (run_warm(zygote, code).payload() for _ in range(2))
    assert a["key"] != b["key"], f"two warm children share numpy's global MT19937 state: {a} {b}"


LEAK_CODE = r'''
import builtins, json, os, sys
import numpy, pandas, matplotlib
numpy.codecell_leak = 42
pandas.set_option("display.max_rows", 7)
matplotlib.rcParams["lines.linewidth"] = 17.5
builtins.codecell_leak_builtin = 1
LEAK_GLOBAL = "leaked"
sys.modules["codecell_leak_module"] = type(sys)("codecell_leak_module")
sys.path.append("/codecell-leak-path")
os.environ["CODECELL_LEAK_ENV"] = "1"
os.chdir("/tmp")
with open("/tmp/codecell-leak.txt", "w") as f:
    f.write("leak")
import random
random.seed(1234)
numpy.random.seed(1234)
print("@@" + json.dumps({"set": True, "cwd": os.getcwd()}))
'''

CHECK_CODE = r'''
import builtins, json, os, sys
import numpy, pandas, matplotlib
print("@@" + json.dumps({
    "numpy_attr": hasattr(numpy, "codecell_leak"),
    "pandas_max_rows": pandas.get_option("display.max_rows"),
    "mpl_linewidth": matplotlib.rcParams["lines.linewidth"],
    "builtin": hasattr(builtins, "codecell_leak_builtin"),
    "main_global": "LEAK_GLOBAL" in globals(),
    "module": "codecell_leak_module" in sys.modules,
    "sys_path": "/codecell-leak-path" in sys.path,
    "environ": "CODECELL_LEAK_ENV" in os.environ,
    "tmp_file": os.path.exists("/tmp/codecell-leak.txt"),
    "cwd": os.getcwd(),
}))
'''


def test_state_does_not_carry_over(zygote):
    leak = run_warm(zygote, LEAK_CODE)
    assert leak.get("status") == "ok", leak.describe()
    assert leak.payload()["set"] is True
    baseline = run_warm(zygote, CHECK_CODE)   # a child forked before or after: both must be clean
    # pool 2: by the third check at the latest, the child was forked after the leaking run
    for i in range(3):
        res = baseline if i == 0 else run_warm(zygote, CHECK_CODE)
        got = res.payload()
        leaked = {k: v for k, v in got.items()
                  if k not in ("pandas_max_rows", "mpl_linewidth", "cwd") and v}
        assert not leaked, f"check run {i}: state of a previous execution is visible: {leaked}"
        assert got["pandas_max_rows"] != 7, f"check run {i}: pandas option leaked: {got}"
        assert got["mpl_linewidth"] != 17.5, f"check run {i}: matplotlib rcParams leaked: {got}"
        assert got["cwd"] == "/mnt/data", f"check run {i}: working directory is {got['cwd']!r}"


def test_seed_in_one_execution_does_not_fix_the_next(zygote):
    run_warm(zygote, "import random, numpy; random.seed(7); numpy.random.seed(7)")
    code = "import random, numpy, json; print('@@' + json.dumps([random.random(), " \
           "numpy.random.rand()]))"
    seeded = random.Random(7).random()
    vals = [run_warm(zygote, code).payload() for _ in range(3)]
    assert all(v[0] != seeded for v in vals), f"random.seed(7) of an earlier run persists: {vals}"
    assert len({v[1] for v in vals}) == 3, f"numpy draws repeat across runs: {vals}"


IDENTITY_CODE = r'''
import json, os
st = {}
for line in open("/proc/self/status"):
    k, _, v = line.partition(":")
    st[k] = v.strip()
print("@@" + json.dumps({
    "pid": os.getpid(), "uid": os.getuid(), "euid": os.geteuid(), "gid": os.getgid(),
    "Seccomp": st.get("Seccomp"), "NoNewPrivs": st.get("NoNewPrivs"), "CapEff": st.get("CapEff"),
    "CapPrm": st.get("CapPrm"), "cmdline1": open("/proc/1/cmdline", "rb").read().split(b"\0")[0].decode(),
    "cwd": os.getcwd(), "ppid": os.getppid(),
    "procs": sorted(int(d) for d in os.listdir("/proc") if d.isdigit()),
}))
'''

PROC_SELF_CODE = r'''
import json
def raw(p):
    with open(p, "rb") as f:
        return f.read().decode("latin-1")
print("@@" + json.dumps({"cmdline": raw("/proc/self/cmdline"),
                        "environ": raw("/proc/self/environ")}))
'''


def test_child_identity(zygote):
    """User code is pid 2 under codecell-init (pid 1), as on the cold path; its parent (the
    zygote) is outside the pid namespace, so getppid() is 0; nothing else is visible."""
    got = run_warm(zygote, IDENTITY_CODE).payload()
    assert got["pid"] == 2, f"user code is not pid 2 of its namespace: {got}"
    assert got["ppid"] == 0, f"user code's parent is visible in its pid namespace: {got}"
    assert got["cmdline1"] == "codecell-init", f"/proc/1/cmdline: {got}"
    assert got["procs"] == [1, 2], f"processes visible to user code: {got}"
    assert got["uid"] >= SLOT_UID_MIN and got["euid"] >= SLOT_UID_MIN, f"not a slot uid: {got}"
    assert got["gid"] != 0, f"gid 0: {got}"
    assert got["Seccomp"] == "2", f"seccomp filter not active: {got}"
    assert got["NoNewPrivs"] == "1", got
    assert int(got["CapEff"], 16) == 0 and int(got["CapPrm"], 16) == 0, f"capabilities: {got}"
    assert got["cwd"] == "/mnt/data", got


def test_env_var_selects_the_zygote(zygote):
    """CODECELL_ZYGOTE_SOCKET instead of --zygote."""
    res = run_warm(zygote, "print('via env')", via_env=True)
    assert res["status"] == "ok" and res["output"] == "via env\n", res.describe()


def test_proc_self_cmdline_matches_cold(zygote):
    """/proc/self/cmdline is the cold interpreter's command line (what ps and psutil show), not
    the zygote's. Without exec the kernel keeps the zygote's argument area, so the warm one ends
    in NUL padding (shrinking the area needs PR_SET_MM, i.e. CAP_SYS_RESOURCE): compared without
    it; docs/warm.md says so."""
    cold = run_cold(PROC_SELF_CODE).payload()
    warm = run_warm(zygote, PROC_SELF_CODE).payload()
    assert cold["cmdline"] == "/usr/bin/python3\0-I\0-B\0-u\0/run/codecell/runner.py\0", cold
    assert warm["cmdline"].rstrip("\0") == cold["cmdline"].rstrip("\0"), \
        f"/proc/self/cmdline differs\ncold: {cold['cmdline']!r}\nwarm: {warm['cmdline']!r}"
    assert "zygote" not in warm["cmdline"] and "--socket" not in warm["cmdline"], warm


def test_proc_self_environ_matches_cold(zygote):
    """/proc/self/environ holds the interpreter environment (the same variables, in the same
    order, as cold), not the zygote's."""
    cold = run_cold(PROC_SELF_CODE).payload()
    warm = run_warm(zygote, PROC_SELF_CODE).payload()

    def names(block):
        return [e.split("=", 1)[0] for e in block.split("\0") if e]
    assert warm["environ"].startswith("PATH="), f"warm /proc/self/environ: {warm['environ']!r}"
    assert names(warm["environ"]) == names(cold["environ"]), \
        f"/proc/self/environ differs\ncold: {cold['environ']!r}\nwarm: {warm['environ']!r}"
