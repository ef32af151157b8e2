"""Notebook output of src/runner/runner.py (SPEC v2), run UNSANDBOXED as a subprocess.

The runner reports what it shows as JSON lines on the descriptor files.json names
(`display_fd`); here a pipe that a thread reads while the runner runs, as the host does (the
runner waits until each line has been read before it goes on).
"""

import json
import os
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest

RUNNER = Path(__file__).resolve().parents[2] / "src" / "runner" / "runner.py"
PYTHON = os.environ.get("CODECELL_TEST_PYTHON", "/usr/bin/python3")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@dataclass
class Run:
    rc: int
    out: str
    err: str
    items: list = field(default_factory=list)
    data_dir: Path = None

    def kinds(self):
        return [i["type"] for i in self.items]


def run(tmp_path, code, channel=True, setup=None):
    run_dir, data_dir = tmp_path / "run", tmp_path / "data"
    run_dir.mkdir(exist_ok=True)
    data_dir.mkdir(exist_ok=True)
    if setup:
        setup(data_dir)
    (run_dir / "code.py").write_bytes(code.encode())
    read_fd, write_fd = os.pipe()
    manifest = {"files": []}
    if channel:
        manifest["display_fd"] = write_fd
    (run_dir / "files.json").write_text(json.dumps(manifest))
    chunks = []

    def reader():
        while True:
            chunk = os.read(read_fd, 65536)
            if not chunk:
                return
            chunks.append(chunk)

    thread = threading.Thread(target=reader)
    thread.start()
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8", "MPLBACKEND": "Agg",
           "MPLCONFIGDIR": str(tmp_path / "mpl"), "CODECELL_RUNNER_DIR": str(run_dir),
           "CODECELL_DATA_DIR_INSIDE": str(data_dir)}
    try:
        p = subprocess.run([PYTHON, "-I", "-B", "-u", str(RUNNER)], cwd=data_dir, env=env,
                           capture_output=True, pass_fds=(write_fd,), timeout=120)
    finally:
        os.close(write_fd)
        thread.join()
        os.close(read_fd)
    lines = b"".join(chunks).decode().splitlines()
    return Run(p.returncode, p.stdout.decode(), p.stderr.decode(),
               [json.loads(line) for line in lines], data_dir)


def png_size(path):
    data = Path(path).read_bytes()
    assert data.startswith(PNG_MAGIC), f"{path} is not a PNG"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


# --------------------------------------------------------------------------- the final expression

def test_final_expression_is_shown(tmp_path):
    r = run(tmp_path, "x = 41\nx + 1")
    assert r.rc == 0, r.err
    assert r.items == [{"type": "execute_result", "data": {"text/plain": "42"}, "echo": True}]
    assert r.out == "42\n"  # v1 clients read it in `output`


@pytest.mark.parametrize("code", ["x = 41\nx + 1;", "x = 41\nx + 1 ;  # quiet\n",
                                  "x = 41\nx + 1; y = 2", "print(1)\nNone", "def f(): pass\nf()",
                                  "x = 41", "x = 41\n# x + 1\n"])
def test_nothing_is_shown_for_quiet_none_or_statements(tmp_path, code):
    r = run(tmp_path, code)
    assert r.rc == 0, r.err
    assert r.items == []
    assert r.out in ("", "1\n")


def test_strings_show_their_repr_as_ipython_does(tmp_path):
    r = run(tmp_path, "'é' * 3")
    assert r.items[0]["data"]["text/plain"] == "'ééé'"
    assert r.out == "'ééé'\n"


def test_only_the_final_statement_is_shown(tmp_path):
    r = run(tmp_path, "1 + 1\nprint('between')\n2 + 2\n")
    assert r.out == "between\n4\n"
    assert [i["data"]["text/plain"] for i in r.items] == ["4"]


def test_error_in_the_final_expression_has_the_users_line(tmp_path):
    r = run(tmp_path, "x = 1\n\nx + undefined_name\n")
    assert r.rc == 1
    assert 'File "<code>", line 3, in <module>' in r.err
    assert "x + undefined_name" in r.err
    assert "runner.py" not in r.err
    (error,) = r.items
    assert error["type"] == "error" and error["ename"] == "NameError"
    assert "undefined_name" in error["evalue"]
    assert "".join(error["traceback"]) == r.err
    assert any('File "<code>", line 3' in line for line in error["traceback"])


def test_exception_becomes_an_error_item(tmp_path):
    r = run(tmp_path, "def f():\n    raise ValueError('boom')\n\nprint('before')\nf()\n")
    assert r.rc == 1
    (error,) = r.items
    assert (error["ename"], error["evalue"]) == ("ValueError", "boom")
    text = "".join(error["traceback"])
    assert 'File "<code>", line 5, in <module>' in text and 'File "<code>", line 2, in f' in text
    assert "runner.py" not in text and "_main" not in text
    assert r.out == "before\n"


def test_syntax_error_becomes_an_error_item(tmp_path):
    r = run(tmp_path, "print('ok')\nx = = 2\n")
    assert r.rc == 1
    assert r.items[0]["ename"] == "SyntaxError"
    assert 'line 2' in r.err


def test_failing_repr_is_the_users_error(tmp_path):
    r = run(tmp_path, "class A:\n    def __repr__(self):\n        raise RuntimeError('no repr')\nA()\n")
    assert r.rc == 1
    assert r.kinds() == ["error"] and r.items[0]["evalue"] == "no repr"
    assert 'File "<code>", line 3, in __repr__' in r.err and "runner.py" not in r.err


def test_system_exit_keeps_its_meaning(tmp_path):
    r = run(tmp_path, "import sys\nprint('x')\nsys.exit(3)\n")
    assert r.rc == 3 and r.items == [] and r.out == "x\n"


# --------------------------------------------------------------------------- DataFrames, display()

def test_dataframe_is_a_text_table_and_html_both_cut(tmp_path):
    r = run(tmp_path, "import pandas as pd\npd.DataFrame({'a': range(5000), 'b': range(5000)})")
    assert r.rc == 0, r.err
    (item,) = r.items
    plain, html = item["data"]["text/plain"], item["data"]["text/html"]
    assert "[5000 rows x 2 columns]" in plain and len(plain.splitlines()) < 30
    assert "<table" in html and "4999" in html and "2500" not in html and len(html) < 20000
    assert plain + "\n" == r.out


def test_series_has_no_html(tmp_path):
    r = run(tmp_path, "import pandas as pd\npd.Series([1, 2], name='s')")
    assert "Name: s" in r.items[0]["data"]["text/plain"]
    assert "text/html" not in r.items[0]["data"]


def test_display_without_import(tmp_path):
    r = run(tmp_path, "display('text')\nimport pandas as pd\ndisplay(pd.DataFrame({'a': [1]}))\n"
                      "print('after')\n")
    assert r.rc == 0, r.err
    assert r.kinds() == ["display_data", "display_data"]
    assert r.items[0]["data"] == {"text/plain": "'text'"}
    assert "<table" in r.items[1]["data"]["text/html"]
    assert r.out.startswith("'text'\n") and r.out.endswith("after\n")


def test_display_of_a_pil_image_is_a_png(tmp_path):
    pytest.importorskip("PIL")
    r = run(tmp_path, "from PIL import Image\ndisplay(Image.new('RGB', (31, 17), 'red'))\n")
    assert r.rc == 0, r.err
    (item,) = r.items
    assert item["file"] == "figure_1.png"
    assert png_size(r.data_dir / "figure_1.png") == (31, 17)
    assert r.out == ""  # an image is a file, not text


def test_without_a_channel_values_are_still_printed(tmp_path):
    r = run(tmp_path, "display('a')\n40 + 2", channel=False)
    assert r.rc == 0, r.err
    assert r.out == "'a'\n42\n" and r.items == []


# --------------------------------------------------------------------------- figures

def test_plt_show_writes_a_png_and_closes_the_figure(tmp_path):
    r = run(tmp_path, "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nplt.show()\n"
                      "print(plt.get_fignums())\n")
    assert r.rc == 0, r.err
    assert r.out == "[]\n"  # shown, then closed, as matplotlib-inline does
    (item,) = r.items
    assert item["type"] == "display_data" and item["file"] == "figure_1.png"
    assert item["data"]["text/plain"].startswith("<Figure size")
    png_size(r.data_dir / "figure_1.png")


def test_two_figures_in_order_around_prints(tmp_path):
    code = ("import matplotlib.pyplot as plt\n"
            "print('one')\nplt.figure(figsize=(2, 2)); plt.plot([1, 2]); plt.show()\n"
            "print('two')\nplt.figure(figsize=(6, 3)); plt.plot([2, 1]);\n")  # left open
    r = run(tmp_path, code)
    assert r.rc == 0, r.err
    assert [i["file"] for i in r.items] == ["figure_1.png", "figure_2.png"]
    w1, h1 = png_size(r.data_dir / "figure_1.png")
    w2, h2 = png_size(r.data_dir / "figure_2.png")
    assert abs(w1 - h1) < 40 and w2 > 1.5 * h2  # the 2x2 one first, the 6x3 one second


def test_saved_figure_is_not_rendered_again(tmp_path):
    r = run(tmp_path, "import matplotlib.pyplot as plt\nplt.plot([1, 2])\n"
                      "plt.savefig('chart.png')\nplt.show()\nplt.figure(); plt.plot([1])\n"
                      "plt.savefig('/tmp/elsewhere-%d.pdf' % id(plt))\n")
    assert r.rc == 0, r.err
    assert sorted(os.listdir(r.data_dir)) == ["chart.png"]
    # shown as the file the code saved; the PDF one is not drawn again
    assert [i["file"] for i in r.items] == ["chart.png"]


def test_display_of_a_figure_and_then_show_is_one_image(tmp_path):
    r = run(tmp_path, "import matplotlib.pyplot as plt\nfig, ax = plt.subplots()\n"
                      "ax.plot([1, 2])\ndisplay(fig)\nplt.show()\n")
    assert r.rc == 0, r.err
    assert [i["file"] for i in r.items] == ["figure_1.png"]


def test_final_figure_expression_is_one_image(tmp_path):
    r = run(tmp_path, "import matplotlib.pyplot as plt\nfig = plt.figure()\nfig.gca().plot([1])\nfig")
    assert r.rc == 0, r.err
    assert [i["file"] for i in r.items] == ["figure_1.png"]


def test_users_figure_file_is_not_clobbered(tmp_path):
    def setup(data_dir):
        (data_dir / "figure_1.png").write_bytes(b"the user's own")
    r = run(tmp_path, "import matplotlib.pyplot as plt\nplt.plot([1])\nplt.show()\n", setup=setup)
    assert (r.data_dir / "figure_1.png").read_bytes() == b"the user's own"
    assert [i["file"] for i in r.items] == ["figure_2.png"]


def test_figures_drawn_before_an_error_are_shown_after_it(tmp_path):
    r = run(tmp_path, "import matplotlib.pyplot as plt\nplt.plot([1])\n1 / 0\n")
    assert r.rc == 1
    assert r.kinds() == ["error", "display_data"]


# --------------------------------------------------------------------------- costs and hygiene

def test_nothing_heavy_is_imported_for_code_that_does_not_use_it(tmp_path):
    r = run(tmp_path, "import sys\nprint(sorted(m for m in ('matplotlib', 'pandas', 'numpy', 'PIL',"
                      " 'ast', 'fcntl') if m in sys.modules))\n")
    assert r.rc == 0, r.err
    assert r.out == "[]\n"


def test_the_channel_is_not_inherited_by_subprocesses(tmp_path):
    code = ("import json, os, subprocess, sys\n"
            "fd = json.load(open(os.path.join(os.environ['CODECELL_RUNNER_DIR'], 'files.json')))"
            "['display_fd']\n"
            "print(subprocess.run([sys.executable, '-c', f'import os; os.fstat({fd})'],"
            " capture_output=True).returncode)\n")
    r = run(tmp_path, code)
    assert r.rc == 0, r.err
    assert r.out == "1\n"  # EBADF in the child


@pytest.mark.parametrize("code, shown", [
    ("xs = [1, 2]\n[x * 2\nfor x in xs]\n", "[2, 4]"),          # a continuation line with `for`
    ("a = 0\n(1 if a\nelse 2)\n", "2"),
    ("def f():\n    return 3\n", None),                          # ends with a keyword: no parse
    ("import os\n", None),
])
def test_last_line_keywords_do_not_hide_a_final_expression(tmp_path, code, shown):
    r = run(tmp_path, code)
    assert r.rc == 0, r.err
    assert [i["data"]["text/plain"] for i in r.items] == ([shown] if shown else [])
