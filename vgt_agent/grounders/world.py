"""WorldGrounder: a classical segmenter for the shapes world, the default grounder without weights.

Objects are drawn in exact palette colours on grey backgrounds, so segmentation is colour thresholding
plus connected components; what remains hard is naming each region's shape when another object hides
part of it, which `shapefit` does by occlusion-aware template fitting. It never reads a scene graph: it
sees only pixels, like SAM3 would, so it can stand in for SAM3 in the agent loop and in rewards.
"""

from __future__ import annotations

import contextlib
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
from vgt_agent.grounders.concepts import describe, parse_concept
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


def confidence(fits: list[Fit]) -> float:
    """Score in (0, 1]: high when the best template fits well and clearly better than any other shape."""
    best = fits[0].cost
    runner_up = fits[1].cost if len(fits) > 1 else math.inf
    fit_quality = math.exp(-best / 2.0)
    margin = 1.0 - math.exp(-(runner_up - best) / 0.5) if math.isfinite(runner_up) else 1.0
    return max(0.01, round(fit_quality * (0.5 + 0.5 * margin), 4))


class WorldGrounder:
    """Colour threshold -> components -> template-fitted shape and size, cached per image."""

    name = "world"

    def __init__(self, colour_tolerance: int = 8, cache_size: int = 8, min_speck: float = 0.2) -> None:
        self.colour_tolerance = colour_tolerance
        self.cache_size = cache_size
        self.min_speck = min_speck  # regions smaller than this times a small object's radius squared
        self._cache: OrderedDict[str, list[Region]] = OrderedDict()
        self._lock = threading.Lock()
        self.segmentations = 0  # how many images were actually segmented (the rest came from the cache)

    def ground(self, image: Image.Image, concept: str) -> GroundingResult:
        """Every region matching the concept, best first; unknown words give an empty result with a reason."""
        parsed = parse_concept(concept)
        if not parsed.ok:
            return GroundingResult(concept=concept, reason=parsed.error, presence=0.0)
        regions = [r for r in self.segment(image) if parsed.matches(r.colour, r.shape, r.size)]
        regions = parsed.select(regions, key=lambda r: (SIZE_RANK[r.size], r.area))
        regions.sort(key=lambda r: (-r.score, r.box[1], r.box[0]))
        instances = [r.instance() for r in regions]
        presence = max((i.score for i in instances), default=0.0)
        return GroundingResult(concept=concept, instances=instances, presence=presence)

    def segment(self, image: Image.Image) -> list[Region]:
        """All objects in the image (cached by pixel content, so many concepts cost one segmentation)."""
        rgb = np.ascontiguousarray(image.convert("RGB"))
        digest = hashlib.blake2b(repr(rgb.shape).encode(), digest_size=16)
        digest.update(rgb.data)
        key = digest.hexdigest()
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        regions = self._segment(rgb)
        with self._lock:
            self.segmentations += 1
            self._cache[key] = regions
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return regions

    def _segment(self, rgb: np.ndarray) -> list[Region]:
        h, w = rgb.shape[:2]
        masks = self._colour_masks(rgb)
        anything = np.logical_or.reduce(list(masks.values()))
        radii = size_radii(min(h, w))
        min_area = max(4.0, self.min_speck * min(radii.values()) ** 2)
        pad = math.ceil(max(radii.values())) + 3
        # Outside the image counts as "hidden", like an occluder: an object cut by the border may go on.
        anything_p = np.pad(anything, pad, constant_values=True)
        regions: list[Region] = []
        for colour, mask in masks.items():
            labels, _ = ndimage.label(mask, structure=_EIGHT)
            labels_p = np.pad(labels, pad)
            for index, window in enumerate(ndimage.find_objects(labels), start=1):
                if window is None:
                    continue
                rows, cols = window
                crop = (slice(rows.start, rows.stop + 2 * pad), slice(cols.start, cols.stop + 2 * pad))
                region = labels_p[crop] == index
                area = int(np.count_nonzero(region))
                if area < min_area:
                    continue
                occluder = anything_p[crop] & ~(labels_p[crop] > 0)
                origin = (rows.start - pad, cols.start - pad)  # image row, col of the crop's corner
                regions.append(self._region(colour, region, occluder, origin, (h, w), radii))
        return regions

    def _colour_masks(self, rgb: np.ndarray) -> dict[str, np.ndarray]:
        """Pixels within the tolerance of each palette colour.

        Only saturated pixels are compared: a pixel within `tol` of a colour has a saturation (max - min
        channel) of at least the colour's minus 2 * tol, which rules out the grey background cheaply.
        """
        tol = self.colour_tolerance
        saturation = rgb.max(axis=2).astype(np.int16) - rgb.min(axis=2)
        floor = min(max(c) - min(c) for c in COLOURS.values()) - 2 * tol
        candidates = np.flatnonzero(saturation >= floor)
        pixels = rgb.reshape(-1, 3)[candidates].astype(np.int16)
        masks = {}
        for name, value in COLOURS.items():
            flat = np.zeros(rgb.shape[0] * rgb.shape[1], dtype=bool)
            flat[candidates[np.abs(pixels - value).max(axis=1) <= tol]] = True
            masks[name] = flat.reshape(rgb.shape[:2])
        return masks

    def _region(
        self,
        colour: str,
        region: np.ndarray,
        occluder: np.ndarray,
        origin: tuple[int, int],
        shape: tuple[int, int],
        radii: dict[str, float],
    ) -> Region:
        """Fit shapes to one component (given in a crop whose corner is image pixel `origin`) and place
        its mask back into the full image."""
        ev = evidence(region, occluder, origin, spacing=max(3, round(min(radii.values()) / 5)))
        fits = fit_shapes(ev, radii, _extent(ev.inside))
        full = np.zeros(shape, dtype=bool)
        ys, xs = np.nonzero(region)
        full[ys + origin[0], xs + origin[1]] = True
        full.flags.writeable = False  # shared by the cache and every Instance handed out
        if fits:
            best, score = fits[0], confidence(fits)
            shape_name, size = best.shape, best.size
        else:  # nothing fits (too big, too thin): keep it as an object of unknown shape, low confidence
            shape_name, size, score = "shape", self._size_by_area(ev.area, radii), 0.01
        return Region(
            colour=colour, shape=shape_name, size=size, score=score, mask=full,
            box=geometry.mask_to_box(full), point=geometry.mask_to_point(full), area=ev.area,
            fits=tuple(fits),
        )

    @staticmethod
    def _size_by_area(area: int, radii: dict[str, float]) -> str:
        return min(radii, key=lambda s: abs(math.log(area / (math.pi * radii[s] ** 2))))
