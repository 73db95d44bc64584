"""How a grounded thought is written and read: the one owner of the `<obj>`/`<ground>`/`\\boxed{}` syntax.

A thought is reasoning interleaved with groundings such as `<obj> red cup | [412, 233] </obj>` (a point) or
`<obj> red cup | [131, 138, 440, 502] </obj>` (a box), coordinates being integers normalised to 0..1000.
Everything that writes or reads that syntax (synthesis, rewards, the agent loop, viewers) goes through this
module so the SFT traces, the RL rollouts and the reward parser can never disagree.

`parse` must never raise on model output and runs in linear time: it tokenises tags with one flat regex,
matches them with a stack, and validates each tag body with simple splits (no backtracking-prone patterns).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Literal, TypeAlias

import numpy as np

from vgt_agent import geometry
from vgt_agent.geometry import NORM

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

_INTEGER = re.compile(r"[-+]?[0-9]+")
# Unambiguous (the dot is mandatory before the fraction digits) so a long digit run cannot backtrack.
_NUMBER = re.compile(r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
# A backslash escapes the next character (LaTeX `\{`), so escaped braces never count as grouping.
_BRACE_OR_ESCAPE = re.compile(r"\\.|[{}]", re.DOTALL)


# --- data types -----------------------------------------------------------------------------------------


def _instance_error(instance: tuple[int, ...]) -> ProblemCode | None:
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
            error = _instance_error(instance)
            if error is not None:
                raise ValueError(f"invalid {self.kind} instance {instance}: {error}")
        object.__setattr__(self, "coords", coords)
        object.__setattr__(self, "span", tuple(self.span))


def _trusted_grounding(
    phrase: str, kind: Kind, coords: tuple[tuple[int, ...], ...], span: tuple[int, int]
) -> Grounding:
    """A Grounding from values the parser has already validated, skipping `__post_init__` (the hot path of
    reward computation parses thousands of tags per step)."""
    grounding = object.__new__(Grounding)
    grounding.__dict__.update(phrase=phrase, kind=kind, coords=coords, span=span)
    return grounding


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

    @property
    def groundings(self) -> tuple[Grounding, ...]:
        return tuple(s for s in self.segments if isinstance(s, Grounding))

    @property
    def placeholders(self) -> tuple[Placeholder, ...]:
        return tuple(s for s in self.segments if isinstance(s, Placeholder))

    @property
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
        return _scan_think(self.text, PAPER_SYNTAX)[0]

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
    return _render_segment(grounding, syntax)


def render_placeholder(phrase: str, *, syntax: Syntax = PAPER_SYNTAX) -> str:
    """`<obj> phrase | ? </obj>`, the tag synthesis inserts before the coordinates are known."""
    return _render_segment(Placeholder(phrase), syntax)


def render_tool_request(phrase: str, *, syntax: Syntax = PAPER_SYNTAX) -> str:
    """`<ground> phrase </ground>`, the agent-mode request for the grounding tool."""
    return _render_segment(ToolRequest(phrase), syntax)


def render_tool_result(
    phrase: str, kind: Kind, coords: Sequence[Sequence[int]], *, syntax: Syntax = PAPER_SYNTAX
) -> str:
    """The tool message answering `<ground> phrase </ground>`: the instances as one `<obj>` tag.

    A tag cannot hold zero instances, so "nothing found" is said in words that contain no tag.
    """
    if not coords:
        return f"No {_checked_phrase(phrase, syntax)} found."
    return render_grounding(phrase, kind, coords, syntax=syntax)


def _render_segment(segment: Segment, syntax: Syntax) -> str:
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
    return "".join(_render_segment(segment, syntax) for segment in thought.segments)


def compose(parts: Iterable[Segment], *, syntax: Syntax = PAPER_SYNTAX) -> GroundedThought:
    """Build a thought from parts: merge adjacent text, drop empty text, and locate each tag's span.

    The parts are trusted (no problems are recorded): text parts should not themselves contain tag syntax.
    """
    segments: list[Segment] = []
    position = 0
    for part in parts:
        rendered = _render_segment(part, syntax)
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


# --- parsing --------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _OpenTag:
    token: str
    name: str
    start: int
    end: int
    has_inner_tag: bool = False


def _phrase_problems(phrase: str, span: tuple[int, int], syntax: Syntax) -> list[Problem]:
    if not phrase:
        return [Problem("empty_phrase", "the tag has no phrase naming the object", span)]
    if any(char in phrase for char in syntax.forbidden_phrase_chars):
        message = f"phrase {phrase!r} contains one of {syntax.forbidden_phrase_chars!r}"
        return [Problem("invalid_phrase", message, span)]
    return []


def _read_number(raw: str) -> int | ProblemCode:
    """A coordinate as an int, or why it is not one (huge digit runs never reach `int()`)."""
    if _INTEGER.fullmatch(raw):
        digits = raw.lstrip("+-").lstrip("0")
        if len(digits) > len(str(NORM)) or (raw.startswith("-") and digits):
            return "coord_out_of_range"
        return int(raw)
    if _NUMBER.fullmatch(raw):
        return "non_integer_coord"
    return "malformed_coords"


_COORD_MESSAGES: dict[ProblemCode, str] = {
    "missing_coords": "no coordinates after the separator",
    "malformed_coords": "an instance is not a bracketed list of numbers",
    "non_integer_coord": "coordinates must be integers",
    "coord_out_of_range": f"coordinates must lie in 0..{NORM}",
    "wrong_arity": "an instance must be a point [x, y] or a box [x1, y1, x2, y2]",
    "box_order": "a box needs x1 < x2 and y1 < y2",
    "mixed_kinds": "all instances in one tag must be of the same kind",
}


def _read_instances(text: str, syntax: Syntax) -> tuple[tuple[tuple[int, ...], ...], list[ProblemCode]]:
    """Parse `[a, b]; [c, d]` into int tuples, collecting each distinct problem code once."""
    if not text:
        return (), ["missing_coords"]
    fast = _read_plain_instances(text, syntax)
    if fast is not None:
        return fast, []
    codes: dict[ProblemCode, None] = {}
    instances: list[tuple[int, ...]] = []
    for raw_instance in text.split(syntax.instance_sep):
        raw_instance = raw_instance.strip()
        wrapped = raw_instance.startswith(syntax.coord_open) and raw_instance.endswith(syntax.coord_close)
        if not wrapped or len(raw_instance) < len(syntax.coord_open) + len(syntax.coord_close):
            codes["malformed_coords"] = None
            continue
        inner = raw_instance[len(syntax.coord_open) : len(raw_instance) - len(syntax.coord_close)]
        values = [_read_number(raw.strip()) for raw in inner.split(syntax.coord_sep)]
        value_errors = [v for v in values if isinstance(v, str)]
        if value_errors:
            codes.update(dict.fromkeys(value_errors))
            continue
        instance = tuple(v for v in values if isinstance(v, int))
        error = _instance_error(instance)
        if error is not None:
            codes[error] = None
        instances.append(instance)
    if len({len(instance) for instance in instances if len(instance) in KIND_OF_ARITY}) > 1:
        codes["mixed_kinds"] = None
    return tuple(instances), list(codes)


_DIGITS = re.compile(r"[0-9]+")


def _read_plain_instances(
    text: str, syntax: Syntax, *, matched: bool = False
) -> tuple[tuple[int, ...], ...] | None:
    """The common case in one regex pass: valid, in-range, well-ordered, one kind. None means "look closer".

    `matched` says the caller's regex already matched `syntax.plain_instances` on exactly this text, so the
    numbers can be read flat: n instances of one kind hold exactly 2n (points) or 4n (boxes) numbers.
    """
    if not matched and not syntax.plain_instances.fullmatch(text):
        return None
    values = list(map(int, _DIGITS.findall(text)))
    n = text.count(syntax.coord_open)
    arity = len(values) // n
    if arity * n != len(values) or arity not in KIND_OF_ARITY or max(values) > NORM:
        return None  # mixed kinds or out of range: the general reader names the problem
    instances = tuple(zip(*[iter(values)] * arity, strict=True))
    if arity == 4 and not all(x1 < x2 and y1 < y2 for x1, y1, x2, y2 in instances):
        return None
    return instances


def _read_obj(body: str, span: tuple[int, int], syntax: Syntax) -> Grounding | Placeholder | list[Problem]:
    phrase_text, separator, coords_text = body.partition(syntax.phrase_sep)
    if not separator:
        message = f"no {syntax.phrase_sep!r} between the phrase and the coordinates"
        return [Problem("missing_separator", message, span)]
    phrase = phrase_text.strip()
    problems = _phrase_problems(phrase, span, syntax)
    coords_text = coords_text.strip()
    if coords_text == syntax.placeholder:
        return problems or Placeholder(phrase, span)
    coords, codes = _read_instances(coords_text, syntax)
    problems += [Problem(code, _COORD_MESSAGES[code], span) for code in codes]
    if problems:
        return problems
    return _trusted_grounding(phrase, KIND_OF_ARITY[len(coords[0])], coords, span)


def _read_ground(body: str, span: tuple[int, int], syntax: Syntax) -> ToolRequest | list[Problem]:
    phrase = body.strip()
    return _phrase_problems(phrase, span, syntax) or ToolRequest(phrase, span)


TagItem: TypeAlias = Grounding | Placeholder | ToolRequest


def _scan_plain_tags(text: str, syntax: Syntax) -> list[TagItem] | None:
    """The common case (every tag a well-formed `<obj>`, nothing nested or unclosed) in one regex pass.

    It applies only when the tag matches account for every `<obj>`/`</obj>` token and no `<ground>` is present,
    so the result equals what the stack scan would produce; None means "use the stack scan".
    """
    if syntax.ground_open in text or syntax.ground_close in text:
        return None
    n_open = text.count(syntax.obj_open)
    if n_open != text.count(syntax.obj_close):
        return None
    items: list[TagItem] = []
    for match in syntax.plain_obj_tag.finditer(text):
        phrase, coords = match.group(1).strip(), _read_plain_instances(match.group(2), syntax, matched=True)
        if not phrase or coords is None:
            return None
        items.append(_trusted_grounding(phrase, KIND_OF_ARITY[len(coords[0])], coords, match.span()))
    return items if len(items) == n_open else None


def _scan_tags(text: str, syntax: Syntax) -> tuple[list[TagItem], list[Problem]]:
    """Match tag tokens with a stack; only innermost, correctly closed tags can become items.

    Keeping a count of open tags per name makes each closing token O(1) amortised, so the scan is linear.
    """
    plain = _scan_plain_tags(text, syntax)
    if plain is not None:
        return plain, []
    items: list[TagItem] = []
    problems: list[Problem] = []
    stack: list[_OpenTag] = []
    open_count = {name: 0 for name, _ in syntax.token_roles.values()}
    for token in syntax.tag_token.finditer(text):
        literal = token.group()
        name, is_opening = syntax.token_roles[literal]
        if is_opening:
            if stack:
                stack[-1].has_inner_tag = True
            stack.append(_OpenTag(literal, name, token.start(), token.end()))
            open_count[name] += 1
            continue
        if open_count[name] == 0:
            message = f"{literal} closes no open tag"
            problems.append(Problem("stray_closing_tag", message, token.span()))
            if stack:
                stack[-1].has_inner_tag = True
            continue
        while stack[-1].name != name:
            unclosed = stack.pop()
            open_count[unclosed.name] -= 1
            problems.append(_unclosed(unclosed))
        opened = stack.pop()
        open_count[name] -= 1
        span = (opened.start, token.end())
        if opened.has_inner_tag:
            message = f"{opened.token} contains another tag"
            problems.append(Problem("nested_tag", message, span))
            continue
        body = text[opened.end : token.start()]
        read = _read_obj(body, span, syntax) if name == "obj" else _read_ground(body, span, syntax)
        if isinstance(read, list):
            problems.extend(read)
        else:
            items.append(read)
    problems.extend(_unclosed(opened) for opened in stack)
    items.sort(key=operator.attrgetter("span"))
    return items, problems


def _unclosed(opened: _OpenTag) -> Problem:
    return Problem("unclosed_tag", f"{opened.token} is never closed", (opened.start, opened.end))


def _scan_think(text: str, syntax: Syntax) -> tuple[str | None, list[Problem]]:
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


def _scan_boxed(text: str, syntax: Syntax) -> tuple[list[tuple[str, tuple[int, int]]], list[int]]:
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


def find_boxed(text: str, *, syntax: Syntax = PAPER_SYNTAX) -> list[tuple[str, tuple[int, int]]]:
    """Every outermost `\\boxed{...}` in order: (content, (start, end) of the whole `\\boxed{...}`).

    Nested braces are matched (`\\boxed{\\text{B}}` gives `\\text{B}`); escaped `\\{`, `\\}` do not count;
    an unclosed `\\boxed{` is skipped.
    """
    return _scan_boxed(text, syntax)[0]


def _answer_problems(text: str, has_tool_request: bool, expect_answer: bool, syntax: Syntax) -> list[Problem]:
    found, unclosed = _scan_boxed(text, syntax)
    message = f"{syntax.boxed_open!r} is never closed"
    problems = [
        Problem("unclosed_boxed", message, (start, start + len(syntax.boxed_open))) for start in unclosed
    ]
    if len(found) > 1:
        span = (found[0][1][0], found[-1][1][1])
        problems.append(Problem("multiple_boxed", f"{len(found)} boxed answers; the last one counts", span))
    if not found and expect_answer and not has_tool_request:
        problems.append(Problem("missing_answer", "no well-formed boxed answer", (len(text), len(text))))
    return problems


def parse(text: str, *, expect_answer: bool = True, syntax: Syntax = PAPER_SYNTAX) -> GroundedThought:
    """Read model output into a `GroundedThought`; never raises, and runs in linear time.

    Valid tags become `Grounding` / `Placeholder` / `ToolRequest` segments; invalid ones stay verbatim in the
    text segments and are reported as problems. A missing answer is a problem unless the output asks for a
    tool (agent mode) or `expect_answer` is False (e.g. for tool messages).
    """
    items, problems = _scan_tags(text, syntax)
    think_problems = _scan_think(text, syntax)[1]
    asks_tool = any(isinstance(item, ToolRequest) for item in items)
    answer_problems = _answer_problems(text, asks_tool, expect_answer, syntax)
    segments: list[Segment] = []
    position = 0
    for item in items:
        if item.span[0] > position:
            segments.append(text[position : item.span[0]])
        segments.append(item)
        position = item.span[1]
    if position < len(text):
        segments.append(text[position:])
    all_problems = sorted(
        problems + think_problems + answer_problems, key=operator.attrgetter("span", "code")
    )
    return GroundedThought(tuple(segments), tuple(all_problems))


# --- rewriting ------------------------------------------------------------------------------------------


def _as_thought(source: GroundedThought | str, syntax: Syntax) -> GroundedThought:
    if isinstance(source, GroundedThought):
        return source
    return parse(source, expect_answer=False, syntax=syntax)


def _rewrite(
    source: GroundedThought | str,
    thought: GroundedThought,
    replacement_for: Callable[[Segment], str | None],
    syntax: Syntax,
) -> str:
    """Rewrite each tag segment of `thought` (parsed from `source`) in order; None keeps the tag as is.

    Text input is spliced so everything not replaced (including invalid tags) stays byte-identical.
    """
    pieces: list[str] = []
    if isinstance(source, GroundedThought):
        for segment in thought.segments:
            new = None if isinstance(segment, str) else replacement_for(segment)
            pieces.append(_render_segment(segment, syntax) if new is None else new)
        return "".join(pieces)
    position = 0
    for segment in thought.segments:
        if isinstance(segment, str):
            continue
        new = replacement_for(segment)
        if new is not None:
            pieces += [source[position : segment.span[0]], new]
            position = segment.span[1]
    pieces.append(source[position:])
    return "".join(pieces)


def strip_groundings(source: GroundedThought | str, *, syntax: Syntax = PAPER_SYNTAX) -> str:
    """Replace each `<obj>` tag (grounding or placeholder) by its bare phrase, so the sentence still reads.

    This is the non-grounded baseline, and the drift check for synthesised traces. Tool requests and invalid
    tags are left untouched: they are not part of the prose.
    """

    def phrase_of(segment: Segment) -> str | None:
        return segment.phrase if isinstance(segment, Grounding | Placeholder) else None

    return _rewrite(source, _as_thought(source, syntax), phrase_of, syntax)


CoordsSource: TypeAlias = Sequence[Sequence[Sequence[int]]] | Callable[[int, str], Sequence[Sequence[int]]]
"""Per placeholder, in order: its instances; either a sequence or `f(placeholder_index, phrase)`."""


def fill_placeholders(
    source: GroundedThought | str, coords_for: CoordsSource, kind: Kind, *, syntax: Syntax = PAPER_SYNTAX
) -> str:
    """Write coordinates into each `<obj> phrase | ? </obj>`, giving a box or point trace.

    A placeholder with no instances (the grounder found nothing) becomes its bare phrase, since a tag
    cannot hold zero instances. ValueError if a sequence has the wrong length or coordinates are invalid.
    """
    thought = _as_thought(source, syntax)
    count = len(thought.placeholders)
    if not callable(coords_for) and len(coords_for) != count:
        raise ValueError(f"{len(coords_for)} coordinate lists for {count} placeholders")
    index = 0

    def filled(segment: Segment) -> str | None:
        nonlocal index
        if not isinstance(segment, Placeholder):
            return None
        coords = coords_for(index, segment.phrase) if callable(coords_for) else coords_for[index]
        index += 1
        if len(coords) == 0:
            return segment.phrase
        return render_grounding(segment.phrase, kind, coords, syntax=syntax)

    return _rewrite(source, thought, filled, syntax)


def box_trace_to_point_trace(
    source: GroundedThought | str, masks: Sequence[Sequence[np.ndarray]], *, syntax: Syntax = PAPER_SYNTAX
) -> str:
    """Rewrite every box grounding as points on its objects: the point variant of a synthesised box trace.

    `masks[i]` holds one (H, W) bool mask per instance of the i-th box grounding; each point is the mask's
    most interior pixel (`geometry.mask_to_point`), taken at the pixel centre and normalised. Point
    groundings are left as they are.
    """
    thought = _as_thought(source, syntax)
    boxes = [g for g in thought.groundings if g.kind == "box"]
    if len(masks) != len(boxes):
        raise ValueError(f"{len(masks)} mask lists for {len(boxes)} box groundings")
    index = 0

    def as_points(segment: Segment) -> str | None:
        nonlocal index
        if not (isinstance(segment, Grounding) and segment.kind == "box"):
            return None
        instance_masks = masks[index]
        index += 1
        if len(instance_masks) != len(segment.coords):
            counts = f"{len(instance_masks)} masks for {len(segment.coords)} instances"
            raise ValueError(f"{counts} of {segment.phrase!r}")
        points = []
        for mask in instance_masks:
            height, width = np.shape(mask)
            col, row = geometry.mask_to_point(mask)
            points.append(geometry.norm_from_pixel_point(col + 0.5, row + 0.5, width, height))
        return render_grounding(segment.phrase, "point", points, syntax=syntax)

    return _rewrite(source, thought, as_points, syntax)
