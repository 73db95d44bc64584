"""question_scope: every question the world asks is in scope; questions about other things are not, by name."""

from __future__ import annotations

import pytest

from vgt_agent.prompts import format_question
from vgt_agent.world.generate import make_question
from vgt_agent.world.phrasing import TEMPLATES
from vgt_agent.world.scope import question_scope, unknown_words
from vgt_agent.world.splits import SPLITS


@pytest.mark.parametrize(("question", "named"), [
    ("how many cups?", ["cups"]),
    ("How many coins are there?", ["coins"]),
    ("what breed is the cat?", ["breed", "cat"]),
    ("How many people are in the photo?", ["people"]),
    ("Is there a dog to the left of the red circle?", ["dog"]),
    ("What colour is the car?", ["car"]),
    ("Count the red apples.", ["apples"]),
    ("Is the red circle near the blue square?", ["near"]),
    ("Where is the mug relative to the laptop? Options: A. left B. right. Answer with the letter.", ["mug", "laptop"]),
])
def test_questions_about_other_things_are_out_of_scope_by_name(question: str, named: list[str]) -> None:
    reason = question_scope(question)
    assert reason is not None
    assert unknown_words(question) == named
    for word in named:
        assert f"'{word}'" in reason
    assert "\n" not in reason and "circles" in reason and "red" in reason  # says what the world does know


@pytest.mark.parametrize("question", ["", "   ", "red how many", "circles circles", "left of the blue square",
                                      "Are there 3 red circles?", "are there two stars",
                                      "Is there a red circle to the left of the blue square?"])
def test_known_words_that_form_no_world_question_are_out_of_scope(question: str) -> None:
    reason = question_scope(question)
    assert reason is not None and "\n" not in reason


@pytest.mark.parametrize("split", sorted(SPLITS))
def test_every_question_of_every_split_is_in_scope(split: str) -> None:
    spec = SPLITS[split]
    n = 40 if split != "world-train" else 13 * 8  # every family of world-train 8 times
    for i in range(n):
        _, q = make_question(spec, i)
        assert question_scope(q.text) is None, q.text
        assert question_scope(format_question(q.text, q.choices)) is None, q.text


def test_every_template_in_any_case_and_punctuation_is_in_scope() -> None:
    slots = {"{np}": "red circles", "{colour}": "blue", "{x}": "large red star", "{y}": "blue ring",
             "{z}": "green hexagon", "{b}": "yellow square", "{cmp}": "larger", "{rel}": "to the left of",
             "{a}": "a", "{noun}": "shape"}
    for templates in TEMPLATES.values():
        for t in templates:
            text = t
            for slot, value in slots.items():
                text = text.replace(slot, value)
            for variant in (text, text.upper(), text.lower().rstrip("?."), "  " + text.replace(" ", "  ")):
                assert question_scope(variant) is None, variant


def test_a_megabyte_question_is_refused_quickly() -> None:
    import time

    start = time.perf_counter()
    reason = question_scope("is the red circle " + "left of the " * 100_000 + "blue square?")
    assert reason is not None and "characters" in reason
    assert time.perf_counter() - start < 1.0
