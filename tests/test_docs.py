"""The documentation keeps up with the code."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from sockhub.server.limits import Limits

ROOT = Path(__file__).resolve().parent.parent


def test_every_limit_is_documented() -> None:
    page = (ROOT / "docs" / "limits.md").read_text()
    missing = [f.name for f in dataclasses.fields(Limits) if f"`{f.name}`" not in page]
    assert not missing, f"docs/limits.md does not describe: {', '.join(missing)}"


def test_readme_opens_with_the_two_commands() -> None:
    head = (ROOT / "README.md").read_text().split("\n\n", 3)[:3]
    text = "\n".join(head)
    assert "make serve" in text and "make test" in text
