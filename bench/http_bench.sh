#!/usr/bin/env bash
# braid's HTTP path against the floor: a minimal Beast server answering a constant, measured the
# same way in the same run, with wrk on loopback. Prints a markdown table (requests per second,
# p50 and p99) and braid's ratio to the floor.
#
#   bench/http_bench.sh [BUILD_DIR] [DURATION]      (default: build-bench, 10s)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-bench}
duration=${2:-10s}
command -v wrk >/dev/null || { echo "http_bench: needs wrk (apt-get install wrk)" >&2; exit 1; }
[ -f "$build/build.ninja" ] || meson setup "$build" --buildtype=release >/dev/null
ninja -C "$build" engine/cli/braid bench/braid-http-floor >/dev/null

tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT

cat >"$tmp/trivial.graph" <<'G'
# The trivial endpoint: one op, no model.
endpoint ping(x: str) -> str { return id(x) }
G
cat >"$tmp/post.lua" <<'L'
wrk.method = "POST"
wrk.body = '{"x": "pong"}'
wrk.headers["Content-Type"] = "application/json"
L

floor_port=18411
braid_port=18412
"$build/bench/braid-http-floor" $floor_port & pids+=($!)
"$build/engine/cli/braid" serve "$tmp/trivial.graph" --port $braid_port --io-threads 1 --threads 1 >/dev/null 2>&1 & pids+=($!)
for port in $floor_port $braid_port; do
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/v2/health/live" && break; sleep 0.05; done
done

# run_wrk PORT CONNECTIONS -> "rps p50_us p99_us"
run_wrk() {
  wrk -t1 -c"$2" -d"$duration" --latency -s "$tmp/post.lua" "http://127.0.0.1:$1/trivial/ping" >"$tmp/wrk.out"
  python3 - "$tmp/wrk.out" <<'P'
import re, sys
text = open(sys.argv[1]).read()
def us(v, unit):
    return float(v) * {"us": 1, "ms": 1e3, "s": 1e6}[unit]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
lat = {m.group(1): us(m.group(2), m.group(3)) for m in re.finditer(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)", text, re.M)}
errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
print(f"{rps:.0f} {lat['50']:.0f} {lat['99']:.0f} {errors.group(1) if errors else 0}")
P
}

echo "http_bench: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) CPUs, wrk -t1 -d$duration, loopback, one I/O thread each"
echo
echo "| server | connections | requests/s | p50 (µs) | p99 (µs) | non-2xx | braid / floor (req/s) |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for c in 1 64; do
  read -r frps fp50 fp99 ferr <<<"$(run_wrk $floor_port $c)"
  read -r brps bp50 bp99 berr <<<"$(run_wrk $braid_port $c)"
  ratio=$(python3 -c "print(f'{$brps/$frps:.2f}')")
  echo "| floor (constant) | $c | $frps | $fp50 | $fp99 | $ferr | |"
  echo "| braid \`POST /trivial/ping\` | $c | $brps | $bp50 | $bp99 | $berr | $ratio |"
done
