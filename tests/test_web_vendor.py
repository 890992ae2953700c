"""The vendored terminal library is the published one with the one change that
scripts/vendor-xterm.sh makes (24-bit colours through the CSSOM), licensed, and served as
JavaScript modules (the script re-fetches it, patches it and checks the same sums)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from sockhub.web.static import load_assets

VENDOR = Path(__file__).resolve().parent.parent / "src" / "sockhub" / "web" / "static" / "vendor"


def test_vendored_files_match_their_sha256sums() -> None:
    sums = {}
    for line in (VENDOR / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split("  ", 1)
        sums[name] = digest
    on_disk = {
        str(f.relative_to(VENDOR))
        for f in VENDOR.rglob("*")
        if f.is_file() and f.name != "SHA256SUMS"
    }
    assert on_disk == set(sums)  # nothing unlisted, nothing missing
    for name, digest in sums.items():
        assert hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() == digest, name
    for license_file in ("LICENSE.txt", "LICENSE-addon-fit.txt"):  # MIT, both
        assert "Permission is hereby granted" in (VENDOR / "xterm" / license_file).read_text()


def test_the_modules_are_served_as_javascript() -> None:
    assets = load_assets()
    for path in ("/vendor/xterm/xterm.mjs", "/vendor/xterm/addon-fit.mjs", "/js/term.js"):
        assert assets[path].content_type == "text/javascript; charset=utf-8"
    assert assets["/vendor/xterm/xterm.css"].content_type == "text/css; charset=utf-8"
