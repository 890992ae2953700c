"""The ``sockhub`` command: one subcommand per module, each teaching by example in --help."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from .._version import __version__
from . import basic, chat, exec, files, lab, serve, talk, user
from .common import EXIT_USAGE, examples, fail
from .environment import unknown_variables

__all__ = ["build_parser", "main"]

COMMANDS = (serve, user, basic, talk, exec, files, chat, lab)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sockhub",
        description=(
            "One server, one port, one framed protocol: echo, time, chat, files and remote exec "
            "over TCP, TLS, UNIX sockets and UDP."
        ),
        **examples("""
  sockhub serve                          # start a local server (prints how to connect)
  sockhub echo hello                     # talk to it
  sockhub time --utc
  sockhub user add alice --grant chat,files --key-out alice.key   # once; key file 0600
  sockhub COMMAND --help                 # every command has examples
exit codes: 0 ok, 1 the operation failed, 2 usage error, 3 cannot connect or authenticate;
  exec: the remote command's status (128+N for signal N), 255 when sockhub itself failed
"""),
    )
    parser.add_argument("--version", action="version", version=f"sockhub {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    if args.command != "serve":  # serve refuses them, as it refuses unknown TOML keys
        for name in unknown_variables(os.environ):
            print(f"sockhub: ignoring unknown variable {name}", file=sys.stderr)
    try:
        code: int = args.func(args)
    except (Exception, KeyboardInterrupt) as exc:  # commands report their own; this is the net
        return fail(args, exc)
    return code


if __name__ == "__main__":
    sys.exit(main())
