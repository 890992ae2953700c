"""The path rules of PROTOCOL.md section 7, sans-IO: which names may cross the wire.

Both ends need them: the server refuses a bad path before it touches the disk, and a
client refuses a name received from the server (a listing walked by ``get -r``) before
joining it onto a local folder, so no name can climb out of where it is written.
"""

from __future__ import annotations

import unicodedata

from .errors import FileBadPath

__all__ = ["MAX_PATH_BYTES", "MAX_SEGMENT_BYTES", "check_name", "check_path", "join_path"]

MAX_PATH_BYTES = 1024
MAX_SEGMENT_BYTES = 255


def _encoded(text: str, what: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate from a JSON \ud800 escape
        raise FileBadPath(f"{what} is not valid Unicode") from exc


def check_name(name: str) -> str:
    """One path segment: not empty, not ``.``/``..``, no ``/``, backslash or control character."""
    if not isinstance(name, str):
        raise FileBadPath("a path segment must be a string")
    if name in ("", ".", ".."):
        raise FileBadPath(f"path segment {name!r} is not allowed")
    if "/" in name or "\\" in name:
        raise FileBadPath("a path segment may not hold '/' or a backslash")
    for ch in name:
        if unicodedata.category(ch) == "Cc":
            raise FileBadPath(f"path has control character U+{ord(ch):04X}")
    if len(_encoded(name, "path segment")) > MAX_SEGMENT_BYTES:
        raise FileBadPath(f"a path segment is longer than {MAX_SEGMENT_BYTES} bytes")
    return name


def check_path(path: object, *, root_ok: bool = False) -> tuple[str, ...]:
    """The segments of a valid relative path; ``""`` (the root itself) only when ``root_ok``."""
    if not isinstance(path, str):
        raise FileBadPath("field 'path' must be a string")
    if path == "":
        if root_ok:
            return ()
        raise FileBadPath("the path is empty: name a file")
    if len(_encoded(path, "path")) > MAX_PATH_BYTES:
        raise FileBadPath(f"path is longer than {MAX_PATH_BYTES} bytes")
    if path.startswith("/"):
        raise FileBadPath("path must be relative (no leading '/')")
    if "\\" in path:
        raise FileBadPath("path may not hold a backslash; segments are joined by '/'")
    return tuple(check_name(segment) for segment in path.split("/"))


def join_path(*parts: str) -> str:
    """Remote paths joined by ``/``, empty parts (the root) left out."""
    return "/".join(p.strip("/") for p in parts if p.strip("/"))
