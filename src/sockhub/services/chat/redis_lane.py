"""A room's lane: its scripts go to Redis one at a time, in the order they were asked
for, so a connection's messages keep their order and its leave comes after its last
message. The lane sends the next batch once the previous one came back over pub/sub,
so everything said meanwhile goes in one script.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from ...protocol.errors import BackendUnavailable, ChatNickTaken
from .redis_order import RoomOrder

__all__ = ["ACK_WAIT", "MAX_BATCH", "Lane", "Op", "Say"]

log = logging.getLogger("sockhub.chat")

ACK_WAIT = 5.0
"""Longest wait for a published message to come back before ``ok`` is sent anyway."""


MAX_BATCH = 1024
"""Messages per publish script (a script holds Redis while it runs)."""


class Say:
    __slots__ = ("check", "future", "sender", "text")

    def __init__(self, sender: str, text: bytes, future: asyncio.Future[int], check: str) -> None:
        self.sender, self.text, self.future = sender, text, future
        self.check = check
        """The nick key an unannounced sender must find free ('' for a member)."""


class Op:
    __slots__ = ("future", "run")

    def __init__(self, run: Callable[[], Awaitable[Any]], future: asyncio.Future[Any]) -> None:
        self.run, self.future = run, future


Stored = Callable[[list[tuple[str, bytes]], str], Awaitable[int]]
"""Stores messages said by a sender with a nick check (``RedisBroker._stored`` for one
room): the first one's ``seq``."""


class Lane:
    """One room's queue of scripts, and the task running it (None when idle)."""

    __slots__ = ("jobs", "name", "order", "runner", "stored", "timeout")

    def __init__(self, name: str, order: RoomOrder, stored: Stored, timeout: float) -> None:
        self.name, self.order, self.stored, self.timeout = name, order, stored, timeout
        self.jobs: collections.deque[Say | Op] = collections.deque()
        self.runner: asyncio.Task[None] | None = None

    async def run(self) -> None:
        """Run the jobs queued, in order, until none is left."""
        while self.jobs:
            if isinstance(self.jobs[0], Op):
                op = self.jobs.popleft()
                assert isinstance(op, Op)
                try:
                    op.future.set_result(await op.run())
                except Exception as exc:
                    op.future.set_exception(exc)
                continue
            await self._publish(self._batch())

    def _batch(self) -> list[Say]:
        """The messages at the head of the lane that go in one script: up to
        ``MAX_BATCH``; an unannounced one goes alone (its nick check fails it only)."""
        batch: list[Say] = []
        while self.jobs and isinstance(self.jobs[0], Say) and len(batch) < MAX_BATCH:
            if batch and (batch[0].check or self.jobs[0].check):
                break
            say = self.jobs.popleft()
            assert isinstance(say, Say)
            batch.append(say)
        return batch

    async def _publish(self, batch: list[Say]) -> None:
        try:
            first = await self.stored([(say.sender, say.text) for say in batch], batch[0].check)
        except (BackendUnavailable, ChatNickTaken) as exc:
            if isinstance(exc, BackendUnavailable):
                log.error(
                    "publishing %d chat messages to %s failed: %s", len(batch), self.name, exc
                )
            for say in batch:
                if not say.future.done():
                    say.future.set_exception(exc)
            return
        last = first + len(batch) - 1
        self.order.known(last)
        # ok once each message came back to this node (so the sender sees its own
        # message first, and ok means members got it), backend.unavailable if it turns
        # out lost; should pub/sub and the stream stay out of reach, ok after ACK_WAIT
        # anyway: Redis did accept the message
        for i, say in enumerate(batch):
            self.order.wait(first + i, say.future)
        asyncio.get_running_loop().call_later(ACK_WAIT, _answer_late, batch, first)
        if self.order.last is not None:
            # one batch in flight per room, end to end (Nagle without a timer): what is
            # said meanwhile goes in the next script, so batches grow with the load and
            # each member gets fewer, larger writes; bounded, so a slow pub/sub only
            # slows the lane (and skipped before the node's first join was answered:
            # nothing is handed over yet, and that join may be behind in the lane)
            await asyncio.wait([batch[-1].future], timeout=self.timeout)


def _answer_late(batch: list[Say], first: int) -> None:
    """``ok`` for whatever of a batch has not come back after ``ACK_WAIT`` (one timer a
    batch, not one a message)."""
    for i, say in enumerate(batch):
        if not say.future.done():
            say.future.set_result(first + i)
