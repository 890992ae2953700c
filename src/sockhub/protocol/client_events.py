"""What the sans-IO client core hands its adapter: one typed event per thing that happened.

``Final``, ``Partial``, ``Data`` and ``Failed`` belong to one request (its ``rid``);
``Push`` is a frame nobody asked for; ``Fatal`` ends the connection. The adapters map
these to futures (asyncio) or to the call that waits (blocking).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import SockhubError

__all__ = ["Chunk", "ClientEvent", "Data", "Failed", "Fatal", "Final", "Partial", "Push", "Reply"]


@dataclass(slots=True)
class Reply:
    """One frame the server sent in answer to a request (or pushed).

    Not frozen: one is built for every frame, and a frozen dataclass takes twice as long
    to build (its ``__init__`` goes through ``object.__setattr__``).
    """

    header: dict[str, Any]
    body: bytes = b""

    @property
    def op(self) -> str:
        return str(self.header.get("op", ""))


class Chunk(bytes):
    """A piece of a streamed body (a downloaded file), delivered in order after its header."""


@dataclass(slots=True)
class Final:
    """The last frame of request ``rid``: its answer."""

    rid: int
    reply: Reply


@dataclass(slots=True)
class Partial:
    """A frame of a streaming request before its final one (or the header of a streamed body)."""

    rid: int
    reply: Reply


@dataclass(slots=True)
class Data:
    """Bytes of a streamed body that belongs to request ``rid``."""

    rid: int
    chunk: Chunk


@dataclass(slots=True)
class Failed:
    """Request ``rid`` ended in ``error`` (an error reply, its deadline, its queue overflowing).

    ``rid`` is None when the pushes overflowed: pushes past the bound were dropped.
    """

    rid: int | None
    error: SockhubError


@dataclass(slots=True)
class Push:
    reply: Reply


@dataclass(slots=True)
class Fatal:
    """The connection is over; every request still open fails with ``error``."""

    error: SockhubError


ClientEvent = Final | Partial | Data | Failed | Push | Fatal
