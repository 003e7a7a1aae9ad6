#!/usr/bin/env bash
# Writes docs/diagnostics.md: the real output of `braid check` on every failure case in
# tests/dsl/fail/. Run after adding cases:  scripts/diagnostics-gallery.sh [build-dir]
set -euo pipefail
cd "$(dirname "$0")/.."
braid=${1:-build}/engine/cli/braid
out=docs/diagnostics.md
{
  cat <<'HEAD'
# Diagnostics gallery

Real output of `braid check` on the failure cases in `tests/dsl/fail/` (each case file also
carries its expected diagnostics inline, checked by the `dsl-fail` test). Regenerate with
`scripts/diagnostics-gallery.sh`. The format is the one compilers use, so editors and CI
annotators parse it: `path:line:col: severity: message`, the source line, a caret under the
offending text, then notes. Messages are lower case, name things in backticks, and say
"expected X, found Y" for syntax errors; a close match is offered as "did you mean".

HEAD
  for f in tests/dsl/fail/*.graph; do
    title=$(head -n 1 "$f" | sed -e 's/^#[[:space:]]*//')
    echo "## $(basename "$f" .graph)"
    echo
    echo "$title"
    echo
    echo '```'
    flags=()
    grep -q '^# RUN: require-models' "$f" && flags+=(--require-models)
    "$braid" check --color never "${flags[@]}" "$f" 2>&1 || true
    echo '```'
    echo
  done
} >"$out"
echo "wrote $out"
