"""Families in the words people type: counts of any kind of object, existence, and spatial questions reworded.

Each draws its wording from `phrasing.TEMPLATES` and types it the way a person might (`phrasing.surface`);
the scene is built as the counting families build theirs, the answer (count, yes/no) chosen first so the
answers stay balanced.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from vgt_agent.world import phrasing
from vgt_agent.world.counting import COLOUR_NAMES, MAX_COUNT, _count_question, _counts, _pick, _shuffled
from vgt_agent.world.palette import SHAPES
from vgt_agent.world.phrasing import TEMPLATES, fill, pick, surface
from vgt_agent.world.question import Gold, Question, generate
from vgt_agent.world.refer import plural
from vgt_agent.world.scene import Attr, Scene
from vgt_agent.world.spatial import closer_to, larger_of, relation_choice, relation_yes_no
from vgt_agent.world.splits import SplitSpec

GENERIC = ("shapes", "objects", "things")
KINDS = ("colour_shape", "shape", "colour", "all")  # what a counted or searched-for phrase constrains


def _kind_phrase(rng: np.random.Generator, kind: str, colour: str, shape: str, many: bool) -> str:
    """'red circles' / 'circles' / 'red objects' / 'shapes' (or singular: 'red circle', 'red shape')."""
    noun = pick(rng, GENERIC) if many else pick(rng, ("shape", "object", "thing"))
    if kind == "colour_shape":
        return f"{colour} {plural(shape) if many else shape}"
    if kind == "shape":
        return plural(shape) if many else shape
    if kind == "colour":
        return f"{colour} {noun}"
    return noun


def _member(kind: str, colour: str, shape: str, a: Attr) -> bool:
    """Whether an object of attributes `a` is what the phrase of this kind names."""
    if kind == "all":
        return True
    if kind == "colour":
        return a.colour == colour
    if kind == "shape":
        return a.shape == shape
    return a.colour == colour and a.shape == shape


def _attrs(rng: np.random.Generator, kind: str, colour: str, shape: str, n: int, k: int) -> list[Attr]:
    """k objects of the kind and n - k that are not, mostly near misses (same colour or same shape)."""
    attrs = []
    while len(attrs) < k:
        a = Attr(_pick(rng, SHAPES), _pick(rng, COLOUR_NAMES))
        a = Attr(shape if kind in ("shape", "colour_shape") else a.shape,
                 colour if kind in ("colour", "colour_shape") else a.colour)
        attrs.append(a)
    while len(attrs) < n:
        near = rng.random()
        a = Attr(shape if near < 0.3 else _pick(rng, SHAPES), colour if near >= 0.6 else _pick(rng, COLOUR_NAMES))
        if not _member(kind, colour, shape, a):
            attrs.append(a)
    return _shuffled(rng, attrs)


def count_phrased(rng: np.random.Generator, split: SplitSpec) -> tuple[Scene, Question]:
    """'Count the red shapes.', 'how many circles', 'How many objects are there?' (any kind, any wording)."""
    kind = pick(rng, KINDS)
    colour, shape = _pick(rng, COLOUR_NAMES), _pick(rng, SHAPES)
    phrase = _kind_phrase(rng, kind, colour, shape, many=True)
    text = surface(rng, fill(pick(rng, TEMPLATES["count"]), np=phrase))

    def make_attrs(rng: np.random.Generator) -> list[Attr]:
        n, k = _counts(rng, split)
        if kind == "all":  # everything is counted: the total is the answer
            n = k = max(1, min(n, MAX_COUNT))
        return _attrs(rng, kind, colour, shape, n, k)

    def ask(rng: np.random.Generator, scene: Scene) -> Question:
        counted = [o.id for o in scene.objects if _member(kind, colour, shape, Attr(o.shape, o.colour))]
        return _count_question("count_phrased", text, scene, counted)

    return generate(rng, split, make_attrs, ask)


def exist(rng: np.random.Generator, split: SplitSpec) -> tuple[Scene, Question]:
    """'Is there a star?', 'Are there any blue hexagons?': yes and no equally likely."""
    kind = pick(rng, ("colour_shape", "colour_shape", "shape", "colour"))
    colour, shape = _pick(rng, COLOUR_NAMES), _pick(rng, SHAPES)
    template = pick(rng, TEMPLATES["exist"])
    many = "{a}" not in template and not template.startswith("Is there")
    text = surface(rng, fill(template, np=_kind_phrase(rng, kind, colour, shape, many)))
    want = bool(rng.random() < 0.5)

    def make_attrs(rng: np.random.Generator) -> list[Attr]:
        n = int(rng.integers(split.min_objects, split.max_objects + 1))
        k = int(rng.integers(1, min(3, n) + 1)) if want else 0
        return _attrs(rng, kind, colour, shape, n, k)

    def ask(rng: np.random.Generator, scene: Scene) -> Question:
        found = [o for o in scene.objects if _member(kind, colour, shape, Attr(o.shape, o.colour))]
        gold = tuple(Gold(o.id, "counted", o.name) for o in found)
        return Question("exist", text, "yes" if found else "no", "yes_no", (), gold)

    return generate(rng, split, make_attrs, ask)


REWORDED = {"relation_yes_no": relation_yes_no, "relation_choice": relation_choice, "closer": closer_to,
            "larger": larger_of}


def spatial_phrased(rng: np.random.Generator, split: SplitSpec) -> tuple[Scene, Question]:
    """A spatial question of an original family (yes/no relation, direction, closer, larger), reworded:
    'is the red circle left of the blue square', 'Which one is bigger, the star or the ring?'. Same scene,
    answer, options and gold: only the words change."""
    scene, q = REWORDED[pick(rng, tuple(REWORDED))](rng, split)
    if phrasing.read(q.text) is None:  # every original wording is a template
        raise RuntimeError(f"the world's own question {q.text!r} does not read back")
    return scene, dataclasses.replace(q, family="spatial_phrased", text=phrasing.reword(rng, q.text))
