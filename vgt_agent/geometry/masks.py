"""Masks: their boxes and most interior points, point-in-mask tests, mask IoU, and COCO RLE storage."""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import pycocotools.mask as mask_utils
from numpy.typing import ArrayLike, NDArray
from scipy.ndimage import distance_transform_edt

from vgt_agent.geometry.coords import Box, as_rows, check_size

# float32 holds integer pixel counts exactly only up to 2**24; bigger masks fall back to float64.
_FLOAT32_EXACT = 2**24
# mask_to_point's exact tie-break squares offsets up to n * side; past this bound int64 could overflow.
_INT64_SAFE = 2**30
# Bitset popcount needs numpy >= 2; the temporary AND array is capped at this many uint64 words (32 MB).
_HAS_POPCOUNT = hasattr(np, "bitwise_count")
_POPCOUNT_CHUNK_WORDS = 2**22


# --------------------------------------------------------------------------------------------------------
# Masks -> boxes and points
# --------------------------------------------------------------------------------------------------------


def as_mask(mask: ArrayLike) -> NDArray[np.bool_]:
    m = np.asarray(mask).astype(bool, copy=False)
    if m.ndim != 2:
        raise ValueError(f"expected an (H, W) mask, got shape {m.shape}")
    return m


def as_masks(masks: ArrayLike) -> NDArray[np.bool_]:
    m = np.asarray(masks).astype(bool, copy=False)
    if m.ndim != 3:
        raise ValueError(f"expected an (N, H, W) mask stack, got shape {m.shape}")
    return m


def mask_to_box(mask: ArrayLike) -> Box:
    """Tight box of a mask in pixel edges: ``(cmin, rmin, cmax + 1, rmax + 1)``."""
    m = as_mask(mask)
    rows = np.flatnonzero(m.any(axis=1))
    if rows.size == 0:
        raise ValueError("empty mask has no box")
    cols = np.flatnonzero(m.any(axis=0))
    return float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1)


def masks_to_boxes(masks: ArrayLike) -> NDArray[np.float64]:
    """Vectorised ``mask_to_box`` over an (N, H, W) stack -> (N, 4); any empty mask raises ValueError."""
    m = as_masks(masks)
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
    check_size(width, height)
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
    crop = as_mask(mask)[y1:y2, x1:x2]
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
    m = as_mask(mask)
    if not (math.isfinite(x) and math.isfinite(y)):
        return False
    c, r = math.floor(x), math.floor(y)
    h, w = m.shape
    return 0 <= c < w and 0 <= r < h and bool(m[r, c])


def points_in_masks(points: ArrayLike, masks: ArrayLike) -> NDArray[np.bool_]:
    """(N, 2) pixel xy against (M, H, W) masks -> (N, M) containment, same rule as ``point_in_mask``."""
    p = as_rows(points, 2)
    m = as_masks(masks)
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
# Mask IoU
# --------------------------------------------------------------------------------------------------------


def mask_iou(a: ArrayLike, b: ArrayLike) -> float:
    """IoU of two same-sized masks; two empty masks give 0.0."""
    a_ = as_mask(a)
    b_ = as_mask(b)
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
    a_ = as_masks(a)
    b_ = as_masks(b)
    if a_.shape[1:] != b_.shape[1:]:
        raise ValueError(f"mask sizes differ: {a_.shape[1:]} vs {b_.shape[1:]}")
    inter, area_a, area_b = (_overlaps_popcount if _HAS_POPCOUNT else _overlaps_matmul)(a_, b_)
    union = area_a[:, None] + area_b[None, :] - inter
    out = np.zeros(inter.shape, dtype=np.float64)
    return np.divide(inter, union, out=out, where=union > 0)


# --------------------------------------------------------------------------------------------------------
# COCO RLE
# --------------------------------------------------------------------------------------------------------


def encode_rle(mask: ArrayLike) -> dict[str, Any]:
    """Mask -> JSON-able compressed COCO RLE ``{"size": [h, w], "counts": str}``."""
    m = as_mask(mask)
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
