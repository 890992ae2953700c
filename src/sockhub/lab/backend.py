"""The lab's link to a real sockhub server: exec, files and chat go through sockhub's client.

Going through the server rather than running things here is the point: a course command
runs in the exec service's sandbox with its limits, an upload lands in the user's files
tree under its path rules and quota, and course chat clients share a room with
``sockhub chat`` users.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..client import AsyncClient, ConnectError, ConnectionClosed
from ..client.exec import Completed
from ..protocol.errors import ProtocolError
from .limits import LabLimits

__all__ = ["Backend", "BackendError", "Ran", "connect_backend"]

log = logging.getLogger("sockhub.lab")

FILES_FOLDER = "lab"


class BackendError(Exception):
    """The sockhub server could not do what a course program asked (said in plain words)."""


@dataclass(frozen=True, slots=True)
class Ran:
    status: int
    stdout: bytes
    stderr: bytes
    timed_out: bool = False


class Backend:
    """One authenticated connection shared by every course connection of the lab.

    A connection the server closed (a restart, an idle timeout) is opened again before the
    next request; a request is never repeated, so a command never runs twice.
    """

    def __init__(
        self,
        client: AsyncClient,
        again: tuple[str, str | None, bytes | None],
        limits: LabLimits,
    ) -> None:
        self.client = client
        self._again = again
        self.limits = limits

    async def _ready(self) -> AsyncClient:
        if self.client.closed:
            server, user, key = self._again
            try:
                self.client = await AsyncClient.connect(server, user=user, key=key, timeout=5.0)
            except (ConnectError, ProtocolError, OSError) as exc:
                raise BackendError(f"the sockhub server {server} is gone: {exc}") from exc
            log.info("sockhub server %s reached again", server)
        return self.client

    @property
    def grants(self) -> list[str]:
        return self.client.grants

    async def run(self, cmd: str) -> Ran:
        try:
            client = await self._ready()
            done: Completed = await client.run(cmd, timeout=self.limits.exec_timeout)
        except (ProtocolError, ConnectionClosed, ConnectionError) as exc:
            raise BackendError(f"the sockhub exec service refused {cmd!r}: {exc}") from exc
        return Ran(done.exit_code, done.stdout, done.stderr, done.timed_out)

    async def put(self, data_file: Path, name: str) -> str:
        remote = f"{FILES_FOLDER}/{name}"
        client = await self._ready()
        try:
            await client.put(data_file, remote, overwrite=True)
        except (ProtocolError, ConnectionClosed, ConnectionError, OSError) as exc:
            raise BackendError(f"the sockhub files service refused {remote!r}: {exc}") from exc
        return remote

    async def get(self, name: str) -> bytes:
        remote = f"{FILES_FOLDER}/{name}"
        with tempfile.TemporaryDirectory(prefix="sockhub-lab-") as tmp:
            local = Path(tmp) / "download"
            client = await self._ready()
            try:
                size = (await client.stat(remote)).size or 0
                if size > self.limits.max_download:
                    raise BackendError(
                        f"{remote!r} has {size} bytes; the lab sends up to "
                        f"{self.limits.max_download} (max_download)"
                    )
                await client.get(remote, local)
            except (ProtocolError, ConnectionClosed, ConnectionError, OSError) as exc:
                raise BackendError(f"no {remote!r} in the sockhub files tree: {exc}") from exc
            return await asyncio.to_thread(local.read_bytes)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.client.close()


async def connect_backend(
    server: str, *, user: str | None, key: bytes | None, limits: LabLimits
) -> Backend | None:
    """A backend, or None (logged) when the server cannot be reached or refuses us."""
    try:
        client = await AsyncClient.connect(server, user=user, key=key, timeout=5.0)
    except (ConnectError, ProtocolError, OSError) as exc:
        log.warning("no sockhub server at %s (%s): the lab works without one", server, exc)
        return None
    who = f"user {client.user}" if client.user else "no user (set SOCKHUB_USER/SOCKHUB_KEY)"
    log.info("sockhub server %s reached as %s, grants: %s", server, who, client.grants or "none")
    return Backend(client, (server, user, key), limits)


def spool_path() -> Path:
    """A private temporary file for one upload (the caller removes it)."""
    fd, name = tempfile.mkstemp(prefix="sockhub-lab-upload-")
    os.close(fd)
    return Path(name)
