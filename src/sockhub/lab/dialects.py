"""What a course client sends and how it reads the answer, per format, for ``lab check``.

A reply reader returns the payload (the output, the upper-cased text) so that servers
differing only in JSON key order or spacing are judged alike.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from . import wire
from .conn import MAX_KEEP, Closed, Conn

__all__ = ["DIALECTS", "Dialect", "ProtocolMismatch"]

QUIET = 0.3
MAX_PLAUSIBLE = 1 << 26
"""The largest length a course server may announce before the checker calls it garbage."""
BIG_TEXT = "a" * 3000
BIG_CMD = "seq 1 1000"
BIG_OUTPUT = "".join(f"{n}\n" for n in range(1, 1001)).encode()


class ProtocolMismatch(Exception):
    """The server's bytes do not follow the format (a bad length, a header that is not JSON)."""


Reader = Callable[[Conn, bytes | None], Awaitable[bytes]]


@dataclass(frozen=True)
class Dialect:
    request: Callable[[str], bytes]
    read: Reader
    expect: Callable[[str], bytes | None]
    sample: str = "hello"
    second: str = "world"
    big: str | None = BIG_TEXT
    is_exec: bool = False
    one_shot: bool = False


def _utf8(msg: str) -> bytes:
    return msg.encode()


async def read_raw(conn: Conn, expected: bytes | None) -> bytes:
    return await conn.until_quiet(len(expected) if expected else None, QUIET)


def _plausible(n: object, what: str) -> int:
    """``n`` as a length the checker will read, or ProtocolMismatch naming ``what``."""
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= MAX_PLAUSIBLE:
        raise ProtocolMismatch(f"a length of {n!r} bytes in {what} is not plausible")
    return n


def _decimal(digits: bytes) -> int:
    if len(digits) > len(str(MAX_PLAUSIBLE)):
        raise ProtocolMismatch(f"a decimal length of {len(digits)} digits is not plausible")
    return _plausible(int(digits), "a decimal length")


async def _i_length(conn: Conn) -> int:
    return _plausible(struct.unpack("i", await conn.exactly(4))[0], "struct.pack('i')")


async def read_i(conn: Conn, expected: bytes | None) -> bytes:
    return await conn.exactly(await _i_length(conn))


async def _json_header(conn: Conn) -> dict[str, object]:
    raw = await conn.exactly(await _i_length(conn))
    try:
        header = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise ProtocolMismatch(f"the header {raw[:60]!r} is not JSON") from exc
    if not isinstance(header, dict):
        raise ProtocolMismatch(f"the header {raw[:60]!r} is not a JSON object")
    return header


def read_json(key: str) -> Reader:
    async def read(conn: Conn, expected: bytes | None) -> bytes:
        header = await _json_header(conn)
        return await conn.exactly(_plausible(header.get(key), f"the header's {key!r}"))

    return read


async def read_decimal(conn: Conn, expected: bytes | None) -> bytes:
    raw = await conn.read_some()
    if not raw.isdigit():
        raise ProtocolMismatch(f"expected a decimal length alone, got {raw[:60]!r}")
    n = _decimal(raw)
    await conn.send(b"recv_ready")
    return await conn.exactly(n)


async def read_status(conn: Conn, expected: bytes | None) -> bytes:
    """D's reply: a decimal length then JSON [status, output]; the output is the payload."""
    raw = bytes(await conn.read_some())
    digits = len(raw) - len(raw.lstrip(b"0123456789"))
    if not digits:
        raise ProtocolMismatch(f"expected a decimal length, got {raw[:60]!r}")
    n, body = _decimal(raw[:digits]), raw[digits:]
    if len(body) < n:
        body += await conn.exactly(n - len(body))
    try:
        status_output = json.loads(body[:n])
    except (ValueError, RecursionError) as exc:
        raise ProtocolMismatch(f"{body[:60]!r} is not JSON [status, output]") from exc
    if not isinstance(status_output, list) or len(status_output) != 2:
        raise ProtocolMismatch(f"{status_output!r} is not [status, output]")
    return str(status_output[1]).encode()


async def read_download(conn: Conn, expected: bytes | None) -> bytes:
    header = await _json_header(conn)
    size, md5 = header.get("data_all"), header.get("file_hex")
    if not isinstance(md5, str):
        raise ProtocolMismatch(f"the header {header} lacks file_hex")
    data = await conn.exactly(_plausible(size, "the header's 'data_all'"))
    if hashlib.md5(data).hexdigest() != md5:
        raise ProtocolMismatch("the file's md5 does not match file_hex")
    return data


async def read_until_close(conn: Conn, expected: bytes | None) -> bytes:
    """What a one-shot server says before it closes (at most ``MAX_KEEP`` bytes)."""
    out = b""
    try:
        while len(out) < MAX_KEEP:
            out += await conn.read_some()
    except Closed:
        if not out:
            raise
    return out


def _output(cmd: str) -> bytes | None:
    if cmd == BIG_CMD:
        return BIG_OUTPUT
    if cmd.startswith("echo "):
        return cmd[5:].encode() + b"\n"
    return None


def _exec(read: Reader, expect: Callable[[str], bytes | None] = _output) -> Dialect:
    """A command format: shell commands in, their output (as ``expect`` sees it) out."""
    return Dialect(
        _utf8, read, expect, sample="echo hello", second="echo world", big=BIG_CMD, is_exec=True
    )


def _status_expect(cmd: str) -> bytes | None:
    out = _output(cmd)
    return None if out is None else out[:-1]


def _upper(msg: str) -> bytes | None:
    return msg.upper().encode()


DIALECTS: dict[str, Dialect] = {
    "echo": Dialect(_utf8, read_raw, _utf8),
    "greeting": Dialect(_utf8, read_until_close, lambda m: None, one_shot=True),
    "greeting-addr": Dialect(_utf8, read_until_close, lambda m: None, one_shot=True),
    "upper": Dialect(_utf8, read_raw, _upper),
    "upper-line": Dialect(
        lambda m: (m + "\n").encode(), read_raw, lambda m: (m.upper() + "\n").encode()
    ),
    "upper-once": Dialect(
        lambda m: (m + "\n").encode(),
        read_until_close,
        lambda m: m.strip().upper().encode(),
        one_shot=True,
    ),
    "hmac-upper": Dialect(_utf8, read_raw, _upper),
    "console": Dialect(_utf8, read_raw, lambda m: None),
    "sticky": Dialect(_utf8, read_raw, lambda m: None),
    "exec-raw": _exec(read_raw),
    "exec-raw2": _exec(read_raw),
    "exec-len": _exec(read_i),
    "exec-json": _exec(read_json("size")),
    "exec-json-ds": _exec(read_json("data_size")),
    "exec-decimal": _exec(read_decimal),
    "exec-status": _exec(read_status, _status_expect),
    "decimal-text": Dialect(_utf8, read_decimal, lambda m: wire.DECIMAL_TEXT, big=None),
    "ftp-get": Dialect(
        _utf8, read_download, lambda m: None, sample="girl", second="girl", big=None
    ),
}
