"""Bench servers end with the bench, even when the bench is stopped by a signal.

``timeout`` sends SIGTERM to the bench; its servers (and their own children, as the
workers of ``sockhub serve --workers``) must not outlive it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

RUNNER = """
import subprocess
import time
from bench._procs import end_on_signals, group_process
end_on_signals()
with group_process(["sh", "-c", "sleep 300 & echo $!; wait"], stdout=subprocess.PIPE) as proc:
    print(proc.pid, int(proc.stdout.readline()), flush=True)
    time.sleep(300)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"


def _gone(pids: set[int], within: float) -> bool:
    """Every pid ended: a SIGKILLed process dies when the kernel next schedules it, which
    on a loaded machine may be just after the bench that sent the signal exited."""
    deadline = time.monotonic() + within
    while any(_alive(pid) for pid in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stopped_bench_ends_its_server_and_the_server_s_children(signum: int) -> None:
    bench = subprocess.Popen(
        [sys.executable, "-c", RUNNER], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert bench.stdout is not None
    pids = {int(pid) for pid in bench.stdout.readline().split()}
    try:
        assert all(_alive(pid) for pid in pids)
        assert all(os.getpgid(pid) != os.getpgid(bench.pid) for pid in pids)  # own group
        bench.send_signal(signum)
        assert bench.wait(30) != 0
        assert _gone(pids, within=30.0)
    finally:
        bench.kill()
        bench.wait()
        for pid in pids:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
