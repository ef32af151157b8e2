"""The acceptance test: the official TypeScript SDK's client (sdk_client.mjs) against codecell over
BOTH transports (stdio: ``codecell mcp``; Streamable HTTP: ``/mcp`` on ``codecell serve``).

One ``main`` scenario per transport runs once per module; each test asserts one part of what the
client observed."""
import base64

import pytest

from .conftest import (BIN, INVALID_PARAMS, LATEST, PNG_SIGNATURE, RESOURCE_NOT_FOUND, TOOL_NAMES,
                       image_bytes, items, new_dir, new_user, require_sdk, run_sdk, short,
                       running_daemon, start_daemon, text_of)

CSV_NAME = "sales.csv"
CSV_TEXT = "month,sales\nJan,120\nFeb,135\nMar,150\nApr,95\n"
PLOT_CODE = """\
import pandas as pd
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
df = load_file("sales.csv")
df2 = pd.read_csv("/mnt/data/sales.csv")
assert list(df2.columns) == ["month", "sales"], list(df2.columns)
print("rows", len(df), "total", int(df2["sales"].sum()), "same", bool(df.equals(df2)))
plt.plot(df2["month"], df2["sales"])
plt.title("Sales")
plt.savefig("sales.png")
"""
PLOT_OUTPUT = "rows 4 total 500 same True"
FAIL_CODE = "x = 1\nraise ValueError('boom')\n"
SLEEP_CODE = "import time\nprint('start', flush=True)\ntime.sleep(8)\nprint('slept 8')\n"
DATA = {"csv_name": CSV_NAME, "csv_text": CSV_TEXT, "plot_code": PLOT_CODE,
        "fail_code": FAIL_CODE, "sleep_code": SLEEP_CODE}


@pytest.fixture(scope="module")
def http_daemon():
    yield from running_daemon("sdk-http")


_REPORTS = {}


def _scenario(kind, request):
    """(transport, report, context) of the main scenario over that transport, run once."""
    require_sdk()
    if kind not in _REPORTS:
        user = new_user("sdk")
        if kind == "stdio":
            data_dir = new_dir("sdk-stdio") / "data"
            target = ["--stdio", "--", str(BIN), "mcp", "--user", user,
                      "--data-dir", str(data_dir)]
            ctx = {"user": user, "data_dir": data_dir}
        else:
            d = request.getfixturevalue("http_daemon")
            target = ["--http", f"{d.url}/mcp?user_id={user}"]
            ctx = {"user": user, "daemon": d}
        report = run_sdk(target, "main", DATA)
        server_err = report.get("stderr") or (ctx["daemon"].stderr(3000) if "daemon" in ctx
                                              else "")
        ctx["where"] = f"\nSDK stderr: {report['_stderr']}\nserver stderr: {server_err}"
        _REPORTS[kind] = (kind, report, ctx)
    return _REPORTS[kind]


@pytest.fixture(scope="module", params=["stdio", "http"])
def sdk(request):
    return _scenario(request.param, request)


@pytest.fixture(scope="module")
def sdk_http(request):
    return _scenario("http", request)


def ok_step(report, name, ctx) -> dict:
    rec = report["steps"].get(name)
    assert rec is not None, f"step {name} never ran (fatal: {report.get('fatal')}; steps: " \
                            f"{list(report['steps'])}){ctx['where']}"
    assert rec["ok"], f"step {name} failed: {short(rec)}{ctx['where']}"
    return rec


def err_step(report, name, ctx) -> dict:
    rec = report["steps"].get(name)
    assert rec is not None, f"step {name} never ran{ctx['where']}"
    assert not rec["ok"], f"step {name} should have failed with a JSON-RPC error: {short(rec)}"
    return rec["error"]


def links(result) -> list:
    return items(result, "resource_link")


def test_connects_and_negotiates(sdk):
    kind, report, ctx = sdk
    assert report["fatal"] is None, f"{report['fatal']}{ctx['where']}"
    assert report["connected"], f"{short(report['steps'].get('connect'))}{ctx['where']}"
    assert report["server_version"]["name"] == "codecell", report["server_version"]
    assert isinstance(report["server_version"].get("version"), str)
    caps = report["server_capabilities"]
    assert "tools" in caps and "resources" in caps, caps
    # the SDK asks for the latest revision, which codecell supports
    assert report["init_result"]["protocolVersion"] == LATEST, report["init_result"]
    if kind == "http":
        assert report["protocol_version"] == LATEST
        assert isinstance(report["session_id"], str) and report["session_id"], report


def test_tools_list(sdk):
    kind, report, ctx = sdk
    tools = ok_step(report, "list_tools", ctx)["result"]["tools"]
    by_name = {t["name"]: t for t in tools}
    assert set(by_name) == TOOL_NAMES, sorted(by_name)
    for t in tools:
        assert isinstance(t.get("title"), str) and t["title"], t
        assert isinstance(t.get("description"), str) and len(t["description"]) > 20, t
        assert t["inputSchema"]["type"] == "object", t
        assert isinstance(t.get("annotations"), dict), t
        props = t["inputSchema"].get("properties", {})
        assert "user_id" not in props and "user" not in props, \
            f"the user must not be a tool parameter: {t}"
    ex = by_name["execute_python_code"]["inputSchema"]
    assert {"code", "timeout", "install_packages"} <= set(ex["properties"]), ex
    assert ex.get("required") == ["code"], ex
    up = by_name["upload_file"]["inputSchema"]
    assert {"filename", "content", "content_base64"} <= set(up["properties"]), up
    assert "filename" in up.get("required", []), up
    an = by_name["analyze_data_file"]["inputSchema"]["properties"]
    assert set(an["analysis_type"]["enum"]) == {"summary", "correlation", "distribution",
                                                "comprehensive"}, an
    assert "file_id" in by_name["delete_file"]["inputSchema"]["properties"]


def _resources(report, ctx):
    return ok_step(report, "list_resources", ctx)["result"]["resources"]


def test_upload_file(sdk):
    kind, report, ctx = sdk
    res = ok_step(report, "upload", ctx)["result"]
    text = text_of(res)
    assert res.get("isError") in (None, False), short(res)
    assert CSV_NAME in text, text
    csvs = [r for r in _resources(report, ctx) if r["name"] == CSV_NAME]
    assert len(csvs) == 1, _resources(report, ctx)
    file_id = csvs[0]["uri"].removeprefix("codecell://files/")
    assert file_id and file_id in text, f"upload text does not name the file id {file_id}: {text}"
    assert csvs[0]["size"] == len(CSV_TEXT.encode())
    if kind == "http":
        rest = {f["file_id"]: f for f in ctx["daemon"].list_files(ctx["user"])}
        assert file_id in rest and rest[file_id]["filename"] == CSV_NAME, rest
        r = ctx["daemon"].content(ctx["user"], file_id)
        assert r.status == 200 and r.body == CSV_TEXT.encode(), r


def test_execute_plot_returns_text_image_and_link(sdk):
    kind, report, ctx = sdk
    res = ok_step(report, "execute", ctx)["result"]
    assert res.get("isError") in (None, False), short(res)
    text = text_of(res)
    assert PLOT_OUTPUT in text, text
    imgs = items(res, "image")
    assert len(imgs) == 1, short(res)
    assert imgs[0]["mimeType"] == "image/png", imgs[0].keys()
    png = image_bytes(imgs[0])
    assert png.startswith(PNG_SIGNATURE), png[:16]
    ls = links(res)
    assert [l["name"] for l in ls] == ["sales.png"], short(res)
    link = ls[0]
    assert link["uri"].startswith("codecell://files/"), link
    file_id = link["uri"].removeprefix("codecell://files/")
    assert file_id and "/" not in file_id, link
    assert link["mimeType"] == "image/png", link
    assert link["size"] == len(png), (link, len(png))
    assert file_id in text, f"the text does not name the generated file's id {file_id}: {text}"
    # order: text first, then images, then links
    kinds = [c["type"] for c in res["content"]]
    assert kinds == ["text", "image", "resource_link"], kinds


def test_read_generated_image(sdk):
    kind, report, ctx = sdk
    res = ok_step(report, "execute", ctx)["result"]
    png = image_bytes(items(res, "image")[0])
    uri = links(res)[0]["uri"]
    read = ok_step(report, "read:" + uri, ctx)["result"]
    contents = read["contents"]
    assert len(contents) == 1, short(read)
    c = contents[0]
    assert c["uri"] == uri and c["mimeType"] == "image/png", short(c, 500)
    assert "text" not in c, "a PNG must come back as a blob"
    assert base64.b64decode(c["blob"], validate=True) == png
    if kind == "http":
        file_id = uri.removeprefix("codecell://files/")
        r = ctx["daemon"].content(ctx["user"], file_id)
        assert r.status == 200, r
        assert r.body == png, "REST content differs from the MCP image"


def test_resources_list(sdk):
    kind, report, ctx = sdk
    resources = _resources(report, ctx)
    names = sorted(r["name"] for r in resources)
    assert names == ["sales.csv", "sales.png"], short(resources)
    for r in resources:
        assert r["uri"].startswith("codecell://files/") and len(r["uri"]) > 20, r
        assert isinstance(r.get("mimeType"), str) and "/" in r["mimeType"], r
        assert isinstance(r.get("size"), int) and r["size"] > 0, r
    png = next(r for r in resources if r["name"] == "sales.png")
    assert png["mimeType"] == "image/png"
    exec_link = links(ok_step(report, "execute", ctx)["result"])[0]
    assert png["uri"] == exec_link["uri"]


def test_failing_call_is_a_tool_error(sdk):
    kind, report, ctx = sdk
    res = ok_step(report, "fail", ctx)["result"]
    assert res.get("isError") is True, short(res)
    text = text_of(res)
    assert "Traceback" in text and "ValueError: boom" in text, text
    assert items(res, "image") == [] and links(res) == [], short(res)


def test_progress_notifications(sdk):
    kind, report, ctx = sdk
    rec = ok_step(report, "progress", ctx)
    res = rec["result"]
    assert res.get("isError") in (None, False), short(res)
    assert "slept 8" in text_of(res), text_of(res)
    prog = rec["progress"]
    assert len(prog) >= 1, f"no progress notification during an 8 s execution ({rec['ms']} ms)"
    values = [p["progress"] for p in prog]
    assert all(b > a for a, b in zip(values, values[1:])), values
    assert all(isinstance(p.get("message"), str) and p["message"] for p in prog), prog
    # delivered while the call ran, not with the response
    assert prog[0]["at_ms"] < rec["ms"] - 1000, (prog, rec["ms"])


def test_unknown_tool_is_invalid_params(sdk):
    kind, report, ctx = sdk
    err = err_step(report, "unknown_tool", ctx)
    assert err.get("code") == INVALID_PARAMS, err


def test_unknown_resource_is_not_found(sdk):
    kind, report, ctx = sdk
    err = err_step(report, "unknown_resource", ctx)
    assert err.get("code") == RESOURCE_NOT_FOUND, err


def test_ping_and_close(sdk):
    kind, report, ctx = sdk
    assert ok_step(report, "ping", ctx)["result"] == {}
    if kind == "http":
        assert ok_step(report, "terminate", ctx)["result"]["session_after"] is None
    ok_step(report, "close", ctx)
    assert report["_exit"] == 0, report["_stderr"]


def test_http_files_belong_to_the_url_user(sdk_http):
    kind, report, ctx = sdk_http
    d = ctx["daemon"]
    names = sorted(f["filename"] for f in d.list_files(ctx["user"]))
    assert names == ["sales.csv", "sales.png"], names
    assert d.list_files("mcp") == [], "files went to the default user instead of ?user_id="


# --------------------------------------------------------------------------------------------
# API keys, through the SDK's requestInit headers
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def keyed_daemon():
    d = start_daemon("sdk-keys", config={"api_keys": ["k1-" + new_user("key")]})
    yield d
    d.stop()


def test_sdk_with_api_key(keyed_daemon):
    d = keyed_daemon
    user = new_user("sdk")
    good = run_sdk(["--http", f"{d.url}/mcp?user_id={user}"], "smoke",
                   headers={"Authorization": f"Bearer {d.api_key}"})
    assert good["connected"], short(good) + d.stderr(2000)
    assert {t["name"] for t in good["steps"]["list_tools"]["result"]["tools"]} == TOOL_NAMES
    assert good["steps"]["ping"]["ok"], short(good)

    bad = run_sdk(["--http", f"{d.url}/mcp?user_id={user}"], "smoke",
                  headers={"Authorization": "Bearer wrong"})
    assert not bad["connected"], short(bad)
    assert bad["steps"]["connect"]["error"].get("code") == 401, short(bad["steps"]["connect"])

    none = run_sdk(["--http", f"{d.url}/mcp?user_id={user}"], "smoke")
    assert not none["connected"], short(none)
    assert none["steps"]["connect"]["error"].get("code") == 401, short(none["steps"]["connect"])
