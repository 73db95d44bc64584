"""One sample = one scene + one question, a pure function of (split seed, index).

Seeding each sample from (seed, index) rather than from a running stream means any single sample can be
regenerated alone (to debug it, or to shard generation) and comes out byte-identical.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from PIL import Image

from vgt_agent import geometry
from vgt_agent.world.families import FAMILIES
from vgt_agent.world.question import Question
from vgt_agent.world.render import render
from vgt_agent.world.scene import Scene, WorldObject
from vgt_agent.world.splits import SplitSpec, get_split

GENERATOR_VERSION = "1"


def resolve_split(split: str | SplitSpec, width: int | None = None, height: int | None = None) -> SplitSpec:
    """A registered split by name (KeyError if unknown), optionally with another image size."""
    spec = get_split(split) if isinstance(split, str) else split
    if width is not None or height is not None:
        spec = dataclasses.replace(spec, width=width or spec.width, height=height or spec.height)
    return spec


def object_record(o: WorldObject, mask: np.ndarray) -> dict[str, Any]:
    """The scene-graph entry of one object; `mask` is its visible image-sized mask."""
    return {
        "id": o.id,
        "shape": o.shape,
        "colour": o.colour,
        "size": o.size,
        "center": [round(o.cx, 2), round(o.cy, 2)],
        "box": [int(v) for v in o.box],
        "point": [int(v) for v in o.point],
        "rle": geometry.encode_rle(mask),
        "visible_fraction": round(o.visible_fraction, 4),
        "area": o.area,
    }


def sample_record(
    spec: SplitSpec, index: int, scene: Scene, question: Question, objects: list[dict[str, Any]]
) -> dict[str, Any]:
    """The metadata.jsonl row; every row has the same keys and value types so Arrow infers one schema."""
    gold = [
        {
            "object_id": g.object_id, "name": g.name, "role": g.role, "rle": objects[g.object_id]["rle"],
            "box": objects[g.object_id]["box"], "point": objects[g.object_id]["point"],
        }
        for g in question.gold
    ]
    return {
        "file_name": f"images/{index:06d}.png",
        "id": f"{spec.name}/{index:06d}",
        "split": spec.name,
        "index": index,
        "question": question.text,
        "answer": question.answer,
        "answer_type": question.answer_type,
        "choices": list(question.choices),
        "family": question.family,
        "width": scene.width,
        "height": scene.height,
        "gold_objects": gold,
        "objects": objects,
    }


def make_question(spec: SplitSpec, index: int, seed: int | None = None) -> tuple[Scene, Question]:
    """The scene and question of sample `index`; families rotate with the index so splits mix evenly."""
    seed = spec.seed if seed is None else seed
    if index < 0 or seed < 0:
        raise ValueError(f"index and seed must be >= 0, got index={index}, seed={seed}")
    rng = np.random.default_rng([seed, index])
    family = spec.families[index % len(spec.families)]
    return FAMILIES[family](rng, spec)


def make_sample(
    split: str | SplitSpec,
    index: int,
    seed: int | None = None,
    width: int | None = None,
    height: int | None = None,
) -> tuple[Image.Image, dict[str, Any]]:
    """Image and metadata row of sample `index` of a split (seed defaults to the split's)."""
    spec = resolve_split(split, width, height)
    scene, question = make_question(spec, index, seed)
    image, masks = render(scene)
    objects = [object_record(o, m) for o, m in zip(scene.objects, masks, strict=True)]
    return image, sample_record(spec, index, scene, question, objects)
