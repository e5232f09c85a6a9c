#!/usr/bin/env bash
# Time `make serve`'s install step on a fresh clone (new venv, nothing cached in it), as a new user sees it.
#   bash benchmarks/install_time.sh            # clones HEAD into a temp dir, times `make install-serve`
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
git clone --quiet "$repo" "$work/llmserve"
cd "$work/llmserve"
export PIP_CACHE_DIR="$work/pip-cache"  # an empty cache, as on a new machine
SECONDS=0
make --no-print-directory install-serve >/dev/null
echo "make install-serve on a fresh clone: ${SECONDS} s" \
  "(venv $(du -sm .venv | cut -f1) MB, $(nproc) cores, $(uname -m))"
