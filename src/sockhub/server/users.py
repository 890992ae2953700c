"""Users, their keys and grants, kept in one 0600 JSON file in the data folder.

The server re-reads the file when it changes, so ``sockhub user add`` takes effect on a
running server without a restart.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import msgspec

from ..protocol import auth

__all__ = ["GRANTS", "User", "UserError", "UserStore"]

GRANTS = ("echo", "time", "chat", "files", "exec")
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}")
FILE_NAME = "users.json"


class UserError(ValueError):
    """A user operation that cannot be done; the message is for the operator."""


@dataclass(frozen=True, slots=True)
class User:
    name: str
    key: bytes
    grants: tuple[str, ...]


class _Entry(msgspec.Struct):
    key: str
    grants: list[str]


class UserStore:
    def __init__(self, data: Path) -> None:
        self.path = data / FILE_NAME
        self._users: dict[str, User] = {}
        self._stamp: tuple[int, int] | None = None
        self._generation = 0

    def _load(self) -> None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            if self._users:
                self._generation += 1
            self._users, self._stamp = {}, None
            return
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp == self._stamp:
            return
        try:
            raw = msgspec.json.decode(self.path.read_bytes(), type=dict[str, _Entry])
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise UserError(f"{self.path} is damaged: {exc}") from exc
        users = {
            name: User(name, base64.b64decode(e.key), tuple(e.grants)) for name, e in raw.items()
        }
        if users != self._users:
            self._generation += 1
        self._users, self._stamp = users, stamp

    def generation(self) -> int:
        """Re-read the file if it changed; a number that grows with each change of the
        users, so a server can apply changes to sessions already open."""
        self._load()
        return self._generation

    def get(self, name: str) -> User | None:
        self._load()
        return self._users.get(name)

    def all(self) -> list[User]:
        self._load()
        return sorted(self._users.values(), key=lambda u: u.name)

    def add(self, name: str, grants: tuple[str, ...]) -> bytes:
        """Create ``name`` with a fresh key and return the key."""
        if not _NAME.fullmatch(name):
            raise UserError(
                f"user name {name!r} must be 1-32 characters of letters, digits, '_', '.', '-'"
            )
        unknown = set(grants) - set(GRANTS)
        if unknown:
            raise UserError(
                f"unknown grant(s): {', '.join(sorted(unknown))}; known: {', '.join(GRANTS)}"
            )
        self._load()
        if name in self._users:
            raise UserError(f"user {name} exists; remove it first to issue a new key")
        key = auth.new_key()
        self._users[name] = User(name, key, tuple(dict.fromkeys(grants)))
        self._save()
        return key

    def remove(self, name: str) -> None:
        self._load()
        if self._users.pop(name, None) is None:
            raise UserError(f"no user {name}")
        self._save()

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        doc = {
            u.name: {"key": base64.b64encode(u.key).decode(), "grants": list(u.grants)}
            for u in self._users.values()
        }
        fd, tmp = tempfile.mkstemp(prefix=".users.", dir=self.path.parent)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(msgspec.json.format(msgspec.json.encode(doc)))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        self._stamp = None
