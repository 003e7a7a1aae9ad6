#!/usr/bin/env bash
# What a map costs in memory per item: `braid run` of bench/graphs/map_memory.graph (a map whose
# body is one `len`) over lists of N empty lists, N = 1 and each of the sizes given, unlimited
# and `concurrent(64)`; peak RSS (GNU time's %M) less the run over one item, divided by N.
# Prints a markdown table.
#
#   bench/map_memory.sh [BUILD_DIR] [N...]      (default: build-bench, 200000 600000)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-bench}
shift || true
sizes=("${@:-200000 600000}")
[ -f "$build/build.ninja" ] || meson setup "$build" --buildtype=release >/dev/null
ninja -C "$build" engine/cli/braid >/dev/null
command -v /usr/bin/time >/dev/null || { echo "map_memory.sh: needs GNU time (apt-get install time)" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
rss() {  # peak RSS in KiB of `braid run` of endpoint $1 on input file $2
  /usr/bin/time -f "%M" -o "$tmp/rss" "$build/engine/cli/braid" run bench/graphs/map_memory.graph "$1" -i "@$2" \
    --threads 2 >/dev/null
  cat "$tmp/rss"
}
echo '{"xs": [[]]}' >"$tmp/one.json"
echo "| endpoint | items | body (bytes) | peak RSS (MiB) | over one item (MiB) | per item (bytes) |"
echo "|---|---:|---:|---:|---:|---:|"
for ep in unlimited capped; do
  base=$(rss "$ep" "$tmp/one.json")
  for n in ${sizes[@]}; do
    python3 -c "import json,sys; json.dump({'xs': [[] for _ in range(int(sys.argv[1]))]}, open(sys.argv[2], 'w'))" "$n" "$tmp/in.json"
    peak=$(rss "$ep" "$tmp/in.json")
    python3 -c "import sys; ep,n,size,base,peak=sys.argv[1],int(sys.argv[2]),int(sys.argv[3]),int(sys.argv[4]),int(sys.argv[5])
print(f'| {ep} | {n} | {size} | {peak/1024:.0f} | {(peak-base)/1024:.0f} | {(peak-base)*1024/n:.0f} |')" \
      "$ep" "$n" "$(stat -c %s "$tmp/in.json")" "$base" "$peak"
  done
done
