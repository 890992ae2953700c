"""A changed users.json reaches sessions already open: removal and a new key end them,
changed grants hold from the next request."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from sockhub.server.users import UserStore

from .conftest import RawPeer, RunningServer
from .test_server_auth import auth_frame


def _logged_in(srv: RunningServer, name: str, key: bytes) -> RawPeer:
    peer = RawPeer(srv.port)
    peer.send(auth_frame(peer, name, key))
    assert peer.frame().header["op"] == "ok"
    return peer


def _edit(path: Path, name: str, **fields: object) -> None:
    doc = json.loads(path.read_text())
    doc[name].update(fields)
    path.write_text(json.dumps(doc))


def test_removed_user_is_closed_with_a_clear_error(srv: RunningServer) -> None:
    key = srv.add_user("gone", ("files",))
    peer = _logged_in(srv, "gone", key)
    other = _logged_in(srv, "stays", srv.add_user("stays"))
    UserStore(srv.data).remove("gone")
    error = peer.frame().header
    assert error["op"] == "error" and error["code"] == "auth.failed" and error["fatal"] is True
    assert "gone was removed" in error["message"]
    assert peer.closed_by_server()
    other.request({"op": "ping", "id": 2})
    assert other.frame().header == {"op": "pong", "re": 2}


def test_changed_key_closes_and_changed_grants_apply(srv: RunningServer) -> None:
    key = srv.add_user("carol", ("files",))
    rekeyed = _logged_in(srv, "carol", key)
    users = srv.data / "users.json"
    _edit(users, "carol", key=base64.b64encode(bytes(32)).decode())
    error = rekeyed.frame().header
    assert error["code"] == "auth.failed" and "key of user carol was changed" in error["message"]

    key = srv.add_user("dave", ("files",))
    peer = _logged_in(srv, "dave", key)
    peer.request({"op": "file.list", "id": 3, "path": ""})
    assert peer.frame().header["op"] != "error"
    _edit(users, "dave", grants=[])
    srv.wait_until(
        lambda: (
            "files"
            not in next(
                c.grants
                for c in srv.server.connections
                if c.user == "dave"  # type: ignore[union-attr]
            )
        )
    )
    peer.request({"op": "file.list", "id": 4, "path": ""})
    error = peer.frame().header
    assert error["code"] == "auth.required" and error["re"] == 4 and error["fatal"] is False
