"""A question about a scene, with its gold answer and the objects that make it true.

Every family generator shares `generate`: draw the objects to place, build the scene, ask; when the
scene does not fit or no unambiguous question exists, draw again (the rng keeps it deterministic).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from vgt_agent.world.scene import Attr, PlacementError, Scene, SceneSpec, make_scene
from vgt_agent.world.splits import SplitSpec

LETTERS = "ABCDEFGH"
MAX_ATTEMPTS = 200


@dataclass(frozen=True)
class Gold:
    """An object the answer depends on, with its role and the phrase that names it."""

    object_id: int
    role: str  # "counted" | "target" | "anchor" | "reference" | "alternative"
    name: str


@dataclass(frozen=True)
class Question:
    family: str
    text: str
    answer: str  # "3", "yes"/"no", or a choice letter
    answer_type: str  # "count" | "yes_no" | "choice"
    choices: tuple[str, ...] = ()
    gold: tuple[Gold, ...] = ()


MakeAttrs = Callable[[np.random.Generator], list[Attr]]
Ask = Callable[[np.random.Generator, Scene], "Question | None"]


def scene_spec(rng: np.random.Generator, split: SplitSpec, attrs: list[Attr]) -> SceneSpec:
    """The split's look (occlusion, texture, distractors) drawn for one sample."""
    occlusion = bool(rng.random() < split.occlusion)
    texture = bool(rng.random() < split.texture)
    distractors = int(rng.integers(2, 9)) if rng.random() < split.distractors else 0
    return SceneSpec(
        objects=tuple(attrs), width=split.width, height=split.height, occlusion=occlusion, texture=texture,
        distractors=distractors, look=split.look,
    )


def generate(
    rng: np.random.Generator, split: SplitSpec, make_attrs: MakeAttrs, ask: Ask
) -> tuple[Scene, Question]:
    """Retry until a scene fits and yields a question; RuntimeError if that never happens."""
    for _ in range(MAX_ATTEMPTS):
        spec = scene_spec(rng, split, make_attrs(rng))
        try:
            scene = make_scene(rng, spec)
        except PlacementError:
            continue
        question = ask(rng, scene)
        if question is not None:
            return scene, question
    raise RuntimeError(f"no question after {MAX_ATTEMPTS} scenes for split {split.name}")


def shuffle_options(
    rng: np.random.Generator, options: list[str], correct: str
) -> tuple[tuple[str, ...], str]:
    """Options in random order and the letter of the correct one, so answer letters are uniform."""
    order = tuple(options[i] for i in rng.permutation(len(options)))
    return order, LETTERS[order.index(correct)]
