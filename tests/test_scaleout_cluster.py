"""Two ``sockhub serve`` processes sharing rooms through a private Redis Cluster.

The same counts as tests/test_scaleout.py (reused seqs, acknowledged messages a
listener never got, order violations: each zero, one sequence on both listeners),
here across a cluster and through the fail-over of the master serving the busy room.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from sockhub.services.chat.redis_format import Keys

from .files_support import ServerProcess
from .redis_cluster_support import NODE_TIMEOUT_MS, PrivateCluster
from .test_scaleout import LEASE, Tally, check, fault_run, one_order_one_history

ROOM = "room"
"""The room the helpers of tests/test_scaleout.py talk in."""

FAIL_OVER_LEASE = 4 * NODE_TIMEOUT_MS / 1000


def servers_on(
    cluster: PrivateCluster, tmp_path: Path, stack: ExitStack, lease: float = LEASE
) -> list[ServerProcess]:
    """Two servers, each given a different node of the cluster."""
    servers = []
    for i in range(2):
        (tmp_path / f"server{i}").mkdir()
        url = f"{cluster.nodes[i].url}?lease={lease}"
        data = tmp_path / f"server{i}" / "data"
        servers.append(stack.enter_context(ServerProcess(data, "--broker", url)))
    return servers


@pytest.fixture
def three_masters(tmp_path: Path) -> Iterator[tuple[PrivateCluster, list[ServerProcess]]]:
    with ExitStack() as stack:
        cluster = PrivateCluster(tmp_path / "cluster").start()
        stack.callback(cluster.stop)
        yield cluster, servers_on(cluster, tmp_path, stack)


async def test_two_servers_one_order_one_history_on_a_cluster(
    three_masters: tuple[PrivateCluster, list[ServerProcess]],
) -> None:
    cluster, servers = three_masters
    await one_order_one_history(servers)
    # the room lives on its slot's master; the others send there
    owner = cluster.master_of(Keys(ROOM).log)
    assert owner.command("EXISTS", Keys(ROOM).log) == b":1\r\n"
    others = [node for node in cluster.nodes if node is not owner]
    assert all(node.command("EXISTS", Keys(ROOM).log).startswith(b"-MOVED") for node in others)


@pytest.mark.slow
async def test_master_fail_over(tmp_path: Path) -> None:
    """``kill -9`` of the master serving the busy room: its replica takes over, the
    servers find it, subscribe there again and carry on numbering above what they saw.
    The lease outlasts the fail-over (docs/scale-out.md), so nobody is taken for gone."""
    with ExitStack() as stack:
        cluster = PrivateCluster(tmp_path / "cluster", replicas=1).start()
        stack.callback(cluster.stop)
        servers = servers_on(cluster, tmp_path, stack, lease=FAIL_OVER_LEASE)
        doomed = cluster.master_of(Keys(ROOM).log)
        before: list[int] = []

        def kill_master() -> None:
            before.append(max(tally_probe.acked))
            doomed.stop(signal.SIGKILL)
            cluster.wait_ok()  # a replica took the slots over

        tally_probe = Tally()
        tally, ears = await fault_run(servers, kill_master, tally=tally_probe)
        assert cluster.master_of(Keys(ROOM).log) is not doomed
        assert min(s for s in tally.acked if s > before[0]) > before[0]
        await check(tally, ears)
