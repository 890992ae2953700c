"""exec limits at their edge: concurrent runs per connection, user and server; output size;
and backpressure (a client that does not read stalls only its own command)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sockhub import Client
from sockhub.client.exec import RemoteProcess
from sockhub.protocol.errors import LimitBusy

from .conftest import RawPeer, b64, running_server


def _login(srv, key: bytes, name: str = "alice") -> Client:  # type: ignore[no-untyped-def]
    return Client.connect(srv.address, user=name, key=key)


def _running(client: Client) -> RemoteProcess:
    """A command known to be running (its first output arrived): it holds a slot."""
    proc = client.open_process("echo up; cat", stdin=True)
    assert next(iter(proc)).data == b"up\n"
    return proc


def _end(proc: RemoteProcess) -> None:
    proc.close_stdin()
    assert proc.wait().ok


def test_per_connection_limit(tmp_path: Path) -> None:
    with running_server(tmp_path / "d", exec=True, exec_per_connection=2) as srv:
        key = srv.add_user("alice", ("exec",))
        with _login(srv, key) as c:
            first, second = _running(c), _running(c)
            with pytest.raises(LimitBusy):
                c.run("true")
            with _login(srv, key) as other:  # another connection has its own slots
                assert other.run("true").ok
            _end(first)
            assert c.run("true").ok  # a slot is free again
            _end(second)


def test_per_user_limit_spans_connections(tmp_path: Path) -> None:
    with running_server(tmp_path / "d", exec=True, exec_per_user=2) as srv:
        alice = srv.add_user("alice", ("exec",))
        bob = srv.add_user("bob", ("exec",))
        with _login(srv, alice) as a1, _login(srv, alice) as a2, _login(srv, bob, "bob") as b:
            p1, p2 = _running(a1), _running(a2)
            with pytest.raises(LimitBusy, match="alice"):
                a2.run("true")
            assert b.run("true").ok
            _end(p1)
            assert a2.run("true").ok
            _end(p2)


def test_total_limit(tmp_path: Path) -> None:
    with running_server(tmp_path / "d", exec=True, exec_total=2) as srv:
        alice = srv.add_user("alice", ("exec",))
        bob = srv.add_user("bob", ("exec",))
        with _login(srv, alice) as a, _login(srv, bob, "bob") as b:
            p1, p2 = _running(a), _running(b)
            with pytest.raises(LimitBusy, match="server"):
                b.run("true")
            _end(p1)
            assert b.run("true").ok
            _end(p2)


def test_output_limit_at_the_edge(tmp_path: Path) -> None:
    with running_server(tmp_path / "d", exec=True, exec_output_max=1000) as srv:
        key = srv.add_user("alice", ("exec",))
        with _login(srv, key) as c:
            exact = c.run("head -c 600 /dev/zero; head -c 400 /dev/zero >&2")
            assert (len(exact.stdout) + len(exact.stderr), exact.truncated) == (1000, False)
            over = c.run("head -c 1001 /dev/zero")
            assert (len(over.stdout), over.truncated, over.status) == (1000, True, 0)
            big = c.run("head -c 5000000 /dev/urandom")  # the rest is read and dropped
            assert (len(big.stdout), big.truncated, big.status) == (1000, True, 0)


def test_a_client_that_does_not_read_stalls_only_its_command(tmp_path: Path) -> None:
    """48 MB for a peer that reads nothing for a while: without backpressure the server
    would queue it and cut the peer off as a slow consumer (max_outbound is 8 MiB)."""
    size = 48 * 1024 * 1024
    with running_server(tmp_path / "d", exec=True) as srv:
        key = srv.add_user("alice", ("exec",))
        peer = RawPeer(srv.port)
        from sockhub.protocol import auth

        cnonce = auth.new_nonce()
        nonce = auth.b64decode_nonce(peer.hello.header["nonce"])
        assert nonce is not None
        peer.request(
            {
                "op": "auth",
                "id": 1,
                "method": auth.METHOD,
                "user": "alice",
                "cnonce": b64(cnonce),
                "mac": auth.client_mac(key, nonce, cnonce, "alice").hex(),
            }
        )
        assert peer.frame().header["op"] == "ok"
        peer.request({"op": "exec.run", "id": 2, "cmd": f"head -c {size} /dev/zero; echo end >&2"})
        with _login(srv, key) as other:  # meanwhile the server serves others at full speed
            for i in range(50):
                assert other.echo(str(i)) == str(i).encode()
            assert other.run("echo busy elsewhere").stdout == b"busy elsewhere\n"
        got = {"stdout": 0, "stderr": 0}
        while True:
            frame = peer.frame()
            if frame.header["op"] == "ping":  # the server checks that we are still there
                continue
            if frame.header["op"] != "exec.out":
                break
            got[frame.header["stream"]] += len(frame.body)
        assert frame.header["op"] == "exec.exit", frame.header
        assert frame.header["status"] == 0 and not frame.header["truncated"]
        assert got == {"stdout": size, "stderr": 4}
        peer.close()
