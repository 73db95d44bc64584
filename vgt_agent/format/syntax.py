"""The grounded-thought syntax in one place: tag literals, separators, kinds, problem codes, regexes."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from typing import Literal, TypeAlias

Kind: TypeAlias = Literal["point", "box"]
ARITY: dict[Kind, int] = {"point": 2, "box": 4}
KIND_OF_ARITY: dict[int, Kind] = {2: "point", 4: "box"}

ProblemCode: TypeAlias = Literal[
    "unclosed_tag",
    "stray_closing_tag",
    "nested_tag",
    "missing_separator",
    "empty_phrase",
    "invalid_phrase",
    "missing_coords",
    "malformed_coords",
    "non_integer_coord",
    "coord_out_of_range",
    "wrong_arity",
    "box_order",
    "mixed_kinds",
    "unclosed_think",
    "unopened_think",
    "multiple_think",
    "unclosed_boxed",
    "multiple_boxed",
    "missing_answer",
]


# --- the syntax, in one place ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Syntax:
    """Every literal of the thought syntax, so a different tag dialect is one new instance away."""

    obj_open: str = "<obj>"
    obj_close: str = "</obj>"
    ground_open: str = "<ground>"
    ground_close: str = "</ground>"
    think_open: str = "<think>"
    think_close: str = "</think>"
    boxed_open: str = "\\boxed{"
    phrase_sep: str = "|"
    instance_sep: str = ";"
    coord_sep: str = ","
    coord_open: str = "["
    coord_close: str = "]"
    placeholder: str = "?"
    forbidden_phrase_chars: str = "<>|"

    @cached_property
    def tag_token(self) -> re.Pattern[str]:
        """One flat alternation of the four tag literals: matching it cannot backtrack."""
        literals = (self.obj_open, self.obj_close, self.ground_open, self.ground_close)
        return re.compile("|".join(re.escape(literal) for literal in literals))

    def _instance_pattern(self, capture: bool) -> str:
        o, c, sep = (re.escape(x) for x in (self.coord_open, self.coord_close, self.coord_sep))
        num = r"\s*([0-9]{1,4})\s*" if capture else r"\s*[0-9]{1,4}\s*"
        return f"{o}{num}{sep}{num}(?:{sep}{num}{sep}{num})?{c}"

    @cached_property
    def plain_instance(self) -> re.Pattern[str]:
        """One instance of plain digits, point or box: `[12, 34]` / `[1, 2, 3, 4]` (the fast path's unit)."""
        return re.compile(self._instance_pattern(capture=True))

    @cached_property
    def plain_instances(self) -> re.Pattern[str]:
        """A whole instance list made only of such instances. Every unit is bracketed, so it cannot backtrack."""
        unit = self._instance_pattern(capture=False)
        return re.compile(f"{unit}(?:\\s*{re.escape(self.instance_sep)}\\s*{unit})*")

    @cached_property
    def plain_obj_tag(self) -> re.Pattern[str]:
        """A whole well-formed `<obj> phrase | [..]; [..] </obj>`: group 1 the phrase (unstripped: a greedy
        class that stops at the bar never backtracks), group 2 the instances."""
        o, c, bar = (re.escape(x) for x in (self.obj_open, self.obj_close, self.phrase_sep))
        return re.compile(f"{o}([^<>|]*){bar}\\s*({self.plain_instances.pattern})\\s*{c}")

    @cached_property
    def token_roles(self) -> dict[str, tuple[str, bool]]:
        """Tag literal -> (tag name, is an opening tag)."""
        return {
            self.obj_open: ("obj", True),
            self.obj_close: ("obj", False),
            self.ground_open: ("ground", True),
            self.ground_close: ("ground", False),
        }


PAPER_SYNTAX = Syntax()
"""The syntax of "Thinking with Visual Grounding" (arXiv 2606.16122)."""
