#!/usr/bin/env python3
"""What streaming gains a client: graphs/streaming.graph served by `braid serve`, one client,
sequential requests, the same prompt each time:

  scored, first line   generate_scored (NDJSON): time to the first {word, score} line
  scored, whole        generate_scored: time to the end of the chunked body
  collected            generate_text: the same generator, collected and joined, one JSON answer
  words, first line    generate_words (the generator's own stream): time to the first word

and the same stream across two servers: graphs/remote_streaming.graph on a second `braid serve`,
whose `scored` reads the first server's `generate_words` as server-sent events (a remote
model's stream) and scores each word itself, which is `generate_scored`'s work with one hop
more (rows "remote: ...").

Prints a markdown table (median, p90 and max in ms over the requests, after a warm-up).

  bench/stream_bench.py BRAID_BINARY [REQUESTS]      (default 300)
"""
import http.client
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time

braid = sys.argv[1]
n = int(sys.argv[2]) if len(sys.argv) > 2 else 300
PROMPT = "I have an idea!"


def serve(graph):
    proc = subprocess.Popen([braid, "serve", graph, "--port", "0", "--io-threads", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    port = int(re.match(r"curl -sN? -X POST http://127\.0\.0\.1:(\d+)/", proc.stdout.readline()).group(1))
    for _ in range(600):
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            c.request("GET", "/v2/health/ready")
            if c.getresponse().status == 200:
                return proc, port
        except OSError:
            pass
        time.sleep(0.05)
    sys.exit(f"braid serve {graph} did not get ready")


def timed(conn, path):
    """(ms to the first line, ms to the end) of one request on the kept-alive connection."""
    t0 = time.perf_counter()
    conn.request("POST", path, body=json.dumps({"prompt": PROMPT}), headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    first = None
    while True:
        line = r.readline()
        if first is None:
            first = time.perf_counter()
        if not line:
            break
    r.read()
    end = time.perf_counter()
    r.close()
    return (first - t0) * 1e3, (end - t0) * 1e3


def measure(conn, path):
    for _ in range(20):
        timed(conn, path)
    return [timed(conn, path) for _ in range(n)]


def row(name, samples):
    s = sorted(samples)
    p90 = s[int(0.9 * (len(s) - 1))]
    print(f"| {name} | {statistics.median(s):.2f} | {p90:.2f} | {s[-1]:.2f} |")


procs = []
try:
    back, port = serve("graphs/streaming.graph")
    procs.append(back)
    with tempfile.TemporaryDirectory() as tmp:
        graph = os.path.join(tmp, "remote_streaming.graph")
        with open("graphs/remote_streaming.graph") as f, open(graph, "w") as out:
            out.write(f.read().replace("127.0.0.1:8002", f"127.0.0.1:{port}"))
        front, front_port = serve(graph)
        procs.append(front)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    front_conn = http.client.HTTPConnection("127.0.0.1", front_port, timeout=60)
    scored = measure(conn, "/streaming/generate_scored")
    collected = measure(conn, "/streaming/generate_text")
    words = measure(conn, "/streaming/generate_words")
    remote = measure(front_conn, "/remote_streaming/scored")
    print(f"braid serve graphs/streaming.graph (and graphs/remote_streaming.graph calling it), one client, "
          f"{n} requests each, prompt {PROMPT!r}")
    print()
    print("| what | p50 ms | p90 ms | max ms |")
    print("|---|---:|---:|---:|")
    row("scored, first line", [a for a, _ in scored])
    row("scored, whole", [b for _, b in scored])
    row("collected (generate_text)", [b for _, b in collected])
    row("words, first line", [a for a, _ in words])
    row("words, whole", [b for _, b in words])
    row("remote: scored, first line", [a for a, _ in remote])
    row("remote: scored, whole", [b for _, b in remote])
finally:
    for p in procs:
        p.send_signal(signal.SIGTERM)
        p.wait(30)
