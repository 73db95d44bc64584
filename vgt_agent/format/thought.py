"""A grounded thought as data (segments, groundings, problems) and its canonical rendering.

Think and answer are read back from the rendered text, so they can never disagree with the segments.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeAlias

from vgt_agent.format.syntax import ARITY, KIND_OF_ARITY, PAPER_SYNTAX, Kind, ProblemCode, Syntax
from vgt_agent.geometry import NORM

if TYPE_CHECKING:  # numpy loads when numbers are read, not when a command imports the parser
    import numpy as np

# A backslash escapes the next character (LaTeX `\{`), so escaped braces never count as grouping.
_BRACE_OR_ESCAPE = re.compile(r"\\.|[{}]", re.DOTALL)

# --- data types -----------------------------------------------------------------------------------------


def instance_error(instance: tuple[int, ...]) -> ProblemCode | None:
    """Why one instance (point or box, already integers) is not valid, or None."""
    if len(instance) not in KIND_OF_ARITY:
        return "wrong_arity"
    if any(not 0 <= value <= NORM for value in instance):
        return "coord_out_of_range"
    if len(instance) == 4 and not (instance[0] < instance[2] and instance[1] < instance[3]):
        return "box_order"
    return None


def _as_int(value: object) -> int:
    """Accept Python and numpy integers only: a float coordinate is a caller bug, not something to round."""
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise ValueError(f"coordinate {value!r} is not an integer") from None


def _check_phrase(phrase: str) -> None:
    if not phrase or phrase != phrase.strip():
        raise ValueError(f"phrase must be non-empty and stripped, got {phrase!r}")


@dataclass(frozen=True)
class Grounding:
    """A valid `<obj>` tag: a phrase and one or more instances of the same kind.

    `span` is the tag's (start, end) in the text it was parsed from; (0, 0) means "not located yet" (see
    `compose`). Coordinates are coerced to tuples of ints so equality is value equality.
    """

    phrase: str
    kind: Kind
    coords: tuple[tuple[int, ...], ...]
    span: tuple[int, int] = (0, 0)

    def __post_init__(self) -> None:
        _check_phrase(self.phrase)
        if self.kind not in ARITY:
            raise ValueError(f"kind must be 'point' or 'box', got {self.kind!r}")
        coords = tuple(tuple(_as_int(value) for value in instance) for instance in self.coords)
        if not coords:
            raise ValueError("a grounding needs at least one instance")
        for instance in coords:
            if len(instance) != ARITY[self.kind]:
                raise ValueError(f"{self.kind} instance {instance} must have {ARITY[self.kind]} values")
            error = instance_error(instance)
            if error is not None:
                raise ValueError(f"invalid {self.kind} instance {instance}: {error}")
        object.__setattr__(self, "coords", coords)
        object.__setattr__(self, "span", tuple(self.span))

    def __getattr__(self, name: str) -> Any:
        """Reached only when normal lookup fails: the `coords` of a `lazy_grounding`, read on first use."""
        if name != "coords" or "_numbers" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        values = map(int, self.__dict__["_numbers"].split())
        coords = self.__dict__["coords"] = tuple(zip(*[values] * ARITY[self.kind], strict=True))
        return coords


def trusted_grounding(
    phrase: str, kind: Kind, coords: tuple[tuple[int, ...], ...], span: tuple[int, int]
) -> Grounding:
    """A Grounding from values the parser has already validated, skipping `__post_init__` (the hot path of
    reward computation parses thousands of tags per step)."""
    grounding = object.__new__(Grounding)
    grounding.__dict__.update(phrase=phrase, kind=kind, coords=coords, span=span)
    return grounding


def lazy_grounding(phrase: str, kind: Kind, numbers: str, span: tuple[int, int]) -> Grounding:
    """A Grounding whose coordinates are read on first use from `numbers`, the validated values of its
    instances separated by whitespace: rewards route every tag but score a few per completion, and building
    every coordinate tuple up front was a fifth of the parse time (`stacked_coords` reads many at once)."""
    grounding = object.__new__(Grounding)
    grounding.__dict__.update(phrase=phrase, kind=kind, _numbers=numbers, span=span)
    return grounding


def stacked_coords(groundings: Sequence[Grounding]) -> tuple[np.ndarray, list[int]]:
    """The instances of groundings of one kind as one (total, arity) float array, and each one's count: what
    vectorised scoring needs, read in one numpy call when the parser left the coordinates unread."""
    import numpy as np

    if not groundings:
        return np.zeros((0, 2)), []
    arity = ARITY[groundings[0].kind]
    numbers = [g.__dict__.get("_numbers") for g in groundings]
    if None in numbers:
        sizes = [len(g.coords) for g in groundings]
        values = np.asarray([v for g in groundings for instance in g.coords for v in instance], dtype=np.float64)
    else:
        sizes = [len(n.split()) // arity for n in numbers]
        values = np.fromstring(" ".join(numbers), dtype=np.int64, sep=" ").astype(np.float64)
    return values.reshape(-1, arity), sizes


@dataclass(frozen=True)
class Placeholder:
    """`<obj> phrase | ? </obj>`: an object named by synthesis whose coordinates are filled in later."""

    phrase: str
    span: tuple[int, int] = (0, 0)

    def __post_init__(self) -> None:
        _check_phrase(self.phrase)


@dataclass(frozen=True)
class ToolRequest:
    """`<ground> phrase </ground>`: in agent mode, the model asks the grounding tool for this phrase."""

    phrase: str
    span: tuple[int, int] = (0, 0)

    def __post_init__(self) -> None:
        _check_phrase(self.phrase)


@dataclass(frozen=True, slots=True)
class Problem:
    """Something malformed in model output: a stable `code` for rewards/filters, a message for humans."""

    code: ProblemCode
    message: str
    span: tuple[int, int]


Segment: TypeAlias = str | Grounding | Placeholder | ToolRequest
"""Plain text (including any `<think>` markers, `\\boxed{}` and invalid tags, verbatim) or a parsed tag."""


@dataclass(frozen=True)
class GroundedThought:
    """A thought as an ordered sequence of segments plus the problems found while parsing it.

    Think and answer are read from the rendered text, so they can never disagree with the segments.
    """

    segments: tuple[Segment, ...]
    problems: tuple[Problem, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "segments", tuple(self.segments))
        object.__setattr__(self, "problems", tuple(self.problems))

    # Cached: every GRPO reward function reads them from one memoised parse.
    @cached_property
    def groundings(self) -> tuple[Grounding, ...]:
        return tuple(s for s in self.segments if isinstance(s, Grounding))

    @cached_property
    def placeholders(self) -> tuple[Placeholder, ...]:
        return tuple(s for s in self.segments if isinstance(s, Placeholder))

    @cached_property
    def tool_requests(self) -> tuple[ToolRequest, ...]:
        return tuple(s for s in self.segments if isinstance(s, ToolRequest))

    @property
    def is_valid(self) -> bool:
        return not self.problems

    @cached_property
    def text(self) -> str:
        """The canonical rendering (tag whitespace normalised); equals the source for canonical input."""
        return render(self)

    @property
    def think(self) -> str | None:
        """Content of the first complete `<think>...</think>` block; None when there is none."""
        return scan_think(self.text, PAPER_SYNTAX)[0]

    @property
    def has_think(self) -> bool:
        return self.think is not None

    @property
    def answer(self) -> str | None:
        """Content of the last well-formed `\\boxed{}`; None when there is none."""
        boxed = find_boxed(self.text)
        return boxed[-1][0] if boxed else None


# --- rendering ------------------------------------------------------------------------------------------


def _checked_phrase(phrase: str, syntax: Syntax) -> str:
    """A phrase that the syntax can write unambiguously, or ValueError (callers, not models, pass phrases)."""
    _check_phrase(phrase)
    if any(char in phrase for char in syntax.forbidden_phrase_chars):
        raise ValueError(f"phrase {phrase!r} contains one of {syntax.forbidden_phrase_chars!r}")
    return phrase


def _render_instance(instance: Sequence[int], syntax: Syntax) -> str:
    return syntax.coord_open + f"{syntax.coord_sep} ".join(str(v) for v in instance) + syntax.coord_close


def render_grounding(
    phrase: str, kind: Kind, coords: Sequence[Sequence[int]], *, syntax: Syntax = PAPER_SYNTAX
) -> str:
    """`<obj> phrase | [x, y]; ... </obj>`; ValueError if the phrase or coordinates are not valid."""
    grounding = Grounding(phrase, kind, tuple(tuple(c) for c in coords))
    return render_segment(grounding, syntax)


def render_placeholder(phrase: str, *, syntax: Syntax = PAPER_SYNTAX) -> str:
    """`<obj> phrase | ? </obj>`, the tag synthesis inserts before the coordinates are known."""
    return render_segment(Placeholder(phrase), syntax)


def render_tool_request(phrase: str, *, syntax: Syntax = PAPER_SYNTAX) -> str:
    """`<ground> phrase </ground>`, the agent-mode request for the grounding tool."""
    return render_segment(ToolRequest(phrase), syntax)


def render_tool_result(
    phrase: str, kind: Kind, coords: Sequence[Sequence[int]], *, syntax: Syntax = PAPER_SYNTAX
) -> str:
    """The tool message answering `<ground> phrase </ground>`: the instances as one `<obj>` tag.

    A tag cannot hold zero instances, so "nothing found" is said in words that contain no tag.
    """
    if not coords:
        return f"No {_checked_phrase(phrase, syntax)} found."
    return render_grounding(phrase, kind, coords, syntax=syntax)


def render_segment(segment: Segment, syntax: Syntax) -> str:
    if isinstance(segment, str):
        return segment
    phrase = _checked_phrase(segment.phrase, syntax)
    if isinstance(segment, ToolRequest):
        return f"{syntax.ground_open} {phrase} {syntax.ground_close}"
    if isinstance(segment, Placeholder):
        body = syntax.placeholder
    else:
        body = f"{syntax.instance_sep} ".join(_render_instance(c, syntax) for c in segment.coords)
    return f"{syntax.obj_open} {phrase} {syntax.phrase_sep} {body} {syntax.obj_close}"


def render(thought: GroundedThought, *, syntax: Syntax = PAPER_SYNTAX) -> str:
    """The thought's text with every tag written canonically; `parse(render(t)) == t` for canonical `t`."""
    return "".join(render_segment(segment, syntax) for segment in thought.segments)


def compose(parts: Iterable[Segment], *, syntax: Syntax = PAPER_SYNTAX) -> GroundedThought:
    """Build a thought from parts: merge adjacent text, drop empty text, and locate each tag's span.

    The parts are trusted (no problems are recorded): text parts should not themselves contain tag syntax.
    """
    segments: list[Segment] = []
    position = 0
    for part in parts:
        rendered = render_segment(part, syntax)
        if isinstance(part, str):
            if not part:
                continue
            if segments and isinstance(segments[-1], str):
                segments[-1] += part
            else:
                segments.append(part)
        else:
            segments.append(replace(part, span=(position, position + len(rendered))))
        position += len(rendered)
    return GroundedThought(tuple(segments))


# --- think blocks and boxed answers ---------------------------------------------------------------------


def scan_think(text: str, syntax: Syntax) -> tuple[str | None, list[Problem]]:
    """The first complete think block's content, and what is wrong with the think markers."""
    problems: list[Problem] = []
    start = text.find(syntax.think_open)
    if start < 0:
        close = text.find(syntax.think_close)
        if close >= 0:
            span = (close, close + len(syntax.think_close))
            message = f"{syntax.think_close} without {syntax.think_open}"
            problems.append(Problem("unopened_think", message, span))
        return None, problems
    content_start = start + len(syntax.think_open)
    second = text.find(syntax.think_open, content_start)
    if second >= 0:
        span = (second, second + len(syntax.think_open))
        problems.append(Problem("multiple_think", f"more than one {syntax.think_open}", span))
    end = text.find(syntax.think_close, content_start)
    if end < 0:
        span = (start, content_start)
        problems.append(Problem("unclosed_think", f"{syntax.think_open} is never closed", span))
        return None, problems
    return text[content_start:end], problems


def _match_braces(text: str, start: int) -> dict[int, int]:
    """Opening-brace index -> matching closing-brace index, from `start` on, skipping escaped braces."""
    matches: dict[int, int] = {}
    open_braces: list[int] = []
    for token in _BRACE_OR_ESCAPE.finditer(text, start):
        if token.group() == "{":
            open_braces.append(token.start())
        elif token.group() == "}" and open_braces:
            matches[open_braces.pop()] = token.start()
    return matches


def scan_boxed(text: str, syntax: Syntax) -> tuple[list[tuple[str, tuple[int, int]]], list[int]]:
    """Outermost well-formed `\\boxed{...}` (content, span of the whole expression), and unclosed starts."""
    first = text.find(syntax.boxed_open)
    if first < 0:
        return [], []
    matches = _match_braces(text, first)
    found: list[tuple[str, tuple[int, int]]] = []
    unclosed: list[int] = []
    position = first
    while position >= 0:
        brace = position + len(syntax.boxed_open) - 1
        close = matches.get(brace)
        if close is None:
            unclosed.append(position)
            position = text.find(syntax.boxed_open, brace + 1)
        else:
            found.append((text[brace + 1 : close], (position, close + 1)))
            position = text.find(syntax.boxed_open, close + 1)
    return found, unclosed


def tag_spans(text: str, open_tag: str, close_tag: str, *, ignore_case: bool = False) -> list[tuple[int, int]]:
    """The (start, end) of the content of each `open_tag ... close_tag` pair, left to right: what
    `re.finditer(open + "(.*?)" + close, re.S)` gives as group 1, in one forward pass.

    Each pair opens at the first opener after the previous pair and closes at the first closer after it (an
    opener inside is content). The regex form rescans to the end from every unclosed opener (quadratic), and
    with `\\s*` around the content backtracks cubically on whitespace runs; this never looks back.
    """
    flags = re.IGNORECASE if ignore_case else 0
    opener, closer = re.compile(re.escape(open_tag), flags), re.compile(re.escape(close_tag), flags)
    spans: list[tuple[int, int]] = []
    position = 0
    while (opened := opener.search(text, position)) and (closed := closer.search(text, opened.end())):
        spans.append((opened.end(), closed.start()))
        position = closed.end()
    return spans


def find_boxed(text: str, *, syntax: Syntax = PAPER_SYNTAX) -> list[tuple[str, tuple[int, int]]]:
    """Every outermost `\\boxed{...}` in order: (content, (start, end) of the whole `\\boxed{...}`).

    Nested braces are matched (`\\boxed{\\text{B}}` gives `\\text{B}`); escaped `\\{`, `\\}` do not count;
    an unclosed `\\boxed{` is skipped.
    """
    return scan_boxed(text, syntax)[0]
