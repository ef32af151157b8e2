"""Attacks on the MCP server (Streamable HTTP, raw). Each also checks that the legitimate request
beside it still works, so that a server refusing everything cannot pass."""
import os
import secrets
from pathlib import Path

import pytest

from .conftest import (LATEST, MCP_HEADERS, RESOURCE_NOT_FOUND, assert_tool_error, assert_tool_ok,
                       new_user, q, rpc_error, rpc_result, running_daemon, text_of)

ALLOWED_ORIGIN = "https://x.example"


@pytest.fixture(scope="module")
def d():
    yield from running_daemon("attacks", config={"mcp": {"allowed_origins": [ALLOWED_ORIGIN]}})


@pytest.fixture(scope="module")
def world(d):
    """User A with an MCP session and a file; user B with a file uploaded over REST."""
    a, b = new_user("a"), new_user("b")
    secret = "b-secret-" + secrets.token_hex(8)
    b_file = d.upload(b, f"{secret}.csv", f"k,v\n{secret},1\n".encode(), "text/csv")
    s = d.mcp(a)
    a_text = "a-own-" + secrets.token_hex(8)
    assert_tool_ok(s.call("upload_file", {"filename": "a-notes.txt", "content": a_text}))
    a_files = d.list_files(a)
    assert [f["filename"] for f in a_files] == ["a-notes.txt"], a_files
    return {"a": a, "b": b, "s": s, "secret": secret, "b_file": b_file,
            "b_uri": "codecell://files/" + b_file["file_id"], "a_text": a_text,
            "a_id": a_files[0]["file_id"]}


def b_still_intact(d, w):
    files = d.list_files(w["b"])
    assert [f["file_id"] for f in files] == [w["b_file"]["file_id"]], files
    r = d.content(w["b"], w["b_file"]["file_id"])
    assert r.status == 200 and w["secret"].encode() in r.body, r


# (a) ----------------------------------------------------------------------------------------
def test_session_cannot_switch_user(d, world):
    s, a, b = world["s"], world["a"], world["b"]
    for method, params in [("ping", None), ("tools/call", {"name": "list_files",
                                                           "arguments": {}}),
                           ("resources/list", None), ("resources/read", {"uri": world["b_uri"]})]:
        r = s.raw_rpc(method, params, path="/mcp" + q(user_id=b))
        assert r.status == 403, (method, r)
        assert world["secret"].encode() not in r.body, r
        r = s.raw_rpc(method, params, path="/mcp", extra={"X-Codecell-User-Id": b})
        assert r.status == 403, (method, "header", r)
        assert world["secret"].encode() not in r.body, r
    # naming A again, or nobody, is fine
    r = s.raw_rpc("tools/call", {"name": "list_files", "arguments": {}},
                  path="/mcp" + q(user_id=a))
    assert r.status == 200, r
    assert "a-notes.txt" in text_of(rpc_result(r.response())), r
    r = s.raw_rpc("ping", path="/mcp", extra={"X-Codecell-User-Id": a})
    assert r.status == 200, r
    r = s.raw_rpc("ping", path="/mcp")
    assert r.status == 200, r


def test_conflicting_user_names_are_refused(d, world):
    """?user_id=A (the session's user) plus X-Codecell-User-Id: B names another user too."""
    s = world["s"]
    r = s.raw_rpc("resources/list", extra={"X-Codecell-User-Id": world["b"]})
    assert r.status == 400, r
    rpc_error(r.json(), -32602)
    assert world["secret"].encode() not in r.body, r
    r = s.raw_rpc("resources/list", path=f"/mcp?user_id={world['a']}&user_id={world['b']}")
    assert r.status == 400, r
    r = s.raw_rpc("resources/list", extra={"X-Codecell-User-Id": world["a"]})
    assert r.status == 200, r


def test_initialize_naming_two_users_starts_no_session(d, world):
    a, b = world["a"], world["b"]
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": LATEST, "capabilities": {},
                       "clientInfo": {"name": "t", "version": "0"}}}
    for path, extra in ((f"/mcp?user_id={a}", {"X-Codecell-User-Id": b}),
                        (f"/mcp?user_id={a}&user_id={b}", {})):
        r = d.request("POST", path, init, headers={**MCP_HEADERS, **extra})
        assert r.status == 400, r
        assert "mcp-session-id" not in r.headers, r
    r = d.request("POST", f"/mcp?user_id={a}", init,
                  headers={**MCP_HEADERS, "X-Codecell-User-Id": a})
    assert r.status == 200 and r.headers.get("mcp-session-id"), r


def test_header_bound_session_cannot_switch_by_query(d, world):
    s = d.mcp(world["a"], via="header")
    r = s.raw_rpc("resources/list", path="/mcp" + q(user_id=world["b"]))
    assert r.status == 400, r  # the header still names A: two users named
    r = s.raw_rpc("resources/list", path="/mcp" + q(user_id=world["b"]),
                  extra={"X-Codecell-User-Id": None})
    assert r.status == 403, r
    res = rpc_result(s.rpc("resources/list"))
    assert [x["name"] for x in res["resources"]] == ["a-notes.txt"], res


def test_delete_with_another_user_is_403(d, world):
    s = d.mcp(world["a"])
    r = d.request("DELETE", "/mcp" + q(user_id=world["b"]), headers=s.headers())
    assert r.status == 403, r
    assert s.raw_rpc("ping").status == 200, "the session must survive a refused DELETE"


# (b) ----------------------------------------------------------------------------------------
def test_smuggled_user_id_in_arguments(d, world):
    s, b, secret = world["s"], world["b"], world["secret"]
    b_id = world["b_file"]["file_id"]

    listed = assert_tool_ok(s.call("list_files", {"user_id": b}))
    assert "a-notes.txt" in listed and world["a_id"] in listed, listed
    assert secret not in listed and b_id not in listed, listed

    out = assert_tool_ok(s.call("execute_python_code", {
        "user_id": b, "code": "import os\nprint('LS', sorted(os.listdir('/mnt/data')))"}))
    assert "LS" in out and "a-notes.txt" in out, out
    assert secret not in out, out

    text = assert_tool_error(s.call("execute_python_code", {
        "user_id": b, "code": f"print(load_file({b_id!r}))"}))
    assert secret not in text, text
    text = assert_tool_error(s.call("delete_file", {"file_id": b_id, "user_id": b}))
    assert secret not in text, text
    text = assert_tool_error(s.call("analyze_data_file", {"file_id": b_id, "user_id": b}))
    assert secret not in text, text
    text = assert_tool_error(s.call("analyze_data_file", {"file_id": f"{secret}.csv",
                                                          "user_id": b}))
    assert b_id not in text and "k,v" not in text, text

    b_still_intact(d, world)
    # A's own file is deletable by A (on a copy, so the world stays as it is)
    t = assert_tool_ok(s.call("upload_file", {"filename": "tmp.txt", "content": "t"}))
    tmp = next(f for f in d.list_files(world["a"]) if f["filename"] == "tmp.txt")
    assert tmp["file_id"] in t, t
    assert_tool_ok(s.call("delete_file", {"file_id": tmp["file_id"], "user_id": b}))
    assert "tmp.txt" not in [f["filename"] for f in d.list_files(world["a"])]
    b_still_intact(d, world)


def test_smuggled_upload_goes_to_the_session_user(d, world):
    s = world["s"]
    assert_tool_ok(s.call("upload_file", {"filename": "planted.txt", "content": "p",
                                          "user_id": world["b"]}))
    assert "planted.txt" not in [f["filename"] for f in d.list_files(world["b"])]
    mine = next(f for f in d.list_files(world["a"]) if f["filename"] == "planted.txt")
    assert_tool_ok(s.call("delete_file", {"file_id": mine["file_id"]}))


# (c) ----------------------------------------------------------------------------------------
def test_reading_another_users_resource(d, world):
    s = world["s"]
    err = rpc_error(s.rpc("resources/read", {"uri": world["b_uri"]}), RESOURCE_NOT_FOUND)
    assert world["secret"] not in str(err), err
    own = rpc_result(s.rpc("resources/read", {"uri": "codecell://files/" + world["a_id"]}))
    c = own["contents"][0]
    assert c["uri"] == "codecell://files/" + world["a_id"], c
    assert c.get("text") == world["a_text"], c
    assert c["mimeType"].startswith("text/plain"), c
    listed = rpc_result(s.rpc("resources/list"))["resources"]
    assert world["b_uri"] not in [r["uri"] for r in listed], listed
    assert "codecell://files/" + world["a_id"] in [r["uri"] for r in listed], listed


# (d) ----------------------------------------------------------------------------------------
def test_forged_session_ids(d, world):
    s = world["s"]
    real = s.session_id
    forged = [secrets.token_hex(16), secrets.token_urlsafe(24), "0", "null", "..%2F..",
              real + "x", real[:-2], real.swapcase() if real.swapcase() != real else real + "Z"]
    for f in forged:
        r = d.request("POST", "/mcp" + q(user_id=world["a"]),
                      {"jsonrpc": "2.0", "id": 1, "method": "resources/list"},
                      headers={**MCP_HEADERS, "Mcp-Session-Id": f, "MCP-Protocol-Version": LATEST})
        assert r.status == 404, (f, r)
        assert world["a_text"].encode() not in r.body
    assert s.raw_rpc("ping").status == 200


# (e) ----------------------------------------------------------------------------------------
def _init(d, origin):
    headers = dict(MCP_HEADERS)
    if origin is not None:
        headers["Origin"] = origin
    return d.request("POST", "/mcp" + q(user_id=new_user()),
                     {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                      "params": {"protocolVersion": LATEST, "capabilities": {},
                                 "clientInfo": {"name": "o", "version": "0"}}}, headers=headers)


@pytest.mark.parametrize("origin", ["http://evil.example", "https://evil.example",
                                    "http://localhost.evil.example",
                                    "http://127.0.0.1.evil.example:80",
                                    "http://evil.example/http://localhost", "null",
                                    "https://x.example.evil.example", "http://x.example"])
def test_foreign_origin_is_403(d, origin):
    r = _init(d, origin)
    assert r.status == 403, (origin, r)
    assert "mcp-session-id" not in r.headers, r


def test_foreign_origin_in_a_session_is_403(d, world):
    s = world["s"]
    r = s.raw_rpc("resources/list", extra={"Origin": "http://evil.example"})
    assert r.status == 403, r
    assert world["a_text"].encode() not in r.body
    r = s.raw_rpc("resources/list", extra={"Origin": f"http://localhost:{d.port}"})
    assert r.status == 200, r


@pytest.mark.parametrize("origin", [None, "http://localhost:{port}", "http://127.0.0.1:{port}",
                                    "http://[::1]:{port}", "http://localhost",
                                    ALLOWED_ORIGIN])
def test_local_and_configured_origins_are_allowed(d, origin):
    r = _init(d, origin.format(port=d.port) if origin else None)
    assert r.status == 200, (origin, r)
    assert r.headers.get("mcp-session-id"), r


# (f) ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("uri", ["codecell://files/../../etc/passwd",
                                 "codecell://files/..%2F..%2Fetc%2Fpasswd",
                                 "codecell://files/%2e%2e/%2e%2e/etc/passwd",
                                 "codecell://files/../../../../../../../../etc/passwd",
                                 "codecell://files//etc/passwd",
                                 "codecell://files/",
                                 "codecell://files",
                                 "file:///etc/passwd",
                                 "codecell://files/{a}/../{b}",
                                 "codecell://files/{b}?user_id={bu}",
                                 "codecell://files/{b}#",
                                 "codecell://files/*"])
def test_traversal_uris_are_not_found(d, world, uri):
    s = world["s"]
    uri = uri.format(a=world["a_id"], b=world["b_file"]["file_id"], bu=world["b"])
    resp = s.rpc("resources/read", {"uri": uri})
    rpc_error(resp, RESOURCE_NOT_FOUND)
    body = str(resp)
    assert "root:" not in body and world["secret"] not in body, resp


# (g) ----------------------------------------------------------------------------------------
def test_upload_filename_traversal(d, world):
    s = world["s"]
    marker = "traversal-" + secrets.token_hex(8)
    etc_x = Path("/etc/x")
    existed = etc_x.exists()
    before = etc_x.read_bytes() if existed and etc_x.is_file() else None
    text = assert_tool_ok(s.call("upload_file", {"filename": "../../etc/x", "content": marker}))
    files = {f["file_id"]: f for f in d.list_files(world["a"])}
    new = [f for f in files.values() if f["filename"] not in ("a-notes.txt",)]
    assert len(new) == 1, files
    stored = new[0]
    assert "/" not in stored["filename"] and "\\" not in stored["filename"], stored
    assert stored["filename"] not in ("", ".", ".."), stored
    assert stored["file_id"] in text, text
    # nothing written outside the store
    if existed:
        assert before is None or etc_x.read_bytes() == before, "/etc/x changed"
    else:
        assert not etc_x.exists(), "/etc/x was created"
    hits = [p for p in d.data_dir.rglob("*") if p.is_file() and not p.is_symlink()
            and p.stat().st_size == len(marker) and p.read_bytes() == marker.encode()]
    assert hits, "the upload is not stored under the data dir"
    for p in hits:
        assert os.path.realpath(p).startswith(os.path.realpath(d.data_dir) + "/"), p
    # the sandbox sees it, under /mnt/data, by its stored name
    out = assert_tool_ok(s.call("execute_python_code", {"code": (
        "import os\n"
        f"p = os.path.join('/mnt/data', {stored['filename']!r})\n"
        "print('REAL', os.path.realpath(p))\n"
        "print('DATA', open(p).read())\n")}))
    assert f"DATA {marker}" in out, out
    assert "REAL /mnt/data/" in out and "/etc/" not in out.split("REAL", 1)[1].split("\n")[0], out
    r = d.content(world["a"], stored["file_id"])
    assert r.status == 200 and r.body == marker.encode(), r
    assert_tool_ok(s.call("delete_file", {"file_id": stored["file_id"]}))


@pytest.mark.parametrize("name", ["/etc/passwd", "..", ".hidden", "a/b/c.txt", "nul\x00l.txt"])
def test_upload_odd_filenames_stay_plain(d, world, name):
    s = world["s"]
    res = s.call("upload_file", {"filename": name, "content": "z"})
    if res.get("isError"):            # refusing the name outright is fine too
        assert d.list_files(world["a"])[0]["filename"] == "a-notes.txt"
        assert len(d.list_files(world["a"])) == 1
        return
    new = [f for f in d.list_files(world["a"]) if f["filename"] != "a-notes.txt"]
    assert len(new) == 1, new
    fn = new[0]["filename"]
    assert "/" not in fn and "\x00" not in fn and fn not in ("", ".", ".."), new
    assert_tool_ok(s.call("delete_file", {"file_id": new[0]["file_id"]}))
