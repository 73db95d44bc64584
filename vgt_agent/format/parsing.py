"""Reading model output: `parse` never raises and runs in linear time.

Tags are tokenised with one flat regex and matched with a stack; each tag body is validated with simple
splits. The common all-well-formed case takes a one-regex fast path proven equal to the stack scan, whose
groundings read their coordinates on first use (GRPO rewards route every tag but score a few).
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass
from itertools import accumulate, chain
from typing import TYPE_CHECKING, TypeAlias

from vgt_agent.format.syntax import KIND_OF_ARITY, PAPER_SYNTAX, Kind, ProblemCode, Syntax
from vgt_agent.format.thought import (
    GroundedThought,
    Grounding,
    Placeholder,
    Problem,
    Segment,
    ToolRequest,
    instance_error,
    lazy_grounding,
    scan_boxed,
    scan_think,
    trusted_grounding,
)
from vgt_agent.geometry import NORM

if TYPE_CHECKING:  # numpy loads when numbers are read, not when a command imports the parser
    pass

_INTEGER = re.compile(r"[-+]?[0-9]+")
# Unambiguous (the dot is mandatory before the fraction digits) so a long digit run cannot backtrack.
_NUMBER = re.compile(r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")

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
        error = instance_error(instance)
        if error is not None:
            codes[error] = None
        instances.append(instance)
    if len({len(instance) for instance in instances if len(instance) in KIND_OF_ARITY}) > 1:
        codes["mixed_kinds"] = None
    return tuple(instances), list(codes)


_DIGITS = re.compile(r"[0-9]+")


def _read_plain_instances(text: str, syntax: Syntax) -> tuple[tuple[int, ...], ...] | None:
    """One tag's instances when they are plain digits of one kind; None means "look closer"."""
    for arity, pattern in syntax.plain_instances.items():
        if pattern.fullmatch(text):
            return _checked_instances(list(map(int, _DIGITS.findall(text))), arity)
    return None


def _checked_instances(values: list[int], arity: int) -> tuple[tuple[int, ...], ...] | None:
    """`values` grouped into instances of `arity`; None when one is out of range or a box is not ordered (the
    general reader names the problem)."""
    if values and max(values) > NORM:
        return None
    if arity == 4 and not (all(map(operator.lt, values[0::4], values[2::4]))
                           and all(map(operator.lt, values[1::4], values[3::4]))):
        return None
    return tuple(zip(*[iter(values)] * arity, strict=True))


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
    return trusted_grounding(phrase, KIND_OF_ARITY[len(coords[0])], coords, span)


def _read_ground(body: str, span: tuple[int, int], syntax: Syntax) -> ToolRequest | list[Problem]:
    phrase = body.strip()
    return _phrase_problems(phrase, span, syntax) or ToolRequest(phrase, span)


TagItem: TypeAlias = Grounding | Placeholder | ToolRequest


def _plain_groundings(text: str, syntax: Syntax) -> tuple[list[str], list[Grounding]] | None:
    """The common case (every tag a well-formed `<obj>` written as `render` writes it, nothing nested or
    unclosed): the texts around the tags and the groundings, from one regex split, the numbers of all tags
    checked at once and each grounding's coordinates left to be read on first use (`lazy_grounding`).

    It applies only when no tag token is left outside the matches (a match holds exactly one `<obj>` and one
    `</obj>`), so the result equals what the stack scan would produce; None means "use the stack scan".
    """
    for pattern in syntax.plain_obj_tags:  # as `render` writes them, else any spacing
        pieces = pattern.split(text)  # per tag: text before, tag, phrase, points, boxes; then the rest
        texts, tags = pieces[0::5], pieces[1::5]
        if not syntax.tag_token.search("".join(texts)):  # joining can only add tokens, never hide one
            break
    else:
        return None
    phrases = list(map(str.strip, pieces[2::5]))
    kinds: list[Kind] = ["point" if points is not None else "box" for points in pieces[3::5]]
    # All tags' numbers with the literals blanked out, one tag a line (what `lazy_grounding` reads): one
    # `translate` per completion, as a call per tag costs more than the whole text.
    instances = filter(None, chain.from_iterable(zip(pieces[3::5], pieces[4::5], strict=True)))
    numbers = "\n".join(instances).translate(syntax.coord_punctuation)
    if not all(phrases) or not _plain_numbers_ok(numbers, kinds):
        return None
    bounds = list(accumulate(chain.from_iterable(zip(map(len, texts[:-1]), map(len, tags), strict=True))))
    spans = zip(bounds[0::2], bounds[1::2], strict=True)
    return texts, list(map(lazy_grounding, phrases, kinds, numbers.split("\n"), spans))


def _scan_plain_tags(text: str, syntax: Syntax) -> list[Segment] | None:
    """`_plain_groundings` as segments: texts and groundings in order, without empty texts."""
    plain = _plain_groundings(text, syntax)
    if plain is None:
        return None
    texts, groundings = plain
    # Texts and groundings alternate; `filter` drops the empty texts (a Grounding is always truthy).
    return list(filter(None, chain(chain.from_iterable(zip(texts[:-1], groundings, strict=True)), texts[-1:])))


FEW_TAGS = 8  # up to this many tags, numbers are checked in Python


def _plain_numbers_ok(numbers: str, kinds: list[Kind]) -> bool:
    """Whether all numbers (whitespace-separated, one tag a line) are in range and every box is ordered: one
    numpy read per completion (two when it mixes kinds) rather than an `int()` per number; a completion of a
    few tags is read in Python (no numpy import for one thought)."""
    if not kinds:
        return True
    if len(kinds) <= FEW_TAGS:
        lines = zip(numbers.split("\n"), kinds, strict=True)
        box = [int(v) for line, kind in lines if kind == "box" for v in line.split()]  # x1 y1 x2 y2 ...
        return (max(int(v) for v in numbers.split()) <= NORM
                and all(box[j] < box[j + 2] and box[j + 1] < box[j + 3] for j in range(0, len(box), 4)))
    import numpy as np

    values = np.fromstring(numbers, dtype=np.int64, sep=" ")
    if values.max() > NORM:
        return False
    if "box" not in kinds:
        return True
    if "point" in kinds:
        lines = zip(numbers.split("\n"), kinds, strict=True)
        values = np.fromstring(" ".join([n for n, kind in lines if kind == "box"]), dtype=np.int64, sep=" ")
    boxes = values.reshape(-1, 2, 2)  # (x1, y1) then (x2, y2)
    return bool((boxes[:, 0] < boxes[:, 1]).all())


def _scan_tags(text: str, syntax: Syntax) -> tuple[list[TagItem], list[Problem]]:
    """Match tag tokens with a stack; only innermost, correctly closed tags can become items.

    Keeping a count of open tags per name makes each closing token O(1) amortised, so the scan is linear.
    """
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


def _answer_problems(text: str, has_tool_request: bool, expect_answer: bool, syntax: Syntax) -> list[Problem]:
    found, unclosed = scan_boxed(text, syntax)
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
    segments = _scan_plain_tags(text, syntax)
    problems: list[Problem] = []
    asks_tool = False
    if segments is None:
        items, problems = _scan_tags(text, syntax)
        segments = _segments(text, items)
        asks_tool = any(isinstance(item, ToolRequest) for item in items)
    think_problems = scan_think(text, syntax)[1]
    answer_problems = _answer_problems(text, asks_tool, expect_answer, syntax)
    all_problems = sorted(
        problems + think_problems + answer_problems, key=operator.attrgetter("span", "code")
    )
    return GroundedThought(tuple(segments), tuple(all_problems))


def _segments(text: str, items: list[TagItem]) -> list[Segment]:
    """The text between the items (sorted by span) and the items, in order."""
    segments: list[Segment] = []
    position = 0
    for item in items:
        if item.span[0] > position:
            segments.append(text[position : item.span[0]])
        segments.append(item)
        position = item.span[1]
    if position < len(text):
        segments.append(text[position:])
    return segments


def read_groundings(text: str, *, syntax: Syntax = PAPER_SYNTAX) -> tuple[Grounding, ...]:
    """`parse(text).groundings`, without reading the rest of the thought (think block, answer, text segments)
    when every tag is plain: all the grounding reward needs, for four fifths of the parse time."""
    plain = _plain_groundings(text, syntax)
    return tuple(plain[1]) if plain is not None else parse(text, syntax=syntax).groundings
