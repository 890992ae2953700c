"""Both clients keep a quiet connection alive below the server's idle timeout."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from sockhub import AsyncClient, Client

from .conftest import running_server


def test_sync_client_pings_while_waiting_for_pushes(tmp_path: Path) -> None:
    with running_server(tmp_path, idle_timeout=1.0) as server:
        with Client.connect(server.address) as c:
            with pytest.raises(TimeoutError):
                c.next_push(timeout=2.5)  # nothing is pushed, but the wait sends pings
            assert c.echo("still connected") == b"still connected"


async def test_async_client_pings_in_the_background(tmp_path: Path) -> None:
    with running_server(tmp_path, idle_timeout=1.0) as server:
        async with await AsyncClient.connect(server.address) as c:
            with pytest.raises(TimeoutError):
                await c.next_push(timeout=2.5)
            assert await c.echo("alive") == b"alive"
        quiet = await AsyncClient.connect(server.address, keepalive=False)
        with pytest.raises(Exception) as info:
            await asyncio.wait_for(quiet.next_push(), 10)
        assert getattr(info.value, "code", None) == "limit.idle"
        await quiet.close()
