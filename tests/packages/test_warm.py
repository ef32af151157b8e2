"""A package installed after the service started is importable in warm interpreters (both the
"base" and the "full" zygote's children were forked before the install)."""
import time

import pytest

from .conftest import assert_ok, output_lines, package_config

WARM_TIMEOUT = 90.0


def test_package_installed_after_start_is_seen_by_warm_interpreters(make_daemon, wheels):
    d = make_daemon(package_config(wheels, pool=None), "warm")   # interpreters: the defaults
    deadline = time.monotonic() + WARM_TIMEOUT
    while True:
        it = d.status().get("interpreters") or {}
        if it.get("mode") == "warm":
            break
        if time.monotonic() > deadline:
            pytest.fail(f"interpreters.mode did not become 'warm' within {WARM_TIMEOUT}s: {it}\n"
                        f"{d.where()}", pytrace=False)
        time.sleep(0.3)

    d.install("ccdemo_alpha")
    expect = f"alpha-1 {wheels.alpha_data}"
    codes = {
        # routed to the "base" zygote (no preloaded package named)
        "base": "import ccdemo_alpha\nprint(ccdemo_alpha.VALUE, ccdemo_alpha.read_data())",
        # mentions numpy: routed to the "full" zygote
        "full": "import numpy\nimport ccdemo_alpha\n"
                "print(ccdemo_alpha.VALUE, ccdemo_alpha.read_data())\nprint(numpy.__name__)",
    }
    seen = {"base": [], "full": []}
    for i in range(3):
        for kind, code in codes.items():
            res = d.execute(code, user=f"warm-{kind}-{i}")
            assert_ok(res, d)
            lines = output_lines(res)
            assert lines[0] == expect, f"{kind} #{i}: {res['output']!r}"
            assert not res.get("rerun_after_install"), f"{kind} #{i} re-ran: {res}"
            seen[kind].append(res.get("interpreter"))
    for kind, interps in seen.items():
        assert "warm" in interps, \
            f"no {kind!r} execution ran in a warm interpreter ({interps}); " \
            f"interpreters: {d.status().get('interpreters')}"
