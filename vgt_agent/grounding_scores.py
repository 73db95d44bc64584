"""How well do generated groundings land on reference objects? The core of the grounding rewards.

Everything here works in pixels; normalised 0..1000 coordinates from the model are converted once, through
`geometry`, with the image size. Points: F1 of a one-to-one assignment of points to the reference masks that
contain them. Boxes: IoU of the union of generated boxes with the union of reference boxes. Per sample:
the mean over reference objects, an object no grounding routes to scoring 0, extra groundings ignored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import NamedTuple

import numpy as np

from vgt_agent.format import Grounding
from vgt_agent.geometry import (
    decode_rle,
    masks_to_boxes,
    matched_point_count,
    pixel_from_norm_boxes,
    pixel_from_norm_points,
    points_in_masks,
    union_box_iou,
    union_box_ious,
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

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the image the masks belong to."""
        return self.masks.shape[1:] if self.masks.ndim == 3 else (1, 1)

    @cached_property
    def reference_name(self) -> ReferenceName:
        return ReferenceName(self.name, self.context)

    @classmethod
    def from_rles(cls, name: str, rles: Sequence[dict], height: int, width: int, context: str = "") -> ReferenceObject:
        masks = np.stack([decode_rle(r) for r in rles]) if rles else np.zeros((0, height, width), dtype=bool)
        return cls(name, masks, context)


class GroundingScore(NamedTuple):
    """The score of one grounding against one reference object, and whether it counts as verified."""

    score: float
    verified: bool


def _point_scores(groundings: Sequence[Grounding], reference: ReferenceObject) -> list[GroundingScore]:
    """Point groundings against one reference: one containment lookup for all their points, then each
    grounding's F1 (exactly geometry.PointMatch.f1, without building the pairs)."""
    height, width = reference.size
    coords = np.asarray([xy for g in groundings for xy in g.coords], dtype=np.float64)
    contain = points_in_masks(pixel_from_norm_points(coords, width, height), reference.masks)
    out, start = [], 0
    for g in groundings:
        n = len(g.coords)
        tp = matched_point_count(contain[start : start + n])
        start += n
        fp, fn = n - tp, len(reference.masks) - tp
        denom = 2 * tp + fp + fn
        out.append(GroundingScore(2 * tp / denom if denom else 1.0, tp > 0 and fp == 0))
    return out


def score_groundings(pairs: Sequence[tuple[Grounding, ReferenceObject]]) -> list[GroundingScore]:
    """`score_grounding` over many (grounding, reference) pairs, the batch path the RL reward takes: all box
    pairs in one vectorised union-IoU call, point pairs in one containment lookup per reference object."""
    out: list[GroundingScore] = [GroundingScore(0.0, False)] * len(pairs)
    boxes = [i for i, (g, _) in enumerate(pairs) if g.kind == "box"]
    if boxes:
        preds = [pixel_from_norm_boxes(np.asarray(pairs[i][0].coords, dtype=np.float64), pairs[i][1].size[1],
                                       pairs[i][1].size[0]) for i in boxes]
        ious = union_box_ious(preds, [pairs[i][1].boxes for i in boxes])
        for i, iou in zip(boxes, ious.tolist(), strict=True):
            out[i] = GroundingScore(iou, iou >= BOX_VERIFIED_IOU)
    by_reference: dict[int, list[int]] = {}
    for i, (g, ref) in enumerate(pairs):
        if g.kind == "point":
            by_reference.setdefault(id(ref), []).append(i)
    for idx in by_reference.values():
        for i, score in zip(idx, _point_scores([pairs[i][0] for i in idx], pairs[idx[0]][1]), strict=True):
            out[i] = score
    return out


def score_grounding(grounding: Grounding, reference: ReferenceObject) -> GroundingScore:
    """Points: F1 of the one-to-one point-in-mask matching. Boxes: IoU of the unions."""
    if grounding.kind == "point":
        return _point_scores([grounding], reference)[0]
    height, width = reference.size
    iou = union_box_iou(pixel_from_norm_boxes(np.asarray(grounding.coords, dtype=np.float64), width, height),
                        reference.boxes)
    return GroundingScore(iou, iou >= BOX_VERIFIED_IOU)


def _routed_firsts(groundings: Sequence[Grounding], references: Sequence[ReferenceObject], text: str,
                   router: Router | None, max_groundings: int) -> tuple[list[Grounding], list[int | None]]:
    groundings = list(groundings)[:max_groundings]
    routes = (router or TextRouter()).route(groundings, [r.reference_name for r in references], text)
    return groundings, first_per_reference(routes, len(references))


Match = tuple[int | None, GroundingScore]


def reference_matches(groundings: Sequence[Grounding], references: Sequence[ReferenceObject], text: str = "", *,
                      router: Router | None = None, max_groundings: int = 32) -> list[Match]:
    """Per reference object: the index of the grounding that counts for it (the earliest routed) and its score.

    Only the first `max_groundings` tags are considered; an object no tag routes to gets (None, (0.0, False)).
    """
    groundings, first = _routed_firsts(groundings, references, text, router, max_groundings)
    scored = iter(score_groundings([(groundings[g], ref) for g, ref in zip(first, references, strict=True)
                                    if g is not None]))
    return [(g, GroundingScore(0.0, False) if g is None else next(scored)) for g in first]


def object_scores(groundings: Sequence[Grounding], references: Sequence[ReferenceObject], text: str = "", *,
                  router: Router | None = None, max_groundings: int = 32) -> list[float]:
    """One score per reference object: the earliest grounding routed to it, else 0."""
    matches = reference_matches(groundings, references, text, router=router, max_groundings=max_groundings)
    return [score.score for _, score in matches]


def sample_grounding_score(groundings: Sequence[Grounding], references: Sequence[ReferenceObject], text: str = "",
                           *, router: Router | None = None, max_groundings: int = 32) -> float | None:
    """Mean over reference objects (None when the sample has no reference objects to score)."""
    if not references:
        return None
    scores = object_scores(groundings, references, text, router=router, max_groundings=max_groundings)
    return float(np.mean(scores))


def batch_grounding_scores(groundings: Sequence[Sequence[Grounding]], references: Sequence[Sequence[ReferenceObject]],
                           texts: Sequence[str], *, router: Router | None = None,
                           max_groundings: int = 32) -> list[float | None]:
    """`sample_grounding_score` for a batch of completions, with every routed pair scored in one call."""
    firsts, pairs = [], []
    for gs, refs, text in zip(groundings, references, texts, strict=True):
        kept, first = _routed_firsts(gs, refs, text, router, max_groundings) if refs else ([], [])
        firsts.append(first)
        pairs += [(kept[g], ref) for g, ref in zip(first, refs, strict=True) if g is not None]
    scored = iter(score_groundings(pairs))
    out: list[float | None] = []
    for first in firsts:
        if not first:
            out.append(None)
            continue
        out.append(sum(0.0 if g is None else next(scored).score for g in first) / len(first))
    return out
