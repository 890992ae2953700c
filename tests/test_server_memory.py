"""One memory budget for the whole server: hostile connections cannot pin more than it."""

from __future__ import annotations

import contextlib
import socket
from pathlib import Path

from sockhub.protocol.frames import encode_header

from .conftest import running_server

MiB = 1024 * 1024
CLIENTS = 200
BUDGET = 16 * MiB


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def test_half_sent_bodies_stay_within_the_body_budget(tmp_path: Path) -> None:
    """200 connections each send a 1 MiB echo body but its last byte: the server holds
    about the budget, not 200 MiB, and gives it back when they leave."""
    with running_server(tmp_path, memory_bodies=BUDGET, max_connections_per_ip=CLIENTS + 8) as srv:
        server = srv.server
        assert server is not None
        frame = bytes(encode_header({"op": "echo", "id": 1}, MiB)) + bytes(MiB - 1)
        base = _rss()
        socks = []
        for _ in range(CLIENTS):
            sock = socket.create_connection(("127.0.0.1", srv.port))
            sock.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                sock.send(frame)
            socks.append(sock)
        srv.wait_until(lambda: server.bodies.used // MiB + server.bodies.waiting == CLIENTS)
        held = _rss() - base
        assert server.bodies.used <= BUDGET
        assert held < CLIENTS * MiB // 2, f"{held / MiB:.0f} MiB held"
        for sock in socks:
            sock.close()
        srv.wait_until(lambda: not server.connections)
        assert server.bodies.used == 0 and server.bodies.waiting == 0
        assert _rss() - base < held
