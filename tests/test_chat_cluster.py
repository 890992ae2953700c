"""The Redis broker on a private Redis Cluster: what only a cluster has.

Rooms live on their slot's master and are listened to there (sharded pub/sub); a slot
that moves to another master while a room is busy is followed (``ASK`` during the
migration, ``MOVED`` and a ``sunsubscribe`` after it); a stalled master is
``backend.unavailable`` with nothing done. The broker contract itself runs on the
cluster in tests/test_chat_brokers.py, fail-over in tests/test_scaleout_cluster.py.
"""

from __future__ import annotations

import asyncio
import itertools

import pytest

from sockhub.protocol.errors import BackendUnavailable
from sockhub.services.chat.broker import Direct
from sockhub.services.chat.redis_broker import RedisBroker
from sockhub.services.chat.redis_cluster import Router
from sockhub.services.chat.redis_format import Keys
from sockhub.services.chat.redis_slots import key_slot, redirect

from .redis_cluster_support import PrivateCluster, ask
from .redis_support import RedisServer
from .test_chat_brokers import KEEP, Node, increasing, member, stalled_does_nothing, until


async def started(url: str, keep: int = KEEP) -> tuple[RedisBroker, Node]:
    broker, node = RedisBroker(url, keep), Node()
    await broker.start(node)
    return broker, node


def room_on(cluster: PrivateCluster, master: RedisServer) -> str:
    """A room name whose slot ``master`` serves."""
    return next(
        f"r{n}" for n in itertools.count() if cluster.master_of(Keys(f"r{n}").seq) is master
    )


def masters(cluster: PrivateCluster) -> list[RedisServer]:
    return [
        node
        for node in cluster.nodes
        if node.proc is not None and b"role:master" in ask(node, "INFO", "replication")
    ]


async def test_rooms_and_their_channels_live_on_their_slots_master(
    private_cluster: PrivateCluster,
) -> None:
    cluster = private_cluster
    cluster.flush()
    rooms = {room_on(cluster, m): m for m in masters(cluster)}
    assert len(rooms) == 3
    (a, node_a), (b, node_b) = (
        await started(cluster.nodes[0].url),
        await started(cluster.nodes[1].url),
    )
    try:
        for i, room in enumerate(rooms):
            await a.join(room, member(i, user=f"u{i}"), f"a{i}", since=None, count=0)
            await b.join(room, member(10 + i), f"b{i}", since=None, count=0)
        acks = [
            broker.publish(room, "x", b"%s-%d" % (room.encode(), n))
            for n in range(20)
            for room in rooms
            for broker in (a, b)
        ]
        await asyncio.gather(*acks)
        await until(lambda: len(node_a.messages) == len(node_b.messages) == len(acks))
        # one order per room (rooms on different masters interleave as they come)
        assert all(node_a.texts(room) == node_b.texts(room) for room in rooms)
        for room, owner in rooms.items():
            keys = Keys(room)
            assert ask(owner, "CLUSTER", "KEYSLOT", keys.seq) == key_slot(keys.seq)
            assert ask(owner, "EXISTS", keys.log) == 1
            listening = {
                node.port: ask(node, "PUBSUB", "SHARDNUMSUB", keys.chan)[1]
                for node in masters(cluster)
            }
            assert listening == {m.port: 2 if m is owner else 0 for m in masters(cluster)}
            seqs = [m.seq for m in node_a.messages if m.room == room]
            assert seqs == list(range(seqs[0], seqs[0] + 40))
        assert await b.rooms() == [(room, 2) for room in sorted(rooms)]
        assert await b.direct(Direct("u1", "b", 1.0, b"psst"), "u1") == 1
        await until(lambda: ("dm", ("u1", b"psst", ["c1"])) in node_a.seen)
    finally:
        await a.stop()
        await b.stop()


async def test_a_slot_moved_while_a_room_is_busy(private_cluster: PrivateCluster) -> None:
    """The room's slot migrates to another master mid-traffic: scripts follow ``ASK``
    then ``MOVED`` (or fail, and are sent again by their sender: nothing was done),
    the subscriptions move with the slot, and nothing is lost, reused or misordered."""
    cluster = private_cluster
    cluster.flush()
    room = "busy"
    slot = key_slot(Keys(room).seq)
    source = cluster.master_of_slot(slot)
    target = next(m for m in masters(cluster) if m is not source)
    brokers = [await started(node.url, keep=10_000) for node in cluster.nodes[:2]]
    acked: dict[int, bytes] = {}
    reused = 0

    async def say(broker: RedisBroker, name: str) -> None:
        nonlocal reused
        for n in range(150):
            text = b"%s-%d" % (name.encode(), n)
            while True:
                try:
                    seq = await broker.publish(room, name, text)
                    break
                except BackendUnavailable:
                    await asyncio.sleep(0.01)
            reused += seq in acked
            acked[seq] = text

    try:
        for i, (broker, _) in enumerate(brokers):
            await broker.join(room, member(i), f"n{i}", since=None, count=0)
        senders = [asyncio.ensure_future(say(b, f"s{i}")) for i, (b, _) in enumerate(brokers)]
        await until(lambda: len(acked) >= 100)
        await asyncio.to_thread(cluster.move_slot, slot, target)
        await asyncio.gather(*senders)
        assert cluster.master_of_slot(slot) is target
        wanted = set(acked.items())
        await until(
            lambda: all(wanted <= {(m.seq, m.text) for m in n.messages} for _, n in brokers)
        )
        orders = [
            [(m.seq, m.text) for m in n.messages if (m.seq, m.text) in wanted] for _, n in brokers
        ]
        assert reused == 0 and len(acked) == 300
        assert orders[0] == orders[1] == sorted(wanted)
        assert ask(target, "PUBSUB", "SHARDNUMSUB", Keys(room).chan)[1] == 2
        late = await brokers[1][0].join(room, member(9), "late", since=0, count=0)
        assert wanted <= {(m.seq, m.text) for m in late.history}
    finally:
        for broker, _ in brokers:
            await broker.stop()


async def test_scripts_and_subscriptions_follow_ask_and_moved(
    private_cluster: PrivateCluster,
) -> None:
    """A slot in mid-migration (its keys already moved): the old master sends commands
    on (``ASK``) and they are sent again to the new master after ``ASKING``; a room's
    script is refused there all the same until the move ends (``TRYAGAIN``: its
    channel is among its keys and is no stored key), so ``backend.unavailable`` with
    nothing done. Then the move ends: a node that never heard of it is sent on by
    ``MOVED``, for its subscription and for its scripts."""
    cluster = private_cluster
    cluster.flush()
    room = "quiet"
    slot = key_slot(Keys(room).seq)
    target = next(m for m in masters(cluster) if m is not cluster.master_of_slot(slot))
    (a, node_a), (b, node_b) = await started(cluster.url), await started(cluster.nodes[1].url)
    try:
        await a.join(room, member(1), "ada", since=None, count=0)
        await a.publish(room, "ada", b"before")
        to = await asyncio.to_thread(cluster.begin_move, slot, target)
        router = Router(cluster.url, cluster=True)
        try:
            assert await router.call(Keys(room).seq, "HGET", Keys(room).seq, "s") == b"1"
        finally:
            router.close()
        with pytest.raises(BackendUnavailable, match="TRYAGAIN"):
            await a.publish(room, "ada", b"during")
        await asyncio.to_thread(cluster.end_move, slot, to)
        joined = await b.join(room, member(2), "bob", since=0, count=0)  # MOVED
        assert [m.text for m in joined.history] == [b"before"]
        await b.publish(room, "bob", b"after")
        await until(lambda: node_a.texts(room) == [b"before", b"after"])
        await until(lambda: ask(target, "PUBSUB", "SHARDNUMSUB", Keys(room).chan)[1] == 2)
        await a.publish(room, "ada", b"last")
        await until(lambda: node_b.texts(room) == [b"after", b"last"])
        assert increasing([m.seq for m in node_a.messages])
    finally:
        await a.stop()
        await b.stop()


async def test_a_stalled_master_is_backend_unavailable_and_nothing_done(
    private_cluster: PrivateCluster,
) -> None:
    cluster = private_cluster
    cluster.flush()
    owner = cluster.master_of(Keys("r").seq)
    assert owner.proc is not None
    broker, _ = await started(cluster.url)
    try:
        await stalled_does_nothing(broker, owner.proc.pid)
    finally:
        await broker.stop()


def test_redirections_are_read_as_redis_writes_them() -> None:
    assert redirect("MOVED 3999 127.0.0.1:6381", "h") == (False, 3999, ("127.0.0.1", 6381))
    assert redirect("ASK 12 :7000", "10.0.0.5") == (True, 12, ("10.0.0.5", 7000))
    assert redirect("MOVED 1 ::1:7000", "h") == (False, 1, ("::1", 7000))
    assert redirect("NOSCRIPT No matching script", "h") is None
