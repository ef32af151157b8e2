#!/usr/bin/python3
"""Run the whole, unchanged security suite (tests/security) against warm interpreters.

    CODECELL_BIN=build/codecell /usr/bin/python3 tests/warm/run_security_warm.py [pytest args]

Starts ``codecell zygote`` on a socket under /run/codecell, waits for its ready line, runs
``/usr/bin/python3 -m pytest -q -p no:cacheprovider tests/security`` with
``CODECELL_ZYGOTE_SOCKET=<socket>`` and ``CODECELL_REQUIRE_WARM=1`` (so an execution that silently
fell back to a cold interpreter fails instead of passing), stops the zygote and exits with
pytest's status.  Extra arguments are passed to pytest (e.g. ``-k network``).

Without root: exit 1 under CI=true, else print why and exit 0 (pytest's "skipped" convention of
the other suites).
"""
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
PYTHON = "/usr/bin/python3"
READY_TIMEOUT = 60.0

sys.path.insert(0, str(REPO / "tests"))     # for support.harness
from support.harness import binary_path, in_ci  # noqa: E402


def main(argv) -> int:
    ci = in_ci()
    if os.geteuid() != 0:
        print("security_warm: codecell zygote needs root; this process is not root",
              file=sys.stderr)
        return 1 if ci else 0
    bin_ = binary_path()
    if not bin_.exists():
        print(f"security_warm: no codecell binary at {bin_} (set CODECELL_BIN)", file=sys.stderr)
        return 1
    sock_dir = Path("/run/codecell")
    sock_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(sock_dir, 0o700)
    sock = sock_dir / f"secwarm-{os.getpid()}-{secrets.token_hex(3)}.sock"
    work = Path(tempfile.mkdtemp(prefix="codecell-secwarm-",
                                 dir="/var/tmp" if os.path.isdir("/var/tmp") else None))
    out_path, err_path = work / "zygote.stdout", work / "zygote.stderr"
    env = {k: v for k, v in os.environ.items()
           if k not in ("CODECELL_ZYGOTE_SOCKET", "CODECELL_REQUIRE_WARM")}
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        zyg = subprocess.Popen([str(bin_), "zygote", "--socket", str(sock), "--data-dir",
                                str(work / "data"), "--pool", "4"],
                               stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env,
                               start_new_session=True)
    status = 1
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        ready = None
        while ready is None:
            text = out_path.read_text(errors="replace")
            if "\n" in text:
                ready = json.loads(text.split("\n", 1)[0])
                break
            if zyg.poll() is not None or time.monotonic() > deadline:
                print(f"security_warm: the zygote did not get ready (exit {zyg.poll()})\n"
                      f"{err_path.read_text(errors='replace')[-4000:]}", file=sys.stderr)
                return 1
            time.sleep(0.05)
        if ready.get("ready") is not True:
            print(f"security_warm: unexpected first line of the zygote: {ready}", file=sys.stderr)
            return 1
        print(f"security_warm: zygote pid {ready.get('pid')} ready in "
              f"{ready.get('startup_seconds')} s on {sock}; preloaded {ready.get('preloaded')}",
              flush=True)
        # CODECELL_TEST_ZYGOTE_PID tells the suite's process accounting (conftest.py) where an
        # execution's processes live on this path: under the zygote, not under `codecell run`.
        test_env = dict(env, CODECELL_ZYGOTE_SOCKET=str(sock), CODECELL_REQUIRE_WARM="1",
                        CODECELL_BIN=str(bin_), CODECELL_TEST_ZYGOTE_PID=str(ready["pid"]))
        status = subprocess.run([PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                 str(REPO / "tests" / "security"), *argv],
                                env=test_env, cwd=str(REPO)).returncode
        if zyg.poll() is not None:
            print(f"security_warm: the zygote DIED during the suite (exit {zyg.returncode})\n"
                  f"{err_path.read_text(errors='replace')[-4000:]}", file=sys.stderr)
            status = status or 1
        return status
    finally:
        if zyg.poll() is None:
            zyg.send_signal(signal.SIGTERM)
            try:
                zyg.wait(10)
            except subprocess.TimeoutExpired:
                zyg.kill()
                zyg.wait()
        try:
            sock.unlink()
        except OSError:
            pass
        if status == 0:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"security_warm: zygote logs kept under {work}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
