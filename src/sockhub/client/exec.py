"""Remote exec from Python, shaped like ``subprocess`` (PROTOCOL.md section 8).

``client.run(cmd)`` returns a ``Completed`` (``check=True`` raises ``RemoteProcessError``
carrying it); ``client.open_process(cmd, stdin=True)`` streams: iterate it for
``Output`` chunks as they arrive, ``write`` to its stdin, ``kill`` it, ``wait`` for the
result. A ``str`` command runs under the server's shell; a list runs without one.

The two clients' methods are thin shells over what is here: the request fields, the
reading of output and exit frames, and the result.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypedDict

from ..protocol.errors import SockhubError
from ..protocol.frames import encode_frame
from .common import Reply
from .errors import RemoteProtocolError

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ..protocol.client_events import Chunk

__all__ = [
    "AsyncExecMixin",
    "AsyncRemoteProcess",
    "Completed",
    "ExecMixin",
    "Output",
    "RemoteProcess",
    "RemoteProcessError",
]

Command = str | Sequence[str]
_DEFAULT_MAX_BODY = 1024 * 1024
_INPUT_CHUNK = 256 * 1024
_PARTIAL = frozenset({"exec.out"})


@dataclass(frozen=True, slots=True)
class Completed:
    """A finished remote command, like ``subprocess.CompletedProcess``.

    ``status`` is the exit status, or None when ``signal`` (``"TERM"``) ended it;
    ``timed_out`` says the server's timeout did; ``truncated`` that output past the
    server's limit was dropped.
    """

    args: str | list[str]
    status: int | None
    signal: str | None
    stdout: bytes
    stderr: bytes
    timed_out: bool
    truncated: bool
    elapsed: float

    @property
    def returncode(self) -> int:
        """subprocess's convention: the status, or minus the signal number."""
        return self.status if self.status is not None else -_signal_number(self.signal)

    @property
    def exit_code(self) -> int:
        """A shell's convention (and ssh's): the status, or 128 + the signal number."""
        return self.status if self.status is not None else 128 + _signal_number(self.signal)

    @property
    def ok(self) -> bool:
        return self.status == 0 and not self.timed_out

    def check(self) -> Completed:
        """This result, or ``RemoteProcessError`` when the command failed or timed out."""
        if not self.ok:
            raise RemoteProcessError(self)
        return self


class RemoteProcessError(SockhubError):
    """A remote command failed (``check=True``); ``result`` has its output and status."""

    def __init__(self, result: Completed) -> None:
        self.result = result
        if result.timed_out:
            what = f"timed out after {result.elapsed:.3g} s"
        elif result.status is None:
            what = f"was ended by signal {result.signal}"
        else:
            what = f"exited with status {result.status}"
        super().__init__(f"remote command {result.args!r} {what}")

    @property
    def status(self) -> int | None:
        return self.result.status

    @property
    def signal(self) -> str | None:
        return self.result.signal

    @property
    def stdout(self) -> bytes:
        return self.result.stdout

    @property
    def stderr(self) -> bytes:
        return self.result.stderr


@dataclass(frozen=True, slots=True)
class Output:
    """A piece of output as the command produced it: ``stream`` is stdout or stderr."""

    stream: str
    data: bytes


def _signal_number(name: str | None) -> int:
    if name is None:
        return 0
    if name.isdigit():
        return int(name)
    try:
        return int(signal.Signals[f"SIG{name}"])
    except KeyError:
        return 127  # a signal this machine has no name for: still "killed", 255 at most


class Where(TypedDict, total=False):
    """Where and how a command runs: the server's ``timeout`` (seconds), ``cwd``, ``env``,
    and ``pty`` (``{"cols": 80, "rows": 24, "term": "xterm"}``) to run it on a terminal."""

    timeout: float | None
    cwd: str | None
    env: dict[str, str] | None
    pty: dict[str, Any] | None


class RunOptions(Where, total=False):
    """``run``'s options on both clients: ``Where``, ``input`` (sent to stdin, then
    closed) and ``check`` (raise ``RemoteProcessError`` unless the status is 0)."""

    input: bytes | str | None
    check: bool


def run_fields(cmd: Command, *, stdin: bool, **where: Unpack[Where]) -> dict[str, Any]:
    """The fields of ``exec.run``: a string is a shell command, a sequence an argv."""
    timeout, cwd, env = where.get("timeout"), where.get("cwd"), where.get("env")
    pty = where.get("pty")
    fields: dict[str, Any] = {"cmd": cmd} if isinstance(cmd, str) else {"argv": list(cmd)}
    if timeout is not None:
        fields["timeout"] = timeout
    if cwd:
        fields["cwd"] = cwd
    if env:
        fields["env"] = dict(env)
    if stdin:
        fields["stdin"] = True
    if pty is not None:
        fields["pty"] = pty
    return fields


def _chunks(data: bytes | str, hello: Any) -> Iterator[memoryview]:
    """Input cut to fit the server's ``max_body``."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    limits = hello.limits if hello is not None else {}
    size = min(_INPUT_CHUNK, int(limits.get("max_body", _DEFAULT_MAX_BODY)))
    view = memoryview(raw)
    for start in range(0, len(view), size):
        yield view[start : start + size]


class _Process:
    """What both process classes share: reading the frames of one run into a result."""

    def __init__(self, rid: int, args: Command, stdin: bool) -> None:
        self.id = rid
        self.args: str | list[str] = args if isinstance(args, str) else list(args)
        self.stdin = stdin
        self.result: Completed | None = None
        self._kept: dict[str, list[bytes]] = {"stdout": [], "stderr": []}

    def _absorb(self, item: Reply | Chunk) -> Output | None:
        """An output chunk, or None after the final ``exec.exit`` (then ``result`` is set)."""
        if not isinstance(item, Reply):
            return None
        header = item.header
        if item.op == "exec.out":
            return Output(str(header.get("stream", "stdout")), item.body)
        status, sig = header.get("status"), header.get("signal")
        self.result = Completed(
            args=self.args,
            status=status if isinstance(status, int) else None,
            signal=sig if isinstance(sig, str) else None,
            stdout=b"".join(self._kept["stdout"]),
            stderr=b"".join(self._kept["stderr"]),
            timed_out=header.get("timed_out") is True,
            truncated=header.get("truncated") is True,
            elapsed=float(header.get("elapsed") or 0.0),
        )
        self._kept = {"stdout": [], "stderr": []}
        return None

    def _keep(self, out: Output) -> None:
        self._kept.setdefault(out.stream, []).append(out.data)

    def _in_frame(self, data: bytes | memoryview) -> bytes:
        return encode_frame({"op": "exec.in", "target": self.id}, data)

    def _kill_fields(self, sig: str) -> dict[str, Any]:
        return {"target": self.id, "signal": sig}

    def _resize_fields(self, cols: int, rows: int) -> dict[str, Any]:
        return {"target": self.id, "cols": cols, "rows": rows}


class _Host(Protocol):
    """What both clients offer these mixins: public methods only."""

    @property
    def hello(self) -> Any: ...

    def start_stream(
        self, op: str, body: bytes = b"", *, partial: Iterable[str], **fields: Any
    ) -> int: ...

    def send(self, op: str, body: bytes = b"", **fields: Any) -> None: ...


def _start(host: _Host, cmd: Command, stdin: bool, where: Where) -> tuple[int, Command, bool]:
    """Send ``exec.run`` (either client): the id its output will follow, the command, and
    whether it takes input from here (``stdin``, or a terminal, which always has input)."""
    rid = host.start_stream("exec.run", partial=_PARTIAL, **run_fields(cmd, stdin=stdin, **where))
    return rid, cmd, stdin or where.get("pty") is not None


# the blocking client -------------------------------------------------------------------


class _SyncHost(_Host, Protocol):
    def follow(self, rid: int) -> Iterator[Reply | Chunk]: ...

    def send_while_reading(self, data: bytes) -> None: ...


class RemoteProcess(_Process):
    """A command running on the server, for the blocking client.

    Iterating yields its ``Output`` as it arrives (not kept again in the result);
    ``wait`` reads the rest into ``result.stdout``/``stderr`` and returns the result.
    """

    def __init__(self, client: _SyncHost, rid: int, args: Command, stdin: bool) -> None:
        super().__init__(rid, args, stdin)
        self._client = client
        self._items = client.follow(rid)

    def __iter__(self) -> Iterator[Output]:
        for item in self._items:
            out = self._absorb(item)
            if out is not None:
                yield out

    def write(self, data: bytes | str) -> None:
        """Send to the command's stdin (started with ``stdin=True``)."""
        for chunk in _chunks(data, self._client.hello):
            self._client.send_while_reading(self._in_frame(chunk))

    def close_stdin(self) -> None:
        """End the command's input (it reads EOF)."""
        self._client.send_while_reading(self._in_frame(b""))

    def kill(self, sig: str = "TERM") -> None:
        """Send a signal (``"INT"``, ``"KILL"``...) to the command's whole process group."""
        self._client.send("exec.kill", **self._kill_fields(sig))

    def resize(self, cols: int, rows: int) -> None:
        """Give a command started with ``pty`` its terminal's new size."""
        self._client.send("exec.resize", **self._resize_fields(cols, rows))

    def wait(self) -> Completed:
        for out in self:
            self._keep(out)
        if self.result is None:
            raise RemoteProtocolError("the run ended without its exec.exit")
        return self.result


class ExecMixin:
    """``run`` and ``open_process`` for the blocking ``Client``."""

    def open_process(
        self: _SyncHost, cmd: Command, *, stdin: bool = False, **where: Unpack[Where]
    ) -> RemoteProcess:
        """Start a command and return at once; iterate the process for its output."""
        return RemoteProcess(self, *_start(self, cmd, stdin, where))

    def run(self: _SyncHost, cmd: Command, **options: Unpack[RunOptions]) -> Completed:
        """Run a command to its end and return its output and status."""
        input = options.get("input")
        stdin = input is not None
        proc = RemoteProcess(self, *_start(self, cmd, stdin, options))
        if input is not None:
            proc.write(input)
            proc.close_stdin()
        result = proc.wait()
        return result.check() if options.get("check") else result


# the asyncio client ----------------------------------------------------------------------


class _AsyncHost(_Host, Protocol):
    def follow(self, rid: int) -> AsyncIterator[Reply | Chunk]: ...

    async def drain(self) -> None: ...


class AsyncRemoteProcess(_Process):
    """A command running on the server, for the asyncio client (see ``RemoteProcess``)."""

    def __init__(self, client: _AsyncHost, rid: int, args: Command, stdin: bool) -> None:
        super().__init__(rid, args, stdin)
        self._client = client
        self._items = client.follow(rid)

    async def _outputs(self) -> AsyncIterator[Output]:
        async for item in self._items:
            out = self._absorb(item)
            if out is not None:
                yield out

    def __aiter__(self) -> AsyncIterator[Output]:
        return self._outputs()

    async def write(self, data: bytes | str) -> None:
        """Send to the command's stdin, waiting while the connection's buffer is full."""
        for chunk in _chunks(data, self._client.hello):
            self._client.send("exec.in", bytes(chunk), target=self.id)
            await self._client.drain()

    async def close_stdin(self) -> None:
        self._client.send("exec.in", b"", target=self.id)
        await self._client.drain()

    def kill(self, sig: str = "TERM") -> None:
        """Send a signal (``"INT"``, ``"KILL"``...) to the command's whole process group."""
        self._client.send("exec.kill", **self._kill_fields(sig))

    def resize(self, cols: int, rows: int) -> None:
        """Give a command started with ``pty`` its terminal's new size."""
        self._client.send("exec.resize", **self._resize_fields(cols, rows))

    async def wait(self) -> Completed:
        async for out in self:
            self._keep(out)
        if self.result is None:
            raise RemoteProtocolError("the run ended without its exec.exit")
        return self.result


async def _feed(proc: AsyncRemoteProcess, data: bytes | str) -> None:
    await proc.write(data)
    await proc.close_stdin()


class AsyncExecMixin:
    """``run`` and ``open_process`` for ``AsyncClient``."""

    def open_process(
        self: _AsyncHost, cmd: Command, *, stdin: bool = False, **where: Unpack[Where]
    ) -> AsyncRemoteProcess:
        """Start a command and return at once; ``async for`` over it reads its output."""
        return AsyncRemoteProcess(self, *_start(self, cmd, stdin, where))

    async def run(self: _AsyncHost, cmd: Command, **options: Unpack[RunOptions]) -> Completed:
        """Run a command to its end; input is written while its output is read."""
        input = options.get("input")
        stdin = input is not None
        proc = AsyncRemoteProcess(self, *_start(self, cmd, stdin, options))
        feeder = None if input is None else asyncio.ensure_future(_feed(proc, input))
        try:
            result = await proc.wait()
        finally:
            if feeder is not None and not feeder.done():
                feeder.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await feeder
        if feeder is not None and not feeder.cancelled() and feeder.exception() is not None:
            raise feeder.exception()  # type: ignore[misc]
        return result.check() if options.get("check") else result
