"""One run from start to reaping: output, input, signals, timeout, the group's end.

The order of a run's end is PROTOCOL.md section 8's: the main process exits (or is
made to, at the timeout or when its client goes away: TERM to the group, KILL after
the grace period); then the rest of its group gets TERM, then KILL after the grace
period; then the pipes are read to their end and ``exec.exit`` is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable

from ...protocol.errors import LimitBusy
from ...server.limits import Limits
from ...server.service import Request
from .pipes import InputPipe, OutputPipe
from .pty import set_size
from .request import RunSpec
from .sandbox import Sandbox
from .spawn import Child, Exit, SpawnError, spawn, spawn_pty

__all__ = ["Run"]

log = logging.getLogger("sockhub.exec")

KILL_WAIT = 10.0
"""How long a group may take to vanish after KILL before we stop waiting and say so."""
_POLL_FIRST, _POLL_MAX = 0.002, 0.05


class Run:
    """A command started for one ``exec.run`` request; ``main`` drives it to the end."""

    def __init__(
        self,
        req: Request,
        spec: RunSpec,
        limits: Limits,
        backlog: Callable[[Run, bool], None],
        sandbox: Sandbox | None,
    ) -> None:
        self.req = req
        self._sandbox = sandbox
        self.spec = spec
        self._limits = limits
        self._backlog = backlog
        self._loop = asyncio.get_running_loop()
        self._wake: asyncio.Future[None] = self._loop.create_future()
        self._stop_reason: str | None = None
        self._left = limits.exec_output_max
        self.truncated = False
        self.timed_out = False
        self.child: Child | None = None
        self.stdin: InputPipe | None = None
        self._spawn_error: SpawnError | None = None
        self._started = 0.0

    # what the service calls -----------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """An ``exec.in`` body; empty means end of input."""
        if self.stdin is None:
            return
        if data:
            self.stdin.write(data)
        else:
            self.stdin.write_eof()

    def resize(self, cols: int, rows: int) -> None:
        """``exec.resize``: the pty's new size (its program gets SIGWINCH from the kernel).

        Set through the writing end, which lives as long as the run takes input.
        """
        child, stdin = self.child, self.stdin
        if child is not None and child.stdin is not None and stdin is not None and not stdin.closed:
            with contextlib.suppress(OSError):
                set_size(child.stdin, cols, rows)

    def kill(self, sig: int) -> None:
        """``exec.kill``: the signal goes to the whole group, as a terminal's Ctrl-C does."""
        if self.child is not None and not self.child.exited.done():
            self.child.signal_group(sig)

    def abort(self) -> None:
        """The client went away or the server is stopping: end the run like a timeout."""
        self._stop("abort")

    # the run ---------------------------------------------------------------------------

    def start(self) -> None:
        """Spawn now, inside the handler, so input sent right behind the request has a pipe.

        A program that cannot run is the run's result (127 or 126, as from sh), told in
        ``main``; a server out of processes or descriptors is ``limit.busy`` at once.
        """
        spec = self.spec
        self._started = self._loop.time()
        try:
            if spec.pty is not None:
                self.child = spawn_pty(spec.argv, spec.cwd, spec.env, spec.pty, self._sandbox)
            else:
                self.child = spawn(spec.argv, spec.cwd, spec.env, spec.stdin, self._sandbox)
        except SpawnError as exc:
            self._spawn_error = exc
            return
        except OSError as exc:
            log.warning("exec: cannot start a process: %s", exc)
            raise LimitBusy(f"the server cannot start a process now: {exc.strerror}") from exc
        if self.child.stdin is not None:
            self.stdin = InputPipe(
                self.child.stdin, lambda on: self._backlog(self, on), self._limits.exec_input_high
            )

    async def main(self) -> None:
        child = self.child
        if child is None:
            error = self._spawn_error
            assert error is not None
            await self._deliver("stderr", f"sockhub: {error}\n".encode(errors="replace"))
            self._reply(Exit(error.status, None), self._loop.time() - self._started)
            return
        pipes = [OutputPipe(child.stdout, lambda data: self._deliver("stdout", data))]
        if child.stderr is not None:
            pipes.append(OutputPipe(child.stderr, lambda data: self._deliver("stderr", data)))
        readers = [self._loop.create_task(p.run()) for p in pipes]
        timer = self._loop.call_later(self.spec.timeout, self._stop, "timeout")
        child.exited.add_done_callback(lambda _: self._wake_up())
        try:
            await self._wake
            timer.cancel()
            self.timed_out = self._stop_reason == "timeout" and not child.exited.done()
            if not child.exited.done():
                await self._end_group(child, main_alive=True)
            ended = await asyncio.shield(child.exited)
            elapsed = self._loop.time() - self._started
            if self.stdin is not None:
                self.stdin.close()
            await self._end_group(child, main_alive=False)
            for p in pipes:
                p.finish()
            await asyncio.gather(*readers)
            self._reply(ended, elapsed)
        finally:
            timer.cancel()
            if not child.exited.done():  # cancelled (the loop is closing) or a bug: no orphans
                child.signal_group(signal.SIGKILL)
            if self.stdin is not None:
                self.stdin.close()
            for task in readers:
                task.cancel()

    def _stop(self, reason: str) -> None:
        if self._stop_reason is None:
            self._stop_reason = reason
        self._wake_up()

    def _wake_up(self) -> None:
        if not self._wake.done():
            self._wake.set_result(None)

    async def _end_group(self, child: Child, *, main_alive: bool) -> None:
        """TERM the group, give it the grace period, then KILL what is left.

        While the main process lives, "gone" means it has exited; afterwards it means
        no member of the group is left running.
        """
        if not child.signal_group(signal.SIGTERM):
            return
        child.signal_group(signal.SIGCONT)  # a stopped process must wake to die of TERM
        grace = self._limits.exec_kill_grace
        if await self._gone(child, main_alive, grace):
            return
        child.signal_group(signal.SIGKILL)
        if not await self._gone(child, main_alive, KILL_WAIT):
            log.warning("exec: process group %d outlived KILL for %g s", child.pgid, KILL_WAIT)

    async def _gone(self, child: Child, main_alive: bool, within: float) -> bool:
        if main_alive:
            try:
                await asyncio.wait_for(asyncio.shield(child.exited), within)
            except TimeoutError:
                return False
            return True
        deadline = self._loop.time() + within
        pause = _POLL_FIRST
        while child.group_alive():
            left = deadline - self._loop.time()
            if left <= 0:
                return False
            await asyncio.sleep(min(pause, left))
            pause = min(pause * 2, _POLL_MAX)
        return True

    # talking to the client -------------------------------------------------------------

    async def _deliver(self, stream: str, data: bytes) -> None:
        """Send output within the run's limit; past it, drop it and remember that we did."""
        if self._left <= 0:
            self.truncated = True
            return
        if len(data) > self._left:
            data = data[: self._left]
            self.truncated = True
        self._left -= len(data)
        session = self.req.session
        if session.closed:
            return
        self.req.send({"op": "exec.out", "stream": stream}, data)
        try:
            await session.drain()
        except ConnectionError:
            return  # the client is gone; abort() is on its way

    def _reply(self, ended: Exit, elapsed: float) -> None:
        self.req.reply(
            {
                "op": "exec.exit",
                "status": ended.status,
                "signal": ended.signal,
                "timed_out": self.timed_out,
                "truncated": self.truncated,
                "elapsed": round(elapsed, 6),
            }
        )
