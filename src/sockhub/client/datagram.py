"""One request in one UDP datagram (echo and time), and what a foreign answer means.

UDP may drop either datagram, so the request is sent a few times. The server never
answers with more bytes than it got (PROTOCOL.md §1), so a request is padded to room for a
usual reply, and asked again at the size a ``frame.too_large`` says it needs. An answer that is not
a sockhub reply (an echo server returning our own datagram, a course program's text)
is reported as ``NotSockhubServer`` with what it looked like, not waited past.
"""

from __future__ import annotations

import socket
from typing import Any

from ..protocol.client_errors import ConnectError, NotSockhubServer
from ..protocol.client_events import Reply
from ..protocol.errors import FrameTooLarge, ProtocolError, error_from_header
from ..protocol.frames import MAX_DATAGRAM, decode_datagram, encode_frame, pad_frame
from ..protocol.sniff import describe_foreign
from .address import parse_address

__all__ = ["MAX_DATAGRAM", "udp_request"]

TRIES = 3
PAD = 512
"""Bytes a request is padded to: room for any usual echo or time reply."""
SLACK = 64
"""Added to the size a reply needed: the next reply (a later time) may be a little longer."""


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
        raise ValueError(
            f"{len(frame)} bytes do not fit one UDP datagram ({MAX_DATAGRAM:,} at most)"
        )
    request = pad_frame(frame, PAD)
    try:
        family, _, _, _, sockaddr = socket.getaddrinfo(
            addr.host, addr.port, type=socket.SOCK_DGRAM
        )[0]
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.connect(sockaddr)
            sock.settimeout(timeout / TRIES)
            for _ in range(TRIES):
                sock.send(request)
                try:
                    answer = _answer(str(addr), sock.recv(65_535))
                except TimeoutError:
                    continue
                if isinstance(answer, Reply):
                    return answer
                if len(request) >= MAX_DATAGRAM:
                    raise FrameTooLarge(f"a reply of {answer} bytes does not fit one datagram")
                request = pad_frame(frame, min(answer + SLACK, MAX_DATAGRAM))
    except ConnectionRefusedError as exc:
        raise ConnectError(f"{addr}: nothing listens on that UDP port") from exc
    except OSError as exc:
        raise ConnectError(f"{addr}: {exc.strerror or exc}") from exc
    raise ConnectError(f"{addr}: no UDP answer after {TRIES} tries")


def _answer(peer: str, data: bytes) -> Reply | int:
    """The reply, or the size a reply needs when the request was too small to carry it."""
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
        error = error_from_header(header)
        need = header.get("need")
        if isinstance(error, FrameTooLarge) and isinstance(need, int) and need > 0:
            return need
        raise error
    return Reply(header, reply.body)
