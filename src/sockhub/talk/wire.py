"""talk datagrams (PROTOCOL.md section 9): encode, decode, sign and verify, without I/O.

A datagram is one frame; anything that is not exactly one well-formed ``talk.msg`` or
``talk.ack`` is garbage, and garbage is dropped by the caller without a word: on UDP
anyone can send anything, and answering garbage would only help a scanner.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from ..protocol.auth import verify as verify_mac
from ..protocol.errors import ProtocolError
from ..protocol.fields import get_id, get_number, get_str
from ..protocol.frames import MAX_ID, decode_datagram, encode_frame
from ..protocol.text import check_text

__all__ = [
    "MAX_DATAGRAM",
    "MAX_NAME",
    "TEXT_MAX",
    "Garbage",
    "TalkAck",
    "TalkError",
    "TalkMsg",
    "decode",
    "encode_ack",
    "encode_msg",
    "signature",
    "signed_by",
]

MAX_DATAGRAM = 65_507
"""The largest UDP payload over IPv4: 65,535 - 8 (UDP header) - 20 (IP header)."""
TEXT_MAX = 16 * 1024
"""Text rules as in chat (section 6): at most 16 KiB of UTF-8."""
MAX_NAME = 64
"""The longest ``from`` we send or accept; a name is shown, so it stays short."""
_LABEL = b"sockhub-v2 talk\x00"
"""v2: the signature covers ``ts`` too (v1 did not, so a captured message could be
re-sent with any time)."""


class TalkError(ValueError):
    """A message we refuse to send; the text says why, for the person who typed it."""


class Garbage(ValueError):
    """A datagram that is not one valid talk frame (dropped silently by the caller)."""


@dataclass(frozen=True, slots=True)
class TalkMsg:
    id: int
    sender: str
    """The ``from`` field: what the peer calls itself (unverified unless signed)."""
    ts: float
    text: str
    sig: str | None = None


@dataclass(frozen=True, slots=True)
class TalkAck:
    id: int


def ts_text(ts: float) -> str:
    """``ts`` as it is signed: milliseconds, in fixed-point decimal (``1763800000.500``)."""
    return f"{ts:.3f}"


def signature(key: bytes, sender: str, mid: int, ts: float, text: str) -> bytes:
    """HMAC-SHA256 over the label, ``from``, the decimal id, ``ts`` and the text (section 9)."""
    message = b"\x00".join(
        (
            _LABEL + sender.encode(),
            str(mid).encode("ascii"),
            ts_text(ts).encode("ascii"),
            text.encode(),
        )
    )
    return hmac.digest(key, message, "sha256")


def signed_by(key: bytes, msg: TalkMsg) -> bool:
    """True when ``msg`` carries the right signature for ``key`` (constant-time check)."""
    return verify_mac(signature(key, msg.sender, msg.id, msg.ts, msg.text), msg.sig)


def check_name(name: str) -> str:
    if not 1 <= len(name) <= MAX_NAME or not name.isprintable():
        raise TalkError(f"a talk name is 1-{MAX_NAME} printable characters, not {name!r}")
    return name


def encode_msg(
    mid: int,
    sender: str,
    text: str,
    ts: float,
    key: bytes | None = None,
    *,
    max_text: int = TEXT_MAX,
) -> bytes:
    """One ``talk.msg`` datagram; TalkError when the text breaks the rules or cannot fit."""
    check_name(sender)
    if not 1 <= mid <= MAX_ID:
        raise TalkError(f"message id {mid} is out of range")
    body = text.encode("utf-8", "surrogatepass")
    try:
        check_text(body, max_text)
    except ProtocolError as exc:
        raise TalkError(exc.message) from exc
    stamp = round(ts, 3)
    header: dict[str, object] = {"op": "talk.msg", "id": mid, "from": sender, "ts": stamp}
    if key is not None:
        header["sig"] = signature(key, sender, mid, stamp, text).hex()
    frame = encode_frame(header, body)
    if len(frame) > MAX_DATAGRAM:
        raise TalkError(
            f"the message needs a {len(frame):,}-byte datagram; "
            f"UDP carries at most {MAX_DATAGRAM:,} bytes: split it or send a file"
        )
    return frame


def encode_ack(mid: int) -> bytes:
    return encode_frame({"op": "talk.ack", "re": mid})


def decode(data: bytes, *, max_text: int = TEXT_MAX) -> TalkMsg | TalkAck:
    """The message or ack one datagram holds; Garbage for anything else."""
    try:
        frame = decode_datagram(data, max_body=MAX_DATAGRAM)
        header = frame.header
        op = header.get("op")
        if op == "talk.ack":
            mid = get_id(header, "re")
            if mid is None:
                raise Garbage("talk.ack without re")
            return TalkAck(mid)
        if op != "talk.msg":
            raise Garbage(f"not a talk op: {op!r}")
        mid = get_id(header)
        if mid is None:
            raise Garbage("talk.msg without id")
        sender = get_str(header, "from", max_len=MAX_NAME)
        ts = float(get_number(header, "ts", lo=0.0, hi=2.0**40))
        sig = get_str(header, "sig", None, max_len=128)
        text = check_text(frame.body, max_text)
    except ProtocolError as exc:
        raise Garbage(exc.message) from exc
    if not sender or not sender.isprintable():
        raise Garbage("talk.msg with an unusable from")
    return TalkMsg(mid, sender, ts, text, sig)
