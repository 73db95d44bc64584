"""WorldGrounder: a classical segmenter for flat-shapes scenes, the default grounder without weights.

Every pixel is named by `world.colours` (the nearest named hue, or none for greys, creams and pale tints),
so any shade of a colour is found, not only the world's own; each named component's edge is then settled
against its local background (a pixel belongs to the object when its colour is at least half-way from the
background to the object's), which undoes anti-aliasing and JPEG colour bleed. What remains hard is naming
each region's shape when another object hides part of it, which `shapefit` does by occlusion-aware template
fitting with a continuous radius. It never reads a scene graph: it sees only pixels, like SAM3 would, so it
can stand in for SAM3 in the agent loop and in rewards; `world_scope` tells it when an image is not a
flat-shapes scene at all.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from functools import cached_property, partial

import numpy as np
from PIL import Image
from scipy import ndimage

from vgt_agent import geometry
from vgt_agent.grounders.base import GroundingResult, Instance
from vgt_agent.grounders.shapefit import Evidence, Fit, _dilate, _erode, evidence, size_of, size_radii
from vgt_agent.grounders.shapefit_many import FitJob, Stack, evidence_stack, fit_many
from vgt_agent.grounders.world_scope import image_scope
from vgt_agent.world.colours import NAMES, name_pixels
from vgt_agent.world.concepts import Concept, describe, parse_concept

SIZE_RANK = {"small": 0, "medium": 1, "large": 2}
_EIGHT = np.ones((3, 3), dtype=bool)
# Radius bounds (fractions of the image's shorter side) of anything the fit calls a shape.
RADIUS_BOUNDS = (0.004, 0.3)
# Edge settling: how far (px) beyond a named component its edge may move, how far a pixel's colour may lie
# off the background-to-object line (px of RGB: at least the first, or the second times the line's length),
# and how distinct (RGB distance) object and background must be for it to be tried at all.
EDGE_BAND = 2
EDGE_OFF_LINE = (20.0, 0.35)
EDGE_MIN_CONTRAST = 30.0
RIM_OFF_LINE = 30.0  # the off-line bound for a pixel another (smaller) component holds
# A blend's coverage read from its chroma alone (the (Cb, Cr) plane of YCbCr) must reach this too: a grey
# line darker than the background can sit half-way to a dark object in RGB, never in chroma.
MIN_CHROMA_COVERAGE = 0.3
_CHROMA = np.array([[-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])  # RGB -> (Cb, Cr)


@dataclass(frozen=True, eq=False)
class Region:
    """One segmented object: its visible mask and what the grounder believes it is."""

    colour: str
    shape: str
    size: str
    score: float  # confidence in the shape (the colour is named with a margin)
    mask: np.ndarray  # (H, W) bool, the visible pixels
    box: geometry.Box
    area: int
    fits: tuple[Fit, ...] = ()  # every shape hypothesis, best first, for inspection

    @property
    def label(self) -> str:
        return describe(self.colour, self.shape)

    @cached_property
    def point(self) -> tuple[int, int]:
        """`geometry.mask_to_point` of the mask (col, row), measured when first read (a distance transform:
        about a third of a whole region's cost, and `ground` reads it only for the regions a concept matches).
        The tight box is the component's, so the crop to it holds every pixel of the mask."""
        x0, y0, x1, y1 = (int(v) for v in self.box)
        col, row = _inner_point(self.mask[y0:y1, x0:x1])
        return col + x0, row + y0

    def instance(self) -> Instance:
        return Instance(mask=self.mask, box=self.box, point=self.point, score=self.score, label=self.label)


_DIRECTIONS = np.stack([np.cos(np.arange(32) * np.pi / 32), np.sin(np.arange(32) * np.pi / 32)])


def _extent(points: np.ndarray) -> float:
    """Largest distance between two of the points, from their widths along 32 directions (at most 0.5%
    short of the true diameter)."""
    if len(points) < 2:
        return 0.0
    widths = points @ _DIRECTIONS
    return float((widths.max(axis=0) - widths.min(axis=0)).max())


def _extents(evs: list[Evidence]) -> list[float]:
    """`_extent` of each evidence's outline, the widths of all of them in one product."""
    lengths = [len(ev.outline) for ev in evs]
    widths = np.concatenate([ev.outline for ev in evs]) @ _DIRECTIONS
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    spans = (np.maximum.reduceat(widths, starts, axis=0) - np.minimum.reduceat(widths, starts, axis=0)).max(axis=1)
    return [float(span) if n >= 2 else 0.0 for span, n in zip(spans.tolist(), lengths, strict=True)]


def confidence(fits: list[Fit]) -> float:
    """Score in (0, 1]: high when the best template fits well and clearly better than any other shape."""
    best = fits[0].cost
    runner_up = fits[1].cost if len(fits) > 1 else math.inf
    fit_quality = math.exp(-best / 2.0)
    margin = 1.0 - math.exp(-(runner_up - best) / 0.5) if math.isfinite(runner_up) else 1.0
    return max(0.01, round(fit_quality * (0.5 + 0.5 * margin), 4))


@dataclass(eq=False)
class _Component:
    """One colour component, found but not yet fitted: a concept that rules its colour out never pays for
    the fit, which is most of the segmentation's cost."""

    colour: str
    index: int  # of the colour in `colours.NAMES`
    pixels: np.ndarray  # (h, w) bool: the component within its tight box
    corner: tuple[int, int]  # image (row, col) of the box's top-left pixel
    colour_of: np.ndarray | None  # (H, W) int8 colour index of every object pixel (-1 none), shared
    region: Region | None = None  # once fitted (then `colour_of` is dropped)


def _colour_may_match(concept: Concept, colour: str) -> bool:
    """Whether an object of this colour can match the concept, whatever its shape and size (the colour test
    of `Clause.matches`)."""
    return any((c.colours is None or colour in c.colours) and colour not in c.not_colours for c in concept.clauses)


_UNSEEN = "unseen"
# Every this-many-th byte of an image keys the cache (a prime: not in step with rows or channels).
_KEY_STRIDE = 4099


@dataclass(eq=False)
class _Segmentation:
    """One image's cached analysis: its components, its pixels, and (once asked) whether it is a flat-shapes scene."""

    components: list[_Component]
    data: bytes  # the image's RGB bytes, which a cache hit must equal
    scope: str | None = _UNSEEN


class WorldGrounder:
    """Colour names -> components -> settled edges -> template-fitted shape and size, cached per image; a
    component is fitted the first time a concept could match its colour."""

    name = "world"

    def __init__(self, cache_size: int = 8, min_speck: float = 0.2) -> None:
        self.cache_size = cache_size
        self.min_speck = min_speck  # regions smaller than this times a small object's radius squared
        # Keyed by size and a pixel sample, holding the image's bytes: a hit is the same pixels, compared
        # whole (memcmp: ~30x cheaper than hashing them).
        self._cache: OrderedDict[tuple[tuple[int, int], bytes], _Segmentation] = OrderedDict()
        self._lock = threading.Lock()
        self.segmentations = 0  # how many images were actually segmented (the rest came from the cache)

    def ground(self, image: Image.Image, concept: str) -> GroundingResult:
        """Every region matching the concept, best first; unknown words, or an image that is no flat-shapes
        scene, give an empty result with the reason."""
        parsed = parse_concept(concept)
        if not parsed.ok:
            return GroundingResult(concept=concept, reason=parsed.error, presence=0.0)
        seen = self._segmentation(image)
        scope = _scope(seen, image)
        if scope is not None:
            return GroundingResult(concept=concept, reason=scope, presence=0.0)
        regions = self._fitted_all([c for c in seen.components if _colour_may_match(parsed, c.colour)])
        regions = [r for r in regions if parsed.matches(r.colour, r.shape, r.size)]
        regions = parsed.select(regions, key=lambda r: (SIZE_RANK[r.size], r.area), position=lambda r: r.point)
        regions.sort(key=lambda r: (-r.score, r.box[1], r.box[0]))
        instances = [r.instance() for r in regions]
        presence = max((i.score for i in instances), default=0.0)
        return GroundingResult(concept=concept, instances=instances, presence=presence)

    def segment(self, image: Image.Image) -> list[Region]:
        """All objects in the image (cached by pixel content, so many concepts cost one segmentation), whether
        or not it looks like a flat-shapes scene."""
        return self._fitted_all(self._segmentation(image).components)

    def scope(self, image: Image.Image) -> str | None:
        """None for a flat-shapes scene, else why the image is not one (cached with the segmentation)."""
        return _scope(self._segmentation(image), image)

    def _segmentation(self, image: Image.Image) -> _Segmentation:
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        data = rgb.tobytes()  # compared on a cache hit, turned into an array only on a miss
        key = (rgb.size, data[::_KEY_STRIDE])  # a sample of the pixels: the entry's bytes settle a hit exactly
        with self._lock:
            seen = self._cache.get(key)
            if seen is not None and seen.data == data:
                self._cache.move_to_end(key)
                return seen
        pixels = np.frombuffer(data, dtype=np.uint8).reshape(rgb.height, rgb.width, 3)
        seen = _Segmentation(self._find(pixels), data)
        with self._lock:
            self.segmentations += 1
            self._cache[key] = seen  # an image sharing the sample, not the bytes, takes its place
            self._cache.move_to_end(key)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return seen

    def _find(self, rgb: np.ndarray) -> list[_Component]:
        """The connected components of each named colour, big and thick enough to be objects, their edges
        settled against the local background."""
        h, w = rgb.shape[:2]
        names = name_pixels(rgb)
        radii = size_radii(min(h, w))
        min_area = max(4.0, self.min_speck * min(radii.values()) ** 2)
        found: list[tuple[int, np.ndarray, tuple[int, int]]] = []
        for index in range(len(NAMES)):
            mask = names == index
            if np.count_nonzero(mask) < min_area:  # (cheaper than counting every name in one bincount)
                continue
            rows_any, cols_any = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
            # Label within the colour's bounding box only: the numbering (raster order) is the same.
            top, left = int(rows_any[0]), int(cols_any[0])
            labels, _ = ndimage.label(mask[top : rows_any[-1] + 1, left : cols_any[-1] + 1], structure=_EIGHT)
            for number, window in enumerate(ndimage.find_objects(labels), start=1):
                if window is None:
                    continue
                pixels = labels[window] == number
                area = np.count_nonzero(pixels)
                if area < min_area or not _erode(pixels).any():  # specks and seams
                    continue
                rows, cols = window
                found.append((int(index), pixels, (top + rows.start, left + cols.start), area))
        # Largest first, each settled edge claims its pixels: the rim a blend leaves around an object (an
        # orange disc's edge on grey reads yellow) goes to the object, and what is left of the rim is dropped.
        found.sort(key=lambda f: -f[3])
        owner = np.full(names.shape, -1, dtype=np.int32)
        for number, (_, pixels, corner, _) in enumerate(found):
            _paste_value(owner, pixels, corner, number)
        colour_of = names.copy()  # each pixel's object colour: its name, or the colour of the object it went to
        components = []
        for number, (index, pixels, corner, area) in enumerate(found):
            still = _crop(owner, corner, pixels.shape) == number
            kept = np.count_nonzero(still)  # still is within pixels: all of them, or what larger edges left
            if kept < area and (kept < max(min_area, 0.5 * area) or not _erode(still).any()):
                continue  # mostly claimed by a larger object's edge
            pixels, corner = settle_edges(rgb, names, owner, number, still, corner)
            if np.count_nonzero(pixels) >= min_area:
                _paste_value(owner, pixels, corner, number)
                _paste_value(colour_of, pixels, corner, index)
                components.append(_Component(NAMES[index], index, pixels, corner, colour_of))
        return components

    def _fitted_all(self, components: list[_Component]) -> list[Region]:
        """The components' regions, those not yet fitted fitted together (evidence and fit in shared array
        passes); threads racing here compute the same regions."""
        pending = [(c, c.colour_of) for c in components if c.region is None]
        pending = [(c, colour_of) for c, colour_of in pending if colour_of is not None]  # dropped once fitted
        if pending:
            jobs = _fit_jobs(pending)
            for (c, colour_of), job, fits in zip(pending, jobs, fit_many(jobs), strict=True):
                c.region, c.colour_of = _region(c, colour_of.shape, job.ev, fits), None
        return [c.region for c in components]


_PAD = 3  # px around a component's box that its fit sees (the background beyond its edge)


def _fit_jobs(pending: list[tuple[_Component, np.ndarray]]) -> list[FitJob]:
    """What the fit of each component sees: its box grown by `_PAD`, the component's pixels, and the pixels
    of other objects (and outside the image) as hidden; the evidence of all of them in one stack. A
    component that touches another object and is not whole after all is searched on its box grown by 60% of
    its size, as far as a hidden part may reach (`wider`, made only then)."""
    side = min(pending[0][1].shape)
    smallest = min(size_radii(side).values())
    shapes = [(c.pixels.shape[0] + 2 * _PAD, c.pixels.shape[1] + 2 * _PAD) for c, _ in pending]
    origins = [(c.corner[0] - _PAD, c.corner[1] - _PAD) for c, _ in pending]
    spacings = [_spacing(smallest, c.pixels.shape) for c, _ in pending]
    stack = Stack.empty(shapes, origins, spacings)
    for k, (c, colour_of) in enumerate(pending):
        rows, cols = stack.window(k)
        stack.region[rows.start + _PAD : rows.stop - _PAD, _PAD : cols.stop - _PAD] = c.pixels
        stack.occluder[rows, cols] = _hidden(c.index, _window(colour_of, *origins[k], shapes[k], fill=_OUTSIDE))
    bounds = (max(2.0, RADIUS_BOUNDS[0] * side), RADIUS_BOUNDS[1] * side)
    evs = evidence_stack(stack)
    return [FitJob(ev, extent, bounds, partial(_wider, c, colour_of, spacing))
            for ev, extent, (c, colour_of), spacing in zip(evs, _extents(evs), pending, spacings, strict=True)]


def _spacing(smallest: float, box: tuple[int, int]) -> int:
    """The interior lattice's spacing (px) for a component's box, given the smallest size class's radius."""
    return max(2, min(round(smallest / 5), round(max(box) / 8)))


def _wider(c: _Component, colour_of: np.ndarray, spacing: int) -> Evidence:
    """The component's evidence on its box grown by 60% of its size, as far as a hidden part may reach."""
    (r0, c0), (bh, bw) = c.corner, c.pixels.shape
    pad = math.ceil(0.6 * max(bh, bw)) + 3
    region = np.zeros((bh + 2 * pad, bw + 2 * pad), dtype=bool)
    region[pad:-pad, pad:-pad] = c.pixels
    occluder = _hidden(c.index, _window(colour_of, r0 - pad, c0 - pad, region.shape, fill=_OUTSIDE))
    return evidence(region, occluder, (r0 - pad, c0 - pad), spacing=spacing)


def _region(c: _Component, shape: tuple[int, int], ev: Evidence, fits: list[Fit]) -> Region:
    """The fitted component as a region, its mask placed back into the full image."""
    side = min(shape)
    (r0, c0), (bh, bw) = c.corner, c.pixels.shape
    full = np.zeros(shape, dtype=bool)
    full[r0 : r0 + bh, c0 : c0 + bw] = c.pixels
    full.flags.writeable = False  # shared by the cache and every Instance handed out
    if fits:
        best, score = fits[0], confidence(fits)
        shape_name, size = best.shape, size_of(best.radius, side)
    else:  # nothing fits (too big, too thin): keep it as an object of unknown shape, low confidence
        shape_name, size, score = "shape", size_of(math.sqrt(ev.area / math.pi), side), 0.01
    return Region(
        colour=c.colour, shape=shape_name, size=size, score=score, mask=full,
        box=(float(c0), float(r0), float(c0 + bw), float(r0 + bh)), area=ev.area, fits=tuple(fits),
    )


def settle_edges(
    rgb: np.ndarray, names: np.ndarray, owner: np.ndarray, number: int, pixels: np.ndarray, corner: tuple[int, int]
) -> tuple[np.ndarray, tuple[int, int]]:
    """A named component's pixels with its edge settled: within `EDGE_BAND` px of the component's core, a
    pixel no larger component (`owner`, numbered largest first) has settled belongs to the object when its
    colour lies near the line from the local background's colour to the object's, at least half-way along
    (>= 50% coverage of an anti-aliased edge; a blend may carry another colour's name: orange on grey reads
    yellow).

    Returns the new tight pixels and their corner; the component unchanged when all its pixels have one
    exact colour (hard edges), its core or its background ring is too small to measure, or the two colours
    are too alike.
    """
    h, w = names.shape
    (r0, c0), (bh, bw) = corner, pixels.shape
    if _one_colour(rgb[r0 : r0 + bh, c0 : c0 + bw], pixels):  # drawn without blending: no edge to settle
        return pixels, corner
    pad = EDGE_BAND + 2
    top, left, bottom, right = max(r0 - pad, 0), max(c0 - pad, 0), min(r0 + bh + pad, h), min(c0 + bw + pad, w)
    comp = np.zeros((bottom - top, right - left), dtype=bool)
    comp[r0 - top : r0 - top + bh, c0 - left : c0 - left + bw] = pixels
    core = _erode(comp)
    grown = comp
    for _ in range(EDGE_BAND):
        grown = _dilate(grown)
    window_names = names[top:bottom, left:right]
    ring = _dilate(_dilate(grown)) & ~grown & (window_names < 0)
    if np.count_nonzero(core) < 4 or np.count_nonzero(ring) < 4:
        return pixels, corner
    window = rgb[top:bottom, left:right]
    colour = np.median(window[core], axis=0)
    background = np.median(window[ring], axis=0)
    line = colour - background
    length = float(np.sqrt(line @ line))
    if length < EDGE_MIN_CONTRAST:
        return pixels, corner
    window_owner = owner[top:bottom, left:right]
    band = grown & ~core & ((window_owner < 0) | (window_owner >= number))  # not a larger, settled one
    offset = window[band].astype(np.float64) - background
    alpha = offset @ line / length**2
    chroma_line = _CHROMA @ line
    chroma_alpha = (offset @ _CHROMA.T) @ chroma_line / max(float(chroma_line @ chroma_line), 1e-9)
    off_line = np.linalg.norm(offset - alpha[:, None] * line, axis=1)
    settled = core.copy()
    # A pixel a smaller component holds joins only as a near-exact blend (its rim), never as another object.
    loose = max(EDGE_OFF_LINE[0], EDGE_OFF_LINE[1] * length)
    tolerance = np.where(window_owner[band] > number, RIM_OFF_LINE, loose)
    settled[band] = (alpha >= 0.5) & (chroma_alpha >= MIN_CHROMA_COVERAGE) & (off_line <= tolerance)
    if not settled.any():
        return pixels, corner
    rows, cols = np.flatnonzero(settled.any(axis=1)), np.flatnonzero(settled.any(axis=0))
    crop = settled[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    return crop, (top + int(rows[0]), left + int(cols[0]))


def _one_colour(window: np.ndarray, pixels: np.ndarray) -> bool:
    """Whether all the (non-empty) mask's pixels of the RGB window have one exact colour: a channel at a time
    over the window (a gather of the masked pixels costs ~4x more)."""
    v = window[divmod(int(pixels.argmax()), pixels.shape[1])]
    same = window[..., 0] == v[0]
    same &= window[..., 1] == v[1]
    same &= window[..., 2] == v[2]
    return not (pixels & ~same).any()


def _inner_point(pixels: np.ndarray) -> tuple[int, int]:
    """`geometry.mask_to_point` of a component's crop (col, row within it), the same pixel by the same rule,
    without re-finding the box: the crop holds the component's tight box, and any empty rows or columns around
    it are background, as mask_to_point's crop border is."""
    dist = ndimage.distance_transform_edt(_pad1(pixels))[1:-1, 1:-1]
    maxima = np.argwhere(dist == dist.max())
    if len(maxima) == 1:
        return int(maxima[0, 1]), int(maxima[0, 0])
    if len(maxima) * max(pixels.shape) > 2**30:  # past where the exact int64 tie-break is safe
        return geometry.mask_to_point(pixels)
    coords = maxima.astype(np.int64)
    offsets = len(maxima) * coords - coords.sum(axis=0)  # n * (offset from the maxima's centroid)
    row, col = maxima[int(np.argmin((offsets**2).sum(axis=1)))]
    return int(col), int(row)


def _pad1(pixels: np.ndarray) -> np.ndarray:
    """`np.pad(pixels, 1)` (a false border), without np.pad's per-call overhead."""
    out = np.zeros((pixels.shape[0] + 2, pixels.shape[1] + 2), dtype=pixels.dtype)
    out[1:-1, 1:-1] = pixels
    return out


def _scope(seen: _Segmentation, image: Image.Image) -> str | None:
    """The image's scope, measured the first time it is asked for (segmenting alone never pays for it)."""
    if seen.scope is _UNSEEN:
        seen.scope = image_scope(image)
    return seen.scope


def _paste_value(target: np.ndarray, pixels: np.ndarray, corner: tuple[int, int], value: int) -> None:
    """Set a component's tight pixels to `value` in an image-sized array."""
    r0, c0 = corner
    target[r0 : r0 + pixels.shape[0], c0 : c0 + pixels.shape[1]][pixels] = value


def _crop(array: np.ndarray, corner: tuple[int, int], shape: tuple[int, int]) -> np.ndarray:
    r0, c0 = corner
    return array[r0 : r0 + shape[0], c0 : c0 + shape[1]]


_OUTSIDE = 127  # `colour_of` beyond the image: hidden from every colour


def _hidden(index: int, colours: np.ndarray) -> np.ndarray:
    """Where a `colour_of` window holds another object (or lies outside the image): what may hide an object
    of colour `index`."""
    return (colours >= 0) & (colours != index)


def _window(array: np.ndarray, top: int, left: int, shape: tuple[int, int], fill: int) -> np.ndarray:
    """`array[top : top + h, left : left + w]` with the part outside the array set to `fill`."""
    h, w = shape
    out = np.full(shape, fill, dtype=array.dtype)
    r0, c0 = max(top, 0), max(left, 0)
    r1, c1 = min(top + h, array.shape[0]), min(left + w, array.shape[1])
    if r0 < r1 and c0 < c1:
        out[r0 - top : r1 - top, c0 - left : c1 - left] = array[r0:r1, c0:c1]
    return out
