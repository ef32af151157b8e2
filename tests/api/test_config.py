"""Daemons with a special config: keys, listen refusal, quotas, upload limit, expiry."""
import os
import re
import subprocess
import time

import pytest

from .conftest import (BIN, assert_error, free_port, multipart, new_dir, new_user, parse_time, q,
                       sha256, stored_files)

KEY1, KEY2 = "key-one-" + "a" * 24, "key-two-" + "b" * 24


# ---------------------------------------------------------------------------------------------
# auth
# ---------------------------------------------------------------------------------------------
def test_api_keys(make_daemon):
    d = make_daemon(config={"api_keys": [KEY1, KEY2]})
    d.api_key = KEY1          # the default of d.request(); key=None sends no Authorization
    u = new_user()
    path = "/v1/files" + q(user_id=u)
    assert_error(d.request("GET", path, key=None), 401, "unauthorized")
    assert_error(d.request("GET", path, key="wrong-key"), 401, "unauthorized")
    assert_error(d.request("GET", path, key=KEY1 + "x"), 401, "unauthorized")
    assert_error(d.request("GET", path, key=""), 401, "unauthorized")
    assert_error(d.request("GET", path, key=None, headers={"Authorization": KEY1}), 401,
                 "unauthorized")
    assert_error(d.request("GET", path, key=None, headers={"Authorization": f"Basic {KEY1}"}), 401,
                 "unauthorized")
    for k in (KEY1, KEY2):
        r = d.request("GET", path, key=k)
        assert r.status == 200 and r.json() == {"files": []}, r

    # every /v1 endpoint and /metrics need it; nothing happens without it
    assert_error(d.upload(u, "a.txt", b"no key", key=None), 401, "unauthorized")
    assert_error(d.upload(u, "a.txt", b"bad key", key="nope"), 401, "unauthorized")
    r = d.request("POST", "/v1/executions", {"user_id": u, "code": "open('x','w').write('1')"},
                  key=None)
    assert_error(r, 401, "unauthorized")
    for method, p in (("GET", "/v1/status"), ("POST", "/v1/cleanup"), ("GET", "/metrics"),
                      ("DELETE", path), ("GET", "/v1/files/abcdefabcdefabcdef" + q(user_id=u)),
                      ("GET", "/v1/files/abcdefabcdefabcdef/content" + q(user_id=u))):
        assert_error(d.request(method, p, key=None), 401, "unauthorized")
        assert_error(d.request(method, p, key="wrong"), 401, "unauthorized")
    assert d.list_files(u) == []            # (with the key) nothing was stored or generated
    assert stored_files(d.data_dir) == []

    # /healthz never needs it
    r = d.request("GET", "/healthz", key=None)
    assert r.status == 200 and r.json() == {"status": "ok"}, r
    # with the key everything works
    f = d.upload_ok(u, "a.txt", b"with key", key=KEY2)
    assert d.content(u, f["file_id"]).body == b"with key"
    assert d.request("GET", "/metrics", key=KEY1).status == 200
    assert d.request("GET", "/v1/status", key=KEY1).status == 200


def test_api_keys_from_env_and_flags_follow_the_precedence(make_daemon):
    u = new_user()
    path = "/v1/files" + q(user_id=u)
    d = make_daemon(config={"api_keys": ["cfg-key-123456"]},
                    env={"CODECELL_API_KEYS": "env-key-1,env-key-2"})
    assert d.request("GET", path, key="env-key-2").status == 200
    assert d.request("GET", path, key="env-key-1").status == 200
    assert_error(d.request("GET", path, key="cfg-key-123456"), 401, "unauthorized")
    assert_error(d.request("GET", path, key=None), 401, "unauthorized")
    d.stop()
    d = make_daemon(config={"api_keys": ["cfg-key-123456"]},
                    env={"CODECELL_API_KEYS": "env-key-1"},
                    extra_args=["--api-key", "flag-key-1", "--api-key", "flag-key-2"])
    assert d.request("GET", path, key="flag-key-1").status == 200
    assert d.request("GET", path, key="flag-key-2").status == 200
    assert_error(d.request("GET", path, key="env-key-1"), 401, "unauthorized")
    assert_error(d.request("GET", path, key=None), 401, "unauthorized")


def run_serve(args, env=None, timeout=15):
    e = {k: v for k, v in os.environ.items() if not k.startswith("CODECELL_")}
    e.update(env or {})
    try:
        return subprocess.run([str(BIN), "serve", *args], env=e, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired as ex:
        pytest.fail(f"codecell serve {args} kept running (it should refuse to start): "
                    f"{(ex.stderr or b'')[-2000:]!r}")


def assert_refused(p):
    assert p.returncode == 2, f"exit {p.returncode}, expected 2\nstderr: {p.stderr[-3000:]}"
    msg = (p.stderr + p.stdout).lower()
    assert re.search(r"key|loopback", msg), f"no message about keys/loopback: {p.stderr[-3000:]}"


def test_refuses_non_loopback_listen_without_keys():
    port = free_port()
    data = new_dir("refuse")
    assert_refused(run_serve(["--listen", f"0.0.0.0:{port}", "--data-dir", str(data / "d1")]))
    cfg = data / "c.toml"
    cfg.write_text(f'listen = "0.0.0.0:{port}"\n')
    assert_refused(run_serve(["--config", str(cfg), "--data-dir", str(data / "d2")]))
    assert_refused(run_serve(["--data-dir", str(data / "d3")],
                             env={"CODECELL_LISTEN": f"0.0.0.0:{port}"}))


def test_non_loopback_listen_with_a_key_starts(make_daemon):
    d = make_daemon(extra_args=["--api-key", KEY1], listen="0.0.0.0:{port}", api_key=KEY1)
    u = new_user()
    f = d.upload_ok(u, "a.txt", b"x")
    assert d.list_files(u)[0]["file_id"] == f["file_id"]
    assert_error(d.request("GET", "/v1/files" + q(user_id=u), key=None), 401, "unauthorized")


# ---------------------------------------------------------------------------------------------
# per-user caps
# ---------------------------------------------------------------------------------------------
def assert_clear_quota_message(msg):
    assert re.search(r"limit|quota|max|cap|too many|exceed", msg, re.I), f"unclear message: {msg!r}"


def test_max_files_per_user_rejects_the_fourth(make_daemon):
    d = make_daemon(config={"files": {"max_files_per_user": 3, "max_bytes_per_user_mb": 1}})
    u, other = new_user(), new_user()
    ids = [d.upload_ok(u, f"f{i}.txt", f"file {i}".encode())["file_id"] for i in range(3)]
    r = d.upload(u, "f3.txt", b"file 3")
    msg = assert_error(r, 429, "rate_limited")
    assert_clear_quota_message(msg)
    assert [f["file_id"] for f in d.list_files(u)] == ids
    assert sha256(b"file 3") not in {sha256(p.read_bytes()) for p in stored_files(d.data_dir)}
    # other users are not affected; deleting one makes room again
    d.upload_ok(other, "o.txt", b"other")
    assert d.request("DELETE", f"/v1/files/{ids[0]}" + q(user_id=u)).status == 204
    d.upload_ok(u, "f3.txt", b"file 3")
    assert len(d.list_files(u)) == 3

    # bytes per user: 1 MiB
    b = new_user()
    d.upload_ok(b, "half.bin", os.urandom(600 * 1024))
    r = d.upload(b, "more.bin", os.urandom(600 * 1024))
    assert_clear_quota_message(assert_error(r, 429, "rate_limited"))
    assert [f["filename"] for f in d.list_files(b)] == ["half.bin"]


def test_evict_oldest(make_daemon):
    d = make_daemon(config={"files": {"max_files_per_user": 3, "over_quota": "evict_oldest"}})
    u = new_user()
    objs = []
    for i in range(4):
        objs.append(d.upload_ok(u, f"f{i}.txt", f"file {i}".encode()))
        time.sleep(0.02)
    listed = [f["file_id"] for f in d.list_files(u)]
    assert sorted(listed) == sorted(o["file_id"] for o in objs[1:]), (listed, objs)
    assert_error(d.request("GET", f"/v1/files/{objs[0]['file_id']}" + q(user_id=u)), 404,
                 "not_found")
    assert_error(d.content(u, objs[0]["file_id"]), 404, "not_found")
    assert d.content(u, objs[3]["file_id"]).body == b"file 3"
    shas = {sha256(p.read_bytes()) for p in stored_files(d.data_dir)}
    assert sha256(b"file 0") not in shas, "the evicted file's bytes are still stored"


# ---------------------------------------------------------------------------------------------
# upload size limit
# ---------------------------------------------------------------------------------------------
def test_max_upload_mb(make_daemon):
    d = make_daemon(config={"files": {"max_upload_mb": 1}})
    u = new_user()
    assert d.request("GET", "/v1/status").json()["max_file_size_mb"] == 1
    r = d.upload(u, "big.bin", os.urandom(2 * 1024 * 1024))
    assert_error(r, 413, "too_large")
    assert d.list_files(u) == []
    assert stored_files(d.data_dir) == []

    # the limit also holds while streaming a chunked body (no Content-Length to trust)
    body, ctype = multipart([("user_id", u)], [("file", "chunked.bin", os.urandom(2 * 1024 * 1024),
                                                "application/octet-stream")])

    def framed():
        for i in range(0, len(body), 64 * 1024):
            piece = body[i:i + 64 * 1024]
            yield b"%x\r\n" % len(piece) + piece + b"\r\n"
        yield b"0\r\n\r\n"

    resp, sent, err = d.raw("POST", "/v1/files", {"Content-Type": ctype,
                                                  "Transfer-Encoding": "chunked"}, framed())
    assert resp is not None, f"no answer to a chunked 2 MiB upload ({err!r})\n{d.stderr()}"
    assert resp.status in (413, 400), resp
    assert d.list_files(u) == []
    assert stored_files(d.data_dir) == []
    d.assert_healthy()

    small = os.urandom(900 * 1024)
    f = d.upload_ok(u, "small.bin", small)
    assert d.content(u, f["file_id"]).body == small


# ---------------------------------------------------------------------------------------------
# expiry
# ---------------------------------------------------------------------------------------------
def test_expired_files_vanish_at_once_and_cleanup_deletes_them(make_daemon):
    d = make_daemon(config={"files": {"lifetime_hours": 0.001}})       # 3.6 s
    u = new_user()
    data = os.urandom(4096)
    t0 = time.monotonic()
    f = d.upload_ok(u, "short.bin", data)
    up, exp = parse_time(f["uploaded_at"]), parse_time(f["expires_at"])
    assert (exp - up).total_seconds() == pytest.approx(3.6, abs=0.2), f
    assert d.request("GET", "/v1/status").json()["file_expiration_hours"] == 0.001
    # live now
    assert [x["file_id"] for x in d.list_files(u)] == [f["file_id"]]
    res = d.execute_ok(u, "import os; print(os.listdir('.'))")
    assert res["output"] == "['short.bin']\n", res

    time.sleep(max(0.0, t0 + 4.2 - time.monotonic()))
    fid = f["file_id"]
    assert d.list_files(u) == []
    assert_error(d.request("GET", f"/v1/files/{fid}" + q(user_id=u)), 404, "not_found")
    assert_error(d.content(u, fid), 404, "not_found")
    assert_error(d.execute(u, "print(1)", file_ids=[fid]), 404, "not_found")
    res = d.execute_ok(u, "import os; print(os.listdir('.'))")
    assert res["output"] == "[]\n", res
    # still on disk until the cleanup runs (cleanup.interval_minutes defaults to 60)
    live = d.upload_ok(u, "fresh.bin", b"fresh")
    r = d.request("POST", "/v1/cleanup")
    assert r.status == 200, r
    c = r.json()
    assert c["deleted_files"] >= 1, c
    shas = {sha256(p.read_bytes()) for p in stored_files(d.data_dir)}
    assert sha256(data) not in shas, "cleanup left the expired file's bytes"
    assert sha256(b"fresh") in shas
    assert d.content(u, live["file_id"]).body == b"fresh", "cleanup deleted a live file"
    r = d.request("POST", "/v1/cleanup")
    assert r.status == 200 and r.json()["deleted_files"] == 0, r


def test_never_expiring_files(make_daemon):
    d = make_daemon(env={"CODECELL_FILE_LIFETIME_HOURS": "-1"})
    u = new_user()
    f = d.upload_ok(u, "forever.txt", b"forever")
    assert f["expires_at"] is None, f
    assert d.list_files(u)[0]["expires_at"] is None
    assert d.request("POST", "/v1/cleanup").json()["deleted_files"] == 0
    assert d.content(u, f["file_id"]).body == b"forever"
