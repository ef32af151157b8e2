"""Filesystem: only /usr (read-only), a synthetic /etc, /mnt/data and /tmp exist for the code."""
import errno
import os
import secrets
import stat
from pathlib import Path

import pytest

from .conftest import (REPO, SECRET, failed, new_data_dir, new_dir, prog, run, succeeded)

THIS_FILE = str(Path(__file__).resolve())


def test_read_etc_shadow_fails():
    res = run(prog(r'''
        emit({"shadow": attempt(lambda: open("/etc/shadow").read()),
              "gshadow": attempt(lambda: open("/etc/gshadow").read()),
              "passwd": attempt(lambda: open("/etc/passwd").read()),
              "os_release": attempt(lambda: open("/usr/lib/os-release").read())})
    '''), "--timeout", "15")
    p = res.payload()
    assert succeeded(p["passwd"]) and p["passwd"]["value"], p          # twin: synthetic passwd
    assert succeeded(p["os_release"]) and "ID=" in p["os_release"]["value"], p   # twin: /usr
    assert failed(p["shadow"]), f"/etc/shadow readable inside: {p['shadow']}"
    assert failed(p["gshadow"]), f"/etc/gshadow readable inside: {p['gshadow']}"


def test_root_home_invisible():
    res = run(prog(r'''
        emit({"list": attempt(lambda: os.listdir("/root")),
              "bashrc": attempt(lambda: open("/root/.bashrc").read()),
              "ssh": attempt(lambda: os.listdir("/root/.ssh")),
              "twin": attempt(lambda: isinstance(os.listdir("/tmp"), list))})
    '''), "--timeout", "15")
    p = res.payload()
    assert p["twin"] == {"ok": True, "value": True}, p
    for k in ("list", "bashrc", "ssh"):
        assert failed(p[k]), f"/root reachable ({k}): {p[k]}"


def test_host_working_tree_invisible():
    res = run(prog(r'''
        emit({"this_file": attempt(lambda: open(P["this_file"]).read(100)),
              "stat_this": attempt(lambda: os.stat(P["this_file"]).st_size),
              "repo": attempt(lambda: os.listdir(P["repo"])),
              "git_head": attempt(lambda: open(P["repo"] + "/.git/HEAD").read()),
              "work": attempt(lambda: os.listdir("/work")),
              "shared": attempt(lambda: os.listdir("/work/shared")),
              "twin": attempt(lambda: open("/usr/bin/python3", "rb").read(4).hex())})
    ''', this_file=THIS_FILE, repo=str(REPO)), "--timeout", "15")
    p = res.payload()
    assert p["twin"] == {"ok": True, "value": "7f454c46"}, p
    for k in ("this_file", "stat_this", "repo", "git_head", "work", "shared"):
        assert failed(p[k]), f"host working tree reachable ({k}): {p[k]}"


def test_codecell_data_dir_invisible(tmp_path):
    data_dir = new_data_dir()
    canary = (data_dir / "canary.txt").read_text()
    inp = tmp_path / "input.csv"
    inp.write_text("a,b\n1,2\n")
    res = run(prog(r'''
        d = P["data_dir"]
        emit({"list": attempt(lambda: os.listdir(d)),
              "canary": attempt(lambda: open(d + "/canary.txt").read()),
              "via_proc1_root": attempt(lambda: open("/proc/1/root" + d + "/canary.txt").read()),
              "parent": attempt(lambda: os.listdir(os.path.dirname(d))),
              "twin": attempt(lambda: open("/mnt/data/input.csv").read())})
    ''', data_dir=str(data_dir)), "--timeout", "15", files=[inp], data_dir=data_dir)
    p = res.payload()
    assert p["twin"] == {"ok": True, "value": "a,b\n1,2\n"}, p
    for k in ("list", "canary", "via_proc1_root", "parent"):
        assert failed(p[k]), f"codecell's data dir reachable ({k}): {p[k]}"
    assert canary not in res["output"] and canary not in res["error"]


def test_init_process_shows_nothing_of_the_supervisor(tmp_path):
    """pid 1 inside is a clone of codecell: its command line would name host paths and the code."""
    data_dir = new_data_dir()
    res = run(prog(r'''
        emit({"cmdline": attempt(lambda: open("/proc/1/cmdline", "rb").read().decode("latin-1")),
              "environ": attempt(lambda: open("/proc/1/environ", "rb").read().decode("latin-1")),
              "mem": attempt(lambda: open("/proc/1/mem", "rb").read(16)),
              "twin": attempt(lambda: open("/proc/self/cmdline", "rb").read().decode())})
    '''), "--timeout", "15", data_dir=data_dir)
    p = res.payload()
    assert p["twin"]["ok"] and "runner.py" in p["twin"]["value"], p
    assert p["cmdline"]["ok"], p
    assert p["cmdline"]["value"].rstrip("\0") == "codecell-init", p["cmdline"]
    assert str(data_dir) not in p["cmdline"]["value"]
    assert failed(p["environ"]) or SECRET not in p["environ"]["value"], p["environ"]
    assert failed(p["mem"]), p["mem"]


def test_mount_table_shows_nothing_of_the_host_layout(tmp_path):
    """/proc/self/mountinfo lists every mount's source and options: the overlay's layers and the
    runner's files must not name the host's data dir."""
    data_dir = new_data_dir()
    inp = tmp_path / "input.csv"
    inp.write_text("x\n1\n")
    res = run(prog(r'''
        emit({"mountinfo": open("/proc/self/mountinfo").read(),
              "mounts": open("/proc/self/mounts").read(),
              "twin": open("/mnt/data/input.csv").read()})
    '''), "--timeout", "15", files=[inp], data_dir=data_dir)
    p = res.payload()
    assert p["twin"] == "x\n1\n"
    for table in ("mountinfo", "mounts"):
        assert str(data_dir) not in p[table], p[table]
        assert "/mnt/data" in p[table]  # the twin: the workspace is listed, by its inside path


def test_proc_root_links_do_not_escape():
    """/proc/1/root, /proc/1/cwd and friends lead nowhere outside the sandbox."""
    res = run(prog(r'''
        views = {d: sorted(os.listdir(d)) for d in ("/", "/mnt/data", "/tmp", "/run/codecell")}
        emit({"p1_shadow": attempt(lambda: open("/proc/1/root/etc/shadow").read()),
              "p1_repo": attempt(lambda: os.listdir("/proc/1/root" + P["repo"])),
              "p1_root": attempt(lambda: sorted(os.listdir("/proc/1/root"))),
              "p1_cwd": attempt(lambda: sorted(os.listdir("/proc/1/cwd"))),
              "p1_environ": attempt(lambda: open("/proc/1/environ").read()),
              "self_dotdot": attempt(lambda: open("/proc/self/root/../../../../etc/shadow").read()),
              "self_repo": attempt(lambda: os.listdir("/proc/self/root/../../" + P["repo"])),
              "views": views,
              "twin": attempt(lambda: "ID=" in open("/proc/self/root/usr/lib/os-release").read())})
    ''', repo=str(REPO)), "--timeout", "15")
    p = res.payload()
    assert p["twin"] == {"ok": True, "value": True}, p
    for k in ("p1_shadow", "p1_repo", "self_dotdot", "self_repo"):
        assert failed(p[k]), f"escape through /proc links ({k}): {p[k]}"
    # pid 1 is codecell's init: if its root / cwd are reachable at all, they must be sandbox views
    views = list(p["views"].values())
    if succeeded(p["p1_root"]):
        assert p["p1_root"]["value"] == p["views"]["/"], f"init's root is not the sandbox's: {p}"
    if succeeded(p["p1_cwd"]):
        assert p["p1_cwd"]["value"] in views, f"init's cwd is outside the sandbox: {p['p1_cwd']}"
    if succeeded(p["p1_environ"]):
        v = p["p1_environ"]["value"]
        assert SECRET not in v and "PWD=" not in v and str(REPO) not in v, p["p1_environ"]


def test_host_directories_absent():
    res = run(prog(r'''
        names = ["/sys", "/home", "/root", "/var", "/work", "/opt", "/boot", "/srv", "/media",
                 "/lost+found", "/snap", "/var/run/docker.sock", "/run/docker.sock",
                 "/run/systemd", "/run/dbus", "/sys/fs/cgroup", "/sys/kernel"]
        present = [n for n in names if os.path.lexists(n)]
        sys_read = attempt(lambda: open("/sys/kernel/uevent_helper").read())
        twin = attempt(lambda: [os.path.isdir("/mnt/data"), os.path.isdir("/tmp"),
                                "Seccomp" in open("/proc/self/status").read()])
        emit({"present": present, "sys_read": sys_read, "twin": twin})
    '''), "--timeout", "15")
    p = res.payload()
    assert p["twin"] == {"ok": True, "value": [True, True, True]}, p
    assert p["present"] == [], f"host directories visible inside: {p['present']}"
    assert failed(p["sys_read"]), p


def test_sensitive_proc_files_unreadable():
    res = run(prog(r'''
        def rd(path, n=64):
            with open(path, "rb") as f:
                return f.read(n).hex()
        emit({"kcore": attempt(rd, "/proc/kcore"), "kmsg": attempt(rd, "/proc/kmsg"),
              "p1_mem": attempt(rd, "/proc/1/mem"), "p1_maps": attempt(rd, "/proc/1/maps"),
              "twin": attempt(lambda: len(rd("/proc/self/maps")) > 0)})
    '''), "--timeout", "15")
    p = res.payload()
    assert p["twin"] == {"ok": True, "value": True}, p
    for k in ("kcore", "kmsg", "p1_mem", "p1_maps"):
        assert failed(p[k]), f"{k} readable inside: {p[k]}"


@pytest.mark.dangerous
def test_device_nodes():
    res = run(prog(r'''
        import stat
        devs = {}
        for root, dirs, files in os.walk("/dev"):
            if root.startswith(("/dev/shm", "/dev/fd")):
                dirs[:] = []
                continue
            for n in dirs + files:
                path = os.path.join(root, n)
                try:
                    st = os.lstat(path)
                except OSError:
                    continue
                if stat.S_ISCHR(st.st_mode):
                    devs[path] = "c%d:%d" % (os.major(st.st_rdev), os.minor(st.st_rdev))
                elif stat.S_ISBLK(st.st_mode):
                    devs[path] = "b%d:%d" % (os.major(st.st_rdev), os.minor(st.st_rdev))
        def mk(path, mode, dev):
            os.mknod(path, mode, dev)
            return "created"
        def full():
            with open("/dev/full", "wb", buffering=0) as f:
                f.write(b"x")
        emit({"devs": devs,
              "mknod_mem": attempt(mk, "/tmp/mem", stat.S_IFCHR | 0o666, os.makedev(1, 1)),
              "mknod_disk": attempt(mk, "/tmp/vda", stat.S_IFBLK | 0o666, os.makedev(253, 0)),
              "mknod_kmsg": attempt(mk, "/mnt/data/kmsg", stat.S_IFCHR | 0o666, os.makedev(1, 11)),
              "twin_random": attempt(lambda: len(open("/dev/urandom", "rb").read(16))),
              "twin_null": attempt(lambda: open("/dev/null", "w").write("x")),
              "twin_full": attempt(full),
              "twin_fifo": attempt(lambda: os.mkfifo("/tmp/fifo") or "fifo")})
    '''), "--timeout", "15")
    p = res.payload()
    assert p["twin_random"] == {"ok": True, "value": 16}, p
    assert p["twin_null"] == {"ok": True, "value": 1}, p
    assert p["twin_full"]["errno"] == errno.ENOSPC, p
    assert p["twin_fifo"] == {"ok": True, "value": "fifo"}, p
    for k in ("mknod_mem", "mknod_disk", "mknod_kmsg"):
        assert failed(p[k]), f"{k}: device node creation worked: {p[k]}"
    allowed = {"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty",
               "/dev/ptmx", "/dev/pts/ptmx"}
    extra = {k: v for k, v in p["devs"].items() if k not in allowed}
    assert not extra, f"unexpected device nodes inside the sandbox: {extra}"


# ------------------------------------------------------------------------------------------
# writes outside /mnt/data and /tmp
# ------------------------------------------------------------------------------------------
TAG = secrets.token_hex(5)
NEW_FILES = {
    "root_fs": f"/codecell-sec-{TAG}",
    "usr": f"/usr/codecell-sec-{TAG}",
    "usr_local": f"/usr/local/codecell-sec-{TAG}",
    "usr_lib_python": f"/usr/lib/python3.11/codecell-sec-{TAG}",
    "etc": f"/etc/codecell-sec-{TAG}",
    "run_codecell": f"/run/codecell/codecell-sec-{TAG}",
    "dev": f"/dev/codecell-sec-{TAG}",
    "proc": f"/proc/codecell-sec-{TAG}",
}
# existing files: opened O_WRONLY (nothing written, so a miss cannot damage the host)
OPEN_WRITE = {
    "etc_passwd": "/etc/passwd",
    "etc_hosts": "/etc/hosts",
    "usr_python3": "/usr/bin/python3",
    "usr_os_release": "/usr/lib/os-release",
    "runner_py": "/run/codecell/runner.py",
    "proc_hostname": "/proc/sys/kernel/hostname",
    "proc_core_pattern": "/proc/sys/kernel/core_pattern",
    "proc_sysrq_trigger": "/proc/sysrq-trigger",
    "proc_drop_caches": "/proc/sys/vm/drop_caches",
}
OTHER = ["mkdir_usr_share", "symlink_in_usr", "chmod_python", "utime_os_release",
         "rename_etc_hosts", "unlink_etc_passwd", "oom_score_adj_minus_1000"]
HOST_PATHS_TO_CHECK = [v for k, v in NEW_FILES.items() if k not in ("proc", "dev", "run_codecell")] + [
    f"/usr/share/codecell-sec-{TAG}", f"/usr/codecell-sec-link-{TAG}"]


@pytest.fixture(scope="module")
def write_attempts():
    host_mtime = os.stat("/usr/lib/os-release").st_mtime_ns
    res = run(prog(r'''
        out = {}
        def create(path):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            os.write(fd, b"pwned")
            os.close(fd)
            return "created"
        for name, path in P["new"].items():
            out[name] = attempt(create, path)
        def open_w(path):
            fd = os.open(path, os.O_WRONLY)
            os.close(fd)
            return "opened for writing"
        for name, path in P["open"].items():
            out[name] = attempt(open_w, path)
        st = os.stat("/usr/bin/python3")
        out["mkdir_usr_share"] = attempt(os.mkdir, "/usr/share/codecell-sec-" + P["tag"])
        out["symlink_in_usr"] = attempt(os.symlink, "/etc/shadow", "/usr/codecell-sec-link-" + P["tag"])
        out["chmod_python"] = attempt(os.chmod, "/usr/bin/python3", st.st_mode & 0o7777)
        st2 = os.stat("/usr/lib/os-release")
        out["utime_os_release"] = attempt(os.utime, "/usr/lib/os-release", ns=(st2.st_atime_ns, st2.st_mtime_ns))
        out["rename_etc_hosts"] = attempt(os.rename, "/etc/hosts", "/etc/hosts.x")
        out["unlink_etc_passwd"] = attempt(os.unlink, "/etc/passwd")
        def oom():
            with open("/proc/self/oom_score_adj", "w") as f:
                f.write("-1000")
            return open("/proc/self/oom_score_adj").read().strip()
        out["oom_score_adj_minus_1000"] = attempt(oom)
        # twins: the writable places
        out["twin_tmp"] = attempt(create, "/tmp/ok-" + P["tag"])
        out["twin_mnt_data"] = attempt(create, "/mnt/data/ok-" + P["tag"])
        out["twin_dev_shm"] = attempt(create, "/dev/shm/ok-" + P["tag"])
        def raise_oom():
            with open("/proc/self/oom_score_adj", "w") as f:
                f.write("500")
            return open("/proc/self/oom_score_adj").read().strip()
        out["twin_oom_raise"] = attempt(raise_oom)
        emit(out)
    ''', new=NEW_FILES, open=OPEN_WRITE, tag=TAG), "--timeout", "20")
    p = res.payload()
    host_left = [h for h in HOST_PATHS_TO_CHECK if os.path.lexists(h)]
    for h in host_left:  # clean up after a breach, but still fail below
        try:
            os.rmdir(h) if os.path.isdir(h) and not os.path.islink(h) else os.unlink(h)
        except OSError:
            pass
    return res, p, host_left, host_mtime


@pytest.mark.dangerous          # shares the fixture that performs the write attacks
def test_writable_twins(write_attempts):
    res, p, _, _ = write_attempts
    for k in ("twin_tmp", "twin_mnt_data", "twin_dev_shm"):
        assert p[k] == {"ok": True, "value": "created"}, (k, p[k])
    assert p["twin_oom_raise"] == {"ok": True, "value": "500"}, p["twin_oom_raise"]
    assert f"ok-{TAG}" in [g["filename"] for g in res["generated_files"]], res["generated_files"]


@pytest.mark.dangerous
@pytest.mark.parametrize("name", sorted(NEW_FILES) + sorted(OPEN_WRITE) + OTHER)
def test_write_outside_workspace_fails(write_attempts, name):
    res, p, host_left, host_mtime = write_attempts
    assert p["twin_tmp"] == {"ok": True, "value": "created"}, p["twin_tmp"]
    assert failed(p[name]), f"write outside /mnt/data and /tmp succeeded ({name}): {p[name]}"
    assert not host_left, f"files appeared on the HOST: {host_left}"
    assert os.stat("/usr/lib/os-release").st_mtime_ns == host_mtime, "host /usr file touched"


# ------------------------------------------------------------------------------------------
# collecting /mnt/data
# ------------------------------------------------------------------------------------------
def _walk(root: Path):
    files, links = {}, []
    for dirpath, dirs, names in os.walk(root, followlinks=False):
        for n in dirs + names:
            path = Path(dirpath) / n
            if path.is_symlink():
                links.append(str(path))
            elif path.is_file():
                files[str(path.relative_to(root))] = path.read_bytes()
    return files, links


def test_symlinks_never_collected():
    data_dir = new_data_dir()
    canary = (data_dir / "canary.txt").read_text()
    shadow = Path("/etc/shadow").read_bytes() if os.path.exists("/etc/shadow") else None
    out_dir = new_dir("out")
    res = run(prog(r'''
        os.symlink("/etc/shadow", "shadow_link")
        os.symlink(P["data_dir"], "datadir_link")
        os.symlink(P["data_dir"] + "/canary.txt", "canary_link")
        os.symlink(P["this_file"], "repo_link")
        os.symlink("/", "root_link")
        os.symlink("/proc/self/environ", "environ_link")
        os.symlink("/proc/1/environ", "init_environ_link")
        os.makedirs("sub/deeper")
        os.symlink("../../../../../../etc/shadow", "sub/deeper/rel_link")
        with open("real.txt", "w") as f:
            f.write("real content")
        emit({"cwd": os.getcwd(), "twin": open("real.txt").read()})
    ''', data_dir=str(data_dir), this_file=THIS_FILE), "--timeout", "15",
        data_dir=data_dir, output_dir=out_dir)
    p = res.payload()
    assert p["cwd"] == "/mnt/data" and p["twin"] == "real content", p
    gen = sorted(g["filename"] for g in res["generated_files"])
    assert gen == ["real.txt"], f"generated files: {res['generated_files']}"
    links = ["shadow_link", "datadir_link", "canary_link", "repo_link", "root_link",
             "environ_link", "init_environ_link", "sub/deeper/rel_link"]
    skipped = {s["filename"]: s.get("reason") for s in res["skipped_files"]}
    for l in links:
        assert skipped.get(l) == "symlink", f"{l} not skipped as symlink: {res['skipped_files']}"
    files, host_links = _walk(out_dir)
    prefix = res["execution_id"] + "/"        # the CLI may copy into <output-dir>/<execution_id>/
    files = {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in files.items()}
    assert not host_links, f"symlinks in the host output dir: {host_links}"
    assert sorted(files) == ["real.txt"], f"output dir holds {sorted(files)}"
    for name, content in files.items():
        assert SECRET.encode() not in content and canary.encode() not in content, name
        assert shadow is None or shadow not in content, name
    for g in res["generated_files"]:
        path = Path(g["path"])
        assert not path.is_symlink() and path.read_bytes() == b"real content", g


def test_special_files_do_not_hang_collection():
    res = run(prog(r'''
        import socket
        os.mkfifo("/mnt/data/pipe")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind("/mnt/data/sock")
        with open("/mnt/data/normal.csv", "w") as f:
            f.write("x,y\n1,2\n")
        emit({"twin": sorted(os.listdir("/mnt/data"))})
    '''), "--timeout", "10")
    p = res.payload()
    assert p["twin"] == ["normal.csv", "pipe", "sock"], p
    assert res.wall < 25, f"collection took {res.wall:.1f}s"
    gen = sorted(g["filename"] for g in res["generated_files"])
    assert gen == ["normal.csv"], res["generated_files"]


def test_input_files_cannot_be_modified_on_host(tmp_path):
    token = "original-" + secrets.token_hex(8)
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text(token)
    b.write_text(token + "-b")
    os.chmod(a, 0o644)
    data_dir = new_data_dir()
    bad = "tampered-" + secrets.token_hex(8)
    res = run(prog(r'''
        before = open("a.txt").read()
        with open("a.txt", "w") as f:
            f.write(P["bad"])
        os.chmod("a.txt", 0o777)
        os.unlink("b.txt")
        emit({"before": before, "after": open("a.txt").read(), "listing": sorted(os.listdir("."))})
    ''', bad=bad), "--timeout", "15", files=[a, b], data_dir=data_dir)
    p = res.payload()
    assert p == {"before": token, "after": bad, "listing": ["a.txt"]}, p   # twin: inside it works
    assert a.read_text() == token and b.read_text() == token + "-b", "host input files changed"
    assert stat.S_IMODE(os.stat(a).st_mode) == 0o644, "host input file mode changed"
    for dirpath, _, names in os.walk(data_dir):
        for n in names:
            path = Path(dirpath) / n
            if path.is_file() and not path.is_symlink():
                assert bad.encode() not in path.read_bytes(), f"stored original changed: {path}"
