"""Syscalls: the seccomp filter (x86_64 numbers; other ABIs kill the process with SIGSYS)."""
import errno
import json
import signal
import subprocess

import pytest

from .conftest import SIGSYS, host_cannot, prog, run

pytestmark = pytest.mark.dangerous

# Arguments are chosen so that a MISSING filter would show: most calls would succeed or fail
# with another errno (EINVAL, EFAULT, ENOENT ...) for an unprivileged process, and none does
# lasting harm even if it went through.
DENIED = r'''
import struct, time
class timespec(ctypes.Structure):
    _fields_ = [("sec", ctypes.c_long), ("nsec", ctypes.c_long)]
class timeval(ctypes.Structure):
    _fields_ = [("sec", ctypes.c_long), ("usec", ctypes.c_long)]
now = timespec(int(time.time()), 0)
bad_tv = timeval(int(time.time()), 2000000)
perf_attr = ctypes.create_string_buffer(128)
struct.pack_into("IIQ", perf_attr, 0, 1, 128, 0)                 # PERF_TYPE_SOFTWARE, CPU_CLOCK
struct.pack_into("Q", perf_attr, 40, (1 << 0) | (1 << 5) | (1 << 6))   # disabled, excl. kernel/hv
uring_params = ctypes.create_string_buffer(120)
bpf_attr = ctypes.create_string_buffer(128)
handle = ctypes.create_string_buffer(struct.pack("Ii", 8, 1) + b"\0" * 8)
logbuf = ctypes.create_string_buffer(4096)
longname = ctypes.create_string_buffer(b"x" * 65)
os.makedirs("/tmp/codecell-m", exist_ok=True)
uts_fd = os.open("/proc/self/ns/uts", os.O_RDONLY)
root_fd = os.open("/", os.O_RDONLY)
calls = {
    "bpf": (321, 0, bpf_attr, 128),
    "perf_event_open": (298, perf_attr, 0, -1, -1, 0),
    "io_uring_setup": (425, 1, uring_params),
    "userfaultfd": (323, 1 | os.O_CLOEXEC),                      # UFFD_USER_MODE_ONLY
    "keyctl": (250, 0, -3, 1),                                   # GET_KEYRING_ID(session, create)
    "add_key": (248, b"user", b"codecell-test", b"x", 1, -2),    # process keyring
    "request_key": (249, b"user", b"codecell-none", None, 0),
    "kexec_load": (246, 0, 0, None, 0),
    "kexec_file_load": (320, -1, -1, 0, None, 1),                # KEXEC_FILE_UNLOAD
    "init_module": (175, None, 0, b""),
    "finit_module": (313, -1, b"", 0),
    "delete_module": (176, b"codecell_none", 0o4000),
    "reboot": (169, 0xfee1dead, 672274793, 0),                   # LINUX_REBOOT_CMD_CAD_OFF
    "swapon": (167, b"/tmp/swapfile", 0),
    "swapoff": (168, b"/tmp/swapfile"),
    "acct": (163, None),
    "settimeofday": (164, ctypes.byref(bad_tv), None),
    "clock_settime": (227, 1, ctypes.byref(now)),                # CLOCK_MONOTONIC
    "sethostname": (170, longname, 65),
    "setdomainname": (171, longname, 65),
    "syslog_read_all": (103, 3, logbuf, 4096),
    "iopl": (172, 3),
    "ioperm": (173, 0x80, 1, 1),
    "open_by_handle_at": (304, root_fd, handle, 0),
    "setns": (308, uts_fd, 0),
    "unshare_newuser": (272, 0x10000000),
    "mount": (165, b"none", b"/tmp/codecell-m", b"tmpfs", 0, None),
    "umount2": (166, b"/tmp/codecell-m", 0),
    "pivot_root": (155, b"/tmp", b"/tmp/codecell-m"),
    "chroot": (161, b"/tmp"),
    "fsopen": (430, b"tmpfs", 0),
    "kcmp": (312, 1, os.getpid(), 0, 0, 0),
}
out = {name: sc(*args) for name, args in calls.items()}
uname = ctypes.create_string_buffer(390)
rnd = ctypes.create_string_buffer(16)
fds = (ctypes.c_int * 2)()
ts = timespec()
twins = {
    "getpid": sc(39)["ret"] == os.getpid(),
    "getuid": sc(102)["ret"] == os.getuid(),
    "uname": sc(63, uname)["ret"] == 0 and uname.raw[:5] == b"Linux",
    "clock_gettime": sc(228, 1, ctypes.byref(ts))["ret"] == 0 and ts.sec > 0,
    "getrandom": sc(318, rnd, 16, 0)["ret"] == 16,
    "pipe2": sc(293, fds, os.O_CLOEXEC)["ret"] == 0 and fds[0] > 2,
}
emit({"denied": out, "twins": twins})
'''

DENIED_NAMES = ["bpf", "perf_event_open", "io_uring_setup", "userfaultfd", "keyctl", "add_key",
                "request_key", "kexec_load", "kexec_file_load", "init_module", "finit_module",
                "delete_module", "reboot", "swapon", "swapoff", "acct", "settimeofday",
                "clock_settime", "sethostname", "setdomainname", "syslog_read_all", "iopl",
                "ioperm", "open_by_handle_at", "setns", "unshare_newuser", "mount", "umount2",
                "pivot_root", "chroot", "fsopen", "kcmp"]


@pytest.fixture(scope="module")
def denied_results():
    return run(prog(DENIED), "--timeout", "20").payload()


@pytest.mark.parametrize("name", DENIED_NAMES)
def test_dangerous_syscall_gives_eperm(denied_results, name):
    twins = denied_results["twins"]
    assert all(twins.values()), f"allowed syscalls broken: {twins}"
    r = denied_results["denied"][name]
    assert r["ret"] == -1 and r["errno"] == errno.EPERM, f"{name}: {r} (expected -1 / EPERM)"


def test_clone3_gives_enosys():
    res = run(prog(r'''
        import subprocess, struct
        out = {"null": sc(435, None, 0)}
        args = ctypes.create_string_buffer(struct.pack("8Q", 0x10000000, 0, 0, 0, 17, 0, 0, 0))
        r = sc(435, args, 64)                        # clone3(CLONE_NEWUSER, SIGCHLD)
        if r["ret"] == 0:
            os._exit(0)
        if r["ret"] > 0:
            os.waitpid(r["ret"], 0)
        out["newuser"] = r
        out["twin_spawn"] = subprocess.run(["true"]).returncode      # glibc falls back to clone
        emit(out)
    '''), "--timeout", "15")
    p = res.payload()
    assert p["twin_spawn"] == 0, p
    for k in ("null", "newuser"):
        assert p[k]["ret"] == -1 and p[k]["errno"] == errno.ENOSYS, f"clone3 {k}: {p[k]}"


# ---- other ABIs ------------------------------------------------------------------------------
MACHINE_CODE = r'''
import mmap
code = bytes.fromhex(P["hex"])
try:
    m = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    m.write(code)
    addr = ctypes.addressof(ctypes.c_char.from_buffer(m))
except OSError:
    m = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    m.write(code)
    addr = ctypes.addressof(ctypes.c_char.from_buffer(m))
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    if libc.mprotect(addr, 4096, mmap.PROT_READ | mmap.PROT_EXEC) != 0:
        raise OSError(ctypes.get_errno(), "mprotect")
fn = ctypes.CFUNCTYPE(ctypes.c_long)(addr)
print("CALLING", flush=True)
emit({"ret": fn(), "pid": os.getpid()})
'''
INT80_GETPID = "b814000000cd80c3"      # mov eax, 20 (i386 getpid); int 0x80; ret
SYSCALL_GETPID = "b8270000000f05c3"    # mov eax, 39 (x86_64 getpid); syscall; ret


def _host_int80_verdict() -> str:
    """What the host kernel itself does with an unconfined ``int 0x80`` from a 64-bit process:
    ``"returns"`` (IA32 emulation: the i386 ABI is reachable, so seccomp must stop it) or
    ``"killed by the kernel"`` (no IA32 emulation, or it is switched off: the kernel answers with
    SIGSEGV before any filter runs, so the attack surface is absent). Anything else means the
    probe itself is broken, which is a test failure."""
    code = prog(MACHINE_CODE, hex=INT80_GETPID)
    r = subprocess.run(["/usr/bin/python3", "-c", code], capture_output=True, text=True, timeout=20)
    if r.returncode == -signal.SIGSEGV and "CALLING" in r.stdout:
        return "killed by the kernel"
    lines = [l for l in r.stdout.splitlines() if l.startswith("@@")]
    assert r.returncode == 0 and lines, \
        f"the unconfined int 0x80 probe neither returned nor got SIGSEGV: rc={r.returncode}\n" \
        f"{r.stdout[-1000:]}\n{r.stderr[-1000:]}"
    d = json.loads(lines[-1][2:])
    assert d["ret"] == d["pid"], f"unconfined int 0x80 getpid returned {d}"
    return "returns"


def test_native_syscall_via_machine_code_works():
    res = run(prog(MACHINE_CODE, hex=SYSCALL_GETPID), "--timeout", "15")
    p = res.payload()
    assert res["status"] == "ok" and p["ret"] == p["pid"], res.describe()


def test_i386_int80_never_returns():
    """The i386 ABI must be unreachable. Where the host has IA32 emulation, only the filter stands
    between the code and the 32-bit syscall table: it must kill with SIGSYS. Where the kernel kills
    every int 0x80 itself (SIGSEGV; some 6.x kernels here), the attack cannot be performed: it still
    runs confined and must not return, and SIGSEGV or SIGSYS are both fine."""
    host = _host_int80_verdict()
    res = run(prog(MACHINE_CODE, hex=INT80_GETPID), "--timeout", "15")
    assert "CALLING" in res["output"], res.describe()          # reached the int 0x80
    assert "@@" not in res["output"], f"int 0x80 returned inside the sandbox: {res.describe()}"
    if host == "returns":
        assert res["status"] == "killed" and res["return_code"] == -SIGSYS, res.describe()
        assert "SIGSYS" in res["error"] or "Bad system call" in res["error"], res.describe()
    else:
        host_cannot("an unconfined int 0x80 dies of SIGSEGV on this kernel (no IA32 emulation): "
                    "checked only that it does not return inside the sandbox")
        assert res["status"] == "killed", res.describe()
        assert res["return_code"] in (-SIGSYS, -int(signal.SIGSEGV)), res.describe()


def test_x32_syscall_kills_with_sigsys():
    twin = run(prog(r'''
        emit(sc(39))
    '''), "--timeout", "15")
    assert twin["status"] == "ok" and twin.payload()["ret"] > 0, twin.describe()
    res = run(prog(r'''
        print("CALLING", flush=True)
        emit(sc(0x40000000 | 39))                    # x32 getpid
    '''), "--timeout", "15")
    assert "CALLING" in res["output"], res.describe()
    assert "@@" not in res["output"], f"the x32 syscall returned: {res.describe()}"
    assert res["status"] == "killed" and res["return_code"] == -SIGSYS, res.describe()
