"""The interactive ``sockhub chat``: prompt_toolkit keeps the input line while lines arrive.

Incoming lines are printed above the prompt (prompt_toolkit redraws it underneath),
so what you are typing is never garbled by a message arriving mid-word.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from prompt_toolkit import PromptSession, print_formatted_text
from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document
from prompt_toolkit.formatted_text import FormattedText
from prompt_toolkit.key_binding import KeyPressEvent
from prompt_toolkit.patch_stdout import patch_stdout
from prompt_toolkit.styles import Style

from ..client.chat_session import Incoming
from ..protocol.text import escape
from .chat_control import Controller
from .chat_render import Fragments, fragments
from .prompt_keys import safe_bindings

__all__ = ["TuiView", "run_tui"]

STYLE = Style.from_dict(
    {
        "time": "ansibrightblack",
        "room": "ansicyan",
        "event": "ansibrightblack italic",
        "history": "dim",
        "notice": "ansiyellow bold",
        "info": "ansibrightblack",
        "error": "ansired",
        "prompt": "bold",
    }
)


class TuiView:
    """Prints above the prompt, in colour."""

    def __init__(self, rooms: Callable[[], int]) -> None:
        self._rooms = rooms

    def _print(self, parts: Fragments) -> None:
        print_formatted_text(FormattedText(parts), style=STYLE)

    def show(self, item: Incoming) -> None:
        self._print(fragments(item, self._rooms()))

    def info(self, text: str, data: dict[str, Any]) -> None:
        self._print([("class:info", escape(text, None, keep_lines=True))])

    def error(self, text: str, data: dict[str, Any]) -> None:
        self._print([("class:error", escape(text, None, keep_lines=True))])


class _Complete(Completer):
    """Tab: /commands at the start of a line, nicks of the current room anywhere."""

    def __init__(self, controller: Controller) -> None:
        self._controller = controller

    def get_completions(self, document: Document, event: CompleteEvent) -> Iterator[Completion]:
        word = document.get_word_before_cursor(WORD=True)
        before = document.text_before_cursor
        if before.startswith("/") and " " not in before:
            names = self._controller.command_names()
        else:
            at_start = before == word
            names = [n + (": " if at_start else "") for n in self._controller.nicks()]
        fold = word.casefold()
        for name in names:
            if name.casefold().startswith(fold):
                yield Completion(name, start_position=-len(word))


def _keep_going(view: TuiView) -> Callable[[asyncio.AbstractEventLoop, dict[str, Any]], None]:
    """Whatever the terminal sends, one bad sequence must not end the client or print a
    traceback over the screen: it is reported on one line and the prompt goes on."""

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        view.error(f"ignored: {exc or context.get('message')}", {})

    return handler


async def run_tui(controller: Controller, room: str, history: int) -> int:
    """Join ``room``, then read lines until /quit, Ctrl-D or Ctrl-C.

    The typed line is erased once sent: it comes back from the server, once, in order.
    """

    def prompt() -> FormattedText:
        where = controller.current or "no room"
        state = controller.session.state.rooms.get(controller.current or "")
        nick = state.nick if state is not None else controller.nick
        return FormattedText(
            [("class:room", f"[{where}] "), ("class:prompt", f"{escape(nick, 64)}> ")]
        )

    bindings = safe_bindings()

    async def more() -> None:
        await controller.handle("/more")

    @bindings.add("pageup")
    def _more(event: KeyPressEvent) -> None:
        """Scroll-back without typing: the same as ``/more``."""
        event.app.create_background_task(more())

    session: PromptSession[str] = PromptSession(
        prompt,
        style=STYLE,
        erase_when_done=True,
        key_bindings=bindings,
        completer=_Complete(controller),
        complete_while_typing=False,
    )
    loop = asyncio.get_running_loop()
    assert isinstance(controller.view, TuiView)
    loop.set_exception_handler(_keep_going(controller.view))
    with patch_stdout():
        controller.view.info("type /help for commands; Tab completes nicks and commands", {})
        await controller.join(room, history=history)
        pump = loop.create_task(controller.pump())
        pump.add_done_callback(
            lambda _: session.app.exit(exception=EOFError()) if session.app.is_running else None
        )
        try:
            while not pump.done():
                try:
                    line = await session.prompt_async()
                except (EOFError, KeyboardInterrupt):
                    break
                if not await controller.handle(line):
                    break
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump  # the session's end (a refused key) is raised from here
    return 0
