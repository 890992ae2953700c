"""Text rules shared by every side: safe display of peer text, and chat's text rules (section 6).

Peer text is shown escaped, never interpreted, so nothing a peer types can move a
cursor, recolour a terminal or reorder a log line.
"""

from __future__ import annotations

import re

from .errors import ChatBadText

__all__ = ["check_text", "escape"]

_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\\]")
_UNSAFE_KEEP_LINES = re.compile(
    r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\\]"
)
_BAD_TEXT = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _one(match: re.Match[str]) -> str:
    ch = match.group()
    if ch == "\\":
        return "\\\\"
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape(text: str, max_len: int | None = 200, *, keep_lines: bool = False) -> str:
    """Control, bidi and zero-width characters (and backslash) as visible escapes.

    ``keep_lines`` leaves tab and newline alone, for multi-line chat text on a terminal.
    """
    if max_len is not None and len(text) > max_len:
        text = text[:max_len] + "…"
    return (_UNSAFE_KEEP_LINES if keep_lines else _UNSAFE).sub(_one, text)


def check_text(body: bytes, max_bytes: int) -> str:
    """The text of a chat or talk body; ``ChatBadText`` saying why when it breaks the rules."""
    if len(body) > max_bytes:
        raise ChatBadText(f"text is {len(body)} bytes, over the limit of {max_bytes}")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ChatBadText("text is not valid UTF-8") from exc
    bad = _BAD_TEXT.search(text)
    if bad:
        raise ChatBadText(f"text has control character U+{ord(bad.group()):04X}")
    return text
