"""time (PROTOCOL.md section 5): the server's clock, formatted with a client's strftime format."""

from __future__ import annotations

import time
from collections.abc import Iterable

from ..protocol.errors import BadRequest
from ..protocol.fields import get_bool, get_str
from ..server.service import OpSpec, Request, Service

__all__ = ["DEFAULT_FORMAT", "ClockService"]

DEFAULT_FORMAT = "%Y-%m-%d %H:%M:%S"
MAX_FORMAT = 256


def _time(req: Request) -> None:
    fmt = get_str(req.header, "format", DEFAULT_FORMAT, max_len=MAX_FORMAT)
    utc = get_bool(req.header, "utc", False)
    now = time.time()
    parts = time.gmtime(now) if utc else time.localtime(now)
    try:
        text = time.strftime(fmt, parts)
    except ValueError as exc:
        raise BadRequest(f"field 'format' is not a usable strftime format: {exc}") from exc
    req.reply(
        {"op": "time", "unix": round(now, 6), "text": text, "tz": "UTC" if utc else parts.tm_zone}
    )


class ClockService(Service):
    name = "time"

    def ops(self) -> Iterable[OpSpec]:
        return (OpSpec("time", _time, "time", grant="time", udp=True),)
