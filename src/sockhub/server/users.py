"""Users, their keys and grants, kept in one 0600 JSON file in the data folder.

The server re-reads the file when it changes, so ``sockhub user add`` takes effect on a
running server without a restart. Every change (add, remove, grant, rekey) is one
read-change-write under an exclusive ``flock`` on ``users.json.lock`` and replaces the file
by an fsynced rename, so parallel commands never lose each other's changes and a reader
never sees half a file.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import msgspec

from ..protocol import auth

__all__ = ["GRANTS", "User", "UserError", "UserStore"]

GRANTS = ("echo", "time", "chat", "files", "exec")
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}")
FILE_NAME = "users.json"
LOCK_NAME = "users.json.lock"


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
        self._stamp: tuple[int, int, int] | None = None
        self._generation = 0

    def _load(self) -> None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            if self._users:
                self._generation += 1
            self._users, self._stamp = {}, None
            return
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
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
        checked = _checked_grants(grants)
        key = auth.new_key()
        with self._editing() as users:
            if name in users:
                raise UserError(
                    f"user {name} exists; use `user rekey` or `user grant` to change it"
                )
            users[name] = User(name, key, checked)
        return key

    def remove(self, name: str) -> None:
        with self._editing() as users:
            if users.pop(name, None) is None:
                raise UserError(f"no user {name}")

    def grant(self, name: str, grants: tuple[str, ...]) -> None:
        """Replace ``name``'s grants; its key stays."""
        checked = _checked_grants(grants)
        with self._editing() as users:
            user = self._existing(users, name)
            users[name] = User(name, user.key, checked)

    def rekey(self, name: str) -> bytes:
        """Give ``name`` a fresh key (the old one stops authenticating) and return it."""
        key = auth.new_key()
        with self._editing() as users:
            user = self._existing(users, name)
            users[name] = User(name, key, user.grants)
        return key

    @staticmethod
    def _existing(users: dict[str, User], name: str) -> User:
        user = users.get(name)
        if user is None:
            raise UserError(f"no user {name}")
        return user

    @contextlib.contextmanager
    def _editing(self) -> Iterator[dict[str, User]]:
        """Read, change and replace the file under an exclusive lock on a file beside it.

        The lock makes each read-change-write one step across processes, so concurrent
        ``sockhub user`` commands never lose each other's changes; the rename makes the
        new file appear whole or not at all, even after a crash.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_fd = os.open(self.path.with_name(LOCK_NAME), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            self._stamp = None
            self._load()
            users = dict(self._users)
            yield users
            self._save(users)
        finally:
            os.close(lock_fd)

    def _save(self, users: dict[str, User]) -> None:
        doc = {
            u.name: {"key": base64.b64encode(u.key).decode(), "grants": list(u.grants)}
            for u in users.values()
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
        _fsync_dir(self.path.parent)
        self._users, self._stamp = users, None


def _checked_grants(grants: tuple[str, ...]) -> tuple[str, ...]:
    unknown = set(grants) - set(GRANTS)
    if unknown:
        raise UserError(
            f"unknown grant(s): {', '.join(sorted(unknown))}; known: {', '.join(GRANTS)}"
        )
    return tuple(dict.fromkeys(grants))


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable, not only the new file's bytes."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
