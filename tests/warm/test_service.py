"""``codecell serve`` keeps a zygote, restarts it, falls back to cold while it is gone."""
import json
import os
import secrets
import signal
import time

import pytest

from .conftest import (DEFAULT_PRELOADS, children_of, memory_scan_code, pid_alive, proc_cmdline,
                      wait_until)

CHECK = "import os, sys\nprint(os.getpid(), 'pandas' in sys.modules)"


def _ok(res, what):
    assert res.get("status") == "ok" and res.get("success") is True, f"{what}: {res}"
    return res


def _assert_no_secret(d, secret, what):
    res = _ok(d.execute(memory_scan_code(secret)), what)
    assert res.get("interpreter") == "warm", res
    got = json.loads([l for l in res["output"].splitlines() if l.startswith("@@")][-1][2:])
    assert not got["environ"] and not got["memory"], \
        f"{what}: the service's environment reaches warm user code: {got}"


def test_service_warm_kill_restart(daemons):
    secret = "ssec-" + secrets.token_hex(16)
    d = daemons(name="svc", env={"SERVICE_TEST_SECRET": secret})
    it = d.wait_mode("warm", 60)
    zpid = it.get("pid")
    assert isinstance(zpid, int) and pid_alive(zpid), f"status pid {zpid!r} is not alive: {it}"
    assert "zygote" in proc_cmdline(zpid), f"status pid {zpid} is not a zygote: " \
                                           f"{proc_cmdline(zpid)}"
    assert it.get("restarts") == 0, it
    assert it.get("preloaded") == DEFAULT_PRELOADS, it
    assert isinstance(it.get("pool_size"), int) and it["pool_size"] >= 1, it
    kids = wait_until(lambda: (lambda k: k if len(k) == it["pool_size"] else None)(
        children_of(zpid)), 10) or children_of(zpid)
    assert len(kids) == it["pool_size"], f"zygote {zpid} has children {kids}, status {it}"

    res = _ok(d.execute(CHECK), "warm execution")
    assert res.get("interpreter") == "warm", res
    assert res["output"] == "1 True\n", res
    _assert_no_secret(d, secret, "first zygote")

    # SIGKILL the zygote: executions must never fail; status goes cold, then warm again
    os.kill(zpid, signal.SIGKILL)
    t0 = time.monotonic()
    cold_seen, interpreters, states = None, [], []
    while time.monotonic() - t0 < 45:
        it2 = d.interpreters()
        states.append(it2)
        if it2.get("mode") == "cold" and cold_seen is None:
            cold_seen = it2
        r = _ok(d.execute(CHECK), f"execution {time.monotonic() - t0:.1f}s after the kill")
        interpreters.append(r.get("interpreter"))
        assert r.get("interpreter") in ("warm", "cold"), r
        if it2.get("mode") == "warm" and it2.get("pid") not in (None, zpid):
            break
        time.sleep(0.2)
    else:
        pytest.fail(f"no warm zygote again within 45s of the kill; last states {states[-3:]}\n"
                    f"{d.stderr()}")
    back = time.monotonic() - t0
    assert cold_seen is not None, f"status never reported mode cold after the kill: {states[:5]}"
    assert isinstance(cold_seen.get("reason"), str) and cold_seen["reason"].strip(), cold_seen
    assert cold_seen.get("restarts", 0) >= 1 or any(s.get("restarts", 0) >= 1 for s in states), \
        f"restarts never counted: {states[:5]}"
    assert back < 30, f"warm again only after {back:.1f}s"
    new = d.interpreters()
    assert new.get("mode") == "warm" and new.get("restarts", 0) >= 1, new
    assert new.get("pid") != zpid and pid_alive(new["pid"]), new
    assert not pid_alive(zpid)
    assert wait_until(lambda: not any(pid_alive(k) for k in kids), 5), \
        f"idle children of the killed zygote survive: {[k for k in kids if pid_alive(k)]}"
    res = _ok(d.execute(CHECK), "execution after the restart")
    assert res.get("interpreter") == "warm", res
    _assert_no_secret(d, secret, "restarted zygote")

    # stopping the service stops its zygote and the zygote's children
    new_pid = new["pid"]
    new_kids = children_of(new_pid)
    rc = d.stop()
    assert rc == 0, f"codecell serve exited {rc} on SIGTERM\n{d.stderr()}"
    assert wait_until(lambda: not pid_alive(new_pid) and
                      not any(pid_alive(k) for k in new_kids), 5), \
        f"the zygote {new_pid} or its children {new_kids} outlived the service"


def test_service_warm_disabled_by_env(daemons):
    d = daemons(env={"CODECELL_WARM_INTERPRETERS": "false"}, name="svc-cold")
    time.sleep(1.5)        # a zygote, if one were wrongly started, would show up by now
    it = d.interpreters()
    assert it.get("mode") == "cold", it
    assert "disabled" in str(it.get("reason", "")).lower(), f"no 'disabled' reason: {it}"
    assert it.get("pid") is None, it
    zygotes = [p for p in children_of(d.proc.pid) if "zygote" in proc_cmdline(p)]
    assert not zygotes, f"a zygote runs although warm interpreters are disabled: {zygotes}"
    for _ in range(2):
        res = _ok(d.execute(CHECK), "cold execution")
        assert res.get("interpreter") == "cold", res


def test_service_warm_disabled_by_config(daemons):
    d = daemons(config_toml="[interpreters]\nwarm = false\n", name="svc-cfg-cold")
    time.sleep(1.0)
    it = d.interpreters()
    assert it.get("mode") == "cold" and "disabled" in str(it.get("reason", "")).lower(), it
    res = _ok(d.execute(CHECK), "cold execution")
    assert res.get("interpreter") == "cold", res


def test_service_pool_and_preload_from_config(daemons):
    d = daemons(config_toml='[interpreters]\nwarm = true\npool = 1\npreload = ["numpy"]\n',
                name="svc-cfg")
    it = d.wait_mode("warm", 60)
    assert it.get("pool_size") == 1 and it.get("preloaded") == ["numpy"], it
    assert len(wait_until(lambda: (lambda k: k if len(k) == 1 else None)(
        children_of(it["pid"])), 10) or children_of(it["pid"])) == 1, children_of(it["pid"])
    res = _ok(d.execute("import sys\nprint('numpy' in sys.modules, 'pandas' in sys.modules)"),
              "warm execution")
    assert res.get("interpreter") == "warm" and res["output"] == "True False\n", res


def test_service_pool_and_preload_from_env(daemons):
    d = daemons(env={"CODECELL_ZYGOTE_POOL": "3", "CODECELL_PRELOAD": "json,numpy"},
                name="svc-env")
    it = d.wait_mode("warm", 60)
    assert it.get("pool_size") == 3 and it.get("preloaded") == ["json", "numpy"], it
    kids = wait_until(lambda: (lambda k: k if len(k) == 3 else None)(children_of(it["pid"])),
                      10) or children_of(it["pid"])
    assert len(kids) == 3, kids
    res = _ok(d.execute("import sys\nprint('numpy' in sys.modules, 'seaborn' in sys.modules)"),
              "warm execution")
    assert res.get("interpreter") == "warm" and res["output"] == "True False\n", res
