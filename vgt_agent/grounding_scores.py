"""How well do generated groundings land on reference objects? The core of the grounding rewards.

Everything here works in pixels; normalised 0..1000 coordinates from the model are converted once, through
`geometry`, with the image size. Points: F1 of a one-to-one assignment of points to the reference masks that
contain them. Boxes: IoU of the union of generated boxes with the union of reference boxes. Per sample:
the mean over reference objects, an object no grounding routes to scoring 0, extra groundings ignored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from vgt_agent.format import Grounding
from vgt_agent.geometry import (
    decode_rle,
    masks_to_boxes,
    match_points_to_masks,
    pixel_from_norm_boxes,
    pixel_from_norm_points,
    union_box_iou,
)
from vgt_agent.routing import ReferenceName, Router, TextRouter, first_per_reference

# A point grounding is "verified" when every point lands on a distinct instance; a box when IoU >= this.
BOX_VERIFIED_IOU = 0.5


@dataclass(frozen=True)
class ReferenceObject:
    """A reference object: its name/context for routing and its instance masks (H, W) in pixels."""

    name: str
    masks: np.ndarray  # (N, H, W) bool; N may be 0 (the object is absent: "how many red stars?" -> 0)
    context: str = ""
    boxes: np.ndarray = field(default=None)  # (N, 4) pixel boxes; derived from masks when not given

    def __post_init__(self) -> None:
        masks = np.asarray(self.masks, dtype=bool)
        object.__setattr__(self, "masks", masks)
        if self.boxes is None:
            boxes = masks_to_boxes(masks) if len(masks) else np.zeros((0, 4))
            object.__setattr__(self, "boxes", boxes)

    @classmethod
    def from_rles(cls, name: str, rles: Sequence[dict], height: int, width: int, context: str = "") -> ReferenceObject:
        masks = np.stack([decode_rle(r) for r in rles]) if rles else np.zeros((0, height, width), dtype=bool)
        return cls(name, masks, context)


class GroundingScore(NamedTuple):
    """The score of one grounding against one reference object, and whether it counts as verified."""

    score: float
    verified: bool


def score_grounding(grounding: Grounding, reference: ReferenceObject) -> GroundingScore:
    """Points: F1 of the one-to-one point-in-mask matching. Boxes: IoU of the unions."""
    height, width = reference.masks.shape[1:] if reference.masks.ndim == 3 else (1, 1)
    coords = np.asarray(grounding.coords, dtype=np.float64)
    if grounding.kind == "point":
        points = pixel_from_norm_points(coords, width, height)
        match = match_points_to_masks(points, reference.masks)
        return GroundingScore(match.f1, match.tp > 0 and match.fp == 0)
    boxes = pixel_from_norm_boxes(coords, width, height)
    iou = union_box_iou(boxes, reference.boxes)
    return GroundingScore(iou, iou >= BOX_VERIFIED_IOU)


def object_scores(groundings: Sequence[Grounding], references: Sequence[ReferenceObject], text: str = "", *,
                  router: Router | None = None, max_groundings: int = 32) -> list[float]:
    """One score per reference object: the earliest grounding routed to it, else 0."""
    groundings = list(groundings)[:max_groundings]
    routes = (router or TextRouter()).route(groundings, [ReferenceName(r.name, r.context) for r in references], text)
    first = first_per_reference(routes, len(references))
    return [0.0 if g is None else score_grounding(groundings[g], ref).score
            for g, ref in zip(first, references, strict=True)]


def sample_grounding_score(groundings: Sequence[Grounding], references: Sequence[ReferenceObject], text: str = "",
                           *, router: Router | None = None, max_groundings: int = 32) -> float | None:
    """Mean over reference objects (None when the sample has no reference objects to score)."""
    if not references:
        return None
    scores = object_scores(groundings, references, text, router=router, max_groundings=max_groundings)
    return float(np.mean(scores))
