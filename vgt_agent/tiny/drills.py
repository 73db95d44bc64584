"""Drills: the world's questions over random tool replies, answered by the world-oracle, as agent traces.

Why: vgt-tiny's decisions are small algorithms over copied coordinates (a difference in hundreds, a sum of
two, a comparison, an equality, an answer looked up in a table), and the teacher's traces show each family's
decision too few times for a 1.2 M-parameter model to induce it. A drill is a whole agent trace without a
picture: a question in the world's own words, the tool's replies as random points that obey the world's
own rules for a fair question (the `world/relations.py` ratios, the grounder's ranks and restrictions), and
the oracle's own text for every turn the model writes (`next_chunk`, as in the policy's teacher traces), in
the chunks the ask graph records. As synthesis keeps only verified traces, a drill whose oracle answer is not
the true one is drawn again. Drawn fresh at every step, they give each decision as many examples as the
warm-up has steps.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vgt_agent.backends.world_oracle import VALUES as ATTRIBUTE_VALUES
from vgt_agent.backends.world_oracle import next_chunk, read_question
from vgt_agent.format import render_tool_result
from vgt_agent.prompts import format_question
from vgt_agent.world.palette import COLOURS, SHAPES, SIZES
from vgt_agent.world.paraphrase import GENERIC
from vgt_agent.world.phrasing import NOUNS, RELATION_PHRASES, TEMPLATES, fill, reword
from vgt_agent.world.refer import plural
from vgt_agent.world.relations import CLEAR_RATIO, CLOSER_RATIO, DOMINANT_RATIO
from vgt_agent.world.spatial import ORDER_SEPARATION

Point = tuple[int, int]
Drawn = tuple[str, tuple[str, ...], list[list[Point]], str]  # question, choices, the tool's replies, the truth
DIRECTIONS = ("left", "right", "above", "below")
MIN_GAP = 80  # centres this far apart on an asked axis: the world's objects are >= 70 wide and never touch
SEPARATION = int(ORDER_SEPARATION * 1000)  # k-th questions: neighbouring members this far apart
MAX_COUNT = 12  # the world's counts go to 12
SIZED = 0.2  # share of drill phrases with a size word ("large red circle")
TWINS = 0.15  # share of questions naming two objects of one colour and shape, told apart by size
REWORDED = 0.5  # share of questions in another wording of their kind (`phrasing.reword`)


@dataclass(frozen=True)
class Drill:
    family: str
    question: str
    choices: tuple[str, ...]
    chunks: list[dict[str, str]]  # the model's turns and the tool's replies, as graphs/ask.py records them
    answer: str


def _colour(rng: random.Random) -> str:
    return rng.choice(tuple(COLOURS))


def _phrases(rng: random.Random, n: int) -> list[str]:
    """n different objects as `world/refer.py` words them: colour and shape, a size added for some, and, in
    some questions, two of one kind that only their sizes tell apart ("the large red triangle ... the small red
    triangle"). The policy has to copy the size word into its grounding call: drills without it left vgt-tiny
    grounding "medium green square" for "large green square" in half of the sized questions."""
    while True:
        kinds = [(_colour(rng), rng.choice(SHAPES)) for _ in range(n)]
        if n > 1 and rng.random() < TWINS:
            kinds[1] = kinds[0]
            rng.shuffle(kinds)
        sized = [kinds.count(k) > 1 or rng.random() < SIZED for k in kinds]
        words = [f"{rng.choice(tuple(SIZES))} {c} {s}" if big else f"{c} {s}" for (c, s), big in zip(kinds, sized,
                                                                                                 strict=True)]
        if len(set(words)) == n:
            return words


def _point(rng: random.Random) -> Point:
    return rng.randint(40, 960), rng.randint(40, 960)


def _clear(a: Point, b: Point, axis: int, ratio: float) -> bool:
    """The asked axis carries `ratio` of the other's offset, with a visible gap (as `clear_relation`)."""
    d_axis, d_other = abs(a[axis] - b[axis]), abs(a[1 - axis] - b[1 - axis])
    return d_axis >= MIN_GAP and d_axis >= ratio * d_other


def _pair(rng: random.Random, fair: Callable[[Point, Point], bool]) -> tuple[Point, Point]:
    while True:
        a, b = _point(rng), _point(rng)
        if fair(a, b):
            return a, b


def _shuffled(rng: random.Random, options: Sequence[str]) -> tuple[str, ...]:
    out = list(options)
    rng.shuffle(out)
    return tuple(out)


def _direction(a: Point, b: Point, axis: int) -> str:
    """Where a is from b along an axis."""
    return (("left", "right"), ("above", "below"))[axis][a[axis] > b[axis]]


def _letter(options: Sequence[str], word: str) -> str:
    return chr(65 + list(options).index(word))


def _worded(rng: random.Random, question: str) -> str:
    """The question in another wording of its kind half of the time (`phrasing.reword`), as people type it."""
    return reword(np.random.default_rng(rng.getrandbits(64)), question) if rng.random() < REWORDED else question


def _kind(rng: random.Random, many: bool) -> str:
    """What a count or existence question names: 'red circles', 'circles', 'red objects' or 'shapes'."""
    colour, shape = _colour(rng), rng.choice(SHAPES)
    noun = rng.choice(GENERIC) if many else rng.choice(("shape", "object", "thing"))
    return rng.choice((f"{colour} {plural(shape) if many else shape}", plural(shape) if many else shape,
                       f"{colour} {noun}", noun))


def count(rng: random.Random) -> Drawn:
    """'How many red circles are there?', 'count the shapes', 'How many shapes are not red?' (world-tally,
    world-countqa, world-train's phrased counts), 0..12 instances."""
    if rng.random() < 0.2:
        question = f"How many {plural(rng.choice(SHAPES))} are not {_colour(rng)}?"
    else:
        question = _worded(rng, f"How many {_kind(rng, many=True)} are there?")
    points = [_point(rng) for _ in range(rng.randint(0, MAX_COUNT))]
    return question, (), [points], str(len(points))


def exist(rng: random.Random) -> Drawn:
    """'Is there a star?', 'Are there any blue hexagons?': 0-3 instances found."""
    template = rng.choice(TEMPLATES["exist"])
    many = "{a}" not in template and not template.startswith("Is there")
    question = fill(template, np=_kind(rng, many))
    points = [_point(rng) for _ in range(rng.choice((0, 0, 1, 2, 3)))]
    return question, (), [points], "yes" if points else "no"


def _halving_replies(values: Sequence[str], truth: str, target: Point,
                     miss: Callable[[], list[Point]]) -> list[list[Point]]:
    """The tool's replies to the oracle's halving calls (`world_oracle._attribute`): the asked object itself
    when its value is in the asked half, else `miss()` (what the grounder returns for a half without it)."""
    replies = []
    while len(values) > 1:
        half = list(values[: len(values) // 2])
        replies.append([target] if truth in half else miss())
        values = half if truth in half else list(values[len(half):])
    return replies


def _apart(rng: random.Random, *far: Point) -> Point:
    """A random point clearly apart from the given ones (never read as the same object)."""
    while True:
        p = _point(rng)
        if all(math.dist(p, q) >= MIN_GAP for q in far):
            return p


def attribute(rng: random.Random) -> Drawn:
    """'What colour is the largest shape?', 'What shape is the blue object?': the object grounded, then the
    values halved by grounding its phrase restricted to each half (world-train's attribute family)."""
    asked = rng.choice(("colour", "shape"))
    values = ATTRIBUTE_VALUES[asked]
    unique = rng.random() < 0.5
    if unique:
        phrase = rng.choice(SHAPES) if asked == "colour" else f"{_colour(rng)} {rng.choice(('object', 'thing'))}"
    else:
        nouns = ("shape", "object", "one") if asked == "colour" else ("object", "thing")
        phrase = f"{rng.choice(('largest', 'biggest', 'smallest', 'tiniest'))} {rng.choice(nouns)}"
    question = fill(rng.choice(TEMPLATES[f"{asked}_of"]), np=phrase)
    target, truth = _point(rng), rng.choice(values)
    def miss() -> list[Point]:  # the phrase restricted to a half without the object (`world_oracle.restricted`):
        # nothing, or for a superlative ("largest red or green shape") another object of those values
        return [_apart(rng, target)] if not unique and rng.random() < 0.7 else []

    return question, (), [[target], *_halving_replies(values, truth, target, miss)], truth


def attribute_side(rng: random.Random) -> Drawn:
    """'What shape is left of the red square?', 'What colour is the shape above the green circle?': the anchor
    grounded, then the values halved by the extreme of each half on that side; only the asked object lies on
    that side of the anchor."""
    asked, word = rng.choice(("colour", "shape")), rng.choice(DIRECTIONS)
    values = ATTRIBUTE_VALUES[asked]
    axis, sign = (0 if word in ("left", "right") else 1), (-1 if word in ("left", "above") else 1)
    while True:  # the anchor leaves room on both sides of it
        anchor, target = _point(rng), _point(rng)
        if 200 <= anchor[axis] <= 800 and sign * (target[axis] - anchor[axis]) >= MIN_GAP:
            break

    def elsewhere() -> Point:  # another object, clearly on the other side of the anchor
        while True:
            p = _apart(rng, target, anchor)
            if sign * (p[axis] - anchor[axis]) <= -MIN_GAP // 4:
                return p

    template = rng.choice(TEMPLATES[f"{asked}_related"])
    question = fill(template, noun=rng.choice(NOUNS[:3]), rel=rng.choice(RELATION_PHRASES[word]),
                    b=_phrases(rng, 1)[0])
    truth = rng.choice(values)
    def miss() -> list[Point]:  # the half's extreme on that side ("leftmost circle or square") without the
        # asked object: another object, on the other side of the anchor, the anchor itself, or none
        return rng.choices(([elsewhere()], [anchor], []), (5, 2, 3))[0]

    return question, (), [[anchor], *_halving_replies(values, truth, target, miss)], truth



def relation(rng: random.Random) -> Drawn:
    """'Is the red circle to the left of the blue star?' (world-vsr)."""
    word = rng.choice(DIRECTIONS)
    axis = 0 if word in ("left", "right") else 1
    a, b = _pair(rng, lambda a, b: _clear(a, b, axis, CLEAR_RATIO))
    said = {"left": "to the left of", "right": "to the right of"}.get(word, word)
    yes = "yes" if _direction(a, b, axis) == word else "no"
    first, second = _phrases(rng, 2)
    return _worded(rng, f"Is the {first} {said} the {second}?"), (), [[a], [b]], yes


def where(rng: random.Random) -> Drawn:
    """'Where is the red circle relative to the blue star?' with the four directions as options
    (world-embspatial): one axis carries twice the other's offset."""
    a, b = _pair(rng, lambda a, b: _clear(a, b, 0, DOMINANT_RATIO) or _clear(a, b, 1, DOMINANT_RATIO))
    options = _shuffled(rng, DIRECTIONS)
    truth = _direction(a, b, 0 if _clear(a, b, 0, DOMINANT_RATIO) else 1)
    first, second = _phrases(rng, 2)
    return _worded(rng, f"Where is the {first} relative to the {second}?"), options, [[a], [b]], _letter(options, truth)


def closer(rng: random.Random) -> Drawn:
    """'Which is closer to the green star: the red circle or the blue square?' (world-spatialmqa)."""
    while True:
        z, a, b = _point(rng), _point(rng), _point(rng)
        da, db = math.dist(a, z), math.dist(b, z)
        if min(da, db) >= MIN_GAP and max(da, db) >= CLOSER_RATIO * min(da, db):
            break
    anchor, first, second = _phrases(rng, 3)
    first, second = f"the {first}", f"the {second}"
    question = _worded(rng, f"Which is closer to the {anchor}: {first} or {second}?")
    return question, (first, second), [[z], [a], [b]], "A" if da < db else "B"


def larger(rng: random.Random) -> Drawn:
    """'Which is larger: the red circle or the blue square?' (world-spatialmqa); the tool grounds the answer."""
    a, b = _pair(rng, lambda a, b: math.dist(a, b) >= MIN_GAP)
    first, second = (f"the {p}" for p in _phrases(rng, 2))
    question = _worded(rng, f"Which is {rng.choice(('larger', 'smaller'))}: {first} or {second}?")
    pick = rng.choice((a, b))
    return question, (first, second), [[a], [b], [pick]], "A" if pick == a else "B"


def kth(rng: random.Random) -> Drawn:
    """'Is the second leftmost circle above or below the green square?' (world-multihop): the grounder ranks the
    2-4 members ("second leftmost circle" is one point), the policy compares it to the anchor."""
    axis, from_end = rng.randint(0, 1), rng.random() < 0.5
    while True:
        members = [_point(rng) for _ in range(rng.randint(2, 4))]
        ranked = sorted(p[axis] for p in members)
        if all(q - p >= SEPARATION for p, q in zip(ranked, ranked[1:], strict=False)):
            break
    k = rng.randrange(min(3, len(members)))
    target = sorted(members, key=lambda p: p[axis], reverse=from_end)[k]
    while not _clear(anchor := _point(rng), target, 1 - axis, CLEAR_RATIO):
        pass
    order = {(0, False): "leftmost", (0, True): "rightmost", (1, False): "topmost", (1, True): "bottommost"}
    shape = rng.choice(SHAPES)
    noun = shape if rng.random() < 0.5 else f"{_colour(rng)} shape"
    subject = f"{('', 'second ', 'third ')[k]}{order[(axis, from_end)]} {noun}"
    options = _shuffled(rng, ("left", "right") if axis == 1 else ("above", "below"))
    while (anchor_phrase := _phrases(rng, 1)[0]).endswith(shape):
        pass
    if axis == 1:
        question = f"Is the {subject} to the {options[0]} or {options[1]} of the {anchor_phrase}?"
    else:
        question = f"Is the {subject} {options[0]} or {options[1]} the {anchor_phrase}?"
    return question, options, [[target], [anchor]], _letter(options, _direction(target, anchor, 1 - axis))


FAMILIES: dict[str, Callable[[random.Random], Drawn]] = {
    "count": count, "exist": exist, "relation": relation, "where": where, "closer": closer, "larger": larger,
    "kth": kth, "attribute": attribute, "attribute_side": attribute_side,
}


def oracle_chunks(question: str, choices: Sequence[str], replies: list[list[Point]]) -> list[dict[str, str]]:
    """The agent trace the oracle writes for `question` when the tool answers with `replies` in order: its
    turns and the replies, each reply on its own line, as the ask graph's text protocol records them."""
    q = read_question(format_question(question, choices))
    results: list[tuple[str, list[tuple[int, ...]]]] = []
    chunks: list[dict[str, str]] = []
    while True:
        chunk = next_chunk(q, results, "point")
        chunks.append({"role": "assistant", "content": chunk})
        if not chunk.endswith("</ground>"):
            return chunks
        if len(results) == len(replies):
            raise ValueError(f"the oracle asked for more than {len(replies)} groundings: {question!r}")
        phrase = chunk.rsplit("<ground>", 1)[1].removesuffix("</ground>").strip()
        points = replies[len(results)]
        results.append((phrase, [tuple(p) for p in points]))
        chunks.append({"role": "tool", "content": "\n" + render_tool_result(phrase, "point", points) + "\n"})


def answer_of(chunks: list[dict[str, str]]) -> str:
    """The boxed answer that ends an agent trace."""
    return chunks[-1]["content"].rsplit("\\boxed{", 1)[1].removesuffix("}")


def drill(rng: random.Random, family: str | None = None) -> Drill:
    """A verified drill of a random (or the given) family."""
    name = family or rng.choice(tuple(FAMILIES))
    while True:
        question, choices, replies, truth = FAMILIES[name](rng)
        chunks = oracle_chunks(question, choices, replies)
        if answer_of(chunks) == truth:
            return Drill(name, question, choices, chunks, truth)


def drill_example(processor: Any, d: Drill, image: Any, rng: random.Random) -> Any:
    """The drill as an agent SFT sequence (`training/agent_examples.build_example`: model turns trained,
    replies read)."""
    from vgt_agent.training.agent_examples import build_example, sample_newlines

    return build_example(processor, d.question, d.choices, d.chunks, image, sample_newlines(d.chunks, rng))
