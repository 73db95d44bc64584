"""Row filters for synthesised traces: drift from the teacher's text, malformed tags, repetitive reasoning.

The paper drops rows whose tag-stripped text drifts from the original trace (the annotator must only add
tags, never rewrite), rows with malformed tags, and highly repetitive reasoning. Each check returns the
reason string stored with the rejected row, or None.
"""

from __future__ import annotations

import re
from collections import Counter
from difflib import SequenceMatcher

from vgt_agent.format import Kind, parse, strip_groundings

MAX_DRIFT = 0.02  # fraction of words that may differ between the stripped variant and the original
MIN_DISTINCT_NGRAMS = 0.5  # below this share of distinct word 4-grams a long trace counts as repetitive
MIN_WORDS_FOR_NGRAMS = 40
MAX_SENTENCE_REPEATS = 3
_WORD = re.compile(r"\S+")
_SENTENCE = re.compile(r"[^.!?\n]+[.!?\n]")


def drift(original: str, variant: str) -> float:
    """1 - similarity of the word sequences of `original` and the variant with every tag stripped."""
    a = _WORD.findall(original)
    b = _WORD.findall(strip_groundings(variant))
    if a == b:
        return 0.0
    return 1.0 - SequenceMatcher(None, a, b, autojunk=False).ratio()


def drifted(original: str, variant: str, max_drift: float = MAX_DRIFT) -> str | None:
    return "drift" if drift(original, variant) > max_drift else None


def malformed(variant: str, kind: Kind | None) -> str | None:
    """'malformed_tags' when the variant has parse problems, unfilled placeholders or tags of another kind."""
    thought = parse(variant)
    if thought.problems or thought.placeholders or thought.tool_requests:
        return "malformed_tags"
    if kind is not None and any(g.kind != kind for g in thought.groundings):
        return "malformed_tags"
    return None


def repetition(text: str) -> float:
    """Share of repeated word 4-grams (0 = all distinct); short texts count as not repetitive."""
    words = [w.lower() for w in _WORD.findall(text)]
    if len(words) < MIN_WORDS_FOR_NGRAMS:
        return 0.0
    grams = list(zip(words, words[1:], words[2:], words[3:], strict=False))
    return 1.0 - len(set(grams)) / len(grams)


def repetitive(text: str) -> str | None:
    """'repetitive' for looping reasoning: few distinct 4-grams, or one sentence said again and again."""
    if repetition(text) > 1.0 - MIN_DISTINCT_NGRAMS:
        return "repetitive"
    sentences = Counter(s.strip().lower() for s in _SENTENCE.findall(text) if len(s.split()) >= 4)
    if sentences and max(sentences.values()) >= MAX_SENTENCE_REPEATS:
        return "repetitive"
    return None
