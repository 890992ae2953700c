"""The sockhub wire protocol, sans-IO: bytes in, events out; events in, bytes out.

Nothing here touches a socket, a loop or a thread, so the server, both clients, the
WebSocket bridge and the fuzz tests all share exactly the same parser.
"""

from .client import PROTO, ClientConnection, Hello, reply_error
from .client_events import Chunk, Reply
from .errors import ProtocolError, error_from_header, error_header
from .frames import (
    DEFAULT_MAX_BODY,
    DEFAULT_MAX_HEADER,
    BodyChunk,
    BodyEnd,
    Decoder,
    Event,
    Frame,
    FrameStart,
    decode_datagram,
    encode_frame,
    encode_header,
    encode_header_into,
)

__all__ = [
    "DEFAULT_MAX_BODY",
    "DEFAULT_MAX_HEADER",
    "PROTO",
    "BodyChunk",
    "BodyEnd",
    "Chunk",
    "ClientConnection",
    "Decoder",
    "Event",
    "Frame",
    "FrameStart",
    "Hello",
    "ProtocolError",
    "Reply",
    "decode_datagram",
    "encode_frame",
    "encode_header",
    "encode_header_into",
    "error_from_header",
    "error_header",
    "reply_error",
]
