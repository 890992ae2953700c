"""echo (PROTOCOL.md section 5): the body comes back, optionally upper-cased."""

from __future__ import annotations

from collections.abc import Iterable

from ..protocol.errors import BadRequest
from ..protocol.fields import get_bool
from ..server.service import OpSpec, Request, Service

__all__ = ["EchoService"]


def _echo(req: Request) -> None:
    body = req.body
    if req.header.get("upper", False) is not False and get_bool(req.header, "upper"):
        try:
            body = body.decode("utf-8").upper().encode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadRequest("upper needs a UTF-8 body") from exc
    req.reply({"op": "echo"}, body)


class EchoService(Service):
    name = "echo"

    def ops(self) -> Iterable[OpSpec]:
        return (OpSpec("echo", _echo, "echo", grant="echo", udp=True),)
