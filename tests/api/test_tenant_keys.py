"""API keys bound to tenants: one codecell serving several bots. Each attack is a bot's key
reaching for another bot's users (their files, their executions, their MCP sessions) or for the
operator's routes; beside each, the same request for the bot's own user must still work."""
import json

import pytest

from .conftest import assert_error, q

OPERATOR = "operator-" + "o" * 24
BOT1 = "bot-one-" + "1" * 24  # users bot1:*
BOT2 = "bot-two-" + "2" * 24  # users alice and bob only
MCP_HEADERS = {"Accept": "application/json, text/event-stream",
               "Content-Type": "application/json"}


@pytest.fixture(scope="module")
def tenants(request):
    from .conftest import Daemon
    d = Daemon(config={"api_keys": [OPERATOR, {"key": BOT1, "user_prefix": "bot1:"},
                                    {"key": BOT2, "users": ["alice", "bob"]}]},
               name="tenants")
    d.start()
    request.addfinalizer(d.stop)
    return d


def files_of(d, user, key):
    r = d.request("GET", "/v1/files" + q(user_id=user), key=key)
    assert r.status == 200, r
    return r.json()["files"]


def test_a_bot_reaches_only_its_own_users_files(tenants):
    d = tenants
    mine = d.upload(user="bot1:u1", name="mine.csv", data=b"a,b\n1,2\n", key=BOT1)
    assert mine.status == 201, mine
    theirs = d.upload(user="alice", name="secret.txt", data=b"alice's", key=BOT2)
    assert theirs.status == 201, theirs
    fid = theirs.json()["file_id"]

    # bot1 reaching for alice: every file route is 403, and nothing changed
    assert_error(d.request("GET", "/v1/files" + q(user_id="alice"), key=BOT1), 403, "forbidden")
    assert_error(d.request("GET", f"/v1/files/{fid}" + q(user_id="alice"), key=BOT1), 403,
                 "forbidden")
    assert_error(d.request("GET", f"/v1/files/{fid}/content" + q(user_id="alice"), key=BOT1), 403,
                 "forbidden")
    assert_error(d.request("DELETE", f"/v1/files/{fid}" + q(user_id="alice"), key=BOT1), 403,
                 "forbidden")
    assert_error(d.request("DELETE", "/v1/files" + q(user_id="alice"), key=BOT1), 403,
                 "forbidden")
    assert_error(d.upload(user="alice", name="planted.txt", data=b"x", key=BOT1), 403,
                 "forbidden")
    # near misses of the prefix are other users
    for other in ("bot1", "bot1:", "xbot1:u1", "bot2:u1"):
        r = d.request("GET", "/v1/files" + q(user_id=other), key=BOT1)
        assert r.status in (400, 403), (other, r)
    assert [f["filename"] for f in files_of(d, "alice", BOT2)] == ["secret.txt"]
    assert d.request("GET", f"/v1/files/{fid}/content" + q(user_id="alice"),
                     key=BOT2).body == b"alice's"

    # the legitimate twins
    assert [f["filename"] for f in files_of(d, "bot1:u1", BOT1)] == ["mine.csv"]
    assert [f["filename"] for f in files_of(d, "alice", OPERATOR)] == ["secret.txt"]
    assert_error(d.request("GET", "/v1/files" + q(user_id="carol"), key=BOT2), 403, "forbidden")


def test_a_bot_cannot_run_code_as_another_bots_user(tenants):
    d = tenants
    d.upload(user="bob", name="bob.txt", data=b"bob's data", key=BOT2)
    code = "import os; print(sorted(os.listdir('/mnt/data')))"
    r = d.request("POST", "/v1/executions", {"user_id": "bob", "code": code}, key=BOT1)
    assert_error(r, 403, "forbidden")
    call = {"id": "call_1", "type": "function",
            "function": {"name": "execute_python_code", "arguments": json.dumps({"code": code})}}
    r = d.request("POST", "/v1/tool-calls", {"user_id": "bob", "tool_call": call}, key=BOT1)
    assert_error(r, 403, "forbidden")

    ok = d.request("POST", "/v1/executions", {"user_id": "bob", "code": code}, key=BOT2)
    assert ok.status == 200 and "bob.txt" in ok.json()["output"], ok
    ok = d.request("POST", "/v1/executions", {"user_id": "bot1:u2", "code": code}, key=BOT1)
    assert ok.status == 200 and "bob.txt" not in ok.json()["output"], ok
    ok = d.request("POST", "/v1/tool-calls", {"user_id": "bot1:u2", "tool_call": call}, key=BOT1)
    assert ok.status == 200 and ok.json()["message"]["role"] == "tool", ok


def test_operator_routes_need_a_key_for_any_user(tenants):
    d = tenants
    for method, path, body in (("POST", "/v1/cleanup", None), ("GET", "/metrics", None),
                               ("POST", "/v1/packages/refresh", None),
                               ("POST", "/v1/packages", {"packages": ["tabulate"]})):
        for key in (BOT1, BOT2):
            assert_error(d.request(method, path, body, key=key), 403, "forbidden")
    # read-only service routes stay open to every key
    for key in (BOT1, BOT2, OPERATOR):
        assert d.request("GET", "/v1/status", key=key).status == 200
        assert d.request("GET", "/v1/tools", key=key).status == 200
    assert d.request("GET", "/metrics", key=OPERATOR).status == 200
    assert d.request("POST", "/v1/cleanup", key=OPERATOR).status == 200
    # installs for a user of its own are the bot's to ask (the answer is about the package)
    r = d.request("POST", "/v1/packages", {"packages": ["not-approved-xyz"], "user_id": "alice"},
                  key=BOT1)
    assert_error(r, 403, "forbidden")
    r = d.request("POST", "/v1/packages", {"packages": ["not-approved-xyz"], "user_id": "alice"},
                  key=BOT2)
    assert r.status == 200 and r.json()["packages"][0]["status"] == "failed", r


def mcp_initialize(d, user, key):
    msg = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
           "params": {"protocolVersion": "2025-03-26", "capabilities": {},
                      "clientInfo": {"name": "tenant-test", "version": "0"}}}
    return d.request("POST", "/mcp" + q(user_id=user), msg, headers=MCP_HEADERS, key=key)


def test_mcp_sessions_belong_to_their_keys_users(tenants):
    d = tenants
    assert mcp_initialize(d, "alice", BOT1).status == 403
    r = mcp_initialize(d, "bot1:mcp", BOT1)
    assert r.status == 200, r
    session = r.headers["mcp-session-id"]
    # bot2 takes over bot1's session by its id: refused
    call = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
    h = dict(MCP_HEADERS, **{"Mcp-Session-Id": session, "MCP-Protocol-Version": "2025-03-26"})
    r = d.request("POST", "/mcp", call, headers=h, key=BOT2)
    assert r.status == 403, r
    r = d.request("DELETE", "/mcp", headers=h, key=BOT2)
    assert r.status == 403, r
    # its own key still uses it
    r = d.request("POST", "/mcp", call, headers=h, key=BOT1)
    assert r.status == 200, r
    # a bound key with no user named gets the default MCP user, which it may not act for
    assert d.request("POST", "/mcp", {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                                      "params": {"protocolVersion": "2025-03-26",
                                                 "capabilities": {},
                                                 "clientInfo": {"name": "t", "version": "0"}}},
                     headers=MCP_HEADERS, key=BOT2).status == 403
