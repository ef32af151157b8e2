"""Status, metrics, health, cleanup; user_id validation; oversized bodies."""
import os
import re
import time
from datetime import datetime, timedelta, timezone

import pytest

from .conftest import STATUS_KEYS, assert_error, parse_time, q, sha256, stored_files


# ---------------------------------------------------------------------------------------------
# health, status, cleanup
# ---------------------------------------------------------------------------------------------
def test_healthz(daemon):
    r = daemon.request("GET", "/healthz", key=None)
    assert r.status == 200, r
    assert r.json() == {"status": "ok"}, r


def test_status_has_every_spec_key(daemon, user):
    r = daemon.request("GET", "/v1/status")
    assert r.status == 200, r
    s = r.json()
    missing = STATUS_KEYS - set(s)
    assert not missing, f"/v1/status lacks {sorted(missing)}: {s}"
    assert isinstance(s["venv_exists"], bool), s
    assert isinstance(s["python_path"], str) and s["python_path"], s
    assert isinstance(s["installed_packages"], list), s
    assert isinstance(s["package_count"], int) and s["package_count"] >= 0, s
    assert s["last_cleanup"] is None or parse_time(s["last_cleanup"]), s
    assert isinstance(s["total_user_files"], int), s
    assert isinstance(s["total_file_size_mb"], (int, float)), s
    assert s["file_expiration_hours"] == 48, s
    assert s["max_file_size_mb"] == 50, s
    assert isinstance(s["version"], str) and s["version"], s
    assert isinstance(s["uptime_s"], (int, float)) and s["uptime_s"] >= 0, s
    cores = {os.cpu_count(), len(os.sched_getaffinity(0))}
    assert s["workers"] in {4 * c for c in cores}, (s["workers"], cores)   # default: 4 per core
    assert s["executions"] is not None, s

    # counters move with what happens
    data = os.urandom(3 * 1024 * 1024)
    daemon.upload_ok(user, "three-mib.bin", data)
    time.sleep(1.1)
    s2 = daemon.request("GET", "/v1/status").json()
    assert s2["total_user_files"] == s["total_user_files"] + 1, (s, s2)
    grown = s2["total_file_size_mb"] - s["total_file_size_mb"]
    assert grown == pytest.approx(3.0, abs=0.06) or grown == pytest.approx(3.146, abs=0.06), \
        (s["total_file_size_mb"], s2["total_file_size_mb"])
    assert s2["uptime_s"] >= s["uptime_s"] + 1, (s["uptime_s"], s2["uptime_s"])


def test_cleanup_endpoint_shape_and_last_cleanup(daemon, user):
    keep = daemon.upload_ok(user, "keep.txt", b"live file")
    before = datetime.now(timezone.utc) - timedelta(seconds=2)
    r = daemon.request("POST", "/v1/cleanup")
    assert r.status == 200, r
    c = r.json()
    assert set(c) >= {"deleted_files", "venv_recreated", "timestamp"}, c
    assert isinstance(c["deleted_files"], int) and c["deleted_files"] >= 0, c
    assert c["venv_recreated"] is False, c
    ts = parse_time(c["timestamp"])
    assert ts >= before, c
    s = daemon.request("GET", "/v1/status").json()
    assert s["last_cleanup"] is not None and parse_time(s["last_cleanup"]) >= before, s
    # a live file survives a cleanup
    assert daemon.content(user, keep["file_id"]).body == b"live file"


# ---------------------------------------------------------------------------------------------
# metrics
# ---------------------------------------------------------------------------------------------
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+-?\d+)?$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text: str):
    """({(name, frozenset(labels)): value}, {name: type})."""
    samples, types = {}, {}
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 4 and parts[1] == "TYPE":
                types[parts[2]] = parts[3].strip()
            continue
        m = SAMPLE.match(line)
        assert m, f"not a Prometheus sample line: {line!r}"
        labels = frozenset(LABEL.findall(m.group(3) or ""))
        v = m.group(4)
        value = float(v.replace("+Inf", "inf").replace("-Inf", "-inf").replace("NaN", "nan"))
        samples[(m.group(1), labels)] = value
    return samples, types


def scrape(daemon):
    r = daemon.request("GET", "/metrics")
    assert r.status == 200, r
    assert r.headers.get("content-type", "").startswith("text/plain"), r.headers
    return parse_metrics(r.body.decode())


def grew(before, after, name_pred, label_pred=lambda labels: True):
    """{(name, labels): delta} for the matching samples that changed."""
    out = {}
    for key, v in after.items():
        name, labels = key
        if name_pred(name) and label_pred(dict(labels)):
            d = v - before.get(key, 0.0)
            if d:
                out[key] = d
    return out


def test_metrics_prometheus_text(daemon, user):
    s0, types = scrape(daemon)
    assert s0, "no samples at all"
    bad = sorted({n for n, _ in s0 if not n.startswith("codecell_")})
    assert not bad, f"metric names without the codecell_ prefix: {bad}"
    queue = [k for k in s0 if "queue" in k[0]]
    assert queue, f"no queue depth metric: {sorted({n for n, _ in s0})}"
    assert any(s0[k] == 0 for k in queue), \
        f"no queue depth of 0 while idle: {[(k, s0[k]) for k in queue]}"

    data = os.urandom(12345)
    daemon.upload_ok(user, "m.bin", data)
    daemon.execute_ok(user, "print(1)")
    r = daemon.execute(user, "raise SystemExit(3)")
    assert r.status == 200 and r.json()["status"] == "error", r
    assert daemon.request("POST", "/v1/cleanup").status == 200
    s1, types = scrape(daemon)

    def stored(n):
        return n.startswith("codecell_") and not any(
            w in n for w in ("upload", "cleanup", "delete", "evict", "expired", "generated",
                             "execution", "request", "http"))

    uploads = grew(s0, s1, lambda n: "upload" in n and not n.endswith(("_bucket", "_sum")))
    assert any(d == 1 for d in uploads.values()), f"no uploads counter grew by 1: {uploads}"
    files = grew(s0, s1, lambda n: stored(n) and "file" in n and "byte" not in n)
    assert any(d == 1 for d in files.values()), f"no stored-files gauge grew by 1: {files}"
    nbytes = grew(s0, s1, lambda n: stored(n) and "byte" in n)
    assert any(d == len(data) for d in nbytes.values()), \
        f"no stored-bytes gauge grew by {len(data)}: {nbytes}"
    cleanups = grew(s0, s1, lambda n: "cleanup" in n and not n.endswith(("_bucket", "_sum")))
    assert any(d >= 1 for d in cleanups.values()), f"no cleanup-runs counter grew: {cleanups}"

    ok = grew(s0, s1, lambda n: "execution" in n and not n.endswith(("_bucket", "_sum", "_count")),
              lambda lb: lb.get("status") == "ok")
    assert any(d == 1 for d in ok.values()), f"no executions{{status=\"ok\"}} grew by 1: {ok}"
    err = grew(s0, s1, lambda n: "execution" in n and not n.endswith(("_bucket", "_sum", "_count")),
               lambda lb: lb.get("status") == "error")
    assert any(d == 1 for d in err.values()), f"no executions{{status=\"error\"}} grew by 1: {err}"

    hists = [n for n, t in types.items() if t == "histogram" and n.startswith("codecell_")
             and ("execution" in n or "duration" in n)]
    assert hists, f"no execution duration histogram among {types}"
    for h in hists:
        counts = grew(s0, s1, lambda n: n == h + "_count")
        if sum(counts.values()) >= 2:
            inf = [k for k in s1 if k[0] == h + "_bucket" and ("le", "+Inf") in k[1]]
            assert inf, f"{h} has no le=\"+Inf\" bucket"
            assert (h + "_sum", frozenset()) in s1 or any(k[0] == h + "_sum" for k in s1)
            break
    else:
        pytest.fail(f"no duration histogram counted the 2 executions: {hists}")


# ---------------------------------------------------------------------------------------------
# user_id validation
# ---------------------------------------------------------------------------------------------
BAD_USERS = ["", "x" * 129, "../x", "a b", "a/b", "ü", "tab\tid"]
GOOD_USERS = ["x" * 128, "123456789012345678", "A.b_c:d-e"]


@pytest.mark.parametrize("bad", BAD_USERS, ids=["empty", "129", "dotdot", "space", "slash",
                                                "non-ascii", "tab"])
def test_invalid_user_id_is_400_everywhere(daemon, bad):
    data = os.urandom(32)
    assert_error(daemon.upload(bad, "a.txt", data), 400, "bad_request")
    assert_error(daemon.request("GET", "/v1/files" + q(user_id=bad)), 400, "bad_request")
    assert_error(daemon.request("GET", "/v1/files/abcdefabcdefabcdef" + q(user_id=bad)), 400,
                 "bad_request")
    assert_error(daemon.request("GET", "/v1/files/abcdefabcdefabcdef/content" + q(user_id=bad)),
                 400, "bad_request")
    assert_error(daemon.request("DELETE", "/v1/files/abcdefabcdefabcdef" + q(user_id=bad)), 400,
                 "bad_request")
    assert_error(daemon.request("DELETE", "/v1/files" + q(user_id=bad)), 400, "bad_request")
    assert_error(daemon.execute(bad, "print(1)"), 400, "bad_request")
    # nothing was stored for it
    assert sha256(data) not in {sha256(p.read_bytes()) for p in stored_files(daemon.data_dir)}


@pytest.mark.parametrize("good", GOOD_USERS, ids=["128", "discord", "punct"])
def test_valid_user_ids_are_accepted(daemon, good):
    f = daemon.upload_ok(good, "a.txt", b"ok")
    assert f["user_id"] == good
    assert [x["file_id"] for x in daemon.list_files(good)] == [f["file_id"]]
    assert daemon.execute_ok(good, "print(2)", file_ids=[f["file_id"]])["output"] == "2\n"
    r = daemon.request("DELETE", "/v1/files" + q(user_id=good))
    assert r.status == 200 and r.json() == {"deleted_count": 1}, r


# ---------------------------------------------------------------------------------------------
# 100 MB bodies
# ---------------------------------------------------------------------------------------------
HUNDRED_MB = 100 * 1024 * 1024
CHUNK = b"A" * (1024 * 1024)


def chunks(total, first=b"", last=b""):
    yield first
    sent = 0
    while sent < total:
        n = min(len(CHUNK), total - sent)
        yield CHUNK[:n]
        sent += n
    yield last


def test_100mb_json_body_is_refused_quickly(daemon, user):
    head = b'{"user_id": "' + user.encode() + b'", "code": "#'
    tail = b'"}'
    total = len(head) + HUNDRED_MB + len(tail)
    t0 = time.monotonic()
    resp, sent, err = daemon.raw("POST", "/v1/executions",
                                 {"Content-Type": "application/json", "Content-Length": total},
                                 chunks(HUNDRED_MB, head, tail))
    took = time.monotonic() - t0
    assert resp is not None, (f"no HTTP answer to a 100 MB JSON body (sent {sent} bytes; {err!r})"
                              f"\n{daemon.stderr()}")
    assert resp.status in (413, 400), resp
    assert_error(resp, resp.status, "too_large" if resp.status == 413 else "bad_request")
    assert took < 20, f"took {took:.1f}s to refuse"
    daemon.assert_healthy("after a 100 MB JSON body")
    assert daemon.execute_ok(user, "print('still fine')")["output"] == "still fine\n"


def test_100mb_upload_is_refused_quickly_and_nothing_stored(daemon, user):
    boundary = "----codecellbig"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"user_id\"\r\n\r\n{user}\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.bin\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    total = len(head) + HUNDRED_MB + len(tail)
    before = len(stored_files(daemon.data_dir))
    t0 = time.monotonic()
    resp, sent, err = daemon.raw("POST", "/v1/files",
                                 {"Content-Type": f"multipart/form-data; boundary={boundary}",
                                  "Content-Length": total},
                                 chunks(HUNDRED_MB, head, tail))
    took = time.monotonic() - t0
    assert resp is not None, (f"no HTTP answer to a 100 MB upload (sent {sent} bytes; {err!r})"
                              f"\n{daemon.stderr()}")
    assert resp.status in (413, 400), resp
    assert_error(resp, resp.status, "too_large" if resp.status == 413 else "bad_request")
    assert took < 20, f"took {took:.1f}s to refuse"
    daemon.assert_healthy("after a 100 MB upload")
    assert daemon.list_files(user) == []
    assert len(stored_files(daemon.data_dir)) == before
    tmp = daemon.data_dir / "files" / "tmp"
    time.sleep(0.5)
    leftovers = [p for p in tmp.rglob("*") if p.is_file()] if tmp.is_dir() else []
    assert not leftovers, f"temporary upload bytes left behind: {leftovers}"


# ---------------------------------------------------------------------------------------------
# logs
# ---------------------------------------------------------------------------------------------
def test_logs_are_json_lines_without_code_or_file_contents(make_daemon):
    import json
    d = make_daemon(name="logs")
    u = "loguser-" + os.urandom(4).hex()
    code_marker = "CODEMARK" + os.urandom(8).hex()
    file_marker = b"FILEMARK" + os.urandom(8).hex().encode()
    out_marker = "OUTMARK" + os.urandom(8).hex()
    f = d.upload_ok(u, "secret.txt", file_marker)
    assert d.content(u, f["file_id"]).body == file_marker
    res = d.execute_ok(u, f"x = {code_marker!r}\nprint({out_marker!r})")
    assert res["output"] == out_marker + "\n"
    d.stop()
    text = d.stderr_path.read_text(errors="replace")
    for marker in (code_marker, file_marker.decode(), out_marker):
        assert marker not in text, f"the log contains {marker[:8]}...:\n{text[-3000:]}"
    lines = [ln for ln in text.splitlines() if ln.strip()]
    events = []
    for ln in lines:
        try:
            events.append(json.loads(ln))
        except ValueError:
            raise AssertionError(f"a log line is not JSON: {ln[:300]!r}")
    reqs = [e for e in events if isinstance(e, dict) and e.get("event") == "request"]
    execs = [e for e in events if isinstance(e, dict) and e.get("event") == "execution"]
    # /healthz polls + upload + content + execution
    assert len([e for e in reqs if e.get("path", "").startswith("/v1/")]) == 3, reqs
    assert len(execs) == 1, execs
