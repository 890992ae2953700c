"""One request in one UDP datagram (echo and time), and what a foreign answer means.

UDP may drop either datagram, so the request is sent a few times. An answer that is not
a sockhub reply (an echo server returning our own datagram, a course program's text)
is reported as ``NotSockhubServer`` with what it looked like, not waited past.
"""

from __future__ import annotations

import socket
from typing import Any

from ..protocol.client_errors import ConnectError, NotSockhubServer
from ..protocol.client_events import Reply
from ..protocol.errors import ProtocolError, error_from_header
from ..protocol.frames import decode_datagram, encode_frame
from ..protocol.sniff import describe_foreign
from .address import parse_address

__all__ = ["MAX_DATAGRAM", "udp_request"]

MAX_DATAGRAM = 65_507
TRIES = 3


def udp_request(
    server: str, op: str, body: bytes = b"", *, timeout: float = 10.0, **fields: Any
) -> Reply:
    """Send ``op`` in one datagram and return the reply (an error reply raises).

    ``ValueError`` for what cannot go by UDP (a UNIX address, a body too big).
    """
    addr = parse_address(server)
    if addr.unix is not None:
        raise ValueError("--udp needs a HOST:PORT server, not a UNIX socket")
    frame = encode_frame({"op": op, "id": 1, **fields}, body)
    if len(frame) > MAX_DATAGRAM:
        raise ValueError(f"{len(frame)} bytes do not fit one UDP datagram (65,507 at most)")
    try:
        family, _, _, _, sockaddr = socket.getaddrinfo(
            addr.host, addr.port, type=socket.SOCK_DGRAM
        )[0]
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.connect(sockaddr)
            sock.settimeout(timeout / TRIES)
            for _ in range(TRIES):
                sock.send(frame)
                try:
                    return _answer(str(addr), sock.recv(65_535))
                except TimeoutError:
                    continue
    except ConnectionRefusedError as exc:
        raise ConnectError(f"{addr}: nothing listens on that UDP port") from exc
    except OSError as exc:
        raise ConnectError(f"{addr}: {exc.strerror or exc}") from exc
    raise ConnectError(f"{addr}: no UDP answer after {TRIES} tries")


def _answer(peer: str, data: bytes) -> Reply:
    try:
        reply = decode_datagram(data, max_body=MAX_DATAGRAM)
    except ProtocolError:
        what = describe_foreign(data, complete=True) or "a datagram that is not a frame"
        raise NotSockhubServer(f"{peer} is not a sockhub server: it sent {what}") from None
    header = reply.header
    if header.get("re") != 1:
        what = (
            "our own datagram back (an echo server)"
            if header.get("id") == 1
            else "a frame that answers nothing"
        )
        raise NotSockhubServer(f"{peer} is not a sockhub server: it sent {what}")
    if header.get("op") == "error":
        raise error_from_header(header)
    return Reply(header, reply.body)
