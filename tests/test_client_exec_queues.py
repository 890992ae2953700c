"""A remote process nobody reads, on a real server: only its own request fails.

Its output overflows that request's queue (``QueueFull``) while ``ping()`` and other
requests go on, for both clients; the blocking client's memory stays bounded.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from sockhub import AsyncClient, Client, QueueFull

from .conftest import running_server
from .test_exec_service import Exec

LOUD = "head -c 2000000 /dev/zero"
QUEUE_BYTES = 64 * 1024
READ_AHEAD = 256 * 1024 + 64 * 1024
"""One read of the blocking client not yet decoded, plus one output frame."""


def overflowed(client: Client | AsyncClient, rid: int) -> bool:
    """The run's ``QueueFull`` waits among its untaken items (a look inside the client:
    no public call tells it without taking the items)."""
    if isinstance(client, Client):
        return any(isinstance(getattr(e, "error", None), QueueFull) for e in client._held[rid])
    return any(isinstance(item, QueueFull) for item in client._streams[rid].items)


@pytest.fixture
def ex(tmp_path: Path) -> Iterator[Exec]:
    with running_server(tmp_path / "data", exec=True) as srv:
        yield Exec(srv)


def test_an_unread_process_fails_alone_in_the_blocking_client(ex: Exec) -> None:
    with Client.connect(ex.srv.address, user="alice", key=ex.key, queue_bytes=QUEUE_BYTES) as c:
        proc = c.open_process(LOUD)
        bounds = [c.held_bytes]
        # The output keeps arriving while other requests go on, until it overflows (2 MB
        # against a 64 KiB queue); pytest's timeout bounds a client that never gets there.
        while not overflowed(c, proc.id):
            assert c.ping() >= 0
            assert c.echo("still here") == b"still here"
            bounds.append(c.held_bytes)
        assert max(bounds) <= QUEUE_BYTES + READ_AHEAD
        with pytest.raises(QueueFull):
            proc.wait()
        assert c.run("echo after").stdout == b"after\n"


def test_an_abandoned_process_leaves_nothing_held_in_the_blocking_client(ex: Exec) -> None:
    with ex.client() as c:
        proc = c.open_process(LOUD)
        pieces = iter(proc)
        next(pieces)
        del pieces, proc  # read one piece, then walk away: the rest of the run is abandoned
        c.run("true")
        c.ping()
        assert c.held_bytes <= READ_AHEAD  # what one read brings, never the whole output


def test_an_unread_process_fails_alone_in_the_async_client(ex: Exec) -> None:
    async def main() -> None:
        async with await AsyncClient.connect(
            ex.srv.address, user="alice", key=ex.key, queue_bytes=QUEUE_BYTES
        ) as c:
            proc = c.open_process(LOUD)
            while not overflowed(c, proc.id):
                assert await c.ping() >= 0
                assert await c.echo("still here") == b"still here"
            with pytest.raises(QueueFull):
                await proc.wait()
            assert (await c.run("echo after")).stdout == b"after\n"

    asyncio.run(main())
