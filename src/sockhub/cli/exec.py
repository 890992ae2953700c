"""``sockhub exec``: run a command on the server the way ssh would, but with a timeout.

Output is written here as it arrives (stdout to stdout, stderr to stderr), local stdin
goes to the command when it is not a terminal, Ctrl-C becomes ``exec.kill INT`` (twice:
KILL). On a terminal (or with ``-t``) the command gets a remote pty instead
(``exec_tty.py``). The exit status is the command's: 128+N when signal N ended it, 255 when
sockhub itself failed (cannot connect, refused), as with ssh.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import threading
from typing import Any

from ..client.exec import AsyncRemoteProcess, Completed
from ..server.loop import run
from .common import (
    EXIT_USAGE,
    CliError,
    add_client_args,
    connect_async,
    emit_json,
    examples,
    fail,
)
from .exec_tty import pty_fields, run_on_pty, wants_pty

__all__ = ["register"]

EXIT_OWN = 255
_STDIN_READ = 256 * 1024


def _command(words: list[str]) -> str | list[str]:
    """One word is a shell command line; several are an argv, run without a shell."""
    if words[:1] == ["--"]:
        words = words[1:]
    if not words:
        raise CliError("name a command: sockhub exec [OPTIONS] -- CMD...", EXIT_USAGE)
    return words[0] if len(words) == 1 else words


def _env(pairs: list[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise CliError(f"-e wants NAME=VALUE, not {pair!r}", EXIT_USAGE)
        env[name] = value
    return env


def _stdin_is_data() -> bool:
    """Forward stdin only when it is data (a pipe, a file), never a terminal."""
    try:
        os.fstat(0)
    except OSError:
        return False
    return not os.isatty(0)


def _read_stdin(loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[bytes]) -> None:
    """In a daemon thread: blocking reads of any kind of stdin, handed to the loop in order."""
    while True:
        try:
            data = os.read(0, _STDIN_READ)
        except OSError:
            data = b""
        try:
            asyncio.run_coroutine_threadsafe(queue.put(data), loop).result()
        except RuntimeError:
            return  # the loop is gone: the command is over
        if not data:
            return


async def _forward_stdin(proc: AsyncRemoteProcess) -> None:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=4)
    threading.Thread(target=_read_stdin, args=(loop, queue), daemon=True).start()
    while data := await queue.get():
        await proc.write(data)
    await proc.close_stdin()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


async def _stream(proc: AsyncRemoteProcess) -> Completed:
    """Copy output here as it comes; if our stdout is closed, end the command like a pipe would."""
    async for out in proc:
        try:
            _write_all(2 if out.stream == "stderr" else 1, out.data)
        except BrokenPipeError:
            proc.kill("PIPE")
            with contextlib.suppress(OSError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # no complaint at exit
            return await proc.wait()
    assert proc.result is not None
    return proc.result


def _interrupts(proc: AsyncRemoteProcess) -> None:
    presses = 0

    def on_int() -> None:
        nonlocal presses
        presses += 1
        proc.kill("INT" if presses == 1 else "KILL")

    asyncio.get_running_loop().add_signal_handler(signal.SIGINT, on_int)


async def _exec(args: argparse.Namespace, cmd: str | list[str], env: dict[str, str]) -> int:
    client = await connect_async(args)
    feeder: asyncio.Task[None] | None = None
    try:
        pty = wants_pty(args.tty, args.json)
        forward = pty or _stdin_is_data()
        proc = client.open_process(
            cmd,
            timeout=args.run_timeout,
            cwd=args.cwd,
            env=env,
            stdin=forward,
            pty=pty_fields() if pty else None,
        )
        if not pty:
            _interrupts(proc)
        if forward:
            feeder = asyncio.get_running_loop().create_task(_forward_stdin(proc))
        if pty:
            result = await run_on_pty(proc, _stream)
        else:
            result = await proc.wait() if args.json else await _stream(proc)
    finally:
        if feeder is not None:
            feeder.cancel()
        await client.close()
    _report(args, result)
    return result.exit_code


def _report(args: argparse.Namespace, result: Completed) -> None:
    if args.json:
        emit_json(
            {
                "ok": result.ok,
                "status": result.status,
                "signal": result.signal,
                "timed_out": result.timed_out,
                "truncated": result.truncated,
                "elapsed": result.elapsed,
                "stdout": result.stdout.decode("utf-8", "replace"),
                "stderr": result.stderr.decode("utf-8", "replace"),
            }
        )
        return
    if result.timed_out:
        print(f"sockhub: timed out after {result.elapsed:.3g} s", file=sys.stderr)
    if result.truncated:
        print("sockhub: output beyond the server's limit was dropped", file=sys.stderr)


def _main(args: argparse.Namespace) -> int:
    """The command's status; sockhub's own failures are 255 (2 for usage), as with ssh."""
    try:
        cmd = _command(args.cmd)
        env = _env(args.env)
        return run(_exec(args, cmd, env))
    except (Exception, KeyboardInterrupt) as exc:
        code = fail(args, exc)
        return code if code in (EXIT_USAGE, 130) else EXIT_OWN


def register(sub: Any) -> None:
    p = sub.add_parser(
        "exec",
        help="run a command on the server (needs the exec grant and serve --exec)",
        description=(
            "Run CMD on the server, in its exec root, and stream its output here. One word "
            "is a shell command line (quote it: 'ls | wc -l'); several words are run "
            "without a shell, exactly as given. On a terminal (or with -t) the command "
            "runs on a remote pty, as with ssh -t: keys, Ctrl-C and window size reach it. "
            "Otherwise stdin is forwarded when piped and Ctrl-C sends INT to the remote "
            "command (twice: KILL). The exit "
            "status is the command's (128+N for signal N); 255 means sockhub failed."
        ),
        conflict_handler="resolve",
        **examples("""
  export SOCKHUB_USER=alice SOCKHUB_KEY=$(cat alice.key)   # a user with the exec grant
  sockhub exec -- uname -a                      # argv, no shell
  sockhub exec -t -- python3                    # interactive, on a remote terminal
  sockhub exec -- 'ls -l | head -3'             # one word: the server's /bin/sh runs it
  sockhub exec --timeout 5 -- sleep 60          # TERM at 5 s (KILL 2 s on if needed): 143
  echo hello | sockhub exec -- tr a-z A-Z       # stdin is forwarded: HELLO
  sockhub exec --cwd build -e CC=clang -- make  # in EXEC_ROOT/build, with CC set
  sockhub exec --json -- 'echo hi; exit 3'      # {"ok": false, "status": 3, ..., "stdout": "hi\\n"}
"""),
    )
    add_client_args(p)
    p.add_argument(
        "--timeout",
        dest="run_timeout",
        type=float,
        metavar="S",
        help="end the command after S seconds (the server caps it; default the server's)",
    )
    p.add_argument(
        "--connect-timeout",
        dest="timeout",
        type=float,
        default=10.0,
        metavar="S",
        help="give up connecting after S seconds (default 10)",
    )
    tty = p.add_mutually_exclusive_group()
    tty.add_argument(
        "-t",
        "--tty",
        dest="tty",
        action="store_true",
        default=None,
        help="run on a remote terminal (a pty), like ssh -t: for shells, editors, REPLs; "
        "the default when stdin and stdout are both a terminal",
    )
    tty.add_argument(
        "-T",
        "--no-tty",
        dest="tty",
        action="store_false",
        help="never a pty: separate stdout and stderr, stdin forwarded only when piped",
    )
    p.add_argument("--cwd", metavar="DIR", help="folder inside the server's exec root")
    p.add_argument(
        "-e",
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set a variable for the command (repeatable); the rest is a clean environment",
    )
    p.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- CMD...", help="the command")
    p.set_defaults(func=_main)
