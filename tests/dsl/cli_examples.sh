#!/usr/bin/env bash
# Every example graph checks clean through the real CLI, and its plan renders as text, as JSON
# that parses, as an OpenAPI document with a route per endpoint, and as DOT that Graphviz renders
# (when `dot` is installed).
set -euo pipefail
braid=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
status=0
for g in graphs/*.graph; do
  if ! "$braid" check "$g" 2>"$tmp/check.err"; then
    echo "FAIL: braid check $g"; cat "$tmp/check.err"; status=1; continue
  fi
  if grep -q 'warning:' "$tmp/check.err"; then
    echo "FAIL: $g has warnings"; cat "$tmp/check.err"; status=1
  fi
  "$braid" plan "$g" >"$tmp/plan.txt"
  grep -q '^endpoint ' "$tmp/plan.txt" || { echo "FAIL: text plan of $g has no endpoint"; status=1; }
  "$braid" plan "$g" --json >"$tmp/plan.json"
  python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["endpoints"], "no endpoints"' "$tmp/plan.json" \
    || { echo "FAIL: JSON plan of $g"; status=1; }
  # The OpenAPI document: a POST path for every endpoint of the plan (openapi-client validates it).
  "$braid" plan "$g" --openapi >"$tmp/openapi.json"
  python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); p=json.load(open(sys.argv[2]));
eps=[e["name"] for e in p["endpoints"]]
posts=[k for k,v in d["paths"].items() if "post" in v]
assert d["openapi"]=="3.1.0" and len(posts)==len(eps) and all(any(k.endswith("/"+e) for k in posts) for e in eps), (posts, eps)' \
    "$tmp/openapi.json" "$tmp/plan.json" || { echo "FAIL: OpenAPI document of $g"; status=1; }
  "$braid" plan "$g" --dot >"$tmp/plan.dot"
  if command -v dot >/dev/null; then
    dot -Tsvg "$tmp/plan.dot" -o "$tmp/plan.svg" || { echo "FAIL: dot cannot render the plan of $g"; status=1; }
  fi
done
# A graph with errors: exit 1 and a diagnostic in compiler format.
printf 'endpoint e(x: str) -> str {\n  return gtp2.generate(x)\n}\n' >"$tmp/bad.graph"
if "$braid" check "$tmp/bad.graph" 2>"$tmp/bad.err"; then
  echo "FAIL: braid check accepted a bad graph"; status=1
fi
grep -q "bad.graph:2:10: error: unknown model" "$tmp/bad.err" || { echo "FAIL: unexpected diagnostic:"; cat "$tmp/bad.err"; status=1; }
# A file that does not exist.
if "$braid" check "$tmp/missing.graph" 2>"$tmp/missing.err"; then echo "FAIL: missing file accepted"; status=1; fi
grep -q "cannot read" "$tmp/missing.err" || { echo "FAIL: no message for a missing file"; status=1; }
# Every `graph` block of docs/dsl.md checks clean, as the document says (beside the example
# graphs' shared declarations, which its imports name).
ln -s "$PWD/graphs/common" "$tmp/common"
python3 - "$tmp" <<'P'
import re, sys
text = open("docs/dsl.md").read()
for i, block in enumerate(re.findall(r"```graph\n(.*?)```", text, re.S)):
    open(f"{sys.argv[1]}/doc_{i:02d}.graph", "w").write(block)
P
for g in "$tmp"/doc_*.graph; do
  if ! "$braid" check "$g" 2>"$tmp/doc.err" || grep -q 'warning:' "$tmp/doc.err"; then
    echo "FAIL: a graph block of docs/dsl.md does not check clean:"; cat "$g" "$tmp/doc.err"; status=1
  fi
done
# `braid serve` reads no named pipe (it could block a reload for good): refused at once. `braid
# check` reads one, as it reads `<(...)`.
mkfifo "$tmp/pipe.graph"
if timeout 20 "$braid" serve "$tmp/pipe.graph" --port 0 2>"$tmp/pipe.err" >/dev/null; then echo "FAIL: a pipe served"; status=1; fi
grep -q "cannot read .*pipe.graph.*: not a regular file" "$tmp/pipe.err" || { echo "FAIL: no message for a pipe:"; cat "$tmp/pipe.err"; status=1; }
timeout 20 "$braid" check <(printf 'endpoint e(x: str) -> str { return x }\n') 2>"$tmp/sub.err" ||
  { echo "FAIL: braid check of a process substitution"; cat "$tmp/sub.err"; status=1; }
# An import is a file, even for `braid check`: a pipe there (nobody writing it) is an error, not a wait.
printf 'import "pipe.graph"\nendpoint e(x: str) -> str { return x }\n' >"$tmp/imports_pipe.graph"
if timeout 20 "$braid" check "$tmp/imports_pipe.graph" 2>"$tmp/ipipe.err"; then echo "FAIL: a piped import checked"; status=1; fi
grep -q "cannot read imported file \`pipe.graph\`: not a regular file" "$tmp/ipipe.err" || { echo "FAIL: no message for a piped import:"; cat "$tmp/ipipe.err"; status=1; }
# A graph with no endpoint is not served (a file of models only is for `import`).
printf 'endpoint e(x: str) -> str { return x }\n' >"$tmp/one.graph"
: >"$tmp/empty.graph"
if timeout 20 "$braid" serve "$tmp/one.graph" "$tmp/empty.graph" --port 0 2>"$tmp/serve.err" >/dev/null; then
  echo "FAIL: a graph with no endpoint served"; status=1
fi
grep -q "empty.graph\` has no endpoint to serve" "$tmp/serve.err" || { echo "FAIL: no message for a graph with no endpoint:"; cat "$tmp/serve.err"; status=1; }
exit $status
