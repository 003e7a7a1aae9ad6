#!/usr/bin/env python3
"""Hot reload of `braid serve` as users run it: the real binary, real models, a real HTTP client
(the Python standard library's). Edits the graph file, then reloads with SIGHUP and with
POST /admin/reload: the new endpoints serve, a request sent before the reload completes, a graph
with an error is refused with its file:line:col diagnostic while the old graph keeps serving, and
SIGTERM during a reload answers the reloads waiting at once and exits 0 without serving what the
reload loaded. A graph file must be a regular file (a named pipe could hold a reload for good). (That a request still running at the swap finishes on the old engine is proven
without timing in tests/http/reload_test.cpp.)

usage: serve_reload.py BRAID_BINARY
"""
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

from serve_support import check, failures, request, wait_until

braid = sys.argv[1]

MODEL = 'model b = torch "models/busy.pt" { def run(text: str, rounds: int) -> str }\n'
FIRST = MODEL + 'endpoint work(text: str, rounds: int = 1) -> str { return b.run(text, rounds) }\n'
SECOND = FIRST + 'endpoint twice(text: str) -> str { return b.run(b.run(text, 1), 1) }\n'
BROKEN = SECOND + 'endpoint broken(text: str) -> str { return c.run(text, 1) }\n'

with tempfile.TemporaryDirectory() as tmp:
    graph = os.path.join(tmp, "live.graph")

    def write(text):
        with open(graph, "w") as f:
            f.write(text)

    write(FIRST)
    proc = subprocess.Popen([braid, "serve", graph, "--port", "0", "--allow-reload"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(l) for l in proc.stderr], daemon=True)
    reader.start()
    seen = []
    hung = None

    def stderr_until(pattern, seconds=60):
        """The server's stderr, line by line, up to the first that matches."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                line = lines.get(timeout=max(0.0, end - time.monotonic()))
            except queue.Empty:
                break
            seen.append(line)
            if re.search(pattern, line):
                return line
        return None

    try:
        m = re.match(r"curl -s -X POST http://127\.0\.0\.1:(\d+)/", proc.stdout.readline())
        check(m is not None, "printed curl line")
        port = int(m.group(1))
        check(wait_until(lambda: request(port, "GET", "/v2/health/ready")[0] == 200), "ready after warm-up")
        check(request(port, "POST", "/live/twice", {"text": "x"})[0] == 404, "no `twice` before the reload")

        # A long request in flight across the reload.
        result = {}

        def slow():
            result["r"] = request(port, "POST", "/live/work", {"text": "done", "rounds": 400000})

        t = threading.Thread(target=slow)
        t.start()
        inflight = re.compile(rb"^braid_http_requests_in_flight 1$", re.M)
        check(wait_until(lambda: inflight.search(request(port, "GET", "/metrics")[1]) is not None),
              "the slow request is in flight")

        # SIGHUP: the edited file serves.
        write(SECOND)
        proc.send_signal(signal.SIGHUP)
        line = stderr_until(r"braid: reloaded in [0-9.]+ s: generation 2 serves 2 endpoints of 1 graph")
        check(line is not None, f"SIGHUP reloaded: {seen!r}")
        status, body = request(port, "POST", "/live/twice", {"text": "new"})
        check((status, body) == (200, b'"new"\n'), f"new endpoint after SIGHUP: {status} {body!r}")
        t.join(60)
        check(result.get("r") == (200, b'"done"\n'), f"in-flight request completed: {result.get('r')!r}")

        # A graph with an error: refused with its diagnostic, the old graph keeps serving.
        write(BROKEN)
        status, body = request(port, "POST", "/admin/reload")
        check(status == 422, f"a broken graph is refused: {status} {body!r}")
        answer = json.loads(body)
        check(answer.get("code") == "reload_failed", f"code: {answer!r}")
        check(re.search(r"live\.graph:4:\d+: error: unknown model `c`", answer.get("diagnostics", "")) is not None,
              f"diagnostic with file:line:col: {answer!r}")
        check("still serving generation 2" in answer.get("error", ""), f"error message: {answer!r}")
        check(stderr_until(r"braid: reload failed, still serving generation 2") is not None, f"stderr: {seen!r}")
        check(request(port, "POST", "/live/twice", {"text": "kept"}) == (200, b'"kept"\n'), "old graph still serves")

        # POST /admin/reload once the file is mended.
        write(SECOND.replace("twice", "thrice"))
        status, body = request(port, "POST", "/admin/reload")
        answer = json.loads(body)
        check(status == 200 and answer.get("reloaded") is True and answer.get("generation") == 3,
              f"reload over HTTP: {status} {body!r}")
        check(stderr_until(r"braid: reloaded in [0-9.]+ s: generation 3 serves") is not None, f"stderr: {seen!r}")
        check(request(port, "POST", "/live/thrice", {"text": "3"}) == (200, b'"3"\n'), "renamed endpoint serves")
        check(request(port, "POST", "/live/twice", {"text": "3"})[0] == 404, "removed endpoint is gone")
        metrics = request(port, "GET", "/metrics")[1]
        check(re.search(rb"^braid_engine_generation 3$", metrics, re.M) is not None, "generation metric")
        check(re.search(rb"^braid_reload_failures_total 1$", metrics, re.M) is not None, "failure metric")

        # SIGTERM while a reload is loading: the graph now has a remote model whose server takes
        # connections and never answers, so the reload waits (5 s at most) on its look at it.
        hung = socket.socket()
        hung.bind(("127.0.0.1", 0))
        hung.listen(16)
        write(SECOND.replace("twice", "never") +
              f'model r = remote "http://127.0.0.1:{hung.getsockname()[1]}/g" {{ def e(text: str) -> str }}\n' +
              'endpoint remote(text: str) -> str { return r.e(text) }\n')
        waiting = {}

        def reload_over_http():
            waiting["r"] = request(port, "POST", "/admin/reload")

        asker = threading.Thread(target=reload_over_http)
        asker.start()
        check(stderr_until(r"braid: POST /admin/reload: reloading 1 graph") is not None, f"reload asked: {seen!r}")
        proc.send_signal(signal.SIGTERM)
        asker.join(30)
        status, body = waiting.get("r", (None, b""))
        check(status == 503 and b"the server is stopping" in body, f"a waiting reload is answered at SIGTERM: {status} {body!r}")
        check(stderr_until(r"braid: SIGTERM: draining") is not None, f"draining: {seen!r}")
        # (The reload asked for may have been loading or still waiting: either way it was answered
        # 503 above; one that was loading ends with its look at the remote server, and serves
        # nothing.)
        try:
            code = proc.wait(30)
        except subprocess.TimeoutExpired:
            code = None
        check(code == 0, f"exit status after SIGTERM: {code}")
        reader.join(30)  # at the end of stderr: every line is in `lines`
        while not lines.empty():
            seen.append(lines.get())
        rest = "".join(seen)
        check("generation 4" not in rest and "braid: stopped" in rest, f"nothing served after SIGTERM: {rest!r}")
    finally:
        if proc.poll() is None:
            proc.kill()
        if hung is not None:
            hung.close()

sys.exit(1 if failures else 0)
