#!/bin/sh
# Install the standard tools the tests and benchmarks use, when they are missing.
# Debian packages: redis-server, rdate, netcat-openbsd (nc), socat, tmux, chromium, bubblewrap,
# wabt (wat2wasm: the check that the page's committed WebAssembly is built from its source).
set -eu
missing=""
need() { command -v "$1" >/dev/null 2>&1 || missing="$missing $2"; }
need redis-server redis-server
need rdate rdate
need nc netcat-openbsd
need socat socat
need tmux tmux
need chromium chromium
need bwrap bubblewrap
need wat2wasm wabt
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "sysdeps: please install:$missing (tests that use them will fail)" >&2
    exit 0
fi
echo "sysdeps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
# shellcheck disable=SC2086
apt-get install -y -qq $missing >/dev/null
