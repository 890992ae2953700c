#!/bin/sh
# Build the page's WebAssembly from its source with wat2wasm (Debian's wabt):
#   src/sockhub/web/sha256.wat -> src/sockhub/web/static/js/sha256.wasm
# The built file is committed, so `make serve` needs no tool; tests/test_web_wasm.py
# checks that the committed file is what this script builds.
#   scripts/build-wasm.sh          build into a temporary file and compare
#   scripts/build-wasm.sh --write  also replace the committed file
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
src="$here/src/sockhub/web/sha256.wat"
out="$here/src/sockhub/web/static/js/sha256.wasm"
command -v wat2wasm >/dev/null || { echo "wat2wasm not found: install Debian's wabt (make sysdeps)" >&2; exit 1; }
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
wat2wasm "$src" -o "$tmp"
if [ "${1:-}" = --write ]; then
    cp "$tmp" "$out"
    echo "wrote $out"
elif cmp -s "$tmp" "$out"; then
    echo "$out is what $src builds"
else
    echo "$out differs from what $src builds: run scripts/build-wasm.sh --write" >&2
    exit 1
fi
