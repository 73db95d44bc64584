"""Rasterise one shape into a small local mask (hard edges) or coverage map (anti-aliased).

Hard-edged objects are drawn from these masks, so "the object's pixels" and "the object's mask" are the same
set by construction; anti-aliased ones are blended by coverage and their mask is the >= 50% coverage set.
Working in a local crop (not the full image) keeps placement and rendering fast.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

# Inner/outer radius ratios: thick enough that a small ring or star stays a solid, readable shape.
STAR_INNER = 0.45
RING_INNER = 0.55
# Shapes drawn upright with a little tilt; circles and rings are rotation invariant.
MAX_TILT_DEGREES: dict[str, float] = {
    "circle": 0.0, "ring": 0.0, "square": 15.0, "triangle": 15.0, "star": 15.0, "hexagon": 15.0,
}
_PAD = 2  # background pixels around the shape inside its local canvas


def _polygon(n: int, cx: float, cy: float, r: float, start_deg: float) -> list[tuple[float, float]]:
    step = 2 * math.pi / n
    a0 = math.radians(start_deg)
    return [(cx + r * math.cos(a0 + i * step), cy + r * math.sin(a0 + i * step)) for i in range(n)]


def _star(cx: float, cy: float, r: float, start_deg: float) -> list[tuple[float, float]]:
    a0 = math.radians(start_deg)
    pts = []
    for i in range(10):
        rad = r if i % 2 == 0 else r * STAR_INNER
        a = a0 + i * math.pi / 5
        pts.append((cx + rad * math.cos(a), cy + rad * math.sin(a)))
    return pts


def _largest_component(mask: np.ndarray) -> np.ndarray:
    """Drop stray pixels that touch the shape only diagonally (thin star tips), so it is 4-connected."""
    from scipy import ndimage  # here, not at the top: importing the world (the CLI) needs no scipy

    labels, n = ndimage.label(mask)
    if n <= 1:
        return mask
    sizes = np.bincount(labels.ravel())[1:]
    return labels == (int(np.argmax(sizes)) + 1)


def shape_mask(
    shape: str, cx: float, cy: float, radius: float, tilt: float = 0.0, connected: bool = True
) -> tuple[np.ndarray, int, int]:
    """Mask of a shape centred at continuous pixel point (cx, cy) with bounding-circle `radius`.

    Returns (mask, x0, y0): the bool mask covers image columns x0.. and rows y0.., and may extend past the
    image border (callers keep shapes inside). The mask is one 4-connected component unless `connected` is
    False (a quick footprint for overlap tests).
    """
    x0 = math.floor(cx - radius) - _PAD
    y0 = math.floor(cy - radius) - _PAD
    side = math.ceil(2 * radius) + 2 * _PAD + 1
    canvas = Image.new("L", (side, side), 0)
    # Pillow addresses pixel centres by integer coordinates; geometry puts them at +0.5.
    _draw_shape(ImageDraw.Draw(canvas), shape, cx - 0.5 - x0, cy - 0.5 - y0, radius, tilt, 1)
    mask = np.asarray(canvas, dtype=np.uint8).astype(bool)
    return (_largest_component(mask) if connected else mask), x0, y0


def shape_coverage(
    shape: str, cx: float, cy: float, radius: float, tilt: float = 0.0, supersample: int = 4
) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Anti-aliased shape: (coverage, mask, x0, y0), coverage the float32 fraction of each pixel the shape
    covers (rasterised at `supersample` x and box-filtered), mask the pixels covered by >= half of it, kept as
    one 4-connected component (pixels dropped from the mask get coverage just under half)."""
    x0 = math.floor(cx - radius) - _PAD
    y0 = math.floor(cy - radius) - _PAD
    side = math.ceil(2 * radius) + 2 * _PAD + 1
    s = supersample
    if not 1 <= s <= 15:
        raise ValueError(f"supersample must be 1..15, got {s}")
    canvas = Image.new("L", (side * s, side * s), 0)
    # Pillow fills every sub-pixel its outline touches, half a sub-pixel beyond the true edge: inset by that.
    # Sub-pixels hold s*s, so Pillow's box reduction yields the covered count exactly (an integer mean).
    draw = ImageDraw.Draw(canvas)
    _draw_shape(draw, shape, (cx - x0) * s - 0.5, (cy - y0) * s - 0.5, radius * s, tilt, s * s, 0.5)
    counts = np.asarray(canvas.reduce(s), dtype=np.float32)
    coverage = counts / np.float32(s * s)
    raw = coverage >= 0.5
    mask = _largest_component(raw)
    coverage[raw & ~mask] = 0.49
    return coverage, mask, x0, y0


def _draw_shape(draw: ImageDraw.ImageDraw, shape: str, lx: float, ly: float, radius: float, tilt: float,
                fill: int, inset: float = 0.0) -> None:
    """Draw `shape` centred at canvas point (lx, ly) in Pillow's pixel-centre coordinates, its edges moved
    `inset` canvas pixels inwards."""
    up = -90.0 + tilt
    inner = radius * RING_INNER
    radius = radius - inset
    if shape == "circle":
        draw.ellipse([lx - radius, ly - radius, lx + radius, ly + radius], fill=fill)
    elif shape == "ring":
        draw.ellipse([lx - radius, ly - radius, lx + radius, ly + radius], fill=fill)
        draw.ellipse([lx - inner, ly - inner, lx + inner, ly + inner], fill=0)
    elif shape == "square":
        draw.polygon(_polygon(4, lx, ly, radius, up + 45.0), fill=fill)
    elif shape == "triangle":
        draw.polygon(_polygon(3, lx, ly, radius, up), fill=fill)
    elif shape == "hexagon":
        draw.polygon(_polygon(6, lx, ly, radius, tilt), fill=fill)
    elif shape == "star":
        draw.polygon(_star(lx, ly, radius, up), fill=fill)
    else:
        raise ValueError(f"unknown shape {shape!r}")
