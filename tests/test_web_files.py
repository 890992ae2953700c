"""Files in the page, in real Chromium: upload by the picker with the sha256 computed in a
worker, download verified, and an upload cut by a reload resumed by picking it again."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
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


def files_page(web: RunningWeb, chromium: Any) -> Any:
    key = web.srv.add_user("fay", ("chat", "files"))
    page = chromium.new_context(accept_downloads=True).new_page()
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
    page.wait_for_function(
        "total => { const bar = document.querySelector(\"#transfers li[data-state='sending'] progress\");"
        " return bar && bar.value > total / 4; }",
        arg=total,
        timeout=120_000,
    )
    page.screenshot(path=str(artifact_dir(request) / "sending.png"))
    page.reload()
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
