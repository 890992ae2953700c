"""Where an ``asyncio.BufferedProtocol``'s reads land: a streamed body's bytes straight
into its sink's pooled buffers, anything else into one read buffer per thread.

Shared by the framed session (a ``file.data`` body) and the web port's upload POST, so
an upload's bytes are received into the buffer its spool writes and hashes from: no
``bytes`` object is made, and copied again, per read.
"""

from __future__ import annotations

import threading

from .service import BodySink

__all__ = ["READ_SIZE", "BodyReads", "read_buffer"]

READ_SIZE = 256 * 1024
"""Bytes the shared read buffer takes at once."""
_reads = threading.local()


def read_buffer() -> memoryview:
    """One read buffer per thread (per event loop): data is copied out of it at once."""
    view: memoryview | None = getattr(_reads, "view", None)
    if view is None:
        view = _reads.view = memoryview(bytearray(READ_SIZE))
    return view


class BodyReads:
    """One connection's side of ``get_buffer``/``buffer_updated``.

    A buffer lent by the sink for a read that found nothing (the event loop asks for a
    buffer before each read, and a read may come back empty) is offered again for the
    next read, so the sink's pool does not count it as lent for ever."""

    __slots__ = ("_sink", "_view")

    def __init__(self) -> None:
        self._sink: BodySink | None = None
        self._view: memoryview | None = None

    def buffer(self, sink: BodySink | None, left: int) -> memoryview:
        """Where the next read lands: ``sink``'s own buffer while its body has ``left``
        bytes to come and the sink lends one; else the thread's read buffer."""
        if sink is not None and left:
            view = self._view if self._sink is sink else None
            if view is None or len(view) > left:
                view = sink.buffer(left)
            if view is not None:
                self._sink, self._view = sink, view
                return view
        self._sink = self._view = None
        return read_buffer()

    def landed(self, nbytes: int) -> memoryview | None:
        """The ``nbytes`` just read into the sink's buffer; None: they are in the thread's
        read buffer (``read_buffer()[:nbytes]``), to be copied out at once."""
        view, self._view = self._view, None
        self._sink = None
        return None if view is None else view[:nbytes]
