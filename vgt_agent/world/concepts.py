"""Concept phrases of the shapes world: "the large green star", "shapes that are not blue", ...

Both the WorldGrounder and the GoldGrounder answer a phrase by filtering objects on (colour, shape,
size); parsing lives here once so the two can never disagree about what a phrase means. The parser is
deliberately small and strict: a word it does not know makes the whole phrase unknown (reported by
name), because guessing a partial meaning would hand the agent confidently wrong masks.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from vgt_agent.world.palette import COLOURS, SHAPES, SIZES

Attribute = Literal["colour", "shape", "size"]
Extreme = Literal["largest", "smallest"]
T = TypeVar("T")

# Surface word -> canonical value, one table per attribute. Plurals are listed, not guessed.
COLOUR_WORDS: dict[str, str] = {c: c for c in COLOURS} | {"violet": "purple"}
SHAPE_WORDS: dict[str, str] = (
    {s: s for s in SHAPES}
    | {s + "s": s for s in SHAPES}
    | {
        "disc": "circle", "discs": "circle", "disk": "circle", "disks": "circle",
        "hex": "hexagon", "hexes": "hexagon",
        "annulus": "ring", "annuli": "ring", "donut": "ring", "donuts": "ring",
        "doughnut": "ring", "doughnuts": "ring",
    }
)
SIZE_WORDS: dict[str, str] = {
    "small": "small", "little": "small", "tiny": "small",
    "medium": "medium", "mid": "medium",
    "large": "large", "big": "large", "huge": "large",
}
EXTREME_WORDS: dict[str, Extreme] = {
    "largest": "largest", "biggest": "largest", "smallest": "smallest", "tiniest": "smallest",
}
# "the second leftmost circle": an order along an axis (0 x, 1 y; True counts from the far end) and a rank.
ORDER_WORDS: dict[str, tuple[int, bool]] = {
    "leftmost": (0, False), "rightmost": (0, True), "topmost": (1, False), "bottommost": (1, True),
}
ORDINAL_WORDS: dict[str, int] = {"first": 0, "second": 1, "third": 2}
# Nouns that name "any object": they carry no constraint but do make a clause a noun phrase.
GENERIC_NOUNS = frozenset(
    ["shape", "shapes", "object", "objects", "thing", "things", "item", "items", "one", "ones", "figure",
     "figures", "instance", "instances"]
)
PLURAL_NOUNS = frozenset(w for w in (*SHAPE_WORDS, *GENERIC_NOUNS) if w.endswith(("s", "annuli")))
# "than" as in "other than": "other" itself is filler.
NEGATIONS = frozenset(["not", "non", "no", "except", "excluding", "but", "without", "than"])
CONNECTIVES = frozenset(["and", "or", "nor"])
# Words that change nothing: articles, quantifiers, copulas, "coloured", numbers, "in the image".
FILLER = frozenset(
    [
        "a", "an", "the", "all", "every", "each", "any", "some", "of", "that", "which", "who", "are", "is",
        "be", "being", "those", "these", "this", "there", "coloured", "colored", "colour", "color", "shaped",
        "sized", "other", "in", "image", "picture", "scene", "photo", "please", "find", "show", "segment",
        "me", "exactly", "only", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    ]
)
_TOKEN = re.compile(r"[^\W_]+")  # runs of letters or digits, any script


@dataclass(frozen=True)
class Clause:
    """One conjunctive description: allowed and excluded values per attribute (None allows any)."""

    colours: frozenset[str] | None = None
    shapes: frozenset[str] | None = None
    sizes: frozenset[str] | None = None
    not_colours: frozenset[str] = frozenset()
    not_shapes: frozenset[str] = frozenset()
    not_sizes: frozenset[str] = frozenset()

    def matches(self, colour: str, shape: str, size: str | None = None) -> bool:
        """Whether an object with these attributes fits; an unknown size only fits size-free clauses."""
        for value, allowed, excluded in (
            (colour, self.colours, self.not_colours),
            (shape, self.shapes, self.not_shapes),
        ):
            if (allowed is not None and value not in allowed) or value in excluded:
                return False
        if self.sizes is None and not self.not_sizes:
            return True
        if size is None:
            return False
        return (self.sizes is None or size in self.sizes) and size not in self.not_sizes


@dataclass(frozen=True)
class Concept:
    """A parsed phrase: a union of clauses, plus an optional superlative and an optional rank along an axis
    ("second leftmost": `rank` (0, False, 1)) applied to the union in that order.

    `error` is set (and `clauses` empty) when the phrase cannot be understood; `unknown` lists the
    words that caused it so the agent can rephrase.
    """

    text: str
    clauses: tuple[Clause, ...] = ()
    extreme: Extreme | None = None
    rank: tuple[int, bool, int] | None = None  # (axis, from the far end, index): the k-th along the axis
    plural: bool = False
    unknown: tuple[str, ...] = ()
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def matches(self, colour: str, shape: str, size: str | None = None) -> bool:
        """Whether an object with these attributes is an instance of the concept."""
        return self.ok and any(c.matches(colour, shape, size) for c in self.clauses)

    def select(self, items: Sequence[T], key: Callable[[T], tuple[float, ...]],
               position: Callable[[T], Sequence[float]] | None = None) -> list[T]:
        """Apply the superlative, then the rank, if any, to the already matching items; `key` orders them by
        size, `position` gives an item's (x, y) (needed for a rank). Fewer items than the rank asks for: none."""
        found = list(items)
        if self.extreme is not None and found:
            pick = max if self.extreme == "largest" else min
            best = pick(key(i) for i in found)
            found = [i for i in found if key(i) == best]
        if self.rank is not None:
            if position is None:
                raise ValueError(f"{self.text!r} ranks objects by position, and no position was given")
            axis, far, k = self.rank
            ordered = sorted(found, key=lambda i: position(i)[axis], reverse=far)
            found = ordered[k: k + 1]
        return found


def _empty_sets() -> dict[Attribute, set[str]]:
    return {"colour": set(), "shape": set(), "size": set()}


@dataclass
class _ClauseBuilder:
    """Mutable accumulator for one clause while its words are read."""

    include: dict[Attribute, set[str]] = field(default_factory=_empty_sets)
    exclude: dict[Attribute, set[str]] = field(default_factory=_empty_sets)

    def build(self) -> Clause:
        def allowed(a: Attribute) -> frozenset[str] | None:
            return frozenset(self.include[a]) if self.include[a] else None

        return Clause(
            colours=allowed("colour"), shapes=allowed("shape"), sizes=allowed("size"),
            not_colours=frozenset(self.exclude["colour"]), not_shapes=frozenset(self.exclude["shape"]),
            not_sizes=frozenset(self.exclude["size"]),
        )


def tokenize(text: str) -> list[str]:
    """Lower-case words; hyphens and punctuation split words ("non-blue" -> "non", "blue")."""
    return _TOKEN.findall(text.lower())


def _classify(word: str) -> tuple[Attribute, str] | None:
    for attribute, table in (("colour", COLOUR_WORDS), ("shape", SHAPE_WORDS), ("size", SIZE_WORDS)):
        if word in table:
            return attribute, table[word]  # type: ignore[return-value]
    return None


def _has_head(words: Iterable[str]) -> bool:
    return any(w in SHAPE_WORDS or w in GENERIC_NOUNS for w in words)


def _split_clauses(words: list[str]) -> list[list[str]]:
    """Split at connectives only between noun phrases: "red circles and blue squares" is two clauses,
    "red and blue circles" is one (the connective joins values), and so is anything after a negation
    ("shapes except red or blue ones" excludes both colours)."""
    pieces: list[list[str]] = [[]]
    negated = False
    for w in words:
        negated = negated or w in NEGATIONS
        if w in CONNECTIVES and not negated:
            pieces.append([w])
        else:
            pieces[-1].append(w)
    merged: list[list[str]] = []
    pending: list[str] = []
    for piece in pieces:
        pending += piece
        if _has_head(pending):
            merged.append(pending)
            pending = []
    if pending:
        if merged:
            merged[-1] += pending
        else:
            merged.append(pending)
    return merged


def _parse_clause(words: list[str], unknown: list[str]) -> Clause | None:
    """One clause; negation binds the next attribute and any values joined to it by connectives."""
    builder = _ClauseBuilder()
    negating: Attribute | Literal["pending"] | None = None
    content = False
    for w in words:
        if w in NEGATIONS:
            negating = "pending"
            continue
        if w in CONNECTIVES or w in FILLER or w.isdigit():
            continue
        if w in GENERIC_NOUNS:
            content = True
            continue
        hit = _classify(w)
        if hit is None:
            unknown.append(w)
            continue
        attribute, value = hit
        content = True
        if negating == "pending" or negating == attribute:
            builder.exclude[attribute].add(value)
            negating = attribute
        else:
            builder.include[attribute].add(value)
            negating = None
    return builder.build() if content else None


def parse_concept(text: str) -> Concept:
    """Parse a concept phrase; never raises, reports what it could not understand in `error`."""
    text = text if isinstance(text, str) else ""
    words = tokenize(text)
    if not words:
        return Concept(text=text, error="empty concept: name a colour and/or shape, e.g. 'red circles'")
    extreme: Extreme | None = None
    order: tuple[int, bool] | None = None
    ordinal, kept = 0, []
    for w in words:
        if w in EXTREME_WORDS:
            extreme = EXTREME_WORDS[w]
        elif w in ORDER_WORDS:
            order = ORDER_WORDS[w]
        elif w in ORDINAL_WORDS:
            ordinal = ORDINAL_WORDS[w]
            kept.append(w)  # read again below: an ordinal without an order ("the second circle") is unknown
        else:
            kept.append(w)
    if order is not None:
        kept = [w for w in kept if w not in ORDINAL_WORDS]
    plural = any(w in PLURAL_NOUNS for w in kept)
    unknown: list[str] = []
    clauses = [c for c in (_parse_clause(p, unknown) for p in _split_clauses(kept)) if c is not None]
    if unknown:
        names = ", ".join(f"'{w}'" for w in dict.fromkeys(unknown))
        return Concept(
            text=text, unknown=tuple(dict.fromkeys(unknown)),
            error=f"unknown words {names}; this grounder knows colours {', '.join(COLOURS)}, "
            f"shapes {', '.join(SHAPES)}, sizes {', '.join(SIZES)} and orders {', '.join(ORDER_WORDS)}",
        )
    if not clauses:
        if extreme is not None or order is not None:  # "the largest" alone means the largest object
            clauses = [Clause()]
        else:
            return Concept(text=text, error=f"no colour, shape or object word in {text!r}")
    rank = (*order, ordinal) if order is not None else None
    return Concept(text=text, clauses=tuple(clauses), extreme=extreme, rank=rank, plural=plural)


def describe(colour: str, shape: str, size: str | None = None) -> str:
    """The label an instance gets, e.g. "large red circle"; also a valid concept phrase for it."""
    return " ".join(p for p in (size, colour, shape) if p)
