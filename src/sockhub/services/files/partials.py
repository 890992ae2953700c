"""The partial-upload area: a folder beside the files root, never inside it.

Each interrupted upload leaves ``<key>.part`` (the bytes received so far, in order) and
``<key>.json`` (which path, which total, which sha256 was announced). The key is derived
from path and total, so a re-put of the same path and size finds its partial and
resumes. Partials older than the configured age are removed by ``sweep``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["RESUME_FROM", "Partial", "Partials"]

_MODE = 0o644
RESUME_FROM = 64 * 1024
"""Uploads at least this big are described beside their partial, so they can resume."""


@dataclass(slots=True)
class Partial:
    """An open partial file: its fd (owned by the caller) and how many bytes it holds."""

    key: str
    fd: int
    offset: int


class Partials:
    """The folder of partial files, held open as a directory fd."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        os.chmod(folder, 0o700)
        self.folder = folder
        self.fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)

    def close(self) -> None:
        os.close(self.fd)

    @staticmethod
    def key(path: str, total: int) -> str:
        return hashlib.sha256(f"{path}\0{total}".encode()).hexdigest()[:40]

    def open(self, path: str, total: int, sha256: str | None) -> Partial:
        """The partial for this path and total, created empty if there is none.

        A partial announced with another sha256 than this put's is started again, and so
        is any upload under ``RESUME_FROM`` bytes: for a small file, describing the
        partial for a resume would cost more than sending it again.
        """
        key = self.key(path, total)
        flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
        if total < RESUME_FROM:
            return Partial(
                key, os.open(f"{key}.part", flags | os.O_TRUNC, _MODE, dir_fd=self.fd), 0
            )
        meta = self._meta(key)
        fd = os.open(f"{key}.part", flags, _MODE, dir_fd=self.fd)
        try:
            held = os.fstat(fd).st_size
            announced = meta.get("sha256") if meta is not None else None
            stale = (
                meta is None
                or meta.get("path") != path
                or meta.get("total") != total
                or held > total
                or (sha256 is not None and announced not in (None, sha256))
            )
            if stale:
                os.ftruncate(fd, 0)
                held = 0
            if stale or (sha256 is not None and announced is None):
                self._write_meta(key, {"path": path, "total": total, "sha256": sha256})
        except BaseException:
            os.close(fd)
            raise
        return Partial(key, fd, held)

    def _meta(self, key: str) -> dict[str, object] | None:
        try:
            fd = os.open(f"{key}.json", os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self.fd)
        except FileNotFoundError:
            return None
        with os.fdopen(fd, "rb") as fh:
            try:
                meta = json.loads(fh.read(1 << 16))
            except ValueError:
                return None
        return meta if isinstance(meta, dict) else None

    def _write_meta(self, key: str, meta: dict[str, object]) -> None:
        tmp = f"{key}.json.tmp"
        fd = os.open(
            tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600, dir_fd=self.fd
        )
        with os.fdopen(fd, "wb") as fh:
            fh.write(json.dumps(meta).encode())
        os.rename(tmp, f"{key}.json", src_dir_fd=self.fd, dst_dir_fd=self.fd)

    def remove(self, key: str) -> None:
        for name in (f"{key}.part", f"{key}.json"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name, dir_fd=self.fd)

    def forget_meta(self, key: str) -> None:
        """After the partial was renamed into place only its description is left."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{key}.json", dir_fd=self.fd)

    def sizes(self) -> dict[str, int]:
        """Bytes held by each partial, for the quota."""
        out: dict[str, int] = {}
        with os.scandir(self.fd) as entries:
            for entry in entries:
                if entry.name.endswith(".part"):
                    with contextlib.suppress(OSError):
                        out[entry.name[:-5]] = entry.stat(follow_symlinks=False).st_size
        return out

    def sweep(self, max_age: float, busy: Iterable[str]) -> list[str]:
        """Remove partials untouched for ``max_age`` seconds (and leftovers); their keys."""
        keep = set(busy)
        cutoff = time.time() - max_age
        removed = []
        with os.scandir(self.fd) as entries:
            names = {entry.name: entry for entry in entries}
        for name, entry in names.items():
            key = name.split(".", 1)[0]
            if key in keep:
                continue
            try:
                old = entry.stat(follow_symlinks=False).st_mtime < cutoff
            except FileNotFoundError:
                continue
            orphan = name.endswith(".json") and f"{key}.part" not in names
            stray = not (name.endswith(".part") or name.endswith(".json"))
            if old or orphan or stray:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(name, dir_fd=self.fd)
                if name.endswith(".part"):
                    removed.append(key)
        for key in removed:
            self.forget_meta(key)
        return removed
