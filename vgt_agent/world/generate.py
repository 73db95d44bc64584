"""One sample = one scene + one question, a pure function of (split seed, index, style).

Seeding each sample from (seed, index) rather than from a running stream means any single sample can be
regenerated alone (to debug it, or to shard generation) and comes out byte-identical. A varied sample's look
(size, format, edges) comes from a second stream of the same (seed, index), see style.draw_look.
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
from vgt_agent.world.style import check_style, draw_look

GENERATOR_VERSION = "1"


def resolve_split(
    split: str | SplitSpec, width: int | None = None, height: int | None = None, style: str | None = None
) -> SplitSpec:
    """A registered split by name (KeyError if unknown), optionally with a fixed image size or another style
    (ValueError if unknown)."""
    spec = get_split(split) if isinstance(split, str) else split
    if style is not None and style != spec.style:
        spec = dataclasses.replace(spec, style=check_style(style))
    if width is not None or height is not None:
        spec = dataclasses.replace(
            spec, width=width or spec.width, height=height or spec.height, fixed_size=True,
        )
    return spec


def object_record(o: WorldObject, mask: np.ndarray) -> dict[str, Any]:
    """The scene-graph entry of one object; `mask` is its visible image-sized mask. A varied object also
    records its shade, its bounding-circle radius in pixels and its rotation in degrees."""
    record = {
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
    if o.rgb is not None:
        record |= {"rgb": list(o.rgb), "radius": round(o.radius, 2), "tilt": round(o.tilt, 1)}
    return record


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
    row = {
        "file_name": f"images/{index:06d}.{scene.look.extension if scene.look else 'png'}",
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
    if scene.look is not None:
        row["style"] = scene.look.record() | {"background": scene.background.describe()}  # type: ignore[union-attr]
    return row


def make_question(spec: SplitSpec, index: int, seed: int | None = None) -> tuple[Scene, Question]:
    """The scene and question of sample `index`; families rotate with the index so splits mix evenly."""
    seed = spec.seed if seed is None else seed
    if index < 0 or seed < 0:
        raise ValueError(f"index and seed must be >= 0, got index={index}, seed={seed}")
    rng = np.random.default_rng([seed, index])
    family = spec.families[index % len(spec.families)]
    if spec.style == "varied":
        size = (spec.width, spec.height) if spec.fixed_size else (None, None)
        look = draw_look(seed, index, family, *size)
        spec = dataclasses.replace(spec, width=look.width, height=look.height, look=look)
    return FAMILIES[family](rng, spec)


def make_sample(
    split: str | SplitSpec,
    index: int,
    seed: int | None = None,
    width: int | None = None,
    height: int | None = None,
    style: str | None = None,
) -> tuple[Image.Image, dict[str, Any]]:
    """Image and metadata row of sample `index` of a split (seed and style default to the split's).

    The image is the rendered pixels; a varied row whose file_name ends in .jpg is stored JPEG-compressed at
    its `style.quality` (storage.make_split), while its masks, boxes and points stay those of the geometry.
    """
    spec = resolve_split(split, width, height, style)
    scene, question = make_question(spec, index, seed)
    image, masks = render(scene)
    objects = [object_record(o, m) for o, m in zip(scene.objects, masks, strict=True)]
    return image, sample_record(spec, index, scene, question, objects)
