"""sockhub: one server, one port, one framed protocol — echo, time, chat, files and exec.

``sockhub.Client`` (blocking) and ``sockhub.AsyncClient`` (asyncio) speak the protocol of
``PROTOCOL.md`` so a program never writes the length-prefix recv loop again. Every
exception they raise derives from ``sockhub.SockhubError``.
"""

from ._version import __version__
from .client import (
    AsyncClient,
    Client,
    ConnectError,
    ConnectionBroken,
    ConnectionClosed,
    LocalFileChanged,
    LocalProtocolError,
    NotSockhubServer,
    ProtocolError,
    QueueFull,
    RemoteProcessError,
    RemoteProtocolError,
    RequestTimeout,
    SockhubError,
    TlsPinError,
)

__all__ = [
    "AsyncClient",
    "Client",
    "ConnectError",
    "ConnectionBroken",
    "ConnectionClosed",
    "LocalFileChanged",
    "LocalProtocolError",
    "NotSockhubServer",
    "ProtocolError",
    "QueueFull",
    "RemoteProcessError",
    "RemoteProtocolError",
    "RequestTimeout",
    "SockhubError",
    "TlsPinError",
    "__version__",
]
