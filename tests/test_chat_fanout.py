"""Fan-out under a member that never reads: it is cut off, nobody else waits for it.

The kernel's socket buffers absorb several MB on loopback before the server's own
queue for a member grows, so the stalled member gets a tiny receive buffer and the
server a small ``max_outbound``; 6 MiB then flow through the room.
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from sockhub import AsyncClient
from sockhub.client.chat import ChatEvent, ChatMessage
from sockhub.client.common import Reply
from sockhub.protocol.frames import encode_frame

from .conftest import UNTHROTTLED_CHAT, running_server

TEXT = 16 * 1024
MESSAGES = 384  # 6 MiB
WINDOW = 8


def stalled_member(port: int, room: str) -> socket.socket:
    """Joins ``room`` and then never reads a byte."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(encode_frame({"op": "chat.join", "id": 1, "room": room, "nick": "stalled"}))
    return sock


def cut_off(sock: socket.socket) -> bool:
    """Read what the kernel still holds; True once the server has reset or closed it."""
    sock.settimeout(10)
    try:
        while sock.recv(1 << 20):
            pass
    except ConnectionResetError:
        pass
    return True


@pytest.mark.slow
async def test_a_member_that_never_reads_is_cut_off_and_the_rest_get_everything(
    tmp_path: Path,
) -> None:
    with running_server(tmp_path, max_outbound=256 * 1024, **UNTHROTTLED_CHAT) as srv:
        stalled = stalled_member(srv.port, "flood")
        readers = [await AsyncClient.connect(srv.address) for _ in range(3)]
        sender = await AsyncClient.connect(srv.address)
        try:
            for n, r in enumerate(readers):
                joined = await r.join("flood", f"reader{n}")
                assert "stalled" in joined.members
            await sender.join("flood", "sender")
            text = b"x" * TEXT
            inflight: list[asyncio.Future[Reply]] = []
            for _ in range(MESSAGES):
                inflight.append(sender.request("chat.say", text, room="flood"))
                if len(inflight) >= WINDOW:
                    await inflight.pop(0)
            for future in inflight:
                await future

            async def everything(r: AsyncClient) -> tuple[list[int], bool]:
                seqs: list[int] = []
                stalled_left = False
                while len(seqs) < MESSAGES or not stalled_left:
                    item = await r.next_chat(30)
                    if isinstance(item, ChatMessage) and item.seq is not None:
                        assert len(item.text) == TEXT
                        seqs.append(item.seq)
                    elif isinstance(item, ChatEvent) and item.event == "leave":
                        stalled_left = stalled_left or item.nick == "stalled"
                return seqs, stalled_left

            for seqs, stalled_left in await asyncio.gather(*(everything(r) for r in readers)):
                assert seqs == list(range(1, MESSAGES + 1))
                assert stalled_left  # the others were told it left
            assert cut_off(stalled)
            assert await readers[0].who("flood") == ["reader0", "reader1", "reader2", "sender"]
        finally:
            stalled.close()
            for c in [*readers, sender]:
                await c.close()
