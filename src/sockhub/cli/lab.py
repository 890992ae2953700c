"""``sockhub lab``: course listeners (``serve``) and a homework checker (``check``)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import shlex
import signal
import sys
import tomllib
from pathlib import Path
from typing import Any

from ..client import parse_address, read_key
from ..lab.check import CHECKABLE, check
from ..lab.formats import DEFAULT_BASE_PORT, FORMATS
from ..lab.limits import LabLimits
from ..lab.serve import Options, RunningLab, family_ok, start_lab
from ..server.config import ConfigError, settings_of
from ..server.ratelimit import TokenBuckets
from .common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, CliError, examples
from .serve import limit_flags

__all__ = ["register"]


def _table(running: RunningLab) -> str:
    rows = [("FORMAT", "TRANSPORT", "ADDRESS", "NOTES")]
    rows += [
        (lst.format, lst.transport, f"{lst.host}:{lst.port}", lst.section)
        for lst in running.listeners
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = ["  ".join(r[i].ljust(widths[i]) for i in range(3)) + "  " + r[3] for r in rows]
    closed = [f"{name}: {why}" for name, why in running.skipped.items() if why != "not asked for"]
    if closed:
        lines += ["closed:"] + [f"  {line}" for line in closed]
    return "\n".join(lines)


async def _serve(opts: Options, as_json: bool) -> int:
    try:
        running = await start_lab(opts)
    except OSError as exc:
        print(f"sockhub lab: cannot listen: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_FAILED
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    if as_json:
        for lst in running.listeners:
            print(json.dumps(lst.as_dict(), ensure_ascii=False))
    else:
        print(_table(running))
    sys.stdout.flush()
    try:
        await stop.wait()
    finally:
        await running.close()
    return EXIT_OK


def _file_limits(path: Path) -> dict[str, Any]:
    """The ``[limits]`` table of a lab config file (the shape of ``sockhub serve``'s)."""
    try:
        with path.open("rb") as fh:
            doc = tomllib.load(fh)
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}", EXIT_USAGE) from exc
    except tomllib.TOMLDecodeError as exc:
        raise CliError(f"{path} is not valid TOML: {exc}", EXIT_USAGE) from exc
    unknown = sorted(set(doc) - {"limits"})
    if unknown or not isinstance(doc.get("limits", {}), dict):
        raise CliError(f"{path}: a lab config holds one [limits] table, not {unknown}", EXIT_USAGE)
    return dict(doc.get("limits", {}))


def _lab_limits(pairs: list[str], config: str | None) -> LabLimits:
    """The lab's limits from ``--config`` then ``--limit NAME=VALUE`` (a flag wins), read
    the way ``sockhub serve`` reads its own."""
    values = _file_limits(Path(config)) if config else {}
    values.update(limit_flags(pairs))
    try:
        return settings_of(LabLimits, values, "lab limit").check()
    except (ConfigError, ValueError) as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc


def _cmd_serve(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.INFO if not args.quiet else logging.WARNING,
        format="%(asctime)s lab: %(message)s",
        stream=sys.stderr,
    )
    if not family_ok(args.host):
        print(f"sockhub lab: cannot use host {args.host!r}", file=sys.stderr)
        return EXIT_USAGE
    if args.base_port and not 0 < args.base_port <= 65535 - len(FORMATS):
        print("sockhub lab: --port must leave room for every offset", file=sys.stderr)
        return EXIT_USAGE
    try:
        key = read_key(args.key_file) if args.user else None
        limits = _lab_limits(args.limit, args.config)
    except CliError as exc:
        print(f"sockhub lab: {exc}", file=sys.stderr)
        return exc.code
    except (OSError, ValueError) as exc:
        print(f"sockhub lab: {exc}", file=sys.stderr)
        return EXIT_USAGE
    opts = Options(
        host=args.host,
        base_port=args.base_port,
        server=args.server,
        user=args.user,
        key=key,
        lab_exec=args.lab_exec,
        room=args.room,
        only=tuple(args.only or ()),
        console=args.console,
        limits=limits,
        udp_budget=TokenBuckets(limits.udp_replies_per_sec, limits.udp_burst),
    )
    return asyncio.run(_serve(opts, args.json))


def _cmd_check(args: argparse.Namespace) -> int:
    try:
        address = parse_address(args.address)
    except ValueError as exc:
        print(f"sockhub lab check: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if address.unix is not None:
        print("sockhub lab check: course servers listen on HOST:PORT", file=sys.stderr)
        return EXIT_USAGE
    run = shlex.split(args.run) if args.run else None
    card = asyncio.run(
        check(args.format, address.host, address.port, timeout=args.timeout, run=run)
    )
    print(card.as_json() if args.json else card.render())
    return EXIT_OK if card.passed else EXIT_FAILED


def register(sub: Any) -> None:
    lab = sub.add_parser(
        "lab",
        help="the course's own programs: listeners in their formats, and a checker for theirs",
        description="Course listeners (sockhub lab serve) and a homework checker (sockhub lab check).",
        **examples("""
  sockhub lab serve --json                   # the course listeners, one JSON line each
  sockhub lab check upper 127.0.0.1:9000     # a report card for a student's server
"""),
    )
    lab_sub = lab.add_subparsers(dest="lab_command", metavar="serve|check", required=True)
    serve = lab_sub.add_parser(
        "serve",
        help="open one listener per course format (base port + fixed offsets)",
        **examples(f"""
  sockhub lab serve                          # loopback, ports {DEFAULT_BASE_PORT}.., a table
  sockhub lab serve --json                   # one JSON object a line per listener
  sockhub lab serve --port 0                 # every listener on a free port (see the table)
  SOCKHUB_USER=alice SOCKHUB_KEY=... sockhub lab serve --lab-exec   # chat bridge, files, exec
"""),
    )
    serve.add_argument("--host", default="127.0.0.1", help="listen address (default loopback)")
    serve.add_argument(
        "--port",
        dest="base_port",
        type=int,
        default=DEFAULT_BASE_PORT,
        help="base port; each format adds its offset (0: a free port each)",
    )
    serve.add_argument(
        "--server",
        default=os.environ.get("SOCKHUB_SERVER", "127.0.0.1:9696"),
        help="the sockhub server behind the chat bridge, files and exec (default %(default)s)",
    )
    serve.add_argument("--user", default=os.environ.get("SOCKHUB_USER"), help="sockhub user")
    serve.add_argument("--key-file", help="the user's key file (else SOCKHUB_KEY)")
    serve.add_argument(
        "--lab-exec",
        action="store_true",
        help="open the command-execution formats (loopback only, run by sockhub's exec service)",
    )
    serve.add_argument("--room", default="lab", help="sockhub room the course chat joins")
    serve.add_argument(
        "--console",
        action="store_true",
        help="lines typed here answer the 1:1 chats (console, udp-qq), as in the notes",
    )
    serve.add_argument(
        "--limit",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="change one bound (docs/limits.md, course lab), e.g. idle_timeout=60; repeatable",
    )
    serve.add_argument(
        "--config", metavar="FILE", help="a TOML file whose [limits] table sets lab limits"
    )
    serve.add_argument("--only", nargs="+", metavar="FORMAT", help="open only these formats")
    serve.add_argument("--json", action="store_true", help="list listeners as JSON lines")
    serve.add_argument("--quiet", action="store_true", help="log anomalies only")
    serve.set_defaults(func=_cmd_serve)
    chk = lab_sub.add_parser(
        "check",
        help="check a course server: the client's exchange, then the notes' pitfalls",
        **examples("""
  sockhub lab check upper 127.0.0.1:9000
  sockhub lab check exec-len 127.0.0.1:8080 --json
  sockhub lab check upper 127.0.0.1:9696 --run "python3 server.py"   # also tries a restart
"""),
    )
    chk.add_argument("format", choices=CHECKABLE, metavar="FORMAT", help=", ".join(CHECKABLE))
    chk.add_argument("address", metavar="HOST:PORT")
    chk.add_argument("--timeout", type=float, default=3.0, help="seconds per step (default 3)")
    chk.add_argument("--run", metavar="CMD", help="start the server with CMD (enables restart)")
    chk.add_argument("--json", action="store_true", help="the report card as JSON")
    chk.set_defaults(func=_cmd_check)
