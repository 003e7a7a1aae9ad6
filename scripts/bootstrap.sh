#!/usr/bin/env bash
# Installs the Debian packages braid builds with, when some are missing. Idempotent: prints
# nothing and touches nothing when everything is already there. Runs apt-get as root, or
# through sudo when not root.
#
#   scripts/bootstrap.sh           what building and serving need
#   scripts/bootstrap.sh --tests   and what the tests need besides, from PyPI into .test-venv:
#                                  Triton's own Python client (tritonclient), for the
#                                  kserve-client test, and OpenAPI's validators
#                                  (openapi-spec-validator), for the openapi-client test. Best
#                                  effort: without them (no PyPI), those tests report
#                                  themselves skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
tests=false
for a in "$@"; do
  case $a in
    --tests) tests=true ;;
    *) echo "bootstrap: unknown argument \`$a\` (usage: scripts/bootstrap.sh [--tests])" >&2; exit 2 ;;
  esac
done

pkgs=(
  build-essential pkg-config meson ninja-build ccache
  libboost1.81-dev libboost-json1.81-dev
  libtorch-dev libtomlplusplus-dev libfmt-dev doctest-dev libcli11-dev
  python3 python3-venv graphviz
  # Debian's LibTorch calls whichever libblas.so.3 the system provides; without this package that
  # is the reference BLAS, whose matrix products run 10x slower than OpenBLAS's on the same cores
  # (docs/benchmarks.md, "CPU models and the BLAS"). The OpenMP build, as LibTorch uses libgomp:
  # braid's one intra-op thread per call (at::set_num_threads(1)) holds for it as it is; the
  # pthread build, where an admin chose it, is told so at run time (engine/backends/blas.hpp).
  libopenblas0-openmp
)

missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "bootstrap: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
    sudo=(sudo)
  fi
  echo "bootstrap: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -q >/dev/null
  "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

venv=.test-venv
if $tests && ! "$venv/bin/python3" -c 'import numpy, tritonclient.http, openapi_spec_validator' 2>/dev/null; then
  echo "bootstrap: installing tritonclient[http] and openapi-spec-validator into $venv (for the kserve-client and openapi-client tests)" >&2
  # --clear: a venv left half made (a failed install, another Python) starts again.
  if ! { python3 -m venv --clear "$venv" &&
         "$venv/bin/pip" install -q --disable-pip-version-check --timeout 15 --retries 1 'tritonclient[http]' numpy openapi-spec-validator; } \
       >"$venv.log" 2>&1; then
    echo "bootstrap: could not install the test clients (see $venv.log); the kserve-client and openapi-client tests will be skipped" >&2
  fi
fi
