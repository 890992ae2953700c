"""Starting a command fast on any event loop, and knowing when it and its group have ended.

uvloop's own subprocess support forks the whole server, three times slower than the
default loop (measured on a 2-vCPU VM). ``subprocess.Popen`` uses vfork on Linux, so we spawn with
it and attach the rest to the running loop ourselves: the pipes through ``add_reader``
and ``add_writer`` (``pipes.py``), the exit through a pidfd, which becomes readable the
moment the process ends. The exit of the main process is what ends a run, never the
closing of its pipes: a background child may hold them open for ever.

Every run starts a new session, so its process group is its own and can be signalled
and emptied as a whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from .pty import PtySpec, open_pty
from .sandbox import BWRAP_SIGNAL_BASE, Sandbox

__all__ = ["Child", "Exit", "SpawnError", "signal_name", "spawn", "spawn_pty"]

log = logging.getLogger("sockhub.exec")

PIPE_SIZE = 256 * 1024
"""Bigger pipes than the default 64 KiB make bulk output markedly faster (bench_exec)."""
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
_HAS_PIDFD = hasattr(os, "pidfd_open")
_PROC = Path("/proc")
_SIGNALS = frozenset(int(s) for s in signal.Signals)


class SpawnError(Exception):
    """The command could not be started; ``status`` is what a shell would have returned."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Exit:
    """How the main process ended: an exit status, or the signal that ended it."""

    status: int | None
    signal: str | None


def signal_name(number: int) -> str:
    """``TERM`` for SIGTERM: the protocol names signals without the ``SIG`` prefix."""
    try:
        return signal.Signals(number).name.removeprefix("SIG")
    except ValueError:
        return str(number)


def _exit_from_status(status: int, sandboxed: bool) -> Exit:
    if os.WIFSIGNALED(status):
        return Exit(None, signal_name(os.WTERMSIG(status)))
    code = os.WEXITSTATUS(status)
    if sandboxed and code > BWRAP_SIGNAL_BASE and (code - BWRAP_SIGNAL_BASE) in _SIGNALS:
        return Exit(None, signal_name(code - BWRAP_SIGNAL_BASE))
    return Exit(code, None)


def _pipe() -> tuple[int, int]:
    r, w = os.pipe()
    with contextlib.suppress(OSError):
        fcntl.fcntl(r, _F_SETPIPE_SZ, PIPE_SIZE)
    return r, w


_CANNOT_EXECUTE = frozenset({errno.EACCES, errno.ENOEXEC, errno.EISDIR, errno.ENOTDIR, errno.EPERM})


def _start_error(exc: OSError, argv0: str) -> SpawnError | None:
    """What sh would say for a program it cannot run: 127 not found, 126 not executable."""
    what = f"{exc.filename or argv0}: {exc.strerror or exc}"
    if exc.errno == errno.ENOENT:
        return SpawnError(what, 127)
    if exc.errno in _CANNOT_EXECUTE:
        return SpawnError(what, 126)
    return None


def spawn(
    argv: Sequence[str], cwd: Path, env: dict[str, str], stdin: bool, sandbox: Sandbox | None
) -> Child:
    """Start ``argv`` in a new session; raises SpawnError when the program cannot run.

    Other OSErrors (no memory, no process slots, no file descriptors) propagate: they
    are the server's trouble, not the command's. In a ``sandbox``, the program is started
    by the sandbox, whose status 128+N stands for the signal N (sandbox.py).
    """
    command = list(argv) if sandbox is None else sandbox.wrap(argv, cwd)
    out_r, out_w = _pipe()
    err_r, err_w = _pipe()
    in_r, in_w = os.pipe() if stdin else (subprocess.DEVNULL, -1)
    try:
        popen = subprocess.Popen(
            command,
            stdin=in_r,
            stdout=out_w,
            stderr=err_w,
            cwd=cwd,
            env=env,
            start_new_session=True,
            close_fds=True,
        )
    except OSError as exc:
        for fd in (out_r, err_r, in_w):
            if fd >= 0:
                os.close(fd)
        error = _start_error(exc, argv[0])
        if error is None:
            raise
        raise error from exc
    finally:
        for fd in (out_w, err_w, in_r):
            if fd >= 0:
                os.close(fd)
    for fd in (out_r, err_r, in_w):
        if fd >= 0:
            os.set_blocking(fd, False)
    return Child(popen, out_r, err_r, in_w if stdin else None, sandbox is not None)


def spawn_pty(
    argv: Sequence[str], cwd: Path, env: dict[str, str], spec: PtySpec, sandbox: Sandbox | None
) -> Child:
    """Start ``argv`` on a pseudo-terminal (``pty.py``): one output, no separate stderr.

    In a ``sandbox`` the command makes the terminal its controlling one inside the sandbox
    (``Sandbox.wrap``), so bubblewrap is never in the terminal's foreground group."""
    command = list(argv) if sandbox is None else sandbox.wrap(argv, cwd, terminal=True)
    try:
        popen, reader, writer = open_pty(command, cwd, env, spec, controlling=sandbox is None)
    except OSError as exc:
        error = _start_error(exc, argv[0])
        if error is None:
            raise
        raise error from exc
    return Child(popen, reader, None, writer, sandbox is not None)


class Child:
    """A started command: its pipes, its exit, and its process group.

    ``exited`` resolves with the main process's ``Exit`` once it has ended and been
    reaped; the pid stays reserved until then, so signalling it is never a mistake.
    """

    def __init__(
        self,
        popen: subprocess.Popen[bytes],
        stdout: int,
        stderr: int | None,
        stdin: int | None,
        sandboxed: bool,
    ):
        self._popen = popen  # kept so Popen never reaps it behind our back (its _active list)
        self._sandboxed = sandboxed
        self._ns_gone = False
        """bwrap exited by itself: it waited for the sandbox's init, whose exit ended every
        process of the PID namespace, so the group is empty (no need to look in /proc)."""
        self.pid = popen.pid
        self.pgid = popen.pid
        self.stdout = stdout
        self.stderr = stderr
        self.stdin = stdin
        self._loop = asyncio.get_running_loop()
        self.exited: asyncio.Future[Exit] = self._loop.create_future()
        self._pidfd = -1
        self._watch()

    # the main process ---------------------------------------------------------------

    def _watch(self) -> None:
        if _HAS_PIDFD:
            try:
                self._pidfd = os.pidfd_open(self.pid)
            except OSError:
                self._pidfd = -1
        if self._pidfd >= 0:
            self._loop.add_reader(self._pidfd, self._reap)
        else:
            threading.Thread(
                target=self._wait_in_thread, name="sockhub-exec-wait", daemon=True
            ).start()

    def _reap(self) -> None:
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:  # pragma: no cover - someone else reaped it
            pid, status = self.pid, 0
        if pid == 0:
            return  # a spurious wake-up: not ended yet
        self._loop.remove_reader(self._pidfd)
        os.close(self._pidfd)
        self._pidfd = -1
        self._ended(status)

    def _wait_in_thread(self) -> None:
        """Where there is no pidfd (macOS), a thread waits for the one pid it owns."""
        _, status = os.waitpid(self.pid, 0)
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is waiting
            self._loop.call_soon_threadsafe(self._ended, status)

    def _ended(self, status: int) -> None:
        self._popen.returncode = os.waitstatus_to_exitcode(status)
        self._ns_gone = self._sandboxed and os.WIFEXITED(status)
        if not self.exited.done():
            self.exited.set_result(_exit_from_status(status, self._sandboxed))

    # the process group ----------------------------------------------------------------

    def signal_group(self, sig: int) -> bool:
        """Send ``sig`` to every process of the run; False when the group is already empty.

        In a sandbox the group leader is bwrap itself, which would die of a signal the
        command means to catch (and take the whole sandbox with it), so catchable signals
        go to the other members one by one; KILL goes to the group, bwrap included, and
        the sandbox's PID namespace ends with it.
        """
        if self._ns_gone:
            return False
        if self._sandboxed and sig not in (0, signal.SIGKILL):
            if self.stderr is None:
                return self._signal_terminal(sig)
            return self._signal_members(sig)
        try:
            os.killpg(self.pgid, sig)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True  # a member changed its user (setuid program): it still exists
        return True

    def group_alive(self) -> bool:
        """Whether any process of the group is still running (zombies do not count).

        A member orphaned by the main process is adopted by init, which does not reap
        everywhere (a container's PID 1 often does not), so ``killpg(0)`` alone would
        call a group of zombies alive. Those of them that are our children we reap.
        """
        if self._ns_gone:
            return False
        self._reap_group()
        if not self.signal_group(0):
            return False
        if sys.platform != "linux":
            return True
        return next(_live_members(self.pgid), None) is not None

    def _signal_terminal(self, sig: int) -> bool:
        """A sandboxed command on a pty runs in a session of its own inside the sandbox
        (``Sandbox.wrap``): a signal goes to the terminal's foreground group, as Ctrl-C would."""
        try:
            group = os.tcgetpgrp(self.stdout)
            os.killpg(group, sig)
        except OSError:
            return self.signal_group(0)
        return True

    def _signal_members(self, sig: int) -> bool:
        """Signal each live member but bwrap, again until a scan finds none new (forks)."""
        done: set[int] = {self.pid}
        while True:
            fresh = [pid for pid in _live_members(self.pgid) if pid not in done]
            if not fresh:
                return len(done) > 1 or self.signal_group(0)
            for pid in fresh:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, sig)
            done.update(fresh)

    def _reap_group(self) -> None:
        """Reap members that became our children (when this server is PID 1 or a subreaper)."""
        if not self.exited.done() or not hasattr(os, "P_PGID"):
            return
        while True:
            try:
                if os.waitid(os.P_PGID, self.pgid, os.WEXITED | os.WNOHANG) is None:
                    return
            except ChildProcessError:
                return


def _live_members(pgid: int) -> Iterator[int]:
    """The pids of ``pgid``'s members that are not zombies (one pass over /proc)."""
    try:
        entries = os.scandir(_PROC)
    except OSError:
        yield pgid  # cannot tell: count the group as alive
        return
    with entries:
        for entry in entries:
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as fh:
                    stat = fh.read()
            except OSError:
                continue  # it ended while we looked
            # fields after "(comm)": state ppid pgrp ...
            fields = stat[stat.rfind(b")") + 2 :].split(b" ", 3)
            if len(fields) > 2 and int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
                yield int(entry.name)
