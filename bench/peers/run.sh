#!/usr/bin/env bash
# braid against BentoML on the four compositions of BentoML's model-composition guide, on the same
# TorchScript models, same machine, same run, same load.
#
# Sets up (once, cached in .peers-venv) a Python virtual environment with BentoML and PyTorch
# from PyPI, builds braid (release, build-bench), starts `braid serve` on the four graphs and
# each BentoML service (bench/peers/*.py) on loopback ports, drives each endpoint with
# `braid-bench --http` at concurrency 1 and 64, and writes a markdown comparison (throughput,
# p50, p99, braid/BentoML) to stdout and bench/peers/results.md.
#
#   bench/peers/run.sh [DURATION]        (default 10s a measurement)
set -euo pipefail
cd "$(dirname "$0")/../.."
duration=${1:-10s}
venv=.peers-venv
if [ ! -x "$venv/bin/bentoml" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
  "$venv/bin/pip" install -q bentoml torch
fi
[ -f build-bench/build.ninja ] || meson setup build-bench --buildtype=release >/dev/null
ninja -C build-bench engine/cli/braid bench/braid-bench graphs/models/gpt2.pt >/dev/null
export BRAID_MODELS=$PWD/build-bench/graphs/models

tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

braid_port=18500
build-bench/engine/cli/braid serve graphs/multi_model.graph graphs/sequential.graph graphs/ensemble.graph \
  graphs/inference_graph.graph --port $braid_port >/dev/null 2>"$tmp/braid.log" & pids+=($!)

declare -A peer_port=([multi_model]=18501 [sequential]=18502 [ensemble]=18503 [inference_graph]=18504)
declare -A peer_service=([multi_model]=MultiModelService [sequential]=SequentialService [ensemble]=EnsembleService
                         [inference_graph]=InferenceGraph)
for g in multi_model sequential ensemble inference_graph; do
  (cd bench/peers && exec "../../$venv/bin/bentoml" serve "$g:${peer_service[$g]}" --port "${peer_port[$g]}" \
     >"$tmp/$g.log" 2>&1) & pids+=($!)
done

wait_ready() {  # URL
  for _ in $(seq 600); do curl -sf -o /dev/null "$1" && return 0; sleep 0.2; done
  echo "peers: $1 never became ready" >&2; return 1
}
wait_ready "http://127.0.0.1:$braid_port/v2/health/ready"
for g in "${!peer_port[@]}"; do wait_ready "http://127.0.0.1:${peer_port[$g]}/readyz"; done

# measure GRAPH ENDPOINT INPUT: one table row per server and concurrency.
rows=()
measure() {
  local g=$1 ep=$2 input=$3
  for c in 1 64; do
    local b bm plots=()
    # The inference graph at 64 clients is plotted for docs/benchmarks.md.
    [ "$g.$c" = "inference_graph.64" ] && plots=(--plot docs/img/peers-braid.svg)
    b=$(build-bench/bench/braid-bench "graphs/$g.graph" "$ep" -i "$input" --http "http://127.0.0.1:$braid_port" -c $c \
          -d "$duration" -w 2s -o json "${plots[@]}")
    [ "$g.$c" = "inference_graph.64" ] && plots=(--plot docs/img/peers-bentoml.svg)
    bm=$(build-bench/bench/braid-bench "graphs/$g.graph" "$ep" -i "$input" --http "http://127.0.0.1:${peer_port[$g]}" \
          --http-path "/$ep" -c $c -d "$duration" -w 2s -o json "${plots[@]}")
    rows+=("$(python3 - "$g" "$ep" "$c" "$b" "$bm" <<'P'
import json, sys
g, ep, c, b, m = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])["runs"][0], json.loads(sys.argv[5])["runs"][0]
def cell(r):
    kinds = ", ".join(f"{k}: {n}" for k, n in sorted(r["errors_by_kind"].items()))
    return f"{r['throughput']:.0f} | {r['latency_ms']['p50']:.2f} | {r['latency_ms']['p99']:.2f} | {r['errors']}" + (f" ({kinds})" if kinds else "")
print(f"| {g}.{ep} | {c} | {cell(b)} | {cell(m)} | {b['throughput'] / max(m['throughput'], 1e-9):.1f}x |")
P
)")
  done
}
measure multi_model process_a '{"input_data": "braid composes models"}'
measure multi_model process_b '{"input_data": "I love this"}'
measure multi_model combined_process '{"input_data": "I love this"}'
measure sequential predict '{"input_data": "  I LOVE   this  "}'
measure ensemble ensemble_predict '{"input_data": "what a great day"}'
measure inference_graph generate_score '{}'

# wrk as an independent check of the load generator: the ensemble at 64 connections, both servers.
cat >"$tmp/post.lua" <<'L'
wrk.method = "POST"
wrk.body = '{"input_data": "what a great day"}'
wrk.headers["Content-Type"] = "application/json"
L
wrk_rows=()
if command -v wrk >/dev/null; then
  for target in "braid http://127.0.0.1:$braid_port/ensemble/ensemble_predict" "BentoML http://127.0.0.1:${peer_port[ensemble]}/ensemble_predict"; do
    set -- $target
    out=$(wrk -t1 -c64 -d"$duration" --latency -s "$tmp/post.lua" "$2")
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    p50=$(echo "$out" | awk '$1 == "50%" {print $2}')
    p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
    non2xx=$(echo "$out" | awk '/Non-2xx/ {print $5}')
    wrk_rows+=("| $1 | $rps | $p50 | $p99 | ${non2xx:-0} |")
  done
fi

{
  echo "peers: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) CPUs; braid commit $(git rev-parse --short HEAD);" \
       "BentoML $("$venv/bin/python" -c 'import bentoml; print(bentoml.__version__)'), torch $("$venv/bin/python" -c 'import torch; print(torch.__version__)');" \
       "braid-bench --http, closed loop, $duration after 2s warm-up"
  echo
  echo "| endpoint | clients | braid req/s | p50 (ms) | p99 (ms) | errors | BentoML req/s | p50 (ms) | p99 (ms) | errors | braid / BentoML |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  printf '%s\n' "${rows[@]}"
  if [ ${#wrk_rows[@]} -gt 0 ]; then
    echo
    echo "wrk -t1 -c64 -d$duration, ensemble.ensemble_predict (independent of braid-bench):"
    echo
    echo "| server | req/s | p50 | p99 | non-2xx |"
    echo "|---|---:|---:|---:|---:|"
    printf '%s\n' "${wrk_rows[@]}"
  fi
} | tee bench/peers/results.md
