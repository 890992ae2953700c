"""``python -m bench [NAME...]``: run every ``bench/bench_*.py`` (or the named ones).

Each module has ``main() -> None`` that prints its own table. This machine is shared and
noisy, so every module measures its baseline in the same run and prints ratios.
"""

from __future__ import annotations

import importlib
import sys
import time
from pathlib import Path

from ._procs import end_on_signals


def main(argv: list[str]) -> int:
    here = Path(__file__).parent
    names = sorted(p.stem.removeprefix("bench_") for p in here.glob("bench_*.py"))
    chosen = argv or names
    unknown = sorted(set(chosen) - set(names))
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(names)}")
        return 2
    end_on_signals()
    for name in chosen:
        print(f"\n=== {name} ===", flush=True)
        start = time.perf_counter()
        importlib.import_module(f"bench.bench_{name}").main()
        print(f"({name}: {time.perf_counter() - start:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
