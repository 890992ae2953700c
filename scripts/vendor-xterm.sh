#!/bin/sh
# Re-fetch the page's terminal library (xterm.js and its fit addon) at the pinned versions
# from the npm registry, apply the one documented change below, and check every vendored
# file against vendor/SHA256SUMS.
# The files are committed, so `make serve` needs neither npm nor a network; this script is
# how they were obtained and how anyone can confirm they are the published ones.
#   scripts/vendor-xterm.sh          fetch into a temporary folder, compare, report
#   scripts/vendor-xterm.sh --write  also copy them into src/sockhub/web/static/vendor/
set -eu
XTERM=6.0.0
FIT=0.11.0
here=$(cd "$(dirname "$0")/.." && pwd)
vendor="$here/src/sockhub/web/static/vendor"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
npm pack --silent "@xterm/xterm@$XTERM" "@xterm/addon-fit@$FIT" >/dev/null
mkdir -p out/xterm xterm fit
tar xzf "xterm-xterm-$XTERM.tgz" -C xterm
tar xzf "xterm-addon-fit-$FIT.tgz" -C fit
cp xterm/package/lib/xterm.mjs xterm/package/css/xterm.css out/xterm/
# One change to the published xterm.mjs: the DOM renderer gives a 24-bit colour cell its
# colour with setAttribute("style", ...), which the page's Content-Security-Policy refuses
# (no inline style attributes); the same declarations added through the CSSOM
# (element.style.cssText) are not governed by the policy. The edit must match once.
upstream='_addStyle(t,e){t.setAttribute("style",`${t.getAttribute("style")||""}${e};`)}'
patched='_addStyle(t,e){t.style.cssText+=`${e};`}'
[ "$(grep -cF "$upstream" out/xterm/xterm.mjs)" = 1 ] || { echo "xterm.mjs: the _addStyle to patch was not found once" >&2; exit 1; }
UPSTREAM="$upstream" PATCHED="$patched" python3 -c '
import os, pathlib
p = pathlib.Path("out/xterm/xterm.mjs")
p.write_text(p.read_text().replace(os.environ["UPSTREAM"], os.environ["PATCHED"]))
'
cp xterm/package/LICENSE out/xterm/LICENSE.txt
cp fit/package/lib/addon-fit.mjs out/xterm/
cp fit/package/LICENSE out/xterm/LICENSE-addon-fit.txt
if [ "${1:-}" = "--write" ]; then
    rm -rf "$vendor/xterm"
    cp -r out/xterm "$vendor/xterm"
fi
cd out
sha256sum -c "$vendor/SHA256SUMS"
