"""Helpers the files tests share: a server with a files user, raw uploads, settling."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sockhub import Client
from sockhub.client.common import Reply
from sockhub.protocol.frames import encode_frame, encode_header
from sockhub.server.users import UserStore

from .conftest import RunningServer, running_server

USER = "al"


@contextmanager
def files_server(data: Path, **settings: Any) -> Iterator[tuple[RunningServer, bytes]]:
    """A running server and the key of a user with the files grant (a new key each time)."""
    users = UserStore(data)
    if users.get(USER) is not None:
        users.remove(USER)
    with running_server(data, **settings) as srv:
        yield srv, srv.add_user(USER, ("files",))


def connect(srv: RunningServer, key: bytes, **kwargs: Any) -> Client:
    return Client.connect(kwargs.pop("address", srv.address), user=USER, key=key, **kwargs)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def stored(srv: RunningServer, path: str) -> Path:
    return srv.data / "files" / path


def partials(srv: RunningServer) -> list[Path]:
    return sorted((srv.data / "files-partial").glob("*.part"))


class RawUpload:
    """An upload driven frame by frame, to stop it anywhere a real client could."""

    def __init__(self, client: Client, path: str, total: int, **fields: Any) -> None:
        self.client = client
        self.rid = client.start_stream(
            "file.put", partial=("file.ready",), path=path, total=total, **fields
        )
        self.items = client.follow(self.rid)
        self.total = total

    def ready(self) -> Reply:
        reply = next(self.items)
        assert isinstance(reply, Reply)
        return reply

    def data_header(self, size: int) -> None:
        self.client.send_raw(bytes(encode_header({"op": "file.data", "target": self.rid}, size)))

    def raw(self, data: bytes) -> None:
        self.client.send_raw(data)

    def end(self, digest: str) -> None:
        self.client.send_raw(encode_frame({"op": "file.end", "target": self.rid, "sha256": digest}))

    def drop(self) -> None:
        """Cut the connection where it stands (no bye: the body is half sent)."""
        self.client._shut()

    def final(self) -> Reply:
        reply = next(self.items)
        assert isinstance(reply, Reply)
        return reply


def interrupt_upload(
    srv: RunningServer, key: bytes, path: str, total: int, part: bytes, **fields: Any
) -> int:
    """Start an upload of ``total`` bytes, send ``part`` of them, cut the connection and
    let the server clean up; the offset its file.ready had offered."""
    with connect(srv, key) as c:
        up = RawUpload(c, path, total, **fields)
        offset = int(up.ready().header["offset"])
        if part:
            up.data_header(total - offset)
            up.raw(part)
        up.drop()
    settle(srv)
    return offset


def files_service(srv: RunningServer) -> Any:
    assert srv.server is not None
    return next(s for s in srv.server.services if s.name == "files")


def settle(srv: RunningServer) -> None:
    """Let the server see connections that closed and finish their uploads' cleanup."""
    uploads = files_service(srv).uploads

    async def wait() -> None:
        for _ in range(100_000):
            running = list(uploads.busy.values())
            if not running:
                return
            if all(u.session.closed for u in running):
                await asyncio.gather(*(asyncio.shield(u.released) for u in running))
            else:
                await asyncio.sleep(0)  # one loop turn: the close is already in the kernel
        raise AssertionError("uploads are still running")

    asyncio.run_coroutine_threadsafe(wait(), srv.loop).result(30)


class ServerProcess:
    """``sockhub serve`` in a child process, to be killed the hard way."""

    def __init__(self, data: Path, *args: str, preexec: Any = None) -> None:
        self.data = data
        self.log = (data.parent / "server.log").open("ab")
        serve = ["serve", "--host", "127.0.0.1", "--port", "0", "--data", str(data), "--no-udp"]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sockhub", *serve, *args],
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            preexec_fn=preexec,
            start_new_session=True,  # its own process group: the end takes every worker
        )
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.strip().startswith("tcp "):
                self.address = line.split()[1]
                break
        else:
            raise AssertionError("the server printed no address")

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        """End the whole tree the server started (``--workers``, exec children), also
        when a test failed half-way or killed only the parent."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.log.close()
