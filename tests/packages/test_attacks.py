"""The old bot let code run `pip install` itself (`pip._internal` installing anything): here code
in an execution tries to put a package into the shared environment by itself, and must fail; the
approved path next to it works. The environment is read-only in executions and they have no
network, so neither a wheel smuggled in as bytes nor the index on loopback gets anywhere."""
import base64

from .conftest import ENV_MOUNT, assert_ok, output_lines, package_config

ATTACK = """
import base64, os, subprocess, sys
wheel = '/tmp/' + {name!r}
with open(wheel, 'wb') as f:
    f.write(base64.b64decode({data!r}))
def pip(*args):
    r = subprocess.run([sys.executable, '-m', 'pip', '--disable-pip-version-check', 'install',
                        '--no-cache-dir', *args], capture_output=True, text=True, timeout=60)
    return r.returncode
print('prefix', pip('--no-index', '--prefix', {env!r}, wheel))
print('target', pip('--no-index', '--target', {env!r} + '/local/lib/python3.11/dist-packages', wheel))
print('index', pip('--index-url', {index!r}, '--target', '/tmp/t', 'ccdemo-alpha'))
print('user', pip('--no-index', '--user', '--break-system-packages', wheel))
try:
    os.makedirs({env!r} + '/evil', exist_ok=True)
    print('mkdir', 0)
except OSError as e:
    print('mkdir', e.errno)
"""


def test_code_cannot_install_into_the_shared_environment(make_daemon, wheels, index):
    # ccdemo-alpha is deliberately not approved here; ccdemo-pth is.
    d = make_daemon(package_config(wheels, allowlist={"ccdemo_pth": "ccdemo-pth"}), "attacks")
    legit = d.install("ccdemo_pth")
    assert legit["packages"][0]["status"] == "installed", legit
    wheel = wheels.files["ccdemo-alpha"]
    code = ATTACK.format(name=wheel.name, data=base64.b64encode(wheel.read_bytes()).decode(),
                         env=ENV_MOUNT, index=index.url)
    served_before = len(index.requests)
    res = d.execute(code, user="attacker", timeout=120)
    assert_ok(res, d)
    results = dict(line.split() for line in output_lines(res))
    assert results["prefix"] != "0", res["error"][-2000:]
    assert results["target"] != "0", res["error"][-2000:]
    assert results["index"] != "0", "pip reached the loopback index from an execution"
    assert results["mkdir"] != "0", "an execution created a directory in the shared environment"
    assert index.requests[served_before:] == [], index.requests[served_before:]

    # Another user's execution sees only what the service installed.
    probe = d.execute("import importlib.util, ccdemo_pth\n"
                      "print(importlib.util.find_spec('ccdemo_alpha') is None, ccdemo_pth.VALUE)",
                      user="victim")
    assert_ok(probe, d)
    assert output_lines(probe) == ["True pth-1"], probe
    env = d.env_path()
    assert not list(env.rglob("ccdemo_alpha*")), list(env.rglob("ccdemo_alpha*"))
    assert not (env / "evil").exists()
