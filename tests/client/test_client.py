"""CodecellClient against a live ``codecell serve``."""
import asyncio
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from .conftest import CLIENT_SRC, new_dir, new_user

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
OLD_RESULT_KEYS = {"success", "output", "error", "execution_time", "return_code",
                   "generated_files", "installed_packages", "failed_packages"}
OLD_STATUS_KEYS = {"venv_exists", "python_path", "installed_packages", "package_count",
                   "last_cleanup", "total_user_files", "total_file_size_mb",
                   "file_expiration_hours", "max_file_size_mb"}


def run(daemon, fn):
    """asyncio.run(fn(client)) with a client for this daemon."""
    from codecell_client import CodecellClient

    async def main():
        async with CodecellClient(daemon.url, timeout=180) as client:
            return await fn(client)
    return asyncio.run(main())


def test_upload_execute_load_file_and_download(daemon, user, tmp_path):
    csv = tmp_path / "sales.csv"
    csv.write_text("region,amount\nnorth,10\nsouth,32\n")

    async def go(c):
        info = await c.upload_file(user, csv)
        info2 = await c.upload_file(user, b"hello bytes", filename="note.txt")
        code = (f"df = load_file({info['file_id']!r})\n"
                "print('total', df['amount'].sum())\n"
                "open('/mnt/data/out.txt', 'w').write('made by code')\n")
        res = await c.execute_code(code, user, user_files=[info["file_id"]], timeout=60)
        gen = res["generated_files"]
        data = await c.download_file(user, gen[0]["file_id"]) if gen else None
        orig = await c.download_file(user, info2["file_id"])
        return info, info2, res, data, orig

    info, info2, res, data, orig = run(daemon, go)
    assert info["filename"] == "sales.csv" and info["user_id"] == user, info
    assert info2["filename"] == "note.txt" and info2["file_size"] == 11, info2
    assert OLD_RESULT_KEYS <= set(res), res
    assert res["success"] is True and res["return_code"] == 0, json.dumps(res)[:2000]
    assert "total 42" in res["output"], res
    assert [g["filename"] for g in res["generated_files"]] == ["out.txt"], res
    assert data == b"made by code"
    assert orig == b"hello bytes"


def test_list_and_delete(daemon, user):
    async def go(c):
        a = await c.upload_file(user, b"a", filename="a.txt")
        b = await c.upload_file(user, b"b", filename="b.txt")
        before = await c.list_user_files(user)
        ok = await c.delete_user_file(user, a["file_id"])
        again = await c.delete_user_file(user, a["file_id"])
        after = await c.list_user_files(user)
        return a, b, before, ok, again, after

    a, b, before, ok, again, after = run(daemon, go)
    assert [f["file_id"] for f in before] == [a["file_id"], b["file_id"]]
    assert ok is True and again is False
    assert [f["file_id"] for f in after] == [b["file_id"]]


def test_tool_call_round_trip_with_plot(daemon, user):
    code = ("import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n"
            "plt.plot([1, 2, 3], [1, 4, 9])\nplt.savefig('/mnt/data/plot.png')\nprint('plotted')\n")
    # an openai-python shaped object: .id, .type, .function.name, .function.arguments
    call = SimpleNamespace(id="call_plot", type="function",
                           function=SimpleNamespace(name="execute_python_code",
                                                    arguments=json.dumps({"code": code})))

    async def go(c):
        tools = await c.get_tools()
        out = await c.handle_tool_call(user, call)
        blobs = [await c.download_file(user, a["file_id"]) for a in out["attachments"]]
        as_dict = await c.handle_tool_call(user, {"id": "call_list", "type": "function",
                                                  "function": {"name": "list_files",
                                                               "arguments": "{}"}})
        return tools, out, blobs, as_dict

    tools, out, blobs, as_dict = run(daemon, go)
    names = {t["function"]["name"] for t in tools}
    assert {"execute_python_code", "analyze_data_file", "list_files", "delete_file"} <= names
    msg = out["message"]
    assert msg["role"] == "tool" and msg["tool_call_id"] == "call_plot", out
    assert "plotted" in msg["content"], msg
    assert [a["filename"] for a in out["attachments"]] == ["plot.png"], out
    assert blobs[0].startswith(PNG_SIGNATURE)
    assert as_dict["message"]["tool_call_id"] == "call_list"
    assert "plot.png" in as_dict["message"]["content"], as_dict


def test_status_and_cleanup(daemon):
    async def go(c):
        return await c.get_interpreter_status(), await c.cleanup_expired_files(), await c.health()

    status, cleanup, healthy = run(daemon, go)
    assert OLD_STATUS_KEYS <= set(status), status
    assert {"deleted_files", "venv_recreated", "timestamp"} <= set(cleanup), cleanup
    assert healthy is True


def test_errors(daemon, user):
    from codecell_client import CodecellError

    async def go(c):
        other = new_user("other")
        foreign = await c.upload_file(other, b"secret", filename="s.txt")
        errors = []
        for coro in (c.download_file(user, foreign["file_id"]),
                     c.execute_code("print(1)", user, user_files=[foreign["file_id"]]),
                     c.execute_code("print(1)", "bad user id!"),
                     c.execute_code("print(1)", user, timeout=10 ** 6)):
            try:
                await coro
                errors.append(None)
            except CodecellError as e:
                errors.append(e)
        return errors

    e404a, e404b, e400a, e400b = run(daemon, go)
    for e in (e404a, e404b):
        assert e is not None and e.status == 404 and e.code == "not_found", e
    for e in (e400a, e400b):
        assert e is not None and e.status == 400 and e.code and e.message, e
    assert e404a.retry_after is None


def test_install_refused_package(daemon, user):
    async def go(c):
        return await c.install_packages(["requests"], user_id=user)

    res = run(daemon, go)
    assert res["installed_packages"] == [], res
    failed = res["failed_packages"]
    assert [f["name"] for f in failed] == ["requests"], res
    assert "allowlist" in failed[0]["reason"], res


def test_retry_after_on_429():
    """CodecellError carries Retry-After from a 429 (a local stub server, no daemon needed)."""
    from aiohttp import web
    from codecell_client import CodecellClient, CodecellError

    async def main():
        async def busy(request):
            return web.json_response({"error": {"code": "too_many_requests",
                                                "message": "queue full"}},
                                     status=429, headers={"Retry-After": "3"})
        app = web.Application()
        app.router.add_post("/v1/executions", busy)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            async with CodecellClient(f"http://127.0.0.1:{port}", api_key="k") as c:
                with pytest.raises(CodecellError) as ei:
                    await c.execute_code("print(1)", "u1")
                return ei.value
        finally:
            await runner.cleanup()

    e = asyncio.run(main())
    assert e.status == 429 and e.code == "too_many_requests" and e.retry_after == 3.0


def test_pip_install_from_source_tree():
    prefix = new_dir("pip-prefix")
    build_copy = Path(tempfile.mkdtemp(prefix="src-", dir=new_dir("pip-src")))
    # build from a copy so that setuptools' build/ and *.egg-info never land in the source tree
    import shutil
    src = build_copy / "python"
    shutil.copytree(CLIENT_SRC, src, ignore=shutil.ignore_patterns("build", "*.egg-info",
                                                                   "__pycache__"))
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--no-build-isolation",
                        "--no-deps", "--no-index", "--break-system-packages",
                        "--prefix", str(prefix), str(src)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"pip install failed:\n{r.stdout}\n{r.stderr}"
    site = [p for p in prefix.rglob("codecell_client") if p.is_dir()]
    assert site, f"no codecell_client under {prefix}: {list(prefix.rglob('*'))[:30]}"
    env = dict(os.environ, PYTHONPATH=str(site[0].parent))
    r = subprocess.run([sys.executable, "-c",
                        "import codecell_client, importlib.metadata as m; "
                        "print(codecell_client.__file__); "
                        "print(m.version('codecell-client')); "
                        "print(m.requires('codecell-client'))"],
                       capture_output=True, text=True, env=env, cwd=str(prefix), timeout=60)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith(str(prefix)), r.stdout
    assert lines[1] == "0.2.0", r.stdout
    assert "aiohttp" in lines[2], r.stdout
