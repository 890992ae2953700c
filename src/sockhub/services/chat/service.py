"""The chat service (PROTOCOL.md section 6): the ops, per-connection rooms, and cleanup.

Handlers check everything they can before they await anything, so a request that
breaks a rule is answered at once, and a connection's messages reach the broker in
the order it sent them (``publish`` is called synchronously from the handler).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
import time
from collections.abc import Awaitable, Coroutine, Iterable
from typing import Any

from ...protocol.errors import (
    BadRequest,
    ChatNickTaken,
    ChatNoSuchNick,
    ChatNotJoined,
    LimitBusy,
    LimitRate,
    ProtocolError,
)
from ...protocol.fields import get_int, get_str
from ...protocol.frames import MAX_ID
from ...protocol.text import check_text, escape
from ...server.config import BROKER_SCHEMES, ConfigError
from ...server.ratelimit import TokenBuckets
from ...server.service import OpSpec, Request, ServerContext, Service, Session
from ..paging import page_budget, take_page
from .broker import ChatBroker, Direct, Member, Message
from .fanout import LocalNode, Membership, history_header
from .history import HistoryStore
from .memory import MemoryBroker
from .names import check_nick, check_room, nick_key

__all__ = ["HISTORY_FILE", "ChatService", "make_broker"]

log = logging.getLogger("sockhub.chat")

HISTORY_FILE = "chat.sqlite3"
HISTORY_PAGE = 256 * 1024
"""History replay (on join and on ``chat.history``) goes out in pages of about this many
bytes, each once the client has read the one before (so any history fits any client that
reads)."""
_AFTER_MAX = 256
"""Bytes of a paging cursor: the longest room or nick, in UTF-8, with room to spare."""


def _forward(source: Awaitable[int], answer: asyncio.Future[int]) -> None:
    """Settle ``answer`` as ``source`` settles (unless its waiter is gone)."""

    def settle(done: asyncio.Future[int]) -> None:
        if answer.done():
            return
        if done.cancelled():
            answer.cancel()
        elif (exc := done.exception()) is not None:
            answer.set_exception(exc)
        else:
            answer.set_result(done.result())

    asyncio.ensure_future(source).add_done_callback(settle)


def make_broker(ctx: ServerContext) -> ChatBroker:
    """The broker the configuration names (``memory``: this process, SQLite history;
    ``redis://...``: shared by every process using that Redis)."""
    broker, limits = ctx.config.broker, ctx.limits
    if broker == "memory":
        store = HistoryStore(
            ctx.data / HISTORY_FILE,
            limits.chat_history_keep,
            max_messages=limits.chat_history_max_messages,
            max_bytes=limits.chat_history_max_bytes,
            room_idle=limits.chat_room_idle,
        )
        return MemoryBroker(store, limits.chat_seq_lookahead)
    if broker.startswith(BROKER_SCHEMES):
        from .redis_broker import RedisBroker  # redis is an optional dependency

        # a Redis stream is bounded per room: no room keeps more than the whole budget
        keep = min(limits.chat_history_keep, limits.chat_history_max_messages)
        return RedisBroker(
            broker,
            keep,
            ctx.background,
            idle=limits.chat_room_idle,
            max_messages=limits.chat_history_max_messages,
            max_bytes=limits.chat_history_max_bytes,
        )
    raise ConfigError(f"chat broker {broker!r} is not supported (use 'memory' or redis://...)")


class _Conn:
    """The chat state of one connection."""

    __slots__ = ("id", "rooms", "session")

    def __init__(self, conn_id: str, session: Session) -> None:
        self.id = conn_id
        self.session = session
        self.rooms: dict[str, Membership] = {}


class ChatService(Service):
    name = "chat"

    def __init__(self, broker: ChatBroker | None = None) -> None:
        self._given_broker = broker
        self._broker: ChatBroker | None = None
        self._ctx: ServerContext | None = None
        self.node = LocalNode()
        self._conns: dict[Session, _Conn] = {}
        self._prefix = secrets.token_hex(4)
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._anon_conn = TokenBuckets(1.0, 1)
        self._anon_ip = TokenBuckets(1.0, 1)

    def ops(self) -> Iterable[OpSpec]:
        table = {
            "chat.join": self._join,
            "chat.say": self._say,
            "chat.dm": self._dm,
            "chat.leave": self._leave,
            "chat.nick": self._nick,
            "chat.who": self._who,
            "chat.rooms": self._rooms,
            "chat.history": self._history,
        }
        return tuple(OpSpec(op, handler, "chat", grant="chat") for op, handler in table.items())

    async def start(self, ctx: ServerContext) -> None:
        self._ctx = ctx
        self.node.buffer_max = ctx.limits.max_outbound
        limits = ctx.limits
        self._anon_conn = TokenBuckets(limits.chat_anon_per_sec, limits.chat_anon_burst)
        self._anon_ip = TokenBuckets(limits.chat_anon_per_ip_per_sec, limits.chat_anon_per_ip_burst)
        self._broker = self._given_broker or make_broker(ctx)
        await self._broker.start(self.node)

    async def stop(self) -> None:
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._broker is not None:
            await self._broker.stop()

    @property
    def broker(self) -> ChatBroker:
        assert self._broker is not None, "the chat service has not started"
        return self._broker

    @property
    def ctx(self) -> ServerContext:
        assert self._ctx is not None, "the chat service has not started"
        return self._ctx

    # connections and memberships ------------------------------------------------------

    def _conn(self, session: Session) -> _Conn:
        conn = self._conns.get(session)
        if conn is None:
            conn = self._conns[session] = _Conn(f"{self._prefix}.{next(self._ids)}", session)
            self.node.sessions[conn.id] = session
            session.on_close(lambda: self._closed(conn))
        return conn

    def _closed(self, conn: _Conn) -> None:
        """A disconnect leaves every room; the others hear it."""
        self._conns.pop(conn.session, None)
        self.node.sessions.pop(conn.id, None)
        for m in conn.rooms.values():
            self.node.remove(m)
            self._spawn(self._release(m))
        conn.rooms.clear()

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """A task the service owns: it outlives the connection, and ``stop`` waits for it."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _release(self, m: Membership) -> None:
        """Leave in the broker once the join has settled (a join may still be running)."""
        if m.joining is not None:
            try:
                await asyncio.shield(m.joining)
            except Exception:
                return
        await self.broker.leave(m.room, m.member)
        log.info("chat %s left %s (%s)", m.session.peer, m.room, escape(m.nick, 64))

    def _membership(self, req: Request) -> Membership:
        room = check_room(get_str(req.header, "room"))
        conn = self._conns.get(req.session)
        m = conn.rooms.get(room) if conn is not None else None
        if m is None:
            raise ChatNotJoined(f"you are not in {room}; join it first")
        return m

    def _throttle(self, session: Session) -> None:
        """An anonymous sender's message passes both its connection's and its address's
        token bucket, or is refused with ``limit.rate`` and when to try again."""
        if session.user is not None:
            return
        conn = self._conns[session]
        now = asyncio.get_running_loop().time()
        wait = max(self._anon_conn.wait(conn.id, now), self._anon_ip.wait(session.peer, now))
        if wait > 0:
            raise LimitRate(
                "anonymous senders are rate-limited; log in for more, or wait "
                f"{wait:.2f} s (docs/chat.md)",
                retry_after=round(wait, 3),
            )
        self._anon_conn.take(conn.id, now)
        self._anon_ip.take(session.peer, now)

    def _check_reserved(self, nick: str, user: str | None) -> None:
        key = nick_key(nick)
        for registered in self.ctx.users.all():
            if registered.name != user and nick_key(registered.name) == key:
                raise ChatNickTaken(f"the nick {nick} is reserved for a registered user")

    async def _settled(self, m: Membership) -> None:
        """Wait until ``m``'s join has been answered (pipelined requests behind it)."""
        if m.joining is not None and not m.joining.done():
            await asyncio.shield(m.joining)

    # ops --------------------------------------------------------------------------------

    def _join(self, req: Request) -> Awaitable[None]:
        header, session = req.header, req.session
        limits = self.ctx.limits
        room = check_room(get_str(header, "room"))
        if "nick" in header or session.user is None:
            nick = check_nick(get_str(header, "nick"))
        else:
            nick = session.user
        since = get_int(header, "since", None, lo=0, hi=MAX_ID)
        count = get_int(header, "history", 0, lo=0, hi=limits.chat_history_max_join)
        conn = self._conn(session)
        if room in conn.rooms:
            raise BadRequest(f"you are already in {room}")
        if len(conn.rooms) >= limits.chat_rooms_per_connection:
            raise LimitBusy(f"a connection may be in {limits.chat_rooms_per_connection} rooms")
        self._check_reserved(nick, session.user)
        member = Member(f"{conn.id}.{next(self._ids)}", conn.id, session.user)
        m = Membership(session, room, member, nick)
        conn.rooms[room] = m
        self.node.add(m)
        m.joining = self._spawn(self.broker.join(room, member, nick, since=since, count=count))
        return self._joined(req, conn, m)

    async def _joined(self, req: Request, conn: _Conn, m: Membership) -> None:
        assert m.joining is not None
        try:
            joined = await asyncio.shield(m.joining)
        except Exception as exc:
            self._forget(conn, m, exc)
            raise
        log.info("chat %s joined %s as %s", req.session.peer, m.room, escape(m.nick, 64))
        await _replay(req, joined.history)
        req.reply(
            {
                "op": "chat.joined",
                "room": m.room,
                "nick": m.nick,
                **_members_page(joined.members, self.ctx.limits.max_header),
                "seq": joined.seq,
            }
        )
        if conn.rooms.get(m.room) is m:  # not left meanwhile
            self.node.go_live(m, joined.seq)
        queued, m.queued = m.queued, []  # said before a leave that followed: still said
        for text, answer in queued:
            _forward(self.broker.publish(m.room, m.nick, text), answer)

    def _forget(self, conn: _Conn, m: Membership, exc: Exception) -> None:
        """The join failed: the messages queued behind it fail too."""
        if conn.rooms.get(m.room) is m:
            del conn.rooms[m.room]
        self.node.remove(m)
        why = exc.message if isinstance(exc, ProtocolError) else "internal error"
        for _, answer in m.queued:
            if not answer.done():
                answer.set_exception(ChatNotJoined(f"the join of {m.room} failed: {why}"))

    def _say(self, req: Request) -> Awaitable[None]:
        if "nick" in req.header:
            return self._say_unannounced(req)
        m = self._membership(req)
        check_text(req.body, self.ctx.limits.chat_text_max)
        self._throttle(req.session)
        if m.live:
            return self._acked(req, self.broker.publish(m.room, m.nick, req.body))
        answer: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        m.queued.append((req.body, answer))
        return self._acked(req, answer)

    @staticmethod
    async def _acked(req: Request, stored: Awaitable[int]) -> None:
        req.ok(seq=await stored)

    def _say_unannounced(self, req: Request) -> Awaitable[None]:
        """Speak in a room without joining it (``sockhub say``): no join or leave reaches
        the members, only the message. The nick obeys every rule a joiner's does (reserved
        names, free in the room) and the sender pays the same rate limits, so this allows
        nothing that join, say and leave did not, minus the two events."""
        room = check_room(get_str(req.header, "room"))
        nick = check_nick(get_str(req.header, "nick"))
        conn = self._conn(req.session)
        if room in conn.rooms:
            raise BadRequest(f"you are in {room}: say there without a nick")
        check_text(req.body, self.ctx.limits.chat_text_max)
        self._check_reserved(nick, req.session.user)
        self._throttle(req.session)
        # the broker checks that no member holds the nick, in the same step as the store
        stored = self.broker.publish(room, nick, req.body, unannounced=True)
        return self._spoken(req, room, nick, stored)

    async def _spoken(self, req: Request, room: str, nick: str, stored: Awaitable[int]) -> None:
        seq = await stored
        log.info("chat %s said in %s as %s, unjoined", req.session.peer, room, escape(nick, 64))
        req.ok(seq=seq)

    def _dm(self, req: Request) -> Awaitable[None]:
        to = check_nick(get_str(req.header, "to"))
        check_text(req.body, self.ctx.limits.chat_text_max)
        conn = self._conns.get(req.session)
        if conn is None or not conn.rooms:
            raise ChatNotJoined("join a room before sending direct messages")
        self._throttle(req.session)
        sender = req.session.user or next(iter(conn.rooms.values())).nick
        return self._sent_direct(req, Direct(to, sender, time.time(), req.body))

    async def _sent_direct(self, req: Request, dm: Direct) -> None:
        if not await self.broker.direct(dm, nick_key(dm.to)):
            raise ChatNoSuchNick(f"nobody called {dm.to} is in any room")
        req.ok()

    def _leave(self, req: Request) -> Awaitable[None]:
        m = self._membership(req)
        conn = self._conns[req.session]
        del conn.rooms[m.room]
        self.node.remove(m)
        return self._left(req, m)

    async def _left(self, req: Request, m: Membership) -> None:
        await self._release(m)
        req.ok()

    def _nick(self, req: Request) -> Awaitable[None]:
        m = self._membership(req)
        nick = check_nick(get_str(req.header, "nick"))
        self._check_reserved(nick, req.session.user)
        return self._renamed(req, m, nick)

    async def _renamed(self, req: Request, m: Membership, nick: str) -> None:
        await self._settled(m)
        old = await self.broker.rename(m.room, m.member, nick)
        m.nick = nick
        log.info(
            "chat %s in %s: %s is now %s",
            req.session.peer,
            m.room,
            escape(old, 64),
            escape(nick, 64),
        )
        req.ok()

    def _who(self, req: Request) -> Awaitable[None]:
        return self._listed(req, self._membership(req))

    async def _listed(self, req: Request, m: Membership) -> None:
        after = get_str(req.header, "after", "", max_len=_AFTER_MAX)
        await self._settled(m)
        nicks = sorted(n for n in await self.broker.members(m.room) if n > after)
        page, more = take_page(nicks, page_budget(self.ctx.limits.max_header))
        req.reply(_paged({"op": "chat.who", "room": m.room, "members": page}, more))

    def _history(self, req: Request) -> Awaitable[None]:
        """Scroll-back: open to whoever may join the room, so no membership is needed, and
        an anonymous asker pays a token like a sender (each ask is a read of the disk or
        of Redis of up to ``chat_history_max_join`` messages)."""
        room = check_room(get_str(req.header, "room"))
        before = get_int(req.header, "before", None, lo=1, hi=MAX_ID)
        limit = get_int(req.header, "limit", lo=1, hi=self.ctx.limits.chat_history_max_join)
        self._conn(req.session)
        self._throttle(req.session)
        return self._history_sent(req, room, before, limit)

    async def _history_sent(self, req: Request, room: str, before: int | None, limit: int) -> None:
        found = await self.broker.history(room, before, limit)
        await _replay(req, found.messages)
        req.reply({"op": "chat.history", "room": room, "more": found.more})

    async def _rooms(self, req: Request) -> None:
        after = get_str(req.header, "after", "", max_len=_AFTER_MAX)
        rooms = sorted((r, n) for r, n in await self.broker.rooms() if r > after)
        page, more = take_page(
            ({"room": r, "members": n} for r, n in rooms), page_budget(self.ctx.limits.max_header)
        )
        req.reply(_paged({"op": "chat.rooms", "rooms": page}, more))


async def _replay(req: Request, messages: Iterable[Message]) -> None:
    """History as non-final ``chat.msg`` frames of ``req``, in pages of ``HISTORY_PAGE``
    bytes, each once the client has read the one before: paced by its reading, so any
    history the limits allow reaches a client that reads, and none is cut off."""
    page = 0
    for msg in messages:
        req.send(history_header(msg), msg.text)
        page += len(msg.text)
        if page >= HISTORY_PAGE:
            page = 0
            await req.session.drain()


def _members_page(members: list[str], max_header: int) -> dict[str, Any]:
    """A joiner's first page of members, sorted as ``chat.who`` pages them: a big room
    must not make the reply a header over ``max_header``; the rest come by ``chat.who``."""
    page, more = take_page(sorted(members), page_budget(max_header))
    return {"members": page, "members_more": True} if more else {"members": page}


def _paged(reply: dict[str, Any], more: bool) -> dict[str, Any]:
    if more:
        reply["more"] = True
    return reply
