"""The server's hello (PROTOCOL.md section 2), and what a client makes of the bytes before it.

A sockhub server speaks first. Whatever else arrives first (or nothing at all) means the
peer is not a sockhub server, and ``protocol/sniff.py`` names what it looks like.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import auth
from .client_errors import NotSockhubServer
from .errors import error_from_header
from .sniff import describe_foreign

__all__ = ["PROTO", "Hello", "foreign", "no_hello"]

PROTO = 1


@dataclass(slots=True)
class Hello:
    """What the server said about itself when the connection opened."""

    server: str
    proto: int
    nonce: bytes
    auth: list[str]
    services: list[str]
    limits: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_header(cls, header: dict[str, Any], peer: str) -> Hello:
        """The hello in ``header``; a refusal raises its wire error, anything else
        ``NotSockhubServer``."""
        if header.get("op") == "error":
            raise error_from_header(header)
        nonce = auth.b64decode_nonce(header.get("nonce"))
        if header.get("op") != "hello" or nonce is None:
            raise NotSockhubServer(f"{peer} did not open with a valid hello")
        proto = header.get("proto")
        if proto != PROTO:
            raise NotSockhubServer(f"{peer} speaks sockhub protocol {proto!r}, not {PROTO}")
        return cls(
            server=str(header.get("server", "")),
            proto=PROTO,
            nonce=nonce,
            auth=_strings(header.get("auth")),
            services=_strings(header.get("services")),
            limits=limits if isinstance(limits := header.get("limits"), dict) else {},
        )

    def limit(self, name: str, default: float) -> float:
        value = self.limits.get(name)
        return float(value) if value.__class__ in (int, float) and value > 0 else default


def _strings(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def foreign(peer: str, first: bytes, *, complete: bool) -> NotSockhubServer | None:
    """The error for a peer whose first bytes are not a frame, or None while they may be."""
    what = describe_foreign(first, complete=complete)
    if what is None:
        return None
    return NotSockhubServer(f"{peer} is not a sockhub server: it sent {what}")


def no_hello(peer: str, first: bytes, waited: float | None) -> NotSockhubServer:
    """The error for a peer that went quiet (``waited`` seconds) or closed before its hello."""
    named = foreign(peer, first, complete=True) if first else None
    if named is not None:
        return named
    if waited is None:
        return NotSockhubServer(f"{peer} closed the connection before its hello")
    return NotSockhubServer(
        f"{peer}: no hello within {waited:g} s: not a sockhub server"
        " (a sockhub server speaks first)"
    )
