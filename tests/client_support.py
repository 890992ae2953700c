"""Test support for the clients: a scripted misbehaving server, and one facade over both clients.

``ScriptedServer`` listens on loopback and runs a script per connection in a thread:
send a hello (or not), read the client's frames, answer with whatever the test wants
(malformed replies, half a frame, nothing at all, bytes of another protocol). ``Either``
drives ``Client`` or ``AsyncClient`` through the same blocking calls so one test body
covers both clients.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import inspect
import os
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from typing import Any

from sockhub import AsyncClient, Client
from sockhub.protocol.frames import Decoder, Frame, encode_frame

HELLO = {
    "op": "hello",
    "server": "scripted",
    "proto": 1,
    "nonce": base64.b64encode(os.urandom(32)).decode(),
    "auth": ["hmac-sha256"],
    "services": ["echo"],
    "limits": {"idle_timeout": 300, "max_body": 1 << 20},
}


class Peer:
    """The server's side of one connection, as a script sees it."""

    def __init__(self, sock: socket.socket, stop: threading.Event) -> None:
        self.sock = sock
        self.stop = stop
        self.decoder = Decoder(max_header=1 << 20, max_body=1 << 26)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def hello(self, **changes: Any) -> None:
        header = {**HELLO, **changes}
        self.send(encode_frame({k: v for k, v in header.items() if v is not None}))

    def frame(self) -> Frame | None:
        """The client's next frame, or None once it closed."""
        while True:
            event = self.decoder.next_event()
            if isinstance(event, Frame):
                return None if event.header.get("op") == "bye" else event
            try:
                data = self.sock.recv(1 << 16)
            except OSError:
                return None
            if not data:
                return None
            self.decoder.receive_data(data)

    def request(self) -> Frame | None:
        """The client's next frame that carries an id (pings without one are skipped)."""
        while (frame := self.frame()) is not None:
            if frame.header.get("id") is not None and frame.header.get("op") != "pong":
                return frame
        return None

    def reply(self, frame: Frame, **fields: Any) -> None:
        self.send(encode_frame({"op": frame.header["op"], "re": frame.header["id"], **fields}))

    def drain_until_closed(self) -> None:
        """Read and drop whatever the client sends until it says bye or closes."""
        while self.frame() is not None:
            pass

    def never_read(self) -> None:
        """Hold the connection without reading a byte until the test ends."""
        self.stop.wait()

    def reset(self) -> None:
        """Close abortively: the client sees a reset, not an orderly end."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()


class ScriptedServer:
    def __init__(self, script: Callable[[Peer], None]) -> None:
        self.script = script
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self.socks: list[socket.socket] = []
        self.errors: list[BaseException] = []
        self.accepter = threading.Thread(target=self._accept, daemon=True)
        self.accepter.start()

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            self.socks.append(sock)
            thread = threading.Thread(target=self._run, args=(sock,), daemon=True)
            self.threads.append(thread)
            thread.start()

    def _run(self, sock: socket.socket) -> None:
        peer = Peer(sock, self.stop)
        try:
            self.script(peer)
        except OSError:
            pass  # the client went away mid-script: that is the client's business
        except BaseException as exc:
            self.errors.append(exc)
        finally:
            with contextlib.suppress(OSError):
                sock.close()

    def close(self) -> None:
        self.stop.set()
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() below on Linux
        self.listener.close()
        self.accepter.join(timeout=10)
        for sock in self.socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # a script still reading ends now
        for thread in self.threads:
            thread.join(timeout=10)
        assert not self.errors, self.errors


@contextlib.contextmanager
def scripted(script: Callable[[Peer], None]) -> Iterator[ScriptedServer]:
    server = ScriptedServer(script)
    try:
        yield server
    finally:
        server.close()


class Either:
    """``Client`` or ``AsyncClient`` behind the same blocking calls.

    ``call(name, ...)`` runs a client method; for the asyncio client it is awaited on one
    private event loop that lives as long as this object, so the connection persists
    between calls.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.runner = asyncio.Runner() if kind == "async" else None
        self.client: Any = None

    def connect(self, server: str, **kwargs: Any) -> Either:
        if self.runner is None:
            self.client = Client.connect(server, **kwargs)
        else:
            self.client = self.runner.run(AsyncClient.connect(server, **kwargs))
        return self

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        result = getattr(self.client, name)(*args, **kwargs)
        if self.runner is None:
            return result

        async def wait() -> Any:
            return await result

        return self.runner.run(wait())

    def send_and_drain(self, op: str, body: bytes) -> None:
        """Send a frame with no reply and wait until the client's buffers take it."""
        self.client.send(op, body)
        if self.runner is not None:
            self.call("drain")

    def run(self, func: Callable[[Any], Any]) -> Any:
        """``func(client)``; awaited when it returns an awaitable."""
        result = func(self.client)
        if self.runner is None or not inspect.isawaitable(result):
            return result

        async def wait() -> Any:
            return await result

        return self.runner.run(wait())

    def close(self) -> None:
        if self.client is not None:
            with contextlib.suppress(Exception):
                self.call("close")
        if self.runner is not None:
            self.runner.close()


def connect_either(kind: str, server: str, **kwargs: Any) -> Either:
    either = Either(kind)
    try:
        return either.connect(server, **kwargs)
    except BaseException:
        either.close()
        raise
