"""POST /v1/packages/refresh while an execution uses the environment."""
import shutil
import threading
import time

from .conftest import (assert_ok, describe, env_snapshot, norm, output_lines, package_config,
                       site_dirs, wait_until)

SLEEP = 8.0          # the running execution sleeps this long before reading its package file


def test_refresh_under_a_running_execution(make_daemon, wheels):
    d = make_daemon(package_config(wheels), "refresh")
    d.install("ccdemo_alpha", user="refresher")
    old = d.current_env()
    assert old, f"no packages/current after an install\n{d.where()}"
    old_path = d.env_path(old)
    assert any((s / "ccdemo_alpha" / "data.txt").is_file() for s in site_dirs(old_path)), \
        f"ccdemo_alpha/data.txt is not in {old_path}"
    # read_data() opens ccdemo_alpha/data.txt only after the sleep, i.e. after the switch
    code = ("import ccdemo_alpha, time\nprint('imported', flush=True)\n"
            f"time.sleep({SLEEP})\nprint(ccdemo_alpha.VALUE, ccdemo_alpha.read_data())")
    box = {}

    def run():
        try:
            box["res"] = d.execute(code, user="long-runner", timeout=120)
        except BaseException as e:     # reported below
            box["exc"] = e

    t = threading.Thread(target=run, name="long-execution")
    started = time.monotonic()
    t.start()
    time.sleep(1.5)
    assert t.is_alive(), f"the execution ended before the refresh: {box}"

    r = d.request("POST", "/v1/packages/refresh", {})
    refreshed_after = time.monotonic() - started
    running_at_switch = t.is_alive()
    old_there_at_switch = old_path.is_dir()
    old_intact_at_switch = old_there_at_switch and bool(env_snapshot(old_path))
    assert r.status == 200, f"POST /v1/packages/refresh: {r!r}\n{d.where()}"
    ans = r.json()
    assert ans.get("refreshed") is True, f"refresh failed: {ans}\n{d.where()}"
    new = ans.get("environment")
    assert isinstance(new, str) and new and new != old, f"no new environment: {ans} (old {old})"
    assert d.current_env() == new, f"packages/current -> {d.current_env()}, refresh said {new}"
    for k in ("kept", "dropped"):
        assert isinstance(ans.get(k), list), f"refresh answer lacks the list {k!r}: {ans}"
    assert "ccdemo-alpha" in {norm(x if isinstance(x, str) else x.get("name", ""))
                              for x in ans["kept"]}, f"ccdemo-alpha was used, yet not kept: {ans}"

    assert running_at_switch, \
        f"the refresh took {refreshed_after:.1f}s, longer than the execution's {SLEEP}s sleep: " \
        f"the test could not observe a switch under a running execution"
    assert old_there_at_switch and old_intact_at_switch, \
        f"the old environment {old} was removed (or emptied) while an execution still used it"

    t.join(120)
    assert not t.is_alive(), "the running execution did not return"
    assert "exc" not in box, f"the running execution's request failed: {box['exc']!r}"
    res = box["res"]
    assert_ok(res, d)
    assert output_lines(res) == ["imported", f"alpha-1 {wheels.alpha_data}"], \
        f"the execution that ran across the refresh lost its package:\n{describe(res, d)}"

    gone = wait_until(lambda: not old_path.exists(), 10)
    assert gone, f"the old environment {old} was not removed within 10 s after its last " \
                 f"execution ended: envs/ = {d.env_dirs()}"
    left = wait_until(lambda: d.env_dirs() == [new], 5)
    assert left, f"envs/ holds {d.env_dirs()} besides the current {new}"

    res2 = d.execute("import ccdemo_alpha\nprint(ccdemo_alpha.VALUE, ccdemo_alpha.read_data())",
                     user="after-refresh")
    assert_ok(res2, d)
    assert output_lines(res2) == [f"alpha-1 {wheels.alpha_data}"], res2["output"]
    assert not res2.get("rerun_after_install"), res2

    pk = d.status()["packages"]
    assert pk.get("environment") == new, pk
    assert isinstance(pk.get("last_refresh"), str) and pk["last_refresh"], pk
    assert pk.get("refresh_error") in (None, ""), pk
    assert (d.metric("codecell_package_refreshes_total", result="ok") or 0) >= 1, \
        d.metrics_text()[-3000:]
    envinfo = d.packages()["environment"]
    assert envinfo.get("name") == new and envinfo.get("exists") is True, envinfo


def test_failed_refresh_leaves_the_live_environment_and_is_reported(make_daemon, wheels, tmp_path):
    # A wheel directory of our own, emptied after the install: the rebuild cannot find the wheel.
    own = tmp_path / "wheels-that-vanish"
    own.mkdir()
    shutil.copy(wheels.files["ccdemo-alpha"], own)
    d = make_daemon(package_config(wheels, wheel_dir=str(own)), "failed-refresh")
    d.install("ccdemo_alpha")
    live = d.current_env()
    before = d.metric("codecell_package_refreshes_total", result="failed")
    for f in own.iterdir():
        f.unlink()

    ans = d.json("POST", "/v1/packages/refresh", {})
    assert ans.get("refreshed") is False, ans
    assert "ccdemo" in ans.get("error", "").lower() or "no matching" in ans.get("error", "").lower(), ans
    assert d.current_env() == live, "a failed refresh switched the environment"
    assert d.env_dirs() == [live], f"the failed build was left behind: {d.env_dirs()}"
    pk = d.status()["packages"]
    assert pk["refresh_error"], pk
    assert d.metric("codecell_package_refreshes_total", result="failed") == before + 1
    res = d.execute("import ccdemo_alpha\nprint(ccdemo_alpha.read_data())")
    assert_ok(res, d)
    assert output_lines(res) == [wheels.alpha_data]


def test_refresh_keeps_what_was_used_in_the_period_and_cleanup_runs_it_when_due(make_daemon,
                                                                                wheels):
    period_s = 6.0
    d = make_daemon(package_config(wheels, refresh_days=period_s / 86400), "due-refresh")
    d.install("ccdemo_alpha", "ccdemo_pth")
    first = d.current_env()
    cleanup = d.json("POST", "/v1/cleanup", {})
    assert cleanup["venv_recreated"] is False, cleanup  # not due yet
    time.sleep(period_s + 0.5)
    # only ccdemo_alpha is used within the new period
    res = d.execute("import ccdemo_alpha\nprint(ccdemo_alpha.VALUE)")
    assert_ok(res, d)
    cleanup = d.json("POST", "/v1/cleanup", {})
    assert cleanup["venv_recreated"] is True, cleanup
    refresh = cleanup["package_refresh"]
    assert [norm(n) for n in refresh["kept"]] == ["ccdemo-alpha"], refresh
    assert [norm(n) for n in refresh["dropped"]] == ["ccdemo-pth"], refresh
    assert d.current_env() not in (None, first)
    names = {norm(p["name"]) for p in d.packages()["packages"]}
    assert "ccdemo-alpha" in names and "ccdemo-pth" not in names, names
    gone = d.execute("import ccdemo_alpha, importlib.util\n"
                     "print(importlib.util.find_spec('ccdemo_pth') is None)")
    assert_ok(gone, d)
    assert output_lines(gone) == ["True"], gone
