"""What an ``exec.run`` asks for, checked: the program, the folder, the environment, the time.

Everything a client can get wrong is a ``bad.request`` naming the field, raised before
anything is started.
"""

from __future__ import annotations

import os
import pwd
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...protocol.errors import BadRequest, FileBadPath
from ...protocol.fields import get_bool, get_number, get_str, get_str_list, get_str_map
from ...protocol.paths import check_path
from ...server.limits import Limits
from .pty import PtySpec, parse_pty

__all__ = ["RunSpec", "base_environment", "parse_run", "resolve_cwd"]

SHELL = "/bin/sh"
PATH = "/usr/local/bin:/usr/bin:/bin"


@dataclass(frozen=True, slots=True)
class RunSpec:
    argv: list[str]
    cwd: Path
    env: dict[str, str]
    timeout: float
    stdin: bool
    pty: PtySpec | None = None


def base_environment() -> dict[str, str]:
    """The clean environment every run starts from: what a login would set, nothing more.

    Nothing is copied from the server's own environment, so its secrets and its
    ``SOCKHUB_*`` settings never reach a command.
    """
    try:
        user = pwd.getpwuid(os.getuid())
        name, home = user.pw_name, user.pw_dir
    except KeyError:
        name, home = str(os.getuid()), "/"
    return {
        "PATH": PATH,
        "HOME": home,
        "USER": name,
        "LOGNAME": name,
        "SHELL": SHELL,
        "LANG": "C.UTF-8",
    }


def _check_no_nul(value: str, field: str) -> None:
    if "\x00" in value:
        raise BadRequest(f"field '{field}' may not contain a NUL character")


def _argv(header: dict[str, Any]) -> list[str]:
    has_cmd, has_argv = "cmd" in header, "argv" in header
    if has_cmd == has_argv:
        raise BadRequest(
            "give exactly one of the fields 'cmd' (a shell command) or 'argv' (a list)"
        )
    if has_cmd:
        cmd = get_str(header, "cmd")
        if not cmd.strip():
            raise BadRequest("field 'cmd' is empty")
        _check_no_nul(cmd, "cmd")
        return [SHELL, "-c", cmd]
    argv: list[str] = get_str_list(header, "argv")
    if not argv or not argv[0]:
        raise BadRequest("field 'argv' needs a program name first")
    for arg in argv:
        _check_no_nul(arg, "argv")
    return list(argv)


def resolve_cwd(root: Path, path: str) -> Path:
    """``path`` inside the exec root, by the path rules of PROTOCOL.md section 7.

    ``root`` is already resolved. The check is a guard against mistakes, not a sandbox:
    a command runs as the server's user and may ``cd`` wherever that user may.
    """
    try:
        if not check_path(path, root_ok=True):
            return root
    except FileBadPath as exc:
        raise BadRequest(f"field 'cwd': {exc.message}") from exc
    try:
        full = (root / path).resolve(strict=True)
    except FileNotFoundError as exc:
        raise BadRequest(f"field 'cwd': {path} does not exist in the exec root") from exc
    except (OSError, RuntimeError) as exc:  # a symlink loop, a permission problem
        raise BadRequest(f"field 'cwd': {path} cannot be used") from exc
    if not full.is_relative_to(root):
        raise BadRequest("field 'cwd' leads outside the exec root")
    if not full.is_dir():
        raise BadRequest(f"field 'cwd': {path} is not a directory")
    return full


def _env(header: dict[str, Any], base: dict[str, str]) -> dict[str, str]:
    extra: dict[str, str] = get_str_map(header, "env", {})
    for name, value in extra.items():
        if not name or "=" in name:
            raise BadRequest("field 'env' has a name that is empty or contains '='")
        _check_no_nul(name, "env")
        _check_no_nul(value, "env")
    return {**base, **extra}


def parse_run(
    header: dict[str, Any], root: Path, base_env: dict[str, str], limits: Limits
) -> RunSpec:
    argv = _argv(header)
    timeout = get_number(header, "timeout", limits.exec_timeout_default)
    if timeout <= 0:
        raise BadRequest("field 'timeout' must be a positive number of seconds")
    cwd = resolve_cwd(root, get_str(header, "cwd", ""))
    env = _env(header, base_env)
    env["PWD"] = str(cwd)
    pty = parse_pty(header)
    return RunSpec(
        argv=argv,
        cwd=cwd,
        env=env,
        timeout=min(float(timeout), limits.exec_timeout_max),
        stdin=pty is not None or get_bool(header, "stdin", False),
        pty=pty,
    )
