"""Routing: which reference object does a generated `<obj>` tag talk about?

Grounding rewards and the agent's verification both need this. A `Router` maps each generated grounding to
a reference object (or to none) from its phrase and the text around it. The default `TextRouter` matches
normalised phrases exactly, then falls back to a fuzzy token match, using nearby context to break ties.
When several groundings route to one object, callers keep the earliest (`first_per_reference`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Protocol

from vgt_agent.format import Grounding

_ARTICLES = {"a", "an", "the", "this", "that", "these", "those", "all", "each", "every", "some", "any"}
_NUMBER_WORDS = {"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
                 "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen",
                 "twenty", "both", "several", "many", "few"}
_WORD = re.compile(r"[a-z0-9]+")


def singular(word: str) -> str:
    """Crude English singular, enough for object nouns (boxes -> box, circles -> circle, glasses -> glass)."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith(("ses", "xes", "zes", "ches", "shes")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def phrase_tokens(phrase: str) -> tuple[str, ...]:
    """Lower-cased singular content words: 'the three red circles' -> ('red', 'circle')."""
    words = _WORD.findall(phrase.lower())
    return tuple(singular(w) for w in words if w not in _ARTICLES and w not in _NUMBER_WORDS and not w.isdigit())


@dataclass(frozen=True)
class ReferenceName:
    """What a router knows of a reference object: its name and a disambiguating context."""

    name: str
    context: str = ""


class Router(Protocol):
    """Maps each grounding (with the full text it sits in) to a reference index or None."""

    def route(self, groundings: Sequence[Grounding], references: Sequence[ReferenceName],
              text: str = "") -> list[int | None]: ...


@dataclass(frozen=True)
class TextRouter:
    """Normalised phrase match, then fuzzy token similarity >= `min_similarity`; context words break ties."""

    min_similarity: float = 0.6
    context_chars: int = 60

    def route(self, groundings: Sequence[Grounding], references: Sequence[ReferenceName],
              text: str = "") -> list[int | None]:
        ref_tokens = [phrase_tokens(r.name) for r in references]
        ref_context = [set(phrase_tokens(r.context)) for r in references]
        out: list[int | None] = []
        for g in groundings:
            tokens = phrase_tokens(g.phrase)
            exact = [i for i, t in enumerate(ref_tokens) if t and t == tokens]
            if len(exact) == 1:
                out.append(exact[0])
                continue
            candidates = exact or range(len(references))
            near = set(phrase_tokens(text[max(0, g.span[0] - self.context_chars): g.span[1] + self.context_chars]))
            best, best_score = None, 0.0
            for i in candidates:
                similarity = _similarity(tokens, ref_tokens[i])
                if similarity < self.min_similarity:
                    continue
                score = similarity + 0.01 * len(near & ref_context[i])
                if score > best_score:
                    best, best_score = i, score
            out.append(best)
        return out


def _similarity(a: tuple[str, ...], b: tuple[str, ...]) -> float:
    """Token-set Jaccard blended with character similarity, so 'red round circle' ~ 'red circle'."""
    if not a or not b:
        return 0.0
    sa, sb = set(a), set(b)
    jaccard = len(sa & sb) / len(sa | sb)
    chars = SequenceMatcher(None, " ".join(a), " ".join(b)).ratio()
    return max(jaccard, 0.5 * (jaccard + chars))


def first_per_reference(routes: Sequence[int | None], n_references: int) -> list[int | None]:
    """For each reference, the index of the earliest grounding routed to it (None when none is)."""
    first: list[int | None] = [None] * n_references
    for g, r in enumerate(routes):
        if r is not None and first[r] is None:
            first[r] = g
    return first
