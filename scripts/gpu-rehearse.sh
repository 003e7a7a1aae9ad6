#!/usr/bin/env bash
# A rehearsal of scripts/gpu-check.sh HERE, without a GPU, on a machine as bare as the GPU
# machine: a Debian root (debootstrap) with a compiler, python3 and a pip PyTorch with meson and
# ninja (as the GPU machine has them), the CUDA toolkit bound in from /usr/local/cuda, and none
# of braid's Debian build dependencies: the build must take them from the .deb files that
# scripts/gpu-deps.sh fetched, as it does there. It copies the working tree as the device tool
# does (tracked and untracked files git does not ignore, plus .gpu-deps), runs gpu-check.sh in
# that root, and passes when everything that needs no GPU did: the build against the pip
# LibTorch (CUDA), the CPU suites, the gpu suite reporting itself skipped, each GPU benchmark
# saying there is no CUDA device, and the engine benchmark. A device start costs minutes of a
# small budget: rehearse after changing anything gpu-check.sh builds or runs.
#
#   scripts/gpu-rehearse.sh [ROOT]    ROOT: the Debian root (default .gpu-rehearse, ignored by git;
#                                     made on the first run, a few minutes and ~5 GB)
# Needs root (debootstrap, chroot, bind mounts), Debian's package registry and PyPI.
# Environment: TORCH_VERSION (default 2.11.0, the GPU machine's).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
root=$(realpath -m "${1:-.gpu-rehearse}")
torch_version=${TORCH_VERSION:-2.11.0}
[ "$(id -u)" -eq 0 ] || { echo "gpu-rehearse: needs root (debootstrap, chroot, mounts)" >&2; exit 1; }
[ -x /usr/local/cuda/bin/nvcc ] || { echo "gpu-rehearse: needs the CUDA toolkit at /usr/local/cuda" >&2; exit 1; }
ls .gpu-deps/*.deb >/dev/null 2>&1 || scripts/gpu-deps.sh >/dev/null

if [ ! -x "$root/opt/torch/.venv/bin/python3" ]; then
  command -v debootstrap >/dev/null || apt-get install -y -q debootstrap >/dev/null
  echo "gpu-rehearse: making a Debian root at $root" >&2
  debootstrap --variant=minbase --include=g++,python3,python3-venv,ca-certificates bookworm "$root" \
    http://deb.debian.org/debian >"$root.log" 2>&1 || { tail -20 "$root.log" >&2; exit 1; }
  cp /etc/resolv.conf "$root/etc/"
  # This machine's certificate bundle: PyPI may be reached through a proxy that this one trusts.
  cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
  chroot "$root" bash -c "python3 -m venv /opt/torch/.venv && PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    /opt/torch/.venv/bin/pip install -q torch==$torch_version meson ninja"
fi

mounts=()
cleanup() {
  for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do umount -l "${mounts[i]}" 2>/dev/null || true; done
}
trap cleanup EXIT
mkdir -p "$root/usr/local/cuda" "$root/proc"
mount --bind /usr/local/cuda "$root/usr/local/cuda" && mounts+=("$root/usr/local/cuda")
mount -t proc proc "$root/proc" && mounts+=("$root/proc")
mount --rbind /dev "$root/dev" && mounts+=("$root/dev")

# The tree as the device tool sends it.
tree=$root/work/braid
rm -rf "$tree" "$root/work/out"
mkdir -p "$tree" "$root/work/out"
(git ls-files -co --exclude-standard; ls .gpu-deps/*.deb) | tar cf - -T - | tar xf - -C "$tree"

log=$repo/build/gpu-rehearse.log
mkdir -p "$(dirname "$log")"
echo "gpu-rehearse: running scripts/gpu-check.sh in $root (log: $log)" >&2
set +e
# The build here (2 cores) takes longer than the device's whole call: a larger budget.
chroot "$root" env -i HOME=/root PATH=/opt/torch/.venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  OUT=/work/out GPU_CHECK_BUDGET=3600 bash -c 'cd /work/braid && scripts/gpu-check.sh' >"$log" 2>&1
rc=$?
set -e

# Without a GPU, gpu-check.sh fails (the GPU benchmarks have no device); all else must pass.
fail=0
expect() {  # expect DESCRIPTION COMMAND...
  if "${@:2}"; then echo "  ok    $1"; else echo "  FAIL  $1"; fail=1; fi
}
out=$root/work/out
echo "gpu-rehearse: gpu-check.sh exited $rc (expected 1 without a GPU)"
expect "gpu-check.sh exits 1, not crashed or stopped early" test "$rc" -eq 1
expect "the build against torch $torch_version (CUDA) finished" test -x "$tree/build-gpu/bench/braid-gpu-bench"
passed() {  # passed FILE: meson's summary there says some passed, none failed
  grep -E '^Ok: ' "$1" | grep -Eqv ' 0 *$' && grep -Eq '^Fail: +0 *$' "$1"
}
expect "the CPU suites pass" passed "$out/cpu-suites.txt"
expect "the gpu suite reports itself skipped, twice" test "$(grep -c 'SKIP .*exit status 77' "$out/gpu-suite.txt")" -eq 2
expect "the gpu suite has no failure" grep -Eq '^Fail: +0' "$out/gpu-suite.txt"
expect "braid-kernels-bench says there is no CUDA device" grep -q 'braid-kernels-bench: no CUDA device' "$log"
expect "braid-gpu-bench says so for each of its three runs" test "$(grep -c 'braid-gpu-bench: no CUDA device' "$log")" -eq 3
expect "braid-engine-bench printed its tables" grep -q 'ratio concurrent / sequential' "$out/engine-bench.md"
expect "the aoti suite passes on packages compiled for the CPU" passed "$out/aoti.txt"
expect "the aoti bench ran each endpoint on both inputs" test "$(grep -c '^| concurrent ' "$out/aoti.txt")" -eq 4
expect "each of the 14 steps reported its status and time" test "$(grep -c ': exit [0-9]*, [0-9]* s$' "$out/phases.txt")" -eq 14
expect "braid-bench says the generation graph on cuda needs a device" \
  test "$(grep -c 'needs a CUDA device' "$out/gpu-bench-variants.md")" -ge 2
expect "no step ran past its limit" bash -c "! grep -q 'ran past' '$log'"
expect "nothing aborted" bash -c "! grep -Eq 'Aborted|terminate called|Segmentation' '$log'"
exit $fail
