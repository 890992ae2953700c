"""Clients for a sockhub server: ``AsyncClient`` (asyncio) and ``Client`` (blocking)."""

from ..protocol.client_events import Chunk, Reply
from ..protocol.errors import ProtocolError, SockhubError
from .address import Address, parse_address
from .aio import AsyncClient
from .common import TimeResult, read_key
from .errors import (
    ConnectError,
    ConnectionBroken,
    ConnectionClosed,
    LocalFileChanged,
    LocalProtocolError,
    NotSockhubServer,
    QueueFull,
    RemoteProtocolError,
    RequestTimeout,
    TlsPinError,
)
from .exec import Completed, Output, RemoteProcessError
from .sync import Client

__all__ = [
    "Address",
    "AsyncClient",
    "Chunk",
    "Client",
    "Completed",
    "ConnectError",
    "ConnectionBroken",
    "ConnectionClosed",
    "LocalFileChanged",
    "LocalProtocolError",
    "NotSockhubServer",
    "Output",
    "ProtocolError",
    "QueueFull",
    "RemoteProcessError",
    "RemoteProtocolError",
    "Reply",
    "RequestTimeout",
    "SockhubError",
    "TimeResult",
    "TlsPinError",
    "parse_address",
    "read_key",
]
