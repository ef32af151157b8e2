"""No zygote reachable: silent cold fallback, or a clean failure with CODECELL_REQUIRE_WARM=1."""
import json
import socket
import threading
import time

import pytest

from .conftest import clean_env, invoke, new_socket_path


def _parse_ok(rc, out, err):
    assert rc == 0, f"codecell run exited {rc}\nstdout: {out[-2000:]}\nstderr: {err[-2000:]}"
    return json.loads(out)


def _assert_clean_failure(rc, out, err, sock):
    assert rc == 1, f"REQUIRE_WARM without a zygote: exit {rc}, expected 1\nstdout: {out[-2000:]}" \
                    f"\nstderr: {err[-2000:]}"
    try:
        obj = json.loads(out)
    except ValueError:
        raise AssertionError(f"REQUIRE_WARM failure printed no JSON on stdout: {out!r}\n"
                             f"stderr: {err[-2000:]}") from None
    assert isinstance(obj.get("error"), dict), f"not a JSON error object: {obj}"
    msg = obj["error"].get("message")
    assert isinstance(msg, str) and msg.strip(), f"error without a message: {obj}"
    assert "status" not in obj and "output" not in obj, \
        f"a failed run must not look like a result: {obj}"
    return msg


@pytest.fixture
def stale_socket():
    """A unix socket file nobody listens on (ECONNREFUSED)."""
    p = new_socket_path("stale")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(p))
    s.close()
    yield p
    p.unlink(missing_ok=True)


@pytest.fixture
def rude_socket():
    """A listener that accepts and closes every connection at once without a word."""
    p = new_socket_path("rude")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(p))
    s.listen(16)
    s.settimeout(0.2)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                c, _ = s.accept()
                c.close()
            except OSError:
                pass

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield p
    stop.set()
    t.join(2)
    s.close()
    p.unlink(missing_ok=True)


def _missing():
    return new_socket_path("missing")


@pytest.mark.parametrize("kind", ["missing", "stale", "rude"])
@pytest.mark.parametrize("how", ["env", "flag"])
def test_fallback_to_cold(kind, how, request):
    sock = _missing() if kind == "missing" else request.getfixturevalue(f"{kind}_socket")
    flags = ()
    extra = {}
    if how == "env":
        extra["CODECELL_ZYGOTE_SOCKET"] = str(sock)
    else:
        flags = ("--zygote", str(sock))
    t0 = time.monotonic()
    rc, out, err, _, _ = invoke("import os\nprint('cold', os.getpid() != 1)", *flags,
                                env=clean_env(extra), guard=60)
    res = _parse_ok(rc, out, err)
    assert res.get("interpreter") == "cold", f"{kind}/{how}: {res}"
    assert res.get("status") == "ok" and res.get("output") == "cold True\n", f"{kind}/{how}: {res}"
    assert time.monotonic() - t0 < 30, f"the fallback took {time.monotonic() - t0:.1f}s"


@pytest.mark.parametrize("kind", ["missing", "stale", "rude"])
@pytest.mark.parametrize("how", ["env", "flag"])
def test_require_warm_fails_cleanly(kind, how, request):
    sock = _missing() if kind == "missing" else request.getfixturevalue(f"{kind}_socket")
    flags = ()
    extra = {"CODECELL_REQUIRE_WARM": "1"}
    if how == "env":
        extra["CODECELL_ZYGOTE_SOCKET"] = str(sock)
    else:
        flags = ("--zygote", str(sock))
    rc, out, err, _, _ = invoke("print('must not run cold')", *flags, env=clean_env(extra),
                                guard=60)
    _assert_clean_failure(rc, out, err, sock)
    assert "must not run cold" not in out + err


def test_require_warm_without_any_socket_fails():
    """REQUIRE_WARM=1 but no zygote named at all: cannot be warm, so it must fail too."""
    rc, out, err, _, _ = invoke("print('x')", env=clean_env({"CODECELL_REQUIRE_WARM": "1"}),
                                guard=60)
    _assert_clean_failure(rc, out, err, None)


def test_warm_works_with_env_and_no_require(zygote):
    """Sanity: the same variables pointing at a live zygote give warm without REQUIRE_WARM."""
    rc, out, err, _, _ = invoke("print(1)", env=clean_env(
        {"CODECELL_ZYGOTE_SOCKET": str(zygote.socket)}))
    res = _parse_ok(rc, out, err)
    assert res.get("interpreter") == "warm", res
