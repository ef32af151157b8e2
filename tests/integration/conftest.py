import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # tests/, for support.harness
from support import harness  # noqa: E402
from support.harness import BIN, REPO  # noqa: E402,F401  (re-exported for test_run_cli.py)


def require_root():
    harness.require_root("codecell run needs root (it creates namespaces and cgroups); "
                         "this process is not root")


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
