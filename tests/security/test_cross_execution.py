"""Cross-execution isolation: two executions never see each other (files, processes, IPC, sockets)."""
import secrets
import time

import pytest

from .conftest import assert_no_sandbox_processes, finish, new_data_dir, new_dir, prog, run, start

PLANT_AND_PROBE = r'''
import socket, subprocess, threading, time
IPC_CREAT = 0o1000
libc.shmget.restype = ctypes.c_int
libc.shmget.argtypes = [ctypes.c_int, ctypes.c_size_t, ctypes.c_int]
libc.msgget.argtypes = [ctypes.c_int, ctypes.c_int]
libc.shmat.restype = ctypes.c_void_p
libc.shmat.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
me, other = P["me"], P["other"]
name = lambda t: "x-" + t

# ---- plant ----
for d in ("/mnt/data", "/tmp", "/dev/shm"):
    with open(f"{d}/{name(me)}", "w") as f:
        f.write(me)
shmid = libc.shmget(P["keys"][me], 4096, IPC_CREAT | 0o666)
addr = libc.shmat(shmid, None, 0)
ctypes.memmove(addr, me.encode(), len(me))
msqid = libc.msgget(P["keys"][me], IPC_CREAT | 0o666)
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind("\0codecell-test-" + me)
srv.listen(8)
def serve():
    while True:
        c, _ = srv.accept()
        c.sendall(me.encode())
        c.close()
threading.Thread(target=serve, daemon=True).start()
sleeper = subprocess.Popen(["sleep", "40." + me])
planted_at = time.time()

# ---- wait until both executions have planted ----
while time.time() < P["t_probe"]:
    time.sleep(0.05)

def probe(t):
    r = {}
    for d in ("/mnt/data", "/tmp", "/dev/shm"):
        r["file" + d.replace("/", "_")] = os.path.exists(f"{d}/{name(t)}") or name(t) in os.listdir(d)
    sid = libc.shmget(P["keys"][t], 0, 0)
    content = None
    if sid >= 0:
        a = libc.shmat(sid, None, 0)
        if a not in (None, ctypes.c_void_p(-1).value):
            content = ctypes.string_at(a, len(t)).decode(errors="replace")
    r["sysv_shm"] = content == t
    r["sysv_shm_exists"] = sid >= 0
    r["sysv_msg"] = libc.msgget(P["keys"][t], 0) >= 0
    try:
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.settimeout(2)
        c.connect("\0codecell-test-" + t)
        r["abstract_socket"] = c.recv(64).decode() == t
    except OSError:
        r["abstract_socket"] = False
    seen = False
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                if ("40." + t).encode() in open(f"/proc/{pid}/cmdline", "rb").read():
                    seen = True
            except OSError:
                pass
    r["process"] = seen
    return r

result = {"uid": os.getuid(), "planted_at": planted_at, "probed_at": time.time(),
          "self": probe(me), "other": probe(other)}
while time.time() < P["t_end"]:          # stay alive while the other one probes
    time.sleep(0.05)
sleeper.kill()
emit(result)
'''

CHANNELS = ["file_mnt_data", "file_tmp", "file_dev_shm", "sysv_shm", "sysv_shm_exists", "sysv_msg",
            "abstract_socket", "process"]


@pytest.fixture(scope="module")
def concurrent_pair():
    # digits only: the tag is also the fraction of a `sleep 40.<tag>` argument
    a, b = (f"{secrets.randbelow(10**12):012d}" for _ in range(2))
    keys = {a: 0x2C000000 + secrets.randbelow(1 << 20), b: 0x2D000000 + secrets.randbelow(1 << 20)}
    now = time.time()
    params = dict(keys=keys, t_probe=now + 4.0, t_end=now + 6.5)
    shared_data = new_data_dir()         # as in the service: one data dir, two executions
    ha = start(prog(PLANT_AND_PROBE, me=a, other=b, **params), "--timeout", "30",
               data_dir=shared_data, output_dir=new_dir("out"))
    hb = start(prog(PLANT_AND_PROBE, me=b, other=a, **params), "--timeout", "30",
               data_dir=shared_data, output_dir=new_dir("out"))
    ra, rb = finish(ha), finish(hb)
    # nothing of either execution may outlive its codecell process
    assert_no_sandbox_processes(grace=1.0, needle="sleep 40." + a)
    assert_no_sandbox_processes(grace=0.1, needle="sleep 40." + b)
    pa, pb = ra.payload(), rb.payload()
    for p in (pa, pb):
        assert p["planted_at"] < params["t_probe"], (
            f"an execution started too late to overlap with the other one: {p}")
    return pa, pb


@pytest.mark.parametrize("channel", CHANNELS)
def test_concurrent_executions_cannot_see_each_other(concurrent_pair, channel):
    for p in concurrent_pair:
        assert p["self"][channel] is True, f"twin: {channel} does not work within one execution: {p}"
        assert p["other"][channel] is False, f"{channel} reaches the other execution: {p}"


def test_concurrent_executions_get_distinct_uids(concurrent_pair):
    pa, pb = concurrent_pair
    assert pa["uid"] != pb["uid"], f"two concurrent executions share uid {pa['uid']}"


def test_nothing_survives_into_the_next_execution(tmp_path):
    """Slot reuse: files, /tmp, /dev/shm, SysV IPC and inputs of run 1 are gone for run 2."""
    tag = secrets.token_hex(6)
    key = 0x2E000000 + secrets.randbelow(1 << 20)
    inp = tmp_path / f"input-{tag}.csv"
    inp.write_text("a\n1\n")
    data_dir = new_data_dir()
    first = run(prog(r'''
        libc.shmget.restype = ctypes.c_int
        libc.shmget.argtypes = [ctypes.c_int, ctypes.c_size_t, ctypes.c_int]
        for d in ("/mnt/data", "/tmp", "/dev/shm"):
            with open(f"{d}/left-{P['tag']}", "w") as f:
                f.write("x")
        sid = libc.shmget(P["key"], 4096, 0o1000 | 0o666)
        emit({"shm": sid >= 0, "listing": sorted(os.listdir("/mnt/data"))})
    ''', tag=tag, key=key), "--timeout", "15", files=[inp], data_dir=data_dir)
    p1 = first.payload()
    assert p1["shm"] and sorted(p1["listing"]) == sorted([f"input-{tag}.csv", f"left-{tag}"]), p1
    second = run(prog(r'''
        libc.shmget.restype = ctypes.c_int
        libc.shmget.argtypes = [ctypes.c_int, ctypes.c_size_t, ctypes.c_int]
        emit({"files": [os.path.exists(f"{d}/left-{P['tag']}") for d in ("/mnt/data", "/tmp", "/dev/shm")],
              "shm": libc.shmget(P["key"], 0, 0) >= 0,
              "listing": os.listdir("/mnt/data") + os.listdir("/tmp") + os.listdir("/dev/shm")})
    ''', tag=tag, key=key), "--timeout", "15", data_dir=data_dir)
    p2 = second.payload()
    assert p2["files"] == [False, False, False], p2
    assert not p2["shm"], p2
    assert not any(tag in n for n in p2["listing"]), p2
