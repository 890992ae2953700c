"""The WebSocket transport: an open WebSocket as the ``Link`` of a ``ServerSession``.

Everything about sockhub (hello, auth, the op table, limits, timers, backpressure,
close) is the session's, shared with TCP; this shell only maps it onto WebSocket
messages. Binary messages carry the same byte stream as TCP: each of the session's
writes leaves as one message (whole frames, batched per event-loop turn, or a piece of
a long file body), and the payloads of the client's messages are fed to the session's
decoder in order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from websockets.frames import CloseCode

from ..server.session import ServerSession
from .framing import BINARY, FIN, frame_header
from .peer import OPEN, WebPeer

if TYPE_CHECKING:
    from ..server import Server

__all__ = ["WebSocketLink"]

_FRAGMENT = 256 * 1024
"""Messages longer than this go out as several WebSocket frames."""


class WebSocketLink:
    __slots__ = ("peer", "session", "shared", "transport")

    def __init__(self, server: Server, peer: WebPeer) -> None:
        assert peer.transport is not None
        self.peer = peer
        self.transport = peer.transport
        self.shared = peer.web.shared
        self.session = ServerSession(server, self, "ws", peer.peer)

    def open(self) -> None:
        self.session.open()

    # the peer's side (peer.MessageReceiver) ---------------------------------------

    def message_data(self, data: bytes) -> None:
        self.session.receive_data(data)

    def writing_paused(self) -> None:
        self.session.pause_writing()

    def writing_resumed(self) -> None:
        self.session.resume_writing()

    def lost(self, exc: Exception | None) -> None:
        self.session.connection_lost(exc)

    # the session's Link ------------------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """One binary message, a long one in several frames so no single frame is huge.

        A short message is framed by the listener's ``SharedFrames``: a chat batch that
        every member of a room is sent is framed once, and that one buffer is written to
        each member. This is chat fan-out's path, so it is kept as short as TCP's.
        Nothing is written once the closing handshake has begun."""
        if self.peer.state != OPEN:
            return
        size = len(data)
        if size <= _FRAGMENT:
            self.transport.write(self.shared.frame(data))
            return
        view = memoryview(data)
        opcode = BINARY
        for start in range(0, size, _FRAGMENT):
            piece = view[start : start + _FRAGMENT]
            fin = FIN if start + _FRAGMENT >= size else 0
            self.transport.write(frame_header(opcode | fin, len(piece)) + piece)
            opcode = 0  # continuation

    def buffered(self) -> int:
        return self.transport.get_write_buffer_size()

    def pause_reading(self) -> None:
        self.peer.pause_reading()

    def resume_reading(self) -> None:
        self.peer.resume_reading()

    def write_eof(self) -> bool:
        """A WebSocket's half-close is its closing handshake: the client answers, then TCP
        closes; the session's linger timer covers a client that never answers."""
        self.peer.close(CloseCode.NORMAL_CLOSURE)
        return True

    def close(self) -> None:
        self.peer.close(CloseCode.NORMAL_CLOSURE)

    def abort(self) -> None:
        self.peer.abort()

    def socket_fd(self) -> int | None:
        return None  # file bodies must be framed as WebSocket messages: no os.sendfile
