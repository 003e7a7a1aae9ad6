#!/usr/bin/env python3
"""What KServe's binary tensor data extension saves on answers: bench/graphs/echo.graph served by
`braid serve`, one client, sequential requests; the same float32 tensor of R rows of 512 goes in
as binary data each time and comes back either as JSON (`data`) or as raw bytes after the JSON
(`binary_data`). Latency is a request's round trip including reading the answer into floats (json
for JSON; array.frombytes for binary), as a client must.

Prints a markdown table (median and p90 in ms, answer size) per row count.

  bench/kserve_binary.py BRAID_BINARY [REQUESTS]      (default 200 per cell)
"""
import array
import http.client
import json
import re
import statistics
import subprocess
import sys
import time

braid = sys.argv[1]
n = int(sys.argv[2]) if len(sys.argv) > 2 else 200

proc = subprocess.Popen([braid, "serve", "bench/graphs/echo.graph", "--port", "0", "--io-threads", "1"],
                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
port = int(re.match(r"curl -sN? -X POST http://127\.0\.0\.1:(\d+)/", proc.stdout.readline()).group(1))
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)


def infer(rows, binary_out):
    data = array.array("f", (float(i % 97) for i in range(rows * 512))).tobytes()
    head = json.dumps({"inputs": [{"name": "x", "shape": [rows, 512], "datatype": "FP32",
                                   "parameters": {"binary_data_size": len(data)}}],
                       "outputs": [{"name": "output", "parameters": {"binary_data": binary_out}}]}).encode()
    body = head + data
    headers = {"Inference-Header-Content-Length": str(len(head)), "Content-Type": "application/octet-stream"}

    def once():
        conn.request("POST", "/v2/models/echo.echo/infer", body=body, headers=headers)
        r = conn.getresponse()
        raw = r.read()
        assert r.status == 200, raw[:200]
        size = r.getheader("Inference-Header-Content-Length")
        if size is None:
            values = json.loads(raw)["outputs"][0]["data"]
        else:
            values = array.array("f")
            values.frombytes(raw[int(size):])
        assert len(values) == rows * 512
        return len(raw)

    for _ in range(10):
        once()
    times = []
    for _ in range(n):
        t = time.perf_counter()
        size = once()
        times.append((time.perf_counter() - t) * 1e3)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.9)], size


try:
    print(f"kserve_binary: {n} sequential requests a cell, echo of float32 [rows, 512]\n")
    print("| rows | answer | p50 (ms) | p90 (ms) | answer bytes |")
    print("|---:|---|---:|---:|---:|")
    for rows in (1, 64, 256):  # 256 rows: 512 KiB, under the default max_body (1 MiB)
        for binary in (False, True):
            p50, p90, size = infer(rows, binary)
            print(f"| {rows} | {'binary' if binary else 'JSON'} | {p50:.3f} | {p90:.3f} | {size:,} |")
finally:
    conn.close()
    proc.send_signal(2)
    proc.wait(timeout=30)
