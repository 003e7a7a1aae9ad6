#!/usr/bin/env bash
# braid-bench end to end: in process (closed loop, open loop, --compare, JSON, CSV, plot) and
# over HTTP against a real `braid serve`.
set -uo pipefail
bench=$1
braid=$2
tmp=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; rm -rf "$tmp"' EXIT
status=0
fail() { echo "FAIL: $*"; status=1; }

"$bench" graphs/ensemble.graph ensemble_predict -i '{"input_data": "hi"}' -n 200 -w 0s -c 2 -o json >"$tmp/a.json" || fail "json run"
python3 - "$tmp/a.json" <<'PY' || fail "json content"
import json, sys
d = json.load(open(sys.argv[1]))
r = d["runs"][0]
assert r["requests"] == 200 and r["errors"] == 0, r
assert r["latency_ms"]["p50"] <= r["latency_ms"]["p99"] <= r["latency_ms"]["max"]
calls = {n["node"]: n["runs"] for n in r["nodes"] if n["kind"] == "call"}
assert calls == {"model_a.predict#1": 200, "model_b.predict#2": 200}, calls
for key in ("commit", "machine", "concurrency", "rate", "duration", "input"):
    assert key in d, key
PY
# Batches: one client, so each request's two texts make one batch of `bert`, started at once
# (no other request could add a call), and the table says so.
"$bench" graphs/inference_graph.graph generate_score -n 100 -w 0s -c 1 -o json >"$tmp/b.json" || fail "batched run"
python3 - "$tmp/b.json" <<'PY' || fail "batch figures"
import json, sys
r = json.load(open(sys.argv[1]))["runs"][0]
b = {m["model"]: m for m in r["batches"]}
assert list(b) == ["bert"], b
assert b["bert"]["batches"] == 100 and b["bert"]["calls"] == 200, b
assert b["bert"]["starts"]["alone"] == 100 and b["bert"]["starts"]["window"] == 0, b
PY
"$bench" graphs/inference_graph.graph generate_score -n 100 -w 0s --compare --plot "$tmp/p.svg" >"$tmp/cmp.md" || fail "compare run"
grep -q '^| `bert` | [0-9]* | [0-9.]* | 0 | ' "$tmp/cmp.md" || { fail "no batches table"; cat "$tmp/cmp.md"; }
grep -q '^| concurrent / sequential |' "$tmp/cmp.md" || { fail "no ratio row"; cat "$tmp/cmp.md"; }
grep -q '^| `gpt2.generate#1` | call | 1.00 |' "$tmp/cmp.md" || { fail "no per-node table"; cat "$tmp/cmp.md"; }
grep -q '</svg>' "$tmp/p.svg" || fail "no plot"
long=$(printf 'w%.0s' $(seq 300))
"$bench" graphs/ensemble.graph ensemble_predict -i "{\"input_data\": \"$long\"}" -n 10 -w 0s >"$tmp/long.md" || fail "long input run"
grep -q '^braid-bench: .*, input {"input_data": string of 300 bytes} (317 bytes), ' "$tmp/long.md" ||
  { fail "a long input is not described by its shape in the header"; head -1 "$tmp/long.md"; }
"$bench" graphs/ensemble.graph ensemble_predict -i '{"input_data": "hi"}' -d 1s -w 0s -r 100/s -o csv >"$tmp/o.csv" || fail "open loop"
python3 - "$tmp/o.csv" <<'PY' || fail "open loop count"
import csv, sys
row = list(csv.DictReader(open(sys.argv[1])))[0]
assert 95 <= int(row["requests"]) <= 100, row["requests"]   # 100/s for 1 s, intended times
PY
# --inputs: a file's inputs in turn. Three sentences, thirty requests through a cached pipeline:
# each sentence's generation misses once, then hits.
printf '{"sentence": "one"}\n\n{"sentence": "two"}\n{"sentence": "three"}\n' >"$tmp/in.ndjson"
"$bench" bench/graphs/cache.graph cached --inputs "$tmp/in.ndjson" -n 30 -w 0s -c 1 -o json >"$tmp/i.json" || fail "--inputs run"
python3 - "$tmp/i.json" <<'PY' || fail "--inputs figures"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["inputs"]["count"] == 3 and d["input"] == {"sentence": "one"}, d["inputs"]
r = d["runs"][0]
assert r["requests"] == 30 and r["errors"] == 0, r
c = {m["model"]: m for m in r["caches"]}
assert c["gpt2_c"]["misses"] == 3 and c["gpt2_c"]["hits"] == 27 and c["gpt2_c"]["entries"] == 3, c
n = {x["node"]: x for x in r["nodes"]}
assert n["gpt2_c.generate#1"]["runs"] == 30 and n["gpt2_c.generate#1"]["cache_hits"] == 27, n
PY
printf '{"sentence": "one"}\n[1]\n' >"$tmp/bad.ndjson"
if "$bench" bench/graphs/cache.graph cached --inputs "$tmp/bad.ndjson" -n 1 >/dev/null 2>"$tmp/bad.err"; then fail "a bad --inputs line was taken"; fi
grep -q "bad.ndjson:2: not a JSON object of named inputs" "$tmp/bad.err" || { fail "no message for a bad --inputs line"; cat "$tmp/bad.err"; }
# A streaming endpoint: each answer's first item and the items a second (32 words a stream).
"$bench" graphs/generation.graph words -n 40 -w 0s -c 4 -o json >"$tmp/s.json" || fail "stream run"
python3 - "$tmp/s.json" <<'PY' || fail "stream figures"
import json, sys
r = json.load(open(sys.argv[1]))["runs"][0]
assert r["requests"] == 40 and r["errors"] == 0, r
s = r["stream"]
assert s["streamed"] == 40, s
first = s["first_item_ms"]
assert 0 < first["p50"] <= first["p99"] <= first["max"] <= r["latency_ms"]["max"], (first, r["latency_ms"])
assert s["items_per_s"] > 0
PY
"$bench" graphs/generation.graph words -n 10 -w 0s >"$tmp/s.md" || fail "stream run (md)"
grep -q '^| concurrent | 10 | [0-9.]* | ' "$tmp/s.md" || { fail "no streamed answers table"; cat "$tmp/s.md"; }
# Over HTTP against the real server.
"$braid" serve graphs/ensemble.graph --port 0 >"$tmp/serve.out" 2>/dev/null & pids+=($!)
for _ in $(seq 200); do [ -s "$tmp/serve.out" ] && break; sleep 0.05; done
url=$(grep -o 'http://127.0.0.1:[0-9]*' "$tmp/serve.out" | head -1)
[ -n "$url" ] || fail "server did not start"
"$bench" graphs/ensemble.graph ensemble_predict -i '{"input_data": "hi"}' --http "$url" -n 300 -w 0s -c 8 -o json >"$tmp/h.json" || fail "http run"
python3 -c "import json,sys; r=json.load(open(sys.argv[1]))['runs'][0]; assert r['mode']=='http' and r['requests']==300 and r['errors']==0, r" "$tmp/h.json" || fail "http content"
"$bench" graphs/ensemble.graph ensemble_predict -i '{"input_data": 5}' --http "$url" -n 20 -w 0s -o json >"$tmp/e.json" || fail "http error run"
python3 -c "import json,sys; r=json.load(open(sys.argv[1]))['runs'][0]; assert r['errors']==20 and r['errors_by_kind']=={'HTTP 400': 20}, r" "$tmp/e.json" || fail "errors by kind"
# Over HTTP, in turn too: every second input is a bad one.
printf '{"input_data": "hi"}\n{"input_data": 5}\n' >"$tmp/half.ndjson"
"$bench" graphs/ensemble.graph ensemble_predict --inputs "$tmp/half.ndjson" --http "$url" -n 20 -w 0s -o json >"$tmp/hh.json" || fail "http --inputs run"
python3 -c "import json,sys; r=json.load(open(sys.argv[1]))['runs'][0]; assert r['errors_by_kind']=={'HTTP 400': 10}, r" "$tmp/hh.json" || fail "http inputs in turn"
# Headers go with every request: a budget that is not a duration is a 400 for each.
"$bench" graphs/ensemble.graph ensemble_predict -i '{"input_data": "hi"}' --http "$url" -H 'Braid-Timeout: soon' -H 'Braid-Timing: 1' \
  -n 20 -w 0s -o json >"$tmp/t.json" || fail "http run with headers"
python3 -c "import json,sys; r=json.load(open(sys.argv[1]))['runs'][0]; assert r['errors_by_kind']=={'HTTP 400': 20}, r" "$tmp/t.json" || fail "headers sent"
if "$bench" graphs/ensemble.graph ensemble_predict --http "$url" -H 'no colon' -n 1 >/dev/null 2>"$tmp/bad.err"; then
  fail "a malformed --header was taken"
fi
grep -q -- '--header `no colon`: expected "Name: value"' "$tmp/bad.err" || { fail "no message for a malformed header"; cat "$tmp/bad.err"; }
exit $status
