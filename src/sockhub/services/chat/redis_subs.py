"""The node's pub/sub: each channel subscribed on the Redis that serves it, kept there.

With one Redis every channel shares one connection. In a Redis Cluster a sharded
channel (SSUBSCRIBE, Redis 7) is served by the master of its slot only, so there is one
connection per master and each channel goes to its slot's (plain SUBSCRIBE works on
any node; the slot's master is used all the same). A subscription ends without being
asked when its connection drops (a Redis restart, a killed connection, a master that
died) or when the node stops serving the slot (a fail-over or a slot moved: Redis
sends ``sunsubscribe``); the channel is then subscribed again, on whichever node serves
it now (read from the cluster again), retrying until it works, and ``on_back`` names
the channels back so the broker reads what was published meanwhile from the streams.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

import hiredis

from ...server.background import Background
from .redis_cluster import MAX_REDIRECTS, Router
from .redis_conn import Opener, Subscriber

__all__ = ["RECONNECT_MAX", "Subscriptions"]

log = logging.getLogger("sockhub.chat")

RECONNECT_FIRST = 0.05
RECONNECT_MAX = 1.0
"""Pauses between attempts to subscribe again (doubling from the first to the most)."""

TIMEOUT = 1.0
"""Longest wait for one attempt to subscribe again."""


class Subscriptions:
    """The channels this node listens to, on connections to the nodes serving them."""

    def __init__(
        self,
        router: Router,
        background: Background,
        *,
        sharded: bool,
        on_message: Callable[[bytes, bytes], None],
        on_back: Callable[[list[bytes]], None],
    ) -> None:
        self._router = router
        self._background = background
        self._sharded = sharded
        self._on_message = on_message
        self._on_back = on_back
        self._conns = Opener(self._factory)
        self._wanted: set[bytes] = set()
        self._on: dict[bytes, str] = {}
        """channel -> the URL of the connection it was subscribed on"""
        self._lapsed: set[bytes] = set()
        """Channels to subscribe again."""
        self._recovery: asyncio.Task[None] | None = None
        self._closed = False

    def _factory(self, url: str) -> Callable[[], Subscriber]:
        def make() -> Subscriber:
            return Subscriber(
                self._on_message,
                lambda: self._lost(url),
                sharded=self._sharded,
                on_dropped=self._dropped,
            )

        return make

    async def start(self, channels: Iterable[bytes]) -> None:
        """Read the slot map and subscribe to the first channels (the caller bounds the
        wait)."""
        wanted = list(channels)
        self._wanted.update(wanted)
        await self._router.refresh()
        await self._subscribe(wanted)

    def add(self, channel: bytes) -> asyncio.Future[None]:
        """Listen to ``channel``: resolves once Redis confirmed it. Should that fail, it
        is subscribed again in the background all the same (``on_back`` then)."""
        self._wanted.add(channel)
        subscribing = asyncio.ensure_future(self._subscribe([channel]))

        def done(subscribing: asyncio.Future[None]) -> None:
            if subscribing.cancelled() or subscribing.exception() is not None:
                self._lapse([channel])

        subscribing.add_done_callback(done)
        return subscribing

    def remove(self, channel: bytes) -> None:
        self._wanted.discard(channel)
        self._lapsed.discard(channel)
        url = self._on.pop(channel, None)
        conn = None if url is None else self._conns.open.get(url)
        if conn is not None and not conn.lost:
            conn.unsubscribe(channel)

    async def _subscribe(self, channels: list[bytes]) -> None:
        """Each channel on the connection to the node that serves it, following
        ``MOVED``; raises what failed (``OSError``, ``hiredis.ReplyError``)."""
        groups: dict[str, list[bytes]] = {}
        for channel in channels:
            groups.setdefault(self._router.where(channel), []).append(channel)
        await asyncio.gather(*(self._subscribe_at(url, group) for url, group in groups.items()))

    async def _subscribe_at(self, url: str, channels: list[bytes]) -> None:
        for _ in range(MAX_REDIRECTS):
            conn = await self._conns.get(url)
            for channel in channels:
                self._on[channel] = url
            try:
                await conn.subscribe(channels)
                return
            except hiredis.ReplyError as exc:
                target = self._router.redirected(str(exc), url)
                if target is None:
                    raise
                url = target
        raise ConnectionError(f"the Redis Cluster redirected a subscription {MAX_REDIRECTS} times")

    def _lost(self, url: str) -> None:
        """A pub/sub connection ended: what it carried is subscribed again."""
        if self._closed:
            return
        log.warning("a Redis pub/sub connection dropped; subscribing again")
        self._router.lost()
        self._lapse([c for c, on in self._on.items() if on == url])

    def _dropped(self, channel: bytes) -> None:
        """Redis ended a subscription itself: its slot is served elsewhere now."""
        if channel in self._wanted and not self._closed:
            log.info("Redis moved the channel %r; subscribing again", channel)
            self._router.lost()
            self._on.pop(channel, None)
            self._lapse([channel])

    def _lapse(self, channels: list[bytes]) -> None:
        self._lapsed.update(c for c in channels if c in self._wanted)
        if self._lapsed and self._recovery is None and not self._closed:
            self._recovery = self._background.spawn(self._recover(), "chat broker resubscribe")

    async def _recover(self) -> None:
        """Subscribe the lapsed channels again, until it worked."""
        pause = RECONNECT_FIRST
        try:
            while self._lapsed and not self._closed:
                channels = list(self._lapsed)
                self._lapsed.clear()
                try:
                    async with asyncio.timeout(TIMEOUT):
                        await self._router.refresh()
                        await self._subscribe(channels)
                except (OSError, hiredis.ReplyError) as exc:
                    log.debug("subscribing again failed: %r", exc)
                    self._lapsed.update(c for c in channels if c in self._wanted)
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, RECONNECT_MAX)
                    continue
                pause = RECONNECT_FIRST
                self._on_back([c for c in channels if c in self._wanted])
        finally:
            self._recovery = None

    def close(self) -> None:
        self._closed = True
        self._conns.close()
