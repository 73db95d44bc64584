"""Attribute families: "What colour is the largest shape?", "What shape is left of the red square?".

The answer is a word (a colour name or a shape name, answer type "text"). The object asked about must be
the only one that fits: the largest (or smallest) by a clear margin, the only star, the only blue object,
or the only object on that side of the anchor at all (every other object clearly on the other side, by its
centre and by its point, so that no reader of coordinates could pick another one).
"""

from __future__ import annotations

import numpy as np

from vgt_agent.world.counting import COLOUR_NAMES, _pick, _shuffled
from vgt_agent.world.palette import SHAPES
from vgt_agent.world.phrasing import NOUNS, RELATION_PHRASES, TEMPLATES, fill, pick, surface
from vgt_agent.world.question import Gold, Question, generate
from vgt_agent.world.refer import referable
from vgt_agent.world.relations import AXIS, DIRECTIONS, LARGER_RATIO, clear_relation
from vgt_agent.world.scene import SIZE_ORDER, Attr, Scene, WorldObject
from vgt_agent.world.spatial import _choose, _random_attrs
from vgt_agent.world.splits import SplitSpec

SUBJECTS = ("largest", "smallest", "unique")
SIDE_MARGIN = 3.0  # pixels: every other object's centre and point lie at least this far on the other side
_SIGN = {"left": -1, "above": -1, "right": 1, "below": 1}


def _extreme(objects: list[WorldObject], largest: bool) -> WorldObject | None:
    """The clearly largest (smallest) object: alone in the extreme size class, LARGER_RATIO apart in area."""
    ranked = sorted(objects, key=lambda o: (SIZE_ORDER.index(o.size), o.area), reverse=largest)
    if len(ranked) < 2:
        return ranked[0] if ranked else None
    first, second = ranked[0], ranked[1]
    big, small = (first, second) if largest else (second, first)
    if first.size == second.size or big.area < LARGER_RATIO * small.area:
        return None
    return first


def attribute(rng: np.random.Generator, split: SplitSpec) -> tuple[Scene, Question]:
    """'What colour is the largest shape?', 'What shape is the blue object?', 'what color is the star'."""
    asked = pick(rng, ("colour", "shape"))
    subject = pick(rng, SUBJECTS)
    colour, shape = _pick(rng, COLOUR_NAMES), _pick(rng, SHAPES)
    nouns = ("shape", "object", "one") if asked == "colour" else ("object", "thing")
    if subject == "unique":
        phrase = shape if asked == "colour" else f"{colour} {pick(rng, nouns[:2])}"
    else:
        word = pick(rng, ("largest", "biggest") if subject == "largest" else ("smallest", "tiniest"))
        phrase = f"{word} {pick(rng, nouns)}"
    text = surface(rng, fill(pick(rng, TEMPLATES[f"{asked}_of"]), np=phrase))

    def make_attrs(rng: np.random.Generator) -> list[Attr]:
        n = int(rng.integers(max(2, split.min_objects), split.max_objects + 1))
        if subject == "unique":
            others = [Attr(_pick(rng, SHAPES, shape), _pick(rng, COLOUR_NAMES)) if asked == "colour"
                      else Attr(_pick(rng, SHAPES), _pick(rng, COLOUR_NAMES, colour)) for _ in range(n - 1)]
            return _shuffled(rng, [Attr(shape, colour), *others])
        target_size, other_sizes = ("large", SIZE_ORDER[:2]) if subject == "largest" else ("small", SIZE_ORDER[1:])
        others = [Attr(_pick(rng, SHAPES), _pick(rng, COLOUR_NAMES), pick(rng, other_sizes)) for _ in range(n - 1)]
        return _shuffled(rng, [Attr(shape, colour, target_size), *others])

    def ask(rng: np.random.Generator, scene: Scene) -> Question | None:
        if subject == "unique":
            found = [o for o in scene.objects if (o.shape == shape if asked == "colour" else o.colour == colour)]
            target = found[0] if len(found) == 1 else None
        else:
            target = _extreme(scene.objects, subject == "largest")
        if target is None:
            return None
        answer = target.colour if asked == "colour" else target.shape
        return Question("attribute", text, answer, "text", (), (Gold(target.id, "target", phrase),))

    return generate(rng, split, make_attrs, ask)


def _beyond(o: WorldObject, anchor: WorldObject, word: str, points: dict[int, tuple[int, int]]) -> bool:
    """Whether `o` is clearly NOT on the `word` side of the anchor: centre and point both on the other side."""
    axis, sign = AXIS[word], _SIGN[word]
    return (sign * (o.center[axis] - anchor.center[axis]) <= -SIDE_MARGIN
            and sign * (points[o.id][axis] - points[anchor.id][axis]) <= -SIDE_MARGIN)


def attribute_relation(rng: np.random.Generator, split: SplitSpec) -> tuple[Scene, Question]:
    """'What shape is left of the red square?', 'What colour is the shape above the green circle?'."""
    asked = pick(rng, ("colour", "shape"))
    template = pick(rng, TEMPLATES[f"{asked}_related"])
    noun = pick(rng, NOUNS[:3])

    def ask(rng: np.random.Generator, scene: Scene) -> Question | None:
        refs = referable(scene.objects)
        points = {o.id: o.point for o in scene.objects}  # a distance transform each: computed once
        found = []
        for word in DIRECTIONS:
            for b in refs:
                anchor = scene.objects[b]
                near = [o for o in scene.objects if o is not anchor and not _beyond(o, anchor, word, points)]
                if len(near) == 1 and clear_relation(near[0], anchor, AXIS[word]) == word:
                    found.append((near[0].id, b, word))
        chosen = _choose(rng, found)
        if chosen is None:
            return None
        t, b, word = chosen
        target = scene.objects[t]
        text = surface(rng, fill(template, noun=noun, rel=pick(rng, RELATION_PHRASES[word]), b=refs[b]))
        answer = target.colour if asked == "colour" else target.shape
        gold = (Gold(t, "target", target.name), Gold(b, "anchor", refs[b]))
        return Question("attribute_relation", text, answer, "text", (), gold)

    return generate(rng, split, _random_attrs(split), ask)
