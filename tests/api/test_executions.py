"""POST /v1/executions: results, the files the code sees, generated files, bad input."""
import json
import secrets
import sqlite3
from datetime import datetime, timezone

import pytest

from .conftest import (GENERATED_KEYS, RESULT_KEYS, assert_error, assert_file_object, new_dir,
                       new_user, parse_time, q, sha256)

LIST_CODE = "import os, json; print(json.dumps(sorted(os.listdir('/mnt/data'))))"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_result_shape(res: dict):
    missing = RESULT_KEYS - set(res)
    assert not missing, f"execution result lacks {sorted(missing)}: {res}"
    assert isinstance(res["execution_id"], str) and res["execution_id"], res
    assert res["status"] in ("ok", "error", "timeout", "oom", "killed"), res
    assert res["success"] is (res["status"] == "ok" and res["return_code"] == 0), res
    assert isinstance(res["output"], str) and isinstance(res["error"], str), res
    assert isinstance(res["return_code"], int), res
    assert isinstance(res["execution_time"], (int, float)) and res["execution_time"] >= 0, res
    assert set(res["truncated"]) >= {"output", "error"}, res
    assert isinstance(res["generated_files"], list), res
    for g in res["generated_files"]:
        assert GENERATED_KEYS <= set(g), g
        assert "path" not in g, f"the HTTP result must not expose host paths: {g}"
    assert isinstance(res["installed_packages"], list) and isinstance(res["failed_packages"], list)
    assert {"cpu_time", "peak_memory_bytes"} <= set(res["resources"]), res


def test_simple_execution(daemon, user):
    r = daemon.execute(user, "print(6 * 7)")
    assert r.status == 200, r
    assert r.headers.get("content-type", "").startswith("application/json"), r.headers
    res = r.json()
    assert_result_shape(res)
    assert res["status"] == "ok" and res["success"] is True and res["return_code"] == 0, res
    assert res["output"] == "42\n", res
    assert res["generated_files"] == [], res
    assert res["truncated"] == {"output": False, "error": False, "outputs": False}, res


def test_execution_error_is_a_result(daemon, user):
    r = daemon.execute(user, "x = 1\nraise ValueError('boom')\n")
    assert r.status == 200, r
    res = r.json()
    assert_result_shape(res)
    assert res["status"] == "error" and res["success"] is False and res["return_code"] != 0, res
    assert "ValueError: boom" in res["error"], res
    assert "line 2" in res["error"], res["error"]


def test_execution_timeout_from_request(daemon, user):
    res = daemon.execute(user, "import time\nprint('start', flush=True)\ntime.sleep(30)",
                         timeout=1).json()
    assert_result_shape(res)
    assert res["status"] == "timeout" and res["success"] is False, res
    assert res["output"] == "start\n", res
    assert res["execution_time"] < 10, res


def test_timeout_and_memory_over_the_maxima_are_400(daemon, user):
    assert_error(daemon.execute(user, "print(1)", timeout=301), 400, "bad_request")
    assert_error(daemon.execute(user, "print(1)", memory_mb=4097), 400, "bad_request")
    # at the maxima is fine
    res = daemon.execute_ok(user, "print(1)", timeout=300, memory_mb=4096)
    assert res["output"] == "1\n"


def test_all_live_files_appear_when_file_ids_absent(daemon, user):
    other = new_user()
    daemon.upload_ok(other, "foreign.txt", b"not mine")
    blobs = {"a.txt": b"alpha\n", "b.csv": b"x,y\n1,2\n", "c.json": b'{"k": 3}',
             "gone.txt": b"deleted before the run"}
    objs = {name: daemon.upload_ok(user, name, data) for name, data in blobs.items()}
    r = daemon.request("DELETE", f"/v1/files/{objs['gone.txt']['file_id']}" + q(user_id=user))
    assert r.status == 204, r
    code = ("import os, json, hashlib\n"
            "names = sorted(os.listdir('/mnt/data'))\n"
            "print(json.dumps({'names': names, 'sha': {n: hashlib.sha256(open(n, 'rb').read())"
            ".hexdigest() for n in names}, 'FILES': sorted(FILES)}))\n")
    res = daemon.execute_ok(user, code)
    out = json.loads(res["output"])
    assert out["names"] == ["a.txt", "b.csv", "c.json"], out
    for n in out["names"]:
        assert out["sha"][n] == sha256(blobs[n]), n
    assert out["FILES"] == sorted(objs[n]["file_id"] for n in ("a.txt", "b.csv", "c.json")), out
    assert res["generated_files"] == [], res       # reading inputs generates nothing


def test_only_the_chosen_files_appear_with_file_ids(daemon, user):
    a = daemon.upload_ok(user, "a.txt", b"A")
    daemon.upload_ok(user, "b.txt", b"B")
    c = daemon.upload_ok(user, "c.txt", b"C")
    res = daemon.execute_ok(user, LIST_CODE, file_ids=[a["file_id"], c["file_id"]])
    assert json.loads(res["output"]) == ["a.txt", "c.txt"], res["output"]
    res = daemon.execute_ok(user, "print(load_file('c.txt'))", file_ids=[c["file_id"]])
    assert res["output"] == "C\n", res


def test_same_name_files_get_a_suffix(daemon, user):
    daemon.upload_ok(user, "dup.txt", b"first")
    daemon.upload_ok(user, "dup.txt", b"second")
    res = daemon.execute_ok(user, "import os, json\n"
                            "print(json.dumps({n: open(n).read() for n in os.listdir('.')}))")
    got = json.loads(res["output"])
    assert sorted(got) == ["dup (2).txt", "dup.txt"], got
    assert sorted(got.values()) == ["first", "second"], got


def test_pandas_csv_and_matplotlib_png_round_trip(daemon, user):
    csv = b"month,sales\njan,10\nfeb,25\nmar,17\n"
    f = daemon.upload_ok(user, "sales.csv", csv, content_type="text/csv")
    code = (
        "import pandas as pd\n"
        "import matplotlib.pyplot as plt\n"
        "df = pd.read_csv('/mnt/data/sales.csv')\n"
        "print('TOTAL', int(df['sales'].sum()))\n"
        "lf = load_file('sales.csv')\n"
        "print('LOADED', type(lf).__name__, len(lf))\n"
        "df.plot(x='month', y='sales')\n"
        "plt.savefig('plot.png')\n"
    )
    before = datetime.now(timezone.utc)
    res = daemon.execute_ok(user, code, file_ids=[f["file_id"]])
    assert_result_shape(res)
    assert "TOTAL 52" in res["output"] and "LOADED DataFrame 3" in res["output"], res
    gens = res["generated_files"]
    assert [g["filename"] for g in gens] == ["plot.png"], gens
    g = gens[0]
    assert (g["file_type"], g["mime_type"]) == ("image", "image/png"), g
    assert isinstance(g["size"], int) and g["size"] > 100, g
    exp = parse_time(g["expires_at"])
    assert abs((exp - before).total_seconds() - 48 * 3600) < 120, g

    # a new file of the user: listed, gettable, downloadable with PNG magic
    listed = {x["file_id"]: x for x in daemon.list_files(user)}
    assert set(listed) == {f["file_id"], g["file_id"]}, listed
    obj = listed[g["file_id"]]
    assert_file_object(obj, user=user, filename="plot.png")
    assert obj["file_size"] == g["size"], (obj, g)
    r = daemon.content(user, g["file_id"])
    assert r.status == 200, r
    assert r.body.startswith(PNG_MAGIC), r.body[:16]
    assert len(r.body) == g["size"] and sha256(r.body) == obj["sha256"]
    assert r.headers.get("content-type", "").startswith("image/png"), r.headers
    r = daemon.request("GET", f"/v1/files/{g['file_id']}" + q(user_id=user))
    assert r.status == 200 and r.json().get("source") in (None, "generated"), r
    # and usable as an input of the next execution
    res = daemon.execute_ok(user, "print(open('plot.png','rb').read(8))", file_ids=[g["file_id"]])
    assert res["output"].strip() == repr(PNG_MAGIC), res
    # the stored input is unchanged even if the code overwrites its copy
    res = daemon.execute_ok(user, "open('sales.csv','w').write('overwritten')",
                            file_ids=[f["file_id"]])
    assert daemon.content(user, f["file_id"]).body == csv


def test_a_file_written_or_touched_with_the_same_bytes_is_generated(daemon, user):
    """A model that saves the same deterministic chart twice gets it back twice: what the code
    wrote or touched under /mnt/data is a generated file, whatever its bytes."""
    m = daemon.upload_ok(user, "m.txt", b"same")
    t = daemon.upload_ok(user, "t.txt", b"touch me")
    res = daemon.execute_ok(user, "open('m.txt', 'w').write('same')\n"
                            "import os; os.utime('t.txt')\n", file_ids=[m["file_id"], t["file_id"]])
    gens = {g["filename"]: g for g in res["generated_files"]}
    assert set(gens) == {"m.txt", "t.txt"}, res["generated_files"]
    assert daemon.content(user, gens["m.txt"]["file_id"]).body == b"same"
    assert daemon.content(user, gens["t.txt"]["file_id"]).body == b"touch me"
    # the twin: inputs only read, opened for writing without a write, or queried through sqlite3
    # (which opens its database read-write) are not outputs
    db_path = new_dir("sqlite") / "twin.sqlite"
    with sqlite3.connect(db_path) as db:
        db.execute("create table t (x)")
        db.execute("insert into t values (7)")
    s = daemon.upload_ok(user, "data.sqlite", db_path.read_bytes())
    res = daemon.execute_ok(user, "print(open('m.txt').read())\n"
                            "open('m.txt', 'r+').close()\n"
                            "print(load_file('data.sqlite').execute('select x from t').fetchall())\n",
                            file_ids=[m["file_id"], s["file_id"]])
    assert res["output"] == "same\n[(7,)]\n", res
    assert res["generated_files"] == [], res["generated_files"]


def test_unknown_file_id_is_404_and_nothing_runs(daemon, user):
    daemon.upload_ok(user, "mine.txt", b"mine")
    code = "open('/mnt/data/ran.txt', 'w').write('it ran')"
    r = daemon.execute(user, code, file_ids=[secrets.token_urlsafe(16)])
    assert_error(r, 404, "not_found")
    assert [f["filename"] for f in daemon.list_files(user)] == ["mine.txt"]


def test_foreign_file_id_is_404_never_a_read(daemon, user):
    owner = new_user("owner")
    secret = b"top secret " + secrets.token_bytes(16)
    f = daemon.upload_ok(owner, "secret.txt", secret)
    mine = daemon.upload_ok(user, "mine.txt", b"mine")
    code = ("import os\nopen('/mnt/data/ran.txt', 'w').write('it ran')\n"
            "print(os.listdir('.'))")
    for ids in ([f["file_id"]], [mine["file_id"], f["file_id"]]):
        r = daemon.execute(user, code, file_ids=ids)
        assert_error(r, 404, "not_found")
        assert b"top secret" not in r.body
    assert [x["filename"] for x in daemon.list_files(user)] == ["mine.txt"]
    r = daemon.content(owner, f["file_id"])
    assert r.status == 200 and r.body == secret
    assert [x["file_id"] for x in daemon.list_files(owner)] == [f["file_id"]]


# ---------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------
def post_raw(daemon, body: bytes, ctype="application/json"):
    return daemon.request("POST", "/v1/executions", body=body, headers={"Content-Type": ctype})


@pytest.mark.parametrize("body", [
    b'{"user_id": "u1", "code": ',
    b"{'user_id': 'u1', 'code': 'print(1)'}",
    b'{"user_id": "u1", "code": "print(1)",}',
    b"",
    b"null",
    b'["u1", "print(1)"]',
    b'"print(1)"',
], ids=["truncated", "single-quotes", "trailing-comma", "empty", "null", "array", "string"])
def test_malformed_json_is_400(daemon, body):
    assert_error(post_raw(daemon, body), 400, "bad_request")


@pytest.mark.parametrize("patch", [
    {"code": 12345},
    {"code": None},
    {"code": ["print(1)"]},
    {"timeout": "10"},
    {"timeout": [10]},
    {"memory_mb": "512"},
    {"file_ids": "abc"},
    {"file_ids": [123]},
    {"install_packages": "numpy"},
    {"user_id": 42},
    {"user_id": None},
], ids=lambda p: "-".join(f"{k}={type(v).__name__}" for k, v in p.items()))
def test_wrong_types_are_400(daemon, user, patch):
    payload = {"user_id": user, "code": "open('/mnt/data/ran.txt','w').write('x')", **patch}
    assert_error(daemon.json("POST", "/v1/executions", payload), 400, "bad_request")
    if "user_id" not in patch:
        assert daemon.list_files(user) == [], "a rejected request ran its code"


@pytest.mark.parametrize("payload", [{"code": "print(1)"}, {"user_id": "someone"}, {}],
                         ids=["no-user", "no-code", "nothing"])
def test_missing_fields_are_400(daemon, payload):
    assert_error(daemon.json("POST", "/v1/executions", payload), 400, "bad_request")


def test_unknown_fields_are_ignored(daemon, user):
    r = daemon.json("POST", "/v1/executions", {"user_id": user, "code": "print('fine')",
                                                 "frobnicate": {"x": [1, 2]}, "shell": True})
    assert r.status == 200, r
    res = r.json()
    assert res["status"] == "ok" and res["output"] == "fine\n", res


def test_nul_in_code_gives_a_clean_result_or_400(daemon, user):
    r = daemon.execute(user, "print('a')\x00print('b')")
    if r.status == 200:
        res = r.json()
        assert_result_shape(res)
        assert res["success"] is False and res["status"] == "error", res
    else:
        assert_error(r, 400, "bad_request")
    daemon.assert_healthy("after NUL in code")
    # a NUL produced at run time is just output
    res = daemon.execute_ok(user, "print('x' + chr(0) + 'y')")
    assert res["output"] == "x\x00y\n", res


@pytest.mark.parametrize("raw", [
    b"print('\xff\xfe invalid')",          # invalid UTF-8 bytes inside the JSON string
    b"print('\xed\xa0\x80 surrogate')",    # an encoded surrogate (invalid UTF-8)
    b"print('\\ud800 lone escape')",       # a lone surrogate escape (valid JSON, not UTF-8)
], ids=["ff-fe", "encoded-surrogate", "lone-surrogate-escape"])
def test_invalid_utf8_in_code_gives_a_clean_result_or_400(daemon, user, raw):
    body = b'{"user_id": "' + user.encode() + b'", "code": "' + raw + b'"}'
    r = post_raw(daemon, body)
    if r.status == 200:
        res = r.json()                # valid JSON (i.e. valid UTF-8) even so
        assert_result_shape(res)
        assert res["status"] in ("ok", "error"), res
    else:
        assert_error(r, 400, "bad_request")
    daemon.assert_healthy(f"after {raw!r} in code")


def test_invalid_utf8_output_becomes_replacement_characters(daemon, user):
    res = daemon.execute_ok(user, "import sys; sys.stdout.buffer.write(b'ok \\xff\\xfe end\\n')")
    assert res["output"] == "ok \ufffd\ufffd end\n", res


def test_large_output_is_truncated(daemon, user):
    res = daemon.execute_ok(user, "print('x' * 250000)")
    assert res["truncated"]["output"] is True, res["truncated"]
    assert len(res["output"]) == 100_000, len(res["output"])


def test_wrong_content_type_or_method(daemon, user):
    assert_error(daemon.request("GET", "/v1/executions"), 405, "method_not_allowed")
    assert_error(daemon.request("PUT", "/v1/files"), 405, "method_not_allowed")
    assert_error(daemon.request("GET", "/v1/nothing-here"), 404, "not_found")
    assert_error(daemon.request("GET", "/nothing"), 404, "not_found")


def test_notebook_outputs_with_stored_figure(daemon, user):
    """SPEC v2 notebook output over HTTP: `outputs` in order, the figure's file_id is the stored
    file's (downloadable), and `output` keeps the v1 meaning with the value in it."""
    code = ("import matplotlib.pyplot as plt\nimport pandas as pd\nprint('start')\n"
            "plt.plot([1, 2, 3]); plt.show()\ndisplay(pd.DataFrame({'a': [1, 2]}))\n"
            "x = 41\nx + 1\n")
    r = daemon.execute(user, code)
    assert r.status == 200, r
    res = r.json()
    assert_result_shape(res)
    assert res["status"] == "ok", res
    kinds = [o["type"] for o in res["outputs"]]
    assert kinds == ["stream", "display_data", "display_data", "execute_result"], res["outputs"]
    [png] = res["generated_files"]
    figure = res["outputs"][1]
    assert figure["file_id"] == png["file_id"] and figure["mime_type"] == "image/png", res
    got = daemon.content(user, figure["file_id"])
    assert got.status == 200 and got.body.startswith(PNG_MAGIC), got
    table = res["outputs"][2]["data"]
    assert "<table" in table["text/html"] and "a" in table["text/plain"], table
    assert res["outputs"][3]["data"] == {"text/plain": "42"}, res
    assert res["output"].startswith("start\n") and res["output"].endswith("\n42\n"), res


def test_notebook_error_item(daemon, user):
    r = daemon.execute(user, "x = 1\nraise KeyError('missing')\n")
    res = r.json()
    assert res["status"] == "error" and res["return_code"] == 1, res
    [error] = res["outputs"]
    assert error["type"] == "error" and error["ename"] == "KeyError", res
    assert error["evalue"] == "'missing'", error
    assert any('File "<code>", line 2' in line for line in error["traceback"]), error
    assert 'File "<code>", line 2' in res["error"], res
