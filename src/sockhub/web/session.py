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

if TYPE_CHECKING:
    from ..server import Server
    from .peer import WebPeer

__all__ = ["WebSocketLink"]


class WebSocketLink:
    __slots__ = ("peer", "session")

    def __init__(self, server: Server, peer: WebPeer) -> None:
        self.peer = peer
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
        self.peer.send_message(data)

    def buffered(self) -> int:
        transport = self.peer.transport
        return transport.get_write_buffer_size() if transport is not None else 0

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
