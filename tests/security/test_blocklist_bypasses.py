"""The old bot's regex-blocklist bypasses: they RUN now (no blocklist), but reach nothing."""
import os
import re
import subprocess

import pytest

from .conftest import SECRET_NAME, SLOT_UID_MIN, assert_nothing_arrived_tcp, failed, prog, run

# names of variables codecell may legitimately set inside (contract: environment from scratch)
ALLOWED_SHARED_ENV = {"PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "TERM", "TZ",
                      "PWD", "SHLVL", "_"}


def _uids(text):
    return [int(u) for u in re.findall(r"uid=(\d+)", text)]


def test_getattr_os_system():
    res = run(prog(r'''
        import re
        rc1 = getattr(os, "sys" + "tem")("id")
        rc2 = getattr(os, "sys" + "tem")("cat /etc/shadow 2>/dev/null")
        rc3 = getattr(os, "sys" + "tem")("ls /root /work 2>/dev/null")
        # twin: what the blocklist used to reject by mistake runs fine
        class Model:
            def eval(self):
                return "evaluated"
        import pandas as pd
        df = pd.DataFrame({"a": [1, 2]})
        twin = [bool(re.compile(r"\d+").match("12")), Model().eval(), df.replace(1, 5)["a"].tolist()]
        emit({"rc": [os.waitstatus_to_exitcode(r) for r in (rc1, rc2, rc3)], "twin": twin})
    '''), "--timeout", "60")
    p = res.payload()
    assert p["twin"] == [True, "evaluated", [5, 2]], p
    assert p["rc"][0] == 0, p                                  # id ran
    uids = _uids(res["output"])
    assert uids and all(u >= SLOT_UID_MIN for u in uids), res.describe()
    assert p["rc"][1] != 0 and p["rc"][2] != 0, f"shadow / root / work reachable: {p}"


@pytest.mark.dangerous          # appends a passwordless root to /etc/passwd if unconfined
def test_from_os_import_system():
    res = run(prog(r'''
        from os import path, system
        rcs = {"id": system("id -u"), "shadow": system("cat /etc/shadow >/dev/null 2>&1"),
               "passwd_change": system("echo 'root::0:0::/:/bin/sh' >> /etc/passwd 2>/dev/null"),
               "twin": system("echo twin > /tmp/t && cat /tmp/t >/dev/null")}
        emit({k: os.waitstatus_to_exitcode(v) for k, v in rcs.items()})
    '''), "--timeout", "20")
    p = res.payload()
    assert p["id"] == 0 and p["twin"] == 0, p
    assert int(res["output"].splitlines()[0]) >= SLOT_UID_MIN, res.describe()
    assert p["shadow"] != 0 and p["passwd_change"] != 0, p


def test_import_posix_environ():
    res = run(prog(r'''
        import posix
        env = {k.decode(): v.decode(errors="replace") for k, v in posix.environ.items()}
        emit({"keys": sorted(env), "has_secret_name": ("CODECELL_TEST_" + "SECRET") in env,
              "twin_pid": posix.getpid() == os.getpid(), "path": env.get("PATH", "")})
    '''), "--timeout", "15")
    p = res.payload()
    assert p["twin_pid"] and p["path"], p
    assert not p["has_secret_name"], p
    leaked = sorted((set(os.environ) - ALLOWED_SHARED_ENV) & set(p["keys"]))
    assert not leaked, f"the caller's environment variables are visible: {leaked}"


def test_tmp_dotdot_proc_self_environ():
    res = run(prog(r'''
        data = open("/tmp/../proc/self/environ", "rb").read()
        keys = sorted(kv.split(b"=", 1)[0].decode() for kv in data.split(b"\0") if kv)
        emit({"keys": keys, "has_secret_name": ("CODECELL_TEST_" + "SECRET").encode() in data,
              "parent": attempt(lambda: ("CODECELL_TEST_" + "SECRET").encode() in
                                open("/tmp/../proc/%d/environ" % os.getppid(), "rb").read())})
    '''), "--timeout", "15")
    p = res.payload()
    assert "PATH" in p["keys"], p                              # twin: own environ readable
    assert not p["has_secret_name"], p
    leaked = sorted((set(os.environ) - ALLOWED_SHARED_ENV) & set(p["keys"]))
    assert not leaked, f"the caller's environment variables are visible: {leaked}"
    assert SECRET_NAME not in p["keys"]
    assert failed(p["parent"]) or p["parent"]["value"] is False, f"secret in init's environ: {p}"


@pytest.mark.dangerous          # would install into the host's Python if unconfined
def test_pip_internal_cannot_install():
    assert subprocess.run(["/usr/bin/python3", "-c", "import tinydb"],
                          capture_output=True).returncode != 0, "precondition: tinydb on host"
    res = run(prog(r'''
        import subprocess, sys, importlib
        out = {}
        try:
            from pip._internal.cli.main import main
        except ImportError as e:
            out["import"] = "ImportError"
            main = None
        if main is not None:
            out["import"] = "ok"
            out["install"] = main(["install", "--no-input", "--disable-pip-version-check",
                                   "--retries", "0", "--timeout", "3", "tinydb"])
            out["install_user"] = main(["install", "--user", "--no-input",
                                        "--disable-pip-version-check", "--retries", "0",
                                        "--timeout", "3", "tinydb"])
        r = subprocess.run([sys.executable, "-m", "pip", "install", "--retries", "0",
                            "--timeout", "3", "--target", "/tmp/t", "tinydb"], capture_output=True)
        out["pip_target"] = r.returncode
        importlib.invalidate_caches()
        sys.path.insert(0, "/tmp/t")
        out["tinydb"] = attempt(lambda: __import__("tinydb").__name__)
        out["twin_numpy"] = attempt(lambda: int(__import__("numpy").arange(4).sum()))
        emit(out)
    '''), "--timeout", "120")
    p = res.payload()
    assert p["twin_numpy"] == {"ok": True, "value": 6}, p
    if p["import"] == "ok":
        assert p["install"] != 0 and p["install_user"] != 0, p
    assert p["pip_target"] != 0, p
    assert failed(p["tinydb"]), f"pip installed a package from the internet: {p}"
    assert subprocess.run(["/usr/bin/python3", "-c", "import tinydb"],
                          capture_output=True).returncode != 0, "tinydb appeared on the host"


def test_urllib_request(tcp_listener):
    srv, port = tcp_listener
    res = run(prog(r'''
        import urllib.request
        emit({"host": attempt(lambda: urllib.request.urlopen(f"http://127.0.0.1:{P['port']}/x", timeout=3).status),
              "pypi": attempt(lambda: urllib.request.urlopen("https://pypi.org/simple/", timeout=3).status),
              "twin_file": attempt(lambda: b"ID=" in urllib.request.urlopen("file:///usr/lib/os-release").read())})
    ''', port=port), "--timeout", "30")
    p = res.payload()
    assert p["twin_file"] == {"ok": True, "value": True}, p
    assert failed(p["host"]) and failed(p["pypi"]), p
    assert_nothing_arrived_tcp(srv)


def test_subprocess_shell_and_ctypes_system():
    res = run(prog(r'''
        import subprocess
        sh = lambda c: subprocess.run(c, shell=True, capture_output=True, text=True)
        out = {
            "shadow": sh("cat /etc/shadow").returncode,
            "init_env": sh("tr '\\0' '\\n' < /proc/1/environ | grep -c CODECELL_TEST_").stdout.strip(),
            "root": sh("ls /root").returncode,
            "ctypes_id": None,
            "twin": sh("echo ok; id -u").stdout.split(),
        }
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.dup2(w, 1)
            ctypes.CDLL(None).system(b"id -u")
            os._exit(0)
        os.close(w)
        os.waitpid(pid, 0)
        out["ctypes_id"] = int(os.read(r, 100).decode().strip())
        emit(out)
    '''), "--timeout", "20")
    p = res.payload()
    assert p["twin"][0] == "ok" and int(p["twin"][1]) >= SLOT_UID_MIN, p
    assert p["ctypes_id"] >= SLOT_UID_MIN, p
    assert p["shadow"] != 0 and p["root"] != 0, p
    assert p["init_env"] in ("", "0"), f"the secret's name is in pid 1's environment: {p}"


def test_obfuscated_payload():
    import base64
    payload = base64.b64encode(rb'''
import os, glob
found = []
for f in glob.glob("/proc/*/environ"):
    try:
        if b"CODECELL_TEST_" + b"SECRET" in open(f, "rb").read():
            found.append(f)
    except OSError:
        pass
try:
    open("/etc/shadow").read()
    found.append("/etc/shadow")
except OSError:
    pass
RESULT = found
''').decode()
    res = run(prog(r'''
        import base64
        g = {}
        exec(compile(base64.b64decode(P["b"]), "<obf>", "exec"), g)
        twin = eval(base64.b64decode(b"MSArIDE=").decode())     # "1 + 1"
        emit({"found": g["RESULT"], "twin": twin})
    ''', b=payload), "--timeout", "20")
    p = res.payload()
    assert p["twin"] == 2, p
    assert p["found"] == [], f"the obfuscated payload reached: {p['found']}"
