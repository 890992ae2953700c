"""The classic services' sockets: TCP connections and UDP endpoints, bounded.

These speak their RFCs, not sockhub frames, so they are their own listeners. What
bounds them: a cap on TCP connections in total and per source address, an idle
timeout on echo connections, echo that stops reading while its replies cannot be
written, and a per-source budget of UDP replies, so none of them can be used to
flood a third party whose address a sender forged.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from typing import Any

from ...server.limits import Limits
from ...server.ratelimit import TokenBuckets

__all__ = ["Answer", "EchoTcp", "Guard", "OneShotTcp", "UdpResponder"]

log = logging.getLogger("sockhub.classic")

Answer = Callable[[bytes, float], "bytes | None"]
"""A UDP service: (request datagram, when it arrived) -> the reply, or None for none."""
Clock = Callable[[], float]

LOOP_PORTS = frozenset({0, 7, 13, 19, 37})
"""Source ports of services that answer anything (echo, daytime, chargen, time): a
datagram "from" one of them is a forged attempt to make two servers talk forever.
The ports this server's own classic services listen on count too (``Guard.own_ports``)."""


class Guard:
    """What every classic listener of one server shares: connection counts, UDP budget."""

    def __init__(self, limits: Limits, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.max_total = limits.classic_connections
        self.max_per_ip = limits.classic_connections_per_ip
        self.idle_timeout = limits.classic_idle_timeout
        self.udp = TokenBuckets(limits.udp_replies_per_sec, limits.udp_burst)
        self.own_ports: set[int] = set()
        """UDP ports our classic services answer on: a datagram from one of them, whatever
        its address (ours, or another sockhub's with the same default ports), is a forged
        attempt to make two of them answer each other forever, so none is answered."""
        self.live: set[_Guarded] = set()
        self.per_ip: Counter[str] = Counter()

    def admit(self, conn: _Guarded) -> bool:
        if len(self.live) >= self.max_total or self.per_ip[conn.peer] >= self.max_per_ip:
            return False
        self.live.add(conn)
        self.per_ip[conn.peer] += 1
        return True

    def forget(self, conn: _Guarded) -> None:
        if conn in self.live:
            self.live.discard(conn)
            self.per_ip[conn.peer] -= 1
            if self.per_ip[conn.peer] <= 0:
                del self.per_ip[conn.peer]

    def may_reply(self, host: str) -> bool:
        return self.udp.take(host, self.loop.time())

    def close_all(self) -> None:
        for conn in list(self.live):
            conn.abort()


class _Guarded(asyncio.Protocol):
    """A TCP connection counted against the caps; over a cap it is reset at once."""

    def __init__(self, guard: Guard) -> None:
        self.guard = guard
        self.peer = ""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peername = transport.get_extra_info("peername")
        self.peer = str(peername[0]) if peername else "?"
        if not self.guard.admit(self):
            transport.abort()  # type: ignore[attr-defined]
            self.transport = None
            return
        self.started()

    def started(self) -> None:
        """The connection was admitted."""

    def connection_lost(self, exc: Exception | None) -> None:
        self.guard.forget(self)
        self.transport = None

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


class OneShotTcp(_Guarded):
    """RFC 867 / 868 over TCP: say the time on connect, then close; input is ignored."""

    def __init__(self, guard: Guard, clock: Clock, say: Callable[[float], bytes]) -> None:
        super().__init__(guard)
        self.clock = clock
        self.say = say

    def started(self) -> None:
        assert self.transport is not None
        self.transport.write(self.say(self.clock()))
        self.transport.close()

    def data_received(self, data: bytes) -> None:
        pass


class EchoTcp(_Guarded):
    """RFC 862 over TCP: every byte back, until the client closes or goes idle."""

    def __init__(self, guard: Guard) -> None:
        super().__init__(guard)
        self.last = 0.0
        self.timer: asyncio.TimerHandle | None = None

    def started(self) -> None:
        self.last = self.guard.loop.time()
        self.timer = self.guard.loop.call_later(self.guard.idle_timeout, self._check_idle)

    def data_received(self, data: bytes) -> None:
        self.last = self.guard.loop.time()
        if self.transport is not None:
            self.transport.write(data)

    def eof_received(self) -> bool:
        return False  # the client is done sending: flush what it is owed, then close

    def pause_writing(self) -> None:
        if self.transport is not None:  # it is not reading: stop reading it too
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None:
            self.transport.resume_reading()

    def _check_idle(self) -> None:
        left = self.last + self.guard.idle_timeout - self.guard.loop.time()
        if left > 0:
            self.timer = self.guard.loop.call_later(left, self._check_idle)
        else:
            self.timer = None
            self.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        super().connection_lost(exc)


class UdpResponder(asyncio.DatagramProtocol):
    """One datagram in, at most one out, within the source's reply budget."""

    def __init__(self, guard: Guard, clock: Clock, answer: Answer, *, any_port: bool) -> None:
        self.guard = guard
        self.clock = clock
        self.answer = answer
        self.any_port = any_port
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        received = self.clock()
        port = addr[1]
        if port in self.guard.own_ports or (not self.any_port and port in LOOP_PORTS):
            return
        if self.transport is None or not self.guard.may_reply(str(addr[0])):
            return
        reply = self.answer(data, received)
        if reply is not None:
            self.transport.sendto(reply, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("classic udp error: %s", exc)
