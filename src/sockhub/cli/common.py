"""What every client command shares: connection flags, output, errors and exit codes.

Exit codes (DESIGN.md): 0 success, 1 the operation failed (an error frame, a deadline),
2 usage error, 3 cannot connect or authenticate, or the peer is not a sockhub server.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
from collections.abc import Callable
from typing import Any

from ..client import (
    AsyncClient,
    Client,
    ConnectError,
    ConnectionBroken,
    ConnectionClosed,
    NotSockhubServer,
    SockhubError,
    read_key,
)
from ..protocol.errors import AuthFailed, LimitBusy, LimitRate, ProtocolError
from ..protocol.text import escape

__all__ = [
    "EXIT_CONNECT",
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "CliError",
    "add_client_args",
    "command",
    "connect",
    "connect_async",
    "emit_json",
    "examples",
]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CONNECT = 0, 1, 2, 3


class CliError(Exception):
    """A failure with the message and exit code the user should see."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


def examples(text: str) -> dict[str, Any]:
    """argparse keyword arguments for a help text that ends with worked examples."""
    return {
        "epilog": "examples:\n" + text.strip("\n"),
        "formatter_class": argparse.RawDescriptionHelpFormatter,
    }


def add_client_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "connection (also from SOCKHUB_SERVER, SOCKHUB_USER, SOCKHUB_KEY)"
    )
    group.add_argument(
        "--server",
        "-s",
        metavar="HOST:PORT",
        default=os.environ.get("SOCKHUB_SERVER", "127.0.0.1:9696"),
        help="server address, or unix:PATH (default %(default)s)",
    )
    group.add_argument(
        "--user", "-u", default=os.environ.get("SOCKHUB_USER"), help="log in as USER"
    )
    group.add_argument(
        "--key-file",
        metavar="FILE",
        help="file holding your base64 key (else SOCKHUB_KEY; never on the command line)",
    )
    group.add_argument(
        "--tls", action="store_true", help="use TLS, pinning the server on first use"
    )
    group.add_argument(
        "--tls-fingerprint", metavar="SHA256", help="expect exactly this certificate"
    )
    group.add_argument(
        "--known-hosts", metavar="FILE", help="pin file (default ~/.config/sockhub/known_hosts)"
    )
    group.add_argument("--timeout", type=float, default=10.0, help="connect timeout in seconds")
    parser.add_argument("--json", action="store_true", help="print one JSON object per result")


def _connect_args(args: argparse.Namespace) -> dict[str, Any]:
    key = read_key(args.key_file) if (args.user or args.key_file) else None
    if args.key_file and not args.user:
        raise CliError("--key-file needs --user (or SOCKHUB_USER)", EXIT_USAGE)
    return {
        "user": args.user,
        "key": key,
        "tls": args.tls,
        "fingerprint": args.tls_fingerprint,
        "known_hosts": args.known_hosts,
        "timeout": args.timeout,
    }


def _report_pin(client: Client | AsyncClient) -> None:
    if client.pinned_now:
        print(
            f"sockhub: pinned TLS fingerprint of {client.options.address}: {client.fingerprint}",
            file=sys.stderr,
        )


def connect(args: argparse.Namespace) -> Client:
    """A blocking client from the common flags; errors become exit code 3."""
    try:
        client = Client.connect(args.server, **_connect_args(args))
    except ValueError as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc
    _report_pin(client)
    return client


async def connect_async(args: argparse.Namespace) -> AsyncClient:
    """``connect`` for commands that need to read and write at once (exec, chat)."""
    try:
        client = await AsyncClient.connect(args.server, **_connect_args(args))
    except ValueError as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc
    _report_pin(client)
    return client


def emit_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def command(
    func: Callable[[argparse.Namespace], int | None],
) -> Callable[[argparse.Namespace], int]:
    """Run a command, turning every known failure into a message on stderr and an exit code."""

    @functools.wraps(func)
    def wrapper(args: argparse.Namespace) -> int:
        try:
            return func(args) or EXIT_OK
        except (Exception, KeyboardInterrupt) as exc:
            return fail(args, exc)

    return wrapper


def fail(args: argparse.Namespace, exc: BaseException) -> int:
    """Report any failure the one way (message, JSON object, exit code) and return the code."""
    if isinstance(exc, CliError):
        return _fail(args, str(exc), exc.code, None)
    if isinstance(exc, NotSockhubServer):
        return _fail(args, str(exc), EXIT_CONNECT, "not_sockhub")
    if isinstance(exc, ConnectError | AuthFailed | LimitBusy | LimitRate):
        code = exc.code if isinstance(exc, ProtocolError) else "connect"
        return _fail(args, str(exc), EXIT_CONNECT, code)
    if isinstance(exc, ProtocolError):
        return _fail(args, f"{exc.code}: {exc.message}", EXIT_FAILED, exc.code)
    if isinstance(exc, ConnectionClosed | ConnectionBroken):
        return _fail(args, str(exc), EXIT_CONNECT, "closed")
    if isinstance(exc, SockhubError):  # a deadline, a full queue, a local mistake
        return _fail(args, str(exc), EXIT_FAILED, type(exc).__name__)
    if isinstance(exc, OSError):
        return _fail(args, str(exc), EXIT_FAILED, "cli")
    if isinstance(exc, KeyboardInterrupt):
        return 130
    raise exc


def _fail(args: argparse.Namespace, message: str, code: int, wire_code: str | None) -> int:
    if getattr(args, "json", False):
        emit_json({"ok": False, "error": wire_code or "cli", "message": message})
    print(f"sockhub: {escape(message, None, keep_lines=True)}", file=sys.stderr)
    return code
