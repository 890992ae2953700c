#!/bin/sh
# Re-fetch the page's terminal library (xterm.js and its fit addon) at the pinned versions
# from the npm registry and check every vendored file against vendor/SHA256SUMS.
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
cp xterm/package/LICENSE out/xterm/LICENSE.txt
cp fit/package/lib/addon-fit.mjs out/xterm/
cp fit/package/LICENSE out/xterm/LICENSE-addon-fit.txt
if [ "${1:-}" = "--write" ]; then
    rm -rf "$vendor/xterm"
    cp -r out/xterm "$vendor/xterm"
fi
cd out
sha256sum -c "$vendor/SHA256SUMS"
