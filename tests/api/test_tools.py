"""Tool definitions and the tool-call endpoint (issue 6): tool calls replayed in the exact shape
OpenAI's chat completions API returns them (`arguments` is a JSON *string*), including what models
get wrong: arguments that are not JSON, a missing `code`, another user's file id, a `user_id`
smuggled into the arguments, output far over the budget, a tool that does not exist."""
import json
import uuid

from .conftest import new_user


def call(name, arguments, call_id=None):
    """A tool call as OpenAI returns it in choices[0].message.tool_calls[i]."""
    return {"id": call_id or "call_" + uuid.uuid4().hex[:24], "type": "function",
            "function": {"name": name,
                         "arguments": arguments if isinstance(arguments, str)
                         else json.dumps(arguments)}}


def tool(daemon, user, tool_call):
    r = daemon.json("POST", "/v1/tool-calls", {"user_id": user, "tool_call": tool_call})
    assert r.status == 200, r
    out = r.json()
    msg = out["message"]
    assert msg["role"] == "tool" and msg["tool_call_id"] == tool_call.get("id", ""), out
    assert isinstance(msg["content"], str) and msg["content"], out
    return out


def test_tool_definitions_are_openai_functions(daemon):
    r = daemon.json("GET", "/v1/tools")
    assert r.status == 200, r
    tools = r.json()["tools"]
    names = [t["function"]["name"] for t in tools]
    assert names == ["execute_python_code", "analyze_data_file", "list_files", "delete_file"]
    for t in tools:
        assert t["type"] == "function"
        f = t["function"]
        assert len(f["description"]) > 40 and f["parameters"]["type"] == "object"
        assert set(f["parameters"]["required"]) <= set(f["parameters"]["properties"])
    execute = tools[0]["function"]
    assert "/mnt/data" in execute["description"] and "load_file" in execute["description"]
    assert set(execute["parameters"]["properties"]) == {"code", "timeout", "install_packages"}
    assert "user_id" not in json.dumps(tools)
    analysis = tools[1]["function"]["parameters"]["properties"]["analysis_type"]["enum"]
    assert analysis == ["summary", "correlation", "distribution", "comprehensive"]


def test_execute_returns_stdout_stderr_traceback_and_files(daemon):
    user = new_user()
    code = ("import matplotlib.pyplot as plt\nprint('before')\nplt.plot([1, 2, 3])\n"
            "plt.savefig('line.png')\nraise ValueError('bad value')\n")
    out = tool(daemon, user, call("execute_python_code", {"code": code}))
    content = out["message"]["content"]
    assert "Status: error" in content and "exit code 1" in content, content
    assert "before" in content
    assert "ValueError: bad value" in content and 'File "<code>", line 5' in content, content
    assert "line.png" in content
    [att] = out["attachments"]
    assert att["filename"] == "line.png" and att["mime_type"] == "image/png"
    got = daemon.request("GET", att["download_path"])
    assert got.status == 200 and got.body.startswith(b"\x89PNG"), got
    assert out["result"]["status"] == "error"


def test_user_id_in_the_arguments_is_ignored(daemon):
    victim, attacker = new_user("victim"), new_user("attacker")
    secret = daemon.upload_ok(victim, "secret.csv", b"a,b\n1,2\n")
    out = tool(daemon, attacker, call("execute_python_code", {
        "code": "import os\nprint(sorted(os.listdir('/mnt/data')))", "user_id": victim}))
    assert "secret.csv" not in out["message"]["content"], out
    assert out["result"]["output"].strip() == "[]", out
    listed = tool(daemon, attacker, call("list_files", {"user_id": victim}))
    assert "secret.csv" not in listed["message"]["content"], listed
    gone = tool(daemon, attacker, call("delete_file", {"file_id": secret["file_id"],
                                                        "user_id": victim}))
    assert gone["message"]["content"].startswith("Error"), gone
    assert [f["file_id"] for f in daemon.list_files(victim)] == [secret["file_id"]]


def test_malformed_calls_get_a_tool_message_saying_so(daemon):
    user = new_user()
    cases = [
        (call("execute_python_code", "{\"code\": \"print(1)\""), "not valid JSON"),
        (call("execute_python_code", "[1, 2]"), "must be a JSON object"),
        (call("execute_python_code", {"source": "print(1)"}), "\"code\""),
        (call("execute_python_code", {"code": 42}), "\"code\""),
        (call("execute_python_code", {"code": "print(1)", "timeout": "soon"}), "timeout"),
        (call("no_such_tool", {}), "no tool named 'no_such_tool'"),
        (call("analyze_data_file", {"file_id": "x", "analysis_type": "vibes"}), "analysis_type"),
        (call("delete_file", {}), "file_id"),
        ({"id": "call_x", "type": "function", "function": {"arguments": "{}"}}, "no function name"),
    ]
    for tool_call, expected in cases:
        out = tool(daemon, user, tool_call)
        content = out["message"]["content"]
        assert content.startswith("Error") and expected in content, (tool_call, content)
    # The bot's own mistakes are HTTP errors.
    for body in ({"tool_call": call("list_files", {})}, {"user_id": user},
                 {"user_id": "bad user", "tool_call": call("list_files", {})}):
        r = daemon.json("POST", "/v1/tool-calls", body)
        assert r.status == 400, (body, r)


def test_empty_arguments_work_for_tools_without_parameters(daemon):
    user = new_user()
    out = tool(daemon, user, call("list_files", ""))
    assert out["message"]["content"] == "The user has no files.", out


def test_output_far_over_budget_is_cut_with_a_note(daemon):
    user = new_user()
    code = ("import sys\nprint('HEAD-MARK')\nprint('x' * 200000)\nprint('TAIL-MARK')\n"
            "sys.stderr.write('E' * 50000 + '\\nLAST-ERROR-LINE\\n')\n")
    out = tool(daemon, user, call("execute_python_code", {"code": code}))
    content = out["message"]["content"]
    assert len(content) < 2 * 8000 + 2000, len(content)
    assert "HEAD-MARK" in content and "characters cut here" in content, content[:300]
    assert "LAST-ERROR-LINE" in content  # the end of stderr is kept
    assert "the service also cut this stream" in content  # stdout was over 100,000 too


def test_files_by_id_or_name_and_a_foreign_file(daemon):
    owner, other = new_user("owner"), new_user("other")
    f = daemon.upload_ok(owner, "sales.csv",
                         b"month,sales,cost,region\n1,10,5,a\n2,30,14,b\n3,20,11,a\n4,50,26,b\n")
    listed = tool(daemon, owner, call("list_files", {}))
    assert f["file_id"] in listed["message"]["content"], listed
    by_name = tool(daemon, owner, call("analyze_data_file", {"file_id": "sales.csv"}))
    assert "Status: success" in by_name["message"]["content"], by_name
    assert "sales" in by_name["message"]["content"] and "region" in by_name["message"]["content"]
    corr = tool(daemon, owner, call("analyze_data_file", {"file_id": f["file_id"],
                                                          "analysis_type": "correlation"}))
    assert "0.994" in corr["message"]["content"], corr["message"]["content"]
    assert [a["filename"] for a in corr["attachments"]] == ["sales_correlation.png"], corr
    foreign = tool(daemon, other, call("analyze_data_file", {"file_id": f["file_id"]}))
    assert foreign["message"]["content"].startswith("Error: the user has no file"), foreign
    assert foreign["result"] is None
    deleted = tool(daemon, owner, call("delete_file", {"file_id": f["file_id"]}))
    assert deleted["message"]["content"] == f"Deleted sales.csv (file_id {f['file_id']}).", deleted
    assert f["file_id"] not in [x["file_id"] for x in daemon.list_files(owner)]
