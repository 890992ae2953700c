"""``sockhub user add|list|grant|rekey|remove``: keys and grants in the server's data folder."""

from __future__ import annotations

import argparse
import base64
import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..server.datadir import data_folder
from ..server.users import GRANTS, UserError, UserStore
from .common import EXIT_USAGE, CliError, command, emit_json, examples
from .keyfile import KeyFileError, key_out

__all__ = ["register"]


def _store(args: argparse.Namespace) -> UserStore:
    return UserStore(data_folder(args.data))


def _grants(text: str) -> tuple[str, ...]:
    return tuple(g.strip() for g in text.split(",") if g.strip())


@contextlib.contextmanager
def _key_sink(args: argparse.Namespace) -> Iterator[Callable[[str], None]]:
    """Where a new key goes: the --key-out file (claimed first) or stdout, alone on its line."""
    try:
        with contextlib.ExitStack() as stack:
            if args.key_out is None:
                yield print
            else:
                yield stack.enter_context(key_out(Path(args.key_out), force=args.force))
    except KeyFileError as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc
    except UserError as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc


def _where(args: argparse.Namespace) -> str:
    if args.key_out is None:
        return "the key above is shown once: give it to the user"
    return f"its key is in {args.key_out} (mode 0600): give it to the user"


def _tell(text: str) -> None:
    print(f"sockhub: {text}", file=sys.stderr)


def _listed(grants: tuple[str, ...]) -> str:
    return ", ".join(grants) or "(anonymous only)"


@command
def _add(args: argparse.Namespace) -> int:
    grants = _grants(args.grant)
    with _key_sink(args) as sink:
        sink(base64.b64encode(_store(args).add(args.name, grants)).decode())
    _tell(
        f"user {args.name} added with grants: {_listed(grants)}; "
        f"{_where(args)} (SOCKHUB_KEY or --key-file)"
    )
    return 0


@command
def _rekey(args: argparse.Namespace) -> int:
    with _key_sink(args) as sink:
        sink(base64.b64encode(_store(args).rekey(args.name)).decode())
    _tell(f"user {args.name} has a new key; the old one no longer logs in; {_where(args)}")
    return 0


@command
def _grant(args: argparse.Namespace) -> int:
    grants = _grants(args.grants)
    try:
        _store(args).grant(args.name, grants)
    except UserError as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc
    _tell(f"user {args.name} now has grants: {_listed(grants)}")
    return 0


@command
def _list(args: argparse.Namespace) -> int:
    users = _store(args).all()
    if args.json:
        for u in users:
            emit_json({"user": u.name, "grants": list(u.grants)})
    elif not users:
        print(f"no users in {data_folder(args.data)}", file=sys.stderr)
    for u in users if not args.json else ():
        print(f"{u.name}\t{','.join(u.grants)}")
    return 0


@command
def _remove(args: argparse.Namespace) -> int:
    try:
        _store(args).remove(args.name)
    except UserError as exc:
        raise CliError(str(exc)) from exc
    _tell(f"user {args.name} removed")
    return 0


def _key_out_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--key-out",
        metavar="FILE",
        help="write the key to FILE, created mode 0600 (instead of stdout)",
    )
    parser.add_argument("--force", action="store_true", help="replace an existing --key-out FILE")


def register(sub: Any) -> None:
    p = sub.add_parser(
        "user",
        help="manage users, keys and grants",
        description=(
            "Users live in DATA/users.json (mode 0600); every change is made under a lock and "
            "replaces the file atomically. A running server reads the file again when it "
            "changes (within a second): a removed or re-keyed user's open connections are "
            "closed with auth.failed, changed grants apply to their next request."
        ),
        **examples(f"""
  sockhub user add alice --grant chat,files --key-out alice.key   # 0600; kept unless --force
  sockhub echo --user alice --key-file alice.key hi
  sockhub user grant alice chat,files,exec                        # replaces the grants
  sockhub user rekey alice --key-out alice.key --force            # the old key stops logging in
  sockhub user list
  sockhub user remove alice
grants: {", ".join(GRANTS)}
"""),
    )
    users = p.add_subparsers(dest="user_cmd", metavar="add|list|grant|rekey|remove", required=True)

    add = users.add_parser("add", help="create a user with a new key (stdout or --key-out)")
    add.add_argument("name")
    add.add_argument("--grant", "-g", default="", help="comma-separated: " + ",".join(GRANTS))
    _key_out_args(add)
    add.set_defaults(func=_add)

    ls = users.add_parser("list", help="list users and their grants")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=_list)

    grant = users.add_parser("grant", help="replace a user's grants (its key stays)")
    grant.add_argument("name")
    grant.add_argument("grants", help="comma-separated, '' for none: " + ",".join(GRANTS))
    grant.set_defaults(func=_grant)

    rekey = users.add_parser("rekey", help="give a user a new key; the old one stops logging in")
    rekey.add_argument("name")
    _key_out_args(rekey)
    rekey.set_defaults(func=_rekey)

    rm = users.add_parser("remove", help="delete a user; its key no longer logs in")
    rm.add_argument("name")
    rm.set_defaults(func=_remove)

    for q in (add, ls, grant, rekey, rm):
        q.add_argument(
            "--data", help="data folder (default $SOCKHUB_DATA, else ~/.local/share/sockhub)"
        )
