"""Clients for a sockhub server: ``AsyncClient`` (asyncio) and ``Client`` (blocking)."""

from .address import Address, parse_address
from .aio import AsyncClient, Chunk
from .common import Reply, TimeResult, read_key
from .errors import ConnectError, ConnectionClosed, TlsPinError
from .exec import Completed, Output, RemoteProcessError
from .sync import Client

__all__ = [
    "Address",
    "AsyncClient",
    "Chunk",
    "Client",
    "Completed",
    "ConnectError",
    "ConnectionClosed",
    "Output",
    "RemoteProcessError",
    "Reply",
    "TimeResult",
    "TlsPinError",
    "parse_address",
    "read_key",
]
