"""The README's Python examples that need no key or local file run as written, against a
real server (only the address is changed to the test server's)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from .conftest import RunningServer

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = [
    block
    for block in re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    if "key" not in block and "put(" not in block
]


def test_the_readme_has_runnable_python_examples() -> None:
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("block", BLOCKS, ids=[b.splitlines()[2][:40] for b in BLOCKS])
def test_a_readme_python_example_runs(srv: RunningServer, block: str) -> None:
    scope: dict[str, object] = {}
    exec(compile(block.replace("127.0.0.1:9696", srv.address), "README.md", "exec"), scope)
    main = scope.get("main")
    if main is not None:
        asyncio.run(main())  # type: ignore[operator]
