#!/usr/bin/env python3
"""`GET /openapi.json` held to what the server does, by the OpenAPI tools' own validators
(`pip install openapi-spec-validator`, which brings `jsonschema`), against `braid serve` on the
example graphs and the generated models:

- the document is a valid OpenAPI 3.1 description (openapi-spec-validator);
- for every endpoint, a request made from its request schema alone (each required input an
  instance of its schema, the rest left to their defaults) is answered 200, and the answer fits
  the response schema (jsonschema, draft 2020-12, the document's $refs resolved): whole, or for
  a stream, every NDJSON line its item schema and the JSON array its array schema;
- a request the schema refuses (an input it does not name) is refused, 400, and the error body
  fits the Error schema;
- HEAD /openapi.json is its head; `braid plan --openapi` gives the served document's operations.

Skipped (exit 77) where openapi-spec-validator is not installed. `scripts/bootstrap.sh --tests`
(the README's test command) installs it from PyPI into .test-venv, which meson's test names in
BRAID_TEST_VENV_PYTHON; BRAID_CLIENT_PYTHON names another Python that has it (tried first).

usage: openapi_client.py BRAID_BINARY
"""
import http.client
import json
import subprocess
import sys

try:
    import jsonschema
    import referencing
    import referencing.jsonschema
    from openapi_spec_validator import validate as validate_spec
except ImportError:
    from serve_support import reexec_or_skip
    reexec_or_skip("openapi-spec-validator")

from serve_support import check, failures, request, serve, wait_until

braid = sys.argv[1]
GRAPHS = ["graphs/" + g + ".graph" for g in
          ("ensemble", "generation", "inference_graph", "map", "multi_model", "routing",
           "sequential", "streaming")] + ["tests/http/kserve_client.graph"]

proc, port = serve(braid, *GRAPHS)


def post(path, body, accept=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Content-Type": "application/json"}
    if accept:
        headers["Accept"] = accept
    conn.request("POST", path, body=json.dumps(body), headers=headers)
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, r.getheader("Content-Type"), data


try:
    check(wait_until(lambda: request(port, "GET", "/v2/health/ready")[0] == 200), "ready")
    status, body = request(port, "GET", "/openapi.json")
    check(status == 200, f"GET /openapi.json: {status}")
    doc = json.loads(body)
    try:
        validate_spec(doc)
    except Exception as e:  # the validator's own error says what is wrong and where
        check(False, f"not a valid OpenAPI document: {e}")

    # The document as a JSON Schema resource: a schema inside it is {"$ref": "urn:braid#/pointer"}
    # and its own refs (#/components/...) resolve within it.
    registry = referencing.Registry().with_resource(
        "urn:braid", referencing.Resource.from_contents(doc, default_specification=referencing.jsonschema.DRAFT202012))

    def pointer(*parts):
        return "urn:braid#/" + "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in parts)

    def fits(ref, instance, what):
        v = jsonschema.Draft202012Validator({"$ref": ref}, registry=registry)
        errors = sorted(v.iter_errors(instance), key=lambda e: list(e.path))
        check(not errors, f"{what}: does not fit its schema: {errors[0].message if errors else ''} at "
                          f"{list(errors[0].absolute_path) if errors else ''}")

    def resolve(s):
        while "$ref" in s:
            s = registry.resolver().lookup(s["$ref"].replace("#", "urn:braid#", 1)).contents
        return s

    def sample(s):
        """An instance of a schema: the first branch of a choice, the fewest items, required fields."""
        s = resolve(s)
        for choice in ("allOf", "anyOf"):
            if choice in s:
                return sample(s[choice][0])
        t = s.get("type")
        if isinstance(t, list):
            t = t[0]
        if t == "string":
            return "the graph runs fast"
        if t == "integer":
            return 2
        if t == "number":
            return 0.5
        if t == "boolean":
            return True
        if t == "null":
            return None
        if t == "array":
            return [sample(s["items"]) for _ in range(max(1, s.get("minItems", 1)))]
        if t == "object":
            return {k: sample(s["properties"][k]) for k in s.get("required", [])}
        return "any"

    endpoints = [(path, ops["post"]) for path, ops in doc["paths"].items() if "post" in ops]
    check(len(endpoints) >= 16, f"every endpoint has an operation: {len(endpoints)}")
    for path, op in endpoints:
        body_schema = op["requestBody"]["content"]["application/json"]["schema"]
        inputs = sample(body_schema)
        fits(pointer("paths", path, "post", "requestBody", "content", "application/json", "schema"), inputs,
             f"{path}: the request made from its schema")
        ok = op["responses"]["200"]["content"]
        status, ctype, data = post(path, inputs)
        check(status == 200, f"{path} {inputs}: {status} {data[:300]!r}")
        if status != 200:
            continue
        if "application/x-ndjson" in ok:
            check(ctype == "application/x-ndjson", f"{path}: a stream answered as {ctype}")
            lines = [json.loads(line) for line in data.decode().splitlines() if line]
            check(len(lines) > 0, f"{path}: an empty stream")
            for i, item in enumerate(lines):
                fits(pointer("paths", path, "post", "responses", "200", "content", "application/x-ndjson", "schema"), item,
                     f"{path}: item {i} {item!r}")
            status, ctype, data = post(path, inputs, accept="application/json")
            check(status == 200 and ctype == "application/json", f"{path} as one array: {status} {ctype}")
            fits(pointer("paths", path, "post", "responses", "200", "content", "application/json", "schema"),
                 json.loads(data), f"{path}: the stream as one array")
        else:
            fits(pointer("paths", path, "post", "responses", "200", "content", "application/json", "schema"),
                 json.loads(data), f"{path}: the result {data[:200]!r}")

        # What the schema refuses (additionalProperties: false) braid refuses too, with an Error.
        status, ctype, data = post(path, dict(inputs, not_an_input=1))
        check(status == 400, f"{path} with an unknown input: {status}")
        fits("urn:braid#/components/schemas/Error", json.loads(data), f"{path}: the error {data[:200]!r}")

    # A missing required input: 400, and the schema says it is required.
    required = doc["paths"]["/ensemble/ensemble_predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    check(required.get("required") == ["input_data"], f"ensemble_predict's required inputs: {required.get('required')}")
    status, _, data = post("/ensemble/ensemble_predict", {})
    check(status == 400 and b"input_data" in data, f"a missing input: {status} {data!r}")

    # HEAD: the document's head, no body.
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("HEAD", "/openapi.json")
    r = conn.getresponse()
    check(r.status == 200 and r.read() == b"" and int(r.getheader("Content-Length")) == len(body),
          f"HEAD /openapi.json: {r.status} {r.getheader('Content-Length')} against {len(body)}")
    conn.close()

    # The graphs placed on CUDA, which this server cannot load here: their documents, from the CLI.
    for g in ("embedding", "joins", "gpu_ensemble"):
        try:
            validate_spec(json.loads(subprocess.run([braid, "plan", "--openapi", f"graphs/{g}.graph"], check=True,
                                                    capture_output=True, text=True).stdout))
        except Exception as e:
            check(False, f"graphs/{g}.graph: not a valid OpenAPI document: {e}")

    # The CLI's document for one graph: the same operations as the server's for that graph.
    planned = json.loads(subprocess.run([braid, "plan", "--openapi", "graphs/streaming.graph"], check=True,
                                        capture_output=True, text=True).stdout)
    streaming = {p: ops for p, ops in doc["paths"].items() if p.startswith("/streaming/")}
    check(streaming and {p: ops for p, ops in planned["paths"].items() if p.startswith("/streaming/")} == streaming,
          "braid plan --openapi gives the served operations")
finally:
    proc.terminate()
    proc.wait(timeout=60)

if failures:
    print(f"{len(failures)} failure(s)")
    sys.exit(1)
print("ok: the OpenAPI document is valid, and every endpoint's answers fit it")
