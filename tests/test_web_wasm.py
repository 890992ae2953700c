"""The page's SHA-256 in WebAssembly (web/sha256.wat): the committed module is what its
source builds, and in Chromium, under the page's own Content-Security-Policy, it hashes
as hashlib does, fed in any pieces, in the hashing worker too; where the module cannot
be had, the JavaScript code takes over with the same results."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .web_support import RunningWeb, chromium, running_web

__all__ = ["chromium"]  # the fixture, used by name

ROOT = Path(__file__).resolve().parent.parent
MiB = 1024 * 1024
SIZES = [0, 1, 55, 56, 63, 64, 65, 1000, MiB - 1, MiB, MiB + 67, 2 * MiB + 5]
"""Around the padding's edges, one block, and the module's 1 MiB input span."""
PIECES = [1, 63, 64, 1000, MiB + 1]
"""The sizes the data is fed in, in turn: block buffering and spans both crossed."""

HASH_IN_PAGE = """async ([sizes, pieces, url]) => {
    const { hex, Sha256, sha256Engine } = await import("/js/sha256.js");
    const hashes = await sha256Engine(url);
    const out = { engine: hashes.engine, whole: [], pieces: [], js: [] };
    for (const size of sizes) {
        const data = new Uint8Array(size).map((_, i) => (i * 31 + 7) & 255);
        out.whole.push(hex(hashes.create().update(data).digest()));
        out.js.push(hex(new Sha256().update(data).digest()));
        const sha = hashes.create();
        for (let at = 0, n = 0; at < size; at += pieces[n++ % pieces.length]) {
            sha.update(data.subarray(at, at + pieces[n % pieces.length]));
        }
        out.pieces.push(hex(sha.digest()));
    }
    return out;
}"""

WORKER_IN_PAGE = """async (size) => {
    const data = new Uint8Array(size).map((_, i) => (i * 31 + 7) & 255);
    const worker = new Worker("/js/hashworker.js", { type: "module" });
    const answer = new Promise((resolve) => {
        worker.onmessage = (ev) => ev.data.sha256 && resolve(ev.data);
    });
    worker.postMessage({ file: new File([data], "data.bin") });
    const { sha256, engine } = await answer;
    worker.terminate();
    return { sha256, engine };
}"""


def expected(size: int) -> str:
    return hashlib.sha256(bytes((i * 31 + 7) & 255 for i in range(size))).hexdigest()


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningWeb]:
    with running_web(tmp_path_factory.mktemp("wasm") / "data", udp=False) as running:
        yield running


@pytest.fixture(scope="module")
def page(web: RunningWeb, chromium: Any) -> Any:
    """The sockhub page (its CSP applies to what it runs), not logged in."""
    page = chromium.new_page()
    page.goto(web.url)
    return page


def test_the_committed_module_is_what_its_source_builds() -> None:
    if shutil.which("wat2wasm") is None:
        pytest.skip("wat2wasm is not installed: `make sysdeps` as root on Debian installs wabt")
    built = subprocess.run(
        [ROOT / "scripts" / "build-wasm.sh"], capture_output=True, text=True, timeout=60
    )
    assert built.returncode == 0, built.stderr


def test_webassembly_hashes_as_hashlib_does_under_the_page_policy(page: Any) -> None:
    got = page.evaluate(HASH_IN_PAGE, [SIZES, PIECES, "/js/sha256.wasm"])
    assert got["engine"] == "wasm"  # the CSP let the page compile it
    want = [expected(size) for size in SIZES]
    assert got["whole"] == want
    assert got["pieces"] == want
    assert got["js"] == want


def test_without_the_module_the_javascript_code_hashes(page: Any) -> None:
    got = page.evaluate(HASH_IN_PAGE, [SIZES[:8], PIECES, "/js/no-such.wasm"])
    assert got["engine"] == "js"
    assert got["whole"] == got["pieces"] == [expected(size) for size in SIZES[:8]]


def test_the_hashing_worker_reads_a_file_and_hashes_it_in_webassembly(page: Any) -> None:
    size = 3 * MiB + 17
    assert page.evaluate(WORKER_IN_PAGE, size) == {"sha256": expected(size), "engine": "wasm"}
