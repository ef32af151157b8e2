#!/usr/bin/python3
"""What notebook output costs (issue 13): the runner before it (main's runner.py, from git) and
with it (src/runner/runner.py), on the same workloads, interleaved, in one run.

Run from the repository:   /usr/bin/python3 bench/notebook.py [--runs 15] [--base bf43024]

Each run is a fresh `/usr/bin/python3 -I -B -u runner.py` (the cold path's interpreter, without
the sandbox, whose cost is the same for both) in a fresh temp dir; the new runner gets a display
pipe that a thread drains, as the host does. Workloads: print('hi'); a final expression
(`x = 41` / `x + 1`); a matplotlib plot saved with savefig; the same plot shown with plt.show()
(the new runner renders it to figure_1.png; the old one only warns, so its time is the plot
without a PNG); a 10,000-row DataFrame as the final expression. Prints median and p90 (ms) per
workload and runner, and the ratio new/old of the medians (1.00x = no cost). Standard library
only; the summary is also printed as one JSON line prefixed "JSON: ".
"""
import argparse
import json
import os
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORKLOADS = {
    "print": "print('hi')",
    "final expression": "x = 41\nx + 1",
    "plot + savefig": "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nplt.savefig('p.png')",
    "plot + plt.show()": "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nplt.show()",
    "DataFrame value": "import pandas as pd\npd.DataFrame({'a': range(10000), 'b': range(10000)})",
}


def run_once(runner, code, channel):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "run").mkdir()
        (root / "data").mkdir()
        (root / "run" / "code.py").write_text(code)
        r, w = os.pipe()
        manifest = {"files": []}
        if channel:
            manifest["display_fd"] = w
        (root / "run" / "files.json").write_text(json.dumps(manifest))
        reader = threading.Thread(target=lambda: [None for _ in iter(lambda: os.read(r, 65536), b"")])
        reader.start()
        env = {"PATH": "/usr/bin:/bin", "HOME": tmp, "LANG": "C.UTF-8", "MPLBACKEND": "Agg",
               "MPLCONFIGDIR": str(REPO / "build" / "bench-mpl"),
               "CODECELL_RUNNER_DIR": str(root / "run"), "CODECELL_DATA_DIR_INSIDE": str(root / "data")}
        start = time.perf_counter()
        p = subprocess.run(["/usr/bin/python3", "-I", "-B", "-u", str(runner)], cwd=root / "data",
                           env=env, capture_output=True, pass_fds=(w,))
        elapsed = time.perf_counter() - start
        os.close(w)
        reader.join()
        os.close(r)
        if p.returncode != 0:
            raise SystemExit(f"{runner}: {code!r} failed: {p.stderr.decode()[-500:]}")
        return elapsed * 1000


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--base", default="bf43024", help="git revision of the runner before")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "runner_old.py"
        old.write_bytes(subprocess.run(["git", "-C", str(REPO), "show",
                                        f"{args.base}:src/runner/runner.py"],
                                       check=True, capture_output=True).stdout)
        new = REPO / "src" / "runner" / "runner.py"
        summary = {}
        for name, code in WORKLOADS.items():
            run_once(old, code, False)  # warm the page cache and matplotlib's font cache
            run_once(new, code, True)
            times = {"old": [], "new": []}
            for _ in range(args.runs):
                times["old"].append(run_once(old, code, False))
                times["new"].append(run_once(new, code, True))
            row = {}
            for k, xs in times.items():
                xs.sort()
                row[k] = {"median": statistics.median(xs), "p90": xs[int(0.9 * (len(xs) - 1))]}
            row["ratio"] = row["new"]["median"] / row["old"]["median"]
            summary[name] = row
            print(f"{name:20s} old {row['old']['median']:7.1f} ms (p90 {row['old']['p90']:7.1f})"
                  f"   new {row['new']['median']:7.1f} ms (p90 {row['new']['p90']:7.1f})"
                  f"   new/old {row['ratio']:.2f}x", flush=True)
        print("JSON: " + json.dumps(summary))


if __name__ == "__main__":
    main()
