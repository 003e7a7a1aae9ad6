#!/usr/bin/env bash
# Repeated requests, with and without response caches: bench/graphs/cache.graph's endpoints in
# braid-bench's engine (the same inputs every request), closed loop at 1 and 16 clients: the
# inference graph's pipeline uncached (`plain`), cached (`cached`: every call a hit after the
# first request), with caches too small to keep anything (`missed`: what a miss costs at one
# client; at 16, identical requests in flight together share their calls), and a
# map whose 16 items are 4 texts (`scores_plain`, `scores_cached`). Prints a markdown table.
#
# Then traffic that repeats as real traffic does: 20,000 requests whose sentences are drawn from
# 2,000 with Zipf's law (s = 1.1, seeded), each sent once, in turn (braid-bench --inputs), to
# `plain` and `cached`: a second table with the hit ratio it got.
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

echo "| endpoint | clients | requests | req/s | p50 (ms) | p90 (ms) | p99 (ms) | cache hits | cache misses | waited for the same call |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
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
waited = str(sum(c["coalesced"] for c in caches)) if caches else ""
print(f"| `{ep}` | {clients} | {r['requests']} | {r['throughput']:.0f} | {lat['p50']:.3f} | {lat['p90']:.3f} | {lat['p99']:.3f} | {hits} | {misses} | {waited} |")
P
  done
done

# Zipf-distributed sentences: rank r drawn with weight 1 / r^1.1.
python3 - "$tmp/zipf.ndjson" <<'P'
import json, random, sys
random.seed(7)
n, requests, s = 2000, 20000, 1.1
weights = [1 / (r ** s) for r in range(1, n + 1)]
with open(sys.argv[1], "w") as f:
    for r in random.choices(range(n), weights=weights, k=requests):
        f.write(json.dumps({"sentence": f"query number {r} about something"}) + "\n")
P
echo
echo "| endpoint | clients | requests | req/s | p50 (ms) | p90 (ms) | p99 (ms) | hit ratio | waited for the same call |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
for ep in plain cached; do
  for clients in 1 16; do
    "$build/bench/braid-bench" bench/graphs/cache.graph "$ep" --inputs "$tmp/zipf.ndjson" -n 20000 -w 0s -c "$clients" -o json \
      >"$tmp/out.json" 2>"$tmp/err" || { cat "$tmp/err" >&2; exit 1; }
    python3 - "$ep" "$clients" "$tmp/out.json" <<'P'
import json, sys
ep, clients, path = sys.argv[1:]
r = json.load(open(path))["runs"][0]
lat = r["latency_ms"]
hits = sum(c["hits"] for c in r["caches"])
looked = hits + sum(c["misses"] for c in r["caches"])
ratio = f"{100 * hits / looked:.1f}%" if looked else ""
waited = str(sum(c["coalesced"] for c in r["caches"])) if r["caches"] else ""
print(f"| `{ep}` | {clients} | {r['requests']} | {r['throughput']:.0f} | {lat['p50']:.3f} | {lat['p90']:.3f} | {lat['p99']:.3f} | {ratio} | {waited} |")
P
  done
done
