"""Progress bars of ``put`` and ``get``: one per file and one for the run, on a terminal only."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..protocol.text import escape
from .files_plan import Item

__all__ = ["Bars", "FileBar", "count_files", "size_text"]


def size_text(n: float) -> str:
    """Binary units everywhere (bars, speeds and result lines alike): B, KiB, MiB, GiB."""
    if n < 1024:
        return f"{int(n)} B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            break
    return f"{value:.1f} {unit}"


def count_files(n: int) -> str:
    return f"{n} file" if n == 1 else f"{n} files"


class FileBar:
    """The progress callback of one file's bar; it moves the overall bar too."""

    def __init__(self, bars: Bars, task: Any) -> None:
        self.bars = bars
        self.task = task
        self.done = 0

    def __call__(self, done: int, total: int) -> None:
        self.done = done
        self.bars.moved(self, total)


class Bars:
    """A rich progress bar per file and one for the whole run, on a terminal only.

    The bars say what really arrived: a file counts as done only once its result is in,
    and an interrupted run says where it stopped instead of drawing itself complete.
    """

    def __init__(self, show: bool, items: list[Item]) -> None:
        self._progress: Any = None
        self.total = sum(item.size for item in items)
        self.done = 0
        self._current: FileBar | None = None
        if show:
            self._progress = _make_progress()
            if self._progress is not None:
                self._all = self._progress.add_task(count_files(len(items)), total=self.total)

    @contextmanager
    def running(self) -> Iterator[Bars]:
        if self._progress is None:
            yield self
            return
        with self._progress:
            yield self

    @property
    def reached(self) -> int:
        return self.done + (self._current.done if self._current is not None else 0)

    def file(self, item: Item, label: str) -> FileBar | None:
        """A progress callback for one file (None when nothing is shown)."""
        if self._progress is None:
            return None
        self._current = FileBar(self, self._progress.add_task(escape(label, 60), total=item.size))
        return self._current

    def moved(self, bar: FileBar, total: int) -> None:
        self._progress.update(bar.task, completed=bar.done, total=total)
        self._progress.update(self._all, completed=self.reached)

    def finished(self, item: Item, bar: FileBar | None) -> None:
        """A file's result is in (moved, skipped or failed): it counts in full."""
        self.done += item.size
        self._current = None
        if self._progress is not None:
            if bar is not None:
                self._progress.remove_task(bar.task)
            self._progress.update(self._all, completed=self.done)

    def dropped(self, bar: FileBar | None) -> None:
        """The run was interrupted during this file: its bar goes, the total stays true."""
        if self._progress is not None and bar is not None:
            self._progress.remove_task(bar.task)

    def say(self, text: str) -> None:
        if self._progress is not None:
            self._progress.console.print(text, markup=False, highlight=False)
        else:
            print(text, flush=True)


def _make_progress() -> Any:
    try:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            ProgressColumn,
            TextColumn,
            TimeRemainingColumn,
        )
        from rich.text import Text
    except ImportError:  # the cli extra is not installed: plain lines only
        return None

    class Speed(ProgressColumn):
        """Speed in the same binary units as everything else (rich's own is decimal)."""

        def render(self, task: Any) -> Text:
            speed = task.finished_speed or task.speed
            return Text(
                "" if speed is None else f"{size_text(speed)}/s", style="progress.data.speed"
            )

    return Progress(
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        DownloadColumn(binary_units=True),
        Speed(),
        TimeRemainingColumn(),
    )
