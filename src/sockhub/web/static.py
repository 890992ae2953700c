"""The page's files, read from the package once at start-up and served from memory.

Each file is kept as it is and, when that is smaller, gzipped; both carry a strong ETag
(the gzip variant its own), so a browser revalidates with ``If-None-Match`` and gets a
304 with no body. ``Cache-Control: no-cache`` makes it revalidate every time: with no
build step there are no hashed file names, and a stale module after an upgrade would
be worse than one small request per file.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable

__all__ = ["Asset", "load_assets"]

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".ico": "image/x-icon",
    ".txt": "text/plain; charset=utf-8",
    ".wasm": "application/wasm",  # what WebAssembly.compileStreaming asks for
}


@dataclass(frozen=True, slots=True)
class Asset:
    content_type: str
    body: bytes
    etag: str
    gzipped: bytes | None
    """The gzip encoding, when it is smaller than the file."""
    gzip_etag: str


def _asset(name: str, data: bytes) -> Asset:
    suffix = name[name.rfind(".") :]
    tag = hashlib.sha256(data).hexdigest()[:20]
    packed = gzip.compress(data, compresslevel=9, mtime=0)
    return Asset(
        content_type=_TYPES.get(suffix, "application/octet-stream"),
        body=data,
        etag=f'"{tag}"',
        gzipped=packed if len(packed) < len(data) else None,
        gzip_etag=f'"{tag}-gz"',
    )


def _walk(folder: Traversable, prefix: str) -> dict[str, Asset]:
    out: dict[str, Asset] = {}
    for entry in folder.iterdir():
        if entry.name.startswith(".") or entry.name == "__pycache__":
            continue
        if entry.is_dir():
            out.update(_walk(entry, f"{prefix}{entry.name}/"))
        else:
            out[f"{prefix}{entry.name}"] = _asset(entry.name, entry.read_bytes())
    return out


def load_assets() -> dict[str, Asset]:
    """Every file of the page by its URL path (``/`` is ``index.html``)."""
    assets = _walk(resources.files(__package__).joinpath("static"), "/")
    assets["/"] = assets["/index.html"]
    return assets
