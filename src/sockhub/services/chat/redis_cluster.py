"""Where the broker's scripts go: the one Redis, or the Redis Cluster node that holds a key.

A room's scripts touch the keys of one hash slot; in a cluster they must run on the
master serving that slot. ``Router`` keeps the slot map (``CLUSTER SLOTS``) and one
pipelined connection (``redis_conn.Pipe``) per master, follows ``MOVED`` (the slot
moved: remember where, and re-read the map) and ``ASK`` (a slot being migrated: this
once, on the other node), and re-reads the map when a master stops answering, so a
replica that took over is found. A script is never sent twice: a redirection means the
node refused to run it; a connection that breaks while a script is out is the caller's
failure (it cannot know whether the script ran).

Without a cluster there is one connection, to the URL, and the key is ignored.
"""

from __future__ import annotations

import asyncio
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Any

import hiredis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from .redis_conn import Opener, Pipe
from .redis_slots import Address, SlotMap, key_slot, redirect

__all__ = ["ATTEMPT", "MAX_REDIRECTS", "Client", "Router", "node_url", "open_client"]

MAX_REDIRECTS = 5
"""Redirections one call follows before it fails (a slot moving while it is asked)."""

ATTEMPT = 1.0
"""Longest wait for one node's slot map (then the next node is asked)."""


def node_url(url: str, address: Address) -> str:
    """``url`` (its user, password and options) pointed at another node of the cluster."""
    parts = urllib.parse.urlsplit(url)
    login, at, _ = parts.netloc.rpartition("@")
    host = f"[{address[0]}]" if ":" in address[0] else address[0]
    return parts._replace(netloc=f"{login}{at}{host}:{address[1]}").geturl()


class Router:
    """Pipelined connections to the Redis (or the cluster's masters) at ``url``."""

    def __init__(self, url: str, *, cluster: bool, pipe: Callable[[], Pipe] = Pipe) -> None:
        self.url = url
        self.cluster = cluster
        self._slots = SlotMap()
        self._urls: dict[Address, str] = {}
        """node address -> its URL (built once: ``where`` runs for every script)"""
        self.pipes: Opener[Pipe] = Opener(lambda _url: pipe)
        """One connection per node, made by ``pipe`` (a ``Pipe`` or a subclass)."""
        self._refreshing: asyncio.Future[None] | None = None
        self._stale = cluster
        """The slot map must be read again before the next call (a master stopped
        answering, or it was never read)."""

    def where(self, key: str | bytes) -> str:
        """The URL of the node that serves ``key`` (the URL itself without a cluster)."""
        if not self.cluster:
            return self.url
        address = self._slots.owner(key_slot(key))
        return self.url if address is None else self._url(address)

    def _url(self, address: Address) -> str:
        url = self._urls.get(address)
        if url is None:
            url = self._urls[address] = node_url(self.url, address)
        return url

    def redirected(self, error: str, url: str) -> str | None:
        """Where a node at ``url`` sent a command (``MOVED``, remembered; ``ASK``, this
        once), or None if ``error`` is another error."""
        found = redirect(error, urllib.parse.urlsplit(url).hostname or "")
        if found is None:
            return None
        if not found.ask:
            self._slots.move(found.slot, found.address)
            self._stale = True  # a slot moved: others may have too
        return self._url(found.address)

    def lost(self) -> None:
        """A node stopped answering: read the slot map again before the next call."""
        self._stale = self.cluster

    async def refresh(self) -> None:
        """Read the slot map again now (once for every caller at a time)."""
        if not self.cluster:
            return
        if self._refreshing is None:
            self._refreshing = asyncio.ensure_future(self._read_slots())
        refreshing = self._refreshing
        try:
            await asyncio.shield(refreshing)
        finally:
            if refreshing.done() and self._refreshing is refreshing:
                self._refreshing = None

    async def _read_slots(self) -> None:
        """Ask the known masters (then the URL's node) until one answers."""
        failure: Exception = ConnectionError("no node of the Redis Cluster answered")
        urls = [self._url(a) for a in self._slots.masters()]
        # nodes already connected first: a dead one may take the whole budget to refuse
        urls.sort(key=lambda url: url not in self.pipes.open or self.pipes.open[url].lost)
        for url in dict.fromkeys([*urls, self.url]):
            try:
                async with asyncio.timeout(ATTEMPT):
                    pipe = await self.pipes.get(url)
                    reply = await pipe.command("CLUSTER", "SLOTS")
            except (OSError, hiredis.ReplyError) as exc:
                failure = exc
                continue
            self._slots.load(reply, urllib.parse.urlsplit(url).hostname or "")
            self._stale = False
            return
        raise failure

    def call(self, key: str, *args: bytes | str | int) -> Awaitable[Any]:
        """Run a command on the node serving ``key``, following redirections
        (``hiredis.ReplyError`` for an error reply, ``ConnectionError`` when the node
        cannot be reached or the connection breaks first)."""
        if not self.cluster:
            pipe = self.pipes.open.get(self.url)
            if pipe is not None and not pipe.lost:
                return pipe.command(*args)  # no redirection to follow: the fast path
        return self._call(key, *args)

    async def _call(self, key: str, *args: bytes | str | int) -> Any:
        if self._stale:
            await self.refresh()
        url = self.where(key)
        asking = False
        for _ in range(MAX_REDIRECTS):
            try:
                pipe = await self.pipes.get(url)
                if not asking:
                    return await pipe.command(*args)
                # ASKING holds for the next command on this connection only
                return (await asyncio.gather(pipe.command("ASKING"), pipe.command(*args)))[1]
            except OSError:
                self.lost()
                raise
            except hiredis.ReplyError as exc:
                target = self.redirected(str(exc), url)
                if target is None:
                    if str(exc).startswith("CLUSTERDOWN"):
                        self.lost()  # a fail-over under way: the map will change
                    raise
                asking, url = str(exc).startswith("ASK "), target
        raise ConnectionError(f"the Redis Cluster redirected a command {MAX_REDIRECTS} times")

    def close(self) -> None:
        self.pipes.close()


Client = aioredis.Redis | aioredis.RedisCluster


async def open_client(url: str, timeout: float) -> tuple[Client, dict[str, Any]]:
    """redis-py's client for the broker's reads and bookkeeping, and the server's
    ``INFO``: a cluster client (routing each command by its key) when the node at
    ``url`` is part of a Redis Cluster."""
    options: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        # one immediate retry, on a broken connection only (a Redis restart leaves
        # the pool's connections dead): these commands are reads and idempotent
        # writes; scripts go through ``Router``, never retried
        "retry": Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
        "health_check_interval": 0,
    }
    plain = aioredis.Redis.from_url(url, **options)
    try:
        info = await plain.info()
        if not int(info.get("cluster_enabled", 0)):
            return plain, info
    except BaseException:
        await plain.aclose()
        raise
    await plain.aclose()
    cluster = aioredis.RedisCluster.from_url(url, **options)
    try:
        await cluster.initialize()
    except BaseException:
        await cluster.aclose()
        raise
    return cluster, info
