"""Box IoU, and the exact IoU of two unions of boxes (the box grounding reward)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from vgt_agent.geometry.coords import as_rows

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
    a_ = as_rows(a, 4)
    b_ = as_rows(b, 4)
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
    p = as_rows(pred, 4)
    r = as_rows(ref, 4)
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
    p_list = [as_rows(p, 4) for p in preds]
    r_list = [as_rows(r, 4) for r in refs]
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
