"""Whether a question is one the shapes world can answer, and if not, why, in one line.

The embedded policy and the world grounder know only the world's objects (the concept vocabulary of
`world.concepts`) and its question forms (`world.phrasing`); asked about cups or cats they would still
produce a number. This check lets a caller refuse instead, naming the words the world does not know.
"""

from __future__ import annotations

from vgt_agent.world import phrasing
from vgt_agent.world.concepts import (
    COLOUR_WORDS,
    CONNECTIVES,
    EXTREME_WORDS,
    FILLER,
    GENERIC_NOUNS,
    NEGATIONS,
    SHAPE_WORDS,
    SIZE_WORDS,
    tokenize,
)
from vgt_agent.world.palette import COLOURS, SHAPES, SIZES

KNOWN_WORDS: frozenset[str] = frozenset(
    [*COLOUR_WORDS, *SHAPE_WORDS, *SIZE_WORDS, *EXTREME_WORDS, *GENERIC_NOUNS, *NEGATIONS, *CONNECTIVES, *FILLER]
) | phrasing.GRAMMAR_WORDS
KNOWS = (f"it knows {', '.join(s + 's' for s in SHAPES)}; colours {', '.join(COLOURS)}; "
         f"sizes {', '.join(SIZES)}")
ASKS = ("it answers how many ..., is there ..., what colour / what shape is ..., is X left of / above Y, "
        "where is X relative to Y, which is closer / larger")


def unknown_words(question: str) -> list[str]:
    """The question's words (options included) that are neither world concepts nor its grammar, in order."""
    text, options = phrasing.split_options(question)
    words = tokenize(phrasing.normalise(" ".join([text, *options])))
    return [w for w in dict.fromkeys(words) if w not in KNOWN_WORDS and not w.isdigit()]


def question_scope(question: str) -> str | None:
    """None when the shapes world can read the question; else one short reason (the unknown words, or that
    its words do not form a question the world answers)."""
    if not question or not question.strip():
        return "the question is empty"
    if len(question) > phrasing.MAX_CHARS:
        return f"the question is {len(question)} characters long; the shapes world's questions are short"
    unknown = unknown_words(question)
    if unknown:
        names = ", ".join(f"'{w}'" for w in unknown)
        verb = "is not something" if len(unknown) == 1 else "are not things"
        return f"{names} {verb} the shapes world knows ({KNOWS})"
    if phrasing.read(question) is None:
        return f"the shapes world cannot read {' '.join(question.split())!r} as one of its questions ({ASKS})"
    return None
