"""Process lifecycle of exec runs: timeouts, disconnects, groups and reaping.

Each run's main process is a child of this very process (the test server runs in a
thread here), so ``/proc`` tells us the truth about zombies and group members. Waiting
for a process to end is done on its pidfd, never by sleeping. The commands print their
own pids, which are host pids only without the sandbox's PID namespace, so these tests
run the unsandboxed spawn path; test_exec_sandbox.py covers the lifecycle in the sandbox.
"""

from __future__ import annotations

import os
import select
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from sockhub import Client

from .conftest import running_server
from .test_exec_service import Exec


@pytest.fixture
def ex(tmp_path: Path) -> Iterator[Exec]:
    with running_server(
        tmp_path / "data", exec=True, exec_kill_grace=0.3, exec_unsandboxed=True
    ) as srv:
        yield Exec(srv)


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, ppid, pgrp) of a process, or None once it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except (FileNotFoundError, ProcessLookupError):  # ESRCH: it ended between open and read
        return None
    fields = raw[raw.rfind(b")") + 2 :].split()
    return fields[0].decode(), int(fields[1]), int(fields[2])


def live_members(pgid: int) -> list[int]:
    """Processes of group ``pgid`` that still run (zombies have ended: they do not count)."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = _stat(int(name))
            if st is not None and st[2] == pgid and st[0] not in ("Z", "X"):
                found.append(int(name))
    return found


def zombie_children() -> list[int]:
    me = os.getpid()
    return [
        int(n)
        for n in os.listdir("/proc")
        if n.isdigit() and (st := _stat(int(n))) is not None and st[1] == me and st[0] == "Z"
    ]


def wait_ended(pids: list[int], timeout: float = 20.0) -> None:
    """Block until every pid has ended, watching pidfds (readable once a process exits)."""
    fds = []
    for pid in pids:
        try:
            fds.append(os.pidfd_open(pid))
        except ProcessLookupError:
            continue
    try:
        while fds:
            ready, _, _ = select.select(fds, [], [], timeout)
            assert ready, f"processes {pids} still run after {timeout} s"
            for fd in ready:
                fds.remove(fd)
                os.close(fd)
    finally:
        for fd in fds:
            os.close(fd)


def _pids(text: bytes) -> list[int]:
    return [int(p) for p in text.split()]


def test_main_exit_ends_the_run_even_if_a_child_holds_the_pipes(ex: Exec) -> None:
    """sleep keeps stdout open; the run still ends when sh exits, and sleep is ended too."""
    with ex.client() as c:
        r = c.run("sleep 300 & echo $$ $!")
        assert r.status == 0 and not r.timed_out
        main, bg = _pids(r.stdout)
        assert live_members(main) == []
        assert _stat(bg) is None or _stat(bg)[0] == "Z"  # type: ignore[index]


def test_timeout_kills_a_process_that_forked_a_grandchild(ex: Exec) -> None:
    with ex.client() as c:
        proc = c.open_process("sleep 300 & echo $$ $!; wait", timeout=0.5)
        outputs = iter(proc)
        main, bg = _pids(next(outputs).data)
        result = proc.wait()
    assert result.timed_out and result.status is None and result.signal == "TERM"
    assert live_members(main) == []
    assert _stat(bg) is None or _stat(bg)[0] == "Z"  # type: ignore[index]


def test_timeout_kills_what_ignores_term(ex: Exec) -> None:
    script = "trap '' TERM; (trap '' TERM; sleep 300) & echo $$ $!; while :; do sleep 0.05; done"
    with ex.client() as c:
        proc = c.open_process(script, timeout=0.3)
        main = _pids(next(iter(proc)).data)[0]
        result = proc.wait()
    assert result.timed_out and result.signal == "KILL"
    assert live_members(main) == []


def test_timeout_ends_a_stopped_process(ex: Exec) -> None:
    with ex.client() as c:
        proc = c.open_process("echo $$; exec sleep 300", timeout=0.5)
        main = _pids(next(iter(proc)).data)[0]
        proc.kill("STOP")
        result = proc.wait()
    assert result.timed_out and result.signal == "TERM"
    assert live_members(main) == []


def test_the_servers_maximum_caps_the_timeout(tmp_path: Path) -> None:
    with running_server(tmp_path / "data", exec=True, exec_timeout_max=0.3) as srv:
        key = srv.add_user("alice", ("exec",))
        with Client.connect(srv.address, user="alice", key=key) as c:
            assert c.run("sleep 300", timeout=1000).timed_out


def test_disconnect_kills_the_group(ex: Exec) -> None:
    c = ex.client()
    proc = c.open_process("sleep 300 & echo $$ $!; wait")
    main, bg = _pids(next(iter(proc)).data)
    assert live_members(main) == [main, bg] or sorted(live_members(main)) == sorted([main, bg])
    assert c._sock is not None
    c._sock.shutdown(socket.SHUT_RDWR)
    c._sock.close()
    wait_ended([main, bg])
    assert live_members(main) == []
    with ex.client() as again:  # the server took no harm
        assert again.run("echo ok").stdout == b"ok\n"


def test_server_shutdown_kills_running_commands(tmp_path: Path) -> None:
    settings = {
        "exec": True,
        "exec_kill_grace": 0.3,
        "shutdown_grace": 0.3,
        "exec_unsandboxed": True,
    }
    with running_server(tmp_path / "data", **settings) as srv:
        key = srv.add_user("alice", ("exec",))
        c = Client.connect(srv.address, user="alice", key=key)
        proc = c.open_process("trap '' TERM; sleep 300 & echo $$; wait")
        main = _pids(next(iter(proc)).data)[0]
    # the server has stopped: its exec service waited for the group to be gone
    assert live_members(main) == []
    assert main not in zombie_children()
    c.close()


def test_a_process_that_left_the_group_does_not_hold_the_run(ex: Exec) -> None:
    """setsid takes a process out of the run's group (documented); its open stdout and
    its endless writing must still not keep the run from ending."""
    with ex.client() as c:
        r = c.run("setsid sh -c 'while :; do echo x; done' & echo $! >&2")
    escaped = _pids(r.stderr)[0]
    try:
        assert r.status == 0
    finally:
        os.kill(escaped, 9)
        wait_ended([escaped])


def test_no_zombies_or_descriptors_left_after_30_runs(ex: Exec) -> None:
    mains = []
    with ex.client() as c:
        c.run("true")
        fds = len(os.listdir("/proc/self/fd"))
        for i in range(30):
            cmd = ["true & true & echo $$", "echo $$; exit 3", "sleep 0.01 & echo $$; kill -9 $$"][
                i % 3
            ]
            mains.append(_pids(c.run(cmd).stdout)[0])
        assert len(os.listdir("/proc/self/fd")) == fds
    zombies = set(zombie_children())
    assert not zombies & set(mains)
    for main in mains:
        assert live_members(main) == []
