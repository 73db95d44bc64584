"""How fast `parse` reads model output: typical thoughts and 1 MB of adversarial garbage.

Run: python benchmarks/format_speed.py
"""

from __future__ import annotations

import time

from rich.console import Console
from rich.table import Table

from vgt_agent.format import parse

TYPICAL = ("<think>I count <obj> red circles | [120, 700]; [180, 695]; [240, 705] </obj> and "
           "<obj> blue square | [10, 20, 300, 400] </obj>.</think> \\boxed{3}")
CASES = {
    "typical thought (x1000)": TYPICAL * 1,
    "mixed garbage 1 MB": ("<obj> a | [1, <ground> x </obj></obj> \\boxed{ {" * 25_000)[:1_000_000],
    "openers 1 MB": "<obj>" * 200_000,
    "valid tags 1 MB": "<obj> a | [1, 2] </obj>" * 45_000,
    "unclosed boxed 1 MB": "\\boxed{" * 140_000,
    "digits 1 MB": "<obj> a | [" + "1" * 1_000_000 + "x] </obj>",
}


def main() -> None:
    table = Table(title="format.parse speed")
    for col in ("input", "chars", "best of 3", "MB/s"):
        table.add_column(col, justify="right" if col != "input" else "left")
    for name, text in CASES.items():
        reps = 1000 if name.startswith("typical") else 1
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            for _ in range(reps):
                parse(text)
            best = min(best, (time.perf_counter() - start) / reps)
        table.add_row(name, f"{len(text):,}", f"{best * 1e3:.3f} ms", f"{len(text) / best / 1e6:.1f}")
    Console().print(table)


if __name__ == "__main__":
    main()
