#!/usr/bin/env python3
"""KServe v2 as Triton's own Python client speaks it (`pip install tritonclient[http]`), unchanged,
against `braid serve tests/http/kserve_client.graph` on the generated models: binary inputs, binary
outputs (the client's default when it names none), JSON outputs when asked, the same values both
ways and as braid's own route answers them, and braid's errors as the client reports them.

Skipped (exit 77) where tritonclient is not installed. `scripts/bootstrap.sh --tests` (the
README's test command) installs it from PyPI into .test-venv, which meson's test names in
BRAID_TEST_VENV_PYTHON; BRAID_CLIENT_PYTHON names another Python that has it (tried first).
The script runs again with the first of them that exists.

usage: kserve_client.py BRAID_BINARY
"""
import json
import subprocess
import sys

try:
    import numpy as np
    import tritonclient.http as httpclient
    from tritonclient.utils import InferenceServerException
except ImportError:
    from serve_support import reexec_or_skip
    reexec_or_skip("tritonclient[http]")

from serve_support import check, failures, request, serve, wait_until

braid = sys.argv[1]
TEXT = "the graph runs fast and then every node joins"
LABELS = ["graph", "speed", "weather"]

proc, port = serve(braid, "tests/http/kserve_client.graph")


def text_input(name, values):
    t = httpclient.InferInput(name, [len(values)], "BYTES")
    t.set_data_from_numpy(np.array([v.encode() for v in values], dtype=object))  # binary by default
    return t


try:
    check(wait_until(lambda: request(port, "GET", "/v2/health/ready")[0] == 200), "ready")
    client = httpclient.InferenceServerClient(url=f"127.0.0.1:{port}")
    check(client.is_server_live() and client.is_model_ready("kserve_client.encode"), "live and ready for the client")
    meta = client.get_model_metadata("kserve_client.encode")
    check([(o["name"], o["datatype"]) for o in meta["outputs"]] ==
          [("hidden", "FP32"), ("mask", "BOOL"), ("words", "BYTES"), ("n", "INT64")], f"metadata {meta}")

    # braid's own route: the reference.
    status, body = request(port, "POST", "/kserve_client/encode", {"text": TEXT})
    check(status == 200, f"encode status {status}")
    ref = json.loads(body)
    hidden = np.array(ref["hidden"], dtype=np.float32)

    # No outputs named: the client asks for every output in binary.
    r = client.infer("kserve_client.encode", [text_input("text", [TEXT])])
    outs = {o["name"]: o for o in r.get_response()["outputs"]}
    check(all("binary_data_size" in o.get("parameters", {}) and "data" not in o for o in outs.values()),
          f"every output binary: {outs}")
    check(r.as_numpy("hidden").dtype == np.float32 and r.as_numpy("hidden").shape == hidden.shape,
          f"hidden {r.as_numpy('hidden').dtype} {r.as_numpy('hidden').shape}, want float32 {hidden.shape}")
    check(np.array_equal(r.as_numpy("hidden"), hidden), "hidden: binary equals braid's JSON, bit for bit")
    check(r.as_numpy("mask").tolist() == ref["mask"], f"mask {r.as_numpy('mask')}")
    check(r.as_numpy("words").tolist() == [b"the", b"words"], f"words {r.as_numpy('words')}")
    check(r.as_numpy("n").tolist() == [7] and r.as_numpy("n").dtype == np.int64, f"n {r.as_numpy('n')}")

    # Outputs named, one as JSON: only those come back, each as asked.
    r = client.infer("kserve_client.encode", [text_input("text", [TEXT])],
                     outputs=[httpclient.InferRequestedOutput("mask", binary_data=False),
                              httpclient.InferRequestedOutput("hidden")])
    outs = {o["name"]: o for o in r.get_response()["outputs"]}
    check(sorted(outs) == ["hidden", "mask"], f"named outputs only: {sorted(outs)}")
    check("data" in outs.get("mask", {}) and "parameters" not in outs.get("mask", {}), f"mask as JSON: {outs.get('mask')}")
    check(np.array_equal(r.as_numpy("hidden"), hidden), "hidden binary beside a JSON output")
    check(r.as_numpy("mask").tolist() == ref["mask"], "mask as JSON")

    # The model's one version named, as a client pinned to a version sends it.
    check(client.is_model_ready("kserve_client.encode", model_version="1"), "version 1 ready")
    r = client.infer("kserve_client.encode", [text_input("text", [TEXT])], model_version="1")
    check(np.array_equal(r.as_numpy("hidden"), hidden), "hidden through /versions/1/infer")
    try:
        client.infer("kserve_client.encode", [text_input("text", [TEXT])], model_version="2")
        check(False, "version 2 was answered")
    except InferenceServerException as e:
        check("no version `2`" in str(e), f"version 2: {e}")

    # A list of records: BYTES, each element its JSON text.
    r = client.infer("kserve_client.classify", [text_input("text", [TEXT]), text_input("labels", LABELS)])
    got = [json.loads(e) for e in r.as_numpy("output")]
    status, body = request(port, "POST", "/kserve_client/classify", {"text": TEXT, "labels": LABELS})
    check(got == json.loads(body), f"classify {got} vs {body}")

    # braid's 400s as the client reports them.
    try:
        client.infer("kserve_client.encode", [text_input("text", [TEXT])],
                     outputs=[httpclient.InferRequestedOutput("nope")])
        check(False, "an unknown output was answered")
    except InferenceServerException as e:
        check("no output `nope`" in str(e), f"unknown output: {e}")
    try:
        client.infer("kserve_client.encode", [text_input("txt", [TEXT])])
        check(False, "an unknown input was answered")
    except InferenceServerException as e:
        check("txt" in str(e), f"unknown input: {e}")

    # Triton's statistics extension, as the client (and perf_analyzer) reads it: every infer of
    # `encode` above answered, none failed (the two refused were refused before running).
    check("statistics" in client.get_server_metadata()["extensions"], "statistics among the extensions")
    stats = client.get_inference_statistics("kserve_client.encode")["model_stats"]
    check(len(stats) == 1 and stats[0]["name"] == "kserve_client.encode", f"one model's stats: {stats}")
    if stats:
        inf = stats[0]["inference_stats"]
        check(stats[0]["inference_count"] == inf["success"]["count"] >= 4 and inf["fail"]["count"] == 0,
              f"encode's counts: {stats[0]}")
        check(inf["success"]["ns"] >= inf["compute_infer"]["ns"] > 0, f"encode's times: {inf}")
    every = client.get_inference_statistics()["model_stats"]
    status, body = request(port, "GET", "/graphs")
    names = [e["kserve"].split("/")[-1] for g in json.loads(body)["graphs"] for e in g["endpoints"]]
    check(sorted(m["name"] for m in every) == sorted(names), f"every model's stats: {[m['name'] for m in every]} vs {names}")
finally:
    proc.send_signal(2)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        check(False, "braid serve did not stop on SIGINT")

print("kserve-client:", "FAIL" if failures else "ok")
sys.exit(1 if failures else 0)
