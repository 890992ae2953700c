"""What the asyncio and the blocking client share: options, replies, request shapes.

Each op method exists twice (one ``async``), but only as a thin shell: the request is
built and the reply interpreted here, once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..protocol.client import ClientConnection
from .address import Address, parse_address
from .errors import ConnectError
from .tls import KnownHosts

__all__ = ["Options", "Reply", "TimeResult", "read_key"]


@dataclass(frozen=True, slots=True)
class Reply:
    """One frame the server sent in answer to a request."""

    header: dict[str, Any]
    body: bytes = b""

    @property
    def op(self) -> str:
        return str(self.header.get("op", ""))


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


@dataclass(frozen=True, slots=True)
class Options:
    """How to reach and prove ourselves to a server; the same for both clients."""

    address: Address
    user: str | None = None
    key: bytes | None = None
    tls: bool = False
    fingerprint: str | None = None
    known_hosts: KnownHosts | None = None
    timeout: float = 10.0

    @classmethod
    def make(
        cls,
        server: str | Address | None,
        *,
        user: str | None = None,
        key: bytes | None = None,
        tls: bool = False,
        fingerprint: str | None = None,
        known_hosts: str | os.PathLike[str] | None = None,
        timeout: float = 10.0,
    ) -> Options:
        if server is None:
            server = os.environ.get("SOCKHUB_SERVER", "127.0.0.1:9696")
        address = server if isinstance(server, Address) else parse_address(server)
        if user is not None and key is None:
            raise ConnectError(f"user {user} needs a key (SOCKHUB_KEY or --key-file)")
        return cls(
            address=address,
            user=user,
            key=key,
            tls=tls or fingerprint is not None,
            fingerprint=fingerprint,
            known_hosts=KnownHosts(Path(known_hosts)) if known_hosts else None,
            timeout=timeout,
        )


def time_fields(fmt: str | None, utc: bool) -> dict[str, Any]:
    fields: dict[str, Any] = {"utc": utc}
    if fmt is not None:
        fields["format"] = fmt
    return fields


def echo_fields(upper: bool) -> dict[str, Any]:
    return {"upper": True} if upper else {}


def as_bytes(data: bytes | str) -> bytes:
    return data.encode("utf-8") if isinstance(data, str) else bytes(data)


def new_core() -> ClientConnection:
    return ClientConnection()
