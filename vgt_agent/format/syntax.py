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

    def _instances_pattern(self, arity: int, pad: str, after: str) -> str:
        """`[a, b]; [c, d]`: instances of one arity, 1-4 digits each, with `pad` around every part and `after`
        after each separator (`render` writes "" and " "). Every unit is bracketed and the kinds are apart, so
        matching cannot backtrack."""
        o, c, sep, isep = (re.escape(x) for x in (self.coord_open, self.coord_close, self.coord_sep, self.instance_sep))
        unit = o + pad + f"{pad}{sep}{after}".join(["[0-9]{1,4}"] * arity) + pad + c
        return f"{unit}(?:{pad}{isep}{after}{unit})*"

    @cached_property
    def plain_instances(self) -> dict[int, re.Pattern[str]]:
        """Arity -> a whole instance list of that arity, any whitespace between the parts (the stack scan's
        per-tag shortcut)."""
        return {arity: re.compile(self._instances_pattern(arity, r"\s*", r"\s*")) for arity in KIND_OF_ARITY}

    @cached_property
    def plain_obj_tags(self) -> tuple[re.Pattern[str], re.Pattern[str]]:
        """A whole well-formed `<obj> phrase | [..]; [..] </obj>` (the fast path's unit), first with its
        instances spaced exactly as `render` writes them (what a trained model writes, matched in two thirds of
        the time), then with any spaces between their parts. Groups: the whole tag, the phrase (unstripped: a
        greedy class that stops at the bar never backtracks), then the instances in the group of their kind,
        points or boxes (the other one is None); the instances hold only digits, coordinate literals and spaces.
        """
        o, c, bar = (re.escape(x) for x in (self.obj_open, self.obj_close, self.phrase_sep))
        patterns = []
        for pad, after in (("", " "), (" *", " *")):
            points, boxes = (self._instances_pattern(ARITY[kind], pad, after) for kind in ("point", "box"))
            patterns.append(re.compile(f"({o}([^<>|]*){bar}\\s*(?:({points})|({boxes}))\\s*{c})"))
        return patterns[0], patterns[1]

    @cached_property
    def coord_punctuation(self) -> dict[int, str]:
        """A `str.translate` table turning the coordinate literals into spaces, leaving only the numbers (the
        literals hold no digit and no newline)."""
        literals = self.coord_open + self.coord_close + self.coord_sep + self.instance_sep
        return str.maketrans(dict.fromkeys(literals, " "))

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
