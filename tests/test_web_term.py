"""The page's terminal in real Chromium: an interactive program on a server pty, typed
into, resized, and its exit status shown, under the page's strict Content-Security-Policy."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import b64
from .test_web_chat import enter
from .web_support import RunningWeb, artifact_dir, chromium, running_web

__all__ = ["chromium"]  # the fixture, used by name

ROWS = "() => [...document.querySelectorAll('#term .xterm-rows > div')].map(r => r.textContent)"


@pytest.fixture
def web(tmp_path: Path) -> Iterator[RunningWeb]:
    with running_web(tmp_path / "data", udp=False, exec=True, exec_kill_grace=0.3) as running:
        yield running


def screen(page: Any) -> str:
    return "\n".join(page.evaluate(ROWS))


def wait_screen(page: Any, text: str) -> None:
    page.wait_for_function(
        "text => document.querySelector('#term .xterm-rows')?.textContent.includes(text)",
        arg=text,
        timeout=20_000,
    )


def typed(page: Any, line: str) -> None:
    page.keyboard.type(line)
    page.keyboard.press("Enter")


def terminal_size(page: Any, marker: str) -> tuple[int, int]:
    """Asks the program (python3) for its terminal's size, as the kernel keeps it."""
    typed(page, f"print('{marker}', *os.get_terminal_size(), sep='-')")
    wait_screen(page, f"{marker}-")
    line = next(row for row in page.evaluate(ROWS) if row.startswith(f"{marker}-"))
    _, cols, rows = line.strip().split("-")
    return int(cols), int(rows)


def test_an_interactive_program_in_the_page_terminal(
    web: RunningWeb, chromium: Any, request: pytest.FixtureRequest
) -> None:
    key = web.srv.add_user("alice", ("chat", "exec"))
    page = chromium.new_context(viewport={"width": 1200, "height": 700}).new_page()
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    enter(page, web.url, user="alice", key=b64(key))
    page.click("#tab-term")
    page.fill("#run-cmd", "python3 -q")
    page.click("#run")
    wait_screen(page, ">>> ")
    typed(page, "print(6 * 7)")
    wait_screen(page, "42")
    # a colour: xterm.js's theme rules are <style> elements the policy does not apply
    typed(page, r"print('\033[31mred\033[0m' + 'dish')")
    wait_screen(page, "reddish")
    red = page.evaluate(
        "() => { const s = [...document.querySelectorAll('#term .xterm-rows span')]"
        ".find(e => e.textContent === 'red'); return s && getComputedStyle(s).color; }"
    )
    assert red == "rgb(204, 0, 0)"  # xterm.js's ANSI red, not the default foreground
    # 24-bit colour: a style attribute upstream (refused by the policy), the CSSOM in our copy
    typed(page, r"print('\033[38;2;18;52;86;48;2;200;100;50mtrue\033[0m' + 'colour')")
    wait_screen(page, "truecolour")
    fg, bg = page.evaluate(
        "() => { const s = [...document.querySelectorAll('#term .xterm-rows span')]"
        ".find(e => e.textContent === 'true'); const c = s && getComputedStyle(s);"
        " return c ? [c.color, c.backgroundColor] : null; }"
    )
    assert (fg, bg) == ("rgb(18, 52, 86)", "rgb(200, 100, 50)")
    typed(page, "import os")
    cols, rows = terminal_size(page, "before")
    assert rows == len(page.evaluate(ROWS))
    page.set_viewport_size({"width": 800, "height": 500})
    page.wait_for_function(
        "n => document.querySelectorAll('#term .xterm-rows > div').length < n", arg=rows
    )
    smaller = terminal_size(page, "after")
    assert smaller[0] < cols and smaller[1] == len(page.evaluate(ROWS)) < rows
    page.screenshot(path=str(artifact_dir(request) / "terminal.png"))
    typed(page, "exit(3)")
    page.wait_for_function(
        "() => document.querySelector('#run-status').textContent.startsWith('exited')"
    )
    assert page.text_content("#run-status") == "exited with status 3"
    page.screenshot(path=str(artifact_dir(request) / "terminal-exited.png"))
    assert errors == []


def test_the_terminal_tab_needs_the_exec_grant(web: RunningWeb, chromium: Any) -> None:
    key = web.srv.add_user("bob", ("chat",))
    page = chromium.new_context().new_page()
    enter(page, web.url, user="bob", key=b64(key))
    assert page.locator("#tab-term").is_hidden()
