#!/usr/bin/env bash
# Repeated requests, with and without response caches: bench/graphs/cache.graph's endpoints in
# braid-bench's engine (the same inputs every request), closed loop at 1 and 16 clients: the
# inference graph's pipeline uncached (`plain`), cached (`cached`: every call a hit after the
# first request), with caches too small to keep anything (`missed`: what a miss costs), and a
# map whose 16 items are 4 texts (`scores_plain`, `scores_cached`). Prints a markdown table.
#
#   bench/cache_bench.sh [BUILD_DIR] [DURATION]      (default: build-bench, 5s)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-bench}
duration=${2:-5s}
[ -f "$build/build.ninja" ] || meson setup "$build" --buildtype=release >/dev/null
ninja -C "$build" >/dev/null

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "| endpoint | clients | requests | req/s | p50 (ms) | p90 (ms) | p99 (ms) | cache hits | cache misses |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
for ep in plain cached missed scores_plain scores_cached; do
  for clients in 1 16; do
    "$build/bench/braid-bench" bench/graphs/cache.graph "$ep" -c "$clients" -d "$duration" -o json >"$tmp/out.json" 2>"$tmp/err" \
      || { cat "$tmp/err" >&2; exit 1; }
    python3 - "$ep" "$clients" "$tmp/out.json" <<'P'
import json, sys
ep, clients, path = sys.argv[1:]
r = json.load(open(path))["runs"][0]
lat = r["latency_ms"]
caches = r["caches"]
hits = str(sum(c["hits"] for c in caches)) if caches else ""
misses = str(sum(c["misses"] for c in caches)) if caches else ""
print(f"| `{ep}` | {clients} | {r['requests']} | {r['throughput']:.0f} | {lat['p50']:.3f} | {lat['p90']:.3f} | {lat['p99']:.3f} | {hits} | {misses} |")
P
  done
done
