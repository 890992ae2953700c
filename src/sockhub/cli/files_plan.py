"""What ``sockhub put`` and ``sockhub get`` will move: argument splitting, tree walks.

Local walks never follow a symlink out of the tree being sent (nor into a directory
at all: that is how loops happen). Remote walks take only names that pass the
protocol's path rules, and every local path a download writes is checked to stay
inside the target folder even if a folder on the way is a symlink.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..client import Client
from ..protocol.errors import FileBadPath
from ..protocol.paths import check_name, check_path, join_path
from ..protocol.text import escape
from .common import EXIT_FAILED, EXIT_USAGE, CliError

__all__ = [
    "Item",
    "local_target",
    "plan_get",
    "plan_put",
    "remote_dir",
    "renames",
    "split_dest",
]

Warn = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class Item:
    """One file to move: where it is on this side, where it is on the server, how big."""

    local: Path
    remote: str
    size: int
    mtime: float | None = None
    """The server's mtime of a download, given to the local copy (as ``scp -p`` does)."""


def split_dest(paths: list[str]) -> tuple[list[str], str | None]:
    """``A B C`` -> sources and destination: as with cp and scp, the last of several words
    is the destination."""
    if len(paths) >= 2:
        return paths[:-1], paths[-1]
    return paths, None


def renames(sources: list[str], dest: str | None, is_folder: Callable[[str], bool]) -> bool:
    """Whether ``dest`` is the new name of the one source (``put a.bin b.bin``) rather than
    the folder to put it in: one source, no trailing ``/``, not an existing folder."""
    return (
        dest is not None
        and len(sources) == 1
        and not dest.endswith("/")
        and remote_dir(dest) != ""
        and not is_folder(dest)
    )


def remote_dir(text: str | None) -> str:
    """A REMOTE_DIR argument as a checked path; ``/``, ``.`` and nothing mean the root."""
    path = (text or "").strip("/")
    if path in ("", "."):
        return ""
    check_path(path)
    return path


def plan_put(
    sources: list[str], dest: str, recursive: bool, warn: Warn, rename: bool = False
) -> list[Item]:
    """The uploads; with ``rename`` the one source is stored as ``dest`` itself."""
    items: list[Item] = []
    for source in sources:
        path = Path(source)
        try:
            st = path.stat()
        except OSError as exc:
            raise CliError(f"{escape(source)}: {exc.strerror}", EXIT_FAILED) from exc
        target = dest if rename else join_path(dest, path.resolve().name)
        if stat.S_ISDIR(st.st_mode):
            if not recursive:
                raise CliError(f"{escape(source)} is a directory (use -r)", EXIT_USAGE)
            items += _walk_local(path, target, warn)
        else:
            items.append(Item(path, target, st.st_size))
    return items


def _walk_local(top: Path, remote: str, warn: Warn) -> Iterator[Item]:
    real_top = os.path.realpath(top)
    for folder, dirs, files in os.walk(top):
        here = Path(folder)
        rel = here.relative_to(top).parts
        for name in sorted(dirs):
            if (here / name).is_symlink():
                warn(f"skipped {escape(str(here / name))}: a symlinked folder is not followed")
                dirs.remove(name)
        dirs.sort()
        for name in sorted(files):
            path = here / name
            if path.is_symlink() and not _inside(os.path.realpath(path), real_top):
                warn(f"skipped {escape(str(path))}: its symlink leads out of {escape(str(top))}")
                continue
            try:
                st = path.stat()
            except OSError as exc:
                warn(f"skipped {escape(str(path))}: {exc.strerror}")
                continue
            if stat.S_ISREG(st.st_mode):
                yield Item(path, join_path(remote, *rel, name), st.st_size)


def _inside(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip(os.sep) + os.sep)


def plan_get(
    client: Client, sources: list[str], dest: Path, recursive: bool, rename: bool = False
) -> list[Item]:
    """The downloads; with ``rename`` the one source lands at ``dest`` itself."""
    items: list[Item] = []
    for source in sources:
        remote = remote_dir(source)
        if not remote:
            raise CliError("name what to get (the root itself: use a folder name)", EXIT_USAGE)
        info = client.stat(remote)
        name = check_path(remote)[-1]
        if info.type == "dir":
            if not recursive:
                raise CliError(f"{escape(remote)} is a directory (use -r)", EXIT_USAGE)
            items += _walk_remote(client, remote, dest, () if rename else (name,))
        else:
            local = dest if rename else local_target(dest, (name,))
            items.append(Item(local, remote, info.size or 0, info.mtime))
    return items


def _walk_remote(client: Client, remote: str, dest: Path, parts: tuple[str, ...]) -> Iterator[Item]:
    for entry in client.list(remote):
        here = (*parts, entry.name)
        path = join_path(remote, entry.name)
        if entry.is_dir:
            yield from _walk_remote(client, path, dest, here)
        else:
            yield Item(local_target(dest, here), path, entry.size or 0, entry.mtime)


def local_target(base: Path, parts: tuple[str, ...]) -> Path:
    """``base/parts...`` for names received from the server, refusing any that would not
    land inside ``base`` (bad names, or a folder on the way that is a symlink out)."""
    for part in parts:
        try:
            check_name(part)
        except FileBadPath as exc:
            raise CliError(f"refusing a name from the server: {exc.message}") from exc
    target = base.joinpath(*parts)
    real_base = os.path.realpath(base)
    if not _inside(os.path.realpath(target.parent), real_base):
        raise CliError(f"refusing {escape(str(target))}: a folder on the way leads elsewhere")
    return target
