"""Tests of src/runner/runner.py, run UNSANDBOXED as a subprocess.

Run with Debian's interpreter (the one the sandbox uses, with numpy/pandas/openpyxl/yaml):

    /usr/bin/python3 -m pytest tests/runner

The runner reads its inputs from $CODECELL_RUNNER_DIR and treats $CODECELL_DATA_DIR_INSIDE as
/mnt/data; both point into a per-test temporary directory here, and the cwd is the data dir.
"""

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

RUNNER = Path(__file__).resolve().parents[2] / "src" / "runner" / "runner.py"
PYTHON = os.environ.get("CODECELL_TEST_PYTHON", "/usr/bin/python3")


@dataclass
class Result:
    rc: int
    out: str
    err: str


class Sandbox:
    def __init__(self, root: Path):
        self.root = root
        self.run_dir = root / "run"
        self.data_dir = root / "data"
        self.run_dir.mkdir()
        self.data_dir.mkdir()
        self.files = []

    def add(self, name, content, file_id=None, filename=None):
        """Put a file in the data dir and attach it (files.json); returns its file_id."""
        path = self.data_dir / name
        if isinstance(content, str):
            content = content.encode("utf-8")
        path.write_bytes(content)
        file_id = file_id or f"id{len(self.files)}x{abs(hash(name)) % 10**8}"
        self.files.append({"file_id": file_id, "filename": filename or name, "path": str(path)})
        return file_id

    def run(self, code, files_json=True, timeout=120):
        if isinstance(code, str):
            code = code.encode("utf-8")
        (self.run_dir / "code.py").write_bytes(code)
        if files_json:
            (self.run_dir / "files.json").write_text(json.dumps({"files": self.files}))
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(self.root),
            "LANG": "C.UTF-8",
            "MPLBACKEND": "Agg",
            "MPLCONFIGDIR": str(self.root / "mpl"),
            "CODECELL_RUNNER_DIR": str(self.run_dir),
            "CODECELL_DATA_DIR_INSIDE": str(self.data_dir),
        }
        p = subprocess.run([PYTHON, "-I", "-B", "-u", str(RUNNER)], cwd=self.data_dir, env=env,
                           capture_output=True, timeout=timeout)
        return Result(p.returncode, p.stdout.decode("utf-8", "replace"),
                      p.stderr.decode("utf-8", "replace"))


@pytest.fixture
def sb(tmp_path):
    return Sandbox(tmp_path)


def assert_no_runner(res):
    assert "runner.py" not in res.err
    assert "runner.py" not in res.out
    for frame in (", in _main", ", in _report", ", in load_file", ", in read"):
        assert frame not in res.err


# --------------------------------------------------------------------------- tracebacks, exits

def test_traceback_line_numbers_are_the_users(sb):
    res = sb.run("x = 1\ny = 2\nraise ValueError('boom')\nprint('not reached')\n")
    assert res.rc == 1
    assert res.out == ""
    assert res.err.startswith('Traceback (most recent call last):\n  File "<code>", line 3, in <module>\n')
    assert "    raise ValueError('boom')\n" in res.err  # the user's own source line
    assert res.err.rstrip().endswith("ValueError: boom")
    assert_no_runner(res)


def test_traceback_through_user_functions(sb):
    res = sb.run("def f():\n    return 1 / 0\n\n\nf()\n")
    assert res.rc == 1
    assert 'File "<code>", line 5, in <module>' in res.err
    assert 'File "<code>", line 2, in f' in res.err
    assert "return 1 / 0" in res.err
    assert "ZeroDivisionError: division by zero" in res.err
    assert res.err.count('File "') == 2
    assert_no_runner(res)


def test_chained_exception_tracebacks_have_no_runner_frames(sb):
    res = sb.run("try:\n    {}['k']\nexcept KeyError as e:\n    raise RuntimeError('wrapped') from e\n")
    assert res.rc == 1
    assert 'File "<code>", line 2' in res.err and 'File "<code>", line 4' in res.err
    assert "direct cause" in res.err
    assert_no_runner(res)


@pytest.mark.parametrize("code, line, kind", [
    ("a = 1\nb = 2\nc = (\n", 3, "SyntaxError"),
    ("print('ok')\nx = = 2\n", 2, "SyntaxError"),
    ("if True:\n    x = 1\n      y = 2\n", 3, "IndentationError"),
])
def test_syntax_error_reports_the_users_line(sb, code, line, kind):
    res = sb.run(code)
    assert res.rc == 1
    assert res.out == ""  # nothing ran
    assert res.err.startswith(f'  File "<code>", line {line}\n')
    assert f"{kind}:" in res.err
    assert "Traceback" not in res.err
    assert_no_runner(res)


def test_sys_exit_code(sb):
    res = sb.run("import sys\nprint('before')\nsys.exit(3)\nprint('after')\n")
    assert res.rc == 3
    assert res.out == "before\n"
    assert res.err == ""


def test_sys_exit_message(sb):
    res = sb.run("import sys\nsys.exit('msg')\n")
    assert res.rc == 1
    assert res.err == "msg\n"


@pytest.mark.parametrize("stmt", ["sys.exit()", "sys.exit(None)", "sys.exit(0)", "raise SystemExit",
                                  "exit()"])
def test_sys_exit_success(sb, stmt):
    res = sb.run(f"import sys\n{stmt}\nprint('after')\n")
    assert res.rc == 0
    assert res.out == ""
    assert res.err == ""


def test_keyboard_interrupt_exits_130(sb):
    res = sb.run("x = 1\nraise KeyboardInterrupt\n")
    assert res.rc == 130
    assert 'File "<code>", line 2' in res.err
    assert "KeyboardInterrupt" in res.err
    assert_no_runner(res)


@pytest.mark.parametrize("ending, rc", [("1 / 0", 1), ("import sys; sys.exit(4)", 4), ("pass", 0)])
def test_atexit_handlers_run(sb, ending, rc):
    res = sb.run(f"import atexit\natexit.register(lambda: print('bye'))\n{ending}\n")
    assert res.rc == rc
    assert res.out == "bye\n"


def test_non_daemon_thread_finishes_before_exit(sb):
    res = sb.run("import threading, time\n"
                 "threading.Thread(target=lambda: (time.sleep(0.3), print('thread done'))).start()\n"
                 "print('main done')\n")
    assert res.rc == 0
    assert res.out == "main done\nthread done\n"


def test_output_without_trailing_newline_is_flushed(sb):
    # The trailing `;` keeps write()'s return value from being shown (notebook output).
    res = sb.run("import sys\nsys.stdout.write('partial')\nsys.stderr.write('err-partial');\n")
    assert res.rc == 0
    assert res.out == "partial"
    assert res.err == "err-partial"


def test_user_excepthook_is_used_without_runner_frames(sb):
    res = sb.run("import sys\n"
                 "def hook(t, v, tb):\n"
                 "    print('HOOK', t.__name__, tb.tb_frame.f_code.co_filename, tb.tb_lineno)\n"
                 "sys.excepthook = hook\n"
                 "raise ValueError('x')\n")
    assert res.rc == 1
    assert res.out == "HOOK ValueError <code> 5\n"


# --------------------------------------------------------------------------- source decoding

def test_nul_byte_is_a_clean_error(sb):
    res = sb.run(b"print('before')\nx = 1\x00\n")
    assert res.rc == 1
    assert res.out == ""
    assert "null bytes" in res.err
    assert 'File "<code>", line 2' in res.err
    assert "Traceback" not in res.err
    assert_no_runner(res)


@pytest.mark.parametrize("code", [b"print('caf\xe9')\n", b"# caf\xe9\nprint('ran')\n",
                                  b"print('ok')\nx = '\xff\xfe'\n"])
def test_invalid_utf8_is_a_syntax_error(sb, code):
    res = sb.run(code)
    assert res.rc == 1
    assert res.out == ""  # nothing ran, not even the valid first line
    assert "SyntaxError" in res.err
    assert "Traceback" not in res.err
    assert_no_runner(res)


def test_unicode_source_and_lines_in_traceback(sb):
    res = sb.run("print('héllo ✓')\nraise ValueError('é ✓')\n")
    assert res.rc == 1
    assert res.out == "héllo ✓\n"
    assert "    raise ValueError('é ✓')\n" in res.err
    assert 'File "<code>", line 2' in res.err


@pytest.mark.parametrize("code", [
    b"# -*- coding: latin-1 -*-\nprint('caf\xe9')\n",
    b"\xef\xbb\xbfprint('caf\xc3\xa9')\n",
    b"#!/usr/bin/env python3\n# coding: cp1252\nprint('caf\xe9')\n",
])
def test_coding_cookie_and_bom(sb, code):
    res = sb.run(code)
    assert res.rc == 0, res.err
    assert res.out == "café\n"


def test_crlf_source_keeps_line_numbers(sb):
    res = sb.run(b"a = 1\r\nb = 2\r\nc = 3\r\nraise ValueError(c)\r\n")
    assert res.rc == 1
    assert 'File "<code>", line 4' in res.err
    assert "raise ValueError(c)" in res.err


def test_user_tracebacks_and_warnings_show_source_lines(sb):
    res = sb.run("import linecache, traceback, warnings\n"
                 "linecache.checkcache()\n"
                 "try:\n"
                 "    int('nope')\n"
                 "except ValueError:\n"
                 "    traceback.print_exc()\n"
                 "warnings.warn('careful')\n")
    assert res.rc == 0
    assert 'File "<code>", line 4, in <module>' in res.err
    assert "    int('nope')\n" in res.err
    assert "<code>:7: UserWarning: careful" in res.err
    assert "warnings.warn('careful')" in res.err


def test_inspect_getsource_works(sb):
    res = sb.run("import inspect\n\ndef f(x):\n    return x + 1\n\nprint(inspect.getsource(f), end='')\n")
    assert res.rc == 0, res.err
    assert res.out == "def f(x):\n    return x + 1\n"


# --------------------------------------------------------------------------- the environment

def test_name_is_main_and_main_module_is_the_user_module(sb):
    res = sb.run("import __main__, sys, pickle\n"
                 "class A:\n    pass\n"
                 "print(__name__)\n"
                 "print(__main__.__dict__ is globals(), sys.modules['__main__'] is __main__)\n"
                 "print(type(pickle.loads(pickle.dumps(A()))).__qualname__)\n")
    assert res.rc == 0, res.err
    assert res.out == "__main__\nTrue True\nA\n"


def test_user_globals_hold_only_the_documented_names(sb):
    res = sb.run("import builtins, json\n"
                 "g = {k: v for k, v in globals().items() if k not in ('builtins', 'json')}\n"
                 "print(json.dumps(sorted(g)))\n"
                 "print(g['__builtins__'] is builtins)\n"
                 "print([k for k in ('__doc__', '__package__', '__loader__', '__spec__') if g[k] is not None])\n")
    assert res.rc == 0, res.err
    lines = res.out.splitlines()
    names = set(json.loads(lines[0]))
    documented = {"__name__", "__builtins__", "load_file", "FILES", "display"}
    standard_module_dunders = {"__doc__", "__package__", "__loader__", "__spec__"}
    assert documented <= names
    assert names - documented == standard_module_dunders
    assert lines[1] == "True"
    assert lines[2] == "[]"


def test_runner_internals_are_not_reachable(sb):
    res = sb.run("import sys, gc\n"
                 "internal = ('_main', '_make_load_file', '_report', '_decode_source')\n"
                 "print(sorted(load_file.__globals__))\n"
                 "print([n for n in internal if n in sys._getframe(1).f_globals])\n"
                 "mods = [m for m in list(sys.modules.values())\n"
                 "        if any(n in getattr(m, '__dict__', {}) for n in internal)]\n"
                 "print(mods)\n"
                 "print([type(o).__name__ for o in gc.get_objects()\n"
                 "       if isinstance(o, dict) and '_make_load_file' in o and o is not globals()])\n"
                 "print(load_file.__name__, load_file.__qualname__)\n")
    assert res.rc == 0, res.err
    assert res.out == "[]\n[]\n[]\n[]\nload_file load_file\n"


def test_argv_and_sys_path(sb):
    res = sb.run("import sys, os, json\n"
                 "print(json.dumps([sys.argv, sys.path[0], os.getcwd()]))\n"
                 "print(any(p in ('', os.environ['CODECELL_RUNNER_DIR']) for p in sys.path))\n")
    assert res.rc == 0, res.err
    argv, path0, cwd = json.loads(res.out.splitlines()[0])
    assert argv == ["<code>"]
    assert path0 == str(sb.data_dir)
    assert cwd == str(sb.data_dir)
    assert res.out.splitlines()[1] == "False"


def test_print_hi_does_not_import_heavy_modules(sb):
    res = sb.run("import sys\n"
                 "print('hi', [m for m in ('pandas', 'numpy', 'matplotlib', 'yaml', 'sqlite3')\n"
                 "             if m in sys.modules])\n")
    assert res.rc == 0, res.err
    assert res.out == "hi []\n"


def test_uploaded_helper_module_is_importable(sb):
    sb.add("helper.py", "def double(x):\n    return 2 * x\n")
    (sb.data_dir / "pkg").mkdir()
    (sb.data_dir / "pkg" / "__init__.py").write_text("VALUE = 'pkg ok'\n")
    res = sb.run("import helper\nfrom pkg import VALUE\nprint(helper.double(21), VALUE)\n")
    assert res.rc == 0, res.err
    assert res.out == "42 pkg ok\n"


def test_helper_module_still_importable_after_chdir(sb):
    sb.add("helper2.py", "X = 7\n")
    res = sb.run("import os\nos.chdir('/')\nimport helper2\nprint(helper2.X)\n")
    assert res.rc == 0, res.err
    assert res.out == "7\n"


def test_files_mapping(sb):
    a = sb.add("a.csv", "x\n1\n", file_id="fileA")
    b = sb.add("b (2).png", b"\x89PNG\r\n\x1a\n", file_id="fileB", filename="b.png")
    res = sb.run("import json\nprint(json.dumps(FILES, sort_keys=True))\n")
    assert res.rc == 0, res.err
    assert json.loads(res.out) == {a: str(sb.data_dir / "a.csv"), b: str(sb.data_dir / "b (2).png")}


def test_missing_files_json_means_no_files(sb):
    res = sb.run("print(FILES)\n", files_json=False)
    assert res.rc == 0, res.err
    assert res.out == "{}\n"


# --------------------------------------------------------------------------- load_file

CSV = "a,b\n1,x\n2,y\n3,z\n"


def test_load_csv_by_id_and_by_name(sb):
    fid = sb.add("data.csv", CSV)
    res = sb.run(f"import pandas as pd\n"
                 f"for key in ({fid!r}, 'data.csv'):\n"
                 f"    df = load_file(key)\n"
                 f"    print(type(df).__name__, df.shape, list(df.columns), df['a'].sum(), list(df['b']))\n")
    assert res.rc == 0, res.err
    assert res.out == "DataFrame (3, 2) ['a', 'b'] 6 ['x', 'y', 'z']\n" * 2


def test_load_csv_passes_kwargs(sb):
    fid = sb.add("data.csv", CSV)
    res = sb.run(f"df = load_file({fid!r}, usecols=['b'], nrows=2)\nprint(df.shape, list(df.columns))\n")
    assert res.rc == 0, res.err
    assert res.out == "(2, 1) ['b']\n"


def test_load_csv_not_utf8(sb):
    fid = sb.add("latin.csv", "name,city\nJosé,Zürich\n".encode("cp1252"))
    res = sb.run(f"print(load_file({fid!r}).iloc[0].tolist())\n")
    assert res.rc == 0, res.err
    assert res.out == "['José', 'Zürich']\n"



def test_load_compressed_csv(sb):
    import gzip
    fid = sb.add("data.csv.gz", gzip.compress(CSV.encode()))
    res = sb.run(f"df = load_file({fid!r})\nprint(type(df).__name__, df.shape)\n")
    assert res.rc == 0, res.err
    assert res.out == "DataFrame (3, 2)\n"

@pytest.mark.parametrize("ext", ["tsv", "tab"])
def test_load_tsv(sb, ext):
    fid = sb.add(f"data.{ext}", "a\tb\n1\thello, world\n")
    res = sb.run(f"df = load_file({fid!r})\nprint(df.shape, df.iloc[0]['b'])\n")
    assert res.rc == 0, res.err
    assert res.out == "(1, 2) hello, world\n"


def test_load_xlsx_first_sheet_and_all_sheets(sb):
    openpyxl = pytest.importorskip("openpyxl")  # installed with Debian's python3
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "First"
    ws.append(["name", "n"])
    ws.append(["a", 1])
    ws.append(["b", 2])
    ws2 = wb.create_sheet("Second")
    ws2.append(["other"])
    ws2.append([10])
    path = sb.root / "book.xlsx"
    wb.save(path)
    fid = sb.add("book.xlsx", path.read_bytes())
    res = sb.run(f"df = load_file({fid!r})\n"
                 f"print(type(df).__name__, df.shape, list(df.columns), int(df['n'].sum()))\n"
                 f"sheets = load_file('book.xlsx', sheet_name=None)\n"
                 f"print(sorted(sheets), int(sheets['Second']['other'][0]))\n")
    assert res.rc == 0, res.err
    assert res.out == "DataFrame (2, 2) ['name', 'n'] 3\n['First', 'Second'] 10\n"


def test_load_json_list_is_a_dataframe(sb):
    fid = sb.add("rows.json", json.dumps([{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]))
    res = sb.run(f"df = load_file({fid!r})\nprint(type(df).__name__, df.shape, list(df['a']))\n")
    assert res.rc == 0, res.err
    assert res.out == "DataFrame (2, 2) [1, 2]\n"


def test_load_json_object_is_a_dict(sb):
    fid = sb.add("conf.json", json.dumps({"name": "x", "nested": {"k": [1, 2]}}))
    res = sb.run(f"d = load_file({fid!r})\nprint(type(d).__name__, d['nested']['k'])\n")
    assert res.rc == 0, res.err
    assert res.out == "dict [1, 2]\n"



def test_load_json_file_holding_json_lines(sb):
    fid = sb.add("rows.json", '{"a": 1}\n{"a": 2}\n')
    res = sb.run(f"df = load_file({fid!r})\nprint(type(df).__name__, list(df['a']))\n")
    assert res.rc == 0, res.err
    assert res.out == "DataFrame [1, 2]\n"

@pytest.mark.parametrize("ext", ["jsonl", "ndjson"])
def test_load_jsonl(sb, ext):
    fid = sb.add(f"rows.{ext}", '{"a": 1, "b": "x"}\n{"a": 2, "b": "y"}\n{"a": 3, "b": "z"}\n')
    res = sb.run(f"df = load_file({fid!r})\nprint(type(df).__name__, df.shape, int(df['a'].sum()))\n")
    assert res.rc == 0, res.err
    assert res.out == "DataFrame (3, 2) 6\n"


def test_load_geojson_is_a_dict(sb):
    fid = sb.add("map.geojson", json.dumps({"type": "FeatureCollection", "features": []}))
    res = sb.run(f"d = load_file({fid!r})\nprint(type(d).__name__, d['type'])\n")
    assert res.rc == 0, res.err
    assert res.out == "dict FeatureCollection\n"


@pytest.mark.parametrize("ext", ["yaml", "yml"])
def test_load_yaml(sb, ext):
    fid = sb.add(f"conf.{ext}", "name: demo\nitems:\n  - 1\n  - 2\nflag: true\n")
    res = sb.run(f"d = load_file({fid!r})\nprint(type(d).__name__, d['name'], d['items'], d['flag'])\n")
    assert res.rc == 0, res.err
    assert res.out == "dict demo [1, 2] True\n"


def test_load_toml(sb):
    fid = sb.add("conf.toml", 'title = "demo"\n[owner]\nname = "x"\nids = [1, 2]\n')
    res = sb.run(f"d = load_file({fid!r})\nprint(type(d).__name__, d['title'], d['owner']['ids'])\n")
    assert res.rc == 0, res.err
    assert res.out == "dict demo [1, 2]\n"


@pytest.mark.parametrize("name", ["notes.txt", "README.md", "app.log", "script.py", "query.sql",
                                  "main.rs", "index.html"])
def test_load_text_files_are_str(sb, name):
    content = "line one\nlíne twö ✓\n"
    fid = sb.add(name, content)
    res = sb.run(f"t = load_file({fid!r})\nprint(type(t).__name__, repr(t))\n")
    assert res.rc == 0, res.err
    assert res.out == f"str {content!r}\n"


def test_load_text_with_invalid_utf8_is_replaced(sb):
    fid = sb.add("notes.txt", b"ok \xff end\n")
    res = sb.run(f"print(ascii(load_file({fid!r})))\n")
    assert res.rc == 0, res.err
    assert res.out == "'ok \\ufffd end\\n'\n"


@pytest.mark.parametrize("name", ["plot.png", "photo.JPG", "song.mp3", "clip.mp4", "bundle.zip",
                                  "paper.pdf"])
def test_load_binary_media_returns_the_path(sb, name):
    fid = sb.add(name, b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    res = sb.run(f"p = load_file({fid!r})\nprint(type(p).__name__, p == FILES[{fid!r}], p)\n")
    assert res.rc == 0, res.err
    assert res.out == f"str True {sb.data_dir / name}\n"


def test_load_npy(sb):
    np = pytest.importorskip("numpy")
    path = sb.root / "arr.npy"
    np.save(path, np.arange(6).reshape(2, 3))
    fid = sb.add("arr.npy", path.read_bytes())
    res = sb.run(f"a = load_file({fid!r})\nprint(type(a).__name__, a.shape, int(a.sum()))\n")
    assert res.rc == 0, res.err
    assert res.out == "ndarray (2, 3) 15\n"


def test_load_sqlite_is_a_connection(sb):
    import sqlite3
    path = sb.root / "t.db"
    con = sqlite3.connect(path)
    con.execute("create table t (x integer)")
    con.executemany("insert into t values (?)", [(1,), (2,), (3,)])
    con.commit()
    con.close()
    fid = sb.add("t.db", path.read_bytes())
    res = sb.run(f"con = load_file({fid!r})\n"
                 f"print(type(con).__name__, con.execute('select sum(x) from t').fetchone()[0])\n")
    assert res.rc == 0, res.err
    assert res.out == "Connection 6\n"


def test_load_xml_is_a_parsed_tree(sb):
    fid = sb.add("doc.xml", "<root><item n='1'/><item n='2'/></root>")
    res = sb.run(f"t = load_file({fid!r})\nr = t.getroot()\n"
                 f"print(type(t).__name__, r.tag, [i.get('n') for i in r])\n")
    assert res.rc == 0, res.err
    assert res.out == "ElementTree root ['1', '2']\n"


@pytest.mark.parametrize("ext", ["bin", "dat"])
def test_load_bin_is_bytes(sb, ext):
    fid = sb.add(f"blob.{ext}", b"\x00\x01\xffabc")
    res = sb.run(f"print(repr(load_file({fid!r})))\n")
    assert res.rc == 0, res.err
    assert res.out == "b'\\x00\\x01\\xffabc'\n"


def test_load_unknown_extension_text_or_path(sb):
    t = sb.add("Makefile", "all:\n\techo hi\n")
    u = sb.add("notes.weird", "plain text\n")
    b = sb.add("blob.weird", b"\x00\x9f\x92\x96binary")
    res = sb.run(f"print(repr(load_file({t!r})))\nprint(repr(load_file({u!r})))\n"
                 f"print(load_file({b!r}) == FILES[{b!r}])\n")
    assert res.rc == 0, res.err
    assert res.out == "'all:\\n\\techo hi\\n'\n'plain text\\n'\nTrue\n"


def test_load_by_relative_absolute_and_pathlib(sb):
    (sb.data_dir / "sub").mkdir()
    (sb.data_dir / "sub" / "inner.txt").write_text("inner\n")
    outside = sb.root / "outside.txt"
    outside.write_text("outside\n")
    res = sb.run("import pathlib\n"
                 "print(repr(load_file('sub/inner.txt')))\n"
                 f"print(repr(load_file({str(outside)!r})))\n"
                 "print(repr(load_file(pathlib.Path('sub') / 'inner.txt')))\n")
    assert res.rc == 0, res.err
    assert res.out == "'inner\\n'\n'outside\\n'\n'inner\\n'\n"


def test_load_file_written_by_the_code(sb):
    res = sb.run("open('made.csv', 'w').write('k,v\\n1,2\\n')\nprint(load_file('made.csv').shape)\n")
    assert res.rc == 0, res.err
    assert res.out == "(1, 2)\n"


def test_unknown_id_lists_the_available_files(sb):
    a = sb.add("sales.csv", CSV, file_id="f_sales123")
    b = sb.add("chart.png", b"\x89PNG", file_id="f_chart456")
    res = sb.run("x = 1\nload_file('no-such-id')\n")
    assert res.rc == 1
    assert "FileNotFoundError" in res.err
    assert "'no-such-id'" in res.err
    for text in (a, b, "sales.csv", "chart.png"):
        assert text in res.err
    assert 'File "<code>", line 2' in res.err
    assert_no_runner(res)


def test_unknown_id_is_catchable(sb):
    res = sb.run("try:\n    load_file('nope')\nexcept FileNotFoundError as e:\n    print('caught', 'nope' in str(e))\n")
    assert res.rc == 0, res.err
    assert res.out == "caught True\n"


def test_deleted_file_by_id(sb):
    fid = sb.add("gone.csv", CSV)
    res = sb.run(f"import os\nos.remove('gone.csv')\nload_file({fid!r})\n")
    assert res.rc == 1
    assert "FileNotFoundError" in res.err
    assert "no longer exists" in res.err


def test_reader_errors_show_no_runner_frames(sb):
    fid = sb.add("bad.json", "{not json")
    res = sb.run(f"data = load_file({fid!r})\n")
    assert res.rc == 1
    assert 'File "<code>", line 1' in res.err
    assert "JSONDecodeError" in res.err
    assert_no_runner(res)


def test_missing_reader_library_names_the_package(sb):
    # A yaml.py in the data dir shadows PyYAML and fails to import, as a missing package would.
    (sb.data_dir / "yaml.py").write_text("raise ImportError('No module named yaml')\n")
    fid = sb.add("conf.yaml", "a: 1\n")
    res = sb.run(f"try:\n    load_file({fid!r})\nexcept ImportError as e:\n    print('ImportError:', e)\n")
    assert res.rc == 0, res.err
    assert res.out.startswith("ImportError: ")
    assert "PyYAML" in res.out


def test_load_file_rejects_non_string(sb):
    res = sb.run("try:\n    load_file(42)\nexcept TypeError as e:\n    print('TypeError', e)\n")
    assert res.rc == 0, res.err
    assert res.out.startswith("TypeError load_file() takes a file id or a file name")



@pytest.mark.parametrize("layout", ["local/lib/python{v}/dist-packages",
                                    "lib/python{v}/site-packages"])
def test_package_environment_goes_after_the_system_packages_with_its_pth(tmp_path, layout):
    """files.json "packages": the environment's site directory (pip --prefix layout, Debian's or
    upstream's) is added after the system's packages, and its .pth files are processed."""
    sb = Sandbox(tmp_path)
    prefix = tmp_path / "env"
    site_dir = prefix / layout.format(v=f"{sys.version_info[0]}.{sys.version_info[1]}")
    (site_dir / "ccenvmod").mkdir(parents=True)
    (site_dir / "ccenvmod" / "__init__.py").write_text("VALUE = 'from-env'\n")
    (site_dir / "ccenv.pth").write_text("import builtins; builtins.CCENV_PTH = 'ran'\n")
    (sb.run_dir / "code.py").write_text("")
    (sb.run_dir / "files.json").write_text(json.dumps({"files": [], "packages": str(prefix)}))
    res = sb.run("import builtins, sys, ccenvmod\n"
                 "print(ccenvmod.VALUE, builtins.CCENV_PTH)\n"
                 "p = [i for i, e in enumerate(sys.path) if e.endswith(('site-packages', "
                 "'dist-packages'))]\n"
                 f"print(sys.path.index({str(site_dir)!r}) == max(p))\n", files_json=False)
    assert res.rc == 0, res.err
    assert res.out.split("\n")[:2] == ["from-env ran", "True"], res.out


def test_without_packages_in_files_json_nothing_is_added(sb):
    res = sb.run("import sys\nprint(any('codecell/packages' in p for p in sys.path))")
    assert res.rc == 0 and res.out.strip() == "False", res
