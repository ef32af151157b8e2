"""Installs asked for by executions (import-triggered, install_packages) and concurrent installs;
each test has a fresh daemon, so the package is not there yet."""
import threading

from .conftest import (assert_ok, check_install_answer, entry, installed_names, norm,
                       output_lines, package_config)

ALPHA_CODE = "import ccdemo_alpha\nprint(ccdemo_alpha.VALUE, ccdemo_alpha.read_data())"


def install_entry(res: dict, distribution: str) -> dict:
    pi = res.get("package_installs")
    assert isinstance(pi, list), f"the result has no package_installs list: {res}"
    found = [e for e in pi if isinstance(e, dict) and norm(e.get("distribution") or "") ==
             distribution]
    assert found, f"package_installs has no entry for {distribution}: {pi}"
    return found[0]


def test_import_of_an_allowed_missing_module_installs_and_reruns(make_daemon, wheels):
    d = make_daemon(package_config(wheels), "import")
    res = d.execute(ALPHA_CODE)
    assert_ok(res, d)
    assert output_lines(res) == [f"alpha-1 {wheels.alpha_data}"], res["output"]
    assert "ccdemo-alpha" in installed_names(res), res
    assert res.get("rerun_after_install") is True, f"no rerun_after_install: {res}"
    assert "ModuleNotFoundError" not in str(res.get("error")), \
        f"the result is not the re-run's: {res.get('error')}"
    e = install_entry(res, "ccdemo-alpha")
    assert e.get("status") == "installed" and e.get("version") == "1.0", e
    assert e.get("name") == "ccdemo_alpha", e
    assert res.get("failed_packages") == [], res
    runs = d.pip_runs()
    assert runs >= 1

    again = d.execute(ALPHA_CODE)
    assert_ok(again, d)
    assert output_lines(again) == [f"alpha-1 {wheels.alpha_data}"], again["output"]
    assert not again.get("rerun_after_install"), f"an installed package caused a rerun: {again}"
    assert d.pip_runs() == runs, "an execution importing an installed package ran pip"


def test_install_packages_in_an_execution_pulls_dependencies(make_daemon, wheels):
    d = make_daemon(package_config(wheels), "install-packages")
    res = d.execute("import ccdemo_beta, ccdemo_alpha\n"
                    "print(ccdemo_beta.uses_alpha(), ccdemo_alpha.read_data())",
                    install_packages=["ccdemo_beta"])
    assert_ok(res, d)
    assert output_lines(res) == [f"beta+alpha-1 {wheels.alpha_data}"], res["output"]
    assert "ccdemo-beta" in installed_names(res), res
    assert res.get("failed_packages") == [], res
    e = install_entry(res, "ccdemo-beta")
    assert e.get("name") == "ccdemo_beta" and e.get("status") == "installed", e
    assert e.get("version") == "1.0", e
    listed = {norm(p.get("name")) for p in d.packages()["packages"]}
    assert "ccdemo-beta" in listed, listed


def test_concurrent_requests_for_one_package_run_pip_once(make_daemon, wheels):
    d = make_daemon(package_config(wheels), "concurrent")
    runs0 = d.pip_runs()
    barrier = threading.Barrier(2)
    answers = [None, None]

    def ask(i):
        barrier.wait()
        answers[i] = d.request("POST", "/v1/packages",
                               {"packages": ["ccdemo_alpha"], "user_id": f"conc-{i}"})

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not any(t.is_alive() for t in threads), "a request did not return"
    statuses = []
    for r in answers:
        assert r is not None and r.status == 200, f"{r!r}\n{d.where()}"
        ans = r.json()
        check_install_answer(ans, ["ccdemo_alpha"], d)
        e = entry(ans, "ccdemo_alpha")
        assert e["status"] in ("installed", "already_installed"), ans
        assert norm(e["distribution"]) == "ccdemo-alpha", e
        statuses.append(e["status"])
    assert "installed" in statuses, f"neither request says installed: {statuses}"
    assert d.pip_runs() - runs0 == 1, \
        f"two concurrent requests for one package ran pip {d.pip_runs() - runs0} times"
    res = d.execute(ALPHA_CODE)
    assert_ok(res, d)
    assert output_lines(res) == [f"alpha-1 {wheels.alpha_data}"], res["output"]


def test_missing_submodule_of_a_system_package_is_not_rerun(make_daemon, wheels):
    """`import sklearn.nonexistent`: sklearn is approved (default allowlist) and Debian's; there is
    nothing to install, so no pip and no second run."""
    d = make_daemon(package_config(wheels, default_allowlist=True), "system-submodule")
    runs = d.pip_runs()
    res = d.execute("import sklearn.nonexistent_codecell_module")
    assert res["status"] == "error" and "ModuleNotFoundError" in res["error"], res
    assert not res.get("rerun_after_install"), res
    assert res["installed_packages"] == [] and res["failed_packages"] == [], res
    assert d.pip_runs() == runs
