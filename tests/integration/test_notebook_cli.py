"""Notebook output through the real sandbox, cold (`codecell run --json`): the display pipe
(fd 4 inside), the `outputs` list, and what the code can and cannot do with that pipe."""
import os

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def streams(r):
    return [(o["name"], o["text"]) for o in r["outputs"] if o["type"] == "stream"]


def test_outputs_interleave_prints_values_and_figures(run_json):
    code = ("import matplotlib.pyplot as plt\nprint('a')\nplt.plot([1, 2]); plt.show()\n"
            "print('b')\nx = 41\nx + 1\n")
    r = run_json(code)
    assert r["status"] == "ok", r["error"]
    assert r["output"] == "a\nb\n42\n"  # v1: the value is in `output` too
    kinds = [o["type"] for o in r["outputs"]]
    assert kinds == ["stream", "display_data", "stream", "execute_result"], r["outputs"]
    assert r["outputs"][0]["text"] == "a\n" and r["outputs"][2]["text"] == "b\n"
    assert r["outputs"][3]["data"] == {"text/plain": "42"}
    [png] = r["generated_files"]
    assert png["filename"] == "figure_1.png"
    assert r["outputs"][1]["file_id"] == png["file_id"]
    assert r["outputs"][1]["mime_type"] == "image/png"
    with open(png["path"], "rb") as f:
        assert f.read(8) == PNG_MAGIC
    assert r["truncated"]["outputs"] is False


def test_error_item_and_stderr(run_json):
    r = run_json("import sys\nprint('warn', file=sys.stderr)\nx = 1\n1 / 0\n")
    assert r["status"] == "error" and r["return_code"] == 1
    assert 'File "<code>", line 4, in <module>' in r["error"]
    error = r["outputs"][-1]
    assert error["type"] == "error" and error["ename"] == "ZeroDivisionError"
    assert any('File "<code>", line 4' in line for line in error["traceback"])
    # the traceback is the error item's, not a second time a stderr stream
    assert streams(r) == [("stderr", "warn\n")]


def test_plain_print_has_one_stream_item(run_json):
    r = run_json("print('hello')")
    assert r["outputs"] == [{"type": "stream", "name": "stdout", "text": "hello\n"}]


def test_display_pipe_is_write_only_and_not_inherited(run_json):
    code = ("import fcntl, os, subprocess, sys\n"
            "flags = fcntl.fcntl(4, fcntl.F_GETFL) & os.O_ACCMODE\n"
            "try:\n    os.read(4, 1); readable = True\nexcept OSError:\n    readable = False\n"
            "child = subprocess.run([sys.executable, '-c', 'import os; os.fstat(4)'],"
            " capture_output=True).returncode\n"
            "print(flags == os.O_WRONLY, readable, child)\n")
    r = run_json(code)
    assert r["output"].endswith("True False 1\n"), r


def test_forged_items_only_touch_their_own_result(run_json, tmp_path):
    secret = tmp_path / "host-secret.png"
    secret.write_bytes(PNG_MAGIC + b"host")
    code = ("import os, json\n"
            "open('mine.png', 'wb').write(b'x')\n"
            "items = [{'type': 'display_data', 'file': %r},\n"
            "         {'type': 'display_data', 'file': '../../../../etc/passwd'},\n"
            "         {'type': 'display_data', 'file': 'mine.png'},\n"
            "         {'type': 'stream', 'name': 'stdout', 'text': 'forged'},\n"
            "         {'type': 'execute_result', 'data': {'text/plain': 1}}]\n"
            "os.write(4, b'garbage\\n\\xff\\n[[[[[[\\n' + ''.join(json.dumps(i) + '\\n' for i in items)"
            ".encode())\n") % str(secret)
    r = run_json(code)
    assert r["status"] == "ok", r["error"]
    shown = [o for o in r["outputs"] if o["type"] == "display_data"]
    # the forged names select nothing outside the execution's own generated files
    assert [o.get("file_id") for o in shown] == [None, None, r["generated_files"][0]["file_id"]]
    assert [g["filename"] for g in r["generated_files"]] == ["mine.png"]
    assert "forged" not in str(r["outputs"])


def test_flooding_the_pipe_is_cut_and_the_run_ends(run_json):
    code = ("import os\nline = b'{\"type\": \"display_data\", \"data\": {\"text/plain\": \"'"
            " + b'x' * 1000 + b'\"}}\\n'\nfor _ in range(20000):\n    os.write(4, line)\n"
            "print('done')\n")
    r = run_json(code, "--timeout", "60")
    assert r["status"] == "ok", r["error"]
    assert r["output"] == "done\n"
    assert r["truncated"]["outputs"] is True
    assert 0 < sum(o["type"] == "display_data" for o in r["outputs"]) <= 500
    assert r["execution_time"] < 30


def test_closing_the_pipe_only_loses_the_items(run_json):
    r = run_json("import os\nos.close(4)\nprint('still here')\n6 * 7\n")
    assert r["status"] == "ok", r["error"]
    assert r["output"] == "still here\n42\n"
    assert [o["type"] for o in r["outputs"]] == ["stream"]
