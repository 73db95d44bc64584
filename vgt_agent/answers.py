"""Deterministic answer extraction and checking: the answer-correctness half of every reward and metric.

A completion's answer is the content of its last `\\boxed{...}`; when there is none we fall back to the last
answer-like span ("Answer: 3", "the answer is B", a trailing number / yes / no / option letter) and record
that we did, so metrics can report how often models ignore the output format. Answers are compared after
normalising both sides per answer type, because "three", "3 cups" and "\\boxed{3}" must score the same and
no LLM judge is allowed in the loop.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from vgt_agent.format import find_boxed, tag_spans
from vgt_agent.vocabulary import ANSWER_TYPES, AnswerType

__all__ = ["ANSWER_TYPES", "AnswerType"]  # and the functions below
Source = Literal["boxed", "fallback", "none"]
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass(frozen=True)
class ExtractedAnswer:
    """The raw answer span found in a completion and how it was found."""

    text: str | None
    source: Source
    span: tuple[int, int] | None = None


@dataclass(frozen=True)
class AnswerCheck:
    """One completion scored against its gold answer; `extracted` keeps the raw span for debugging."""

    correct: bool
    predicted: str | None
    source: Source
    gold_normalised: str
    extracted: str | None = None


# ----------------------------------------------------------------------------------------------------------
# Number words
# ----------------------------------------------------------------------------------------------------------

_UNIT_WORDS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen"
)
_TENS_WORDS = "twenty thirty forty fifty sixty seventy eighty ninety"
NUMBER_WORDS: tuple[str, ...] = (*_UNIT_WORDS.split(), "twenty")  # 0..20 spelt out, the index is the value
_UNITS = {w: i for i, w in enumerate(_UNIT_WORDS.split())}
_TENS = {w: 10 * i for i, w in enumerate(_TENS_WORDS.split(), 2)}
_SCALES = {"hundred": 100, "thousand": 1000, "dozen": 12}
_NUMBER_WORDS = set(_UNITS) | set(_TENS) | set(_SCALES)
_ZERO_WORDS = {"no", "none", "nothing", "nobody", "neither"}


def _parse_number_words(tokens: Sequence[str], start: int) -> int | None:
    """Read one number written in words from `tokens[start:]` ("twenty one", "a hundred and five").

    A small grammar stops "two three" from being summed: a unit may only follow a tens word or a scale.
    """
    current = total = 0
    last: str | None = None
    i = start
    while i < len(tokens):
        tok = tokens[i]
        nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
        if tok == "a" and last is None and nxt in _SCALES:
            last = "article"
        elif tok == "and" and last in ("scale", "hundred") and nxt in _NUMBER_WORDS and nxt not in _SCALES:
            pass
        elif tok in _UNITS:
            value = _UNITS[tok]
            if value == 0 and last is not None:
                break
            if last == "tens" and not 1 <= value <= 9:
                break
            if last not in (None, "tens", "scale", "hundred"):
                break
            current += value
            last = "unit"
        elif tok in _TENS:
            if last not in (None, "scale", "hundred"):
                break
            current += _TENS[tok]
            last = "tens"
        elif tok in ("hundred", "dozen"):
            if last not in ("unit", "article"):
                break
            current = (current or 1) * _SCALES[tok]
            last = "hundred"
        elif tok == "thousand":
            if last not in ("unit", "tens", "hundred", "article"):
                break
            total += (current or 1) * 1000
            current = 0
            last = "scale"
        else:
            break
        i += 1
    if last in (None, "article"):
        return None
    return total + current


_DIGITS = re.compile(r"^\d{1,3}(?:,\d{3})+$|^\d+$")


def _parse_digits(token: str) -> str | None:
    """A count in canonical digits from a digit token; "1,000" is a thousand, "3.0" is 3, "2.5" is not a count.

    Read digit by digit rather than by `int()`, which refuses more than 4,300 digits (a model can write them).
    """
    whole, _, frac = token.partition(".")
    if frac and set(frac) != {"0"}:
        return None
    digits = whole.replace(",", "") if _DIGITS.match(whole) else whole.split(",")[0]
    if not digits.isascii():  # other scripts' decimal digits ("٣")
        digits = "".join(str(unicodedata.decimal(ch)) for ch in digits)
    return digits.lstrip("0") or "0"


# ----------------------------------------------------------------------------------------------------------
# Cleaning
# ----------------------------------------------------------------------------------------------------------

_LATEX_WRAP = re.compile(r"\\(?:text|textbf|mathrm|mathbf|textit|operatorname)\s*\{([^{}]*)\}")
_ARTICLES = {"a", "an", "the"}


def _clean(raw: str) -> str:
    """Strip the markup models wrap answers in: LaTeX text commands, $, **, backticks, quotes."""
    s = unicodedata.normalize("NFKC", raw)
    for _ in range(3):
        s = _LATEX_WRAP.sub(r"\1", s)
    s = s.replace("$", " ").replace("**", " ").replace("`", " ").replace("\\,", " ")
    return s.strip().strip("\"'“”‘’ ").strip()


def _tokens(s: str) -> list[str]:
    return re.findall(r"\d[\d,]*(?:\.\d+)?|[a-z]+", s.lower())


def normalise_text(raw: str) -> str | None:
    """Lowercase, drop punctuation and articles, collapse spaces; None when nothing is left."""
    s = _clean(raw).lower()
    s = "".join(ch if ch.isalnum() else " " for ch in s)
    words = [w for w in s.split() if w not in _ARTICLES]
    return " ".join(words) or None


# ----------------------------------------------------------------------------------------------------------
# Per-type normalisers
# ----------------------------------------------------------------------------------------------------------


def normalise_count(raw: str) -> str | None:
    """The first number in the answer, in digits or words; "none"/"no ..." mean 0."""
    toks = _tokens(_clean(raw))
    for i, tok in enumerate(toks):
        if tok[0].isdigit():
            return _parse_digits(tok)
        if tok in _NUMBER_WORDS or (tok == "a" and i + 1 < len(toks) and toks[i + 1] in _SCALES):
            value = _parse_number_words(toks, i)
            if value is not None:
                return str(value)
    if any(tok in _ZERO_WORDS for tok in toks):
        return "0"
    return None


_YES = {"yes", "yeah", "yep", "true", "correct"}
_NO = {"no", "nope", "false", "incorrect"}


def normalise_yes_no(raw: str) -> str | None:
    """ "yes" or "no" from the first yes/no-like word ("Yes.", "yes, it is", "False")."""
    for tok in _tokens(_clean(raw)):
        if tok in _YES:
            return "yes"
        if tok in _NO:
            return "no"
    return None


_CHOICE_PREFIX = re.compile(
    r"^(?:the\s+)?(?:correct\s+)?(?:answer|option|choice)\s*(?:is)?\s*[:\-]?\s*", re.I
)
_ONLY_LETTER = re.compile(r"^[\(\[]?\s*([A-Za-z])\s*[\)\]]?[.:]?$")  # "B", "(b)", "[C]", "B."
_LETTER_PATTERNS = (
    re.compile(r"^[\(\[]\s*([A-Za-z])\s*[\)\]]"),  # (B) [b]
    re.compile(r"^([A-Za-z])[\).:](?=\s|$)"),  # B. b) B:
    re.compile(r"^([A-Z])(?=[\s,;]|$)"),  # B  / B red (uppercase only: "a" is an article)
)


def _letter(index: int) -> str:
    return LETTERS[index]


def _letter_in_range(letter: str, choices: Sequence[str]) -> str | None:
    index = LETTERS.index(letter.upper())
    return None if choices and index >= len(choices) else _letter(index)


def normalise_choice(raw: str, choices: Sequence[str] = ()) -> str | None:
    """The option letter ("A", "B", ...) from a letter ("(B)", "b.", "B. red") or the option's text.

    Exact option text is tried before letters, because "A red cube" is the option "red cube", not "A".
    """
    s = _CHOICE_PREFIX.sub("", _clean(raw)).strip()
    only_letter = _ONLY_LETTER.match(s)
    if only_letter:
        return _letter_in_range(only_letter.group(1), choices)
    texts = [normalise_text(str(c)) for c in choices]
    t = normalise_text(s)
    if t is not None and texts.count(t) == 1:
        return _letter(texts.index(t))
    for pattern in _LETTER_PATTERNS:
        m = pattern.match(s)
        if m:
            return _letter_in_range(m.group(1), choices)
    if t is None:
        return None
    padded = f" {t} "
    found = [(len(c), i) for i, c in enumerate(texts) if c and f" {c} " in padded]
    if found:
        found.sort(reverse=True)
        if len(found) == 1 or found[0][0] > found[1][0]:
            return _letter(found[0][1])
    return None


def normalise_answer(
    raw: str | int | None, answer_type: AnswerType, choices: Sequence[str] = ()
) -> str | None:
    """Canonical form of an answer: count -> "3", yes_no -> "yes"/"no", choice -> "B", text -> lowercase."""
    if raw is None:
        return None
    if isinstance(raw, bool):
        raw = "yes" if raw else "no"
    raw = str(raw)
    if answer_type == "count":
        return normalise_count(raw)
    if answer_type == "yes_no":
        return normalise_yes_no(raw)
    if answer_type == "choice":
        return normalise_choice(raw, choices)
    if answer_type == "text":
        return normalise_text(raw)
    raise ValueError(f"unknown answer type {answer_type!r}; expected one of {', '.join(ANSWER_TYPES)}")


# ----------------------------------------------------------------------------------------------------------
# Extraction
# ----------------------------------------------------------------------------------------------------------

_PHRASE = re.compile(r"\banswer\s*(?:is|:|=)\s*:?\s*", re.I)
_SENTENCE_END = re.compile(r"(?<!\d)\.(?=\s|$)|\n")
_NUMWORD = r"(?:" + "|".join(sorted(_NUMBER_WORDS, key=len, reverse=True)) + r")"
_TRAILING = re.compile(
    r"\(\s*[A-Ha-h]\s*\)"  # (B)
    r"|\b\d+(?:,\d{3})*\b"  # 3, 1,000
    r"|\b(?i:yes|no|true|false|none)\b"
    rf"|\b(?i:{_NUMWORD}(?:(?:\s+and\s+|[\s-]+){_NUMWORD})*)\b"
    r"|\b[A-H]\b(?=[.!)]?\s*$)"  # a capital option letter ending the line
)


def _phrase_answer(text: str) -> ExtractedAnswer | None:
    """The last "answer is X" / "Answer: X", cut at the end of its sentence."""
    matches = list(_PHRASE.finditer(text))
    for m in reversed(matches):
        start = m.end()
        end_m = _SENTENCE_END.search(text, start)
        end = end_m.start() if end_m else len(text)
        span_text = text[start:end].strip()
        if span_text:
            offset = text.index(span_text, start)
            return ExtractedAnswer(span_text, "fallback", (offset, offset + len(span_text)))
    return None


def _trailing_answer(text: str) -> ExtractedAnswer | None:
    """The last answer-like token (number, yes/no, option letter) on the last non-empty line."""
    stripped = text.rstrip()
    line_start = stripped.rfind("\n") + 1
    line = stripped[line_start:]
    matches = list(_TRAILING.finditer(line))
    if not matches:
        return None
    m = matches[-1]
    return ExtractedAnswer(m.group(0), "fallback", (line_start + m.start(), line_start + m.end()))


def extract_answer(text: str) -> ExtractedAnswer:
    """The last non-empty `\\boxed{}` content; else the last answer-like span ("fallback"); else nothing."""
    if not text:
        return ExtractedAnswer(None, "none", None)
    boxed = [b for b in find_boxed(text) if b[0].strip()]  # an echoed "put it in \\boxed{}" is no answer
    if boxed:
        content, span = boxed[-1]
        return ExtractedAnswer(content.strip(), "boxed", (int(span[0]), int(span[1])))
    tags = tag_spans(text, "<answer>", "</answer>", ignore_case=True)
    if tags and text[tags[-1][0] : tags[-1][1]].strip():
        start, end = tags[-1]
        content = text[start:end]
        start += len(content) - len(content.lstrip())
        end -= len(content) - len(content.rstrip())
        return ExtractedAnswer(text[start:end], "fallback", (start, end))
    return _phrase_answer(text) or _trailing_answer(text) or ExtractedAnswer(None, "none", None)


# ----------------------------------------------------------------------------------------------------------
# Checking
# ----------------------------------------------------------------------------------------------------------


def check_answer(
    completion_text: str, gold: str | int, answer_type: AnswerType, choices: Sequence[str] = ()
) -> AnswerCheck:
    """Score one completion; raises ValueError when the gold itself cannot be normalised (a data bug)."""
    gold_n = normalise_answer(gold, answer_type, choices)
    if gold_n is None:
        raise ValueError(
            f"gold answer {gold!r} is not a valid {answer_type} answer (choices={list(choices)})"
        )
    extracted = extract_answer(completion_text)
    predicted = normalise_answer(extracted.text, answer_type, choices) if extracted.text else None
    return AnswerCheck(
        correct=predicted is not None and predicted == gold_n,
        predicted=predicted,
        source=extracted.source,
        gold_normalised=gold_n,
        extracted=extracted.text,
    )


def check_answers(
    completions: Sequence[str],
    golds: Sequence[str | int],
    answer_types: Sequence[AnswerType] | AnswerType,
    choices_list: Sequence[Sequence[str]] | None = None,
) -> list[AnswerCheck]:
    """`check_answer` over aligned lists; a single answer type or `choices_list=None` applies to all."""
    n = len(completions)
    types = [answer_types] * n if isinstance(answer_types, str) else list(answer_types)
    choices = [()] * n if choices_list is None else list(choices_list)
    if not len(golds) == len(types) == len(choices) == n:
        raise ValueError(
            f"length mismatch: {n} completions, {len(golds)} golds, {len(types)} answer types, "
            f"{len(choices)} choice lists"
        )
    return [check_answer(c, g, t, ch) for c, g, t, ch in zip(completions, golds, types, choices, strict=True)]
