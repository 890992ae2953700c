"""What every client command shares: connection flags, output, errors and exit codes.

Exit codes (DESIGN.md): 0 success, 1 the operation failed (an error frame, a deadline, a
local file missing or that cannot be written), 2 usage error, 3 cannot connect or
authenticate (a missing grant included), or the peer is not a sockhub server. Every failure
is one line on stderr, ``sockhub: what happened: what to do``; with ``--json`` the same as
``{"ok": false, "error": CODE, "message": TEXT}`` on stdout. Never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import functools
import json
import os
import re
import ssl
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
    RequestTimeout,
    SockhubError,
    read_key,
)
from ..protocol.errors import AuthFailed, AuthRequired, LimitBusy, LimitRate, ProtocolError
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
    "connect_hint",
    "emit_json",
    "examples",
    "fail",
    "local_error",
    "quiet_stdout",
]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CONNECT = 0, 1, 2, 3


class CliError(Exception):
    """A failure with the message and exit code the user should see.

    ``error`` is the JSON error code; by default ``usage`` for exit code 2, else ``cli``.
    """

    def __init__(self, message: str, code: int = EXIT_FAILED, error: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.error = error or ("usage" if code == EXIT_USAGE else "cli")


def local_error(exc: OSError) -> str:
    """A local file problem as a sentence: which path, what is wrong, what to do."""
    where = f"{exc.filename}: " if exc.filename else ""
    what = exc.strerror or str(exc)
    hint = {
        errno.ENOSPC: "free some space or choose another folder",
        errno.EDQUOT: "free some space or choose another folder",
        errno.EFBIG: "the file is bigger than this system lets us write",
        errno.ENOTDIR: "a part of that path is a file, not a folder",
        errno.EACCES: "choose a folder you may write to",
        errno.EPERM: "choose a folder you may write to",
        errno.EROFS: "choose a folder on a writable file system",
        errno.ENOENT: "check the path",
        errno.EISDIR: "that is a folder: name a file, or end the folder with /",
        errno.EEXIST: "a file of that name is in the way of a folder",
    }.get(exc.errno or 0)
    return f"{where}{what}" + (f": {hint}" if hint else "")


def fail(args: argparse.Namespace, exc: BaseException) -> int:
    """Report any failure the one way (message, JSON object, exit code) and return the code.

    The client's own errors come first: ``ConnectError`` and ``ConnectionBroken`` are
    ``ConnectionError`` and ``RequestTimeout`` is ``TimeoutError``, which the ``OSError``
    branch would otherwise report as local file problems.
    """
    if isinstance(exc, CliError):
        return _fail(args, str(exc), exc.code, exc.error)
    if isinstance(exc, NotSockhubServer):
        return _fail(args, connect_hint(args, exc), EXIT_CONNECT, "not_sockhub")
    if isinstance(exc, AuthRequired):
        hint = "log in with --user and a key (SOCKHUB_KEY or --key-file) of a user who has it"
        return _fail(args, f"{exc.code}: {exc.message}: {hint}", EXIT_CONNECT, exc.code)
    if isinstance(exc, AuthFailed | LimitBusy | LimitRate):
        return _fail(args, str(exc), EXIT_CONNECT, exc.code)
    if isinstance(exc, ConnectError):
        return _fail(args, connect_hint(args, exc), EXIT_CONNECT, "connect")
    if isinstance(exc, ProtocolError):
        return _fail(args, f"{exc.code}: {exc.message}", EXIT_FAILED, exc.code)
    if isinstance(exc, ConnectionClosed | ConnectionBroken):
        return _fail(args, str(exc), EXIT_CONNECT, "closed")
    if isinstance(exc, RequestTimeout):
        return _fail(args, f"{exc}: try again, or later", EXIT_FAILED, "timeout")
    if isinstance(exc, SockhubError):  # a full queue, a local mistake
        return _fail(args, str(exc), EXIT_FAILED, type(exc).__name__)
    if isinstance(exc, BrokenPipeError):
        quiet_stdout()  # our reader went away (`| head`): nothing more to say to anyone
        return EXIT_FAILED
    if isinstance(exc, OSError):
        return _fail(args, local_error(exc), EXIT_FAILED, "local")
    if isinstance(exc, KeyboardInterrupt):
        return 130
    return _fail(
        args, f"unexpected {type(exc).__name__}: {exc} (a bug: please report it)", 1, "bug"
    )


def quiet_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's last flush cannot complain either."""
    with contextlib.suppress(OSError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


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


_FINGERPRINT = re.compile(r"(?:sha256:)?(?:[0-9a-f]{2}:?){31}[0-9a-f]{2}", re.IGNORECASE)


def _connect_args(args: argparse.Namespace) -> dict[str, Any]:
    key = read_key(args.key_file) if (args.user or args.key_file) else None
    if args.key_file and not args.user:
        raise CliError("--key-file needs --user (or SOCKHUB_USER)", EXIT_USAGE)
    if args.tls_fingerprint is not None and not _FINGERPRINT.fullmatch(args.tls_fingerprint):
        raise CliError(
            f"--tls-fingerprint {args.tls_fingerprint!r} is not a SHA-256 fingerprint: give "
            "the 64 hex digits the server's banner prints (colons optional)",
            EXIT_USAGE,
        )
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


def connect_hint(args: argparse.Namespace, exc: ConnectError | NotSockhubServer) -> str:
    """The connect error, plus what to do when TLS was used on one side only.

    A plain client at a TLS server hears no hello (the server waits for a TLS handshake),
    which the client reports as a peer that is not sockhub.
    """
    tls = getattr(args, "tls", False) or getattr(args, "tls_fingerprint", None)
    if tls and isinstance(exc.__cause__, ssl.SSLError):
        return (
            f"{args.server} did not answer the TLS handshake ({exc.__cause__.reason or exc}): "
            "remove --tls if that server runs without it, or check the port"
        )
    if not tls and ("before its hello" in str(exc) or "no hello within" in str(exc)):
        return f"{exc}: if that server runs with --tls, add --tls"
    return str(exc)


def connect(args: argparse.Namespace) -> Client:
    """A blocking client from the common flags; errors become exit code 3."""
    try:
        client = Client.connect(args.server, **_connect_args(args))
    except ValueError as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc
    except ConnectError as exc:
        raise CliError(connect_hint(args, exc), EXIT_CONNECT, "connect") from exc
    _report_pin(client)
    return client


async def connect_async(args: argparse.Namespace) -> AsyncClient:
    """``connect`` for commands that need to read and write at once (exec, chat)."""
    try:
        client = await AsyncClient.connect(args.server, **_connect_args(args))
    except ValueError as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc
    except ConnectError as exc:
        raise CliError(connect_hint(args, exc), EXIT_CONNECT, "connect") from exc
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
            code = func(args) or EXIT_OK
            sys.stdout.flush()
        except (Exception, KeyboardInterrupt) as exc:
            return fail(args, exc)
        return code

    return wrapper


def _fail(args: argparse.Namespace, message: str, code: int, error: str) -> int:
    """One line on stderr; with ``--json`` also the error object on stdout."""
    if getattr(args, "json", False):
        with contextlib.suppress(OSError):
            emit_json({"ok": False, "type": "error", "error": error, "message": message})
    line = escape(" ".join(message.split()), None)  # one line, nothing a terminal obeys
    with contextlib.suppress(OSError):
        print(f"sockhub: {line}", file=sys.stderr, flush=True)
    return code
