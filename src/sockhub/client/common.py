"""What the asyncio and the blocking client share: options, replies, request shapes.

Each op method exists twice (one ``async``), but only as a thin shell: the request is
built and the reply interpreted here, once.
"""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from ..protocol.client import (
    MAX_BODY,
    MAX_HEADER,
    PUSH_QUEUE_SIZE,
    QUEUE_BYTES,
    QUEUE_SIZE,
    ClientConnection,
)
from ..protocol.client_errors import ConnectError
from ..protocol.client_events import Reply
from .address import Address, parse_address
from .tls import KnownHosts

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["CoreView", "Options", "Reply", "Settings", "TimeResult", "read_key"]

CONNECT_TIMEOUT = 10.0
WRITE_TIMEOUT = 30.0
REQUEST_TIMEOUT = 60.0
"""``request`` waits this long by default: far above any op's normal answer (a file's
final hash included), short enough that a stuck server is reported, not waited on."""


@dataclass(frozen=True, slots=True)
class TimeResult:
    unix: float
    text: str
    tz: str

    @classmethod
    def from_reply(cls, reply: Reply) -> TimeResult:
        h = reply.header
        return cls(float(h.get("unix", 0.0)), str(h.get("text", "")), str(h.get("tz", "")))


def read_key(key_file: str | os.PathLike[str] | None = None) -> bytes | None:
    """The user's key from ``key_file`` or ``SOCKHUB_KEY`` (base64), never from argv."""
    import base64
    import binascii

    if key_file is not None:
        text = Path(key_file).read_text().strip()
        source = str(key_file)
    else:
        text = os.environ.get("SOCKHUB_KEY", "").strip()
        source = "SOCKHUB_KEY"
        if not text:
            return None
    try:
        key = base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise ConnectError(f"the key in {source} is not base64") from exc
    if len(key) != 32:
        raise ConnectError(f"the key in {source} is not 32 bytes")
    return key


class Default(enum.Enum):
    """The type of ``DEFAULT``: "the client's ``request_timeout``", distinct from None."""

    TOKEN = 0


DEFAULT = Default.TOKEN
Timeout = float | None | Default


class Settings(TypedDict, total=False):
    """The keyword arguments both clients' ``connect`` take (see ``Options``)."""

    user: str | None
    key: bytes | None
    tls: bool
    fingerprint: str | None
    known_hosts: str | os.PathLike[str] | None
    timeout: float | None
    write_timeout: float | None
    request_timeout: float | None
    keepalive: bool
    max_header: int
    max_body: int
    queue_size: int
    queue_bytes: int
    push_queue_size: int


@dataclass(frozen=True, slots=True)
class Options:
    """How to reach and prove ourselves to a server, and the client's own bounds.

    Deadlines are in seconds, None meaning no limit: ``timeout`` covers connecting
    (TCP, TLS, the hello and auth); ``write_timeout`` how long a write may wait for the
    server to read; ``request_timeout`` how long ``request`` waits for its reply (a
    call may give its own). Limits bound what the server can make the client hold.
    """

    address: Address
    user: str | None = None
    key: bytes | None = None
    tls: bool = False
    fingerprint: str | None = None
    known_hosts: KnownHosts | None = None
    timeout: float | None = CONNECT_TIMEOUT
    write_timeout: float | None = WRITE_TIMEOUT
    request_timeout: float | None = REQUEST_TIMEOUT
    keepalive: bool = True
    max_header: int = MAX_HEADER
    max_body: int = MAX_BODY
    queue_size: int = QUEUE_SIZE
    queue_bytes: int = QUEUE_BYTES
    push_queue_size: int = PUSH_QUEUE_SIZE

    @classmethod
    def make(cls, server: str | Address | None, **settings: Unpack[Settings]) -> Options:
        if server is None:
            server = os.environ.get("SOCKHUB_SERVER", "127.0.0.1:9696")
        address = server if isinstance(server, Address) else parse_address(server)
        user, key = settings.get("user"), settings.get("key")
        if user is not None and key is None:
            raise ConnectError(f"user {user} needs a key (SOCKHUB_KEY or --key-file)")
        known = settings.pop("known_hosts", None)
        pins = KnownHosts(Path(known)) if known else None
        fingerprint = settings.get("fingerprint")
        settings["tls"] = settings.get("tls", False) or fingerprint is not None
        fields: dict[str, Any] = {**settings, "known_hosts": pins}
        return cls(address=address, **fields)

    def core(self) -> ClientConnection:
        """A fresh sans-IO core with these bounds."""
        return ClientConnection(
            peer=str(self.address),
            max_header=self.max_header,
            max_body=self.max_body,
            queue_size=self.queue_size,
            queue_bytes=self.queue_bytes,
            push_queue_size=self.push_queue_size,
            keepalive=self.keepalive,
        )

    def deadline(self, now: float, timeout: float | None) -> float | None:
        return None if timeout is None else now + timeout


class CoreView:
    """What both clients tell about their connection: read from the core, kept once."""

    _core: ClientConnection

    @property
    def hello(self) -> Any:
        return self._core.hello

    @property
    def user(self) -> str | None:
        return self._core.user

    @property
    def grants(self) -> list[str]:
        return self._core.grants


def time_fields(fmt: str | None, utc: bool) -> dict[str, Any]:
    fields: dict[str, Any] = {"utc": utc}
    if fmt is not None:
        fields["format"] = fmt
    return fields


def echo_fields(upper: bool) -> dict[str, Any]:
    return {"upper": True} if upper else {}


def as_bytes(data: bytes | str) -> bytes:
    return data.encode("utf-8") if isinstance(data, str) else bytes(data)
