"""``lab check`` for the TCP request/answer formats: the course client's exchange, then the
pitfalls of the notes, each probe on its own connection."""

from __future__ import annotations

from . import wire
from .card import Card, Result, Verdict
from .conn import Closed, Conn, Silent, open_conn
from .dialects import BIG_TEXT, DIALECTS, QUIET, Dialect, ProtocolMismatch, read_raw

__all__ = ["check_stream"]


def say(exc: Exception, timeout: float) -> str:
    """An exception of a probe in the words of the report card."""
    if isinstance(exc, Silent):
        return f"no answer within {timeout:g} s" + (f" ({exc})" if str(exc) else "")
    if isinstance(exc, Closed):
        return f"the server closed the connection ({exc})"
    return str(exc)


# how long a second client waits before the card says "one client at a time" (a warning only)
SECOND_CLIENT_WAIT = 1.0
EMPTY_NOTE = "(send(b'') itself puts nothing on the wire: clients must skip empty input)"


class StreamCheck:
    def __init__(self, fmt: str, host: str, port: int, timeout: float, card: Card) -> None:
        self.fmt = fmt
        self.d: Dialect = DIALECTS[fmt]
        self.host, self.port, self.timeout = host, port, timeout
        self.card = card
        self.dead: str | None = None

    def add(self, probe: str, verdict: Verdict, why: str, seen: bytes | bytearray = b"") -> None:
        self.card.results.append(Result(probe, verdict, why, bytes(seen)))

    async def connect(self) -> Conn:
        conn = await open_conn(self.host, self.port, self.timeout)
        if self.fmt == "hmac-upper":
            challenge = await conn.exactly(32)
            await conn.send(wire.course_digest(challenge))
        return conn

    async def exchange(self, conn: Conn, msg: str) -> bytes:
        await conn.send(self.d.request(msg))
        return await self.d.read(conn, self.d.expect(msg))

    def judge(self, msg: str, got: bytes) -> str | None:
        """None when ``got`` is a right answer to ``msg``, else what was wrong."""
        want = self.d.expect(msg)
        if want is None:
            return None if got else "answered nothing"
        if got == want:
            return None
        return (
            f"answered {got[:60]!r} ({len(got)} bytes), expected {want[:60]!r} ({len(want)} bytes)"
        )

    def silent_why(self) -> str:
        if self.fmt == "console":
            return (
                f"no answer within {self.timeout:g} s: the server waits for a person at its console"
            )
        return f"no answer within {self.timeout:g} s"

    async def basic(self) -> None:
        try:
            conn = await self.connect()
        except (Closed, Silent) as exc:
            self.dead = f"cannot connect: {exc}"
            self.add("basic", "fail", self.dead)
            return
        try:
            got = await self.exchange(conn, self.d.sample)
        except Closed as exc:
            self.dead = "the basic exchange failed"
            self.add(
                "basic", "fail", f"closed the connection without a full answer ({exc})", conn.seen
            )
        except Silent:
            self.dead = "the basic exchange failed"
            self.add("basic", "fail", self.silent_why(), conn.seen)
        except ProtocolMismatch as exc:
            self.add("basic", "fail", str(exc), conn.seen)
        else:
            wrong = self.judge(self.d.sample, got)
            self.add(
                "basic",
                "fail" if wrong else "pass",
                wrong or f"answered {self.d.sample!r} as a course client expects",
                conn.seen,
            )
        await conn.close()

    async def after_leave(self, probe: str, abrupt: bool) -> None:
        """Is the next client served after one left? ``quit``: the basic probe's client has
        just closed (FIN), as a client that quits does; ``reset``: one resets (RST) first."""
        how = "closed its connection" if not abrupt else "reset its connection"
        if abrupt:
            try:
                first = await self.connect()
                await first.send(self.d.request(self.d.sample))
                if not self.d.one_shot:
                    await self.d.read(first, self.d.expect(self.d.sample))
            except (Closed, Silent, ProtocolMismatch) as exc:
                self.add(
                    probe, "skip", f"the first client could not talk: {say(exc, self.timeout)}"
                )
                return
            first.abort()
        try:
            conn = await self.connect()
        except (Closed, Silent) as exc:
            self.dead = f"refused a new client after one {how} ({exc}): did the server exit?"
            self.add(probe, "fail", self.dead)
            return
        try:
            got = await self.exchange(conn, self.d.sample)
        except Silent:
            self.dead = f"a new client got no answer after one {how}" + (
                "" if abrupt else ": is it looping on recv() returning b''?"
            )
            self.add(probe, "fail", self.dead, conn.seen)
        except (Closed, ProtocolMismatch) as exc:
            crashed = " (did the server crash on the reset: an unhandled ConnectionResetError?)"
            self.dead = f"a new client after one {how}: {say(exc, self.timeout)}" + (
                crashed if abrupt and isinstance(exc, Closed) else ""
            )
            self.add(probe, "fail", self.dead, conn.seen)
        else:
            wrong = self.judge(self.d.sample, got)
            self.add(
                probe,
                "fail" if wrong else "pass",
                wrong or f"a new client is served after one {how}",
                conn.seen,
            )
        await conn.close()

    async def quit(self) -> None:
        await self.after_leave("quit", abrupt=False)

    async def reset(self) -> None:
        await self.after_leave("reset", abrupt=True)

    async def empty(self) -> None:
        conn = await self.connect()
        try:
            await conn.send(self.d.request(" "))
            conn.timeout = QUIET * 3
            try:
                await self.d.read(conn, self.d.expect(" "))
                answered = True
            except (Silent, ProtocolMismatch):
                answered = False
            except Closed:
                if not self.d.one_shot:
                    raise
                answered = False
            conn.timeout = self.timeout
            if self.d.one_shot:
                self.add(
                    "empty",
                    "pass" if answered else "warn",
                    ("answered" if answered else "answered nothing to")
                    + f" a message of white space {EMPTY_NOTE}",
                    conn.seen,
                )
                return
            got = await self.exchange(conn, self.d.sample)
        except Closed:
            self.add(
                "empty",
                "fail",
                f"closed the connection on a message of white space (strip() then 'if not msg: break'?) {EMPTY_NOTE}",
                conn.seen,
            )
            return
        except (Silent, ProtocolMismatch) as exc:
            self.add(
                "empty",
                "fail",
                f"after a message of white space the next message got no right answer: {say(exc, self.timeout)}",
                conn.seen,
            )
            return
        finally:
            await conn.close()
        wrong = self.judge(self.d.sample, got)
        if wrong:
            self.add(
                "empty",
                "fail",
                f"after a message of white space the next one was {wrong}",
                conn.seen,
            )
        elif not answered:
            self.add(
                "empty",
                "warn",
                f"no answer to a message of white space (a client waiting for one hangs); the next message was answered {EMPTY_NOTE}",
                conn.seen,
            )
        else:
            self.add(
                "empty",
                "pass",
                f"a message of white space is answered and the session goes on {EMPTY_NOTE}",
                conn.seen,
            )

    async def back_to_back(self) -> None:
        if self.d.one_shot:
            self.add("back-to-back", "skip", "the server reads one message per connection")
            return
        a, b = self.d.sample, self.d.second
        conn = await self.connect()
        try:
            await conn.send(self.d.request(a) + self.d.request(b))
            want_a, want_b = self.d.expect(a), self.d.expect(b)
            if self.d.read is read_raw and want_a is not None and want_b is not None:
                got = await read_raw(conn, want_a + want_b)
                ok = got == want_a + want_b
            else:
                got = await self.d.read(conn, want_a)
                ok = self.judge(a, got) is None
                if ok:
                    got = await self.d.read(conn, want_b)
                    ok = self.judge(b, got) is None
        except (Closed, Silent, ProtocolMismatch) as exc:
            ok, got = False, bytes(conn.seen)
            reason = f"two messages sent back to back: {say(exc, self.timeout)}"
        else:
            reason = ""
        finally:
            await conn.close()
        if ok:
            self.add(
                "back-to-back",
                "pass",
                "two messages sent back to back were both answered right",
                conn.seen,
            )
        else:
            self.add(
                "back-to-back",
                "fail",
                reason
                or f"two messages sent back to back reached the server as one (answered {got[:60]!r}): the requests need a length or a delimiter",
                conn.seen,
            )

    async def big(self) -> None:
        big = self.d.big
        if big is None:
            self.add("big", "skip", "the answer's size does not depend on the message")
            return
        conn = await self.connect()
        try:
            got = await self.exchange(conn, big)
        except (Closed, Silent, ProtocolMismatch) as exc:
            self.add(
                "big",
                "fail",
                f"a reply over 1024 bytes did not arrive whole: {say(exc, self.timeout)}",
                conn.seen,
            )
            return
        finally:
            await conn.close()
        wrong = self.judge(big, got)
        if wrong:
            self.add("big", "fail", f"a reply over 1024 bytes: {wrong}", conn.seen)
        elif self.d.read is read_raw and self.d.is_exec:
            self.add(
                "big",
                "warn",
                f"all {len(got)} bytes arrived, but with no length a course client's recv(1024) takes 1024 and the rest sticks to its next answer",
                conn.seen,
            )
        else:
            what = "a 3000-byte message" if big == BIG_TEXT else f"{big!r}"
            self.add("big", "pass", f"{what}: all {len(got)} bytes of the reply arrived", conn.seen)

    async def two_clients(self) -> None:
        first = await self.connect()
        try:
            if not self.d.one_shot:
                await self.exchange(first, self.d.sample)
            second = await self.connect()
            second.timeout = min(self.timeout, SECOND_CLIENT_WAIT)
            try:
                got = await self.exchange(second, self.d.sample)
                ok = self.judge(self.d.sample, got) is None
            except Silent:
                ok = False
            finally:
                await second.close()
        finally:
            await first.close()
        if ok:
            self.add(
                "two-clients", "pass", "a second client is served while the first stays connected"
            )
        else:
            self.add(
                "two-clients",
                "warn",
                "a second client waits until the first leaves: the server serves one client at a time",
            )

    async def run(self) -> None:
        await self.basic()
        for probe, step in (
            ("quit", self.quit),
            ("reset", self.reset),
            ("empty", self.empty),
            ("back-to-back", self.back_to_back),
            ("big", self.big),
            ("two-clients", self.two_clients),
        ):
            if self.dead is not None:
                self.add(probe, "skip", f"not tried: {self.dead}")
                continue
            try:
                await step()
            except (Closed, Silent, ProtocolMismatch) as exc:
                self.add(probe, "fail", f"the server stopped answering: {say(exc, self.timeout)}")


async def check_stream(fmt: str, host: str, port: int, timeout: float, card: Card) -> None:
    await StreamCheck(fmt, host, port, timeout, card).run()
