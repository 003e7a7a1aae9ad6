#!/usr/bin/env python3
"""Remote nodes as users run them: two real `braid serve` processes on real models, one calling
the other. graphs/remote.graph (pointed at the port the first server got) is checked against the
running server with `braid check --require-models`, a mismatched declaration is refused with its
file:line:col diagnostic, the front server's answer contains the other server's answer (one call
there per request), and once the other server is gone the front answers a JSON error naming the
node and the address, and keeps serving; then the check fails, but a front server still starts
without the other one. Then a stream across servers: graphs/remote_streaming.graph reads
graphs/streaming.graph's generated words from its server as they are made and scores them
itself; its answer, streamed to the client, is the other server's own `generate_scored`.
Once that server is gone, the front's local generator, the fallback, answers the same records.
Last, a tensor relayed through a remote node, sent and answered as raw bytes (binary tensors),
comes back bit for bit. On the way, a client's X-Request-Id comes back from the front server and
appears in the back server's access log (`--access-log`) on the call the front made for it.

usage: serve_remote.py BRAID_BINARY
"""
import http.client
import json
import os
import re
import signal
import struct
import subprocess
import sys
import tempfile

import serve_support
from serve_support import check, failures, request, wait_until

braid = sys.argv[1]


def serve(graph, *extra, stderr=subprocess.PIPE):
    proc, port = serve_support.serve(braid, graph, *extra, stderr=stderr)
    check(wait_until(lambda: request(port, "GET", "/v2/health/ready")[0] == 200), f"{graph} ready")
    return proc, port


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        return None


def pointed(example, address, port, tmp, name=None, edits=()):
    """A copy of graphs/EXAMPLE in TMP whose remote model calls 127.0.0.1:PORT instead of ADDRESS,
    with EDITS (pairs of old and new text) made to it."""
    with open(f"graphs/{example}") as f:
        text = f.read()
    check(f"http://{address}/" in text, f"{example} names its server")
    text = text.replace(address, f"127.0.0.1:{port}")
    for old, new in edits:
        check(old in text, f"{example} has {old!r}")
        text = text.replace(old, new)
    path = os.path.join(tmp, name or example)
    with open(path, "w") as f:
        f.write(text)
    return path


# The back server's access log goes to a file (a pipe read only at the end could fill).
back_log = tempfile.NamedTemporaryFile("w+", suffix=".log", errors="backslashreplace")
back, back_port = serve("graphs/sequential.graph", "--access-log", stderr=back_log)
front = None
with tempfile.TemporaryDirectory() as tmp:
    try:
        graph = pointed("remote.graph", "127.0.0.1:8001", back_port, tmp)

        # Checked against the running server.
        r = subprocess.run([braid, "check", "--require-models", graph], capture_output=True, text=True)
        check(r.returncode == 0 and "2 with model files checked" in r.stderr, f"check against the server: {r.stderr!r}")
        wrong = pointed("remote.graph", "127.0.0.1:8001", back_port, tmp, "wrong.graph",
                        [("def predict(input_data: str", "def predict(text: str")])
        r = subprocess.run([braid, "check", "--require-models", wrong], capture_output=True, text=True)
        check(r.returncode == 1, "a mismatched declaration fails the check")
        check(re.search(r"wrong\.graph:\d+:7: error: parameter 1 of `classifier\.predict` is `text`, "
                        r"but the remote endpoint's input is `input_data`", r.stderr) is not None,
              f"the diagnostic names the parameter: {r.stderr!r}")

        # The front server calls the back one: once a request (its start sent nothing there).
        def predict_calls():
            metrics = request(back_port, "GET", "/metrics")[1].decode()
            m = re.search(r'^braid_requests_total\{graph="sequential",endpoint="predict"\} (\d+)', metrics, re.M)
            return int(m.group(1)) if m else 0

        front, front_port = serve(graph)
        before = predict_calls()
        status, body = request(front_port, "POST", "/remote/summarize_classify",
                               {"text": "a wonderful film", "labels": ["good", "bad"]})
        calls = predict_calls() - before
        check(calls == 1, f"the back server ran predict once for the front's request, not {calls} times")
        check(status == 200, f"front answered: {status} {body!r}")
        if status == 200:
            answer = json.loads(body)
            bs, bbody = request(back_port, "POST", "/sequential/predict",
                                {"input_data": answer["summary"], "labels": ["good", "bad"]})
            check(bs == 200 and answer["label"] == json.loads(bbody),
                  f"the front's answer is the back server's: {answer!r} vs {bbody!r}")

        # A client's request id comes back from the front and reaches the back server, whose
        # access log names the call by it.
        request_id = f"e2e-{os.getpid()}"
        conn = http.client.HTTPConnection("127.0.0.1", front_port, timeout=60)
        conn.request("POST", "/remote/classify", body=json.dumps({"input_data": "a fine day"}),
                     headers={"Content-Type": "application/json", "X-Request-Id": request_id})
        r = conn.getresponse()
        r.read()
        conn.close()
        check(r.status == 200 and r.getheader("X-Request-Id") == request_id,
              f"the front echoes the client's request id: {r.status} {r.getheader('X-Request-Id')!r}")

        # The back server goes away: the front answers an error naming node and address, and lives on.
        check(stop(back) == 0, "the back server stopped cleanly")
        back_log.seek(0)
        log = back_log.read()
        check(re.search(r'"POST /sequential/predict" 200 \d+B [\d.]+ms id=' + re.escape(request_id) + "$", log, re.M)
              is not None, f"the back server's access log names the front's call by the client's id: {log[-2000:]!r}")
        status, body = request(front_port, "POST", "/remote/summarize_classify", {"text": "x"})
        err = json.loads(body) if body.startswith(b"{") else {}
        check(status == 500 and err.get("code") == "model_error", f"500 once the back server is gone: {status} {body!r}")
        check("model `classifier`" in err.get("error", "") and f"http://127.0.0.1:{back_port}" in err.get("error", "")
              and "cannot connect" in err.get("error", ""), f"the error names model and address: {err!r}")
        check(request(front_port, "GET", "/v2/health/live")[0] == 200, "the front server still serves")

        # With the back server down, `braid check --require-models` fails, but a front server
        # still starts (the back one may come up later) and answers the calls' error.
        r = subprocess.run([braid, "check", "--require-models", graph], capture_output=True, text=True)
        check(r.returncode == 1 and "cannot read the methods of remote graph" in r.stderr, f"check without the server: {r.stderr!r}")
        late, late_port = serve(graph)
        try:
            status, body = request(late_port, "POST", "/remote/classify", {"input_data": "x"})
            check(status == 500 and b"cannot connect" in body, f"a front started without the back: {status} {body!r}")
        finally:
            rc = stop(late)
            check(rc == 0, f"the front started without the back stopped cleanly (exit {rc}): {late.stderr.read()[-2000:]!r}")
    finally:
        stop(back)
        if front is not None:
            check(stop(front) == 0, "the front server stopped cleanly")


def ndjson(body):
    return [json.loads(line) for line in body.decode().splitlines() if line]


# A stream across servers.
back, back_port = serve("graphs/streaming.graph")
front = None
with tempfile.TemporaryDirectory() as tmp:
    try:
        graph = pointed("remote_streaming.graph", "127.0.0.1:8002", back_port, tmp)
        r = subprocess.run([braid, "check", "--require-models", graph], capture_output=True, text=True)
        check(r.returncode == 0, f"the streaming example checks against the server: {r.stderr!r}")
        # A streaming endpoint there may be declared a list here (read whole).
        whole = pointed("remote_streaming.graph", "127.0.0.1:8002", back_port, tmp, "whole.graph",
                        [("def generate_words(prompt: str) -> stream<str>", "def generate_words(prompt: str) -> list<str>"),
                         ("collect(generator.generate_words(prompt))", "generator.generate_words(prompt)"),
                         ("fallback = local_gpt2.generate(prompt)", "fallback = collect(local_gpt2.generate(prompt))"),
                         ("-> stream<{word: str, score: float}>", "-> list<{word: str, score: float}>")])
        r = subprocess.run([braid, "check", "--require-models", whole], capture_output=True, text=True)
        check(r.returncode == 0, f"a streaming endpoint there declared as a list: {r.stderr!r}")
        # The other server's `generate_text` is no stream: declared as one, the check says so.
        wrong = pointed("remote_streaming.graph", "127.0.0.1:8002", back_port, tmp, "wrong_stream.graph",
                        [("def generate_words(prompt: str) -> stream<str>", "def generate_text(prompt: str) -> stream<str>"),
                         ("generator.generate_words(", "generator.generate_text(")])
        r = subprocess.run([braid, "check", "--require-models", wrong], capture_output=True, text=True)
        check(r.returncode == 1 and "error: `generator.generate_text` is declared `(prompt: str) -> stream<str>`, "
              "but the remote graph has `(prompt: str) -> {text: str, words: int}`" in r.stderr,
              f"a stream declared for an endpoint that does not stream: {r.stderr!r}")

        front, front_port = serve(graph)
        status, body = request(front_port, "POST", "/remote_streaming/scored", {"prompt": "a quiet morning"})
        check(status == 200, f"the front streamed: {status} {body[:300]!r}")
        bs, bbody = request(back_port, "POST", "/streaming/generate_scored", {"prompt": "a quiet morning"})
        records = ndjson(body) if status == 200 else []
        check(bs == 200 and len(records) > 1 and records == ndjson(bbody),
              f"the front's records are the back server's own: {body[:300]!r} vs {bbody[:300]!r}")
        status, body = request(front_port, "POST", "/remote_streaming/words", {"prompt": "a quiet morning"})
        check(status == 200 and json.loads(body) == [r["word"] for r in records],
              f"the words read whole: {status} {body[:300]!r}")
        # The generator's server gone, the local generator (the same model) takes over before
        # the first word: the same records; `words`, with no fallback, fails naming the node.
        stop(back)
        status, body = request(front_port, "POST", "/remote_streaming/scored", {"prompt": "a quiet morning"})
        check(status == 200 and ndjson(body) == records, f"the fallback's records: {status} {body[:300]!r}")
        status, body = request(front_port, "POST", "/remote_streaming/words", {"prompt": "a quiet morning"})
        check(status >= 500 and b"generator.generate_words" in body, f"no fallback: an error naming the node: {status} {body[:300]!r}")
    finally:
        stop(back)
        if front is not None:
            check(stop(front) == 0, "the streaming front server stopped cleanly")

# Tensors across servers: as raw bytes, both ways, bit for bit (NaN and -0.0 included, which
# JSON cannot carry), whether the client sends them so or as JSON.
ECHO = """endpoint echo(x: tensor<f32, [?, 4]>) -> tensor<f32, [?, 4]> { return x }
"""
RELAY = """model up = remote "http://127.0.0.1:{port}/echo" {{
  def echo(x: tensor<f32, [?, 4]>) -> tensor<f32, [?, 4]>
}}
endpoint relay(x: tensor<f32, [?, 4]>) -> tensor<f32, [?, 4]> {{ return up.echo(x) }}
"""
with tempfile.TemporaryDirectory() as tmp:
    with open(os.path.join(tmp, "echo.graph"), "w") as f:
        f.write(ECHO)
    back, back_port = serve(os.path.join(tmp, "echo.graph"))
    front = None
    try:
        with open(os.path.join(tmp, "relay.graph"), "w") as f:
            f.write(RELAY.format(port=back_port))
        r = subprocess.run([braid, "check", "--require-models", os.path.join(tmp, "relay.graph")],
                           capture_output=True, text=True)
        check(r.returncode == 0, f"the tensor relay checks against the server: {r.stderr!r}")
        front, front_port = serve(os.path.join(tmp, "relay.graph"))
        data = struct.pack("<8f", float("nan"), -0.0, 1.5, 3.4e38, 1e-45, -1, 0, 2)
        head = json.dumps({"x": {"dtype": "f32", "shape": [2, 4], "binary_data_offset": 0,
                                 "binary_data_size": len(data)}}).encode()
        conn = http.client.HTTPConnection("127.0.0.1", front_port, timeout=30)
        conn.request("POST", "/relay/relay", head + data, {"Inference-Header-Content-Length": str(len(head)),
                                                           "Content-Type": "application/octet-stream",
                                                           "Accept": "application/octet-stream"})
        res = conn.getresponse()
        body = res.read()
        n = int(res.getheader("Inference-Header-Content-Length") or -1)
        check(res.status == 200 and res.getheader("Content-Type") == "application/octet-stream" and 0 <= n <= len(body),
              f"the relay answered raw data: {res.status} {body[:300]!r}")
        if res.status == 200 and 0 <= n <= len(body):
            ref = json.loads(body[:n])
            check(ref == {"dtype": "f32", "shape": [2, 4], "binary_data_offset": 0, "binary_data_size": 32},
                  f"the answer refers to its data: {ref!r}")
            check(body[n:] == data, f"the tensor came back bit for bit: {body[n:]!r} vs {data!r}")
        # A JSON client of the same relay: the same values as JSON (the hop is still raw bytes).
        conn.request("POST", "/relay/relay", json.dumps({"x": [[1.5, -2, 0.25, 4], [5, 6, 7, 8]]}),
                     {"Content-Type": "application/json"})
        res = conn.getresponse()
        body = res.read()
        check(res.status == 200 and json.loads(body) == [[1.5, -2, 0.25, 4], [5, 6, 7, 8]],
              f"a JSON client gets JSON: {res.status} {body[:300]!r}")
        conn.close()
    finally:
        stop(back)
        if front is not None:
            check(stop(front) == 0, "the tensor relay stopped cleanly")

if failures:
    sys.exit(1)
print("ok")
