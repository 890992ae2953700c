"""exec (PROTOCOL.md section 8): the op table, who may run how much, and every run's owner.

Runs belong to the service, not to the connection that asked for them: when a client
goes away its connection's tasks are cancelled at once, but its processes still have
to be signalled, waited for and reaped, which takes up to two grace periods. The
service keeps every run's task and ``stop`` waits for all of them.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import signal
from collections.abc import Awaitable, Iterable
from pathlib import Path

from ...protocol.errors import BadRequest, ExecDisabled, ExecNoSuchRun, LimitBusy
from ...protocol.fields import get_id, get_str
from ...server.config import ConfigError
from ...server.service import OpSpec, Request, ServerContext, Service, Session
from .pty import parse_size
from .request import base_environment, parse_run
from .runs import Run
from .sandbox import Sandbox, SandboxUnavailable

__all__ = ["ExecService"]

log = logging.getLogger("sockhub.exec")

_OPS = ("exec.run", "exec.in", "exec.kill", "exec.resize")
_NOT_SIGNALS = frozenset({"CHLD", "CLD"})


def parse_signal(header: dict[str, object]) -> int:
    name = get_str(header, "signal", "TERM", max_len=16).upper().removeprefix("SIG")
    try:
        if name in _NOT_SIGNALS:
            raise KeyError(name)
        return int(signal.Signals[f"SIG{name}"])
    except KeyError:
        raise BadRequest(f"field 'signal': {name!r} is not a signal name like TERM") from None


PROBE_INTERVAL = 0.5
"""Seconds between pings to a connection that has commands running.

A client that closed its socket without a word (FIN, no ``bye``) looks like a client
that only half-closed (which may still want its output, like ``nc -N``) until
something is written to it: the kernel then answers with a reset and the connection
ends, and with it the client's commands. A silent command writes nothing, so we ping."""

_RECENT = 64
"""Finished runs remembered per connection, so input or a kill that crossed ``exec.exit``
on the wire is dropped quietly instead of answered with ``exec.no_such_run``."""


def _sandbox(ctx: ServerContext, root: Path) -> Sandbox | None:
    """The sandbox for every command, or None when the operator chose to run without one.

    No sandbox and no such choice is a refusal to start: exec must never quietly give a
    command the server's own view of the machine.
    """
    if ctx.config.exec_unsandboxed:
        log.warning("exec: commands run WITHOUT a sandbox, as this server's user (%s)", root)
        return None
    try:
        box = Sandbox.probe(root, [ctx.data.resolve()])
    except SandboxUnavailable as exc:
        raise ConfigError(
            f"exec needs a sandbox and {exc}; install bubblewrap, or pass --exec-unsandboxed "
            "(exec_unsandboxed = true) to run commands as the server's user (docs/exec.md)"
        ) from exc
    log.info("exec: commands run in a %s sandbox rooted at %s", box.name, root)
    return box


class _Sessions:
    """The runs of each connection, and whose reading each run's stdin backlog paused."""

    def __init__(self) -> None:
        self.runs: dict[Session, dict[int, Run]] = {}
        self.recent: dict[Session, collections.deque[int]] = {}
        self.pausing: dict[Session, set[Run]] = {}

    def backlog(self, run: Run, on: bool) -> None:
        session = run.req.session
        pausing = self.pausing.setdefault(session, set())
        was_paused = bool(pausing)
        if on:
            pausing.add(run)
        else:
            pausing.discard(run)
        if not was_paused and pausing:
            session.pause_reading(self)
        elif was_paused and not pausing:
            session.resume_reading(self)
        if not pausing:
            del self.pausing[session]


class ExecService(Service):
    """Remote commands; constructed disabled, it still answers, with ``exec.disabled``."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.name = "exec" if enabled else ""
        self.root = Path()
        self._ctx: ServerContext | None = None
        self._env: dict[str, str] = {}
        self._sandbox: Sandbox | None = None
        self._sessions = _Sessions()
        self._per_user: collections.Counter[str] = collections.Counter()
        self._tasks: set[asyncio.Task[None]] = set()
        self._ping_ids = itertools.count(1)

    def ops(self) -> Iterable[OpSpec]:
        if not self.enabled:
            return tuple(OpSpec(op, _disabled, "exec") for op in _OPS)
        return (
            OpSpec("exec.run", self._run, "exec", grant="exec"),
            OpSpec("exec.in", self._in, "exec", grant="exec"),
            OpSpec("exec.kill", self._kill, "exec", grant="exec"),
            OpSpec("exec.resize", self._resize, "exec", grant="exec"),
        )

    async def start(self, ctx: ServerContext) -> None:
        self._ctx = ctx
        if not self.enabled:
            return
        root = ctx.config.exec_root or ctx.data / "exec"
        root.mkdir(parents=True, exist_ok=True)
        self.root = root.resolve()
        self._env = base_environment()
        self._sandbox = _sandbox(ctx, self.root)
        if self._sandbox is not None:
            self._env["HOME"] = str(self.root)
        ctx.background.every(PROBE_INTERVAL, self._probe, "exec prober")

    async def stop(self) -> None:
        for runs in list(self._sessions.runs.values()):
            for run in list(runs.values()):
                run.abort()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # ops ------------------------------------------------------------------------------

    def _run(self, req: Request) -> Awaitable[None]:
        assert self._ctx is not None
        limits = self._ctx.limits
        if req.id is None:
            raise BadRequest("exec.run needs an 'id' to answer")
        spec = parse_run(req.header, self.root, self._env, limits)
        session = req.session
        user = session.user or ""
        runs = self._sessions.runs.get(session)
        if runs is not None and len(runs) >= limits.exec_per_connection:
            raise LimitBusy(f"this connection already runs {limits.exec_per_connection} commands")
        if self._per_user[user] >= limits.exec_per_user:
            raise LimitBusy(f"user {user} already runs {limits.exec_per_user} commands")
        if sum(self._per_user.values()) >= limits.exec_total:
            raise LimitBusy(f"the server already runs {limits.exec_total} commands; try later")
        run = Run(req, spec, limits, self._sessions.backlog, self._sandbox)
        run.start()
        if runs is None:
            runs = self._sessions.runs[session] = {}
            session.on_close(lambda: self._closed(session))
        runs[req.id] = run
        self._per_user[user] += 1
        task = asyncio.get_running_loop().create_task(self._main(run, user))
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return _follow(task)

    def _in(self, req: Request) -> None:
        run = self._target(req)
        if run is None:
            return
        if not run.spec.stdin:
            raise BadRequest(f"run {run.req.id} was started without 'stdin': true")
        if run.stdin is not None and run.stdin.eof:
            raise BadRequest(f"the input of run {run.req.id} is already closed")
        run.feed(req.body)
        req.ok()

    def _kill(self, req: Request) -> None:
        sig = parse_signal(req.header)
        run = self._target(req)
        if run is not None:
            run.kill(sig)
        req.ok()

    def _resize(self, req: Request) -> None:
        cols, rows = parse_size(req.header)
        run = self._target(req)
        if run is not None:
            if run.spec.pty is None:
                raise BadRequest(f"run {run.req.id} was started without a 'pty'")
            run.resize(cols, rows)
        req.ok()

    def _target(self, req: Request) -> Run | None:
        """The run ``target`` names; None for one that has just finished."""
        target = get_id(req.header, "target")
        if target is None:
            raise BadRequest("field 'target' is required: the id of the exec.run")
        run = self._sessions.runs.get(req.session, {}).get(target)
        if run is None and target not in self._sessions.recent.get(req.session, ()):
            raise ExecNoSuchRun(f"no command with id {target} runs on this connection")
        return run

    # bookkeeping ----------------------------------------------------------------------

    def _probe(self) -> None:
        for session, runs in list(self._sessions.runs.items()):
            if runs:
                session.send({"op": "ping", "id": next(self._ping_ids)})

    def _closed(self, session: Session) -> None:
        self._sessions.recent.pop(session, None)
        for run in self._sessions.runs.pop(session, {}).values():
            run.abort()

    async def _main(self, run: Run, user: str) -> None:
        """Run to the end, then free its places in the limits in the same step as its reply,
        so a client that starts the next command on ``exec.exit`` never finds them taken."""
        try:
            await run.main()
        finally:
            self._release(run, user)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("exec run failed", exc_info=task.exception())

    def _release(self, run: Run, user: str) -> None:
        self._per_user[user] -= 1
        if self._per_user[user] <= 0:
            del self._per_user[user]
        session = run.req.session
        rid: int = run.req.id  # type: ignore[assignment]
        runs = self._sessions.runs.get(session)
        if runs is not None:
            runs.pop(rid, None)
            recent = self._sessions.recent.setdefault(session, collections.deque(maxlen=_RECENT))
            recent.append(rid)
        self._sessions.backlog(run, False)


async def _follow(task: asyncio.Task[None]) -> None:
    """The request's own task: waits for the run, which a disconnect must not cancel."""
    await asyncio.shield(task)


def _disabled(req: Request) -> None:
    raise ExecDisabled("exec is not enabled on this server (sockhub serve --exec)")
