"""`codecell run` end to end: the preinstalled stack, load_file, generated files, verdicts and
the CLI's exit codes, each through the real sandbox."""
import json
import os
import subprocess

import pytest

from conftest import BIN, require_root


def test_pandas_version_is_ok(run_json):
    r = run_json("import pandas as pd; print(pd.__version__)")
    assert r["status"] == "ok" and r["success"] is True
    assert r["output"].strip().split(".")[0].isdigit()
    assert r["return_code"] == 0
    assert r["resources"]["peak_memory_bytes"] > 1_000_000
    assert r["resources"]["cpu_time"] > 0
    for key in ("execution_id", "error", "execution_time", "truncated", "generated_files",
                "installed_packages", "failed_packages"):
        assert key in r


def test_csv_and_xlsx_through_load_file_and_a_plot(run_json, tmp_path):
    import openpyxl

    csv = tmp_path / "sales.csv"
    csv.write_text("month,sales\n1,10\n2,30\n3,20\n")
    xlsx = tmp_path / "stock.xlsx"
    wb = openpyxl.Workbook()
    wb.active.append(["item", "count"])
    wb.active.append(["apple", 7])
    wb.active.append(["pear", 5])
    wb.save(xlsx)
    code = """
import matplotlib.pyplot as plt
sales = load_file('sales.csv')
stock = load_file('stock.xlsx')
print(int(sales['sales'].sum()), int(stock['count'].sum()), sorted(FILES.values()))
sales.plot(x='month', y='sales')
plt.savefig('sales.png')
"""
    r = run_json(code, "--file", str(csv), "--file", str(xlsx))
    assert r["status"] == "ok", r["error"]
    assert r["output"].startswith("60 12 ['/mnt/data/sales.csv', '/mnt/data/stock.xlsx']")
    [png] = r["generated_files"]
    assert png["filename"] == "sales.png"
    assert png["file_type"] == "image" and png["mime_type"] == "image/png"
    with open(png["path"], "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert os.path.getsize(png["path"]) == png["size"]
    # The inputs were read, not changed: they are not generated files.
    assert [g["filename"] for g in r["generated_files"]] == ["sales.png"]


def test_same_name_twice_gets_a_numbered_copy(run_json, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "data.csv").write_text("x\n1\n")
    (tmp_path / "b" / "data.csv").write_text("x\n2\n")
    r = run_json("import os; print(sorted(os.listdir('.')))",
                 "--file", str(tmp_path / "a" / "data.csv"),
                 "--file", str(tmp_path / "b" / "data.csv"))
    assert r["output"].strip() == "['data (2).csv', 'data.csv']"


def test_stored_original_never_changes(run_json, tmp_path):
    src = tmp_path / "data.csv"
    src.write_text("x\n1\n")
    r = run_json("open('data.csv', 'a').write('2\\n'); import os; os.remove('data.csv') "
                 "if False else None; print(open('data.csv').read())", "--file", str(src))
    assert r["output"] == "x\n1\n2\n\n"
    assert src.read_text() == "x\n1\n"
    [changed] = r["generated_files"]
    assert changed["filename"] == "data.csv"
    with open(changed["path"]) as f:
        assert f.read() == "x\n1\n2\n"


def test_deleting_an_input_is_allowed_and_not_collected(run_json, tmp_path):
    src = tmp_path / "data.csv"
    src.write_text("x\n")
    r = run_json("import os; os.remove('data.csv'); print(os.listdir('.'))", "--file", str(src))
    assert r["output"].strip() == "[]"
    assert r["generated_files"] == [] and r["skipped_files"] == []
    assert src.exists()


def test_traceback_line_numbers_are_the_users(run_json):
    r = run_json("x = 1\ny = 2\nraise ValueError('boom')\n")
    assert r["status"] == "error" and r["success"] is False and r["return_code"] == 1
    assert 'File "<code>", line 3' in r["error"]
    assert "ValueError: boom" in r["error"]
    assert "runner.py" not in r["error"]


def test_the_kernel_is_the_boundary_not_a_blocklist(run_json):
    code = """
import os, subprocess, re
print(subprocess.run(['echo', 'sub'], capture_output=True, text=True).stdout.strip())
open('notes.txt', 'w').write('hello')
print(re.compile('a+').match('aa') is not None, os.path.exists('notes.txt'))
"""
    r = run_json(code)
    assert r["status"] == "ok", r["error"]
    assert r["output"] == "sub\nTrue True\n"
    assert [g["filename"] for g in r["generated_files"]] == ["notes.txt"]


def test_timeout_keeps_output_printed_before(run_json):
    r = run_json("import time\nprint('before', flush=False)\ntime.sleep(30)", "--timeout", "1")
    assert r["status"] == "timeout" and r["return_code"] == -1
    assert r["output"] == "before\n"
    assert r["error"].endswith("Execution timeout after 1 seconds")
    assert r["execution_time"] < 2.5


def test_invalid_utf8_output_is_replaced_and_nul_in_code_is_an_error(run_json, codecell, tmp_path):
    r = run_json("import sys; sys.stdout.buffer.write(b'ok \\xff\\xfe end\\n')")
    assert r["output"] == "ok \ufffd\ufffd end\n"
    script = tmp_path / "nul.py"
    script.write_bytes(b"print(1)\x00print(2)\n")
    rc, out, _ = codecell("--json", str(script))
    r = json.loads(out)
    assert rc == 0 and r["status"] == "error" and r["output"] == ""
    assert "null" in r["error"].lower()
    script.write_bytes(b"print('caf\xe9')\n")  # Latin-1, not UTF-8
    rc, out, _ = codecell("--json", str(script))
    r = json.loads(out)
    assert rc == 0 and r["status"] == "error" and "SyntaxError" in r["error"]


def test_stderr_is_cut_too(run_json):
    r = run_json("import sys; sys.stderr.write('e' * 300000)")
    assert r["truncated"] == {"output": False, "error": True, "outputs": False}
    assert len(r["error"]) == 100000


def test_generated_file_limits(run_json):
    code = """
for i in range(60):
    open(f'f{i:02}.txt', 'w').write(str(i))
open('big.bin', 'wb').write(b'x' * (51 << 20))
"""
    r = run_json(code, "--workspace-mb", "128", "--memory-mb", "512")
    assert r["status"] == "ok", r["error"]
    assert len(r["generated_files"]) == 50
    reasons = {s["filename"]: s["reason"] for s in r["skipped_files"]}
    assert "larger than the limit of 50 MiB" == reasons["big.bin"]
    assert len(reasons) == 11  # big.bin and the ten files past the fiftieth


def test_plain_mode_passes_output_through_and_ends_with_a_status_line(codecell, tmp_path):
    script = tmp_path / "job.py"
    script.write_text("import sys\nprint('to stdout')\nprint('to stderr', file=sys.stderr)\n"
                      "open('r.txt', 'w').write('x');\n")  # `;`: write()'s value not shown
    rc, out, err = codecell(str(script))
    assert rc == 0
    assert out == b"to stdout\n"
    lines = [line for line in err.decode().splitlines() if line]
    assert lines[0] == "to stderr"
    assert lines[1].startswith("[codecell] ok | return code 0 |")
    assert "1 file(s) saved in" in lines[2] and lines[2].endswith("r.txt")


def test_user_errors_still_exit_zero_and_usage_errors_exit_two(codecell, tmp_path):
    rc, _, _ = codecell("-c", "import sys; sys.exit(3)")
    assert rc == 0
    rc, _, err = codecell("--timeout", "0", "-c", "print(1)")
    assert rc == 2 and b"timeout must be between" in err
    rc, _, err = codecell("-c", "print(1)", str(tmp_path / "x.py"))
    assert rc == 2 and b"either" in err
    rc, _, err = codecell("--file", str(tmp_path / "missing.csv"), "-c", "print(1)")
    assert rc == 2 and b"missing.csv" in err
    rc, _, _ = codecell("--memory-mb", "abc", "-c", "print(1)")
    assert rc == 2


def test_not_root_is_a_clear_codecell_failure(tmp_path):
    require_root()  # to switch to an unprivileged user
    if subprocess.run(["which", "setpriv"], capture_output=True).returncode != 0:
        pytest.fail("setpriv (util-linux) is missing")
    os.chmod(tmp_path, 0o777)
    p = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", BIN,
                        "run", "--json", "--data-dir", str(tmp_path / "d"), "-c", "print(1)"],
                       capture_output=True, timeout=30)
    assert p.returncode == 1
    assert json.loads(p.stdout)["error"]["message"].startswith("codecell must run as root")


CPU_SPIN = """
import os, time
def spin(seconds):
    end = time.time() + seconds
    while time.time() < end:
        pass
pid = os.fork()
spin(1.5)  # two processes spinning for 1.5 s of wall time each
if pid == 0:
    os._exit(0)
os.waitpid(pid, 0)
"""


def test_cpu_limit_holds_a_busy_execution_to_its_share(run_json):
    limited = run_json(CPU_SPIN, "--cpus", "0.5", "--timeout", "20")
    assert limited["status"] == "ok", limited["error"]
    wall, cpu = limited["execution_time"], limited["resources"]["cpu_time"]
    # Half a core for ~1.5 s is ~0.75 s of CPU; two unthrottled spinners would burn ~3 s.
    assert cpu <= 0.5 * wall * 1.3 + 0.2, f"cpu {cpu:.2f} s in {wall:.2f} s wall at --cpus 0.5"
    unlimited = run_json(CPU_SPIN, "--cpus", "0", "--timeout", "20")
    assert unlimited["resources"]["cpu_time"] > 0.5 * unlimited["execution_time"] * 1.3 + 0.2


def test_code_from_stdin(tmp_path):
    from conftest import require_root
    require_root()
    p = subprocess.run([BIN, "run", "--json", "--data-dir", str(tmp_path / "d"), "-"],
                       input=b"print(6 * 7)\n", capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["output"] == "42\n"
