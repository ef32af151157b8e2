"""How an execution ends must not depend on the interpreter being warm or cold."""
import re

import pytest

from .conftest import (descendants_of, run_cold, run_warm, slot_processes, under_live_codecell,
                      wait_until)

# (id, code, flags, expected status, expected return_code, error regex, output)
CASES = [
    ("exit3", "import sys\nprint('before')\nsys.exit(3)", (), "error", 3, None, "before\n"),
    ("exit0", "import sys\nprint('before')\nsys.exit(0)", (), "ok", 0, None, "before\n"),
    ("exception", "x = 1\n\ndef f():\n    raise ValueError('boom')\nprint('before')\nf()", (),
     "error", 1, r'File "<code>", line 4, in f\n.*ValueError: boom', "before\n"),
    ("syntax", "print('x'\n", (), "error", 1, r"SyntaxError", ""),
    ("abort", "import os\nprint('before', flush=True)\nos.abort()", (), "killed", -6,
     r"SIGABRT", "before\n"),
    ("self_sigkill", "import os, signal\nprint('before', flush=True)\n"
     "os.kill(os.getpid(), signal.SIGKILL)\nprint('after')", (), "killed", -9, r"SIGKILL",
     "before\n"),
    ("raise_sigterm", "import signal\nprint('before', flush=True)\n"
     "signal.raise_signal(signal.SIGTERM)\nprint('after')", (), "killed", -15, r"SIGTERM",
     "before\n"),
    ("segfault", "import ctypes\nprint('before', flush=True)\nctypes.string_at(0)", (),
     "killed", -11, r"SIGSEGV", "before\n"),
    ("timeout", "print('before', flush=True)\nwhile True: pass", ("--timeout", "1"), "timeout",
     -1, r"Execution timeout after 1 seconds$", "before\n"),
    ("oom", "print('before', flush=True)\nb = []\nwhile True: b.append(bytearray(10 << 20))",
     ("--memory-mb", "100"), "oom", -9, r"Execution exceeded the memory limit of 100 MiB$",
     "before\n"),
    ("seccomp", "import ctypes\nprint('before', flush=True)\n"
     "ctypes.CDLL(None).syscall(165, 0, 0, 0, 0, 0);", (), None, None, None, "before\n"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_exit_matches_cold(zygote, case):
    name, code, flags, status, rc, err_re, output = case
    cold = run_cold(code, *flags)
    warm = run_warm(zygote, code, *flags)
    for label, res in (("cold", cold), ("warm", warm)):
        if status is not None:
            assert res["status"] == status, f"{name} {label}: status\n{res.describe()}"
            assert res["return_code"] == rc, f"{name} {label}: return_code\n{res.describe()}"
        if err_re is not None:
            assert re.search(err_re, res["error"], re.S), \
                f"{name} {label}: error does not match {err_re!r}\n{res.describe()}"
        assert res["output"] == output, f"{name} {label}: output\n{res.describe()}"
        assert res["success"] is (res["status"] == "ok" and res["return_code"] == 0), res
    # whatever the expectations above, warm and cold agree
    same = ("status", "return_code", "success", "output")
    diff = {k: (cold.get(k), warm.get(k)) for k in same if cold.get(k) != warm.get(k)}
    assert not diff, f"{name}: warm differs from cold (cold, warm): {diff}\n" \
                     f"cold: {cold.describe()}\nwarm: {warm.describe()}"
    cold_err = re.sub(r"\d+(\.\d+)?", "N", cold["error"])
    warm_err = re.sub(r"\d+(\.\d+)?", "N", warm["error"])
    if name not in ("exception", "syntax"):
        assert cold_err == warm_err, f"{name}: error text differs\ncold: {cold['error']!r}\n" \
                                     f"warm: {warm['error']!r}"


def _my_slot_processes(zygote):
    return slot_processes(descendants_of(zygote.pid))


def test_timeout_leaves_nothing_behind(zygote):
    code = ("import os, subprocess, time\n"
            "subprocess.Popen(['sleep', '1000'])\n"
            "if os.fork() == 0:\n    os.setsid()\n    time.sleep(1000)\n"
            "print('spawned', flush=True)\nwhile True: pass")
    res = run_warm(zygote, code, "--timeout", "1")
    assert res["status"] == "timeout" and res["return_code"] == -1, res.describe()
    assert res["output"] == "spawned\n", res.describe()
    left = wait_until(lambda: not _my_slot_processes(zygote), 3)
    assert left, f"slot-uid processes below the zygote after a timeout: {_my_slot_processes(zygote)}"
    def orphans():
        return [p for p in slot_processes() if not under_live_codecell(p[0])]
    assert wait_until(lambda: not orphans(), 3), \
        f"slot-uid processes escaped from every codecell process: {orphans()}"
    inits, kids = zygote.wait_pool_full(10)   # the used init is gone too, the pool refilled
    assert len(inits) == len(kids) == zygote.pool, (inits, kids)


def test_output_before_crash_is_kept(zygote):
    code = ("import sys, ctypes\nfor i in range(2000):\n    print('line', i)\n"
            "sys.stderr.write('err-before\\n')\nctypes.string_at(0)")
    res = run_warm(zygote, code)
    assert res["status"] == "killed" and res["return_code"] == -11, res.describe()
    lines = res["output"].splitlines()
    assert lines[0] == "line 0" and lines[-1] == "line 1999" and len(lines) == 2000, \
        f"output before the crash was lost: {len(lines)} lines, last {lines[-1:]}"
    assert "err-before" in res["error"], res.describe()


def test_unflushed_output_on_sys_exit_is_kept(zygote):
    """Buffered print output (no flush) must survive sys.exit and os._exit-free endings."""
    res = run_warm(zygote, "import sys\nprint('buffered', end='')\nsys.exit(5)")
    assert res["return_code"] == 5 and res["output"] == "buffered", res.describe()


def test_traceback_line_numbers_match_cold(zygote):
    code = "\n\n\na = 1\nb = 0\nprint(a / b)\n"
    cold, warm = run_cold(code), run_warm(zygote, code)
    assert 'line 6' in warm["error"] and "ZeroDivisionError" in warm["error"], warm.describe()
    assert cold["error"] == warm["error"], f"traceback differs\ncold: {cold['error']!r}\n" \
                                           f"warm: {warm['error']!r}"


SHUTDOWN_CODE = r'''
import atexit, logging, sys, threading, time
atexit.register(lambda: print("atexit ran"))
f = open("unclosed.txt", "w")
f.write("data" * 10)
logging.basicConfig(filename="log.txt", level=logging.INFO)
logging.info("logged")
class D:
    def __del__(self):
        print("del ran")
d = D()
def late():
    time.sleep(0.3)
    print("thread done", flush=True)
threading.Thread(target=late).start()
sys.stdout.write("no newline");  # `;`: write()'s value is not shown (notebook output)
'''


def test_interpreter_shutdown_matches_cold(zygote):
    """The end of a normal run finalizes like a fresh interpreter: non-daemon threads joined,
    atexit handlers, __del__ of module globals, unclosed files flushed (their data saved)."""
    cold = run_cold(SHUTDOWN_CODE)
    warm = run_warm(zygote, SHUTDOWN_CODE)
    for label, res in (("cold", cold), ("warm", warm)):
        assert res["status"] == "ok", f"{label}\n{res.describe()}"
    assert cold["output"] == "no newlinethread done\natexit ran\ndel ran\n", cold.describe()
    files = {label: {g["filename"]: g["size"] for g in res.get("generated_files", [])}
             for label, res in (("cold", cold), ("warm", warm))}
    assert files["cold"] == {"unclosed.txt": 40, "log.txt": 17}, files
    problems = []
    if files["warm"] != files["cold"]:
        problems.append(f"generated files differ (unflushed data lost?): {files}")
    if warm["output"] != cold["output"]:
        problems.append(f"shutdown output differs: cold {cold['output']!r}, "
                        f"warm {warm['output']!r}")
    assert not problems, "\n".join(problems)
