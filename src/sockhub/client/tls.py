"""TLS on the client: trust on first use, pinned in a known-hosts file, like ssh.

A self-signed server has no CA to vouch for it, so the client remembers the certificate's
SHA-256 fingerprint the first time and refuses a different one afterwards.
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path

from ..protocol.auth import cert_fingerprint
from .errors import TlsPinError

__all__ = ["KnownHosts", "check_peer", "client_context", "default_known_hosts"]


def client_context() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the fingerprint pin below is the check
    return ctx


def default_known_hosts() -> Path:
    env = os.environ.get("SOCKHUB_KNOWN_HOSTS")
    if env:
        return Path(env)
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "sockhub" / "known_hosts"


def _norm(fp: str) -> str:
    return fp.replace(":", "").strip().upper()


class KnownHosts:
    """Lines of ``HOST:PORT FINGERPRINT``."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_known_hosts()

    def lookup(self, name: str) -> tuple[str, int] | None:
        try:
            lines = self.path.read_text().splitlines()
        except FileNotFoundError:
            return None
        for number, line in enumerate(lines, 1):
            parts = line.split()
            if len(parts) == 2 and parts[0] == name:
                return parts[1], number
        return None

    def add(self, name: str, fingerprint: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as fh:
            fh.write(f"{name} {fingerprint}\n")


def check_peer(
    sslobj: ssl.SSLObject | ssl.SSLSocket,
    name: str,
    *,
    fingerprint: str | None,
    known_hosts: KnownHosts | None,
) -> tuple[str, bool]:
    """The server's fingerprint, checked; True when it was pinned just now (first use)."""
    der = sslobj.getpeercert(binary_form=True)
    if not der:
        raise TlsPinError(f"{name} sent no TLS certificate")
    seen = cert_fingerprint(der)
    if fingerprint is not None:
        if _norm(fingerprint) != _norm(seen):
            raise TlsPinError(
                f"TLS fingerprint of {name} is {seen}, not the {fingerprint} you asked for"
            )
        return seen, False
    hosts = known_hosts or KnownHosts()
    known = hosts.lookup(name)
    if known is None:
        hosts.add(name, seen)
        return seen, True
    pinned, line = known
    if _norm(pinned) != _norm(seen):
        raise TlsPinError(
            f"the TLS certificate of {name} has CHANGED.\n"
            f"  pinned:  {pinned}\n  offered: {seen}\n"
            "Someone may be intercepting the connection, or the server got a new certificate.\n"
            f"If you trust the change, delete line {line} of {hosts.path} and connect again."
        )
    return seen, False
