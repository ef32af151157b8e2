"""POST/GET /v1/packages on one daemon (wheel_dir, no index) shared by the module.

The module's tests run in file order on one data dir: the first one installs ccdemo-alpha; the
others install it again (already_installed) where they need it, so each also runs alone.
"""
import pytest

from .conftest import (ALLOWLIST, assert_ok, dist_infos, entry,
                       env_snapshot, failed_entry, find_named, installed_names, is_number, norm,
                       module_daemon, output_lines, package_config, packages_root)

ALPHA_CODE = "import ccdemo_alpha\nprint(ccdemo_alpha.VALUE, ccdemo_alpha.read_data())"


@pytest.fixture(scope="module")
def daemon(wheels, tmp_path_factory):
    yield from module_daemon(wheels, tmp_path_factory, "install")


def ensure_alpha(daemon):
    ans = daemon.install("ccdemo_alpha")
    assert entry(ans, "ccdemo_alpha")["status"] in ("installed", "already_installed"), ans
    assert daemon.current_env(), f"no packages/current after an install\n{daemon.where()}"
    return ans


def test_install_import_and_reuse_without_reinstall(daemon, wheels):
    runs0 = daemon.pip_runs()
    ans = daemon.install("ccdemo_alpha", user="first-user")
    e = entry(ans, "ccdemo_alpha")
    assert e["status"] == "installed", ans
    assert norm(e["distribution"]) == "ccdemo-alpha" and e["version"] == "1.0", e
    assert "ccdemo-alpha" in installed_names(ans) and ans["failed_packages"] == [], ans
    runs1 = daemon.pip_runs()
    assert runs1 >= runs0 + 1, f"an install that installed something ran no pip ({runs0} -> {runs1})"

    env = daemon.current_env()
    assert env, f"no {packages_root(daemon.data_dir) / 'current'} after an install"
    assert any(d.startswith("ccdemo_alpha-1.0") for d in dist_infos(daemon.env_path(env))), \
        dist_infos(daemon.env_path(env))

    res = daemon.execute(ALPHA_CODE + "\nprint(ccdemo_alpha.__file__)")
    assert_ok(res, daemon)
    lines = output_lines(res)
    assert lines[0] == f"alpha-1 {wheels.alpha_data}", res["output"]
    assert lines[1].startswith("/opt/codecell/packages/"), \
        f"ccdemo_alpha was not imported from the mounted environment: {lines[1]}"

    # the same package again, by import name and by distribution name: no pip run
    for name in ("ccdemo_alpha", "ccdemo-alpha"):
        again = daemon.install(name, user="second-user")
        e2 = entry(again, name)
        assert e2["status"] == "already_installed", again
        assert norm(e2["distribution"]) == "ccdemo-alpha" and e2["version"] == "1.0", e2
        assert again["failed_packages"] == [], again
    assert daemon.pip_runs() == runs1, "asking for an installed package ran pip again"
    assert daemon.current_env() == env, "asking for an installed package switched environments"

    listing = daemon.packages()
    for k in ("environment", "packages", "allowlist"):
        assert k in listing, f"GET /v1/packages lacks {k!r}: {listing}"
    envinfo = listing["environment"]
    assert envinfo.get("exists") is True and envinfo.get("name") == env, (envinfo, env)
    assert "created_at" in envinfo and "path" in envinfo, envinfo
    mine = [p for p in listing["packages"] if norm(p.get("name")) == "ccdemo-alpha"]
    assert len(mine) == 1, f"ccdemo-alpha listed {len(mine)} times: {listing['packages']}"
    p = mine[0]
    for k in ("name", "version", "installed_at", "last_used", "first_requester", "requested"):
        assert k in p, f"package entry lacks {k!r}: {p}"
    assert p["version"] == "1.0" and p["requested"] is True, p
    assert p["first_requester"] == "first-user", f"first requester not kept: {p}"
    assert isinstance(p["installed_at"], str) and p["installed_at"], p
    assert listing["allowlist"] == ALLOWLIST, \
        f"with default_allowlist = false the allowlist is exactly the configured table: " \
        f"{listing['allowlist']}"


@pytest.mark.parametrize("body", [
    b'{"packages": "ccdemo_alpha"}',
    b'{"packages": []}',
    b'{"packages": [1]}',
    b'{"packages": ["ccdemo_alpha", null]}',
    b'{"packages": [["ccdemo_alpha"]]}',
    b'{"packages": null}',
    b'{}',
    b'["ccdemo_alpha"]',
    b'not json',
    b'{"packages": ["ccdemo_alpha"], "user_id": "../x"}',
], ids=["string", "empty", "int", "null-item", "nested", "null", "no-key", "array", "not-json",
        "bad-user"])
def test_malformed_body_is_400(daemon, body):
    runs = daemon.metric("codecell_package_pip_runs_total")
    r = daemon.request("POST", "/v1/packages", raw=body)
    assert r.status == 400, f"{body!r}: expected 400, got {r!r}"
    err = r.json().get("error")
    assert isinstance(err, dict) and err.get("code") == "bad_request" and err.get("message"), r
    assert runs is not None and daemon.pip_runs() == runs, "a malformed request ran pip"


def test_name_not_in_allowlist_is_refused(daemon):
    runs = daemon.pip_runs()
    ans = daemon.install("requests-not-allowed")
    e = entry(ans, "requests-not-allowed")
    assert e["status"] == "failed", ans
    fe = failed_entry(ans, "requests-not-allowed")
    assert fe is not None, ans
    for reason in (e["reason"], fe["reason"]):
        assert "allowlist" in reason.lower() and "packages.allowlist" in reason, \
            f"the reason should say the name is not in the allowlist and name the setting " \
            f"packages.allowlist: {reason!r}"
    assert installed_names(ans) == set(), ans
    assert daemon.pip_runs() == runs, "a refused name ran pip"

    # an execution importing a missing module that is not allowed: no install, no rerun
    res = daemon.execute("import ccdemo_not_allowed_xyz\nprint('unreachable')")
    assert res.get("status") == "error", f"expected status error:\n{res}"
    assert "ModuleNotFoundError" in str(res.get("error")), res.get("error")
    assert "unreachable" not in str(res.get("output")), res
    fe = failed_entry(res, "ccdemo_not_allowed_xyz")
    assert fe is not None, f"no failed_packages entry for the refused import: {res}"
    assert "allowlist" in fe["reason"].lower(), fe
    assert not res.get("rerun_after_install"), f"a refused import was re-run: {res}"
    assert "ccdemo-not-allowed-xyz" not in installed_names(res), res
    assert daemon.pip_runs() == runs, "a refused import ran pip"


def test_sdist_only_distribution_is_refused_and_never_built(daemon, wheels):
    ensure_alpha(daemon)
    env = daemon.current_env()
    before = env_snapshot(daemon.env_path(env))
    ans = daemon.install("ccdemo_sdistonly")
    e = entry(ans, "ccdemo_sdistonly")
    assert e["status"] == "failed", f"an sdist-only distribution was accepted: {ans}"
    assert failed_entry(ans, "ccdemo_sdistonly") is not None, ans
    assert not wheels.sdist_marker.exists(), \
        f"the sdist's setup.py ran on the host ({wheels.sdist_marker} exists)"
    ran = find_named(packages_root(daemon.data_dir), "CCDEMO_SDIST_RAN")
    assert not ran, f"the sdist's setup.py ran (it left {ran})"
    assert daemon.current_env() == env, "a failed install switched environments"
    assert env_snapshot(daemon.env_path(env)) == before, "a failed install changed the environment"
    listed = {norm(p.get("name")) for p in daemon.packages()["packages"]}
    assert "ccdemo-sdistonly" not in listed, listed


def test_failing_install_leaves_the_environment_intact(daemon, wheels):
    ensure_alpha(daemon)
    env = daemon.current_env()
    env_path = daemon.env_path(env)
    before = env_snapshot(env_path)
    failures = daemon.status()["packages"]["install_failures"]

    ans = daemon.install("ccdemo_broken")
    e = entry(ans, "ccdemo_broken")
    assert e["status"] == "failed", ans
    fe = failed_entry(ans, "ccdemo_broken")
    assert fe is not None and len(fe["reason"].strip()) >= 10, \
        f"a failed install needs a clear reason: {ans}"
    assert "ccdemo-broken" not in installed_names(ans), ans

    assert daemon.current_env() == env, "a failed install switched environments"
    assert env_path.is_dir()
    assert env_snapshot(env_path) == before, "a failed install changed the environment"
    res = daemon.execute(ALPHA_CODE)
    assert_ok(res, daemon)
    assert output_lines(res) == [f"alpha-1 {wheels.alpha_data}"], res["output"]
    assert daemon.status()["packages"]["install_failures"] >= failures + 1


def test_one_failing_name_does_not_fail_the_others(make_daemon, wheels):
    """One request with a name that cannot be installed and one that can (with its dependency,
    on a fresh daemon of its own): each gets its own status, the good one is installed and
    importable, and the service still installs afterwards."""
    d = make_daemon(package_config(wheels), "mixed")
    ans = d.install("ccdemo_broken", "ccdemo_beta")
    assert entry(ans, "ccdemo_broken")["status"] == "failed", ans
    eb = entry(ans, "ccdemo_beta")
    assert eb["status"] == "installed", ans
    assert norm(eb["distribution"]) == "ccdemo-beta" and eb["version"] == "1.0", eb
    res = d.execute("import ccdemo_beta\nprint(ccdemo_beta.uses_alpha(), ccdemo_beta.ccdemo_alpha.read_data())")
    assert_ok(res, d)
    assert output_lines(res) == [f"beta+alpha-1 {wheels.alpha_data}"], res["output"]
    again = d.install("ccdemo_pth")
    assert entry(again, "ccdemo_pth")["status"] == "installed", again


def test_status_and_metrics_count_installs(daemon):
    ensure_alpha(daemon)
    daemon.install("ccdemo_broken")          # at least one failure to count
    st = daemon.status()
    assert st.get("venv_exists") is True, st
    assert isinstance(st.get("python_path"), str) and st["python_path"], st
    names = st.get("installed_packages")
    assert isinstance(names, list) and "ccdemo-alpha" in {norm(n) for n in names}, names
    assert "ccdemo-broken" not in {norm(n) for n in names}, names
    assert isinstance(st.get("package_count"), int) and st["package_count"] >= 1, st
    assert "last_cleanup" in st, st
    pk = st.get("packages")
    assert isinstance(pk, dict), f"/v1/status has no 'packages' object: {st}"
    for k in ("installs", "install_failures", "install_seconds", "pip_runs", "environment",
              "last_refresh", "refresh_error"):
        assert k in pk, f"/v1/status packages lacks {k!r}: {pk}"
    assert isinstance(pk["installs"], int) and pk["installs"] >= 1, pk
    assert isinstance(pk["install_failures"], int) and pk["install_failures"] >= 1, pk
    assert is_number(pk["install_seconds"]) and pk["install_seconds"] > 0, pk
    assert isinstance(pk["pip_runs"], int) and pk["pip_runs"] >= 1, pk
    assert pk["environment"] == daemon.current_env(), (pk, daemon.current_env())

    text = daemon.metrics_text()
    want = [("codecell_package_installs_total", {"result": "installed"}),
            ("codecell_package_installs_total", {"result": "failed"}),
            ("codecell_package_pip_runs_total", {}),
            ("codecell_package_install_seconds_total", {}),
            ("codecell_package_refreshes_total", {"result": "ok"}),
            ("codecell_package_refreshes_total", {"result": "failed"})]
    values = {}
    for name, labels in want:
        v = daemon.metric(name, **labels)
        assert v is not None, f"/metrics lacks {name}{labels or ''}:\n{text[-4000:]}"
        values[(name, tuple(labels.items()))] = v
    assert values[("codecell_package_installs_total", (("result", "installed"),))] >= 1
    assert values[("codecell_package_installs_total", (("result", "failed"),))] >= 1
    assert values[("codecell_package_install_seconds_total", ())] > 0
    pip_metric = values[("codecell_package_pip_runs_total", ())]
    assert pip_metric >= 1
    st2 = daemon.status()["packages"]
    assert st2["pip_runs"] == pip_metric == pk["pip_runs"], \
        f"/v1/status pip_runs and the metric disagree: {pk['pip_runs']}, {pip_metric}, " \
        f"{st2['pip_runs']}"


def test_a_failed_install_is_not_retried_at_once(make_daemon, wheels):
    """A model that asks again and again (or code that imports the package in every execution)
    must not run pip each time: a failure is remembered for 5 minutes and reported again."""
    d = make_daemon(package_config(wheels), "retry")
    first = d.install("ccdemo_broken")
    assert entry(first, "ccdemo_broken")["status"] == "failed", first
    runs = d.pip_runs()
    again = d.install("ccdemo_broken")
    e = entry(again, "ccdemo_broken")
    assert e["status"] == "failed" and "tried again" in e["reason"], again
    res = d.execute("import ccdemo_broken")
    assert res["status"] == "error" and not res.get("rerun_after_install"), res
    assert [f["name"] for f in res["failed_packages"]] == ["ccdemo_broken"], res
    assert d.pip_runs() == runs, "a recent failure ran pip again"
    ok = d.install("ccdemo_alpha")                # other packages still install
    assert entry(ok, "ccdemo_alpha")["status"] == "installed", ok
