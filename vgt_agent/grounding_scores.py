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
from itertools import accumulate
from typing import NamedTuple

import numpy as np

from vgt_agent.format import Grounding, stacked_coords
from vgt_agent.geometry import (
    NORM,
    decode_rle,
    masks_to_boxes,
    matched_point_count,
    pixel_from_norm_boxes,
    points_in_masks,
    union_box_iou,
    union_box_ious,
)
from vgt_agent.reference_routing import ReferenceName, Router, TextRouter, first_per_reference

# A point grounding is "verified" when every point lands on a distinct instance; a box when IoU >= this.
BOX_VERIFIED_IOU = 0.5
_TEXT_ROUTER = TextRouter()


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


def _pixel_coords(pairs: Sequence[tuple[Grounding, ReferenceObject]]) -> tuple[np.ndarray, list[int]]:
    """The instances of these groundings (all of one kind) in their reference's pixels, stacked, and each one's
    count: `pixel_from_norm_points` / `pixel_from_norm_boxes` (the same arithmetic) in one array operation."""
    coords, sizes = stacked_coords([g for g, _ in pairs])
    arity = coords.shape[1]
    scale = np.array([(w, h) * (arity // 2) for h, w in (ref.size for _, ref in pairs)], dtype=np.float64)
    return coords * np.repeat(scale.reshape(-1, arity), sizes, axis=0) / NORM, sizes


def _point_scores(pairs: Sequence[tuple[Grounding, ReferenceObject]]) -> list[GroundingScore]:
    """Point groundings against their references: one containment lookup per reference object, then every
    grounding's F1 (exactly geometry.PointMatch.f1, without building the pairs) from one set of array operations.
    """
    groups: dict[int, list[int]] = {}  # reference -> its pairs, so each reference's points are contiguous
    for i, (_, ref) in enumerate(pairs):
        groups.setdefault(id(ref), []).append(i)
    order = [i for idx in groups.values() for i in idx]
    pixels, sizes = _pixel_coords([pairs[i] for i in order])
    n_masks = [len(pairs[i][1].masks) for i in order]
    contain = np.zeros((len(pixels), max(n_masks)), dtype=bool)  # no mask columns past a reference's own
    row_ends = list(accumulate(sizes, initial=0))
    position = 0
    for idx in groups.values():
        rows = slice(row_ends[position], row_ends[position + len(idx)])
        masks = pairs[idx[0]][1].masks
        contain[rows, : len(masks)] = points_in_masks(pixels[rows], masks)
        position += len(idx)
    out: list[GroundingScore] = [GroundingScore(0.0, False)] * len(pairs)
    for i, n, m, tp in zip(order, sizes, n_masks, _matched_point_counts(contain, sizes), strict=True):
        fp, fn = n - tp, m - tp
        denom = 2 * tp + fp + fn
        out[i] = GroundingScore(2 * tp / denom if denom else 1.0, tp > 0 and fp == 0)
    return out


def _matched_point_counts(contain: np.ndarray, sizes: Sequence[int]) -> list[int]:
    """`matched_point_count` of each consecutive block of `sizes` rows (>= 1 each) of one containment matrix:
    its two exact shortcuts evaluated for every block at once, the assignment solver only for contested ones.
    All-False columns change no block's count, so blocks against fewer masks can share the matrix."""
    if contain.shape[1] == 0:
        return [0] * len(sizes)
    starts = np.cumsum([0, *sizes[:-1]])
    per_point = contain.sum(axis=1)
    one_mask_per_point = np.maximum.reduceat(per_point, starts) <= 1
    one_point_per_mask = np.add.reduceat(contain, starts, axis=0, dtype=np.int64).max(axis=1) <= 1
    masks_hit = np.logical_or.reduceat(contain, starts, axis=0).sum(axis=1)
    points_hitting = np.add.reduceat(per_point > 0, starts, dtype=np.int64)
    counts = np.where(one_mask_per_point, masks_hit, points_hitting).tolist()
    for k in np.flatnonzero(~one_mask_per_point & ~one_point_per_mask).tolist():
        counts[k] = matched_point_count(contain[starts[k] : starts[k] + sizes[k]])
    return counts


def score_groundings(pairs: Sequence[tuple[Grounding, ReferenceObject]]) -> list[GroundingScore]:
    """`score_grounding` over many (grounding, reference) pairs, the batch path the RL reward takes: all box
    pairs in one vectorised union-IoU call, all point pairs in one containment lookup per reference object."""
    out: list[GroundingScore] = [GroundingScore(0.0, False)] * len(pairs)
    boxes = [i for i, (g, _) in enumerate(pairs) if g.kind == "box"]
    if boxes:
        pixels, sizes = _pixel_coords([pairs[i] for i in boxes])
        preds = [pixels[end - n : end] for n, end in zip(sizes, accumulate(sizes), strict=True)]
        ious = union_box_ious(preds, [pairs[i][1].boxes for i in boxes])
        for i, iou in zip(boxes, ious.tolist(), strict=True):
            out[i] = GroundingScore(iou, iou >= BOX_VERIFIED_IOU)
    points = [i for i, (g, _) in enumerate(pairs) if g.kind == "point"]
    if points:
        for i, score in zip(points, _point_scores([pairs[i] for i in points]), strict=True):
            out[i] = score
    return out


def score_grounding(grounding: Grounding, reference: ReferenceObject) -> GroundingScore:
    """Points: F1 of the one-to-one point-in-mask matching. Boxes: IoU of the unions."""
    if grounding.kind == "point":
        return _point_scores([(grounding, reference)])[0]
    height, width = reference.size
    iou = union_box_iou(pixel_from_norm_boxes(np.asarray(grounding.coords, dtype=np.float64), width, height),
                        reference.boxes)
    return GroundingScore(iou, iou >= BOX_VERIFIED_IOU)


def _routed_firsts(groundings: Sequence[Grounding], references: Sequence[ReferenceObject], text: str,
                   router: Router | None, max_groundings: int) -> tuple[list[Grounding], list[int | None]]:
    groundings = list(groundings[:max_groundings])
    routes = (router or _TEXT_ROUTER).route(groundings, [r.reference_name for r in references], text)
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
