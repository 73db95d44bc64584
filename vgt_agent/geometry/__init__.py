"""Pixel/normalised coordinates, mask geometry, grounding metrics and COCO RLE.

This is the single home of coordinate normalisation: every other module converts between pixel space and
the model's 0..1000 space through these functions, because coordinate-space mismatches are the classic
cause of IoU rewards stuck near zero.

Conventions
-----------
* Pixel (col ``c``, row ``r``) covers ``[c, c+1) x [r, r+1)``; continuous pixel coordinates run over
  ``[0, W] x [0, H]``. A pixel index is turned into a point by adding 0.5.
* Normalised coordinates are ints in ``0..NORM``, ``[0, 0]`` top-left and ``[NORM, NORM]`` bottom-right,
  whatever the image size.
* Boxes are ``(x1, y1, x2, y2)``; a mask's box uses pixel edges, so a single pixel ``(c, r)`` has box
  ``(c, r, c+1, r+1)``.
* Rounding is Python's ``round`` / numpy's ``rint`` (half to even), identical in scalar and array forms.

Layout: `coords` (normalisation), `masks` (boxes, points, containment, mask IoU, RLE), `boxes` (box IoU and
union-of-boxes IoU), `matching` (points to masks).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vgt_agent.geometry.norm import NORM
from vgt_agent.lazy import lazy_getattr

# Everything but NORM loads on first use (coords and boxes: numpy; masks: scipy, pycocotools; matching: scipy),
# so `from vgt_agent.geometry import NORM` (the parser, the CLI) stays free of numpy.
_LAZY = {
    **dict.fromkeys(("Box", "NormBox", "norm_from_pixel_box", "norm_from_pixel_boxes", "norm_from_pixel_point",
                     "norm_from_pixel_points", "pixel_from_norm_box", "pixel_from_norm_boxes",
                     "pixel_from_norm_point", "pixel_from_norm_points"), "vgt_agent.geometry.coords"),
    **dict.fromkeys(("box_iou", "box_iou_matrix", "union_box_iou", "union_box_ious"), "vgt_agent.geometry.boxes"),
    **dict.fromkeys(("box_to_mask", "decode_rle", "encode_rle", "mask_iou", "mask_iou_matrix", "mask_to_box",
                     "mask_to_point", "masks_to_boxes", "point_in_mask", "points_in_masks", "rle_area"),
                    "vgt_agent.geometry.masks"),
    **dict.fromkeys(("PointMatch", "match_points_to_masks", "matched_point_count"), "vgt_agent.geometry.matching"),
}

if TYPE_CHECKING:
    from vgt_agent.geometry.boxes import box_iou, box_iou_matrix, union_box_iou, union_box_ious
    from vgt_agent.geometry.coords import (
        Box,
        NormBox,
        norm_from_pixel_box,
        norm_from_pixel_boxes,
        norm_from_pixel_point,
        norm_from_pixel_points,
        pixel_from_norm_box,
        pixel_from_norm_boxes,
        pixel_from_norm_point,
        pixel_from_norm_points,
    )
    from vgt_agent.geometry.masks import (
        box_to_mask,
        decode_rle,
        encode_rle,
        mask_iou,
        mask_iou_matrix,
        mask_to_box,
        mask_to_point,
        masks_to_boxes,
        point_in_mask,
        points_in_masks,
        rle_area,
    )
    from vgt_agent.geometry.matching import PointMatch, match_points_to_masks, matched_point_count

__all__ = [
    "NORM", "Box", "NormBox", "PointMatch", "box_iou", "box_iou_matrix", "box_to_mask", "decode_rle", "encode_rle",
    "mask_iou", "mask_iou_matrix", "mask_to_box", "mask_to_point", "masks_to_boxes", "match_points_to_masks",
    "matched_point_count", "norm_from_pixel_box", "norm_from_pixel_boxes", "norm_from_pixel_point",
    "norm_from_pixel_points", "pixel_from_norm_box", "pixel_from_norm_boxes", "pixel_from_norm_point",
    "pixel_from_norm_points", "point_in_mask", "points_in_masks", "rle_area", "union_box_iou", "union_box_ious",
]


__getattr__ = lazy_getattr(__name__, _LAZY)
