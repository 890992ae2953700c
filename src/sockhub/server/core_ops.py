"""The ops every connection has whatever services run: auth, ping, pong, bye (section 2-3)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, cast

from ..protocol import auth
from ..protocol.errors import AuthFailed, BadRequest, LimitRate
from ..protocol.fields import get_str
from ..protocol.text import escape
from .service import OpSpec, Request

if TYPE_CHECKING:
    from .session import ServerSession

__all__ = ["CORE_OPS"]

log = logging.getLogger("sockhub.server")
_DUMMY_KEY = bytes(auth.KEY_BYTES)


def _session(req: Request) -> ServerSession:
    """Core ops run on the server's own sessions, which carry the auth state."""
    return cast("ServerSession", req.session)


def _auth(req: Request) -> None:
    conn = _session(req)
    server = conn.server
    header = req.header
    if conn.user is not None:
        raise BadRequest("this connection is already authenticated")
    method = get_str(header, "method")
    if method != auth.METHOD:
        raise BadRequest(f"field 'method' must be {auth.METHOD!r}")
    user = get_str(header, "user", max_len=64)
    cnonce = auth.b64decode_nonce(header.get("cnonce"))
    if cnonce is None:
        raise BadRequest("field 'cnonce' must be base64 of 32 bytes")
    mac = get_str(header, "mac")
    now = server.loop.time()
    if not server.auth_failures.available(conn.peer, now):
        raise LimitRate("too many failed authentications from your address; wait", fatal=True)
    record = server.users.get(user)
    # unknown users cost the same hmac as known ones and get the same answer
    expected = auth.client_mac(record.key if record else _DUMMY_KEY, conn.nonce, cnonce, user)
    if not auth.verify(expected, mac) or record is None:
        server.auth_failures.take(conn.peer, now)
        log.warning("auth failed %s %s user=%s", conn.kind, conn.peer, escape(user, 64))
        raise AuthFailed("authentication failed")
    conn.authenticated(user, record.key, server.anonymous_grants | frozenset(record.grants))
    log.info("auth %s %s user=%s", conn.kind, conn.peer, user)
    req.reply(
        {
            "op": "ok",
            "user": user,
            "grants": sorted(conn.grants),
            "mac": auth.server_mac(record.key, conn.nonce, cnonce, user).hex(),
        }
    )


def _ping(req: Request) -> None:
    req.reply({"op": "pong"})


def _ignore(req: Request) -> None:
    """Frames a client may send that need no answer (a pong to our ping, an error report)."""


def _bye(req: Request) -> None:
    _session(req).finish()


CORE_OPS = (
    OpSpec("auth", _auth, "core"),
    OpSpec("ping", _ping, "core"),
    OpSpec("pong", _ignore, "core"),
    OpSpec("error", _ignore, "core"),
    OpSpec("bye", _bye, "core"),
)
