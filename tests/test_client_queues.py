"""Pushes nobody reads are bounded; the connection and pings go on (both clients)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sockhub import Client, QueueFull

from .client_support import connect_either
from .conftest import running_server


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_unread_pushes_are_dropped_past_the_bound(tmp_path: Path, kind: str) -> None:
    with running_server(tmp_path / "data") as srv:
        c = connect_either(kind, srv.address, push_queue_size=5)
        try:
            c.call("join", "lobby", "quiet")
            with Client.connect(srv.address) as talker:
                talker.join("lobby", "talker")
                for i in range(30):
                    talker.say("lobby", f"m{i}")
            c.call("ping")
            taken = 0
            with pytest.raises(QueueFull):
                while True:
                    c.call("next_push", 5)
                    taken += 1
            assert taken == 5
            assert c.call("echo", "ok") == b"ok"
        finally:
            c.close()
