"""The sandbox every command runs in: bubblewrap namespaces (docs/exec.md, "Isolation").

A command sees the system's programs and libraries read-only, a few harmless files of
``/etc``, a private ``/tmp``, ``/dev`` and ``/proc``, and the exec root read-write, and
nothing else: not the server's data folder (users.json, keys, files, chat history), not
its configuration, not its processes (a new PID namespace, so ``/proc/$PPID/environ`` is
the sandbox's own init, which holds the same clean environment as the command), and no
network (a new network namespace has only its own loopback). Every capability is dropped,
also when the server runs as root.

bubblewrap (Debian package ``bubblewrap``) works both for root and for a normal user on
a kernel that allows unprivileged user namespaces; ``probe`` runs it once at start, so
a server that cannot sandbox says so before it accepts a single command.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

__all__ = ["BWRAP_SIGNAL_BASE", "Sandbox", "SandboxUnavailable"]

_SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_ETC = (
    "alternatives",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "passwd",
    "group",
    "hosts",
    "nsswitch.conf",
    "localtime",
    "timezone",
    "ssl",
    "ca-certificates",
    "mime.types",
    "protocols",
    "services",
)
_EXEC = ("/bin/sh", "-c", 'exec "$0" "$@"')
"""Inside the sandbox a shell starts the program, so a missing or non-executable one is
127 or 126 with the shell's message, as without the sandbox (bwrap itself would say 1)."""

_TERMINAL = ("/usr/bin/setsid", "--ctty", "--wait")

BWRAP_SIGNAL_BASE = 128
"""bwrap reports a command ended by signal N as exit status 128+N (as a shell's ``$?``)."""


class SandboxUnavailable(RuntimeError):
    """No working sandbox on this machine; the message says why and what to do."""


def _system_mounts() -> list[str]:
    args: list[str] = []
    for path in _SYSTEM:
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    for name in _ETC:
        args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    return args


class Sandbox:
    """How to wrap a command's argv so it runs inside bubblewrap, rooted at the exec root."""

    name = "bubblewrap"

    def __init__(self, bwrap: str, root: Path, hidden: Sequence[Path]) -> None:
        self._prefix = [
            bwrap,
            "--unshare-all",
            "--die-with-parent",
            "--cap-drop",
            "ALL",
            *_system_mounts(),
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--tmpfs",
            "/tmp",
            "--bind",
            str(root),
            str(root),
        ]
        for path in hidden:
            if path.is_relative_to(root) and path != root:
                self._prefix += ["--tmpfs", str(path)]

    def wrap(self, argv: Sequence[str], cwd: Path, terminal: bool = False) -> list[str]:
        """``terminal``: stdin is a pty that is nobody's controlling terminal yet; inside the
        sandbox the command takes it in a session of its own (``setsid --ctty --wait``), so
        the terminal's signals (Ctrl-C, window changes) reach the command, not bubblewrap."""
        start = (*_TERMINAL, *_EXEC) if terminal else _EXEC
        return [*self._prefix, "--chdir", str(cwd), "--", *start, *argv]

    @classmethod
    def probe(cls, root: Path, hidden: Sequence[Path]) -> Sandbox:
        """A sandbox that has just run ``true``; raises SandboxUnavailable with the reason."""
        bwrap = shutil.which("bwrap")
        if bwrap is None:
            raise SandboxUnavailable("bwrap is not installed (Debian package: bubblewrap)")
        box = cls(bwrap, root, hidden)
        try:
            done = subprocess.run(
                box.wrap(["true"], root),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=30,
                env={"PATH": "/usr/bin:/bin"},
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SandboxUnavailable(f"bwrap cannot run: {exc}") from exc
        if done.returncode != 0:
            why = done.stderr.decode(errors="replace").strip() or f"status {done.returncode}"
            raise SandboxUnavailable(f"bwrap does not work here: {why}")
        return box
