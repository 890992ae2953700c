from __future__ import annotations

from sockhub import AsyncClient, Client

from .conftest import RunningServer


def test_sync_echo_time_ping(srv: RunningServer) -> None:
    with Client.connect(srv.address) as c:
        assert c.echo("hi there", upper=True) == b"HI THERE"
        assert c.time(utc=True).tz == "UTC"
        assert c.ping() >= 0


async def test_async_echo_pipelined(srv: RunningServer) -> None:
    async with await AsyncClient.connect(srv.address) as c:
        futures = [c.request("echo", str(i).encode()) for i in range(500)]
        replies = [await f for f in futures]
        assert [r.body for r in replies] == [str(i).encode() for i in range(500)]
