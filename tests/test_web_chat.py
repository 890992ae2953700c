"""The page in real Chromium: chat between browsers and a terminal client, safe rendering,
and nothing lost or repeated across a reload and a server restart."""

from __future__ import annotations

import hashlib
import hmac
import socket
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from sockhub import Client
from sockhub.client.chat import ChatMessage

from .conftest import UNTHROTTLED_CHAT, b64
from .web_support import RunningWeb, artifact_dir, chromium, running_web

__all__ = ["chromium"]  # the fixture, used by name

MESSAGES = "#messages li.msg:not(.event)"
READ = "els => els.map(e => [e.querySelector('.from').textContent, e.querySelector('.text').textContent])"


def enter(
    page: Any, url: str, *, nick: str = "", user: str = "", key: str = "", room: str = "lobby"
) -> None:
    page.goto(url)
    page.fill("#user", user)
    page.fill("#key", key)
    page.fill("#nick", nick)
    page.fill("#room", room)
    page.click("#go")
    page.wait_for_selector("#chat:not([hidden])")
    page.wait_for_selector(f"#rooms li[data-room='{room}'].active")


def say(page: Any, text: str) -> None:
    page.fill("#input", text)
    page.press("#input", "Enter")


def shown(page: Any) -> list[list[str]]:
    return page.eval_on_selector_all(MESSAGES, READ)  # type: ignore[no-any-return]


def wait_count(page: Any, n: int, timeout: float = 20_000) -> None:
    page.wait_for_function(
        "n => document.querySelectorAll('#messages li.msg:not(.event)').length >= n",
        arg=n,
        timeout=timeout,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def web(tmp_path: Path) -> Any:
    with running_web(tmp_path / "data", udp=False) as running:
        yield running


def test_two_browsers_and_a_terminal_user_see_the_same_order(
    web: RunningWeb, chromium: Any, request: pytest.FixtureRequest
) -> None:
    key = web.srv.add_user("bob", ("chat",))
    ann = chromium.new_context().new_page()
    bob = chromium.new_context().new_page()
    enter(ann, web.url, nick="ann")
    enter(bob, web.url, user="bob", key=b64(key))
    with Client.connect(web.srv.address) as carol:
        carol.join("lobby", "carol")
        web.srv.wait_until(lambda: len(web.srv.server.connections) == 3)  # type: ignore[union-attr]
        for i in range(5):  # three senders at once, five rounds
            say(ann, f"ann {i}")
            say(bob, f"bob {i}")
            carol.say("lobby", f"carol {i}")
        wait_count(ann, 15)
        wait_count(bob, 15)
        members = bob.eval_on_selector_all("#members li", "els => els.map(e => e.textContent)")
        assert sorted(members) == ["ann", "bob", "carol"]
        heard = []
        while len(heard) < 15:
            item = carol.next_chat(timeout=20)
            if isinstance(item, ChatMessage):
                heard.append([item.sender, item.text])
    folder = artifact_dir(request)
    ann.screenshot(path=str(folder / "ann.png"))
    bob.screenshot(path=str(folder / "bob.png"))
    assert shown(ann) == shown(bob) == heard
    assert sorted(t for _, t in heard) == sorted(
        f"{who} {i}" for who in ("ann", "bob", "carol") for i in range(5)
    )
    assert bob.text_content("#whoami") == "logged in as bob"


def test_markup_and_bidi_tricks_show_as_text(
    web: RunningWeb, chromium: Any, request: pytest.FixtureRequest
) -> None:
    page = chromium.new_context().new_page()
    enter(page, web.url, nick="ann")
    evil = '<script>window.owned=1</script><img src=x onerror="window.owned=2"><b>bold</b>'
    with Client.connect(web.srv.address) as carol:
        carol.join("lobby", "carol")
        carol.say("lobby", evil)
        carol.say("lobby", "invoice \u202egnp.exe")
    wait_count(page, 2)
    page.screenshot(path=str(artifact_dir(request) / "markup.png"))
    assert shown(page) == [["carol", evil], ["carol", "invoice <U+202E>gnp.exe"]]
    assert page.evaluate("window.owned") is None
    assert page.locator("#messages script, #messages img, #messages b").count() == 0


def test_hmac_without_webcrypto_matches_python(web: RunningWeb, chromium: Any) -> None:
    """Plain http across a LAN has no crypto.subtle: the page's own HMAC must be exact."""
    page = chromium.new_context().new_page()
    page.goto(web.url)
    cases = [(b"k", b""), (b"k" * 100, b"m" * 64), (bytes(range(64)), bytes(range(256)) * 3)]
    for key, message in cases:
        got = page.evaluate(
            """async ([key, message]) => {
                const m = await import('/js/sha256.js');
                return m.hex(m.hmacSha256Js(new Uint8Array(key), new Uint8Array(message)));
            }""",
            [list(key), list(message)],
        )
        assert got == hmac.digest(key, message, "sha256").hex()
        digest = page.evaluate(
            "async (m) => { const s = await import('/js/sha256.js'); return s.hex(s.sha256(new Uint8Array(m))); }",
            list(message),
        )
        assert digest == hashlib.sha256(message).hexdigest()


def test_wrong_key_is_refused_in_the_page(web: RunningWeb, chromium: Any) -> None:
    web.srv.add_user("bob", ("chat",))
    page = chromium.new_context().new_page()
    page.goto(web.url)
    page.fill("#user", "bob")
    page.fill("#key", b64(b"\x01" * 32))
    page.click("#go")
    page.wait_for_function("() => document.querySelector('#login-error').textContent !== ''")
    assert page.is_visible("#login")
    assert not page.is_visible("#chat")


@pytest.mark.slow
def test_reload_and_server_restart_lose_nothing(
    tmp_path: Path, chromium: Any, request: pytest.FixtureRequest
) -> None:
    data = tmp_path / "data"
    ports = {"port": free_port(), "web_port": free_port(), "udp": False}
    page = chromium.new_context().new_page()
    with running_web(data, **ports) as web:
        enter(page, web.url, nick="ann")
        with Client.connect(web.srv.address) as carol:
            carol.join("lobby", "carol")
            carol.say("lobby", "m1")
            carol.say("lobby", "m2")
            wait_count(page, 2)
            carol.say("lobby", "m3")
            page.reload()  # m3 may land before or after: either way once
            carol.say("lobby", "m4")
            wait_count(page, 4)
            assert [t for _, t in shown(page)] == ["m1", "m2", "m3", "m4"]
    page.wait_for_selector("#banner:not([hidden])")
    page.screenshot(path=str(artifact_dir(request) / "reconnecting.png"))
    with running_web(data, **ports) as web:
        with Client.connect(web.srv.address) as carol:
            carol.join("lobby", "carol")
            carol.say("lobby", "m5")
        wait_count(page, 5)
        page.wait_for_selector("#banner[hidden]", state="attached")
        page.screenshot(path=str(artifact_dir(request) / "restarted.png"))
        assert [t for _, t in shown(page)] == ["m1", "m2", "m3", "m4", "m5"]


def test_login_over_https(tmp_path: Path, chromium: Any, request: pytest.FixtureRequest) -> None:
    with running_web(tmp_path / "data", tls=True, udp=False) as web:
        key = web.srv.add_user("bob", ("chat",))
        page = chromium.new_context(ignore_https_errors=True).new_page()
        enter(page, web.url, user="bob", key=b64(key))
        say(page, "over tls")
        wait_count(page, 1)
        page.screenshot(path=str(artifact_dir(request) / "https.png"))
        assert shown(page) == [["bob", "over tls"]]
        assert page.evaluate("location.protocol") == "https:"


def test_the_page_lists_every_member_of_a_room_bigger_than_one_header(
    tmp_path: Path, chromium: Any
) -> None:
    nicks = [f"{'m' * 29}{i:03d}" for i in range(70)]  # the joined reply holds a page of them
    with running_web(tmp_path / "data", udp=False, max_header=2048) as web, ExitStack() as stack:
        for nick in nicks:
            stack.enter_context(Client.connect(web.srv.address)).join("lobby", nick)
        page = chromium.new_context().new_page()
        enter(page, web.url, nick="ann")
        page.wait_for_function(
            "n => document.querySelectorAll('#members li').length >= n", arg=len(nicks) + 1
        )
        members = page.eval_on_selector_all("#members li", "els => els.map(e => e.textContent)")
        assert sorted(members) == sorted([*nicks, "ann"])


SEQS = "els => els.map(e => Number(e.dataset.seq))"


def test_scrolling_to_the_top_loads_older_messages_in_order(
    tmp_path: Path, chromium: Any, request: pytest.FixtureRequest
) -> None:
    """300 messages, 50 shown on joining: scrolling to the top loads the rest a page at a
    time, the reader's view stays put, and a reload then a new message repeat nothing."""
    texts = [f"m{n}" for n in range(1, 301)]
    texts[6] = "<i>m7</i>"  # markup in an old message is still text
    with running_web(tmp_path / "data", udp=False, **UNTHROTTLED_CHAT) as web:
        with Client.connect(web.srv.address) as carol:
            carol.join("lobby", "carol")
            for text in texts:
                carol.say("lobby", text)
            page = chromium.new_context().new_page()
            enter(page, web.url, nick="ann")
            wait_count(page, 50)
            assert page.eval_on_selector_all(MESSAGES, SEQS) == list(range(251, 301))
            page.eval_on_selector("#messages", "list => { list.scrollTop = 0; }")
            wait_count(page, 150)
            place = page.eval_on_selector(
                "#messages",
                "list => list.querySelector('li[data-seq=\"251\"]').getBoundingClientRect().top"
                " - list.getBoundingClientRect().top",
            )
            assert abs(place) <= 1  # still where it was: at the top of the view
            assert page.locator("#messages .begin").count() == 0
            while page.locator("#messages .begin").count() == 0:
                count = page.locator(MESSAGES).count()
                page.eval_on_selector("#messages", "list => { list.scrollTop = 0; }")
                page.wait_for_function(
                    "n => document.querySelectorAll('#messages li.msg:not(.event)').length > n"
                    " || document.querySelector('#messages .begin')",
                    arg=count,
                )
            page.eval_on_selector("#messages", "list => { list.scrollTop = 0; }")
            page.screenshot(path=str(artifact_dir(request) / "scrolled-back.png"))
            assert page.eval_on_selector_all(MESSAGES, SEQS) == list(range(1, 301))
            assert [t for _, t in shown(page)] == texts
            assert page.locator("#messages i").count() == 0
            assert page.locator("#messages li").first.text_content() == "beginning of history"
            page.reload()  # the tab keeps what it showed and rejoins with since
            carol.say("lobby", "after the reload")
            wait_count(page, 301)
            assert page.eval_on_selector_all(MESSAGES, SEQS) == list(range(1, 302))
            assert [t for _, t in shown(page)] == [*texts, "after the reload"]
