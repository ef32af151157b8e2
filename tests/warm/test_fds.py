"""The descriptor table of a warm child: 0 = /dev/null, 1 and 2 = pipes, 4 = the display pipe
(notebook output, write-only), nothing else."""
from .conftest import run_warm

FD_CODE = r'''
import json, os
listed = os.listdir("/proc/self/fd")
# the directory descriptor of that listdir is closed now: keep what still exists
fds = {}
for name in listed:
    try:
        fds[int(name)] = os.readlink("/proc/self/fd/" + name)
    except OSError:
        pass
info = {}
for fd in fds:
    try:
        with open("/proc/self/fdinfo/%d" % fd) as f:
            info[fd] = f.read()
    except OSError as e:
        info[fd] = "unreadable: %s" % e
open_by_fstat = []
for fd in range(5, 4096):
    try:
        os.fstat(fd)
        open_by_fstat.append(fd)
    except OSError:
        pass
stdin_read = os.read(0, 10)
import fcntl
display_write_only = fcntl.fcntl(4, fcntl.F_GETFL) & os.O_ACCMODE == os.O_WRONLY
print("@@" + json.dumps({"fds": {str(k): v for k, v in fds.items()},
                         "display_write_only": display_write_only,
                         "fdinfo": {str(k): v for k, v in info.items()},
                         "fstat_open": open_by_fstat,
                         "stdin": stdin_read.decode(errors="replace")}))
'''


def test_fd_table_is_exactly_stdio(zygote):
    res = run_warm(zygote, FD_CODE)
    got = res.payload()
    fds = got["fds"]
    assert sorted(fds) == ["0", "1", "2", "4"], \
        f"the warm child has descriptors other than 0, 1, 2, 4: {fds}\nfdinfo: {got['fdinfo']}"
    assert got["fstat_open"] == [], f"fstat finds open descriptors >= 5: {got['fstat_open']}"
    assert fds["4"].startswith("pipe:[") and got["display_write_only"], fds
    assert fds["0"] == "/dev/null", f"fd 0 is {fds['0']!r}, not /dev/null"
    for fd in ("1", "2"):
        assert fds[fd].startswith("pipe:["), f"fd {fd} is {fds[fd]!r}, not a pipe"
    assert not any("socket:" in v for v in fds.values()), f"a socket is open: {fds}"
    assert got["stdin"] == "", f"stdin is not empty: {got['stdin']!r}"


def test_stdout_and_stderr_are_the_executions_own(zygote):
    """fd 1 and 2 are not the zygote's stdout/stderr: what they carry lands in this result."""
    res = run_warm(zygote, "import os, sys\nos.write(1, b'raw-out\\n')\nos.write(2, b'raw-err\\n')"
                           "\nprint('py-out')\nprint('py-err', file=sys.stderr)")
    assert "raw-out" in res["output"] and "py-out" in res["output"], res.describe()
    assert "raw-err" in res["error"] and "py-err" in res["error"], res.describe()
    z = zygote.stdout() + zygote.stderr(limit=10**7)
    for s in ("raw-out", "raw-err", "py-out", "py-err"):
        assert s not in z, f"{s!r} written by user code reached the zygote's own stdout/stderr"


def test_no_writable_shared_mappings(zygote):
    """A MAP_SHARED writable mapping inherited from the zygote would be a channel between
    executions (and users): a warm child starts with none."""
    code = ("import json\nprint('@@' + json.dumps([l.strip() for l in open('/proc/self/maps')"
            " if l.split()[1][3] == 's' and l.split()[1][1] == 'w']))")
    res = run_warm(zygote, code)
    assert res.payload() == [], f"writable shared mappings in a warm child: {res.payload()}"


def test_shared_memory_does_not_carry_over(zygote):
    """/dev/shm and POSIX shared memory created by one execution are gone in the next."""
    run_warm(zygote, "from multiprocessing import shared_memory\n"
                     "s = shared_memory.SharedMemory(name='codecell_leak', create=True, size=64)\n"
                     "s.buf[:4] = b'leak'\nopen('/dev/shm/codecell_leak2', 'w').write('x')\n"
                     "import multiprocessing.resource_tracker as rt\n"
                     "rt.unregister(s._name, 'shared_memory')")
    for _ in range(3):
        res = run_warm(zygote, "import os\nprint(sorted(os.listdir('/dev/shm')))")
        assert res["output"] == "[]\n", f"/dev/shm of an earlier execution visible: {res.describe()}"
