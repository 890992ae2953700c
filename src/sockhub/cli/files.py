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
from ..protocol.errors import ProtocolError
from ..protocol.paths import check_path
from ..protocol.text import escape
from .common import (
    EXIT_FAILED,
    CliError,
    add_client_args,
    command,
    connect,
    emit_json,
    examples,
    local_error,
)
from .files_plan import Item, plan_get, plan_put, remote_dir, split_dest

__all__ = ["register"]


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB"):
        value /= 1024
        if value < 1024 or unit == "GiB":
            break
    return f"{value:.1f} {unit}"


class _FileBar:
    """The progress callback of one file's bar; it moves the overall bar too."""

    def __init__(self, bars: Any, task: Any, overall: Any, before: int) -> None:
        self.bars = bars
        self.task = task
        self.overall = overall
        self.before = before

    def __call__(self, done: int, total: int) -> None:
        self.bars.update(self.task, completed=done, total=total)
        self.bars.update(self.overall, completed=self.before + done)


class Bars:
    """A rich progress bar per file and one for the whole run, on a terminal only."""

    def __init__(self, show: bool, items: list[Item]) -> None:
        self._progress: Any = None
        if show:
            try:
                from rich.progress import (
                    BarColumn,
                    DownloadColumn,
                    Progress,
                    TextColumn,
                    TimeRemainingColumn,
                    TransferSpeedColumn,
                )
            except ImportError:  # the cli extra is not installed: plain lines only
                return
            self._progress = Progress(
                TextColumn("{task.description}", markup=False),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
            )
            total = sum(item.size for item in items)
            self._all = self._progress.add_task(f"{len(items)} files", total=total)
        self._done = 0

    @contextmanager
    def running(self) -> Iterator[Bars]:
        if self._progress is None:
            yield self
            return
        with self._progress:
            yield self

    def file(self, item: Item, label: str) -> _FileBar | None:
        """A progress callback for one file (None when nothing is shown)."""
        if self._progress is None:
            return None
        task = self._progress.add_task(escape(label, 60), total=item.size)
        return _FileBar(self._progress, task, self._all, self._done)

    def finished(self, item: Item, bar: _FileBar | None) -> None:
        self._done += item.size
        if bar is not None:
            bar.bars.remove_task(bar.task)
            bar.bars.update(self._all, completed=self._done)

    def say(self, text: str) -> None:
        if self._progress is not None:
            self._progress.console.print(text, markup=False, highlight=False)
        else:
            print(text, flush=True)


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
        results = iter(many(small))
        for item in small:
            with _local(verb, item):
                done = next(results)
            bars.finished(item, None)
            failed += _outcome(args, bars, verb, item, done)
        for item in big:
            bar = bars.file(item, item.remote if verb == "put" else str(item.local))
            try:
                with _local(verb, item):
                    result: Transfer | ProtocolError = move(item, bar)
            except ProtocolError as exc:
                if exc.fatal:
                    raise
                result = exc
            finally:
                bars.finished(item, bar)
            failed += _outcome(args, bars, verb, item, result)
    return EXIT_FAILED if failed else 0


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
    how = "unchanged" if r.unchanged else _size(r.size)
    if r.offset:
        how += f", resumed at {_size(r.offset)}"
    bars.say(f"{verb} {escape(arrow, 300)}  {how}  sha256 {r.sha256[:16]}")


def _report_error(args: argparse.Namespace, bars: Bars, item: Item, exc: ProtocolError) -> None:
    if args.json:
        emit_json(
            {
                "ok": False,
                "error": exc.code,
                "message": exc.message,
                "path": item.remote,
                "local": str(item.local),
            }
        )
    print(
        f"sockhub: {escape(item.remote)}: {exc.code}: {escape(exc.message)}",
        file=sys.stderr,
        flush=True,
    )


def _warn(text: str) -> None:
    print(f"sockhub: {text}", file=sys.stderr, flush=True)


@command
def _put(args: argparse.Namespace) -> int:
    sources, dest = split_dest(args.paths, lambda last: not os.path.lexists(last))
    items = plan_put(sources, remote_dir(dest), args.recursive, _warn)
    with connect(args) as client:
        sha = True if args.overwrite else None

        def move(item: Item, progress: Progress | None) -> Transfer:
            return client.put(
                item.local, item.remote, overwrite=args.overwrite, sha256=sha, progress=progress
            )

        def many(small: list[Item]) -> Iterable[Transfer | ProtocolError]:
            pairs = ((item.local, item.remote) for item in small)
            return client.put_many(pairs, overwrite=args.overwrite, sha256=sha)

        return _run_items(args, items, "put", move, many)


def _same_file(client: Client, item: Item) -> Transfer | None:
    """A local file that already is the remote one (same size and sha256), or None.

    Worth a round trip for big files only: small ones are fetched again, pipelined."""
    try:
        if item.local.stat().st_size != item.size:
            return None
    except OSError:
        return None
    info = client.stat(item.remote, hash=True)
    with item.local.open("rb") as local:
        mine = file_sha256(local)
    if info.sha256 != mine:
        return None
    return Transfer(item.remote, item.local, item.size, mine, 0, 0, True)


@command
def _get(args: argparse.Namespace) -> int:
    sources, dest = split_dest(args.paths, os.path.isdir)
    with connect(args) as client:
        items = plan_get(client, sources, Path(dest or "."), args.recursive, _warn)

        def move(item: Item, progress: Progress | None) -> Transfer:
            return _same_file(client, item) or client.get(
                item.remote, item.local, progress=progress
            )

        def many(small: list[Item]) -> Iterable[Transfer | ProtocolError]:
            return client.get_many((item.remote, item.local) for item in small)

        return _run_items(args, items, "get", move, many)


def _entry_line(entry: Entry) -> str:
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(entry.mtime))
    size = "-" if entry.is_dir else _size(entry.size or 0)
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


@command
def _rm(args: argparse.Namespace) -> int:
    path = remote_dir(args.path)
    check_path(path)
    with connect(args) as client:
        client.delete(path)
    if args.json:
        emit_json({"ok": True, "path": path})
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser(
        "put",
        help="upload files (verified, resumable)",
        description=(
            "Upload LOCAL files (folders with -r) into REMOTE_DIR on the server. The last "
            "word is REMOTE_DIR when there are several and it ends with / or is not a local "
            "path. Each file is hashed while it is sent and stored only if the server's "
            "sha256 agrees. Run the same command again to resume an interrupted upload; "
            "files already there with the same content are skipped."
        ),
        **examples("""
  export SOCKHUB_USER=alice SOCKHUB_KEY=$(cat alice.key)   # a user with the files grant
  sockhub put report.pdf                      # -> report.pdf in the files root
  sockhub put a.txt b.txt docs/               # -> docs/a.txt, docs/b.txt
  sockhub put -r photos backup/               # -> backup/photos/... (symlinks out are skipped)
  sockhub put --overwrite notes.md            # replace (skipped if the content is the same)
  sockhub put --json big.iso                  # {"ok": true, "sha256": ..., "sent": ...}
"""),
    )
    p.add_argument("paths", nargs="+", metavar="LOCAL... [REMOTE_DIR]")
    p.add_argument("-r", "--recursive", action="store_true", help="upload folders too")
    p.add_argument("--overwrite", action="store_true", help="replace files that exist")
    add_client_args(p)
    p.set_defaults(func=_put)

    p = sub.add_parser(
        "get",
        help="download files (verified, resumable)",
        description=(
            "Download REMOTE files (folders with -r) into LOCAL_DIR (default: here). The "
            "last word is LOCAL_DIR when there are several and it ends with / or is a "
            "local folder. Each file lands in a hidden partial file, is checked against "
            "the server's sha256, then renamed into place; run the command again to "
            "resume. Names from the server never leave LOCAL_DIR."
        ),
        **examples("""
  sockhub get report.pdf                      # -> ./report.pdf
  sockhub get docs/a.txt docs/b.txt out/      # -> out/a.txt, out/b.txt
  sockhub get -r backup/photos .              # -> ./photos/...
  sockhub get --json big.iso                  # {"ok": true, "sha256": ..., "offset": ...}
"""),
    )
    p.add_argument("paths", nargs="+", metavar="REMOTE... [LOCAL_DIR]")
    p.add_argument("-r", "--recursive", action="store_true", help="download folders too")
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
        help="delete a file or an empty folder on the server",
        description="Delete PATH: a file, or a folder that is empty.",
        **examples("""
  sockhub rm docs/old.txt
  sockhub rm docs                             # only when empty (else file.not_empty)
"""),
    )
    p.add_argument("path", metavar="PATH")
    add_client_args(p)
    p.set_defaults(func=_rm)
