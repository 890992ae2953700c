"""A private Redis Cluster for tests: masters (and replicas) on free loopback ports.

Each node is a ``RedisServer`` (its own folder, its own PID) started with cluster mode
on; ``redis-cli --cluster create`` joins them and spreads the slots; the tests kill
exactly the processes they started.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import hiredis
import pytest

from sockhub.services.chat.redis_slots import key_slot

from .redis_support import RedisServer

__all__ = ["PrivateCluster"]

NODE_TIMEOUT_MS = 2000
"""How long a master may be silent before its replica takes over (the failover test
waits about this plus an election)."""


def ask(node: RedisServer, *args: str) -> Any:
    """A command's reply, parsed."""
    reader = hiredis.Reader()
    reader.feed(node.command(*args))
    return reader.gets()


class PrivateCluster:
    """``masters`` masters with ``replicas`` replicas each, every node with an AOF."""

    def __init__(self, folder: Path, *, masters: int = 3, replicas: int = 0) -> None:
        cli = shutil.which("redis-cli")
        if cli is None:
            pytest.skip("redis-cli is not installed (make sysdeps): it creates the cluster")
        self.cli = cli
        extra = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
        extra += ["--cluster-node-timeout", str(NODE_TIMEOUT_MS)]
        self.nodes = [
            RedisServer(folder / f"node{i}", aof=True, extra=extra, bus=True)
            for i in range(masters * (1 + replicas))
        ]
        self.replicas = replicas

    @property
    def url(self) -> str:
        """Any one node: the broker finds the others."""
        return self.nodes[0].url

    def start(self) -> PrivateCluster:
        try:
            for node in self.nodes:
                node.start()
        except RuntimeError:
            log = self.nodes[0].folder / "redis.log"
            if log.exists() and "Bad directive" in log.read_text():
                self.stop()
                pytest.skip("this redis-server has no cluster support")
            self.stop()
            raise
        if b"disabled" in self.nodes[0].command("CLUSTER", "INFO"):
            self.stop()
            pytest.skip("this redis-server has no cluster support")
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
        args = [self.cli, "--cluster", "create", *addresses]
        args += ["--cluster-replicas", str(self.replicas), "--cluster-yes"]
        subprocess.run(args, check=True, capture_output=True, timeout=60)
        self.wait_ok()
        return self

    def wait_ok(self, limit: float = 60) -> None:
        """Until every running node says the cluster is ok, agrees on who serves every
        slot, and every replica is in sync with its master."""
        deadline = time.monotonic() + limit
        while not self._settled():
            if time.monotonic() > deadline:
                raise RuntimeError("the private Redis Cluster did not settle")
            time.sleep(0.05)

    def _settled(self) -> bool:
        alive = [node for node in self.nodes if node.proc is not None]
        try:
            infos = [ask(node, "CLUSTER", "INFO") for node in alive]
            owners = {self._owners(node) for node in alive}
            links = [ask(node, "INFO", "replication") for node in alive]
        except OSError:
            return False
        replicas = [info for info in links if b"role:slave" in info]
        in_sync = all(b"master_link_status:up" in info for info in replicas)
        masters = len(next(iter(owners)).split()) if len(owners) == 1 else 0
        return (
            all(b"cluster_state:ok" in info for info in infos)
            and len(owners) == 1
            and len(replicas) == len(alive) - masters
            and in_sync
        )

    def _owners(self, node: RedisServer) -> bytes:
        """Masters that serve slots, as ``node`` sees them."""
        rows = ask(node, "CLUSTER", "NODES").decode().splitlines()
        masters = sorted(
            row.split()[1].split("@")[0]
            for row in rows
            if "master" in row.split()[2] and "fail" not in row.split()[2] and len(row.split()) > 8
        )
        return " ".join(masters).encode()

    def master_of(self, key: str) -> RedisServer:
        """The running node that serves ``key``'s slot now."""
        return self.master_of_slot(key_slot(key))

    def master_of_slot(self, slot: int) -> RedisServer:
        for node in self.nodes:
            if node.proc is None:
                continue
            for row in ask(node, "CLUSTER", "NODES").decode().splitlines():
                fields = row.split()
                if "myself" in fields[2] and "master" in fields[2]:
                    for part in fields[8:]:
                        low, _, high = part.partition("-")
                        if low.isdigit() and int(low) <= slot <= int(high or low):
                            return node
        raise LookupError(f"no running master serves slot {slot}")

    def move_slot(self, slot: int, to: RedisServer) -> None:
        """Migrate ``slot`` (its keys, then its ownership) to the master ``to``, the way
        ``redis-cli --cluster reshard`` does: meanwhile the old master answers ``ASK``
        for keys already moved, and ``TRYAGAIN`` for a script whose keys are split."""
        self.end_move(slot, self.begin_move(slot, to))

    def begin_move(self, slot: int, to: RedisServer) -> str:
        """Move every key of ``slot`` to ``to``, leaving the slot migrating (the old
        master answers ``ASK``); the id of ``to``, for ``end_move``."""
        source = self.master_of_slot(slot)
        ids = {node.port: ask(node, "CLUSTER", "MYID").decode() for node in (source, to)}
        ask(to, "CLUSTER", "SETSLOT", str(slot), "IMPORTING", ids[source.port])
        ask(source, "CLUSTER", "SETSLOT", str(slot), "MIGRATING", ids[to.port])
        while keys := ask(source, "CLUSTER", "GETKEYSINSLOT", str(slot), "10"):
            names = [key.decode() for key in keys]
            moved = ask(
                source, "MIGRATE", "127.0.0.1", str(to.port), "", "0", "5000", "KEYS", *names
            )
            assert moved == b"OK", moved
        return ids[to.port]

    def end_move(self, slot: int, to: str) -> None:
        """Give ``slot`` to the master whose id is ``to``, on every master (the new
        owner first, as ``redis-cli`` does)."""
        alive = [node for node in self.nodes if node.proc is not None]
        for node in sorted(alive, key=lambda node: ask(node, "CLUSTER", "MYID").decode() != to):
            if b"role:master" in ask(node, "INFO", "replication"):
                ask(node, "CLUSTER", "SETSLOT", str(slot), "NODE", to)

    def flush(self) -> None:
        """Empty every master (its replicas follow): a fresh cluster for the next test."""
        for node in self.nodes:
            if node.proc is not None and b"role:master" in ask(node, "INFO", "replication"):
                node.command("FLUSHALL")

    def stop(self) -> None:
        """End every node (by its PID)."""
        for node in self.nodes:
            node.stop()
