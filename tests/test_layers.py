"""The layer rule of DESIGN.md: protocol <- server <- services <- cli/web; clients beside the server."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "sockhub"
IO_MODULES = {"asyncio", "socket", "ssl", "threading", "selectors", "subprocess", "uvloop"}
# what each layer may import of sockhub (its own package is always allowed)
ALLOWED = {
    "protocol": set(),
    "server": {"protocol"},
    "client": {"protocol"},
    "talk": {"protocol", "client"},  # a peer-to-peer client: beside the server, like client/
    "services": {"protocol", "server"},
    "web": {"protocol", "server", "services"},  # the browser bridge: beside the cli
    "lab": {"protocol", "client"},  # course formats over sockhub's client: beside cli
    "cli": {"protocol", "server", "services", "client", "talk", "lab", "web"},
}


def imports(path: Path) -> list[tuple[str, int]]:
    """Absolute module names imported by ``path`` (relative imports resolved)."""
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    package = parts[:-1]
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(package[: len(package) - node.level + 1])
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            out.append((name, node.lineno))
    return out


def layer_of(path: Path) -> str | None:
    rel = path.relative_to(SRC).parts
    return rel[0] if len(rel) > 1 else None


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_layer_imports(layer: str) -> None:
    bad = []
    for path in sorted((SRC / layer).rglob("*.py")):
        for name, line in imports(path):
            top = name.split(".")
            if top[0] == "sockhub" and len(top) > 1:
                target = top[1]
                if target != layer and target in ALLOWED and target not in ALLOWED[layer]:
                    bad.append(f"{path.relative_to(SRC)}:{line} imports {name}")
            elif top == ["sockhub"]:
                bad.append(f"{path.relative_to(SRC)}:{line} imports the sockhub package root")
    assert not bad, "\n".join(bad)


def test_protocol_is_sans_io() -> None:
    bad = [
        f"{path.relative_to(SRC)}:{line} imports {name}"
        for path in sorted((SRC / "protocol").rglob("*.py"))
        for name, line in imports(path)
        if name.split(".")[0] in IO_MODULES
    ]
    assert not bad, "\n".join(bad)
