"""pip's own sandbox (ExecutionRequest::installer), driven through `codecell __execute` with a
probe instead of pip: it must run as the installer's unprivileged uid with no_new_privs and
seccomp, write only to the environment being built, read the wheel directory, see none of the data
dir (users' files, the database), and reach the host's network (the index) but no raw sockets."""
import json
import os
import socket
import subprocess
import threading

from .conftest import BIN, require_binary, require_root

INSTALLER_UID = 899999

PROBE = r"""
import errno, json, os, socket
out = {"uid": os.getuid(), "gid": os.getgid()}
status = dict(l.split(":", 1) for l in open("/proc/self/status").read().splitlines() if ":" in l)
out["seccomp"] = status["Seccomp"].strip()
out["no_new_privs"] = status["NoNewPrivs"].strip()
def attempt(fn):
    try:
        fn()
        return "ok"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
out["env_write"] = attempt(lambda: open("/opt/codecell/packages/written", "w").write("x"))
out["wheels"] = sorted(os.listdir("/opt/codecell/wheels"))
out["wheels_write"] = attempt(lambda: open("/opt/codecell/wheels/x", "w").write("x"))
out["usr_write"] = attempt(lambda: open("/usr/lib/python3/dist-packages/x.pth", "w").write("x"))
out["mnt_data"] = sorted(os.listdir("/mnt/data"))
out["data_dir_visible"] = os.path.exists(DATA_DIR)
out["root"] = sorted(os.listdir("/"))
def connect():
    s = socket.create_connection(("127.0.0.1", PORT), timeout=5)
    s.sendall(b"from-pip-sandbox")
    s.close()
out["loopback"] = attempt(connect)
out["packet_socket"] = attempt(lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW))
out["netlink_socket"] = attempt(lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW))
print(json.dumps(out))
"""


def test_pips_sandbox(tmp_path):
    require_root()
    require_binary()
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    (data / "codecell.db").write_text("secret metadata")
    env = data / "packages" / "envs" / "probe.partial"
    env.mkdir(parents=True)
    os.chown(env, INSTALLER_UID, INSTALLER_UID)
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "demo-1.0-py3-none-any.whl").write_bytes(b"PK")

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(60)
    received = []

    def accept():
        try:
            conn, _ = listener.accept()
            received.append(conn.recv(100))
            conn.close()
        except OSError:
            pass

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    code = PROBE.replace("DATA_DIR", repr(str(data))).replace(
        "PORT", str(listener.getsockname()[1]))
    request = {
        "code": code, "inputs": [], "generated_dir": "", "data_dir": str(data),
        "packages_dir": str(env), "installer": True, "wheel_dir": str(wheels),
        "installer_uid": INSTALLER_UID,
        "limits": {"timeout_seconds": 60, "memory_mb": 512, "max_processes": 64, "cpus": 0,
                   "tmp_mb": 64, "workspace_mb": 16, "max_output_chars": 100000,
                   "max_generated_files": 0, "max_generated_file_bytes": 0,
                   "max_display_bytes": 0, "max_display_items": 0},
    }
    p = subprocess.run([str(BIN), "__execute"], input=json.dumps(request), capture_output=True,
                       text=True, timeout=120)
    listener.close()
    assert p.returncode == 0, (p.stdout, p.stderr)
    result = json.loads(p.stdout)
    assert result["status"] == "ok", result
    out = json.loads(result["output"].strip().splitlines()[-1])

    assert (out["uid"], out["gid"]) == (INSTALLER_UID, INSTALLER_UID), out
    assert out["seccomp"] == "2" and out["no_new_privs"] == "1", out
    assert out["env_write"] == "ok", out                     # the environment being built
    assert (env / "written").read_text() == "x"
    assert out["wheels"] == ["demo-1.0-py3-none-any.whl"], out
    assert out["wheels_write"] == "EROFS", out
    assert out["usr_write"] in ("EROFS", "EACCES"), out
    assert out["mnt_data"] == [], out
    assert out["data_dir_visible"] is False, out
    assert "var" not in out["root"] and "root" not in out["root"] and "home" not in out["root"], out
    assert out["loopback"] == "ok" and received == [b"from-pip-sandbox"], (out, received)
    assert out["packet_socket"] != "ok" and out["netlink_socket"] != "ok", out
