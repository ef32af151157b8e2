"""What the zygote (or the service that started it) had in its environment never reaches the
user code: not in os.environ, not in the memory a fork inherited (the original environ block)."""
import secrets

from .conftest import Zygote, _parse, clean_env, invoke, memory_scan_code, run_warm


def test_zygote_environment_not_inherited():
    secret = "zsec-" + secrets.token_hex(16)
    z = Zygote(pool=1, preload="", tag="env", env={"CODECELL_ZYGOTE_TEST_SECRET": secret,
                                                   "SOME_API_KEY": secret})
    try:
        z.start()
        res = run_warm(z, memory_scan_code(secret))
        assert res["status"] == "ok", res.describe()
        got = res.payload()
        assert not got["environ"], f"the zygote's environment is in os.environ: {got['environ']}"
        assert not got["memory"], \
            f"the zygote's environment is readable in the child's memory: {got['memory']}"
    finally:
        z.stop()


def test_caller_environment_not_inherited(zygote):
    """The environment of `codecell run` itself (the caller) does not reach the warm child."""
    secret = "csec-" + secrets.token_hex(16)
    res = _parse(*invoke(memory_scan_code(secret), "--zygote", str(zygote.socket),
                         env=clean_env({"CODECELL_REQUIRE_WARM": "1",
                                        "CALLER_TEST_SECRET": secret})))
    assert res.get("interpreter") == "warm", res.describe()
    got = res.payload()
    assert not got["environ"] and not got["memory"], got
    assert secret not in res["output"] + res["error"]
