#!/usr/bin/env bash
# What a remote node costs: the sequential graph's `predict` (graphs/sequential.graph) measured
# three ways in one run, with braid-bench, closed loop, at 1 and 16 clients:
#   in process     the endpoint in braid-bench's own engine;
#   over HTTP      braid-bench's HTTP client against `braid serve graphs/sequential.graph`;
#   remote node    graphs/remote.graph's `classify` in braid-bench's engine: one node, a remote
#                  model calling that same server (its kept-alive client, Braid-Timeout, JSON by
#                  name both ways).
# "remote node" minus "over HTTP" is what braid's remote backend adds over a bare HTTP client.
# Prints a markdown table.
#
#   bench/remote_bench.sh [BUILD_DIR] [DURATION]      (default: build-bench, 5s)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-bench}
duration=${2:-5s}
[ -f "$build/build.ninja" ] || meson setup "$build" --buildtype=release >/dev/null
ninja -C "$build" >/dev/null
export BRAID_MODEL_PATH="$build/graphs"

tmp=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

port=18421
"$build/engine/cli/braid" serve graphs/sequential.graph --port $port >/dev/null 2>&1 &
pid=$!
for _ in $(seq 200); do
  curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/v2/health/ready" 2>/dev/null | grep -q 200 && break
  sleep 0.05
done
sed "s/127\.0\.0\.1:8001/127.0.0.1:$port/" graphs/remote.graph >"$tmp/remote.graph"

input='{"input_data": "the movie was wonderful", "labels": ["good", "bad"]}'
# row NAME CLIENTS ARGS... -> "| NAME | CLIENTS | req/s | p50 | p90 | p99 | errors |"
row() {
  local name=$1 clients=$2
  shift 2
  "$build/bench/braid-bench" "$@" -i "$input" -c "$clients" -d "$duration" -o json >"$tmp/out.json"
  python3 - "$name" "$clients" "$tmp/out.json" <<'P'
import json, sys
name, clients, path = sys.argv[1:]
doc = json.load(open(path))
r = doc["runs"][0]
lat = r["latency_ms"]
print(f"| {name} | {clients} | {r['throughput']:.0f} | {lat['p50']:.3f} | {lat['p90']:.3f} | {lat['p99']:.3f} | {r['errors']} |")
P
}

echo "remote_bench: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) CPUs, braid-bench closed loop, $duration each, loopback, commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
echo
echo "| path | clients | req/s | p50 (ms) | p90 (ms) | p99 (ms) | errors |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for c in 1 16; do
  row "in process" $c graphs/sequential.graph predict
  row "over HTTP" $c graphs/sequential.graph predict --http "http://127.0.0.1:$port"
  row "remote node" $c "$tmp/remote.graph" classify
done
