#!/usr/bin/env bash
# On a machine with a CUDA GPU, a pip-installed PyTorch, nvcc, meson and ninja, in one call:
# builds braid against that PyTorch's LibTorch (CUDA) with the header-only dependencies that
# scripts/gpu-deps.sh fetched (DIR, carried here), runs the unit tests and the `gpu` suite, then
# the GPU benchmarks (kernels against LibTorch; the engine's device path: braid-gpu-bench, with
# completion by stream callback and by polling events, and on one stream).
# Prints everything; writes the suite and benchmark output to $OUT (or ./gpu-out).
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

build=build-gpu
if [ ! -f "$build/build.ninja" ]; then
  meson setup "$build" --buildtype=release -Dtorch_dir="$torch" -Dtorch_cuda=enabled -Dcuda=enabled \
    -Ddeps_prefix="$prefix" -Dcxx11_abi="$abi" -Dgpu_archs=90
else
  meson configure "$build" -Ddeps_prefix="$prefix" >/dev/null
fi
ninja -C "$build" -j "$(nproc)"

export LD_LIBRARY_PATH="$torch/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
status=0
# The CPU suites (against this LibTorch too), then the gpu suite verbosely: the kernels
# against their CPU references, the engine's device path against the same models on the CPU.
meson test -C "$build" --print-errorlogs --no-rebuild --no-suite gpu || status=1
meson test -C "$build" --suite gpu --verbose --no-rebuild 2>&1 | tee "$out/gpu-suite.txt" || status=1
if [ -x "$build/bench/braid-kernels-bench" ]; then
  "$build/bench/braid-kernels-bench" | tee "$out/kernels-bench.md" || status=1
fi
if [ -x "$build/bench/braid-gpu-bench" ]; then
  "$build/bench/braid-gpu-bench" | tee "$out/gpu-bench.md" || status=1
  "$build/bench/braid-gpu-bench" --completion poll | tee "$out/gpu-bench-poll.md" || status=1
  "$build/bench/braid-gpu-bench" --streams 1 | tee "$out/gpu-bench-1-stream.md" || status=1
fi
"$build/bench/braid-engine-bench" | tee "$out/engine-bench.md" || status=1
exit $status
