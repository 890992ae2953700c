"""Shared fixtures: a real server on a free loopback port, and a raw peer for bad input."""

from __future__ import annotations

import asyncio
import base64
import signal
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from sockhub.protocol.frames import Decoder, Frame, encode_frame
from sockhub.server import Config, Server, Service, load_config
from sockhub.server.loop import loop_factory
from sockhub.server.users import UserStore
from sockhub.services import default_services

if TYPE_CHECKING:
    from .redis_cluster_support import PrivateCluster

# A test run started in the background of a script (``make test &``) inherits SIGINT and
# SIGQUIT ignored, and so would every program the tests start: Ctrl-C tests (exec, the
# CLI) would then test nothing. Programs the tests start get the default dispositions.
for _sig in (signal.SIGINT, signal.SIGQUIT):
    if signal.getsignal(_sig) == signal.SIG_IGN:
        signal.signal(_sig, signal.SIG_DFL)


class RunningServer:
    """A server on its own event loop in a thread, so sync and async clients can both use it."""

    def __init__(self, config: Config, services: list[Service] | None) -> None:
        self.config = config
        self._services = services
        self.loop = asyncio.new_event_loop() if loop_factory() is None else loop_factory()()  # type: ignore[misc]
        self.server: Server | None = None
        self._ready: Future[None] = Future()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, daemon=True)

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._run())
        self.loop.close()

    async def _run(self) -> None:
        self._stop = asyncio.Event()
        try:
            services = (
                self._services if self._services is not None else default_services(self.config)
            )
            self.server = Server(self.config, services)
            await self.server.start()
        except BaseException as exc:
            self._ready.set_exception(exc)
            return
        self._ready.set_result(None)
        await self._stop.wait()
        await self.server.shutdown()

    def start(self) -> RunningServer:
        self._thread.start()
        self._ready.result(timeout=30)
        return self

    def stop(self) -> None:
        if self._stop is not None and self._thread.is_alive():
            self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=30)

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the server's loop thread and return its result."""
        fut: Future[Any] = Future()

        def run() -> None:
            try:
                fut.set_result(fn())
            except BaseException as exc:
                fut.set_exception(exc)

        self.loop.call_soon_threadsafe(run)
        return fut.result(timeout=30)

    def wait_until(self, condition: Callable[[], bool], limit: float = 10.0) -> None:
        """Check ``condition`` on the server's loop after each of its turns until it holds."""
        deadline = time.monotonic() + limit
        while not self.call(condition):
            if time.monotonic() > deadline:
                raise TimeoutError("the server never reached the expected state")
            time.sleep(0.001)

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.listening.tcp[0][1]

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def data(self) -> Path:
        return self.config.data

    def add_user(self, name: str, grants: tuple[str, ...] = ()) -> bytes:
        return UserStore(self.config.data).add(name, grants)


UNTHROTTLED_CHAT: dict[str, Any] = {"chat_anon_burst": 100_000, "chat_anon_per_ip_burst": 100_000}
"""Limits for a test that floods chat anonymously on purpose (not what it tests)."""


@contextmanager
def running_server(
    data: Path, services: list[Service] | None = None, **settings: Any
) -> Iterator[RunningServer]:
    config = load_config({"host": "127.0.0.1", "port": 0, "data": data, **settings}, env={})
    srv = RunningServer(config, services).start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def srv(tmp_path: Path) -> Iterator[RunningServer]:
    with running_server(tmp_path / "data") as server:
        yield server


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


class RawPeer:
    """A plain socket speaking raw bytes, to send what no client would and read frames back."""

    def __init__(
        self,
        port: int,
        host: str = "127.0.0.1",
        timeout: float = 10.0,
        *,
        expect_hello: bool = True,
        source: str | None = None,
    ) -> None:
        self.sock = socket.create_connection(
            (host, port), timeout=timeout, source_address=(source, 0) if source else None
        )
        self.decoder = Decoder(max_header=1 << 24, max_body=1 << 30)
        if expect_hello:
            self.hello = self.frame()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def request(self, header: dict[str, Any], body: bytes = b"") -> None:
        self.send(encode_frame(header, body))

    def frame(self) -> Frame:
        """The next frame; raises ConnectionError when the server closed first."""
        while True:
            event = self.decoder.next_event()
            if event is not None:
                assert isinstance(event, Frame), event
                return event
            data = self.sock.recv(1 << 20)
            if not data:
                raise ConnectionError("server closed the connection")
            self.decoder.receive_data(data)

    def closed_by_server(self) -> bool:
        """True once the server has closed (EOF or reset) with nothing more to read."""
        try:
            while True:
                data = self.sock.recv(1 << 16)
                if not data:
                    return True
        except ConnectionResetError:
            return True

    def close(self) -> None:
        self.sock.close()


def raw_prefix(n: int) -> bytes:
    return struct.pack("!I", n)


@pytest.fixture(scope="module")
def private_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateCluster]:
    """A private Redis Cluster of three masters, started once for a test module (its
    tests empty it first: ``flush``)."""
    from .redis_cluster_support import PrivateCluster  # redis is an optional dependency

    cluster = PrivateCluster(tmp_path_factory.mktemp("cluster")).start()
    try:
        yield cluster
    finally:
        cluster.stop()
