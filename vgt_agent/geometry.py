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
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pycocotools.mask as mask_utils
from numpy.typing import ArrayLike, NDArray
from scipy.ndimage import distance_transform_edt
from scipy.optimize import linear_sum_assignment

NORM = 1000

Box = tuple[float, float, float, float]
NormBox = tuple[int, int, int, int]

# float32 holds integer pixel counts exactly only up to 2**24; bigger masks fall back to float64.
_FLOAT32_EXACT = 2**24
# mask_to_point's exact tie-break squares offsets up to n * side; past this bound int64 could overflow.
_INT64_SAFE = 2**30
# Bitset popcount needs numpy >= 2; the temporary AND array is capped at this many uint64 words (32 MB).
_HAS_POPCOUNT = hasattr(np, "bitwise_count")
_POPCOUNT_CHUNK_WORDS = 2**22


# --------------------------------------------------------------------------------------------------------
# Normalisation
# --------------------------------------------------------------------------------------------------------


def _check_size(width: int, height: int) -> None:
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got width={width}, height={height}")


def _norm_scalar(v: float, size: int) -> int:
    if not math.isfinite(v):
        raise ValueError(f"coordinate must be finite, got {v}")
    return min(NORM, max(0, round(NORM * float(v) / size)))


def norm_from_pixel_point(x: float, y: float, width: int, height: int) -> tuple[int, int]:
    """Continuous pixel point -> normalised ints, clamped to 0..NORM (pass ``c + 0.5`` for pixel ``c``)."""
    _check_size(width, height)
    return _norm_scalar(x, width), _norm_scalar(y, height)


def pixel_from_norm_point(nx: float, ny: float, width: int, height: int) -> tuple[float, float]:
    """Normalised point -> continuous pixel point (no clamping: the inverse of the scaling only)."""
    _check_size(width, height)
    return float(nx) * width / NORM, float(ny) * height / NORM


def _widen(lo: int, hi: int) -> tuple[int, int]:
    """Make a collapsed normalised interval one unit wide, staying inside 0..NORM."""
    if lo < hi:
        return lo, hi
    return (lo, hi + 1) if hi < NORM else (lo - 1, hi)


def norm_from_pixel_box(box: ArrayLike, width: int, height: int) -> NormBox:
    """Pixel box -> normalised box with x1 < x2 and y1 < y2 guaranteed.

    A tiny box whose edges round to the same value is widened by one unit, so the model is never shown
    (or trained on) an invalid zero-width tag. Inverted boxes are a caller bug and raise ValueError.
    """
    _check_size(width, height)
    x1, y1, x2, y2 = (float(v) for v in np.asarray(box, dtype=np.float64).reshape(4))
    if x2 < x1 or y2 < y1:
        raise ValueError(f"inverted box {box}")
    nx1, nx2 = _widen(_norm_scalar(x1, width), _norm_scalar(x2, width))
    ny1, ny2 = _widen(_norm_scalar(y1, height), _norm_scalar(y2, height))
    return nx1, ny1, nx2, ny2


def pixel_from_norm_box(nbox: ArrayLike, width: int, height: int) -> Box:
    """Normalised box -> continuous pixel box."""
    _check_size(width, height)
    nx1, ny1, nx2, ny2 = (float(v) for v in np.asarray(nbox, dtype=np.float64).reshape(4))
    return nx1 * width / NORM, ny1 * height / NORM, nx2 * width / NORM, ny2 * height / NORM


def _as_rows(arr: ArrayLike, cols: int) -> NDArray[np.float64]:
    a = np.asarray(arr, dtype=np.float64)
    if a.size == 0:
        return a.reshape(0, cols)
    if a.ndim != 2 or a.shape[1] != cols:
        raise ValueError(f"expected an (N, {cols}) array, got shape {a.shape}")
    return a


def _norm_array(v: NDArray[np.float64], size: int) -> NDArray[np.int64]:
    if not np.all(np.isfinite(v)):
        raise ValueError("coordinates must be finite")
    return np.clip(np.rint(NORM * v / size), 0, NORM).astype(np.int64)


def norm_from_pixel_points(points: ArrayLike, width: int, height: int) -> NDArray[np.int64]:
    """(N, 2) pixel xy -> (N, 2) int64 normalised xy; same rounding as ``norm_from_pixel_point``."""
    _check_size(width, height)
    p = _as_rows(points, 2)
    return np.stack([_norm_array(p[:, 0], width), _norm_array(p[:, 1], height)], axis=1)


def pixel_from_norm_points(npoints: ArrayLike, width: int, height: int) -> NDArray[np.float64]:
    """(N, 2) normalised xy -> (N, 2) float pixel xy."""
    _check_size(width, height)
    p = _as_rows(npoints, 2)
    return p * np.array([width, height], dtype=np.float64) / NORM


def norm_from_pixel_boxes(boxes: ArrayLike, width: int, height: int) -> NDArray[np.int64]:
    """(N, 4) pixel boxes -> (N, 4) int64 normalised boxes, widened like ``norm_from_pixel_box``."""
    _check_size(width, height)
    b = _as_rows(boxes, 4)
    if np.any(b[:, 2] < b[:, 0]) or np.any(b[:, 3] < b[:, 1]):
        raise ValueError("inverted box in input")
    out = np.stack(
        [
            _norm_array(b[:, 0], width),
            _norm_array(b[:, 1], height),
            _norm_array(b[:, 2], width),
            _norm_array(b[:, 3], height),
        ],
        axis=1,
    )
    for lo, hi in ((0, 2), (1, 3)):
        collapsed = out[:, lo] >= out[:, hi]
        at_top = collapsed & (out[:, hi] >= NORM)
        out[collapsed & ~at_top, hi] += 1
        out[at_top, lo] -= 1
    return out


def pixel_from_norm_boxes(nboxes: ArrayLike, width: int, height: int) -> NDArray[np.float64]:
    """(N, 4) normalised boxes -> (N, 4) float pixel boxes."""
    _check_size(width, height)
    b = _as_rows(nboxes, 4)
    return b * np.array([width, height, width, height], dtype=np.float64) / NORM


# --------------------------------------------------------------------------------------------------------
# Masks -> boxes and points
# --------------------------------------------------------------------------------------------------------


def _as_mask(mask: ArrayLike) -> NDArray[np.bool_]:
    m = np.asarray(mask).astype(bool, copy=False)
    if m.ndim != 2:
        raise ValueError(f"expected an (H, W) mask, got shape {m.shape}")
    return m


def _as_masks(masks: ArrayLike) -> NDArray[np.bool_]:
    m = np.asarray(masks).astype(bool, copy=False)
    if m.ndim != 3:
        raise ValueError(f"expected an (N, H, W) mask stack, got shape {m.shape}")
    return m


def mask_to_box(mask: ArrayLike) -> Box:
    """Tight box of a mask in pixel edges: ``(cmin, rmin, cmax + 1, rmax + 1)``."""
    m = _as_mask(mask)
    rows = np.flatnonzero(m.any(axis=1))
    if rows.size == 0:
        raise ValueError("empty mask has no box")
    cols = np.flatnonzero(m.any(axis=0))
    return float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1)


def masks_to_boxes(masks: ArrayLike) -> NDArray[np.float64]:
    """Vectorised ``mask_to_box`` over an (N, H, W) stack -> (N, 4); any empty mask raises ValueError."""
    m = _as_masks(masks)
    n, h, w = m.shape
    if n == 0:
        return np.zeros((0, 4), dtype=np.float64)
    rows = m.any(axis=2)
    cols = m.any(axis=1)
    if not rows.any(axis=1).all():
        raise ValueError(f"empty mask(s) at index {np.flatnonzero(~rows.any(axis=1)).tolist()}")
    rmin = rows.argmax(axis=1)
    rmax = h - 1 - rows[:, ::-1].argmax(axis=1)
    cmin = cols.argmax(axis=1)
    cmax = w - 1 - cols[:, ::-1].argmax(axis=1)
    return np.stack([cmin, rmin, cmax + 1, rmax + 1], axis=1).astype(np.float64)


def box_to_mask(box: ArrayLike, height: int, width: int) -> NDArray[np.bool_]:
    """(H, W) mask of the pixels a pixel box covers (edges rounded outwards): a stand-in when only a box is known."""
    _check_size(width, height)
    x1, y1, x2, y2 = (float(v) for v in np.asarray(box, dtype=np.float64).reshape(4))
    mask = np.zeros((height, width), dtype=bool)
    c1, r1 = max(0, math.floor(x1)), max(0, math.floor(y1))
    c2, r2 = min(width, math.ceil(x2)), min(height, math.ceil(y2))
    mask[r1:r2, c1:c2] = True
    return mask


def mask_to_point(mask: ArrayLike) -> tuple[int, int]:
    """(col, row) of the mask pixel farthest from the mask boundary.

    Unlike the centroid this always lies on the object (rings, L- and C-shapes). The image border counts
    as boundary. Ties go to the maximum closest to the centroid of all maxima, then the lowest (row, col),
    so the result is deterministic and central along ridges.
    """
    x1, y1, x2, y2 = (int(v) for v in mask_to_box(mask))  # raises on an empty mask
    # Cropping to the tight box is exact: every pixel just outside it is background (or the image border),
    # and clamping any farther background pixel onto that ring only brings it closer.
    crop = _as_mask(mask)[y1:y2, x1:x2]
    dist = distance_transform_edt(np.pad(crop, 1))[1:-1, 1:-1]
    maxima = np.argwhere(dist == dist.max())  # row-major order: (row, col) ascending
    if len(maxima) == 1:
        r, c = maxima[0]
        return int(c) + x1, int(r) + y1
    n = len(maxima)
    # n^2 * squared distance to the centroid, in exact integers (object ints if int64 could overflow).
    coords = maxima.astype(np.int64)
    if n * max(crop.shape) > _INT64_SAFE:
        coords = coords.astype(object)
    offsets = n * coords - coords.sum(axis=0)
    d2 = (offsets**2).sum(axis=1)
    best = int(np.flatnonzero(d2 == d2.min())[0])
    r, c = maxima[best]
    return int(c) + x1, int(r) + y1


# --------------------------------------------------------------------------------------------------------
# Points in masks
# --------------------------------------------------------------------------------------------------------


def point_in_mask(x: float, y: float, mask: ArrayLike) -> bool:
    """Whether continuous point (x, y) falls in a mask pixel; points outside the image hit nothing."""
    m = _as_mask(mask)
    if not (math.isfinite(x) and math.isfinite(y)):
        return False
    c, r = math.floor(x), math.floor(y)
    h, w = m.shape
    return 0 <= c < w and 0 <= r < h and bool(m[r, c])


def points_in_masks(points: ArrayLike, masks: ArrayLike) -> NDArray[np.bool_]:
    """(N, 2) pixel xy against (M, H, W) masks -> (N, M) containment, same rule as ``point_in_mask``."""
    p = _as_rows(points, 2)
    m = _as_masks(masks)
    _, h, w = m.shape
    out = np.zeros((len(p), len(m)), dtype=bool)
    if len(p) == 0 or len(m) == 0:
        return out
    with np.errstate(invalid="ignore"):
        cols = np.floor(p[:, 0])
        rows = np.floor(p[:, 1])
        inside = (cols >= 0) & (cols < w) & (rows >= 0) & (rows < h)  # NaN compares False
    ci = cols[inside].astype(np.intp)
    ri = rows[inside].astype(np.intp)
    out[inside] = m[:, ri, ci].T
    return out


# --------------------------------------------------------------------------------------------------------
# Box IoU
# --------------------------------------------------------------------------------------------------------


def box_iou(a: ArrayLike, b: ArrayLike) -> float:
    """IoU of two boxes; degenerate boxes have zero area, and zero union gives 0.0."""
    return float(box_iou_matrix(np.reshape(a, (1, 4)), np.reshape(b, (1, 4)))[0, 0])


def _box_areas(b: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)


def box_iou_matrix(a: ArrayLike, b: ArrayLike) -> NDArray[np.float64]:
    """(N, 4) x (M, 4) boxes -> (N, M) IoU."""
    a_ = _as_rows(a, 4)
    b_ = _as_rows(b, 4)
    iw = np.minimum(a_[:, None, 2], b_[None, :, 2]) - np.maximum(a_[:, None, 0], b_[None, :, 0])
    ih = np.minimum(a_[:, None, 3], b_[None, :, 3]) - np.maximum(a_[:, None, 1], b_[None, :, 1])
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    union = _box_areas(a_)[:, None] + _box_areas(b_)[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def _single_iou(a: NDArray[np.float64], b: NDArray[np.float64]) -> float:
    """IoU of two non-degenerate boxes in plain floats (the common one-box-each case, no array temporaries)."""
    ax1, ay1, ax2, ay2 = a.tolist()
    bx1, by1, bx2, by2 = b.tolist()
    iw = min(ax2, bx2) - max(ax1, bx1)
    ih = min(ay2, by2) - max(ay1, by1)
    inter = iw * ih if iw > 0 and ih > 0 else 0.0
    return inter / ((ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter)


def _cover_counts(boxes: NDArray[np.float64], mx: NDArray[np.float64], my: NDArray[np.float64]) -> NDArray:
    """How many boxes cover each cell of the compressed grid, tested at the cell midpoints (mx, my).

    Every cell lies wholly inside or outside each box, so its midpoint decides (only a cell one float ulp
    wide could be misjudged, an area below rounding error); one small matmul counts the boxes over all
    cells at once, with no per-box Python loop.
    """
    in_x = (boxes[:, 0:1] < mx) & (mx < boxes[:, 2:3])  # (n, nx)
    in_y = (boxes[:, 1:2] < my) & (my < boxes[:, 3:4])  # (n, ny)
    return in_y.T.astype(np.float64) @ in_x.astype(np.float64)  # (ny, nx)


def union_box_iou(pred: ArrayLike, ref: ArrayLike) -> float:
    """Exact IoU between the union of pred boxes and the union of ref boxes (the box grounding reward).

    Coordinate compression over all box edges makes every grid cell either fully inside or fully outside
    each box, so areas are exact rather than rasterised. A side is "empty" when its union has zero area
    (no boxes, or only degenerate ones): both empty -> 1.0, exactly one empty -> 0.0. One box on each side
    (the usual case) takes a scalar path.
    """
    p = _as_rows(pred, 4)
    r = _as_rows(ref, 4)
    p = p[(p[:, 2] > p[:, 0]) & (p[:, 3] > p[:, 1])]
    r = r[(r[:, 2] > r[:, 0]) & (r[:, 3] > r[:, 1])]
    if len(p) == 0 or len(r) == 0:
        return 1.0 if len(p) == len(r) else 0.0
    if len(p) == 1 and len(r) == 1:
        return _single_iou(p[0], r[0])
    both = np.concatenate([p, r])
    xs = np.unique(both[:, 0::2])
    ys = np.unique(both[:, 1::2])
    mx, my = 0.5 * (xs[1:] + xs[:-1]), 0.5 * (ys[1:] + ys[:-1])
    cell = np.diff(ys)[:, None] * np.diff(xs)[None, :]
    cp = _cover_counts(p, mx, my) > 0
    cr = _cover_counts(r, mx, my) > 0
    inter = float(cell[cp & cr].sum())
    union = float(cell[cp | cr].sum())
    return inter / union


_BATCH_CHUNK = 256  # pairs per padded block in union_box_ious (pairs are sorted by size, so padding stays small)


def union_box_ious(preds: Sequence[ArrayLike], refs: Sequence[ArrayLike]) -> NDArray[np.float64]:
    """`union_box_iou` of many (pred boxes, ref boxes) pairs at once: the box reward of a whole batch.

    Same conventions and the same compressed-grid construction, vectorised over pairs: each pair's boxes are
    padded with empty boxes to its block's size (an empty box covers no cell), edges are sorted per pair,
    and one batched matmul counts the boxes over every cell of every pair.
    """
    if len(preds) != len(refs):
        raise ValueError(f"{len(preds)} pred box sets for {len(refs)} ref box sets")
    p_list = [_as_rows(p, 4) for p in preds]
    r_list = [_as_rows(r, 4) for r in refs]
    out = np.zeros(len(p_list), dtype=np.float64)
    order = sorted(range(len(p_list)), key=lambda i: len(p_list[i]) + len(r_list[i]))
    for start in range(0, len(order), _BATCH_CHUNK):
        idx = order[start : start + _BATCH_CHUNK]
        out[idx] = _union_box_iou_block([p_list[i] for i in idx], [r_list[i] for i in idx])
    return out


def _union_box_iou_block(p_list: list[NDArray[np.float64]], r_list: list[NDArray[np.float64]]) -> NDArray:
    n = len(p_list)
    kp = max(1, max(len(p) for p in p_list))
    kr = max(1, max(len(r) for r in r_list))
    boxes = np.zeros((n, kp + kr, 4), dtype=np.float64)
    for b, (p, r) in enumerate(zip(p_list, r_list, strict=True)):
        boxes[b, : len(p)] = p
        boxes[b, kp : kp + len(r)] = r
    valid = (boxes[:, :, 2] > boxes[:, :, 0]) & (boxes[:, :, 3] > boxes[:, :, 1])
    has_p, has_r = valid[:, :kp].any(axis=1), valid[:, kp:].any(axis=1)
    xs = np.sort(np.concatenate([boxes[:, :, 0], boxes[:, :, 2]], axis=1), axis=1)
    ys = np.sort(np.concatenate([boxes[:, :, 1], boxes[:, :, 3]], axis=1), axis=1)
    mx, my = 0.5 * (xs[:, 1:] + xs[:, :-1]), 0.5 * (ys[:, 1:] + ys[:, :-1])
    in_x = (boxes[:, :, 0:1] < mx[:, None, :]) & (mx[:, None, :] < boxes[:, :, 2:3])  # (n, k, cells_x)
    in_y = (boxes[:, :, 1:2] < my[:, None, :]) & (my[:, None, :] < boxes[:, :, 3:4])  # (n, k, cells_y)
    fx, fy = in_x.astype(np.float32), in_y.astype(np.float32).transpose(0, 2, 1)
    cp = (fy[:, :, :kp] @ fx[:, :kp]) > 0  # (n, cells_y, cells_x): some pred box covers the cell
    cr = (fy[:, :, kp:] @ fx[:, kp:]) > 0
    cell = np.diff(ys, axis=1)[:, :, None] * np.diff(xs, axis=1)[:, None, :]
    inter = (cell * (cp & cr)).sum(axis=(1, 2))
    union = (cell * (cp | cr)).sum(axis=(1, 2))
    iou = np.divide(inter, union, out=np.zeros(n), where=union > 0)
    return np.where(has_p & has_r, iou, (has_p == has_r).astype(np.float64))


# --------------------------------------------------------------------------------------------------------
# Mask IoU
# --------------------------------------------------------------------------------------------------------


def mask_iou(a: ArrayLike, b: ArrayLike) -> float:
    """IoU of two same-sized masks; two empty masks give 0.0."""
    a_ = _as_mask(a)
    b_ = _as_mask(b)
    if a_.shape != b_.shape:
        raise ValueError(f"mask shapes differ: {a_.shape} vs {b_.shape}")
    union = int(np.count_nonzero(a_ | b_))
    return int(np.count_nonzero(a_ & b_)) / union if union else 0.0


def _pack_bits(masks: NDArray[np.bool_]) -> NDArray[np.uint64]:
    """(N, H, W) bool -> (N, words) uint64 bitsets, zero-padded to whole words."""
    packed = np.packbits(masks.reshape(len(masks), masks.shape[1] * masks.shape[2]), axis=1)
    pad = -packed.shape[1] % 8
    if pad:
        packed = np.pad(packed, ((0, 0), (0, pad)))
    return np.ascontiguousarray(packed).view(np.uint64)


Overlaps = tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]


def _overlaps_popcount(a: NDArray[np.bool_], b: NDArray[np.bool_]) -> Overlaps:
    """(intersections (N, M), areas (N,), areas (M,)) by AND + popcount on bitsets: exact, 64 px per op."""
    pa, pb = _pack_bits(a), _pack_bits(b)
    inter = np.zeros((len(a), len(b)), dtype=np.int64)
    if inter.size and pa.shape[1]:
        step = max(1, _POPCOUNT_CHUNK_WORDS // (len(b) * pa.shape[1]))  # bound the (chunk, M, words) temp
        for start in range(0, len(a), step):
            both = pa[start : start + step, None, :] & pb[None, :, :]
            inter[start : start + step] = np.bitwise_count(both).sum(axis=2, dtype=np.int64)
    area_a = np.bitwise_count(pa).sum(axis=1, dtype=np.int64)
    area_b = np.bitwise_count(pb).sum(axis=1, dtype=np.int64)
    return inter, area_a, area_b


def _overlaps_matmul(a: NDArray[np.bool_], b: NDArray[np.bool_]) -> Overlaps:
    """The same counts by one BLAS matmul (numpy < 2 has no popcount)."""
    pixels = a.shape[1] * a.shape[2]
    dtype = np.float32 if pixels <= _FLOAT32_EXACT else np.float64
    fa = a.reshape(len(a), pixels).astype(dtype)
    fb = b.reshape(len(b), pixels).astype(dtype)
    inter = np.rint(fa @ fb.T).astype(np.int64)
    return inter, np.count_nonzero(fa, axis=1).astype(np.int64), np.count_nonzero(fb, axis=1).astype(np.int64)


def mask_iou_matrix(a: ArrayLike, b: ArrayLike) -> NDArray[np.float64]:
    """(N, H, W) x (M, H, W) masks -> (N, M) IoU, vectorised; empty-vs-empty pairs give 0.0.

    Overlaps come from bitset popcounts (exact, and several times faster than a float32 matmul at
    448x448); numpy < 2 falls back to the matmul.
    """
    a_ = _as_masks(a)
    b_ = _as_masks(b)
    if a_.shape[1:] != b_.shape[1:]:
        raise ValueError(f"mask sizes differ: {a_.shape[1:]} vs {b_.shape[1:]}")
    inter, area_a, area_b = (_overlaps_popcount if _HAS_POPCOUNT else _overlaps_matmul)(a_, b_)
    union = area_a[:, None] + area_b[None, :] - inter
    out = np.zeros(inter.shape, dtype=np.float64)
    return np.divide(inter, union, out=out, where=union > 0)


# --------------------------------------------------------------------------------------------------------
# Point matching (the point grounding reward)
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PointMatch:
    """A maximum one-to-one assignment of points to masks that contain them."""

    pairs: tuple[tuple[int, int], ...]
    unmatched_points: tuple[int, ...]
    unmatched_masks: tuple[int, ...]

    @property
    def tp(self) -> int:
        return len(self.pairs)

    @property
    def fp(self) -> int:
        return len(self.unmatched_points)

    @property
    def fn(self) -> int:
        return len(self.unmatched_masks)

    @property
    def f1(self) -> float:
        """2TP / (2TP + FP + FN); no points and no masks is a perfect 1.0."""
        denom = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / denom if denom else 1.0


def matched_point_count(contain: ArrayLike) -> int:
    """Size of a maximum one-to-one matching in an (N points, M masks) containment matrix.

    The same number `match_points_to_masks(...).tp` gives, without building the pairs. Two exact shortcuts
    cover the usual cases: when no point lies in two masks the answer is the number of masks hit, and when
    no mask holds two points it is the number of points that hit something; only contested points need the
    assignment solver.
    """
    c = np.asarray(contain, dtype=bool)
    if c.ndim != 2:
        raise ValueError(f"expected an (N, M) containment matrix, got shape {c.shape}")
    if c.size == 0:
        return 0
    per_point = c.sum(axis=1)
    if per_point.max() <= 1:
        return int(np.count_nonzero(c.any(axis=0)))
    if c.sum(axis=0).max() <= 1:
        return int(np.count_nonzero(per_point))
    rows, cols = linear_sum_assignment(c, maximize=True)
    return int(c[rows, cols].sum())


def match_points_to_masks(points: ArrayLike, masks: ArrayLike) -> PointMatch:
    """Maximum bipartite matching of points to containing masks.

    Greedy assignment undercounts when masks overlap (a point inside two masks could steal the only mask
    another point hits); maximising total containment with ``linear_sum_assignment`` avoids that.
    """
    contain = points_in_masks(points, masks)
    n, m = contain.shape
    pairs: list[tuple[int, int]] = []
    if n and m and contain.any():
        rows, cols = linear_sum_assignment(contain, maximize=True)
        pairs = [(int(i), int(j)) for i, j in zip(rows, cols, strict=True) if contain[i, j]]
    matched_p = {i for i, _ in pairs}
    matched_m = {j for _, j in pairs}
    return PointMatch(
        pairs=tuple(pairs),
        unmatched_points=tuple(i for i in range(n) if i not in matched_p),
        unmatched_masks=tuple(j for j in range(m) if j not in matched_m),
    )


# --------------------------------------------------------------------------------------------------------
# COCO RLE
# --------------------------------------------------------------------------------------------------------


def encode_rle(mask: ArrayLike) -> dict[str, Any]:
    """Mask -> JSON-able compressed COCO RLE ``{"size": [h, w], "counts": str}``."""
    m = _as_mask(mask)
    rle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def _coco_rle(rle: Mapping[str, Any]) -> dict[str, Any]:
    """Accept str/bytes compressed counts or uncompressed list counts; return pycocotools' form."""
    h, w = (int(v) for v in rle["size"])
    counts = rle["counts"]
    if isinstance(counts, list):
        return mask_utils.frPyObjects({"size": [h, w], "counts": counts}, h, w)
    if isinstance(counts, str):
        counts = counts.encode("ascii")
    return {"size": [h, w], "counts": counts}


def decode_rle(rle: Mapping[str, Any]) -> NDArray[np.bool_]:
    """COCO RLE -> (H, W) bool mask."""
    with warnings.catch_warnings():
        # pycocotools' Cython RLE object predates numpy 2's `copy=` protocol; the warning is harmless noise.
        warnings.filterwarnings("ignore", message="__array__ implementation", category=DeprecationWarning)
        return mask_utils.decode(_coco_rle(rle)).astype(bool)


def rle_area(rle: Mapping[str, Any]) -> int:
    """Foreground pixel count of a COCO RLE without decoding it."""
    return int(mask_utils.area(_coco_rle(rle)))
