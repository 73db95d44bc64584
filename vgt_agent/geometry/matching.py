"""One-to-one assignment of points to the masks that contain them (the point grounding reward)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import linear_sum_assignment

from vgt_agent.geometry.masks import points_in_masks

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
