"""``codecell mcp``: newline-delimited JSON-RPC on stdin/stdout, spoken raw from Python."""
import queue
import secrets
import time

import pytest

from .conftest import (INVALID_PARAMS, INVALID_REQUEST, LATEST, METHOD_NOT_FOUND, PARSE_ERROR,
                       PNG_SIGNATURE, RESOURCE_NOT_FOUND, TOOL_NAMES, StdioMcp, assert_tool_error,
                       assert_tool_ok, image_bytes, items, new_dir, new_user, require_root,
                       rpc_error, rpc_result, short)


@pytest.fixture(scope="module")
def stdio():
    require_root()
    data_dir = new_dir("stdio-shared") / "data"
    p = StdioMcp(data_dir, user=new_user("st"))
    yield p
    rc = p.close()
    assert rc == 0, f"codecell mcp exited {rc} on EOF\n{p.stderr()}"
    assert p.bad_lines == [], f"non-JSON lines on stdout: {p.bad_lines[:5]}"


def drain(p: StdioMcp, wait=0.3):
    """Messages pending now (e.g. stray answers), waiting `wait` s for late ones."""
    out = []
    deadline = time.monotonic() + wait
    while True:
        try:
            out.append(p.lines.get(timeout=max(0.0, deadline - time.monotonic()))[1])
        except queue.Empty:
            return out


def next_message(p: StdioMcp, timeout=30) -> dict:
    t, msg = p.recv(timeout)
    assert msg is not None, f"stdout closed (exit {p.proc.poll()})\n{p.stderr()}"
    return msg


def test_initialize(stdio):
    r = stdio.init_result
    assert r["protocolVersion"] == LATEST, r
    assert r["serverInfo"]["name"] == "codecell", r
    assert "tools" in r["capabilities"] and "resources" in r["capabilities"], r


def test_ping(stdio):
    resp = stdio.rpc("ping")
    assert resp["id"] == stdio._id
    assert rpc_result(resp) == {}


def test_tools_list(stdio):
    tools = rpc_result(stdio.rpc("tools/list"))["tools"]
    assert {t["name"] for t in tools} == TOOL_NAMES, [t["name"] for t in tools]


def test_blank_lines_are_ignored(stdio):
    assert drain(stdio) == []
    stdio.send_raw(b"\n\n   \n\r\n\t\n")
    stdio.send({"jsonrpc": "2.0", "id": "after-blank", "method": "ping"})
    msg = next_message(stdio)
    assert msg == {"jsonrpc": "2.0", "id": "after-blank", "result": {}}, msg
    assert drain(stdio) == []


def test_parse_error_then_still_serving(stdio):
    assert drain(stdio) == []
    stdio.send_raw(b'{"jsonrpc": "2.0", "id": 5, "method": \n')
    msg = next_message(stdio)
    rpc_error(msg, PARSE_ERROR)
    assert msg["id"] is None, msg
    stdio.send_raw(b"\x00\xff garbage\n")
    rpc_error(next_message(stdio), PARSE_ERROR)
    assert stdio.proc.poll() is None, "codecell mcp died on a parse error"
    assert rpc_result(stdio.rpc("ping")) == {}


def test_batch_is_invalid_request(stdio):
    assert drain(stdio) == []
    stdio.send_raw(b'[{"jsonrpc": "2.0", "id": 1, "method": "ping"}]\n')
    msg = next_message(stdio)
    rpc_error(msg, INVALID_REQUEST)
    assert drain(stdio) == [], "the batch's ping must not be answered"
    assert rpc_result(stdio.rpc("ping")) == {}


def test_not_a_request_object(stdio):
    assert drain(stdio) == []
    stdio.send_raw(b'"just a string"\n')
    rpc_error(next_message(stdio), INVALID_REQUEST)
    assert rpc_result(stdio.rpc("ping")) == {}


def test_unknown_method(stdio):
    resp = stdio.rpc("no/such/method", {})
    rpc_error(resp, METHOD_NOT_FOUND)
    assert resp["id"] == stdio._id


def test_unknown_tool(stdio):
    resp = stdio.rpc("tools/call", {"name": "rm_rf", "arguments": {}})
    rpc_error(resp, INVALID_PARAMS)


def test_unknown_resource(stdio):
    resp = stdio.rpc("resources/read", {"uri": "codecell://files/" + secrets.token_urlsafe(18)})
    rpc_error(resp, RESOURCE_NOT_FOUND)


def test_notifications_and_responses_get_no_answer(stdio):
    assert drain(stdio) == []
    stdio.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
    stdio.send({"jsonrpc": "2.0", "method": "notifications/cancelled",
                "params": {"requestId": 12345}})
    stdio.send({"jsonrpc": "2.0", "method": "notifications/no_such_thing"})
    stdio.send({"jsonrpc": "2.0", "id": "from-client-1", "result": {}})     # responses, too
    stdio.send({"jsonrpc": "2.0", "id": "from-client-2", "error": {"code": 1, "message": "x"}})
    stdio.send({"jsonrpc": "2.0", "id": "after-notes", "method": "ping"})
    msg = next_message(stdio)
    assert msg.get("id") == "after-notes" and msg.get("result") == {}, msg


def test_string_ids_are_echoed(stdio):
    stdio.send({"jsonrpc": "2.0", "id": "abc-ü-1", "method": "tools/list"})
    resp, others = stdio.wait_response("abc-ü-1")
    assert others == []
    assert "tools" in rpc_result(resp)


def test_bad_arguments_are_tool_errors(stdio):
    text = assert_tool_error(stdio.call("execute_python_code", {}))
    assert "code" in text, text
    text = assert_tool_error(stdio.call("execute_python_code", {"code": 42}))
    assert "code" in text, text
    assert_tool_error(stdio.call("delete_file", {"file_id": secrets.token_urlsafe(18)}))
    assert_tool_error(stdio.call("upload_file", {"filename": "x.bin",
                                                 "content_base64": "***not base64***"}))
    assert_tool_error(stdio.call("upload_file", {"content": "no name"}))


def test_upload_then_execute_sees_the_file(stdio):
    token = secrets.token_hex(8)
    text = assert_tool_ok(stdio.call("upload_file", {"filename": "notes.txt",
                                                     "content": f"hello {token}\n"}))
    assert "notes.txt" in text, text
    res = stdio.call("execute_python_code", {
        "code": "print(open('/mnt/data/notes.txt').read().strip())\n"
                "print('lf', load_file('notes.txt').strip())\n"})
    out = assert_tool_ok(res)
    assert f"hello {token}" in out and f"lf hello {token}" in out, out


def test_logs_stay_off_stdout(stdio):
    # executions and file operations have happened by now: stdout holds JSON-RPC only
    assert_tool_ok(stdio.call("execute_python_code", {"code": "import sys\n"
                                                      "print('to-stderr', file=sys.stderr)"}))
    assert stdio.bad_lines == [], stdio.bad_lines[:5]
    for m in stdio.all:
        assert m.get("jsonrpc") == "2.0", m


def test_progress_notifications(stdio):
    token = "tok-" + secrets.token_hex(4)
    t0 = time.monotonic()
    resp, others = stdio.rpc_full("tools/call", {
        "name": "execute_python_code",
        "arguments": {"code": "import time\ntime.sleep(7)\nprint('done sleeping')"},
        "_meta": {"progressToken": token}})
    t_resp = time.monotonic()
    assert "done sleeping" in assert_tool_ok(rpc_result(resp))
    prog = [(t, m) for t, m in others if m.get("method") == "notifications/progress"]
    assert prog, f"no notifications/progress during a 7 s execution: {short(others)}"
    for _, m in prog:
        p = m["params"]
        assert p["progressToken"] == token, m
        assert isinstance(p.get("message"), str) and p["message"], m
        assert "id" not in m, f"a notification has no id: {m}"
    values = [m["params"]["progress"] for _, m in prog]
    assert all(b > a for a, b in zip(values, values[1:])), values
    assert prog[0][0] < t_resp - 1.0, "progress arrived only with the response"
    assert prog[0][0] - t0 < 6.5, "the first progress came later than ~5 s"


def test_no_progress_without_token(stdio):
    resp, others = stdio.rpc_full("tools/call", {
        "name": "execute_python_code",
        "arguments": {"code": "import time\ntime.sleep(6)\nprint('ok')"}})
    assert_tool_ok(rpc_result(resp))
    assert [m for _, m in others if m.get("method") == "notifications/progress"] == [], others


# --------------------------------------------------------------------------------------------
# separate processes
# --------------------------------------------------------------------------------------------
def test_exits_zero_on_eof():
    p = StdioMcp(new_dir("stdio-eof") / "data", user=new_user("eof"))
    try:
        assert rpc_result(p.rpc("ping")) == {}
        t0 = time.monotonic()
        rc = p.close(timeout=30)
        assert rc == 0, f"exit {rc} on EOF\n{p.stderr()}"
        assert time.monotonic() - t0 < 15, "took too long to exit on EOF"
    finally:
        p.kill()


def test_eof_without_initialize_exits_zero():
    p = StdioMcp(new_dir("stdio-eof0") / "data", init=False)
    try:
        rc = p.close(timeout=30)
        assert rc == 0, f"exit {rc} on EOF\n{p.stderr()}"
        assert p.bad_lines == [] and p.all == [], (p.bad_lines, p.all)
    finally:
        p.kill()


def test_old_protocol_has_no_resource_links():
    p = StdioMcp(new_dir("stdio-old") / "data", user=new_user("old"), protocol="2025-03-26")
    try:
        assert p.init_result["protocolVersion"] == "2025-03-26", p.init_result
        res = p.call("execute_python_code", {
            "code": "import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n"
                    "plt.plot([1, 2, 3])\nplt.savefig('line.png')\n"
                    "open('t.csv', 'w').write('a,b\\n1,2\\n')\nprint('made')"})
        text = assert_tool_ok(res)
        assert "made" in text and "line.png" in text and "t.csv" in text, text
        imgs = items(res, "image")
        assert len(imgs) == 1 and image_bytes(imgs[0]).startswith(PNG_SIGNATURE), short(res)
        assert items(res, "resource_link") == [], \
            f"resource_link content is newer than 2025-03-26: {short(res)}"
        assert p.close() == 0
    finally:
        p.kill()


def _ids_by_name(p: StdioMcp) -> dict:
    return {r["name"]: r["uri"] for r in rpc_result(p.rpc("resources/list"))["resources"]}


def test_user_selection_and_isolation():
    """--user, CODECELL_MCP_USER and the default user "mcp" are three users; a model's
    "user_id" argument changes nothing."""
    data_dir = new_dir("stdio-users") / "data"
    a, b = new_user("a"), new_user("b")
    secret = "secret-" + secrets.token_hex(6)

    p = StdioMcp(data_dir, user=b)                      # B stores a file
    try:
        assert_tool_ok(p.call("upload_file", {"filename": f"{secret}.txt", "content": secret}))
        b_uri = _ids_by_name(p)[f"{secret}.txt"]
        b_id = b_uri.removeprefix("codecell://files/")
        assert p.close() == 0
    finally:
        p.kill()

    p = StdioMcp(data_dir, user=a)                      # A, prompt-injected, tries B's file
    try:
        assert_tool_ok(p.call("upload_file", {"filename": "mine.txt", "content": "A's"}))
        listed = assert_tool_ok(p.call("list_files", {"user_id": b}))
        assert "mine.txt" in listed and secret not in listed and b_id not in listed, listed
        assert set(_ids_by_name(p)) == {"mine.txt"}
        rpc_error(p.rpc("resources/read", {"uri": b_uri}), RESOURCE_NOT_FOUND)
        out = assert_tool_ok(p.call("execute_python_code", {
            "user_id": b, "code": "import os\nprint(sorted(os.listdir('/mnt/data')))"}))
        assert "mine.txt" in out and secret not in out, out
        assert_tool_error(p.call("delete_file", {"file_id": b_id, "user_id": b}))
        assert_tool_error(p.call("execute_python_code",
                                 {"user_id": b, "code": f"print(load_file({b_id!r}))"}))
        assert p.close() == 0
    finally:
        p.kill()

    p = StdioMcp(data_dir, env={"CODECELL_MCP_USER": b})   # B again, by environment
    try:
        listed = assert_tool_ok(p.call("list_files"))
        assert secret in listed and "mine.txt" not in listed, listed
        read = rpc_result(p.rpc("resources/read", {"uri": b_uri}))["contents"][0]
        assert read["uri"] == b_uri and read.get("text") == secret, read
        assert p.close() == 0
    finally:
        p.kill()

    p = StdioMcp(data_dir)                              # the default user, "mcp"
    try:
        assert _ids_by_name(p) == {}
        assert_tool_ok(p.call("upload_file", {"filename": "default.txt", "content": "d"}))
        assert p.close() == 0
    finally:
        p.kill()

    p = StdioMcp(data_dir, user="mcp")
    try:
        assert set(_ids_by_name(p)) == {"default.txt"}
        assert p.close() == 0
    finally:
        p.kill()


@pytest.mark.parametrize("how", ["flag", "env"])
def test_invalid_user_is_refused(how):
    import subprocess
    from .conftest import BIN
    bad = "../../etc"
    cmd = [str(BIN), "mcp", "--data-dir", str(new_dir("stdio-bad") / "data")]
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("CODECELL_")}
    if how == "flag":
        cmd += ["--user", bad]
    else:
        env["CODECELL_MCP_USER"] = bad
    p = subprocess.run(cmd, input=b'{"jsonrpc": "2.0", "id": 1, "method": "ping"}\n',
                       capture_output=True, timeout=30, env=env)
    assert p.returncode == 2, (p.returncode, p.stderr[-2000:])
    assert p.stdout == b"", p.stdout[:500]
    assert b"user" in p.stderr, p.stderr[-2000:]
