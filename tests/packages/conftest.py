"""Shared machinery of the package-installation suite (``[packages]``, ``/v1/packages``).

Run with Debian's interpreter (pytest 7.2):

    cd <repo> && CODECELL_BIN=build/codecell /usr/bin/python3 -m pytest tests/packages -q

* ``CODECELL_BIN``: the binary under test (default ``<repo>/build/codecell``).
* ``CI=true``: a missing root privilege (or missing python3-setuptools / python3-wheel) makes the
  tests FAIL instead of skip.

These machines have no access to PyPI, so the suite builds its own distributions once per session
(fixture ``wheels``) with Debian's setuptools + wheel, in a temporary directory:

* ``ccdemo-alpha`` 1.0: ``ccdemo_alpha.VALUE == "alpha-1"`` and ``read_data()``, which reads the
  package file ``ccdemo_alpha/data.txt`` lazily (its content holds a per-session random token);
* ``ccdemo-beta`` 1.0: ``install_requires=["ccdemo-alpha"]``;
* ``ccdemo-pth`` 1.0: a purelib ``ccdemo_pth.pth`` whose one ``import ...`` line tries to create a
  marker at a host path (``/var/tmp/ccdemo-pth-<uuid>``) and ``/opt/codecell/packages/
  PTH_RAN_WRITABLE``, then sets ``builtins.CCDEMO_PTH_RAN = os.getuid()``;
* ``ccdemo-sdistonly`` 1.0: only an sdist, whose setup.py creates a marker at a host path
  (``/var/tmp/ccdemo-sdist-<uuid>``) and ``CCDEMO_SDIST_RAN`` files wherever it can if it is ever
  run;
* ``ccdemo-broken``: allowlisted, but there is no distribution of that name anywhere.

They are served two ways: the directory itself (config ``packages.wheel_dir``, pip
``--find-links``) and a PEP 503 "simple" index on 127.0.0.1 (fixture ``index``:
``simple/<normalized-name>/index.html`` linking ``../../files/<file>#sha256=...``), whose
request log the tests read.

Every daemon is a real ``codecell serve --config FILE --listen 127.0.0.1:<free port> --data-dir
<tmp>``; its stderr goes to a file that failures quote.  The daemons' environment has no
``CODECELL_*``, ``PIP_*`` or proxy variables (the harness sets ``PIP_FIND_LINKS`` and others).
"""
import hashlib
import html
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import uuid
import zipfile
from pathlib import Path
from typing import NamedTuple

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # tests/, for support.harness
from support import harness  # noqa: E402
# re-exported for the test modules (`from .conftest import ...`)
from support.harness import (BIN, binary_path, free_port, in_ci, require,  # noqa: E402,F401
                             require_binary, to_toml, toml_key, toml_value)

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
SYSTEM_PYTHON = "/usr/bin/python3"

READY_TIMEOUT = 20.0        # seconds for GET /healthz to answer after start
STOP_TIMEOUT = 15.0         # SIGTERM, then SIGKILL after this long
INSTALL_TIMEOUT = 60        # packages.install_timeout in the daemons' config (s)
HTTP_TIMEOUT = 150          # client-side timeout of a request that may run pip (s)
ENV_MOUNT = "/opt/codecell/packages"

# import name -> requirement: the allowlist of every daemon (default_allowlist = false)
ALLOWLIST = {
    "ccdemo_alpha": "ccdemo-alpha",
    "ccdemo_beta": "ccdemo-beta==1.0",
    "ccdemo_pth": "ccdemo-pth",
    "ccdemo_sdistonly": "ccdemo-sdistonly",
    "ccdemo_broken": "ccdemo-broken",
}


# --------------------------------------------------------------------------------------------
# root and tools (tests/support/harness.py); the daemons' dirs are pytest's tmp_path
# --------------------------------------------------------------------------------------------
SUITE = harness.Suite("packages",
                      root_reason="codecell serve runs executions and pip in the sandbox, which "
                                  "needs root; this process is not root")
require_root = SUITE.require_root


def require_build_tools() -> None:
    probe = subprocess.run([SYSTEM_PYTHON, "-c", "import setuptools, wheel"],
                           capture_output=True, text=True)
    require(probe.returncode == 0,
            "building the test wheels needs Debian's python3-setuptools and python3-wheel "
            f"({probe.stderr.strip()[-300:]})")


# --------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------
def norm(name: str) -> str:
    """PEP 503 normalized name."""
    return re.sub(r"[-_.]+", "-", str(name)).lower()


def wait_until(pred, timeout: float, interval: float = 0.2):
    """pred()'s first truthy value within `timeout` s, else None."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            return None
        time.sleep(interval)


def is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def tool_env(extra: dict | None = None) -> dict:
    """os.environ without codecell, pip and proxy settings (the harness sets PIP_FIND_LINKS)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CODECELL_", "PIP_")) and "proxy" not in k.lower()}
    env["PIP_CONFIG_FILE"] = os.devnull
    env.update(extra or {})
    return env


def parse_metrics(text: str) -> dict:
    """{(name, frozenset(labels.items())): value} of a Prometheus text exposition."""
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^([A-Za-z_:][A-Za-z0-9_:]*)(\{(.*)\})?\s+(\S+)", line)
        if not m:
            continue
        labels = dict(re.findall(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        try:
            out[(m.group(1), frozenset(labels.items()))] = float(m.group(4))
        except ValueError:
            pass
    return out


# --------------------------------------------------------------------------------------------
# the test distributions
# --------------------------------------------------------------------------------------------
class Wheels(NamedTuple):
    dir: Path                 # the find-links directory (wheels + the sdist)
    files: dict               # distribution name -> Path of its file
    alpha_data: str           # content of ccdemo_alpha/data.txt
    pth_marker: Path          # host path the .pth tries to create
    sdist_marker: Path        # host path the sdist's setup.py creates when run
    pth_line: str             # the line of ccdemo_pth.pth


ALPHA_INIT = '''\
import os

VALUE = "alpha-1"


def read_data():
    """Reads a file of the package only when called (lazily)."""
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "data.txt")) as f:
        return f.read().strip()
'''

ALPHA_SETUP = '''\
from setuptools import setup

setup(name="ccdemo-alpha", version="1.0", packages=["ccdemo_alpha"],
      package_data={"ccdemo_alpha": ["data.txt"]}, zip_safe=False)
'''

BETA_INIT = '''\
import ccdemo_alpha

VALUE = "beta-1"


def uses_alpha():
    return "beta+" + ccdemo_alpha.VALUE
'''

BETA_SETUP = '''\
from setuptools import setup

setup(name="ccdemo-beta", version="1.0", packages=["ccdemo_beta"],
      install_requires=["ccdemo-alpha"], zip_safe=False)
'''

PTH_SETUP = '''\
import os
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py


class build_py_with_pth(build_py):
    """Copies ccdemo_pth.pth to the top level of build_lib (the wheel's purelib root)."""

    def run(self):
        super().run()
        self.mkpath(self.build_lib)
        shutil.copyfile(os.path.join(os.path.dirname(os.path.abspath(__file__)), "ccdemo_pth.pth"),
                        os.path.join(self.build_lib, "ccdemo_pth.pth"))


setup(name="ccdemo-pth", version="1.0", py_modules=["ccdemo_pth"],
      cmdclass={"build_py": build_py_with_pth}, zip_safe=False)
'''

SDIST_SETUP = '''\
import os
import sys

# Never to be run by codecell: pip must only ever take wheels.  Our own `setup.py sdist` sets
# CCDEMO_BUILDING=1; the fixture check sets CCDEMO_TEST_MARKER to a private path.
if os.environ.get("CCDEMO_BUILDING") != "1":
    override = os.environ.get("CCDEMO_TEST_MARKER")
    if override:
        targets = [override]
    else:
        targets = [%(marker)r]
        for d in [sys.prefix, %(mount)r] + [p for p in sys.path if p]:
            targets.append(os.path.join(d, "CCDEMO_SDIST_RAN"))
    for t in targets:
        try:
            with open(t, "w") as f:
                f.write("setup.py of ccdemo-sdistonly ran\\n")
        except Exception:
            pass

from setuptools import setup

setup(name="ccdemo-sdistonly", version="1.0", py_modules=["ccdemo_sdistonly"])
'''


def pth_line(marker: Path) -> str:
    body = (f"try:\n open({str(marker)!r}, 'w').close()\nexcept Exception:\n pass\n"
            f"try:\n open({ENV_MOUNT + '/PTH_RAN_WRITABLE'!r}, 'w').close()\nexcept Exception:\n"
            f" pass\nbuiltins.CCDEMO_PTH_RAN = os.getuid()\n")
    return f"import os, builtins; exec({body!r})"


def _write(root: Path, files: dict) -> Path:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root


def build_distributions(work: Path) -> Wheels:
    token = uuid.uuid4().hex
    out = work / "dist"
    out.mkdir(parents=True)
    pth_marker = Path(f"/var/tmp/ccdemo-pth-{token}")
    sdist_marker = Path(f"/var/tmp/ccdemo-sdist-{token}")
    alpha_data = f"alpha-data-{token[:12]}"
    line = pth_line(pth_marker)
    projects = {
        "alpha": {"setup.py": ALPHA_SETUP, "ccdemo_alpha/__init__.py": ALPHA_INIT,
                  "ccdemo_alpha/data.txt": alpha_data + "\n"},
        "beta": {"setup.py": BETA_SETUP, "ccdemo_beta/__init__.py": BETA_INIT},
        "pth": {"setup.py": PTH_SETUP, "ccdemo_pth.py": 'VALUE = "pth-1"\n',
                "ccdemo_pth.pth": line + "\n"},
        "sdistonly": {"setup.py": SDIST_SETUP % {"marker": str(sdist_marker), "mount": ENV_MOUNT},
                      "ccdemo_sdistonly.py": 'VALUE = "sdist-1"\n'},
    }
    procs = []
    for name, files in projects.items():
        src = _write(work / "src" / name, files)
        cmd = [SYSTEM_PYTHON, "setup.py", "-q"]
        cmd += ["sdist", "-d", str(out)] if name == "sdistonly" else ["bdist_wheel", "-d", str(out)]
        procs.append((name, cmd, subprocess.Popen(
            cmd, cwd=src, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            env=tool_env({"CCDEMO_BUILDING": "1", "PYTHONDONTWRITEBYTECODE": "1"}))))
    for name, cmd, p in procs:
        text = p.communicate(timeout=180)[0].decode(errors="replace")
        assert p.returncode == 0, f"building {name} failed ({cmd}):\n{text[-3000:]}"
    assert not sdist_marker.exists(), "the sdist's setup.py guard is broken (marker at build time)"

    files = {}
    for f in sorted(out.iterdir()):
        if f.name.endswith(".whl"):
            files[norm(f.name.split("-")[0])] = f
        elif f.name.endswith(".tar.gz"):
            files[norm(f.name[:-len(".tar.gz")].rsplit("-", 1)[0])] = f
    want = {"ccdemo-alpha", "ccdemo-beta", "ccdemo-pth", "ccdemo-sdistonly"}
    assert set(files) == want, f"built {sorted(p.name for p in out.iterdir())}, expected {want}"
    assert files["ccdemo-sdistonly"].name.endswith(".tar.gz")
    for d in ("ccdemo-alpha", "ccdemo-beta", "ccdemo-pth"):
        assert files[d].name.endswith("-1.0-py3-none-any.whl"), files[d]
    return Wheels(out, files, alpha_data, pth_marker, sdist_marker, line)


def wheel_names(path: Path):
    with zipfile.ZipFile(path) as z:
        return z.namelist()


def wheel_text(path: Path, suffix: str) -> str:
    with zipfile.ZipFile(path) as z:
        name = next(n for n in z.namelist() if n.endswith(suffix))
        return z.read(name).decode()


# --------------------------------------------------------------------------------------------
# a PEP 503 "simple" index on 127.0.0.1
# --------------------------------------------------------------------------------------------
class SimpleIndex:
    """``http.server`` over ``root/simple/<name>/index.html`` + ``root/files/<file>``."""

    def __init__(self, root: Path, wheels: Wheels):
        self.root = root
        self.requests = []          # paths of the GET requests served (any status)
        (root / "files").mkdir(parents=True)
        simple = root / "simple"
        simple.mkdir()
        projects = []
        for dist, f in sorted(wheels.files.items()):
            shutil.copyfile(f, root / "files" / f.name)
            digest = hashlib.sha256(f.read_bytes()).hexdigest()
            (simple / dist).mkdir()
            (simple / dist / "index.html").write_text(
                "<!DOCTYPE html>\n<html><body>\n"
                f'<a href="../../files/{html.escape(f.name)}#sha256={digest}">'
                f"{html.escape(f.name)}</a><br/>\n</body></html>\n")
            projects.append(dist)
        (simple / "index.html").write_text(
            "<!DOCTYPE html>\n<html><body>\n"
            + "".join(f'<a href="{p}/">{p}</a><br/>\n' for p in projects) + "</body></html>\n")
        index = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *a, **kw):
                super().__init__(*a, directory=str(index.root), **kw)

            def do_GET(self):
                index.requests.append(self.path)
                super().do_GET()

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/simple/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True,
                                       name="simple-index")
        self.thread.start()

    def served(self, filename: str, since: int = 0) -> bool:
        """Whether `filename` was requested (after the first `since` requests)."""
        return any(p.split("#")[0].split("?")[0].endswith("/files/" + filename)
                   for p in self.requests[since:])

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def run_pip(*args, timeout=120):
    """``/usr/bin/python3 -m pip ARGS`` with no user or harness configuration."""
    cmd = [SYSTEM_PYTHON, "-m", "pip", "--disable-pip-version-check", "--no-input", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=tool_env())


# --------------------------------------------------------------------------------------------
# package environments on disk
# --------------------------------------------------------------------------------------------
def packages_root(data_dir: Path) -> Path:
    return Path(data_dir) / "packages"


def current_env(data_dir: Path):
    """Name of the env ``<data_dir>/packages/current`` points at (``envs/<name>``), or None."""
    link = packages_root(data_dir) / "current"
    if not link.is_symlink():
        assert not link.exists(), f"{link} exists but is not a symlink"
        return None
    target = os.readlink(link)
    parts = Path(target).parts
    assert len(parts) >= 2 and parts[-2] == "envs", \
        f"{link} -> {target!r}, expected a link to envs/<name>"
    resolved = link.resolve()
    assert resolved.parent == (packages_root(data_dir) / "envs").resolve(), \
        f"{link} -> {target!r} resolves to {resolved}, not into {packages_root(data_dir) / 'envs'}"
    return parts[-1]


def env_dirs(data_dir: Path) -> list:
    envs = packages_root(data_dir) / "envs"
    return sorted(p.name for p in envs.iterdir()) if envs.is_dir() else []


def site_dirs(env: Path) -> list:
    """Directories of an env holding ``*.dist-info`` directories."""
    found = []
    for dirpath, dirnames, _ in os.walk(env):
        if any(d.endswith(".dist-info") for d in dirnames):
            found.append(Path(dirpath))
            dirnames[:] = []
    return found


def env_snapshot(env: Path) -> dict:
    """{relative path: size} of every file of the env's site dirs (the whole env when it has
    none), without ``__pycache__``: what ``unchanged`` compares."""
    roots = site_dirs(env) or [env]
    snap = {}
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if d != "__pycache__"]
            for f in filenames:
                p = Path(dirpath) / f
                if not p.is_symlink():
                    snap[str(p.relative_to(env))] = p.stat().st_size
    return snap


def dist_infos(env: Path) -> set:
    return {d.name for s in site_dirs(env) for d in s.iterdir() if d.name.endswith(".dist-info")}


def find_named(root: Path, name: str) -> list:
    """Every path called `name` under `root` (symlinks not followed)."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        out += [str(Path(dirpath) / n) for n in dirnames + filenames if n == name]
    return out


# --------------------------------------------------------------------------------------------
# the daemon
# --------------------------------------------------------------------------------------------
class Resp(harness.Resp):
    __slots__ = ()

    def __repr__(self):
        return f"<HTTP {self.status} {self.body[:1500]!r}>"


def package_config(wheels: Wheels | None = None, *, index_url: str = "", wheel_dir=None,
                   allowlist: dict | None = None, pool: int | None = 2, **packages) -> dict:
    """A daemon config with ``[packages]`` on our distributions (``default_allowlist = false``).
    ``pool=None`` leaves ``[interpreters]`` at the defaults."""
    section = {
        "enabled": True,
        "index_url": index_url,
        "extra_index_url": "",
        "wheel_dir": str(wheels.dir) if wheel_dir is None and wheels is not None else
        (wheel_dir or ""),
        "install_timeout": INSTALL_TIMEOUT,
        "refresh_days": 7,
        "default_allowlist": False,
    }
    section.update(packages)
    section["allowlist"] = dict(ALLOWLIST if allowlist is None else allowlist)
    config = {"packages": section}
    if pool is not None:
        config["interpreters"] = {"pool": pool}
    return config


class Daemon(harness.Daemon):
    """harness.Daemon with a config, in a given directory, in :func:`tool_env`, with the
    package tests' request helpers."""

    suite = SUITE
    READY_TIMEOUT = READY_TIMEOUT
    STOP_TIMEOUT = STOP_TIMEOUT
    STDERR_LIMIT = 5000
    HTTP_TIMEOUT = HTTP_TIMEOUT
    response_type = Resp

    def __init__(self, config: dict, root: Path, name: str = "daemon"):
        super().__init__(config=config, name=name, root=root)

    def environ(self) -> dict:
        return tool_env(self.env)

    # -- HTTP -----------------------------------------------------------------------------------
    def request(self, method, path, payload=None, raw: bytes | None = None,
                timeout=HTTP_TIMEOUT) -> Resp:
        headers = {}
        body = raw
        if payload is not None:
            body = json.dumps(payload).encode()
        if body is not None:
            headers["Content-Type"] = "application/json"
        return self.send(method, path, body, headers, timeout)

    def json(self, method, path, payload=None, expect=200, timeout=HTTP_TIMEOUT):
        try:
            r = self.request(method, path, payload, timeout=timeout)
        except TimeoutError:
            pytest.fail(f"{method} {path} {json.dumps(payload)[:300] if payload is not None else ''}"
                        f": no answer within {timeout}s\n{self.where()}", pytrace=False)
        assert r.status == expect, \
            f"{method} {path} {json.dumps(payload)[:300] if payload is not None else ''}: " \
            f"expected {expect}, got {r!r}\n{self.where()}"
        return r.json()

    def where(self) -> str:
        return f"(daemon {self.name}, dir {self.dir})\n--- daemon stderr (tail) ---\n" \
               f"{self.stderr(3000)}"

    def install(self, *names, user: str | None = None) -> dict:
        """POST /v1/packages; asserts 200 and the answer's shape; returns it."""
        body = {"packages": list(names)}
        if user is not None:
            body["user_id"] = user
        ans = self.json("POST", "/v1/packages", body)
        check_install_answer(ans, names, self)
        return ans

    def execute(self, code, user="pkg-user", **fields) -> dict:
        return self.json("POST", "/v1/executions", {"user_id": user, "code": code, **fields})

    def packages(self) -> dict:
        return self.json("GET", "/v1/packages", timeout=30)

    def status(self) -> dict:
        return self.json("GET", "/v1/status", timeout=30)

    def metrics_text(self) -> str:
        r = self.request("GET", "/metrics", timeout=30)
        assert r.status == 200, f"GET /metrics: {r!r}"
        return r.body.decode(errors="replace")

    def metric(self, name, **labels):
        """The sample's value, or None when /metrics lacks it."""
        return parse_metrics(self.metrics_text()).get((name, frozenset(labels.items())))

    def pip_runs(self) -> float:
        v = self.metric("codecell_package_pip_runs_total")
        assert v is not None, f"/metrics has no codecell_package_pip_runs_total:\n" \
                              f"{self.metrics_text()[-3000:]}"
        return v

    # -- disk -----------------------------------------------------------------------------------
    def current_env(self):
        return current_env(self.data_dir)

    def env_path(self, name=None) -> Path:
        name = name or self.current_env()
        assert name, f"no {packages_root(self.data_dir) / 'current'} link\n{self.where()}"
        return packages_root(self.data_dir) / "envs" / name

    def env_dirs(self):
        return env_dirs(self.data_dir)


def describe(res: dict, daemon: Daemon | None = None) -> str:
    keys = ("status", "success", "return_code", "interpreter", "installed_packages",
            "failed_packages", "package_installs", "rerun_after_install")
    head = json.dumps({k: res.get(k) for k in keys if k in res})[:2000]
    text = (f"{head}\n--- output (tail) ---\n{str(res.get('output'))[-2000:]}\n"
            f"--- error (tail) ---\n{str(res.get('error'))[-2500:]}")
    if daemon is not None:
        text += "\n" + daemon.where()
    return text


def assert_ok(res: dict, daemon: Daemon | None = None):
    assert res.get("status") == "ok" and res.get("success") is True \
        and res.get("return_code") == 0, f"the execution did not succeed:\n{describe(res, daemon)}"


def output_lines(res: dict) -> list:
    return [l for l in str(res.get("output", "")).splitlines() if l.strip()]


def failed_entry(answer: dict, name: str):
    """The failed_packages entry for `name` (compared as asked or normalized), or None."""
    fp = answer.get("failed_packages")
    assert isinstance(fp, list), f"failed_packages is not a list: {answer}"
    for e in fp:
        assert isinstance(e, dict) and isinstance(e.get("name"), str) \
            and isinstance(e.get("reason"), str), f"bad failed_packages entry {e!r} in {answer}"
        if e["name"] == name or norm(e["name"]) == norm(name):
            return e
    return None


def installed_names(answer: dict) -> set:
    ip = answer.get("installed_packages")
    assert isinstance(ip, list) and all(isinstance(x, str) for x in ip), \
        f"installed_packages is not a list of names: {answer}"
    return {norm(x) for x in ip}


PACKAGE_ENTRY_STATUSES = {"installed", "already_installed", "failed"}


def check_package_entry(e: dict, asked: str | None = None):
    assert isinstance(e, dict), e
    for k in ("name", "status"):
        assert k in e, f"package entry lacks {k!r}: {e}"
    if asked is not None:
        assert e["name"] == asked, f"entry name {e['name']!r} is not the name asked {asked!r}: {e}"
    assert e["status"] in PACKAGE_ENTRY_STATUSES, f"unknown status in {e}"
    assert "seconds" in e and is_number(e["seconds"]) and e["seconds"] >= 0, \
        f"entry without a number 'seconds': {e}"
    if e["status"] == "failed":
        assert isinstance(e.get("reason"), str) and e["reason"].strip(), \
            f"failed entry without a reason: {e}"
    else:
        assert isinstance(e.get("distribution"), str) and e["distribution"], e
        assert isinstance(e.get("version"), str) and e["version"], e


def check_install_answer(ans: dict, names, daemon: Daemon | None = None):
    where = daemon.where() if daemon else ""
    assert isinstance(ans, dict), f"not an object: {ans!r}"
    for k in ("installed_packages", "failed_packages", "packages", "install_seconds"):
        assert k in ans, f"POST /v1/packages answer lacks {k!r}: {ans}\n{where}"
    installed_names(ans)
    failed_entry(ans, "\0")      # shape check only
    assert is_number(ans["install_seconds"]) and ans["install_seconds"] >= 0, ans
    assert isinstance(ans["packages"], list) and len(ans["packages"]) == len(names), \
        f"expected one 'packages' entry per name asked {list(names)}: {ans}"
    by_name = {}
    for e in ans["packages"]:
        check_package_entry(e)
        by_name[e["name"]] = e
    assert set(by_name) == set(names), f"entries {sorted(by_name)} for names {list(names)}: {ans}"
    for n, e in by_name.items():
        if e["status"] == "failed":
            assert failed_entry(ans, n) is not None, \
                f"{n!r} failed but is not in failed_packages: {ans}"
        else:
            assert norm(e["distribution"]) in installed_names(ans) or \
                e["status"] == "already_installed", \
                f"{n!r} installed but its distribution is not in installed_packages: {ans}"
            assert failed_entry(ans, n) is None, f"{n!r} both succeeded and failed: {ans}"


def entry(ans: dict, name: str) -> dict:
    return next(e for e in ans["packages"] if e["name"] == name)


# --------------------------------------------------------------------------------------------
# the CLI
# --------------------------------------------------------------------------------------------
def run_cli(*args, timeout=HTTP_TIMEOUT) -> subprocess.CompletedProcess:
    require_root()
    require_binary()
    argv = [str(BIN), *map(str, args)]
    try:
        return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=timeout, env=tool_env())
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"{argv} did not return within {timeout}s\nstdout: {e.stdout!r}\n"
                    f"stderr: {e.stderr!r}", pytrace=False)


# --------------------------------------------------------------------------------------------
# pytest hooks and fixtures
# --------------------------------------------------------------------------------------------
def pytest_report_header(config):
    return SUITE.report_header()


@pytest.fixture(scope="session")
def wheels(tmp_path_factory):
    """The test distributions, built once per session; the host markers are removed at the end
    (the tests that care assert they never appear)."""
    require_build_tools()
    w = build_distributions(tmp_path_factory.mktemp("wheels"))
    yield w
    for m in (w.pth_marker, w.sdist_marker):
        try:
            m.unlink()
        except FileNotFoundError:
            pass


@pytest.fixture(scope="session")
def index(wheels, tmp_path_factory):
    """A PEP 503 simple index of the test distributions on 127.0.0.1."""
    idx = SimpleIndex(tmp_path_factory.mktemp("index"), wheels)
    yield idx
    idx.stop()


def start_daemon(config: dict, root: Path, name: str) -> Daemon:
    return Daemon(config, root, name).start()


def module_daemon(wheels, tmp_path_factory, name: str):
    """Body of a module-scoped fixture: one daemon for the module's tests, stopped at its end,
    which fails if the daemon died meanwhile."""
    d = start_daemon(package_config(wheels), tmp_path_factory.mktemp(name), name)
    yield d
    alive = d.alive()
    rc = d.stop()
    assert alive, f"the daemon died during the {name} tests (exit {rc})\n{d.where()}"


@pytest.fixture
def make_daemon(tmp_path):
    """Factory: a fresh daemon (data dir under tmp_path) per call, all stopped at teardown."""
    made = []

    def make(config: dict, name: str = "fresh") -> Daemon:
        d = Daemon(config, tmp_path / f"{name}-{len(made)}", name)
        made.append(d)
        return d.start()

    yield make
    for d in made:
        d.stop()
