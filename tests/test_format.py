"""The grounded-thought syntax: parsing is exact on canonical text, total and fast on garbage."""

from __future__ import annotations

import dataclasses
import random
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vgt_agent import geometry
from vgt_agent.format import (
    PAPER_SYNTAX,
    GroundedThought,
    Grounding,
    Placeholder,
    Problem,
    ToolRequest,
    box_trace_to_point_trace,
    compose,
    fill_placeholders,
    find_boxed,
    parse,
    render,
    render_grounding,
    render_placeholder,
    render_tool_request,
    render_tool_result,
    strip_groundings,
)

# --- canonical parsing ----------------------------------------------------------------------------------


def test_parse_canonical_thought_extracts_everything_with_spans() -> None:
    text = (
        "<think>The <obj> red cup | [412, 233] </obj> is left of "
        "<obj> three pedestrians | [120, 700]; [180, 695]; [240, 705] </obj> and the "
        "<obj> table | [131, 138, 440, 502] </obj>.</think> \\boxed{B}"
    )
    thought = parse(text)

    assert thought.is_valid, thought.problems
    cup, people, table = thought.groundings
    assert cup == Grounding("red cup", "point", ((412, 233),), cup.span)
    assert people.kind == "point" and people.coords == ((120, 700), (180, 695), (240, 705))
    assert table.kind == "box" and table.coords == ((131, 138, 440, 502),)
    for grounding in thought.groundings:
        start, end = grounding.span
        assert text[start:end].startswith("<obj>") and text[start:end].endswith("</obj>")
        assert grounding.phrase in text[start:end]
    assert thought.segments[0] == "<think>The "
    assert thought.segments[-1] == ".</think> \\boxed{B}"
    assert thought.answer == "B"
    assert thought.think is not None and thought.think.startswith("The <obj> red cup")
    assert thought.has_think
    assert render(thought) == text == thought.text


def test_parse_tolerates_whitespace_inside_tags_and_render_normalises_it() -> None:
    text = "<obj>red cup|[1,2]</obj> <obj>\n  a  box \t|\n[ 1 ,2,3 , 4 ];[5,6, 7,8]\n</obj> \\boxed{1}"
    thought = parse(text)

    assert thought.is_valid, thought.problems
    assert [g.phrase for g in thought.groundings] == ["red cup", "a  box"]
    assert thought.groundings[1].coords == ((1, 2, 3, 4), (5, 6, 7, 8))
    assert thought.text == (
        "<obj> red cup | [1, 2] </obj> <obj> a  box | [1, 2, 3, 4]; [5, 6, 7, 8] </obj> \\boxed{1}"
    )


@pytest.mark.parametrize(
    "text",
    [
        "<think>I see <obj> two red cups | [1, 2]; [3, 4] </obj> on the left.</think>\n\\boxed{2}",
        "<think></think>\\boxed{\\text{B}}",
        "plain text with a < b and [1, 2] | pipes; \\boxed{x}",
        "<obj> cup | [0, 0, 1000, 1000] </obj><obj> cup | [1000, 0] </obj>\\boxed{}",
        "<think>where is the mug?</think> <ground> blue mug </ground>",
        "<think>later <obj> chair | ? </obj> and <obj> lamp | ? </obj></think>\\boxed{no}",
    ],
)
def test_render_of_parse_is_identity_on_canonical_strings(text: str) -> None:
    thought = parse(text)
    assert thought.is_valid, thought.problems
    assert render(thought) == text
    assert parse(render(thought)) == thought


# --- round trip property --------------------------------------------------------------------------------

# No `>` (so no tag or think marker can form by accident) and no `\`, `{`, `}` (so no stray boxed syntax).
_TEXT_ALPHABET = st.characters(
    codec="utf-8", exclude_characters="<>\\{}", exclude_categories=("Cs",)
) | st.sampled_from("<|[];,0123456789 \n")
_PROSE = st.text(_TEXT_ALPHABET, max_size=30)
_PHRASE = (
    st.text(
        st.characters(codec="utf-8", exclude_characters="<>|\\{}", exclude_categories=("Cs",)),
        min_size=1,
        max_size=15,
    )
    .map(str.strip)
    .filter(bool)
)
_VALUE = st.integers(0, 1000)


@st.composite
def _boxes(draw: st.DrawFn) -> tuple[int, int, int, int]:
    x1, x2 = sorted(draw(st.lists(_VALUE, min_size=2, max_size=2, unique=True)))
    y1, y2 = sorted(draw(st.lists(_VALUE, min_size=2, max_size=2, unique=True)))
    return (x1, y1, x2, y2)


_GROUNDINGS = st.one_of(
    st.builds(
        Grounding, _PHRASE, st.just("point"), st.lists(st.tuples(_VALUE, _VALUE), min_size=1, max_size=4)
    ),
    st.builds(Grounding, _PHRASE, st.just("box"), st.lists(_boxes(), min_size=1, max_size=4)),
)
_TAGS = _GROUNDINGS | st.builds(Placeholder, _PHRASE) | st.builds(ToolRequest, _PHRASE)


@st.composite
def canonical_thoughts(draw: st.DrawFn) -> tuple[GroundedThought, str]:
    """`<think>` prose interleaved with tags `</think>` prose `\\boxed{answer}`, and that answer."""
    body = draw(st.lists(st.one_of(_PROSE, _TAGS), max_size=8))
    answer = draw(_PROSE | _PROSE.map(lambda s: f"\\text{{{s}}}"))
    parts = [draw(_PROSE), "<think>", *body, "</think>", draw(_PROSE), f"\\boxed{{{answer}}}", draw(_PROSE)]
    return compose(parts), answer


@settings(max_examples=300, deadline=None)
@given(canonical_thoughts())
def test_parse_render_round_trip(thought_and_answer: tuple[GroundedThought, str]) -> None:
    thought, answer = thought_and_answer
    text = render(thought)

    parsed = parse(text)

    assert parsed == thought
    assert parsed.is_valid
    assert parsed.answer == answer
    assert parsed.think is not None
    assert render(parsed) == text
    for segment in parsed.segments:
        if not isinstance(segment, str):
            start, end = segment.span
            alone = parse(text[start:end], expect_answer=False).segments
            assert alone == (dataclasses.replace(segment, span=(0, end - start)),)


def test_compose_merges_text_and_locates_tags() -> None:
    cup = Grounding("cup", "point", [[1, 2]])
    thought = compose(["a", "", "b ", cup, " c"])

    assert thought.segments == ("ab ", Grounding("cup", "point", ((1, 2),), (3, 28)), " c")
    assert thought.text[3:28] == "<obj> cup | [1, 2] </obj>"


# --- malformed input ------------------------------------------------------------------------------------

_OK = " <obj> ok | [5, 6] </obj> \\boxed{A}"


@pytest.mark.parametrize(
    ("text", "codes", "phrases"),
    [
        ("<obj> cup | [1, 2]" + _OK, ["unclosed_tag"], ["ok"]),
        ("cup | [1, 2] </obj>" + _OK, ["stray_closing_tag"], ["ok"]),
        ("<obj> a <obj> b | [1, 2] </obj> </obj>" + _OK, ["nested_tag"], ["b", "ok"]),
        ("<obj> a </ground> | [1, 2] </obj>" + _OK, ["nested_tag", "stray_closing_tag"], ["ok"]),
        ("<obj> cup [1, 2] </obj>" + _OK, ["missing_separator"], ["ok"]),
        ("<obj> | [1, 2] </obj>" + _OK, ["empty_phrase"], ["ok"]),
        ("<obj> a < b | [1, 2] </obj>" + _OK, ["invalid_phrase"], ["ok"]),
        ("<obj> cup | </obj>" + _OK, ["missing_coords"], ["ok"]),
        ("<obj> cup | 1, 2 </obj>" + _OK, ["malformed_coords"], ["ok"]),
        ("<obj> cup | [1, 2]; </obj>" + _OK, ["malformed_coords"], ["ok"]),
        ("<obj> cup | [1, x] </obj>" + _OK, ["malformed_coords"], ["ok"]),
        ("<obj> cup | [] </obj>" + _OK, ["malformed_coords"], ["ok"]),
        ("<obj> cup | [1.5, 2] </obj>" + _OK, ["non_integer_coord"], ["ok"]),
        ("<obj> cup | [1e3, 2] </obj>" + _OK, ["non_integer_coord"], ["ok"]),
        ("<obj> cup | [1001, 2] </obj>" + _OK, ["coord_out_of_range"], ["ok"]),
        ("<obj> cup | [-1, 2] </obj>" + _OK, ["coord_out_of_range"], ["ok"]),
        ("<obj> cup | [" + "9" * 5000 + ", 2] </obj>" + _OK, ["coord_out_of_range"], ["ok"]),
        ("<obj> cup | [1, 2, 3] </obj>" + _OK, ["wrong_arity"], ["ok"]),
        ("<obj> cup | [1] </obj>" + _OK, ["wrong_arity"], ["ok"]),
        ("<obj> cup | [5, 1, 5, 9] </obj>" + _OK, ["box_order"], ["ok"]),
        ("<obj> cup | [1, 9, 5, 2] </obj>" + _OK, ["box_order"], ["ok"]),
        ("<obj> cup | [1, 2]; [1, 2, 3, 4] </obj>" + _OK, ["mixed_kinds"], ["ok"]),
        ("<obj> cup | ?; [1, 2] </obj>" + _OK, ["malformed_coords"], ["ok"]),
        (
            "<obj> | [1.5, 2]; [2000, 1] </obj>" + _OK,
            ["coord_out_of_range", "empty_phrase", "non_integer_coord"],
            ["ok"],
        ),
        ("<ground> </ground>" + _OK, ["empty_phrase"], ["ok"]),
        ("<ground> a | [1, 2] </ground>" + _OK, ["invalid_phrase"], ["ok"]),
        ("<obj> cup | [1, 2] </ground>" + _OK, ["stray_closing_tag", "unclosed_tag"], ["ok"]),
        ("<think> x" + _OK, ["unclosed_think"], ["ok"]),
        ("x </think>" + _OK, ["unopened_think"], ["ok"]),
        ("<think> x <think> y </think>" + _OK, ["multiple_think"], ["ok"]),
        ("<obj> ok | [5, 6] </obj> \\boxed{A} \\boxed{B}", ["multiple_boxed"], ["ok"]),
        ("<obj> ok | [5, 6] </obj> \\boxed{A", ["missing_answer", "unclosed_boxed"], ["ok"]),
        ("<obj> ok | [5, 6] </obj>", ["missing_answer"], ["ok"]),
    ],
)
def test_malformed_input_reports_codes_and_keeps_well_formed_parts(
    text: str, codes: list[str], phrases: list[str]
) -> None:
    thought = parse(text)

    assert sorted(p.code for p in thought.problems) == codes
    assert [g.phrase for g in thought.groundings] == phrases
    assert render(thought) == text  # invalid tags stay verbatim; the valid ones here are canonical
    for problem in thought.problems:
        assert 0 <= problem.span[0] <= problem.span[1] <= len(text)
        assert problem.message


def test_invalid_tag_text_stays_in_text_segments() -> None:
    thought = parse("see <obj> cup | [1, 2000] </obj> here \\boxed{1}")
    assert thought.segments == ("see <obj> cup | [1, 2000] </obj> here \\boxed{1}",)
    assert thought.problems == (Problem("coord_out_of_range", "coordinates must lie in 0..1000", (4, 32)),)


def test_unclosed_outer_tag_does_not_hide_inner_valid_tag() -> None:
    thought = parse("<obj> cup | [1, 2] and <obj> mug | [3, 4] </obj> \\boxed{1}")
    assert [p.code for p in thought.problems] == ["unclosed_tag"]
    assert thought.problems[0].span == (0, 5)
    assert thought.groundings[0].phrase == "mug"


def test_multiple_boxed_keeps_last_answer() -> None:
    thought = parse("\\boxed{A} then \\boxed{\\text{B}}")
    assert thought.answer == "\\text{B}"
    assert [p.code for p in thought.problems] == ["multiple_boxed"]


def test_tool_request_turn_needs_no_answer() -> None:
    assert parse("<think>where is it? <ground> red cup </ground>").problems == (
        Problem("unclosed_think", "<think> is never closed", (0, 7)),
    )
    assert parse("<think>where?</think><ground> red cup </ground>").is_valid
    assert parse("<obj> cup | [1, 2] </obj>", expect_answer=False).is_valid


def test_think_content_and_absence() -> None:
    assert parse("<think> a </think> b <think> c </think> \\boxed{1}").think == " a "
    assert parse("\\boxed{1}").think is None
    assert not parse("\\boxed{1}").has_think
    assert parse("<think>x \\boxed{1}").think is None


# --- never raise, stay fast -----------------------------------------------------------------------------

_FRAGMENTS = [
    "<obj>",
    "</obj>",
    "<ground>",
    "</ground>",
    "<think>",
    "</think>",
    "\\boxed{",
    "{",
    "}",
    "\\",
    "|",
    "[",
    "]",
    ";",
    ",",
    "?",
    "-",
    ".",
    "e",
    "0",
    "7",
    "1000",
    "1001",
    "99999999999999999999",
    " ",
    "\n",
    "cup",
    "é",
    "漢字",
    "🙂",
    "\x00",
    "<",
    ">",
    "obj",
    "/",
    "[1, 2]",
    "[1, 2, 3, 4]",
    "<obj> a | [1, 2] </obj>",
    "<obj>a|[1,2,3,4];[5,6,7,8]</obj>",
    "<obj> b | ? </obj>",
    "<ground>c</ground>",
]


def _garbage(rng: random.Random, n_fragments: int) -> str:
    return "".join(rng.choice(_FRAGMENTS) for _ in range(n_fragments))


def _reassembled(thought: GroundedThought, text: str) -> str:
    """The source rebuilt from text segments and tag spans: checks segments tile the text exactly."""
    return "".join(s if isinstance(s, str) else text[s.span[0] : s.span[1]] for s in thought.segments)


def _without_spans(thought: GroundedThought) -> list[object]:
    return [dataclasses.replace(s, span=(0, 0)) for s in thought.segments if not isinstance(s, str)]


def test_ten_thousand_fuzzed_strings_never_raise() -> None:
    rng = random.Random(20261125)
    for _ in range(10_000):
        text = _garbage(rng, rng.randint(0, 40))
        thought = parse(text)
        assert _reassembled(thought, text) == text
        assert all(p.span[0] <= p.span[1] <= len(text) for p in thought.problems)
        strip_groundings(text)
        find_boxed(text)


def _plain_tag(rng: random.Random) -> str:
    """A tag as a model writes it: mostly a canonical `<obj>`, sometimes with one flaw the fast path must hand
    to the stack scan (out of range, unordered box, mixed kinds, odd spacing, leading zero, bad phrase)."""
    kind = rng.choice("pb" * 10 + "x")
    instances = []
    for _ in range(rng.randint(1, 3)):
        arity = {"p": 2, "b": 4, "x": rng.choice((2, 4))}[kind]
        values = [rng.choice([rng.randint(0, 1000)] * 100 + [0, 1000, 1001, 9999, 10000]) for _ in range(arity)]
        if arity == 4 and rng.random() < 0.95:
            values = [*map(min, values[:2], values[2:]), *map(max, values[:2], values[2:])]
        numbers = ", ".join(map(str, values)) if rng.random() < 0.97 else ",".join(map(str, values))
        instances.append("[" + ("0" if rng.random() < 0.03 else "") + numbers + "]")
    separator = "; " if rng.random() < 0.97 else rng.choice([";", " ; ", ";\n"])
    phrase = rng.choice(["red cup", " the two red cups ", "cup", "é漢字", "x\u3000y"] * 4 + ["", "  ", "a|b"])
    space = rng.choice([" "] * 12 + ["", "\n", "\u3000"])
    return f"<obj>{space}{phrase}{space}|{space}{separator.join(instances)}{space}</obj>"


def test_fast_path_agrees_with_the_stack_scan(monkeypatch: pytest.MonkeyPatch) -> None:
    """The one-regex fast path for well-formed tags must give exactly what the general scanner gives, and
    `read_groundings` exactly the parse's groundings, coordinates read lazily or not."""
    from vgt_agent.format import parsing, read_groundings, stacked_coords

    rng = random.Random(7)
    texts = [_garbage(rng, rng.randint(0, 30)) for _ in range(3000)]
    texts += [" ".join(f"x <obj> p{i} | [{rng.randint(0, 1000)}, {rng.randint(0, 1000)}] </obj>" for i in range(k))
              for k in range(12)]
    texts += ["<obj>a|[1,2,3,4];[5,6,7,8]</obj> and <obj>  b c |[ 1 , 2 ] </obj>",
              "<obj> a | [1, 2]; [3, 4, 5, 6] </obj>", "<obj> a | [1, 2]; [1001, 4] </obj>",
              "<obj> a | [9, 2, 3, 4] </obj>", "<obj>  | [1, 2] </obj>", "<ob<obj> a | [1, 2] </obj>j>"]
    for i in range(3000):  # thoughts made mostly of plain tags (each with a few chances of one flaw)
        parts = [_plain_tag(rng) if rng.random() < 0.6 else rng.choice(_FRAGMENTS) if i % 2 else " so "
                 for _ in range(rng.randint(0, 8))]
        texts.append("<think>" + "".join(parts) + "</think> \\boxed{2}")
    fast = [parse(t) for t in texts]
    plain = sum(parsing._plain_groundings(t, PAPER_SYNTAX) is not None and bool(f.groundings)
                for t, f in zip(texts, fast, strict=True))
    assert plain > 500  # the fast path is exercised, not just skipped
    assert [read_groundings(t) for t in texts] == [f.groundings for f in fast]
    for thought in fast:
        for kind in ("point", "box"):
            groundings = [g for g in thought.groundings if g.kind == kind]
            coords, sizes = stacked_coords(groundings)
            assert coords.tolist() == [list(i) for g in groundings for i in g.coords]  # reads `coords` lazily
            assert sizes == [len(g.coords) for g in groundings]
    monkeypatch.setattr(parsing, "_plain_groundings", lambda text, syntax: None)
    assert [parse(t) for t in texts] == fast


def test_lazily_read_coordinates_behave_like_given_ones() -> None:
    """The fast path leaves coordinates to be read on first use; copies, pickles and `replace` still see them."""
    import copy
    import pickle

    text = "<obj> cups | [1, 2]; [3, 4] </obj> <obj> box | [1, 2, 30, 40] </obj>"
    second = text.index("<obj> box")
    eager = (Grounding("cups", "point", ((1, 2), (3, 4)), (0, second - 1)),
             Grounding("box", "box", ((1, 2, 30, 40),), (second, len(text))))
    assert pickle.loads(pickle.dumps(parse(text).groundings)) == eager
    assert copy.deepcopy(parse(text).groundings) == eager
    cups, box = parse(text).groundings
    assert not hasattr(cups, "phrases") and not hasattr(box, "__array__")  # other attributes stay missing
    assert dataclasses.replace(cups, span=(0, 0)).coords == ((1, 2), (3, 4))
    assert dataclasses.asdict(box)["coords"] == ((1, 2, 30, 40),)
    assert (cups, box) == eager and hash(cups) == hash(eager[0]) and repr(box) == repr(eager[1])


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(_FRAGMENTS) | st.characters(codec="utf-8", exclude_categories=("Cs",))).map(
        "".join
    )
)
def test_arbitrary_text_never_raises(text: str) -> None:
    thought = parse(text)
    assert _reassembled(thought, text) == text
    assert thought.answer in (None, *[content for content, _ in find_boxed(thought.text)])
    assert _without_spans(parse(thought.text)) == _without_spans(thought)  # rendering only normalises
    assert strip_groundings(thought) == strip_groundings(thought.text)


@pytest.mark.parametrize(
    "garbage",
    [
        _garbage(random.Random(1), 250_000)[:1_000_000],
        "<obj>" * 200_000,
        "</obj>" * 166_000,
        "<obj> a | [1, 2] </obj>" * 45_000,
        "\\boxed{" * 140_000,
        "{" * 1_000_000,
        "<obj> a | [" + "1" * 1_000_000 + "x] </obj>",
        "<obj> a | " + "[1, 2];" * 140_000 + " </obj>",
        "<think>" * 140_000,
    ],
    ids=["mixed", "openers", "closers", "valid-tags", "boxed", "braces", "digits", "instances", "think"],
)
def test_one_megabyte_of_garbage_parses_fast(garbage: str) -> None:
    # Only a guard against catastrophic (super-linear) backtracking, which would take minutes: the speed
    # itself (~0.1-0.5 s per MB) is measured in benchmarks/format_speed.py, not asserted here.
    start = time.perf_counter()
    thought = parse(garbage)
    elapsed = time.perf_counter() - start

    assert len(garbage) >= 900_000
    assert elapsed < 20.0, elapsed
    assert thought.problems or thought.groundings


# --- helpers --------------------------------------------------------------------------------------------


def test_strip_groundings_keeps_the_sentence() -> None:
    text = "I see <obj> two red cups | [1,2]; [3,4] </obj> on the left"
    assert strip_groundings(text) == "I see two red cups on the left"
    assert strip_groundings(parse(text)) == "I see two red cups on the left"


def test_strip_groundings_keeps_invalid_tags_and_tool_requests_and_strips_placeholders() -> None:
    text = "<obj> a | [1, 9999] </obj> <obj> b | ? </obj> <ground> c </ground> <obj> d | [1, 2] </obj>"
    assert strip_groundings(text) == "<obj> a | [1, 9999] </obj> b <ground> c </ground> d"


def test_find_boxed_handles_nesting_escapes_and_unclosed() -> None:
    text = r"\boxed{\text{B}} x \boxed{\frac{1}{2}} \boxed{\{1\}} \boxed{\boxed{in}} \boxed{open"
    found = find_boxed(text)

    assert [content for content, _ in found] == [r"\text{B}", r"\frac{1}{2}", r"\{1\}", r"\boxed{in}"]
    for content, (start, end) in found:
        assert text[start:end] == "\\boxed{" + content + "}"
    assert find_boxed("no answer") == []
    assert find_boxed(r"\boxed{}") == [("", (0, 8))]


def test_placeholders_parse_and_fill_from_a_sequence() -> None:
    text = "<think>the <obj> cup | ? </obj> near <obj> mugs | ? </obj> and <obj> ghost | ? </obj></think>"
    thought = parse(text, expect_answer=False)
    assert [p.phrase for p in thought.placeholders] == ["cup", "mugs", "ghost"]
    assert thought.groundings == ()

    filled = fill_placeholders(text, [[(1, 2)], [np.array([3, 4]), (5, 6)], []], "point")

    assert filled == (
        "<think>the <obj> cup | [1, 2] </obj> near <obj> mugs | [3, 4]; [5, 6] </obj> and ghost</think>"
    )
    assert strip_groundings(filled) == strip_groundings(text)
    assert parse(filled, expect_answer=False).is_valid


def test_fill_placeholders_from_a_callable_and_a_thought() -> None:
    thought = compose(["<think>", Placeholder("cup"), " and ", Placeholder("plate"), "</think>\\boxed{1}"])
    boxes = {"cup": [(10, 20, 30, 40)], "plate": [(1, 2, 3, 4), (5, 6, 7, 8)]}

    filled = fill_placeholders(thought, lambda index, phrase: boxes[phrase], "box")

    assert filled == (
        "<think><obj> cup | [10, 20, 30, 40] </obj> and "
        "<obj> plate | [1, 2, 3, 4]; [5, 6, 7, 8] </obj></think>\\boxed{1}"
    )
    assert parse(filled).is_valid


def test_fill_placeholders_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        fill_placeholders("<obj> cup | ? </obj>", [], "point")
    with pytest.raises(ValueError):
        fill_placeholders("<obj> cup | ? </obj>", [[(1, 2)]], "box")
    with pytest.raises(ValueError):
        fill_placeholders("<obj> cup | ? </obj>", [[(1, 2000)]], "point")


def _l_shape(height: int, width: int) -> np.ndarray:
    mask = np.zeros((height, width), dtype=bool)
    mask[2:28, 3:9] = True  # vertical bar
    mask[22:28, 3:35] = True  # horizontal foot: the centroid of the L is off the mask
    return mask


def test_box_trace_to_point_trace_puts_points_on_the_masks() -> None:
    height, width = 30, 40
    l_shape = _l_shape(height, width)
    blob = np.zeros((height, width), dtype=bool)
    blob[5:9, 30:36] = True
    masks = [[l_shape, blob], [blob]]
    boxes = [geometry.norm_from_pixel_box(geometry.mask_to_box(m), width, height) for m in (l_shape, blob)]
    text = (
        f"<think>{render_grounding('shapes', 'box', boxes)} vs {render_grounding('dot', 'point', [(5, 5)])}"
        f" vs {render_grounding('blob', 'box', boxes[1:])}</think>\\boxed{{2}}"
    )

    rewritten = box_trace_to_point_trace(text, masks)
    thought = parse(rewritten)

    assert thought.is_valid, thought.problems
    shapes, dot, blob_grounding = thought.groundings
    assert (shapes.kind, blob_grounding.kind) == ("point", "point")
    assert (dot.phrase, dot.coords) == ("dot", ((5, 5),))  # point groundings are left alone
    for grounding, instance_masks in ((shapes, masks[0]), (blob_grounding, masks[1])):
        for (nx, ny), mask in zip(grounding.coords, instance_masks, strict=True):
            x, y = geometry.pixel_from_norm_point(nx, ny, width, height)
            assert mask[int(y), int(x)], (grounding.phrase, nx, ny)
    centroid_row, centroid_col = np.argwhere(l_shape).mean(axis=0)
    assert not l_shape[int(centroid_row), int(centroid_col)]  # the test shape really is non-convex
    assert strip_groundings(rewritten) == strip_groundings(text)
    assert box_trace_to_point_trace(parse(text), masks) == rewritten


def test_box_trace_to_point_trace_checks_mask_counts() -> None:
    mask = np.ones((4, 4), dtype=bool)
    text = "<obj> a | [1, 2, 3, 4]; [5, 6, 7, 8] </obj>"
    with pytest.raises(ValueError):
        box_trace_to_point_trace(text, [])
    with pytest.raises(ValueError):
        box_trace_to_point_trace(text, [[mask]])


def test_tool_protocol_rendering() -> None:
    assert render_tool_request("red cup") == "<ground> red cup </ground>"
    assert render_tool_result("red cup", "point", [(1, 2), (3, 4)]) == "<obj> red cup | [1, 2]; [3, 4] </obj>"
    assert render_tool_result("red cup", "box", []) == "No red cup found."
    assert render_placeholder("red cup") == "<obj> red cup | ? </obj>"
    result = parse(render_tool_result("red cup", "box", [(1, 2, 3, 4)]), expect_answer=False)
    assert result.is_valid and result.groundings[0].coords == ((1, 2, 3, 4),)


@pytest.mark.parametrize(
    ("phrase", "kind", "coords"),
    [
        ("", "point", [(1, 2)]),
        (" cup", "point", [(1, 2)]),
        ("a|b", "point", [(1, 2)]),
        ("cup", "point", []),
        ("cup", "point", [(1, 2, 3, 4)]),
        ("cup", "box", [(3, 2, 1, 4)]),
        ("cup", "point", [(1.5, 2)]),
        ("cup", "point", [(1001, 2)]),
        ("cup", "polygon", [(1, 2)]),
    ],
)
def test_render_grounding_rejects_invalid_groundings(phrase: str, kind: str, coords: list) -> None:
    with pytest.raises(ValueError):
        render_grounding(phrase, kind, coords)  # type: ignore[arg-type]


def test_grounding_coerces_to_value_types() -> None:
    grounding = Grounding("cup", "point", [np.array([1, 2]), [np.int64(3), 4]], [5, 9])
    assert grounding == Grounding("cup", "point", ((1, 2), (3, 4)), (5, 9))
    assert hash(grounding) == hash(Grounding("cup", "point", ((1, 2), (3, 4)), (5, 9)))
    assert GroundedThought(["a", grounding]) == GroundedThought(("a", grounding))


def test_syntax_is_the_single_source_of_literals() -> None:
    assert PAPER_SYNTAX.tag_token.findall("<obj></obj><ground></ground><think>") == [
        "<obj>",
        "</obj>",
        "<ground>",
        "</ground>",
    ]
