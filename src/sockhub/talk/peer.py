"""A talk endpoint on asyncio: one UDP socket driving a ``TalkCore`` with one timer.

All protocol decisions live in the core; this layer only moves datagrams, keeps the
single resend timer armed at the core's next deadline, resolves address-book names,
and turns outcomes into futures a front end can await.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from typing import Any

from ..client.address import Address
from .book import AddressBook, Entry, parse_listen, parse_peer_address
from .core import Outcome, PeerKey, Received, TalkCore, peer_key
from .wire import TalkAck, TalkError, decode

__all__ = ["Outcome", "TalkPeer"]

log = logging.getLogger("sockhub.talk")

MAX_WAITING = 10_000
"""Messages received but not yet taken by the front end; beyond it new ones go unacked."""


class _ResolvedBook:
    """The address book as the core's ``Directory``: names, and addresses once resolved."""

    def __init__(self, book: AddressBook | None) -> None:
        self.book = book
        self._by_addr: dict[PeerKey, Entry] = {}

    def by_addr(self, peer: PeerKey) -> Entry | None:
        return self._by_addr.get(peer)

    def by_name(self, name: str) -> Entry | None:
        return self.book.get(name) if self.book is not None else None

    def learn(self, sockaddr: Any, entry: Entry) -> None:
        self._by_addr[peer_key(sockaddr)] = entry


class TalkPeer(asyncio.DatagramProtocol):
    """Send with ``say`` (or ``send``), read new messages with ``next_message``."""

    def __init__(self, core: TalkCore, book: AddressBook | None = None) -> None:
        self.core = core
        self.book = book
        self.directory = _ResolvedBook(book)
        core.directory = self.directory
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.DatagramTransport | None = None
        self.family = socket.AF_INET
        self.messages: asyncio.Queue[Received] = asyncio.Queue()
        self._waiters: dict[int, asyncio.Future[Outcome]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._drop: list[str] = []

    @classmethod
    async def open(
        cls, listen: str, name: str, *, book: AddressBook | None = None, **options: Any
    ) -> TalkPeer:
        """Bind ``listen`` (HOST:PORT, port 0 picks one) and resolve the book's addresses.

        ``options`` are ``TalkCore`` keywords (retry timing, limits).
        """
        host, port = parse_listen(listen)
        loop = asyncio.get_running_loop()
        _transport, peer = await loop.create_datagram_endpoint(
            lambda: cls(TalkCore(name, **options), book), local_addr=(host, port)
        )
        for entry in book.entries.values() if book is not None else ():
            try:
                await peer.lookup_entry(entry)
            except TalkError as exc:
                log.info("%s", exc)
        return peer

    # asyncio callbacks -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.family = transport.get_extra_info("socket").family

    def datagram_received(self, data: bytes, addr: Any) -> None:
        event = self.core.receive(
            data,
            addr,
            self.loop.time(),
            wall=time.time(),
            accept=self.messages.qsize() < MAX_WAITING,
        )
        if isinstance(event, Received):
            self.messages.put_nowait(event)
        elif event is not None:
            self._settle(event)
        self._flush()

    def error_received(self, exc: Exception) -> None:
        log.debug("talk socket error: %s", exc)  # the resend timer decides what it means

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self._timer is not None:
            self._timer.cancel()
        for fut in self._waiters.values():
            fut.cancel()
        self._waiters.clear()

    # the API ---------------------------------------------------------------------------

    @property
    def address(self) -> PeerKey:
        """Where this peer listens (the port the OS picked when asked for 0)."""
        assert self.transport is not None
        return peer_key(self.transport.get_extra_info("sockname"))

    async def lookup(self, target: str) -> tuple[Any, Entry | None]:
        """The socket address of a book name or a ``HOST:PORT``, and its book entry."""
        entry = self.book.get(target) if self.book is not None else None
        if entry is not None:
            return await self.lookup_entry(entry), entry
        try:
            address = parse_peer_address(target)
        except ValueError as exc:
            where = f" ({self.book.path})" if self.book is not None else ""
            raise TalkError(
                f"{target!r} is not in the address book{where} nor a HOST:PORT; "
                "add it with: sockhub talk --add NAME HOST:PORT"
            ) from exc
        sockaddr = await self._resolve(address)
        return sockaddr, self.directory.by_addr(peer_key(sockaddr))

    async def lookup_entry(self, entry: Entry) -> Any:
        sockaddr = await self._resolve(entry.address)
        self.directory.learn(sockaddr, entry)
        return sockaddr

    async def _resolve(self, address: Address) -> Any:
        flags = socket.AI_V4MAPPED if self.family == socket.AF_INET6 else 0
        try:
            infos = await self.loop.getaddrinfo(
                address.host, address.port, family=self.family, type=socket.SOCK_DGRAM, flags=flags
            )
        except OSError as exc:
            raise TalkError(f"cannot resolve {address}: {exc.strerror or exc}") from exc
        if not infos:
            raise TalkError(f"{address} has no address this socket can reach")
        return infos[0][4]

    def send(
        self, addr: Any, text: str, key: bytes | None = None
    ) -> tuple[int, asyncio.Future[Outcome]]:
        """Send now; the future ends as Delivered or NotDelivered. TalkError if refused."""
        if self.transport is None:
            raise TalkError("this talk peer is closed")
        mid = self.core.send(addr, text, self.loop.time(), key, ts=time.time())
        fut: asyncio.Future[Outcome] = self.loop.create_future()
        self._waiters[mid] = fut
        self._flush()
        return mid, fut

    async def say(self, target: str, text: str) -> Outcome:
        """Send ``text`` to a book name or HOST:PORT and wait for the outcome."""
        addr, entry = await self.lookup(target)
        _mid, fut = self.send(addr, text, entry.key if entry is not None else None)
        return await fut

    async def next_message(self) -> Received:
        return await self.messages.get()

    def drop_next(self, op: str) -> None:
        """Test hook: the next outgoing datagram of ``op`` is lost on purpose, as UDP may."""
        self._drop.append(op)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    # internals -------------------------------------------------------------------------

    def _settle(self, outcome: Outcome) -> None:
        fut = self._waiters.pop(outcome.id, None)
        if fut is not None and not fut.done():
            fut.set_result(outcome)

    def _flush(self) -> None:
        transport = self.transport
        for data, addr in self.core.datagrams():
            if self._drop and self._dropped(data):
                continue
            if transport is not None:
                transport.sendto(data, addr)
        self._arm()

    def _dropped(self, data: bytes) -> bool:
        kind = "talk.ack" if isinstance(decode(data), TalkAck) else "talk.msg"
        if kind in self._drop:
            self._drop.remove(kind)
            return True
        return False

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadline = self.core.next_deadline()
        if deadline is not None and self.transport is not None:
            self._timer = self.loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        for outcome in self.core.timeout(self.loop.time()):
            self._settle(outcome)
        self._flush()
