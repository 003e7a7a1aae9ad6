#!/usr/bin/env bash
# A dependency that hangs, with and without a circuit breaker: bench/graphs/breaker.graph's
# `unguarded` and `protected` endpoints, in braid-bench's engine, against a server that takes
# connections and never answers (a Python asyncio listener on 127.0.0.1:18431). Closed loop at
# 1 and 16 clients. Prints a markdown table.
#
#   bench/breaker_bench.sh [BUILD_DIR] [DURATION]      (default: build-bench, 5s)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-bench}
duration=${2:-5s}
[ -f "$build/build.ninja" ] || meson setup "$build" --buildtype=release >/dev/null
ninja -C "$build" >/dev/null

tmp=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

# Takes every connection, reads what comes, answers nothing; `/graphs` (braid's check of the
# remote graph at load) included, so the engine warns and goes on after its 5 s wait.
python3 - <<'P' &
import asyncio
async def hang(reader, writer):
    while await reader.read(65536):
        pass
    writer.close()
async def main():
    server = await asyncio.start_server(hang, "127.0.0.1", 18431)
    async with server:
        await server.serve_forever()
asyncio.run(main())
P
pid=$!
sleep 0.5

echo "| endpoint | clients | requests | req/s | p50 (ms) | p90 (ms) | p99 (ms) | max (ms) | calls refused by the breaker | breaker opened |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for ep in unguarded protected; do
  for clients in 1 16; do
    "$build/bench/braid-bench" bench/graphs/breaker.graph "$ep" -c "$clients" -d "$duration" -o json >"$tmp/out.json" 2>"$tmp/err"
    python3 - "$ep" "$clients" "$tmp/out.json" <<'P'
import json, sys
ep, clients, path = sys.argv[1:]
r = json.load(open(path))["runs"][0]
lat = r["latency_ms"]
b = r["breakers"]
refused = str(sum(x["refused"] for x in b if x["model"] == "guarded")) if ep == "protected" else ""
opened = str(sum(x["opens"] for x in b if x["model"] == "guarded")) if ep == "protected" else ""
print(f"| `{ep}` | {clients} | {r['requests']} | {r['throughput']:.0f} | {lat['p50']:.3f} | {lat['p90']:.3f} | {lat['p99']:.3f} | {lat['max']:.1f} | {refused} | {opened} |")
P
  done
done
