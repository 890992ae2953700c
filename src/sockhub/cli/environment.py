"""``SOCKHUB_*`` variables: a misspelt one is named, never silently ignored.

The server refuses unknown TOML keys; the same goes for the environment. ``serve``
refuses an unknown ``SOCKHUB_*`` variable (exit 2, as for a TOML typo); the client
commands, which read only a few, warn about it and go on, so a stray variable in a
shell never stops a one-off ``sockhub echo``.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Mapping

from ..server.config import Config
from ..server.limits import Limits

__all__ = ["CLIENT_VARIABLES", "parse_size", "unknown_variables"]

CLIENT_VARIABLES = frozenset(
    {
        "SOCKHUB_SERVER",
        "SOCKHUB_USER",
        "SOCKHUB_KEY",
        "SOCKHUB_DATA",
        "SOCKHUB_CONFIG",
        "SOCKHUB_KNOWN_HOSTS",
        "SOCKHUB_TALK_BOOK",
        "SOCKHUB_TALK_LISTEN",
    }
)


def _known() -> frozenset[str]:
    server = {f"SOCKHUB_{f.name.upper()}" for f in dataclasses.fields(Config) if f.name != "limits"}
    limits = {f"SOCKHUB_LIMIT_{f.name.upper()}" for f in dataclasses.fields(Limits)}
    return frozenset(server | limits | CLIENT_VARIABLES)


def unknown_variables(env: Mapping[str, str]) -> list[str]:
    """Each unknown ``SOCKHUB_*`` name, with the known one it most resembles if any."""
    known = _known()
    out = []
    for name in sorted(n for n in env if n.startswith("SOCKHUB_") and n not in known):
        close = difflib.get_close_matches(name, known, n=1)
        out.append(f"{name} (did you mean {close[0]}?)" if close else name)
    return out


_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*", re.IGNORECASE)
_POWERS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4}


def parse_size(text: str) -> str:
    """``1G``, ``512K``, ``1.5MiB``, ``64MB`` as a number of bytes (binary: K = 1024, as
    in docs/limits.md); anything else is returned as it was, for the config to judge."""
    match = _SIZE.fullmatch(text)
    if match is None or not (match.group(2) or match.group(3)):
        return text
    number, power = float(match.group(1)), _POWERS[match.group(2).lower()]
    return str(int(number * 1024**power))
