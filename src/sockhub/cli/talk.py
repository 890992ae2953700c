"""``sockhub talk``: a peer-to-peer UDP messenger with an address book (PROTOCOL.md section 9)."""

from __future__ import annotations

import argparse
import asyncio
import base64
import getpass
import os
import secrets
import sys
from pathlib import Path
from typing import Any

from ..protocol.text import escape
from ..talk import AddressBook, BookError, TalkError, TalkPeer
from ..talk.book import DEFAULT_BOOK, decode_key
from .common import EXIT_CONNECT, EXIT_USAGE, CliError, command, examples
from .talk_session import Session, line_source, prompt_source

__all__ = ["DEFAULT_LISTEN", "register"]

DEFAULT_LISTEN = "127.0.0.1:9698"


def _book(args: argparse.Namespace) -> AddressBook:
    path = Path(args.book or os.environ.get("SOCKHUB_TALK_BOOK") or DEFAULT_BOOK).expanduser()
    try:
        return AddressBook.load(path)
    except BookError as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc


def _default_name() -> str:
    try:
        return os.environ.get("SOCKHUB_USER") or getpass.getuser()
    except OSError:
        return "me"


def _key(args: argparse.Namespace) -> bytes | None:
    if args.new_key:
        return secrets.token_bytes(32)
    if args.key_file is None:
        return None
    try:
        text = Path(args.key_file).read_text()
    except OSError as exc:
        raise CliError(f"cannot read {args.key_file}: {exc.strerror}", EXIT_USAGE) from exc
    try:
        return decode_key(text, args.key_file)
    except BookError as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc


def _edit_book(args: argparse.Namespace, book: AddressBook) -> int:
    try:
        if args.add:
            key = _key(args)
            entry = book.add(args.add[0], args.add[1], key)
            if args.new_key and key is not None:
                print(base64.b64encode(key).decode())
            note = " with a shared key" if key else ""
            print(f"talk: {entry.name} = {entry.address}{note} in {book.path}", file=sys.stderr)
        else:
            book.remove(args.remove)
            print(f"talk: {args.remove} removed from {book.path}", file=sys.stderr)
        book.save()
    except BookError as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc
    except OSError as exc:
        raise CliError(f"cannot write {book.path}: {exc.strerror}") from exc
    return 0


async def _talk(args: argparse.Namespace, book: AddressBook) -> int:
    try:
        peer = await TalkPeer.open(args.listen, args.name, book=book)
    except ValueError as exc:  # TalkError included: a bad --listen or --name
        raise CliError(str(exc), EXIT_USAGE) from exc
    except OSError as exc:
        raise CliError(
            f"cannot listen on {args.listen}: {exc.strerror or exc}", EXIT_CONNECT
        ) from exc
    session = Session(peer, json=args.json)
    try:
        host, port = peer.address
        session.say(
            f"talk: {escape(args.name)} listening on {host}:{port} (UDP); "
            "/to NAME picks a peer, /help lists commands"
        )
        if args.to:
            await session.choose(args.to)
        interactive = sys.stdin.isatty() and sys.stdout.isatty() and not args.json
        lines = prompt_source(lambda: session.prompt) if interactive else line_source()
        try:
            return await session.run(lines)
        except TalkError as exc:
            raise CliError(str(exc)) from exc
    finally:
        peer.close()


@command
def _run(args: argparse.Namespace) -> int:
    if args.key_file and args.new_key:
        raise CliError("--key-file and --new-key do not go together", EXIT_USAGE)
    if (args.key_file or args.new_key) and not args.add:
        raise CliError("--key-file and --new-key go with --add", EXIT_USAGE)
    book = _book(args)
    if args.add or args.remove:
        return _edit_book(args, book)
    if args.list:
        rows = [f"{e.name}\t{e.address}\t{'key' if e.key else '-'}" for e in book.entries.values()]
        print("\n".join(sorted(rows)) or f"talk: {book.path} has no entries", flush=True)
        return 0
    return asyncio.run(_talk(args, book))


def register(sub: Any) -> None:
    p = sub.add_parser(
        "talk",
        help="peer-to-peer messages over UDP, with an address book",
        description=(
            "Exchange messages directly with another sockhub talk, no server involved. "
            "Each message is acked and resent until it is; you see 'delivered' or "
            "'NOT delivered'. Peers come from a TOML address book (name -> HOST:PORT and an "
            "optional shared key that signs messages). With stdin not a terminal, each "
            "input line is a message or a /command; the exit code is 1 if any message "
            "was not delivered."
        ),
        **examples("""
  sockhub talk --add bob 192.168.1.20:9698           # put bob in the address book
  sockhub talk --add bob 192.168.1.20:9698 --new-key > bob.key   # ... with a new shared key
  sockhub talk --add alice 192.168.1.10:9698 --key-file bob.key  # bob's side, same key
  sockhub talk --listen 0.0.0.0:9698 --to bob        # chat; /to NAME switches, /help
  echo 'build is green' | sockhub talk --listen 127.0.0.1:0 --to bob   # one message
  sockhub talk --list                                # show the address book
"""),
    )
    p.add_argument(
        "--listen",
        metavar="HOST:PORT",
        default=os.environ.get("SOCKHUB_TALK_LISTEN", DEFAULT_LISTEN),
        help="UDP address to receive on (default %(default)s; 0.0.0.0:9698 for a LAN)",
    )
    p.add_argument(
        "--book",
        metavar="FILE",
        help=f"address book (default SOCKHUB_TALK_BOOK or {DEFAULT_BOOK})",
    )
    p.add_argument("--name", default=_default_name(), help="what peers see as 'from'")
    p.add_argument("--to", metavar="NAME", help="start talking to NAME (or HOST:PORT)")
    edit = p.add_mutually_exclusive_group()
    edit.add_argument(
        "--add", nargs=2, metavar=("NAME", "HOST:PORT"), help="add or replace a book entry"
    )
    edit.add_argument("--remove", metavar="NAME", help="remove a book entry")
    edit.add_argument("--list", action="store_true", help="print the address book")
    p.add_argument("--key-file", metavar="FILE", help="with --add: the shared key (base64)")
    p.add_argument("--new-key", action="store_true", help="with --add: make a shared key, print it")
    p.add_argument("--json", action="store_true", help="one JSON object per event on stdout")
    p.set_defaults(func=_run)
