#!/usr/bin/python3
"""What codecell's MCP server (issue 6, docs/mcp.md) costs against the plain HTTP API: the same
code run through /v1/executions, /v1/tool-calls, /mcp (Streamable HTTP) and `codecell mcp`
(stdio), in one run, interleaved run by run.

Run as root after building, from anywhere:   /usr/bin/python3 bench/mcp.py [--runs 40]
                     [--plot-runs 15] [--bin PATH]
The defaults take about 20 s on 2 cores, the daemon's and codecell mcp's start included.
One daemon, `codecell serve --config <tmp>/serve/bench.toml --listen 127.0.0.1:<free port>
--data-dir <tmp>/serve/data` (config: [executions] queue = 256, per_user = 256; [shutdown]
grace_seconds = 2; warm interpreters, the default), started by this script; measuring starts once
/v1/status says interpreters.mode = "warm". Every request is for the one user "bench" and opens a
new loopback connection (as the other benchmarks do; an MCP SDK client would keep one alive).
Methods:
  (e) executions  POST /v1/executions {"user_id": "bench", "code": CODE}.
  (t) tool-calls  POST /v1/tool-calls {"user_id": "bench", "tool_call": {"id": "call_1",
                  "type": "function", "function": {"name": "execute_python_code",
                  "arguments": "<{\"code\": CODE} as a JSON string>"}}}.
  (h) MCP HTTP    Streamable HTTP on the same daemon: one session, opened before the runs (not
                  timed) with POST /mcp?user_id=bench initialize (protocolVersion 2025-11-25; the
                  answer's Mcp-Session-Id header) and notifications/initialized (202); then per
                  run POST /mcp with Mcp-Session-Id, Content-Type: application/json, Accept:
                  application/json, text/event-stream and {"jsonrpc": "2.0", "id": N, "method":
                  "tools/call", "params": {"name": "execute_python_code", "arguments":
                  {"code": CODE}}} (no progressToken, so the answer is plain JSON).
  (s) MCP stdio   a `codecell mcp --user bench --data-dir <tmp>/stdio/data --config <the daemon's
                  config file>` subprocess (its stderr in <tmp>/stdio/mcp.log): newline-delimited
                  JSON-RPC on its stdin and stdout, initialize and notifications/initialized
                  first, then one tools/call line per run, timed from writing the line to having
                  read the response line with that id (lines without an id, notifications, are
                  skipped). It runs its own service and warm interpreters (zygotes) beside the
                  daemon's, on the same cores. It counts as warm once a tools/call of print('hi')
                  takes < 100 ms (polled from its start, up to 10 s; if none does, the runs start
                  anyway and the report says so) and its log (stderr) has said "warm
                  interpreters ready: full zygote" (the one with matplotlib preloaded).
Workloads: CODE_PRINT = print('hi') (--runs per method) and CODE_PLOT = a small matplotlib
figure saved with plt.savefig('plot.png') (--plot-runs per method). Before each workload every
method runs it 3 times (warm-up, checked, not timed). Then the methods take turns run by run,
the order reversed every other run (e, t, h, s, then s, h, t, e, ...).
For the plot, (e) and (t) get JSON only; to have the picture as (h) and (s) do (inline base64 in
the answer), they then fetch it: (e) GET /v1/files/<generated file_id>/content?user_id=bench,
(t) GET its attachment's download_path. Both times are reported, the POST alone and POST + GET.
Every answer is checked, and one that fails a check counts as a failure (not timed), listed at the
end: HTTP 200 (or a response line for (s)); (e)/(t): "success" true and "interpreter": "warm";
(h)/(s): no JSON-RPC error, "isError" false, a first content item of type text; the output
('hi' in stdout for print); for the plot a generated plot.png, and PNG bytes (b"\\x89PNG" first;
for (h)/(s) the base64 "data" of an image item with mimeType image/png, decoded) whose length is
the file's size in the JSON (generated_files, attachments or the resource_link). Files the code
generates are deleted after each run (not timed: DELETE /v1/files/<id> on the daemon, a
tools/call of delete_file for (s)), so that every run starts with the user having no files (an
execution places all of the user's files in /mnt/data).
Reported per workload and method: median and p90 wall time (time.perf_counter on the client
side), the median of each run's wall time minus its in-sandbox time ("around": what surrounds
the code, less noisy than the wall times, which carry the sandbox's run-to-run variation), the
ratio to (e)'s median (method ÷ (e), so > 1× = slower; for the plot against (e) with
the fetch, and the POST-only rows against (e)'s POST only), the difference in ms, the median of
the in-sandbox time the service reports ("execution_time" for (e)/(t), parsed from the text's
"Status: success (exit code 0, X s)" for (h)/(s)), and the answer's size in bytes (HTTP body,
headers excluded, or the stdio line; for (e)/(t) + GET, JSON + PNG). Nothing is asserted on
times. At the end a one-line JSON summary of every number, prefixed "JSON: ". Only the standard
library. The binary: --bin, else $CODECELL_BIN, else <repo>/build/codecell.
"""
import argparse
import base64
import ctypes
import hashlib
import http.client
import json
import os
import pathlib
import platform
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

from serve_daemon import (Interrupted, ServeDaemon, interrupted, on_sigterm,
                          print_failures_and_load, stop_all, fmt_ms, fmt_x, median, ms, percentile)

REPO = pathlib.Path(__file__).resolve().parents[1]
USER = "bench"
PROTOCOL = "2025-11-25"
WARMUPS = 3  # per method and workload, not timed
STDIO_WARM_MS = 100  # (s) is taken as warm once a print('hi') tools/call takes less
STDIO_WARM_WAIT_S = 10  # from spawning `codecell mcp`
STDIO_TIMEOUT_S = 120  # waiting for one response line
FULL_READY = "warm interpreters ready: full zygote"  # in codecell mcp's log (stderr)
PNG_MAGIC = b"\x89PNG"
METHODS = {"e": "executions", "t": "tool-calls", "h": "MCP HTTP", "s": "MCP stdio"}

CODE_PRINT = "print('hi')\n"
CODE_PLOT = ("import matplotlib.pyplot as plt\n"
             "fig, ax = plt.subplots(figsize=(4, 3), dpi=80)\n"
             "ax.plot([1, 3, 2, 5, 4], marker='o')\n"
             "ax.set_title('bench')\n"
             "plt.savefig('plot.png')\n")
WORKLOADS = {"print": CODE_PRINT, "plot": CODE_PLOT}
LABELS = {"print": "print('hi')", "plot": "matplotlib plot"}
STATUS_RE = re.compile(r"Status: success \(exit code 0, ([0-9.]+) s\)")


def default_bin():
    if os.environ.get("CODECELL_BIN"):
        return os.environ["CODECELL_BIN"]
    return str(REPO / "build" / "codecell")


def sha256_prefix(path):
    """The first 12 hex digits of the file's SHA-256 (which build was measured)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:12]


class Failed(Exception):
    """A check on an answer failed; the message says which."""


# --------------------------------------------------------------------------- the daemon
class Daemon(ServeDaemon):
    def __init__(self, root, binary):
        env = {k: v for k, v in os.environ.items() if not k.startswith("CODECELL_")}
        super().__init__(root, "serve", binary, env,
                         ready=lambda i: isinstance(i, dict) and i.get("mode") == "warm",
                         not_ready="/v1/status interpreters.mode is not 'warm'")

    def request_full(self, method, path, body=None, headers=None):
        """(HTTP status, response headers as a dict with lower-case names, body bytes), on a new
        loopback connection."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.HTTP_TIMEOUT)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
        finally:
            conn.close()

    def delete_file(self, file_id):
        status, data = self.request("DELETE", f"/v1/files/{file_id}?user_id={USER}")
        if status != 204:
            raise Failed(f"DELETE /v1/files/{file_id}: HTTP {status} {data[:200]!r}")


def expect(cond, what):
    if not cond:
        raise Failed(what)


def parse_json(data, what):
    try:
        return json.loads(data)
    except ValueError:
        raise Failed(f"{what}: not JSON: {data[:200]!r}") from None


def check_png(png, size, what):
    expect(png[:4] == PNG_MAGIC, f"{what}: not a PNG (starts {png[:8]!r})")
    expect(size is None or len(png) == size, f"{what}: {len(png)} bytes, the JSON says {size}")


# --------------------------------------------------------------------------- (e) and (t)
class Rest:
    """(e) POST /v1/executions and (t) POST /v1/tool-calls; for the plot, then GET the PNG."""

    def __init__(self, daemon, key):
        self.daemon, self.key = daemon, key

    def body(self, code):
        if self.key == "e":
            return {"user_id": USER, "code": code}
        return {"user_id": USER, "tool_call": {
            "id": "call_1", "type": "function",
            "function": {"name": "execute_python_code", "arguments": json.dumps({"code": code})}}}

    def run(self, workload):
        """{"wall_s", "post_s", "bytes", "json_bytes", "png_bytes", "sandbox_s"}; raises Failed.
        Generated files are deleted afterwards (not timed)."""
        d = self.daemon
        path = "/v1/executions" if self.key == "e" else "/v1/tool-calls"
        body = json.dumps(self.body(WORKLOADS[workload])).encode()
        t0 = time.perf_counter()
        status, data = d.request("POST", path, body, {"Content-Type": "application/json"})
        t1 = time.perf_counter()
        png, t2 = None, t1
        ids = []
        try:
            expect(status == 200, f"POST {path}: HTTP {status} {data[:200]!r}")
            j = parse_json(data, path)
            result = j if self.key == "e" else j.get("result")
            expect(isinstance(result, dict), f"no execution result in {data[:200]!r}")
            files = result.get("generated_files") or []
            ids = [f.get("file_id") for f in files if f.get("file_id")]
            expect(result.get("success") is True,
                   f"success {result.get('success')!r}, status {result.get('status')!r}: "
                   f"{(result.get('error') or result.get('stderr') or '')[-200:]!r}")
            expect(result.get("interpreter") == "warm",
                   f"interpreter {result.get('interpreter')!r}, expected 'warm'")
            if self.key == "t":
                content = (j.get("message") or {}).get("content", "")
                expect(content.startswith("Status: success"), f"tool message {content[:120]!r}")
            if workload == "print":
                expect(result.get("output") == "hi\n", f"output {result.get('output', '')[:80]!r}")
                if self.key == "t":
                    expect("\nhi\n" in content, f"no hi in the tool message {content[:120]!r}")
            else:
                if self.key == "e":
                    got = [f for f in files if f.get("filename") == "plot.png"]
                    expect(got, f"no plot.png among {[f.get('filename') for f in files]}")
                    url, size = f"/v1/files/{got[0]['file_id']}/content?user_id={USER}", \
                        got[0].get("size")
                else:
                    att = [a for a in j.get("attachments") or [] if a.get("filename") == "plot.png"]
                    expect(att and att[0].get("download_path"),
                           f"no plot.png attachment with a download_path: {j.get('attachments')}")
                    url, size = att[0]["download_path"], att[0].get("size")
                t1 = time.perf_counter()
                status, png = d.request("GET", url)
                t2 = time.perf_counter()
                expect(status == 200, f"GET {url}: HTTP {status} {png[:200]!r}")
                check_png(png, size, f"GET {url}")
        finally:
            for file_id in ids:
                d.delete_file(file_id)
        return {"wall_s": t2 - t0, "post_s": t1 - t0, "json_bytes": len(data),
                "png_bytes": len(png) if png is not None else None,
                "bytes": len(data) + (len(png) if png is not None else 0),
                "sandbox_s": result.get("execution_time")}


# --------------------------------------------------------------------------- (h) and (s)
def tool_call(rpc_id, code):
    return {"jsonrpc": "2.0", "id": rpc_id, "method": "tools/call",
            "params": {"name": "execute_python_code", "arguments": {"code": code}}}


INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
              "params": {"protocolVersion": PROTOCOL, "capabilities": {},
                         "clientInfo": {"name": "bench", "version": "1"}}}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}


def check_mcp_result(message, rpc_id, workload):
    """Checks a tools/call response; ({"sandbox_s", "png_bytes"}, [file ids to delete])."""
    expect(message.get("id") == rpc_id, f"response id {message.get('id')!r}, expected {rpc_id}")
    expect("error" not in message, f"JSON-RPC error {json.dumps(message.get('error'))[:200]}")
    result = message.get("result")
    expect(isinstance(result, dict), f"no result: {json.dumps(message)[:200]}")
    content = result.get("content") or []
    links = [c for c in content if c.get("type") == "resource_link"]
    ids = [c["uri"].rsplit("/", 1)[-1] for c in links
           if str(c.get("uri", "")).startswith("codecell://files/")]
    text = content[0].get("text", "") if content and content[0].get("type") == "text" else None
    expect(text is not None, f"first content item is not text: {json.dumps(content)[:200]}")
    expect(result.get("isError") is False, f"isError {result.get('isError')!r}: {text[:200]!r}")
    m = STATUS_RE.search(text)
    expect(m, f"no 'Status: success' in {text[:120]!r}")
    out = {"sandbox_s": float(m.group(1)), "png_bytes": None}
    if workload == "print":
        expect("\nhi\n" in text, f"no hi in the text {text[:160]!r}")
    else:
        images = [c for c in content if c.get("type") == "image"]
        expect(images, f"no image content: types {[c.get('type') for c in content]}")
        expect(images[0].get("mimeType") == "image/png",
               f"image mimeType {images[0].get('mimeType')!r}")
        try:
            png = base64.b64decode(images[0].get("data", ""), validate=True)
        except ValueError as e:
            raise Failed(f"image data is not base64: {e}") from None
        plot = [c for c in links if c.get("name") == "plot.png"]
        expect(plot, f"no resource_link named plot.png: {[c.get('name') for c in links]}")
        check_png(png, plot[0].get("size"), "image content")
        out["png_bytes"] = len(png)
    return out, ids


class McpHttp:
    """(h) Streamable HTTP on the daemon: one session, one tools/call per run."""

    def __init__(self, daemon):
        self.daemon = daemon
        self.next_id = 2
        status, headers, data = daemon.request_full(
            "POST", f"/mcp?user_id={USER}", json.dumps(INITIALIZE).encode(),
            {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"})
        if status != 200 or not headers.get("mcp-session-id"):
            raise RuntimeError(f"MCP initialize: HTTP {status}, headers {headers}: {data[:300]!r}")
        self.init = json.loads(data).get("result") or {}
        self.session = headers["mcp-session-id"]
        self.headers = {"Mcp-Session-Id": self.session, "Content-Type": "application/json",
                        "Accept": "application/json, text/event-stream"}
        status, _, data = daemon.request_full("POST", "/mcp", json.dumps(INITIALIZED).encode(),
                                              self.headers)
        if status != 202:
            raise RuntimeError(f"notifications/initialized: HTTP {status} {data[:300]!r}, not 202")

    def run(self, workload):
        rpc_id, self.next_id = self.next_id, self.next_id + 1
        body = json.dumps(tool_call(rpc_id, WORKLOADS[workload])).encode()
        t0 = time.perf_counter()
        status, headers, data = self.daemon.request_full("POST", "/mcp", body, self.headers)
        t1 = time.perf_counter()
        expect(status == 200, f"POST /mcp: HTTP {status} {data[:200]!r}")
        ctype = headers.get("content-type", "")
        expect(ctype.startswith("application/json"), f"Content-Type {ctype!r}")
        out, ids = check_mcp_result(parse_json(data, "/mcp"), rpc_id, workload)
        for file_id in ids:
            self.daemon.delete_file(file_id)
        return {"wall_s": t1 - t0, "bytes": len(data), **out}

    def close(self):
        try:
            self.daemon.request_full("DELETE", "/mcp", None, {"Mcp-Session-Id": self.session})
        except OSError:
            pass


class McpStdio:
    """(s) `codecell mcp` over stdio, its own data dir, the daemon's config."""

    def __init__(self, root, binary, config):
        self.root = root / "stdio"
        self.root.mkdir()
        self.log_path = self.root / "mcp.log"
        self.next_id = 1
        self.lines = queue.Queue()
        self.proc = None
        self.binary, self.config = binary, config
        self.warm_s = None  # from spawning to the first print('hi') call under STDIO_WARM_MS
        self.warm_probes = []  # ms of each probe call
        self.full_ready_s = None  # when its log said the full zygote (matplotlib's) was ready

    def spawn(self):
        libc = ctypes.CDLL(None, use_errno=True)

        def die_with_us():  # PR_SET_PDEATHSIG = 1: SIGTERM if we are killed
            libc.prctl(1, signal.SIGTERM, 0, 0, 0)

        env = {k: v for k, v in os.environ.items() if not k.startswith("CODECELL_")}
        self.log = open(self.log_path, "wb")
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [self.binary, "mcp", "--user", USER, "--data-dir", str(self.root / "data"),
             "--config", str(self.config)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, env=env,
            start_new_session=True, preexec_fn=die_with_us)
        threading.Thread(target=self._reader, daemon=True).start()

    def _reader(self):
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def log_tail(self, n=15):
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def send(self, message):
        self.proc.stdin.write(json.dumps(message).encode() + b"\n")
        self.proc.stdin.flush()

    def response(self, rpc_id):
        """The response line with this id (raw bytes): other lines, notifications, skipped."""
        deadline = time.monotonic() + STDIO_TIMEOUT_S
        while True:
            try:
                line = self.lines.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                raise Failed(f"no response to id {rpc_id} in {STDIO_TIMEOUT_S} s") from None
            if line is None:
                raise RuntimeError(f"codecell mcp closed stdout (exit {self.proc.poll()}):\n"
                                   f"{self.log_tail()}")
            try:
                message = json.loads(line)
            except ValueError:
                raise Failed(f"stdout line is not JSON: {line[:200]!r}") from None
            if isinstance(message, dict) and "id" in message:
                if message["id"] == rpc_id:
                    return line, message
                raise Failed(f"response id {message['id']!r} while waiting for {rpc_id}")

    def start(self):
        """spawn, initialize, notifications/initialized, then wait until warm."""
        self.spawn()
        self.send(INITIALIZE)
        _, message = self.response(1)
        if "result" not in message:
            raise RuntimeError(f"codecell mcp initialize: {json.dumps(message)[:300]}")
        self.init = message["result"]
        self.next_id = 2
        self.send(INITIALIZED)
        while True:
            t = time.perf_counter()
            try:
                self.run("print")
                ok = True
            except Failed:
                ok = False
            ms_ = (time.perf_counter() - t) * 1000
            self.warm_probes.append(round(ms_, 1))
            if self.full_ready_s is None and FULL_READY in self.log_tail(50):
                self.full_ready_s = time.monotonic() - self.started  # within a probe's time
            if ok and ms_ < STDIO_WARM_MS and self.full_ready_s is not None:
                self.warm_s = time.monotonic() - self.started
                return
            if time.monotonic() - self.started > STDIO_WARM_WAIT_S:
                return
            time.sleep(0.2)

    def call(self, name, arguments):
        rpc_id, self.next_id = self.next_id, self.next_id + 1
        self.send({"jsonrpc": "2.0", "id": rpc_id, "method": "tools/call",
                   "params": {"name": name, "arguments": arguments}})
        return rpc_id

    def run(self, workload):
        t0 = time.perf_counter()
        rpc_id = self.call("execute_python_code", {"code": WORKLOADS[workload]})
        line, message = self.response(rpc_id)
        t1 = time.perf_counter()
        out, ids = check_mcp_result(message, rpc_id, workload)
        for file_id in ids:  # not timed
            rid = self.call("delete_file", {"file_id": file_id})
            _, m = self.response(rid)
            expect((m.get("result") or {}).get("isError") is False,
                   f"delete_file {file_id}: {json.dumps(m)[:200]}")
        return {"wall_s": t1 - t0, "bytes": len(line.rstrip(b"\n")), **out}

    def stop(self):
        """Closes stdin (it then ends by itself), then SIGTERM after 10 s, SIGKILL after 10 more."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        for sig in (None, signal.SIGTERM, signal.SIGKILL):
            if sig is not None:
                self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=10)
                return
            except subprocess.TimeoutExpired:
                pass

    name = "codecell mcp (stdio)"


# --------------------------------------------------------------------------- measuring



def measure(methods, workload, runs, failures, warmup_failures):
    """{key: [result dicts]}: WARMUPS untimed runs per method, then runs interleaved."""
    for key, m in methods.items():
        for i in range(WARMUPS):
            try:
                m.run(workload)
            except Failed as e:
                warmup_failures.append(f"warm-up {LABELS[workload]} ({key}) {METHODS[key]}: {e}")
    got = {k: [] for k in methods}
    errors = {k: [] for k in methods}
    for i in range(runs):
        order = list(methods.items())
        if i % 2:
            order.reverse()
        for key, m in order:
            try:
                got[key].append(m.run(workload))
            except Failed as e:
                errors[key].append(str(e))
        print(f"\r  {LABELS[workload]}: {i + 1}/{runs}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    for key, errs in errors.items():
        if errs:
            failures.append(f"{LABELS[workload]} ({key}) {METHODS[key]}: {len(errs)} of {runs} "
                            f"failed, e.g. {errs[0]}")
    return got, {k: len(v) for k, v in errors.items()}


def summarize_workload(workload, got, failed):
    rows = {}

    def row(label, key, results, field, base_key=None):
        times = [r[field] for r in results]
        rows[label] = {"method": key, "n": len(times), "failed": failed[key],
                       "median_ms": ms(median(times)), "p90_ms": ms(percentile(times, 90)),
                       "sandbox_median_ms": ms(median([r.get("sandbox_s") for r in results])),
                       "around_median_ms": ms(median([r[field] - r["sandbox_s"] for r in results
                                                      if r.get("sandbox_s") is not None])),
                       "bytes_median": median([r["bytes"] if field == "wall_s" else
                                               r.get("json_bytes", r["bytes"])
                                               for r in results]),
                       "png_bytes_median": median([r.get("png_bytes") for r in results])
                       if field == "wall_s" else None,
                       "base": base_key}

    for key, results in got.items():
        row(key, key, results, "wall_s", "e")
    if workload == "plot":
        for key in ("e", "t"):
            if key in got:
                row(f"{key}-post", key, got[key], "post_s", "e-post")
                fetch = [r["wall_s"] - r["post_s"] for r in got[key]]
                rows[key]["fetch_median_ms"] = ms(median(fetch))
    for r in rows.values():
        base = rows.get(r["base"])
        b, x = base and base["median_ms"], r["median_ms"]
        r["vs_e"] = round(x / b, 2) if b and x else None
        r["minus_e_ms"] = round(x - b, 2) if b and x is not None else None
    return rows


# --------------------------------------------------------------------------- main
def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=40,
                        help="print('hi') runs per method (%(default)s)")
    parser.add_argument("--plot-runs", type=int, default=15,
                        help="matplotlib plot runs per method (%(default)s)")
    parser.add_argument("--bin", default=default_bin(),
                        help="the codecell binary (default: $CODECELL_BIN, else build/codecell)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root (codecell serve and codecell mcp need it)")
    if not os.access(args.bin, os.X_OK):
        sys.exit(f"{args.bin} not found: build first (bash scripts/build.sh) or pass --bin")

    signal.signal(signal.SIGTERM, on_sigterm)
    root = pathlib.Path(tempfile.mkdtemp(prefix="codecell-bench-mcp-"))
    daemon = stdio = mcp_http = None
    failures, warmup_failures = [], []
    try:
        daemon = Daemon(root, args.bin)
        daemon.spawn()
        stdio = McpStdio(root, args.bin, daemon.config)
        print("  waiting for the daemon: interpreters.mode = \"warm\"", file=sys.stderr)
        daemon.wait_ready()
        print(f"  daemon ready after {daemon.ready_s:.1f} s", file=sys.stderr)
        # The stdio server after the daemon is warm: the two zygotes do not start at once.
        stdio.start()
        print("  codecell mcp (stdio) " + (f"warm after {stdio.warm_s:.1f} s" if stdio.warm_s
                                            else f"not warm after "
                                                 f"{STDIO_WARM_WAIT_S} s")
              + f"; probes {stdio.warm_probes} ms", file=sys.stderr)
        mcp_http = McpHttp(daemon)
        methods = {"e": Rest(daemon, "e"), "t": Rest(daemon, "t"), "h": mcp_http, "s": stdio}

        commit = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"],
                                capture_output=True, text=True).stdout.strip() or "?"
        interp = daemon.status_at_start.get("interpreters") or {}
        meta = {"commit": commit, "bin": args.bin,
                "bin_mtime": time.strftime("%Y-%m-%d %H:%M:%S",
                                           time.localtime(os.stat(args.bin).st_mtime)),
                "bin_sha256": sha256_prefix(args.bin),
                "host": platform.node(), "kernel": platform.release(), "cores": os.cpu_count(),
                "date": time.strftime("%Y-%m-%d %H:%M"), "runs": args.runs,
                "plot_runs": args.plot_runs, "workers": daemon.status_at_start.get("workers"),
                "daemon_ready_s": round(daemon.ready_s, 2),
                "daemon_pools": [{k: p.get(k) for k in ("name", "pool_size", "startup_seconds")}
                                 for p in interp.get("pools") or []],
                "stdio_warm_s": stdio.warm_s and round(stdio.warm_s, 2),
                "stdio_warm_probes_ms": stdio.warm_probes,
                "stdio_full_zygote_s": stdio.full_ready_s and round(stdio.full_ready_s, 2),
                "protocol": {"h": mcp_http.init.get("protocolVersion"),
                             "s": stdio.init.get("protocolVersion")},
                "server": (mcp_http.init.get("serverInfo") or {}),
                "load_before": round(os.getloadavg()[0], 2)}
        print(f"codecell {commit} ({args.bin}, built {meta['bin_mtime']}, sha256 "
              f"{meta['bin_sha256']}), {meta['host']}, "
              f"Linux {meta['kernel']}, {meta['cores']} cores, {meta['date']}; --runs "
              f"{args.runs} --plot-runs {args.plot_runs}", flush=True)

        results = {}
        for workload, runs in (("print", args.runs), ("plot", args.plot_runs)):
            got, failed = measure(methods, workload, runs, failures, warmup_failures)
            results[workload] = summarize_workload(workload, got, failed)

        try:
            end = daemon.status().get("interpreters") or {}
        except (OSError, ValueError) as e:
            end = {"error": f"{type(e).__name__}: {e}"}
        restarts = sum(p.get("restarts") or 0 for p in end.get("pools") or [])
        if end.get("mode") != "warm":
            failures.append(f"daemon: interpreters.mode at the end is {end.get('mode')!r} "
                            f"({end.get('reason') or end.get('error', '')})")
        if restarts:
            failures.append(f"daemon: zygotes restarted {restarts} times during the runs")
        if stdio.proc.poll() is not None:
            failures.append(f"codecell mcp (stdio) exited {stdio.proc.returncode} during the runs")
        if stdio.warm_s is None:
            failures.append(f"codecell mcp (stdio): not warm within {STDIO_WARM_WAIT_S} s of "
                            f"its start (print probes {stdio.warm_probes} ms, full zygote ready "
                            f"by {stdio.full_ready_s} s); measured anyway")
        meta["load_after"] = round(os.getloadavg()[0], 2)
        summary = {"meta": meta, "results": results, "failures": failures + warmup_failures}
        report(summary)
        print("\nJSON: " + json.dumps(summary, separators=(",", ":"), ensure_ascii=False))
    except (KeyboardInterrupt, Interrupted) as e:
        return interrupted(e)
    finally:
        if mcp_http is not None:
            mcp_http.close()
        stop_all([d for d in (stdio, daemon) if d is not None])
        shutil.rmtree(root, ignore_errors=True)
    return 0


# --------------------------------------------------------------------------- report


def fmt_d(v):
    return "—" if v is None else f"{v:+.1f} ms"


def fmt_b(v):
    return "—" if v is None else f"{v:,.0f}"


def report(s):
    m = s["meta"]
    pools = ", ".join(f"{p['name']} pool {p['pool_size']}" for p in m["daemon_pools"])
    print(f"daemon warm after {m['daemon_ready_s']} s ({m['workers']} workers; {pools}); "
          f"codecell mcp (stdio) "
          + (f"warm after {m['stdio_warm_s']} s" if m["stdio_warm_s"] is not None
             else f"NOT warm within {STDIO_WARM_WAIT_S} s")
          + f" (print probes {m['stdio_warm_probes_ms']} ms; full zygote ready by "
            f"{m['stdio_full_zygote_s']} s); MCP protocol {m['protocol']['h']} "
            f"(HTTP), {m['protocol']['s']} (stdio)")
    labels = {"e": "(e) executions", "t": "(t) tool-calls", "h": "(h) MCP HTTP",
              "s": "(s) MCP stdio", "e-post": "(e) POST only", "t-post": "(t) POST only"}
    for w, rows in s["results"].items():
        runs = m["runs"] if w == "print" else m["plot_runs"]
        print()
        head = (f"{LABELS[w] + f', {runs} runs':<26}{'median':>10}{'p90':>10}{'÷ (e)':>8}"
                f"{'− (e)':>10}{'sandbox':>10}{'around':>9}{'answer B':>10}{'PNG B':>8}"
                f"{'failed':>8}")
        print(head)
        print("-" * len(head))
        order = ["e", "t", "h", "s"] + (["e-post", "t-post"] if w == "plot" else [])
        for k in order:
            r = rows.get(k)
            if r is None:
                continue
            name = labels[k] + (" + GET" if w == "plot" and k in ("e", "t") else "")
            if k == "e-post":
                print("without fetching the PNG:")
            print(f"{name:<26}{fmt_ms(r['median_ms']):>10}{fmt_ms(r['p90_ms']):>10}"
                  f"{fmt_x(r['vs_e']):>8}{fmt_d(r['minus_e_ms']):>10}"
                  f"{fmt_ms(r['sandbox_median_ms']):>10}{fmt_ms(r['around_median_ms']):>9}"
                  f"{fmt_b(r['bytes_median']):>10}"
                  f"{fmt_b(r['png_bytes_median']):>8}{r['failed']:>8}")
        if w == "plot":
            fetch = ", ".join(f"({k}) {fmt_ms(rows[k].get('fetch_median_ms'))}"
                              for k in ("e", "t") if k in rows)
            print(f"the GET of the PNG alone (median of each run's POST + GET − POST): {fetch}")
    print("\n÷ (e): median ÷ (e)'s median (> 1× = slower; the plot's POST-only rows against (e)'s "
          "POST only); − (e): the\ndifference; sandbox: median in-sandbox time the service "
          "reports; around: median of each run's wall time − its\nin-sandbox time (all but the "
          "code: HTTP or stdio, JSON, the MCP layer, workspace, cgroup, records, the fetch);\n"
          "answer B: median answer size in bytes (HTTP body or stdio line; + GET: JSON + PNG); "
          "PNG B: the PNG's size\n(fetched, or decoded from the image content).")
    print_failures_and_load(s["failures"], m, "with nothing else running, a default run "
                            "left it at 1.7-1.8 here; much more means something else ran "
                            "meanwhile and the numbers are noisier")


if __name__ == "__main__":
    sys.exit(main())
