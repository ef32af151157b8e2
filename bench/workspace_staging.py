#!/usr/bin/env python3
"""Measures what placing inputs in /mnt/data costs, for the overlay-vs-copies decision.

Run as root after building:  /usr/bin/python3 bench/workspace_staging.py [--runs N]
It times, in one run: `codecell run -c pass` with no input, a 1 MiB and a 50 MiB input (the CLI
copies inputs into the overlay's lower layer on disk; the upper layer is a tmpfs that holds only
what the code writes), against the cost the copies-into-a-tmpfs design would add: copying the same
50 MiB into a tmpfs, all of it resident in RAM and charged to the execution's memory limit.
"""
import argparse
import os
import pathlib
import shutil
import statistics
import subprocess
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
BIN = os.environ.get("CODECELL_BIN", str(REPO / "build" / "codecell"))


def median_seconds(fn, runs):
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    work = pathlib.Path(tempfile.mkdtemp(prefix="codecell-bench-"))
    data_dir = work / "data"
    inputs = {"none": None, "1 MiB": 1 << 20, "50 MiB": 50 << 20}
    for name, size in inputs.items():
        if size:
            (work / f"in-{size}").write_bytes(os.urandom(size))

    def run(size):
        extra = ["--file", str(work / f"in-{size}")] if size else []
        subprocess.run([BIN, "run", "--json", "--data-dir", str(data_dir), *extra, "-c", "pass"],
                       check=True, capture_output=True)

    run(None)  # warm the page cache and matplotlib's font cache
    rows = [(name, median_seconds(lambda s=size: run(s), args.runs)) for name, size in inputs.items()]

    tmpfs = work / "tmpfs"
    tmpfs.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(tmpfs)], check=True)
    try:
        def copy():
            shutil.copyfile(work / f"in-{50 << 20}", tmpfs / "copy")
            os.remove(tmpfs / "copy")
        copy_50 = median_seconds(copy, args.runs)
    finally:
        subprocess.run(["umount", str(tmpfs)], check=True)
    shutil.rmtree(work)

    base = rows[0][1]
    print(f"{'codecell run -c pass':<34}{'median':>10}{'vs no input':>14}")
    for name, seconds in rows:
        print(f"  input {name:<26}{seconds * 1000:>8.1f} ms{seconds / base:>13.2f}x")
    print(f"copy 50 MiB into a tmpfs (the copies design, per execution): {copy_50 * 1000:.1f} ms, "
          f"and 50 MiB of RAM charged to the execution")
    print("overlay upper layer: 0 bytes until the code writes")


if __name__ == "__main__":
    main()
