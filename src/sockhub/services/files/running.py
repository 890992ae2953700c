"""One running upload and the sinks its body goes into: ``file.data``'s, or a POST's on
the web port (PROTOCOL.md sections 1 and 7); ``upload.Uploads`` runs the ops."""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable

from ...protocol.errors import ProtocolError
from ...server.service import Session
from .spool import Spool

__all__ = ["TELL_EVERY", "Phase", "PostedSink", "Sink", "Upload", "cut_text"]

TELL_EVERY = 4 * 1024 * 1024
"""Bytes of a POSTed body between two ``file.got`` progress frames."""


class Phase(enum.Enum):
    READY = "ready"  # file.ready sent, waiting for file.data
    RECEIVING = "receiving"  # the file.data body is arriving
    RECEIVED = "received"  # waiting for file.end


class Upload:
    """One running upload; ``ended`` gives the client's sha256 or the reason it failed."""

    def __init__(self, session: Session, rid: int, path: str, total: int) -> None:
        loop = asyncio.get_running_loop()
        self.session = session
        self.rid = rid
        self.path = path
        self.total = total
        self.phase = Phase.READY
        self.left = 0
        self.key = ""
        self.spool: Spool | None = None
        self.ended: asyncio.Future[str] = loop.create_future()
        self.released: asyncio.Future[None] = loop.create_future()
        self.discard = False
        self.published = False
        self.reserve = 0
        """Bytes of the server's spool budget this upload holds until it is released."""
        self.last = loop.time()
        self.token = ""
        """While the body may still come by ``POST /up/<token>`` on the web port."""
        self.feeder: Callable[[bool], None] | None = None
        """The POST bringing the body: paused and resumed instead of the session."""
        self.detach: Callable[[], None] | None = None
        """Stops that POST from feeding the spool once the upload is over."""

    def fail(self, exc: ProtocolError, *, discard: bool = False) -> None:
        if not self.ended.done():
            self.discard = self.discard or discard
            self.ended.set_exception(exc)


def cut_text(upload: Upload) -> str:
    return f"the client stopped sending before {upload.path} ended"


class Sink:
    """The ``file.data`` body of one upload, chunk by chunk into its spool."""

    __slots__ = ("spool", "upload")

    def __init__(self, upload: Upload, spool: Spool) -> None:
        self.upload = upload
        self.spool = spool

    def buffer(self, size: int) -> memoryview | None:
        return self.spool.buffer(size)

    def write(self, chunk: bytes | memoryview) -> None:
        self.spool.write(chunk)

    def end(self) -> None:
        if self.upload.phase is Phase.RECEIVING:
            self.upload.phase = Phase.RECEIVED
            self.upload.last = asyncio.get_running_loop().time()

    def abort(self) -> None:
        """The connection dropped mid-body; the put task is cancelled and keeps the partial."""


class PostedSink(Sink):
    """The body brought by a POST. Its progress is told on the session (``file.got``),
    as a page cannot see how far a fetch's body has gone; its connection dropping
    mid-body fails the upload (the session lives on), keeping the partial for a resume
    as a dropped file.data does."""

    __slots__ = ("cut", "got", "told")

    def __init__(self, upload: Upload, spool: Spool, cut: Callable[[], None]) -> None:
        super().__init__(upload, spool)
        self.cut = cut
        """Fails the upload as cut off (its frames still on their way are dropped)."""
        self.got = self.told = spool.offset

    def write(self, chunk: bytes | memoryview) -> None:
        self.spool.write(chunk)
        self.got += len(chunk)
        if self.got - self.told >= TELL_EVERY or self.got == self.upload.total:
            self.told = self.got
            self.upload.session.send({"op": "file.got", "re": self.upload.rid, "offset": self.got})

    def abort(self) -> None:
        if self.upload.phase is Phase.RECEIVING:
            self.cut()
