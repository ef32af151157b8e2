"""What user code can observe about its process is the same on the warm and the cold path
(apart from what must differ: pid, slot uid/gid, cgroup path)."""
import json

from .conftest import Zygote, run_cold, run_warm

PARITY_CODE = r'''
import ctypes, json, locale, os, resource, signal, sys
libc = ctypes.CDLL(None)
def tryread(p):
    try:
        with open(p, "rb") as f:
            f.read(1)
        return "ok"
    except OSError as e:
        return type(e).__name__
def trywrite(p, v):
    try:
        with open(p, "w") as f:
            f.write(v)
        return "ok"
    except OSError as e:
        return type(e).__name__
status = {}
for line in open("/proc/self/status"):
    k, _, v = line.partition(":")
    status[k] = v.strip()
facts = {
    "dumpable (prctl PR_GET_DUMPABLE)": libc.prctl(3, 0, 0, 0, 0),
    "/proc/self/environ readable": tryread("/proc/self/environ"),
    "/proc/self/oom_score_adj raise to 500": trywrite("/proc/self/oom_score_adj", "500"),
    "rlimits": {n: resource.getrlimit(getattr(resource, n))
                for n in sorted(dir(resource)) if n.startswith("RLIMIT_")},
    "umask": os.umask(0o022),
    "cwd": os.getcwd(),
    "environ": {k: v for k, v in sorted(os.environ.items()) if k not in ("MPLCONFIGDIR",
                                                                         "TMPDIR")},
    "environ keys": sorted(os.environ),
    "sys.argv": sys.argv,
    "__name__": __name__,
    "sys.executable": sys.executable,
    "sys.flags": str(sys.flags),
    "sys.path": sys.path,
    "encodings": [sys.stdout.encoding, sys.stderr.encoding,
                  locale.getpreferredencoding(False), sys.getfilesystemencoding()],
    "signal handlers": {s.name: str(signal.getsignal(s)) for s in (
        signal.SIGINT, signal.SIGTERM, signal.SIGPIPE, signal.SIGCHLD, signal.SIGHUP,
        signal.SIGALRM, signal.SIGUSR1, signal.SIGXFSZ, signal.SIGXCPU)},
    "blocked signals": sorted(int(x) for x in signal.pthread_sigmask(signal.SIG_BLOCK, [])),
    "matplotlib backend": __import__("matplotlib").get_backend(),
    "recursion limit": sys.getrecursionlimit(),
    "stdin is a tty": os.isatty(0),
    "supplementary groups": os.getgroups(),
    "hostname": os.uname().nodename,
    "Seccomp": status.get("Seccomp"), "NoNewPrivs": status.get("NoNewPrivs"),
    "CapBnd": status.get("CapBnd"), "CapEff": status.get("CapEff"),
}
print("@@" + json.dumps(facts))
'''


def test_process_facts_match_cold(zygote):
    cold = run_cold(PARITY_CODE).payload()
    warm = run_warm(zygote, PARITY_CODE).payload()
    diff = {k: {"cold": cold[k], "warm": warm.get(k)} for k in cold if cold[k] != warm.get(k)}
    assert not diff, "warm differs from cold in what the code observes:\n" + \
        json.dumps(diff, indent=1, default=str)


def test_interrupt_main_works(zygote):
    """_thread.interrupt_main() (used by timeouts in user libraries) raises KeyboardInterrupt
    in the main thread, as on the cold path: it needs SIGINT's default Python handler."""
    code = ("import _thread, time\ntry:\n    _thread.interrupt_main()\n    time.sleep(2)\n"
            "    print('not interrupted')\nexcept KeyboardInterrupt:\n    print('interrupted')")
    cold, warm = run_cold(code), run_warm(zygote, code)
    assert cold["output"] == "interrupted\n", cold.describe()
    assert warm["output"] == cold["output"], warm.describe()


def _ignore_signals():
    """What `nohup codecell serve &` from a non-interactive shell leaves to the daemon."""
    import signal
    for s in (signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGPIPE, signal.SIGUSR1,
              signal.SIGTERM):
        signal.signal(s, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR2, signal.SIGALRM})


def test_inherited_signal_state_does_not_reach_user_code():
    """A zygote started with signals ignored / blocked (nohup, `&` in a script) must still give
    user code the dispositions and mask of a fresh interpreter, as the cold path does."""
    z = Zygote(pool=1, preload="", tag="sig", preexec_fn=_ignore_signals)
    try:
        z.start()
        code = ("import signal, json\nprint('@@' + json.dumps({'handlers': {s.name: "
                "str(signal.getsignal(s)) for s in (signal.SIGINT, signal.SIGHUP, signal.SIGQUIT,"
                " signal.SIGPIPE, signal.SIGUSR1, signal.SIGTERM, signal.SIGUSR2, "
                "signal.SIGALRM)}, 'blocked': sorted(int(x) for x in "
                "signal.pthread_sigmask(signal.SIG_BLOCK, []))}))")
        cold = run_cold(code, preexec_fn=_ignore_signals).payload()   # the same start state
        warm = run_warm(z, code).payload()
        assert warm == cold, f"signal state differs\ncold: {cold}\nwarm: {warm}"
    finally:
        z.stop()
