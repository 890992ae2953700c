"""Replies cut into pages that fit a header: ``file.list``, ``chat.rooms``, ``chat.who``.

A list a client can make grow without bound (a folder, the rooms, a room's members)
must never become one header over ``max_header``: each reply carries the entries that
fit, sorted, and ``"more": true`` when there are others; the client asks again with
``"after"`` set to the last name it got (PROTOCOL.md sections 6 and 7).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec

__all__ = ["PAGE_BYTES", "page_budget", "take_page"]

PAGE_BYTES = 60_000
"""Encoded entries per reply, below the 64 KiB header every client accepts."""
_HEADER_ROOM = 1024
"""What the rest of a reply's header (op, re, path or room, more) may take."""


def page_budget(max_header: int) -> int:
    """Entry bytes a page may hold under the server's ``max_header`` (at least one entry)."""
    return max(1, min(PAGE_BYTES, max_header - _HEADER_ROOM))


def take_page(entries: Iterable[Any], budget: int) -> tuple[list[Any], bool]:
    """The leading ``entries`` that fit ``budget`` encoded bytes (never none), and whether
    any were left over."""
    page: list[Any] = []
    used = 0
    for entry in entries:
        used += len(msgspec.json.encode(entry)) + 1
        if used > budget and page:
            return page, True
        page.append(entry)
    return page, False
