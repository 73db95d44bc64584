"""A scene: background, distractors and objects placed so that instance masks stay exact.

Placement enforces the invariants segmentation relies on: objects of one colour never touch (a gap of at
least `gap` background pixels), and an occluded object stays at least `min_visible` visible and one
4-connected piece. Objects are drawn in list order, so later objects occlude earlier ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from vgt_agent import geometry
from vgt_agent.world.palette import BACKGROUNDS, COLOURS, SHAPES, SIZES
from vgt_agent.world.shapes import MAX_TILT_DEGREES, shape_mask

TEXTURES: tuple[str, ...] = ("noise", "stripes", "checker")
SIZE_ORDER: tuple[str, ...] = ("small", "medium", "large")
_MARGIN = 4  # pixels between an object's bounding circle and the image border


class PlacementError(RuntimeError):
    """The requested objects did not fit; callers draw a new scene."""


@dataclass(frozen=True)
class Attr:
    """What to place: shape and colour fixed, size fixed or None for "any size that fits"."""

    shape: str
    colour: str
    size: str | None = None


@dataclass(frozen=True)
class SceneSpec:
    """How to build one scene: the objects (in drawing order) and the look of the image."""

    objects: tuple[Attr, ...]
    width: int = 448
    height: int = 448
    occlusion: bool = False
    texture: bool = False
    distractors: int = 0
    min_visible: float = 0.6
    gap: int = 2
    tries: int = 300


@dataclass(eq=False)
class WorldObject:
    """One placed object. `full`/`visible` are local masks whose top-left pixel is image (x0, y0)."""

    id: int
    shape: str
    colour: str
    size: str
    cx: float
    cy: float
    radius: float
    tilt: float
    x0: int
    y0: int
    full: np.ndarray
    visible: np.ndarray

    @property
    def name(self) -> str:
        return f"{self.size} {self.colour} {self.shape}"

    @property
    def center(self) -> tuple[float, float]:
        return self.cx, self.cy

    @property
    def area(self) -> int:
        return int(np.count_nonzero(self.visible))

    @property
    def visible_fraction(self) -> float:
        return self.area / max(1, int(np.count_nonzero(self.full)))

    @property
    def box(self) -> tuple[float, float, float, float]:
        """Visible box in image pixel edges (same as geometry.mask_to_box on the full-image mask)."""
        x1, y1, x2, y2 = geometry.mask_to_box(self.visible)
        return x1 + self.x0, y1 + self.y0, x2 + self.x0, y2 + self.y0

    @property
    def point(self) -> tuple[int, int]:
        """Distance-transform maximum of the visible mask; the local mask has a background border, so
        this equals geometry.mask_to_point on the full-image mask."""
        c, r = geometry.mask_to_point(self.visible)
        return c + self.x0, r + self.y0

    def image_mask(self, height: int, width: int) -> np.ndarray:
        """The visible mask in image coordinates."""
        out = np.zeros((height, width), dtype=bool)
        h, w = self.visible.shape
        out[self.y0 : self.y0 + h, self.x0 : self.x0 + w] = self.visible
        return out


@dataclass(frozen=True)
class Background:
    """Plain tone, or a grey texture between `tone` and `tone2`; `seed` makes noise reproducible."""

    kind: str  # "plain" | "noise" | "stripes" | "checker"
    tone: tuple[int, int, int]
    tone2: tuple[int, int, int]
    period: int = 0  # stripe / checker cell size, or noise amplitude
    direction: int = 0  # stripes: 0 horizontal, 1 vertical, 2 diagonal
    seed: int = 0


@dataclass(frozen=True)
class Distractor:
    """A thin grey line ("line", xy = x1, y1, x2, y2) or dot ("dot", xy = cx, cy, r) under the objects."""

    kind: str
    xy: tuple[float, ...]
    grey: int
    width: int = 1


@dataclass
class Scene:
    width: int
    height: int
    background: Background
    objects: list[WorldObject] = field(default_factory=list)
    distractors: list[Distractor] = field(default_factory=list)


def _overlap(a: WorldObject, mask: np.ndarray, x0: int, y0: int) -> tuple[slice, slice, slice, slice] | None:
    """Slices of a.visible and of `mask` (at x0, y0) covering their common image window, or None."""
    ah, aw = a.visible.shape
    mh, mw = mask.shape
    left, right = max(a.x0, x0), min(a.x0 + aw, x0 + mw)
    top, bottom = max(a.y0, y0), min(a.y0 + ah, y0 + mh)
    if left >= right or top >= bottom:
        return None
    return (
        slice(top - a.y0, bottom - a.y0), slice(left - a.x0, right - a.x0),
        slice(top - y0, bottom - y0), slice(left - x0, right - x0),
    )


def _occlude(
    objects: list[WorldObject], mask: np.ndarray, x0: int, y0: int, min_visible: float
) -> dict[int, np.ndarray] | None:
    """New visible masks of the objects a new mask would cover, or None if one would become too hidden
    or split into pieces."""
    updated: dict[int, np.ndarray] = {}
    for o in objects:
        win = _overlap(o, mask, x0, y0)
        if win is None:
            continue
        ar, ac, mr, mc = win
        hit = o.visible[ar, ac] & mask[mr, mc]
        if not hit.any():
            continue
        vis = o.visible.copy()
        vis[ar, ac] &= ~mask[mr, mc]
        if np.count_nonzero(vis) < min_visible * np.count_nonzero(o.full):
            return None
        if ndimage.label(vis)[1] != 1:
            return None
        updated[o.id] = vis
    return updated


def _pick_size(rng: np.random.Generator, attr: Attr, attempt: int, tries: int) -> str:
    if attr.size is not None:
        return attr.size
    # Crowded scenes: after many failures, only smaller sizes are tried.
    if attempt < tries // 2:
        allowed = SIZE_ORDER
    else:
        allowed = SIZE_ORDER[:2] if attempt < 3 * tries // 4 else SIZE_ORDER[:1]
    return str(allowed[int(rng.integers(len(allowed)))])


def _place(rng: np.random.Generator, spec: SceneSpec, objects: list[WorldObject], attr: Attr) -> WorldObject:
    side = min(spec.width, spec.height)
    for attempt in range(spec.tries):
        size = _pick_size(rng, attr, attempt, spec.tries)
        r = SIZES[size] * side / 2
        lo_x, hi_x = r + _MARGIN, spec.width - r - _MARGIN
        lo_y, hi_y = r + _MARGIN, spec.height - r - _MARGIN
        if lo_x >= hi_x or lo_y >= hi_y:
            raise PlacementError(f"a {size} object does not fit a {spec.width}x{spec.height} image")
        others = [o for o in objects if o.colour != attr.colour]
        if spec.occlusion and others and rng.random() < 0.5:
            # Aim for a partial overlap with a differently coloured object, so occlusion actually happens.
            o = others[int(rng.integers(len(others)))]
            a = rng.uniform(0, 2 * math.pi)
            d = (o.radius + r) * rng.uniform(0.55, 0.95)
            cx = min(max(o.cx + d * math.cos(a), lo_x), hi_x)
            cy = min(max(o.cy + d * math.sin(a), lo_y), hi_y)
        else:
            cx, cy = rng.uniform(lo_x, hi_x), rng.uniform(lo_y, hi_y)
        max_tilt = MAX_TILT_DEGREES[attr.shape]
        tilt = float(rng.uniform(-max_tilt, max_tilt)) if max_tilt else 0.0
        # Bounding circles decide most cases without touching masks; the slack covers rasterisation and
        # diagonal gaps (a Euclidean gap of 1.5 * gap keeps `gap` clear pixels in every direction).
        covered: list[WorldObject] = []
        ok = True
        for o in objects:
            if math.hypot(o.cx - cx, o.cy - cy) > o.radius + r + 3 + 1.5 * spec.gap:
                continue
            if not spec.occlusion or o.colour == attr.colour:
                ok = False
                break
            covered.append(o)
        if not ok:
            continue
        mask, x0, y0 = shape_mask(attr.shape, cx, cy, r, tilt)
        updated = _occlude(covered, mask, x0, y0, spec.min_visible) if covered else {}
        if updated is None:
            continue
        for o in covered:
            if o.id in updated:
                o.visible = updated[o.id]
        return WorldObject(
            id=len(objects), shape=attr.shape, colour=attr.colour, size=size, cx=float(cx), cy=float(cy),
            radius=r, tilt=tilt, x0=x0, y0=y0, full=mask, visible=mask.copy(),
        )
    raise PlacementError(f"could not place a {attr.colour} {attr.shape} after {spec.tries} tries")


def _background(rng: np.random.Generator, texture: bool) -> Background:
    tone = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
    if not texture:
        return Background("plain", tone, tone)
    kind = TEXTURES[int(rng.integers(len(TEXTURES)))]
    delta = int(rng.integers(10, 26))
    tone2 = (tone[0] - delta, tone[1] - delta, tone[2] - delta)
    period = int(rng.integers(6, 15)) if kind == "noise" else int(rng.integers(8, 40))
    return Background(
        kind, tone, tone2, period=period, direction=int(rng.integers(3)), seed=int(rng.integers(2**31)),
    )


def _distractors(rng: np.random.Generator, n: int, width: int, height: int) -> list[Distractor]:
    out = []
    for _ in range(n):
        grey = int(rng.integers(110, 191))
        if rng.random() < 0.5:
            x1, x2 = rng.uniform(0, width, 2)
            y1, y2 = rng.uniform(0, height, 2)
            xy = (float(x1), float(y1), float(x2), float(y2))
            out.append(Distractor("line", xy, grey, int(rng.integers(1, 3))))
        else:
            cx, cy = rng.uniform(0, width), rng.uniform(0, height)
            out.append(Distractor("dot", (float(cx), float(cy), float(rng.uniform(1.0, 3.0))), grey))
    return out


def make_scene(rng: np.random.Generator, spec: SceneSpec) -> Scene:
    """Place `spec.objects` in order; raises PlacementError when they do not fit."""
    for a in spec.objects:
        if a.shape not in SHAPES or a.colour not in COLOURS or (a.size is not None and a.size not in SIZES):
            raise ValueError(f"unknown object attributes {a}")
    scene = Scene(spec.width, spec.height, _background(rng, spec.texture))
    scene.distractors = _distractors(rng, spec.distractors, spec.width, spec.height)
    for attr in spec.objects:
        scene.objects.append(_place(rng, spec, scene.objects, attr))
    return scene


def random_attr(rng: np.random.Generator, size: str | None = None) -> Attr:
    """Any colour and shape, uniformly."""
    return Attr(SHAPES[int(rng.integers(len(SHAPES)))], list(COLOURS)[int(rng.integers(len(COLOURS)))], size)
