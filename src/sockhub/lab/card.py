"""The report card: one verdict per probe, with a one-line reason and the bytes seen."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["Card", "Result", "Verdict"]

Verdict = Literal["pass", "fail", "warn", "skip"]
SHOWN = 80


@dataclass(frozen=True, slots=True)
class Result:
    probe: str
    verdict: Verdict
    why: str
    seen: bytes = b""

    def as_dict(self) -> dict[str, Any]:
        return {
            "probe": self.probe,
            "verdict": self.verdict,
            "why": self.why,
            "seen": self.seen[:SHOWN].decode("latin-1"),
            "seen_bytes": len(self.seen),
        }


@dataclass
class Card:
    format: str
    target: str
    results: list[Result] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(r.verdict != "fail" for r in self.results)

    def verdict(self, probe: str) -> Verdict:
        for result in self.results:
            if result.probe == probe:
                return result.verdict
        raise KeyError(probe)

    def as_json(self) -> str:
        return json.dumps(
            {
                "format": self.format,
                "target": self.target,
                "passed": self.passed,
                "results": [r.as_dict() for r in self.results],
            },
            ensure_ascii=False,
        )

    def render(self) -> str:
        lines = [f"report card: {self.format} server at {self.target}"]
        for r in self.results:
            lines.append(f"  {r.verdict.upper():4}  {r.probe:14} {r.why}")
            if r.seen:
                more = f" ... ({len(r.seen)} bytes)" if len(r.seen) > SHOWN else ""
                lines.append(f"        {'':14} seen: {bytes(r.seen[:SHOWN])!r}{more}")
        fails = sum(r.verdict == "fail" for r in self.results)
        lines.append("PASSED" if not fails else f"{fails} probe(s) FAILED")
        return "\n".join(lines)
