#!/usr/bin/env bash
# What a tensor costs on a hop to another braid server: bench/graphs/echo.graph (a float32
# tensor of R rows of 512 in, the same tensor out, no model) served by `braid serve`, and
# measured with braid-bench, closed loop, one client, three ways per row count:
#   in process   echo in braid-bench's own engine (no hop: the floor);
#   over HTTP    braid-bench's HTTP client against the server: the tensor as JSON both ways;
#   remote node  a graph in braid-bench's engine whose one node is a remote model calling that
#                server's echo: the remote backend's wire (raw bytes after the JSON, both ways,
#                since binary tensors; JSON before).
# The input is decoded once, before the run, in every row, so the rows differ by the hop alone.
# Prints a markdown table.
#
#   bench/remote_tensors.sh [BUILD_DIR] [DURATION]      (default: build-bench, 3s)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-bench}
duration=${2:-3s}
[ -f "$build/build.ninja" ] || meson setup "$build" --buildtype=release >/dev/null
ninja -C "$build" engine/cli/braid bench/braid-bench >/dev/null

tmp=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

port=18431
printf 'server.max_body = "4MiB"\n' >"$tmp/serve.toml"  # 256 rows as JSON text: ~0.8 MB
"$build/engine/cli/braid" serve bench/graphs/echo.graph --port $port --config "$tmp/serve.toml" >/dev/null 2>&1 &
pid=$!
for _ in $(seq 200); do
  curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/v2/health/ready" 2>/dev/null | grep -q 200 && break
  sleep 0.05
done
cat >"$tmp/front.graph" <<EOF
model up = remote "http://127.0.0.1:$port/echo" {
  def echo(x: tensor<f32, [?, 512]>) -> tensor<f32, [?, 512]>
}
endpoint relay(x: tensor<f32, [?, 512]>) -> tensor<f32, [?, 512]> { return up.echo(x) }
EOF

# row NAME ROWS ARGS... -> "| ROWS | NAME | req/s | p50 | p90 | p99 | errors |"
row() {
  local name=$1 rows=$2
  shift 2
  "$build/bench/braid-bench" "$@" -i "@$tmp/in$rows.json" -c 1 -d "$duration" -o json >"$tmp/out.json"
  python3 - "$name" "$rows" "$tmp/out.json" <<'P'
import json, sys
name, rows, path = sys.argv[1:]
r = json.load(open(path))["runs"][0]
lat = r["latency_ms"]
print(f"| {rows} | {name} | {r['throughput']:.0f} | {lat['p50']:.3f} | {lat['p90']:.3f} | {lat['p99']:.3f} | {r['errors']} |")
P
}

echo "remote_tensors: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) CPUs, braid-bench closed loop, 1 client, $duration each, loopback, commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $build"
echo
echo "| rows | path | req/s | p50 (ms) | p90 (ms) | p99 (ms) | errors |"
echo "|---:|---|---:|---:|---:|---:|---:|"
for rows in 1 64 256; do
  python3 -c "import json,sys; r=int(sys.argv[1]); print(json.dumps({'x': [[float((i * 512 + j) % 97) / 7 for j in range(512)] for i in range(r)]}))" \
    "$rows" >"$tmp/in$rows.json"
  row "in process" "$rows" bench/graphs/echo.graph echo
  row "over HTTP" "$rows" bench/graphs/echo.graph echo --http "http://127.0.0.1:$port"
  row "remote node" "$rows" "$tmp/front.graph" relay
done
