"""The tools and resources over Streamable HTTP (raw), cross-checked with the REST API."""
import base64
import json
import secrets

import pytest

from .conftest import (PNG_SIGNATURE, RESOURCE_NOT_FOUND, assert_tool_error, assert_tool_ok,
                       image_bytes, items, new_user, rpc_error, rpc_result, short, running_daemon,
                       text_of)

CSV = b"month,sales,cost\nJan,120,80\nFeb,135,90\nMar,150,95\nApr,95,70\nMay,160,100\n"


@pytest.fixture(scope="module")
def d():
    yield from running_daemon("tools")


@pytest.fixture
def s(d):
    return d.mcp(new_user("t"))


def read(s, uri) -> dict:
    contents = rpc_result(s.rpc("resources/read", {"uri": uri}))["contents"]
    assert len(contents) == 1, contents
    assert contents[0]["uri"] == uri, contents
    return contents[0]


def file_named(d, user, name) -> dict:
    matches = [f for f in d.list_files(user) if f["filename"] == name]
    assert len(matches) == 1, d.list_files(user)
    return matches[0]


def test_tools_have_mcp_shape(s):
    tools = rpc_result(s.rpc("tools/list"))["tools"]
    for t in tools:
        assert set(t) >= {"name", "title", "description", "inputSchema", "annotations"}, t
        assert "user_id" not in json.dumps(t["inputSchema"]), f"user_id in {t['name']}"
    ann = {t["name"]: t["annotations"] for t in tools}
    # list_files only reads; delete_file does not
    assert ann["list_files"].get("readOnlyHint") is True, ann
    assert ann["delete_file"].get("readOnlyHint") in (None, False), ann


def test_upload_text_and_base64(d, s):
    blob = bytes(range(256)) * 3
    t1 = assert_tool_ok(s.call("upload_file", {"filename": "data.csv", "content": CSV.decode()}))
    t2 = assert_tool_ok(s.call("upload_file", {"filename": "blob.bin",
                                               "content_base64": base64.b64encode(blob).decode()}))
    f1, f2 = file_named(d, s.user, "data.csv"), file_named(d, s.user, "blob.bin")
    assert f1["file_id"] in t1 and "data.csv" in t1, t1
    assert f2["file_id"] in t2 and "blob.bin" in t2, t2
    assert d.content(s.user, f1["file_id"]).body == CSV
    assert d.content(s.user, f2["file_id"]).body == blob
    # resources: text for CSV, blob for binary
    c1 = read(s, "codecell://files/" + f1["file_id"])
    assert c1.get("text") == CSV.decode() and "blob" not in c1, c1
    assert "csv" in c1["mimeType"], c1
    c2 = read(s, "codecell://files/" + f2["file_id"])
    assert "text" not in c2 and base64.b64decode(c2["blob"]) == blob, short(c2, 300)
    listed = {r["uri"]: r for r in rpc_result(s.rpc("resources/list"))["resources"]}
    assert set(listed) == {"codecell://files/" + f1["file_id"], "codecell://files/" + f2["file_id"]}
    assert listed["codecell://files/" + f2["file_id"]]["size"] == len(blob)
    assert listed["codecell://files/" + f1["file_id"]]["name"] == "data.csv"


def test_upload_bad_arguments(d, s):
    for args in [{"filename": "x.bin", "content_base64": "%%%not-base64%%%"},
                 {"filename": "x.bin", "content_base64": "QUJD!"},
                 {"content": "no filename"},
                 {"filename": "", "content": "empty name"},
                 {"filename": "x.txt", "content": 5}]:
        res = s.call("upload_file", args)
        assert res.get("isError") is True, (args, short(res))
        assert text_of(res).strip(), res
    assert d.list_files(s.user) == []
    # the same session still uploads fine
    assert_tool_ok(s.call("upload_file", {"filename": "ok.txt", "content": "fine"}))
    assert [f["filename"] for f in d.list_files(s.user)] == ["ok.txt"]


def test_json_resource_is_text(d, s):
    doc = {"a": [1, 2, 3], "b": "ü"}
    assert_tool_ok(s.call("upload_file", {"filename": "doc.json", "content": json.dumps(doc)}))
    f = file_named(d, s.user, "doc.json")
    c = read(s, "codecell://files/" + f["file_id"])
    assert c["mimeType"] == "application/json", c
    assert json.loads(c["text"]) == doc, c


def test_list_and_delete(d, s):
    assert_tool_ok(s.call("upload_file", {"filename": "keep.txt", "content": "k"}))
    assert_tool_ok(s.call("upload_file", {"filename": "drop.txt", "content": "d"}))
    keep, drop = file_named(d, s.user, "keep.txt"), file_named(d, s.user, "drop.txt")
    listed = assert_tool_ok(s.call("list_files"))
    for f in (keep, drop):
        assert f["filename"] in listed and f["file_id"] in listed, listed
    text = assert_tool_ok(s.call("delete_file", {"file_id": drop["file_id"]}))
    assert "drop.txt" in text or drop["file_id"] in text, text
    assert [f["filename"] for f in d.list_files(s.user)] == ["keep.txt"]
    listed = assert_tool_ok(s.call("list_files"))
    assert "drop.txt" not in listed and "keep.txt" in listed, listed
    rpc_error(s.rpc("resources/read", {"uri": "codecell://files/" + drop["file_id"]}),
              RESOURCE_NOT_FOUND)
    assert d.content(s.user, drop["file_id"]).status == 404
    assert_tool_error(s.call("delete_file", {"file_id": drop["file_id"]}))
    assert_tool_error(s.call("delete_file", {}))


def test_execution_failures_are_tool_errors(s):
    text = assert_tool_error(s.call("execute_python_code", {"code": "import sys\nsys.exit(3)"}))
    assert "3" in text, text
    text = assert_tool_error(s.call("execute_python_code",
                                    {"code": "import time\nprint('before', flush=True)\n"
                                             "time.sleep(30)", "timeout": 2}))
    assert "timeout" in text.lower() and "before" in text, text
    text = assert_tool_error(s.call("execute_python_code", {"code": "def f(:\n  pass"}))
    assert "SyntaxError" in text, text
    text = assert_tool_error(s.call("execute_python_code", {}))
    assert "code" in text, text
    # exit 0 is a success
    text = assert_tool_ok(s.call("execute_python_code",
                                 {"code": "import sys\nprint('bye')\nsys.exit(0)"}))
    assert "bye" in text, text


def test_generated_files_images_and_links(d, s):
    code = (
        "import numpy as np, matplotlib\nmatplotlib.use('Agg')\n"
        "import matplotlib.pyplot as plt\n"
        "plt.plot([1, 3, 2]); plt.savefig('small.png')\n"
        "plt.imsave('big.png', np.random.default_rng(1).random((1500, 1500, 3)))\n"
        "open('table.csv', 'w').write('x,y\\n1,2\\n')\n"
        "import os; print('BIG', os.path.getsize('big.png'))\n")
    res = s.call("execute_python_code", {"code": code})
    text = assert_tool_ok(res)
    big_size = int(text.split("BIG ", 1)[1].split()[0])
    assert big_size > 4 * 1024 * 1024, f"test setup: big.png is only {big_size} bytes"
    imgs = items(res, "image")
    assert len(imgs) == 1, f"only the small PNG is inline: {[i.get('mimeType') for i in imgs]}"
    small = image_bytes(imgs[0])
    assert small.startswith(PNG_SIGNATURE)
    links = {l["name"]: l for l in items(res, "resource_link")}
    assert set(links) == {"small.png", "big.png", "table.csv"}, short(res)
    assert links["big.png"]["size"] == big_size and links["big.png"]["mimeType"] == "image/png"
    assert links["small.png"]["size"] == len(small)
    assert links["table.csv"]["mimeType"].startswith("text/csv"), links["table.csv"]
    for name, l in links.items():
        fid = l["uri"].removeprefix("codecell://files/")
        assert fid in text, (name, text)
        rest = file_named(d, s.user, name)
        assert rest["file_id"] == fid, (rest, l)
    assert base64.b64decode(read(s, links["small.png"]["uri"])["blob"]) == small
    assert read(s, links["table.csv"]["uri"])["text"] == "x,y\n1,2\n"
    big = read(s, links["big.png"]["uri"])
    assert base64.b64decode(big["blob"]) == d.content(s.user, links["big.png"]["uri"]
                                                      .removeprefix("codecell://files/")).body


def test_old_protocol_gets_no_links(d):
    s = d.mcp(new_user("old"), protocol="2025-03-26")
    res = s.call("execute_python_code", {
        "code": "import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n"
                "plt.plot([1, 2]); plt.savefig('p.png')"})
    assert_tool_ok(res)
    assert len(items(res, "image")) == 1, short(res)
    assert items(res, "resource_link") == [], short(res)
    s2 = d.mcp(new_user("new"), protocol="2025-06-18")
    res2 = s2.call("execute_python_code", {"code": "open('n.txt', 'w').write('n')"})
    assert [l["name"] for l in items(res2, "resource_link")] == ["n.txt"], short(res2)


def test_analyze_data_file(d, s):
    assert_tool_ok(s.call("upload_file", {"filename": "sales.csv", "content": CSV.decode()}))
    f = file_named(d, s.user, "sales.csv")
    text = assert_tool_ok(s.call("analyze_data_file", {"file_id": f["file_id"],
                                                       "analysis_type": "summary"}))
    assert "Summary analysis of sales.csv" in text and "month" in text, text
    res = s.call("analyze_data_file", {"file_id": "sales.csv", "analysis_type": "correlation"})
    assert_tool_ok(res)
    imgs = items(res, "image")
    assert imgs and all(image_bytes(i).startswith(PNG_SIGNATURE) for i in imgs), short(res)
    assert "sales_correlation.png" in [l["name"] for l in items(res, "resource_link")], short(res)
    assert_tool_error(s.call("analyze_data_file", {"file_id": f["file_id"],
                                                   "analysis_type": "astrology"}))
    assert_tool_error(s.call("analyze_data_file", {"file_id": secrets.token_urlsafe(18)}))


def test_image_types_inline(s):
    """png/jpeg/gif/webp come back as image content; SVG (not in that list) only as a link."""
    res = s.call("execute_python_code", {"code": (
        "import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n"
        "from PIL import Image\n"
        "plt.plot([1, 2])\nplt.savefig('p.jpg'); plt.savefig('p.webp'); plt.savefig('p.svg')\n"
        "Image.new('RGB', (8, 8), (255, 0, 0)).save('p.gif')\nprint('ok')")})
    assert_tool_ok(res)
    by_mime = {i["mimeType"]: image_bytes(i) for i in items(res, "image")}
    assert set(by_mime) == {"image/jpeg", "image/webp", "image/gif"}, short(res)
    assert by_mime["image/jpeg"].startswith(b"\xff\xd8\xff")
    assert by_mime["image/gif"].startswith(b"GIF8")
    assert by_mime["image/webp"][:4] == b"RIFF" and by_mime["image/webp"][8:12] == b"WEBP"
    links = {l["name"]: l["mimeType"] for l in items(res, "resource_link")}
    assert set(links) == {"p.jpg", "p.webp", "p.svg", "p.gif"}, links
    assert links["p.svg"].startswith("image/svg"), links


def test_tool_answers_say_what_made_room():
    """Issue 18: over the per-user cap the oldest generated file makes room, and both the
    upload_file answer and execute_python_code's text say which file is gone."""
    from .conftest import start_daemon
    d = start_daemon("quota", config={"files": {"max_files_per_user": 2}})
    try:
        s = d.mcp(new_user("q"))
        first = assert_tool_ok(s.call("upload_file", {"filename": "sales.csv", "content": "x"}))
        assert "Removed to make room" not in first, first
        ran = assert_tool_ok(s.call("execute_python_code",
                                    {"code": "open('/mnt/data/plot_1.png', 'wb').write(b'1')"}))
        assert "plot_1.png" in ran and "Removed to make room" not in ran, ran
        up = assert_tool_ok(s.call("upload_file", {"filename": "more.csv", "content": "y"}))
        assert "Removed to make room" in up and "plot_1.png" in up.split("Removed")[1], up
        assert [f["filename"] for f in d.list_files(s.user)] == ["sales.csv", "more.csv"]
    finally:
        assert d.stop() == 0
