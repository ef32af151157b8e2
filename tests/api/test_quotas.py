"""Per-user caps that never stall a conversation (issue 18): by default the oldest *generated*
files make room for new ones and are listed as evicted (execution result, tool message, upload
answer); uploads are never evicted by default; `reject` and `evict_oldest` stay available;
two executions of one user at once keep the caps exact; sparse outputs are stored sparse."""
import os
import threading
import time

from .conftest import assert_error, new_user, q, sha256, stored_files
from .test_tools import call, tool

# Nine "plots" per execution: PNG bytes, distinct per run (no file_ids: every live file is an
# input, copied to /mnt/data, and so may be evicted while the code runs).
NINE_PLOTS = r"""
import os
names = sorted(os.listdir('/mnt/data'))
print('inputs', len(names), 'sales.csv' in names)
for i in range(1, 10):
    with open(f'/mnt/data/run{RUN}_plot_{i}.png', 'wb') as f:
        f.write(b'\x89PNG\r\n\x1a\n' + b'run{RUN} plot %d ' % i * 100)
"""


def plots(run: int) -> str:
    return NINE_PLOTS.replace("{RUN}", str(run))


def names(files):
    return [f["filename"] for f in files]


def test_27_plots_with_the_defaults(daemon):
    u = new_user()
    sales = daemon.upload_ok(u, "sales.csv", b"region,amount\nnorth,1\n")
    assert sales["evicted_files"] == [], sales
    results = []
    for run in (1, 2, 3):
        res = daemon.execute_ok(u, plots(run))
        assert names(res["generated_files"]) == [f"run{run}_plot_{i}.png" for i in range(1, 10)], \
            res
        assert res["skipped_files"] == [], res
        assert "True" in res["output"], res["output"]  # the upload is an input of every run
        listed = daemon.list_files(u)
        assert len(listed) <= 20, names(listed)
        results.append(res)
    assert results[0]["evicted_files"] == [] and results[1]["evicted_files"] == [], results[1]
    # 1 + 9 + 9 = 19 files, then 9 more: 8 of the oldest plots make room, never the upload.
    # (Plots stored in one millisecond are ordered by file_id: which 8 of run 1 is not fixed.)
    evicted = results[2]["evicted_files"]
    run1 = {f["file_id"]: f["filename"] for f in results[0]["generated_files"]}
    assert len(evicted) == 8 and all(run1.get(e["file_id"]) == e["filename"] for e in evicted), \
        evicted
    assert all(e["source"] == "generated" for e in evicted), evicted
    listed = daemon.list_files(u)
    assert len(listed) == 20, names(listed)
    assert names(listed)[0] == "sales.csv"
    assert {f["file_id"] for f in listed} == (
        {sales["file_id"]} | (set(run1) - {e["file_id"] for e in evicted})
        | {f["file_id"] for r in results[1:] for f in r["generated_files"]})
    for e in evicted:
        assert_error(daemon.content(u, e["file_id"]), 404, "not_found")
    assert daemon.content(u, sales["file_id"]).body == b"region,amount\nnorth,1\n"

    # The tool message says what is gone, so that the model does not offer it.
    out = tool(daemon, u, call("execute_python_code", {"code": plots(4)}))
    content = out["message"]["content"]
    assert "Removed to make room" in content, content
    after = daemon.list_files(u)
    assert len(after) == 20 and after[0]["filename"] == "sales.csv", names(after)
    gone = {f["filename"] for f in listed} - {f["filename"] for f in after}
    assert len(gone) == 9 and not any(n.startswith("run3") for n in gone), gone
    removed = content.split("Removed to make room")[1]
    for name in gone:
        assert name in removed, content


def test_an_upload_evicts_generated_files_but_never_an_upload(make_daemon):
    d = make_daemon(config={"files": {"max_files_per_user": 3}})
    u = new_user()
    first = d.upload_ok(u, "first.csv", b"1")
    # Two executions, so that out_a is older than out_b: files stored in the same millisecond have
    # no defined order (the store breaks the tie by file_id, which is random).
    for n in "ab":
        res = d.execute_ok(u, f"open('/mnt/data/out_{n}.txt', 'w').write('{n}')")
        assert names(res["generated_files"]) == [f"out_{n}.txt"], res
        time.sleep(0.01)
    second = d.upload_ok(u, "second.csv", b"2")
    assert [(e["filename"], e["source"]) for e in second["evicted_files"]] == \
        [("out_a.txt", "generated")], second
    third = d.upload_ok(u, "third.csv", b"3")
    assert names(third["evicted_files"]) == ["out_b.txt"], third
    # Only uploads left: the fourth is refused (429), nothing is evicted for it.
    msg = assert_error(d.upload(u, "fourth.csv", b"4"), 429, "rate_limited")
    assert "uploads are never evicted" in msg, msg
    assert names(d.list_files(u)) == ["first.csv", "second.csv", "third.csv"]
    # An execution's outputs are skipped, with the reason, and the uploads stay.
    res = d.execute_ok(u, "open('/mnt/data/late.txt', 'w').write('x')")
    assert res["generated_files"] == [] and res["evicted_files"] == [], res
    assert names(res["skipped_files"]) == ["late.txt"], res
    assert "uploads are never evicted" in res["skipped_files"][0]["reason"], res
    assert d.content(u, first["file_id"]).body == b"1"
    shas = {sha256(p.read_bytes()) for p in stored_files(d.data_dir)}
    assert sha256(b"a") not in shas and sha256(b"b") not in shas, "evicted bytes are still stored"


def test_one_execution_never_evicts_its_own_outputs(make_daemon):
    d = make_daemon(config={"files": {"max_files_per_user": 4}})
    u = new_user()
    res = d.execute_ok(u, "for i in range(6): open(f'/mnt/data/f{i}.txt', 'w').write(str(i))")
    assert names(res["generated_files"]) == [f"f{i}.txt" for i in range(4)], res
    assert names(res["skipped_files"]) == ["f4.txt", "f5.txt"], res
    assert res["evicted_files"] == [], res
    # sorted: files stored in the same millisecond are listed in no defined order (by file_id)
    assert sorted(names(d.list_files(u))) == [f"f{i}.txt" for i in range(4)]


def test_reject_and_evict_oldest_stay_available(make_daemon):
    d = make_daemon(config={"files": {"max_files_per_user": 2, "over_quota": "reject"}})
    u = new_user()
    d.upload_ok(u, "up.csv", b"u")
    d.execute_ok(u, "open('/mnt/data/g.txt', 'w').write('g')")
    assert_error(d.upload(u, "more.csv", b"m"), 429, "rate_limited")
    res = d.execute_ok(u, "open('/mnt/data/h.txt', 'w').write('h')")
    assert names(res["skipped_files"]) == ["h.txt"] and res["evicted_files"] == [], res
    d.stop()

    d = make_daemon(config={"files": {"max_files_per_user": 2, "over_quota": "evict_oldest"}})
    u = new_user()
    d.upload_ok(u, "up.csv", b"u")
    time.sleep(0.01)
    d.execute_ok(u, "open('/mnt/data/g.txt', 'w').write('g')")
    time.sleep(0.01)
    r = d.upload_ok(u, "more.csv", b"m")
    assert [(e["filename"], e["source"]) for e in r["evicted_files"]] == [("up.csv", "upload")], r


def test_two_executions_of_one_user_at_once_keep_the_caps_exact(make_daemon):
    d = make_daemon(config={"files": {"max_files_per_user": 10},
                            "executions": {"workers": 2, "per_user": 2}})
    u = new_user()
    d.upload_ok(u, "sales.csv", b"x")
    code = ("import uuid\n"
            "for i in range(4): open(f'/mnt/data/{uuid.uuid4().hex}.txt', 'w').write(str(i))")
    results, errors, over = [], [], []
    stop = threading.Event()

    def run():
        try:
            for _ in range(4):
                results.append(d.execute_ok(u, code))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    def watch():
        while not stop.is_set():
            n = len(d.list_files(u))
            if n > 10:
                over.append(n)
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    runners = [threading.Thread(target=run) for _ in range(2)]
    for t in runners:
        t.start()
    for t in runners:
        t.join()
    stop.set()
    watcher.join()
    assert not errors, errors
    assert not over, over
    assert len(results) == 8
    for res in results:
        assert len(res["generated_files"]) == 4 and res["skipped_files"] == [], res
    listed = d.list_files(u)
    assert len(listed) == 10 and listed[0]["filename"] == "sales.csv", names(listed)
    assert len(stored_files(d.data_dir)) == 10
    # Everything evicted was reported exactly once, and nothing reported is still listed.
    evicted = [e["file_id"] for r in results for e in r["evicted_files"]]
    assert len(evicted) == len(set(evicted)) == 8 * 4 + 1 - 10, evicted
    assert not set(evicted) & {f["file_id"] for f in listed}


def test_a_sparse_output_is_stored_sparse(daemon):
    u = new_user()
    res = daemon.execute_ok(u, "f = open('/mnt/data/sparse.bin', 'wb')\n"
                               "f.write(b'head'); f.seek(45 * 2**20 - 4); f.write(b'tail')\n"
                               "f.close()")
    [g] = res["generated_files"]
    assert g["size"] == 45 << 20, g
    obj = daemon.json("GET", f"/v1/files/{g['file_id']}" + q(user_id=u)).json()
    [path] = [p for p in stored_files(daemon.data_dir) if p.name == g["file_id"]]
    st = os.stat(path)
    assert st.st_size == 45 << 20 and obj["file_size"] == 45 << 20
    assert st.st_blocks * 512 < 1 << 20, f"stored with {st.st_blocks * 512} bytes on disk"
    body = daemon.content(u, g["file_id"]).body
    assert body[:4] == b"head" and body[-4:] == b"tail" and len(body) == 45 << 20
