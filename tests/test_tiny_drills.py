"""Drills: world questions over random replies, every model turn the world-oracle's own text."""

from __future__ import annotations

import math
import random
import re

import pytest

from vgt_agent.backends.world_oracle import read_question
from vgt_agent.format import render_tool_result
from vgt_agent.prompts import format_question
from vgt_agent.tiny.drills import FAMILIES, answer_of, drill, oracle_chunks
from vgt_agent.world.palette import SIZES


def _reply(phrase: str, points: list[tuple[int, int]]) -> dict[str, str]:
    return {"role": "tool", "content": "\n" + render_tool_result(phrase, "point", points) + "\n"}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_questions_read_as_their_family_and_the_oracle_answers_true(family: str) -> None:
    rng = random.Random(3)
    agree = 0
    for _ in range(200):
        question, choices, replies, truth = FAMILIES[family](rng)
        assert read_question(format_question(question, choices)).kind == family
        agree += answer_of(oracle_chunks(question, choices, replies)) == truth
    assert agree >= 195  # the oracle reasons in coarse L1; drill() redraws the rare disagreement


def test_chunks_alternate_oracle_turns_and_tool_replies_as_the_ask_graph_records_them() -> None:
    chunks = oracle_chunks("Is the red circle to the left of the blue star?", (), [[(100, 500)], [(700, 480)]])
    assert chunks == [
        {"role": "assistant", "content": "<think> <ground> red circle </ground>"},
        _reply("red circle", [(100, 500)]),
        {"role": "assistant", "content": "<ground> blue star </ground>"},
        _reply("blue star", [(700, 480)]),
        {"role": "assistant", "content": "x: 100 vs 700, so left. left yes, right no. left yes. </think> \\boxed{yes}"},
    ]


def test_a_count_lists_every_reply_point_and_an_empty_reply_is_zero() -> None:
    chunks = oracle_chunks("How many red stars are there?", (), [[(10, 20), (30, 40)]])
    assert chunks[-1]["content"].startswith("1 <obj> red stars | [10, 20] </obj> 2 <obj> red stars | [30, 40] </obj>")
    assert answer_of(chunks) == "2"
    empty = oracle_chunks("How many red stars are there?", (), [[]])
    assert empty[1]["content"].strip() == "No red stars found." and answer_of(empty) == "0"


def test_kth_grounds_the_ranked_object_then_the_anchor() -> None:
    question = "Is the second leftmost circle above or below the green square?"
    chunks = oracle_chunks(question, ("above", "below"), [[(400, 300)], [(420, 800)]])
    assert [c["content"] for c in chunks if c["role"] == "assistant"][:2] == [
        "<think> <ground> second leftmost circle </ground>", "<ground> green square </ground>"]
    assert chunks[-1]["content"] == "y: 300 vs 800, so above. above A, below B. above A. </think> \\boxed{A}"


def test_where_options_are_shown_and_looked_up() -> None:
    choices = ("below", "left", "above", "right")
    replies = [[(100, 500)], [(800, 450)]]
    question = "Where is the red circle relative to the blue star?"
    assert oracle_chunks(question, choices, replies)[-1]["content"] == (
        "x: 100 vs 800: 1 to 8 is 7. y: 500 vs 450: 5 to 4 is 1. 7 > 1 so x. x: 100 vs 800, so left. "
        "below A, left B, above C, right D. left B. </think> \\boxed{B}")


def test_drills_are_verified_reproducible_and_cover_every_family() -> None:
    assert drill(random.Random(5)) == drill(random.Random(5))
    rng = random.Random(0)
    drawn = [drill(rng) for _ in range(300)]
    assert {d.family for d in drawn} == set(FAMILIES)
    assert all(answer_of(d.chunks) == d.answer for d in drawn)


def test_too_few_replies_is_an_error() -> None:
    with pytest.raises(ValueError, match="more than 1 groundings"):
        oracle_chunks("Is the red circle above the blue star?", (), [[(1, 2)]])


def test_replies_obey_the_worlds_rules_for_a_fair_question() -> None:
    rng = random.Random(9)
    for _ in range(200):
        _, _, ((a,), (b,)), _ = FAMILIES["where"](rng)
        dx, dy = abs(a[0] - b[0]), abs(a[1] - b[1])
        assert max(dx, dy) >= 2 * min(dx, dy) and max(dx, dy) >= 80  # DOMINANT_RATIO, a visible gap
        _, _, ((z,), (p,), (q,)), truth = FAMILIES["closer"](rng)
        near, far = sorted((math.dist(p, z), math.dist(q, z)))
        assert far >= 1.35 * near and truth == ("A" if math.dist(p, z) < math.dist(q, z) else "B")
        question, options, ((target,), (anchor,)), truth = FAMILIES["kth"](rng)  # the grounder ranks the members
        axis = 1 if options[0] in ("above", "below") else 0  # the relation asked is across the order's axis
        assert abs(target[axis] - anchor[axis]) >= 80 and re.match(r"Is the (second |third |)\w+most ", question)


def test_phrases_carry_sizes_and_twins_told_apart_by_size_which_the_oracle_grounds_word_for_word() -> None:
    rng = random.Random(5)
    sized = twins = 0
    for _ in range(300):
        d = drill(rng, rng.choice(("relation", "where", "closer", "larger")))
        grounded = [c["content"].rsplit("<ground>", 1)[1].removesuffix("</ground>").strip()
                    for c in d.chunks if c["role"] == "assistant" and c["content"].endswith("</ground>")]
        named = grounded[:3 if d.family == "closer" else 2]
        said = " ".join(d.question.lower().split())  # a reworded question may be typed in lower case, spaced twice
        assert len(set(named)) == len(named) and all(f"the {p}" in said for p in named)
        sizes = [p.split()[0] for p in named if p.split()[0] in SIZES]
        sized += bool(sizes)
        kinds = [" ".join(p.split()[-2:]) for p in named]
        for kind in {k for k in kinds if kinds.count(k) > 1}:  # two of a kind: both sized, sizes differ
            twins += 1
            assert all(p.split()[0] in SIZES for p in named if p.endswith(kind))
    assert 60 <= sized <= 200 and 20 <= twins <= 90


def test_new_families_and_rewordings_are_answered_right_by_the_oracle_and_read_back() -> None:
    """Existence, attribute and attribute-side drills, and reworded questions of every family: each drill's
    oracle trace ends on its truth (drill() checks it) and its question reads back as a world question."""
    from vgt_agent.world.phrasing import read

    rng = random.Random(11)
    seen: dict[str, set[str]] = {}
    for family in ("count", "exist", "attribute", "attribute_side", "relation", "where", "closer", "larger"):
        for _ in range(60):
            d = drill(rng, family)
            assert read(format_question(d.question, d.choices)) is not None, d.question
            seen.setdefault(family, set()).add(d.answer)
    assert seen["exist"] == {"yes", "no"}
    assert len(seen["attribute"]) >= 5 and len(seen["attribute_side"]) >= 5  # colours and shapes both asked
