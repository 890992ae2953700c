"""The talk address book: a small TOML file mapping a name to an address and a shared key.

```toml
[peers.bob]
address = "192.168.1.20:9698"
key = "base64 of the key you and bob share"   # optional
```

The file may hold keys, so it is written 0600, atomically (a crash leaves the old book).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

from ..client.address import Address, parse_address
from .wire import TalkError, check_name

__all__ = [
    "DEFAULT_BOOK",
    "AddressBook",
    "BookError",
    "Entry",
    "decode_key",
    "make_entry",
    "parse_listen",
    "parse_peer_address",
]

DEFAULT_BOOK = Path("~/.config/sockhub/talk.toml")
_HEADER = "# sockhub talk address book: name -> address and optional shared key (base64)\n"


class BookError(ValueError):
    """A book that cannot be read or an entry that cannot be stored; says which and why."""


@dataclass(frozen=True, slots=True)
class Entry:
    name: str
    address: Address
    key: bytes | None = None


def parse_peer_address(text: str) -> Address:
    """``HOST:PORT`` or ``[V6]:PORT`` with an explicit port; ValueError otherwise."""
    address = parse_address(text, default_port=0)
    if address.unix is not None:
        raise ValueError(f"a talk peer is HOST:PORT (UDP), not {text!r}")
    return address


def parse_listen(text: str) -> tuple[str, int]:
    """Where to bind: ``HOST:PORT`` or ``[V6]:PORT``, where port 0 lets the OS pick."""
    host, sep, port = text.strip().rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"listen on HOST:PORT (port 0 picks a free one), not {text!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def make_entry(name: str, address: str, key: bytes | None) -> Entry:
    """A checked entry: a name that works after ``/to`` and a UDP address."""
    try:
        check_name(name)
        if any(ch.isspace() for ch in name) or name.startswith("/"):
            raise TalkError(f"a talk name has no spaces and does not start with '/': {name!r}")
        return Entry(name, parse_peer_address(address), key)
    except (TalkError, ValueError) as exc:
        raise BookError(str(exc)) from exc


def decode_key(text: str, where: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except binascii.Error as exc:
        raise BookError(f"{where}: the key is not base64") from exc
    if len(key) < 16:
        raise BookError(f"{where}: a shared key needs at least 16 bytes, this one has {len(key)}")
    return key


def _toml_str(text: str) -> str:
    """A TOML basic string: JSON's escapes are valid TOML for the printable text we store."""
    return json.dumps(text, ensure_ascii=False)


class AddressBook:
    """Entries by name, loaded from and saved to one file."""

    def __init__(self, path: Path, entries: dict[str, Entry] | None = None) -> None:
        self.path = path
        self.entries: dict[str, Entry] = dict(entries or {})

    @classmethod
    def load(cls, path: Path) -> AddressBook:
        """The book at ``path``; an empty one when the file does not exist yet."""
        path = path.expanduser()
        try:
            with path.open("rb") as fh:
                doc = tomllib.load(fh)
        except FileNotFoundError:
            return cls(path)
        except OSError as exc:
            raise BookError(f"cannot read {path}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise BookError(f"{path} is not valid TOML: {exc}") from exc
        peers = doc.get("peers", {})
        if not isinstance(peers, dict):
            raise BookError(f"{path}: 'peers' must be a table")
        book = cls(path)
        for name, raw in peers.items():
            where = f"{path}: peers.{name}"
            if not isinstance(raw, dict) or not isinstance(raw.get("address"), str):
                raise BookError(f'{where} needs address = "HOST:PORT"')
            key = raw.get("key")
            if key is not None and not isinstance(key, str):
                raise BookError(f"{where}: key must be a base64 string")
            try:
                entry = make_entry(
                    name, raw["address"], decode_key(key, where) if key is not None else None
                )
            except BookError as exc:
                raise BookError(f"{where}: {exc}") from exc
            book.entries[name] = entry
        return book

    def add(self, name: str, address: str, key: bytes | None = None) -> Entry:
        """Add or replace ``name``; BookError when the name or address is unusable."""
        entry = make_entry(name, address, key)
        self.entries[name] = entry
        return entry

    def remove(self, name: str) -> None:
        if self.entries.pop(name, None) is None:
            raise BookError(f"no {name!r} in {self.path}")

    def get(self, name: str) -> Entry | None:
        return self.entries.get(name)

    def dumps(self) -> str:
        parts = [_HEADER]
        for name, entry in sorted(self.entries.items()):
            parts.append(
                f"\n[peers.{_toml_str(name)}]\naddress = {_toml_str(str(entry.address))}\n"
            )
            if entry.key is not None:
                parts.append(f"key = {_toml_str(base64.b64encode(entry.key).decode())}\n")
        return "".join(parts)

    def save(self) -> None:
        """Write the book 0600 via a temporary file and a rename."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".talk-", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(self.dumps())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
