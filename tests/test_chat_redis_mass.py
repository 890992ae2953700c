"""A thousand chat members leave at once on the Redis broker.

What a node records in Redis for direct messages (which names its connections hold)
and for reapers (which rooms it has members in) is written in one call per loop turn,
so a mass disconnect neither exhausts redis-py's connection pool nor leaves stale
entries behind.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from sockhub import Client
from sockhub.client.chat import ChatMessage
from sockhub.protocol.frames import encode_frame
from sockhub.services.chat.redis_format import NODES, node_keys, reach_key

from .conftest import running_server
from .redis_support import RedisServer

MEMBERS = 1000
ROOMS = 10
UNLIMITED_SENDERS = {
    "chat_anon_per_sec": 1e9,
    "chat_anon_burst": 1_000_000_000,
    "chat_anon_per_ip_per_sec": 1e9,
    "chat_anon_per_ip_burst": 1_000_000_000,
}


async def _member(port: int, room: str, nick: str) -> asyncio.StreamWriter:
    """A raw connection that joined ``room`` as ``nick`` (cheaper than a client each)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    seen = b""
    while b"hello" not in seen:
        seen += await reader.read(1 << 16)
    writer.write(encode_frame({"op": "chat.join", "id": 1, "room": room, "nick": nick}))
    while b"chat.joined" not in seen:
        seen += await reader.read(1 << 16)
    return writer


async def _until(condition_met: Callable[[], bool], limit: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + limit
    while not condition_met():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("Redis never showed the expected reach data")
        await asyncio.sleep(0.05)


@pytest.mark.slow
async def test_a_thousand_members_leave_at_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = RedisServer(tmp_path / "redis").start()
    settings = {"max_connections_per_ip": 4 * MEMBERS, **UNLIMITED_SENDERS}
    try:
        with (
            running_server(tmp_path / "data", broker=server.url, **settings) as srv,
            Client.connect(srv.address) as stay,
            Client.connect(srv.address) as sender,
            redis.Redis(port=server.port) as direct,
        ):
            stay.join("r0", "stay")
            sender.join("r1", "ada")
            writers = await asyncio.gather(
                *(_member(srv.port, f"r{n % ROOMS}", f"m{n}") for n in range(MEMBERS))
            )
            [node] = [raw.decode() for raw in direct.zrange(NODES, 0, -1)]
            rooms_key, keys_key, _ = node_keys(node)
            assert direct.hget(reach_key("m999"), node) == b"1"
            assert direct.scard(rooms_key) == ROOMS
            caplog.set_level(logging.WARNING, logger="sockhub")
            for writer in writers:
                writer.transport.abort()  # all at once, no goodbye

            def left() -> bool:
                gone = all(not direct.exists(reach_key(f"m{n}")) for n in range(0, MEMBERS, 37))
                return gone and direct.smembers(rooms_key) == {b"r0", b"r1"}

            await _until(left)
            assert not any(direct.exists(reach_key(f"m{n}")) for n in range(MEMBERS))
            assert direct.smembers(keys_key) == {b"stay", b"ada"}
            assert direct.hgetall(reach_key("stay")) == {node.encode(): b"1"}
            assert stay.who("r0") == ["stay"]
            sender.dm("stay", "still here?")
            dm = stay.next_chat(5)
            while not (isinstance(dm, ChatMessage) and dm.dm):
                dm = stay.next_chat(5)  # the leave events came first
            assert (dm.sender, dm.text) == ("ada", "still here?")
    finally:
        server.stop()
    complaints = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert complaints == []
