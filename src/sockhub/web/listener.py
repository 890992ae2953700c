"""The web port: the page's files and the WebSocket bridge, beside the framed port.

The framed port stays server-speaks-first, so HTTP cannot share it without delaying every
``hello``; the web listener has its own port (default 9697), on the same host and with
the same TLS setting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from typing import TYPE_CHECKING

from ..server.tls import ensure_self_signed, server_context
from ..services.files import FilesService
from .framing import SharedFrames
from .peer import MessageReceiver, WebPeer
from .policy import OriginPolicy
from .session import WebSocketLink
from .static import Asset, load_assets
from .upload import PostPeer

if TYPE_CHECKING:
    from ..server import Server
    from ..services.files.upload import Uploads

__all__ = ["PING_INTERVAL", "WebListener", "page_url"]

log = logging.getLogger("sockhub.web")

PING_INTERVAL = 20.0
"""Seconds between the server's WebSocket pings; a peer silent for two of them is gone."""


def page_url(host: str, port: int, tls: bool) -> str:
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"  # a wildcard is not an address to browse to
    name = f"[{host}]" if ":" in host else host
    return f"{'https' if tls else 'http'}://{name}:{port}/"


class WebListener:
    """``await start()`` listens; ``await close()`` stops and closes every peer."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.config = server.config
        self.loop = server.loop
        limits = server.limits
        self.max_message = limits.max_header + 4 + limits.max_body
        """A message holds one frame, or one piece of a long streamed body."""
        self.shared = SharedFrames()
        """Chat fan-out's batch framed once for every WebSocket member."""
        self.close_timeout = 5.0
        self.ping_interval = PING_INTERVAL
        self.assets: dict[str, Asset] = load_assets()
        self.peers: set[WebPeer] = set()
        self.posts: set[PostPeer] = set()
        """Connections carrying an upload's body (``POST /up/<token>``)."""
        self.waiting: Counter[str] = Counter()
        """Connections not (yet) a session, by address: a request being read or answered,
        an upgrade, an upload's POST. Sessions are counted by the server's caps; these
        are counted here, against the same two limits, so no client holds descriptors
        without bound before any session admits it."""
        self.waiting_total = 0
        self.uploads: Uploads | None = next(
            (s.uploads for s in server.services if isinstance(s, FilesService)), None
        )
        self.addresses: list[tuple[str, int]] = []
        self.policy = OriginPolicy(tls=self.config.tls, port=self.config.web_port)
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        host, port = self.addresses[0]
        return page_url(host, port, self.config.tls)

    async def start(self) -> list[tuple[str, int]]:
        cfg = self.config
        ssl_ctx = None
        if cfg.tls:
            cert, key = cfg.tls_cert, cfg.tls_key
            if cert is None or key is None:
                cert, key, _new = ensure_self_signed(cfg.data / "tls")
            ssl_ctx = server_context(cert, key)
        self._server = await self.loop.create_server(
            lambda: WebPeer(self),
            cfg.host,
            cfg.web_port,
            reuse_address=True,
            ssl=ssl_ctx,
            backlog=1024,
            ssl_handshake_timeout=self.server.limits.handshake_timeout if ssl_ctx else None,
        )
        for sock in self._server.sockets:
            addr = sock.getsockname()
            self.addresses.append((str(addr[0]), int(addr[1])))
        port = self.addresses[0][1]
        self.policy = OriginPolicy(
            tls=cfg.tls, port=port, hosts=cfg.web_hosts, origins=cfg.web_origins
        )
        self._sweeper = self.loop.create_task(self._sweep())
        return self.addresses

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        if self._server is not None:
            self._server.close()
        for peer in list(self.peers):
            peer.close(1001, "the server is stopping")
        for peer in list(self.peers):
            peer.abort()
        for post in list(self.posts):
            post.abort()
        if self._server is not None:
            await self._server.wait_closed()

    # peers ------------------------------------------------------------------------

    def hold(self, address: str) -> bool:
        """Count in a connection that is not a session yet; False when it is one too many
        (in all, ``max_connections``; from ``address``, ``max_connections_per_ip``)."""
        limits = self.server.limits
        if (
            self.waiting_total >= limits.max_connections
            or self.waiting[address] >= limits.max_connections_per_ip
        ):
            return False
        self.waiting[address] += 1
        self.waiting_total += 1
        return True

    def let_go(self, address: str) -> None:
        """A connection counted by ``hold`` became a session or ended."""
        self.waiting_total -= 1
        left = self.waiting[address] - 1
        if left > 0:
            self.waiting[address] = left
        else:
            del self.waiting[address]

    def open_session(self, peer: WebPeer) -> MessageReceiver:
        """The upgrade is done: a sockhub session starts (admitted like any other)."""
        link = WebSocketLink(self.server, peer)
        link.open()
        return link

    async def _sweep(self) -> None:
        """Once a second: drop requests that never finished (an upload's POST whose bytes
        stopped coming while the server was reading), ping the open sockets. As with the
        session's own timeouts, the pong deadline does not run while the server is not
        reading (its pause for backpressure): the pong waits unread behind it, and
        ``send_timeout`` and the backlog limits bound such a pause instead."""
        limits = self.server.limits
        while True:
            await asyncio.sleep(min(1.0, self.ping_interval))
            now = self.loop.time()
            for post in list(self.posts):
                if not post.paused and now - post.last_data > limits.handshake_timeout:
                    post.abort()
            for peer in list(self.peers):
                if peer.receiver is None:
                    if now - peer.opened > limits.handshake_timeout:
                        peer.abort()
                elif peer.reading_paused:
                    peer.last_pong = now  # the deadline starts again when reading does
                elif now - peer.last_pong > 2 * self.ping_interval + 1:
                    peer.close(1011, "no pong")
                elif now - peer.last_ping_sent >= self.ping_interval:
                    peer.last_ping_sent = now
                    peer.ping()
