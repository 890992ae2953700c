"""``sockhub echo`` and ``sockhub time``, over TCP or UDP."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from ..client import Reply, datagram
from ..client.common import TimeResult, echo_fields, time_fields
from ..protocol.text import escape
from .common import (
    EXIT_USAGE,
    CliError,
    add_client_args,
    command,
    connect,
    emit_json,
    examples,
)

__all__ = ["register"]


def udp_request(server: str, timeout: float, op: str, body: bytes, fields: dict[str, Any]) -> Reply:
    try:
        return datagram.udp_request(server, op, body, timeout=timeout, **fields)
    except ValueError as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc


def _check_udp(args: argparse.Namespace) -> None:
    """UDP is neither encrypted nor authenticated: flags that promise either are refused."""
    wrong = [
        flag
        for flag, given in (
            ("--tls", args.tls),
            ("--tls-fingerprint", args.tls_fingerprint is not None),
            ("--key-file", args.key_file is not None),
            ("--user", args.user is not None and args.user != os.environ.get("SOCKHUB_USER")),
        )
        if given
    ]
    if wrong:
        raise CliError(
            f"--udp is plain and anonymous, so {' and '.join(wrong)} would not apply: "
            f"drop --udp to use them over TCP",
            EXIT_USAGE,
        )
    if args.user is not None:
        print(
            f"sockhub: --udp is anonymous: user {args.user} (SOCKHUB_USER) is not logged in",
            file=sys.stderr,
        )


def _text(words: list[str]) -> bytes:
    """The words joined, or stdin when the only word is ``-`` (as cat and tar read it)."""
    if words == ["-"]:
        return sys.stdin.buffer.read()
    return " ".join(words).encode()


@command
def _echo(args: argparse.Namespace) -> int:
    body = _text(args.text)
    if args.udp:
        _check_udp(args)
        out = udp_request(args.server, args.timeout, "echo", body, echo_fields(args.upper)).body
    else:
        with connect(args) as client:
            out = client.echo(body, upper=args.upper)
    if args.json:
        emit_json({"ok": True, "text": out.decode("utf-8", "replace"), "size": len(out)})
    else:
        sys.stdout.write(escape(out.decode("utf-8", "replace"), None, keep_lines=True) + "\n")
    return 0


@command
def _time(args: argparse.Namespace) -> int:
    fields = time_fields(args.format, args.utc)
    if args.udp:
        _check_udp(args)
        result = TimeResult.from_reply(udp_request(args.server, args.timeout, "time", b"", fields))
    else:
        with connect(args) as client:
            result = client.time(args.format, utc=args.utc)
    if args.json:
        emit_json({"ok": True, "unix": result.unix, "text": result.text, "tz": result.tz})
    else:
        print(escape(result.text, None))
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser(
        "echo",
        help="send text and print what comes back",
        description="Send TEXT to the server's echo service and print the reply.",
        **examples("""
  sockhub echo hello                      # -> hello
  sockhub echo --upper hello world        # -> HELLO WORLD
  sockhub echo --udp ping                 # one datagram each way
  date | sockhub echo -                   # - sends stdin
  sockhub echo --json hi                  # {"ok": true, "text": "hi", "size": 2}
  sockhub echo -s 10.0.0.5:9696 hi        # another server (or SOCKHUB_SERVER)
"""),
    )
    p.add_argument("text", nargs="+", help="words to send (joined by spaces); - reads stdin")
    p.add_argument("--upper", action="store_true", help="ask the server to upper-case it")
    p.add_argument("--udp", action="store_true", help="use one UDP datagram instead of TCP")
    add_client_args(p)
    p.set_defaults(func=_echo)

    p = sub.add_parser(
        "time",
        help="print the server's clock",
        description="Ask the server for its time, formatted with a strftime FORMAT.",
        **examples("""
  sockhub time                            # 2026-11-22 10:06:40
  sockhub time --utc --format '%H:%M:%S %Z'
  sockhub time --udp --json               # {"ok": true, "unix": ..., "text": ..., "tz": ...}
"""),
    )
    p.add_argument("--format", "-f", help="strftime format, at most 256 characters")
    p.add_argument("--utc", action="store_true", help="UTC instead of the server's local time")
    p.add_argument("--udp", action="store_true", help="use one UDP datagram instead of TCP")
    add_client_args(p)
    p.set_defaults(func=_time)
