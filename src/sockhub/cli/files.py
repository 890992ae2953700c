"""``sockhub put``, ``get``, ``ls`` and ``rm``: verified, resumable file transfer.

Run the same command again after an interruption and it resumes: an upload continues
from the server's partial file, a download from the local one, and files that are
already there with the same content are skipped without a transfer. One file's failure
is reported and the others still go; the exit code is then 1.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..client import Client
from ..client.filework import Entry, Progress, Transfer
from ..client.localfile import INLINE, file_sha256
from ..protocol.errors import FileExists, FileNotEmpty, FileNotFound, ProtocolError
from ..protocol.paths import check_path, join_path
from ..protocol.text import escape
from .common import (
    EXIT_FAILED,
    EXIT_USAGE,
    CliError,
    add_client_args,
    command,
    connect,
    emit_json,
    examples,
    local_error,
)
from .files_plan import Item, plan_get, plan_put, remote_dir, renames, split_dest
from .files_progress import Bars, size_text

__all__ = ["register"]


Move = Callable[[Item, Progress | None], Transfer]
Many = Callable[[list[Item]], Iterable[Transfer | ProtocolError]]


def _run_items(
    args: argparse.Namespace, items: list[Item], verb: str, move: Move, many: Many
) -> int:
    """Move every item, one result line each; one file's error does not stop the rest.

    Small files go pipelined (``many``), so they share round trips; big ones one at a
    time (``move``) with a bar each.
    """
    small = [item for item in items if item.size <= INLINE]
    big = [item for item in items if item.size > INLINE]
    bars = Bars(sys.stdout.isatty() and not args.json, items)
    failed = 0
    with bars.running():
        try:
            results = iter(many(small))
            for item in small:
                with _local(verb, item):
                    done = next(results)
                bars.finished(item, None)
                failed += _outcome(args, bars, verb, item, done)
            for item in big:
                failed += _one_big(args, bars, verb, item, move)
        except KeyboardInterrupt:
            bars.say(
                f"sockhub: interrupted at {size_text(bars.reached)} of {size_text(bars.total)}; "
                "run the same command again to resume"
            )
            raise
    return EXIT_FAILED if failed else 0


def _one_big(args: argparse.Namespace, bars: Bars, verb: str, item: Item, move: Move) -> int:
    bar = bars.file(item, item.remote if verb == "put" else str(item.local))
    try:
        with _local(verb, item):
            result: Transfer | ProtocolError = move(item, bar)
    except ProtocolError as exc:
        if exc.fatal:
            bars.dropped(bar)
            raise
        result = exc
    except BaseException:
        bars.dropped(bar)
        raise
    bars.finished(item, bar)
    return _outcome(args, bars, verb, item, result)


@contextmanager
def _local(verb: str, item: Item) -> Iterator[None]:
    """A local file problem (disk full, no such folder) as one line naming the file."""
    try:
        yield
    except OSError as exc:
        what = "read" if verb == "put" else "write"
        raise CliError(f"cannot {what} {item.local}: {local_error(exc)}", error="local") from exc


def _outcome(
    args: argparse.Namespace, bars: Bars, verb: str, item: Item, outcome: Transfer | ProtocolError
) -> int:
    """Report one file; 1 when it failed."""
    if isinstance(outcome, ProtocolError):
        _report_error(args, bars, item, outcome)
        return 1
    _report(args, bars, verb, item, outcome)
    return 0


def _report(args: argparse.Namespace, bars: Bars, verb: str, item: Item, r: Transfer) -> None:
    if args.json:
        emit_json(
            {
                "ok": True,
                "op": verb,
                "path": r.path,
                "local": str(r.local),
                "size": r.size,
                "sha256": r.sha256,
                "sent": r.sent,
                "offset": r.offset,
                "unchanged": r.unchanged,
            }
        )
        return
    arrow = f"{item.local} -> {r.path}" if verb == "put" else f"{r.path} -> {r.local}"
    how = "unchanged" if r.unchanged else size_text(r.size)
    if r.offset:
        how += f", resumed at {size_text(r.offset)}"
    bars.say(f"{verb} {escape(arrow, 300)}  {how}  sha256 {r.sha256[:16]}")


def _report_error(args: argparse.Namespace, bars: Bars, item: Item, exc: ProtocolError) -> None:
    _report_failure(args, item.remote, exc.code, exc.message, local=str(item.local))


def _report_failure(
    args: argparse.Namespace, path: str, code: str, message: str, **extra: str
) -> None:
    """One file's failure: the common error object plus the path, and one line on stderr."""
    if args.json:
        emit_json(
            {"ok": False, "type": "error", "error": code, "message": message, "path": path, **extra}
        )
    print(f"sockhub: {escape(path)}: {code}: {escape(message)}", file=sys.stderr, flush=True)


def _warn(text: str) -> None:
    print(f"sockhub: {text}", file=sys.stderr, flush=True)


def _remote_is_folder(client: Client, path: str) -> bool:
    try:
        return client.stat(remote_dir(path)).type == "dir"
    except FileNotFound:
        return False


@command
def _put(args: argparse.Namespace) -> int:
    sources, dest = split_dest(args.paths)
    with connect(args) as client:
        rename = renames(sources, dest, lambda d: _remote_is_folder(client, d))
        items = plan_put(sources, remote_dir(dest), args.recursive, _warn, rename)
        sha = True if args.overwrite else None

        def move(item: Item, progress: Progress | None) -> Transfer:
            return client.put(
                item.local, item.remote, overwrite=args.overwrite, sha256=sha, progress=progress
            )

        def many(small: list[Item]) -> Iterable[Transfer | ProtocolError]:
            pairs = ((item.local, item.remote) for item in small)
            return client.put_many(pairs, overwrite=args.overwrite, sha256=sha)

        return _run_items(args, items, "put", move, many)


def _already_here(client: Client, item: Item, overwrite: bool) -> Transfer | ProtocolError | None:
    """What to do about a local file in the way of a download, decided before any transfer.

    The same content (size and sha256, any size): skipped. Other content: refused unless
    ``--overwrite``, as a user who edited the local copy would want. Nothing there: None.
    """
    try:
        size = item.local.stat().st_size
    except FileNotFoundError:
        return None
    if size == item.size and item.local.is_file():
        info = client.stat(item.remote, hash=True)
        with item.local.open("rb") as local:
            mine = file_sha256(local)
        if info.sha256 == mine:
            return Transfer(item.remote, item.local, item.size, mine, 0, 0, True)
    if overwrite:
        return None
    return FileExists(
        f"{item.local} exists here and differs from the server's copy: "
        "add --overwrite to replace it"
    )


def _keep_mtime(item: Item, result: Transfer | ProtocolError) -> Transfer | ProtocolError:
    """The server's mtime on the local copy, as scp -p and rsync -t do."""
    if isinstance(result, Transfer) and item.mtime is not None:
        os.utime(item.local, (item.mtime, item.mtime))
    return result


@command
def _get(args: argparse.Namespace) -> int:
    sources, dest = split_dest(args.paths)
    with connect(args) as client:
        rename = renames(sources, dest, os.path.isdir)
        items = plan_get(client, sources, Path(dest or "."), args.recursive, rename)
        decided: dict[Path, Transfer | ProtocolError] = {}
        for item in items:
            with _local("get", item):
                found = _already_here(client, item, args.overwrite)
            if found is not None:
                decided[item.local] = found

        def move(item: Item, progress: Progress | None) -> Transfer:
            known = decided.get(item.local)
            if isinstance(known, ProtocolError):
                raise known
            result = known or client.get(item.remote, item.local, progress=progress)
            _keep_mtime(item, result)
            return result

        def many(small: list[Item]) -> Iterable[Transfer | ProtocolError]:
            wanted = [item for item in small if item.local not in decided]
            fetched = iter(client.get_many((item.remote, item.local) for item in wanted))
            for item in small:
                yield decided.get(item.local) or _keep_mtime(item, next(fetched))

        return _run_items(args, items, "get", move, many)


def _entry_line(entry: Entry) -> str:
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(entry.mtime))
    size = "-" if entry.is_dir else size_text(entry.size or 0)
    name = escape(entry.name, 300) + ("/" if entry.is_dir else "")
    return f"{size:>10}  {when}  {name}"


@command
def _ls(args: argparse.Namespace) -> int:
    path = remote_dir(args.path)
    with connect(args) as client:
        info = client.stat(path)
        if info.type == "dir":
            entries = client.list(path)
        else:
            entries = [Entry(check_path(path)[-1], "file", info.size, info.mtime)]
    for entry in entries:
        if args.json:
            emit_json(
                {
                    "name": entry.name,
                    "type": entry.type,
                    "size": entry.size,
                    "mtime": entry.mtime,
                }
            )
        else:
            print(_entry_line(entry))
    return 0


def _remove(client: Client, path: str, recursive: bool) -> list[str]:
    """Delete ``path``; with ``recursive`` a folder's contents first, deepest first."""
    if recursive and client.stat(path).type == "dir":
        removed: list[str] = []
        for entry in client.list(path):
            removed += _remove(client, join_path(path, entry.name), True)
        client.delete(path)
        return [*removed, path]
    client.delete(path)
    return [path]


@command
def _rm(args: argparse.Namespace) -> int:
    paths = [remote_dir(p) for p in args.paths]
    if "" in paths:
        raise CliError("refusing to remove the files root itself: name what to remove", EXIT_USAGE)
    failed = 0
    with connect(args) as client:
        for path in paths:
            try:
                removed = _remove(client, path, args.recursive)
            except ProtocolError as exc:
                if exc.fatal:
                    raise
                failed += 1
                hint = (
                    " (add -r to remove a folder and what it holds)"
                    if isinstance(exc, FileNotEmpty)
                    else ""
                )
                _report_failure(args, path, exc.code, exc.message + hint)
                continue
            if args.json:
                emit_json({"ok": True, "path": path, "removed": len(removed)})
    return EXIT_FAILED if failed else 0


def register(sub: Any) -> None:
    p = sub.add_parser(
        "put",
        help="upload files (verified, resumable)",
        description=(
            "Upload LOCAL files (folders with -r). As with cp and scp, the last of several "
            "words is the destination: a folder on the server when it ends with /, already "
            "is one, or several sources are given; otherwise the new name of the one source "
            "(put a.bin b.bin uploads a.bin as b.bin). Each file is hashed while it is sent and stored only if the server's "
            "sha256 agrees. Run the same command again to resume an interrupted upload; "
            "files already there with the same content are skipped."
        ),
        **examples("""
  export SOCKHUB_USER=alice SOCKHUB_KEY=$(cat alice.key)   # a user with the files grant
  sockhub put report.pdf                      # -> report.pdf in the files root
  sockhub put report.pdf old/report-v1.pdf    # -> under a new name
  sockhub put a.txt b.txt docs/               # -> docs/a.txt, docs/b.txt
  sockhub put -r photos backup/               # -> backup/photos/... (symlinks out are skipped)
  sockhub put --overwrite notes.md            # replace (skipped if the content is the same)
  sockhub put --json big.iso                  # {"ok": true, "sha256": ..., "sent": ...}
"""),
    )
    p.add_argument("paths", nargs="+", metavar="LOCAL... [REMOTE]")
    p.add_argument("-r", "--recursive", action="store_true", help="upload folders too")
    p.add_argument("--overwrite", action="store_true", help="replace files that exist")
    add_client_args(p)
    p.set_defaults(func=_put)

    p = sub.add_parser(
        "get",
        help="download files (verified, resumable)",
        description=(
            "Download REMOTE files (folders with -r). As with cp and scp, the last of "
            "several words is the destination: a local folder when it ends with /, already "
            "is one, or several sources are given (default: here); otherwise the new name "
            "of the one source. A local file that is already the same (size and sha256) is "
            "skipped; one that differs is refused unless --overwrite. Downloads keep the "
            "server's modification time, as scp -p does. Each file lands in a hidden partial file, is checked against "
            "the server's sha256, then renamed into place; run the command again to "
            "resume. Names from the server never leave LOCAL_DIR."
        ),
        **examples("""
  sockhub get report.pdf                      # -> ./report.pdf
  sockhub get docs/a.txt docs/b.txt out/      # -> out/a.txt, out/b.txt
  sockhub get docs/a.txt mine.txt             # -> ./mine.txt
  sockhub get --overwrite docs/a.txt          # replace a local a.txt that differs
  sockhub get -r backup/photos .              # -> ./photos/...
  sockhub get --json big.iso                  # {"ok": true, "sha256": ..., "offset": ...}
"""),
    )
    p.add_argument("paths", nargs="+", metavar="REMOTE... [LOCAL]")
    p.add_argument("-r", "--recursive", action="store_true", help="download folders too")
    p.add_argument(
        "--overwrite", action="store_true", help="replace local files whose content differs"
    )
    add_client_args(p)
    p.set_defaults(func=_get)

    p = sub.add_parser(
        "ls",
        help="list a folder on the server",
        description="List PATH (a folder, default the files root, or one file).",
        **examples("""
  sockhub ls                                  # the files root
  sockhub ls backup/photos
  sockhub ls --json docs                      # one {"name", "type", "size", "mtime"} per line
"""),
    )
    p.add_argument("path", nargs="?", default="", metavar="PATH")
    add_client_args(p)
    p.set_defaults(func=_ls)

    p = sub.add_parser(
        "rm",
        help="delete files or folders on the server",
        description=(
            "Delete each PATH: a file, or a folder that is empty (with -r, a folder and "
            "everything in it). One path's failure is reported and the others still go."
        ),
        **examples("""
  sockhub rm docs/old.txt docs/older.txt
  sockhub rm docs                             # only when empty (else file.not_empty)
  sockhub rm -r backup/photos                 # the folder and all it holds
"""),
    )
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument(
        "-r", "--recursive", action="store_true", help="remove folders and everything in them"
    )
    add_client_args(p)
    p.set_defaults(func=_rm)
