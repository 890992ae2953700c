"""The course's byte layouts, built and parsed in one place for both the lab and the checker.

Lengths are ``struct.pack('i')`` as in the notes: native order and size, which is
little-endian 4 bytes on every machine the course runs on.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import struct
import time
from typing import Any

__all__ = [
    "COURSE_HMAC_KEY",
    "DECIMAL_TEXT",
    "course_digest",
    "decimal_length",
    "download_header",
    "exec_header",
    "i_header",
    "json_header",
    "status_output",
    "strftime_reply",
    "udp_budget",
]

COURSE_HMAC_KEY = b"linhaifeng bang bang bang"
DECIMAL_TEXT = "8月1日\uff0c安理会轮值主".encode()  # E's fixed text, as written there
_UDP_FACTOR = 3
_DEFAULT_TIME_FORMAT = "%Y-%m-%d %X"


def i_header(n: int) -> bytes:
    """``struct.pack('i', n)``: the notes' 4-byte length."""
    return struct.pack("i", n)


def json_header(header: dict[str, Any]) -> bytes:
    """``struct.pack('i', len(h)) + h`` for the JSON header ``h``."""
    raw = json.dumps(header).encode("utf-8")
    return i_header(len(raw)) + raw


def exec_header(keys: str, size: int) -> bytes:
    """The command-output header of A 3.6.3 (``size``) or B (``data_size``)."""
    if keys == "size":
        return json_header({"filename": None, "hash": None, "size": size})
    return json_header({"data_size": size})


def download_header(name: str, data: bytes) -> bytes:
    """C 9.2's download header: name, type 'png', md5 and length of ``data``."""
    return json_header(
        {
            "file_name": name,
            "file_type": "png",
            "file_hex": hashlib.md5(data).hexdigest(),
            "data_all": len(data),
        }
    )


def decimal_length(n: int) -> bytes:
    return str(n).encode()


def status_output(status: int, stdout: bytes, stderr: bytes) -> bytes:
    """``json.dumps(subprocess.getstatusoutput(cmd))`` for an already-run command."""
    output = (stdout + stderr).decode("utf-8", "replace")
    if output.endswith("\n"):
        output = output[:-1]
    return json.dumps([status, output]).encode()


def course_digest(challenge: bytes, key: bytes = COURSE_HMAC_KEY) -> bytes:
    """What B 7's client answers: ``hmac.new(key, msg)``, MD5 being that call's old default."""
    return hmac.new(key, challenge, "md5").digest()


def udp_budget(request: bytes, most: int) -> int:
    """The most a lab UDP reply may carry: 3x the request and never over ``most`` (1 KiB).

    A spoofed source address can turn a UDP server into an amplifier; QUIC's bound for an
    unvalidated peer (3x) keeps the lab from being a useful one.
    """
    return min(_UDP_FACTOR * len(request), most)


def strftime_reply(request: bytes) -> bytes:
    """The time server's answer: ``strftime`` of the request, or of the notes' default."""
    fmt = request.decode("utf-8", "replace") if request else _DEFAULT_TIME_FORMAT
    try:
        return time.strftime(fmt).encode("utf-8", "replace")
    except ValueError as exc:
        return f"bad time format: {exc}".encode()
