"""Processes: own pid namespace, unprivileged slot uid, no capabilities, clean environment."""
import errno
import os
import secrets
import signal
import subprocess
import time

import pytest

from .conftest import (SECRET_NAME, SLOT_UID_MIN, assert_no_sandbox_processes, failed, preflight,
                       prog, run, succeeded)


def test_confinement_baseline():
    """What the preflight gates on, plus the contract's uid range, hostname and pid namespace."""
    ok, msg, facts = preflight()
    assert ok, msg
    res = run(prog(r'''
        import socket
        st = dict(l.split(":", 1) for l in open("/proc/self/status") if ":" in l)
        emit({"uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups(),
              "caps": {k: st[k].strip() for k in ("CapInh", "CapPrm", "CapEff", "CapAmb")},
              "hostname": socket.gethostname(), "pid": os.getpid(), "cwd": os.getcwd()})
    '''), "--timeout", "15")
    p = res.payload()
    assert p["uid"] >= SLOT_UID_MIN and p["gid"] >= SLOT_UID_MIN, p
    assert 0 not in p["groups"], p
    assert all(int(v, 16) == 0 for v in p["caps"].values()), p
    assert p["hostname"] == "codecell", p
    assert p["pid"] < 100, f"pid {p['pid']}: not in a fresh pid namespace"
    assert p["cwd"] == "/mnt/data", p


def test_environment_secret_nowhere():
    """A secret in codecell's own environment appears in no environ, file or /proc entry."""
    res = run(prog(r'''
        import re, stat, subprocess, time
        pat = re.compile(("cc" + "sec-") .encode() + rb"[0-9a-f]{32}")
        name = ("CODECELL_TEST_" + "SECRET").encode()
        twin = ("cc" + "sec-") + os.urandom(16).hex()
        child = subprocess.Popen(["sleep", "30"], env={"PATH": "/usr/bin:/bin", "TWIN_VAR": twin})
        with open("/tmp/twinfile", "w") as f:
            f.write("x=" + twin)
        time.sleep(0.3)
        hits, twin_hits, scanned = [], [], [0]
        def check(label, data):
            scanned[0] += 1
            if name in data:
                hits.append(label + " (name)")
            for m in pat.findall(data):
                (twin_hits if m.decode() == twin else hits).append(label)
        envb = b"\0".join(k.encode() + b"=" + v.encode() for k, v in os.environ.items())
        check("os.environ", envb)
        for d in os.listdir("/proc"):
            if d.isdigit():
                for f in ("environ", "cmdline"):
                    try:
                        check(f"/proc/{d}/{f}", open(f"/proc/{d}/{f}", "rb").read())
                    except OSError:
                        pass
                try:
                    for t in os.listdir(f"/proc/{d}/task"):
                        check(f"/proc/{d}/task/{t}/environ", open(f"/proc/{d}/task/{t}/environ", "rb").read())
                except OSError:
                    pass
        skip = {"mem", "pagemap", "clear_refs", "kpagecount", "kpageflags"}
        for f in os.listdir("/proc/1"):
            if f in skip:
                continue
            try:
                check(f"/proc/1/{f}", open(f"/proc/1/{f}", "rb").read(4 << 20))
            except OSError:
                pass
        for root in ("/run/codecell", "/tmp", "/mnt/data", "/dev/shm", "/etc"):
            for dp, dirs, files in os.walk(root):
                for f in files:
                    path = os.path.join(dp, f)
                    try:
                        if stat.S_ISREG(os.lstat(path).st_mode):
                            check(path, open(path, "rb").read(4 << 20))
                    except OSError:
                        pass
        child.kill()
        emit({"hits": hits, "twin_hits": sorted(set(twin_hits)), "scanned": scanned[0],
              "env_keys": sorted(os.environ)})
    '''), "--timeout", "30")
    p = res.payload()
    # twin: the scanner finds a value the code itself put into a child's environment and /tmp
    assert any(h.startswith("/proc/") and h.endswith("/environ") for h in p["twin_hits"]), p
    assert "/tmp/twinfile" in p["twin_hits"], f"the scanner did not find its own twin: {p}"
    assert p["scanned"] > 20, p
    assert p["hits"] == [], f"the secret of codecell's environment is visible inside at {p['hits']}"
    assert SECRET_NAME not in p["env_keys"], p["env_keys"]
    host_only = {k for k in os.environ if k not in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR",
                                                      "TERM", "PWD", "SHLVL", "_", "TZ")}
    leaked = sorted(host_only & set(p["env_keys"]))
    assert not leaked, f"host environment variables inside: {leaked}"


@pytest.mark.dangerous
def test_signal_host_processes():
    victims = {"root_sleep": subprocess.Popen(["sleep", "300"])}
    for uid in range(SLOT_UID_MIN, SLOT_UID_MIN + 4):   # same uid as a slot: only the pid ns protects
        victims[f"uid{uid}"] = subprocess.Popen(
            ["sleep", "300"], preexec_fn=lambda u=uid: (os.setgid(u), os.setuid(u)))
    try:
        res = run(prog(r'''
            import subprocess, signal
            out = {}
            child = subprocess.Popen(["sleep", "30"])
            os.kill(child.pid, signal.SIGKILL)
            out["twin"] = child.wait()
            for name, pid in P["victims"].items():
                out["kill_" + name] = attempt(os.kill, pid, signal.SIGKILL)
            out["killpg_pytest_group"] = attempt(os.killpg, P["pgid"], signal.SIGKILL)
            out["probe_pytest"] = attempt(os.kill, P["pytest"], 0)
            out["term_pytest"] = attempt(os.kill, P["pytest"], signal.SIGTERM)
            out["kill_minus_1"] = attempt(os.kill, -1, signal.SIGKILL)
            emit(out)
        ''', victims={k: v.pid for k, v in victims.items()}, pytest=os.getpid(),
                 pgid=os.getpgid(0)), "--timeout", "15")
        time.sleep(0.2)
        p = res.payload()
        assert p["twin"] == -signal.SIGKILL, p
        dead = [k for k, v in victims.items() if v.poll() is not None]
        assert not dead, f"host processes killed from inside the sandbox: {dead}; {p}"
        for k in victims:
            assert failed(p["kill_" + k]), (k, p)
        assert failed(p["probe_pytest"]) and failed(p["term_pytest"]), p
        assert failed(p["killpg_pytest_group"]), p
    finally:
        for v in victims.values():
            v.kill()
            v.wait()


@pytest.mark.dangerous
def test_pid1_survives_signals():
    """pid 1 inside is codecell's init: killing it neither works nor takes codecell down."""
    res = run(prog(r'''
        import signal, time
        out = {"ppid": os.getppid()}
        out["term"] = attempt(os.kill, 1, signal.SIGTERM)
        time.sleep(0.3)
        out["kill"] = attempt(os.kill, 1, signal.SIGKILL)
        time.sleep(0.3)
        out["stop"] = attempt(os.kill, 1, signal.SIGSTOP)
        time.sleep(0.3)
        r = attempt(os.kill, 1, 0)
        out["alive"] = r["ok"] or r["errno"] == errno.EPERM
        got = []
        signal.signal(signal.SIGUSR1, lambda *a: got.append(1))
        os.kill(os.getpid(), signal.SIGUSR1)           # twin: signalling ourselves works
        out["twin"] = got == [1]
        emit(out)
    '''), "--timeout", "15")
    p = res.payload()        # no payload = init died and took the execution with it
    assert p["twin"], p
    assert p["alive"], p
    assert res["status"] == "ok", res.describe()


@pytest.mark.dangerous
def test_ptrace_denied():
    res = run(prog(r'''
        import subprocess
        out = {}
        out["attach_pid1"] = sc(101, 16, 1, 0, 0)           # PTRACE_ATTACH
        out["seize_pid1"] = sc(101, 0x4206, 1, 0, 0)        # PTRACE_SEIZE
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.write(w, json.dumps(sc(101, 0, 0, 0, 0)).encode())   # PTRACE_TRACEME
            os._exit(0)
        os.waitpid(pid, 0)
        out["traceme"] = json.loads(os.read(r, 200))
        local = ctypes.create_string_buffer(64)
        class iovec(ctypes.Structure):
            _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
        liov = iovec(ctypes.addressof(local), 64)
        riov = iovec(0x400000, 64)
        out["process_vm_readv_pid1"] = sc(310, 1, ctypes.byref(liov), 1, ctypes.byref(riov), 1, 0)
        mine = ctypes.create_string_buffer(b"twin-mem-contents")
        with open("/proc/self/mem", "rb") as f:
            f.seek(ctypes.addressof(mine))
            out["twin_self_mem"] = f.read(17).decode()
        emit(out)
    '''), "--timeout", "15")
    p = res.payload()
    assert p["twin_self_mem"] == "twin-mem-contents", p
    for k in ("attach_pid1", "seize_pid1", "traceme"):
        assert p[k]["ret"] == -1 and p[k]["errno"] == errno.EPERM, (k, p[k])
    assert p["process_vm_readv_pid1"]["ret"] == -1, p


@pytest.mark.dangerous
def test_mount_and_root_changes_denied():
    res = run(prog(r'''
        os.makedirs("/tmp/m", exist_ok=True)
        MS_RDONLY, MS_REMOUNT, MS_BIND, MS_REC, MNT_DETACH = 1, 32, 4096, 16384, 2
        out = {
            "mount_tmpfs": sc(165, b"none", b"/tmp/m", b"tmpfs", 0, None),
            "mount_proc": sc(165, b"proc", b"/tmp/m", b"proc", 0, None),
            "bind_root": sc(165, b"/", b"/tmp/m", None, MS_BIND | MS_REC, None),
            "remount_usr_rw": sc(165, None, b"/usr", None, MS_REMOUNT | MS_BIND, None),
            "remount_root_rw": sc(165, None, b"/", None, MS_REMOUNT, None),
            "umount_proc": sc(166, b"/proc", MNT_DETACH),
            "umount_usr": sc(166, b"/usr", MNT_DETACH),
            "fsopen": sc(430, b"tmpfs", 0),
            "open_tree_clone": sc(428, -100, b"/", 1 | 0o2000000),
            "chroot": sc(161, b"/tmp"),
            "pivot_root": sc(155, b"/tmp", b"/tmp/m"),
        }
        out["twin"] = attempt(lambda: [os.statvfs("/tmp").f_bsize > 0, os.chdir("/tmp") or os.getcwd(),
                                       sorted(os.listdir("/tmp/m"))])
        emit(out)
    '''), "--timeout", "15")
    p = res.payload()
    assert p.pop("twin") == {"ok": True, "value": [True, "/tmp", []]}, p
    for k, r in p.items():
        assert r["ret"] == -1 and r["errno"] == errno.EPERM, f"{k}: {r}"


NS_FLAGS = {"NEWUSER": 0x10000000, "NEWNS": 0x20000, "NEWNET": 0x40000000, "NEWPID": 0x20000000,
            "NEWIPC": 0x8000000, "NEWUTS": 0x4000000, "NEWCGROUP": 0x2000000, "NEWTIME": 0x80,
            "NEWUSER|NEWNS": 0x10020000}


@pytest.mark.dangerous
def test_unshare_clone_setns_denied():
    res = run(prog(r'''
        SIGCHLD = 17
        out = {}
        def clone(flags):
            r = sc(56, flags | SIGCHLD, 0, 0, 0, 0)
            if r["ret"] == 0:
                os._exit(7)
            if r["ret"] > 0:
                r["child_status"] = os.waitstatus_to_exitcode(os.waitpid(r["ret"], 0)[1])
            return r
        for name, flag in P["flags"].items():
            out["unshare_" + name] = sc(272, flag)
            if name != "NEWTIME":              # 0x80 is inside clone()'s exit-signal byte
                out["clone_" + name] = clone(flag)
        fd = os.open("/proc/self/ns/net", os.O_RDONLY)
        out["setns_own_net"] = sc(308, fd, 0)
        out["setns_pid1_mnt"] = attempt(lambda: sc(308, os.open("/proc/1/ns/mnt", os.O_RDONLY), 0))
        out["twin_raw_clone"] = clone(0)
        pid = os.fork()
        if pid == 0:
            os._exit(3)
        out["twin_fork"] = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
        emit(out)
    ''', flags=NS_FLAGS), "--timeout", "15")
    p = res.payload()
    assert p["twin_fork"] == 3, p
    assert p["twin_raw_clone"]["ret"] > 0 and p["twin_raw_clone"]["child_status"] == 7, p
    for name in NS_FLAGS:
        for k in ("unshare_" + name, "clone_" + name):
            if k == "clone_NEWTIME":
                continue
            assert p[k]["ret"] == -1 and p[k]["errno"] == errno.EPERM, f"{k}: {p[k]}"
    assert p["setns_own_net"]["ret"] == -1 and p["setns_own_net"]["errno"] == errno.EPERM, p
    r = p["setns_pid1_mnt"]
    assert failed(r) or r["value"].find("'ret': -1") >= 0, r


@pytest.mark.dangerous
def test_setuid_does_not_give_root():
    res = run(prog(r'''
        import subprocess, stat
        out = {"uid_before": os.getuid()}
        out["setuid0"] = attempt(os.setuid, 0)
        out["seteuid0"] = attempt(os.seteuid, 0)
        out["setresuid0"] = attempt(os.setresuid, 0, 0, 0)
        out["setgid0"] = attempt(os.setgid, 0)
        out["setgroups0"] = attempt(os.setgroups, [0])
        def runp(argv):
            r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=10)
            return [r.returncode, r.stdout.decode(errors="replace")[-300:], r.stderr.decode(errors="replace")[-300:]]
        out["su_bits"] = attempt(lambda: bool(os.stat("/usr/bin/su").st_mode & stat.S_ISUID))
        out["su"] = attempt(runp, ["/usr/bin/su", "root", "-c", "id -u"])
        out["passwd"] = attempt(runp, ["/usr/bin/passwd", "-S", "root"])
        out["mount_bin"] = attempt(runp, ["/usr/bin/mount", "-t", "tmpfs", "none", "/tmp"])
        out["twin_setuid_self"] = attempt(os.setuid, os.getuid())
        out["twin_id"] = attempt(runp, ["id", "-u"])
        out["uid_after"] = [os.getuid(), os.geteuid()]
        emit(out)
    '''), "--timeout", "40")
    p = res.payload()
    uid = p["uid_before"]
    assert uid >= SLOT_UID_MIN, p
    assert p["twin_setuid_self"]["ok"], p
    assert p["twin_id"] == {"ok": True, "value": [0, f"{uid}\n", ""]}, p
    for k in ("setuid0", "seteuid0", "setresuid0", "setgid0", "setgroups0"):
        assert failed(p[k]), f"{k} worked: {p[k]}"
    assert p["uid_after"] == [uid, uid], p
    for k in ("su", "passwd", "mount_bin"):
        r = p[k]
        if succeeded(r):
            rc, so, _ = r["value"]
            assert rc != 0, f"{k} succeeded inside the sandbox: {r}"
            assert so.strip() != "0", f"{k} printed uid 0: {r}"


@pytest.mark.dangerous
def test_no_new_privs_and_caps_cannot_be_regained():
    res = run(prog(r'''
        out = {
            "clear_nnp": sc(157, 38, 0, 0, 0, 0),            # PR_SET_NO_NEW_PRIVS 0
            "disable_seccomp": sc(157, 22, 0, 0, 0, 0),      # PR_SET_SECCOMP, DISABLED
            "ambient_raise": sc(157, 47, 2, 21, 0, 0),       # PR_CAP_AMBIENT_RAISE CAP_SYS_ADMIN
            "keepcaps_setuid": attempt(lambda: (sc(157, 8, 1, 0, 0, 0), os.setuid(0))),
        }
        class hdr(ctypes.Structure):
            _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]
        class data(ctypes.Structure):
            _fields_ = [("eff", ctypes.c_uint32), ("prm", ctypes.c_uint32), ("inh", ctypes.c_uint32)]
        h = hdr(0x20080522, 0)
        d = (data * 2)()
        for x in d:
            x.eff = x.prm = x.inh = 0xffffffff
        out["capset_all"] = sc(126, ctypes.byref(h), ctypes.byref(d))
        st = dict(l.split(":", 1) for l in open("/proc/self/status") if ":" in l)
        out["status"] = {k: st[k].strip() for k in ("Seccomp", "NoNewPrivs", "CapEff", "CapPrm")}
        out["twin_get_nnp"] = sc(157, 39, 0, 0, 0, 0)        # PR_GET_NO_NEW_PRIVS
        out["twin_set_name"] = sc(157, 15, b"twin", 0, 0, 0)  # PR_SET_NAME
        emit(out)
    '''), "--timeout", "15")
    p = res.payload()
    assert p["twin_get_nnp"]["ret"] == 1 and p["twin_set_name"]["ret"] == 0, p
    for k in ("clear_nnp", "disable_seccomp", "ambient_raise", "capset_all"):
        assert p[k]["ret"] == -1, f"{k}: {p[k]}"
    assert failed(p["keepcaps_setuid"]), p
    assert p["status"] == {"Seccomp": "2", "NoNewPrivs": "1", "CapEff": "0" * 16,
                           "CapPrm": "0" * 16}, p


@pytest.mark.dangerous
def test_rlimits_cannot_be_raised():
    res = run(prog(r'''
        import resource as R
        out, before = {}, {}
        for name in ("RLIMIT_NPROC", "RLIMIT_NOFILE", "RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_CORE"):
            lim = getattr(R, name)
            before[name] = list(R.getrlimit(lim))
            hard = before[name][1]
            out[name] = attempt(R.setrlimit, lim, (R.RLIM_INFINITY, R.RLIM_INFINITY))
            if hard != R.RLIM_INFINITY:
                out[name + "_plus1"] = attempt(R.setrlimit, lim, (hard + 1, hard + 1))
        class rlim(ctypes.Structure):
            _fields_ = [("cur", ctypes.c_ulong), ("max", ctypes.c_ulong)]
        big = rlim(1 << 20, 1 << 20)
        out["prlimit_pid1"] = sc(302, 1, 6, ctypes.byref(big), 0)   # RLIMIT_NPROC of init
        after = {n: list(R.getrlimit(getattr(R, n))) for n in before}
        soft, hard = R.getrlimit(R.RLIMIT_NOFILE)
        out["twin_lower"] = attempt(R.setrlimit, R.RLIMIT_NOFILE, (min(soft, 256), hard))
        out["twin_value"] = R.getrlimit(R.RLIMIT_NOFILE)[0]
        emit({"out": out, "before": before, "after": after, "inf": R.RLIM_INFINITY})
    '''), "--timeout", "15")
    p = res.payload()
    out = p["out"]
    assert out["twin_lower"]["ok"] and out["twin_value"] <= 256, p
    assert p["before"] == p["after"], p
    for name in ("RLIMIT_NPROC", "RLIMIT_NOFILE", "RLIMIT_CPU", "RLIMIT_FSIZE"):
        assert p["before"][name][1] != p["inf"], f"{name} hard limit is unlimited: {p['before']}"
        assert failed(out[name]) and failed(out[name + "_plus1"]), (name, out)
    assert out["prlimit_pid1"]["ret"] == -1, out


def test_proc_shows_only_the_sandbox():
    host_cmd = open("/proc/self/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace")
    res = run(prog(r'''
        pids = sorted(int(d) for d in os.listdir("/proc") if d.isdigit())
        cmds = {}
        for pid in pids:
            try:
                cmds[pid] = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                cmds[pid] = None
        host = attempt(lambda: open(f"/proc/{P['host_pid']}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace"))
        emit({"pids": pids, "me": os.getpid(), "cmds": cmds, "host_cmd": host})
    ''', host_pid=os.getpid()), "--timeout", "15")
    p = res.payload()
    assert p["me"] in p["pids"], p                    # twin: our own process is listed
    assert len(p["pids"]) <= 4, f"more processes visible than the execution's own: {p['cmds']}"
    assert max(p["pids"]) < 1000, p
    assert host_cmd not in p["cmds"].values(), f"the test runner's process is visible: {p}"
    if succeeded(p["host_cmd"]):
        assert p["host_cmd"]["value"] != host_cmd[:300], p


def test_no_inherited_file_descriptors():
    res = run(prog(r'''
        fds = []
        for fd in range(4096):
            try:
                os.fstat(fd)
                fds.append(fd)
            except OSError:
                pass
        links = {fd: os.readlink(f"/proc/self/fd/{fd}") for fd in fds}
        listing = sorted(int(x) for x in os.listdir("/proc/self/fd"))
        twin = os.open("/dev/null", os.O_RDONLY)
        import fcntl
        display = {"write_only": fcntl.fcntl(4, fcntl.F_GETFL) & os.O_ACCMODE == os.O_WRONLY,
                   "cloexec": bool(fcntl.fcntl(4, fcntl.F_GETFD) & fcntl.FD_CLOEXEC)}
        emit({"fds": fds, "links": links, "listing": listing, "twin": twin, "display": display})
    '''), "--timeout", "15")
    p = res.payload()
    assert p["twin"] == 3, p
    # 4: the display pipe (notebook output), write-only, not passed on to exec'd programs.
    assert p["fds"] == [0, 1, 2, 4], f"extra file descriptors inside: {p['links']}"
    assert p["listing"] == [0, 1, 2, 3, 4], p
    assert p["links"]["4"].startswith("pipe:"), p
    assert p["display"] == {"write_only": True, "cloexec": True}, p
    for fd, target in p["links"].items():
        assert target == "/dev/null" or target.startswith(("pipe:", "socket:", "/dev/pts/")), (
            f"fd {fd} -> {target}: a host file is open inside the sandbox")


@pytest.mark.dangerous
def test_background_processes_gone_and_run_fast():
    marker = f"99{secrets.randbelow(10**6):06d}.{secrets.randbelow(10**6):06d}"
    res = run(prog(r'''
        import subprocess, signal, time
        subprocess.Popen(["sleep", P["marker"]], start_new_session=True)      # holds stdout/stderr
        pid = os.fork()
        if pid == 0:
            os.setsid()
            if os.fork() > 0:
                os._exit(0)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
            while True:                                                        # the daemon
                with open("/tmp/daemon-marker", "a") as f:
                    f.write("x")
                time.sleep(0.05)
        os.waitpid(pid, 0)
        time.sleep(0.5)
        emit({"daemon_ran": os.path.getsize("/tmp/daemon-marker") > 0})
        print("done")
    ''', marker=marker), "--timeout", "30")
    assert res["status"] == "ok" and res["return_code"] == 0, res.describe()
    assert res.payload() == {"daemon_ran": True}
    assert res["output"].rstrip().endswith("done"), res.describe()
    assert res.wall < 10, f"a background child kept the run alive for {res.wall:.1f}s"
    assert_no_sandbox_processes(grace=1.0, needle=f"sleep {marker}")
