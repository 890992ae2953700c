"""The page's upload against the two things it is made of, in headless Chromium on loopback.

One file of ``SIZE`` random bytes, three ways, rounds interleaved (A B C A B C ...):

a. **hashing**: the picked file read and hashed by the page's own SHA-256 worker
   (``Hasher.file`` of ``files.js``, as an upload whose body is POSTed hashes it),
   nothing sent;
b. **raw HTTP**: ``fetch`` POSTs the picked file to a minimal HTTP receiver started here
   (``http.server``, writing it to a temp file), from a page of the receiver's own origin
   (the sockhub page's CSP lets it talk to its own server only);
c. **sockhub upload**: the page's real upload (picker, ``file.put``, the body as a
   streamed ``fetch`` POST to ``/up/<token>`` on the web port while the worker hashes,
   ``file.end`` on the WebSocket, the server's check of the sha256, its fsync and
   rename), timed from picking the file to the transfer shown done.

An upload must hash and send, so it cannot beat the slower of (a) and (b); the figure is
(c) / min(a, b) per round, and its median. Rates are MB/s (10^6 bytes).
"""

from __future__ import annotations

import base64
import os
import tempfile
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from ._procs import interleaved, median, report_port, spawn_server
from ._table import print_table
from .bench_web import serve_web_with

SIZE = 256 * 1024 * 1024
ROUNDS = 3
TIMEOUT_MS = 300_000
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]

RECEIVER_PAGE = b"<!doctype html><title>receiver</title><input id=pick type=file>"
HASH_IN_PAGE = """async (input) => {
    const { Hasher } = await import("/js/files.js");
    const file = input.files[0];
    const hasher = new Hasher();
    const started = performance.now();
    await hasher.file(file);
    hasher.close();
    return (performance.now() - started) / 1000;
}"""
POST_IN_PAGE = """async (input) => {
    const started = performance.now();
    const answer = await fetch("/upload", { method: "POST", body: input.files[0] });
    if (!answer.ok) throw new Error(`upload answered ${answer.status}`);
    return (performance.now() - started) / 1000;
}"""


class Receiver(BaseHTTPRequestHandler):
    """GET: a page with a file picker; POST: the body written to a temp file, then 204."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(RECEIVER_PAGE)))
        self.end_headers()
        self.wfile.write(RECEIVER_PAGE)

    def do_POST(self) -> None:
        left = int(self.headers["Content-Length"])
        with tempfile.TemporaryFile() as out:
            while left:
                piece = self.rfile.read(min(left, 1 << 20))
                if not piece:
                    raise ConnectionError("the body ended early")
                out.write(piece)
                left -= len(piece)
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def serve_receiver(ready: Connection) -> None:
    """Process target: the raw HTTP baseline's receiver; reports its port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    report_port(ready, server.server_address[1])
    server.serve_forever()


def picker(page: Any, path: Path) -> Any:
    """A file input of its own (not the page's upload picker), holding ``path``."""
    handle = page.evaluate_handle(
        "() => { const i = document.createElement('input'); i.type = 'file';"
        " document.body.append(i); return i; }"
    )
    handle.as_element().set_input_files(str(path))
    return handle


def login(page: Any, url: str, user: str, key: bytes) -> None:
    page.goto(url)
    page.fill("#user", user)
    page.fill("#key", base64.b64encode(key).decode())
    page.click("#go")
    page.wait_for_selector("#chat:not([hidden])")
    page.click("#tab-files")
    page.wait_for_selector("#files-panel:not([hidden])")


def main() -> None:
    from playwright.sync_api import sync_playwright

    from sockhub.server.users import UserStore

    from .bench_chat import free_port

    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp, "upload.bin")
        with source.open("wb") as fh:
            for _ in range(SIZE >> 20):
                fh.write(os.urandom(1 << 20))
        data = os.path.join(tmp, "sockhub")
        key = UserStore(Path(data)).add("bench", ("files",))
        web_port = free_port()
        flags = {"host": "127.0.0.1", "port": 0, "udp": False, "web_port": web_port, "data": data}
        with (
            spawn_server(serve_web_with, flags),
            spawn_server(serve_receiver) as (_, http_port),
            sync_playwright() as playwright,
        ):
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
            )
            page = browser.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            login(page, f"http://127.0.0.1:{web_port}/", "bench", key)
            hashed = picker(page, source)
            raw = browser.new_page()
            raw.set_default_timeout(TIMEOUT_MS)
            raw.goto(f"http://127.0.0.1:{http_port}/")
            raw.set_input_files("#pick", str(source))
            posted = raw.query_selector("#pick")
            uploads = iter(range(1_000_000))

            def upload() -> float:
                name = f"up{next(uploads)}.bin"
                os.link(source, Path(tmp, name))
                started = time.perf_counter()
                page.set_input_files("#upload-input", str(Path(tmp, name)))
                page.wait_for_selector(f"#transfers li[data-path='{name}'][data-state='done']")
                took = time.perf_counter() - started
                os.unlink(Path(tmp, name))
                os.unlink(Path(data, "files", name))  # the disk is not filled up by rounds
                return SIZE / took / 1e6

            rates = interleaved(
                {
                    "a. hashing in the page": lambda: (
                        SIZE / page.evaluate(HASH_IN_PAGE, hashed) / 1e6
                    ),
                    "b. raw HTTP upload": lambda: SIZE / raw.evaluate(POST_IN_PAGE, posted) / 1e6,
                    "c. sockhub upload": upload,
                },
                ROUNDS,
            )
            browser.close()
    a, b, c = rates.values()
    ratios = [cc / min(aa, bb) for aa, bb, cc in zip(a, b, c, strict=True)]
    print(
        f"browser upload, {SIZE >> 20} MiB file, {ROUNDS} rounds interleaved, Chromium on loopback"
    )
    rows = [[name, f"{median(v):.0f}", f"{min(v):.0f}-{max(v):.0f}"] for name, v in rates.items()]
    print_table(["", "MB/s median", "spread"], rows)
    print(
        f"c / min(a, b): median {median(ratios):.2f} "
        f"(rounds {', '.join(f'{r:.2f}' for r in ratios)}; target >= 0.8)"
    )
