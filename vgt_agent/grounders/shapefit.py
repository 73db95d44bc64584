"""Which world shape and size a colour region is: fit every shape template, occlusion-aware.

Why templates rather than thresholds on solidity or corner counts: a partly hidden object keeps few of its
global statistics, but whatever of its outline is visible still lies on its template, and the pixels that
hide the rest are known (they have another palette colour). So each template is scored only against what
is seen: the region's pixels must lie inside it, background pixels outside it, and pixels of other objects
may be either. The world's shapes are regular (n-gons, a 5-point star, a ring), so a template is fixed by
shape, radius, centre and rotation. The radius is continuous (a region nothing hides fixes it by its area,
a hidden one is searched over what its visible part allows) and the size class is the nearest one to it;
rotation is searched over the shape's whole symmetry period, so nothing here assumes the generator's
upright orientation.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

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
# At most this many shapes (the cheapest at the coarse step) are refined.
MAX_REFINED_SHAPES = 3
# ... and of each shape's starts (several where occlusion leaves several local minima), the cheapest this many.
MAX_REFINED_STARTS = 2
# A runner-up shape this far (cost) behind the best coarse start leaves the confidence at its ceiling either way.
SCORE_MARGIN = 3.0
# Points a hypothesis is scored on (a larger region's points are subsampled to about this many).
MAX_POINTS = 400
# The radius refinement's first step, as a fraction of the radius.
RADIUS_STEP = 0.04
# Ratio between successive radii tried for a partly hidden region.
OCCLUDED_RADIUS_STEP = 0.15
# Every this-many-th point scores the coarse grid of a partly hidden region (the refinement scores all).
COARSE_STRIDE = 5
# A partly hidden region's refinement stops halving its centre step here (px): the shape and size class
# settle before, and each halving is a pass over 81 hypotheses.
REFINE_MIN_STEP = 0.5
# A coarse grid of at least this many centres is pruned (branch and bound) before a straight-edged template is
# scored at every tilt; the first batch scored is the best-bounded 1/PRUNE_FIRST_SHARE of the centres.
PRUNE_MIN_CENTERS = 12
PRUNE_FIRST_SHARE = 8
# Every this-many-th point scores the tilt search of every template at the centroid.
CENTROID_STRIDE = 3
# A region touching another object whose best template at its centroid, nothing hidden, costs at most this is
# taken as whole (the object on top of the one it touches): no search over hidden centres, tilts and radii.
WHOLE_ENOUGH = 0.25
# ... and every other template costs at least this much more there (a tiny region fits several alike).
WHOLE_MARGIN = 0.05


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

    @cached_property
    def area(self) -> float:
        """Area at unit radius."""
        if self.p2 is None:
            return math.pi * (1.0 - self.inner**2)
        # Triangles (centre, (1, 0), p2) of area p2.y / 2 tile the shape, one per angle p2 spans.
        return math.pi / math.atan2(self.p2[1], self.p2[0]) * self.p2[1]

    @cached_property
    def edge(self) -> tuple[float, float]:
        """(apothem, skew) of a straight-edged template: the edge line's distance from the centre at unit
        radius, and how far its normal's angle sits before the middle of the half period (0 for n-gons)."""
        x2, y2 = self.p2
        dx, dy = x2 - 1.0, y2
        skew = self.period / 2 - math.atan2(-dx, dy)
        return y2 / math.hypot(dx, dy), skew if abs(skew) > 1e-12 else 0.0

    @cached_property
    def cos_bounds(self) -> tuple[float, float]:
        """Least and greatest cos(angle to the edge normal) `costs` can see, whatever the point and tilt
        (straight-edged templates): the angle spans the half period either side of the normal, shifted by the
        skew for stars. A point's projection rho * cos(...) lies between rho times these, for any tilt."""
        _, skew = self.edge
        lo, hi = (-skew, self.period / 2 - skew) if skew else (-self.period / 2, self.period / 2)
        low, high = min(math.cos(lo), math.cos(hi)), 1.0 if lo <= 0.0 <= hi else max(math.cos(lo), math.cos(hi))
        return low - 1e-6, high + 1e-6  # float32's cos is within an ulp or two of these

    def bounds(self, rho: np.ndarray, radii: np.ndarray, sign: np.ndarray) -> np.ndarray:
        """(C, R) lower bounds of `costs` over every tilt (straight-edged templates): each point's projection
        taken at the end of its possible range that violates the least. T times cheaper than `costs`."""
        apothem, _ = self.edge
        low, high = self.cos_bounds
        y = rho * (sign * np.where(sign < 0, np.float32(low), np.float32(high))).astype(np.float32)  # (C, N)
        edge = sign[None, :] * (np.asarray(radii, dtype=np.float32) * np.float32(apothem)
                                + np.float32(RASTER_BIAS))[:, None]  # (R, N)
        viol = edge[None, :, :] - y[:, None, :]  # (C, R, N)
        np.maximum(viol, 0.0, out=viol)
        return np.einsum("crn,crn->cr", viol, viol)

    def costs(
        self, rho: np.ndarray, angle: np.ndarray | None, tilts: np.ndarray, radii: np.ndarray, sign: np.ndarray
    ) -> np.ndarray:
        """Sum of squared depths (px^2) by which the points lie on their wrong side of the drawn outline.

        `rho` and `angle` (C, N) are each point's distance and direction (radians) from a candidate centre
        (`angle` is unused by circles and rings), `tilts` (T,) the candidate rotations, `radii` (R,) the
        candidate radii, `sign` (N,) -1 for pixels that must be inside and +1 for those that must be outside.
        Returns (C, T, R), T = 1 for circles and rings.

        A point's margin (signed distance, positive inside) is measured to the edge its ray from the centre
        crosses, perpendicular to that edge: apothem - rho * cos(angle to the edge normal). The angle is
        taken from the middle of the point's symmetry period, where an n-gon's edge normal lies; a star's
        two edges per period are mirrored about it, hence |x| - skew. The projection rho * cos(...) does not
        depend on the radius, so it is computed once for all radii (which broadcast as their own axis).
        """
        radii = np.asarray(radii, dtype=np.float32)
        if self.p2 is None:
            margin = (radii + np.float32(RASTER_BIAS))[None, :, None] - rho[:, None, :]  # (C, R, N)
            if self.inner:
                hole = rho[:, None, :] - (np.float32(self.inner) * radii + np.float32(RASTER_BIAS))[None, :, None]
                np.minimum(margin, hole, out=margin)
            margin *= sign
            np.maximum(margin, 0.0, out=margin)
            return np.einsum("crn,crn->cr", margin, margin)[:, None, :]
        apothem, skew = self.edge
        period = np.float32(self.period)
        # In periods, from the middle of each point's period: rint leaves x in [-1/2, 1/2].
        turns = (tilts / self.period + 0.5).astype(np.float32)
        x = (angle * (1 / period))[:, None, :] - turns[None, :, None]
        x -= np.rint(x)
        if skew:
            np.abs(x, out=x)
            x -= np.float32(skew / self.period)
        x *= period
        np.cos(x, out=x)
        x *= (rho * sign)[:, None, :]
        edge = sign[None, :] * (radii * np.float32(apothem) + np.float32(RASTER_BIAS))[:, None]  # (R, N)
        viol = edge[None, None, :, :] - x[:, :, None, :]  # (C, T, R, N)
        np.maximum(viol, 0.0, out=viol)
        return np.einsum("ctrn,ctrn->ctr", viol, viol)


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
    """The best hypothesis for one shape: where it sits, how large, and how badly it disagrees with the pixels."""

    shape: str
    center: tuple[float, float]  # continuous image pixel coordinates (x, y)
    tilt: float  # radians, within the shape's symmetry period
    radius: float  # bounding-circle radius (px) of the drawn shape, as `shapes.shape_mask` takes it
    cost: float  # squared violation depths (px^2) per template outline pixel, plus a hidden-area penalty


@dataclass(frozen=True)
class Evidence:
    """What a region offers to the fit: pixels that must be inside, pixels that must be outside."""

    inside: np.ndarray  # (N, 2) x, y pixel centres of the region (its outline plus a sparse lattice)
    outline: np.ndarray  # (K, 2) x, y pixel centres of the region's outline (its extreme points among them)
    outside: np.ndarray  # (M, 2) visible non-object pixel centres bordering the region or its occluders
    area: int
    centroid: tuple[float, float]
    occluded: bool  # part of the outline borders another object
    _scored: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict, repr=False, compare=False)

    def scored(self, stride: int) -> tuple[np.ndarray, np.ndarray]:
        """Every `stride`-th inside and outside point as one (N, 2) array, and their signs (-1 inside, +1
        outside); built once per stride, since every template and hypothesis is scored on the same points."""
        if stride not in self._scored:
            inside, outside = self.inside[::stride], self.outside[::stride]
            sign = np.concatenate([np.full(len(inside), -1.0, np.float32), np.ones(len(outside), np.float32)])
            self._scored[stride] = (np.concatenate([inside, outside]), sign)
        return self._scored[stride]

    @cached_property
    def base_stride(self) -> int:
        """The stride that scores at most about `MAX_POINTS` points: a large object's outline has hundreds of
        pixels, and the cost is an average over them, so a subsample estimates it as well."""
        return max(1, math.ceil((len(self.inside) + len(self.outside)) / MAX_POINTS))


def evidence(
    region: np.ndarray, occluder: np.ndarray, origin: tuple[int, int] = (0, 0), spacing: int = 3
) -> Evidence:
    """Collect the pixels a template is scored on; `occluder` marks pixels whose colour hides the truth.

    Both masks are a crop whose top-left pixel is image (row, col) `origin`; the evidence is in image
    coordinates. The interior is sampled every `spacing` pixels: it only matters for a ring's hole, and a
    full interior would make the cost grow with the square of the object's size.
    """
    shift = np.array([origin[1] + 0.5, origin[0] + 0.5], dtype=np.float32)
    # Area and centroid from the row and column counts: integer sums, exact, so the same means as np.nonzero's.
    per_row, per_col = np.count_nonzero(region, axis=1), np.count_nonzero(region, axis=0)
    area = int(per_row.sum())
    eroded = _erode(region)
    outline = region ^ eroded  # the eroded pixels are region pixels
    lattice = np.zeros_like(region)
    lattice[::spacing, ::spacing] = eroded[::spacing, ::spacing]
    known = region | occluder
    # Touching: an occluder pixel next to two or more outline pixels' (none when no occluder pixel is near).
    occluded = bool(occluder.any()) and int(np.count_nonzero(_dilate(occluder) & outline)) > 1
    return Evidence(
        inside=_points(outline | lattice, shift),
        outline=_points(outline, shift),
        outside=_points(_dilate(known) ^ known, shift),  # the known pixels are within their dilation
        area=area,
        centroid=(float(np.float64(int(per_col @ np.arange(len(per_col))) / area) + shift[0]),
                  float(np.float64(int(per_row @ np.arange(len(per_row))) / area) + shift[1])),
        occluded=occluded,
    )


def _points(mask: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """(N, 2) float32 x, y pixel centres of the mask's pixels (row-major order), shifted to the image."""
    return (np.argwhere(mask)[:, ::-1] + shift).astype(np.float32)


def _dilate(mask: np.ndarray) -> np.ndarray:
    """3x3 binary dilation (outside the array is background), as two 1-D passes of shifted ORs: the same
    pixels as `ndimage.binary_dilation` with a 3x3 structure, without its per-call overhead on small crops."""
    rows = mask.copy()
    rows[1:] |= mask[:-1]
    rows[:-1] |= mask[1:]
    out = rows.copy()
    out[:, 1:] |= rows[:, :-1]
    out[:, :-1] |= rows[:, 1:]
    return out


def _erode(mask: np.ndarray) -> np.ndarray:
    """3x3 binary erosion with background outside the array (`ndimage.binary_erosion(..., border_value=0)`)."""
    rows = mask.copy()
    rows[1:] &= mask[:-1]
    rows[:-1] &= mask[1:]
    rows[[0, -1]] = False
    out = rows.copy()
    out[:, 1:] &= rows[:, :-1]
    out[:, :-1] &= rows[:, 1:]
    out[:, [0, -1]] = False
    return out


@dataclass
class _Polar:
    """The scored points seen from each candidate centre: shared by every template tried at those centres."""

    centers: np.ndarray  # (C, 2) x, y
    rho: np.ndarray  # (C, N) px
    dx: np.ndarray  # (C, N) point minus centre
    dy: np.ndarray
    sign: np.ndarray  # (N,) -1 inside, +1 outside
    stride: int

    @cached_property
    def angle(self) -> np.ndarray:
        return np.arctan2(self.dy, self.dx)

    def take(self, index: np.ndarray) -> _Polar:
        """The same points seen from the centres `index` only (every value as the whole would give it)."""
        sub = _Polar(self.centers[index], self.rho[index], self.dx[index], self.dy[index], self.sign, self.stride)
        if "angle" in self.__dict__:
            sub.__dict__["angle"] = self.angle[index]
        return sub


def _polar(centers: np.ndarray, ev: Evidence, stride: int = 1) -> _Polar:
    stride *= ev.base_stride
    pts, sign = ev.scored(stride)
    d = pts[None, :, :] - centers[:, None, :].astype(np.float32)  # (C, N, 2)
    dx, dy = d[..., 0], d[..., 1]
    return _Polar(centers, np.sqrt(dx * dx + dy * dy), dx, dy, sign, stride)


def _costs(tpl: Template, radii: np.ndarray, polar: _Polar, tilts: np.ndarray, ev: Evidence) -> np.ndarray:
    """(C, T, R) cost of the template at every centre, tilt and radius."""
    cost = tpl.costs(polar.rho, polar.angle if tpl.period else None, tilts, radii, polar.sign)
    cost *= polar.stride / (2 * math.pi * radii)
    return cost + _hidden_penalty(tpl, radii, ev)


def _hidden_penalty(tpl: Template, radii: np.ndarray, ev: Evidence) -> np.ndarray:
    """Cost of claiming part of the object is hidden, per radius: small (Occam: of two templates that both
    explain the pixels, the one needing less hidden area wins, e.g. a triangle lying on top of a circle is
    not a hexagon hidden under it), and large past what the world allows."""
    # float_power is C's pow, as a scalar's ** 2 is (an array's ** 2 multiplies: an ulp off now and then).
    visible = ev.area / (tpl.area * np.float_power(np.asarray(radii, dtype=np.float64) + RASTER_BIAS, 2.0))
    return HIDDEN_COST * np.abs(1.0 - visible) + 4.0 * np.maximum(0.0, MIN_VISIBLE - visible)


def _pruned_costs(
    tpl: Template, radii: np.ndarray, polar: _Polar, tilts: np.ndarray, ev: Evidence, count: int
) -> tuple[np.ndarray, np.ndarray]:
    """The costs `_costs` gives at the centres that can hold one of the `count` cheapest hypotheses: branch
    and bound on a tilt-free lower bound per centre (`Template.bounds`). The centres whose bound is least
    are scored first; every other centre whose bound is above the `count`-th cheapest cost found is
    skipped, since none of its hypotheses can be cheaper. Returns the scored centres' indices (ascending)
    and their (C', T, R) costs, each exactly as `_costs` gives it over all centres."""
    bound = tpl.bounds(polar.rho, radii, polar.sign)
    bound *= polar.stride / (2 * math.pi * radii)
    per_centre = (bound + _hidden_penalty(tpl, radii, ev)).min(axis=1)
    order = np.argsort(per_centre, kind="stable")
    first = np.sort(order[: max(count, math.ceil(len(order) / PRUNE_FIRST_SHARE))])
    cost = _costs(tpl, radii, polar.take(first), tilts, ev)
    flat = cost.ravel()
    worst_kept = float(np.partition(flat, count - 1)[count - 1]) if flat.size >= count else math.inf
    rest = order[len(first):]
    rest = np.sort(rest[per_centre[rest] <= worst_kept + 1e-4 * abs(worst_kept) + 1e-6])
    if not rest.size:
        return first, cost
    index = np.concatenate([first, rest])
    cost = np.concatenate([cost, _costs(tpl, radii, polar.take(rest), tilts, ev)])
    ascending = np.argsort(index, kind="stable")
    return index[ascending], cost[ascending]


def _cheapest(cost: np.ndarray, count: int) -> list[int]:
    """Flat indices of the `count` least values, least first (ties: the first in order)."""
    flat = cost.ravel()
    first = int(np.argmin(flat))
    if count == 1 or flat.size == 1:
        return [first]
    rest = flat.copy()
    rest[first] = np.inf
    return [first, int(np.argmin(rest))]


def _grid(cx: float, cy: float, half: float, step: float) -> np.ndarray:
    offsets = np.arange(-half, half + 1e-6, step)
    xs, ys = cx + offsets, cy + offsets  # x fastest, as a meshgrid raveled
    return np.stack([np.tile(xs, len(ys)), np.repeat(ys, len(xs))], axis=1)


# The 3 x 3 neighbourhood in `_grid` order (x fastest), for refinement steps.
_NEIGHBOURS = np.array([[dx, dy] for dy in (-1.0, 0.0, 1.0) for dx in (-1.0, 0.0, 1.0)])


@dataclass(frozen=True)
class _Start:
    """A coarse hypothesis waiting to be refined."""

    tpl: Template
    radius: float
    center: np.ndarray
    tilt: float
    cost: float
    step: float


def _coarse_grids(maxima: dict[str, float], ev: Evidence) -> dict[str, tuple[_Polar | None, float]]:
    """The centres the coarse search of a partly hidden region tries for each template (several local minima:
    a grid around the centroid sized for the template's largest radius, without the centres too far from the
    region's farthest pixels for the template to reach them), seen from the points it scores, and their
    spacing. All templates' grids in one pass, each template's centres a slice of it."""
    cx, cy = ev.centroid
    steps = {name: max(1.0, radius / 8) for name, radius in maxima.items()}
    grids = [_grid(cx, cy, 0.55 * radius, steps[name]) for name, radius in maxima.items()]
    reach = np.repeat([radius + RASTER_BIAS + PIXEL_SLACK + steps[name] for name, radius in maxima.items()],
                      [len(g) for g in grids])
    centers = np.concatenate(grids)
    rim = ev.outline[:: max(1, len(ev.outline) // 64)]  # the farthest region pixels lie on its outline
    d = rim[None, :, :] - centers[:, None, :]
    # Squared distances settle all but the centres within rounding of the reach, which hypot settles as ever.
    far2 = np.einsum("ckx,ckx->ck", d, d).max(axis=1)
    keep = far2 <= reach * reach
    unsure = np.flatnonzero(np.abs(far2 - reach * reach) <= 1e-9 * reach * reach)
    if unsure.size:
        keep[unsure] = np.hypot(d[unsure, :, 0], d[unsure, :, 1]).max(axis=1) <= reach[unsure]
    owner = np.repeat(np.arange(len(grids)), [len(g) for g in grids])[keep]
    polar = _polar(centers[keep], ev, stride=COARSE_STRIDE) if keep.any() else None
    ends = np.searchsorted(owner, np.arange(len(grids) + 1)).tolist()
    out = {}
    for j, name in enumerate(maxima):
        a, b = ends[j], ends[j + 1]
        part = None if polar is None or a == b else _Polar(
            polar.centers[a:b], polar.rho[a:b], polar.dx[a:b], polar.dy[a:b], polar.sign, polar.stride)
        out[name] = (part, steps[name])
    return out


def _coarse(
    tpl: Template, radii: np.ndarray, ev: Evidence, polar: _Polar | None, step: float, count: int | None = None
) -> list[_Start]:
    """Best (centre, tilt, radius) on the coarse grid: one start, or two (`count`, by default two when
    occlusion allows several minima)."""
    if polar is None or not radii.size:
        return []
    count = (2 if ev.occluded else 1) if count is None else count
    tilts = np.arange(0.0, tpl.period, math.radians(COARSE_TILT_DEG)) if tpl.period else np.zeros(1)
    if tpl.period and len(polar.centers) >= PRUNE_MIN_CENTERS:
        index, cost = _pruned_costs(tpl, radii, polar, tilts, ev, count)
    else:
        index, cost = np.arange(len(polar.centers)), _costs(tpl, radii, polar, tilts, ev)
    starts = []
    for flat in _cheapest(cost, count):
        ci, ti, ri = np.unravel_index(flat, cost.shape)
        starts.append(_Start(tpl, float(radii[ri]), polar.centers[index[ci]], float(tilts[ti]),
                             float(cost[ci, ti, ri]), step))
    return starts


@functools.cache
def _centroid_rows(names: tuple[str, ...]) -> tuple:
    """The constants of `_centroid_starts` for these templates (in this order): their areas; the circle's and
    ring's positions, hole radii (0: none) and which has a hole; the straight-edged ones' positions and their
    coarse tilts as rows, one per (template, tilt), padded to the same count per template (padding rows cost
    +inf): each row's tilt constants as `Template.costs` makes them, and the star's rows."""
    areas = np.array([TEMPLATES[name].area for name in names])
    round_ = [k for k, name in enumerate(names) if not TEMPLATES[name].period]
    inner = np.array([TEMPLATES[names[k]].inner for k in round_], np.float32)[:, None]
    holes = [j for j, k in enumerate(round_) if TEMPLATES[names[k]].inner]
    straight = [k for k, name in enumerate(names) if TEMPLATES[name].period]
    tilts = [np.arange(0.0, TEMPLATES[names[k]].period, math.radians(COARSE_TILT_DEG)) for k in straight]
    width = max((len(t) for t in tilts), default=0)
    padded = np.zeros((len(straight), width))
    pad = np.full((len(straight), width), np.inf)
    inverse, turns, periods, apothems, star = [], [], [], [], None
    for j, (k, t) in enumerate(zip(straight, tilts, strict=True)):
        tpl = TEMPLATES[names[k]]
        padded[j, : len(t)], pad[j, : len(t)] = t, 0.0
        inverse.append(np.full(width, 1 / tpl.period, np.float32))
        turns.append((padded[j] / tpl.period + 0.5).astype(np.float32))
        periods.append(np.full(width, tpl.period, np.float32))
        apothems.append(np.full(width, tpl.edge[0], np.float32))
        if tpl.edge[1]:
            star = (slice(j * width, (j + 1) * width), np.float32(tpl.edge[1] / tpl.period))
    of_row = np.repeat(np.array(straight, dtype=np.intp), width)  # each row's template position in `names`
    rows = (np.concatenate(inverse)[:, None], np.concatenate(turns)[:, None], np.concatenate(periods)[:, None],
            np.concatenate(apothems)) if straight else None
    return areas, round_, inner, holes, straight, padded, pad.ravel(), width, star, of_row, rows


def _centroid_starts(radii: dict[str, np.ndarray], ev: Evidence, polar: _Polar) -> dict[str, list[_Start]]:
    """Each template's one start at the centroid (`polar`, one centre) with its one radius: `_coarse` with
    one start there, all templates in one pass: the straight-edged templates' tilts as rows of one array, the
    circle and ring as two more (each value as `Template.costs` computes it), the radius scales and hidden-area
    penalties as vectors: a few dozen small array operations rather than hundreds."""
    names = tuple(radii)
    areas, round_, inner, holes, straight, padded, pad, width, star, of_row, rows = _centroid_rows(names)
    chosen = np.array([radii[name][0] for name in names])
    scale = polar.stride / (2 * math.pi * chosen)
    visible = ev.area / (areas * np.float_power(chosen + RASTER_BIAS, 2.0))  # as `_hidden_penalty`, per template
    penalty = HIDDEN_COST * np.abs(1.0 - visible) + 4.0 * np.maximum(0.0, MIN_VISIBLE - visible)
    rho, sign, centre = polar.rho[0], polar.sign, polar.centers[0]
    found: dict[str, tuple[float, float]] = {}  # name -> (tilt, cost)
    if round_:
        r32 = chosen[round_].astype(np.float32)[:, None]
        margin = (r32 + np.float32(RASTER_BIAS)) - rho[None, :]
        for j in holes:
            np.minimum(margin[j], rho - (inner[j] * r32[j] + np.float32(RASTER_BIAS)), out=margin[j])
        margin *= sign
        np.maximum(margin, 0.0, out=margin)
        cost = np.einsum("kn,kn->k", margin, margin)
        cost *= scale[round_]
        for k, value in zip(round_, (cost + penalty[round_]).tolist(), strict=True):
            found[names[k]] = (0.0, value)
    if straight:
        inverse, turns, periods, apothems = rows
        x = polar.angle[0][None, :] * inverse - turns
        x -= np.rint(x)
        if star is not None:
            starred = x[star[0]]
            np.abs(starred, out=starred)
            starred -= star[1]
        x *= periods
        np.cos(x, out=x)
        x *= rho * sign
        radius = chosen.astype(np.float32)[of_row]
        viol = sign[None, :] * (radius * apothems + np.float32(RASTER_BIAS))[:, None] - x
        np.maximum(viol, 0.0, out=viol)
        cost = np.einsum("kn,kn->k", viol, viol)
        cost *= scale[of_row]
        total = (cost + penalty[of_row] + pad).reshape(len(straight), width)
        best = total.argmin(axis=1)
        picked = np.arange(len(straight))
        for k, tilt, value in zip(straight, padded[picked, best].tolist(), total[picked, best].tolist(), strict=True):
            found[names[k]] = (tilt, value)
    return {name: [_Start(TEMPLATES[name], float(chosen[k]), centre, *found[name], 0.5)]
            for k, name in enumerate(names)}


# The fine pass over a whole region's tilt (about its coarse one) and radius (relative).
_FINE_TILTS = np.linspace(-math.radians(COARSE_TILT_DEG) / 2, math.radians(COARSE_TILT_DEG) / 2, 9)
_FINE_SCALES = 1 + np.linspace(-RADIUS_STEP, RADIUS_STEP, 9)


def _refine(start: _Start, ev: Evidence, centroid: _Polar | None = None) -> Fit:
    """A whole region's start refined: its centroid is its shape's centre, so one fine pass over tilt and
    radius there (seen as `centroid` when given). A partly hidden region's starts are refined by
    `_refine_all`."""
    tpl, c, t, r = start.tpl, start.center, start.tilt, start.radius
    local_t = t + _FINE_TILTS if tpl.period else np.zeros(1)
    local_r = r * _FINE_SCALES
    local = _costs(tpl, local_r, centroid or _polar(c[None, :], ev), local_t, ev)
    _, j, k = np.unravel_index(int(np.argmin(local)), local.shape)
    return Fit(tpl.shape, (float(c[0]), float(c[1])), float(local_t[j]), float(local_r[k]), float(local[0, j, k]))


def candidate_radii(tpl: Template, ev: Evidence, extent: float, bounds: tuple[float, float]) -> np.ndarray:
    """The radii worth trying for a template: the one whose full area is the region's when nothing hides it;
    when something does, a geometric series from there up to where the region would be `MIN_VISIBLE` of it.
    Every radius is within `bounds` and wide enough for the region's `extent`."""
    span = radius_span(tpl, ev, extent, bounds)
    if span is None:
        return np.zeros(0)
    low, high = span
    if not ev.occluded:
        return np.array([low])
    count = 1 + math.ceil(math.log(high / low) / math.log(1 + OCCLUDED_RADIUS_STEP)) if high > low else 1
    return _geomspace(low, high, count)


def radius_span(tpl: Template, ev: Evidence, extent: float, bounds: tuple[float, float]) -> tuple[float, float] | None:
    """The first and last of `candidate_radii` (None when there are none), without the series between."""
    low = max(bounds[0], extent / 2 - PIXEL_SLACK)
    full = math.sqrt(ev.area / tpl.area) - RASTER_BIAS  # the radius whose area the region fills
    if not ev.occluded:
        return (full, full) if low <= full * 1.1 and bounds[0] <= full <= bounds[1] else None
    high = min(bounds[1], math.sqrt(ev.area / (MIN_VISIBLE * tpl.area)) - RASTER_BIAS)
    low = max(low, full)
    return None if high < low else (low, high)


def _geomspace(low: float, high: float, count: int) -> np.ndarray:
    """`np.geomspace(low, high, count)` for positive floats, value for value, without its generality's cost."""
    result = np.power(10.0, np.linspace(np.log10(np.float64(low)), np.log10(np.float64(high)), count))
    result[0] = low
    if count > 1:
        result[-1] = high
    return result


def _whole_enough(costs: list[float]) -> bool:
    """Whether the templates' costs at the centroid (ascending) settle a touching region as whole."""
    return costs[0] <= WHOLE_ENOUGH and (len(costs) == 1 or costs[1] >= costs[0] + WHOLE_MARGIN)


def fit_shapes(
    ev: Evidence, extent: float, bounds: tuple[float, float], wider: Callable[[], Evidence] | None = None
) -> list[Fit]:
    """Best fit per shape (over the radii the region could have, within `bounds`), cheapest first.

    `extent` is the region's largest pixel-centre distance: a template must be at least that wide.
    Only shapes whose coarse cost is near the best one are refined; the others keep their coarse cost,
    an upper bound that is already far behind. `wider`, when given, makes the evidence of the same region
    over a wider crop (as far as a hidden part may reach), which the search over hidden parts is scored on
    when a region that touches another object turns out not to be whole. (`shapefit_many.fit_many` gives
    the same fits for many regions at once.)
    """
    radii = all_radii(ev, extent, bounds)
    if not any(r.size for r in radii.values()):
        return []
    centroid = _polar(np.array([ev.centroid]), ev)  # every template is tried there, nothing hidden
    # The tilt search there scores every CENTROID_STRIDE-th point (the fine pass about the tilt found scores
    # all); a touching region's is scored again on all points when it turns out partly hidden.
    sparse = centroid if CENTROID_STRIDE == 1 else _polar(centroid.centers, ev, CENTROID_STRIDE)
    first = firsts(radii)
    at_centroid = _centroid_starts(first, ev, sparse)
    if ev.occluded:
        if not _whole_enough(sorted(st[0].cost for st in at_centroid.values())):
            return fit_hidden(ev, radii, wider)
        # It lies on top of what it touches: its centroid is the centre, as for a region nothing touches.
        ev = dataclasses.replace(ev, occluded=False)
    starts = [st for name in TEMPLATES if radii[name].size for st in at_centroid[name]]
    plan = refine_plan(starts)
    return best_fits(starts, [_refine(st, ev, centroid) if w else None for st, w in zip(starts, plan, strict=True)])


def all_radii(ev: Evidence, extent: float, bounds: tuple[float, float]) -> dict[str, np.ndarray]:
    """`candidate_radii` of every template."""
    return {name: candidate_radii(tpl, ev, extent, bounds) for name, tpl in TEMPLATES.items()}


def firsts(radii: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The radius each template is tried with at the centroid: its first (a whole region's only one)."""
    return {name: r[:1] for name, r in radii.items() if r.size}


def first_radii(ev: Evidence, extent: float, bounds: tuple[float, float]) -> dict[str, np.ndarray]:
    """`firsts(all_radii(...))` without the series of a region that touches another object."""
    spans = {name: radius_span(tpl, ev, extent, bounds) for name, tpl in TEMPLATES.items()}
    return {name: np.array([span[0]]) for name, span in spans.items() if span is not None}


def fit_hidden(ev: Evidence, radii: dict[str, np.ndarray], wider: Callable[[], Evidence] | None) -> list[Fit]:
    """`fit_shapes` of a region that touches another object and is not whole: centres, tilts and radii
    searched on a grid (on the `wider` evidence when given), plus every template whole at its centroid."""
    if wider is not None:
        ev = wider()
    at_centroid = _centroid_starts(firsts(radii), ev, _polar(np.array([ev.centroid]), ev))
    # A grid sized for each template's radii, plus "nothing is hidden after all".
    grids = _coarse_grids({name: float(r.max()) for name, r in radii.items() if r.size}, ev) if ev.occluded else {}
    starts: list[_Start] = []
    for name, tpl in TEMPLATES.items():
        if not radii[name].size:
            continue
        if ev.occluded:
            starts += _coarse(tpl, radii[name], ev, *grids[name])
        starts += at_centroid[name]
    starts.sort(key=lambda st: st.cost)
    plan = refine_plan(starts)
    refined = iter(_refine_all([st for st, wanted in zip(starts, plan, strict=True) if wanted], ev))
    return best_fits(starts, [next(refined) if wanted else None for wanted in plan])


def _refine_all(starts: list[_Start], ev: Evidence) -> list[Fit]:
    """Each start of one region refined: a partly hidden region's centre, tilt and radius steps halved around
    it until half a pixel (`REFINE_MIN_STEP`), under a degree and a third of a pixel; the starts step in turn,
    each step's centres of all of them seen from the points in one pass (each start's a slice of it)."""
    if not ev.occluded:
        return [_refine(st, ev) for st in starts]
    # Per start: centre, tilt, radius, their steps, and its cost.
    state = [(st.center, st.tilt, st.radius, st.step, math.radians(COARSE_TILT_DEG) if st.tpl.period else 0.0,
              RADIUS_STEP * st.radius, st.cost) for st in starts]
    while True:
        active = [k for k, (_, _, _, s, ts, rs, _) in enumerate(state)
                  if s > REFINE_MIN_STEP or ts > math.radians(1.0) or rs > 0.3]
        if not active:
            break
        steps = {k: (max(state[k][3] / 2, REFINE_MIN_STEP), state[k][4] / 2, state[k][5] / 2) for k in active}
        centres = [state[k][0] + steps[k][0] * _NEIGHBOURS for k in active]
        polar = _polar(np.concatenate(centres), ev)
        for n, k in enumerate(active):
            tpl, (_, t, r, *_), (s, ts, rs) = starts[k].tpl, state[k], steps[k]
            rows = slice(9 * n, 9 * n + 9)
            part = _Polar(polar.centers[rows], polar.rho[rows], polar.dx[rows], polar.dy[rows], polar.sign,
                          polar.stride)
            local_t = np.array([t - ts, t, t + ts]) if tpl.period else np.zeros(1)
            local_r = np.array([r - rs, r, r + rs])
            local = _costs(tpl, local_r, part, local_t, ev)
            i, j, m = np.unravel_index(int(np.argmin(local)), local.shape)
            state[k] = (centres[n][i], float(local_t[j]), float(local_r[m]), s, ts, rs, float(local[i, j, m]))
    return [Fit(st.tpl.shape, (float(c[0]), float(c[1])), t, r, value)
            for st, (c, t, r, _, _, _, value) in zip(starts, state, strict=True)]


def refine_plan(starts: list[_Start]) -> list[bool]:
    """Which starts (sorted by cost, in place) are refined: those near the best cost among the cheapest
    `MAX_REFINED_SHAPES` shapes, and the runner-up shape when close enough to move the score; at most
    `MAX_REFINED_STARTS` per shape."""
    starts.sort(key=lambda st: st.cost)
    if not starts:
        return []
    bar = 2.0 * starts[0].cost + REFINE_MARGIN
    leaders = list(dict.fromkeys(st.tpl.shape for st in starts))
    runner_up = leaders[:2]  # the score needs two shapes
    contenders = set(leaders[:MAX_REFINED_SHAPES])
    refined: dict[str, int] = {}
    plan = []
    for st in starts:
        shape = st.tpl.shape
        close = st.cost <= starts[0].cost + SCORE_MARGIN
        wanted = (st.cost <= bar and shape in contenders) or (shape in runner_up and close)
        wanted = wanted and refined.get(shape, 0) < MAX_REFINED_STARTS
        if wanted:
            refined[shape] = refined.get(shape, 0) + 1
        plan.append(wanted)
    return plan


def best_fits(starts: list[_Start], refined: list[Fit | None]) -> list[Fit]:
    """The best fit per shape, cheapest first: each start's refined fit, or the start itself when it was
    not refined (its coarse cost, an upper bound already far behind)."""
    best: dict[str, Fit] = {}
    for st, fit in zip(starts, refined, strict=True):
        if fit is None:
            fit = Fit(st.tpl.shape, (float(st.center[0]), float(st.center[1])), st.tilt, st.radius, st.cost)
        if st.tpl.shape not in best or fit.cost < best[st.tpl.shape].cost:
            best[st.tpl.shape] = fit
    return sorted(best.values(), key=lambda f: f.cost)


def size_radii(side: int) -> dict[str, float]:
    """Bounding-circle radius (px) of each size class in an image whose shorter side is `side`."""
    return {name: frac * side / 2 for name, frac in SIZES.items()}


def size_of(radius: float, side: int) -> str:
    """The size class whose radius is nearest (in ratio) to a fitted radius."""
    radii = size_radii(side)
    return min(radii, key=lambda s: abs(math.log(max(radius, 0.5) / radii[s])))
