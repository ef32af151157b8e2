"""Installing from a PEP 503 simple index on 127.0.0.1 (no wheel_dir)."""
from .conftest import (assert_ok, entry, find_named, norm, output_lines, package_config,
                       packages_root)


def test_install_from_a_loopback_simple_index(make_daemon, wheels, index):
    d = make_daemon(package_config(wheels, index_url=index.url, wheel_dir=""), "index")
    seen = len(index.requests)
    ans = d.install("ccdemo_alpha")
    e = entry(ans, "ccdemo_alpha")
    assert e["status"] == "installed", f"{ans}\nindex requests: {index.requests[seen:]}\n{d.where()}"
    assert norm(e["distribution"]) == "ccdemo-alpha" and e["version"] == "1.0", e
    assert index.served(wheels.files["ccdemo-alpha"].name, since=seen), \
        f"the wheel was not fetched from the test's index: {index.requests[seen:]}"
    res = d.execute("import ccdemo_alpha\nprint(ccdemo_alpha.VALUE, ccdemo_alpha.read_data())")
    assert_ok(res, d)
    assert output_lines(res) == [f"alpha-1 {wheels.alpha_data}"], res["output"]

    # beta from the index too; its dependency is already there
    seen = len(index.requests)
    ans = d.install("ccdemo_beta")
    assert entry(ans, "ccdemo_beta")["status"] == "installed", ans
    assert index.served(wheels.files["ccdemo-beta"].name, since=seen), index.requests[seen:]

    # the index also offers ccdemo-sdistonly as an sdist only: refused, never downloaded or run
    seen = len(index.requests)
    ans = d.install("ccdemo_sdistonly")
    assert entry(ans, "ccdemo_sdistonly")["status"] == "failed", ans
    assert not index.served(wheels.files["ccdemo-sdistonly"].name, since=seen), \
        f"pip downloaded the sdist: {index.requests[seen:]}"
    assert not wheels.sdist_marker.exists()
    assert not find_named(packages_root(d.data_dir), "CCDEMO_SDIST_RAN")
