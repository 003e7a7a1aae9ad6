#!/usr/bin/env bash
# On a machine with a CUDA GPU, a pip-installed PyTorch, nvcc, meson and ninja, in one call:
# builds braid against that PyTorch's LibTorch (CUDA) with the header-only dependencies that
# scripts/gpu-deps.sh fetched (DIR, carried here), runs the `gpu` suite, the GPU benchmarks (the
# engine's device path: braid-gpu-bench, with completion by stream callback, by polling events,
# and on one stream; the kernels against LibTorch), then the CPU suites and the engine benchmark.
# Exits 0 only when every step passed. scripts/gpu-rehearse.sh rehearses it without a GPU.
# Prints everything; writes the suites' and benchmarks' output to $OUT (or ./gpu-out), at most
# 8 files (what the device tool brings back): a step that names a file another step wrote adds to it.
#
#   scripts/gpu-check.sh [DIR]        DIR: the .deb files (default .gpu-deps)
set -euo pipefail
cd "$(dirname "$0")/.."
debs=${1:-.gpu-deps}
out=${OUT:-gpu-out}
mkdir -p "$out"
prefix=$(mktemp -d)
for f in "$debs"/*.deb; do dpkg -x "$f" "$prefix"; done

torch=$(python3 -c 'import torch, os; print(os.path.dirname(torch.__file__))')
abi=$(python3 -c 'import torch; print("on" if torch.compiled_with_cxx11_abi() else "off")')
echo "gpu-check: torch $(python3 -c 'import torch; print(torch.__version__, torch.version.cuda)') at $torch (cxx11 abi $abi)"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
export PATH=/usr/local/cuda/bin:$PATH

# The aoti suite's AOTInductor packages: for CUDA where a device is (the CPU ones are proven
# without one), else for the CPU (scripts/gpu-rehearse.sh). Compiled in a step of their own after
# the GPU figures (Inductor compiling for CUDA is the one part of this build that needs Triton):
# the build proper compiles none.
aoti=cpu
python3 -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' && aoti=cuda

build=build-gpu
if [ ! -f "$build/build.ninja" ]; then
  meson setup "$build" --buildtype=release -Dtorch_dir="$torch" -Dtorch_cuda=enabled -Dcuda=enabled \
    -Ddeps_prefix="$prefix" -Dcxx11_abi="$abi" -Dgpu_archs=90 -Daoti_devices=
else
  meson configure "$build" -Ddeps_prefix="$prefix" >/dev/null
fi
ninja -C "$build" -j "$(nproc)"

export LD_LIBRARY_PATH="$torch/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
# What needs the GPU first, most telling first, so that a call cut short still brought back the
# figures; each step bounded, so that a hang (a completion that never comes) costs minutes, not
# the whole call. The CPU suites (against this LibTorch too) and the CPU engine benchmark last.
# $OUT/phases.txt: each step's exit status and seconds.
status=0
# The whole call ends by GPU_CHECK_BUDGET seconds (default 580: the device tool stops a call at
# 600 s, and what is under $OUT comes back only from a call that ended): each step gets the
# smaller of its own limit and what is left, and a step with under 10 s left is skipped, noted
# in phases.txt, and fails the check.
budget=${GPU_CHECK_BUDGET:-580}
step() {  # step NAME SECONDS OUTFILE COMMAND...
  local name=$1 limit=$2 file=$3 t0=$SECONDS rc=0
  shift 3
  local left=$((budget - SECONDS - 15))
  if [ "$left" -lt 10 ]; then
    echo "gpu-check: $name skipped: no time left of ${budget}s" >&2
    echo "$name: skipped, no time left" >>"$out/phases.txt"
    status=1
    return
  fi
  [ "$left" -lt "$limit" ] && limit=$left
  echo "gpu-check: $name (at most ${limit}s)" >&2
  set +e
  timeout --kill-after=10 "$limit" "$@" 2>&1 | tee -a "$out/$file"
  rc=${PIPESTATUS[0]}
  set -e
  [ "$rc" -eq 124 ] && echo "gpu-check: $name ran past ${limit}s and was stopped" >&2
  [ "$rc" -ne 0 ] && status=1
  echo "$name: exit $rc, $((SECONDS - t0)) s" >>"$out/phases.txt"
}
echo "build: $SECONDS s in all" >"$out/phases.txt"
# The kernels against their CPU references, the engine's device path against the same models on
# the CPU (meson's per-test timeout of 600 s scaled to 180 s), one test at a time (a GPU in
# exclusive-process mode takes one process). The limits are for hangs (they add up to more than
# the budget; a run that passes takes a few minutes in all).
step "gpu suite" 200 gpu-suite.txt meson test -C "$build" --suite gpu --verbose --no-rebuild --timeout-multiplier 0.3 \
  --num-processes 1
if [ -x "$build/bench/braid-gpu-bench" ]; then
  step "braid-gpu-bench" 90 gpu-bench.md "$build/bench/braid-gpu-bench"
fi
if [ -x "$build/bench/braid-kernels-bench" ]; then
  step "braid-kernels-bench" 90 kernels-bench.md "$build/bench/braid-kernels-bench"
fi
# Continuous batching on the device: the generation example with its decoder placed on cuda,
# its streams stepped together against each stream stepped alone, at 64 clients.
sed 's/ on cpu/ on cuda/' graphs/generation.graph >"$build/generation-cuda.graph"
for ep in words words_unbatched; do
  step "braid-bench generation on cuda: $ep" 30 gpu-bench-variants.md "$build/bench/braid-bench" \
    "$build/generation-cuda.graph" "$ep" -c 64 -d 5s -w 1s
done
if [ -x "$build/bench/braid-gpu-bench" ]; then
  step "braid-gpu-bench --completion poll" 60 gpu-bench-variants.md "$build/bench/braid-gpu-bench" --completion poll
  step "braid-gpu-bench --streams 1" 60 gpu-bench-variants.md "$build/bench/braid-gpu-bench" --streams 1
fi
# AOTInductor packages on the device: compiled, the aoti suite against eager PyTorch, then one
# MLP through the torch backend's two formats (bench/aoti.graph): the package against the same
# weights traced to TorchScript, a row and 64 rows.
step "aoti suite ($aoti)" 240 aoti.txt bash -c "meson configure '$build' -Daoti_devices=$aoti >/dev/null &&
  ninja -C '$build' && meson test -C '$build' --suite aoti --print-errorlogs --no-rebuild"
if [ -f "$build/tests/aoti/mlp.$aoti.pt2" ]; then
  sed "s/\.cpu\.\(pt2\|ts\.pt\)\" on cpu/.$aoti.\1\" on $aoti/" bench/aoti.graph >"$build/aoti-$aoti.graph"
  rows64=$(python3 -c 'import json; print(json.dumps({"x": [[(i * 8 + j) / 100 for j in range(8)] for i in range(64)]}))')
  for ep in aoti torchscript; do
    for x in '{"x": [[1,2,3,4,5,6,7,8]]}' "$rows64"; do
      step "aoti bench $ep" 30 aoti.txt "$build/bench/braid-bench" "$build/aoti-$aoti.graph" "$ep" \
        --model-path "$build/tests/aoti" -i "$x" -d 5s
    done
  done
fi
step "CPU suites" 150 cpu-suites.txt meson test -C "$build" --print-errorlogs --no-rebuild --no-suite gpu
step "braid-engine-bench" 60 engine-bench.md "$build/bench/braid-engine-bench"
cat "$out/phases.txt"
exit $status
