"""The TCP course formats: one coroutine per format, each answering as the notes' server
does, with the notes' pitfalls (empty messages, resets, sticky packets) handled and logged."""

from __future__ import annotations

import asyncio
import hmac
import json
import os
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import wire
from .backend import Backend, BackendError, Ran, spool_path
from .chat import Room
from .console import Console
from .limits import LabLimits
from .peer import Peer

__all__ = ["HANDLERS", "Lab", "json_in"]

# the notes send a decimal length and then the body; a pause between them keeps a
# course client's recv(1024) from reading both as one "length" (D's commented sleep)
LENGTH_PAUSE = 0.2
NO_OUTPUT = b"(no output)\n"


@dataclass
class Lab:
    backend: Backend | None = None
    rooms: dict[str, Room] = field(default_factory=dict)
    console: Console | None = None
    limits: LabLimits = field(default_factory=LabLimits)
    connections: set[asyncio.Task[None]] = field(default_factory=set)
    """The course connections being served, ended when the lab stops."""


Handler = Callable[[Lab, Peer], Awaitable[None]]


def _text(data: bytes) -> tuple[str, str]:
    """The text and the encoding it came in (UTF-8, else GBK as on the notes' Windows)."""
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return data.decode("gbk", "replace"), "gbk"


def _upper(data: bytes) -> bytes:
    text, encoding = _text(data)
    return text.upper().encode(encoding, "replace")


async def echo(lab: Lab, peer: Peer) -> None:
    while data := await peer.recv():
        if not await peer.send(data):
            return


async def greeting(lab: Lab, peer: Peer) -> None:
    data = await peer.recv()
    if data:
        peer.info("said %r; answering b'hi'", data)
        await peer.send(b"hi")


async def greeting_addr(lab: Lab, peer: Peer) -> None:
    data = await peer.recv()
    if data:
        await peer.send(f"你好!我是服务端!{peer.addr}".encode())


async def upper(lab: Lab, peer: Peer) -> None:
    while data := await peer.recv():
        if not data.strip():
            peer.anomaly("sent only white space %r; answering it unchanged", data)
        if not await peer.send(_upper(data)):
            return


async def upper_line(lab: Lab, peer: Peer) -> None:
    while line := await peer.line():
        if not await peer.send(_upper(line)):
            return


async def upper_once(lab: Lab, peer: Peer) -> None:
    data = (await peer.recv()).strip()
    if not data:
        peer.anomaly("sent nothing but white space; the socketserver handler answers nothing")
    await peer.send(data.upper())


async def hmac_upper(lab: Lab, peer: Peer) -> None:
    challenge = os.urandom(32)
    if not await peer.send(challenge):
        return
    answer = await peer.exactly(16, lab.limits.challenge_timeout)
    if answer is None:
        return
    if not hmac.compare_digest(answer, wire.course_digest(challenge)):
        peer.anomaly("failed the course HMAC challenge (wrong key or no answer); closing")
        return
    peer.info("passed the course HMAC challenge (it grants the lab's upper echo only)")
    await upper(lab, peer)


def _chat(room_name: str) -> Handler:
    async def chat(lab: Lab, peer: Peer) -> None:
        room = lab.rooms[room_name]
        if room.full():
            peer.anomaly("refused: the chat room is full")
            return
        room.add(peer.who, peer.writer)
        peer.info("is coming")
        try:
            while data := await peer.recv():
                if data == b"quit":
                    peer.info("said quit")
                    return
                text, _ = _text(data)
                room.said(peer.who, text)
        finally:
            room.remove(peer.who)
            peer.info("is down")

    return chat


async def console(lab: Lab, peer: Peer) -> None:
    while data := await peer.recv():
        text, encoding = _text(data)
        if text == "q":
            peer.info("said q (the notes' goodbye)")
            return
        answer = f"lab: {text}"
        if lab.console is not None:
            typed = await lab.console.answer(peer.who, text, lab.limits.console_wait)
            if typed is None:
                peer.anomaly("got no reply from the console; closing")
                return
            answer = typed
        if not await peer.send(answer.encode(encoding, "replace")):
            return


async def sticky(lab: Lab, peer: Peer) -> None:
    n = 0
    while data := await peer.recv():
        n += 1
        line = f"recv #{n}: {len(data)} bytes {data!r}"
        peer.info(line)
        # the report is a courtesy: the notes' sticky clients send and exit without reading,
        # and the log must still show every recv until the connection ends
        await peer.send(line.encode() + b"\n")


async def _run(lab: Lab, peer: Peer, data: bytes) -> Ran | None:
    cmd, _ = _text(data.strip())
    assert lab.backend is not None
    peer.info("runs %r through the sockhub exec service", cmd)
    try:
        ran = await lab.backend.run(cmd)
    except BackendError as exc:
        peer.anomaly("%s", exc)
        return None
    if ran.timed_out:
        peer.anomaly(
            "ran %r over %g s (exec_timeout); it was stopped, its output so far is sent",
            cmd,
            lab.limits.exec_timeout,
        )
    return ran


def _exec(reply: Callable[[Peer, bytes, bytes, int], Awaitable[bool]]) -> Handler:
    """A command loop: each recv(1024) is one command; its output goes out as ``reply`` says."""

    async def handler(lab: Lab, peer: Peer) -> None:
        while data := await peer.recv():
            if not data.strip():
                peer.anomaly("sent an empty command; nothing to run, waiting for the next")
                continue
            ran = await _run(lab, peer, data)
            if ran is None or not await reply(peer, ran.stdout, ran.stderr, ran.status):
                return

    return handler


async def _raw(peer: Peer, out: bytes, err: bytes, status: int) -> bool:
    return await peer.send((err or out) or NO_OUTPUT)


async def _raw2(peer: Peer, out: bytes, err: bytes, status: int) -> bool:
    if not err and not out:
        return await peer.send(NO_OUTPUT)
    return await peer.send(err) and await peer.send(out)


async def _len(peer: Peer, out: bytes, err: bytes, status: int) -> bool:
    data = err or out
    return await peer.send(wire.i_header(len(data)) + data)


async def _json_size(peer: Peer, out: bytes, err: bytes, status: int) -> bool:
    data = err or out
    return await peer.send(wire.exec_header("size", len(data)) + data)


async def _json_data_size(peer: Peer, out: bytes, err: bytes, status: int) -> bool:
    data = err or out
    return await peer.send(wire.exec_header("data_size", len(data)) + data)


async def _status(peer: Peer, out: bytes, err: bytes, status: int) -> bool:
    body = wire.status_output(status, out, err)
    if not await peer.send(wire.decimal_length(len(body))):
        return False
    await asyncio.sleep(LENGTH_PAUSE)
    return await peer.send(body)


async def _decimal_handshake(peer: Peer, body: bytes) -> bool:
    """B's solution 1: length, wait for 'recv_ready', then the body."""
    if not await peer.send(wire.decimal_length(len(body))):
        return False
    ready = await peer.recv()
    if ready != b"recv_ready":
        if ready:
            peer.anomaly("answered %r instead of 'recv_ready'; the body is not sent", ready)
        return bool(ready)
    return await peer.send(body)


async def _decimal(peer: Peer, out: bytes, err: bytes, status: int) -> bool:
    return await _decimal_handshake(peer, err or out)


async def decimal_text(lab: Lab, peer: Peer) -> None:
    while data := await peer.recv():
        peer.info("said %r; answering the notes' fixed text", data)
        if not await _decimal_handshake(peer, wire.DECIMAL_TEXT):
            return


async def json_in(peer: Peer, most: int) -> dict[str, object] | None:
    """An 'i' length and the JSON header it announces; None (logged) when it is not one."""
    head = await peer.exactly(4)
    if head is None:
        return None
    (n,) = struct.unpack("i", head)
    if not 0 < n <= most:
        peer.anomaly("announced a %d-byte header (the lab takes 1..%d); closing", n, most)
        return None
    raw = await peer.exactly(n)
    if raw is None:
        return None
    try:
        header = json.loads(raw)
    except (ValueError, RecursionError):
        peer.anomaly("sent a header that is not JSON: %r", raw[:80])
        return None
    if not isinstance(header, dict):
        peer.anomaly("sent a JSON header that is not an object: %r", raw[:80])
        return None
    return header


async def ftp_put(lab: Lab, peer: Peer) -> None:
    assert lab.backend is not None
    most = lab.limits.max_upload
    while (header := await json_in(peer, lab.limits.max_header)) is not None:
        name, size = header.get("filename"), header.get("filesize")
        if header.get("cmd") != "put" or not isinstance(name, str) or not isinstance(size, int):
            peer.anomaly("sent %r; the lab knows only {cmd: put, filename, filesize}", header)
            return
        if isinstance(size, bool) or not 0 <= size <= most:
            peer.anomaly("announced %r bytes; the lab takes 0..%d", size, most)
            return
        if not await _store(lab.backend, peer, os.path.basename(name), size):
            return


async def _store(backend: Backend, peer: Peer, name: str, size: int) -> bool:
    spool = spool_path()
    try:
        with spool.open("wb") as out:
            left = size
            while left:
                chunk = await peer.recv(min(left, 64 * 1024))
                if not chunk:
                    peer.anomaly("stopped %d bytes short of %s; nothing stored", left, name)
                    return False
                out.write(chunk)
                left -= len(chunk)
        remote = await backend.put(Path(spool), name)
        peer.info("uploaded %d bytes as %s in the sockhub files tree", size, remote)
        return True
    except BackendError as exc:
        peer.anomaly("%s", exc)
        return False
    finally:
        spool.unlink(missing_ok=True)


async def ftp_get(lab: Lab, peer: Peer) -> None:
    assert lab.backend is not None
    while data := await peer.recv():
        name, _ = _text(data)
        if name == "q":
            return
        try:
            body = await lab.backend.get(f"{name}.png")
        except BackendError as exc:
            peer.anomaly("%s; closing as the notes' server does", exc)
            return
        peer.info("downloads %s.png (%d bytes)", name, len(body))
        if not await peer.send(wire.download_header(name, body) + body):
            return


HANDLERS: dict[str, Handler] = {
    "echo": echo,
    "greeting": greeting,
    "greeting-addr": greeting_addr,
    "upper": upper,
    "upper-line": upper_line,
    "upper-once": upper_once,
    "hmac-upper": hmac_upper,
    "chat": _chat("chat"),
    "chat-plain": _chat("chat-plain"),
    "console": console,
    "sticky": sticky,
    "exec-raw": _exec(_raw),
    "exec-raw2": _exec(_raw2),
    "exec-len": _exec(_len),
    "exec-json": _exec(_json_size),
    "exec-json-ds": _exec(_json_data_size),
    "exec-decimal": _exec(_decimal),
    "decimal-text": decimal_text,
    "exec-status": _exec(_status),
    "ftp-put": ftp_put,
    "ftp-get": ftp_get,
}
