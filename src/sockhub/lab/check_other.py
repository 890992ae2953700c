"""``lab check`` for the chat rooms, the upload format and the UDP formats."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct

from . import wire
from .card import Card, Result, Verdict
from .conn import Closed, Conn, Silent, open_conn
from .limits import UDP_REPLY_CEILING

__all__ = ["check_chat", "check_ftp_put", "check_udp"]

UPLOAD = bytes(range(256)) * 12


async def _hears(conn: Conn, text: str, timeout: float) -> bool:
    """True once ``text`` shows up in what ``conn`` received (its earlier bytes count too)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while text.encode() not in conn.seen:
        left = deadline - loop.time()
        if left <= 0:
            return False
        try:
            await conn.read_some(left)
        except (Silent, Closed):
            return text.encode() in conn.seen
    return True


async def check_chat(host: str, port: int, timeout: float, card: Card) -> None:
    def add(probe: str, ok: bool, why: str, seen: bytes | bytearray = b"") -> None:
        card.results.append(Result(probe, "pass" if ok else "fail", why, bytes(seen)))

    try:
        a = await open_conn(host, port, timeout)
    except (Closed, Silent) as exc:
        add("basic", False, f"cannot connect: {exc}")
        return
    members = [a]
    try:
        await a.send(b"hello from a")
        ok = await _hears(a, "hello from a", timeout)
        add(
            "basic",
            ok,
            "the sender hears its own message back"
            if ok
            else "the sender never heard its message back",
            a.seen,
        )
        b, c = await open_conn(host, port, timeout), await open_conn(host, port, timeout)
        members += [b, c]
        for name, member in (("b", b), ("c", c)):  # in the room once it hears itself
            await member.send(f"{name} is here".encode())
            await _hears(member, f"{name} is here", timeout)
        await b.send(b"hello from b")
        deaf = [
            n
            for n, m in zip("abc", members, strict=True)
            if not await _hears(m, "hello from b", timeout)
        ]
        add(
            "several",
            not deaf,
            "three clients at once all hear each message"
            if not deaf
            else f"client(s) {', '.join(deaf)} did not hear b's message",
            b.seen,
        )
        await c.close()
        members.remove(c)
        said = []
        for n in (1, 2, 3):  # A 3.6.1 fails on the 2nd send to a departed member, then the 3rd
            await a.send(f"after c left {n}".encode())
            said.append(
                await _hears(a, f"after c left {n}", timeout)
                and await _hears(b, f"after c left {n}", timeout)
            )
        add(
            "quit",
            all(said),
            "after a member left, messages still reach everyone"
            if all(said)
            else "after a member left, messages stopped reaching everyone (does the server still send to the departed member and fail?)",
            a.seen,
        )
        d = await open_conn(host, port, timeout)
        await d.send(b"d is here")
        await _hears(d, "d is here", timeout)
        d.abort()
        await asyncio.sleep(0)
        await b.send(b"after d reset")
        ok = await _hears(a, "after d reset", timeout) and await _hears(b, "after d reset", timeout)
        add(
            "reset",
            ok,
            "after a member reset its connection, messages still reach everyone"
            if ok
            else "after a member reset its connection, messages stopped reaching everyone",
            b.seen,
        )
    except (Closed, Silent) as exc:
        add("server", False, f"the room stopped working: {exc}")
    finally:
        for m in members:
            await m.close()


async def check_ftp_put(host: str, port: int, timeout: float, card: Card) -> None:
    header = json.dumps(
        {"cmd": "put", "filename": "lab-check.bin", "filesize": len(UPLOAD)}
    ).encode()
    request = struct.pack("i", len(header)) + header

    async def upload(conn: Conn, body: bytes) -> str | None:
        await conn.send(request + body)
        try:
            await conn.read_some(0.5)
        except Silent:
            return None
        except Closed as exc:
            return f"closed the connection after an upload ({exc}): could it not open its file?"
        return None

    def add(probe: str, ok: bool, why: str) -> None:
        card.results.append(Result(probe, "pass" if ok else "fail", why))

    try:
        conn = await open_conn(host, port, timeout)
    except (Closed, Silent) as exc:
        add("basic", False, f"cannot connect: {exc}")
        return
    try:
        for probe in ("basic", "second-file"):
            problem = await upload(conn, UPLOAD)
            add(
                probe,
                problem is None,
                problem
                or f"{len(UPLOAD)} bytes sent after the header; the connection stays open (the format has no answer, so what was stored cannot be seen from here)",
            )
            if problem:
                return
    finally:
        await conn.close()
    cut = await open_conn(host, port, timeout)
    await cut.send(request + UPLOAD[:100])
    cut.abort()
    try:
        fresh = await open_conn(host, port, timeout)
        problem = await upload(fresh, UPLOAD)
        await fresh.close()
    except (Closed, Silent) as exc:
        problem = f"refused a new client after an upload was cut short ({exc})"
    add(
        "reset",
        problem is None,
        problem
        or "a new client can upload after an upload was cut short (whether the server still loops on the cut one cannot be seen from here)",
    )


def _udp_exchange(host: str, port: int, data: bytes, timeout: float, replies: int) -> list[bytes]:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(data, (host, port))
        out = []
        with contextlib.suppress(TimeoutError):
            for _ in range(replies):
                out.append(s.recvfrom(65535)[0])
        return out


async def check_udp(fmt: str, host: str, port: int, timeout: float, card: Card) -> None:
    replies = 2 if fmt == "udp-exec" else 1
    sample = {"udp-time": b"%Y", "udp-exec": b"echo hello"}.get(fmt, b"hello")

    async def ask(data: bytes) -> list[bytes]:
        return await asyncio.to_thread(_udp_exchange, host, port, data, timeout, replies)

    def add(probe: str, verdict: Verdict, why: str, seen: list[bytes]) -> None:
        card.results.append(Result(probe, verdict, why, b"|".join(seen)))

    got = await ask(sample)
    if len(got) < replies:
        why = f"no answer within {timeout:g} s"
        if fmt == "udp-qq":
            why += ": the server waits for a person at its console"
        add("basic", "fail", why + " (a course client waits in recvfrom() forever)", got)
        return
    add("basic", "pass", f"answered {sample!r} with {len(got)} datagram(s)", got)
    got = await ask(b"")
    if got:
        add("empty", "pass", "an empty datagram is answered", got)
    elif len(await ask(sample)) < replies:
        gone = "the server answers nothing any more (did it stop after one datagram?)"
        add("empty", "fail", f"no answer to an empty datagram nor to the next one: {gone}", got)
        for skipped in ("amplify", "big") if fmt == "udp-upper" else ("amplify",):
            add(skipped, "skip", f"not tried: {gone}", [])
        return
    else:
        why = "no answer to an empty datagram: a course client that sends one waits in recvfrom() forever"
        add("empty", "fail", why, got)
    probe = b"%02040Y" if fmt == "udp-time" else b"a"
    got = await ask(probe)
    size = sum(map(len, got))
    ok = size <= wire.udp_budget(probe, UDP_REPLY_CEILING)
    add(
        "amplify",
        "pass" if ok else "warn",
        f"answered {size} bytes to {len(probe)}"
        + (
            ""
            if ok
            else ": over 3x the request, a spoofed sender could use the server as an amplifier"
        ),
        got,
    )
    if fmt == "udp-upper":
        got = await ask(b"x" * 3000)
        size = sum(map(len, got))
        ok = size == 3000
        add(
            "big",
            "pass" if ok else "warn",
            "a 3000-byte datagram came back whole"
            if ok
            else f"a 3000-byte datagram came back as {size} bytes: a recvfrom(1024) drops the rest (UDP never glues, it loses), a bounded server cuts its reply",
            got,
        )
