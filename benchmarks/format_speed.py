"""How fast vgt reads model output: typical thoughts, then adversarial inputs at two sizes for every parser.

Every parser of model output (`format.parse`, `answers.extract_answer` / `check_answer`, the router-reply,
fence and tool-call readers) must run in linear time: each adversarial input is timed at 100 KB and at 1 MB,
and the seconds per byte must stay flat between the two (a quadratic parser's grows tenfold).

Run: OMP_NUM_THREADS=1 python benchmarks/format_speed.py [--quick]
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.table import Table

from vgt_agent.answers import check_answer, extract_answer
from vgt_agent.format import parse
from vgt_agent.reference_routing import parse_router_reply
from vgt_agent.synthesis.extract import _FENCE
from vgt_agent.synthesis.vlm_policy import parse_tool_call

TYPICAL = ("<think>I count <obj> red circles | [120, 700]; [180, 695]; [240, 705] </obj> and "
           "<obj> blue square | [10, 20, 300, 400] </obj>.</think> \\boxed{3}")

PARSERS: dict[str, Callable[[str], Any]] = {
    "format.parse": parse,
    "extract_answer": extract_answer,
    "check_answer (count)": lambda s: check_answer(s, 3, "count"),
    "parse_router_reply": lambda s: parse_router_reply(s, 5, 5),
    "extract fence strip": lambda s: _FENCE.sub("", s.strip()),
    "parse_tool_call": parse_tool_call,
}

# name -> (parsers it targets, text of about n bytes)
ADVERSARIAL: dict[str, tuple[tuple[str, ...], Callable[[int], str]]] = {
    "<answer> + spaces": (("extract_answer", "check_answer (count)"), lambda n: "<answer>" + " " * n),
    "<answer> repeated": (("extract_answer", "check_answer (count)"), lambda n: "<answer>" * (n // 8)),
    "\\boxed{ + digits": (("check_answer (count)",), lambda n: "\\boxed{" + "1" * n + "}"),
    "answer is + run": (("extract_answer",), lambda n: "the answer is" + " " * n + "x"),
    "mixed tag garbage": (("format.parse",), lambda n: ("<obj> a | [1, <ground> x </obj></obj> \\boxed{ {"
                                                        * (n // 40 + 1))[:n]),
    "<obj> repeated": (("format.parse",), lambda n: "<obj>" * (n // 5)),
    "<obj> <ground> nested": (("format.parse",), lambda n: "<obj> <ground> " * (n // 15)),
    "valid tags": (("format.parse",), lambda n: "<obj> a | [1, 2] </obj>" * (n // 23)),
    "\\boxed{ unclosed": (("format.parse",), lambda n: "\\boxed{" * (n // 7)),
    "coordinate digits": (("format.parse",), lambda n: "<obj> a | [" + "1" * n + "x] </obj>"),
    "blank lines": (("parse_router_reply",), lambda n: "\n" * n),
    "dash lines": (("parse_router_reply",), lambda n: "-\n" * (n // 2)),
    "space run before }": (("extract fence strip",), lambda n: "{" + " " * n + "}"),
    "<tool> repeated": (("parse_tool_call",), lambda n: "<tool>" * (n // 6)),
}


def best_seconds(fn: Callable[[str], Any], text: str, reps: int = 1, tries: int = 3) -> float:
    best = float("inf")
    for _ in range(tries):
        start = time.perf_counter()
        for _ in range(reps):
            fn(text)
        best = min(best, (time.perf_counter() - start) / reps)
    return best


def main(quick: bool = False) -> None:
    sizes = (100_000, 300_000) if quick else (100_000, 1_000_000)
    table = Table(title="reading model output: seconds per byte (best of 3)")
    for col in ("parser", "input", "bytes", "seconds", "ns / byte"):
        table.add_column(col, justify="left" if col in ("parser", "input") else "right")
    for name, parser in PARSERS.items():
        seconds = best_seconds(parser, TYPICAL, reps=1000)
        table.add_row(name, "typical thought", f"{len(TYPICAL):,}", f"{seconds:.2e}",
                      f"{seconds / len(TYPICAL) * 1e9:.0f}")
    for input_name, (targets, make) in ADVERSARIAL.items():
        for name in targets:
            for n in sizes:
                text = make(n)
                seconds = best_seconds(PARSERS[name], text)
                table.add_row(name, input_name, f"{len(text):,}", f"{seconds:.4f}",
                              f"{seconds / len(text) * 1e9:.0f}")
    Console(width=110).print(table)


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
