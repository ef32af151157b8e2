"""What installed packages can do: .pth files run inside the sandbox only (never on the host,
never in pip's run where the environment is writable); the environment is read-only inside
executions and comes after the system's packages on sys.path."""
import json

import pytest

from .conftest import (ENV_MOUNT, assert_ok, describe, entry, find_named, output_lines,
                       module_daemon, package_config, packages_root)

PROBE = f"""
import builtins, json, os, sys
import ccdemo_alpha, ccdemo_pth
print("@@" + json.dumps({{
    "pth": getattr(builtins, "CCDEMO_PTH_RAN", None),
    "uid": os.getuid(),
    "writable_marker": os.path.exists({ENV_MOUNT + "/PTH_RAN_WRITABLE"!r}),
    "alpha": ccdemo_alpha.__file__,
    "pth_module": ccdemo_pth.VALUE,
}}))
"""


def payload(res, daemon):
    lines = [l for l in output_lines(res) if l.startswith("@@")]
    assert lines, f"the probe printed nothing:\n{describe(res, daemon)}"
    return json.loads(lines[-1][2:])


@pytest.fixture(scope="module")
def daemon(wheels, tmp_path_factory):
    yield from module_daemon(wheels, tmp_path_factory, "isolation")


def check_no_pth_outside(daemon, wheels, when):
    assert not wheels.pth_marker.exists(), \
        f"{when}: the .pth of ccdemo-pth ran outside the sandbox ({wheels.pth_marker} exists)"
    writable = find_named(packages_root(daemon.data_dir) / "envs", "PTH_RAN_WRITABLE")
    assert not writable, f"{when}: the .pth ran where the environment is writable: {writable}"


def test_pth_runs_in_the_sandbox_only(daemon, wheels):
    runs0 = daemon.pip_runs()
    a = daemon.install("ccdemo_pth")
    assert entry(a, "ccdemo_pth")["status"] == "installed", a
    check_no_pth_outside(daemon, wheels, "after installing ccdemo-pth")
    # a second pip run, which sees the .pth in the environment
    b = daemon.install("ccdemo_alpha")
    assert entry(b, "ccdemo_alpha")["status"] == "installed", b
    assert daemon.pip_runs() - runs0 >= 2, "expected two pip runs (one per install)"
    check_no_pth_outside(daemon, wheels, "after a second pip run")

    res = daemon.execute(PROBE)
    assert_ok(res, daemon)
    p = payload(res, daemon)
    assert isinstance(p["pth"], int) and not isinstance(p["pth"], bool), \
        f"the .pth did not run in the execution (builtins.CCDEMO_PTH_RAN = {p['pth']!r})"
    assert p["pth"] == p["uid"] and p["uid"] != 0, \
        f"the .pth ran as uid {p['pth']} (execution uid {p['uid']}): expected the sandbox's " \
        f"non-root uid"
    assert p["writable_marker"] is False, p
    assert p["pth_module"] == "pth-1", p
    check_no_pth_outside(daemon, wheels, "after an execution")

    # a refresh rebuilds the environment with both packages: still never outside the sandbox
    r = daemon.json("POST", "/v1/packages/refresh", {})
    assert r.get("refreshed") is True, r
    check_no_pth_outside(daemon, wheels, "after a refresh")
    res = daemon.execute(PROBE, user="after-refresh")
    assert_ok(res, daemon)
    p = payload(res, daemon)
    assert p["pth"] == p["uid"] and p["uid"] != 0, p
    check_no_pth_outside(daemon, wheels, "after an execution on the refreshed environment")


def test_environment_is_read_only_and_after_system_packages(daemon, wheels):
    daemon.install("ccdemo_alpha")
    code = f"""
import errno, json, os, sys
import ccdemo_alpha
d = os.path.dirname(ccdemo_alpha.__file__)
results = {{}}
for target in (os.path.join(d, "written.txt"), os.path.join(d, "data.txt"),
               {ENV_MOUNT + "/written.txt"!r}):
    try:
        with open(target, "a") as f:
            f.write("x")
        results[target] = "written"
    except OSError as e:
        results[target] = errno.errorcode.get(e.errno, str(e.errno))
print("@@" + json.dumps({{"file": ccdemo_alpha.__file__, "writes": results, "path": sys.path,
                          "data": ccdemo_alpha.read_data()}}))
"""
    res = daemon.execute(code)
    assert_ok(res, daemon)
    p = payload(res, daemon)
    assert p["file"].startswith(ENV_MOUNT + "/"), p["file"]
    assert p["data"] == wheels.alpha_data
    written = {k: v for k, v in p["writes"].items() if v == "written"}
    assert not written, f"the package environment is writable inside an execution: {written}"
    env_entries = [i for i, e in enumerate(p["path"]) if e.startswith(ENV_MOUNT)]
    system = [i for i, e in enumerate(p["path"])
              if e.startswith("/usr/") and e.endswith(("dist-packages", "site-packages"))]
    assert env_entries and system, p["path"]
    assert min(env_entries) > max(system), \
        f"the package environment must come after the system's packages on sys.path: {p['path']}"
    # nothing reached the host copy either
    host_env = daemon.env_path()
    assert not find_named(host_env, "written.txt"), find_named(host_env, "written.txt")
    data = [f for f in find_named(host_env, "data.txt") if "ccdemo_alpha" in f]
    assert data and all(open(f).read().strip() == wheels.alpha_data for f in data), data



def test_python_subprocesses_of_the_code_find_installed_packages(daemon, wheels):
    daemon.install("ccdemo_alpha")
    code = ("import subprocess, sys\n"
            "r = subprocess.run([sys.executable, '-c', 'import ccdemo_alpha; "
            "print(ccdemo_alpha.VALUE)'], capture_output=True, text=True)\n"
            "print(r.returncode, r.stdout.strip(), r.stderr.strip()[-300:])\n")
    res = daemon.execute(code)
    assert_ok(res, daemon)
    assert output_lines(res)[0].split() == ["0", "alpha-1"], res
