"""A server with its web listener, on free loopback ports, for the web tests."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from sockhub.web import WebListener

from .conftest import RunningServer, running_server


class RunningWeb:
    """The framed server (``srv``) and its web port (``url``, ``port``) on one loop."""

    def __init__(self, srv: RunningServer) -> None:
        self.srv = srv
        assert srv.server is not None
        self.web = self._on_loop(self._start(srv))

    async def _start(self, srv: RunningServer) -> WebListener:
        assert srv.server is not None
        web = WebListener(srv.server)
        await web.start()
        return web

    def _on_loop(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.srv.loop).result(timeout=30)

    @property
    def port(self) -> int:
        return self.web.addresses[0][1]

    @property
    def url(self) -> str:
        return self.web.url

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self._on_loop(self.web.close())


@contextmanager
def running_web(data: Path, **settings: Any) -> Iterator[RunningWeb]:
    settings.setdefault("web_port", 0)
    with running_server(data, **settings) as srv:
        web = RunningWeb(srv)
        try:
            yield web
        finally:
            web.close()


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Debian's chromium driven by Playwright, one browser per test module; each test
    opens its own contexts (separate cookies and storage, like separate people)."""
    if not CHROMIUM.exists():
        pytest.skip("chromium is not installed: `make sysdeps` as root on Debian installs it")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the playwright package is missing: `make install` installs it")
    with sync_playwright() as playwright:
        # launch() gives the browser a new empty profile folder of its own each time
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


def artifact_dir(request: pytest.FixtureRequest) -> Path:
    """Where a test's screenshots go: artifacts/ at the top of the tree (git-ignored)."""
    folder = Path(__file__).resolve().parent.parent / "artifacts" / request.node.name
    folder.mkdir(parents=True, exist_ok=True)
    return folder
