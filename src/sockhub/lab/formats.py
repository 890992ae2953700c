"""Every wire format of the course notes, once: its name, transport, port offset and section.

One table drives ``lab serve`` (which listener on which port), ``lab check`` (which
dialect to speak) and docs/lab.md, so the three cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..protocol.sniff import LAB_BASE_PORT

__all__ = ["DEFAULT_BASE_PORT", "FORMATS", "Format", "by_name"]

DEFAULT_BASE_PORT = LAB_BASE_PORT

Needs = Literal["", "exec", "files"]


@dataclass(frozen=True, slots=True)
class Format:
    name: str
    transport: Literal["tcp", "udp"]
    offset: int
    section: str
    summary: str
    needs: Needs = ""


FORMATS: tuple[Format, ...] = (
    Format("echo", "tcp", 0, "A 3.2-3.3", "each recv(1024) comes back unchanged"),
    Format("greeting", "tcp", 1, "B 4 tcp", "one message in, b'hi' out, then close"),
    Format(
        "upper",
        "tcp",
        2,
        "A 3.5.1-3.5.2; C 3-4; D multi-user",
        "communication loop: each recv(1024) comes back upper-cased",
    ),
    Format("upper-line", "tcp", 3, "A 3.4.1", "makefile: each line comes back upper-cased"),
    Format(
        "upper-once",
        "tcp",
        4,
        "B 8 socketserver",
        "one recv(1024), stripped, upper-cased, then close",
    ),
    Format(
        "hmac-upper",
        "tcp",
        5,
        "B 7",
        "32-byte challenge, HMAC-MD5 answer with the notes' key, then upper echo",
    ),
    Format(
        "chat",
        "tcp",
        6,
        "A 3.6.2 class",
        "chat room: '<time> <ip>:<port> <text>' to everyone, bridged to a sockhub room",
    ),
    Format(
        "chat-plain",
        "tcp",
        7,
        "A 3.6.1 functions",
        "chat room: '<ip>:<port> <text>' to everyone, bridged to a sockhub room",
    ),
    Format(
        "console",
        "tcp",
        8,
        "C 8; E homework (GBK)",
        "1:1 chat: each message is answered by the console side (UTF-8 or GBK as sent)",
    ),
    Format(
        "sticky",
        "tcp",
        9,
        "B 5; E sticky demo",
        "how did my bytes arrive: one report line per recv()",
    ),
    Format(
        "exec-raw",
        "tcp",
        10,
        "A 3.5.3",
        "command in, stderr if any else stdout out, no length",
        "exec",
    ),
    Format("exec-raw2", "tcp", 11, "B 5 tcp", "command in, stderr then stdout out", "exec"),
    Format(
        "exec-len",
        "tcp",
        12,
        "A 3.6.2; B struct; C 9.1",
        "command in, struct.pack('i', n) + output out",
        "exec",
    ),
    Format(
        "exec-json",
        "tcp",
        13,
        "A 3.6.3",
        "command in, 'i' + JSON {filename, hash, size} + output out",
        "exec",
    ),
    Format(
        "exec-json-ds",
        "tcp",
        14,
        "B dict header",
        "command in, 'i' + JSON {data_size} + output out",
        "exec",
    ),
    Format(
        "exec-decimal",
        "tcp",
        15,
        "B solution 1",
        "command in, decimal length, 'recv_ready' in, output out",
        "exec",
    ),
    Format(
        "decimal-text",
        "tcp",
        16,
        "E solution",
        "message in, decimal length, 'recv_ready' in, a fixed text out",
    ),
    Format(
        "exec-status",
        "tcp",
        17,
        "D command line",
        "command in, decimal length + JSON [status, output] out",
        "exec",
    ),
    Format(
        "ftp-put",
        "tcp",
        18,
        "B FTP homework",
        "'i' + JSON {cmd, filename, filesize} + bytes: stored in the sockhub files tree",
        "files",
    ),
    Format(
        "ftp-get",
        "tcp",
        19,
        "C 9.2",
        "name in, 'i' + JSON {file_name, file_type, file_hex, data_all} + bytes out",
        "files",
    ),
    Format("udp-upper", "udp", 20, "C 6-7", "each datagram comes back upper-cased"),
    Format("udp-hi", "udp", 21, "B 4 udp", "each datagram is answered b'hi'"),
    Format("udp-time", "udp", 22, "B time server", "strftime(datagram or '%Y-%m-%d %X')"),
    Format("udp-qq", "udp", 23, "B qq chat", "each datagram is answered by the console side"),
    Format(
        "udp-exec",
        "udp",
        24,
        "B 5 udp",
        "two datagrams (stderr, stdout) per command; the lab refuses to execute over UDP",
    ),
    Format(
        "greeting-addr",
        "tcp",
        25,
        "C 2",
        "one message in, '你好!我是服务端!(ip, port)' out, then close",
    ),
)

_BY_NAME = {f.name: f for f in FORMATS}


def by_name(name: str) -> Format:
    """The format called ``name``; ValueError listing the known ones otherwise."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown course format {name!r}; known: {', '.join(_BY_NAME)}") from None
