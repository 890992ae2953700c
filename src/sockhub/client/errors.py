"""Client-side errors that are not protocol error codes: could not connect, connection gone."""

from __future__ import annotations

__all__ = ["ConnectError", "ConnectionClosed", "TlsPinError"]


class ConnectError(ConnectionError):
    """The server could not be reached, did not speak sockhub, or refused our credentials."""


class TlsPinError(ConnectError):
    """The server's TLS certificate is not the one pinned for it."""


class ConnectionClosed(ConnectionError):
    """The connection ended before the reply arrived (we closed it, or the peer or network did)."""
