"""Answers to plain HTTP requests on the web port: the page's files, with their headers.

Parsing is python-websockets' (its sans-IO ``ServerProtocol`` reads the request); this
module only decides what to answer. Every answer closes the connection afterwards (the
sans-IO handshake serves one request per connection), which for a page of a few small
files costs a few extra loopback handshakes and nothing else.
"""

from __future__ import annotations

import email.utils
from http import HTTPStatus

from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from .static import Asset

__all__ = ["WS_PATH", "content_security_policy", "page_response", "plain_response"]

WS_PATH = "/ws"


def content_security_policy(scheme: str, host: str) -> str:
    """Only our own files run; the page talks only to its own WebSocket; no inline code.

    ``'wasm-unsafe-eval'`` lets the page compile WebAssembly (its own ``sha256.wasm``,
    the only module it loads, from its own origin); it allows no JavaScript ``eval``."""
    ws = "wss" if scheme == "https" else "ws"
    return "; ".join(
        (
            "default-src 'none'",
            "script-src 'self' 'wasm-unsafe-eval'",
            "style-src 'self'",
            "img-src 'self' data:",
            f"connect-src 'self' {ws}://{host}",
            "worker-src 'self'",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        )
    )


def _common(headers: Headers) -> None:
    headers["Date"] = email.utils.formatdate(usegmt=True)
    headers["Connection"] = "close"
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Referrer-Policy"] = "no-referrer"
    headers["Cross-Origin-Opener-Policy"] = "same-origin"
    headers["Cross-Origin-Resource-Policy"] = "same-origin"


def plain_response(status: HTTPStatus, text: str) -> Response:
    body = text.encode()
    headers = Headers()
    _common(headers)
    headers["Content-Type"] = "text/plain; charset=utf-8"
    headers["Content-Length"] = str(len(body))
    return Response(status.value, status.phrase, headers, body)


def _accepts_gzip(request: Request) -> bool:
    for value in request.headers.get_all("Accept-Encoding"):
        for item in value.split(","):
            coding, _, params = item.strip().partition(";")
            if coding.strip().lower() == "gzip" and params.replace(" ", "") != "q=0":
                return True
    return False


def _matches(request: Request, etag: str) -> bool:
    for value in request.headers.get_all("If-None-Match"):
        for tag in value.split(","):
            tag = tag.strip().removeprefix("W/")
            if tag in ("*", etag):
                return True
    return False


def page_response(request: Request, assets: dict[str, Asset], csp: str) -> Response:
    """The answer to a GET or HEAD of one of the page's files."""
    if request.method not in ("GET", "HEAD"):
        response = plain_response(HTTPStatus.METHOD_NOT_ALLOWED, "only GET and HEAD\n")
        response.headers["Allow"] = "GET, HEAD"
        return response
    asset = assets.get(request.path.partition("?")[0])
    if asset is None:
        return plain_response(HTTPStatus.NOT_FOUND, "not found\n")
    zipped = asset.gzipped is not None and _accepts_gzip(request)
    etag = asset.gzip_etag if zipped else asset.etag
    headers = Headers()
    _common(headers)
    headers["ETag"] = etag
    headers["Cache-Control"] = "no-cache"
    headers["Vary"] = "Accept-Encoding"
    headers["Content-Security-Policy"] = csp
    headers["X-Frame-Options"] = "DENY"
    if _matches(request, etag):
        return Response(304, "Not Modified", headers, b"")
    body = asset.gzipped if zipped and asset.gzipped is not None else asset.body
    headers["Content-Type"] = asset.content_type
    headers["Content-Length"] = str(len(body))
    if zipped:
        headers["Content-Encoding"] = "gzip"
    return Response(200, "OK", headers, b"" if request.method == "HEAD" else body)
