"""The tests' private redis-server: a first start whose free port was taken meanwhile
(by the other test worker, say) tries another; a restart keeps its port."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from . import redis_support
from .redis_support import RedisServer


def test_a_port_taken_before_redis_binds_it_is_given_up_for_another(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = redis_support.free_port
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        held = taken.getsockname()[1]

        def ports() -> Iterator[int]:
            yield held
            while True:
                yield real()

        chosen = ports()
        monkeypatch.setattr(redis_support, "free_port", lambda: next(chosen))
        server = RedisServer(tmp_path / "redis").start()
        try:
            assert server.port != held and server.ping()
            port = server.port
            server.restart(empty=True)
            assert server.port == port and server.ping()
        finally:
            server.stop()
