"""The client's exceptions: the family of ``protocol/client_errors.py`` plus the local ones.

Everything here derives from ``sockhub.SockhubError``; the wire error classes of
``protocol/errors.py`` (the server answered with that code) are the remote family
under the same root.
"""

from __future__ import annotations

from ..protocol.client_errors import (
    ConnectError,
    ConnectionBroken,
    ConnectionClosed,
    LocalProtocolError,
    NotSockhubServer,
    QueueFull,
    RemoteProtocolError,
    RequestTimeout,
)
from ..protocol.errors import SockhubError

__all__ = [
    "ConnectError",
    "ConnectionBroken",
    "ConnectionClosed",
    "LocalFileChanged",
    "LocalProtocolError",
    "NotSockhubServer",
    "QueueFull",
    "RemoteProtocolError",
    "RequestTimeout",
    "TlsPinError",
]


class TlsPinError(ConnectError):
    """The server's TLS certificate is not the one pinned for it."""


class LocalFileChanged(SockhubError):
    """A local file changed size while it was being sent; the upload may be retried."""
