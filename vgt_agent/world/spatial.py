"""Spatial families: relations between uniquely referable objects, asked only when unambiguous.

Scenes are random; the generator then searches the scene for object pairs/triples with a clear answer,
choosing the wanted answer first (yes/no, direction, option order) so the answers stay balanced.
"""

from __future__ import annotations

import numpy as np

from vgt_agent.world.palette import COLOURS, SHAPES
from vgt_agent.world.question import Gold, Question, generate, shuffle_options
from vgt_agent.world.refer import referable
from vgt_agent.world.relations import (
    AXIS,
    DIRECTIONS,
    clear_relation,
    closer,
    dominant_relation,
    larger,
)
from vgt_agent.world.scene import Attr, Scene, random_attr
from vgt_agent.world.splits import SplitSpec

PHRASES: dict[str, str] = {
    "left": "to the left of", "right": "to the right of", "above": "above", "below": "below",
}
ORDINALS: tuple[str, ...] = ("", "second ", "third ")
ORDER_WORDS: dict[tuple[int, bool], str] = {
    (0, False): "leftmost", (0, True): "rightmost", (1, False): "topmost", (1, True): "bottommost",
}
ORDER_SEPARATION = 0.03  # k-th questions: neighbouring centres differ by this fraction of the image side


def _random_attrs(split: SplitSpec):
    def make_attrs(rng: np.random.Generator) -> list[Attr]:
        n = int(rng.integers(split.min_objects, split.max_objects + 1))
        return [random_attr(rng) for _ in range(n)]

    return make_attrs


def _choose(rng: np.random.Generator, items: list):
    return items[int(rng.integers(len(items)))] if items else None


def relation_yes_no(rng: np.random.Generator, split: SplitSpec) -> tuple[Scene, Question]:
    """'Is the red circle to the left of the blue square?' with yes and no equally likely."""

    def ask(rng: np.random.Generator, scene: Scene) -> Question | None:
        refs = referable(scene.objects)
        word = DIRECTIONS[int(rng.integers(4))]
        want = bool(rng.random() < 0.5)
        pairs = [
            (a, b) for a in refs for b in refs
            if a != b and (rel := clear_relation(scene.objects[a], scene.objects[b], AXIS[word])) is not None
            and (rel == word) == want
        ]
        pick = _choose(rng, pairs)
        if pick is None:
            return None
        a, b = pick
        text = f"Is the {refs[a]} {PHRASES[word]} the {refs[b]}?"
        gold = (Gold(a, "target", refs[a]), Gold(b, "anchor", refs[b]))
        return Question("relation_yes_no", text, "yes" if want else "no", "yes_no", (), gold)

    return generate(rng, split, _random_attrs(split), ask)


def relation_choice(rng: np.random.Generator, split: SplitSpec) -> tuple[Scene, Question]:
    """'Where is the red circle relative to the blue square?' options left/right/above/below."""

    def ask(rng: np.random.Generator, scene: Scene) -> Question | None:
        refs = referable(scene.objects)
        word = DIRECTIONS[int(rng.integers(4))]
        pairs = [
            (a, b) for a in refs for b in refs
            if a != b and dominant_relation(scene.objects[a], scene.objects[b]) == word
        ]
        pick = _choose(rng, pairs)
        if pick is None:
            return None
        a, b = pick
        choices, letter = shuffle_options(rng, list(DIRECTIONS), word)
        text = f"Where is the {refs[a]} relative to the {refs[b]}?"
        gold = (Gold(a, "target", refs[a]), Gold(b, "anchor", refs[b]))
        return Question("relation_choice", text, letter, "choice", choices, gold)

    return generate(rng, split, _random_attrs(split), ask)


def closer_to(rng: np.random.Generator, split: SplitSpec) -> tuple[Scene, Question]:
    """'Which is closer to the green star: the red circle or the blue square?'"""

    def ask(rng: np.random.Generator, scene: Scene) -> Question | None:
        refs = referable(scene.objects)
        objs = scene.objects
        triples = [
            (z, x, y) for z in refs for x in refs for y in refs
            if len({z, x, y}) == 3 and x < y and closer(objs[x], objs[y], objs[z]) is not None
        ]
        pick = _choose(rng, triples)
        if pick is None:
            return None
        z, x, y = pick
        near = closer(objs[x], objs[y], objs[z]).id  # type: ignore[union-attr]
        far = y if near == x else x
        choices, letter = shuffle_options(rng, [f"the {refs[x]}", f"the {refs[y]}"], f"the {refs[near]}")
        text = f"Which is closer to the {refs[z]}: {choices[0]} or {choices[1]}?"
        gold = (
            Gold(near, "target", refs[near]), Gold(far, "alternative", refs[far]), Gold(z, "anchor", refs[z]),
        )
        return Question("closer", text, letter, "choice", choices, gold)

    return generate(rng, split, _random_attrs(split), ask)


def larger_of(rng: np.random.Generator, split: SplitSpec) -> tuple[Scene, Question]:
    """'Which is larger: the red circle or the blue square?' (or smaller); names never mention size."""

    def ask(rng: np.random.Generator, scene: Scene) -> Question | None:
        refs = referable(scene.objects, with_size=False)
        objs = scene.objects
        pairs = [(x, y) for x in refs for y in refs if x < y and larger(objs[x], objs[y]) is not None]
        pick = _choose(rng, pairs)
        if pick is None:
            return None
        x, y = pick
        big = larger(objs[x], objs[y]).id  # type: ignore[union-attr]
        word = "larger" if rng.random() < 0.5 else "smaller"
        target = big if word == "larger" else (y if big == x else x)
        other = y if target == x else x
        choices, letter = shuffle_options(rng, [f"the {refs[x]}", f"the {refs[y]}"], f"the {refs[target]}")
        text = f"Which is {word}: {choices[0]} or {choices[1]}?"
        gold = (Gold(target, "target", refs[target]), Gold(other, "alternative", refs[other]))
        return Question("larger", text, letter, "choice", choices, gold)

    return generate(rng, split, _random_attrs(split), ask)


def kth_relation(rng: np.random.Generator, split: SplitSpec) -> tuple[Scene, Question]:
    """'Is the second leftmost circle above or below the green square?' (k-th along one axis, then a
    relation along the other)."""
    by_shape = bool(rng.random() < 0.5)
    kinds = SHAPES if by_shape else tuple(COLOURS)
    kind = kinds[int(rng.integers(len(kinds)))]

    def member(a: Attr | object) -> bool:
        return getattr(a, "shape" if by_shape else "colour") == kind

    def make_attrs(rng: np.random.Generator) -> list[Attr]:
        m = int(rng.integers(2, 5))
        n = max(int(rng.integers(split.min_objects, split.max_objects + 1)), m + 1)
        attrs = []
        while len(attrs) < m:
            a = random_attr(rng)
            a = Attr(kind, a.colour) if by_shape else Attr(a.shape, kind)
            attrs.append(a)
        while len(attrs) < n:
            a = random_attr(rng)
            if not member(a):
                attrs.append(a)
        return [attrs[i] for i in rng.permutation(len(attrs))]

    def ask(rng: np.random.Generator, scene: Scene) -> Question | None:
        axis = int(rng.integers(2))
        from_end = bool(rng.random() < 0.5)
        members = [o for o in scene.objects if member(o)]
        members.sort(key=lambda o: o.center[axis], reverse=from_end)
        coords = [o.center[axis] for o in members]
        sep = ORDER_SEPARATION * min(scene.width, scene.height)
        if any(abs(p - q) < sep for p, q in zip(coords, coords[1:], strict=False)):
            return None
        k = int(rng.integers(min(3, len(members))))
        target = members[k]
        refs = referable(scene.objects)
        anchors = [
            i for i in refs if not member(scene.objects[i])
            and clear_relation(target, scene.objects[i], 1 - axis) is not None
        ]
        anchor = _choose(rng, anchors)
        if anchor is None:
            return None
        rel = clear_relation(target, scene.objects[anchor], 1 - axis)
        options = ["left", "right"] if axis == 1 else ["above", "below"]
        choices, letter = shuffle_options(rng, options, rel)  # type: ignore[arg-type]
        noun = kind if by_shape else f"{kind} shape"
        subject = f"{ORDINALS[k]}{ORDER_WORDS[(axis, from_end)]} {noun}"
        if axis == 1:
            text = f"Is the {subject} to the {choices[0]} or {choices[1]} of the {refs[anchor]}?"
        else:
            text = f"Is the {subject} {choices[0]} or {choices[1]} the {refs[anchor]}?"
        gold = (
            Gold(target.id, "target", target.name),
            Gold(anchor, "anchor", refs[anchor]),
            *(Gold(o.id, "reference", o.name) for o in members if o is not target),
        )
        return Question("kth_relation", text, letter, "choice", choices, gold)

    return generate(rng, split, make_attrs, ask)
