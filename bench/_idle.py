"""Many idle connections held open from their own process, to weigh a server's per-connection RSS.

Each connection completes one exchange before it goes idle, so when ``hold_idle``
reports ready the server has accepted it and handled a frame on it: the server's
RSS then includes everything a live, quiet connection costs it.
"""

from __future__ import annotations

import contextlib
import socket
import struct
from multiprocessing.connection import Connection

from sockhub.protocol.frames import encode_frame

from ._baselines import length_prefixed
from ._procs import raise_nofile

__all__ = ["hold_idle"]

_PREFIX = struct.Struct("!I")


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    data = bytearray()
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("server closed an idle connection")
        data += chunk
    return bytes(data)


def _recv_frame(sock: socket.socket) -> bytes:
    """One sockhub frame (header only: the frames read here carry no body)."""
    (size,) = _PREFIX.unpack(_recv_exact(sock, 4))
    return _recv_exact(sock, size)


def _sockhub_exchange(sock: socket.socket) -> None:
    """Read the hello, then one ping/pong: the connection has spoken and is quiet."""
    _recv_frame(sock)
    sock.sendall(encode_frame({"op": "ping", "id": 1}))
    _recv_frame(sock)


def _raw_exchange(sock: socket.socket, message: bytes) -> None:
    sock.sendall(message)
    _recv_exact(sock, len(message))


def hold_idle(control: Connection, port: int, count: int, sockhub: bool) -> None:
    """Process target: open ``count`` connections, say how many (or why not), hold them
    until told to close."""
    raise_nofile()
    message = length_prefixed(bytes(64))
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", port))
            socks.append(sock)
            if sockhub:
                _sockhub_exchange(sock)
            else:
                _raw_exchange(sock, message)
    except OSError as exc:
        control.send(f"failed after {len(socks)} connections: {exc}")
    else:
        control.send(len(socks))
    try:
        with contextlib.suppress(EOFError):
            control.recv()
    finally:
        for sock in socks:
            sock.close()
        control.close()
