#!/usr/bin/env bash
# An endpoint's `max_in_flight` against a saturating load: `braid serve` of
# bench/graphs/admission.graph with the server's `--max-in-flight 32`; 64 closed-loop clients on
# the slow endpoint (one model thread, ~1 ms a call) while one client calls the fast endpoint
# (`id`), both over HTTP with braid-bench, once with the slow endpoint unlimited (`slow`: its
# requests take all 32 places) and once with `max_in_flight = 8` (`slow_limited`). Prints a
# markdown table: what the fast endpoint got, and what the slow one did.
#
#   bench/admission_bench.sh [BUILD_DIR] [DURATION]      (default: build-bench, 5s)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-bench}
duration=${2:-5s}
[ -f "$build/build.ninja" ] || meson setup "$build" --buildtype=release >/dev/null
ninja -C "$build" engine/cli/braid bench/braid-bench >/dev/null

tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT
port=18431
"$build/engine/cli/braid" serve bench/graphs/admission.graph --port $port --max-in-flight 32 >/dev/null 2>"$tmp/serve.err" &
pids+=($!)
for _ in $(seq 200); do curl -s -o /dev/null "http://127.0.0.1:$port/v2/health/ready" && break; sleep 0.05; done
bench() { "$build/bench/braid-bench" bench/graphs/admission.graph "$1" --http "http://127.0.0.1:$port" -c "$2" -d "$3" -o json; }

echo "| slow endpoint (64 clients) | fast: requests | fast: ok | fast: refused (429) | fast: p50 (ms) | fast: p99 (ms) | slow: ok/s | slow: refused/s |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
for slow in slow slow_limited; do
  # The slow load starts first and outlasts the fast run by a second each side.
  bench "$slow" 64 "$(( ${duration%s} + 2 ))s" >"$tmp/slow.json" 2>"$tmp/slow.err" &
  load=$!
  sleep 1
  bench fast 1 "$duration" >"$tmp/fast.json" 2>"$tmp/fast.err" || { cat "$tmp/fast.err" >&2; exit 1; }
  wait "$load" || { cat "$tmp/slow.err" >&2; exit 1; }
  python3 - "$slow" "$tmp/fast.json" "$tmp/slow.json" <<'P'
import json, sys
slow, fast_path, slow_path = sys.argv[1:]
f = json.load(open(fast_path))["runs"][0]
s = json.load(open(slow_path))["runs"][0]
refused = lambda r: sum(n for k, n in r["errors_by_kind"].items() if "429" in k)
lat = f["latency_ms"]
print(f"| `{slow}` | {f['requests']} | {f['ok']} | {refused(f)} | {lat['p50']:.3f} | {lat['p99']:.3f} | "
      f"{s['ok'] / s['duration_s']:.0f} | {refused(s) / s['duration_s']:.0f} |")
P
done
