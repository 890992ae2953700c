"""An upload's body by ``POST /up/<token>`` on the web port, its control on the WebSocket:
the token's checks, the same sink as file.data (limits, backpressure, resume), and the
page using it (or the socket when it is not offered), on real sockets and in Chromium."""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import json
import os
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect

from sockhub.protocol.frames import Decoder, Frame, encode_frame
from sockhub.services.files.spool import BUFFER, Spool
from sockhub.web.upload import MAX_HEAD

from .files_support import partials
from .test_web_files import DONE, files_page, sha
from .test_web_socket import WsPeer, ws_connect, ws_login
from .web_support import RunningWeb, chromium, running_web

__all__ = ["chromium"]  # the fixture, used by name

MiB = 1024 * 1024


@pytest.fixture
def web(tmp_path: Path) -> Iterator[RunningWeb]:
    with running_web(tmp_path / "data", udp=False) as running:
        yield running


async def login(web: RunningWeb, ws: Any) -> WsPeer:
    peer = await WsPeer(ws).start()
    reply, _ = await ws_login(peer, "fay", web.srv.add_user("fay", ("files",)))
    assert reply.header["op"] == "ok"
    return peer


async def put(peer: WsPeer, rid: int, path: str, total: int) -> dict[str, Any]:
    """file.put; its file.ready (offset and token)."""
    ready = await peer.request({"op": "file.put", "id": rid, "path": path, "total": total})
    assert ready.header["op"] == "file.ready", ready.header
    return ready.header


async def final(peer: WsPeer, rid: int) -> tuple[Frame, list[int]]:
    """The request's final frame, and the offsets its file.got frames told meanwhile."""
    told = []
    while True:
        frame = await peer.frame()
        if frame.header.get("op") == "file.got":
            told.append(frame.header["offset"])
        elif frame.header.get("re") == rid:
            return frame, told


async def ended(ws: Any, peer: WsPeer, rid: int, data: bytes) -> tuple[Frame, list[int]]:
    """file.end with the sha256 of ``data`` for the put ``rid``; its final frame (and the
    file.got offsets told before it)."""
    sha = hashlib.sha256(data).hexdigest()
    await ws.send(encode_frame({"op": "file.end", "target": rid, "sha256": sha}))
    return await final(peer, rid)


def post(
    web: RunningWeb,
    token: str,
    body: bytes,
    headers: dict[str, str] | None = None,
    tls: ssl.SSLContext | None = None,
) -> tuple[int, dict[str, Any]]:
    """POST ``body`` to the token's path: the status and the JSON error, if any."""
    if tls is None:
        conn = http.client.HTTPConnection("127.0.0.1", web.port, timeout=60)
        origin = web.origin
    else:
        conn = http.client.HTTPSConnection("127.0.0.1", web.port, timeout=60, context=tls)
        origin = f"https://127.0.0.1:{web.port}"
    try:
        sent = {"Origin": origin, "Content-Length": str(len(body)), **(headers or {})}
        conn.request("POST", f"/up/{token}", body=body, headers=sent)
        response = conn.getresponse()
        answer = response.read()
        return response.status, json.loads(answer) if answer else {}
    finally:
        conn.close()


def head_only(web: RunningWeb, token: str, length: int, body: bytes) -> socket.socket:
    """A POST's head and the first ``body`` bytes, on a socket left open."""
    sock = socket.create_connection(("127.0.0.1", web.port))
    head = (
        f"POST /up/{token} HTTP/1.1\r\nHost: 127.0.0.1:{web.port}\r\n"
        f"Origin: {web.origin}\r\nContent-Length: {length}\r\n\r\n"
    )
    sock.sendall(head.encode() + body)
    return sock


def stored(web: RunningWeb, path: str) -> Path:
    return web.srv.data / "files" / path


async def test_a_posted_body_arrives_with_its_sha256(web: RunningWeb) -> None:
    data = os.urandom(9 * MiB + 5)
    async with ws_connect(web) as ws:
        peer = await login(web, ws)
        ready = await put(peer, 2, "posted.bin", len(data))
        assert ready["offset"] == 0 and len(ready["token"]) >= 43
        assert await asyncio.to_thread(post, web, ready["token"], data) == (204, {})
        done, told = await ended(ws, peer, 2, data)
        assert (
            done.header["op"] == "ok" and done.header["sha256"] == hashlib.sha256(data).hexdigest()
        )
        # about every 4 MiB as the body comes, and once it is all in
        assert len(told) == 3 and told == sorted(told) and told[-1] == len(data)
        assert stored(web, "posted.bin").read_bytes() == data
        # used: the same token again finds nothing, and changes nothing
        assert (await asyncio.to_thread(post, web, ready["token"], b"x" * 5))[0] == 404
        assert stored(web, "posted.bin").read_bytes() == data
        # the POSTs' connections no longer count against the caps; the session does
        await asyncio.to_thread(web.srv.wait_until, lambda: web.web.waiting_total == 0)


async def test_a_body_in_odd_pieces_is_stored_exactly_and_bytes_after_it_are_not(
    web: RunningWeb,
) -> None:
    """The head with the body's first bytes (h11 hands those over), then pieces of one
    byte and of more than a read, read past h11 into the spool; bytes after the body
    (a pipelined request) are dropped, not stored."""
    data = os.urandom(3 * MiB + 11)
    async with ws_connect(web) as ws:
        peer = await login(web, ws)
        token = (await put(peer, 2, "pieces.bin", len(data)))["token"]

        def send() -> bytes:
            with head_only(web, token, len(data), data[:3]) as sock:
                for at, end in ((3, 4), (4, 5), (5, 2 * MiB + 1), (2 * MiB + 1, len(data))):
                    sock.sendall(data[at:end])
                sock.sendall(b"GET / HTTP/1.1\r\n\r\n" + b"j" * MiB)
                return sock.recv(100)

        assert (await asyncio.to_thread(send)).startswith(b"HTTP/1.1 204 ")
        assert (await ended(ws, peer, 2, data))[0].header["op"] == "ok"
    assert stored(web, "pieces.bin").read_bytes() == data


async def test_a_body_posted_over_tls(tmp_path: Path) -> None:
    """With --tls the POST is https, on the same port and certificate as the page."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    data = os.urandom(3 * MiB + 1)
    with running_web(tmp_path / "data", udp=False, tls=True) as web:
        origin = f"https://127.0.0.1:{web.port}"
        url = f"wss://127.0.0.1:{web.port}/ws"
        async with connect(url, ssl=ctx, origin=origin, subprotocols=["sockhub.v1"]) as ws:  # type: ignore[arg-type]
            peer = await login(web, ws)
            token = (await put(peer, 2, "secret.bin", len(data)))["token"]
            assert await asyncio.to_thread(post, web, token, data, None, ctx) == (204, {})
            assert (await ended(ws, peer, 2, data))[0].header["op"] == "ok"
        assert stored(web, "secret.bin").read_bytes() == data


async def test_unknown_and_expired_tokens_are_404_and_touch_nothing(web: RunningWeb) -> None:
    status, error = await asyncio.to_thread(post, web, "A" * 43, b"guess")
    assert status == 404 and error["code"] == "bad.request"
    async with ws_connect(web) as ws:
        peer = await login(web, ws)
        ready = await put(peer, 2, "left.bin", 1000)
    # the session is gone, and its put with it: the token has expired
    uploads = web.web.uploads
    assert uploads is not None
    web.srv.wait_until(lambda: not uploads.busy)
    before = [(p.name, p.stat().st_size) for p in partials(web.srv)]
    assert (await asyncio.to_thread(post, web, ready["token"], b"y" * 1000))[0] == 404
    assert [(p.name, p.stat().st_size) for p in partials(web.srv)] == before
    assert not stored(web, "left.bin").exists()


async def test_wrong_origin_host_and_chunked_are_refused_before_the_body(web: RunningWeb) -> None:
    data = b"checked " * 1000
    async with ws_connect(web) as ws:
        peer = await login(web, ws)
        token = (await put(peer, 2, "checked.txt", len(data)))["token"]
        refusals = [
            ({"Origin": "http://evil.example"}, 403),
            ({"Origin": f"http://127.0.0.1:{web.port + 1}"}, 403),
            ({"Host": "rebound.example"}, 421),
        ]
        for headers, status in refusals:
            assert (await asyncio.to_thread(post, web, token, data, headers))[0] == status
        chunked = http.client.HTTPConnection("127.0.0.1", web.port, timeout=30)
        chunked.request(
            "POST",
            f"/up/{token}",
            body=iter([data]),
            headers={"Origin": web.origin},
            encode_chunked=True,
        )
        assert chunked.getresponse().status == 411
        chunked.close()
        # none of these used the token or touched the upload: the right POST still works
        assert await asyncio.to_thread(post, web, token, data) == (204, {})
        assert (await ended(ws, peer, 2, data))[0].header["op"] == "ok"
    assert stored(web, "checked.txt").read_bytes() == data


async def test_the_length_must_be_what_the_upload_still_needs(web: RunningWeb) -> None:
    """One byte over is file.too_large (413), one under bad.request (400); either fails
    the put as a wrong file.data does, and nothing is stored."""
    async with ws_connect(web) as ws:
        peer = await login(web, ws)
        for rid, extra, status, code in (
            (2, 1, 413, "file.too_large"),
            (3, -1, 400, "bad.request"),
        ):
            token = (await put(peer, rid, f"sized{rid}.bin", 1000))["token"]
            answer = await asyncio.to_thread(post, web, token, b"z" * (1000 + extra))
            assert answer[0] == status and answer[1]["code"] == code
            failed, _ = await final(peer, rid)
            assert failed.header["op"] == "error" and failed.header["code"] == code
            assert not stored(web, f"sized{rid}.bin").exists()


def test_a_head_not_ended_within_its_bound_is_refused_with_431(web: RunningWeb) -> None:
    """A head may take MAX_HEAD bytes before it ends: at the bound it is still read (and
    its token looked up), one byte over it is refused without waiting for the end."""
    start = (
        f"POST /up/{'A' * 43} HTTP/1.1\r\nHost: 127.0.0.1:{web.port}\r\n"
        "Content-Length: 0\r\nX-Filler: "
    ).encode()
    for size, ending, status in ((MAX_HEAD, b"\r\n\r\n", b"404"), (MAX_HEAD + 1, b"", b"431")):
        with socket.create_connection(("127.0.0.1", web.port), timeout=30) as sock:
            sock.sendall(start + b"f" * (size - len(start)))
            sock.sendall(ending)
            assert sock.recv(100).split(b" ")[1] == status


async def test_a_post_that_stalls_is_cut_off_and_resumable(tmp_path: Path) -> None:
    """Bytes that stop coming for handshake_timeout while the server reads: the POST is
    cut, its put fails as cut off, and its partial holds what came."""
    data = os.urandom(2 * MiB)
    with running_web(tmp_path / "data", udp=False, handshake_timeout=1.0) as web:
        async with ws_connect(web) as ws:
            peer = await login(web, ws)
            token = (await put(peer, 2, "stalled.bin", len(data)))["token"]
            sock = await asyncio.to_thread(head_only, web, token, len(data), data[:MiB])
            try:
                cut, _ = await final(peer, 2)
                assert "stopped sending" in cut.header["message"]
                assert sock.recv(1) == b""  # the server closed the POST's connection
            finally:
                sock.close()
            assert (await put(peer, 3, "stalled.bin", len(data)))["offset"] == MiB


async def test_a_put_over_the_quota_is_refused_before_any_token(tmp_path: Path) -> None:
    with running_web(tmp_path / "data", udp=False, file_user_quota=MiB) as web:
        async with ws_connect(web) as ws:
            peer = await login(web, ws)
            refused = await peer.request(
                {"op": "file.put", "id": 2, "path": "big.bin", "total": MiB + 1}
            )
            assert refused.header["code"] == "file.quota" and "token" not in refused.header
            assert (await put(peer, 3, "fits.bin", MiB))["token"]


async def test_a_post_cut_midway_leaves_a_partial_to_resume(web: RunningWeb) -> None:
    data = os.urandom(6 * MiB)
    half = 3 * MiB + 7
    async with ws_connect(web) as ws:
        peer = await login(web, ws)
        token = (await put(peer, 2, "cut.bin", len(data)))["token"]
        sock = await asyncio.to_thread(head_only, web, token, len(data), data[:half])
        web.srv.wait_until(
            lambda: bool(web.web.posts) and next(iter(web.web.posts)).sink.got == half
        )  # type: ignore[union-attr]
        sock.close()
        cut, _ = await final(peer, 2)
        assert cut.header["code"] == "bad.request" and "stopped sending" in cut.header["message"]
        ready = await put(peer, 3, "cut.bin", len(data))
        assert ready["offset"] == half
        assert await asyncio.to_thread(post, web, ready["token"], data[half:]) == (204, {})
        assert (await ended(ws, peer, 3, data))[0].header["op"] == "ok"
    assert stored(web, "cut.bin").read_bytes() == data


async def test_the_server_stops_reading_a_post_while_the_disk_is_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk is held still: the POST's socket is paused once the spool holds its
    high-water mark, so the bytes taken stay within it and one read (into one of the
    spool's pooled buffers); then it goes on."""
    gate = threading.Event()
    store = Spool._store

    def held(self: Spool, chunk: bytes | bytearray | memoryview) -> None:
        gate.wait(60)
        store(self, chunk)

    monkeypatch.setattr(Spool, "_store", held)
    data = os.urandom(32 * MiB)
    with running_web(tmp_path / "data", udp=False, file_spool_high=MiB) as web:
        async with ws_connect(web) as ws:
            peer = await login(web, ws)
            token = (await put(peer, 2, "slow.bin", len(data)))["token"]
            # (started now: the waits below hold this loop)
            sending = asyncio.get_running_loop().run_in_executor(None, post, web, token, data)
            web.srv.wait_until(lambda: any(p.paused for p in web.web.posts))
            paused = next(iter(web.web.posts))
            assert paused.sink is not None
            got = paused.sink.got  # type: ignore[attr-defined]
            assert MiB < got <= MiB + BUFFER
            assert not sending.done()
            gate.set()
            assert await sending == (204, {})
            assert (await ended(ws, peer, 2, data))[0].header["op"] == "ok"
        assert stored(web, "slow.bin").read_bytes() == data


# the page ---------------------------------------------------------------------------


def test_the_page_posts_the_body(web: RunningWeb, chromium: Any, tmp_path: Path) -> None:
    source = tmp_path / "posted.bin"
    source.write_bytes(os.urandom(12 * MiB + 1))
    page = files_page(web, chromium)
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    page.set_input_files("#upload-input", str(source))
    page.wait_for_selector(DONE, timeout=60_000)
    assert len(posts) == 1 and "/up/" in posts[0]
    assert sha(stored(web, "posted.bin")) == sha(source)


def test_the_page_sends_over_the_socket_when_no_post_is_offered(
    web: RunningWeb, chromium: Any, tmp_path: Path
) -> None:
    """A relay drops the token from file.ready (as a server without the web port's
    POST would send it): the body goes over the WebSocket, and arrives the same."""
    source = tmp_path / "socket.bin"
    source.write_bytes(os.urandom(6 * MiB + 3))
    page = files_page(web, chromium)
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)

    def untokened(message: bytes) -> bytes:
        decoder = Decoder(max_header=1 << 20, max_body=1 << 30)
        decoder.receive_data(message)
        out = b""
        while (frame := decoder.next_event()) is not None:
            assert isinstance(frame, Frame)
            frame.header.pop("token", None)
            out += encode_frame(frame.header, frame.body)
        return out

    def relay(ws: Any) -> None:
        server = ws.connect_to_server()
        ws.on_message(server.send)
        server.on_message(lambda m: ws.send(untokened(m) if isinstance(m, bytes) else m))

    page.route_web_socket("**/ws", relay)
    page.reload()
    page.wait_for_selector("#chat:not([hidden])")
    page.click("#tab-files")
    page.set_input_files("#upload-input", str(source))
    page.wait_for_selector(DONE, timeout=60_000)
    assert posts == []
    assert sha(stored(web, "socket.bin")) == sha(source)


def test_a_file_changed_after_it_was_picked_fails_with_a_clear_note(
    web: RunningWeb, chromium: Any, tmp_path: Path
) -> None:
    """The browser refuses to read a picked file that changed on disk since: the upload
    fails, saying so, and nothing is stored. The put's file.ready is held back by a relay
    until the file has changed, so the reads begin after it."""
    source = tmp_path / "changing.bin"
    source.write_bytes(os.urandom(8 * MiB))
    page = files_page(web, chromium)
    held: list[bytes] = []
    route: list[Any] = []

    def relay(ws: Any) -> None:
        server = ws.connect_to_server()
        route.append(ws)
        ws.on_message(server.send)
        server.on_message(
            lambda m: held.append(m) if isinstance(m, bytes) and b"file.ready" in m else ws.send(m)
        )

    page.route_web_socket("**/ws", relay)
    page.reload()
    page.wait_for_selector("#chat:not([hidden])")
    page.click("#tab-files")
    page.set_input_files("#upload-input", str(source))
    for _ in range(1000):  # the handlers run while Playwright is waited on
        if held:
            break
        page.wait_for_timeout(10)
    assert held, "file.ready never came"
    with source.open("ab") as fh:
        fh.write(b"changed")
    route[0].send(held[0])
    failed = page.wait_for_selector("#transfers li[data-state='failed']", timeout=60_000)
    note = failed.inner_text()
    assert "could not be read" in note and "changed" in note, note
    assert not stored(web, "changing.bin").exists()
