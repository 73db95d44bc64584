"""A model's text with every `<obj>` coordinate rewritten between its coordinate convention and canonical 0..1000.

`to_canonical_text` on what a model wrote, before it is parsed, verified, scored or stored;
`from_canonical_text` on what the model is shown (tool replies, demonstrations). A bracket that is malformed,
of the wrong arity or outside the convention's range is left as written, so the parser still reports it
instead of a clamp hiding it. The conventions themselves are `geometry/conventions.py`.
"""

from __future__ import annotations

import math
import re

from vgt_agent.format.syntax import PAPER_SYNTAX, Syntax
from vgt_agent.geometry.conventions import CANONICAL, NORM, Convention

_NUMBER = r"\s*(-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE]-?\d+)?)\s*"


def _tag_pattern(syntax: Syntax) -> re.Pattern[str]:
    o, c = re.escape(syntax.obj_open), re.escape(syntax.obj_close)
    return re.compile(f"({o}[^<]*?{re.escape(syntax.phrase_sep)})([^<]*?)({c})")


def _bracket_pattern(syntax: Syntax) -> re.Pattern[str]:
    o, c = re.escape(syntax.coord_open), re.escape(syntax.coord_close)
    return re.compile(f"{o}([^{o}{c}]*){c}")


def _rewrite(text: str, convert, syntax: Syntax) -> str:  # noqa: ANN001 - (values) -> new values or None
    """Each coordinate bracket inside an `<obj>` tag through `convert`; None keeps the bracket as written."""
    brackets = _bracket_pattern(syntax)
    sep = syntax.coord_sep

    def one_bracket(match: re.Match[str]) -> str:
        parts = match.group(1).split(sep)
        if len(parts) not in (2, 4) or not all(re.fullmatch(_NUMBER, p) for p in parts):
            return match.group(0)
        values = [float(p) for p in parts]
        if not all(math.isfinite(v) for v in values):
            return match.group(0)
        new = convert(values)
        return match.group(0) if new is None else syntax.coord_open + f"{sep} ".join(new) + syntax.coord_close

    def one_tag(match: re.Match[str]) -> str:
        return match.group(1) + brackets.sub(one_bracket, match.group(2)) + match.group(3)

    return _tag_pattern(syntax).sub(one_tag, text)


def to_canonical_text(text: str, convention: Convention, width: int, height: int, *,
                      syntax: Syntax = PAPER_SYNTAX) -> str:
    """A model's text with every `<obj>` coordinate rewritten from its convention to canonical 0..1000."""
    if convention == CANONICAL:
        return text

    def convert(values: list[float]) -> list[str] | None:
        if not convention.in_range(values, width, height):
            return None
        if len(values) == 4 and (values[2] < values[0] or values[3] < values[1]):
            return None  # an inverted box stays as written: the parser reports its order
        return [str(v) for v in convention.to_canonical(values, width, height)]

    return _rewrite(text, convert, syntax)


def from_canonical_text(text: str, convention: Convention, width: int, height: int, *,
                        syntax: Syntax = PAPER_SYNTAX) -> str:
    """Canonical text (tool replies, demonstrations) with every `<obj>` coordinate in the model's convention."""
    if convention == CANONICAL:
        return text

    def convert(values: list[float]) -> list[str] | None:
        if not all(v == int(v) and 0 <= v <= NORM for v in values):
            return None
        return [convention.format(v) for v in convention.from_canonical([int(v) for v in values], width, height)]

    return _rewrite(text, convert, syntax)
