#!/usr/bin/env bash
# braid against BentoML and Ray Serve on the four compositions of BentoML's model-composition
# guide, on the same TorchScript models, same machine, same run, same load.
#
# Sets up (once, cached in .peers-venv) a Python virtual environment with BentoML, Ray Serve and
# PyTorch from PyPI and builds braid (release, build-bench). Then, one server at a time on an
# otherwise idle machine: starts it on loopback (`braid serve` on the four graphs; each BentoML
# service of bench/peers/*.py; the four Ray Serve applications of bench/peers/ray_serve.py),
# drives each endpoint with `braid-bench --http` at concurrency 1 and 64 and the ensemble with
# `wrk`, and stops it. Writes the comparison (bench/peers/report.py) to stdout and
# bench/peers/results.md.
#
#   bench/peers/run.sh [DURATION]        (default 10s a measurement)
#   PEERS="bentoml" bench/peers/run.sh   (only some peers: bentoml, ray; default both)
set -euo pipefail
cd "$(dirname "$0")/../.."
duration=${1:-10s}
peers=${PEERS:-bentoml ray}
venv=.peers-venv
if [ ! -x "$venv/bin/bentoml" ] || [ ! -x "$venv/bin/serve" ]; then
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
  "$venv/bin/pip" install -q bentoml 'ray[serve]' torch
fi
[ -f build-bench/build.ninja ] || meson setup build-bench --buildtype=release >/dev/null
ninja -C build-bench engine/cli/braid bench/braid-bench graphs/models/gpt2.pt >/dev/null
export BRAID_MODELS=$PWD/build-bench/graphs/models

tmp=$(mktemp -d)
pids=()
stop_all() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
}
trap 'stop_all; rm -rf "$tmp"' EXIT

wait_ready() {  # URL [TRIES]
  for _ in $(seq "${2:-600}"); do curl -sf -o /dev/null "$1" && return 0; sleep 0.2; done
  echo "peers: $1 never became ready" >&2; return 1
}

cat >"$tmp/post.lua" <<'L'
wrk.method = "POST"
wrk.body = '{"input_data": "what a great day"}'
wrk.headers["Content-Type"] = "application/json"
L

endpoints=(
  'multi_model process_a {"input_data": "braid composes models"}'
  'multi_model process_b {"input_data": "I love this"}'
  'multi_model combined_process {"input_data": "I love this"}'
  'sequential predict {"input_data": "  I LOVE   this  "}'
  'ensemble ensemble_predict {"input_data": "what a great day"}'
  'inference_graph generate_score {}'
)

# measure SERVER URL_OF PATH_STYLE: every endpoint at 1 and 64 clients, then wrk on the ensemble.
# URL_OF is a function printing the base URL of a graph; PATH_STYLE is "graph" (/{graph}/{endpoint})
# or "endpoint" (/{endpoint}, BentoML's one service a graph).
measure() {
  local server=$1 url_of=$2 style=$3 line g ep input c base path_args plots
  for line in "${endpoints[@]}"; do
    read -r g ep input <<<"$line"
    base=$($url_of "$g")
    path_args=()
    [ "$style" = endpoint ] && path_args=(--http-path "/$ep")
    for c in 1 64; do
      plots=()
      # The inference graph at 64 clients is plotted for docs/benchmarks.md.
      [ "$g.$c" = inference_graph.64 ] && plots=(--plot "docs/img/peers-$server.svg")
      build-bench/bench/braid-bench "graphs/$g.graph" "$ep" -i "$input" --http "$base" "${path_args[@]}" -c $c \
        -d "$duration" -w 2s -o json "${plots[@]}" >"$tmp/$server.$g.$ep.$c.json"
    done
  done
  if command -v wrk >/dev/null; then
    path=/ensemble/ensemble_predict
    [ "$style" = endpoint ] && path=/ensemble_predict
    wrk -t1 -c64 -d"$duration" --latency -s "$tmp/post.lua" "$($url_of ensemble)$path" >"$tmp/$server.wrk.txt"
  fi
}

# braid: one process serves the four graphs.
braid_url() { echo "http://127.0.0.1:18500"; }
build-bench/engine/cli/braid serve graphs/multi_model.graph graphs/sequential.graph graphs/ensemble.graph \
  graphs/inference_graph.graph --port 18500 >/dev/null 2>"$tmp/braid.log" & pids+=($!)
wait_ready "$(braid_url)/v2/health/ready"
measure braid braid_url graph
stop_all

# BentoML: one service tree a graph, each on its own port.
declare -A bento_port=([multi_model]=18501 [sequential]=18502 [ensemble]=18503 [inference_graph]=18504)
declare -A bento_service=([multi_model]=MultiModelService [sequential]=SequentialService [ensemble]=EnsembleService
                          [inference_graph]=InferenceGraph)
bento_url() { echo "http://127.0.0.1:${bento_port[$1]}"; }
if [[ " $peers " == *" bentoml "* ]]; then
  for g in "${!bento_port[@]}"; do
    (cd bench/peers && exec "../../$venv/bin/bentoml" serve "$g:${bento_service[$g]}" --port "${bento_port[$g]}" \
       >"$tmp/bentoml.$g.log" 2>&1) & pids+=($!)
  done
  for g in "${!bento_port[@]}"; do wait_ready "$(bento_url "$g")/readyz"; done
  measure bentoml bento_url endpoint
  stop_all
fi

# Ray Serve: one Ray cluster, four applications behind one HTTP proxy.
ray_url() { echo "http://127.0.0.1:18510"; }
if [[ " $peers " == *" ray "* ]]; then
  (cd bench/peers && exec "../../$venv/bin/python" ray_serve.py 18510 --quiet --max-ongoing=100 >"$tmp/ray.log" 2>&1) & pids+=($!)
  # The proxy answers before the applications are up; ready is when the last one answers.
  wait_ready "$(ray_url)/-/healthz" 1500
  for _ in $(seq 1500); do grep -q '^ray serve: ready' "$tmp/ray.log" && break; sleep 0.2; done
  grep -q '^ray serve: ready' "$tmp/ray.log" || { echo "peers: Ray Serve never became ready" >&2; cat "$tmp/ray.log" >&2; exit 1; }
  measure ray ray_url graph
  stop_all
fi

versions="braid commit $(git rev-parse --short HEAD)"
for p in $peers; do
  case $p in
    bentoml) versions+=", BentoML $("$venv/bin/python" -c 'import bentoml; print(bentoml.__version__)')" ;;
    ray) versions+=", Ray $("$venv/bin/python" -c 'import ray; print(ray.__version__)')" ;;
  esac
done
versions+=", torch $("$venv/bin/python" -c 'import torch; print(torch.__version__)')"
machine="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) CPUs"
python3 bench/peers/report.py "$tmp" "$machine" "$versions" "$duration" braid $peers | tee bench/peers/results.md
