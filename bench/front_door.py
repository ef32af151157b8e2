#!/usr/bin/python3
"""The HTTP front door's own cost: the same requests on one kept-alive connection and on a fresh
connection each, in one run against one daemon (issue 15: keep-alive must cost no more than a
fresh connection; before TCP_NODELAY a reused connection paid ~40 ms a request, Nagle's algorithm
against the client's delayed ACK).

Run as root after building:   /usr/bin/python3 bench/front_door.py [--runs 200]
Requests: GET /v1/status (no execution: the front door alone) and POST /v1/executions of
print('hi') (warm). The methods alternate request by request so that drift hits both alike. The
table shows the median and p90 per request and method and the ratio fresh / kept-alive (> 1x:
keep-alive is faster). Only the standard library; bench/serve_daemon.py starts the daemon.
"""
import argparse
import http.client
import json
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from serve_daemon import (ServeDaemon, fmt_ms, interrupted, median, ms, on_sigterm, percentile,
                          stop_all)

BIN = Path(__file__).resolve().parent.parent / "build" / "codecell"
REQUESTS = {
    "GET /v1/status": ("GET", "/v1/status", None),
    "POST print": ("POST", "/v1/executions",
                   json.dumps({"user_id": "bench", "code": "print('hi')"})),
}


def timed(conn, method, path, body):
    headers = {"Content-Type": "application/json"} if body else {}
    t = time.perf_counter()
    conn.request(method, path, body=body, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    elapsed = time.perf_counter() - t
    if resp.status != 200:
        raise RuntimeError(f"{method} {path}: {resp.status} {data[:200]!r}")
    return elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, on_sigterm)
    root = Path(tempfile.mkdtemp(prefix="codecell-bench-http-"))
    daemons = []
    try:
        d = ServeDaemon(root, "serve", str(BIN), None,
                        ready=lambda i: isinstance(i, dict) and i.get("mode") == "warm",
                        not_ready="warm interpreters")
        daemons.append(d)
        d.spawn()
        d.wait_ready()
        kept = http.client.HTTPConnection("127.0.0.1", d.port, timeout=120)
        times = {(name, how): [] for name in REQUESTS for how in ("kept-alive", "fresh")}
        for name, (method, path, body) in REQUESTS.items():
            for _ in range(3):  # warm-up, not timed
                timed(kept, method, path, body)
            for _ in range(args.runs):
                times[(name, "kept-alive")].append(timed(kept, method, path, body))
                fresh = http.client.HTTPConnection("127.0.0.1", d.port, timeout=120)
                times[(name, "fresh")].append(timed(fresh, method, path, body))
                fresh.close()
        kept.close()
        print(f"{'request':<16} {'method':<11} {'median':>9} {'p90':>9}")
        summary = {}
        for name in REQUESTS:
            for how in ("kept-alive", "fresh"):
                xs = times[(name, how)]
                print(f"{name:<16} {how:<11} {fmt_ms(ms(median(xs))):>9} "
                      f"{fmt_ms(ms(percentile(xs, 90))):>9}")
            ratio = median(times[(name, "fresh")]) / median(times[(name, "kept-alive")])
            summary[name] = {"kept_alive_ms": ms(median(times[(name, "kept-alive")])),
                             "fresh_ms": ms(median(times[(name, "fresh")])), "ratio": ratio}
            print(f"{'':<16} fresh / kept-alive = {ratio:.2f}x "
                  f"({'PASS' if ratio >= 1 else 'MISS'}: keep-alive at or below fresh)")
        print("JSON: " + json.dumps(summary))
        return 0
    except (KeyboardInterrupt, Exception) as e:  # noqa: BLE001 - report and clean up
        if isinstance(e, KeyboardInterrupt) or type(e).__name__ == "Interrupted":
            return interrupted(e)
        raise
    finally:
        stop_all(daemons)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
