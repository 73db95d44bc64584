"""WorldGrounder: a classical segmenter for the shapes world, the default grounder without weights.

Objects are drawn in exact palette colours on grey backgrounds, so segmentation is colour thresholding
plus connected components; what remains hard is naming each region's shape when another object hides
part of it, which `shapefit` does by occlusion-aware template fitting. It never reads a scene graph: it
sees only pixels, like SAM3 would, so it can stand in for SAM3 in the agent loop and in rewards.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError

from vgt_agent import geometry
from vgt_agent.grounders.base import GroundingResult, Instance
from vgt_agent.grounders.concepts import Concept, describe, parse_concept
from vgt_agent.grounders.shapefit import Fit, evidence, fit_shapes, size_radii
from vgt_agent.world.palette import COLOURS

SIZE_RANK = {"small": 0, "medium": 1, "large": 2}
_EIGHT = np.ones((3, 3), dtype=bool)


@dataclass(frozen=True, eq=False)
class Region:
    """One segmented object: its visible mask and what the grounder believes it is."""

    colour: str
    shape: str
    size: str
    score: float  # confidence in the shape (the colour is exact)
    mask: np.ndarray  # (H, W) bool, the visible pixels
    box: geometry.Box
    point: tuple[int, int]
    area: int
    fits: tuple[Fit, ...] = ()  # every shape hypothesis, best first, for inspection

    @property
    def label(self) -> str:
        return describe(self.colour, self.shape)

    def instance(self) -> Instance:
        return Instance(mask=self.mask, box=self.box, point=self.point, score=self.score, label=self.label)


def _extent(points: np.ndarray) -> float:
    """Largest distance between two of the points (over their convex hull)."""
    if len(points) < 3:
        return 0.0
    with contextlib.suppress(QhullError):  # collinear points: use them all
        points = points[ConvexHull(points).vertices]
    d = points[:, None, :] - points[None, :, :]
    return float(np.sqrt((d**2).sum(-1)).max())


@functools.cache
def _tolerance_tables(tol: int) -> np.ndarray:
    """(3, 256) per channel and value: the bits of the palette colours whose channel is within `tol` of it."""
    if len(COLOURS) > 8:
        raise ValueError("the colour bit tables hold at most 8 palette colours")
    values = np.arange(256)
    tables = np.zeros((3, 256), dtype=np.uint8)
    for bit, rgb in enumerate(COLOURS.values()):
        for channel, value in enumerate(rgb):
            tables[channel, np.abs(values - value) <= tol] |= 1 << bit
    return tables


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
    pixels: np.ndarray  # (h, w) bool: the component within its tight box
    corner: tuple[int, int]  # image (row, col) of the box's top-left pixel
    hidden: np.ndarray | None  # (H, W) bool: pixels of the other colours, shared by the colour's components
    region: Region | None = None  # once fitted (then `hidden` is dropped)


def _colour_may_match(concept: Concept, colour: str) -> bool:
    """Whether an object of this colour can match the concept, whatever its shape and size (the colour test
    of `Clause.matches`)."""
    return any((c.colours is None or colour in c.colours) and colour not in c.not_colours for c in concept.clauses)


class WorldGrounder:
    """Colour threshold -> components -> template-fitted shape and size, cached per image; a component is
    fitted the first time a concept could match its colour."""

    name = "world"

    def __init__(self, colour_tolerance: int = 8, cache_size: int = 8, min_speck: float = 0.2) -> None:
        self.colour_tolerance = colour_tolerance
        self.cache_size = cache_size
        self.min_speck = min_speck  # regions smaller than this times a small object's radius squared
        self._cache: OrderedDict[str, list[_Component]] = OrderedDict()
        self._lock = threading.Lock()
        self.segmentations = 0  # how many images were actually segmented (the rest came from the cache)

    def ground(self, image: Image.Image, concept: str) -> GroundingResult:
        """Every region matching the concept, best first; unknown words give an empty result with a reason."""
        parsed = parse_concept(concept)
        if not parsed.ok:
            return GroundingResult(concept=concept, reason=parsed.error, presence=0.0)
        regions = [self._fitted(c) for c in self._components(image) if _colour_may_match(parsed, c.colour)]
        regions = [r for r in regions if parsed.matches(r.colour, r.shape, r.size)]
        regions = parsed.select(regions, key=lambda r: (SIZE_RANK[r.size], r.area))
        regions.sort(key=lambda r: (-r.score, r.box[1], r.box[0]))
        instances = [r.instance() for r in regions]
        presence = max((i.score for i in instances), default=0.0)
        return GroundingResult(concept=concept, instances=instances, presence=presence)

    def segment(self, image: Image.Image) -> list[Region]:
        """All objects in the image (cached by pixel content, so many concepts cost one segmentation)."""
        return [self._fitted(c) for c in self._components(image)]

    def _components(self, image: Image.Image) -> list[_Component]:
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        data = rgb.tobytes()  # hashed on every call, turned into an array only on a miss
        digest = hashlib.sha256(repr(rgb.size).encode())  # hardware-accelerated on most CPUs: ~2x blake2b
        digest.update(data)
        key = digest.hexdigest()
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        components = self._find(np.frombuffer(data, dtype=np.uint8).reshape(rgb.height, rgb.width, 3))
        with self._lock:
            self.segmentations += 1
            self._cache[key] = components
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return components

    def _find(self, rgb: np.ndarray) -> list[_Component]:
        """The connected components of each palette colour, big enough to be objects."""
        h, w = rgb.shape[:2]
        bits = self._colour_bits(rgb)
        anything = bits.astype(bool)
        radii = size_radii(min(h, w))
        min_area = max(4.0, self.min_speck * min(radii.values()) ** 2)
        components: list[_Component] = []
        for bit, colour in enumerate(COLOURS):
            mask = (bits & (1 << bit)).astype(bool)
            rows_any, cols_any = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
            if not rows_any.size:
                continue
            # Label within the colour's bounding box only: the numbering (raster order) is the same.
            top, left = int(rows_any[0]), int(cols_any[0])
            labels, _ = ndimage.label(mask[top : rows_any[-1] + 1, left : cols_any[-1] + 1], structure=_EIGHT)
            hidden = anything & ~mask
            for index, window in enumerate(ndimage.find_objects(labels), start=1):
                if window is None:
                    continue
                pixels = labels[window] == index
                if np.count_nonzero(pixels) < min_area:
                    continue
                rows, cols = window
                components.append(_Component(colour, pixels, (top + rows.start, left + cols.start), hidden))
        return components

    def _colour_bits(self, rgb: np.ndarray) -> np.ndarray:
        """(H, W) uint8 with bit i set where the pixel is within the tolerance of palette colour i (in every
        channel): one table lookup per channel instead of a comparison per colour."""
        tables = _tolerance_tables(self.colour_tolerance)
        flat = rgb.reshape(-1, 3)
        bits = tables[0].take(flat[:, 0]) & tables[1].take(flat[:, 1]) & tables[2].take(flat[:, 2])
        return bits.reshape(rgb.shape[:2])

    def _fitted(self, c: _Component) -> Region:
        """The component's region, fitted on first use (threads racing here compute the same region)."""
        hidden = c.hidden
        if c.region is None and hidden is not None:  # hidden is dropped only after region is set
            c.region, c.hidden = self._region(c, hidden), None
        return c.region

    def _region(self, c: _Component, hidden: np.ndarray) -> Region:
        """Fit shapes to one component and place its mask back into the full image.

        The fit sees the component's box grown by the largest object's radius: the component's pixels, and
        the pixels of other colours (and outside the image) as hidden, where an object may go on.
        """
        shape = hidden.shape
        radii = size_radii(min(shape))
        pad = math.ceil(max(radii.values())) + 3
        (r0, c0), (bh, bw) = c.corner, c.pixels.shape
        region = np.zeros((bh + 2 * pad, bw + 2 * pad), dtype=bool)
        region[pad:-pad, pad:-pad] = c.pixels
        occluder = _window(hidden, r0 - pad, c0 - pad, region.shape, fill=True)
        ev = evidence(region, occluder, (r0 - pad, c0 - pad), spacing=max(3, round(min(radii.values()) / 5)))
        fits = fit_shapes(ev, radii, _extent(ev.outline))
        full = np.zeros(shape, dtype=bool)
        full[r0 : r0 + bh, c0 : c0 + bw] = c.pixels
        full.flags.writeable = False  # shared by the cache and every Instance handed out
        if fits:
            best, score = fits[0], confidence(fits)
            shape_name, size = best.shape, best.size
        else:  # nothing fits (too big, too thin): keep it as an object of unknown shape, low confidence
            shape_name, size, score = "shape", self._size_by_area(ev.area, radii), 0.01
        # The tight box is the component's; the point depends only on the pixels in it (mask_to_point crops
        # to the box itself), so both come from the small crop rather than the full image.
        col, row = geometry.mask_to_point(c.pixels)
        return Region(
            colour=c.colour, shape=shape_name, size=size, score=score, mask=full,
            box=(float(c0), float(r0), float(c0 + bw), float(r0 + bh)), point=(col + c0, row + r0),
            area=ev.area, fits=tuple(fits),
        )

    @staticmethod
    def _size_by_area(area: int, radii: dict[str, float]) -> str:
        return min(radii, key=lambda s: abs(math.log(area / (math.pi * radii[s] ** 2))))


def _window(array: np.ndarray, top: int, left: int, shape: tuple[int, int], fill: bool) -> np.ndarray:
    """`array[top : top + h, left : left + w]` with the part outside the array set to `fill`."""
    h, w = shape
    out = np.full(shape, fill, dtype=array.dtype)
    r0, c0 = max(top, 0), max(left, 0)
    r1, c1 = min(top + h, array.shape[0]), min(left + w, array.shape[1])
    if r0 < r1 and c0 < c1:
        out[r0 - top : r1 - top, c0 - left : c1 - left] = array[r0:r1, c0:c1]
    return out
