"""sockhub: one server, one port, one framed protocol — echo, time, chat, files and exec.

``sockhub.Client`` (blocking) and ``sockhub.AsyncClient`` (asyncio) speak the protocol of
``PROTOCOL.md`` so a program never writes the length-prefix recv loop again.
"""

from ._version import __version__
from .client import AsyncClient, Client, ConnectError
from .protocol.errors import ProtocolError

__all__ = ["AsyncClient", "Client", "ConnectError", "ProtocolError", "__version__"]
