"""``BodyReads``: which buffer a buffered protocol's next read lands in."""

from __future__ import annotations

from sockhub.server.reads import BodyReads, read_buffer


class Pool:
    """A sink lending buffers of 8 bytes, counting what it has lent."""

    def __init__(self) -> None:
        self.lent = 0

    def buffer(self, size: int) -> memoryview | None:
        self.lent += 1
        return memoryview(bytearray(8))[:size]

    def write(self, chunk: bytes | memoryview) -> None:
        pass

    def end(self) -> None:
        pass

    def abort(self) -> None:
        pass


def test_a_body_lands_in_its_sink_and_anything_else_in_the_read_buffer() -> None:
    reads, sink = BodyReads(), Pool()
    assert reads.buffer(None, 5).obj is read_buffer().obj
    assert reads.buffer(sink, 0).obj is read_buffer().obj  # no body left to come
    assert sink.lent == 0 and reads.landed(3) is None
    view = reads.buffer(sink, 5)
    assert len(view) == 5 and view.obj is not read_buffer().obj
    view[:3] = b"abc"
    assert bytes(reads.landed(3) or b"") == b"abc"
    assert reads.landed(3) is None  # each lent buffer lands once


def test_a_buffer_lent_for_a_read_that_found_nothing_is_lent_again() -> None:
    reads, sink = BodyReads(), Pool()
    first = reads.buffer(sink, 5)
    assert reads.buffer(sink, 5) is first and sink.lent == 1
    other = Pool()  # another body (the first one ended): its own buffers
    assert reads.buffer(other, 5) is not first and other.lent == 1
    assert reads.buffer(None, 5).obj is read_buffer().obj  # and none held on to
    assert reads.buffer(other, 5) is not first and other.lent == 2
