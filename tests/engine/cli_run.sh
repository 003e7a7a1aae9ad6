#!/usr/bin/env bash
# `braid run` and `braid check` against real model files, through the real CLI: results, bad
# input (clear message, exit 1), the trace file, and signatures checked against model files.
set -uo pipefail
braid=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
status=0
fail() { echo "FAIL: $*"; status=1; }

# expect_error EXPECTED-MESSAGE ARGS...: exit 1 and the message on stderr.
expect_error() {
  local want=$1; shift
  if "$braid" "$@" >"$tmp/out" 2>"$tmp/err"; then fail "accepted: braid $*"; return; fi
  grep -qF -- "$want" "$tmp/err" || { fail "braid $*: wanted '$want', got:"; cat "$tmp/err"; }
}

out=$("$braid" run graphs/ensemble.graph ensemble_predict -i '{"input_data": "what a great day"}') || fail "run ensemble"
# Compared within a tolerance: another CPU (or LibTorch build) may round the last float32 bit.
python3 -c 'import json, sys; r = json.loads(sys.argv[1]); assert abs(r["result_a"] - 0.6935319) < 1e-5, r' "$out" \
  || fail "ensemble result: $out"
echo '{"input_data": "what a great day"}' >"$tmp/in.json"
out2=$("$braid" run graphs/ensemble.graph ensemble_predict -i @"$tmp/in.json") || fail "run with @file"
[[ $out == "$out2" ]] || fail "@file gives another result: $out2"

expect_error "--input is not valid JSON" run graphs/ensemble.graph ensemble_predict -i '{bad'
expect_error "--input must be a JSON object of named inputs, found an array" run graphs/ensemble.graph ensemble_predict -i '[1]'
expect_error "no endpoint \`nope\` in \`graphs/ensemble.graph\`; it has \`ensemble_predict\`" run graphs/ensemble.graph nope
expect_error "missing input \`input_data\` of type \`str\`" run graphs/ensemble.graph ensemble_predict
expect_error "input \`input_data\`: expected \`str\`, found an integer" run graphs/ensemble.graph ensemble_predict -i '{"input_data": 3}'
expect_error "cannot read input file" run graphs/ensemble.graph ensemble_predict -i @"$tmp/none.json"
# A placement on a device this machine lacks: no CUDA device at all (CI), or not that many (a GPU
# machine running this suite through scripts/gpu-check.sh).
cat >"$tmp/far.graph" <<G
model bert = torch "models/bert.pt" on cuda:9 { def classify(text: str) -> float }
endpoint score(text: str) -> float { return bert.classify(text) }
G
if "$braid" run "$tmp/far.graph" score -i '{"text": "x"}' --model-path graphs >"$tmp/out" 2>"$tmp/err"; then
  fail "accepted a model on cuda:9"
elif ! grep -qE 'placement `cuda:9` (needs a CUDA device|names device 9, and this machine has [0-9]+ CUDA device)' "$tmp/err"; then
  fail "a model on cuda:9: wanted why it cannot load, got:"; cat "$tmp/err"
fi

# The trace: one event per node execution; the two generators on two threads.
"$braid" run graphs/inference_graph.graph generate_score --trace "$tmp/trace.json" >/dev/null || fail "run with --trace"
python3 - "$tmp/trace.json" <<'PY' || fail "trace file"
import json, sys
events = json.load(open(sys.argv[1]))["traceEvents"]
calls = {e["name"]: e for e in events if e["cat"] == "call"}
assert "gpt2.generate#1" in calls and "distilgpt2.generate#2" in calls, calls.keys()
assert calls["gpt2.generate#1"]["tid"] != calls["distilgpt2.generate#2"]["tid"], "generators on one thread"
assert all(e["ph"] == "X" and e["dur"] >= 0 for e in events)
PY

# Declared signatures are checked against the model files.
cat >"$tmp/sig.graph" <<G
model bert = torch "models/bert.pt" { def classify(text: int) -> float }
model gen = torch "models/gpt2.pt" { def generate(prompt: str) -> str
                                     def summarize(text: str) -> str }
endpoint e(x: int) -> float { return bert.classify(x) }
endpoint f(x: str) -> str { return gen.summarize(x) }
G
expect_error "sig.graph:1:43: error: \`bert.classify\` is declared \`(text: int) -> float\`, but the model file has \`(text: str) -> float\`" check "$tmp/sig.graph"
expect_error "model file \`models/gpt2.pt\` has no method \`summarize\`; it has" check "$tmp/sig.graph"
# A batched model's method runs through the file's `<method>_batch`: a file without one is
# a warning (its calls run one at a time), one with it checks clean.
cat >"$tmp/batch.graph" <<G
model bert = torch "models/bert.pt" { max_batch = 4
                                      def classify(text: str) -> float }
model gen = torch "models/gpt2.pt" { max_batch = 4
                                     def generate(prompt: str) -> str }
endpoint e(x: str) -> float { return bert.classify(gen.generate(x)) }
G
"$braid" check "$tmp/batch.graph" 2>"$tmp/err" || fail "check of a batched graph"
grep -qF "batch.graph:4:42: warning: \`gen.generate\` runs one call at a time: \`max_batch\` is 4, but model file \`models/gpt2.pt\` has no \`generate_batch\`" "$tmp/err" ||
  { fail "the warning for a batched method without a _batch form:"; cat "$tmp/err"; }
grep -q "bert.classify" "$tmp/err" && { fail "bert has classify_batch, yet:"; cat "$tmp/err"; }
# The packed form (models/pooler.pt) checks clean; a `_batch` of no form is an error naming both.
cat >"$tmp/packed.graph" <<G
model p = torch "models/pooler.pt" { max_batch = 4
  def pool(x: tensor<f32, [?, 64]>) -> tensor<f32, [64]>
  def tag(x: tensor<f32, [?, 64]>) -> tensor<f32, [?, 8]>
  def scale(x: tensor<f32, [64]>, by: float) -> tensor<f32, [64]> }
endpoint e(x: tensor<f32, [?, 64]>) -> tensor { return p.scale(p.pool(x), 2.0) }
G
"$braid" check "$tmp/packed.graph" 2>"$tmp/err" || { fail "check of the packed forms:"; cat "$tmp/err"; }
grep -q "warning\|error" "$tmp/err" && { fail "the packed forms check clean, yet:"; cat "$tmp/err"; }
cat >"$tmp/label.graph" <<G
model p = torch "models/pooler.pt" { max_batch = 4
  def label(x: tensor) -> str }
endpoint e(x: tensor) -> str { return p.label(x) }
G
expect_error "label.graph:2:7: error: \`p.label\` is batched, so the model file's \`label_batch\` must be \`(x: list<tensor>) -> list<str>\` or, packed, \`(x: tensor, x_lengths: tensor) -> list<str>\` (each \`_lengths\` optional, a tensor or a \`list<int>\`), but it is \`(x: tensor) -> tensor\`" check "$tmp/label.graph"
# A streaming method `m(...) -> stream<T>` is checked against the file's `m_next(..., emitted:
# list<T>) -> T?` (never `_batch`: with `max_batch`, `m_next_batch` steps the streams together);
# a file without one, or with one of another shape, is an error that says so.
cat >"$tmp/stream.graph" <<G
model gen = torch "models/gpt2.pt" { max_batch = 4
                                     def generate(prompt: str) -> stream<str> }
endpoint e(p: str) -> list<str> { return collect(gen.generate(p)) }
G
"$braid" check --require-models "$tmp/stream.graph" 2>"$tmp/err" || { fail "check of a streaming method:"; cat "$tmp/err"; }
grep -q "warning\|error" "$tmp/err" && { fail "a streaming method with its _next checks clean, yet:"; cat "$tmp/err"; }
cat >"$tmp/stream_bad.graph" <<G
model gen = torch "models/gpt2.pt" { def generate(prompt: str, n: int) -> stream<str> }
model bert = torch "models/bert.pt" { def classify(text: str) -> stream<float> }
endpoint e(p: str) -> list<str> { return collect(gen.generate(p, 2)) }
endpoint f(p: str) -> list<float> { return collect(bert.classify(p)) }
G
expect_error "stream_bad.graph:1:42: error: \`gen.generate\` is declared \`(prompt: str, n: int) -> stream<str>\`, so the model file's \`generate_next\` must be \`(prompt: str, n: int, emitted: list<str>) -> str?\`, but the model file has \`(prompt: str, emitted: list<str>) -> str?\`" check --require-models "$tmp/stream_bad.graph"
expect_error "stream_bad.graph:2:43: error: model file \`models/bert.pt\` has no method \`classify_next\`, which the streaming method \`bert.classify\` needs: \`classify_next(text: str, emitted: list<float>) -> float?\`; it has" check --require-models "$tmp/stream_bad.graph"
# Batched, a streaming method steps through `m_next_batch`: a file without one is a warning (each
# stream steps alone), one of another shape an error that shows the shape wanted.
cat >"$tmp/stream_batch.graph" <<G
model c = torch "models/counter.pt" { max_batch = 4
                                      def count(n: int) -> stream<int>
                                      def alone(n: int) -> stream<int>
                                      def skewed(n: int) -> stream<int> }
endpoint e(n: int) -> list<int> { return collect(c.count(n)) }
endpoint f(n: int) -> list<int> { return collect(c.alone(n)) }
endpoint g(n: int) -> list<int> { return collect(c.skewed(n)) }
G
cat >"$tmp/stream_loose.graph" <<G
model c = torch "models/counter.pt" { max_batch = 4
                                      def loose(n: int) -> stream<int> }
endpoint e(n: int) -> list<int> { return collect(c.loose(n)) }
G
expect_error "stream_loose.graph:2:43: error: \`c.loose\` is batched, so the model file's \`loose_next_batch\` must be \`(n: list<int>, emitted: list<list<int>>) -> list<int?>\`, but it is \`(n: list<float>, emitted: list<list<int>>) -> list<int>\`" check --require-models "$tmp/stream_loose.graph"
expect_error "stream_batch.graph:4:43: error: \`c.skewed\` is batched, so the model file's \`skewed_next_batch\` must be \`(n: list<int>, emitted: list<list<int>>) -> list<int?>\`, but it is \`(n: list<int>, emitted: list<int>) -> list<int?>\`" check --require-models "$tmp/stream_batch.graph"
grep -qF "stream_batch.graph:3:43: warning: \`c.alone\` steps one stream at a time: \`max_batch\` is 4, but model file \`models/counter.pt\` has no \`alone_next_batch\`" "$tmp/err" ||
  { fail "the warning for a batched streaming method without _next_batch:"; cat "$tmp/err"; }
grep -q "c.count" "$tmp/err" && { fail "count has count_next_batch, yet:"; cat "$tmp/err"; }
# And it runs: the streams of a map's items, stepped (together, when they meet in a step).
cat >"$tmp/stream_run.graph" <<G
model c = torch "models/counter.pt" { max_batch = 4
                                      def count(n: int) -> stream<int> }
endpoint e(ns: list<int>) -> list<list<int>> { return each n in ns { collect(c.count(n)) } }
G
out=$("$braid" run "$tmp/stream_run.graph" e -i '{"ns": [3, 0, 1]}') || fail "run a batched stream"
[[ $out == "[[0,1,2],[],[0]]" ]] || fail "batched count: $out"
# `--model-path` takes one folder: the graph files after it are still checked.
printf 'endpoint e() -> int { return 1 / 0 }\n' >"$tmp/broken.graph"
expect_error "broken.graph:1:30: error: division by zero (1 / 0)" check --model-path graphs "$tmp/broken.graph" graphs/ensemble.graph
exit $status
