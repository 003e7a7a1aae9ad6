#!/usr/bin/env python3
"""`braid serve` as users run it: the real binary, real models, a real HTTP client (the Python
standard library's), and SIGTERM while a request is in flight: the request completes, then the
process exits 0 and stops listening. Also checks the printed curl line and readiness.

usage: serve_sigterm.py BRAID_BINARY
"""
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading

from serve_support import check, failures, request, wait_until

braid = sys.argv[1]

with tempfile.TemporaryDirectory() as tmp:
    graph = os.path.join(tmp, "busy.graph")
    with open(graph, "w") as f:
        f.write('model b = torch "models/busy.pt" { def run(text: str, rounds: int) -> str }\n'
                'endpoint work(text: str, rounds: int = 1) -> str { return b.run(text, rounds) }\n')
    proc = subprocess.Popen([braid, "serve", graph, "graphs/ensemble.graph", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        curl = proc.stdout.readline()
        m = re.match(r"curl -s -X POST http://127\.0\.0\.1:(\d+)/busy/work -H 'Content-Type: application/json' -d '(.*)'$",
                     curl.strip())
        check(m is not None, f"printed curl line: {curl!r}")
        port = int(m.group(1))
        check(json.loads(m.group(2)) == {"text": "hello"}, "curl body has example inputs")
        check(wait_until(lambda: request(port, "GET", "/v2/health/ready")[0] == 200), "ready after warm-up")
        status, body = request(port, "POST", "/ensemble/ensemble_predict", {"input_data": "what a great day"})
        check(status == 200 and json.loads(body)["result_a"] > 0.69, f"ensemble over HTTP: {status} {body!r}")

        # A long request in flight...
        result = {}

        def slow():
            result["r"] = request(port, "POST", "/busy/work", {"text": "done", "rounds": 40000})

        t = threading.Thread(target=slow)
        t.start()
        inflight = re.compile(rb"^braid_http_requests_in_flight 1$", re.M)
        check(wait_until(lambda: inflight.search(request(port, "GET", "/metrics")[1]) is not None),
              "the slow request is in flight")
        # ...then SIGTERM: it completes, the process exits 0.
        proc.send_signal(signal.SIGTERM)
        t.join(60)
        check(result.get("r") == (200, b'"done"\n'), f"in-flight request completed: {result.get('r')!r}")
        try:
            code = proc.wait(30)
        except subprocess.TimeoutExpired:
            code = None
        check(code == 0, f"exit status after SIGTERM: {code}")
        try:
            request(port, "GET", "/v2/health/live", timeout=2)
            check(False, "still accepting after exit")
        except OSError:
            pass
        err = proc.stderr.read()
        check("SIGTERM: draining" in err and "stopped" in err, f"stderr: {err!r}")
    finally:
        if proc.poll() is None:
            proc.kill()

sys.exit(1 if failures else 0)
