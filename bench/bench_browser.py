"""The page's upload against the two things it is made of, in headless Chromium on loopback.

One file of ``SIZE`` random bytes, four ways, rounds interleaved (A B C D A B C D ...):

a. **hashing**: the picked file read and hashed by the page's own SHA-256 worker
   (``Hasher.file`` of ``files.js``, as an upload whose body is POSTed hashes it: the
   WebAssembly engine), nothing sent;
b. **raw HTTP**: ``fetch`` POSTs the picked file to a minimal HTTP receiver started here
   (``http.server``, writing it to a temp file);
c. **sockhub upload**: the page's real upload (picker, ``file.put``, the body as a
   streamed ``fetch`` POST to ``/up/<token>`` on the web port while the worker hashes,
   ``file.end`` on the WebSocket, the server's check of the sha256, its fsync and
   rename), timed in the page, as the others are, from the picker's ``change`` event to
   the transfer shown done;
d. **a and b at once**, in one page: what any upload that must both hash the file and
   send it can do on this machine, with no sockhub in it.

(a), (b) and (d) run in a page of the receiver's own origin, which also serves the
page's scripts (the sockhub page's CSP lets it talk to its own server only).

An upload must hash and send, so it cannot beat the slower of (a) and (b); the target
figure is (c) / min(a, b) per round, and its median. (c) / (d) is what sockhub itself
costs over that. Rates are MB/s (10^6 bytes).
"""

from __future__ import annotations

import base64
import os
import tempfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from sockhub.web.static import Asset, load_assets

from ._procs import interleaved, median, ratio_median, report_port, spawn_server
from ._table import print_table
from .bench_web import serve_web_with

SIZE = 256 * 1024 * 1024
ROUNDS = 5
TIMEOUT_MS = 300_000
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]

RECEIVER_PAGE = b"<!doctype html><title>receiver</title><input id=pick type=file>"
IN_PAGE = """async ([input, hash, post]) => {
    const { Hasher } = await import("/js/files.js");
    const file = input.files[0];
    const hasher = new Hasher();
    const started = performance.now();
    const posting = async () => {
        const answer = await fetch("/upload", { method: "POST", body: file });
        if (!answer.ok) throw new Error(`upload answered ${answer.status}`);
    };
    await Promise.all([hash ? hasher.file(file) : null, post ? posting() : null]);
    hasher.close();
    return (performance.now() - started) / 1000;
}"""
"""Seconds to hash the picked file (the page's way), POST it, or both at once."""
WATCH_UPLOAD = """(name) => {
    const input = document.querySelector("#upload-input");
    const transfers = document.querySelector("#transfers");
    const shown = (state) => transfers.querySelector(`li[data-path='${name}'][data-state='${state}']`);
    let picked = null;
    input.addEventListener("change", () => (picked = performance.now()), { capture: true, once: true });
    window.uploadTimed = new Promise((resolve, reject) => {
        new MutationObserver((_, watching) => {
            if (picked !== null && shown("done")) {
                watching.disconnect();
                resolve((performance.now() - picked) / 1000);
            } else if (shown("failed")) {
                watching.disconnect();
                reject(new Error(`the upload of ${name} failed`));
            }
        }).observe(transfers, { subtree: true, childList: true, attributes: true });
    });
}"""
"""Starts timing the upload of ``name``: ``window.uploadTimed`` gives its seconds."""


class Receiver(BaseHTTPRequestHandler):
    """GET ``/``: a page with a file picker; GET of the sockhub page's files (its hashing
    worker and what that loads); POST: the body written to a temp file, then 204."""

    assets: dict[str, Asset] = {}
    """The page's files, loaded by the receiver's own process (``serve_receiver``)."""

    def do_GET(self) -> None:
        asset = self.assets.get(self.path) if self.path.startswith("/js/") else None
        body, kind = (
            (RECEIVER_PAGE, "text/html") if asset is None else (asset.body, asset.content_type)
        )
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

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
    Receiver.assets = load_assets()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    report_port(ready, server.server_address[1])
    server.serve_forever()


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
            raw = browser.new_page()
            raw.set_default_timeout(TIMEOUT_MS)
            raw.goto(f"http://127.0.0.1:{http_port}/")
            raw.set_input_files("#pick", str(source))
            picked = raw.query_selector("#pick")
            uploads = iter(range(1_000_000))

            def in_page(hash: bool, post: bool) -> float:
                return SIZE / float(raw.evaluate(IN_PAGE, [picked, hash, post])) / 1e6

            def upload() -> float:
                name = f"up{next(uploads)}.bin"
                os.link(source, Path(tmp, name))
                page.evaluate(WATCH_UPLOAD, name)
                page.set_input_files("#upload-input", str(Path(tmp, name)))
                took = float(page.evaluate("() => window.uploadTimed"))
                os.unlink(Path(tmp, name))
                os.unlink(Path(data, "files", name))  # the disk is not filled up by rounds
                return SIZE / took / 1e6

            rates = interleaved(
                {
                    "a. hashing in the page": lambda: in_page(True, False),
                    "b. raw HTTP upload": lambda: in_page(False, True),
                    "c. sockhub upload": upload,
                    "d. a and b at once": lambda: in_page(True, True),
                },
                ROUNDS,
            )
            browser.close()
    a, b, c, d = rates.values()
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
    print(
        f"d / min(a, b): median {ratio_median(d, [min(x, y) for x, y in zip(a, b, strict=True)]):.2f}"
        f"; c / d: median {ratio_median(c, d):.2f}"
    )
