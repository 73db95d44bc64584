"""How people word questions about the shapes world: templates with slots, written and read by one table.

The generator fills a template; the rule teacher, the scene reader and the scope check read a question back
by matching the same templates after `normalise` (lower case, single spaces, no trailing punctuation), so
"How many circles?", "how many circles" and "  HOW many  circles ?" read alike. A slot that names objects
must parse as a concept of the world (`world.concepts`), which is what keeps "the shape to the left of
the red square" from being read as one object's name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from vgt_agent.answers import NUMBER_WORDS
from vgt_agent.world.concepts import COLOUR_WORDS, parse_concept, tokenize

# Surface phrases of each relation word; the first is the one the original families use.
RELATION_PHRASES: dict[str, tuple[str, ...]] = {
    "left": ("to the left of", "left of", "on the left of", "on the left side of"),
    "right": ("to the right of", "right of", "on the right of", "on the right side of"),
    "above": ("above", "over", "higher than"),
    "below": ("below", "under", "beneath", "lower than"),
}
RELATION_OF: dict[str, str] = {p: w for w, ps in RELATION_PHRASES.items() for p in ps}
# Surface words of a size comparison; the first is the one the original family uses.
COMPARISON_WORDS: dict[str, tuple[str, ...]] = {"larger": ("larger", "bigger"), "smaller": ("smaller",)}
COMPARISON_OF: dict[str, str] = {w: c for c, ws in COMPARISON_WORDS.items() for w in ws}
_REL = "|".join(re.escape(p) for p in sorted(RELATION_OF, key=len, reverse=True))

# Templates per intent, in reading order (a more specific template before one that would swallow it).
# Slots: {np} objects (a concept phrase), {a}/{an} the article of the next word, {rel} a relation phrase,
# {x} {y} {z} {b} named objects, {colour} a colour word, {cmp} larger/smaller, {noun} any object ("shape").
# "color" reads as "colour" (see `normalise`).
TEMPLATES: dict[str, tuple[str, ...]] = {
    "count_not": ("How many {np} are not {colour}?",),
    "count": (
        "How many {np} are there in the image?", "How many {np} are there in the picture?",
        "How many {np} are there?", "How many {np} can you see?", "How many {np} are in the image?",
        "How many {np} are in the picture?", "How many {np} do you see?", "How many {np}?",
        "Count the {np}.", "Count all the {np}.", "Count the number of {np}.", "What is the number of {np}?",
    ),
    "exist": (
        "Is there {a} {np}?", "Is there {a} {np} in the image?", "Is there any {np}?", "Are there any {np}?",
        "Are there {np}?", "Can you see {a} {np}?", "Do you see any {np}?", "Are there any {np} in the picture?",
    ),
    "colour_related": (
        "What colour is the {noun} {rel} the {b}?", "What color is the {noun} {rel} the {b}?",
        "Which colour is the {noun} {rel} the {b}?", "What is the colour of the {noun} {rel} the {b}?",
    ),
    "shape_related": (
        "What shape is {rel} the {b}?", "Which shape is {rel} the {b}?", "What is the shape {rel} the {b}?",
        "What kind of shape is {rel} the {b}?",
    ),
    "colour_of": (
        "What colour is the {np}?", "What color is the {np}?", "Which colour is the {np}?",
        "What is the colour of the {np}?", "What colour does the {np} have?",
    ),
    "shape_of": (
        "What shape is the {np}?", "Which shape is the {np}?", "What is the shape of the {np}?",
        "What kind of shape is the {np}?",
    ),
    "where": (
        "Where is the {x} relative to the {b}?", "Where is the {x} compared to the {b}?",
        "Where is the {x} with respect to the {b}?", "In which direction is the {x} from the {b}?",
    ),
    "closer": (
        "Which is closer to the {z}: the {x} or the {y}?", "Which is nearer to the {z}: the {x} or the {y}?",
        "Which one is closer to the {z}, the {x} or the {y}?", "What is closer to the {z}: the {x} or the {y}?",
    ),
    "larger": ("Which is {cmp}: the {x} or the {y}?", "Which one is {cmp}, the {x} or the {y}?",
               "Which is {cmp}, the {x} or the {y}?", "Which of the two is {cmp}: the {x} or the {y}?"),
    "relation": (
        "Is the {x} {rel} the {b}?", "Is the {x} located {rel} the {b}?", "Would you say the {x} is {rel} the {b}?",
    ),
}
# "Is the second leftmost circle to the left or right of the green square?": the k-th families' own grammar.
_KTH = re.compile(
    r"is the (?:(?P<nth>second|third) )?(?P<order>leftmost|rightmost|topmost|bottommost) (?P<np>.+?) "
    r"(?:to the (?P<l1>left|right) or (?P<l2>left|right) of|(?P<a1>above|below) or (?P<a2>above|below)) "
    r"the (?P<b>.+)")
_OPTIONS = re.compile(r"\s*options:\s*(.*?)\.?\s*answer with the letter\.?\s*$", re.I | re.S)
_OBJECT_SLOTS = ("np", "x", "y", "z", "b")
# A number inside an object slot ("are there 3 red circles") asks something no template answers.
_NUMBER_WORDS = frozenset(NUMBER_WORDS[1:13])  # one .. twelve


NOUNS = ("shape", "object", "thing", "one")  # what {noun} stands for
# Words read as another: spellings, contractions, synonyms the templates do not spell out.
SPELLINGS = {"color": "colour", "what's": "what is", "where's": "where is", "isn't": "is not", "aren't": "are not",
             "nearer": "closer"}
_SPELLING = re.compile(r"\b(?:" + "|".join(re.escape(w) for w in SPELLINGS) + r")(?!\w)")


def normalise(text: str) -> str:
    """Lower case, single spaces, no trailing '?', '.' or '!', and SPELLINGS ("color" as "colour", "isn't" as
    "is not", also with a typographic apostrophe): the form templates are matched in."""
    s = " ".join(text.replace("\u2019", "'").split()).lower().rstrip(" ?.!")
    return _SPELLING.sub(lambda m: SPELLINGS[m.group(0)], s)


def split_options(text: str) -> tuple[str, tuple[str, ...]]:
    """(question, options) from a question as `format_question` shows it ("... Options: A. x B. y. Answer
    with the letter."); options are () when there are none."""
    m = _OPTIONS.search(text)
    if not m:
        return text, ()
    options = tuple(re.sub(r"^[A-Ha-h]\.\s*", "", o).strip().lower()
                    for o in re.split(r"\s(?=[A-Ha-h]\.\s)", m.group(1).strip()))
    return text[: m.start()], options


def _pattern(template: str) -> re.Pattern[str]:
    out = []
    for part in re.split(r"(\{\w+\})", normalise(template)):
        if part in ("{a}", "{an}"):
            out.append("(?:a|an)")
        elif part == "{rel}":
            out.append(f"(?P<rel>{_REL})")
        elif part == "{colour}":
            out.append(r"(?P<colour>\w+)")
        elif part == "{noun}":
            out.append(f"(?:{'|'.join(NOUNS)})")
        elif part == "{cmp}":
            out.append(f"(?P<cmp>{'|'.join(COMPARISON_OF)})")
        elif part.startswith("{"):
            out.append(f"(?P<{part[1:-1]}>.+?)")
        else:
            out.append(re.escape(part))
    return re.compile("".join(out))


_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (intent, _pattern(t)) for intent, templates in TEMPLATES.items() for t in templates
)
# Every word the grammar itself uses (what the scope check accepts besides the concept vocabulary).
GRAMMAR_WORDS: frozenset[str] = frozenset(tokenize(" ".join([
    *(re.sub(r"\{\w+\}", " ", t) for ts in TEMPLATES.values() for t in ts), *RELATION_OF,
    "an is the second third leftmost rightmost topmost bottommost above below or of options answer with letter",
    *COMPARISON_OF, *NOUNS,
])))


@dataclass(frozen=True)
class Reading:
    """What a question asks in the world's terms: its intent and its slots (object phrases as written,
    lower case; `relation` the relation word; `options` the multiple-choice options, if shown)."""

    intent: str
    slots: dict[str, str] = field(default_factory=dict)
    options: tuple[str, ...] = ()

    @property
    def relation(self) -> str:
        return RELATION_OF.get(self.slots.get("rel", ""), "")

    @property
    def comparison(self) -> str:
        """"larger" or "smaller" ("bigger" reads as larger)."""
        return COMPARISON_OF.get(self.slots.get("cmp", ""), "")


def names_objects(phrase: str) -> bool:
    """Whether a slot's words name world objects: a concept, with no number in it ("one" as a noun aside)."""
    words = tokenize(phrase)
    return parse_concept(phrase).ok and not any(
        w.isdigit() or (w in _NUMBER_WORDS and not (w == "one" and i == len(words) - 1)) for i, w in enumerate(words))


MAX_CHARS = 1000  # no world question is longer; longer text is not matched at all (bounded time on any input)


def read(text: str) -> Reading | None:
    """The first template the question fits with every object slot a world concept, else None."""
    if len(text) > MAX_CHARS:
        return None
    question, options = split_options(text)
    q = normalise(question)
    m = _KTH.fullmatch(q)
    if m and names_objects(m.group("np")) and names_objects(m.group("b")):
        return Reading("kth", {k: v for k, v in m.groupdict().items() if v}, options)
    for intent, pattern in _PATTERNS:
        m = pattern.fullmatch(q)
        if m is None:
            continue
        slots = m.groupdict()
        if not all(names_objects(slots[s]) for s in _OBJECT_SLOTS if s in slots):
            continue
        if "colour" in slots and slots["colour"] not in COLOUR_WORDS:
            continue
        return Reading(intent, slots, options)
    return None


def article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def fill(template: str, **slots: str) -> str:
    """A template with its slots filled; {a} becomes the article of the word after it."""
    text = template
    for name, value in slots.items():
        text = text.replace("{" + name + "}", value)
    return re.sub(r"\{an?\} (\w)", lambda m: f"{article(m.group(1))} {m.group(1)}", text)


def pick(rng: np.random.Generator, options: tuple[str, ...] | list[str]) -> str:
    return options[int(rng.integers(len(options)))]


def surface(rng: np.random.Generator, text: str) -> str:
    """How a person might type it: sometimes all lower case, without the final punctuation, with a doubled
    space. Readers normalise all of this away; the student must too."""
    if rng.random() < 0.25:
        text = text.lower()
    if rng.random() < 0.25:
        text = text.rstrip("?.!")
    if rng.random() < 0.1:
        words = text.split(" ")
        i = int(rng.integers(len(words)))
        text = " ".join(words[:i]) + "  " + " ".join(words[i:]) if 0 < i < len(words) else text
    return text


def reword(rng: np.random.Generator, text: str) -> str:
    """The question in another of its intent's templates, relation and comparison words swapped for synonyms
    and typed as a person might (`surface`); a question no template reads (k-th) comes back as it was."""
    r = read(text)
    if r is None or r.intent not in TEMPLATES:
        return text
    slots = dict(r.slots)
    if "rel" in slots:
        slots["rel"] = pick(rng, RELATION_PHRASES[r.relation])
    if "cmp" in slots:
        slots["cmp"] = pick(rng, COMPARISON_WORDS[r.comparison])
    return surface(rng, fill(pick(rng, TEMPLATES[r.intent]), **slots))
