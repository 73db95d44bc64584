"""`shapefit.fit_shapes` for all of an image's regions at once, with the same fits.

A whole region's fit is two small searches at its centroid (every template's tilt, then a fine pass over
tilt and radius about the best few), and each costs dozens of NumPy calls on a few hundred points: a fixed
cost per call, not arithmetic, that made up most of a region's time. Here the regions' points are laid end
to end and every elementwise step runs once over all of them; only the sums stay per region, as one
`einsum` over each region's slice, which adds the same numbers in the same order as the single-region code
(a sum over padded rows would not). A region that touches another object and is not whole (about one an
image) takes `shapefit.fit_hidden`'s search as before.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from vgt_agent.grounders.shapefit import (
    _FINE_SCALES,
    _FINE_TILTS,
    CENTROID_STRIDE,
    HIDDEN_COST,
    MIN_VISIBLE,
    RASTER_BIAS,
    TEMPLATES,
    Evidence,
    Fit,
    _centroid_rows,
    _dilate,
    _erode,
    _Start,
    _whole_enough,
    all_radii,
    best_fits,
    first_radii,
    fit_hidden,
    refine_plan,
)

_BIAS = np.float32(RASTER_BIAS)


@dataclass(frozen=True)
class Crop:
    """Where one region's crop lies in a stack of crops (`Stack`), and what `evidence` takes with it."""

    top: int  # first row in the stack
    height: int
    width: int  # columns 0 .. width - 1
    origin: tuple[int, int]  # image (row, col) of the crop's top-left pixel
    spacing: int


@dataclass
class Stack:
    """Several regions' crops one under another, a false row between each (erosion sees background there
    as at a crop's edge), in two boolean images: the regions' pixels and what may hide them."""

    region: np.ndarray
    occluder: np.ndarray
    crops: list[Crop]

    @classmethod
    def empty(cls, shapes: Sequence[tuple[int, int]], origins: Sequence[tuple[int, int]],
              spacings: Sequence[int]) -> Stack:
        """An all-false stack for crops of these (height, width) shapes, image origins and lattice spacings."""
        tops = np.concatenate([[0], np.cumsum([h + 1 for h, _ in shapes])]).astype(int).tolist()
        size = (max(tops[-1] - 1, 1), max((w for _, w in shapes), default=1))
        crops = [Crop(top, h, w, origin, spacing)
                 for top, (h, w), origin, spacing in zip(tops, shapes, origins, spacings, strict=False)]
        return cls(np.zeros(size, dtype=bool), np.zeros(size, dtype=bool), crops)

    def window(self, k: int) -> tuple[slice, slice]:
        """Crop `k`'s rows and columns in the stack."""
        c = self.crops[k]
        return slice(c.top, c.top + c.height), slice(0, c.width)


def evidence_stack(stack: Stack) -> list[Evidence]:
    """`shapefit.evidence` of every crop of the stack, each array pass made once over the whole stack. Every
    value is the single-crop one: dilations that spill past a crop are cut back to it, points come in
    row-major order crop by crop, and the sums are integer."""
    region, occluder, crops = stack.region, stack.occluder, stack.crops
    eroded = _erode(region)
    outline = region ^ eroded
    lattice = np.zeros_like(region)
    for c in crops:
        rows, cols = slice(c.top, c.top + c.height, c.spacing), slice(0, c.width, c.spacing)
        lattice[rows, cols] = eroded[rows, cols]
    inside_crop = np.zeros_like(region)
    for c in crops:
        inside_crop[c.top : c.top + c.height, : c.width] = True
    known = region | occluder
    outside = (_dilate(known) ^ known) & inside_crop
    touching = _row_sums(np.count_nonzero(_dilate(occluder) & outline, axis=1), crops)
    hidden_any = _row_sums(np.count_nonzero(occluder, axis=1), crops)
    per_row = np.count_nonzero(region, axis=1)
    areas = _row_sums(per_row, crops)
    x_sums = _row_sums(region @ np.arange(region.shape[1]), crops)
    y_sums = [int(per_row[c.top : c.top + c.height] @ np.arange(c.height)) for c in crops]
    inside, outlines, outsides = (_stack_points(m, crops) for m in (outline | lattice, outline, outside))
    out = []
    for k, c in enumerate(crops):
        shift = np.array([c.origin[1] + 0.5, c.origin[0] + 0.5], dtype=np.float32)
        out.append(Evidence(
            inside=inside[k], outline=outlines[k], outside=outsides[k], area=areas[k],
            centroid=(float(np.float64(x_sums[k] / areas[k]) + shift[0]),
                      float(np.float64(y_sums[k] / areas[k]) + shift[1])),
            occluded=hidden_any[k] > 0 and touching[k] > 1,
        ))
    return out


def _row_sums(per_row: np.ndarray, crops: Sequence[Crop]) -> list[int]:
    """Each crop's sum of an integer per-row count."""
    return [int(per_row[c.top : c.top + c.height].sum()) for c in crops]


def _stack_points(mask: np.ndarray, crops: Sequence[Crop]) -> list[np.ndarray]:
    """`shapefit._points` of each crop's part of the mask: (N, 2) float32 x, y image pixel centres (each crop's
    a view of one array)."""
    rows, cols = np.nonzero(mask)
    ends = np.searchsorted(rows, [c.top for c in crops] + [mask.shape[0]])
    counts = np.diff(ends)
    # Each point's crop's shift: its origin's pixel centre (as float32, as `evidence` makes it) less its top.
    shift_x = np.array([np.float32(c.origin[1] + 0.5) for c in crops], dtype=np.float64)
    shift_y = np.array([np.float32(c.origin[0] + 0.5) for c in crops], dtype=np.float64)
    top = np.array([c.top for c in crops])
    pts = np.empty((len(rows), 2), dtype=np.float32)
    pts[:, 0] = cols + np.repeat(shift_x, counts)
    pts[:, 1] = (rows - np.repeat(top, counts)) + np.repeat(shift_y, counts)
    ends = ends.tolist()
    return [pts[a:b] for a, b in itertools.pairwise(ends)]


@dataclass(frozen=True)
class FitJob:
    """One region to fit: `fit_shapes`'s arguments."""

    ev: Evidence
    extent: float
    bounds: tuple[float, float]
    wider: Callable[[], Evidence] | None = None


@dataclass
class _Points:
    """Several regions' scored points seen from each one's centroid, end to end: region `k` owns
    `slice(ends[k], ends[k + 1])`."""

    rho: np.ndarray  # (N,) float32
    angle: np.ndarray  # (N,) float32
    sign: np.ndarray  # (N,) -1 inside, +1 outside
    owner: np.ndarray  # (N,) the region of each point
    ends: np.ndarray  # (K + 1,)
    strides: np.ndarray  # (K,) float64: each region's point stride
    areas: np.ndarray  # (K,) each region's area (px)

    def spread(self, values: np.ndarray) -> np.ndarray:
        """(R, N) each point's region's row of `values` (K, R), C-ordered as the single-region arrays are
        (`einsum` adds a strided row in another order)."""
        return np.take(values.T, self.owner, axis=1)

    def each(self, values: np.ndarray) -> np.ndarray:
        """(N,) each point's region's entry of `values` (K,)."""
        return np.take(values, self.owner)

    def sums(self, values: np.ndarray) -> np.ndarray:
        """(K, ...) the sum of squares of `values` (..., N) over each region's points, as `einsum` adds them
        for that region alone."""
        ends = self.ends.tolist()
        lead = "abcdefgh"[: values.ndim - 1]
        spec = f"{lead}n,{lead}n->{lead}"
        return np.stack([np.einsum(spec, values[..., a:b], values[..., a:b]) for a, b in itertools.pairwise(ends)])

    def of(self, regions: Sequence[int]) -> _Points:
        """The points of these regions (a region may come again), end to end in this order."""
        ends = self.ends.tolist()
        index = np.concatenate([np.arange(ends[k], ends[k + 1]) for k in regions])
        lengths = [ends[k + 1] - ends[k] for k in regions]
        return _Points(self.rho[index], self.angle[index], self.sign[index],
                       np.repeat(np.arange(len(regions)), lengths), np.concatenate([[0], np.cumsum(lengths)]),
                       self.strides[list(regions)], self.areas[list(regions)])


def _points(evs: Sequence[Evidence], stride: int) -> _Points:
    """The points `shapefit._polar` scores at each region's centroid (stride times its base stride)."""
    scored = [ev.scored(stride * ev.base_stride) for ev in evs]
    lengths = [len(sign) for _, sign in scored]
    pts = np.concatenate([p for p, _ in scored])
    centers = np.array([ev.centroid for ev in evs]).astype(np.float32)
    owner = np.repeat(np.arange(len(evs)), lengths)
    d = pts - centers[owner]  # (N, 2): x and y strided, as `_polar` takes them
    dx, dy = d[:, 0], d[:, 1]
    return _Points(np.sqrt(dx * dx + dy * dy), np.arctan2(dy, dx), np.concatenate([s for _, s in scored]), owner,
                   np.concatenate([[0], np.cumsum(lengths)]),
                   np.array([stride * ev.base_stride for ev in evs], dtype=np.float64),
                   np.array([ev.area for ev in evs]))


def _penalty(areas: np.ndarray, tpl_areas: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """`shapefit._hidden_penalty` elementwise: region areas (K, 1), template areas, radii (K, R)."""
    visible = areas / (tpl_areas * np.float_power(radii + RASTER_BIAS, 2.0))
    return HIDDEN_COST * np.abs(1.0 - visible) + 4.0 * np.maximum(0.0, MIN_VISIBLE - visible)


_NAMES = tuple(TEMPLATES)
_PLACEHOLDER = 1.0  # the radius a template no radius fits is tried with at the centroid, its result unused


def centroid_starts_many(firsts_: Sequence[dict[str, np.ndarray]], evs: Sequence[Evidence]) -> list[dict]:
    """`shapefit._centroid_starts` of every region on its sparse centroid points (every `CENTROID_STRIDE`-th),
    all in one pass: every template is tried on every region (each (template, tilt) row's value does not
    depend on the others), and a region keeps the templates it has radii for."""
    if not evs:
        return []
    areas, round_, inner, holes, straight, padded, pad, width, star, of_row, rows = _centroid_rows(_NAMES)
    chosen = np.array([[first[name][0] if name in first else _PLACEHOLDER for name in _NAMES] for first in firsts_])
    pts = _points(evs, CENTROID_STRIDE)
    scale = pts.strides[:, None] / (2 * math.pi * chosen)
    penalty = _penalty(pts.areas[:, None], areas, chosen)
    found: list[dict[str, tuple[float, float]]] = [{} for _ in evs]
    r32 = pts.spread(chosen[:, round_].astype(np.float32))  # (2, N)
    margin = (r32 + _BIAS) - pts.rho[None, :]
    for j in holes:
        np.minimum(margin[j], pts.rho - (inner[j] * r32[j] + _BIAS), out=margin[j])
    margin *= pts.sign
    np.maximum(margin, 0.0, out=margin)
    cost = pts.sums(margin)
    cost *= scale[:, round_]
    for k, values in enumerate((cost + penalty[:, round_]).tolist()):
        for j, value in zip(round_, values, strict=True):
            found[k][_NAMES[j]] = (0.0, value)
    inverse, turns, periods, apothems = rows
    x = pts.angle[None, :] * inverse - turns
    x -= np.rint(x)
    starred = x[star[0]]
    np.abs(starred, out=starred)
    starred -= star[1]
    x *= periods
    np.cos(x, out=x)
    x *= pts.rho * pts.sign
    edge = pts.spread(chosen.astype(np.float32)[:, of_row] * apothems + _BIAS)  # (rows, N)
    viol = pts.sign[None, :] * edge - x
    np.maximum(viol, 0.0, out=viol)
    cost = pts.sums(viol)
    cost *= scale[:, of_row]
    total = (cost + penalty[:, of_row] + pad).reshape(len(evs), len(straight), width)
    best = total.argmin(axis=2)
    tilts = padded[np.arange(len(straight))[None, :], best].tolist()
    values = np.take_along_axis(total, best[:, :, None], axis=2)[:, :, 0].tolist()
    for k in range(len(evs)):
        for j, tilt, value in zip(straight, tilts[k], values[k], strict=True):
            found[k][_NAMES[j]] = (tilt, value)
    centres = [np.array(ev.centroid) for ev in evs]
    return [{name: [_Start(TEMPLATES[name], float(first[name][0]), centres[k], *found[k][name], 0.5)]
             for name in first} for k, first in enumerate(firsts_)]


def fine_many(requests: Sequence[tuple[_Start, int]], points: _Points) -> list[Fit]:
    """`shapefit._refine` of whole regions' starts (one fine pass over tilt and radius at the centroid, on all
    points): each start with the region (of `points`) it belongs to. Circles and rings in one pass, the
    straight-edged templates in another."""
    fits: list[Fit | None] = [None] * len(requests)
    for straight in (False, True):
        members = [i for i, (st, _) in enumerate(requests) if bool(st.tpl.period) == straight]
        if members:
            group = [requests[i] for i in members]
            pts = points.of([k for _, k in group])
            done = _fine_straight(group, pts) if straight else _fine_round(group, pts)
            for i, fit in zip(members, done, strict=True):
                fits[i] = fit
    return fits


def _fine_round(requests: list[tuple[_Start, int]], pts: _Points) -> list[Fit]:
    """The fine pass of circles and rings (`Template.costs` without tilts; a ring's hole where it has one)."""
    radii = np.array([st.radius * _FINE_SCALES for st, _ in requests])  # (K, R)
    r32 = radii.astype(np.float32)
    margin = pts.spread(r32 + _BIAS) - pts.rho[None, :]  # (R, N)
    inner = np.array([st.tpl.inner for st, _ in requests], dtype=np.float32)
    if inner.any():
        hole = pts.rho[None, :] - pts.spread(inner[:, None] * r32 + _BIAS)
        np.minimum(margin, hole, out=margin, where=pts.each(inner > 0)[None, :])
    margin *= pts.sign
    np.maximum(margin, 0.0, out=margin)
    return _fine_fits(requests, pts, pts.sums(margin)[:, None, :], np.zeros((len(requests), 1)), radii)


def _fine_straight(requests: list[tuple[_Start, int]], pts: _Points) -> list[Fit]:
    """The fine pass of the straight-edged templates: `Template.costs` with each point's template's constants."""
    tpls = [st.tpl for st, _ in requests]
    tilts = np.array([st.tilt + _FINE_TILTS for st, _ in requests])  # (K, T)
    radii = np.array([st.radius * _FINE_SCALES for st, _ in requests])  # (K, R)
    periods = np.array([tpl.period for tpl in tpls])
    period32 = periods.astype(np.float32)
    inverse = np.array([1 / np.float32(tpl.period) for tpl in tpls], dtype=np.float32)
    skews = np.array([tpl.edge[1] / tpl.period for tpl in tpls]).astype(np.float32)
    apothems = np.array([tpl.edge[0] for tpl in tpls]).astype(np.float32)
    turns = (tilts / periods[:, None] + 0.5).astype(np.float32)
    x = (pts.angle * pts.each(inverse))[None, :] - pts.spread(turns)  # (T, N)
    x -= np.rint(x)
    np.abs(x, out=x, where=pts.each(skews != 0)[None, :])  # a star's two edges per period
    x -= pts.each(skews)[None, :]
    x *= pts.each(period32)[None, :]
    np.cos(x, out=x)
    x *= (pts.rho * pts.sign)[None, :]
    edge = pts.sign[None, :] * pts.spread(radii.astype(np.float32) * apothems[:, None] + _BIAS)  # (R, N)
    viol = edge[None, :, :] - x[:, None, :]  # (T, R, N)
    np.maximum(viol, 0.0, out=viol)
    return _fine_fits(requests, pts, pts.sums(viol), tilts, radii)


def _fine_fits(requests: list[tuple[_Start, int]], pts: _Points, cost: np.ndarray, tilts: np.ndarray,
               radii: np.ndarray) -> list[Fit]:
    """Each request's least-cost (tilt, radius) from its float32 costs (K, T, R), scaled and penalised as
    `shapefit._costs` does."""
    cost *= (pts.strides[:, None] / (2 * math.pi * radii))[:, None, :]
    areas = np.array([st.tpl.area for st, _ in requests])[:, None]
    total = cost + _penalty(pts.areas[:, None], areas, radii)[:, None, :]
    flat = total.reshape(len(requests), -1)
    best = flat.argmin(axis=1).tolist()
    fits = []
    for k, (st, _) in enumerate(requests):
        j, r = divmod(best[k], radii.shape[1])
        c = st.center
        fits.append(Fit(st.tpl.shape, (float(c[0]), float(c[1])), float(tilts[k, j]), float(radii[k, r]),
                        float(flat[k, best[k]])))
    return fits


def fit_many(jobs: Sequence[FitJob]) -> list[list[Fit]]:
    """`fit_shapes` of every job, in order: the centroid searches of all regions in one shared pass, then the
    fine passes of all whole regions' chosen starts in two; a partly hidden region is searched on its own."""
    first = [first_radii(job.ev, job.extent, job.bounds) for job in jobs]
    live = [k for k, f in enumerate(first) if f]
    results: list[list[Fit]] = [[] for _ in jobs]
    at_centroid = centroid_starts_many([first[k] for k in live], [jobs[k].ev for k in live])
    whole: list[tuple[int, int, list[_Start], list[bool]]] = []  # (job, its place among `live`, ...)
    for place, (k, starts_by_name) in enumerate(zip(live, at_centroid, strict=True)):
        job = jobs[k]
        if job.ev.occluded and not _whole_enough(sorted(st[0].cost for st in starts_by_name.values())):
            results[k] = fit_hidden(job.ev, all_radii(job.ev, job.extent, job.bounds), job.wider)
            continue
        # (a touching region that is whole lies on top of what it touches: fitted as a whole one)
        starts = [st for name in TEMPLATES if name in first[k] for st in starts_by_name[name]]
        whole.append((k, place, starts, refine_plan(starts)))
    requests = [(st, place) for _, place, starts, plan in whole
                for st, wanted in zip(starts, plan, strict=True) if wanted]
    if requests:
        fine = iter(fine_many(requests, _points([jobs[k].ev for k in live], 1)))
    for k, _, starts, plan in whole:
        results[k] = best_fits(starts, [next(fine) if wanted else None for wanted in plan])
    return results
