"""What a client raises besides the wire codes: one family under ``SockhubError``.

The split follows h11 and trio. A ``RemoteProtocolError`` is the server breaking the
protocol (reported as such, never as ``internal``, the code of our own bugs); a
``LocalProtocolError`` is the program asking for something the protocol forbids.
``ConnectionClosed`` means this side closed the connection; ``ConnectionBroken`` means
the network or the server did, with the ``OSError`` (when there was one) as its cause.
They live beside the sans-IO core because the core decides most of them.
"""

from __future__ import annotations

from .errors import ProtocolError, SockhubError

__all__ = [
    "ConnectError",
    "ConnectionBroken",
    "ConnectionClosed",
    "LocalProtocolError",
    "NotSockhubServer",
    "QueueFull",
    "RemoteProtocolError",
    "RequestTimeout",
]


class RemoteProtocolError(ProtocolError):
    """The server sent something the protocol does not allow; the connection is over."""

    code = "frame.bad"
    default_fatal = True


class NotSockhubServer(RemoteProtocolError):
    """The peer does not speak sockhub at all (or not this version of it)."""


class LocalProtocolError(SockhubError):
    """This program asked for something the protocol forbids; nothing was sent."""


class ConnectError(SockhubError, ConnectionError):
    """The server could not be reached, or the connection could not be set up."""


class ConnectionClosed(SockhubError, ConnectionError):
    """This side closed the connection; it cannot be used any more."""


class ConnectionBroken(SockhubError, ConnectionError):
    """The network or the server ended the connection (the ``OSError`` is the cause)."""


class RequestTimeout(SockhubError, TimeoutError):
    """No final reply within the request's deadline; a late reply is dropped."""


class QueueFull(SockhubError):
    """Frames for one request (or pushes) came faster than the program took them.

    Only that request fails (or, for pushes, the frames past the bound are lost): the
    connection and every other request go on.
    """
