"""Many clients at once: uploads, executions, the queue and the per-user limit."""
import collections
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from .conftest import assert_error, new_user, sha256


def test_100_concurrent_uploads_from_10_users(daemon):
    users = [new_user("conc") for _ in range(10)]
    jobs = [(u, f"file-{i:02d}.bin", os.urandom(20_000 + 997 * i)) for u in users for i in range(10)]
    barrier = threading.Barrier(len(jobs))

    def one(job):
        u, name, data = job
        barrier.wait(30)
        return daemon.upload(u, name, data)

    with ThreadPoolExecutor(len(jobs)) as pool:
        results = list(pool.map(one, jobs))
    bad = [(j[0], j[1], r) for j, r in zip(jobs, results) if r.status != 201]
    assert not bad, f"{len(bad)} uploads did not answer 201: {bad[:5]}"
    ids = [r.json()["file_id"] for r in results]
    assert len(set(ids)) == 100, "duplicate file ids"
    for u in users:
        expected = sorted((name, sha256(data)) for uu, name, data in jobs if uu == u)
        listed = daemon.list_files(u)
        got = sorted((f["filename"], f["sha256"]) for f in listed)
        assert got == expected, f"user {u}: listed {got} != uploaded {expected}"
        assert len({f["file_id"] for f in listed}) == 10
    # every byte came through
    for (u, name, data), r in list(zip(jobs, results))[::7]:
        assert daemon.content(u, r.json()["file_id"]).body == data


def test_100_executions_from_20_concurrent_clients(make_daemon):
    d = make_daemon(config={"executions": {"queue": 200}})
    clients = [new_user("exec") for _ in range(20)]
    outcomes = collections.Counter()
    problems = []
    ids = []
    lock = threading.Lock()
    barrier = threading.Barrier(len(clients))

    def client(u):
        barrier.wait(30)
        for i in range(5):
            token = f"{u}:{i}"
            r = d.execute(u, f"print({token!r})", timeout=60)
            with lock:
                if r.status == 200:
                    res = r.json()
                    if res.get("status") != "ok" or res.get("output") != token + "\n":
                        problems.append((token, res))
                    outcomes["ok"] += 1
                    ids.append(res.get("execution_id"))
                elif r.status == 429:
                    try:
                        assert_error(r, 429, "rate_limited")
                    except AssertionError as e:
                        problems.append((token, str(e)))
                    outcomes["429"] += 1
                else:
                    problems.append((token, r))
                    outcomes[str(r.status)] += 1

    t0 = time.monotonic()
    with ThreadPoolExecutor(len(clients)) as pool:
        list(pool.map(client, clients))
    took = time.monotonic() - t0
    print(f"100 executions from 20 clients: {dict(outcomes)} in {took:.1f}s")
    assert not problems, f"{len(problems)} bad answers ({dict(outcomes)}): {problems[:5]}"
    assert outcomes["ok"] + outcomes["429"] == 100, outcomes
    assert outcomes["ok"] >= 1, outcomes
    assert len(set(ids)) == len(ids), "duplicate execution ids"
    d.assert_healthy("after 100 executions")


def test_full_pool_and_queue_answer_429_with_retry_after(make_daemon):
    d = make_daemon(config={"executions": {"workers": 1, "queue": 1}})
    users = [new_user("q") for _ in range(5)]
    barrier = threading.Barrier(len(users))

    def one(u):
        barrier.wait(30)
        return d.execute(u, "import time; time.sleep(2); print('done')", timeout=30)

    with ThreadPoolExecutor(len(users)) as pool:
        results = list(pool.map(one, users))
    statuses = sorted(r.status for r in results)
    assert set(statuses) <= {200, 429}, results
    assert statuses.count(200) >= 1 and statuses.count(429) >= 1, statuses
    assert statuses.count(200) <= 3, f"1 worker + queue of 1 took {statuses.count(200)} of 5 at once"
    for r in results:
        if r.status == 429:
            assert_error(r, 429, "rate_limited")
        else:
            assert r.json()["output"] == "done\n", r
    s = d.request("GET", "/v1/status").json()
    assert s["workers"] == 1, s


def test_per_user_limit_of_1(make_daemon):
    d = make_daemon(config={"executions": {"per_user": 1, "workers": 2, "queue": 8}})
    u, other = new_user(), new_user()
    barrier = threading.Barrier(2)

    def one(_):
        barrier.wait(30)
        return d.execute(u, "import time; time.sleep(3); print('slept')", timeout=30)

    with ThreadPoolExecutor(2) as pool:
        fut = pool.map(one, range(2))
        time.sleep(1.0)
        # another user is not held up by u's limit
        r = d.execute(other, "print('other')", timeout=30)
        assert r.status == 200 and r.json()["output"] == "other\n", r
        results = list(fut)
    statuses = sorted(r.status for r in results)
    assert statuses == [200, 429], results
    for r in results:
        if r.status == 429:
            assert_error(r, 429, "rate_limited")
        else:
            assert r.json()["output"] == "slept\n", r
    # once it finished, the user may run again
    assert d.execute_ok(u, "print('again')")["output"] == "again\n"
