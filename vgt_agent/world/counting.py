"""Counting families: the answer is decided first, then a scene is built that has exactly that many.

Choosing the count before the scene keeps the answer distribution flat (0 included) instead of
whatever random scenes happen to contain; near-miss fillers (same colour or same shape as the counted
kind) make the count depend on both attributes.
"""

from __future__ import annotations

import numpy as np

from vgt_agent.world.palette import COLOURS, SHAPES
from vgt_agent.world.question import Gold, Question, generate
from vgt_agent.world.refer import plural
from vgt_agent.world.scene import Attr, Scene
from vgt_agent.world.splits import SplitSpec

MAX_COUNT = 12
COLOUR_NAMES = tuple(COLOURS)


def _pick(rng: np.random.Generator, values: tuple[str, ...], exclude: str | None = None) -> str:
    pool = [v for v in values if v != exclude]
    return pool[int(rng.integers(len(pool)))]


def _shuffled(rng: np.random.Generator, attrs: list[Attr]) -> list[Attr]:
    """Counted objects spread through the drawing order, so they are occluded like everything else."""
    return [attrs[i] for i in rng.permutation(len(attrs))]


def _counts(rng: np.random.Generator, split: SplitSpec) -> tuple[int, int]:
    """(total objects, answer), the answer uniform over what the total allows."""
    n = int(rng.integers(split.min_objects, split.max_objects + 1))
    return n, int(rng.integers(0, min(n, MAX_COUNT) + 1))


def _count_question(family: str, text: str, scene: Scene, counted: list[int]) -> Question:
    gold = tuple(Gold(i, "counted", scene.objects[i].name) for i in counted)
    return Question(family, text, str(len(counted)), "count", (), gold)


def count_colour_shape(rng: np.random.Generator, split: SplitSpec) -> tuple[Scene, Question]:
    """'How many red circles are there?'"""
    colour, shape = _pick(rng, COLOUR_NAMES), _pick(rng, SHAPES)

    def make_attrs(rng: np.random.Generator) -> list[Attr]:
        n, k = _counts(rng, split)
        attrs = [Attr(shape, colour) for _ in range(k)]
        for _ in range(n - k):
            near = rng.random()
            if near < 0.3:
                attrs.append(Attr(_pick(rng, SHAPES, shape), colour))
            elif near < 0.6:
                attrs.append(Attr(shape, _pick(rng, COLOUR_NAMES, colour)))
            else:
                attrs.append(Attr(_pick(rng, SHAPES, shape), _pick(rng, COLOUR_NAMES, colour)))
        return _shuffled(rng, attrs)

    def ask(rng: np.random.Generator, scene: Scene) -> Question:
        counted = [o.id for o in scene.objects if o.colour == colour and o.shape == shape]
        text = f"How many {colour} {plural(shape)} are there?"
        return _count_question("count_colour_shape", text, scene, counted)

    return generate(rng, split, make_attrs, ask)


def count_not_colour(rng: np.random.Generator, split: SplitSpec) -> tuple[Scene, Question]:
    """'How many shapes are not blue?'"""
    colour = _pick(rng, COLOUR_NAMES)

    def make_attrs(rng: np.random.Generator) -> list[Attr]:
        n, k = _counts(rng, split)
        attrs = [Attr(_pick(rng, SHAPES), _pick(rng, COLOUR_NAMES, colour)) for _ in range(k)]
        attrs += [Attr(_pick(rng, SHAPES), colour) for _ in range(n - k)]
        return _shuffled(rng, attrs)

    def ask(rng: np.random.Generator, scene: Scene) -> Question:
        counted = [o.id for o in scene.objects if o.colour != colour]
        return _count_question("count_not_colour", f"How many shapes are not {colour}?", scene, counted)

    return generate(rng, split, make_attrs, ask)


def count_shape(rng: np.random.Generator, split: SplitSpec) -> tuple[Scene, Question]:
    """'How many triangles are there?' (any colour)."""
    shape = _pick(rng, SHAPES)

    def make_attrs(rng: np.random.Generator) -> list[Attr]:
        n, k = _counts(rng, split)
        attrs = [Attr(shape, _pick(rng, COLOUR_NAMES)) for _ in range(k)]
        attrs += [Attr(_pick(rng, SHAPES, shape), _pick(rng, COLOUR_NAMES)) for _ in range(n - k)]
        return _shuffled(rng, attrs)

    def ask(rng: np.random.Generator, scene: Scene) -> Question:
        counted = [o.id for o in scene.objects if o.shape == shape]
        return _count_question("count_shape", f"How many {plural(shape)} are there?", scene, counted)

    return generate(rng, split, make_attrs, ask)
