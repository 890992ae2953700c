"""The web port as plain HTTP: the page's files, their caching headers, gzip, CSP, Host."""

from __future__ import annotations

import gzip
import http.client
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from .web_support import RunningWeb, running_web


@pytest.fixture
def web(tmp_path: Path) -> Iterator[RunningWeb]:
    with running_web(tmp_path / "data") as running:
        yield running


def get(
    web: RunningWeb, path: str, headers: dict[str, str] | None = None, method: str = "GET"
) -> tuple[http.client.HTTPResponse, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", web.port, timeout=10)
    try:
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        return response, response.read()
    finally:
        conn.close()


def test_page_is_served_with_a_strict_policy(web: RunningWeb) -> None:
    response, body = get(web, "/")
    assert response.status == 200
    assert response.getheader("Content-Type") == "text/html; charset=utf-8"
    assert b'<script type="module" src="/js/app.js">' in body
    assert b"<script>" not in body  # no inline script: the policy would block it anyway
    csp = response.getheader("Content-Security-Policy") or ""
    directives = {d.split()[0]: d.split()[1:] for d in csp.split("; ")}
    # our own scripts, and WebAssembly compiled (the hash), but no eval and nothing inline
    assert directives["script-src"] == ["'self'", "'wasm-unsafe-eval'"]
    assert directives["default-src"] == ["'none'"]
    assert directives["frame-ancestors"] == ["'none'"]
    assert "unsafe-inline" not in csp and "'unsafe-eval'" not in csp
    assert f"ws://127.0.0.1:{web.port}" in csp
    assert response.getheader("X-Content-Type-Options") == "nosniff"


def test_etag_revalidation_answers_304_without_a_body(web: RunningWeb) -> None:
    first, body = get(web, "/js/app.js")
    assert first.status == 200 and body
    assert first.getheader("Cache-Control") == "no-cache"
    etag = first.getheader("ETag")
    assert etag and etag.startswith('"')
    again, body = get(web, "/js/app.js", {"If-None-Match": etag})
    assert again.status == 304
    assert body == b""
    assert again.getheader("ETag") == etag
    other, _ = get(web, "/js/app.js", {"If-None-Match": '"not-it"'})
    assert other.status == 200


def test_gzip_when_asked_with_its_own_etag(web: RunningWeb) -> None:
    plain, body = get(web, "/js/sha256.js")
    zipped, packed = get(web, "/js/sha256.js", {"Accept-Encoding": "gzip, deflate"})
    assert zipped.getheader("Content-Encoding") == "gzip"
    assert zipped.getheader("Vary") == "Accept-Encoding"
    assert gzip.decompress(packed) == body
    assert len(packed) < len(body)
    assert zipped.getheader("ETag") != plain.getheader("ETag")
    refused, _ = get(web, "/js/sha256.js", {"Accept-Encoding": "gzip;q=0"})
    assert refused.getheader("Content-Encoding") is None


def test_head_unknown_paths_and_methods(web: RunningWeb) -> None:
    head, body = get(web, "/app.css", method="HEAD")
    assert head.status == 200 and body == b""
    assert int(head.getheader("Content-Length") or 0) > 0
    missing, _ = get(web, "/../../etc/passwd")
    assert missing.status == 404
    posted, _ = get(web, "/", method="POST")
    assert posted.status == 405
    assert posted.getheader("Allow") == "GET, HEAD"


@pytest.mark.parametrize(
    "host", ["evil.example:{port}", "127.0.0.1:1", "localhost.evil.example:{port}", ""]
)
def test_foreign_host_is_refused(web: RunningWeb, host: str) -> None:
    """DNS rebinding: a hostile name pointed at 127.0.0.1 sends that name as Host."""
    response, _ = get(web, "/", {"Host": host.format(port=web.port)})
    assert response.status == 421


def test_allowed_host_names(tmp_path: Path) -> None:
    with running_web(tmp_path / "data", web_hosts="hub.lan") as web:
        for host in (f"hub.lan:{web.port}", f"localhost:{web.port}", f"[::1]:{web.port}"):
            response, _ = get(web, "/", {"Host": host})
            assert response.status == 200, host


def test_request_that_never_ends_is_dropped(tmp_path: Path) -> None:
    """A request cut off half-way does not hold a connection past the handshake timeout."""
    with running_web(tmp_path / "data", handshake_timeout=1) as web:
        sock = socket.create_connection(("127.0.0.1", web.port), timeout=10)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        assert sock.recv(100) == b""
        sock.close()
        web.srv.wait_until(lambda: not web.web.peers)


@pytest.mark.parametrize("limit", ["max_connections", "max_connections_per_ip"])
def test_connections_that_are_not_sessions_yet_are_capped(tmp_path: Path, limit: str) -> None:
    """Silent connections (no request yet) count against the connection caps from accept:
    one over is closed at once, and a place freed is served again."""
    with running_web(tmp_path / "data", **{limit: 2}) as web:
        held = [socket.create_connection(("127.0.0.1", web.port), timeout=10) for _ in range(2)]
        web.srv.wait_until(lambda: web.web.waiting_total == 2)
        with socket.create_connection(("127.0.0.1", web.port), timeout=10) as extra:
            assert extra.recv(100) == b""  # closed by the server, not timed out
        held.pop().close()
        web.srv.wait_until(lambda: web.web.waiting_total == 1)
        response, _ = get(web, "/")
        assert response.status == 200
        for sock in held:
            sock.close()
        web.srv.wait_until(lambda: web.web.waiting_total == 0 and not web.web.waiting)
