"""The interactive ``sockhub chat``: prompt_toolkit keeps the input line while lines arrive.

Incoming lines are printed above the prompt (prompt_toolkit redraws it underneath),
so what you are typing is never garbled by a message arriving mid-word.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from prompt_toolkit import PromptSession, print_formatted_text
from prompt_toolkit.formatted_text import FormattedText
from prompt_toolkit.patch_stdout import patch_stdout
from prompt_toolkit.styles import Style

from ..client.chat_session import Incoming
from ..protocol.text import escape
from .chat_control import Controller
from .chat_render import Fragments, fragments

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


async def run_tui(controller: Controller, room: str, history: int) -> int:
    """Join ``room``, then read lines until /quit, Ctrl-D or Ctrl-C."""

    def prompt() -> FormattedText:
        where = controller.current or "no room"
        state = controller.session.state.rooms.get(controller.current or "")
        nick = state.nick if state is not None else controller.nick
        return FormattedText(
            [("class:room", f"[{where}] "), ("class:prompt", f"{escape(nick, 64)}> ")]
        )

    session: PromptSession[str] = PromptSession(prompt, style=STYLE)
    with patch_stdout():
        controller.view.info("type /help for commands", {})
        await controller.join(room, history=history)
        pump = asyncio.get_running_loop().create_task(controller.pump())
        try:
            while True:
                try:
                    line = await session.prompt_async()
                except (EOFError, KeyboardInterrupt):
                    break
                if not await controller.handle(line):
                    break
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump
    return 0
