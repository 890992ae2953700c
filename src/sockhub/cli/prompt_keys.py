"""Key bindings every prompt_toolkit prompt of sockhub uses (chat, talk).

Mouse reports are dropped: these prompts have no mouse support, and a malformed report
(``ESC [ < 1 M``, typed or pasted) would crash prompt_toolkit's own handler, which
assumes three numbers. Dropping it keeps the rest of the line.
"""

from __future__ import annotations

from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from prompt_toolkit.keys import Keys

__all__ = ["safe_bindings"]


def safe_bindings() -> KeyBindings:
    bindings = KeyBindings()

    @bindings.add(Keys.Vt100MouseEvent)
    def _ignore(event: KeyPressEvent) -> None:
        return None

    return bindings
