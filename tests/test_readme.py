"""The README's tour: every ``sh`` block, in order, in one fresh bash, exactly as written.

Only the ports are the test's (``SOCKHUB_PORT``/``SOCKHUB_WEB_PORT``/``SOCKHUB_SERVER``,
which the tour honours like any user's environment) so parallel runs, or a server left
running, do not collide; HOME and TMPDIR are fresh.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def sh_blocks(text: str) -> list[str]:
    return re.findall(r"^```sh\n(.*?)^```$", text, flags=re.MULTILINE | re.DOTALL)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_tour(tmp_path: Path, web_port: int) -> tuple[int, str]:
    """The tour's blocks in one bash: its exit status and everything it printed."""
    blocks = sh_blocks((ROOT / "README.md").read_text())
    assert len(blocks) >= 6 and "kill %1" in blocks[-1]
    port = free_port()
    (tmp_path / "home").mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SOCKHUB_", "XDG_", "VIRTUAL_ENV", "PYTEST", "COV_"))
    }
    env.update(
        HOME=str(tmp_path / "home"),
        TMPDIR=str(tmp_path),
        SOCKHUB_PORT=str(port),
        SOCKHUB_WEB_PORT=str(web_port),  # not 9697: a `make serve` may be running
        SOCKHUB_SERVER=f"127.0.0.1:{port}",
    )
    script = "set -eu\n" + "\n".join(blocks)
    proc = subprocess.Popen(
        ["bash", "-c", script],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # the tour's background server is in this group too
    )
    try:
        out, _ = proc.communicate(timeout=180)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # only if the tour failed to stop it
    return proc.returncode, out


def test_a_server_that_cannot_start_ends_the_wait_and_says_why(tmp_path: Path) -> None:
    """The web port is taken (a `make serve` left running, say): the tour's wait loop
    ends instead of spinning for ever, and the log it prints names the cause."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        status, out = run_tour(tmp_path, taken.getsockname()[1])
    assert status != 0
    assert "address already in use" in out, out


def test_the_readme_tour_runs_as_written(tmp_path: Path) -> None:
    status, out = run_tour(tmp_path, free_port())
    assert status == 0, out
    assert "Traceback" not in out
    for expected in (
        "hello\n",
        "HELLO\n",
        "exit 143",
        f"data {tmp_path}",  # the banner names the tour's own data folder
        "alice",
        "<bot> line two",
        "put report.txt -> old/report-v1.txt",
        "unchanged",
    ):
        assert expected in out, (expected, out)
