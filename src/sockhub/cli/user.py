"""``sockhub user add|list|remove``: keys and grants in the server's data folder."""

from __future__ import annotations

import argparse
import base64
import sys
from typing import Any

from ..server.datadir import data_folder
from ..server.users import GRANTS, UserError, UserStore
from .common import EXIT_USAGE, CliError, command, emit_json, examples

__all__ = ["register"]


def _store(args: argparse.Namespace) -> UserStore:
    return UserStore(data_folder(args.data))


@command
def _add(args: argparse.Namespace) -> int:
    grants = tuple(g.strip() for g in args.grant.split(",") if g.strip()) if args.grant else ()
    try:
        key = _store(args).add(args.name, grants)
    except UserError as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc
    print(base64.b64encode(key).decode())
    print(
        f"sockhub: user {args.name} added with grants: {', '.join(grants) or '(anonymous only)'}; "
        "the key above is shown once: give it to the user (SOCKHUB_KEY or --key-file)",
        file=sys.stderr,
    )
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
    print(f"sockhub: user {args.name} removed", file=sys.stderr)
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser(
        "user",
        help="manage users, keys and grants",
        description="Users live in DATA/users.json (mode 0600). A running server sees changes at once.",
        **examples(f"""
  sockhub user add alice --grant chat,files > alice.key    # the key alone on stdout
  SOCKHUB_KEY=$(cat alice.key) sockhub echo --user alice hi
  sockhub user list
  sockhub user remove alice
grants: {", ".join(GRANTS)}
"""),
    )
    users = p.add_subparsers(dest="user_cmd", metavar="add|list|remove", required=True)

    add = users.add_parser("add", help="create a user and print its new key")
    add.add_argument("name")
    add.add_argument("--grant", "-g", default="", help="comma-separated: " + ",".join(GRANTS))
    add.set_defaults(func=_add)

    ls = users.add_parser("list", help="list users and their grants")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=_list)

    rm = users.add_parser("remove", help="delete a user (its key stops working at once)")
    rm.add_argument("name")
    rm.set_defaults(func=_remove)

    for q in (add, ls, rm):
        q.add_argument(
            "--data", help="data folder (default $SOCKHUB_DATA, else ~/.local/share/sockhub)"
        )
