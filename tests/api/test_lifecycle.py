"""Graceful shutdown (SIGTERM) and crash recovery (SIGKILL) on the same data dir."""
import collections
import os
import random
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from .conftest import new_user, sha256, stored_files


def test_sigterm_kills_running_execution_after_grace_and_exits_0(make_daemon):
    d = make_daemon(config={"shutdown": {"grace_seconds": 1}})
    u = new_user()
    kept = d.upload_ok(u, "kept.txt", b"survives a restart")
    box = {}

    def run():
        try:
            box["resp"] = d.execute(u, "import time\nprint('started', flush=True)\n"
                                       "time.sleep(30)\nprint('never')", timeout=60)
        except Exception as e:       # the connection closed: acceptable
            box["exc"] = e

    t = threading.Thread(target=run)
    t.start()
    time.sleep(2.0)                  # the sandbox is up and sleeping
    assert t.is_alive(), f"the execution ended early: {box}"
    t0 = time.monotonic()
    d.signal(signal.SIGTERM)
    try:
        rc = d.proc.wait(15)
    except Exception:
        d.kill()
        raise AssertionError(f"the daemon did not exit within 15 s of SIGTERM\n{d.stderr()}")
    took = time.monotonic() - t0
    t.join(20)
    assert not t.is_alive(), "the client is still waiting after the daemon exited"
    assert rc == 0, f"exit code {rc}\n{d.stderr()}"
    assert took < 8, f"exit took {took:.1f}s with grace_seconds = 1"
    print(f"SIGTERM: exit {rc} after {took:.1f}s; client got "
          f"{box['resp'].body[:200] if 'resp' in box else repr(box.get('exc'))}")
    if "resp" in box:
        r = box["resp"]
        assert r.status == 200, r
        res = r.json()
        assert res["status"] == "killed" and res["success"] is False, res
        assert "never" not in res["output"], res
    else:
        assert "exc" in box, box           # the connection closed without an answer
    # nothing stored is lost
    d.start()
    assert d.content(u, kept["file_id"]).body == b"survives a restart"


def test_sigkill_during_uploads_and_executions_leaves_a_consistent_store(make_daemon):
    d = make_daemon(name="crash")
    users = [new_user("crash") for _ in range(4)]
    rng = random.Random(1234)
    # committed before the crash: must all survive
    before = {}
    for i, u in enumerate(users):
        data = os.urandom(50_000 + i)
        before[d.upload_ok(u, f"before-{i}.bin", data)["file_id"]] = (u, data)

    sent = {}                  # (user, name) -> data, for every upload started
    answered = {}              # file_id -> (user, data) for every 201 received before the kill
    lock = threading.Lock()
    stop_at = time.monotonic() + 0.9

    def slow_upload(k):
        u = users[k % len(users)]
        name = f"up-{k:02d}.bin"
        data = os.urandom(rng.choice((256 * 1024, 1024 * 1024, 3 * 1024 * 1024)))
        with lock:
            sent[(u, name)] = data
        time.sleep(0.04 * k)
        boundary = "----crash" + os.urandom(6).hex()
        head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"user_id\"\r\n\r\n{u}\r\n"
                f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
                f"filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n").encode()
        tail = f"\r\n--{boundary}--\r\n".encode()

        def pieces():
            yield head
            for i in range(0, len(data), 128 * 1024):
                yield data[i:i + 128 * 1024]
                time.sleep(0.03)
            yield tail

        try:
            resp, _, _ = d.raw("POST", "/v1/files",
                               {"Content-Type": f"multipart/form-data; boundary={boundary}",
                                "Content-Length": len(head) + len(data) + len(tail)}, pieces(),
                               timeout=30)
        except OSError:
            return
        if resp is not None and resp.status == 201:
            with lock:
                answered[resp.json()["file_id"]] = (u, data)

    exec_results = []

    def execution(k):
        u = users[k]
        code = ("import os, time\n"
                f"for i in range(8):\n"
                f"    open(f'gen-{k}-{{i}}.bin', 'wb').write(os.urandom(200000))\n"
                f"    time.sleep(0.1 * {k})\n")
        try:
            r = d.execute(u, code, timeout=30)
            exec_results.append(r)
        except OSError:
            pass

    with ThreadPoolExecutor(24) as pool:
        futs = [pool.submit(slow_upload, k) for k in range(20)]
        futs += [pool.submit(execution, k) for k in range(3)]
        time.sleep(max(0.0, stop_at - time.monotonic()))
        d.signal(signal.SIGKILL)
        d.proc.wait(10)
        for f in futs:
            f.result(60)
    print(f"before the kill: {len(answered)} of 20 uploads answered 201, "
          f"{len(exec_results)} of 3 executions answered")

    d.start()                                   # same data dir, new port
    records = []
    for u in users:
        records += d.list_files(u)
    by_id = {r["file_id"]: r for r in records}
    assert len(by_id) == len(records), "duplicate records after the restart"

    # every record's bytes are there and match
    for rec in records:
        r = d.content(rec["user_id"], rec["file_id"])
        assert r.status == 200, f"record without content after a crash: {rec} -> {r!r}"
        assert len(r.body) == rec["file_size"] and sha256(r.body) == rec["sha256"], rec
        if rec["filename"].startswith("up-"):
            assert r.body == sent[(rec["user_id"], rec["filename"])], \
                f"stored bytes differ from the upload: {rec}"
    # nothing acknowledged is lost
    for fid, (u, data) in list(before.items()) + list(answered.items()):
        assert fid in by_id, f"a file acknowledged with 201 before the crash is gone: {fid}"
    for r in exec_results:
        if r.status == 200:
            for g in r.json()["generated_files"]:
                assert g["file_id"] in by_id, f"a generated file returned before the crash is gone: {g}"

    # every file under <data_dir>/files has its record (no orphans), and none is counted twice
    on_disk = collections.Counter(sha256(p.read_bytes()) for p in stored_files(d.data_dir))
    in_db = collections.Counter(rec["sha256"] for rec in records)
    orphans = on_disk - in_db
    missing = in_db - on_disk
    assert not orphans, (f"{sum(orphans.values())} files under {d.data_dir}/files without a record: "
                         f"{[str(p) for p in stored_files(d.data_dir) if sha256(p.read_bytes()) in orphans][:10]}")
    assert not missing, f"records whose bytes are not under files/: {missing}"
    # and the daemon works normally afterwards
    u = users[0]
    f = d.upload_ok(u, "after.txt", b"after the crash")
    assert d.content(u, f["file_id"]).body == b"after the crash"
    assert d.execute_ok(u, "print('ok')", file_ids=[f["file_id"]])["output"] == "ok\n"
