"""Pixel <-> normalised 0..1000 coordinates: the one place normalisation lives (see the package docstring)."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

from vgt_agent.geometry.norm import NORM

__all__ = ["NORM"]  # and the functions below

Box = tuple[float, float, float, float]
NormBox = tuple[int, int, int, int]


# --------------------------------------------------------------------------------------------------------
# Normalisation
# --------------------------------------------------------------------------------------------------------


def check_size(width: int, height: int) -> None:
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got width={width}, height={height}")


def _norm_scalar(v: float, size: int) -> int:
    if not math.isfinite(v):
        raise ValueError(f"coordinate must be finite, got {v}")
    return min(NORM, max(0, round(NORM * float(v) / size)))


def norm_from_pixel_point(x: float, y: float, width: int, height: int) -> tuple[int, int]:
    """Continuous pixel point -> normalised ints, clamped to 0..NORM (pass ``c + 0.5`` for pixel ``c``)."""
    check_size(width, height)
    return _norm_scalar(x, width), _norm_scalar(y, height)


def pixel_from_norm_point(nx: float, ny: float, width: int, height: int) -> tuple[float, float]:
    """Normalised point -> continuous pixel point (no clamping: the inverse of the scaling only)."""
    check_size(width, height)
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
    check_size(width, height)
    x1, y1, x2, y2 = (float(v) for v in np.asarray(box, dtype=np.float64).reshape(4))
    if x2 < x1 or y2 < y1:
        raise ValueError(f"inverted box {box}")
    nx1, nx2 = _widen(_norm_scalar(x1, width), _norm_scalar(x2, width))
    ny1, ny2 = _widen(_norm_scalar(y1, height), _norm_scalar(y2, height))
    return nx1, ny1, nx2, ny2


def pixel_from_norm_box(nbox: ArrayLike, width: int, height: int) -> Box:
    """Normalised box -> continuous pixel box."""
    check_size(width, height)
    nx1, ny1, nx2, ny2 = (float(v) for v in np.asarray(nbox, dtype=np.float64).reshape(4))
    return nx1 * width / NORM, ny1 * height / NORM, nx2 * width / NORM, ny2 * height / NORM


def as_rows(arr: ArrayLike, cols: int) -> NDArray[np.float64]:
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
    check_size(width, height)
    p = as_rows(points, 2)
    return np.stack([_norm_array(p[:, 0], width), _norm_array(p[:, 1], height)], axis=1)


def pixel_from_norm_points(npoints: ArrayLike, width: int, height: int) -> NDArray[np.float64]:
    """(N, 2) normalised xy -> (N, 2) float pixel xy."""
    check_size(width, height)
    p = as_rows(npoints, 2)
    return p * np.array([width, height], dtype=np.float64) / NORM


def norm_from_pixel_boxes(boxes: ArrayLike, width: int, height: int) -> NDArray[np.int64]:
    """(N, 4) pixel boxes -> (N, 4) int64 normalised boxes, widened like ``norm_from_pixel_box``."""
    check_size(width, height)
    b = as_rows(boxes, 4)
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
    check_size(width, height)
    b = as_rows(nboxes, 4)
    return b * np.array([width, height, width, height], dtype=np.float64) / NORM
