"""Files in the page, in real Chromium: upload by the picker with the sha256 computed in a
worker, download verified, and an upload cut by a reload resumed by picking it again."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .conftest import b64
from .test_web_chat import enter
from .web_support import RunningWeb, artifact_dir, chromium, running_web

__all__ = ["chromium"]  # the fixture, used by name

DONE = "#transfers li[data-state='done']"


@pytest.fixture
def web(tmp_path: Path) -> Iterator[RunningWeb]:
    with running_web(tmp_path / "data", udp=False) as running:
        yield running


def files_page(web: RunningWeb, chromium: Any, init: str = "") -> Any:
    key = web.srv.add_user("fay", ("chat", "files"))
    page = chromium.new_context(accept_downloads=True).new_page()
    if init:
        page.add_init_script(init)
    enter(page, web.url, user="fay", key=b64(key))
    page.click("#tab-files")
    page.wait_for_selector("#files-panel:not([hidden])")
    return page


def sha(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def test_upload_by_picker_is_verified(
    web: RunningWeb, chromium: Any, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    source = tmp_path / "photo.bin"
    source.write_bytes(os.urandom(5 * 1024 * 1024 + 3))
    page = files_page(web, chromium)
    page.set_input_files("#upload-input", str(source))
    page.wait_for_selector(DONE, timeout=60_000)
    page.wait_for_selector("#entries li[data-name='photo.bin']")
    page.screenshot(path=str(artifact_dir(request) / "uploaded.png"))
    stored = web.srv.data / "files" / "photo.bin"
    assert sha(stored) == sha(source)
    assert sha(source)[:16] in (page.text_content(DONE) or "")


def test_download_is_verified(web: RunningWeb, chromium: Any, tmp_path: Path) -> None:
    folder = web.srv.data / "files" / "docs"
    folder.mkdir(parents=True)
    data = os.urandom(3 * 1024 * 1024 + 11)
    (folder / "report.pdf").write_bytes(data)
    page = files_page(web, chromium)
    page.click("#entries li[data-name='docs']")
    page.wait_for_selector("#entries li[data-name='report.pdf']")
    with page.expect_download(timeout=60_000) as info:
        page.click("#entries li[data-name='report.pdf']")
    saved = tmp_path / "saved.pdf"
    info.value.save_as(saved)
    assert saved.read_bytes() == data
    page.wait_for_selector(DONE)


@pytest.mark.slow
def test_upload_cut_by_a_reload_resumes_when_picked_again(
    web: RunningWeb, chromium: Any, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    source = tmp_path / "big.iso"
    with source.open("wb") as fh:
        for _ in range(200):
            fh.write(os.urandom(1024 * 1024))
    total = source.stat().st_size
    page = files_page(web, chromium)
    page.set_input_files("#upload-input", str(source))
    # the reload comes from the page itself, as soon as a quarter is out: from here it
    # would come a screenshot and a round trip later, and a fast upload may have ended
    with page.expect_navigation(timeout=120_000):
        page.evaluate(
            """total => {
                const check = () => {
                    const bar = document.querySelector("#transfers li[data-state='sending'] progress");
                    if (bar && bar.value > total / 4) location.reload();
                    else setTimeout(check, 5);
                };
                check();
            }""",
            total,
        )
    page.wait_for_selector("#chat:not([hidden])")
    page.click("#tab-files")
    page.set_input_files("#upload-input", str(source))
    page.wait_for_selector(DONE, timeout=180_000)
    note = page.text_content(DONE) or ""
    page.screenshot(path=str(artifact_dir(request) / "resumed.png"))
    assert "resumed at" in note
    resumed_at = int(note.split("resumed at ")[1].split(" ")[0])
    # all of it when the cut came after the last byte, while the worker was still hashing
    assert 0 < resumed_at <= total
    assert sha(web.srv.data / "files" / "big.iso") == sha(source)


def test_upload_by_drag_and_drop(web: RunningWeb, chromium: Any) -> None:
    page = files_page(web, chromium)
    transfer = page.evaluate_handle(
        """() => {
            const dt = new DataTransfer();
            const bytes = new TextEncoder().encode("dropped ".repeat(20000));
            dt.items.add(new File([bytes], "dropped.txt", { type: "text/plain" }));
            return dt;
        }"""
    )
    page.dispatch_event("#drop", "drop", {"dataTransfer": transfer})
    page.wait_for_selector(DONE, timeout=60_000)
    stored = web.srv.data / "files" / "dropped.txt"
    assert stored.read_bytes() == b"dropped " * 20000


def test_download_cut_by_a_lost_connection_resumes(
    web: RunningWeb, chromium: Any, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Streamed: the first connection is cut halfway through a message of the body (a
    relay in the browser, Playwright's route_web_socket); once the page has reconnected
    the download resumes at the bytes received (file.get with offset), and the whole is
    verified and saved."""
    data = put_file(web, "big.bin", 4 * 1024 * 1024 + 5)
    page = files_page(web, chromium)
    page.wait_for_selector("#entries li[data-name='big.bin']")
    # a part of the body's first large message, then the cut
    download = relayed_download(
        page, "big.bin", lambda n, message: Cut(message[: len(message) // 2]) if n == 1 else message
    )
    saved = tmp_path / "saved.bin"
    download.save_as(saved)
    page.wait_for_selector(DONE)
    page.screenshot(path=str(artifact_dir(request) / "download-resumed.png"))
    note = page.text_content(DONE) or ""
    assert "resumed at" in note  # on a later socket: the first one was closed
    assert 0 < int(note.split("resumed at ")[1].split(" ")[0]) < len(data)
    assert saved.read_bytes() == data


def put_file(web: RunningWeb, name: str, size: int) -> bytes:
    folder = web.srv.data / "files"
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / name).open("wb") as fh:
        for at in range(0, size, 1 << 20):
            fh.write(os.urandom(min(1 << 20, size - at)))
    return (folder / name).read_bytes() if size < 1 << 24 else b""


def service_worker_counters(page: Any) -> dict[str, int]:
    (worker,) = page.context.service_workers
    return dict(worker.evaluate("({ opened: self.opened, peakQueued: self.peakQueued })"))


@pytest.mark.slow
def test_large_download_is_written_to_disk_as_it_arrives(
    web: RunningWeb, chromium: Any, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """200 MB through the service worker's stream: the browser's download writer takes
    it while it arrives, and the page asks the server for more only as the disk keeps up,
    so the bytes held between the socket and the disk stay under download.js's AHEAD."""
    put_file(web, "disk.img", 200 * 1024 * 1024)
    page = files_page(web, chromium)
    page.wait_for_selector("#entries li[data-name='disk.img']")
    with page.expect_download(timeout=60_000) as info:
        page.click("#entries li[data-name='disk.img']")
    download = info.value
    assert "/dl/" in download.url  # the service worker's URL, not a blob: at the end
    saved = tmp_path / "disk.img"
    download.save_as(saved)
    assert download.failure() is None
    page.wait_for_selector(DONE, timeout=120_000)
    page.screenshot(path=str(artifact_dir(request) / "downloaded.png"))
    assert sha(saved) == sha(web.srv.data / "files" / "disk.img")
    ahead = page.evaluate("import('/js/download.js').then((m) => m.AHEAD)")
    assert 0 < int(page.get_attribute(DONE, "data-peak") or 0) <= ahead
    counters = service_worker_counters(page)
    assert counters["opened"] == 1
    assert 0 < counters["peakQueued"] <= ahead


@dataclass
class Cut:
    """What a relay's ``change`` gives to send ``part`` of a message, then close the
    socket both ways."""

    part: bytes


def relayed_download(page: Any, name: str, change: Any, *, reachable: bool = True) -> Any:
    """The page reloaded behind a relay (Playwright's route_web_socket) whose first
    socket passes its large messages through ``change`` (None drops one, a ``Cut`` ends
    the socket); later sockets are relayed as they are, or closed at once when the server
    is no longer ``reachable``. Returns the download once it has started."""
    state = {"connections": 0, "large": 0}

    def relay(ws: Any) -> None:
        state["connections"] += 1
        first = state["connections"] == 1
        if not (first or reachable):
            ws.close()
            return
        server = ws.connect_to_server()

        def down(message: str | bytes) -> None:
            if first and isinstance(message, bytes) and len(message) > 100_000:
                state["large"] += 1
                message = change(state["large"], message)
                if message is None:
                    return
                if isinstance(message, Cut):
                    ws.send(message.part)
                    ws.close()
                    server.close()
                    return
            ws.send(message)

        ws.on_message(server.send)
        server.on_message(down)

    page.route_web_socket("**/ws", relay)
    page.reload()
    page.wait_for_selector("#chat:not([hidden])")
    page.click("#tab-files")
    page.wait_for_selector(f"#entries li[data-name='{name}']")
    with page.expect_download(timeout=60_000) as info:
        page.click(f"#entries li[data-name='{name}']")
    return info.value


def test_download_whose_connection_is_gone_for_good_fails(web: RunningWeb, chromium: Any) -> None:
    """Cut midway, and no later socket reaches the server: the page keeps trying for
    about a minute (its clock is run forward here), then the download fails, saying so,
    and the browser marks it failed rather than complete."""
    put_file(web, "gone.bin", 4 * 1024 * 1024 + 5)
    page = files_page(web, chromium)
    page.clock.install()
    download = relayed_download(
        page,
        "gone.bin",
        lambda n, message: Cut(message[: len(message) // 2]) if n == 1 else message,
        reachable=False,
    )
    page.wait_for_selector("#transfers li[data-state='receiving']:has-text('resuming')")
    page.clock.fast_forward("01:05")
    failed = page.wait_for_selector("#transfers li[data-state='failed']")
    assert "not back within a minute" in (failed.text_content() or "")
    assert download.failure()


def test_download_not_matching_the_servers_hash_is_not_saved(
    web: RunningWeb, chromium: Any
) -> None:
    """One byte changed on the way: the hash of the whole does not match, the last piece
    is never written and the stream is errored, so the browser marks the download failed."""
    put_file(web, "flipped.bin", 6 * 1024 * 1024 + 3)
    page = files_page(web, chromium)

    def flip(n: int, message: bytes) -> bytes:
        changed = bytearray(message)
        if n == 1:
            changed[-1000] ^= 1
        return bytes(changed)

    download = relayed_download(page, "flipped.bin", flip)
    assert download.failure()
    failed = "#transfers li[data-state='failed']"
    page.wait_for_selector(failed)
    assert "do not match the server's sha256" in (page.text_content(failed) or "")


def test_download_whose_page_goes_away_midway_is_not_saved(web: RunningWeb, chromium: Any) -> None:
    """The connection stalls after the first piece and the page is reloaded: the hashing
    worker and its port to the service worker are gone, the stream is errored, and the
    browser marks the download failed rather than complete."""
    put_file(web, "cut.bin", 12 * 1024 * 1024)
    page = files_page(web, chromium)
    download = relayed_download(page, "cut.bin", lambda n, message: message if n == 1 else None)
    page.wait_for_selector("#transfers li[data-state='receiving']")
    page.reload()
    assert download.failure()


def test_download_without_a_service_worker_is_bounded(web: RunningWeb, chromium: Any) -> None:
    """Where the browser offers no service worker (plain http across a LAN; forced here),
    a download is kept as a Blob and saved at the end, up to the bound (1 MiB here, set
    in localStorage as a user may): a file of exactly the bound is saved, one byte more is
    refused with a word on what to do instead, and no download starts."""
    limit = 1024 * 1024
    init = f'delete Navigator.prototype.serviceWorker; localStorage.setItem("sockhub.blobLimit", "{limit}");'
    at_limit = put_file(web, "fits.bin", limit)
    put_file(web, "over.bin", limit + 1)
    page = files_page(web, chromium, init)
    page.wait_for_selector("#download-note:not([hidden])")
    started: list[Any] = []
    page.on("download", lambda download: started.append(download))
    page.click("#entries li[data-name='over.bin']")
    refused = page.wait_for_selector("#transfers li[data-state='failed']")
    assert "sockhub get" in (refused.text_content() or "")
    with page.expect_download(timeout=60_000) as info:
        page.click("#entries li[data-name='fits.bin']")
    assert info.value.url.startswith("blob:")
    assert Path(info.value.path()).read_bytes() == at_limit
    assert started == [info.value]
