"""Answer extraction, normalisation and checking: the correctness half of every reward and metric."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vgt_agent.answers import (
    AnswerCheck,
    ExtractedAnswer,
    check_answer,
    check_answers,
    extract_answer,
    normalise_answer,
)

_ONES_TEXT = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen"
_ONES = [*_ONES_TEXT.split(), "sixteen", "seventeen", "eighteen", "nineteen"]
_TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


def words(n: int, sep: str = "-") -> str:
    """English words for 0 <= n < 1_000_000, written independently of the code under test."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + (sep + _ONES[n % 10] if n % 10 else "")
    if n < 1000:
        rest = n % 100
        return _ONES[n // 100] + " hundred" + (" and " + words(rest, sep) if rest else "")
    rest = n % 1000
    return words(n // 1000, sep) + " thousand" + (" " + words(rest, sep) if rest else "")


# ------------------------------------------------------------------------------------------------------------
# Extraction
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected", "source"),
    [
        (r"\boxed{3}", "3", "boxed"),
        (r"I count them. \boxed{2} wait, recount: \boxed{ 4 }", "4", "boxed"),
        (r"The answer is \boxed{\text{B}}.", r"\text{B}", "boxed"),
        (r"<think>\boxed{1}</think> final \boxed{{5}}", "{5}", "boxed"),
        ("Answer: 3", "3", "fallback"),
        ("Reasoning...\nFinal answer: twenty-one", "twenty-one", "fallback"),
        ("So the answer is B because it is left.", "B because it is left", "fallback"),
        ("the answer is: yes, it is.", "yes, it is", "fallback"),
        ("Answer:\n(c) red car", "(c) red car", "fallback"),
        ("<answer> 7 </answer>", "7", "fallback"),
        ("I think there are three cups.", "three", "fallback"),
        ("There are 2 red and 3 blue, 5 in total.", "5", "fallback"),
        ("Looking at it...\n\nSo, yes.", "yes", "fallback"),
        ("The best option is (B)", "(B)", "fallback"),
        ("Comparing both, the right one is C.", "C", "fallback"),
        ("one hundred and five", "one hundred and five", "fallback"),
        ("An unclosed \\boxed{3 so no box. Answer: 4", "4", "fallback"),
        ("Put the answer in \\boxed{}. Answer: 6", "6", "fallback"),
        (r"\boxed{2} and later an empty \boxed{ }", "2", "boxed"),
        ("I cannot tell from this image", None, "none"),
        ("", None, "none"),
    ],
)
def test_extract_answer(text, expected, source):
    got = extract_answer(text)
    assert (got.text, got.source) == (expected, source)
    if got.span is not None and source == "fallback":
        assert text[got.span[0] : got.span[1]] == got.text


def test_boxed_span_covers_the_whole_expression():
    text = r"so \boxed{12} done"
    got = extract_answer(text)
    assert got == ExtractedAnswer("12", "boxed", (3, 13)) and text[3:13] == r"\boxed{12}"


# ------------------------------------------------------------------------------------------------------------
# Normalisation table
# ------------------------------------------------------------------------------------------------------------

COUNT_CASES = [
    ("3", "3"),
    (" 3 ", "3"),
    ("3.", "3"),
    ("3 cups", "3"),
    ("There are 3 cups.", "3"),
    ("three", "3"),
    ("Three.", "3"),
    ("twelve", "12"),
    ("zero", "0"),
    ("none", "0"),
    ("None.", "0"),
    ("no", "0"),
    ("There are no cups", "0"),
    ("nothing", "0"),
    ("twenty-one", "21"),
    ("twenty one", "21"),
    ("Forty-Two apples", "42"),
    ("ninety-nine", "99"),
    ("one hundred", "100"),
    ("a hundred", "100"),
    ("one hundred and five", "105"),
    ("two hundred fifty", "250"),
    ("a dozen", "12"),
    ("two dozen eggs", "24"),
    ("one thousand two hundred", "1200"),
    ("1,000", "1000"),
    ("3.0", "3"),
    ("2.5", None),
    (r"\text{4}", "4"),
    ("$7$", "7"),
    ("**8**", "8"),
    ("two (2)", "2"),
    ("No, there are 3.", "3"),
    ("many", None),
    ("", None),
    ("one two", "1"),
]

YES_NO_CASES = [
    ("yes", "yes"),
    ("Yes.", "yes"),
    ("YES", "yes"),
    ("yes, it is", "yes"),
    ("Yes, the cat is behind the laptop.", "yes"),
    ("true", "yes"),
    ("True", "yes"),
    ("correct", "yes"),
    ("no", "no"),
    ("No.", "no"),
    ("No, it is not.", "no"),
    ("false", "no"),
    ("FALSE", "no"),
    ("nope", "no"),
    (r"\text{yes}", "yes"),
    ("(A) yes", "yes"),
    ("maybe", None),
    ("", None),
]

RGB = ("red", "green", "blue")
CHOICE_CASES = [
    ("B", RGB, "B"),
    ("b", RGB, "B"),
    ("(B)", RGB, "B"),
    ("(b)", RGB, "B"),
    ("[C]", RGB, "C"),
    ("B.", RGB, "B"),
    ("B)", RGB, "B"),
    ("B. green", RGB, "B"),
    ("B: green", RGB, "B"),
    ("(b) green", RGB, "B"),
    ("Option B", RGB, "B"),
    ("The answer is (C)", RGB, "C"),
    ("green", RGB, "B"),
    ("Green.", RGB, "B"),
    ("the green one", RGB, "B"),
    ("It is blue", RGB, "C"),
    (r"\text{A}", RGB, "A"),
    ("D", RGB, None),
    ("(e)", RGB, None),
    ("purple", RGB, None),
    ("A red cube", ("blue sphere", "red cube"), "B"),
    ("a", ("x", "y"), "A"),
    ("left of", ("left", "left of", "right of"), "B"),
    ("It is left of the cup", ("left", "left of", "right of"), "B"),
    ("on/above", ("on/above", "below"), "A"),
    ("C", (), "C"),
    ("(d)", (), "D"),
    ("", RGB, None),
]

TEXT_CASES = [
    ("The Red Car!", "red car"),
    ("red car", "red car"),
    ("  A  red   car. ", "red car"),
    ("an apple", "apple"),
    ("Left-of", "left of"),
    ("the", None),
    ("...", None),
]


@pytest.mark.parametrize(("raw", "expected"), COUNT_CASES)
def test_normalise_count(raw, expected):
    assert normalise_answer(raw, "count") == expected


@pytest.mark.parametrize(("raw", "expected"), YES_NO_CASES)
def test_normalise_yes_no(raw, expected):
    assert normalise_answer(raw, "yes_no") == expected


@pytest.mark.parametrize(("raw", "choices", "expected"), CHOICE_CASES)
def test_normalise_choice(raw, choices, expected):
    assert normalise_answer(raw, "choice", choices) == expected


@pytest.mark.parametrize(("raw", "expected"), TEXT_CASES)
def test_normalise_text(raw, expected):
    assert normalise_answer(raw, "text") == expected


def test_normalise_non_strings_and_unknown_type():
    assert normalise_answer(4, "count") == "4"
    assert normalise_answer(True, "yes_no") == "yes"
    assert normalise_answer(None, "count") is None
    with pytest.raises(ValueError, match="unknown answer type 'number'"):
        normalise_answer("3", "number")  # type: ignore[arg-type]


@given(st.integers(min_value=0, max_value=999_999))
def test_count_words_and_digits_agree(n):
    assert normalise_answer(str(n), "count") == str(n)
    assert normalise_answer(words(n), "count") == str(n)
    assert normalise_answer(words(n, sep=" "), "count") == str(n)
    assert normalise_answer(f"There are {words(n)} objects.", "count") == str(n)
    assert normalise_answer(f"{n:,}", "count") == str(n)


@given(st.integers(min_value=0, max_value=500), st.sampled_from(["cups", "people", "red circles"]))
def test_count_extracted_from_any_wrapping(n, noun):
    for text in (rf"\boxed{{{n}}}", rf"\boxed{{{words(n)} {noun}}}", f"Answer: {n} {noun}", f"So {n}."):
        check = check_answer(text, n, "count")
        assert check.correct and check.predicted == str(n), text


@given(
    st.integers(min_value=0, max_value=7), st.lists(st.text(min_size=1, max_size=8), min_size=8, max_size=8)
)
def test_a_bare_letter_wins_over_any_option_text(index, options):
    letter = "ABCDEFGH"[index]
    for form in (letter, letter.lower(), f"({letter})", f"[{letter.lower()}]", f"{letter}.", f"{letter}:"):
        assert normalise_answer(form, "choice", options) == letter, form


OPTION_TEXTS = ["red", "green cube", "left of", "behind", "in front of", "blue sphere", "on/above", "below"]


@given(st.permutations(OPTION_TEXTS), st.integers(min_value=0, max_value=7))
def test_option_text_maps_to_its_letter(options, index):
    letter = "ABCDEFGH"[index]
    text = options[index]
    for form in (text, text.upper(), f"the {text}.", f"{letter}. {text}", f"({letter.lower()}) {text}"):
        assert normalise_answer(form, "choice", options) == letter, form


# ------------------------------------------------------------------------------------------------------------
# Checking
# ------------------------------------------------------------------------------------------------------------


def test_check_answer_fields():
    check = check_answer(r"...so there are \boxed{three} cups", "3", "count")
    assert check == AnswerCheck(True, "3", "boxed", "3", "three")
    miss = check_answer("I see 4 cups", 3, "count")
    assert (miss.correct, miss.predicted, miss.source, miss.gold_normalised) == (False, "4", "fallback", "3")
    nothing = check_answer("I cannot tell", "yes", "yes_no")
    assert (nothing.correct, nothing.predicted, nothing.source) == (False, None, "none")


@pytest.mark.parametrize(
    ("completion", "gold", "answer_type", "choices", "correct"),
    [
        (r"\boxed{B}", "B", "choice", RGB, True),
        (r"\boxed{green}", "B", "choice", RGB, True),
        (r"\boxed{B. green}", "green", "choice", RGB, True),
        (r"\boxed{(b)}", "(B)", "choice", RGB, True),
        (r"\boxed{A}", "B", "choice", RGB, False),
        (r"\boxed{Yes.}", "yes", "yes_no", (), True),
        (r"\boxed{true}", "yes", "yes_no", (), True),
        (r"\boxed{no}", "yes", "yes_no", (), False),
        ("The answer is no.", "no", "yes_no", (), True),
        (r"\boxed{zero}", "0", "count", (), True),
        (r"\boxed{none}", 0, "count", (), True),
        (r"\boxed{The red car}", "red car", "text", (), True),
        (r"\boxed{red}", "red car", "text", (), False),
        (r"first \boxed{3} then \boxed{5}", "5", "count", (), True),
    ],
)
def test_check_answer_table(completion, gold, answer_type, choices, correct):
    assert check_answer(completion, gold, answer_type, choices).correct is correct


def test_invalid_gold_is_a_data_error():
    with pytest.raises(ValueError, match="gold answer 'lots' is not a valid count"):
        check_answer(r"\boxed{3}", "lots", "count")
    with pytest.raises(ValueError, match="not a valid choice"):
        check_answer(r"\boxed{A}", "purple", "choice", RGB)


def test_check_answers_vectorised():
    checks = check_answers(
        [r"\boxed{3}", r"\boxed{no}", r"\boxed{C}", "blah"],
        ["3", "yes", "blue", "2"],
        ["count", "yes_no", "choice", "count"],
        [(), (), RGB, ()],
    )
    assert [c.correct for c in checks] == [True, False, True, False]
    assert [c.source for c in checks] == ["boxed", "boxed", "boxed", "none"]
    same_type = check_answers([r"\boxed{1}", "Answer: 2"], [1, 3], "count")
    assert [c.correct for c in same_type] == [True, False]
    assert check_answers([], [], "count") == []
    with pytest.raises(ValueError, match="length mismatch"):
        check_answers(["a"], ["1", "2"], "count")
    with pytest.raises(ValueError, match="length mismatch"):
        check_answers(["a"], ["1"], ["count", "count"])
