#!/usr/bin/env python3
"""Streaming edges as users run them: `braid serve graphs/streaming.graph` on the real generated
models, read by Python's own HTTP client. The generator's words come back one NDJSON line each,
every word scored, the same words as the collected endpoint joins and as the generator's plain
`generate` appends; server-sent events with `Accept: text/event-stream`; one JSON array with
`Accept: application/json`; a KServe v2 list; a bad request is a 400 before anything streams; a
client that hangs up mid-stream leaves the server serving, with nothing left in flight.

usage: serve_streaming.py BRAID_BINARY
"""
import http.client
import json
import re
import signal
import subprocess
import sys

from serve_support import check, failures, request, serve, wait_until

braid = sys.argv[1]
PROMPT = "I have an idea!"
# What gpt2.generate appends to the prompt (tests/engine/torch_test.cpp, the inference graph).
WORDS = ["joins", "every", "joins", "every", "joins", "joins"]


def post(port, path, body, accept=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Content-Type": "application/json"}
    if accept:
        headers["Accept"] = accept
    conn.request("POST", path, body=json.dumps(body), headers=headers)
    return conn, conn.getresponse()


proc, port = serve(braid, "graphs/streaming.graph")
try:
    check(wait_until(lambda: request(port, "GET", "/v2/health/ready")[0] == 200), "ready")

    # NDJSON, read line by line as it arrives: one scored record per word.
    conn, r = post(port, "/streaming/generate_scored", {"prompt": PROMPT})
    check(r.status == 200, f"generate_scored status {r.status}")
    check(r.getheader("Content-Type") == "application/x-ndjson", f"content type {r.getheader('Content-Type')}")
    check(r.getheader("Transfer-Encoding") == "chunked", "chunked")
    records = []
    while True:
        line = r.readline()
        if not line:
            break
        records.append(json.loads(line))
    conn.close()
    check([x["word"] for x in records] == WORDS, f"streamed words {records}")
    check(all(0.0 < x["score"] < 1.0 for x in records), f"scores {records}")
    # A word scores the same wherever it comes: the classifier is a function of its text.
    scores = {}
    for x in records:
        scores.setdefault(x["word"], set()).add(x["score"])
    check(all(len(s) == 1 for s in scores.values()), f"one score per word {scores}")

    # The collected endpoint: the same words, joined.
    status, body = request(port, "POST", "/streaming/generate_text", {"prompt": PROMPT})
    check(status == 200 and json.loads(body) == {"text": " ".join(WORDS), "words": len(WORDS)}, f"generate_text {body}")

    # Server-sent events.
    conn, r = post(port, "/streaming/generate_words", {"prompt": PROMPT}, accept="text/event-stream")
    text = r.read().decode()
    conn.close()
    check(r.getheader("Content-Type") == "text/event-stream", "sse content type")
    events = [e for e in text.split("\n\n") if e]
    check([json.loads(e[len("data: "):]) for e in events[:-1]] == WORDS, f"sse items {events}")
    check(events[-1] == "event: end\ndata: null", f"sse end {events[-1:]}")

    # One JSON array, for clients that ask for JSON alone; KServe v2 answers a list.
    conn, r = post(port, "/streaming/generate_words", {}, accept="application/json")
    check(r.status == 200 and json.loads(r.read()) == WORDS, "json array")
    conn.close()
    status, body = request(port, "POST", "/v2/models/streaming.generate_words/infer",
                           {"inputs": [{"name": "prompt", "shape": [1], "datatype": "BYTES", "data": [PROMPT]}]})
    check(status == 200 and json.loads(body)["outputs"][0]["data"] == WORDS, f"kserve {body}")

    # A bad request is a plain 400 before anything streams.
    status, body = request(port, "POST", "/streaming/generate_words", {"prompt": 3})
    check(status == 400 and json.loads(body)["code"] == "invalid_input", f"bad input {status} {body}")

    # A client that hangs up after the first line: the server goes on serving, nothing stays in flight.
    for _ in range(3):
        conn, r = post(port, "/streaming/generate_scored", {"prompt": "again and again"})
        r.readline()
        conn.close()
    status, body = request(port, "POST", "/streaming/generate_text", {"prompt": PROMPT})
    check(status == 200, "serving after clients left")

    def idle():
        _, metrics = request(port, "GET", "/metrics")
        return re.search(r"^braid_http_requests_in_flight 0$", metrics.decode(), re.M) is not None

    check(wait_until(idle, 30), "nothing in flight once the streams ended")
finally:
    proc.send_signal(signal.SIGTERM)
    try:
        rc = proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        rc = None
    check(rc == 0, f"braid serve exits 0 on SIGTERM, got {rc}: {proc.stderr.read()[-2000:]}")

if failures:
    print(f"{len(failures)} failure(s)")
    sys.exit(1)
print("serve-streaming: ok")
