#!/usr/bin/env bash
# Configures (once) and builds braid into build/ (or $BRAID_BUILD_DIR). Extra arguments go to
# `meson setup` on the first configure.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BRAID_BUILD_DIR:-build}
if [ ! -f "$build/build.ninja" ]; then
  meson setup "$build" --buildtype=release "$@" >/dev/null
fi
jobs=${BRAID_JOBS:-$(nproc)}
ninja -C "$build" -j "$jobs"
