"""Every parser of model output runs in linear time, and reads normal text as the plain regexes did.

Time: on adversarial families of 100 KB+ (repeated openers, whitespace runs, unclosed and nested tags, digit
runs), each parser's time is bounded per byte against a linear reference measured in the same run on the same
text (one regex pass splitting it into words, punctuation and whitespace runs), so a slower machine moves both
sides. A quadratic parser is 10^3 to 10^5 times the reference at this size; the parsers' constant factor is
~10-150 times it. A parser over its bound gets one more measurement before
failing: the machine is shared.

Behaviour: the linear rewrites (`tag_spans`, the fence and router-reply regexes) agree with the regexes they
replaced on random short texts built from the same tag pieces.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vgt_agent.answers import check_answer, extract_answer, normalise_choice, normalise_count
from vgt_agent.format import parse, read_groundings, strip_groundings, tag_spans
from vgt_agent.reference_routing import _REPLY_LINE, parse_router_reply
from vgt_agent.synthesis.extract import _FENCE
from vgt_agent.synthesis.vlm_policy import parse_tool_call

MIN_BYTES = 100_000
MAX_BYTES = 200_000
PER_BYTE_FACTOR = 1000  # parser time <= FACTOR x reference time + FLOOR
FLOOR_S = 0.05

PARSERS: dict[str, Callable[[str], Any]] = {
    "extract_answer": extract_answer,
    "check_answer count": lambda s: check_answer(s, 3, "count"),
    "check_answer choice": lambda s: check_answer(s, "B", "choice", ["red cube", "blue ring"]),
    "normalise_count": normalise_count,
    "normalise_choice": lambda s: normalise_choice(s, ["red cube", "blue ring"]),
    "format.parse": parse,
    "format.read_groundings": read_groundings,
    "format.strip_groundings": strip_groundings,
    "reference_routing.parse_router_reply": lambda s: parse_router_reply(s, 5, 5),
    "extract fence": lambda s: _FENCE.sub("", s.strip()),
    "vlm_policy.parse_tool_call": parse_tool_call,
}

# The pieces adversarial texts are built of: every tag literal the parsers look for, whitespace, digits,
# answer phrases, number words and option letters.
PIECES = ["<answer>", "</answer>", "<obj>", "</obj>", "<ground>", "</ground>", "<think>", "</think>", "<tool>",
          "</tool>", "\\boxed{", "{", "}", "\\text{", "|", "[", "]", ",", ";", "1", "1000", "-", ":", ".", "?",
          " ", "\n", "\t", "```", "answer is", "Answer:", "one", "and", "A", "(B)", "yes", "tag 1", "->", "x", "a"]


_TOKEN = re.compile(r"\w+|[^\w\s]|\s+")


def _reference_seconds(text: str) -> float:
    """A linear pass over `text`: split it into words, punctuation marks and whitespace runs (one object per
    token, as the parsers make one per tag)."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        len(_TOKEN.findall(text))
        best = min(best, time.perf_counter() - start)
    return best


def _parser_seconds(parser: Callable[[str], Any], text: str) -> float:
    parser("<obj> a | [1, 2] </obj> \\boxed{1}")  # compiled patterns and lazy imports are not the text's cost
    start = time.perf_counter()
    parser(text)
    return time.perf_counter() - start


@st.composite
def adversarial_texts(draw: st.DrawFn) -> str:
    """100-200 KB from one family: a unit repeated, a piece then a run, or nested openers with no closers."""
    family = draw(st.sampled_from(["repeat", "run", "nest", "mix"]))
    size = draw(st.integers(MIN_BYTES, MAX_BYTES))
    if family == "repeat":  # repeated openers / unclosed tags / tag soup
        unit = "".join(draw(st.lists(st.sampled_from(PIECES), min_size=1, max_size=4)))
    elif family == "run":  # an opener followed by a whitespace (or digit, or dash) run, then something
        head, tail = draw(st.sampled_from(PIECES)), draw(st.sampled_from(PIECES))
        run = draw(st.sampled_from([" ", "\n", "\t ", "1", "-", "."]))
        return head + run * (size // len(run)) + tail
    elif family == "nest":  # openers nested without closers, each with a little text
        opener = draw(st.sampled_from(["<obj>", "<ground>", "<answer>", "<tool>", "\\boxed{", "<think>"]))
        unit = opener + draw(st.sampled_from(["", " ", " a | ", " [1, 2] ", "\n"]))
    else:  # a random mix, repeated
        unit = "".join(draw(st.lists(st.sampled_from(PIECES), min_size=5, max_size=40)))
    return (unit * (size // len(unit) + 1))[:size]


@pytest.mark.parametrize("name", list(PARSERS))
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(text=adversarial_texts())
def test_parser_time_is_bounded_per_byte(name: str, text: str) -> None:
    parser = PARSERS[name]
    for _ in range(2):
        reference = _reference_seconds(text)
        bound = PER_BYTE_FACTOR * reference + FLOOR_S
        took = _parser_seconds(parser, text)
        if took <= bound:
            return
    pytest.fail(f"{name} took {took:.3f} s on {len(text):,} bytes, over {bound:.3f} s "
                f"({PER_BYTE_FACTOR} x the {reference * 1e3:.3f} ms linear reference + {FLOOR_S} s)")


# ---- behaviour: the linear rewrites agree with the regexes they replaced --------------------------------

short_texts = st.lists(st.sampled_from(PIECES + ["<ANSWER>", "</Answer>", "  ", "\n\n", "json", "```json"]),
                       max_size=30).map("".join)


@given(short_texts)
def test_tag_spans_equal_the_lazy_regex(text: str) -> None:
    for open_tag, close_tag, flags in (("<tool>", "</tool>", re.S), ("<answer>", "</answer>", re.S | re.I)):
        pattern = re.compile(re.escape(open_tag) + "(.*?)" + re.escape(close_tag), flags)
        expected = [m.span(1) for m in pattern.finditer(text)]
        assert tag_spans(text, open_tag, close_tag, ignore_case=bool(flags & re.I)) == expected


@given(short_texts)
def test_answer_tag_reads_as_the_old_regex(text: str) -> None:
    old = re.compile(r"<answer>\s*(.*?)\s*</answer>", re.S | re.I)
    if find := [m for m in old.finditer(text)]:
        got = extract_answer(text)
        if got.source == "fallback" and find[-1].group(1).strip() and "\\boxed{" not in text:
            assert (got.text, got.span) == (find[-1].group(1).strip(), find[-1].span(1))


@given(short_texts)
def test_fence_strip_equals_the_old_regex(text: str) -> None:
    old = re.compile(r"^```(?:json)?\s*|\s*```$", re.MULTILINE)
    assert _FENCE.sub("", text) == old.sub("", text)


@given(st.lists(st.sampled_from(["1", "2", ":", " ", "\n", "-", "->", "tag", "none", "ref", "#", "*", "x", ")"]),
                max_size=30).map("".join))
def test_router_reply_reads_as_the_old_regex(text: str) -> None:
    old = re.compile(
        r"^\W*(?:tag\s*)?(\d+)\s*(?:[:=)\].-]|->)+\s*(?:(?:ref(?:erence)?|object)?\s*#?(\d+)|(none\b|no\b|n/a\b|-))",
        re.IGNORECASE | re.MULTILINE)
    assert [m.groups() for m in _REPLY_LINE.finditer(text)] == [m.groups() for m in old.finditer(text)]
