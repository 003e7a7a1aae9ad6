#!/usr/bin/env python3
"""What streaming gains a client: graphs/streaming.graph served by `braid serve`, one client,
sequential requests, the same prompt three ways:

  scored, first line   generate_scored (NDJSON): time to the first {word, score} line
  scored, whole        generate_scored: time to the end of the chunked body
  collected            generate_text: the same generator, collected and joined, one JSON answer
  words, first line    generate_words (the generator's own stream): time to the first word

Prints a markdown table (median, p90 and max in ms over the requests, after a warm-up).

  bench/stream_bench.py BRAID_BINARY [REQUESTS]      (default 300)
"""
import http.client
import json
import re
import signal
import statistics
import subprocess
import sys
import time

braid = sys.argv[1]
n = int(sys.argv[2]) if len(sys.argv) > 2 else 300
PROMPT = "I have an idea!"

proc = subprocess.Popen([braid, "serve", "graphs/streaming.graph", "--port", "0", "--io-threads", "1"],
                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
port = int(re.match(r"curl -sN? -X POST http://127\.0\.0\.1:(\d+)/", proc.stdout.readline()).group(1))
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)


def ready():
    for _ in range(600):
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            c.request("GET", "/v2/health/ready")
            if c.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)
    sys.exit("braid serve did not get ready")


def timed(path):
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


def row(name, samples):
    s = sorted(samples)
    p90 = s[int(0.9 * (len(s) - 1))]
    print(f"| {name} | {statistics.median(s):.2f} | {p90:.2f} | {s[-1]:.2f} |")


try:
    ready()
    for path in ("/streaming/generate_scored", "/streaming/generate_text", "/streaming/generate_words"):
        for _ in range(20):
            timed(path)
    scored = [timed("/streaming/generate_scored") for _ in range(n)]
    collected = [timed("/streaming/generate_text") for _ in range(n)]
    words = [timed("/streaming/generate_words") for _ in range(n)]
    print(f"braid serve graphs/streaming.graph, one client, {n} requests each, prompt {PROMPT!r}")
    print()
    print("| what | p50 ms | p90 ms | max ms |")
    print("|---|---:|---:|---:|")
    row("scored, first line", [a for a, _ in scored])
    row("scored, whole", [b for _, b in scored])
    row("collected (generate_text)", [b for _, b in collected])
    row("words, first line", [a for a, _ in words])
    row("words, whole", [b for _, b in words])
finally:
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)
