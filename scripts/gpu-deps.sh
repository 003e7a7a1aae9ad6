#!/usr/bin/env bash
# Run HERE (a machine with Debian's package registry) before scripts/gpu-check.sh runs on the
# GPU machine (which has none): downloads the Debian packages of braid's header-only build
# dependencies into DIR (default .gpu-deps, ignored by git), to be carried to the GPU machine.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-.gpu-deps}
../shared/gpu/fetch-deps.sh "$dir" >/dev/null
# Also CLI11 (braid's command lines), which the shared script does not fetch.
(cd "$dir" && { apt-get download libcli11-dev 2>/dev/null || { apt-get update -q >/dev/null && apt-get download libcli11-dev; }; }) >/dev/null
ls "$dir"/*.deb
