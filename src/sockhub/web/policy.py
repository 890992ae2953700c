"""Who may load the page and open its WebSocket: the ``Host`` and ``Origin`` checks.

The ``Host`` check stops DNS rebinding: a hostile site whose name is made to resolve to
127.0.0.1 sends its own name as ``Host``, so only IP literals, ``localhost`` and the
operator's allow-list are served. The ``Origin`` check stops cross-site WebSocket
hijacking: a browser always sends the page's origin on a WebSocket upgrade, and only
our own origin (same scheme, host and port) or an allow-listed one may open a session.
A request without ``Origin`` does not come from a page (browsers always send it), so it
is let through: a script is not a cross-site threat.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

__all__ = ["OriginPolicy"]


def _split_host(value: str) -> tuple[str, int | None] | None:
    """``Host`` as (lower-case name, port), or None when it is not a host."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        name, rest = value[1:end], value[end + 1 :]
        if rest and not rest.startswith(":"):
            return None
        port_text = rest[1:] if rest else ""
    else:
        name, _, port_text = value.partition(":")
    if not name or (port_text and not port_text.isdigit()) or len(port_text) > 5:
        return None
    return name, int(port_text) if port_text else None


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class OriginPolicy:
    """The answers for one listener: its scheme and port, and the operator's allow-lists."""

    def __init__(
        self, *, tls: bool, port: int, hosts: Iterable[str] = (), origins: Iterable[str] = ()
    ) -> None:
        self.scheme = "https" if tls else "http"
        self.port = port
        self.hosts = frozenset(h.strip().lower() for h in hosts if h.strip())
        self.origins = frozenset(o.strip().lower().rstrip("/") for o in origins if o.strip())

    def host_ok(self, host: str | None) -> bool:
        if host is None:
            return False
        parts = _split_host(host)
        if parts is None:
            return False
        name, port = parts
        if port is None:
            port = 443 if self.scheme == "https" else 80
        if port != self.port:
            return False
        return name == "localhost" or _is_ip(name) or name in self.hosts

    def origin_ok(self, origin: str | None, host: str) -> bool:
        """``host`` has passed ``host_ok``; ``origin`` is the request's ``Origin`` header."""
        if origin is None:
            return True
        origin = origin.strip().lower()
        return origin == f"{self.scheme}://{host.strip().lower()}" or origin in self.origins
