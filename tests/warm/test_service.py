"""``codecell serve`` keeps two zygotes ("base": stdlib preloads, "full": interpreters.preload),
routes each execution by what its code mentions, restarts a zygote that dies (status "degraded"
meanwhile, the other one or a cold interpreter serving), falls back to cold with neither."""
import json
import os
import secrets
import signal
import time

import pytest

from .conftest import (BASE_PRELOADS, DEFAULT_PRELOADS, children_of, memory_scan_code,
                      pid_alive, proc_cmdline, wait_pool_full, wait_until)

# CHECK mentions pandas, so the service sends it to the "full" zygote (pandas preloaded: True);
# BASE_CHECK mentions no full-preload name (nor load_file / importlib / __import__), so it goes
# to the "base" zygote, where numpy was never imported (False).
CHECK = "import os, sys\nprint(os.getpid(), 'pandas' in sys.modules)"
BASE_CHECK = ("import os, sys\n"
              "print(os.getpid(), any(m.startswith('num' + 'py') for m in sys.modules))")
FULL_PREFIX = "import sys, numpy\nprint('pool:', 'pandas' in sys.modules)\n"
BASE_PREFIX = "import sys\nprint('pool:', any(m.startswith('num' + 'py') for m in sys.modules))\n"


def _ok(res, what):
    assert res.get("status") == "ok" and res.get("success") is True, f"{what}: {res}"
    return res


def _pools(it) -> dict:
    pools = it.get("pools")
    assert isinstance(pools, list), f"interpreters has no 'pools' list: {it}"
    by_name = {p.get("name"): p for p in pools}
    assert sorted(by_name) == ["base", "full"] and len(pools) == 2, \
        f"pools are not exactly 'base' and 'full': {it}"
    return by_name


def _assert_ready_pool(p, preloaded, pool_size, it):
    assert p.get("ready") is True and "reason" not in p, f"pool {p.get('name')} not ready: {it}"
    zpid = p.get("pid")
    assert isinstance(zpid, int) and pid_alive(zpid), f"status pid {zpid!r} is not alive: {it}"
    assert "zygote" in proc_cmdline(zpid), f"status pid {zpid} is not a zygote: " \
                                           f"{proc_cmdline(zpid)}"
    assert p.get("preloaded") == preloaded, f"pool {p.get('name')}: {it}"
    assert p.get("failed_preloads") == {}, f"pool {p.get('name')}: {it}"
    assert isinstance(p.get("startup_seconds"), (int, float)) and p["startup_seconds"] > 0, it
    assert isinstance(p.get("python"), str) and p["python"], it
    assert p.get("pool_size") == pool_size, f"pool {p.get('name')}: pool_size, {it}"
    assert isinstance(p.get("restarts"), int), it


def _assert_no_secret(d, secret, what, full):
    """The memory scan on the "full" zygote (it imports numpy) or on the "base" one."""
    res = _ok(d.execute((FULL_PREFIX if full else BASE_PREFIX) + memory_scan_code(secret)), what)
    assert res.get("interpreter") == "warm", res
    assert res["output"].startswith(f"pool: {full}\n"), \
        f"{what}: not run by the {'full' if full else 'base'} zygote: {res}"
    got = json.loads([l for l in res["output"].splitlines() if l.startswith("@@")][-1][2:])
    assert not got["environ"] and not got["memory"], \
        f"{what}: the service's environment reaches warm user code: {got}"


def test_service_routes_by_code(daemons):
    """Code mentioning a full-preload top-level name (or load_file / importlib / __import__)
    runs on the full zygote, anything else on the base one; both warm, as pid 2."""
    d = daemons(name="svc-route")
    it = d.wait_mode("warm", 60)
    pools = _pools(it)
    _assert_ready_pool(pools["base"], BASE_PRELOADS, pools["base"]["pool_size"], it)
    _assert_ready_pool(pools["full"], DEFAULT_PRELOADS, pools["base"]["pool_size"], it)
    cases = [
        (CHECK, "2 True\n"),
        (BASE_CHECK, "2 False\n"),
        ("print('plain')\nimport sys\nprint('pandas' in sys.modules)", "plain\nTrue\n"),
        ("import sys\nprint(sys.modules.get('num' + 'py') is not None)  # seaborn", "True\n"),
        ("import importlib, sys\nprint(sys.modules.get('num' + 'py') is not None)", "True\n"),
        ("print(__import__('sys').modules.get('num' + 'py') is not None)", "True\n"),
        ("import sys\nprint(sys.modules.get('num' + 'py') is not None, "
         "'statistics' in sys.modules)", "False True\n"),
        ("import sys\nmy_numpy_thing = 1\nprint(sys.modules.get('num' + 'py') is not None)",
         "False\n"),
    ]
    for code, want in cases:
        res = _ok(d.execute(code), f"execution of {code!r}")
        assert res.get("interpreter") == "warm", res
        assert res["output"] == want, f"{code!r}: wrong zygote? output {res['output']!r}, " \
                                      f"expected {want!r}: {res}"


def test_service_warm_kill_restart(daemons):
    secret = "ssec-" + secrets.token_hex(16)
    d = daemons(name="svc", env={"SERVICE_TEST_SECRET": secret})
    it = d.wait_mode("warm", 60)
    assert "reason" not in it, f"mode warm with a reason: {it}"
    pools = _pools(it)
    size = pools["full"].get("pool_size")
    assert isinstance(size, int) and size >= 1, it
    _assert_ready_pool(pools["base"], BASE_PRELOADS, size, it)
    _assert_ready_pool(pools["full"], DEFAULT_PRELOADS, size, it)
    assert pools["base"]["restarts"] == 0 and pools["full"]["restarts"] == 0, it
    base_pid, zpid = pools["base"]["pid"], pools["full"]["pid"]
    assert base_pid != zpid, it
    kids = {}
    for name, p in pools.items():
        inits, interps = wait_pool_full(p["pid"], size, 10)
        kids[name] = inits + interps

    res = _ok(d.execute(CHECK), "warm execution (full)")
    assert res.get("interpreter") == "warm", res
    assert res["output"] == "2 True\n", res
    res = _ok(d.execute(BASE_CHECK), "warm execution (base)")
    assert res.get("interpreter") == "warm", res
    assert res["output"] == "2 False\n", res
    _assert_no_secret(d, secret, "first full zygote", full=True)
    _assert_no_secret(d, secret, "base zygote", full=False)

    # SIGKILL the full zygote: executions must never fail; status goes degraded (full not
    # ready, with a reason), then warm again with a new full zygote
    os.kill(zpid, signal.SIGKILL)
    t0 = time.monotonic()
    degraded_seen, states = None, []
    while time.monotonic() - t0 < 45:
        it2 = d.interpreters()
        states.append(it2)
        if it2.get("mode") == "degraded" and degraded_seen is None:
            degraded_seen = it2
        for code in (CHECK, BASE_CHECK):
            r = _ok(d.execute(code), f"execution {time.monotonic() - t0:.1f}s after the kill")
            assert r.get("interpreter") in ("warm", "cold"), r
            assert r["output"].startswith("2 "), r
        p2 = _pools(it2)
        if it2.get("mode") == "warm" and p2["full"].get("pid") not in (None, zpid):
            break
        time.sleep(0.2)
    else:
        pytest.fail(f"no warm full zygote again within 45s of the kill; last states "
                    f"{states[-3:]}\n{d.stderr()}")
    back = time.monotonic() - t0
    assert degraded_seen is not None, \
        f"status never reported mode degraded after the kill: {states[:5]}"
    gone = _pools(degraded_seen)
    assert gone["full"].get("ready") is False, degraded_seen
    assert isinstance(gone["full"].get("reason"), str) and gone["full"]["reason"].strip(), \
        degraded_seen
    assert gone["base"].get("ready") is True and gone["base"].get("pid") == base_pid, degraded_seen
    assert isinstance(degraded_seen.get("reason"), str) and \
        degraded_seen["reason"].startswith("full: "), f"top-level reason: {degraded_seen}"
    assert "base" not in degraded_seen["reason"], degraded_seen
    assert any(_pools(s)["full"].get("restarts", 0) >= 1 for s in states), \
        f"restarts never counted: {states[:5]}"
    assert back < 30, f"warm again only after {back:.1f}s"
    new = d.interpreters()
    assert new.get("mode") == "warm" and "reason" not in new, new
    newp = _pools(new)
    assert newp["full"].get("restarts", 0) >= 1 and newp["base"].get("restarts") == 0, new
    assert newp["base"].get("pid") == base_pid, f"the base zygote changed: {new}"
    new_pid = newp["full"].get("pid")
    assert new_pid != zpid and pid_alive(new_pid), new
    _assert_ready_pool(newp["full"], DEFAULT_PRELOADS, size, new)
    assert not pid_alive(zpid)
    assert wait_until(lambda: not any(pid_alive(k) for k in kids["full"]), 5), \
        f"idle children of the killed zygote survive: {[k for k in kids['full'] if pid_alive(k)]}"
    res = _ok(d.execute(CHECK), "execution after the restart")
    assert res.get("interpreter") == "warm" and res["output"] == "2 True\n", res
    _assert_no_secret(d, secret, "restarted full zygote", full=True)

    # stopping the service stops both zygotes and their children
    zygotes = [base_pid, new_pid]
    all_kids = children_of(base_pid) + children_of(new_pid)
    rc = d.stop()
    assert rc == 0, f"codecell serve exited {rc} on SIGTERM\n{d.stderr()}"
    assert wait_until(lambda: not any(pid_alive(p) for p in zygotes + all_kids), 5), \
        f"the zygotes {zygotes} or their children {all_kids} outlived the service: " \
        f"{[p for p in zygotes + all_kids if pid_alive(p)]}"


def _assert_no_zygote_and_all_cold(d):
    zygotes = [p for p in children_of(d.proc.pid) if "zygote" in proc_cmdline(p)]
    assert not zygotes, f"a zygote runs although warm interpreters are disabled: {zygotes}"
    for code in (CHECK, BASE_CHECK):
        res = _ok(d.execute(code), "cold execution")
        assert res.get("interpreter") == "cold", res


def test_service_warm_disabled_by_env(daemons):
    d = daemons(env={"CODECELL_WARM_INTERPRETERS": "false"}, name="svc-cold")
    time.sleep(1.5)        # a zygote, if one were wrongly started, would show up by now
    it = d.interpreters()
    assert it.get("mode") == "cold", it
    assert it.get("reason") == "warm interpreters are disabled (interpreters.warm = false)", \
        f"no 'disabled' reason: {it}"
    assert "pools" not in it and it.get("pid") is None, it
    _assert_no_zygote_and_all_cold(d)


def test_service_warm_disabled_by_config(daemons):
    d = daemons(config_toml="[interpreters]\nwarm = false\n", name="svc-cfg-cold")
    time.sleep(1.0)
    it = d.interpreters()
    assert it.get("mode") == "cold" and "disabled" in str(it.get("reason", "")).lower(), it
    assert "pools" not in it, it
    _assert_no_zygote_and_all_cold(d)


def test_service_pool_and_preload_from_config(daemons):
    """interpreters.pool sizes each zygote, interpreters.preload sets the full one's list (and
    with it which names route there)."""
    d = daemons(config_toml='[interpreters]\nwarm = true\npool = 1\npreload = ["numpy"]\n',
                name="svc-cfg")
    it = d.wait_mode("warm", 60)
    pools = _pools(it)
    _assert_ready_pool(pools["full"], ["numpy"], 1, it)
    _assert_ready_pool(pools["base"], BASE_PRELOADS, 1, it)
    for p in pools.values():
        wait_pool_full(p["pid"], 1, 10)
    res = _ok(d.execute("import sys\nprint('numpy' in sys.modules, 'pandas' in sys.modules)"),
              "warm execution")
    assert res.get("interpreter") == "warm" and res["output"] == "True False\n", res
    # pandas is no preload any more: code that mentions only pandas goes to base
    res = _ok(d.execute("import sys  # pandas\nprint(sys.modules.get('num' + 'py') is not None)"),
              "warm execution (base)")
    assert res.get("interpreter") == "warm" and res["output"] == "False\n", res


def test_service_pool_and_preload_from_env(daemons):
    d = daemons(env={"CODECELL_ZYGOTE_POOL": "3", "CODECELL_PRELOAD": "json,numpy"},
                name="svc-env")
    it = d.wait_mode("warm", 60)
    pools = _pools(it)
    _assert_ready_pool(pools["full"], ["json", "numpy"], 3, it)
    _assert_ready_pool(pools["base"], BASE_PRELOADS, 3, it)
    for p in pools.values():
        inits, kids = wait_pool_full(p["pid"], 3, 10)
        assert len(kids) == 3, kids
    res = _ok(d.execute("import sys\nprint('numpy' in sys.modules, 'seaborn' in sys.modules)"),
              "warm execution")
    assert res.get("interpreter") == "warm" and res["output"] == "True False\n", res


def test_service_warm_notebook_outputs(daemons):
    """Notebook output on the warm path, through the service: the display pipe reaches the
    zygote's child, and the figure's file_id in `outputs` is the stored file's."""
    d = daemons(name="svc-notebook")
    d.wait_mode("warm", 60)
    res = _ok(d.execute("import matplotlib.pyplot as plt\nprint('a')\nplt.plot([1, 2])\n"
                        "plt.show()\nx = 41\nx + 1\n"), "notebook output")
    assert res.get("interpreter") == "warm", res
    assert [o["type"] for o in res["outputs"]] == ["stream", "display_data", "execute_result"], res
    [png] = res["generated_files"]
    assert png["filename"] == "figure_1.png"
    assert res["outputs"][1]["file_id"] == png["file_id"], res
    assert res["outputs"][2]["data"]["text/plain"] == "42" and res["output"] == "a\n42\n", res
