"""Which world shape and size a colour region is: fit every shape template, occlusion-aware.

Why templates rather than thresholds on solidity or corner counts: a partly hidden object keeps few of its
global statistics, but whatever of its outline is visible still lies on its template, and the pixels that
hide the rest are known (they have another palette colour). So each template is scored only against what
is seen: the region's pixels must lie inside it, background pixels outside it, and pixels of other objects
may be either. The world's shapes are regular (n-gons, a 5-point star, a ring) with three known sizes, so a
template is fixed by shape, size, centre and rotation; rotation is searched over the shape's whole
symmetry period, so nothing here assumes the generator's upright orientation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from vgt_agent.world.palette import SIZES
from vgt_agent.world.shapes import RING_INNER, STAR_INNER

# Pillow fills polygons and ellipses including their outline: the drawn shape is this much larger (px).
RASTER_BIAS = 0.4
# Worst rasterisation error (px) of a pixel centre against the biased outline; used only to prune
# hypotheses. The cost itself has no dead zone: rasterisation noise scatters on both sides of the true
# outline and costs every template alike, while a wrong template's error is systematic (a small hexagon
# and a circle differ by only ~2 px, which a tolerance of a pixel would hide).
PIXEL_SLACK = 1.2
# Below this visible fraction a hypothesis is implausible (the world keeps objects >= 60% visible).
MIN_VISIBLE = 0.5
HIDDEN_COST = 0.05
COARSE_TILT_DEG = 5.0
# Coarse hypotheses costing up to twice the best plus this are refined; the rest are too far behind.
REFINE_MARGIN = 0.5


@dataclass(frozen=True)
class Template:
    """A shape with unit bounding-circle radius, described by its radial outline.

    Star-shaped outlines are one straight edge repeated by symmetry: from the unit vertex (1, 0) to `p2`,
    mirrored at half the `period`. Circles and rings have `p2` None; rings also an `inner` hole radius.
    """

    shape: str
    period: float = 0.0
    p2: tuple[float, float] | None = None
    inner: float = 0.0

    @property
    def area(self) -> float:
        """Area at unit radius."""
        if self.p2 is None:
            return math.pi * (1.0 - self.inner**2)
        # Triangles (centre, (1, 0), p2) of area p2.y / 2 tile the shape, one per angle p2 spans.
        return math.pi / math.atan2(self.p2[1], self.p2[0]) * self.p2[1]

    def margins(self, rho: np.ndarray, phi: np.ndarray, radius: float) -> np.ndarray:
        """Signed distance (px, positive inside) of points at polar (rho, phi) from the drawn outline."""
        if self.p2 is None:
            outer = radius + RASTER_BIAS - rho
            if not self.inner:
                return outer
            return np.minimum(outer, rho - self.inner * radius - RASTER_BIAS)
        psi = np.mod(phi, self.period)
        psi = np.minimum(psi, self.period - psi)
        x2, y2 = self.p2
        dx, dy = x2 - 1.0, y2
        den = np.cos(psi) * dy - np.sin(psi) * dx  # ray x edge direction; > 0 on the edge's span
        edge = y2 / den  # unit radius of the outline along the ray
        # Radial gap times cos(angle between ray and edge normal) is the perpendicular distance.
        return (radius * edge - rho) * (den / math.hypot(dx, dy)) + RASTER_BIAS


def _polygon(shape: str, n: int) -> Template:
    p = 2 * math.pi / n
    return Template(shape, p, (math.cos(p), math.sin(p)))


def _star(points: int, inner: float) -> Template:
    p = 2 * math.pi / points
    return Template("star", p, (inner * math.cos(p / 2), inner * math.sin(p / 2)))


TEMPLATES: dict[str, Template] = {
    "circle": Template("circle"),
    "ring": Template("ring", inner=RING_INNER),
    "square": _polygon("square", 4),
    "triangle": _polygon("triangle", 3),
    "hexagon": _polygon("hexagon", 6),
    "star": _star(5, STAR_INNER),
}


@dataclass(frozen=True)
class Fit:
    """The best hypothesis for one shape: where it sits and how badly it disagrees with the pixels."""

    shape: str
    size: str
    center: tuple[float, float]  # continuous image pixel coordinates (x, y)
    tilt: float  # radians, within the shape's symmetry period
    cost: float  # squared violation depths (px^2) per template outline pixel, plus a hidden-area penalty


@dataclass(frozen=True)
class Evidence:
    """What a region offers to the fit: pixels that must be inside, pixels that must be outside."""

    inside: np.ndarray  # (N, 2) x, y pixel centres of the region (its outline plus a sparse lattice)
    outside: np.ndarray  # (M, 2) visible non-object pixel centres bordering the region or its occluders
    area: int
    centroid: tuple[float, float]
    occluded: bool  # part of the outline borders another object


def evidence(
    region: np.ndarray, occluder: np.ndarray, origin: tuple[int, int] = (0, 0), spacing: int = 3
) -> Evidence:
    """Collect the pixels a template is scored on; `occluder` marks pixels whose colour hides the truth.

    Both masks are a crop whose top-left pixel is image (row, col) `origin`; the evidence is in image
    coordinates. The interior is sampled every `spacing` pixels: it only matters for a ring's hole, and a
    full interior would make the cost grow with the square of the object's size.
    """
    shift = np.array([origin[1] + 0.5, origin[0] + 0.5], dtype=np.float32)
    rows, cols = np.nonzero(region)
    eroded = ndimage.binary_erosion(region, structure=np.ones((3, 3), bool), border_value=0)
    outline = region & ~eroded
    rows_on = np.arange(region.shape[0]) % spacing == 0
    lattice = eroded & np.logical_and.outer(rows_on, np.arange(region.shape[1]) % spacing == 0)
    inside = np.argwhere(outline | lattice)[:, ::-1] + shift
    known = region | occluder
    near = ndimage.binary_dilation(known, structure=np.ones((3, 3), bool))
    outside = np.argwhere(near & ~known)[:, ::-1] + shift
    touching = ndimage.binary_dilation(occluder, structure=np.ones((3, 3), bool)) & outline
    return Evidence(
        inside=inside.astype(np.float32),
        outside=outside.astype(np.float32),
        area=int(rows.size),
        centroid=(float(cols.mean() + shift[0]), float(rows.mean() + shift[1])),
        occluded=int(np.count_nonzero(touching)) > 1,
    )


def _costs(
    tpl: Template, radius: float, centers: np.ndarray, tilts: np.ndarray, ev: Evidence, stride: int = 1
) -> np.ndarray:
    """(C, T) violation cost of the template at every centre and tilt."""
    inside, outside = ev.inside[::stride], ev.outside[::stride]
    pts = np.concatenate([inside, outside])
    sign = np.concatenate([-np.ones(len(inside), np.float32), np.ones(len(outside), np.float32)])
    d = pts[None, :, :] - centers[:, None, :].astype(np.float32)  # (C, N, 2)
    rho = np.hypot(d[..., 0], d[..., 1])[:, None, :]
    phi = np.arctan2(d[..., 1], d[..., 0])[:, None, :]
    if tpl.period:
        phi = phi - tilts[None, :, None].astype(np.float32)
    viol = np.maximum(0.0, sign * tpl.margins(rho, phi, radius))
    cost = (viol**2).sum(axis=-1) * (stride / (2 * math.pi * radius))
    return np.broadcast_to(cost + _hidden_penalty(tpl, radius, ev), (len(centers), len(tilts)))


def _hidden_penalty(tpl: Template, radius: float, ev: Evidence) -> float:
    """Cost of claiming part of the object is hidden: small (Occam: of two templates that both explain
    the pixels, the one needing less hidden area wins, e.g. a triangle lying on top of a circle is not a
    hexagon hidden under it), and large past what the world allows."""
    visible = ev.area / (tpl.area * (radius + RASTER_BIAS) ** 2)
    return HIDDEN_COST * abs(1.0 - visible) + 4.0 * max(0.0, MIN_VISIBLE - visible)


def _grid(cx: float, cy: float, half: float, step: float) -> np.ndarray:
    offsets = np.arange(-half, half + 1e-6, step)
    gx, gy = np.meshgrid(cx + offsets, cy + offsets)
    return np.stack([gx.ravel(), gy.ravel()], axis=1)


@dataclass(frozen=True)
class _Start:
    """A coarse hypothesis waiting to be refined."""

    tpl: Template
    size: str
    radius: float
    center: np.ndarray
    tilt: float
    cost: float
    step: float


def _coarse(tpl: Template, size: str, radius: float, ev: Evidence) -> list[_Start]:
    """Best (centre, tilt) on a coarse grid: the centroid alone when nothing hides the region (then it is
    the template's centre), else a few from a grid of centres around it (several local minima)."""
    cx, cy = ev.centroid
    tilts = np.arange(0.0, tpl.period, math.radians(COARSE_TILT_DEG)) if tpl.period else np.zeros(1)
    if ev.occluded:
        step = max(1.0, radius / 8)
        centers = _grid(cx, cy, 0.55 * radius, step)
        # The template must reach every region pixel: prune centres too far from the farthest ones.
        far = np.hypot(*(ev.inside[None, :, :] - centers[:, None, :]).transpose(2, 0, 1)).max(axis=1)
        centers = centers[far <= radius + RASTER_BIAS + PIXEL_SLACK + step]
    else:
        step = 0.5
        centers = np.array([[cx, cy]])
    if not len(centers):
        return []
    cost = _costs(tpl, radius, centers, tilts, ev, stride=3 if ev.occluded else 1)
    starts = []
    for flat in np.argsort(cost, axis=None)[: 3 if ev.occluded else 1]:
        ci, ti = np.unravel_index(flat, cost.shape)
        starts.append(_Start(tpl, size, radius, centers[ci], float(tilts[ti]), float(cost[ci, ti]), step))
    return starts


def _refine(start: _Start, ev: Evidence) -> Fit:
    """Halve the centre and tilt steps around a start until sub-pixel, sub-degree."""
    tpl, radius = start.tpl, start.radius
    c, t = start.center, start.tilt
    s, ts = start.step, math.radians(COARSE_TILT_DEG) if tpl.period else 0.0
    value = start.cost
    while s > 0.25 or ts > math.radians(0.5):
        s, ts = max(s / 2, 0.25), ts / 2
        local_c = _grid(float(c[0]), float(c[1]), s, s)
        local_t = np.array([t - ts, t, t + ts]) if tpl.period else np.zeros(1)
        local = _costs(tpl, radius, local_c, local_t, ev)
        i, j = np.unravel_index(int(np.argmin(local)), local.shape)
        c, t, value = local_c[i], float(local_t[j]), float(local[i, j])
    return Fit(tpl.shape, start.size, (float(c[0]), float(c[1])), t, value)


def size_radii(side: int) -> dict[str, float]:
    """Bounding-circle radius (px) of each size class in an image whose shorter side is `side`."""
    return {name: frac * side / 2 for name, frac in SIZES.items()}


def fit_shapes(ev: Evidence, radii: dict[str, float], extent: float) -> list[Fit]:
    """Best fit per shape (over the sizes the region could be), cheapest first.

    `extent` is the region's largest pixel-centre distance: a template must be at least that wide.
    Only shapes whose coarse cost is near the best one are refined; the others keep their coarse cost,
    an upper bound that is already far behind.
    """
    starts: list[_Start] = []
    for tpl in TEMPLATES.values():
        for size, radius in radii.items():
            full = tpl.area * (radius + RASTER_BIAS) ** 2
            too_small = extent > 2 * (radius + PIXEL_SLACK)
            if too_small or not 0.4 * full <= ev.area <= 1.25 * full + 2 * math.pi * radius:
                continue
            starts += _coarse(tpl, size, radius, ev)
    if not starts:
        return []
    starts.sort(key=lambda st: st.cost)
    bar = 2.0 * starts[0].cost + REFINE_MARGIN
    leaders = {st.tpl.shape: st for st in reversed(starts)}  # each shape's cheapest start
    runner_up = list(dict.fromkeys(st.tpl.shape for st in starts))[:2]  # the score needs two shapes
    best: dict[str, Fit] = {}
    for st in starts:
        if st.cost <= bar or (st.tpl.shape in runner_up and leaders[st.tpl.shape] is st):
            fit = _refine(st, ev)
        else:
            fit = Fit(st.tpl.shape, st.size, (float(st.center[0]), float(st.center[1])), st.tilt, st.cost)
        if st.tpl.shape not in best or fit.cost < best[st.tpl.shape].cost:
            best[st.tpl.shape] = fit
    return sorted(best.values(), key=lambda f: f.cost)
