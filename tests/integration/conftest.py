import json
import os
import pathlib
import subprocess

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
BIN = os.environ.get("CODECELL_BIN", str(REPO / "build" / "codecell"))


def require_root():
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("codecell run needs root and CI runs as root: this machine does not")
        pytest.skip("needs root (codecell creates namespaces and cgroups)")


@pytest.fixture
def codecell(tmp_path):
    """Runs `codecell run`; returns (exit code, stdout, stderr)."""
    require_root()
    data_dir = tmp_path / "data"
    out_dir = tmp_path / "out"

    def run(*args, timeout=120, env=None, cwd=None):
        cmd = [BIN, "run", "--data-dir", str(data_dir), "--output-dir", str(out_dir), *args]
        p = subprocess.run(cmd, capture_output=True, timeout=timeout, env=env, cwd=cwd)
        return p.returncode, p.stdout, p.stderr

    run.out_dir = out_dir
    return run


@pytest.fixture
def run_json(codecell):
    """Runs `codecell run --json ... -c CODE`; asserts exit 0 and returns the result object."""

    def run(code, *flags, **kw):
        rc, out, err = codecell("--json", *flags, "-c", code, **kw)
        assert rc == 0, f"codecell failed ({rc}): {err.decode(errors='replace')}"
        return json.loads(out)

    return run
