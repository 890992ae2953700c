"""Parsing server addresses: ``HOST:PORT``, ``[V6]:PORT``, ``HOST``, ``unix:PATH`` or ``/PATH``."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_PORT", "Address", "parse_address"]

DEFAULT_PORT = 9696


@dataclass(frozen=True, slots=True)
class Address:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    unix: str | None = None

    def __str__(self) -> str:
        if self.unix is not None:
            return f"unix:{self.unix}"
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_address(text: str, default_port: int = DEFAULT_PORT) -> Address:
    """An address as users type it; ValueError with a usable message otherwise."""
    text = text.strip()
    if text.startswith("unix:"):
        return Address(unix=text[5:])
    if text.startswith("/") or text.startswith("./"):
        return Address(unix=text)
    host, port = text, str(default_port)
    if text.startswith("["):
        close = text.find("]")
        if close < 0:
            raise ValueError(f"bad address {text!r}: missing ']'")
        host, rest = text[1:close], text[close + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"bad address {text!r}")
            port = rest[1:]
    elif text.count(":") == 1:
        host, port = text.split(":")
    if not host:
        host = "127.0.0.1"
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"bad port in {text!r}: give HOST:PORT with PORT 1-65535")
    return Address(host=host, port=int(port))
