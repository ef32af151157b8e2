"""Streamable HTTP (``/mcp`` on ``codecell serve``), spoken raw with http.client: sessions,
status codes, headers, JSON-RPC errors, SSE progress, users, API keys."""
import re
import secrets

import pytest

from .conftest import (INVALID_PARAMS, INVALID_REQUEST, LATEST, MCP_HEADERS, METHOD_NOT_FOUND,
                       PARSE_ERROR, RESOURCE_NOT_FOUND, SUPPORTED, TOOL_NAMES,
                       assert_tool_ok, new_user, q, rpc_error, rpc_result, running_daemon, short,
                       start_daemon)

DEFAULT_USER = new_user("dflt")


@pytest.fixture(scope="module")
def d():
    yield from running_daemon("http", config={"mcp": {"default_user": DEFAULT_USER}})


@pytest.fixture
def s(d):
    """A fresh session for a random user."""
    return d.mcp(new_user("h"))


def init_msg(version=LATEST, rid=1):
    return {"jsonrpc": "2.0", "id": rid, "method": "initialize",
            "params": {"protocolVersion": version, "capabilities": {},
                       "clientInfo": {"name": "raw", "version": "0"}}}


# --------------------------------------------------------------------------------------------
# initialize and sessions
# --------------------------------------------------------------------------------------------
def test_initialize_answers_json_with_a_session_id(d):
    r = d.request("POST", "/mcp" + q(user_id=new_user()), init_msg(), headers=MCP_HEADERS)
    assert r.status == 200, r
    assert r.headers.get("content-type", "").startswith("application/json"), r
    sid = r.headers.get("mcp-session-id")
    assert sid and re.fullmatch(r"[\x21-\x7e]{16,}", sid), f"weak or missing session id: {sid!r}"
    msg = r.json()
    assert msg["id"] == 1 and msg["jsonrpc"] == "2.0", msg
    res = rpc_result(msg)
    assert res["protocolVersion"] == LATEST
    assert res["serverInfo"]["name"] == "codecell", res
    assert "tools" in res["capabilities"] and "resources" in res["capabilities"], res


@pytest.mark.parametrize("version", SUPPORTED)
def test_supported_versions_are_echoed(d, version):
    s = d.mcp(new_user(), protocol=version)
    assert s.init_result["protocolVersion"] == version, s.init_result
    assert rpc_result(s.rpc("ping")) == {}


@pytest.mark.parametrize("version", ["2099-01-01", "2024-10-07", "banana"])
def test_unsupported_version_gets_the_latest(d, version):
    s = d.mcp(new_user(), protocol=version)
    assert s.init_result["protocolVersion"] == LATEST, s.init_result


@pytest.mark.parametrize("how", ["query", "header"])
@pytest.mark.parametrize("bad", ["../../etc", "a b", "x" * 129, "b\u00e4d"])
def test_invalid_user_is_refused_at_initialize(d, how, bad):
    if how == "query":
        r = d.request("POST", "/mcp" + q(user_id=bad), init_msg(), headers=MCP_HEADERS)
    else:
        r = d.request("POST", "/mcp", init_msg(),
                      headers={**MCP_HEADERS, "X-Codecell-User-Id": bad.encode().decode("latin-1")})
    assert r.status == 400, (bad, r)
    assert "mcp-session-id" not in r.headers, r


def test_session_ids_are_unique(d):
    ids = {d.mcp(new_user()).session_id for _ in range(5)}
    assert len(ids) == 5, ids


def test_request_without_session_is_400(d, s):
    r = d.request("POST", "/mcp" + q(user_id=s.user),
                  {"jsonrpc": "2.0", "id": 1, "method": "ping"}, headers=MCP_HEADERS)
    assert r.status == 400, r
    r = d.request("POST", "/mcp" + q(user_id=s.user),
                  {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, headers=MCP_HEADERS)
    assert r.status == 400, r
    assert s.raw_rpc("ping").status == 200      # the same request inside the session is fine


def test_unknown_session_is_404(d, s):
    for forged in [secrets.token_hex(16), s.session_id[:-1] + ("A" if s.session_id[-1] != "A"
                                                                  else "B")]:
        r = s.raw_rpc("ping", extra={"Mcp-Session-Id": forged})
        assert r.status == 404, (forged, r)
    assert s.raw_rpc("ping").status == 200


def test_notifications_and_responses_are_202(s):
    for msg in [{"jsonrpc": "2.0", "method": "notifications/initialized"},
                {"jsonrpc": "2.0", "method": "notifications/cancelled",
                 "params": {"requestId": 99, "reason": "test"}},
                {"jsonrpc": "2.0", "id": "srv-1", "result": {}},
                {"jsonrpc": "2.0", "id": "srv-2", "error": {"code": -1, "message": "no"}}]:
        r = s.post(msg)
        assert r.status == 202, (msg, r)
        assert r.body == b"", (msg, r)


def test_protocol_version_header(s):
    r = s.raw_rpc("ping", extra={"MCP-Protocol-Version": "1999-01-01"})
    assert r.status == 400, r
    r = s.raw_rpc("ping", extra={"MCP-Protocol-Version": "not-a-version"})
    assert r.status == 400, r
    r = s.raw_rpc("ping", extra={"MCP-Protocol-Version": LATEST})
    assert r.status == 200 and rpc_result(r.response()) == {}, r
    r = s.raw_rpc("ping", protocol=False)          # absent: allowed (the session knows it)
    assert r.status == 200, r


def test_get_is_405(d, s):
    assert d.request("GET", "/mcp", headers={"Accept": "text/event-stream"}).status == 405
    r = d.request("GET", s.path(), headers=s.headers())
    assert r.status == 405, r


def test_delete_ends_the_session(s):
    assert s.raw_rpc("ping").status == 200
    r = s.delete()
    assert r.status == 204, r
    assert r.body == b""
    r = s.raw_rpc("ping")
    assert r.status == 404, r
    assert s.delete().status == 404


def test_deleting_one_session_keeps_the_others(d):
    user = new_user()
    s1, s2 = d.mcp(user), d.mcp(user)
    assert s1.delete().status == 204
    assert s2.raw_rpc("ping").status == 200


# --------------------------------------------------------------------------------------------
# JSON-RPC errors
# --------------------------------------------------------------------------------------------
def test_invalid_json_is_parse_error(s):
    r = s.post(b'{"jsonrpc": "2.0", "id": 3, "method": ')
    msg = r.json()
    rpc_error(msg, PARSE_ERROR)
    assert msg["id"] is None, msg
    assert s.raw_rpc("ping").status == 200


def test_batch_is_invalid_request(s):
    r = s.post([{"jsonrpc": "2.0", "id": 1, "method": "ping"},
                {"jsonrpc": "2.0", "id": 2, "method": "ping"}])
    msg = r.json()
    assert isinstance(msg, dict), f"a batch must not be answered per item: {r!r}"
    rpc_error(msg, INVALID_REQUEST)


def test_unknown_method(s):
    resp = s.rpc("resources/subscribe_to_everything", {})
    rpc_error(resp, METHOD_NOT_FOUND)
    assert resp["id"] == s._id


def test_unknown_tool(s):
    rpc_error(s.rpc("tools/call", {"name": "shell", "arguments": {"cmd": "id"}}), INVALID_PARAMS)


def test_unknown_resource(s):
    rpc_error(s.rpc("resources/read", {"uri": "codecell://files/" + secrets.token_urlsafe(18)}),
              RESOURCE_NOT_FOUND)


def test_ping_and_tools_list(s):
    assert rpc_result(s.rpc("ping")) == {}
    r = s.raw_rpc("tools/list")
    assert r.status == 200, r
    tools = rpc_result(r.response())["tools"]
    assert {t["name"] for t in tools} == TOOL_NAMES


# --------------------------------------------------------------------------------------------
# progress over SSE
# --------------------------------------------------------------------------------------------
def test_progress_over_sse(s):
    token = 7000 + secrets.randbelow(1000)          # an integer token this time
    r = s.raw_rpc("tools/call", {
        "name": "execute_python_code",
        "arguments": {"code": "import time\ntime.sleep(7)\nprint('woke up')"},
        "_meta": {"progressToken": token}}, timeout=90)
    assert r.status == 200, r
    assert r.sse, f"Accept includes text/event-stream and a progress token is set: {r!r}"
    msgs = [m for _, m in r.events]
    assert msgs and ("result" in msgs[-1]), f"the response must be the last event: {short(msgs)}"
    assert msgs[-1]["id"] == s._id
    assert "woke up" in assert_tool_ok(msgs[-1]["result"])
    prog = [(t, m) for t, m in r.events if m.get("method") == "notifications/progress"]
    assert prog, f"no progress event during a 7 s execution: {short(msgs)}"
    assert all(m["params"]["progressToken"] == token for _, m in prog), prog
    values = [m["params"]["progress"] for _, m in prog]
    assert all(b > a for a, b in zip(values, values[1:])), values
    assert all(isinstance(m["params"].get("message"), str) for _, m in prog), prog
    t_resp = r.events[-1][0]
    assert prog[0][0] < t_resp - 1.0, f"progress was not streamed while running: {r.events}"


def test_call_without_token_has_no_progress(s):
    r = s.raw_rpc("tools/call", {"name": "execute_python_code",
                                 "arguments": {"code": "import time\ntime.sleep(6)\nprint(1)"}},
                  timeout=90)
    assert r.status == 200, r
    notes = [m for m in r.messages() if m.get("method") == "notifications/progress"]
    assert notes == [], notes
    assert_tool_ok(rpc_result(r.response(s._id)))


# --------------------------------------------------------------------------------------------
# who the session acts for
# --------------------------------------------------------------------------------------------
def _upload(s, name):
    text = assert_tool_ok(s.call("upload_file", {"filename": name, "content": "x" + name}))
    assert name in text, text


def test_user_from_query(d):
    user = new_user("q")
    _upload(d.mcp(user, via="query"), "by-query.txt")
    assert [f["filename"] for f in d.list_files(user)] == ["by-query.txt"]


def test_user_from_header(d):
    user = new_user("hd")
    s = d.mcp(user, via="header")
    _upload(s, "by-header.txt")
    assert [f["filename"] for f in d.list_files(user)] == ["by-header.txt"]
    # the header is not needed again once the session is bound
    s.via = None
    listed = assert_tool_ok(s.call("list_files"))
    assert "by-header.txt" in listed, listed


def test_user_from_config_default(d):
    s = d.mcp(None, via=None)
    name = f"dflt-{secrets.token_hex(4)}.txt"
    _upload(s, name)
    assert name in [f["filename"] for f in d.list_files(DEFAULT_USER)]
    assert name not in [f["filename"] for f in d.list_files("mcp")]


def test_builtin_default_user_is_mcp():
    d2 = start_daemon("http-default")
    try:
        s = d2.mcp(None, via=None)
        _upload(s, "nobody-named.txt")
        assert [f["filename"] for f in d2.list_files("mcp")] == ["nobody-named.txt"]
    finally:
        d2.stop()


# --------------------------------------------------------------------------------------------
# API keys
# --------------------------------------------------------------------------------------------
def test_api_keys():
    key = "k1-" + secrets.token_hex(8)
    d2 = start_daemon("http-keys", config={"api_keys": [key]})
    try:
        path = "/mcp" + q(user_id=new_user())
        for headers in [{}, {"Authorization": "Bearer wrong"}, {"Authorization": key},
                        {"Authorization": f"Basic {key}"}]:
            r = d2.request("POST", path, init_msg(), headers={**MCP_HEADERS, **headers},
                           auth=False)
            assert r.status == 401, (headers, r)
            assert "mcp-session-id" not in r.headers, r
        s = d2.mcp(new_user())                      # Daemon.request adds Bearer <key>
        assert rpc_result(s.rpc("ping")) == {}
        # the session id alone is not a credential
        r = d2.request("POST", s.path(), {"jsonrpc": "2.0", "id": 9, "method": "ping"},
                       headers=s.headers(), auth=False)
        assert r.status == 401, r
        r = d2.request("DELETE", s.path(), headers=s.headers(), auth=False)
        assert r.status == 401, r
        assert s.raw_rpc("ping").status == 200
        assert d2.request("GET", "/healthz", auth=False).status == 200
    finally:
        d2.stop()


# --------------------------------------------------------------------------------------------
# metrics
# --------------------------------------------------------------------------------------------
def metric(d, name: str) -> float:
    r = d.request("GET", "/metrics")
    assert r.status == 200, r
    for line in r.body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not in /metrics:\n{r.body.decode()[:3000]}")


def test_metrics_count_sessions_and_tool_calls(d):
    calls = 'codecell_tool_calls_total{tool="list_files"}'
    uploads = 'codecell_tool_calls_total{tool="upload_file"}'
    sessions, before_calls, before_uploads = (metric(d, "codecell_mcp_sessions"),
                                              metric(d, calls), metric(d, uploads))
    s = d.mcp(new_user("m"))
    assert metric(d, "codecell_mcp_sessions") == sessions + 1
    assert_tool_ok(s.call("list_files"))
    assert_tool_ok(s.call("list_files"))
    assert_tool_ok(s.call("upload_file", {"filename": "m.txt", "content": "m"}))
    assert metric(d, calls) == before_calls + 2
    assert metric(d, uploads) == before_uploads + 1
    assert s.delete().status == 204
    assert metric(d, "codecell_mcp_sessions") == sessions
