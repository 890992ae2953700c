"""Client side of a connection, sans-IO: hello, request ids, the auth transcript.

The asyncio client and the blocking client both drive this object, so the handshake,
id allocation and the verification of the server's mac are written once.
"""

from __future__ import annotations

import base64
import itertools
from dataclasses import dataclass, field
from typing import Any

from . import auth
from .errors import AuthFailed, FrameBad, ProtocolError, error_from_header
from .frames import (
    DEFAULT_MAX_HEADER,
    MAX_ID,
    MAX_SIZE,
    Decoder,
    Event,
    Frame,
    FrameStart,
    encode_frame,
)

__all__ = ["PROTO", "ClientConnection", "Hello"]

PROTO = 1
CLIENT_MAX_BODY = 64 * 1024 * 1024
STREAMED_REPLY_OPS = frozenset({"file.data"})


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
    def from_header(cls, header: dict[str, Any]) -> Hello:
        if header.get("op") == "error":
            raise error_from_header(header)
        nonce = auth.b64decode_nonce(header.get("nonce"))
        if header.get("op") != "hello" or nonce is None:
            raise FrameBad("the server did not open with a valid hello")
        services = header.get("services")
        limits = header.get("limits")
        methods = header.get("auth")
        return cls(
            server=str(header.get("server", "")),
            proto=int(header.get("proto", 0)),
            nonce=nonce,
            auth=[m for m in methods if isinstance(m, str)] if isinstance(methods, list) else [],
            services=[s for s in services if isinstance(s, str)]
            if isinstance(services, list)
            else [],
            limits=limits if isinstance(limits, dict) else {},
        )


def _client_policy(header: dict[str, Any]) -> tuple[int, bool]:
    if header.get("op") in STREAMED_REPLY_OPS:
        return (MAX_SIZE, True)  # a whole file, streamed to disk: never held in memory
    return (CLIENT_MAX_BODY, False)


class ClientConnection:
    """State one client connection keeps regardless of how its bytes move."""

    def __init__(self, *, max_header: int = DEFAULT_MAX_HEADER * 16) -> None:
        self.decoder = Decoder(max_header=max_header, policy=_client_policy)
        self.hello: Hello | None = None
        self.user: str | None = None
        self.grants: list[str] = []
        self._ids = itertools.count(1)
        self._auth: tuple[int, bytes, bytes, str] | None = None

    def next_id(self) -> int:
        n = next(self._ids)
        if n > MAX_ID:
            self._ids = itertools.count(2)
            return 1
        return n

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        self.decoder.receive_data(data)

    def next_event(self) -> Event | None:
        """The next event; the hello is consumed here and kept in ``self.hello``.

        A reply whose ``re`` or ``target`` is not an integer cannot be matched to a request,
        so it is a ``frame.bad`` from the server rather than something the clients trip on.
        """
        event = self.decoder.next_event()
        if event.__class__ is Frame or event.__class__ is FrameStart:
            header = event.header
            for key in ("re", "target"):
                value = header.get(key)
                if value is not None and value.__class__ is not int:
                    raise FrameBad(f"the server sent a non-integer {key!r}")
            if self.hello is None:
                self.hello = Hello.from_header(header)
                if self.hello.proto != PROTO:
                    raise FrameBad(f"server speaks protocol {self.hello.proto}, not {PROTO}")
                return self.next_event()
        return event

    def request(
        self, op: str, body: bytes | bytearray | memoryview = b"", **fields: Any
    ) -> tuple[int, bytes]:
        """A request frame with a fresh id."""
        rid = self.next_id()
        return rid, encode_frame({"op": op, "id": rid, **fields}, body)

    def auth_request(self, user: str, key: bytes) -> tuple[int, bytes]:
        """The ``auth`` frame for this connection's hello nonce."""
        if self.hello is None:
            raise RuntimeError("auth_request before the server's hello arrived")
        if auth.METHOD not in self.hello.auth:
            raise AuthFailed(f"server does not offer {auth.METHOD}")
        cnonce = auth.new_nonce()
        mac = auth.client_mac(key, self.hello.nonce, cnonce, user)
        rid, frame = self.request(
            "auth",
            method=auth.METHOD,
            user=user,
            cnonce=base64.b64encode(cnonce).decode(),
            mac=mac.hex(),
        )
        self._auth = (rid, key, cnonce, user)
        return rid, frame

    def auth_reply(self, header: dict[str, Any]) -> list[str]:
        """Check the server's mac on the auth reply; the grants it gave on success."""
        if self._auth is None or self.hello is None:
            raise RuntimeError("auth_reply without an auth request")
        rid, key, cnonce, user = self._auth
        self._auth = None
        expected = auth.server_mac(key, self.hello.nonce, cnonce, user)
        if header.get("re") != rid or not auth.verify(expected, header.get("mac")):
            raise AuthFailed("the server could not prove it knows your key (wrong server?)")
        grants = header.get("grants")
        self.user = user
        self.grants = [g for g in grants if isinstance(g, str)] if isinstance(grants, list) else []
        return self.grants


def reply_error(header: dict[str, Any]) -> ProtocolError | None:
    """The exception an ``error`` reply stands for, or None for any other reply."""
    return error_from_header(header) if header.get("op") == "error" else None
